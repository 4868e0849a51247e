/* stage_bayes.c — the bayes stage: GP proposals in rounds, and the pruning of a round's
 * trials (median or asha). It reads only what the study stores, so a study's proposals and
 * prunings are the same whatever -j and however often it was interrupted. Not the GP
 * (gp.c, bo.c), nor the select stage (select.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/atomic.h"
#include "engine/rng.h"
#include "search/bo/bo.h"
#include "search/stages/bayes.h"
#include "search/stages/stats.h"
#include "search/study/json.h"

/* ---- trials as points of the space -------------------------------------------------------- */

/* [b, e) without spaces and quotes into out (so "relu" and relu, [256,128] and
 * [256, 128] compare equal); 0 when it does not fit. */
static int compact_span(const char *b, const char *e, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *c = b; c < e; c++)
        if (*c != ' ' && *c != '"') {
            if (n + 1 >= cap)
                return 0;
            out[n++] = *c;
        }
    out[n] = 0;
    return 1;
}

/* u (sp->n) from a trial's params: each searched key's value mapped into its range or
 * choice; a key the trial did not record (a stage trial's reference point) at 0.5.
 * Returns 0 when a value lies outside its range or matches no choice (the trial is not a
 * point of this space: not an observation). */
static int point_of(const ns_space *sp, const char *params, double *u)
{
    if (!ns_json_valid(params))
        return 0;
    for (int i = 0; i < sp->n; i++) {
        const ns_dim *d = &sp->dims[i];
        char val[256], choice[256];
        const char *b, *e;
        u[i] = 0.5;
        if (!ns_json_get(params, d->name, &b, &e))
            continue;
        if (!compact_span(b, e, val, sizeof val))
            return 0;
        if (d->kind == NS_DIM_CHOICE) {
            int k = -1;
            for (int c = 0; c < d->n_choices && k < 0; c++)
                if (compact_span(d->choices[c], d->choices[c] + strlen(d->choices[c]), choice,
                                 sizeof choice) && !strcmp(choice, val))
                    k = c;
            if (k < 0)
                return 0;
            u[i] = ns_dim_unit(d, k);
        } else {
            char *end;
            double x = strtod(val, &end);
            double slack = 1e-12 * fmax(fabs(d->lo), fabs(d->hi)); /* the text round trip */
            if (end == val || !(x >= d->lo - slack && x <= d->hi + slack))
                return 0;
            u[i] = ns_dim_unit(d, x);
        }
    }
    return 1;
}

/* The value the GP minimises: the study metric, negated when higher is better. */
static double objective(const ns_search *s, double metric) { return s->higher ? -metric : metric; }

/* The GP hyperparameters of trial n's proposal (trials/<n>/gp.hyp, len doubles as hex
 * floats, which fscanf reads back to the same bits), or all NaN (no warm start) when use
 * is 0 or the file is missing or short. */
static void read_hyp(const ns_search *s, long n, int use, double *hyp, int len)
{
    int k = 0;
    char path[4300];
    snprintf(path, sizeof path, "%s/trials/%ld/gp.hyp", s->dir, n);
    FILE *f = use ? fopen(path, "r") : NULL;
    if (f) {
        while (k < len && fscanf(f, "%lf", &hyp[k]) == 1)
            k++;
        fclose(f);
    }
    if (k < len)
        for (k = 0; k < len; k++)
            hyp[k] = NAN;
}

/* Writes trial n's hyperparameters, exactly (%a), and the numbers of the trials its
 * proposal observed (gp.obs, one line), atomically, before the trial is queued. */
static int write_hyp(const ns_search *s, long n, const double *hyp, int len, const long *obs, int n_obs,
                     ns_err *err)
{
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/trials/%ld", s->dir, n);
    snprintf(path, sizeof path, "%s/gp.hyp", dir);
    char failed[4200];
    int e = ns_mkdir_p(dir, failed, sizeof failed); /* trials/ too when bayes runs first */
    if (e)
        return ns_err_set(err, NS_ERUNTIME, "%s: cannot create: %s", e == ENOMEM ? dir : failed,
                          strerror(e));
    ns_atomic_remove_stale(path);
    ns_atomic_file f;
    int rc = ns_atomic_open(&f, path, err);
    if (rc)
        return rc;
    for (int k = 0; k < len; k++)
        fprintf(f.f, "%a\n", hyp[k]);
    if ((rc = ns_atomic_commit(&f, err)))
        return rc;
    snprintf(path, sizeof path, "%s/gp.obs", dir);
    ns_atomic_remove_stale(path);
    if ((rc = ns_atomic_open(&f, path, err)))
        return rc;
    for (int k = 0; k < n_obs; k++)
        fprintf(f.f, "%s%ld", k ? " " : "", obs[k]);
    fputc('\n', f.f);
    return ns_atomic_commit(&f, err);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Whether trial t was trained to the budget of bayes stage st, so that its metric is an
 * observation of the same function: a random or bayes stage's trial with the same
 * per-trial budget. The range test, batch sweep and comparison train their trials for a
 * few epochs at the reference point and are left out, as is a final stage's. */
static int same_fidelity(const ns_search *s, const ns_stage_cfg *st, const ns_trial_row *t)
{
    int pos = t->stage ? atoi(t->stage) : 0; /* "3:bayes": the third stage */
    if (pos < 1 || pos > s->base.search.n_stages)
        return 0;
    const ns_stage_cfg *o = &s->base.search.stages[pos - 1];
    if (o->kind != NS_STAGE_RANDOM && o->kind != NS_STAGE_BAYES)
        return 0;
    return o->budget == st->budget &&
           (st->budget == NS_BUDGET_EPOCHS ? o->epochs == st->epochs : o->steps == st->steps);
}

/* Censors the observations that epoch pruning stopped (cens[k]): their metric is of an
 * earlier epoch, but the rule stopped them for being worse than most at that epoch, so
 * each counts as no better than the median of the full-budget observations (y lower is
 * better). Without any full-budget observation they stay as they are. */
static void censor_pruned(double *y, const int *feas, const int *cens, int n, int n_cens)
{
    if (n_cens == 0)
        return;
    double *full = malloc((size_t)n * sizeof *full);
    int m = 0;
    for (int k = 0; full && k < n; k++)
        if (feas[k] && !cens[k])
            full[m++] = y[k];
    if (m > 0) {
        qsort(full, (size_t)m, sizeof *full, cmp_double);
        double med = m % 2 ? full[m / 2] : 0.5 * (full[m / 2 - 1] + full[m / 2]);
        for (int k = 0; k < n; k++)
            if (cens[k] && y[k] < med)
                y[k] = med;
    }
    free(full);
}

/* What every proposal of a bayes round observes: the trials final before the round,
 * read and mapped once, at the round's first plan (or the first after a resume), and kept
 * until the round ends. Those trials cannot change during the round: rounds run one
 * after another and every earlier trial is final before a round begins. */
struct ns_bayes_round {
    long first, round_first; /* the stage and the round it belongs to */
    int D, n_obs, n_other;
    double *X, *y, *noise;   /* (n_obs D), (n_obs), (n_obs) */
    int *feas;               /* (n_obs) */
    long *obs;               /* (n_obs) their trial numbers */
};

void ns_bayes_round_free(struct ns_bayes_round *r)
{
    if (!r)
        return;
    free(r->X);
    free(r->y);
    free(r->noise);
    free(r->feas);
    free(r->obs);
    free(r);
}

/* The observations of the round that begins at round_first, into a new *out. */
static int round_observations(ns_search *s, const ns_stage_cfg *st, long first, long round_first,
                              int D, struct ns_bayes_round **out, ns_err *err)
{
    const ns_space *sp = &s->base.space;
    ns_trial_row *rows = NULL;
    int n = 0;
    int rc = ns_store_trials(s->store, &rows, &n, err);
    if (rc)
        return rc;
    struct ns_bayes_round *r = calloc(1, sizeof *r);
    double *u = malloc((size_t)sp->n * sizeof *u);
    int *cens = malloc((size_t)(n + 1) * sizeof *cens);
    if (r) {
        r->X = malloc((size_t)(n + 1) * D * sizeof *r->X);
        r->y = malloc((size_t)(n + 1) * sizeof *r->y);
        r->noise = malloc((size_t)(n + 1) * sizeof *r->noise);
        r->feas = malloc((size_t)(n + 1) * sizeof *r->feas);
        r->obs = malloc((size_t)(n + 1) * sizeof *r->obs);
    }
    if (!r || !u || !cens || !r->X || !r->y || !r->noise || !r->feas || !r->obs) {
        rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
        goto done;
    }
    r->first = first;
    r->round_first = round_first;
    r->D = D;
    int n_pruned = 0;
    for (int k = 0; k < n; k++) {
        const ns_trial_row *t = &rows[k];
        if (t->number >= round_first || !ns_trial_is_final(t->state) ||
            !same_fidelity(s, st, t) || !point_of(sp, t->params, u))
            continue;
        int ok = (t->state == NS_TRIAL_COMPLETE || t->state == NS_TRIAL_PRUNED) &&
                 isfinite(t->val_metric) &&
                 !(t->health_flags > 0 && (t->health_flags & NS_SELECT_REJECT));
        int bad = t->state == NS_TRIAL_DIVERGED || t->state == NS_TRIAL_FAILED ||
                  (t->health_flags > 0 && (t->health_flags & NS_SELECT_REJECT));
        if (!ok && !bad)
            continue; /* no metric and no verdict (an LR range test): not an observation */
        int m = r->n_obs;
        ns_bo_encode(sp, u, r->X + (size_t)m * D);
        r->y[m] = ok ? objective(s, t->val_metric) : NAN;
        r->feas[m] = ok;
        /* stopped by the epoch rules: its metric is of an earlier epoch (another fidelity);
         * raced trials ran whole folds and are of this one */
        cens[m] = ok && t->state == NS_TRIAL_PRUNED && !(t->result && strstr(t->result, "\"raced\":true"));
        n_pruned += cens[m];
        /* cross-validated: the fold spread is the observation's measured noise (squared
         * standard error; the GP adds it to its fitted noise), so a lucky mean of a few
         * folds is not taken at its word */
        double se;
        r->noise[m] = ok && t->result && ns_json_get_num(t->result, "val_se", &se) && isfinite(se) ? se * se : 0;
        r->n_other += t->number < first;
        r->obs[r->n_obs++] = t->number;
    }
    censor_pruned(r->y, r->feas, cens, r->n_obs, n_pruned);
    *out = r;
    r = NULL;
done:
    ns_bayes_round_free(r);
    ns_trial_rows_free(rows, n);
    free(u);
    free(cens);
    return rc;
}

int ns_bayes_plan(ns_search *s, const ns_stage_cfg *st, long first, long i, ns_trial_plan *p, ns_err *err)
{
    const ns_space *sp = &s->base.space;
    if (sp->n == 0 || sp->n > NS_PLAN_MAX_DIMS)
        return ns_err_set(err, NS_EINPUT, "%s: a bayes stage needs 1 to %d searched keys, the "
                          "config has %d", s->base.path, NS_PLAN_MAX_DIMS, sp->n);
    long R = st->round > 0 ? st->round : 1;
    long round_first = first + (i / R) * R, me = first + i;
    int D = ns_bo_dims(sp);
    struct ns_bayes_round *r = s->bayes_round;
    int rc;
    if (!r || r->first != first || r->round_first != round_first || r->D != D) {
        ns_bayes_round_free(r);
        s->bayes_round = NULL;
        if ((rc = round_observations(s, st, first, round_first, D, &s->bayes_round, err)))
            return rc;
        r = s->bayes_round;
    }
    /* pending: the round's trials planned before this one */
    ns_trial_row *rows = NULL;
    int n = 0;
    if ((rc = ns_store_trials_from(s->store, (int)round_first, &rows, &n, err)))
        return rc;
    double *P = malloc((size_t)(n + 1) * D * sizeof *P), *u = malloc((size_t)sp->n * sizeof *u);
    double *x = malloc((size_t)D * sizeof *x), *hyp = malloc((size_t)NS_BO_HYP_LEN(D) * sizeof *hyp);
    if (!P || !u || !x || !hyp) {
        rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
        goto done;
    }
    int n_pend = 0;
    for (int k = 0; k < n; k++) {
        const ns_trial_row *t = &rows[k];
        if (t->number < me && same_fidelity(s, st, t) && point_of(sp, t->params, u))
            ns_bo_encode(sp, u, P + (size_t)n_pend++ * D);
    }
    ns_bo_spec spec;
    ns_bo_spec_default(&spec, D);
    if (st->init > 0)
        spec.n_init = st->init;
    spec.n_init += r->n_other; /* the space-filling design is this stage's own, whatever came before */
    spec.round = (int)R;
    spec.seed = ns_seed_derive(s->base.search.seed, (uint64_t)first, 0x6261796573ULL);
    spec.snap = ns_bo_snap_space;
    spec.snap_ctx = (void *)sp;
    /* warm start: the previous round's hyperparameters, kept beside its first trial, so a
     * resumed study starts each fit where the uninterrupted one did; a round's later
     * proposals read its own first one's, which they take as they are (bo.h, "Rounds") */
    long from = me > round_first ? round_first : round_first - R;
    read_hyp(s, from, from >= first, hyp, NS_BO_HYP_LEN(D));
    /* the round's later proposals reuse its first one's models (a cache: the same bits
     * without it, so a resumed round proposes what the uninterrupted one did) */
    if (!s->bo_cache && !(s->bo_cache = ns_bo_cache_alloc())) {
        rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
        goto done;
    }
    if ((rc = ns_bo_propose_round(&spec, D, r->X, r->y, s->folds.n ? r->noise : NULL, r->feas,
                                  r->n_obs, P, n_pend, hyp, s->bo_cache, x, err)) ||
        (me == round_first && (rc = write_hyp(s, me, hyp, NS_BO_HYP_LEN(D), r->obs, r->n_obs, err))))
        goto done;
    ns_bo_decode(sp, x, p->point);
    p->has_point = 1;
done:
    ns_trial_rows_free(rows, n);
    free(P);
    free(u);
    free(x);
    free(hyp);
    return rc;
}

/* ---- pruning: the median rule and asha ------------------------------------------------------- */

/* The metric of an epoch record that pruning compares, and whether higher is better: the
 * study metric (epochs record each one), so that a trial is stopped by the score it is
 * ranked by. (Pruning an imbalanced study by the validation loss stopped the class-weighted
 * trials, whose loss is higher because they give the rare classes their due, and kept the
 * ones that predicted the majority.) */
static double epoch_metric(const ns_search *s, const ns_epoch_record *r, int *higher)
{
    *higher = ns_metric_higher_is_better(s->metric);
    switch (s->metric) {
    case NS_METRIC_VAL_ACC: return r->val_acc;
    case NS_METRIC_VAL_RMSE: return r->val_rmse;
    case NS_METRIC_VAL_BACC: return r->val_bacc;
    case NS_METRIC_VAL_F1: return r->val_f1;
    default: return r->val_loss;
    }
}

/* The rows a per-class score is as sure as: balanced accuracy is the mean of K recalls, the
 * recall of class c measured on its n_c rows, so its variance is sum_c p(1-p)/n_c / K^2,
 * that of a share on K^2 / sum_c (1/n_c) rows (n when the classes are equal in size, fewer
 * as the smallest shrinks); macro-F1 is taken to be as sure. Classes absent from the
 * validation rows do not count. */
static double per_class_rows(const ns_dataset *val)
{
    if (!val->y || val->n_classes < 1)
        return (double)val->n;
    long *cnt = malloc((size_t)val->n_classes * sizeof *cnt);
    if (!cnt)
        return (double)val->n;
    ns_dataset_class_counts(val, cnt);
    double inv = 0;
    int k = 0;
    for (int c = 0; c < val->n_classes; c++)
        if (cnt[c] > 0) {
            inv += 1.0 / (double)cnt[c];
            k++;
        }
    free(cnt);
    return k ? (double)k * k / inv : (double)val->n;
}

double ns_stage_prune_se(const ns_search *s, double v)
{
    ns_score_kind kind;
    double n = (double)s->data.val.n;
    switch (s->metric) {
    case NS_METRIC_VAL_ACC: kind = NS_SCORE_SHARE; break;
    case NS_METRIC_VAL_BACC:
    case NS_METRIC_VAL_F1:
        kind = NS_SCORE_SHARE;
        n = per_class_rows(&s->data.val);
        break;
    case NS_METRIC_VAL_RMSE: kind = NS_SCORE_RMSE; break;
    default: kind = s->data.task == NS_TASK_REGRESS ? NS_SCORE_MSE : NS_SCORE_XENT; break;
    }
    double se = ns_score_se(kind, v, (long)floor(n));
    return isfinite(se) ? se : 0;
}

/* Reference values needed at an epoch before the median may stop anyone. */
#define PRUNE_MIN_REFERENCE 3

int ns_stage_round_begin(ns_search *s, const ns_stage_cfg *st, long first, long round_first, ns_err *err)
{
    ns_stage_round_end(s);
    if (st->kind != NS_STAGE_BAYES || st->prune == NS_PRUNE_NONE || st->budget != NS_BUDGET_EPOCHS ||
        round_first - first < PRUNE_MIN_REFERENCE)
        return NS_OK;
    int asha = st->prune == NS_PRUNE_ASHA;
    long min_e = st->min_epochs > 0 ? st->min_epochs
                 : (st->epochs / (asha ? 9 : 3) > 0 ? st->epochs / (asha ? 9 : 3) : 1);
    long E = st->epochs;
    double *vals = malloc((size_t)E * (size_t)(round_first - first) * sizeof *vals);
    int *cnt = calloc((size_t)E, sizeof *cnt);
    ns_prune_ref *at = malloc((size_t)E * sizeof *at);
    if (!vals || !cnt || !at) {
        free(vals);
        free(cnt);
        free(at);
        return ns_err_set(err, NS_ERUNTIME, "out of memory");
    }
    long W = round_first - first;
    for (long n = first; n < round_first; n++) {
        ns_epoch_record *recs = NULL;
        int nr = 0, rc = ns_store_epochs(s->store, (int)n, &recs, &nr, err);
        if (rc) {
            free(vals);
            free(cnt);
            free(at);
            return rc;
        }
        for (int k = 0; k < nr; k++) {
            int h;
            double m = epoch_metric(s, &recs[k], &h);
            long e = recs[k].epoch;
            if (e >= 1 && e <= E && isfinite(m))
                vals[(e - 1) * W + cnt[e - 1]++] = m;
        }
        free(recs);
    }
    /* at: every epoch from min_e on; asha: only at the rungs min_e x reduction^k, where
     * a trial goes on when it is within the best 1/reduction of the reference (the
     * synchronous reading of asynchronous successive halving: the reference is the earlier
     * rounds, so the verdict does not depend on timing) */
    int higher;
    ns_epoch_record probe = {0};
    epoch_metric(s, &probe, &higher);
    long rung = min_e;
    for (long e = 0; e < E; e++) {
        at[e] = (ns_prune_ref){NAN, 0, NAN, 0};
        int at_rung = e + 1 == rung;
        if (at_rung)
            rung *= st->reduction;
        if (cnt[e] < PRUNE_MIN_REFERENCE || (asha && !at_rung))
            continue;
        double *v = vals + e * W;
        qsort(v, (size_t)cnt[e], sizeof *v, cmp_double);
        /* ascending v: the incumbent is the top end when higher is better, else the bottom */
        at[e].incumbent = higher ? v[cnt[e] - 1] : v[0];
        at[e].se = ns_stage_prune_se(s, at[e].incumbent);
        if (!asha) {
            at[e].bar = cnt[e] % 2 ? v[cnt[e] / 2] : 0.5 * (v[cnt[e] / 2 - 1] + v[cnt[e] / 2]);
        } else { /* the value the best 1/reduction reach */
            long keep = cnt[e] / st->reduction > 0 ? cnt[e] / st->reduction : 1;
            at[e].bar = higher ? v[cnt[e] - keep] : v[keep - 1];
        }
        at[e].bar_se = ns_stage_prune_se(s, at[e].bar);
    }
    free(vals);
    free(cnt);
    s->prune_at = at;
    s->prune_epochs = E;
    s->prune_min = min_e;
    return NS_OK;
}

void ns_stage_round_end(ns_search *s)
{
    free(s->prune_at);
    s->prune_at = NULL;
    ns_bayes_round_free(s->bayes_round);
    s->bayes_round = NULL;
}

int ns_stage_should_prune(const ns_search *s, const ns_epoch_record *rec)
{
    if (!s->prune_at || rec->epoch < s->prune_min || rec->epoch > s->prune_epochs)
        return 0;
    int higher;
    const ns_prune_ref *r = &s->prune_at[rec->epoch - 1];
    double m = epoch_metric(s, rec, &higher);
    if (!isfinite(r->bar) || !isfinite(m))
        return 0;
    /* worse than the bar and the incumbent by more than chance explains: a verdict on a
     * score measured on few rows, repeated at every epoch, otherwise stops trials that are
     * as good as the best by a row or two */
    double bar_slack = NS_PRUNE_NOISE_SE * r->bar_se, inc_slack = NS_PRUNE_NOISE_SE * r->se;
    return higher ? m < r->bar - bar_slack && m < r->incumbent - inc_slack
                  : m > r->bar + bar_slack && m > r->incumbent + inc_slack;
}
