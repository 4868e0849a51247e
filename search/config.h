/* config.h — the YAML configuration: parsed with libyaml, checked against one table of
 * keys (type, range, default, allowed values), every problem reported as
 * "file:line:column: what; how to fix" before anything runs. Keys: docs/config.md.
 * This is the fixed training config (data, model, train); search spaces come later. */
#ifndef NS_CONFIG_H
#define NS_CONFIG_H

#include <stdint.h>

#include "../engine/data.h"
#include "../engine/train.h"
#include "../model/mlp.h"

typedef enum ns_class_weights { NS_CW_NONE = 0, NS_CW_BALANCED, NS_CW_LIST } ns_class_weights;

typedef struct ns_data_cfg {
    char *train;          /* required; paths are resolved against the config's folder */
    char *train_labels;   /* IDX labels file (required with IDX images) */
    char *test;           /* optional separate test set */
    char *test_labels;
    char *label;          /* CSV label column ["label"] */
    ns_task task;         /* [classification] */
    double val_fraction;  /* [0.1], in [0, 0.9] */
    uint64_t split_seed;  /* [1] */
    int standardize;      /* [true] */
} ns_data_cfg;

typedef struct ns_config {
    char *path;           /* as given */
    char *text;           /* the file's bytes */
    uint64_t hash;        /* FNV-1a 64 of text: provenance and resume guard */
    ns_data_cfg data;
    ns_mlp_spec model;    /* n_in and n_out are filled from the data later (0 here) */
    ns_class_weights class_weights;
    int n_class_weights;
    float *class_weight_list; /* (n_class_weights) for NS_CW_LIST */
    ns_train_spec train;
    int threads;          /* BLAS threads for `train` [1] */
} ns_config;

/* Parses and validates path. NS_EINPUT with a located message on any problem;
 * nothing is allocated on failure. Caller frees with ns_config_free. */
int ns_config_load(ns_config *c, const char *path, ns_err *err);
/* The same from text in memory; `name` is used in messages and to resolve paths. */
int ns_config_parse(ns_config *c, const char *name, const char *text, size_t len, ns_err *err);
void ns_config_free(ns_config *c);

uint64_t ns_fnv1a64(const void *data, size_t len);

#endif
