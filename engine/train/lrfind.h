/* lrfind.h — the LR range test (Smith 2015, fastai's lr_find): one short training whose
 * learning rate grows exponentially every batch, the debiased-EMA-smoothed loss of each
 * step, and the learning rates suggested by that curve. Like train.h it sees a network only
 * through ns_net. Not a stage: choosing seeds and recording results is the search layer's. */
#ifndef NS_LRFIND_H
#define NS_LRFIND_H

#include <stdint.h>

#include "engine/data/data.h"
#include "engine/train/optim.h"
#include "engine/train/train.h"

typedef struct ns_lrfind_spec {
    double lr_start;    /* LR of the first step [1e-7], > 0 */
    double lr_end;      /* LR of the last step [10], > lr_start */
    int steps;          /* steps of a full sweep [200], >= NS_LRFIND_MIN_STEPS */
    double beta;        /* EMA factor of the smoothed loss [0.98], in [0, 1) */
    double stop_factor; /* stop once smoothed > stop_factor x its minimum [4]; <= 0: only a
                           non-finite loss stops the sweep */
    int batch_size;     /* rows per step, >= 1 and <= net->max_batch; more rows than the
                           training set has are clamped to them [128] */
    const ns_stop_flag *stop; /* polled before every step; when raised the sweep ends with
                                 interrupted set [NULL: never] */
} ns_lrfind_spec;

#define NS_LRFIND_MIN_STEPS 10
/* The stop_factor rule is not applied before this many steps: the first smoothed values
 * average only a step or two and a lucky first batch would set a minimum no later batch
 * reaches. */
#define NS_LRFIND_STOP_WARMUP 5

void ns_lrfind_spec_default(ns_lrfind_spec *s);

typedef struct ns_lrfind_curve {
    int n;            /* recorded steps, 0..spec.steps */
    double *lr;       /* (n) lr[i] = start * (end / start)^(i / (steps - 1)) */
    double *loss;     /* (n) mean training loss of step i's batch, before its update */
    double *smoothed; /* (n) debiased EMA of loss[0..i] */
    /* one buffer: lr owns it, loss and smoothed point into it */
    int blew_up;      /* the sweep was stopped by the stop_factor or non-finite rule */
    int interrupted;  /* spec.stop ended it: a partial curve, to be run again */
} ns_lrfind_curve;

/* Runs the sweep on net (net->params hold the initial weights; they are left modified: the
 * caller discards the model, nothing of it is meant to be carried into later trials).
 * Step i draws batch_size rows from a row order shuffled with an ns_rng seeded from seed
 * (a pass's order is drawn again when too few rows remain for a whole batch, so every batch
 * has the same size), zeroes the gradients, runs net->batch(training = 1) with a dropout
 * seed from the same stream, records (lr_i, loss_i, smoothed_i) and takes one optimizer
 * step with lr_i from state made fresh for this call (ns_optim_init). The sweep stops after
 * recording a step whose smoothed loss exceeds stop_factor x the lowest smoothed loss so
 * far (from step NS_LRFIND_STOP_WARMUP on; that step is recorded, its update not taken), or
 * at a non-finite loss (that step is NOT recorded, so every recorded value is finite);
 * both set blew_up. Same (spec, net weights, opt, train, seed): same curve, bit for bit.
 * Fills *out (caller frees with ns_lrfind_curve_free; zeroed on error). NS_EINPUT for a bad
 * spec or an empty training set, NS_ERUNTIME when out of memory or the network fails. */
int ns_lrfind_run(const ns_lrfind_spec *spec, ns_backend *be, ns_net *net,
                  const ns_optim_spec *opt, const ns_dataset *train, uint64_t seed,
                  ns_lrfind_curve *out, ns_err *err);
void ns_lrfind_curve_free(ns_lrfind_curve *c);

/* How a suggestion becomes the LR handed on. The default is NS_LR_VALLEY: measured against
 * the best LR of a grid of 25 short trainings (tests/test_lrfind.c, numbers in
 * docs/config.md), the median of 3 seeds' valleys was within 2.7x of it for SGD (momentum
 * 0.9) and Adam in every trial, while min10 was 3.6 to 6.9x too high for Adam and steepest
 * was thrown off by seeds whose noisy plateau looked steepest (picks near 1e-6). */
typedef enum ns_lr_rule { NS_LR_VALLEY = 0, NS_LR_STEEPEST, NS_LR_MIN10 } ns_lr_rule;
#define NS_LR_RULE_DEFAULT NS_LR_VALLEY

typedef struct ns_lrfind_suggestion {
    double steepest;    /* LR of the most negative d smoothed / d log(lr) */
    double valley;      /* LR 3/4 of the way along the longest valley (see lrfind.c) */
    double min10;       /* min_loss_lr / 10 */
    double min_loss_lr; /* LR of the lowest smoothed loss */
    int ok;             /* the curve had enough usable points; otherwise the LRs are NaN */
} ns_lrfind_suggestion;

/* The three suggestions from c's smoothed loss against log(lr). Pure. Usable points: the
 * first n/10 are skipped (the EMA still remembers the initial loss there) and, when the
 * sweep blew up, the last 5 (the blow-up itself), as fastai does. Fewer than 5 usable
 * points: s->ok = 0, the LRs NaN, and NS_EINPUT is returned; else NS_OK. */
int ns_lrfind_suggest(const ns_lrfind_curve *c, ns_lrfind_suggestion *s);
/* The suggestion that rule names (NaN when !s->ok). */
double ns_lrfind_pick(const ns_lrfind_suggestion *s, ns_lr_rule rule);
const char *ns_lr_rule_name(ns_lr_rule r); /* "valley", "steepest", "min10" */
/* Rule of a name; -1 when unknown. */
int ns_lr_rule_parse(const char *name, ns_lr_rule *r);

/* The LR bounds handed to later stages, from the picks of n seeds (non-finite or
 * non-positive picks are ignored):
 *   centre = the median pick (for an even count the geometric mean of the two middle ones):
 *            one seed that went astray does not move it;
 *   spread = max pick / min pick (1 for one seed): how much the seeds disagree;
 *   lo = min pick / NS_LRFIND_MARGIN, hi = max pick * NS_LRFIND_MARGIN.
 * The margin is the accuracy the suggestion is tested to (within 3x of the best LR of a
 * grid of short trainings), so [lo, hi] holds the best LR whenever every seed's pick is
 * that close, and widens by exactly the spread when seeds disagree. No usable pick: all
 * four are NaN. */
#define NS_LRFIND_MARGIN 3.0
void ns_lrfind_bounds(const double *picks, int n, double *centre, double *lo, double *hi,
                      double *spread); /* also all NaN when out of memory */

#endif
