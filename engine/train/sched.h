/* sched.h — learning-rate schedules: constant, step, exponential, cosine with linear
 * warm-up, one-cycle, reduce-on-plateau. A schedule maps (progress, epoch) to a
 * multiplier of the base LR; only reduce-on-plateau keeps state (fed once per epoch). */
#ifndef NS_SCHED_H
#define NS_SCHED_H

typedef enum ns_sched_kind {
    NS_SCHED_CONSTANT = 0,
    NS_SCHED_STEP,     /* lr = base * gamma^floor(epoch / step_size) */
    NS_SCHED_EXP,      /* lr = base * gamma^epoch */
    NS_SCHED_COSINE,   /* linear warm-up over the first `warmup` of progress from
                          base * warmup_start, then cosine from base to min_lr at the end */
    NS_SCHED_ONECYCLE, /* torch OneCycleLR (cos, two phases): base / div up to base over
                          pct_start of progress, then down to base / (div * final_div) */
    NS_SCHED_PLATEAU,  /* lr *= factor when val loss has not improved by threshold
                          (relative) for patience epochs; never below min_lr */
} ns_sched_kind;

typedef struct ns_sched_spec {
    ns_sched_kind kind;
    int step_size;        /* step [10] epochs */
    double gamma;         /* step [0.1], exp [0.95] */
    double warmup;        /* cosine: share of training [0.05] */
    double warmup_start;  /* cosine: first warm-up LR as a share of base [0] */
    double min_lr;        /* cosine final LR, plateau floor [0] */
    double pct_start;     /* one-cycle [0.3] */
    double div;           /* one-cycle [25] */
    double final_div;     /* one-cycle [1e4] */
    double factor;        /* plateau [0.1] */
    int patience;         /* plateau [5] epochs */
    double threshold;     /* plateau, relative improvement [1e-4] */
} ns_sched_spec;

void ns_sched_spec_default(ns_sched_spec *s, ns_sched_kind kind);
const char *ns_sched_kind_name(ns_sched_kind k);

typedef struct ns_sched {
    ns_sched_spec spec;
    double base_lr;
    /* reduce-on-plateau state */
    double plateau_mult; /* current multiplier [1] */
    double best;         /* best val loss seen [+inf] */
    int bad_epochs;
} ns_sched;

void ns_sched_init(ns_sched *s, const ns_sched_spec *spec, double base_lr);
/* LR for the step at `progress` in [0, 1] (share of the budget done before this step)
 * during epoch `epoch` (0-based). Pure for every kind. */
double ns_sched_lr(const ns_sched *s, double progress, int epoch);
/* Called after each epoch with the validation loss (plateau bookkeeping; no-op otherwise). */
void ns_sched_epoch_end(ns_sched *s, double val_loss);

#endif
