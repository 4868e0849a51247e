/* train.h — the training loop: batching, optimizer and schedule steps, clipping,
 * validation, early stopping, per-epoch records and exact checkpoints.
 * It knows nothing of what is trained: a network is a parameter buffer plus one callback
 * (ns_net) that computes the loss of a batch and accumulates its gradients. */
#ifndef NS_TRAIN_H
#define NS_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "engine/backend/backend.h"
#include "engine/data/data.h"
#include "engine/rng.h"
#include "engine/stop.h"
#include "engine/train/optim.h"
#include "engine/train/sched.h"

/* What one batch produced; sums so that batches combine exactly. */
typedef struct ns_batch_out {
    double loss_sum;   /* sum of per-row losses (weighted for weighted cross-entropy) */
    double weight_sum; /* sum of row weights (B when unweighted) */
    long correct;      /* classification: rows whose argmax is the label */
    double sq_err;     /* regression: sum of squared errors in standardised units */
} ns_batch_out;

typedef struct ns_net {
    void *ctx;
    float *params;      /* device (n_params), one contiguous buffer */
    float *grads;       /* device (n_params), same layout */
    size_t n_params;
    int n_groups;       /* parameter groups (layers) for per-layer gradient norms */
    const size_t *group_off; /* (n_groups + 1) offsets into params */
    int max_batch;      /* largest B that batch() accepts */
    /* Loss of B rows x (device, (B, d)) with labels y (device int32) or targets t
     * (device float). training != 0: dropout on (mask seeded by noise_seed) and the
     * gradient of the mean loss is ACCUMULATED into grads. Returns NS_OK or sets *err. */
    int (*batch)(void *ctx, const float *x, const int32_t *y, const float *t, int B,
                 int training, uint64_t noise_seed, ns_batch_out *out, ns_err *err);
    /* Set by an evaluation for its duration, NULL otherwise: classification batches add
     * each row to this (conf_k x conf_k) confusion table, conf[label * conf_k + argmax];
     * conf_k is at least the number of classes the net outputs. */
    long *conf;
    int conf_k;
    /* Set with conf, or NULL: the same batches write each row's argmax class here, the
     * batch's first row at pred[0]. */
    int32_t *pred;
    /* Set by a trainer for its training steps, NULL otherwise: batch() leaves its loss's
     * results on the device at res[0..NS_RES_LOSS_N) (backend.h) instead of waiting for
     * them, and *out stays zero. */
    double *res;
} ns_net;

typedef enum ns_budget_kind { NS_BUDGET_EPOCHS = 0, NS_BUDGET_STEPS, NS_BUDGET_SECONDS } ns_budget_kind;

/* The validation metric that picks the best epoch (early stopping, the weights kept):
 * accuracy (RMSE for regression), or one that stays honest on imbalanced classes, where
 * the most accurate epoch is often the one that predicts the majority best. */
typedef enum ns_monitor { NS_MONITOR_AUTO = 0, NS_MONITOR_BACC, NS_MONITOR_F1 } ns_monitor;

typedef struct ns_train_spec {
    ns_budget_kind budget;
    long epochs;          /* NS_BUDGET_EPOCHS */
    long steps;           /* NS_BUDGET_STEPS */
    double seconds;       /* NS_BUDGET_SECONDS (also caps epochs when max_epochs > 0) */
    long max_epochs;      /* hard cap on epochs for steps/seconds budgets [0 = none] */
    int batch_size;       /* [128] */
    int eval_batch;       /* rows per evaluation batch [1024] */
    double lr;            /* base learning rate [1e-3] */
    ns_optim_spec opt;
    ns_sched_spec sched;
    double clip_norm;     /* global gradient-norm clip; 0 = off */
    int patience;         /* early stopping on the validation metric; 0 = off */
    double min_delta;     /* improvement that resets patience [0] */
    ns_monitor monitor;   /* the metric patience and the best epoch watch [auto] */
    uint64_t seed;        /* the run's stream: shuffling and dropout */
    int drop_last;        /* drop a final partial batch [0] */
    /* Divergence stop: a debiased EMA of the per-step training loss, beta =
     * max(NS_DIV_BETA, 1 - batch_size / NS_DIV_WINDOW) so that it always averages a few
     * thousand rows (batch-1 losses are far too noisy one by one), judged after a warm-up
     * of 1 / (1 - beta) steps (at least NS_DIV_WARMUP): above div_factor x its lowest
     * value AND above its value at the end of the warm-up, it stops the run as diverged (a
     * non-finite loss or gradient always does). The second condition keeps the late noise
     * of a loss near zero from counting: a run diverges when it loses what it learnt.
     * 0 = only non-finite. [4] */
    double div_factor;
} ns_train_spec;

#define NS_DIV_BETA 0.98
#define NS_DIV_WINDOW 4096.0
#define NS_DIV_WARMUP 20

void ns_train_spec_default(ns_train_spec *s);

#define NS_MAX_GROUPS 64

typedef struct ns_epoch_record {
    int epoch;            /* 1-based */
    long step;            /* optimizer steps done after this epoch */
    double train_loss;    /* mean over the epoch's batches (weighted) */
    double val_loss;      /* NaN when there is no validation set */
    double val_acc;       /* classification: accuracy; NaN otherwise */
    double val_rmse;      /* regression: RMSE in target units; NaN otherwise */
    double val_bacc;      /* classification: balanced accuracy; NaN otherwise */
    double val_f1;        /* classification: macro-F1; NaN otherwise */
    double lr;            /* LR of the epoch's last step */
    double grad_norm;     /* global L2 norm of the gradient, mean over the epoch's steps */
    int n_groups;
    double group_grad_norm[NS_MAX_GROUPS]; /* the same per layer */
    double seconds;       /* wall time of the epoch (training + validation) */
    double samples_per_s; /* training rows per second of training time */
    int improved;         /* this epoch set a new best validation metric */
    int diverged;         /* training stopped as diverged in this epoch: NS_DIV_* below */
    int stopped_early;    /* early stopping (patience) ended the run after this epoch */
} ns_epoch_record;

/* Why a run was stopped as diverged (ns_epoch_record.diverged; 0: it was not). */
enum { NS_DIV_LOSS = 1, NS_DIV_GRAD = 2, NS_DIV_BLOWUP = 3 };

/* Called after every epoch; return nonzero to stop training (e.g. on a signal). */
typedef int (*ns_epoch_fn)(void *user, const ns_epoch_record *rec);

/* Sums over the steps of the epoch in progress; kept in the trainer (and the checkpoint)
 * so an epoch interrupted mid-way ends with the same record as an unbroken one. */
typedef struct ns_epoch_sums {
    long steps, rows;
    double loss, weight, norm;
    double group_norm[NS_MAX_GROUPS];
    double seconds;       /* training time spent in this epoch so far */
    double lr;            /* LR of the last step */
} ns_epoch_sums;

/* The state of one run; everything needed to continue it bit for bit. */
typedef struct ns_trainer {
    ns_train_spec spec;
    ns_backend *be;
    ns_net *net;
    const ns_dataset *train, *val; /* already standardised; val may be NULL */
    float t_std;          /* regression: target scale for RMSE in original units [1] */
    uint64_t tag;         /* caller's identity of the run (e.g. config hash); a checkpoint
                             with another tag is refused [0] */
    ns_optim opt;
    ns_sched sched;
    ns_rng rng;
    long steps_per_epoch;
    long total_steps;     /* horizon for progress-based schedules (0 for seconds budgets) */
    int epoch;            /* epochs completed */
    long step;            /* optimizer steps completed */
    double elapsed;       /* training seconds so far (for seconds budgets) */
    double best_metric;   /* best validation metric so far (lower is better internally) */
    int best_epoch;
    int bad_epochs;
    int stopped_early;
    int interrupted;      /* the last ns_trainer_run returned because *stop was set */
    int32_t *eval_pred;   /* NULL, or room for the rows of the next classification
                             evaluation: ns_trainer_evaluate writes each row's predicted
                             class (argmax) there [NULL] */
    const ns_stop_flag *stop; /* caller's flag (e.g. set by a signal handler); polled before
                                 every step; NULL: never */
    int in_epoch;         /* the epoch in progress has drawn its row order */
    long epoch_step;      /* steps done in the epoch in progress (0 between epochs) */
    ns_rng epoch_rng;     /* the stream as it was when the epoch in progress began: it
                             regenerates the epoch's row order on resume */
    ns_epoch_sums sums;   /* of the epoch in progress */
    /* divergence watch (spec.div_factor): the per-step loss's EMA, not debiased */
    double div_ema;
    int64_t div_n;        /* steps in div_ema */
    double div_best;      /* lowest debiased EMA since the warm-up */
    double div_start;     /* debiased EMA at the end of the warm-up */
    float *best_params;   /* device (n_params): weights at best_epoch (early stopping) */
    /* scratch */
    int32_t *order;       /* (train->n) row order of the current epoch */
    float *xb;            /* device (max_batch, d) */
    int32_t *yb;          /* device (max_batch) */
    float *tb;            /* device (max_batch) */
    int batch_borrowed;   /* xb, yb, tb are a trainer array's (ns_trainer_borrow_batch) */
    /* A step's scalars, left on the device by the step and read back at once: the loss's
     * NS_RES_LOSS_N (backend.h), then each parameter group's gradient sum of squares */
    double *res;          /* device (ns_trainer_step_slots) */
    double *res_host;     /* host, the same */
    int res_borrowed;     /* res and res_host are a trainer array's */
    double step_lr;       /* LR of the step in flight */
    /* Where batches are gathered from: the training and validation rows on the backend.
     * The datasets' own arrays on a host backend; on a device, uploaded once when the run
     * first needs them (owned) or lent by another run on the same rows (a trainer array),
     * so that a step moves no rows between host and device, only each epoch's order. */
    int dev_ready;
    int dev_owned;        /* the dev_ rows below were uploaded by this trainer */
    const float *dev_x, *dev_t, *dev_vx, *dev_vt;
    const int32_t *dev_y, *dev_vy;
    int32_t *dev_order;   /* (train->n) the epoch's row order where the gathers read it */
    float *host_x;        /* host staging (max_batch, d) when the backend is not host */
    int32_t *host_y;
    float *host_t;
} ns_trainer;

/* Prepares a run: optimizer state, schedule, RNG from spec->seed. net->params must
 * already hold the initial weights. Returns NS_OK or sets *err. */
int ns_trainer_init(ns_trainer *tr, const ns_train_spec *spec, ns_backend *be, ns_net *net,
                    const ns_dataset *train, const ns_dataset *val, ns_err *err);
/* Trains until the budget is spent, early stopping fires, fn returns nonzero, or *stop is
 * set (then tr->interrupted = 1 and the run stops between two steps, mid-epoch if need be;
 * a checkpoint taken then continues it exactly). max_epochs_now > 0 stops after that many
 * more epochs; the run can be continued by calling ns_trainer_run again.
 * On early stopping the best weights are restored into net->params. */
int ns_trainer_run(ns_trainer *tr, int max_epochs_now, ns_epoch_fn fn, void *user, ns_err *err);
/* Nonzero when the budget is spent or early stopping fired. */
int ns_trainer_done(const ns_trainer *tr);
/* Evaluates net on ds (no dropout): loss, accuracy or RMSE, and for classification the
 * balanced accuracy and macro-F1 into bacc and f1 when they are not NULL (NaN otherwise). */
int ns_trainer_evaluate(ns_trainer *tr, const ns_dataset *ds, double *loss, double *acc,
                        double *rmse, double *bacc, double *f1, ns_err *err);
void ns_trainer_free(ns_trainer *tr);

/* Checkpoint: parameters, best parameters, optimizer moments, schedule, RNG, counters.
 * Written atomically (temporary file, fsync, rename) with a CRC-32 over the contents.
 * Loading checks the magic, version, shapes and checksum, then that the counters describe
 * a run this trainer can continue (position within the epoch, early-stopping counters,
 * sums, nothing after the optimizer state); NS_EINPUT on any mismatch. After a failed
 * load *tr is partly overwritten: free it (or init it again), do not run it. */
int ns_trainer_save(const ns_trainer *tr, const char *path, ns_err *err);
int ns_trainer_load(ns_trainer *tr, const char *path, ns_err *err);
/* The epochs completed when the checkpoint at path was written (the whole file's checksum
 * and its header are checked; whether it belongs to a run is ns_trainer_load's check).
 * NS_EINPUT when path is not an intact checkpoint of this version (truncated, damaged, not
 * a file), NS_ERUNTIME when it cannot be read. */
int ns_checkpoint_epoch(const char *path, int *epoch, ns_err *err);

#endif
