/* config.h — the YAML configuration: parsed with libyaml, checked against one table of
 * keys (type, range, default, allowed values, searchable), every problem reported as
 * "file:line:column: what; how to fix" before anything runs. Keys: docs/config.md.
 * The training config (data, model, train), where tunable keys may be search spaces, and
 * the search: section (study, stages). Not the search itself: that is the driver's. */
#ifndef NS_CONFIG_H
#define NS_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "engine/data/data.h"
#include "engine/data/datacheck.h"
#include "engine/train/health.h"
#include "engine/train/train.h"
#include "model/mlp.h"
#include "search/config/space.h"

/* auto: when the training classes' largest / smallest count is above
 * health.imbalance_ratio, weights sqrt(n / (K n_k)) (the square root of balanced's);
 * none otherwise (decided from the data, per run). */
/* model.class_weights: none; balanced, n / (K n_k); a list; auto, sqrt(n / (K n_k)) when the
 * classes are imbalanced (health.imbalance_ratio) and none otherwise; sqrt, always the
 * square root (the tempered weighting as a choice a search can make). */
typedef enum ns_class_weights { NS_CW_NONE = 0, NS_CW_BALANCED, NS_CW_LIST, NS_CW_AUTO, NS_CW_SQRT } ns_class_weights;

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
    long max_rows;        /* [0]: every row; else a stratified sample of this many training rows */
    long test_max_rows;   /* [0]: every row; else a stratified sample of the test file */
} ns_data_cfg;

/* The validation metric that compares trials. */
/* val_balanced_acc and val_macro_f1 (classification) are a trial's from its final weights
 * and are recorded at every epoch too (pruning compares them); early stopping watches
 * train.metric, which a search sets to them (driver.c). */
typedef enum ns_metric {
    NS_METRIC_VAL_LOSS = 0,
    NS_METRIC_VAL_ACC,
    NS_METRIC_VAL_RMSE,
    NS_METRIC_VAL_BACC,
    NS_METRIC_VAL_F1,
} ns_metric;

const char *ns_metric_name(ns_metric m);       /* "val_loss", "val_acc", "val_rmse",
                                                  "val_balanced_acc", "val_macro_f1" */
int ns_metric_higher_is_better(ns_metric m);   /* 1 for the accuracies and F1, 0 for losses */

#define NS_MAX_STAGES 32
/* The most trials one stage may ask for. Trial numbers are int (the store, the stages,
 * status), numbered on across the stages: NS_MAX_STAGES stages of this many stay below
 * INT_MAX, so a number never wraps. docs/config.md, search.stages. */
#define NS_MAX_STAGE_TRIALS 10000000
_Static_assert((long long)NS_MAX_STAGES * NS_MAX_STAGE_TRIALS < 2147483647LL,
               "trial numbers of every stage together must fit in an int");

/* The stages (search.stages[].stage). */
typedef enum ns_stage_kind {
    NS_STAGE_RANDOM = 0, /* random points of the search space */
    NS_STAGE_LR_RANGE,   /* LR range test per optimizer family -> LR and bounds */
    NS_STAGE_BATCH,      /* batch_sweep: batch sizes with rescaled LRs -> batch size */
    NS_STAGE_COMPARE,    /* optimizer x schedule pairs x seeds -> ranking and short-list */
    NS_STAGE_FINAL,      /* the chosen configuration trained for the config's own budget */
    NS_STAGE_BAYES,      /* GP Bayesian optimisation in rounds, median-rule pruning */
    NS_STAGE_SELECT,     /* the winner among all trials: healthy, then near-ties by size */
} ns_stage_kind;

/* bayes: when a running trial is stopped early. */
typedef enum ns_prune_rule { NS_PRUNE_NONE = 0, NS_PRUNE_MEDIAN, NS_PRUNE_ASHA } ns_prune_rule;

#define NS_MAX_SIZES 16
#define NS_MAX_PAIRS 8   /* optimizers or schedules listed in a compare stage */

/* batch_sweep's LR rescaling with the batch size. */
typedef enum ns_lr_scaling { NS_SCALE_AUTO = 0, NS_SCALE_LINEAR, NS_SCALE_SQRT, NS_SCALE_NONE } ns_lr_scaling;

/* One entry of search.stages. Options of other kinds stay at their defaults. */
typedef struct ns_stage_cfg {
    const char *name;     /* a known stage ("random", "lr_range", ...); static storage */
    ns_stage_kind kind;
    long trials;          /* random: trials of this stage, >= 1; bayes: at most this many,
                             0: until the study budget is spent (other kinds: derived) */
    ns_budget_kind budget; /* per trial: NS_BUDGET_EPOCHS or NS_BUDGET_STEPS */
    long epochs;          /* NS_BUDGET_EPOCHS */
    long steps;           /* NS_BUDGET_STEPS */
    double seconds;       /* wall-clock cap for the whole stage; 0: none */
    int seeds;            /* lr_range, compare: runs per point, seeds from the study [3] */
    /* lr_range */
    double lr_start, lr_end; /* the sweep [1e-7, 10] */
    int sweep_steps;      /* [200] */
    int rule;             /* ns_lr_rule (engine/train/lrfind.h) */
    /* batch_sweep */
    int sizes[NS_MAX_SIZES], n_sizes; /* [16, 32, ..., 1024], capped by the training rows */
    int scaling;          /* ns_lr_scaling [auto: linear for SGD, sqrt for adaptive] */
    double tolerance;     /* a size is as good as the best within this share of val loss [0.02] */
    /* compare */
    int optimizers[NS_MAX_PAIRS], n_optimizers; /* ns_optim_kind [sgd, adam, adamw, rmsprop] */
    int schedules[NS_MAX_PAIRS], n_schedules;   /* ns_sched_kind [constant, cosine, onecycle, step] */
    int shortlist;        /* pairs kept for later stages [3] */
    /* bayes */
    int round;            /* proposals per round, trained side by side [2] */
    int init;             /* Sobol points before the GP; 0: max(5, 2 x GP inputs) [0] */
    int prune;            /* ns_prune_rule [median] */
    long min_epochs;      /* epochs before pruning may stop a trial; 0: a third of the
                             budget (median) or a ninth (asha), at least 1 [0] */
    int reduction;        /* asha: rungs at min_epochs x reduction^k, the top 1/reduction
                             go on [3] */
    /* select */
    int top;              /* trials listed with the reason they lost [5] */
    int line, column;     /* 1-based location of the entry in the config */
} ns_stage_cfg;

/* How a trial's validation metric is estimated (search.resampling). */
typedef enum ns_resampling {
    NS_RESAMPLE_AUTO = 0, /* cross-validation below NS_CV_AUTO_MAX_ROWS training rows, else holdout */
    NS_RESAMPLE_HOLDOUT,  /* one split: data.val_fraction of the rows validate */
    NS_RESAMPLE_CV,       /* stratified K-fold, repeated R times with other folds */
} ns_resampling;

/* auto: cross-validate training files of at most this many rows. Measured with
 * scripts/bench/tabular --resampling holdout|cv --no-optuna on ten sets outside the
 * benchmark (30 s, -j 2, 3 splits each; docs/BENCHMARKS.md): at 252-1,009 rows CV's test
 * scores were higher (+0.6 points of accuracy, +1.0 of macro-F1, better on 3 of 4 sets, a
 * tie on the 4th); at 2,019-9,857 rows they were not (-1.0 points of accuracy, +0.2 of
 * macro-F1: holdout ran 3-6 times the trials), although CV's estimates were twice as close
 * to the test scores at every size. */
#define NS_CV_AUTO_MAX_ROWS 2000
#define NS_CV_DEFAULT_FOLDS 5
/* A cross-validated winner's final model (search.final). */
typedef enum ns_final_kind {
    NS_FINAL_AUTO = 0, /* the refit: what scripts/bench/final_model.py measured (no
                          reliable difference; one model is simpler to deploy) */
    NS_FINAL_REFIT,    /* its config trained once on every training row */
    NS_FINAL_ENSEMBLE, /* its K fold models, their predictions averaged */
} ns_final_kind;

/* Whether select fits decision offsets to its winner (search.decision_offsets). */
typedef enum ns_offsets_mode {
    NS_OFFSETS_AUTO = 0, /* when the study ranks by a class-averaged metric */
    NS_OFFSETS_NONE,     /* never: the model decides by its largest output */
} ns_offsets_mode;

#define NS_CV_MAX_FOLDS 50
#define NS_CV_MAX_REPEATS 20

typedef struct ns_search_cfg {
    int given;            /* the config has a search: section */
    char *name;           /* study name [the config file name without its extension] */
    char *output;         /* study folder, absolute [results/<name> in the current directory] */
    uint64_t seed;        /* study seed [1]; trial seeds derive from it and the trial number */
    int parallel;         /* trials at once [1] */
    ns_metric metric;     /* [val_acc for classification, val_rmse for regression] */
    ns_resampling resampling; /* [auto] */
    int folds, repeats;   /* cross-validation's K [5] and R [1] */
    ns_final_kind final;  /* [auto] */
    ns_offsets_mode offsets; /* search.decision_offsets [auto] */
    int array;            /* trials of one shape trained together as one array, at most this
                             many; 0: auto (NS_ARRAY_AUTO_GPU when trials train on a GPU, 1
                             on the CPU) [auto] */
    double budget;        /* wall-clock seconds for the whole study; 0: none (each stage's own
                             trials and seconds) [0] */
    int n_stages;         /* >= 1 when given */
    ns_stage_cfg stages[NS_MAX_STAGES];
} ns_search_cfg;

/* Most classes model.decision_offsets may shift (one offset each). */
#define NS_MAX_DECISION_CLASSES 256

/* Capacity of ns_config.given (config.c checks that its table fits). */
#define NS_CONFIG_MAX_KEYS 96

typedef struct ns_config {
    char *path;           /* as given */
    char *text;           /* the file's bytes */
    uint64_t hash;        /* FNV-1a 64 of text: provenance and resume guard */
    ns_data_cfg data;
    ns_mlp_spec model;    /* n_in and n_out are filled from the data later (0 here) */
    ns_class_weights class_weights;
    int n_class_weights;
    float *class_weight_list; /* (n_class_weights) for NS_CW_LIST */
    int n_decision_offsets; /* model.decision_offsets: 0 (none) or one per class */
    float decision_offsets[NS_MAX_DECISION_CLASSES]; /* added to the output logits of the
                             trained model (its last biases): argmax(z + o) is the decision */
    ns_train_spec train;  /* train.div_factor is health.divergence_factor */
    ns_health_spec health; /* the health: section, the trial detectors' thresholds */
    ns_datacheck_spec datacheck; /* the health: section's data-check thresholds */
    int threads;          /* BLAS threads for `train` [1] */
    int device;           /* train.device: an ns_device (engine/backend/backend.h) [cpu] */
    int precision;        /* train.precision: an ns_precision, the GEMMs' arithmetic [fp32] */
    int ensemble;         /* model.ensemble: 0, one model; K >= 2, one member per stratified
                             fold of the training rows, validated on its fold, predictions
                             averaged [0] */
    uint64_t ensemble_seed; /* the folds and each member's training stream [1] */
    int depth, width;     /* model.depth x model.width when given (width > 0): then hidden
                             holds depth layers of width units; 0, 0 when hidden is a list */
    ns_space space;       /* the searched keys; n == 0 for a fixed config. A searched key
                             holds its default until a point is applied */
    ns_search_cfg search; /* the search: section (search.given == 0 without one) */
    unsigned char given[NS_CONFIG_MAX_KEYS]; /* internal: which keys the file set (the
                             dependent defaults are derived again for every trial) */
} ns_config;

/* What one config may cost to read. libyaml's scanner spends time proportional to the
 * nesting depth on every token, so a few hundred KB of "[[[[...]]]]" took minutes: the
 * nesting is checked on the event stream, before the document is built. The deepest real
 * config nests 7 levels (search: stages: - {key: {choice: [[64, 32]]}}); the largest lists
 * (class weights, choices) stay far below the node bound. */
#define NS_CONFIG_MAX_BYTES (1L << 20)  /* 1 MiB */
#define NS_CONFIG_MAX_DEPTH 16          /* nested mappings and lists */
#define NS_CONFIG_MAX_NODES 200000      /* values, lists, mappings and aliases */
#define NS_CONFIG_MAX_CHOICES 4096      /* values of one choice space */

/* Parses and validates path. NS_EINPUT with a located message on any problem;
 * nothing is allocated on failure. Caller frees with ns_config_free. */
int ns_config_load(ns_config *c, const char *path, ns_err *err);
/* The same from text in memory; `name` is used in messages and to resolve paths. */
int ns_config_parse(ns_config *c, const char *name, const char *text, size_t len, ns_err *err);
void ns_config_free(ns_config *c);
/* The CLI's --device: every config parsed from now on has train.device = dev (an
 * ns_device), whatever its text says; dev < 0 restores each config's own. Process-wide. */
void ns_config_device_override(int dev);
/* Deep copy of src into *dst (overwritten); NS_OK or NS_ERUNTIME (dst left empty). */
int ns_config_copy(ns_config *dst, const ns_config *src, ns_err *err);

/* A fully fixed config from base and a point u of base->space's unit cube (u[i] for
 * dims[i]; NULL when the space is empty): a deep copy with every searched key set
 * through its own parser from ns_dim_text, the dependent defaults derived again (momentum,
 * gamma, hidden from depth x width) and the cross-key rules checked. out->space is empty;
 * out->search, path, text and hash are base's. NS_EINPUT with "NAME: searched values do
 * not go together (train.nesterov=true, train.optimizer=adam): ..." when the point breaks
 * a rule (the stage records the trial as failed); nothing allocated on failure. Caller
 * frees *out with ns_config_free. */
int ns_config_instantiate(const ns_config *base, const double *u, ns_config *out, ns_err *err);

/* One key set by a stage on top of a point: "train.lr" = "0.003" (YAML text). */
typedef struct ns_setting {
    const char *key;
    const char *value;
} ns_setting;

/* ns_config_instantiate, then set[0..n_set) applied in order through each key's parser as
 * if the file gave them (a setting wins over a searched value of the same key; dependent
 * defaults follow, e.g. train.momentum after train.optimizer: sgd). */
int ns_config_instantiate_set(const ns_config *base, const double *u, const ns_setting *set,
                              int n_set, ns_config *out, ns_err *err);

/* Sets t's budget to the stage's per-trial budget (epochs or steps). */
void ns_stage_cfg_apply_budget(const ns_stage_cfg *st, ns_train_spec *t);

/* Writes a complete fixed training config: data, model and train with every key and its
 * value (data paths absolute, doubles exact), no search section; header_comment (may be
 * NULL or several lines) first, as '#' lines. ns_config_load reads it back to the same
 * values. NS_EINPUT when c still has search spaces; NS_ERUNTIME on a write error. */
int ns_config_export_yaml(const ns_config *c, FILE *f, const char *header_comment, ns_err *err);

/* Index of key "section.key" in the key table, or -1. */
int ns_config_key_find(const char *name);
/* Writes key's value in c as YAML (json == 0) or compact JSON (json != 0) text: numbers
 * exact and shortest, names plain (YAML) or quoted (JSON), lists in [a, b] form. */
void ns_config_write_value(FILE *f, const ns_config *c, int key, int json);

uint64_t ns_fnv1a64(const void *data, size_t len);

#endif
