/* resample.c — a trial scored by cross-validation: its config trained on every fold of the
 * study (the same folds and row orders for every trial), the metric's mean and standard
 * error over the folds, the mean learning curve that the health checks read, and racing:
 * a trial stops after some folds when, paired fold by fold with the round's incumbent, it
 * is worse beyond its 95% confidence interval; and the winner's final model (a
 * cross-validated winner's refit on every training row or fold ensemble, a holdout winner's
 * config with its decision offsets). Not the pool or the store: driver.c. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/atomic.h"
#include "search/stages/driver_impl.h"
#include "search/stages/stats.h"
#include "search/study/json.h"

/* Folds a trial runs before racing may stop it: the paired spread needs two. */
#define RACE_MIN_FOLDS 2

void ns_cv_result_free(ns_cv_result *r)
{
    free(r->metric);
    free(r->best_epoch);
    free(r->curve);
    free(r->pred);
    memset(r, 0, sizeof *r);
}

/* One fold's epoch records, collected in memory (a fold is a short run on small data:
 * an interrupted trial runs its folds again rather than checkpointing each). */
typedef struct fold_log {
    ns_epoch_record *rec;
    int n, cap;
    int oom;
} fold_log;

static int log_epoch(void *user, const ns_epoch_record *rec)
{
    fold_log *l = user;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        ns_epoch_record *r = realloc(l->rec, (size_t)cap * sizeof *r);
        if (!r) {
            l->oom = 1;
            return 1;
        }
        l->rec = r;
        l->cap = cap;
    }
    l->rec[l->n++] = *rec;
    return 0;
}

/* Adds fold log l into the running sums of the mean curve (per epoch: the sum over the
 * folds that reached it, and their count). */
static int add_to_curve(ns_cv_result *r, int **count, const fold_log *l)
{
    if (l->n > r->n_curve) {
        ns_epoch_record *c = realloc(r->curve, (size_t)l->n * sizeof *c);
        int *k = realloc(*count, (size_t)l->n * sizeof *k);
        if (!c || !k) {
            if (c)
                r->curve = c;
            if (k)
                *count = k;
            return NS_ERUNTIME;
        }
        r->curve = c;
        *count = k;
        memset(c + r->n_curve, 0, (size_t)(l->n - r->n_curve) * sizeof *c);
        memset(k + r->n_curve, 0, (size_t)(l->n - r->n_curve) * sizeof *k);
        r->n_curve = l->n;
    }
    for (int e = 0; e < l->n; e++) {
        ns_epoch_record *c = &r->curve[e];
        const ns_epoch_record *x = &l->rec[e];
        c->epoch = x->epoch;
        c->step = x->step > c->step ? x->step : c->step;
        c->train_loss += x->train_loss;
        c->val_loss += x->val_loss;
        c->val_acc += x->val_acc;
        c->val_rmse += x->val_rmse;
        c->lr = x->lr;
        c->grad_norm += x->grad_norm;
        c->n_groups = x->n_groups;
        for (int g = 0; g < x->n_groups && g < NS_MAX_GROUPS; g++)
            c->group_grad_norm[g] += x->group_grad_norm[g];
        c->seconds += x->seconds; /* the trial's time in that epoch, all folds together */
        c->samples_per_s += x->samples_per_s;
        c->improved |= x->improved;
        c->diverged = c->diverged ? c->diverged : x->diverged;
        c->stopped_early |= x->stopped_early;
        (*count)[e]++;
    }
    return NS_OK;
}

static void finish_curve(ns_cv_result *r, const int *count)
{
    for (int e = 0; e < r->n_curve; e++) {
        ns_epoch_record *c = &r->curve[e];
        double k = count[e];
        c->train_loss /= k;
        c->val_loss /= k;
        c->val_acc /= k;
        c->val_rmse /= k;
        c->grad_norm /= k;
        for (int g = 0; g < c->n_groups && g < NS_MAX_GROUPS; g++)
            c->group_grad_norm[g] /= k;
        c->samples_per_s /= k;
    }
}

static double mean_of(const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return s / n;
}

static double sd_of(const double *v, int n, double mean)
{
    if (n < 2)
        return NAN;
    double s = 0;
    for (int i = 0; i < n; i++)
        s += (v[i] - mean) * (v[i] - mean);
    return sqrt(s / (n - 1));
}

void ns_fold_mean_se(const double *metric, int n, double *mean, double *se)
{
    *mean = mean_of(metric, n);
    *se = sd_of(metric, n, *mean) / sqrt(n);
}

int ns_race_should_stop(const ns_search *s, const double *metric, int done)
{
    if (!s->race_ref || done < RACE_MIN_FOLDS || done >= s->folds.n)
        return 0;
    double d[NS_CV_MAX_FOLDS * NS_CV_MAX_REPEATS];
    for (int i = 0; i < done; i++) {
        if (!isfinite(metric[i]) || !isfinite(s->race_ref[i]))
            return 0;
        d[i] = s->higher ? metric[i] - s->race_ref[i] : s->race_ref[i] - metric[i];
    }
    double m = mean_of(d, done), half = ns_ci95_half(sd_of(d, done, m), done);
    /* with every fold difference equal the interval is a point: stop only when below 0 */
    return isfinite(half) ? m + half < 0 : 0;
}

int ns_cv_run(ns_search *s, const ns_folds *fo, const ns_config *tc, int race, ns_cv_result *out,
              ns_run_result *res, ns_err *err)
{
    memset(out, 0, sizeof *out);
    memset(res, 0, sizeof *res);
    const int F = fo->n;
    int *count = NULL;
    fold_log l = {0};
    int rc = NS_OK;
    out->n_folds = F;
    out->metric = malloc((size_t)F * sizeof *out->metric);
    out->best_epoch = malloc((size_t)F * sizeof *out->best_epoch);
    if (!out->metric || !out->best_epoch) {
        rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
        goto done;
    }
    /* the first repeat's predictions, each fold's rows after the previous fold's */
    long n_pred = 0;
    for (int f = 0; f < fo->k && f < F; f++)
        n_pred += fo->part[f].val.y && fo->part[f].val.task == NS_TASK_CLASSIFY ? fo->part[f].val.n : 0;
    if (n_pred > 0 && !(out->pred = malloc((size_t)n_pred * sizeof *out->pred))) {
        rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
        goto done;
    }
    /* the result's validation figures are means over the folds run */
    double sum[5] = {0};
    long at = 0;
    for (int f = 0; f < F; f++) {
        ns_run_result r = {0};
        ns_run_out ro = {0};
        if (out->pred && f < fo->k) {
            ro.val_pred = out->pred + at;
            at += fo->part[f].val.n;
        }
        l.n = 0;
        if ((rc = ns_run_training(tc, &fo->part[f], log_epoch, &l, &ro, s->opts->stop, &r, err)))
            goto done;
        if (l.oom) {
            rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
            goto done;
        }
        if (r.interrupted) {
            res->interrupted = 1;
            goto done;
        }
        if (add_to_curve(out, &count, &l)) {
            rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
            goto done;
        }
        out->metric[f] = ns_search_metric_of(s, &r);
        out->best_epoch[f] = r.best_epoch;
        out->done = f + 1;
        const double v[5] = {r.val_loss, r.val_acc, r.val_rmse, r.val_bacc, r.val_f1};
        for (int i = 0; i < 5; i++)
            sum[i] += v[i];
        res->stopped_early |= r.stopped_early;
        res->epochs = r.epochs > res->epochs ? r.epochs : res->epochs;
        res->last = r.last;
        if (r.diverged) { /* a config that diverges on one fold is a diverging config */
            res->diverged = 1;
            break;
        }
        if (race && ns_race_should_stop(s, out->metric, out->done)) {
            out->raced = 1;
            break;
        }
    }
    finish_curve(out, count);
    if (out->pred && out->done >= fo->k && at == n_pred) {
        out->n_pred = n_pred;
    } else {
        free(out->pred);
        out->pred = NULL;
    }
    int n = out->done;
    res->val_loss = sum[0] / n;
    res->val_acc = sum[1] / n;
    res->val_rmse = sum[2] / n;
    res->val_bacc = sum[3] / n;
    res->val_f1 = sum[4] / n;
    res->test_loss = res->test_acc = res->test_rmse = res->test_bacc = res->test_f1 = NAN;
    ns_fold_mean_se(out->metric, n, &out->mean, &out->se);
    /* the epoch the folds chose: their median best epoch (the lower middle one) */
    int *be = malloc((size_t)n * sizeof *be);
    if (!be) {
        rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
        goto done;
    }
    memcpy(be, out->best_epoch, (size_t)n * sizeof *be);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && be[j - 1] > be[j]; j--) {
            int t = be[j];
            be[j] = be[j - 1];
            be[j - 1] = t;
        }
    res->best_epoch = be[(n - 1) / 2];
    free(be);
done:
    free(l.rec);
    free(count);
    if (rc)
        ns_cv_result_free(out);
    return rc;
}

void ns_race_end(ns_search *s)
{
    free(s->race_ref);
    s->race_ref = NULL;
}

int ns_race_begin(ns_search *s, const ns_stage_cfg *st, long round_first, ns_err *err)
{
    ns_race_end(s);
    if (!s->folds.n || st->prune == NS_PRUNE_NONE ||
        (st->kind != NS_STAGE_BAYES && st->kind != NS_STAGE_RANDOM))
        return NS_OK;
    ns_trial_row *rows = NULL;
    int n = 0, rc = ns_store_trials(s->store, &rows, &n, err);
    if (rc)
        return rc;
    /* the incumbent: the best complete, healthy trial of a search stage (random or bayes:
     * the budget the raced trials have) before the round, with every fold */
    const int F = s->folds.n;
    double *best = malloc((size_t)F * sizeof *best), *v = malloc((size_t)F * sizeof *v);
    double bm = NAN;
    int found = 0;
    if (!best || !v) {
        rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const ns_trial_row *t = &rows[i];
        int searched = t->stage && (strstr(t->stage, ":bayes") || strstr(t->stage, ":random"));
        if (t->number >= round_first || !searched || t->state != NS_TRIAL_COMPLETE || !t->result ||
            (t->health_flags > 0 && (t->health_flags & NS_SELECT_REJECT)) ||
            ns_json_get_nums(t->result, "folds", v, F) != F || !ns_search_better(s, t->val_metric, bm))
            continue;
        bm = t->val_metric;
        memcpy(best, v, (size_t)F * sizeof *v);
        found = 1;
    }
    if (found) {
        s->race_ref = best;
        best = NULL;
    }
done:
    free(best);
    free(v);
    ns_trial_rows_free(rows, n);
    return rc;
}

int ns_final_is_ensemble(const ns_search *s)
{
    /* auto is the refit: averaging the fold models was measured (scripts/bench/final_model.py)
     * +0.5 points of test accuracy on the benchmark's 12 sets but -0.5 on 7 sets outside
     * it, and lower macro-F1 on imbalanced sets; with no reliable gain, one model trained
     * on every row is the simpler thing to deploy */
    return s->base.search.final == NS_FINAL_ENSEMBLE;
}

/* Writes c to path (atomically) with a header saying what it is. */
static int write_config(const ns_config *c, const char *path, const char *header, ns_err *err)
{
    ns_atomic_file f;
    ns_atomic_remove_stale(path);
    int rc = ns_atomic_open(&f, path, err);
    if (rc)
        return rc;
    if ((rc = ns_config_export_yaml(c, f.f, header, err))) {
        int e = errno; /* the message names the file written, not the config's own path */
        ns_atomic_abort(&f);
        if (rc == NS_ERUNTIME)
            ns_err_set(err, rc, "%s: cannot write the config: %s", path, strerror(e));
    } else {
        rc = ns_atomic_commit(&f, err);
    }
    return rc;
}

int ns_final_model(ns_search *s, int n, const char *result, const ns_offsets_result *off,
                   ns_final_result *out, ns_err *err)
{
    memset(out, 0, sizeof *out);
    out->test_loss = out->test_acc = out->test_rmse = out->test_bacc = out->test_f1 = NAN;
    out->ensemble = s->folds.n && ns_final_is_ensemble(s);
    out->offsets = !s->folds.n;
    char src[4300], path[4300], model[4300], header[4600];
    const char *file = out->ensemble ? NS_ENSEMBLE_CONFIG : out->offsets ? NS_OFFSETS_CONFIG : NS_REFIT_CONFIG;
    snprintf(src, sizeof src, "%s/trials/%d/config.yaml", s->dir, n);
    snprintf(path, sizeof path, "%s/trials/%d/%s", s->dir, n, file);
    snprintf(model, sizeof model, "%s/trials/%d/%s.nsm", s->dir, n,
             out->ensemble ? "ensemble" : out->offsets ? "offsets" : "refit");
    ns_config tc, fc;
    int rc = ns_config_load(&tc, src, err);
    if (rc)
        return rc;
    const int with_offsets = off && off->nonzero;
    if (with_offsets) {
        tc.n_decision_offsets = off->K;
        memcpy(tc.decision_offsets, off->o, (size_t)off->K * sizeof *off->o);
    }
    const char *shift = with_offsets ? ", its decisions shifted by the offsets fitted on held-out rows" : "";
    if (out->offsets) {
        snprintf(header, sizeof header,
                 "trial %d of study %s as it trained, its decisions shifted by the offsets fitted "
                 "on its validation split\ntrain it with: nnsearch train %s", n, s->base.search.name, path);
    } else if (out->ensemble) {
        /* the trial's own fold models: its config, the study's folds (first repeat) */
        tc.ensemble = s->folds.k;
        tc.ensemble_seed = s->fold_seed;
        out->members = tc.ensemble;
        snprintf(header, sizeof header,
                 "fold ensemble of trial %d of study %s: %d members, one per fold of its "
                 "cross-validation, predictions averaged%s\ntrain it with: nnsearch train %s",
                 n, s->base.search.name, tc.ensemble, shift, path);
    } else {
        double be;
        if (tc.train.budget == NS_BUDGET_EPOCHS && ns_json_get_num(result, "best_epoch", &be) && be >= 1)
            tc.train.epochs = (long)be;
        /* every training row, unless the schedule needs validation (plateau): then the
         * config's own split stays */
        if (tc.train.sched.kind != NS_SCHED_PLATEAU) {
            tc.data.val_fraction = 0;
            tc.train.patience = 0;
        }
        snprintf(header, sizeof header,
                 "refit of trial %d of study %s on %s for the epochs its folds chose (%ld)%s\n"
                 "train it with: nnsearch train %s", n, s->base.search.name,
                 tc.data.val_fraction > 0 ? "its training split" : "all training rows",
                 tc.train.budget == NS_BUDGET_EPOCHS ? tc.train.epochs : 0L, shift, path);
    }
    out->epochs = tc.train.budget == NS_BUDGET_EPOCHS ? tc.train.epochs : 0;
    rc = write_config(&tc, path, header, err);
    ns_config_free(&tc);
    if (rc)
        return rc;
    /* trained exactly as `nnsearch train` trains the file, so the export reproduces it */
    if ((rc = ns_config_load(&fc, path, err)))
        return rc;
    ns_run_result res = {0};
    if (out->ensemble) {
        rc = ns_run_ensemble(&fc, NULL, NULL, NULL, model, s->opts->stop, &res, NULL, err);
    } else {
        ns_prepared p;
        if (!(rc = ns_prepare_data(&p, &fc, err))) {
            rc = ns_run_training(&fc, &p, NULL, NULL, &(ns_run_out){.model = model}, s->opts->stop,
                                 &res, err);
            ns_prepared_free(&p);
        }
    }
    ns_config_free(&fc);
    if (rc || res.interrupted)
        return rc;
    out->done = 1;
    out->diverged = res.diverged;
    out->test_loss = res.test_loss;
    out->test_acc = res.test_acc;
    out->test_rmse = res.test_rmse;
    out->test_bacc = res.test_bacc;
    out->test_f1 = res.test_f1;
    return NS_OK;
}

void ns_final_json(ns_jbuf *j, int n, const ns_final_result *f)
{
    if (!f->done)
        return;
    if (f->offsets)
        ns_jbuf_putf(j, ",\"final\":\"offsets\",\"offsets\":{\"config\":\"trials/%d/" NS_OFFSETS_CONFIG "\",", n);
    else if (f->ensemble)
        ns_jbuf_putf(j, ",\"final\":\"ensemble\",\"ensemble\":{\"config\":\"trials/%d/" NS_ENSEMBLE_CONFIG
                     "\",\"members\":%d,", n, f->members);
    else
        ns_jbuf_putf(j, ",\"final\":\"refit\",\"refit\":{\"config\":\"trials/%d/" NS_REFIT_CONFIG "\",", n);
    ns_jbuf_putf(j, "\"epochs\":%ld,\"diverged\":%s,\"test_macro_f1\":", f->epochs,
                 f->diverged ? "true" : "false");
    ns_jbuf_num(j, f->test_f1);
    ns_jbuf_put(j, ",\"test_balanced_acc\":", 21);
    ns_jbuf_num(j, f->test_bacc);
    ns_jbuf_put(j, "}", 1);
}
