/* estimate.c — the winner's expected score on new data (estimate.h): the bootstrap
 * bias-corrected estimate over the candidates' stored predictions, and select's use of it
 * (which rows, which candidates, the decision's part). Not the choice of the winner:
 * select.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/rng.h"
#include "engine/train/metrics.h"
#include "search/stages/driver_impl.h"
#include "search/stages/estimate.h"

#define SEED_ESTIMATE 0x65737469ULL /* "esti": the resamples */

/* metric of the rows with weight w[i] > 0 (counted w[i] times; w NULL: every row once) of
 * candidate p, with cnt (3K longs, zeroed here) for the per-class counts. */
static double weighted_score(const int32_t *y, const int32_t *p, const int32_t *w, long n, int K,
                             ns_metric metric, long *cnt)
{
    if (metric == NS_METRIC_VAL_ACC) {
        long hit = 0, all = 0;
        for (long i = 0; i < n; i++) {
            long wi = w ? w[i] : 1;
            all += wi;
            hit += p[i] == y[i] ? wi : 0;
        }
        return all ? (double)hit / (double)all : NAN;
    }
    long *tp = cnt, *row = cnt + K, *col = cnt + 2 * (size_t)K;
    memset(cnt, 0, 3 * (size_t)K * sizeof *cnt);
    for (long i = 0; i < n; i++) {
        long wi = w ? w[i] : 1;
        if (!wi || y[i] < 0 || y[i] >= K || p[i] < 0 || p[i] >= K)
            continue;
        row[y[i]] += wi;
        col[p[i]] += wi;
        tp[y[i]] += p[i] == y[i] ? wi : 0;
    }
    double bacc, f1;
    ns_class_metrics_counts(tp, row, col, K, &bacc, &f1);
    return metric == NS_METRIC_VAL_BACC ? bacc : f1;
}

int ns_bbc_estimate(const int32_t *y, long n, int K, const int32_t *const *pred, int T,
                    ns_metric metric, int B, uint64_t seed, double *est, ns_err *err)
{
    *est = NAN;
    if (n < 1 || T < 1 || B < 1 || K < 1)
        return NS_OK;
    int32_t *in = malloc((size_t)n * sizeof *in), *out = malloc((size_t)n * sizeof *out);
    long *cnt = malloc(3 * (size_t)K * sizeof *cnt);
    if (!in || !out || !cnt) {
        free(in);
        free(out);
        free(cnt);
        return ns_err_set(err, NS_ERUNTIME, "out of memory for the winner's estimate");
    }
    ns_rng r;
    ns_rng_seed(&r, seed);
    double sum = 0;
    int used = 0;
    for (int b = 0; b < B; b++) {
        memset(in, 0, (size_t)n * sizeof *in);
        for (long i = 0; i < n; i++)
            in[ns_rng_below(&r, (uint64_t)n)]++;
        long left = 0;
        for (long i = 0; i < n; i++) {
            out[i] = in[i] == 0;
            left += out[i];
        }
        if (!left)
            continue;
        int best = -1;
        double bv = NAN;
        for (int t = 0; t < T; t++) {
            double v = weighted_score(y, pred[t], in, n, K, metric, cnt);
            if (isfinite(v) && (best < 0 || v > bv)) {
                best = t;
                bv = v;
            }
        }
        if (best < 0)
            continue;
        double v = weighted_score(y, pred[best], out, n, K, metric, cnt);
        if (isfinite(v)) {
            sum += v;
            used++;
        }
    }
    *est = used ? sum / used : NAN;
    free(in);
    free(out);
    free(cnt);
    return NS_OK;
}

/* The held-out rows' labels, in the order trials store their predictions: under
 * cross-validation every fold of the first repeat in turn, under holdout the validation
 * split. *y malloc'd; *n 0 when there are none. */
static int held_out_labels(const ns_search *s, int32_t **y, long *n, ns_err *err)
{
    *y = NULL;
    *n = 0;
    const int parts = s->folds.n ? s->folds.k : 1;
    long total = 0;
    for (int f = 0; f < parts; f++) {
        const ns_dataset *v = s->folds.n ? &s->folds.part[f].val : &s->data.val;
        if (!v->y)
            return NS_OK;
        total += v->n;
    }
    if (total < 1)
        return NS_OK;
    if (!(*y = malloc((size_t)total * sizeof **y)))
        return ns_err_set(err, NS_ERUNTIME, "out of memory");
    for (int f = 0; f < parts; f++) {
        const ns_dataset *v = s->folds.n ? &s->folds.part[f].val : &s->data.val;
        memcpy(*y + *n, v->y, (size_t)v->n * sizeof **y);
        *n += v->n;
    }
    return NS_OK;
}

int ns_winner_estimate(ns_search *s, const int *trials, int T, ns_estimate_result *out, ns_err *err)
{
    memset(out, 0, sizeof *out);
    out->value = out->measured = NAN;
    if (s->data.task != NS_TASK_CLASSIFY ||
        (s->metric != NS_METRIC_VAL_ACC && s->metric != NS_METRIC_VAL_BACC && s->metric != NS_METRIC_VAL_F1)) {
        snprintf(out->skipped, sizeof out->skipped, "%s is not a score of predicted classes",
                 ns_metric_name(s->metric));
        return NS_OK;
    }
    int32_t *y;
    long n;
    int rc = held_out_labels(s, &y, &n, err);
    if (rc)
        return rc;
    if (!n) {
        snprintf(out->skipped, sizeof out->skipped, "no labelled held-out rows");
        return NS_OK;
    }
    int32_t **pred = calloc((size_t)(T > 0 ? T : 1), sizeof *pred);
    if (!pred) {
        free(y);
        return ns_err_set(err, NS_ERUNTIME, "out of memory");
    }
    for (int t = 0; t < T && !rc && !out->skipped[0]; t++) {
        long rows;
        if ((rc = ns_store_trial_pred_get(s->store, trials[t], &pred[t], &rows, err)))
            break;
        if (!pred[t])
            snprintf(out->skipped, sizeof out->skipped, "trial %d has no stored predictions (trained "
                     "by an older nnsearch)", trials[t]);
        else if (rows != n)
            snprintf(out->skipped, sizeof out->skipped, "trial %d has predictions of %ld rows, not "
                     "the %ld held-out rows", trials[t], rows, n);
    }
    if (!rc && !out->skipped[0]) {
        /* winner first: its measured figure is the pooled score of its own predictions */
        long *cnt = malloc(3 * (size_t)s->data.n_classes * sizeof *cnt);
        if (!cnt) {
            rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
        } else {
            out->measured = weighted_score(y, pred[0], NULL, n, s->data.n_classes, s->metric, cnt);
            free(cnt);
            double work = (double)T * (double)n;
            int B = work * NS_ESTIMATE_BOOTSTRAPS <= NS_ESTIMATE_MAX_WORK
                        ? NS_ESTIMATE_BOOTSTRAPS
                        : (int)fmax(NS_ESTIMATE_MIN_BOOTSTRAPS, NS_ESTIMATE_MAX_WORK / work);
            rc = ns_bbc_estimate(y, n, s->data.n_classes, (const int32_t *const *)pred, T, s->metric, B,
                                 ns_seed_derive(s->base.search.seed, 0, SEED_ESTIMATE), &out->value, err);
            out->done = !rc && isfinite(out->value);
            out->bootstraps = B;
            out->candidates = T;
            out->rows = n;
            if (!rc && !out->done)
                snprintf(out->skipped, sizeof out->skipped, "no resample left a row out");
        }
    }
    for (int t = 0; t < T; t++)
        free(pred[t]);
    free(pred);
    free(y);
    return rc;
}

void ns_estimate_json(ns_jbuf *j, const ns_search *s, const ns_estimate_result *e)
{
    ns_jbuf_put(j, ",\"estimate\":{", 13);
    if (!e->done) {
        ns_jbuf_put(j, "\"skipped\":", 10);
        ns_jbuf_str(j, e->skipped, sizeof e->skipped);
        ns_jbuf_put(j, "}", 1);
        return;
    }
    ns_jbuf_putf(j, "\"%s\":", ns_metric_name(s->metric));
    ns_jbuf_num(j, e->value);
    ns_jbuf_put(j, ",\"measured\":", 12);
    ns_jbuf_num(j, e->measured);
    if (e->rescored)
        ns_jbuf_putf(j, ",\"method\":\"re-scored\",\"candidates\":%d,\"rows\":%ld,"
                     "\"held_out\":\"re-scoring folds\"}", e->candidates, e->rows);
    else
        ns_jbuf_putf(j, ",\"method\":\"bootstrap bias-corrected\",\"candidates\":%d,\"bootstraps\":%d,"
                     "\"rows\":%ld,\"held_out\":\"%s\"}", e->candidates, e->bootstraps, e->rows,
                     s->folds.n ? "folds" : "validation");
}
