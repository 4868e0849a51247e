/* select.c — the select stage: the winner among all trials (eligible by health, near-ties
 * to the smaller model within a standard error), what the study budget leaves spent on
 * re-scoring the top candidates on new folds, the winner's test or final model, and a
 * reason for every other top trial. Its choice reads only what the study stores (and,
 * with a budget, what re-scoring measures). Not the trials' own pruning (stage_bayes.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/rng.h"
#include "engine/train/health.h"
#include "model/infer.h"
#include "model/modelfile.h"
#include "search/stages/bayes.h"
#include "search/study/json.h"

/* Trial n's config, from its file. */
static int trial_config(const ns_search *s, int n, ns_config *c, ns_err *err)
{
    char path[4300];
    ns_trial_path(s, n, "config.yaml", path, sizeof path);
    return ns_config_load(c, path, err);
}

/* Parameters of trial n's model from its config into *out. A config that cannot be read
 * (out of memory, a damaged study) is an error: counted as 0 it would win the tie-break on
 * size. */
static int trial_params(const ns_search *s, int n, long *out, ns_err *err)
{
    ns_config c;
    int rc = trial_config(s, n, &c, err);
    if (rc)
        return rc;
    ns_mlp_spec spec;
    ns_pipeline_model_spec(&spec, &c, &s->data);
    ns_config_free(&c);
    *out = (long)ns_mlp_spec_param_count(&spec);
    return NS_OK;
}

static int popcount(int64_t v)
{
    int c = 0;
    for (; v > 0; v &= v - 1)
        c++;
    return c;
}

/* Test loss and metric of trial n's saved model (NaN when there is no test set or no
 * readable model file: the test set is looked at here, once, for the winner). Out of
 * memory or an I/O failure is an error (NS_ERUNTIME): the decision would otherwise be
 * recorded without the test figures for good. */
static int winner_test(const ns_search *s, int n, double *loss, double *acc, double *rmse,
                       ns_err *err)
{
    *loss = *acc = *rmse = NAN;
    const ns_dataset *ds = &s->data.test;
    if (!ds->n)
        return NS_OK;
    char path[4300];
    ns_trial_path(s, n, "model.nsm", path, sizeof path);
    ns_model_file mf;
    ns_err e = {0};
    int rc = ns_model_load(path, &mf, &e);
    if (rc)
        return rc == NS_ERUNTIME ? (err ? (*err = e, rc) : rc) : NS_OK;
    /* The network's own batch evaluation, as the trainer's: the loss with the model's label
     * smoothing, but without class weights (a model file carries none), so an imbalanced
     * winner's test loss here is the plain one; accuracy and RMSE are unaffected. */
    const int EB = 1024;
    ns_infer r;
    rc = ns_infer_open(&r, EB, &e);
    int ok = !rc && !(rc = ns_infer_load(&r, &mf, &e));
    if (rc == NS_EINPUT)
        rc = NS_OK; /* a model file that does not describe its network: no test figures */
    double ls = 0, ws = 0, sq = 0;
    long hits = 0;
    for (long i0 = 0; i0 < ds->n && ok; i0 += EB) {
        int B = (int)(ds->n - i0 < EB ? ds->n - i0 : EB);
        ns_batch_out o;
        ok = !r.m->net.batch(r.m->net.ctx, ds->x + (size_t)i0 * ds->d, ds->y ? ds->y + i0 : NULL,
                             ds->t ? ds->t + i0 : NULL, B, 0, 0, &o, &e);
        if (!ok) {
            rc = e.code ? e.code : NS_ERUNTIME;
            break;
        }
        ls += o.loss_sum;
        ws += o.weight_sum;
        hits += o.correct;
        sq += o.sq_err;
    }
    if (ok) {
        *loss = ws > 0 ? ls / ws : NAN;
        if (ds->task == NS_TASK_CLASSIFY)
            *acc = (double)hits / (double)ds->n;
        else
            *rmse = sqrt(sq / (double)ds->n) * s->data.stdz.t_std;
    }
    if (rc && err)
        *err = e;
    ns_infer_close(&r);
    ns_model_file_free(&mf);
    return rc;
}

/* Whether trial t comes from a stage that trains to the config's budget or its own search
 * budget (random, bayes, final) rather than a few evidence epochs. */
static int full_budget_stage(const ns_search *s, const ns_trial_row *t)
{
    int pos = t->stage ? atoi(t->stage) : 0;
    if (pos < 1 || pos > s->base.search.n_stages)
        return 0;
    ns_stage_kind k = s->base.search.stages[pos - 1].kind;
    return k == NS_STAGE_RANDOM || k == NS_STAGE_BAYES || k == NS_STAGE_FINAL;
}

typedef struct cand {
    const ns_trial_row *t;
    int eligible;          /* converged, stable, not overfitting */
    long params;
    int warnings;          /* findings that did not disqualify it */
    double metric, se;     /* its study metric and standard error (cross-validated or re-scored:
                              over all its folds; holdout: holdout_se) */
    double *folds;         /* the metric of every fold it ran (holdout: re-scoring's only) */
    int n_folds;
    int rescored;          /* folds that re-scoring added */
    double cost;           /* seconds its last re-scoring repeat took; 0: none yet */
    int rescore_diverged;  /* diverged on a re-scoring fold: no longer eligible */
} cand;

static void free_cands(cand *c, int nc)
{
    for (int k = 0; k < nc; k++)
        free(c[k].folds);
    free(c);
}

/* Re-scoring (with a study budget): the candidates within this many of the best's standard
 * errors, at most NS_RESCORE_TOP of them, run one more repeat of K-fold cross-validation,
 * round after round, until one stands out, the budget ends or NS_RESCORE_ROUNDS. */
#define NS_RESCORE_WINDOW 2.0
#define NS_RESCORE_TOP 4
#define NS_RESCORE_ROUNDS 5
#define SEED_RESCORE 0x72657363ULL /* "resc": round r's fold assignment */
/* A holdout study re-scores on folds of its training file, which are K copies of it: not
 * above this many feature values in all (1 GiB of floats). */
#define NS_RESCORE_MAX_VALUES (1L << 28)

/* The folds re-scoring uses, 0 when select does not re-score: the study's own K under
 * cross-validation; under holdout, NS_CV_DEFAULT_FOLDS folds of the training file the
 * validation split was cut from (its winner was chosen as the best of many on that one
 * split, whose noise flatters it: folds over every row judge the short-list afresh). */
static int rescore_k(const ns_search *s)
{
    if (s->budget <= 0)
        return 0;
    if (s->folds.n)
        return s->folds.k;
    long rows = s->data.train.n + s->data.val.n;
    if (s->data.val.n <= 0 || rows < 4 || rows * (long)NS_CV_DEFAULT_FOLDS * (long)s->data.train.d > NS_RESCORE_MAX_VALUES)
        return 0;
    return rows < 2L * NS_CV_DEFAULT_FOLDS ? (int)(rows / 2) : NS_CV_DEFAULT_FOLDS;
}

/* A holdout candidate's standard error: the validation split's, per class for the
 * class-averaged metrics (ns_stage_prune_se), 1% of the value for losses, whose per-row
 * spread the study does not keep. */
static double holdout_se(const ns_search *s, double metric)
{
    return s->higher ? ns_stage_prune_se(s, metric) : 0.01 * fabs(metric);
}

static int better(const ns_search *s, double a, double b) { return s->higher ? a > b : a < b; }

/* A candidate that can win: eligible (any, when none is), and once re-scoring has run
 * (rescored_only), re-scored. The best of hundreds of trials on its first K folds is
 * flattered by them (docs/BENCHMARKS.md, "Only re-scored candidates win"); set against
 * candidates whose means take in more folds, it would win on that luck. */
static int in_play(const cand *x, int fallback, int rescored_only)
{
    return (x->eligible || fallback) && isfinite(x->metric) && (!rescored_only || x->rescored > 0);
}

/* The best candidate in play by metric, or -1. */
static int best_cand(const ns_search *s, const cand *c, int nc, int fallback, int rescored_only)
{
    int b = -1;
    for (int k = 0; k < nc; k++)
        if (in_play(&c[k], fallback, rescored_only) && (b < 0 || better(s, c[k].metric, c[b].metric)))
            b = k;
    return b;
}

/* The selection rule over the candidates in play: the best metric and its standard error
 * (the best's own: over its folds when cross-validated or re-scored, else holdout_se), and
 * the winner: among those within one standard error of the best, the fewest parameters,
 * then the fewest warnings, then the better metric, then the lower number. *w = -1 when
 * none is in play. Fills the params of those it compares. */
static int choose(ns_search *s, cand *c, int nc, int fallback, int rescored_only, double *best,
                  double *se, int *w, ns_err *err)
{
    int bk = best_cand(s, c, nc, fallback, rescored_only);
    *w = -1;
    *best = NAN;
    *se = 0;
    if (bk < 0)
        return NS_OK;
    *best = c[bk].metric;
    *se = isfinite(c[bk].se) ? c[bk].se : holdout_se(s, *best);
    for (int k = 0; k < nc; k++) {
        if (!in_play(&c[k], fallback, rescored_only) || fabs(c[k].metric - *best) > *se)
            continue;
        int rc = trial_params(s, c[k].t->number, &c[k].params, err);
        if (rc)
            return rc;
        if (*w < 0) {
            *w = k;
            continue;
        }
        const cand *a = &c[k], *b = &c[*w];
        int take = a->params != b->params ? a->params < b->params
                   : a->warnings != b->warnings ? a->warnings < b->warnings
                   : a->metric != b->metric ? better(s, a->metric, b->metric)
                   : a->t->number < b->t->number;
        if (take)
            *w = k;
    }
    return NS_OK;
}

/* What one more repeat of the folds is expected to cost candidate x: what its last one
 * took, else its own run (under cross-validation its K folds; under holdout one training on
 * the training split, scaled to K trainings on (K-1)/K of every row). */
static double repeat_cost(const ns_search *s, const cand *x, int K)
{
    if (x->cost > 0)
        return x->cost;
    if (s->folds.n)
        return x->t->seconds;
    double rows = (double)(s->data.train.n + s->data.val.n);
    return x->t->seconds * (K - 1) * rows / (double)(s->data.train.n > 0 ? s->data.train.n : 1);
}

/* The wall time of costs[0..n) taken in order by P workers, each the next free one's. */
static double round_wall(const double *costs, int n, int P)
{
    double busy[NS_RESCORE_TOP] = {0}, wall = 0;
    for (int i = 0; i < n; i++) {
        int w = 0;
        for (int q = 1; q < P && q < NS_RESCORE_TOP; q++)
            if (busy[q] < busy[w])
                w = q;
        busy[w] += costs[i];
        wall = busy[w] > wall ? busy[w] : wall;
    }
    return wall;
}

/* One re-scoring repeat of trial n's config on the folds fo into *cv; *diverged: it diverged
 * on a fold (cv->done folds ran). cv->done < fo->n otherwise: interrupted, nothing to keep. */
static int rescore_one(ns_search *s, const ns_folds *fo, int n, ns_cv_result *cv, int *diverged,
                       ns_err *err)
{
    ns_config tc;
    int rc = trial_config(s, n, &tc, err);
    if (rc)
        return rc;
    ns_run_result res = {0};
    rc = ns_cv_run(s, fo, &tc, 0, cv, &res, err);
    ns_config_free(&tc);
    *diverged = !rc && !res.interrupted && res.diverged;
    if (!rc && res.interrupted)
        cv->done = 0;
    return rc;
}

/* Spends what the study budget leaves before the final model on re-scoring the top candidates
 * (NS_RESCORE_*) with K folds (rescore_k): each round draws a new fold assignment from the
 * study seed and the round, trains each candidate's config on it and re-computes its mean and
 * standard error over all its folds (a holdout candidate's validation-split figure is
 * replaced: its metric becomes the mean over its folds). A round takes the candidates in order
 * while their expected costs (repeat_cost), trained side by side on the -j workers
 * (round_wall), and the final model fit in the budget; at least two. Stops early on Ctrl-C
 * (keeping the rounds done). *rounds: rounds run. */
static int rescore(ns_search *s, cand *c, int nc, int fallback, int K, int *rounds, ns_err *err)
{
    *rounds = 0;
    /* the study budget, or the select stage's own seconds when they end first */
    const double end = fmin(s->t_start + s->budget, s->stage_stop_at);
    /* under MPI rank 0 re-scores, on the one core it keeps for itself */
    const int P = s->opts->ranks <= 1 && s->opts->parallel > 1 ? s->opts->parallel : 1;
    for (int r = 1; r <= NS_RESCORE_ROUNDS; r++) {
        /* under holdout, rounds after the first go on among the re-scored: a split's figure
         * and a mean over folds are different estimates, the split's flattered by the
         * search that picked on it, so they are not ranked together */
        const int only = !s->folds.n && r > 1;
        int b = best_cand(s, c, nc, fallback, only);
        if (b < 0 || !isfinite(c[b].se))
            return NS_OK;
        int top[NS_RESCORE_TOP], nt = 0, rw = -1;
        double rbest, rse;
        int rc = choose(s, c, nc, fallback, only, &rbest, &rse, &rw, err);
        if (rc)
            return rc;
        top[nt++] = b;
        /* the one the rule would choose now (within one standard error of b), so that the
         * winner is among the re-scored */
        if (rw >= 0 && rw != b)
            top[nt++] = rw;
        while (nt < NS_RESCORE_TOP) { /* the next best within the window, in metric order */
            int k = -1;
            for (int q = 0; q < nc; q++) {
                int in = 0;
                for (int i = 0; i < nt; i++)
                    in |= top[i] == q;
                if (!in && in_play(&c[q], fallback, only) &&
                    fabs(c[q].metric - c[b].metric) <= NS_RESCORE_WINDOW * c[b].se &&
                    (k < 0 || better(s, c[q].metric, c[k].metric)))
                    k = q;
            }
            if (k < 0)
                break;
            top[nt++] = k;
        }
        /* the final model after it: under cross-validation the ensemble retrains the best's
         * folds (its own run time), the refit one fold's training on 1/(K-1) more rows; a
         * holdout winner keeps its own model */
        double reserve = !s->folds.n ? 0
                         : c[b].t->seconds * (ns_final_is_ensemble(s) ? 1.0 : 1.25 / s->folds.k);
        /* and the decision offsets: under cross-validation the best's folds trained again,
         * under holdout its config trained again with them */
        if (ns_offsets_applies(s))
            reserve += c[b].t->seconds;
        double t0 = ns_now_s(), cost[NS_RESCORE_TOP];
        int fit = 0;
        for (int i = 0; i < nt; i++)
            cost[i] = repeat_cost(s, &c[top[i]], K);
        while (fit < nt && t0 + round_wall(cost, fit + 1, P) + reserve < end)
            fit++;
        nt = fit;
        if (nt < 2 || (s->opts->stop && *s->opts->stop))
            return NS_OK; /* the best stands out, or no time for another round */
        ns_folds fo;
        rc = ns_prepare_folds(&fo, &s->base, K, 1,
                              ns_seed_derive(s->base.search.seed, (uint64_t)r, SEED_RESCORE), err);
        if (rc)
            return rc;
        /* the candidates side by side on the study's -j workers: each one's folds are the
         * same bits whichever worker trains them */
        ns_cv_result cv[NS_RESCORE_TOP];
        ns_err e[NS_RESCORE_TOP];
        int rcs[NS_RESCORE_TOP], div[NS_RESCORE_TOP], stopped = 0;
#pragma omp parallel for num_threads(P) schedule(dynamic, 1) reduction(| : stopped)
        for (int i = 0; i < nt; i++) {
            double t1 = ns_now_s();
            memset(&e[i], 0, sizeof e[i]);
            rcs[i] = rescore_one(s, &fo, c[top[i]].t->number, &cv[i], &div[i], &e[i]);
            stopped |= !rcs[i] && !div[i] && cv[i].done < fo.n;
            c[top[i]].cost = ns_now_s() - t1;
        }
        ns_folds_free(&fo);
        for (int i = 0; i < nt; i++)
            if (rcs[i] && !rc) {
                rc = rcs[i];
                if (err)
                    *err = e[i];
            }
        for (int i = 0; i < nt && !rc && !stopped; i++) {
            cand *x = &c[top[i]];
            if (div[i]) { /* a config that diverges on a fold is a diverging config */
                x->rescore_diverged = 1;
                x->eligible = 0;
                continue;
            }
            double *more = realloc(x->folds, (size_t)(x->n_folds + cv[i].done) * sizeof *more);
            if (!more) {
                rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
                break;
            }
            x->folds = more;
            memcpy(x->folds + x->n_folds, cv[i].metric, (size_t)cv[i].done * sizeof *more);
            x->n_folds += cv[i].done;
            x->rescored += cv[i].done;
            ns_fold_mean_se(x->folds, x->n_folds, &x->metric, &x->se);
        }
        for (int i = 0; i < nt; i++)
            if (!rcs[i])
                ns_cv_result_free(&cv[i]);
        if (rc || stopped) /* an interrupted round is not counted: the rounds done stand */
            return rc;
        *rounds = r;
    }
    return NS_OK;
}

/* Why a trial is not a candidate: its state (each trial once), then, for a complete trial
 * with a metric, each disqualifying finding (a trial with several counts under each; a
 * diverged finding counts as "diverged"). The decision's "ineligible" keys, in order. */
enum { WHY_PRUNED, WHY_DIVERGED, WHY_FAILED, WHY_NOT_RUN, WHY_NO_METRIC, WHY_NOT_JUDGED,
       WHY_SHORT_STAGE, WHY_N };
static const char *const why_names[WHY_N] = {"pruned", "diverged", "failed", "not_run",
                                             "no_metric", "not_judged", "short_stage"};

/* A trial of an lr_range stage: a sweep, never a candidate and not counted. */
static int range_test(const ns_trial_row *t)
{
    static const char kind[] = ":lr_range";
    size_t n = strlen(t->stage), k = sizeof kind - 1;
    return n >= k && !strcmp(t->stage + n - k, kind);
}

/* ,"considered":N,"ineligible":{"pruned":..,"diverged":..,"failed":..,<finding>:..,
 * "not_run":..,"no_metric":..,"not_judged":..,"short_stage":..}: how many trials (range
 * tests aside) could have won and, per reason, why the others could not; every key always
 * present. short_stage: a complete batch_sweep or compare trial while searched trials exist
 * (searched != 0). */
static void eligibility_json(const ns_search *s, const ns_trial_row *rows, int n, int64_t unfit,
                             int searched, ns_jbuf *j)
{
    int why[WHY_N] = {0}, code[64] = {0}, considered = 0;
    for (int k = 0; k < n; k++) {
        const ns_trial_row *t = &rows[k];
        if (range_test(t))
            continue;
        considered++;
        switch (t->state) {
        case NS_TRIAL_COMPLETE: break;
        case NS_TRIAL_PRUNED: why[WHY_PRUNED]++; continue;
        case NS_TRIAL_DIVERGED: why[WHY_DIVERGED]++; continue;
        case NS_TRIAL_FAILED: why[WHY_FAILED]++; continue;
        default: why[WHY_NOT_RUN]++; continue;
        }
        if (!isfinite(t->val_metric))
            why[WHY_NO_METRIC]++;
        else if (searched && !full_budget_stage(s, t))
            why[WHY_SHORT_STAGE]++;
        else if (t->health_flags < 0)
            why[WHY_NOT_JUDGED]++;
        else
            for (int b = 0; b < 64 && ns_health_code_name(b); b++) {
                int64_t bit = (int64_t)1 << b;
                if (!(t->health_flags & unfit & bit))
                    continue;
                if (bit == NS_HEALTH_DIVERGED)
                    why[WHY_DIVERGED]++;
                else
                    code[b]++;
            }
    }
    ns_jbuf_putf(j, ",\"considered\":%d,\"ineligible\":{", considered);
    for (int w = WHY_PRUNED; w <= WHY_FAILED; w++)
        ns_jbuf_putf(j, "%s\"%s\":%d", w ? "," : "", why_names[w], why[w]);
    for (int b = 0; b < 64 && ns_health_code_name(b); b++)
        if ((unfit & ((int64_t)1 << b)) && ((int64_t)1 << b) != NS_HEALTH_DIVERGED)
            ns_jbuf_putf(j, ",\"%s\":%d", ns_health_code_name(b), code[b]);
    for (int w = WHY_NOT_RUN; w < WHY_N; w++)
        ns_jbuf_putf(j, ",\"%s\":%d", why_names[w], why[w]);
    ns_jbuf_put(j, "}", 1);
}

/* The space's side of key for the advice: "train.lr (searched up to 0.1)" (upper) or
 * "(searched from 1e-05)", "(a choice of 3)", or "(fixed at 0: search it)" when it is not
 * searched. */
static void key_bound(const ns_search *s, const char *key, double fixed, int upper, char *buf, size_t cap)
{
    int i = ns_space_find(&s->base.space, key);
    const ns_dim *d = i >= 0 ? &s->base.space.dims[i] : NULL;
    if (!d)
        snprintf(buf, cap, "%s (fixed at %g: search it)", key, fixed);
    else if (d->kind == NS_DIM_CHOICE)
        snprintf(buf, cap, "%s (a choice of %d)", key, d->n_choices);
    else
        snprintf(buf, cap, "%s (searched %s %g)", key, upper ? "up to" : "from", upper ? d->hi : d->lo);
}

/* Fewer than one complete candidate in NS_ADVICE_SHARE (of at least NS_ADVICE_MIN) eligible:
 * the search space, not bad luck, keeps the trials from training well, and the finding
 * behind most of the others says which keys to change. In the stored decisions of three
 * tabular benchmark runs (110 studies) the rule held in 12, overfitting the most frequent
 * finding in each (pd_speech: 201 rows of 751 features, 1 eligible of 71-116). */
#define NS_ADVICE_SHARE 10
#define NS_ADVICE_MIN 10

/* The advice for a study whose candidates c[0..nc) left n_eligible eligible, into buf
 * ("" when the rule above does not hold or no finding group stands out). A trial counts
 * under each group it has a disqualifying finding of. */
static void space_advice(const ns_search *s, const cand *c, int nc, int n_eligible, char *buf, size_t cap)
{
    buf[0] = 0;
    if (nc < NS_ADVICE_MIN || (long)n_eligible * NS_ADVICE_SHARE >= nc)
        return;
    int overfit = 0, unstable = 0, stalled = 0;
    for (int k = 0; k < nc; k++) {
        int64_t f = c[k].t->health_flags;
        if (c[k].eligible || f < 0)
            continue;
        overfit += (f & (NS_HEALTH_OVERFITTING | NS_HEALTH_GEN_GAP)) != 0;
        unstable += (f & (NS_HEALTH_OSCILLATING | NS_HEALTH_LOSS_SPIKES | NS_HEALTH_EXPLODING)) != 0;
        stalled += (f & (NS_HEALTH_NOT_CONVERGED | NS_HEALTH_VANISHING)) != 0;
    }
    char a[96], b[96], elig[96];
    if (n_eligible == 0)
        snprintf(elig, sizeof elig, "none is eligible, so select chose among flagged trials");
    else
        snprintf(elig, sizeof elig, "only %d %s eligible, so select chose among few", n_eligible,
                 n_eligible == 1 ? "is" : "are");
    if (overfit > 0 && overfit >= unstable && overfit >= stalled) {
        key_bound(s, "model.dropout", s->base.model.dropout, 1, a, sizeof a);
        key_bound(s, "train.weight_decay", s->base.train.opt.weight_decay, 1, b, sizeof b);
        snprintf(buf, cap, "%d of %d complete trials overfit (overfitting or generalisation_gap) and "
                 "%s. For more healthy trials on %ld rows of %d features, raise the upper bounds "
                 "of %s and %s, search smaller models (model.width, model.depth or model.hidden), "
                 "or give it more rows or fewer features",
                 overfit, nc, elig, s->data.train.n + s->data.val.n, s->data.train.d, a, b);
    } else if (unstable > 0 && unstable >= stalled) {
        key_bound(s, "train.lr", s->base.train.lr, 1, a, sizeof a);
        key_bound(s, "train.batch_size", s->base.train.batch_size, 1, b, sizeof b);
        snprintf(buf, cap, "%d of %d complete trials oscillate or spike (oscillating, loss_spikes or "
                 "exploding_gradients) and %s. For more healthy trials, lower the upper bound of "
                 "%s, search larger batches than %s, or set train.clip_norm",
                 unstable, nc, elig, a, b);
    } else if (stalled > 0) {
        key_bound(s, "train.lr", s->base.train.lr, 0, a, sizeof a);
        snprintf(buf, cap, "%d of %d complete trials did not converge (not_converged or "
                 "vanishing_gradients) and %s. For more healthy trials, raise the lower bound of "
                 "%s, or train for more epochs (train.epochs, or the stage's epochs)",
                 stalled, nc, elig, a);
    }
}

/* What the winner c[w] is expected to score on new data. Re-scored under holdout, it was
 * chosen by its mean over folds of every training row among the few re-scored: that mean
 * is the estimate. Resampling the validation split it was short-listed on would describe
 * that split, whose own luck (the same for every candidate) the folds average out
 * (docs/BENCHMARKS.md, "The winner's estimate"). Otherwise the candidates in play (before
 * re-scoring narrowed them) are what it was chosen from: the bootstrap bias-corrected
 * estimate over their held-out predictions. */
static int winner_estimate(ns_search *s, const cand *c, int nc, int w, int fallback,
                           ns_estimate_result *est, ns_err *err)
{
    memset(est, 0, sizeof *est);
    if (!s->folds.n && c[w].rescored > 0) {
        int nr = 0;
        for (int k = 0; k < nc; k++)
            nr += in_play(&c[k], fallback, 1);
        *est = (ns_estimate_result){.done = 1, .rescored = 1, .value = c[w].metric,
                                    .measured = c[w].t->val_metric, .candidates = nr,
                                    .rows = s->data.train.n + s->data.val.n};
        return NS_OK;
    }
    int *pool = malloc((size_t)nc * sizeof *pool), np = 0;
    if (!pool)
        return ns_err_set(err, NS_ERUNTIME, "out of memory");
    pool[np++] = c[w].t->number;
    for (int k = 0; k < nc; k++)
        if (k != w && in_play(&c[k], fallback, 0))
            pool[np++] = c[k].t->number;
    int rc = ns_winner_estimate(s, pool, np, est, err);
    free(pool);
    return rc;
}

int ns_select_decide(ns_search *s, const ns_stage_cfg *st, ns_jbuf *j, ns_err *err)
{
    ns_trial_row *rows = NULL;
    int n = 0;
    int rc = ns_store_trials(s->store, &rows, &n, err);
    if (rc)
        return rc;
    cand *c = calloc((size_t)(n > 0 ? n : 1), sizeof *c);
    if (!c) {
        ns_trial_rows_free(rows, n);
        return ns_err_set(err, NS_ERUNTIME, "out of memory");
    }
    const int64_t unfit = NS_SELECT_REJECT | NS_HEALTH_NOT_CONVERGED;
    /* the range test, batch sweep and comparison train a few epochs at the reference point:
     * evidence for their decisions, candidates only when no random, bayes or final trial
     * completed (a winner of 3 epochs chosen on noise is what a search must not hand out) */
    int searched = 0;
    for (int k = 0; k < n; k++)
        searched |= rows[k].state == NS_TRIAL_COMPLETE && isfinite(rows[k].val_metric) &&
                    full_budget_stage(s, &rows[k]);
    int nc = 0, n_eligible = 0;
    for (int k = 0; k < n; k++) {
        const ns_trial_row *t = &rows[k];
        if (t->state != NS_TRIAL_COMPLETE || !isfinite(t->val_metric) || (searched && !full_budget_stage(s, t)))
            continue;
        cand *x = &c[nc++];
        x->t = t;
        x->eligible = t->health_flags >= 0 && !(t->health_flags & unfit);
        x->warnings = popcount(t->health_flags);
        x->metric = t->val_metric;
        x->se = s->folds.n ? NAN : holdout_se(s, x->metric);
        n_eligible += x->eligible;
        double fold[NS_CV_MAX_FOLDS * NS_CV_MAX_REPEATS];
        int nf = s->folds.n && t->result ? ns_json_get_nums(t->result, "folds", fold, NS_CV_MAX_FOLDS * NS_CV_MAX_REPEATS) : -1;
        if (nf >= 2 && (x->folds = malloc((size_t)nf * sizeof *x->folds))) {
            memcpy(x->folds, fold, (size_t)nf * sizeof *fold);
            x->n_folds = nf;
            ns_json_get_num(t->result, "val_se", &x->se);
        }
    }
    int rounds = 0, K = rescore_k(s);
    if (K && (rc = rescore(s, c, nc, n_eligible == 0, K, &rounds, err))) {
        free_cands(c, nc);
        ns_trial_rows_free(rows, n);
        return rc;
    }
    /* re-scoring may have found one diverging: "eligible" counts what is eligible now */
    n_eligible = 0;
    for (int k = 0; k < nc; k++)
        n_eligible += c[k].eligible;
    int fallback = n_eligible == 0;
    double best = NAN, se = 0;
    int w = -1;
    /* once re-scoring has run, only the re-scored compete (see in_play) */
    if ((rc = choose(s, c, nc, fallback, rounds > 0, &best, &se, &w, err))) {
        free_cands(c, nc);
        ns_trial_rows_free(rows, n);
        return rc;
    }
    if (w < 0) {
        ns_jbuf_putf(j, "\"winner\":null,\"reason\":\"no complete trial with a metric\"");
        eligibility_json(s, rows, n, unfit, searched, j);
        free_cands(c, nc);
        ns_trial_rows_free(rows, n);
        return NS_OK;
    }
    const ns_trial_row *win = c[w].t;
    ns_estimate_result est;
    if ((rc = winner_estimate(s, c, nc, w, fallback, &est, err))) {
        free_cands(c, nc);
        ns_trial_rows_free(rows, n);
        return rc;
    }
    double tl, ta, tr;
    ns_final_result fin = {0};
    ns_offsets_result off = {0};
    const int fit_offsets = ns_offsets_applies(s);
    if (fit_offsets && (rc = ns_winner_offsets(s, win->number, &off, err))) {
        free_cands(c, nc);
        ns_trial_rows_free(rows, n);
        return rc;
    }
    /* no trial model under cross-validation: the final model is the refit or the fold
     * ensemble; under holdout the winner's own, or its config with offsets */
    if (s->folds.n || off.nonzero) {
        if ((rc = ns_final_model(s, win->number, win->result, &off, &fin, err))) {
            free_cands(c, nc);
            ns_trial_rows_free(rows, n);
            return rc;
        }
        tl = fin.test_loss, ta = fin.test_acc, tr = fin.test_rmse;
    } else if ((rc = winner_test(s, win->number, &tl, &ta, &tr, err))) {
        free_cands(c, nc);
        ns_trial_rows_free(rows, n);
        return rc;
    }
    ns_jbuf_putf(j, "\"winner\":%d,\"stage\":\"%s\",\"%s\":", win->number, win->stage,
                 ns_metric_name(s->metric));
    ns_jbuf_num(j, c[w].metric);
    ns_jbuf_put(j, ",\"standard_error\":", 18);
    ns_jbuf_num(j, se);
    ns_jbuf_putf(j, ",\"params\":%ld,\"eligible\":%d,\"fallback\":%s,\"test_loss\":", c[w].params,
                 n_eligible, fallback ? "true" : "false");
    ns_jbuf_num(j, tl);
    ns_jbuf_put(j, s->data.task == NS_TASK_CLASSIFY ? ",\"test_acc\":" : ",\"test_rmse\":", 12);
    ns_jbuf_num(j, s->data.task == NS_TASK_CLASSIFY ? ta : tr);
    ns_final_json(j, win->number, &fin);
    if (fit_offsets && !off.interrupted)
        ns_offsets_json(j, s, &off);
    ns_estimate_json(j, s, &est);
    /* the other top trials by metric (the re-scored first, when re-scoring ran: their
     * figures are of another kind), each with why it lost */
    ns_jbuf_put(j, ",\"others\":[", 11);
    int shown = 0;
    unsigned char *used = calloc((size_t)nc + 1, 1);
    while (used && shown < st->top) {
        int k = -1;
        for (int q = 0; q < nc; q++) {
            if (q == w || used[q])
                continue;
            int rq = rounds > 0 && c[q].rescored > 0, rk = k >= 0 && rounds > 0 && c[k].rescored > 0;
            if (k < 0 || rq > rk || (rq == rk && better(s, c[q].metric, c[k].metric)))
                k = q;
        }
        if (k < 0)
            break;
        used[k] = 1;
        const cand *x = &c[k];
        char why[256];
        if (x->rescore_diverged && !fallback) {
            snprintf(why, sizeof why, "diverged on a fold of re-scoring");
        } else if (!x->eligible && !fallback) {
            size_t at = (size_t)snprintf(why, sizeof why, "health:");
            for (int b = 0; ns_health_code_name(b) && at < sizeof why; b++)
                if (x->t->health_flags > 0 && (x->t->health_flags & ((int64_t)1 << b) & unfit))
                    at += (size_t)snprintf(why + at, sizeof why - at, " %s", ns_health_code_name(b));
            if (x->t->health_flags < 0)
                snprintf(why, sizeof why, "not judged by the health detectors");
        } else if (!in_play(x, fallback, rounds > 0)) {
            if (x->n_folds)
                snprintf(why, sizeof why, "%s %.6g over its first %d folds only: not among the "
                         "candidates re-scored on more", ns_metric_name(s->metric), x->metric, x->n_folds);
            else
                snprintf(why, sizeof why, "%s %.6g on the validation split only: not among the "
                         "candidates re-scored on %d folds", ns_metric_name(s->metric), x->metric, K);
        } else if (fabs(x->metric - best) > se) {
            snprintf(why, sizeof why, "%s %.6g is %.3g from the best, beyond its standard error %.3g",
                     ns_metric_name(s->metric), x->metric, fabs(x->metric - best), se);
        } else {
            long px = 0;
            if ((rc = trial_params(s, x->t->number, &px, err))) {
                free(used);
                free_cands(c, nc);
                ns_trial_rows_free(rows, n);
                return rc;
            }
            if (px != c[w].params)
                snprintf(why, sizeof why, "within the standard error of the best, but %ld parameters "
                         "against the winner's %ld", px, c[w].params);
            else if (x->warnings != c[w].warnings)
                snprintf(why, sizeof why, "as large, but %d health warnings against the winner's %d",
                         x->warnings, c[w].warnings);
            else
                snprintf(why, sizeof why, "tied with the winner; the better metric (or the lower trial "
                         "number) decided");
        }
        ns_jbuf_putf(j, "%s{\"trial\":%d,\"%s\":", shown ? "," : "", x->t->number,
                     ns_metric_name(s->metric));
        ns_jbuf_num(j, x->metric);
        ns_jbuf_put(j, ",\"why\":", 7);
        ns_jbuf_str(j, why, sizeof why);
        ns_jbuf_put(j, "}", 1);
        shown++;
    }
    free(used);
    ns_jbuf_put(j, "]", 1);
    if (rounds > 0) { /* what re-scoring measured, best first as it ended */
        ns_jbuf_putf(j, ",\"rescored\":{\"rounds\":%d,\"trials\":[", rounds);
        int first = 1;
        for (int k = 0; k < nc; k++)
            if (c[k].rescored > 0) {
                ns_jbuf_putf(j, "%s{\"trial\":%d,\"folds\":%d,\"%s\":", first ? "" : ",", c[k].t->number,
                             c[k].n_folds, ns_metric_name(s->metric));
                ns_jbuf_num(j, c[k].metric);
                ns_jbuf_put(j, ",\"se\":", 6);
                ns_jbuf_num(j, c[k].se);
                ns_jbuf_put(j, "}", 1);
                first = 0;
            }
        ns_jbuf_put(j, "]}", 2);
    }
    eligibility_json(s, rows, n, unfit, searched, j);
    char advice[600];
    space_advice(s, c, nc, n_eligible, advice, sizeof advice);
    if (advice[0]) {
        ns_jbuf_put(j, ",\"advice\":", 10);
        ns_jbuf_str(j, advice, sizeof advice);
    }
    free_cands(c, nc);
    ns_trial_rows_free(rows, n);
    return NS_OK;
}
