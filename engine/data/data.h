/* data.h — datasets in memory: IDX and CSV loaders, stratified splits, standardisation.
 * A dataset is loaded once and then only read (shared by every trial). Loaders validate
 * everything and report the first problem as one line naming the file and the
 * row/column or byte offset; they never crash on bad input. Not a streaming reader. */
#ifndef NS_DATA_H
#define NS_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

typedef enum ns_task { NS_TASK_CLASSIFY = 0, NS_TASK_REGRESS = 1 } ns_task;

typedef struct ns_dataset {
    long n;            /* rows */
    int d;             /* features per row */
    ns_task task;
    float *x;          /* (n, d) row-major */
    int32_t *y;        /* (n) class labels in [0, n_classes), classification; else NULL */
    float *t;          /* (n) regression targets; else NULL */
    int n_classes;     /* classification: 1 + largest label seen or declared */
    char **class_names;   /* (n_classes) or NULL; CSV string labels become names */
    char **feature_names; /* (d) or NULL; CSV header names */
} ns_dataset;

typedef struct ns_csv_opts {
    const char *label;  /* name of the label column; NULL: no label (prediction input) */
    ns_task task;
    /* Classification with an existing label vocabulary (e.g. a test file read after the
     * training file): labels must be one of these names; NULL: build the vocabulary. */
    char **class_names;
    /* With class_names: their count. Without: > 0 fixes a numeric vocabulary (labels must
     * be integers 0..n_classes-1, as a training file with integer labels gives); 0 builds
     * the vocabulary. The loaded dataset then has exactly this n_classes. */
    int n_classes;
} ns_csv_opts;

/* IDX files (raw or gzip'd, detected by magic bytes): images as unsigned bytes of any
 * rank >= 1 (each item flattened to d = product of the trailing dimensions; rank 1: d = 1),
 * labels as a rank-1 ubyte file. labels_path may be NULL (prediction input: y NULL,
 * n_classes 0). Pixels become floats 0..255 unscaled; n_classes = 1 + largest label;
 * class_names NULL. Fills *ds.
 * Errors (NS_EINPUT), one line "PATH: byte OFFSET: what; fix": bad magic, unsupported type
 * code, truncated data or header, bytes after the data, labels not rank 1, item count
 * mismatch between images and labels; a missing file is "PATH: cannot open: strerror; fix".
 * All loaders: *ds is overwritten (free it first); on any error *ds is left zeroed with
 * nothing allocated. Out of memory is NS_ERUNTIME. Caller frees with ns_dataset_free. */
int ns_dataset_load_idx(ns_dataset *ds, const char *images_path, const char *labels_path,
                        ns_err *err);

/* CSV with a header row; comma-separated; numbers in every feature column. For
 * classification, integer labels 0..K-1 or strings (mapped in order of first appearance,
 * unless opts->class_names fixes the vocabulary); for regression, a finite number.
 * Errors name file:row:column (1-based, the header is row 1).
 * Details: fields may be "quoted" with "" for a quote, and surrounded by spaces/tabs; LF,
 * CRLF or CR line ends; blank lines are skipped; a UTF-8 BOM is ignored; .csv.gz works.
 * ROW is the line number in the file (blank lines and newlines inside quotes count).
 * Feature cells: a finite number as strtod reads it (C locale), within float range; no
 * empty cells, nan or inf. Built vocabulary: if every label is an integer, the labels
 * are the class indices (n_classes = max + 1, class_names NULL; negative or > 65535 is an
 * error); otherwise every distinct label text is a class name (class_names set), in order
 * of first appearance. opts NULL or opts->label NULL: no label column, y and t NULL.
 * Regression: n_classes 0, class_names NULL. feature_names: the header minus the label. */
int ns_dataset_load_csv(ns_dataset *ds, const char *path, const ns_csv_opts *opts,
                        ns_err *err);

/* Reads IDX or CSV by looking at the file (gzip/IDX magic vs text): after gunzip, IDX
 * starts with two zero bytes, so .csv.gz is read as CSV. For IDX, opts may fix the label
 * vocabulary (n_classes > 0: labels must be below it; class_names copied); a regression
 * task with IDX labels, or labels_path with a CSV file, is NS_EINPUT. */
int ns_dataset_load(ns_dataset *ds, const char *path, const char *labels_path,
                    const ns_csv_opts *opts, ns_err *err);

void ns_dataset_free(ns_dataset *ds);

/* Puts ds's feature columns in the order of names[0..d) (a training file's or a model's),
 * matched by header name, so that a file whose columns come in another order is read as
 * the one it was trained on; ds->feature_names follows. Columns of ds that names lacks are
 * dropped when extra_ok, else NS_EINPUT. A name of names that ds lacks is NS_EINPUT
 * ("PATH:1: column 'c' is missing; <why_needed>, add it"). Without names on either side
 * the columns stay by position and only their count must be d. NS_ERUNTIME: out of memory. */
int ns_dataset_match_columns(ns_dataset *ds, char *const *names, int d, int extra_ok,
                             const char *path, const char *why_needed, ns_err *err);

/* New dataset holding rows idx[0..n) of src (deep copy, names included). n may be 0;
 * dst must not be src. An index outside src is NS_EINPUT and leaves *dst zeroed. */
int ns_dataset_subset(ns_dataset *dst, const ns_dataset *src, const int32_t *idx, long n,
                      ns_err *err);

/* Deterministic split of rows 0..n-1 into train and validation. Classification: per class,
 * round(frac * count) rows go to validation (stratified); regression: round(frac * n).
 * The rows are chosen by a stream seeded with seed. Writes ascending row numbers;
 * *n_train + *n_val = ds->n. idx_train and idx_val must each hold ds->n entries.
 * Rounding is half away from zero, capped at count - 1 so that every class with rows (and
 * a regression set) keeps at least one training row; a class of one row stays in training.
 * Without labels (y NULL) the split is plain random like regression. frac outside [0, 1)
 * is NS_EINPUT. Same (ds, frac, seed), same split. */
int ns_split_stratified(const ns_dataset *ds, double frac, uint64_t seed, int32_t *idx_train,
                        long *n_train, int32_t *idx_val, long *n_val, ns_err *err);

/* Deterministic stratified sample of m rows (data.max_rows: a smaller data set with the
 * class shares of the whole). Classification: class k gets floor(m n_k / n) rows, and the
 * rows still missing go one each to the classes with the largest remainders (ties: lower
 * class first), so the counts sum to m and each is within one row of its exact share; the
 * rows of a class are chosen by a stream seeded with seed. Regression or no labels: m rows
 * uniformly. Writes the chosen row numbers ascending to idx (room for min(m, n)) and their
 * count to *n_out; m >= n: every row. m < 1 is NS_EINPUT. Same (ds, m, seed), same rows. */
int ns_sample_stratified(const ns_dataset *ds, long m, uint64_t seed, int32_t *idx, long *n_out,
                         ns_err *err);

/* Deterministic assignment of rows 0..n-1 to K folds (stratified K-fold): fold_of[i] in
 * [0, K). Classification: each class's rows are shuffled by a stream seeded with seed and
 * dealt round-robin, each class starting at the fold after the one where the previous
 * class stopped, so every fold holds floor or ceil(count / K) rows of every class and the
 * fold sizes differ by at most one; regression or no labels: all rows shuffled and dealt.
 * A class of fewer than K rows is then missing from some folds (callers report that).
 * K outside 2..n is NS_EINPUT. Same (ds, K, seed), same folds. */
int ns_folds_stratified(const ns_dataset *ds, int K, uint64_t seed, int32_t *fold_of, ns_err *err);

/* Per-feature standardisation statistics, fitted on training rows only: mean and population
 * std computed in double (two passes). A feature is constant, scale 1, when its std is at
 * most 1e-12 |mean| (rounding noise) or 1 / std would overflow a float. Regression targets
 * likewise (t_std 1 if constant). NS_EINPUT on an empty dataset. */
typedef struct ns_standardizer {
    int d;
    float *mean;  /* (d) */
    float *scale; /* (d) 1 / std, or 1 where the feature is constant */
    float t_mean, t_std; /* regression targets: t' = (t - t_mean) / t_std; else 0, 1 */
} ns_standardizer;

int ns_standardizer_fit(ns_standardizer *s, const ns_dataset *ds, ns_err *err);
void ns_standardizer_apply(const ns_standardizer *s, float *x, long n); /* x = (x - mean) * scale */
void ns_standardizer_apply_targets(const ns_standardizer *s, float *t, long n);
void ns_standardizer_free(ns_standardizer *s);

/* Counts per class; counts must hold ds->n_classes entries. */
void ns_dataset_class_counts(const ns_dataset *ds, long *counts);

#endif
