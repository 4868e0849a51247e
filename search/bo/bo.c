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

/* keep (n_sel + n_fixed) = ns_bo_subset's choice of m among the first n_sel rows (half
 * the best, at most max_best of them, the rest spread), then the n_fixed rows after them,
 * which are always kept. */
static int choose(const double *X, const double *y, int n_sel, int n_fixed, int d, int m,
                  int max_best, int *keep, ns_err *err)
{
    int n_best = m / 2 < max_best ? m / 2 : max_best;
    int rc = ns_bo_subset(X, y, n_sel, d, m, n_best, keep, err);
    int k = n_sel < m ? n_sel : m;
    for (int i = 0; i < n_fixed; i++)
        keep[k + i] = n_sel + i;
    return rc;
}

/* A GP on the n rows of (X, y, nv), fitted and factorised, into *out (caller frees), by
 * the rule in bo.h: the last n_fixed rows (the liars) are always kept; of the others the
 * posterior sees at most spec->post_max and the hyperparameter fit at most spec->fit_max
 * of those, each time at most max_best of them chosen as the best. theta0 (d + 2, in the
 * posterior's units) warm-starts the fit when not NULL; the model's theta is in its own
 * units, converted from the fit's when they differ. */
static int model(const ns_bo_spec *spec, int d, const double *X, const double *y,
                 const double *nv, int n, int n_fixed, int max_best, const double *theta0,
                 int n_starts, ns_rng *rng, ns_gp **out, ns_err *err)
{
    int np = NS_GP_NTHETA(d), n_sel = n - n_fixed;
    int n_post = n_sel < spec->post_max ? n_sel : spec->post_max;
    int n_fit = n_post < spec->fit_max ? n_post : spec->fit_max;
    int rows = n_post + n_fixed, fit_rows = n_fit + n_fixed;
    int *keep = malloc((size_t)n * sizeof *keep);
    double *Xp = malloc((size_t)rows * d * sizeof *Xp), *yp = malloc((size_t)rows * sizeof *yp);
    double *nvp = nv ? malloc((size_t)rows * sizeof *nvp) : NULL;
    double *Xf = NULL, *yf = NULL, *nvf = NULL;
    ns_gp *post = ns_gp_alloc(d), *fit = NULL;
    int rc = NS_OK;
    if (!keep || !Xp || !yp || (nv && !nvp) || !post) {
        rc = ns_err_set(err, NS_ERUNTIME, "bo: out of memory for a model of %d points", n);
        goto fail;
    }
    if ((rc = choose(X, y, n_sel, n_fixed, d, spec->post_max, max_best, keep, err)))
        goto fail;
    gather(d, X, y, nv, keep, rows, Xp, yp, nvp);
    if (n_fit == n_post) { /* one data set: fit and predict with the same model */
        if ((rc = ns_gp_data_noise(post, Xp, yp, nvp, rows, err)) ||
            (rc = ns_gp_fit(post, theta0, n_starts, spec->max_iter, rng, err)))
            goto fail;
    } else {
        Xf = malloc((size_t)fit_rows * d * sizeof *Xf);
        yf = malloc((size_t)fit_rows * sizeof *yf);
        nvf = nv ? malloc((size_t)fit_rows * sizeof *nvf) : NULL;
        fit = ns_gp_alloc(d);
        if (!Xf || !yf || (nv && !nvf) || !fit) {
            rc = ns_err_set(err, NS_ERUNTIME, "bo: out of memory for a model of %d points", n);
            goto fail;
        }
        if ((rc = choose(Xp, yp, n_post, n_fixed, d, spec->fit_max, max_best, keep, err)))
            goto fail;
        gather(d, Xp, yp, nvp, keep, fit_rows, Xf, yf, nvf);
        if ((rc = ns_gp_data_noise(fit, Xf, yf, nvf, fit_rows, err)))
            goto fail;
        /* sf2 and sn2 are in standardised units: the same kernel in the posterior's units
         * has log sf2 and log sn2 lower by 2 log(sd_post / sd_fit) */
        double pm, psd, fm, fsd, th[np];
        ns_gp_y_stats(yp, rows, &pm, &psd);
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
        /* theta before data: the posterior's one factorisation is at the fitted theta */
        if ((rc = ns_gp_theta_set(post, th, err)) ||
            (rc = ns_gp_data_noise(post, Xp, yp, nvp, rows, err)))
            goto fail;
    }
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

/* ---- proposal ------------------------------------------------------------------------ */

static int check_inputs(const ns_bo_spec *s, int d, const double *X, const double *y,
                        const double *noise_var, const int *feasible, int n_obs,
                        const double *pending, int n_pending, ns_err *err)
{
    if (d < 1 || n_obs < 0 || n_pending < 0)
        return ns_err_set(err, NS_EINPUT, "bo: bad sizes (d %d, %d observations, %d pending)",
                          d, n_obs, n_pending);
    if (s->n_init < 0 || s->n_sobol < 1 || s->n_local < 0 || s->n_refine < 0 ||
        s->n_starts < 1 || s->max_iter < 0 || s->refit_every < 1)
        return ns_err_set(err, NS_EINPUT, "bo: bad spec (n_init %d, n_sobol %d, n_local %d, "
                          "n_refine %d, n_starts %d, max_iter %d, refit_every %d)", s->n_init,
                          s->n_sobol, s->n_local, s->n_refine, s->n_starts, s->max_iter,
                          s->refit_every);
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

int ns_bo_propose(const ns_bo_spec *spec, int d, const double *X, const double *y,
                  const int *feasible, int n_obs, const double *pending, int n_pending,
                  double *hyp, double *out, ns_err *err)
{
    return ns_bo_propose_noisy(spec, d, X, y, NULL, feasible, n_obs, pending, n_pending, hyp,
                               out, err);
}

/* ns_bo_propose_noisy with OpenBLAS's thread count as the caller left it. */
static int propose(const ns_bo_spec *spec, int d, const double *X, const double *y,
                   const double *noise_var, const int *feasible, int n_obs,
                   const double *pending, int n_pending, double *hyp, double *out, ns_err *err)
{
    int rc = check_inputs(spec, d, X, y, noise_var, feasible, n_obs, pending, n_pending, err);
    if (rc)
        return rc;
    long t = (long)n_obs + n_pending;
    int np = NS_GP_NTHETA(d);
    double shift[d];
    int n_feas = 0;
    for (int i = 0; i < n_obs; i++)
        n_feas += !feasible || feasible[i];
    if (t < spec->n_init || n_feas < 2) {
        draw_shift(spec->seed, 0, SEED_DESIGN, d, shift);
        if ((rc = lowdisc(d, t + 1, 1, shift, out, err)))
            return rc;
        snap(spec, out, d);
        if (hyp)
            for (int k = 0; k < 2 * np; k++)
                hyp[k] = NAN;
        return NS_OK;
    }

    ns_gp *obj = NULL, *feas = NULL;
    double *Xo = NULL, *yo = NULL, *nvo = NULL, *cand = NULL, *cm = NULL, *cv = NULL;
    double *score = NULL, *scratch = NULL;
    int *order = NULL, *ok = NULL;
    gsl_multimin_fdfminimizer *mz = NULL;
    rc = NS_OK;
    int n_cand = spec->n_sobol + spec->n_local;
    int n_fit = n_feas + n_pending;
    Xo = malloc((size_t)(n_obs + n_pending) * d * sizeof *Xo);
    yo = malloc((size_t)(n_obs + n_pending) * sizeof *yo);
    nvo = noise_var ? malloc((size_t)n_fit * sizeof *nvo) : NULL;
    cand = malloc((size_t)n_cand * d * sizeof *cand);
    cm = malloc((size_t)n_cand * sizeof *cm);
    cv = malloc((size_t)n_cand * sizeof *cv);
    score = malloc((size_t)n_cand * sizeof *score);
    order = malloc((size_t)n_cand * sizeof *order);
    ok = malloc((size_t)n_cand * sizeof *ok);
    scratch = malloc((size_t)8 * d * sizeof *scratch);
    if (!Xo || !yo || (noise_var && !nvo) || !cand || !cm || !cv || !score || !order || !ok ||
        !scratch) {
        rc = ns_err_set(err, NS_ERUNTIME, "bo: out of memory");
        goto done;
    }

    /* objective GP: feasible observations, then the liars (no noise of their own) */
    double ybest = HUGE_VAL;
    int m = 0;
    for (int i = 0; i < n_obs; i++)
        if (!feasible || feasible[i]) {
            memcpy(Xo + (size_t)m * d, X + (size_t)i * d, (size_t)d * sizeof *Xo);
            if (nvo)
                nvo[m] = noise_var[i];
            yo[m++] = y[i];
            if (y[i] < ybest)
                ybest = y[i];
        }
    for (int i = 0; i < n_pending; i++) {
        memcpy(Xo + (size_t)m * d, pending + (size_t)i * d, (size_t)d * sizeof *Xo);
        if (nvo)
            nvo[m] = 0;
        yo[m++] = ybest;
    }
    int warm = hyp && isfinite(hyp[0]);
    int full = !warm || t % spec->refit_every == 0;
    ns_rng rng;
    ns_rng_seed(&rng, ns_seed_derive(spec->seed, (uint64_t)t, SEED_FIT));
    if ((rc = model(spec, d, Xo, yo, nvo, n_fit, n_pending, n_fit, warm ? hyp : NULL,
                    full ? spec->n_starts : 1, &rng, &obj, err)))
        goto done;
    double ym, ys;
    ns_gp_y_scale(obj, &ym, &ys);

    /* feasibility GP on labels, when anything failed; the subset rule's "best" are then
     * the infeasible observations (label -1, the ones that draw the boundary) and only
     * those: the feasible ones are all equal, so they are only spread */
    if (n_feas < n_obs) {
        for (int i = 0; i < n_obs; i++)
            yo[i] = feasible[i] ? 1.0 : -1.0;
        int fwarm = hyp && isfinite(hyp[np]);
        ns_rng_seed(&rng, ns_seed_derive(spec->seed, (uint64_t)t, SEED_FEAS));
        if ((rc = model(spec, d, X, yo, NULL, n_obs, 0, n_obs - n_feas,
                        fwarm ? hyp + np : NULL, full || !fwarm ? spec->n_starts : 1, &rng,
                        &feas, err)))
            goto done;
    }
    if (hyp) {
        memcpy(hyp, ns_gp_theta(obj), (size_t)np * sizeof *hyp);
        for (int k = 0; k < np; k++)
            hyp[np + k] = feas ? ns_gp_theta(feas)[k] : NAN;
    }

    acq a = {obj, feas, (ybest - ym) / ys, d, scratch, scratch + d, scratch + 2 * d,
             scratch + 3 * d, scratch + 4 * d};

    /* candidates: shifted Sobol points, then perturbations of the best observations */
    draw_shift(spec->seed, (uint64_t)t, SEED_CAND, d, shift);
    if ((rc = lowdisc(d, 1, spec->n_sobol, shift, cand, err)))
        goto done;
    {
        int n_top = n_feas < 5 ? n_feas : 5, top[5];
        for (int j = 0; j < n_top; j++) { /* the n_top lowest feasible y, first on ties */
            int bi = -1;
            for (int i = 0; i < n_obs; i++) {
                if (feasible && !feasible[i])
                    continue;
                int used = 0;
                for (int q = 0; q < j; q++)
                    used |= top[q] == i;
                if (!used && (bi < 0 || y[i] < y[bi]))
                    bi = i;
            }
            top[j] = bi;
        }
        ns_rng_seed(&rng, ns_seed_derive(spec->seed, (uint64_t)t, SEED_LOCAL));
        for (int j = 0; j < spec->n_local; j++) {
            double *c = cand + (size_t)(spec->n_sobol + j) * d;
            const double *b = X + (size_t)top[j % n_top] * d;
            double sd = (j / n_top) % 2 ? 0.02 : 0.1;
            for (int k = 0; k < d; k++)
                c[k] = b[k] + sd * ns_rng_normal(&rng);
        }
    }
    for (int c = 0; c < n_cand; c++)
        snap(spec, cand + (size_t)c * d, d);
    if ((rc = ns_gp_predict_many(obj, cand, n_cand, cm, cv, err)))
        goto done;
    for (int c = 0; c < n_cand; c++) {
        score[c] = ns_gp_log_ei(cm[c], sqrt(cv[c]), a.best, NULL, NULL);
        order[c] = c;
    }
    if (feas) {
        if ((rc = ns_gp_predict_many(feas, cand, n_cand, cm, cv, err)))
            goto done;
        double fm, fs;
        ns_gp_y_scale(feas, &fm, &fs);
        for (int c = 0; c < n_cand; c++)
            score[c] += log_Phi((fm + fs * cm[c]) / (fs * sqrt(cv[c])), NULL);
    }
    /* collapse guard: candidates nearer than min_dist to a tried or pending point are out,
     * unless every candidate is (a small discrete space, used up) */
    int n_ok = 0;
    for (int c = 0; c < n_cand; c++)
        n_ok += ok[c] = allowed(cand + (size_t)c * d, X, n_obs, pending, n_pending, d,
                                spec->min_dist);
    if (n_ok == 0)
        for (int c = 0; c < n_cand; c++)
            ok[c] = 1;
    /* partial selection of the best allowed ones, at least one (ties: lower index first);
     * the n_ref first are refined */
    int n_avail = n_ok ? n_ok : n_cand;
    int n_ref = spec->n_refine < n_avail ? spec->n_refine : n_avail;
    for (int j = 0; j < (n_ref > 1 ? n_ref : 1); j++) {
        int bj = j;
        while (!ok[order[bj]]) /* an allowed one is left: j < n_avail */
            bj++;
        for (int c = bj + 1; c < n_cand; c++)
            if (ok[order[c]] && score[order[c]] > score[order[bj]])
                bj = c;
        int tmp = order[j];
        order[j] = order[bj];
        order[bj] = tmp;
    }
    double best_val = score[order[0]];
    memcpy(out, cand + (size_t)order[0] * d, (size_t)d * sizeof *out);

    gsl_set_error_handler_off();
    mz = gsl_multimin_fdfminimizer_alloc(gsl_multimin_fdfminimizer_vector_bfgs2, (size_t)d);
    if (!mz) {
        rc = ns_err_set(err, NS_ERUNTIME, "bo: out of memory for the optimiser");
        goto done;
    }
    refine_ctx rcx = {&a, scratch + 5 * d, scratch + 6 * d, scratch + 7 * d};
    gsl_multimin_function_fdf fn = {ref_f, ref_df, ref_fdf, (size_t)d, &rcx};
    for (int j = 0; j < n_ref; j++) {
        const double *c = cand + (size_t)order[j] * d;
        double z[d], xr[d];
        for (int k = 0; k < d; k++)
            z[k] = acos(1 - 2 * c[k]) / M_PI;
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
    ns_gp_free(obj);
    ns_gp_free(feas);
    free(Xo);
    free(yo);
    free(nvo);
    free(cand);
    free(cm);
    free(cv);
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

int ns_bo_propose_noisy(const ns_bo_spec *spec, int d, const double *X, const double *y,
                        const double *noise_var, const int *feasible, int n_obs,
                        const double *pending, int n_pending, double *hyp, double *out,
                        ns_err *err)
{
    /* The GP's Cholesky, solves and products go through GSL to OpenBLAS, whose thread count
     * is the process's history (a fresh process: all cores; a running study: the last
     * trial's train.threads), and threaded calls round differently: a study resumed
     * between two bayes rounds proposed other points from the 6th digit on. One thread,
     * whatever came before; the caller's count is given back. */
    int was = ns_blas_threads_set(1);
    int rc = propose(spec, d, X, y, noise_var, feasible, n_obs, pending, n_pending, hyp, out, err);
    ns_blas_threads_set(was);
    return rc;
}
