/* data.h — datasets in memory: IDX and CSV loaders, stratified splits, standardisation.
 * A dataset is loaded once and then only read (shared by every trial). Loaders validate
 * everything and report the first problem as one line naming the file and the
 * row/column or byte offset; they never crash on bad input. Not a streaming reader. */
#ifndef NS_DATA_H
#define NS_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

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
    int n_classes;
} ns_csv_opts;

/* IDX files (raw or gzip'd, detected by magic bytes): images as unsigned bytes of any
 * rank >= 1 (each item flattened to d = product of the trailing dimensions), labels as a
 * rank-1 ubyte file. labels_path may be NULL (prediction input). Fills *ds.
 * Errors (NS_EINPUT): bad magic, unsupported type code, truncated data (byte offset),
 * item count mismatch between images and labels. Caller frees with ns_dataset_free. */
int ns_dataset_load_idx(ns_dataset *ds, const char *images_path, const char *labels_path,
                        ns_err *err);

/* CSV with a header row; comma-separated; numbers in every feature column. For
 * classification, integer labels 0..K-1 or strings (mapped in order of first appearance,
 * unless opts->class_names fixes the vocabulary); for regression, a finite number.
 * Errors name file:row:column (1-based, the header is row 1). */
int ns_dataset_load_csv(ns_dataset *ds, const char *path, const ns_csv_opts *opts,
                        ns_err *err);

/* Reads IDX or CSV by looking at the file (gzip/IDX magic vs text). */
int ns_dataset_load(ns_dataset *ds, const char *path, const char *labels_path,
                    const ns_csv_opts *opts, ns_err *err);

void ns_dataset_free(ns_dataset *ds);

/* New dataset holding rows idx[0..n) of src (deep copy, names included). */
int ns_dataset_subset(ns_dataset *dst, const ns_dataset *src, const int32_t *idx, long n,
                      ns_err *err);

/* Deterministic split of rows 0..n-1 into train and validation. Classification: per class,
 * round(frac * count) rows go to validation (stratified); regression: round(frac * n).
 * The rows are chosen by a stream seeded with seed. Writes ascending row numbers;
 * *n_train + *n_val = ds->n. idx_train and idx_val must each hold ds->n entries. */
int ns_split_stratified(const ns_dataset *ds, double frac, uint64_t seed, int32_t *idx_train,
                        long *n_train, int32_t *idx_val, long *n_val, ns_err *err);

/* Per-feature standardisation statistics, fitted on training rows only. */
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
