/* bo.c — GP Bayesian optimisation's proposal (bo.h): Sobol design, constant liar, models
 * on subsets of many observations, feasibility-weighted log EI, Sobol + local candidates
 * with a guard against near-duplicates, and BFGS refinement.
 * No state between calls: everything random derives from (spec->seed, t, purpose). */
#include "search/bo/bo.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_multimin.h>
#include <gsl/gsl_qrng.h>
#include <gsl/gsl_sf_erf.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend/backend.h"
#include "search/bo/gp.h"

enum { SEED_DESIGN = 1, SEED_CAND = 2, SEED_FIT = 3, SEED_FEAS = 4, SEED_LOCAL = 5 };

void ns_bo_spec_default(ns_bo_spec *spec, int d)
{
    memset(spec, 0, sizeof *spec);
    spec->n_init = 2 * d > 5 ? 2 * d : 5;
    spec->n_sobol = 1024;
    spec->n_local = 128;
    spec->n_refine = 5;
    spec->n_starts = 2;
    spec->max_iter = 20;
    spec->refit_every = 10;
    spec->round = 1;
    spec->fit_max = NS_BO_FIT_MAX;
    spec->post_max = NS_BO_POST_MAX;
    spec->min_dist = NS_BO_MIN_DIST;
}

/* Point `index` of a d-dimensional low-discrepancy sequence shifted by `shift` modulo 1,
 * for count points into out (count, d). Sobol up to 40 inputs (GSL's limit), Halton
 * beyond. */
static int lowdisc(int d, long first, int count, const double *shift, double *out, ns_err *err)
{
    gsl_set_error_handler_off();
    gsl_qrng *q = gsl_qrng_alloc(d <= 40 ? gsl_qrng_sobol : gsl_qrng_halton, (unsigned)d);
    if (!q)
        return ns_err_set(err, d > 1229 ? NS_EINPUT : NS_ERUNTIME,
                          "bo: no quasi-random sequence for %d inputs", d);
    double p[d];
    for (long i = 0; i < first; i++)
        gsl_qrng_get(q, p);
    for (int a = 0; a < count; a++) {
        gsl_qrng_get(q, p);
        for (int k = 0; k < d; k++) {
            double v = p[k] + shift[k];
            out[(size_t)a * d + k] = v - floor(v);
        }
    }
    gsl_qrng_free(q);
    return NS_OK;
}

static void draw_shift(uint64_t seed, uint64_t a, uint64_t b, int d, double *shift)
{
    ns_rng r;
    ns_rng_seed(&r, ns_seed_derive(seed, a, b));
    for (int k = 0; k < d; k++)
        shift[k] = ns_rng_uniform(&r);
}

static void snap(const ns_bo_spec *s, double *x, int d)
{
    for (int k = 0; k < d; k++)
        x[k] = x[k] < 0 ? 0 : x[k] > 1 ? 1 : x[k];
    if (s->snap)
        s->snap(x, d, s->snap_ctx);
}

/* ---- acquisition --------------------------------------------------------------------- */

typedef struct acq {
    const ns_gp *obj;   /* objective GP */
    const ns_gp *feas;  /* feasibility GP or NULL */
    double best;        /* best feasible standardised y */
    int d;
    double *x, *gm, *gv, *fm, *fv; /* (d) scratch */
} acq;

/* log Phi(t) and, into *dlog, its derivative phi(t)/Phi(t) */
static double log_Phi(double t, double *dlog)
{
    double lp = gsl_sf_log_erfc(-t / M_SQRT2) - M_LN2;
    if (dlog)
        *dlog = exp(-0.5 * t * t - 0.5 * log(2 * M_PI) - lp);
    return lp;
}

/* log EI (+ log P(feasible)) at x, gradient into g (d) when not NULL. */
static double acq_eval(acq *a, const double *x, double *g)
{
    int d = a->d;
    double m, v;
    ns_gp_predict(a->obj, x, &m, &v, g ? a->gm : NULL, g ? a->gv : NULL);
    double sd = sqrt(v), dm, ds;
    double val = ns_gp_log_ei(m, sd, a->best, g ? &dm : NULL, g ? &ds : NULL);
    if (g)
        for (int k = 0; k < d; k++)
            g[k] = dm * a->gm[k] + ds * a->gv[k] / (2 * sd);
    if (a->feas) {
        double fm, fv, ym, ys;
        ns_gp_predict(a->feas, x, &fm, &fv, g ? a->fm : NULL, g ? a->fv : NULL);
        ns_gp_y_scale(a->feas, &ym, &ys);
        double fsd = sqrt(fv);
        /* t = (ym + ys fm) / (ys fsd) in label units */
        double t = (ym + ys * fm) / (ys * fsd), dl;
        val += log_Phi(t, g ? &dl : NULL);
        if (g)
            for (int k = 0; k < d; k++) {
                double dt = a->fm[k] / fsd - t * a->fv[k] / (2 * fv);
                g[k] += dl * dt;
            }
    }
    return val;
}

/* Refinement over z in R^d, x = (1 - cos(pi z)) / 2; minimise -acq. */
static void z_to_x(const double *z, double *x, double *dxdz, int d)
{
    for (int k = 0; k < d; k++) {
        x[k] = 0.5 * (1 - cos(M_PI * z[k]));
        if (dxdz)
            dxdz[k] = 0.5 * M_PI * sin(M_PI * z[k]);
    }
}

typedef struct refine_ctx {
    acq *a;
    double *x, *dxdz, *gx; /* (d) */
} refine_ctx;

static double ref_f(const gsl_vector *z, void *p)
{
    refine_ctx *c = p;
    z_to_x(z->data, c->x, NULL, c->a->d);
    double v = acq_eval(c->a, c->x, NULL);
    return isfinite(v) ? -v : 1e300;
}

static void ref_fdf(const gsl_vector *z, void *p, double *f, gsl_vector *g)
{
    refine_ctx *c = p;
    int d = c->a->d;
    z_to_x(z->data, c->x, c->dxdz, d);
    double v = acq_eval(c->a, c->x, c->gx);
    *f = isfinite(v) ? -v : 1e300;
    for (int k = 0; k < d; k++)
        g->data[k] = isfinite(v) ? -c->gx[k] * c->dxdz[k] : 0;
}

static void ref_df(const gsl_vector *z, void *p, gsl_vector *g)
{
    double f;
    ref_fdf(z, p, &f, g);
}

/* ---- the models ---------------------------------------------------------------------- */

/* Rows keep[0..n_keep) of (X, y, nv) into (Xs, ys, nvs); nv and nvs may be NULL. */
static void gather(int d, const double *X, const double *y, const double *nv, const int *keep,
                   int n_keep, double *Xs, double *ys, double *nvs)
{
    for (int j = 0; j < n_keep; j++) {
        memcpy(Xs + (size_t)j * d, X + (size_t)keep[j] * d, (size_t)d * sizeof *Xs);
        ys[j] = y[keep[j]];
        if (nv)
            nvs[j] = nv[keep[j]];
    }
}

/* keep (min(n, m)) = ns_bo_subset's choice of m of the n rows: half the best, at most
 * max_best of them, the rest spread. */
static int choose(const double *X, const double *y, int n, int d, int m, int max_best, int *keep,
                  ns_err *err)
{
    int n_best = m / 2 < max_best ? m / 2 : max_best;
    return ns_bo_subset(X, y, n, d, m, n_best, keep, err);
}

/* A GP on the n rows of (X, y, nv) by the rule in bo.h, factorised, into *out (caller
 * frees): the posterior sees at most spec->post_max rows, the hyperparameter fit at most
 * spec->fit_max of those, each time at most max_best of them chosen as the best.
 * n_starts 0: theta0 (d + 2, the posterior's units) as it is, no fit; otherwise the fit's
 * BFGS starts, theta0 warm-starting it when not NULL. *theta_out (d + 2) receives the final
 * theta. out NULL: the fit alone; otherwise the posterior, factorised afresh at that theta
 * (never the fit's own factor), so that a round's later proposals, which take the theta as
 * given, rebuild the same bits. */
static int model(const ns_bo_spec *spec, int d, const double *X, const double *y,
                 const double *nv, int n, int max_best, const double *theta0, int n_starts,
                 ns_rng *rng, ns_gp **out, double *theta_out, ns_err *err)
{
    int np = NS_GP_NTHETA(d);
    int n_post = n < spec->post_max ? n : spec->post_max;
    int n_fit = n_post < spec->fit_max ? n_post : spec->fit_max;
    int *keep = malloc((size_t)n * sizeof *keep);
    double *Xp = malloc((size_t)n_post * d * sizeof *Xp), *yp = malloc((size_t)n_post * sizeof *yp);
    double *nvp = nv ? malloc((size_t)n_post * sizeof *nvp) : NULL;
    double *Xf = NULL, *yf = NULL, *nvf = NULL, th[np];
    ns_gp *post = ns_gp_alloc(d), *fit = NULL;
    int rc = NS_OK;
    if (!keep || !Xp || !yp || (nv && !nvp) || !post) {
        rc = ns_err_set(err, NS_ERUNTIME, "bo: out of memory for a model of %d points", n);
        goto fail;
    }
    if ((rc = choose(X, y, n, d, spec->post_max, max_best, keep, err)))
        goto fail;
    gather(d, X, y, nv, keep, n_post, Xp, yp, nvp);
    if (n_starts == 0) {
        memcpy(th, theta0, sizeof th);
    } else if (n_fit == n_post) { /* one data set: fit on the posterior's rows */
        if ((rc = ns_gp_data_noise(post, Xp, yp, nvp, n_post, err)) ||
            (rc = ns_gp_fit(post, theta0, n_starts, spec->max_iter, rng, err)))
            goto fail;
        memcpy(th, ns_gp_theta(post), sizeof th);
    } else {
        Xf = malloc((size_t)n_fit * d * sizeof *Xf);
        yf = malloc((size_t)n_fit * sizeof *yf);
        nvf = nv ? malloc((size_t)n_fit * sizeof *nvf) : NULL;
        fit = ns_gp_alloc(d);
        if (!Xf || !yf || (nv && !nvf) || !fit) {
            rc = ns_err_set(err, NS_ERUNTIME, "bo: out of memory for a model of %d points", n);
            goto fail;
        }
        if ((rc = choose(Xp, yp, n_post, d, spec->fit_max, max_best, keep, err)))
            goto fail;
        gather(d, Xp, yp, nvp, keep, n_fit, Xf, yf, nvf);
        if ((rc = ns_gp_data_noise(fit, Xf, yf, nvf, n_fit, err)))
            goto fail;
        /* sf2 and sn2 are in standardised units: the same kernel in the posterior's units
         * has log sf2 and log sn2 lower by 2 log(sd_post / sd_fit) */
        double pm, psd, fm, fsd;
        ns_gp_y_stats(yp, n_post, &pm, &psd);
        ns_gp_y_scale(fit, &fm, &fsd);
        double shift = 2 * log(psd / fsd);
        if (theta0) {
            memcpy(th, theta0, sizeof th);
            th[d] += shift;
            th[d + 1] += shift;
        }
        if ((rc = ns_gp_fit(fit, theta0 ? th : NULL, n_starts, spec->max_iter, rng, err)))
            goto fail;
        memcpy(th, ns_gp_theta(fit), sizeof th);
        th[d] -= shift;
        th[d + 1] -= shift;
    }
    memcpy(theta_out, th, sizeof th);
    if (!out)
        goto fail; /* the fit alone: no posterior asked for */
    /* theta before data: the posterior's one factorisation is at the final theta */
    if ((rc = ns_gp_theta_set(post, th, err)) ||
        (rc = ns_gp_data_noise(post, Xp, yp, nvp, n_post, err)))
        goto fail;
    *out = post;
    post = NULL;
fail:
    ns_gp_free(post);
    ns_gp_free(fit);
    free(keep);
    free(Xp);
    free(yp);
    free(nvp);
    free(Xf);
    free(yf);
    free(nvf);
    return rc;
}

/* ---- the collapse guard ---------------------------------------------------------------- */

/* 1 when x (d) is at least min_dist (Euclidean) from every row of A (n, d). */
static int far_from(const double *x, const double *A, int n, int d, double min_dist)
{
    double lim = min_dist * min_dist;
    for (int i = 0; i < n; i++) {
        const double *a = A + (size_t)i * d;
        double s = 0;
        for (int k = 0; k < d && s < lim; k++)
            s += (x[k] - a[k]) * (x[k] - a[k]);
        if (s < lim)
            return 0;
    }
    return 1;
}

/* far_from both the observations and the pending points */
static int allowed(const double *x, const double *X, int n_obs, const double *pending,
                   int n_pending, int d, double min_dist)
{
    return far_from(x, X, n_obs, d, min_dist) && far_from(x, pending, n_pending, d, min_dist);
}

/* ---- a round's shared model ---------------------------------------------------------- */

/* What every proposal of a round shares (bo.h, "Rounds"): the models fitted to the
 * observations, the candidates and their posterior, and the liars appended so far. The key
 * is everything the base was built from, compared bit for bit, so a cache can only save
 * work, never change a result. */
struct ns_bo_cache {
    int built;
    /* the key */
    ns_bo_spec spec;
    int d, n_obs, has_nv, has_feas;
    double *X, *y, *nv;         /* (n_obs d), (n_obs), (n_obs) */
    int *feas;                  /* (n_obs) */
    double *theta_in;           /* (2 (d + 2)) the hyperparameters the call was given */
    int fit_obj, fit_feas;      /* and whether it fitted them */
    double *theta;              /* (2 (d + 2)) the ones the base was built with */
    /* the base */
    ns_gp *obj, *fgp;           /* objective GP (liars appended), feasibility GP or NULL */
    ns_gp_at at;                /* the objective's posterior at the candidates */
    double *cand, *fscore;      /* (n_cand d), (n_cand) log P(feasible) or 0 */
    unsigned char *far;         /* (n_cand) at least min_dist from every observation and liar */
    int n_cand;
    double ybest, best;         /* best feasible y, and standardised */
    double *liars;              /* (n_liars d) appended to obj, in order */
    int n_liars, liar_cap;
};

ns_bo_cache *ns_bo_cache_alloc(void) { return calloc(1, sizeof(ns_bo_cache)); }

static void cache_clear(ns_bo_cache *c)
{
    free(c->X);
    free(c->y);
    free(c->nv);
    free(c->theta);
    free(c->theta_in);
    free(c->feas);
    ns_gp_free(c->obj);
    ns_gp_free(c->fgp);
    ns_gp_at_free(&c->at);
    free(c->cand);
    free(c->fscore);
    free(c->far);
    free(c->liars);
    memset(c, 0, sizeof *c);
}

void ns_bo_cache_free(ns_bo_cache *c)
{
    if (!c)
        return;
    cache_clear(c);
    free(c);
}

static int same_spec(const ns_bo_spec *a, const ns_bo_spec *b)
{
    return a->n_init == b->n_init && a->n_sobol == b->n_sobol && a->n_local == b->n_local &&
           a->n_refine == b->n_refine && a->n_starts == b->n_starts && a->max_iter == b->max_iter &&
           a->refit_every == b->refit_every && a->round == b->round && a->fit_max == b->fit_max &&
           a->post_max == b->post_max && a->min_dist == b->min_dist && a->seed == b->seed &&
           a->snap == b->snap && a->snap_ctx == b->snap_ctx;
}

/* 1 when a and b (n) are the same bits, or both NaN (a NaN read back from text may carry
 * another sign or payload; the GP never reads it) */
static int same_values(const double *a, const double *b, int n)
{
    for (int i = 0; i < n; i++)
        if (!(isnan(a[i]) && isnan(b[i])) && memcmp(&a[i], &b[i], sizeof a[i]))
            return 0;
    return 1;
}

/* 1 when c's base is the one a call with these observations and hyperparameters builds:
 * the base is a function of them and of whether the call fits (fit_obj, fit_feas), so a
 * call that is given what c was given and fits alike matches, and so does a call that
 * fits nothing and is given the hyperparameters c's base was built with (a round's later
 * proposals, given its first one's fit). */
static int cache_matches(const ns_bo_cache *c, const ns_bo_spec *spec, int d, const double *X,
                         const double *y, const double *nv, const int *feas, int n_obs,
                         const double *theta_in, int fit_obj, int fit_feas)
{
    int np = NS_GP_NTHETA(d);
    if (!c->built || c->d != d || c->n_obs != n_obs || c->has_nv != !!nv || c->has_feas != !!feas ||
        !same_spec(&c->spec, spec) || memcmp(c->X, X, (size_t)n_obs * d * sizeof *X))
        return 0;
    int same_call = fit_obj == c->fit_obj && fit_feas == c->fit_feas &&
                    same_values(c->theta_in, theta_in, 2 * np);
    int given_fit = !fit_obj && !fit_feas && same_values(c->theta, theta_in, 2 * np);
    if (!same_call && !given_fit)
        return 0;
    for (int i = 0; i < n_obs; i++) { /* an infeasible y is not read, whatever its bits */
        int f = !feas || feas[i];
        if ((feas && c->feas[i] != feas[i]) || (f && memcmp(&c->y[i], &y[i], sizeof y[i])) ||
            (f && nv && memcmp(&c->nv[i], &nv[i], sizeof nv[i])))
            return 0;
    }
    return 1;
}

/* Builds c's base from the observations (the feasible ones in Xo, yo, nvo: n_feas rows)
 * at the hyperparameters theta (2 (d + 2): the objective's, then the feasibility GP's, NaN
 * when there is none); t0 = n_obs seeds the round's candidates. */
static int cache_build(ns_bo_cache *c, const ns_bo_spec *spec, int d, const double *X,
                       const double *y, const double *nv, const int *feas, int n_obs,
                       const double *Xo, const double *yo, const double *nvo, int n_feas,
                       const double *theta_in, int fit_obj, int fit_feas, const double *theta,
                       ns_err *err)
{
    int np = NS_GP_NTHETA(d), rc;
    double th[np], shift[d]; /* before any jump below */
    cache_clear(c);
    c->spec = *spec;
    c->d = d;
    c->n_obs = n_obs;
    c->has_nv = !!nv;
    c->has_feas = !!feas;
    c->n_cand = spec->n_sobol + spec->n_local;
    c->X = malloc((size_t)(n_obs ? n_obs : 1) * d * sizeof *c->X);
    c->y = malloc((size_t)(n_obs ? n_obs : 1) * sizeof *c->y);
    c->nv = nv ? malloc((size_t)n_obs * sizeof *c->nv) : NULL;
    c->feas = feas ? malloc((size_t)n_obs * sizeof *c->feas) : NULL;
    c->theta = malloc((size_t)2 * np * sizeof *c->theta);
    c->theta_in = malloc((size_t)2 * np * sizeof *c->theta_in);
    c->cand = malloc((size_t)c->n_cand * d * sizeof *c->cand);
    c->fscore = malloc((size_t)c->n_cand * sizeof *c->fscore);
    c->far = malloc((size_t)c->n_cand);
    if (!c->X || !c->y || (nv && !c->nv) || (feas && !c->feas) || !c->theta || !c->theta_in || !c->cand ||
        !c->fscore || !c->far) {
        rc = ns_err_set(err, NS_ERUNTIME, "bo: out of memory");
        goto fail;
    }
    memcpy(c->X, X, (size_t)n_obs * d * sizeof *X);
    memcpy(c->y, y, (size_t)n_obs * sizeof *y);
    if (nv)
        memcpy(c->nv, nv, (size_t)n_obs * sizeof *nv);
    if (feas)
        memcpy(c->feas, feas, (size_t)n_obs * sizeof *feas);
    memcpy(c->theta, theta, (size_t)2 * np * sizeof *theta);
    memcpy(c->theta_in, theta_in, (size_t)2 * np * sizeof *theta_in);
    c->fit_obj = fit_obj;
    c->fit_feas = fit_feas;

    c->ybest = HUGE_VAL;
    for (int i = 0; i < n_feas; i++)
        c->ybest = fmin(c->ybest, yo[i]);
    if ((rc = model(spec, d, Xo, yo, nvo, n_feas, n_feas, theta, 0, NULL, &c->obj, th, err)))
        goto fail;
    double ym, ys;
    ns_gp_y_scale(c->obj, &ym, &ys);
    c->best = (c->ybest - ym) / ys;
    if (n_feas < n_obs) { /* labels +1 / -1; the "best" are the infeasible ones */
        double *lab = malloc((size_t)n_obs * sizeof *lab);
        if (!lab) {
            rc = ns_err_set(err, NS_ERUNTIME, "bo: out of memory");
            goto fail;
        }
        for (int i = 0; i < n_obs; i++)
            lab[i] = feas[i] ? 1.0 : -1.0;
        rc = model(spec, d, X, lab, NULL, n_obs, n_obs - n_feas, theta + np, 0, NULL, &c->fgp, th, err);
        free(lab);
        if (rc)
            goto fail;
    }

    /* the round's candidates: shifted Sobol points, then perturbations of the best
     * observations, all seeded by the round's first proposal number t0 = n_obs */
    draw_shift(spec->seed, (uint64_t)n_obs, SEED_CAND, d, shift);
    if ((rc = lowdisc(d, 1, spec->n_sobol, shift, c->cand, err)))
        goto fail;
    {
        int n_top = n_feas < 5 ? n_feas : 5, top[5];
        for (int j = 0; j < n_top; j++) { /* the n_top lowest feasible y, first on ties */
            int bi = -1;
            for (int i = 0; i < n_obs; i++) {
                if (feas && !feas[i])
                    continue;
                int used = 0;
                for (int q = 0; q < j; q++)
                    used |= top[q] == i;
                if (!used && (bi < 0 || y[i] < y[bi]))
                    bi = i;
            }
            top[j] = bi;
        }
        ns_rng rng;
        ns_rng_seed(&rng, ns_seed_derive(spec->seed, (uint64_t)n_obs, SEED_LOCAL));
        for (int j = 0; j < spec->n_local; j++) {
            double *cj = c->cand + (size_t)(spec->n_sobol + j) * d;
            const double *b = X + (size_t)top[j % n_top] * d;
            double sd = (j / n_top) % 2 ? 0.02 : 0.1;
            for (int k = 0; k < d; k++)
                cj[k] = b[k] + sd * ns_rng_normal(&rng);
        }
    }
    for (int j = 0; j < c->n_cand; j++) {
        snap(spec, c->cand + (size_t)j * d, d);
        c->far[j] = far_from(c->cand + (size_t)j * d, X, n_obs, d, spec->min_dist);
        c->fscore[j] = 0;
    }
    if ((rc = ns_gp_at_init(&c->at, c->obj, c->cand, c->n_cand, err)))
        goto fail;
    if (c->fgp) {
        ns_gp_at fa;
        if ((rc = ns_gp_at_init(&fa, c->fgp, c->cand, c->n_cand, err)))
            goto fail;
        double fm, fs;
        ns_gp_y_scale(c->fgp, &fm, &fs);
        for (int j = 0; j < c->n_cand; j++)
            c->fscore[j] = log_Phi((fm + fs * fa.mean[j]) / (fs * sqrt(fa.var[j])), NULL);
        ns_gp_at_free(&fa);
    }
    c->built = 1;
    return NS_OK;
fail:
    cache_clear(c);
    return rc;
}

/* Appends the pending points c has not seen as liars (each given the best feasible y:
 * it collapses the variance there without inventing improvement). The cached liars must
 * be the first of them, else the base is rebuilt by the caller. */
static int cache_liars(ns_bo_cache *c, const double *pending, int n_pending, ns_err *err)
{
    int d = c->d, rc;
    if (n_pending > c->liar_cap) {
        double *l = realloc(c->liars, (size_t)n_pending * d * sizeof *l);
        if (!l)
            return ns_err_set(err, NS_ERUNTIME, "bo: out of memory");
        c->liars = l;
        c->liar_cap = n_pending;
    }
    for (int i = c->n_liars; i < n_pending; i++) {
        const double *x = pending + (size_t)i * d;
        if ((rc = ns_gp_append(c->obj, x, c->ybest, err)))
            return rc;
        memcpy(c->liars + (size_t)i * d, x, (size_t)d * sizeof *x);
        c->n_liars = i + 1;
        for (int j = 0; j < c->n_cand; j++)
            if (c->far[j])
                c->far[j] = far_from(c->cand + (size_t)j * d, x, 1, d, c->spec.min_dist);
    }
    return ns_gp_at_update(&c->at, c->obj, err);
}

/* ---- proposal ------------------------------------------------------------------------ */

static int check_inputs(const ns_bo_spec *s, int d, const double *X, const double *y,
                        const double *noise_var, const int *feasible, int n_obs,
                        const double *pending, int n_pending, ns_err *err)
{
    if (d < 1 || n_obs < 0 || n_pending < 0)
        return ns_err_set(err, NS_EINPUT, "bo: bad sizes (d %d, %d observations, %d pending)",
                          d, n_obs, n_pending);
    if (s->n_init < 0 || s->n_sobol < 1 || s->n_local < 0 || s->n_refine < 0 ||
        s->n_starts < 1 || s->max_iter < 0 || s->refit_every < 1 || s->round < 1)
        return ns_err_set(err, NS_EINPUT, "bo: bad spec (n_init %d, n_sobol %d, n_local %d, "
                          "n_refine %d, n_starts %d, max_iter %d, refit_every %d, round %d)",
                          s->n_init, s->n_sobol, s->n_local, s->n_refine, s->n_starts,
                          s->max_iter, s->refit_every, s->round);
    if (s->fit_max < 2 || s->post_max < s->fit_max || !(s->min_dist >= 0 && isfinite(s->min_dist)))
        return ns_err_set(err, NS_EINPUT, "bo: bad spec (fit_max %d, post_max %d, min_dist %g): "
                          "2 <= fit_max <= post_max and min_dist >= 0", s->fit_max, s->post_max,
                          s->min_dist);
    for (long i = 0; i < (long)n_obs * d; i++)
        if (!(X[i] >= 0 && X[i] <= 1))
            return ns_err_set(err, NS_EINPUT, "bo: observation %ld input %ld is %g, outside [0, 1]",
                              i / d, i % d, X[i]);
    for (long i = 0; i < (long)n_pending * d; i++)
        if (!(pending[i] >= 0 && pending[i] <= 1))
            return ns_err_set(err, NS_EINPUT, "bo: pending point %ld input %ld is %g, outside [0, 1]",
                              i / d, i % d, pending[i]);
    for (int i = 0; i < n_obs; i++) {
        if (feasible && !feasible[i])
            continue;
        if (!isfinite(y[i]))
            return ns_err_set(err, NS_EINPUT, "bo: observation %d is feasible but y is %g", i, y[i]);
        if (noise_var && !(noise_var[i] >= 0 && isfinite(noise_var[i])))
            return ns_err_set(err, NS_EINPUT, "bo: observation %d's noise variance is %g, not "
                              "finite and >= 0", i, noise_var[i]);
    }
    return NS_OK;
}

int ns_bo_propose(const ns_bo_spec *spec, int d, const double *X, const double *y,
                  const int *feasible, int n_obs, const double *pending, int n_pending,
                  double *hyp, double *out, ns_err *err)
{
    return ns_bo_propose_round(spec, d, X, y, NULL, feasible, n_obs, pending, n_pending, hyp,
                               NULL, out, err);
}

int ns_bo_propose_noisy(const ns_bo_spec *spec, int d, const double *X, const double *y,
                        const double *noise_var, const int *feasible, int n_obs,
                        const double *pending, int n_pending, double *hyp, double *out,
                        ns_err *err)
{
    return ns_bo_propose_round(spec, d, X, y, noise_var, feasible, n_obs, pending, n_pending,
                               hyp, NULL, out, err);
}

/* ns_bo_propose_round with OpenBLAS's thread count as the caller left it. */
static int propose(const ns_bo_spec *spec, int d, const double *X, const double *y,
                   const double *noise_var, const int *feasible, int n_obs,
                   const double *pending, int n_pending, double *hyp, ns_bo_cache *cache,
                   double *out, ns_err *err)
{
    int rc = check_inputs(spec, d, X, y, noise_var, feasible, n_obs, pending, n_pending, err);
    if (rc)
        return rc;
    long t = (long)n_obs + n_pending;
    int np = NS_GP_NTHETA(d);
    int n_feas = 0;
    for (int i = 0; i < n_obs; i++)
        n_feas += !feasible || feasible[i];
    if (t < spec->n_init || n_feas < 2) {
        double shift[d];
        draw_shift(spec->seed, 0, SEED_DESIGN, d, shift);
        if ((rc = lowdisc(d, t + 1, 1, shift, out, err)))
            return rc;
        snap(spec, out, d);
        if (hyp)
            for (int k = 0; k < 2 * np; k++)
                hyp[k] = NAN;
        return NS_OK;
    }

    ns_bo_cache local = {0}, *c = cache ? cache : &local;
    double *Xo = NULL, *yo = NULL, *nvo = NULL, *score = NULL, *scratch = NULL;
    int *order = NULL, *ok = NULL;
    gsl_multimin_fdfminimizer *mz = NULL;
    double theta[2 * np], theta_in[2 * np];
    for (int k = 0; k < 2 * np; k++)
        theta[k] = theta_in[k] = hyp ? hyp[k] : NAN;
    int warm = isfinite(theta[0]), fwarm = isfinite(theta[np]);
    int has_infeasible = n_feas < n_obs;
    /* A round's later proposals (pending points given) take the hyperparameters as they
     * are when they are given, so they share the round's base; the first one fits */
    int fit_obj = n_pending == 0 || !warm, fit_feas = has_infeasible && (n_pending == 0 || !fwarm);
    if (cache_matches(c, spec, d, X, y, noise_var, feasible, n_obs, theta_in, fit_obj, fit_feas) &&
        c->n_liars <= n_pending &&
        (c->n_liars == 0 || !memcmp(c->liars, pending, (size_t)c->n_liars * d * sizeof *pending)))
        goto have_base;

    /* the feasible observations */
    Xo = malloc((size_t)n_feas * d * sizeof *Xo);
    yo = malloc((size_t)n_feas * sizeof *yo);
    nvo = noise_var ? malloc((size_t)n_feas * sizeof *nvo) : NULL;
    if (!Xo || !yo || (noise_var && !nvo)) {
        rc = ns_err_set(err, NS_ERUNTIME, "bo: out of memory");
        goto done;
    }
    int m = 0;
    for (int i = 0; i < n_obs; i++)
        if (!feasible || feasible[i]) {
            memcpy(Xo + (size_t)m * d, X + (size_t)i * d, (size_t)d * sizeof *Xo);
            if (nvo)
                nvo[m] = noise_var[i];
            yo[m++] = y[i];
        }
    if (fit_obj || fit_feas) {
        /* a full refit (every start) when a multiple of refit_every was passed since the
         * previous round's first proposal; otherwise the warm start alone is refined */
        long t0 = n_obs, prev = t0 - spec->round;
        int full = prev < 0 || t0 / spec->refit_every != prev / spec->refit_every;
        ns_rng rng;
        double th[np];
        /* the fits alone: the posterior is cache_build's, the same whatever the call */
        if (fit_obj) {
            ns_rng_seed(&rng, ns_seed_derive(spec->seed, (uint64_t)t0, SEED_FIT));
            if ((rc = model(spec, d, Xo, yo, nvo, n_feas, n_feas, warm ? theta : NULL,
                            full || !warm ? spec->n_starts : 1, &rng, NULL, th, err)))
                goto done;
            memcpy(theta, th, sizeof th);
        }
        if (fit_feas) {
            double *lab = malloc((size_t)n_obs * sizeof *lab);
            if (!lab) {
                rc = ns_err_set(err, NS_ERUNTIME, "bo: out of memory");
                goto done;
            }
            for (int i = 0; i < n_obs; i++)
                lab[i] = feasible[i] ? 1.0 : -1.0;
            ns_rng_seed(&rng, ns_seed_derive(spec->seed, (uint64_t)t0, SEED_FEAS));
            rc = model(spec, d, X, lab, NULL, n_obs, n_obs - n_feas, fwarm ? theta + np : NULL,
                       full || !fwarm ? spec->n_starts : 1, &rng, NULL, th, err);
            free(lab);
            if (rc)
                goto done;
            memcpy(theta + np, th, sizeof th);
        }
        if (!has_infeasible)
            for (int k = 0; k < np; k++)
                theta[np + k] = NAN;
    }
    if ((rc = cache_build(c, spec, d, X, y, noise_var, feasible, n_obs, Xo, yo, nvo, n_feas,
                          theta_in, fit_obj, fit_feas, theta, err)))
        goto done;
have_base:
    if ((rc = cache_liars(c, pending, n_pending, err)))
        goto done;
    if (hyp)
        memcpy(hyp, c->theta, sizeof theta);

    int n_cand = c->n_cand;
    score = malloc((size_t)n_cand * sizeof *score);
    order = malloc((size_t)n_cand * sizeof *order);
    ok = malloc((size_t)n_cand * sizeof *ok);
    scratch = malloc((size_t)8 * d * sizeof *scratch);
    if (!score || !order || !ok || !scratch) {
        rc = ns_err_set(err, NS_ERUNTIME, "bo: out of memory");
        goto done;
    }
    for (int j = 0; j < n_cand; j++) {
        score[j] = ns_gp_log_ei(c->at.mean[j], sqrt(c->at.var[j]), c->best, NULL, NULL) + c->fscore[j];
        order[j] = j;
    }
    /* collapse guard: candidates nearer than min_dist to a tried or pending point are out,
     * unless every candidate is (a small discrete space, used up) */
    int n_ok = 0;
    for (int j = 0; j < n_cand; j++)
        n_ok += ok[j] = c->far[j];
    if (n_ok == 0)
        for (int j = 0; j < n_cand; j++)
            ok[j] = 1;
    /* partial selection of the best allowed ones, at least one (ties: lower index first);
     * the first proposal of a round refines the n_ref first, the later ones take the best
     * candidate as it is: a refinement step is an O(n^2) solve (bo.h, "Rounds") */
    int n_avail = n_ok ? n_ok : n_cand;
    int n_ref = n_pending > 0 ? 0 : spec->n_refine < n_avail ? spec->n_refine : n_avail;
    for (int j = 0; j < (n_ref > 1 ? n_ref : 1); j++) {
        int bj = j;
        while (!ok[order[bj]]) /* an allowed one is left: j < n_avail */
            bj++;
        for (int q = bj + 1; q < n_cand; q++)
            if (ok[order[q]] && score[order[q]] > score[order[bj]])
                bj = q;
        int tmp = order[j];
        order[j] = order[bj];
        order[bj] = tmp;
    }
    double best_val = score[order[0]];
    memcpy(out, c->cand + (size_t)order[0] * d, (size_t)d * sizeof *out);
    if (n_ref == 0)
        goto done;

    acq a = {c->obj, c->fgp, c->best, d, scratch, scratch + d, scratch + 2 * d,
             scratch + 3 * d, scratch + 4 * d};
    gsl_set_error_handler_off();
    mz = gsl_multimin_fdfminimizer_alloc(gsl_multimin_fdfminimizer_vector_bfgs2, (size_t)d);
    if (!mz) {
        rc = ns_err_set(err, NS_ERUNTIME, "bo: out of memory for the optimiser");
        goto done;
    }
    refine_ctx rcx = {&a, scratch + 5 * d, scratch + 6 * d, scratch + 7 * d};
    gsl_multimin_function_fdf fn = {ref_f, ref_df, ref_fdf, (size_t)d, &rcx};
    for (int j = 0; j < n_ref; j++) {
        const double *cj = c->cand + (size_t)order[j] * d;
        double z[d], xr[d];
        for (int k = 0; k < d; k++)
            z[k] = acos(1 - 2 * cj[k]) / M_PI;
        gsl_vector_view zv = gsl_vector_view_array(z, (size_t)d);
        if (gsl_multimin_fdfminimizer_set(mz, &fn, &zv.vector, 0.05, 0.1) != GSL_SUCCESS)
            continue;
        for (int it = 0; it < 30; it++) {
            if (gsl_multimin_fdfminimizer_iterate(mz) != GSL_SUCCESS)
                break;
            if (gsl_multimin_test_gradient(mz->gradient, 1e-4) == GSL_SUCCESS)
                break;
        }
        z_to_x(mz->x->data, xr, NULL, d);
        snap(spec, xr, d);
        /* a refinement that slid back next to a tried point is not taken */
        if (n_ok > 0 && !allowed(xr, X, n_obs, pending, n_pending, d, spec->min_dist))
            continue;
        double v = acq_eval(&a, xr, NULL);
        if (isfinite(v) && v > best_val) {
            best_val = v;
            memcpy(out, xr, sizeof xr);
        }
    }

done:
    if (mz)
        gsl_multimin_fdfminimizer_free(mz);
    if (c == &local || rc)
        cache_clear(c);
    free(Xo);
    free(yo);
    free(nvo);
    free(score);
    free(order);
    free(ok);
    free(scratch);
    return rc;
}

/* ---- the space's GP inputs ----------------------------------------------------------- */

int ns_bo_dims(const ns_space *sp)
{
    int n = 0;
    for (int i = 0; i < sp->n; i++)
        n += sp->dims[i].kind == NS_DIM_CHOICE ? sp->dims[i].n_choices : 1;
    return n;
}

void ns_bo_encode(const ns_space *sp, const double *u, double *x)
{
    for (int i = 0; i < sp->n; i++) {
        const ns_dim *dm = &sp->dims[i];
        switch (dm->kind) {
        case NS_DIM_CHOICE: {
            int c = (int)ns_dim_value(dm, u[i]);
            for (int k = 0; k < dm->n_choices; k++)
                *x++ = k == c;
            break;
        }
        case NS_DIM_INT:
        case NS_DIM_INT_LOG:
            *x++ = ns_dim_unit(dm, ns_dim_value(dm, u[i]));
            break;
        default:
            *x++ = u[i] < 0 ? 0 : u[i] > 1 ? 1 : u[i];
        }
    }
}

void ns_bo_decode(const ns_space *sp, const double *x, double *u)
{
    for (int i = 0; i < sp->n; i++) {
        const ns_dim *dm = &sp->dims[i];
        if (dm->kind == NS_DIM_CHOICE) {
            int c = 0;
            for (int k = 1; k < dm->n_choices; k++)
                if (x[k] > x[c])
                    c = k;
            u[i] = ns_dim_unit(dm, c);
            x += dm->n_choices;
        } else if (dm->kind == NS_DIM_INT || dm->kind == NS_DIM_INT_LOG) {
            u[i] = ns_dim_unit(dm, ns_dim_value(dm, *x++));
        } else {
            double v = *x++;
            u[i] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
    }
}

void ns_bo_snap_space(double *x, int d, void *ctx)
{
    const ns_space *sp = ctx;
    (void)d;
    double u[sp->n > 0 ? sp->n : 1];
    ns_bo_decode(sp, x, u);
    ns_bo_encode(sp, u, x);
}

int ns_bo_propose_round(const ns_bo_spec *spec, int d, const double *X, const double *y,
                        const double *noise_var, const int *feasible, int n_obs,
                        const double *pending, int n_pending, double *hyp, ns_bo_cache *cache,
                        double *out, ns_err *err)
{
    /* The GP's Cholesky, solves and products go through GSL to OpenBLAS, whose thread count
     * is the process's history (a fresh process: all cores; a running study: the last
     * trial's train.threads), and threaded calls round differently: a study resumed
     * between two bayes rounds proposed other points from the 6th digit on. One thread,
     * whatever came before; the caller's count is given back. */
    int was = ns_blas_threads_set(1);
    int rc = propose(spec, d, X, y, noise_var, feasible, n_obs, pending, n_pending, hyp, cache,
                     out, err);
    ns_blas_threads_set(was);
    return rc;
}
