/* health.c — the trial detectors over per-epoch records (see health.h for each rule).
 * Not a place for policy: it reports findings; the trainer, stages and selection act. */
#include "engine/train/health.h"

#include "engine/jsonbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void ns_health_spec_default(ns_health_spec *s)
{
    memset(s, 0, sizeof *s);
    s->loss_floor = 1e-8;
    s->min_epochs = 6;
    s->smooth = 0.3;
    s->div_factor = 4.0;
    s->osc_rel_std = 0.1;
    s->spike_factor = 2.0;
    s->patience = 5;
    s->overfit_rise = 0.1;
    s->gap_max = 2.0;
    s->gap_abs_min = 0.1;
    s->min_drop = 0.01;
    s->baseline_loss = NAN;
    s->baseline_frac = 0.9;
    s->tail_share = 0.2;
    s->tail_drop = 0.1;
    s->grad_ratio_lo = 1e-3;
    s->grad_ratio_hi = 1e3;
    s->grad_abs_max = 1e3;
    s->grad_abs_min = 1e-8;
    s->val_rel_se = 0;
    s->train_rel_se = 0;
    s->noise_k = 2.0;
}

static const char *const code_names[] = {
    "diverged",       "oscillating",   "loss_spikes",         "overfitting",
    "generalisation_gap", "not_converged", "budget_limited", "vanishing_gradients",
    "exploding_gradients",
};

const char *ns_health_code_name(int i)
{
    return i >= 0 && i < (int)(sizeof code_names / sizeof *code_names) ? code_names[i] : NULL;
}

unsigned ns_health_code_bit(const char *code)
{
    for (unsigned i = 0; i < sizeof code_names / sizeof *code_names; i++)
        if (!strcmp(code, code_names[i]))
            return 1u << i;
    return 0;
}

unsigned ns_findings_flags(const ns_finding *f, int n)
{
    unsigned bits = 0;
    for (int i = 0; i < n; i++)
        bits |= ns_health_code_bit(f[i].code);
    return bits;
}

/* The oscillation measure's smallest level, as a share of the first epoch's train loss. */
#define OSC_FLOOR 0.1

/* noise_k standard errors of a loss whose standard error is rel_se of its level, as a
 * share of that level: what a loss on few rows moves by chance (0 when unknown). */
static double noise_share(const ns_health_spec *s, double rel_se)
{
    double a = s->noise_k * rel_se;
    return isfinite(a) && a > 0 ? a : 0;
}

void ns_health_flags_text(long long flags, char *buf, size_t cap)
{
    if (!cap)
        return;
    size_t at = 0;
    snprintf(buf, cap, flags < 0 ? "-" : "ok");
    for (unsigned i = 0; flags > 0 && i < sizeof code_names / sizeof *code_names && at < cap; i++)
        if (flags & (1LL << i))
            at += (size_t)snprintf(buf + at, cap - at, "%s%s", at ? "," : "", code_names[i]);
}

/* Epochs whose spike marks are kept (no allocation); later spikes still count, they only
 * stay in the oscillation measure. */
#define MAXN_SPIKE 4096

typedef struct sink {
    ns_finding *out;
    int cap, count;
} sink;

static void emit(sink *k, const char *code, ns_mistake mistake, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

void ns_finding_vset(ns_finding *f, const char *code, ns_mistake mistake, const char *fix,
                     const char *fmt, va_list ap)
{
    snprintf(f->code, sizeof f->code, "%s", code);
    f->mistake = mistake;
    snprintf(f->fix, sizeof f->fix, "%s", fix);
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    for (char *p = f->message; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

static void emit(sink *k, const char *code, ns_mistake mistake, const char *fix, const char *fmt, ...)
{
    if (k->count < k->cap) {
        va_list ap;
        va_start(ap, fmt);
        ns_finding_vset(&k->out[k->count], code, mistake, fix, fmt, ap);
        va_end(ap);
    }
    k->count++;
}

/* A level safe to divide by. */
static double level(double x, double floor_)
{
    double a = fabs(x);
    return a > floor_ ? a : floor_;
}

static int groups_of(const ns_epoch_record *r)
{
    int g = r->n_groups;
    if (g < 0)
        return 0;
    return g > NS_MAX_GROUPS ? NS_MAX_GROUPS : g;
}

/* Non-finite loss or gradient, or the trainer's own flag. */
static int record_blew_up(const ns_epoch_record *r)
{
    if (r->diverged || !isfinite(r->train_loss) || !isfinite(r->grad_norm))
        return 1;
    int g = groups_of(r);
    for (int j = 0; j < g; j++)
        if (!isfinite(r->group_grad_norm[j]))
            return 1;
    return 0;
}

/* Returns 1 (and emits) when the run diverged. */
static int check_diverged(const ns_health_spec *s, const ns_epoch_record *r, int n, sink *k)
{
    static const char fix[] =
        "lower the learning rate (see lr-find) and enable gradient clipping (clip_norm)";
    for (int i = 0; i < n; i++) {
        if (!record_blew_up(&r[i]))
            continue;
        if (r[i].diverged == NS_DIV_BLOWUP)
            emit(k, "diverged", NS_MISTAKE_UNSTABLE, fix,
                 "the smoothed per-step train loss rose above %gx its best at epoch %d (epoch "
                 "mean %.4g); training stopped", s->div_factor, r[i].epoch, r[i].train_loss);
        else if (!isfinite(r[i].train_loss))
            emit(k, "diverged", NS_MISTAKE_UNSTABLE, fix, "train loss became %g at epoch %d", r[i].train_loss,
                 r[i].epoch);
        else if (!isfinite(r[i].grad_norm))
            emit(k, "diverged", NS_MISTAKE_UNSTABLE, fix, "gradient norm became %g at epoch %d (train loss %.4g)",
                 r[i].grad_norm, r[i].epoch, r[i].train_loss);
        else
            emit(k, "diverged", NS_MISTAKE_UNSTABLE, fix,
                 "a non-finite loss or gradient stopped training at epoch %d (train loss %.4g)",
                 r[i].epoch, r[i].train_loss);
        return 1;
    }
    double sm = 0, best = 0;
    for (int i = 0; i < n; i++) {
        double L = r[i].train_loss;
        sm = i == 0 ? L : s->smooth * L + (1 - s->smooth) * sm;
        if (i == 0 || sm < best)
            best = sm;
        if (sm > s->div_factor * level(best, s->loss_floor) && sm > r[0].train_loss) {
            emit(k, "diverged", NS_MISTAKE_UNSTABLE, fix,
                 "smoothed train loss %.4g at epoch %d is %.1fx its best %.4g (limit %gx)", sm,
                 r[i].epoch, sm / level(best, s->loss_floor), best, s->div_factor);
            return 1;
        }
    }
    return 0;
}

static void check_oscillation(const ns_health_spec *s, const ns_epoch_record *r, int n, sink *k)
{
    int h = n / 2;
    /* spikes first: isolated events, kept out of the oscillation measure below so one
     * spike is reported once, as a spike */
    unsigned char spike[MAXN_SPIKE];
    memset(spike, 0, sizeof spike);
    double ema = r[0].train_loss, worst = 0;
    int spikes = 0, worst_epoch = 0;
    for (int i = 1; i < n; i++) {
        double L = r[i].train_loss;
        if (i >= h) {
            double ratio = L / level(ema, s->loss_floor);
            if (ratio > s->spike_factor) {
                spikes++;
                if (i < MAXN_SPIKE)
                    spike[i] = 1;
                if (ratio > worst) {
                    worst = ratio;
                    worst_epoch = r[i].epoch;
                }
            }
        }
        ema = s->smooth * L + (1 - s->smooth) * ema;
    }

    /* The spread of the epoch-to-epoch changes of the train loss (spike epochs left out) and
     * of the validation loss over the second half, against the loss level there; the level
     * is at least OSC_FLOOR x the first epoch's loss, so the last wiggles of a loss near zero
     * do not count. A smooth decay changes by similar steps: a small spread. */
    double worst_sd = 0, worst_ratio = 0, worst_limit = s->osc_rel_std;
    const char *which = "train";
    double floor_ = OSC_FLOOR * fabs(r[0].train_loss);
    for (int series = 0; series < 2; series++) {
        /* a series swings only beyond what its loss moves by chance on its rows */
        double limit = fmax(s->osc_rel_std, noise_share(s, series ? s->val_rel_se : s->train_rel_se));
        int m = 0;
        double sum = 0, sum2 = 0, lev = 0;
        for (int i = h + 1; i < n; i++) {
            double a = series ? r[i - 1].val_loss : r[i - 1].train_loss;
            double b = series ? r[i].val_loss : r[i].train_loss;
            if (!isfinite(a) || !isfinite(b) || (!series && i < MAXN_SPIKE && (spike[i] || spike[i - 1])))
                continue;
            sum += b - a;
            sum2 += (b - a) * (b - a);
            lev += b;
            m++;
        }
        if (m < 2)
            continue;
        double mean = sum / m, var = sum2 / m - mean * mean;
        double sd = (var > 0 ? sqrt(var) : 0) / level(fmax(lev / m, floor_), s->loss_floor);
        double ratio = limit > 0 ? sd / limit : sd > 0 ? INFINITY : 0;
        if (ratio > worst_ratio) {
            worst_ratio = ratio;
            worst_sd = sd;
            worst_limit = limit;
            which = series ? "validation" : "train";
        }
    }
    if (worst_ratio > 1) {
        char lim[64];
        if (worst_limit > s->osc_rel_std)
            snprintf(lim, sizeof lim, "%.3g: %g standard errors of the loss", worst_limit, s->noise_k);
        else
            snprintf(lim, sizeof lim, "%g", worst_limit);
        emit(k, "oscillating", NS_MISTAKE_UNSTABLE,
             "lower the learning rate or use a decaying schedule; a larger batch averages out "
             "gradient noise",
             "%s loss swings over epochs %d-%d: std of its epoch-to-epoch changes is %.3g of its "
             "level (limit %s)",
             which, r[h].epoch, r[n - 1].epoch, worst_sd, lim);
    }
    if (spikes > 0)
        emit(k, "loss_spikes", NS_MISTAKE_UNSTABLE,
             "enable gradient clipping (clip_norm) and lower the learning rate; check the data "
             "for outliers",
             "%d train-loss spike%s in the second half, worst %.2fx the running mean at epoch %d "
             "(limit %gx)",
             spikes, spikes == 1 ? "" : "s", worst, worst_epoch, s->spike_factor);
}

static void check_overfitting(const ns_health_spec *s, const ns_epoch_record *r, int n, sink *k)
{
    int p = s->patience > 0 ? s->patience : 1;
    /* a rise within noise_k standard errors of the val loss is chance, not overfitting */
    double rise = fmax(s->overfit_rise, noise_share(s, s->val_rel_se));
    int b = -1;      /* best finite val so far */
    int hit_j = -1, hit_b = -1;
    double hit_v = 0, hit_t = 0;
    for (int j = 0; j < n; j++) {
        double v = r[j].val_loss;
        if (!isfinite(v))
            continue;
        if (b < 0 || v < r[b].val_loss) {
            b = j;
            continue;
        }
        if (j - b < p)
            continue;
        double vs = 0, ts = 0;
        int cnt = 0;
        for (int i = j - p + 1; i <= j; i++) {
            if (!isfinite(r[i].val_loss))
                continue;
            vs += r[i].val_loss;
            ts += r[i].train_loss;
            cnt++;
        }
        if (cnt == 0)
            continue;
        vs /= cnt;
        ts /= cnt;
        /* the rise is judged against at least OSC_FLOOR x the first train loss: a val loss
         * near zero that moves by a hair is not overfitting */
        double vb = r[b].val_loss;
        double rise_ref = level(fmax(vb, OSC_FLOOR * fabs(r[0].train_loss)), s->loss_floor);
        if (vs > vb + rise * rise_ref && ts < r[b].train_loss) {
            hit_j = j;
            hit_b = b;
            hit_v = vs;
            hit_t = ts;
        }
    }
    if (hit_j >= 0)
        emit(k, "overfitting", NS_MISTAKE_TRAIN_NOT_TEST,
             "early stopping on validation loss; add weight decay or dropout, reduce capacity "
             "or get more data",
             "val loss rose from %.4g (epoch %d) to a mean %.4g over epochs %d-%d while train "
             "loss fell from %.4g to %.4g (limit +%.3g%%)",
             r[hit_b].val_loss, r[hit_b].epoch, hit_v, r[hit_j - p + 1].epoch, r[hit_j].epoch,
             r[hit_b].train_loss, hit_t, 100 * rise);
}

static void check_gap(const ns_health_spec *s, const ns_epoch_record *r, int n, int selected,
                      sink *k)
{
    int i = n - 1;
    if (selected > 0)
        for (int j = 0; j < n; j++)
            if (r[j].epoch == selected) {
                i = j;
                break;
            }
    double t = r[i].train_loss, v = r[i].val_loss;
    if (!isfinite(t) || !isfinite(v))
        return;
    /* the val loss less noise_k standard errors: a gap that chance could make is not one */
    double vn = v * (1 - fmin(noise_share(s, s->val_rel_se), 1));
    double gap = (vn - t) / level(t, s->loss_floor);
    if (gap > s->gap_max && vn - t > s->gap_abs_min) {
        static const char fix[] = "add regularisation (weight decay, dropout) or reduce capacity; "
                                  "check the train/validation shift";
        if (vn < v)
            emit(k, "generalisation_gap", NS_MISTAKE_TRAIN_NOT_TEST, fix,
                 "at epoch %d val loss %.4g (%.4g less %g standard errors) vs train loss %.4g: "
                 "gap (val - train) / train = %.3g (limit %g)",
                 r[i].epoch, v, vn, s->noise_k, t, gap, s->gap_max);
        else
            emit(k, "generalisation_gap", NS_MISTAKE_TRAIN_NOT_TEST, fix,
                 "at epoch %d val loss %.4g vs train loss %.4g: gap (val - train) / train = %.3g "
                 "(limit %g)",
                 r[i].epoch, v, t, gap, s->gap_max);
    }
}

static const char fix_slow[] =
    "raise the learning rate (see lr-find), check the input scaling, or add capacity";

/* The final train loss still near the loss of the best constant prediction: nothing was
 * learnt beyond the class frequencies (or the target mean), however far it fell. Returns 1
 * when it fired. Judged on any number of epochs. */
static int check_baseline(const ns_health_spec *s, const ns_epoch_record *r, int n, sink *k)
{
    double B = s->baseline_loss, L = r[n - 1].train_loss;
    if (!(B > 0) || !isfinite(B) || !isfinite(L) || !(L > s->baseline_frac * B))
        return 0;
    emit(k, "not_converged", NS_MISTAKE_NO_CONVERGENCE, fix_slow,
         "train loss %.4g after %d epochs is %.0f%% of %.4g, the loss of predicting the class "
         "frequencies or target mean (limit %g%%)",
         L, r[n - 1].epoch, 100 * L / B, B, 100 * s->baseline_frac);
    return 1;
}

static void check_convergence(const ns_health_spec *s, const ns_epoch_record *r, int n, sink *k)
{
    double L0 = r[0].train_loss, L1 = r[n - 1].train_loss;
    double drop = (L0 - L1) / level(L0, s->loss_floor);
    if (drop < s->min_drop) {
        emit(k, "not_converged", NS_MISTAKE_NO_CONVERGENCE, fix_slow,
             "train loss went from %.4g (epoch %d) to %.4g (epoch %d): %s %.2f%% (needs a %g%% "
             "drop)",
             L0, r[0].epoch, L1, r[n - 1].epoch, drop >= 0 ? "fell" : "rose",
             100 * fabs(drop), 100 * s->min_drop);
        return;
    }
    if (r[n - 1].stopped_early)
        return; /* early stopping ended it: the budget did not */
    int tail = (int)ceil(s->tail_share * n);
    if (tail < 1)
        tail = 1;
    if (tail > n - 1)
        tail = n - 1;
    const ns_epoch_record *a = &r[n - 1 - tail], *z = &r[n - 1];
    double td = (a->train_loss - z->train_loss) / level(a->train_loss, s->loss_floor);
    if (!(td > s->tail_drop))
        return;
    if (isfinite(a->val_loss) && isfinite(z->val_loss)) {
        double vd = (a->val_loss - z->val_loss) / level(a->val_loss, s->loss_floor);
        if (!(vd > s->tail_drop))
            return;
        emit(k, "budget_limited", NS_MISTAKE_NO_CONVERGENCE,
             "give it more epochs (or a larger budget), or raise the learning rate",
             "still improving at the end: over epochs %d-%d train loss fell %.1f%% and val loss "
             "%.1f%% (limit %g%%)",
             a->epoch, z->epoch, 100 * td, 100 * vd, 100 * s->tail_drop);
    } else {
        emit(k, "budget_limited", NS_MISTAKE_NO_CONVERGENCE,
             "give it more epochs (or a larger budget), or raise the learning rate",
             "still improving at the end: over epochs %d-%d train loss fell %.1f%% (limit %g%%)",
             a->epoch, z->epoch, 100 * td, 100 * s->tail_drop);
    }
}

static void check_gradients(const ns_health_spec *s, const ns_epoch_record *r, int n, sink *k)
{
    static const char fix_vanish[] =
        "use ReLU-type activations with He init, standardise the inputs, or use a shallower "
        "net";
    static const char fix_explode[] =
        "enable gradient clipping (clip_norm), lower the learning rate, standardise the inputs "
        "and check the init";
    int g = groups_of(&r[0]);
    for (int i = 1; i < n; i++)
        if (groups_of(&r[i]) < g)
            g = groups_of(&r[i]);
    double mean[NS_MAX_GROUPS];
    int cnt[NS_MAX_GROUPS];
    for (int j = 0; j < g; j++) {
        mean[j] = 0;
        cnt[j] = 0;
    }
    double maxv = -1;
    int max_epoch = 0, max_layer = -1; /* -1: the global norm */
    for (int i = 0; i < n; i++) {
        if (isfinite(r[i].grad_norm) && r[i].grad_norm > maxv) {
            maxv = r[i].grad_norm;
            max_epoch = r[i].epoch;
            max_layer = -1;
        }
        for (int j = 0; j < g; j++) {
            double x = r[i].group_grad_norm[j];
            if (!isfinite(x))
                continue;
            mean[j] += x;
            cnt[j]++;
            if (x > maxv) {
                maxv = x;
                max_epoch = r[i].epoch;
                max_layer = j;
            }
        }
    }
    for (int j = 0; j < g; j++)
        if (cnt[j] > 0)
            mean[j] /= cnt[j];

    int vanish = 0, explode = 0;
    if (g >= 2 && cnt[0] > 0 && cnt[g - 1] > 0 && mean[g - 1] > 0) {
        double ratio = mean[0] / mean[g - 1];
        if (ratio < s->grad_ratio_lo) {
            vanish = 1;
            emit(k, "vanishing_gradients", NS_MISTAKE_UNSTABLE, fix_vanish,
                 "first-layer gradient norm %.3g is %.3g x the last layer's %.3g (limit %g)",
                 mean[0], ratio, mean[g - 1], s->grad_ratio_lo);
        } else if (ratio > s->grad_ratio_hi) {
            explode = 1;
            emit(k, "exploding_gradients", NS_MISTAKE_UNSTABLE, fix_explode,
                 "first-layer gradient norm %.3g is %.3g x the last layer's %.3g (limit %g)",
                 mean[0], ratio, mean[g - 1], s->grad_ratio_hi);
        }
    }
    if (!explode && maxv > s->grad_abs_max) {
        if (max_layer < 0)
            emit(k, "exploding_gradients", NS_MISTAKE_UNSTABLE, fix_explode,
                 "gradient norm %.3g at epoch %d (limit %g)", maxv, max_epoch, s->grad_abs_max);
        else
            emit(k, "exploding_gradients", NS_MISTAKE_UNSTABLE, fix_explode,
                 "layer %d gradient norm %.3g at epoch %d (limit %g)", max_layer + 1, maxv,
                 max_epoch, s->grad_abs_max);
    }
    if (!vanish)
        for (int j = 0; j < g; j++)
            if (cnt[j] > 0 && mean[j] < s->grad_abs_min) {
                emit(k, "vanishing_gradients", NS_MISTAKE_UNSTABLE, fix_vanish,
                     "layer %d of %d has a mean gradient norm of %.3g (floor %g)", j + 1, g,
                     mean[j], s->grad_abs_min);
                break;
            }
}

int ns_health_check(const ns_health_spec *spec, const ns_epoch_record *recs, int n,
                    int selected_epoch, ns_finding *out, int cap)
{
    ns_health_spec def;
    if (!spec) {
        ns_health_spec_default(&def);
        spec = &def;
    }
    sink k = {out, out ? (cap > 0 ? cap : 0) : 0, 0};
    if (!recs || n <= 0)
        return 0;
    int diverged = check_diverged(spec, recs, n, &k);
    /* a blown-up curve says nothing about trends; its gradients still name the cause */
    int flat = !diverged && check_baseline(spec, recs, n, &k);
    if (!diverged && n >= spec->min_epochs && n >= 2) {
        check_oscillation(spec, recs, n, &k);
        check_overfitting(spec, recs, n, &k);
        if (!flat)
            check_convergence(spec, recs, n, &k);
    }
    if (!diverged)
        check_gap(spec, recs, n, selected_epoch, &k);
    check_gradients(spec, recs, n, &k);
    return k.count;
}

int ns_findings_json(const ns_finding *f, int n, char *buf, size_t cap)
{
    if (n < 0 || (n > 0 && !f))
        return -1;
    ns_jbuf j = {buf, buf ? cap : 0, 0};
    ns_jbuf_put(&j, "[", 1);
    for (int i = 0; i < n; i++) {
        char num[48];
        int m = snprintf(num, sizeof num, ",\"mistake\":%d,\"message\":", f[i].mistake);
        ns_jbuf_put(&j, i ? ",{\"code\":" : "{\"code\":", i ? 9 : 8);
        ns_jbuf_str(&j, f[i].code, sizeof f[i].code);
        ns_jbuf_put(&j, num, (size_t)m);
        ns_jbuf_str(&j, f[i].message, sizeof f[i].message);
        ns_jbuf_put(&j, ",\"fix\":", 7);
        ns_jbuf_str(&j, f[i].fix, sizeof f[i].fix);
        ns_jbuf_put(&j, "}", 1);
    }
    ns_jbuf_put(&j, "]", 1);
    return (int)ns_jbuf_finish(&j);
}
