/* modelfile.h — the trained-model file: architecture, weights, preprocessing statistics,
 * class and feature names, and provenance, with a format version and a CRC-32 checksum.
 * `nnsearch predict` needs nothing else to reproduce the training-time preprocessing.
 * Format (little-endian): docs/model-format.md. */
#ifndef NS_MODELFILE_H
#define NS_MODELFILE_H

#include <stdint.h>

#include "../engine/data.h"
#include "mlp.h"

#define NS_MODEL_VERSION 1

/* Limits enforced on save and load; a count in a file beyond them is rejected before
 * anything is allocated for it. */
#define NS_MODEL_MAX_DIM (1 << 24)   /* n_in, n_out, every hidden width, n_classes */
#define NS_MODEL_MAX_NAME 4096       /* bytes in one class or feature name */

typedef struct ns_model_file {
    ns_mlp_spec spec;
    ns_task task;
    ns_standardizer stdz;  /* d = spec.n_in; identity (mean 0, scale 1) when off */
    int n_classes;
    char **class_names;    /* (n_classes) or NULL */
    char **feature_names;  /* (spec.n_in) or NULL */
    char *label_name;      /* CSV label column the model was trained on, or NULL */
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
 * Classification needs n_classes == spec.n_out; regression n_classes == 0 and MSE. */
int ns_model_save(const char *path, const ns_model_file *mf, ns_err *err);
/* Reads and verifies magic, version, sizes and checksum; NS_EINPUT with the byte offset
 * of the problem on a bad or truncated file. Caller frees with ns_model_file_free. */
int ns_model_load(const char *path, ns_model_file *mf, ns_err *err);
/* Frees what load allocated (names, statistics, parameters) and zeroes *mf. Safe on a
 * zeroed struct, after a failed load (which leaves *mf zeroed) and twice in a row. */
void ns_model_file_free(ns_model_file *mf);

#endif
