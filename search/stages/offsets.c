/* offsets.c — decision offsets (offsets.h): the fit, and select's winner's held-out outputs
 * it is fitted on (its validation split under holdout; under cross-validation its config
 * trained again on each fold of the study's first repeat, each fold's model predicting the
 * rows it did not see). Not the final model that carries them: resample.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/train/metrics.h"
#include "model/infer.h"
#include "model/modelfile.h"
#include "search/stages/driver_impl.h"
#include "search/stages/offsets.h"

/* metric of argmax(z + o) over the rows, from a K x K confusion matrix (conf, zeroed here). */
static double score(const float *z, const int32_t *y, long n, int K, ns_metric metric,
                    const float *o, long *conf)
{
    memset(conf, 0, (size_t)K * (size_t)K * sizeof *conf);
    for (long i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] >= K)
            continue;
        const float *r = z + (size_t)i * (size_t)K;
        int best = 0;
        float bv = r[0] + o[0];
        for (int k = 1; k < K; k++)
            if (r[k] + o[k] > bv) {
                bv = r[k] + o[k];
                best = k;
            }
        conf[(long)y[i] * K + best]++;
    }
    double bacc, f1;
    ns_class_metrics(conf, K, &bacc, &f1);
    return metric == NS_METRIC_VAL_BACC ? bacc : f1;
}

int ns_offsets_fit(const float *z, const int32_t *y, long n, int K, ns_metric metric, float *o,
                   double *before, double *after, ns_err *err)
{
    for (int k = 0; k < K; k++)
        o[k] = 0;
    long *conf = malloc((size_t)(K > 0 ? K : 1) * (size_t)(K > 0 ? K : 1) * sizeof *conf);
    if (!conf)
        return ns_err_set(err, NS_ERUNTIME, "out of memory fitting decision offsets");
    if (K < 2) {
        *before = *after = score(z, y, n, K, metric, o, conf);
        free(conf);
        return NS_OK;
    }
    const int steps = (int)lround(NS_OFFSETS_RANGE / NS_OFFSETS_STEP);
    double cur = score(z, y, n, K, metric, o, conf);
    *before = cur;
    for (int sweep = 0; sweep < 4 && isfinite(cur); sweep++) {
        int changed = 0;
        for (int k = 1; k < K; k++) {
            const float was = o[k];
            float best_o = was;
            double best = cur;
            for (int g = -steps; g <= steps; g++) {
                o[k] = (float)(g * NS_OFFSETS_STEP);
                double v = score(z, y, n, K, metric, o, conf);
                if (v > best + 1e-12 || (fabs(v - best) <= 1e-12 && fabsf(o[k]) < fabsf(best_o))) {
                    best = v;
                    best_o = o[k];
                }
            }
            o[k] = best_o;
            changed |= best_o != was;
            cur = best;
        }
        if (!changed)
            break;
    }
    *after = cur;
    free(conf);
    return NS_OK;
}

/* The outputs (n x K logits) of the model file at path for ds's rows, which are already
 * standardised as the model's training rows were. */
static int file_logits(const char *path, const ns_dataset *ds, float *z, int K, ns_err *err)
{
    ns_model_file mf;
    int rc = ns_model_load(path, &mf, err);
    if (rc)
        return rc;
    if (mf.spec.n_out != K || mf.spec.n_in != ds->d) {
        ns_model_file_free(&mf);
        return ns_err_set(err, NS_ERUNTIME, "%s: %d outputs for %d features, expected %d for %d",
                          path, mf.spec.n_out, mf.spec.n_in, K, ds->d);
    }
    ns_infer r;
    if (!(rc = ns_infer_open(&r, 1024, err)))
        rc = ns_infer_run(&r, &mf, ds->x, ds->n, 0, NS_INFER_RAW, z, err);
    ns_infer_close(&r);
    ns_model_file_free(&mf);
    return rc;
}

int ns_offsets_applies(const ns_search *s)
{
    return s->base.search.offsets == NS_OFFSETS_AUTO && s->data.task == NS_TASK_CLASSIFY &&
           (s->metric == NS_METRIC_VAL_F1 || s->metric == NS_METRIC_VAL_BACC);
}

/* The winner's held-out rows: *z (rows x K) and *y, malloc'd. Under cross-validation its
 * config is trained on each fold of the first repeat again (the same bits as its trial's
 * folds: same config, same parts) to a scratch model file in its folder, removed after. */
static int held_out(ns_search *s, int n, int K, float **z, int32_t **y, long *rows,
                    int *interrupted, char *why, size_t why_n, ns_err *err)
{
    *z = NULL;
    *y = NULL;
    *rows = 0;
    *interrupted = 0;
    char path[4300];
    if (!s->folds.n) {
        const ns_dataset *v = &s->data.val;
        if (!v->n || !v->y) {
            snprintf(why, why_n, "no validation rows");
            return NS_OK;
        }
        *z = malloc((size_t)v->n * (size_t)K * sizeof **z);
        *y = malloc((size_t)v->n * sizeof **y);
        if (!*z || !*y)
            return ns_err_set(err, NS_ERUNTIME, "out of memory");
        memcpy(*y, v->y, (size_t)v->n * sizeof **y);
        *rows = v->n;
        ns_trial_path(s, n, "model.nsm", path, sizeof path);
        return file_logits(path, v, *z, K, err);
    }
    ns_config tc;
    ns_trial_path(s, n, "config.yaml", path, sizeof path);
    int rc = ns_config_load(&tc, path, err);
    if (rc)
        return rc;
    long total = 0;
    for (int f = 0; f < s->folds.k; f++)
        total += s->folds.part[f].val.n;
    *z = malloc((size_t)(total > 0 ? total : 1) * (size_t)K * sizeof **z);
    *y = malloc((size_t)(total > 0 ? total : 1) * sizeof **y);
    if (!*z || !*y) {
        ns_config_free(&tc);
        return ns_err_set(err, NS_ERUNTIME, "out of memory");
    }
    ns_trial_path(s, n, "offsets-fold.nsm", path, sizeof path);
    for (int f = 0; f < s->folds.k && !rc; f++) {
        const ns_prepared *p = &s->folds.part[f];
        ns_run_result r = {0};
        if ((rc = ns_run_training(&tc, p, NULL, NULL, &(ns_run_out){.model = path}, s->opts->stop,
                                  &r, err)))
            break;
        if (r.interrupted) {
            *interrupted = 1;
            break;
        }
        if (r.diverged) {
            snprintf(why, why_n, "its config diverged on fold %d", f + 1);
            break;
        }
        if (!(rc = file_logits(path, &p->val, *z + (size_t)*rows * (size_t)K, K, err))) {
            memcpy(*y + *rows, p->val.y, (size_t)p->val.n * sizeof **y);
            *rows += p->val.n;
        }
    }
    unlink(path);
    ns_config_free(&tc);
    return rc;
}

int ns_winner_offsets(ns_search *s, int n, ns_offsets_result *out, ns_err *err)
{
    memset(out, 0, sizeof *out);
    out->before = out->after = NAN;
    const int K = s->data.n_classes;
    out->K = K;
    if (K > NS_MAX_DECISION_CLASSES) {
        snprintf(out->skipped, sizeof out->skipped, "%d classes, more than the %d offsets supported",
                 K, NS_MAX_DECISION_CLASSES);
        return NS_OK;
    }
    float *z;
    int32_t *y;
    int rc = held_out(s, n, K, &z, &y, &out->rows, &out->interrupted, out->skipped,
                      sizeof out->skipped, err);
    if (rc || out->interrupted || out->skipped[0]) {
        free(z);
        free(y);
        return rc;
    }
    long *count = calloc((size_t)K, sizeof *count);
    if (!count) {
        free(z);
        free(y);
        return ns_err_set(err, NS_ERUNTIME, "out of memory");
    }
    for (long i = 0; i < out->rows; i++)
        if (y[i] >= 0 && y[i] < K)
            count[y[i]]++;
    for (int k = 0; k < K && !out->skipped[0]; k++)
        if (count[k] < NS_OFFSETS_MIN_ROWS) {
            const char *name = s->data.class_names ? s->data.class_names[k] : NULL;
            char label[64];
            if (name)
                snprintf(label, sizeof label, "'%.40s'", name);
            else
                snprintf(label, sizeof label, "%d", k);
            snprintf(out->skipped, sizeof out->skipped,
                     "class %s has %ld held-out rows, fewer than %d: offsets would fit noise", label,
                     count[k], NS_OFFSETS_MIN_ROWS);
        }
    free(count);
    if (!out->skipped[0]) {
        if ((rc = ns_offsets_fit(z, y, out->rows, K, s->metric, out->o, &out->before, &out->after, err))) {
            free(z);
            free(y);
            return rc;
        }
        out->fitted = 1;
        for (int k = 0; k < K; k++)
            out->nonzero |= out->o[k] != 0;
    }
    free(z);
    free(y);
    return NS_OK;
}

void ns_offsets_json(ns_jbuf *j, const ns_search *s, const ns_offsets_result *o)
{
    ns_jbuf_putf(j, ",\"decision_offsets\":{");
    if (!o->fitted) {
        ns_jbuf_put(j, "\"skipped\":", 10);
        ns_jbuf_str(j, o->skipped, sizeof o->skipped);
        ns_jbuf_put(j, "}", 1);
        return;
    }
    ns_jbuf_put(j, "\"values\":[", 10);
    for (int k = 0; k < o->K; k++) {
        if (k)
            ns_jbuf_put(j, ",", 1);
        ns_jbuf_num(j, o->o[k]);
    }
    ns_jbuf_putf(j, "],\"applied\":%s,\"rows\":%ld,\"held_out\":\"%s\",\"%s_before\":",
                 o->nonzero ? "true" : "false", o->rows, s->folds.n ? "folds" : "validation",
                 ns_metric_name(s->metric));
    ns_jbuf_num(j, o->before);
    ns_jbuf_putf(j, ",\"%s_after\":", ns_metric_name(s->metric));
    ns_jbuf_num(j, o->after);
    ns_jbuf_put(j, "}", 1);
}
