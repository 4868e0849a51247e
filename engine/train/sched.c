/* sched.c — learning-rate schedules (see sched.h): closed forms of progress and epoch,
 * plus the reduce-on-plateau bookkeeping. Not an optimizer: the LR is handed to one.
 *
 * Differences from torch.optim.lr_scheduler, by design:
 * - One-cycle runs on continuous progress p = step / total_steps: phase 1 is
 *   p in [0, pct_start], phase 2 is (pct_start, 1], and p = 1 gives the final LR.
 *   torch's OneCycleLR ends its phases at steps pct_start * total - 1 and total - 1, so
 *   at step s our percentage within a phase is lower by at most 1 / (pct_start * total)
 *   (phase 1) or 1 / ((1 - pct_start) * total) (phase 2); the LRs differ by at most
 *   (pi / 2) * max_lr times that. They agree exactly at step 0; our p = 1 and torch's
 *   last step both give the final LR.
 * - Step and exponential decay use the closed form base * gamma^k; torch multiplies
 *   epoch by epoch, which differs in the last bits only.
 * - Plateau multiplies a stored multiplier rather than the LR itself (same values up to
 *   rounding) and, unlike torch, treats a non-finite val loss as a bad epoch even when
 *   it is -inf. */
#include "engine/train/sched.h"

#include <math.h>
#include <string.h>

/* torch's ReduceLROnPlateau eps: a reduction smaller than this is skipped. */
#define PLATEAU_EPS 1e-8

void ns_sched_spec_default(ns_sched_spec *s, ns_sched_kind kind)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->step_size = 10;
    s->gamma = kind == NS_SCHED_EXP ? 0.95 : 0.1;
    s->warmup = 0.05;
    s->warmup_start = 0.0;
    s->min_lr = 0.0;
    s->pct_start = 0.3;
    s->div = 25.0;
    s->final_div = 1e4;
    s->factor = 0.1;
    s->patience = 5;
    s->threshold = 1e-4;
}

const char *ns_sched_kind_name(ns_sched_kind k)
{
    switch (k) {
    case NS_SCHED_CONSTANT: return "constant";
    case NS_SCHED_STEP: return "step";
    case NS_SCHED_EXP: return "exponential";
    case NS_SCHED_COSINE: return "cosine";
    case NS_SCHED_ONECYCLE: return "onecycle";
    case NS_SCHED_PLATEAU: return "plateau";
    }
    return "unknown";
}

void ns_sched_init(ns_sched *s, const ns_sched_spec *spec, double base_lr)
{
    s->spec = *spec;
    s->base_lr = base_lr;
    s->plateau_mult = 1.0;
    s->best = INFINITY;
    s->bad_epochs = 0;
}

/* torch's _annealing_cos: from start (pct = 0) to end (pct = 1), same operation order. */
static double anneal_cos(double start, double end, double pct)
{
    double cos_out = cos(M_PI * pct) + 1.0;
    return end + (start - end) / 2.0 * cos_out;
}

static double cosine_lr(const ns_sched_spec *sp, double base, double p)
{
    double w = sp->warmup;
    if (w > 0.0 && p < w)
        return base * (sp->warmup_start + (1.0 - sp->warmup_start) * p / w);
    if (w >= 1.0) /* warm-up covers the whole budget: p == 1 is its end */
        return base;
    if (w < 0.0)
        w = 0.0;
    double q = (p - w) / (1.0 - w);
    return sp->min_lr + (base - sp->min_lr) * 0.5 * (1.0 + cos(M_PI * q));
}

static double onecycle_lr(const ns_sched_spec *sp, double base, double p)
{
    double initial = base / sp->div;
    double final = initial / sp->final_div;
    double a = sp->pct_start;
    if (a > 0.0 && p <= a)
        return anneal_cos(initial, base, p / a);
    if (a >= 1.0)
        return base;
    if (a < 0.0)
        a = 0.0;
    return anneal_cos(base, final, (p - a) / (1.0 - a));
}

double ns_sched_lr(const ns_sched *s, double progress, int epoch)
{
    const ns_sched_spec *sp = &s->spec;
    double base = s->base_lr;
    double p = progress > 0.0 ? (progress < 1.0 ? progress : 1.0) : 0.0; /* NaN -> 0 */
    if (epoch < 0)
        epoch = 0;
    switch (sp->kind) {
    case NS_SCHED_CONSTANT: return base;
    case NS_SCHED_STEP: {
        int size = sp->step_size > 0 ? sp->step_size : 1; /* config rejects < 1 */
        return base * pow(sp->gamma, (double)(epoch / size));
    }
    case NS_SCHED_EXP: return base * pow(sp->gamma, (double)epoch);
    case NS_SCHED_COSINE: return cosine_lr(sp, base, p);
    case NS_SCHED_ONECYCLE: return onecycle_lr(sp, base, p);
    case NS_SCHED_PLATEAU: return base * s->plateau_mult;
    }
    return base;
}

/* torch ReduceLROnPlateau, mode 'min', threshold_mode 'rel', cooldown 0: an epoch is
 * better when val < best (1 - threshold); the LR drops on the bad epoch that takes the
 * count past patience (patience = 2: the third bad epoch in a row), then the count
 * restarts. */
void ns_sched_epoch_end(ns_sched *s, double val_loss)
{
    const ns_sched_spec *sp = &s->spec;
    if (sp->kind != NS_SCHED_PLATEAU)
        return;
    if (isfinite(val_loss) && val_loss < s->best * (1.0 - sp->threshold)) {
        s->best = val_loss;
        s->bad_epochs = 0;
    } else {
        s->bad_epochs++;
    }
    if (s->bad_epochs <= sp->patience)
        return;
    s->bad_epochs = 0;
    double old_lr = s->base_lr * s->plateau_mult;
    double new_lr = fmax(old_lr * sp->factor, sp->min_lr);
    if (old_lr - new_lr > PLATEAU_EPS) /* implies base_lr > 0 */
        s->plateau_mult = new_lr == old_lr * sp->factor ? s->plateau_mult * sp->factor
                                                        : sp->min_lr / s->base_lr;
}
