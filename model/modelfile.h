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

typedef struct ns_model_file {
    ns_mlp_spec spec;
    ns_task task;
    ns_standardizer stdz;  /* d = spec.n_in; identity (mean 0, scale 1) when off */
    int n_classes;
    char **class_names;    /* (n_classes) or NULL */
    char **feature_names;  /* (spec.n_in) or NULL */
    uint64_t config_hash;
    uint64_t seed;
    char tool_version[32];
    size_t n_params;
    float *params;         /* host (n_params), the ns_mlp layout */
} ns_model_file;

/* Writes atomically (temporary file, fsync, rename). */
int ns_model_save(const char *path, const ns_model_file *mf, ns_err *err);
/* Reads and verifies magic, version, sizes and checksum; NS_EINPUT with the byte offset
 * of the problem on a bad or truncated file. Caller frees with ns_model_file_free. */
int ns_model_load(const char *path, ns_model_file *mf, ns_err *err);
void ns_model_file_free(ns_model_file *mf);

#endif
