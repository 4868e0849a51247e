/* drift.c — the prediction-time drift check (contract and thresholds: drift.h). One
 * row-major pass accumulates per-feature sums and out-of-range counts; no printing, no
 * policy beyond the documented thresholds. Not a streaming or multivariate test. */
#include "model/drift.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double tol_of(const ns_feature_stats *fs, int j)
{
    double a = fabs((double)fs->min[j]), b = fabs((double)fs->max[j]);
    double m = a > b ? a : b;
    return NS_DRIFT_TOL * (m > 1 ? m : 1);
}

/* The name cut to fit, on a UTF-8 character boundary, with "..." marking the cut. */
static void set_name(ns_drift_feature *f, char *const *names, int j)
{
    if (!names || !names[j]) {
        snprintf(f->name, sizeof f->name, "feature %d", j);
        return;
    }
    size_t n = strlen(names[j]);
    if (n < sizeof f->name) {
        memcpy(f->name, names[j], n + 1);
        return;
    }
    size_t k = sizeof f->name - 4;
    while (k > 0 && ((unsigned char)names[j][k] & 0xc0) == 0x80)
        k--;
    memcpy(f->name, names[j], k);
    memcpy(f->name + k, "...", 4);
}

/* 1 if feature a ranks before b: larger key first, then lower index. */
static int before(double ka, int a, double kb, int b) { return ka > kb || (ka == kb && a < b); }

/* Keeps the best NS_DRIFT_WORST of the (key, j) pairs offered, in order, in idx/keys. */
static void offer(int *idx, double *keys, int *count, int j, double key)
{
    int c = *count;
    if (c == NS_DRIFT_WORST && !before(key, j, keys[c - 1], idx[c - 1]))
        return;
    int at = c < NS_DRIFT_WORST ? c : c - 1;
    while (at > 0 && before(key, j, keys[at - 1], idx[at - 1])) {
        idx[at] = idx[at - 1];
        keys[at] = keys[at - 1];
        at--;
    }
    idx[at] = j;
    keys[at] = key;
    if (c < NS_DRIFT_WORST)
        *count = c + 1;
}

/* Only for a report with rows > 0 (lists are empty otherwise). */
static void describe(ns_drift_feature *f, const ns_drift_report *rep, char *const *names, int j)
{
    f->j = j;
    f->smd = rep->smd[j];
    f->out_share = (double)rep->n_out[j] / (double)rep->rows;
    set_name(f, names, j);
}

int ns_drift_check(ns_drift_report *rep, const ns_feature_stats *fs, char *const *names,
                   const float *x, long n, int d, ns_err *err)
{
    memset(rep, 0, sizeof *rep);
    if (!fs || fs->d == 0 || fs->d != d || n < 0)
        return ns_err_set(err, NS_EINPUT, "drift check: the model has training statistics for "
                          "%d features, the data has %d; fix: this is a bug in the caller",
                          fs ? fs->d : 0, d);
    rep->rows = n;
    rep->d = d;
    rep->smd = calloc((size_t)d, sizeof *rep->smd);
    rep->n_out = calloc((size_t)d, sizeof *rep->n_out);
    double *lo = malloc(2 * (size_t)d * sizeof *lo), *hi = lo ? lo + d : NULL;
    if (!rep->smd || !rep->n_out || !lo) {
        free(lo);
        return ns_err_set(err, NS_ERUNTIME, "drift check: out of memory for %d features", d);
    }
    for (int j = 0; j < d; j++) {
        double t = tol_of(fs, j);
        lo[j] = fs->min[j] - t;
        hi[j] = fs->max[j] + t;
    }
    /* rep->smd holds the sums until the end. Written as !(v >= lo && v <= hi) so that a
     * NaN, which no loader lets through, would count as out of range, not as in it. */
    double *sum = rep->smd;
    long *out = rep->n_out;
    for (long i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * d;
        for (int j = 0; j < d; j++) {
            double v = xr[j];
            sum[j] += v;
            out[j] += !(v >= lo[j] && v <= hi[j]);
        }
    }
    free(lo);

    rep->judged = n >= NS_DRIFT_MIN_ROWS;
    int wi[NS_DRIFT_WORST], wo[NS_DRIFT_WORST];
    double ki[NS_DRIFT_WORST], ko[NS_DRIFT_WORST];
    for (int j = 0; j < d; j++) {
        double smd = 0;
        if (n > 0) {
            double diff = sum[j] / (double)n - (double)fs->mean[j];
            if (fs->std[j] > tol_of(fs, j))
                smd = diff / (double)fs->std[j];
            else if (out[j] > 0)
                smd = diff >= 0 ? INFINITY : -INFINITY;
        }
        rep->smd[j] = smd;
        rep->out_values += out[j];
        if (rep->judged && fabs(smd) > NS_DRIFT_SMD)
            rep->n_shifted++;
        if (n > 0)
            offer(wi, ki, &rep->n_worst_smd, j, fabs(smd));
        if (out[j] > 0)
            offer(wo, ko, &rep->n_worst_out, j, (double)out[j]);
    }
    for (int k = 0; k < rep->n_worst_smd; k++)
        describe(&rep->worst_smd[k], rep, names, wi[k]);
    for (int k = 0; k < rep->n_worst_out; k++)
        describe(&rep->worst_out[k], rep, names, wo[k]);
    rep->out_share = n > 0 ? (double)rep->out_values / ((double)n * d) : 0;
    double expected = 2.0 / ((double)fs->n_rows + 1);
    rep->out_limit = 2 * expected > NS_DRIFT_OUT_SHARE ? 2 * expected : NS_DRIFT_OUT_SHARE;
    rep->warn_shift = rep->n_shifted > 0;
    rep->warn_out = rep->out_share > rep->out_limit;
    return NS_OK;
}

void ns_drift_report_free(ns_drift_report *rep)
{
    if (!rep)
        return;
    free(rep->smd);
    free(rep->n_out);
    memset(rep, 0, sizeof *rep);
}
