/* bo.c — GP Bayesian optimisation's proposal (bo.h): Sobol design, constant liar,
 * feasibility-weighted log EI, Sobol + local candidates and BFGS refinement.
 * No state between calls: everything random derives from (spec->seed, t, purpose). */
#include "search/bo/bo.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_multimin.h>
#include <gsl/gsl_qrng.h>
#include <gsl/gsl_sf_erf.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- proposal ------------------------------------------------------------------------ */

static int check_inputs(const ns_bo_spec *s, int d, const double *X, const double *y,
                        const int *feasible, int n_obs, const double *pending, int n_pending,
                        ns_err *err)
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
    for (long i = 0; i < (long)n_obs * d; i++)
        if (!(X[i] >= 0 && X[i] <= 1))
            return ns_err_set(err, NS_EINPUT, "bo: observation %ld input %ld is %g, outside [0, 1]",
                              i / d, i % d, X[i]);
    for (long i = 0; i < (long)n_pending * d; i++)
        if (!(pending[i] >= 0 && pending[i] <= 1))
            return ns_err_set(err, NS_EINPUT, "bo: pending point %ld input %ld is %g, outside [0, 1]",
                              i / d, i % d, pending[i]);
    for (int i = 0; i < n_obs; i++)
        if ((!feasible || feasible[i]) && !isfinite(y[i]))
            return ns_err_set(err, NS_EINPUT, "bo: observation %d is feasible but y is %g", i, y[i]);
    return NS_OK;
}

int ns_bo_propose(const ns_bo_spec *spec, int d, const double *X, const double *y,
                  const int *feasible, int n_obs, const double *pending, int n_pending,
                  double *hyp, double *out, ns_err *err)
{
    int rc = check_inputs(spec, d, X, y, feasible, n_obs, pending, n_pending, err);
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
    double *Xo = NULL, *yo = NULL, *cand = NULL, *cm = NULL, *cv = NULL, *score = NULL;
    double *scratch = NULL;
    int *order = NULL;
    gsl_multimin_fdfminimizer *mz = NULL;
    rc = NS_OK;
    int n_cand = spec->n_sobol + spec->n_local;
    int n_fit = n_feas + n_pending;
    Xo = malloc((size_t)(n_obs + n_pending) * d * sizeof *Xo);
    yo = malloc((size_t)(n_obs + n_pending) * sizeof *yo);
    cand = malloc((size_t)n_cand * d * sizeof *cand);
    cm = malloc((size_t)n_cand * sizeof *cm);
    cv = malloc((size_t)n_cand * sizeof *cv);
    score = malloc((size_t)n_cand * sizeof *score);
    order = malloc((size_t)n_cand * sizeof *order);
    scratch = malloc((size_t)8 * d * sizeof *scratch);
    obj = ns_gp_alloc(d);
    if (!Xo || !yo || !cand || !cm || !cv || !score || !order || !scratch || !obj) {
        rc = ns_err_set(err, NS_ERUNTIME, "bo: out of memory");
        goto done;
    }

    /* objective GP: feasible observations, then the liars */
    double ybest = HUGE_VAL;
    int m = 0;
    for (int i = 0; i < n_obs; i++)
        if (!feasible || feasible[i]) {
            memcpy(Xo + (size_t)m * d, X + (size_t)i * d, (size_t)d * sizeof *Xo);
            yo[m++] = y[i];
            if (y[i] < ybest)
                ybest = y[i];
        }
    for (int i = 0; i < n_pending; i++) {
        memcpy(Xo + (size_t)m * d, pending + (size_t)i * d, (size_t)d * sizeof *Xo);
        yo[m++] = ybest;
    }
    int warm = hyp && isfinite(hyp[0]);
    int full = !warm || t % spec->refit_every == 0;
    ns_rng rng;
    ns_rng_seed(&rng, ns_seed_derive(spec->seed, (uint64_t)t, SEED_FIT));
    if ((rc = ns_gp_data(obj, Xo, yo, n_fit, err)) ||
        (rc = ns_gp_fit(obj, warm ? hyp : NULL, full ? spec->n_starts : 1, spec->max_iter,
                        &rng, err)))
        goto done;
    double ym, ys;
    ns_gp_y_scale(obj, &ym, &ys);

    /* feasibility GP on labels, when anything failed */
    if (n_feas < n_obs) {
        feas = ns_gp_alloc(d);
        if (!feas) {
            rc = ns_err_set(err, NS_ERUNTIME, "bo: out of memory");
            goto done;
        }
        for (int i = 0; i < n_obs; i++)
            yo[i] = feasible[i] ? 1.0 : -1.0;
        int fwarm = hyp && isfinite(hyp[np]);
        ns_rng_seed(&rng, ns_seed_derive(spec->seed, (uint64_t)t, SEED_FEAS));
        if ((rc = ns_gp_data(feas, X, yo, n_obs, err)) ||
            (rc = ns_gp_fit(feas, fwarm ? hyp + np : NULL, full || !fwarm ? spec->n_starts : 1,
                            spec->max_iter, &rng, err)))
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
    /* partial selection of the n_refine best (ties: lower index first, deterministic) */
    int n_ref = spec->n_refine < n_cand ? spec->n_refine : n_cand;
    for (int j = 0; j < n_ref; j++) {
        int bj = j;
        for (int c = j + 1; c < n_cand; c++)
            if (score[order[c]] > score[order[bj]])
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
    free(cand);
    free(cm);
    free(cv);
    free(score);
    free(order);
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
