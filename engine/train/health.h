/* health.h — the trial detectors: how a run trained, judged from its per-epoch records
 * (divergence, oscillation, overfitting, non-convergence, vanishing/exploding gradients).
 * Pure functions over ns_epoch_record arrays; not the data checks, and it decides nothing:
 * selection and the stages read its findings. */
#ifndef NS_HEALTH_H
#define NS_HEALTH_H

#include <stdarg.h>
#include <stddef.h>

#include "engine/train/train.h"

/* Every threshold of the detectors; defaults in [brackets] (ns_health_spec_default).
 * "Relative" quantities divide by max(|level|, loss_floor) so a loss near zero never
 * divides by zero. Trend detectors (oscillating, loss_spikes, overfitting,
 * not_converged, budget_limited) need at least min_epochs records and are skipped for a
 * diverged run; divergence and gradient detectors run on any n >= 1. */
typedef struct ns_health_spec {
    double loss_floor;    /* smallest level used as a denominator [1e-8] */
    int min_epochs;       /* records needed before trends are judged [6] */
    double smooth;        /* EMA weight of the newest epoch: s = a*L + (1-a)*s [0.3] */
    /* diverged: non-finite loss or gradient, the record's diverged flag (the trainer's
     * per-step watch, train.h), or the smoothed train loss above div_factor x its best so
     * far and above the first epoch's loss (a loss near zero that doubles twice has not
     * diverged; one that climbs back past where it started has) */
    double div_factor;    /* [4] */
    /* oscillating: over the second half of the records, the (population) std of the
     * epoch-to-epoch changes of the train loss (spike epochs left out) or of the
     * validation loss, divided by that loss's mean level there (at least 0.1 x the first
     * epoch's train loss), above osc_rel_std (or that series' noise allowance, below) */
    double osc_rel_std;   /* [0.1] */
    /* loss_spikes: in the second half, a train loss above spike_factor x the running
     * mean (the EMA above) of the epochs before it */
    double spike_factor;  /* [2] */
    /* overfitting: the mean val loss of the `patience` epochs ending at some epoch j,
     * all after the best val epoch b, above val[b] + overfit_rise x max(val[b], 0.1 x the
     * first epoch's train loss), while the mean train loss of the same epochs is below
     * train[b]; overfit_rise is raised to the noise allowance (below) where that is larger */
    int patience;         /* [5] */
    double overfit_rise;  /* [0.1] */
    /* generalisation_gap: at the selected epoch, (val - train) / train above gap_max
     * and val - train above gap_abs_min (so a near-zero train loss alone cannot fire), with
     * val less its noise allowance (below) */
    double gap_max;       /* [2]: val loss three times the train loss */
    double gap_abs_min;   /* [0.1]: in loss units (a run starts near ln K for cross-entropy,
                             near 1 for MSE on standardised targets) */
    /* not_converged: train loss fell by less than min_drop of its first value
     * ((L[0] - L[last]) / L[0] < min_drop; a rise counts too) */
    double min_drop;      /* [0.01] */
    /* not_converged too: the last train loss above baseline_frac x baseline_loss, the loss
     * of the best constant prediction (class-frequency entropy, or the variance of the
     * standardised targets), which the caller computes from the data; NaN: not judged.
     * Judged on any number of epochs. */
    double baseline_loss; /* [NaN] */
    double baseline_frac; /* [0.9] */
    /* budget_limited: over the last tail_share of the epochs (at least one step), the
     * relative train-loss drop above tail_drop, and the val-loss drop too where the
     * validation loss is finite at both ends (a train loss that only memorises is not
     * "limited by the budget") */
    double tail_share;    /* [0.2] */
    double tail_drop;     /* [0.1] */
    /* vanishing / exploding gradients, from the per-layer norms (n_groups >= 2 for the
     * ratio): ratio of the first layer's to the last layer's mean norm over the finite
     * epochs outside [grad_ratio_lo, grad_ratio_hi]; any single global or per-layer norm
     * above grad_abs_max (exploding); a layer's mean norm below grad_abs_min (vanishing;
     * a mean, not one epoch, so a converged run's small late gradients do not fire) */
    double grad_ratio_lo; /* [1e-3] */
    double grad_ratio_hi; /* [1e3] */
    double grad_abs_max;  /* [1e3] */
    double grad_abs_min;  /* [1e-8] */
    /* noise: a loss measured on few rows moves by chance. val_rel_se (train_rel_se) is the
     * standard error of the validation (train) loss as a share of its level, SE / loss,
     * which the caller knows from the data (ns_pipeline_health_noise: 1 / sqrt(rows) for
     * cross-entropy, sqrt(2 / rows) for MSE); 0: unknown, and the rules are as without
     * noise. A change within noise_k standard errors is not evidence:
     *   oscillating: a series' limit is max(osc_rel_std, noise_k x its rel_se);
     *   overfitting: the rise must pass max(overfit_rise, noise_k x val_rel_se) x the same
     *     reference level;
     *   generalisation_gap: judged on the val loss less noise_k standard errors,
     *     val x (1 - noise_k x val_rel_se).
     * With the defaults, cross-entropy on (noise_k / osc_rel_std)^2 = 400 rows or more
     * keeps the oscillation and overfitting limits as they are; on 60 rows they become
     * 0.26 (2 / sqrt(60)), and the gap is judged on 74% of the val loss. */
    double val_rel_se;    /* [0] */
    double train_rel_se;  /* [0] */
    double noise_k;       /* [2] */
} ns_health_spec;

void ns_health_spec_default(ns_health_spec *s);

/* The six mistakes of DESIGN.md's table, by row: a finding names the one it is. The numbers
 * are part of the study format (findings JSON "mistake") and of the docs: never renumber. */
typedef enum ns_mistake {
    NS_MISTAKE_NO_CONVERGENCE = 1, /* the model does not converge */
    NS_MISTAKE_UNSTABLE = 2,       /* unstable training, loss swings */
    NS_MISTAKE_TRAIN_NOT_TEST = 3, /* good on train, bad on test */
    NS_MISTAKE_TOO_SLOW = 4,       /* training too slow */
    NS_MISTAKE_NEW_DATA = 5,       /* fails on new data */
    NS_MISTAKE_DEPLOYMENT = 6,     /* hard to deploy */
} ns_mistake;

/* One finding; all strings NUL-terminated. */
typedef struct ns_finding {
    char code[32];        /* "diverged", "oscillating", "loss_spikes", "overfitting",
                             "generalisation_gap", "not_converged", "budget_limited",
                             "vanishing_gradients", "exploding_gradients" */
    ns_mistake mistake;   /* the row of DESIGN.md's "six mistakes" table */
    char message[256];    /* one line with the numbers */
    char fix[160];        /* the suggested fix */
} ns_finding;

/* Fills *f: code and fix copied (truncated to fit), the message from fmt and ap, with any
 * line break in it made a space so that a finding is always one line. */
void ns_finding_vset(ns_finding *f, const char *code, ns_mistake mistake, const char *fix,
                     const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

/* Each code as one bit, so a set of findings is one integer (the study stores it, and
 * selection filters on it). Bits are part of the study format: never renumber. */
enum {
    NS_HEALTH_DIVERGED = 1 << 0,
    NS_HEALTH_OSCILLATING = 1 << 1,
    NS_HEALTH_LOSS_SPIKES = 1 << 2,
    NS_HEALTH_OVERFITTING = 1 << 3,
    NS_HEALTH_GEN_GAP = 1 << 4,
    NS_HEALTH_NOT_CONVERGED = 1 << 5,
    NS_HEALTH_BUDGET_LIMITED = 1 << 6,
    NS_HEALTH_VANISHING = 1 << 7,
    NS_HEALTH_EXPLODING = 1 << 8,
};

/* The code of bit i (0 -> "diverged"); NULL past the last code. */
const char *ns_health_code_name(int i);
/* The bit of a code ("diverged" -> NS_HEALTH_DIVERGED); 0 for an unknown code. */
unsigned ns_health_code_bit(const char *code);
/* The bits of findings f[0..n). */
unsigned ns_findings_flags(const ns_finding *f, int n);
/* The codes of flags as "code,code" in bit order, "ok" for none, "-" for flags < 0 (not
 * judged); truncated to cap. */
void ns_health_flags_text(long long flags, char *buf, size_t cap);

/* Each code fires at most once, so this many findings always fit. */
#define NS_HEALTH_MAX_FINDINGS 9

/* Runs every detector over recs[0..n) (in epoch order). selected_epoch is the 1-based
 * epoch number (recs[i].epoch) that selection would use, for the generalisation gap;
 * 0 or an epoch not in recs means the last record. spec NULL means the defaults.
 * Writes the first min(count, cap) findings to out (out may be NULL when cap is 0) and
 * returns count, the number of findings (like snprintf); n <= 0 gives 0.
 * No allocation, no output; non-finite values are handled explicitly. */
int ns_health_check(const ns_health_spec *spec, const ns_epoch_record *recs, int n,
                    int selected_epoch, ns_finding *out, int cap);

/* Compact JSON array [{"code":..,"mistake":..,"message":..,"fix":..},...] ("[]" for
 * n = 0), strings escaped (quote, backslash, control characters; other bytes as they
 * are). Returns the length of the whole text without its NUL; when that is >= cap the
 * text did not fit and buf holds "" (cap > 0). Returns -1 for n < 0 or f NULL with n > 0. */
int ns_findings_json(const ns_finding *f, int n, char *buf, size_t cap);

#endif
