/* driver_impl.h — internal to search/stages/driver.c (the pool, trials, study),
 * search/stages/stages.c (what each stage runs and decides) and the files beside them: the
 * search state they share and the calls between them. Not a public header: the CLI includes driver.h. */
#ifndef NS_DRIVER_IMPL_H
#define NS_DRIVER_IMPL_H

#include "engine/jsonbuf.h"
#include "search/bo/bo.h"
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

/* search.array: auto's array size when trials train on a GPU (the trials of one shape that
 * a worker trains together). Not yet measured on a GPU: scripts/gpu-check's 32-trial table
 * is the measurement that should set it. */
#define NS_ARRAY_AUTO_GPU 32

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
    long done, total, run;     /* total: of the stages with a planned count */
    int open_ended;            /* a bayes stage runs until the budget ends */
    long best_trial;
    double best;
    int best_healthy;          /* the best so far has no disqualifying finding */
    int running;               /* trials training now */
    const ns_stage_cfg *stage; /* the running stage (progress events) ... */
    const char *stage_name;
    long stage_planned, stage_done0; /* ... its planned trials (-1: until its budget share),
                                  s->done when it started */
    double stage_stop_at;      /* monotonic time it starts no more trials; INFINITY: none */
    /* the running round's pruning reference (bayes): prune_at[e - 1] at epoch e; NULL: no
     * pruning */
    ns_prune_ref *prune_at;
    long prune_epochs, prune_min;
    ns_folds folds;            /* cross-validation's parts; n == 0: trials validate on data.val */
    uint64_t fold_seed;        /* the seed the folds were drawn from (ns_prepare_folds) */
    double budget;             /* seconds for this run of the study; 0: none */
    double t_start;            /* monotonic time the run started */
    double *race_ref;          /* (folds.n) the round's incumbent per fold; NULL: no racing */
    ns_bo_cache *bo_cache;     /* what a bayes round's proposals share (bo.h); NULL: none yet */
    struct ns_bayes_round *bayes_round; /* the running bayes round's observations; NULL: none */
} ns_search;

/* A plan holds each key once (ns_plan_set), so room for every key of the config means a
 * plan never runs out of it. */
#define NS_PLAN_MAX_SETTINGS NS_CONFIG_MAX_KEYS

/* compare: the leader is separated from the runner-up when Welch's p is below this;
 * otherwise the short-list is handed on as searched choices. */
#define NS_COMPARE_ALPHA 0.05

/* The most trials a bayes stage without trials: runs before the study budget ends it. */
#define NS_BAYES_BUDGET_TRIALS 100000
_Static_assert(NS_BAYES_BUDGET_TRIALS <= NS_MAX_STAGE_TRIALS, "trial numbers must fit in an int");

/* Shares of search.budget (docs/config.md, "The study budget"): the stages before the first
 * bayes stage start trials until this share has passed; bayes stages until all but the
 * reserve for what follows them (select's re-scoring and refit, or the final stage's
 * training) has passed; later stages until the budget ends. */
#define NS_BUDGET_EARLY_SHARE 0.25
#define NS_BUDGET_LATE_RESERVE 0.10

/* How one trial of a stage differs from the base config. */
#define NS_PLAN_MAX_DIMS 64    /* searched keys a bayes stage handles */

typedef struct ns_trial_plan {
    int midpoint;              /* 1: the searched keys at the middle of their ranges (u = 0.5)
                                  instead of a random point */
    int has_point;             /* 1: point holds the trial's place in the unit cube (bayes) */
    double point[NS_PLAN_MAX_DIMS];
    int own_budget;            /* 1: keep the config's train: budget (final stage) */
    int n_set;
    ns_setting set[NS_PLAN_MAX_SETTINGS]; /* each key once */
    char value[NS_PLAN_MAX_SETTINGS][64]; /* storage of set[].value */
    const char *bad;           /* a key whose value the plan could not hold; ns_stage_plan
                                  then fails rather than plan without it */
} ns_trial_plan;

/* Sets key = printf(fmt, ...) in p; a key set before takes the new value in its place
 * (applying a key twice is applying its last value). A value over 63 characters, or a
 * key past NS_PLAN_MAX_SETTINGS, is not dropped: it marks p->bad. */
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
/* The standard error of the metric pruning compares (the study metric) at value v on the
 * study's validation rows: ns_score_se (stats.h) with s->data.val.n rows, or for balanced
 * accuracy and macro-F1 the rows a per-class score is as sure as (K^2 / sum_c 1/n_c over
 * the K classes present); 0 when it cannot be known (no rows).
 * The one place pruning learns how noisy a score is. */
double ns_stage_prune_se(const ns_search *s, double v);
/* Runs lr_range trial n of stage st from its config file: the sweep, its curve written to
 * trials/<n>/lr_curve.csv; *result (caller frees) is the trial's result JSON. A stop
 * request ends the sweep: *interrupted = 1, no result and no curve (it runs again).
 * Returns NS_OK or the trial's own error (a failed trial, not a failed search). */
int ns_stage_run_lrfind(ns_search *s, const ns_stage_cfg *st, long n, const ns_config *tc,
                     char **result, int *interrupted, ns_err *err);
/* The decision of the stage whose trials are first..first+count-1, all final: JSON text
 * (caller frees) with its evidence. NS_ERUNTIME on a store failure. */
int ns_stage_decide(ns_search *s, const ns_stage_cfg *st, long first, long count, char **decision,
                 ns_err *err);
/* The LR family (NS_FAM_SGD or NS_FAM_ADAPTIVE) of optimizer opt, and a family's name in
 * decisions ("sgd", "adaptive"). */
int ns_lr_family(int opt);
const char *ns_lr_family_name(int f);
/* The LR scale factor from the reference batch ref to batch b: linear for SGD, square root
 * for adaptive optimizers (scaling NS_SCALE_AUTO), else as scaling says. */
double ns_lr_scale(int scaling, int opt, int b, int ref);

/* ---- absorb.c ---------------------------------------------------------------------------- */

/* Takes a completed stage's decision (freshly made, or read back on resume) into s->dec,
 * and narrows a searched train.lr to what the range test found. */
void ns_stage_absorb(ns_search *s, const ns_stage_cfg *st, const char *decision);

/* Fills s->ref_*: the reference point is every searched key at the middle of its range
 * (u = 0.5), where the stages' trials start; the base config's values when the midpoint
 * breaks a rule. */
void ns_stage_reference(ns_search *s);

/* a is a better metric than b in the study's direction (a non-finite a never is). */
int ns_search_better(const ns_search *s, double a, double b);

/* Monotonic seconds (budgets and trial times). */
double ns_now_s(void);

/* r's value of the study metric. */
double ns_search_metric_of(const ns_search *s, const ns_run_result *r);

/* ---- resample.c ------------------------------------------------------------------------- */

/* A cross-validated trial: per fold its metric and chosen epoch, their mean and standard
 * error (sd / sqrt(folds run)), and the mean learning curve over the folds. */
typedef struct ns_cv_result {
    int n_folds, done;         /* folds in the study, folds run */
    double *metric;            /* (n_folds) the study metric per fold; [0, done) set */
    int *best_epoch;           /* (n_folds) the epoch each fold kept */
    double mean, se;           /* over the folds run; se NaN below 2 */
    int raced;                 /* racing stopped it after `done` folds */
    ns_epoch_record *curve;    /* (n_curve) per epoch, the mean over the folds that reached it */
    int n_curve;
    /* classification: each row's predicted class by the fold that held it out, over the
     * first repeat's folds in order (the same rows in the same order for every trial of
     * the study); NULL unless every fold of that repeat ran */
    int32_t *pred;
    long n_pred;
} ns_cv_result;

/* Trains tc on every fold of fo (s->folds, or a re-scoring repeat's) in order (no
 * checkpoints: an interrupted trial runs its folds again, to the same bits) and fills *out
 * and *res (validation figures: means over the folds run; best_epoch: the folds' median;
 * diverged when a fold diverged, which ends the trial). race != 0: stops after a fold when ns_race_should_stop says so.
 * res->interrupted when the stop flag ended a fold. NS_OK, or a fold's error with *err
 * (a failed trial); *out is freed on error. */
int ns_cv_run(ns_search *s, const ns_folds *fo, const ns_config *tc, int race, ns_cv_result *out,
              ns_run_result *res, ns_err *err);
void ns_cv_result_free(ns_cv_result *r);
/* The mean of metric[0..n) and its standard error sd / sqrt(n) (sample sd; NaN below 2):
 * a cross-validated trial's figures, also after re-scoring adds folds. */
void ns_fold_mean_se(const double *metric, int n, double *mean, double *se);
/* Racing for the round of stage st starting at trial round_first (random and bayes stages
 * whose prune rule is not none, under cross-validation): the incumbent is the best
 * complete, healthy trial of a search stage before the round with all folds; NULL when
 * there is none. ns_race_end drops it. */
int ns_race_begin(ns_search *s, const ns_stage_cfg *st, long round_first, ns_err *err);
void ns_race_end(ns_search *s);
/* Whether a trial with metric[0..done) on the first folds stops: at least 2 folds, not all
 * of them, and the upper end of the 95% confidence interval (Student's t) of its paired
 * per-fold difference to the incumbent below 0 (worse in the study's direction). */
int ns_race_should_stop(const ns_search *s, const double *metric, int done);

/* The final model of a cross-validated trial (search.final): its config refit on every
 * training row for the epochs its folds chose (the median best epoch), written to
 * trials/<n>/refit.yaml, or its fold ensemble, written to trials/<n>/ensemble.yaml (the
 * config with model.ensemble: K and the study's fold seed: the members are the trial's own
 * fold models of the first repeat). Either file is what export hands out; it is trained
 * from that file as `nnsearch train` trains it (trials/<n>/refit.nsm or ensemble.nsm),
 * then scored once on the test set. */
typedef struct ns_final_result {
    int done;
    int ensemble;              /* 1: the fold ensemble; 0: the refit */
    int offsets;               /* 1: a holdout winner's own config with its decision offsets */
    int members;               /* the ensemble's members */
    long epochs;               /* the refit's epoch budget (0 for a steps budget); the
                                  members' (the config's) for an ensemble */
    int diverged;
    double test_loss, test_acc, test_rmse, test_bacc, test_f1; /* NaN without a test set */
} ns_final_result;

/* ---- offsets.c: the winner's decision offsets (search/stages/offsets.h) ---------------- */

typedef struct ns_offsets_result {
    int fitted;                /* fitted on held-out rows (the offsets may all be 0) */
    int nonzero;               /* some offset is not 0: the final model carries them */
    int interrupted;           /* a stop request ended the folds' training: nothing fitted */
    int K;
    float o[NS_MAX_DECISION_CLASSES];
    long rows;                 /* the held-out rows they were fitted on */
    double before, after;      /* the study metric on them at 0 and at o */
    char skipped[200];         /* why none were fitted ("" when fitted) */
} ns_offsets_result;

/* Whether select fits offsets to s's winner: search.decision_offsets auto and a study of
 * classes ranked by val_macro_f1 or val_balanced_acc (the metrics argmax does not serve). */
int ns_offsets_applies(const ns_search *s);
/* Fits trial n's offsets (ns_offsets_fit) to its held-out outputs: under holdout its own
 * model's on the validation split; under cross-validation its config's on each fold of
 * the first repeat, trained again (what its folds cost). Not fitted (out->skipped says
 * why) when a class has fewer than NS_OFFSETS_MIN_ROWS held-out rows, a fold diverges or
 * there are more than NS_MAX_DECISION_CLASSES classes. NS_OK, or an I/O or memory error. */
int ns_winner_offsets(ns_search *s, int n, ns_offsets_result *out, ns_err *err);
/* The decision's part about them: ,"decision_offsets":{"values":[...],"applied":true|false
 * (the final model carries them: some offset is not 0),"rows":N,
 * "held_out":"folds"|"validation","<metric>_before":x,"<metric>_after":y} or {"skipped":".."} */
void ns_offsets_json(ns_jbuf *j, const ns_search *s, const ns_offsets_result *o);

/* ---- estimate.c: the winner's expected score on new data (search/stages/estimate.h) ---- */

typedef struct ns_estimate_result {
    int done;                  /* estimated (else skipped says why) */
    int rescored;              /* a holdout winner's re-scored figure, not resampled */
    double value;              /* the estimate */
    double measured;           /* the winner's own score on the rows the estimate is of (its
                                  held-out rows pooled; re-scored: its validation split) */
    int candidates, bootstraps;
    long rows;                 /* the held-out rows resampled (re-scored: all rows) */
    char skipped[200];
} ns_estimate_result;

/* The estimate (ns_bbc_estimate) for a study whose candidates are trials[0..T), the
 * winner first, from their stored predictions of the held-out rows (every fold of the
 * first repeat under cross-validation, else the validation split). Skipped (out->skipped)
 * for a metric that is not accuracy, balanced accuracy or macro-F1, or when a candidate
 * has no stored predictions. NS_OK, or a store or memory error. */
int ns_winner_estimate(ns_search *s, const int *trials, int T, ns_estimate_result *out, ns_err *err);
/* The decision's part: ,"estimate":{"<metric>":x,"measured":y,"method":"bootstrap
 * bias-corrected","candidates":T,"bootstraps":B,"rows":N,"held_out":"folds"|"validation"},
 * for a re-scored holdout winner {"<metric>":x,"measured":y,"method":"re-scored",
 * "candidates":T,"rows":N,"held_out":"re-scoring folds"}, or {"skipped":".."}. Both are of
 * the winner deciding by its largest output: decision offsets are not in them. */
void ns_estimate_json(ns_jbuf *j, const ns_search *s, const ns_estimate_result *e);

/* Whether search.final (auto) makes s's cross-validated winner a fold ensemble. */
int ns_final_is_ensemble(const ns_search *s);
/* Trial n's final model (its result JSON `result` gives best_epoch), carrying the decision
 * offsets off when off->nonzero (off may be NULL). Under holdout there is a final model
 * only with offsets: trial n's own config with them, trained as the trial was, to
 * trials/<n>/offsets.yaml and offsets.nsm. A plateau schedule needs validation: its refit
 * keeps the config's split. A stop request ends its training: NS_OK with out->done 0 and
 * no model file (the driver then records no decision, and the resumed study trains it
 * again). NS_OK, or a config/training error. */
int ns_final_model(ns_search *s, int n, const char *result, const ns_offsets_result *off,
                   ns_final_result *out, ns_err *err);
/* The decision's part about it: ,"final":"refit"|"ensemble"|"offsets","<kind>":{...} */
void ns_final_json(ns_jbuf *j, int n, const ns_final_result *f);


/* ---- remote.c: trials on the worker ranks of an MPI run ---------------------------------- */

/* Rank 0, before the study is opened: sends every worker the config (its text and absolute
 * path), the study metric and opts->parallel (trials at once per worker), and waits for
 * each to answer with its version, its host and a hash of its prepared data. A worker of
 * another build, or one that cannot read the data or reads other data, refuses the whole
 * run: NS_EINPUT naming the rank and host (every worker is told to quit). */
int ns_remote_start(ns_search *s, ns_err *err);
/* Rank 0, from pool slot `slot`: trains trial n on its worker (rank 1 + slot / parallel).
 * Sends the trial's config file and its checkpoint (if any); every epoch record that comes
 * back goes to fn(user, rec) (record_epoch: stored, and the pruning verdict sent back);
 * checkpoints that come back replace `ckpt`, the final model `model`. *trc, *terr, *res
 * and (use_cv) *cv are what local training would have returned (cv caller frees). NS_OK,
 * or a failure of the transport or of writing those files (the study stops). */
int ns_remote_trial(ns_search *s, int slot, long n, const char *cfg_path, const char *ckpt,
                    const char *model, int use_cv, int race, ns_epoch_fn fn, void *user,
                    ns_cv_result *cv, ns_run_result *res, int *trc, ns_err *terr, ns_err *err);

/* driver.c, for a worker rank: s->base parsed and s->opts, s->metric and s->higher set;
 * prepares the data and the folds exactly as ns_search_run does (NS_EINPUT: the data
 * cannot be read here). ns_search_free frees what either made. */
int ns_search_prepare_worker(ns_search *s, ns_err *err);
void ns_search_free(ns_search *s);
/* A trial state that never runs again. */
int ns_trial_is_final(ns_trial_state st);
/* dir/trials/<n>/<file> into out. */
void ns_trial_path(const ns_search *s, long n, const char *file, char *out, size_t cap);
/* Sends ev to the caller's progress callback with the study's counts filled in; nothing
 * when quiet or without a callback. From the pool: under the store lock. */
void ns_search_emit(ns_search *s, ns_progress *ev);
/* A line of progress: a NOTE event (without its newline) to the callback, or the line on
 * opts->progress. */
void ns_search_progress(ns_search *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- trial.c: one trial's life ------------------------------------------------------------ */

/* Runs trials nums[0..count) of stage st (handed to the worker behind pool slot `slot`) and
 * records them: those that share a shape key (ns_run_shape_key) train together as one
 * array, the others alone. Returns NS_OK unless the study itself could not be written. */
int ns_run_trials(ns_search *s, const ns_stage_cfg *st, const long *nums, int count, int slot,
                  ns_err *err);

#endif
