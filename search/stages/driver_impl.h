/* driver_impl.h — internal to search/stages/driver.c (the pool, trials, study) and
 * search/stages/stages.c (what each stage runs and decides): the search state they share and the
 * calls between them. Not a public header: the CLI includes driver.h. */
#ifndef NS_DRIVER_IMPL_H
#define NS_DRIVER_IMPL_H

#include "search/config/config.h"
#include "search/stages/driver.h"
#include "search/stages/pipeline.h"
#include "search/study/store.h"

/* LR families: optimizers whose good learning rates are of one order. SGD's are one to
 * three orders above the adaptive optimizers' (Adam, AdamW, RMSprop), so the range test
 * runs once per family the later stages need. */
enum { NS_FAM_SGD = 0, NS_FAM_ADAPTIVE = 1, NS_N_FAMILIES = 2 };

/* What the completed stages decided, as later stages use it. */
typedef struct ns_decisions {
    int have_lr[NS_N_FAMILIES];
    double lr[NS_N_FAMILIES], lr_lo[NS_N_FAMILIES], lr_hi[NS_N_FAMILIES]; /* lr_range */
    int batch;                 /* batch_sweep's size; 0: none yet */
    int batch_ref;             /* the batch size the LRs were measured at */
    int scaling;               /* ns_lr_scaling the sweep used (resolved, not auto) */
    int have_pair;             /* compare's leader */
    int opt, sched;            /* ns_opt_kind, ns_sched_kind of the leader */
    long final_trial;          /* the final stage's trial; -1: none */
} ns_decisions;

/* The running round's pruning reference at one epoch (bayes), from the stage's trials final
 * before the round, so that a verdict depends on stored results only. A trial whose metric
 * m at the epoch is worse than bar by more than NS_PRUNE_NOISE_SE x bar_se, and worse than
 * incumbent by more than NS_PRUNE_NOISE_SE x se, is stopped: one that chance alone could
 * put behind the median (or the best) is not hopeless. Each standard error is that of the
 * compared metric at the value (ns_stage_prune_se), an explicit field so that another
 * estimate (the spread over folds) can take its place. */
typedef struct ns_prune_ref {
    double bar;                /* the median, or asha's top-1/reduction quantile at a rung;
                                  NaN: no verdict at this epoch */
    double bar_se;             /* its standard error; 0: no allowance */
    double incumbent;          /* the best reference value at the epoch */
    double se;                 /* its standard error; 0: no allowance */
} ns_prune_ref;

/* Standard errors of the bar and of the incumbent within which a trial is never pruned. */
#define NS_PRUNE_NOISE_SE 1.0

typedef struct ns_search {
    const ns_search_opts *opts;
    ns_config base;
    ns_prepared data;
    ns_store *store;
    char dir[4096];
    ns_metric metric;
    int higher;                /* higher metric is better */
    ns_decisions dec;
    int ref_opt, ref_batch;    /* the reference point's optimizer and batch size ... */
    double ref_lr;             /* ... and LR (stage_reference) */
    /* progress, under the store lock */
    long done, total, run;
    long best_trial;
    double best;
    int best_healthy;          /* the best so far has no disqualifying finding */
    /* the running round's pruning reference (bayes): prune_at[e - 1] at epoch e; NULL: no
     * pruning */
    ns_prune_ref *prune_at;
    long prune_epochs, prune_min;
} ns_search;

#define NS_PLAN_MAX_SETTINGS 16

/* How one trial of a stage differs from the base config. */
#define NS_PLAN_MAX_DIMS 64    /* searched keys a bayes stage handles */

typedef struct ns_trial_plan {
    int midpoint;              /* 1: the searched keys at the middle of their ranges (u = 0.5)
                                  instead of a random point */
    int has_point;             /* 1: point holds the trial's place in the unit cube (bayes) */
    double point[NS_PLAN_MAX_DIMS];
    int own_budget;            /* 1: keep the config's train: budget (final stage) */
    int n_set;
    ns_setting set[NS_PLAN_MAX_SETTINGS];
    char value[NS_PLAN_MAX_SETTINGS][64]; /* storage of set[].value */
} ns_trial_plan;

/* Adds key = printf(fmt, ...) to p (ignored past NS_PLAN_MAX_SETTINGS, which no stage reaches). */
void ns_plan_set(ns_trial_plan *p, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- stages.c --------------------------------------------------------------------------- */

/* The number of trials stage st runs (random: st->trials; the others from their options,
 * the data and the later stages of the pipeline). */
long ns_stage_trial_count(const ns_search *s, const ns_stage_cfg *st);
/* The plan of trial i (0-based; the stage's first trial is number first) of stage st,
 * from st, the decisions so far and (bayes) the trials final before the round. NS_OK, or
 * NS_ERUNTIME with *err (a store or GP failure). */
int ns_stage_plan(ns_search *s, const ns_stage_cfg *st, long first, long i, ns_trial_plan *p, ns_err *err);
/* Before a round (trials round_first.. of the stage starting at first): sets the pruning
 * reference of a pruning bayes stage; stage_round_end drops it. */
int ns_stage_round_begin(ns_search *s, const ns_stage_cfg *st, long first, long round_first, ns_err *err);
void ns_stage_round_end(ns_search *s);
/* Whether the running trial that just recorded rec is to stop (bayes, median or asha rule,
 * within the noise allowance of ns_prune_ref). Called from the pool's threads: reads only
 * the round's fixed reference. */
int ns_stage_should_prune(const ns_search *s, const ns_epoch_record *rec);
/* The standard error of the metric pruning compares (the study metric where epochs record
 * it, val_acc or val_rmse, else the validation loss) at value v on the study's validation
 * rows: ns_score_se (stats.h) with s->data.val.n; 0 when it cannot be known (no rows).
 * The one place pruning learns how noisy a score is. */
double ns_stage_prune_se(const ns_search *s, double v);
/* Runs lr_range trial n of stage st from its config file: the sweep, its curve written to
 * trials/<n>/lr_curve.csv; *result (caller frees) is the trial's result JSON. Returns
 * NS_OK or the trial's own error (a failed trial, not a failed search). */
int ns_stage_run_lrfind(ns_search *s, const ns_stage_cfg *st, long n, const ns_config *tc,
                     char **result, ns_err *err);
/* The decision of the stage whose trials are first..first+count-1, all final: JSON text
 * (caller frees) with its evidence. NS_ERUNTIME on a store failure. */
int ns_stage_decide(ns_search *s, const ns_stage_cfg *st, long first, long count, char **decision,
                 ns_err *err);
/* Takes a completed stage's decision (freshly made, or read back on resume) into s->dec. */
void ns_stage_absorb(ns_search *s, const ns_stage_cfg *st, const char *decision);

/* Fills s->ref_*: the reference point is every searched key at the middle of its range
 * (u = 0.5), where the stages' trials start; the base config's values when the midpoint
 * breaks a rule. */
void ns_stage_reference(ns_search *s);

/* a is a better metric than b in the study's direction (a non-finite a never is). */
int ns_search_better(const ns_search *s, double a, double b);

/* A trial state that never runs again. */
int ns_trial_is_final(ns_trial_state st);

#endif
