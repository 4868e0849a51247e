/* pipeline.h — from a validated config to trained weights: prepare the data once
 * (prepare.c: load, split, standardise, folds), then run one training of a fixed spec on
 * it (pipeline.c). The search stages call ns_run_training once per trial on a shared
 * ns_prepared. */
#ifndef NS_PIPELINE_H
#define NS_PIPELINE_H

#include "engine/data/data.h"
#include "engine/data/datacheck.h"
#include "engine/train/health.h"
#include "engine/train/train.h"
#include "model/mlp.h"
#include "search/config/config.h"

typedef struct ns_prepared {
    ns_dataset train, val, test; /* standardised copies; val.n or test.n may be 0 */
    ns_standardizer stdz;        /* fitted on train */
    ns_task task;
    int n_classes;               /* classification */
    char **class_names;          /* borrowed from train (may be NULL) */
    long *class_counts;          /* (n_classes) training rows per class, classification */
    uint64_t stream_seed;        /* nonzero: the training stream (row order, dropout) of every
                                    run on these data, whatever its train.seed: common random
                                    numbers across the trials of a cross-validation fold;
                                    0: the stream derives from train.seed */
} ns_prepared;

/* Loads and prepares the data the config names. Errors are NS_EINPUT with a location. */
int ns_prepare_data(ns_prepared *p, const ns_config *c, ns_err *err);
void ns_prepared_free(ns_prepared *p);
/* A fingerprint of the prepared rows (every feature value and the label or target of the
 * training, validation and test parts): a resumed study compares it with the one it was
 * started on, since the config's hash does not see a data file edited in place. */
uint64_t ns_prepared_fingerprint(const ns_prepared *p);

/* The folds of a cross-validated study: part[r * k + i] trains on every row of the training
 * file outside fold i of repeat r and validates on fold i, standardised with its own
 * training rows' statistics; no test part. */
typedef struct ns_folds {
    int n;                /* prepared parts, k x repeats */
    int k, repeats;
    long rows;            /* rows of the training file */
    ns_prepared *part;    /* (n) */
    char advice[320];     /* a class with fewer rows than folds, with what to do; "" if none */
} ns_folds;

/* Stratified K-fold (ns_folds_stratified) of all of c's training rows, R times with fold
 * assignments drawn from seed; every part gets its own stream_seed from seed, so the
 * trials of a study see the same folds in the same row order. NS_EINPUT when the file
 * has fewer than 2K rows; caller frees with ns_folds_free. */
int ns_prepare_folds(ns_folds *f, const ns_config *c, int K, int R, uint64_t seed, ns_err *err);
void ns_folds_free(ns_folds *f);

/* data.test as it is in the file (not standardised), with ref's class vocabulary and
 * checked against ref's columns; an empty *ds when the config has no test set. Caller
 * frees with ns_dataset_free. */
int ns_load_test(ns_dataset *ds, const ns_config *c, const ns_prepared *ref, ns_err *err);

typedef struct ns_run_result {
    int epochs;           /* epochs run */
    int best_epoch;       /* epoch whose weights were kept (early stopping) or the last */
    int stopped_early;
    int diverged;         /* a non-finite loss or gradient stopped the run */
    int interrupted;      /* *stop was set: the run stopped between two steps (and the
                             checkpoint, if any, holds that point) */
    ns_epoch_record last; /* the last epoch's record */
    double val_loss, val_acc, val_rmse;    /* of the final weights; NaN without validation */
    double test_loss, test_acc, test_rmse; /* NaN without a test set */
    /* classification, final weights: balanced accuracy and macro-F1 (engine/train/metrics.h);
     * NaN for regression or without the set */
    double val_bacc, val_f1, test_bacc, test_f1;
} ns_run_result;

/* Where a run writes besides its ns_run_result; a NULL ns_run_out or field: nowhere.
 * checkpoint: the run starts from it when the file exists and rewrites it after an epoch
 *   once a second has passed since the last time, after the last epoch and on
 *   interruption.
 * model: the final model file.
 * val_pred: room for the validation part's rows, where a classification run writes each
 *   row's predicted class by its final weights (what val_acc counts). */
typedef struct ns_run_out {
    const char *checkpoint;
    const char *model;
    int32_t *val_pred;
} ns_run_out;

/* Largest / smallest training class count over the classes with rows (NaN for
 * regression or without rows). */
double ns_pipeline_imbalance(const ns_prepared *p);
/* c's class weighting as applied to p: `auto` stays NS_CW_AUTO (tempered weights, see
 * pipeline.c) when the imbalance is above c->datacheck.imbalance_ratio and becomes
 * NS_CW_NONE otherwise; other modes as they are. */
ns_class_weights ns_pipeline_class_weights(const ns_config *c, const ns_prepared *p);

/* The data checks of c's health: thresholds on p's parts (engine/data/datacheck.h), with the
 * class_imbalance fix worded after model.class_weights. Caller frees *rep with
 * ns_data_report_free. NS_ERUNTIME only when out of memory. */
int ns_pipeline_data_check(const ns_config *c, const ns_prepared *p, ns_data_report *rep,
                           ns_err *err);

/* The loss of the best constant prediction for c's loss on p's training part: for
 * cross-entropy the entropy of the (class-weighted, label-smoothed) class frequencies, for
 * MSE the variance of the (standardised) targets. The health check's not_converged
 * baseline; NaN when it cannot be computed (a class_weights list of the wrong length). */
double ns_pipeline_baseline_loss(const ns_config *c, const ns_prepared *p);

/* The noise of p's losses for the health detectors: hs->val_rel_se and hs->train_rel_se,
 * where unknown (0), become the standard error of the validation and train loss per unit
 * of loss over p's rows (ns_score_se at 1: cross-entropy for classification, MSE for
 * regression; a part without rows stays 0). Values already set (a caller that measured
 * the noise otherwise, e.g. over folds) are kept. */
void ns_pipeline_health_noise(ns_health_spec *hs, const ns_prepared *p);
/* The same over given row counts: a cross-validated trial's curve is the mean over its
 * folds, each row validated once a repeat. */
void ns_pipeline_health_noise_rows(ns_health_spec *hs, ns_task task, long val_rows, long train_rows);

/* The model spec of c completed from the data (n_in, n_out). */
void ns_pipeline_model_spec(ns_mlp_spec *spec, const ns_config *c, const ns_prepared *p);

/* train.device against this machine: NS_OK, or NS_EINPUT naming the config when it asks
 * for cuda (itself, or auto resolved to it) and no GPU backend can be made here, before
 * anything is trained or written. */
int ns_pipeline_device_check(const ns_config *c, ns_err *err);

/* Whether training c on p fits in the memory this process may use (ns_sysmem_limit: the
 * physical RAM, a cgroup limit, or ulimit -v / -d when set): the parameters and their gradients, the
 * optimizer's state (adam and adamw 2 copies, rmsprop 1 or 2, sgd with momentum 1), the
 * early-stopping copy (train.patience > 0), the activations of max_batch rows forward and
 * backward (max_batch 0: the larger of train.batch_size and train.eval_batch), the batch
 * buffers and the per-class tallies. NS_OK, or NS_EINPUT with one line saying what was
 * asked (bytes, model.hidden, inputs, outputs, batch, optimizer) and what the machine has.
 * Called before anything is allocated: the total RAM, not the free memory, so the answer
 * for a config is the same whenever it is asked. */
int ns_pipeline_memory_check(const ns_config *c, const ns_prepared *p, int max_batch, ns_err *err);

/* For a search: NS_EINPUT when no trial of c could fit, so the study is refused before it
 * starts instead of recording every trial as failed. Only the model is judged (parameters
 * and gradients, which every trial needs whatever its batch or optimizer), and only when
 * model.hidden, model.depth and model.width are not searched; a searched model is judged
 * per trial by ns_run_training, and a trial that cannot fit fails with that reason. */
int ns_pipeline_search_memory_check(const ns_config *c, const ns_prepared *p, ns_err *err);

/* c's model on p as ns_run_training builds it: the spec of ns_pipeline_model_spec, room for
 * max_batch rows, weights initialised from the stream ns_seed_derive(seed, 0x696e6974, 0)
 * (seed = c->train.seed gives the training's initial weights) and c's class weights.
 * NULL with *err set on failure (NS_EINPUT for a class_weights list of the wrong length,
 * or a model that does not fit: ns_pipeline_memory_check). Caller frees with ns_mlp_free. */
ns_mlp *ns_pipeline_model_alloc(const ns_config *c, const ns_prepared *p, ns_backend *be,
                                int max_batch, uint64_t seed, ns_err *err);

/* Adds c's model.decision_offsets to m's output biases (m's last layer), so that the model's
 * class decision is argmax(z + offsets) and its probabilities softmax(z + offsets): what a
 * run of c does to its final weights before they are evaluated and written. NS_EINPUT when
 * c lists another number of offsets than m has outputs. */
int ns_pipeline_add_decision_offsets(ns_mlp *m, const ns_config *c, ns_err *err);

/* Trains c's model on p from scratch, or from out->checkpoint when that file exists, and
 * writes what out names (may be NULL). fn sees every epoch record. stop (may be NULL) is
 * polled before every step; when it is set the run stops, checkpoints and returns NS_OK
 * with res->interrupted = 1 and no model written. */
int ns_run_training(const ns_config *c, const ns_prepared *p, ns_epoch_fn fn, void *user,
                    const ns_run_out *out, const ns_stop_flag *stop, ns_run_result *res,
                    ns_err *err);

/* Runs that can train together as one array (ns_run_training_array) have the same key:
 * the same layer widths, loss, batches, device, precision and threads; 1 and the key in
 * buf, or 0 for a run that trains alone (a seconds budget, an ensemble) or a key longer
 * than cap. */
int ns_run_shape_key(const ns_config *c, const ns_prepared *p, char *buf, size_t cap);

/* Trains K runs whose configs share a shape key as one array (engine/train/array.h), each
 * as ns_run_training would train it alone (on the CPU to the bit): member k with c[k],
 * fn(user[k], rec) for its epochs, its out[k] (out may be NULL), its res[k], and its own
 * outcome in rc[k] and err[k]. A member that cannot start
 * (its checkpoint refused) fails alone. Members that would not fit in memory together (by
 * ns_pipeline_memory_check's count), or whose buffers the device cannot give, train alone
 * one after another; any other failure of the array itself (the device, its run) is every
 * member's. */
void ns_run_training_array(const ns_config *const *c, int K, const ns_prepared *p, ns_epoch_fn fn,
                           void *const *user, const ns_run_out *out, const ns_stop_flag *stop,
                           ns_run_result *res, int *rc, ns_err *err);

/* Called before member `member` (0-based) of an ensemble of n starts training. */
typedef void (*ns_member_fn)(void *user, int member, int n);

/* Trains c's fold ensemble (c->ensemble = K >= 2, implemented in ensemble.c): the folds of
 * ns_prepare_folds(c, K, 1, c->ensemble_seed) and one member per fold, trained exactly as
 * ns_run_training trains the fold's part (validated on the fold, its stream from the
 * fold: the study's cross-validation runs of the same config and seed), then written as
 * one ensemble file at model_path (not NULL; members pass through model_path.member<k>
 * files that are removed). res: epochs the most any member ran, best_epoch their median
 * (the lower middle), diverged if one did, interrupted if *stop stopped one (no file
 * written), val_* the means over the members (the cross-validation estimate), test_*
 * those of the averaged prediction on data.test (NaN without): accuracy, balanced accuracy
 * and macro-F1 from the mean class probabilities, the loss their cross-entropy (no class
 * weights), RMSE of the mean prediction. members (K entries, may be NULL) receives each
 * member's own result. */
int ns_run_ensemble(const ns_config *c, ns_epoch_fn fn, ns_member_fn mfn, void *user,
                    const char *model_path, const ns_stop_flag *stop, ns_run_result *res,
                    ns_run_result *members, ns_err *err);

/* The gradient noise scale B_simple of c's model at its initial weights (ns_noise_scale in
 * stats.h), from the mean squared gradient norm over a few batches of b_small and of b_big
 * rows (both drawn from seed). *out is NaN when the measurement was too noisy to say. NS_ERUNTIME or NS_EINPUT
 * with *err on failure. Implemented in noise.c. */
int ns_pipeline_noise_scale(const ns_config *c, const ns_prepared *p, int b_small, int b_big,
                            uint64_t seed, double *out, ns_err *err);

#endif
