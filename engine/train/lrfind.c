/* lrfind.c — the LR range test sweep and the suggestions read from its curve (lrfind.h).
 * The sweep is a deliberately small loop of its own rather than ns_trainer: no epochs,
 * validation, schedule or checkpoints, and the LR changes every step.
 * Not a plotter or a writer: the search layer turns a curve into CSV and text. */
#include "engine/train/lrfind.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ns_lrfind_spec_default(ns_lrfind_spec *s)
{
    s->lr_start = 1e-7;
    s->lr_end = 10.0;
    s->steps = 200;
    s->beta = 0.98;
    s->stop_factor = 4.0;
    s->batch_size = 128;
    s->stop = NULL;
}

void ns_lrfind_curve_free(ns_lrfind_curve *c)
{
    free(c->lr);
    memset(c, 0, sizeof *c);
}

static int spec_check(const ns_lrfind_spec *s, const ns_net *net, const ns_dataset *train,
                      ns_err *err)
{
    if (!(s->lr_start > 0 && isfinite(s->lr_start)))
        return ns_err_set(err, NS_EINPUT, "lr-find: start LR %g must be a positive number",
                          s->lr_start);
    if (!(s->lr_end > s->lr_start && isfinite(s->lr_end)))
        return ns_err_set(err, NS_EINPUT, "lr-find: end LR %g must be above the start LR %g",
                          s->lr_end, s->lr_start);
    if (s->steps < NS_LRFIND_MIN_STEPS)
        return ns_err_set(err, NS_EINPUT, "lr-find: %d steps are too few to read a curve; use %d "
                          "or more (100 to 300 is typical)", s->steps, NS_LRFIND_MIN_STEPS);
    if (!(s->beta >= 0 && s->beta < 1))
        return ns_err_set(err, NS_EINPUT, "lr-find: smoothing beta %g must be in [0, 1)", s->beta);
    if (isnan(s->stop_factor))
        return ns_err_set(err, NS_EINPUT, "lr-find: stop factor is not a number");
    if (s->batch_size < 1 || s->batch_size > net->max_batch)
        return ns_err_set(err, NS_EINPUT, "lr-find: batch size %d outside 1..%d (the network's "
                          "largest batch)", s->batch_size, net->max_batch);
    if (train->n < 1)
        return ns_err_set(err, NS_EINPUT, "lr-find: the training set is empty");
    return NS_OK;
}

/* Rows idx[0..B) of ds into the device batch buffers (through host staging when the
 * backend's memory is not the host's). */
typedef struct batch_bufs {
    float *xb, *tb, *hx, *ht; /* device (B, d), (B); host staging or NULL */
    int32_t *yb, *hy;
} batch_bufs;

static void gather(ns_backend *be, batch_bufs *b, const ns_dataset *ds, const int32_t *idx, int B)
{
    int d = ds->d, host = ns_backend_is_host(be);
    float *x = host ? b->xb : b->hx, *t = host ? b->tb : b->ht;
    int32_t *y = host ? b->yb : b->hy;
    for (int i = 0; i < B; i++)
        memcpy(x + (size_t)i * d, ds->x + (size_t)idx[i] * d, (size_t)d * sizeof *x);
    for (int i = 0; ds->y && i < B; i++)
        y[i] = ds->y[idx[i]];
    for (int i = 0; ds->t && i < B; i++)
        t[i] = ds->t[idx[i]];
    if (!host) {
        ns_buf_upload(be, b->xb, x, (size_t)B * d * sizeof *x);
        if (ds->y)
            ns_buf_upload(be, b->yb, y, (size_t)B * sizeof *y);
        if (ds->t)
            ns_buf_upload(be, b->tb, t, (size_t)B * sizeof *t);
    }
}

int ns_lrfind_run(const ns_lrfind_spec *spec, ns_backend *be, ns_net *net,
                  const ns_optim_spec *opt, const ns_dataset *train, uint64_t seed,
                  ns_lrfind_curve *out, ns_err *err)
{
    memset(out, 0, sizeof *out);
    int rc = spec_check(spec, net, train, err);
    if (rc)
        return rc;
    const int steps = spec->steps;
    const long n = train->n;
    const int B = spec->batch_size < n ? spec->batch_size : (int)n;
    const int d = train->d;
    ns_optim o;
    memset(&o, 0, sizeof o);
    batch_bufs b = {0};
    int32_t *order = malloc((size_t)n * sizeof *order);
    out->lr = malloc(3 * (size_t)steps * sizeof *out->lr);
    b.xb = ns_buf_alloc(be, (size_t)B * d * sizeof(float));
    b.yb = ns_buf_alloc(be, (size_t)B * sizeof(int32_t));
    b.tb = ns_buf_alloc(be, (size_t)B * sizeof(float));
    if (!ns_backend_is_host(be)) {
        b.hx = malloc((size_t)B * d * sizeof(float));
        b.hy = malloc((size_t)B * sizeof(int32_t));
        b.ht = malloc((size_t)B * sizeof(float));
        if (!b.hx || !b.hy || !b.ht)
            goto oom;
    }
    if (!order || !out->lr || !b.xb || !b.yb || !b.tb)
        goto oom;
    out->loss = out->lr + steps;
    out->smoothed = out->lr + 2 * (size_t)steps;
    if ((rc = ns_optim_init(&o, opt, be, net->n_params, err)))
        goto fail;

    ns_rng rng;
    ns_rng_seed(&rng, seed);
    for (long i = 0; i < n; i++)
        order[i] = (int32_t)i;
    long pos = n; /* forces a shuffle before the first batch */
    const double ratio = log(spec->lr_end / spec->lr_start);
    double ema = 0, best = INFINITY;
    for (int i = 0; i < steps; i++) {
        if (ns_stop_requested(spec->stop)) {
            out->interrupted = 1;
            break;
        }
        if (pos + B > n) {
            ns_rng_shuffle_i32(&rng, order, n);
            pos = 0;
        }
        gather(be, &b, train, order + pos, B);
        pos += B;
        ns_op_zero(be, net->grads, net->n_params);
        ns_batch_out bo;
        if ((rc = net->batch(net->ctx, b.xb, train->y ? b.yb : NULL, train->t ? b.tb : NULL, B,
                             1, ns_rng_next(&rng), &bo, err)))
            goto fail;
        double loss = bo.weight_sum > 0 ? bo.loss_sum / bo.weight_sum : NAN;
        if (!isfinite(loss)) {
            out->blew_up = 1;
            break;
        }
        /* the last step gets lr_end exactly, whatever the rounding of exp(log(...)) */
        double lr = i == steps - 1 ? spec->lr_end
                                   : spec->lr_start * exp(ratio * (double)i / (double)(steps - 1));
        /* Debiased like fastai (and Adam's moments): dividing by 1 - beta^(i+1) removes the
         * pull towards the EMA's zero start, so early values are on the loss's own scale. */
        ema = spec->beta * ema + (1 - spec->beta) * loss;
        double sm = ema / (1 - pow(spec->beta, (double)(i + 1)));
        out->lr[i] = lr;
        out->loss[i] = loss;
        out->smoothed[i] = sm;
        out->n = i + 1;
        if (sm < best)
            best = sm;
        if (spec->stop_factor > 0 && i >= NS_LRFIND_STOP_WARMUP && sm > spec->stop_factor * best) {
            out->blew_up = 1;
            break;
        }
        ns_optim_step(&o, net->params, net->grads, lr);
    }
    rc = NS_OK;
    goto done;
oom:
    rc = ns_err_set(err, NS_ERUNTIME, "lr-find: out of memory");
fail:
    ns_lrfind_curve_free(out);
done:
    ns_optim_free(&o);
    free(order);
    ns_buf_free(be, b.xb);
    ns_buf_free(be, b.yb);
    ns_buf_free(be, b.tb);
    free(b.hx);
    free(b.hy);
    free(b.ht);
    return rc;
}

/* ---- suggestions ------------------------------------------------------------------- */

/* Where the valley suggestion sits along the longest valley. fastai takes
 * start + int(len / 3) + int(len / 6), about halfway; on our sweeps (200 steps over 8
 * decades, so the debiased EMA lags by about 2 decades, and the valley starts on the noisy
 * plateau) halfway landed 9 to 50x below the best LR of a grid of short trainings, 2/3
 * up to 6x below, and 3/4 within 2.7x for SGD and Adam at two batch sizes and widths
 * (tests/test_lrfind.c, docs/config.md). */
#define VALLEY_POS 0.75
#define SKIP_TAIL 5
#define MIN_USABLE 5

const char *ns_lr_rule_name(ns_lr_rule r)
{
    switch (r) {
    case NS_LR_VALLEY: return "valley";
    case NS_LR_STEEPEST: return "steepest";
    case NS_LR_MIN10: return "min10";
    }
    return "unknown";
}

int ns_lr_rule_parse(const char *name, ns_lr_rule *r)
{
    static const ns_lr_rule all[] = {NS_LR_VALLEY, NS_LR_STEEPEST, NS_LR_MIN10};
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, ns_lr_rule_name(all[i]))) {
            *r = all[i];
            return 0;
        }
    return -1;
}

double ns_lrfind_pick(const ns_lrfind_suggestion *s, ns_lr_rule rule)
{
    if (!s->ok)
        return NAN;
    switch (rule) {
    case NS_LR_VALLEY: return s->valley;
    case NS_LR_STEEPEST: return s->steepest;
    case NS_LR_MIN10: return s->min10;
    }
    return NAN;
}

/* Index (in [0, m)) of the most negative derivative of y against x, by np.gradient's
 * differences for uneven spacing: second-order central differences inside, one-sided at
 * the two ends. Steps with equal x (cannot happen for a sweep) count as flat. */
static int steepest_index(const double *x, const double *y, int m)
{
    int arg = 0;
    double lowest = INFINITY;
    for (int i = 0; i < m; i++) {
        double g;
        if (i == 0 || i == m - 1) {
            int a = i == 0 ? 0 : m - 2, b = a + 1;
            g = x[b] > x[a] ? (y[b] - y[a]) / (x[b] - x[a]) : 0;
        } else {
            double h0 = x[i] - x[i - 1], h1 = x[i + 1] - x[i];
            g = h0 > 0 && h1 > 0 ? (h0 * h0 * y[i + 1] - h1 * h1 * y[i - 1] +
                                    (h1 * h1 - h0 * h0) * y[i]) / (h0 * h1 * (h0 + h1))
                                 : 0;
        }
        if (g < lowest) {
            lowest = g;
            arg = i;
        }
    }
    return arg;
}

/* The longest valley (fastai's idea, our own code): the longest strictly decreasing
 * subsequence of y (O(m^2) dynamic programme: len[i] = longest one ending at i, first[i] =
 * where that one starts; ties keep the earliest). Small bumps of the smoothed loss are
 * stepped over rather than ending the valley. Returns the index VALLEY_POS of the way from
 * the valley's first point to its last. Needs scratch for 2m ints. */
static int valley_index(const double *y, int m, int *len, int *first)
{
    int end = 0;
    for (int i = 0; i < m; i++) {
        len[i] = 1;
        first[i] = i;
        for (int j = 0; j < i; j++)
            if (y[i] < y[j] && len[j] + 1 > len[i]) {
                len[i] = len[j] + 1;
                first[i] = first[j];
            }
        if (len[i] > len[end])
            end = i;
    }
    return first[end] + (int)(VALLEY_POS * (end - first[end]));
}

int ns_lrfind_suggest(const ns_lrfind_curve *c, ns_lrfind_suggestion *s)
{
    s->steepest = s->valley = s->min10 = s->min_loss_lr = NAN;
    s->ok = 0;
    int a = c->n / 10, b = c->n - (c->blew_up ? SKIP_TAIL : 0);
    int m = b - a;
    if (m < MIN_USABLE)
        return NS_EINPUT;
    double *logx = malloc((size_t)m * sizeof *logx);
    int *scratch = malloc(2 * (size_t)m * sizeof *scratch);
    if (!logx || !scratch) {
        free(logx);
        free(scratch);
        return NS_ERUNTIME;
    }
    const double *y = c->smoothed + a, *lr = c->lr + a;
    for (int i = 0; i < m; i++)
        logx[i] = log(lr[i]);
    int lo = 0;
    for (int i = 1; i < m; i++)
        if (y[i] < y[lo])
            lo = i;
    s->min_loss_lr = lr[lo];
    s->min10 = lr[lo] / 10;
    s->steepest = lr[steepest_index(logx, y, m)];
    s->valley = lr[valley_index(y, m, scratch, scratch + m)];
    s->ok = 1;
    free(logx);
    free(scratch);
    return NS_OK;
}

/* ---- bounds ------------------------------------------------------------------------ */

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

void ns_lrfind_bounds(const double *picks, int n, double *centre, double *lo, double *hi,
                      double *spread)
{
    *centre = *lo = *hi = *spread = NAN;
    double *v = n > 0 ? malloc((size_t)n * sizeof *v) : NULL;
    int k = 0;
    for (int i = 0; v && i < n; i++)
        if (isfinite(picks[i]) && picks[i] > 0)
            v[k++] = picks[i];
    if (k > 0) {
        qsort(v, (size_t)k, sizeof *v, cmp_double);
        *centre = k % 2 ? v[k / 2] : sqrt(v[k / 2 - 1] * v[k / 2]);
        *spread = v[k - 1] / v[0];
        *lo = v[0] / NS_LRFIND_MARGIN;
        *hi = v[k - 1] * NS_LRFIND_MARGIN;
    }
    free(v);
}
