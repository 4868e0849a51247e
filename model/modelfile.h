/* modelfile.h — the trained-model file: architecture, weights, preprocessing statistics,
 * training-data statistics for the drift check, class and feature names, and provenance,
 * with a format version and a CRC-32 checksum; and the ensemble file, several model files
 * whose predictions are averaged. `nnsearch predict` needs nothing else to reproduce the
 * training-time preprocessing. Format (little-endian): docs/model-format.md. */
#ifndef NS_MODELFILE_H
#define NS_MODELFILE_H

#include <stdint.h>

#include "engine/data/data.h"
#include "model/mlp.h"

/* Written: 2 (adds the training statistics). Read: 1 and 2. */
#define NS_MODEL_VERSION 2
#define NS_MODEL_VERSION_MIN 1

/* Limits enforced on save and load; a count in a file beyond them is rejected before
 * anything is allocated for it. */
#define NS_MODEL_MAX_DIM (1 << 24)   /* n_in, n_out, every hidden width, n_classes */
#define NS_MODEL_MAX_NAME 4096       /* bytes in one class or feature name */

/* Per-feature statistics of the TRAINING rows (not validation or test), in the units the
 * network sees: after the model's standardisation (raw values when it is the identity).
 * Predict compares new data with them (model/drift.h). d == 0 means absent (a version-1
 * file): every pointer NULL and n_rows 0. One buffer of 4d floats: min owns it, the other
 * three point into it. Invariants (checked on save and load): all finite,
 * min <= mean <= max, std >= 0, n_rows >= 1. */
typedef struct ns_feature_stats {
    int d;        /* 0 or spec.n_in */
    long n_rows;  /* training rows summarised */
    float *min;   /* (d) owns the 4d buffer */
    float *max;   /* (d) */
    float *mean;  /* (d) */
    float *std;   /* (d) population std, computed in double */
} ns_feature_stats;

/* Fills *fs from every row of ds (the standardised training part). NS_EINPUT when ds has
 * no rows or features, or a non-finite value (the standardised data never has one);
 * NS_ERUNTIME out of memory. *fs is zeroed first and stays zeroed on failure; caller
 * frees with ns_feature_stats_free. */
int ns_feature_stats_compute(ns_feature_stats *fs, const ns_dataset *ds, ns_err *err);
/* Frees the buffer and zeroes *fs; safe on a zeroed struct and twice. */
void ns_feature_stats_free(ns_feature_stats *fs);

typedef struct ns_model_file {
    ns_mlp_spec spec;
    ns_task task;
    ns_standardizer stdz;  /* d = spec.n_in; identity (mean 0, scale 1) when off */
    int n_classes;
    char **class_names;    /* (n_classes) or NULL */
    char **feature_names;  /* (spec.n_in) or NULL */
    char *label_name;      /* CSV label column the model was trained on, or NULL */
    ns_feature_stats fstats; /* training statistics; fstats.d == 0: absent (version 1) */
    uint64_t config_hash;
    uint64_t seed;
    char tool_version[32];
    size_t n_params;
    float *params;         /* host (n_params), the ns_mlp layout */
} ns_model_file;

/* Writes atomically (PATH.tmp.XXXXXX in the same folder, fflush, fsync, rename over PATH);
 * on any failure the temporary file is removed and PATH is left as it was.
 * NS_EINPUT when *mf is inconsistent (n_params not what spec implies, stdz.d != n_in,
 * enum or count out of range, a name too long); NS_ERUNTIME on an I/O failure.
 * Classification needs n_classes == spec.n_out; regression n_classes == 0 and MSE.
 * Always writes NS_MODEL_VERSION; fstats may be absent (d == 0) or must have d == n_in
 * and satisfy its invariants. */
int ns_model_save(const char *path, const ns_model_file *mf, ns_err *err);
/* Reads and verifies magic, version, sizes and checksum; NS_EINPUT with the byte offset
 * of the problem on a bad or truncated file. Reads versions NS_MODEL_VERSION_MIN to
 * NS_MODEL_VERSION; a version-1 file loads with fstats zeroed (absent). An ensemble file
 * is refused (NS_EINPUT, saying so): read it with ns_models_load. Caller frees with
 * ns_model_file_free. */
int ns_model_load(const char *path, ns_model_file *mf, ns_err *err);
/* Frees what load allocated (names, statistics, parameters) and zeroes *mf. Safe on a
 * zeroed struct, after a failed load (which leaves *mf zeroed) and twice in a row. */
void ns_model_file_free(ns_model_file *mf);

/* An ensemble file: K >= 1 complete model files (members) whose predictions are averaged
 * (classification: the mean of the members' class probabilities; regression: the mean
 * of their outputs in target units). Members must agree on task, n_in, n_out, n_classes,
 * class names, feature names and label name (each may have its own architecture widths,
 * weights, standardisation and training statistics). Layout: docs/model-format.md,
 * "Ensemble files". Messages number members from 1 ("member 2 of 5"). */
#define NS_ENSEMBLE_MAX_MEMBERS 256
/* Writes members[0..n) as one ensemble file, atomically like ns_model_save; each member
 * is stored as exactly the bytes ns_model_save would write for it. NS_EINPUT when n is
 * outside [1, NS_ENSEMBLE_MAX_MEMBERS], a member would not save on its own, or members
 * disagree; NS_ERUNTIME on an I/O failure. */
int ns_ensemble_save(const char *path, const ns_model_file *members, int n, ns_err *err);
/* Loads a model file (n = 1) or an ensemble file (n = members): *members is an array of
 * *n loaded models the caller frees with ns_models_free. Same error rules as
 * ns_model_load; a problem inside member i names the member and the byte offset in the file.
 * On failure *members is NULL and *n 0. */
int ns_models_load(const char *path, ns_model_file **members, int *n, ns_err *err);
/* Frees every member and the array; safe with NULL. */
void ns_models_free(ns_model_file *members, int n);

#endif
