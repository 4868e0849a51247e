/* gp.c — Matérn 5/2 ARD Gaussian process: factorisation, MAP hyperparameters, posterior
 * and log expected improvement (gp.h). Dense linear algebra through GSL (its CBLAS calls
 * resolve to OpenBLAS in this build); no acquisition logic here. */
#include "search/bo/gp.h"

#include <float.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_multimin.h>
#include <gsl/gsl_sf_erf.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SQRT5 2.23606797749978969641
#define LOG_2PI 1.83787706640934548356

/* Prior means and sds of theta (gp.h documents the reasons). */
#define PRIOR_LOG_L_MEAN (-0.69314718055994530942) /* log 0.5 */
#define PRIOR_LOG_L_SD 1.0
#define PRIOR_LOG_SF2_MEAN 0.0
#define PRIOR_LOG_SF2_SD 1.0
#define PRIOR_LOG_SN2_MEAN (-6.90775527898213705205) /* log 1e-3 */
#define PRIOR_LOG_SN2_SD 2.0
#define JITTER_TRIES 10
#define RAW_PER_START 8

struct ns_gp {
    int d, n, cap;       /* inputs, observations, allocated rows */
    double *X;           /* (cap, d) */
    double *y;           /* (cap) standardised */
    double *nug;         /* (cap) per-observation noise variance, standardised, or NULL */
    double y_mean, y_sd;
    double *theta;       /* (d+2) current hyperparameters */
    double *inv_l2;      /* (d) 1 / l_i^2 at the current theta */
    double sf2;
    gsl_matrix *L;       /* (cap, cap) lower Cholesky factor of K + sn2 I (+ jitter) */
    gsl_matrix *W;       /* (cap, cap) scratch: K^-1 in the gradient */
    double *alpha;       /* (cap) (K + sn2 I)^-1 y */
    double *w;           /* (cap) L^-1 y: what an appended point extends (ns_gp_append) */
    double sn2, jit;     /* the noise and the jitter of the current factor */
    double *scratch;     /* (cap + d) */
    double *pair;        /* (cap (cap - 1)) kernel values and derivative factors, see factorise */
    int factored;        /* L and alpha match theta and data */
};

ns_gp *ns_gp_alloc(int d)
{
    if (d < 1)
        return NULL;
    ns_gp *gp = calloc(1, sizeof *gp);
    if (!gp)
        return NULL;
    gp->d = d;
    gp->theta = malloc((size_t)(d + 2) * sizeof *gp->theta);
    gp->inv_l2 = malloc((size_t)d * sizeof *gp->inv_l2);
    if (!gp->theta || !gp->inv_l2)
        goto fail;
    ns_gp_theta_default(d, gp->theta);
    gp->y_sd = 1;
    return gp;
fail:
    ns_gp_free(gp);
    return NULL;
}

/* Frees the data and the factor: no rows, no room. */
static void free_data(ns_gp *gp)
{
    free(gp->X);
    free(gp->y);
    free(gp->nug);
    free(gp->alpha);
    free(gp->w);
    free(gp->scratch);
    free(gp->pair);
    if (gp->L)
        gsl_matrix_free(gp->L);
    if (gp->W)
        gsl_matrix_free(gp->W);
    gp->X = gp->y = gp->nug = gp->alpha = gp->w = gp->scratch = gp->pair = NULL;
    gp->L = gp->W = NULL;
    gp->n = gp->cap = 0;
    gp->factored = 0;
}

void ns_gp_free(ns_gp *gp)
{
    if (!gp)
        return;
    free_data(gp);
    free(gp->theta);
    free(gp->inv_l2);
    free(gp);
}

void ns_gp_theta_default(int d, double *theta)
{
    for (int i = 0; i < d; i++)
        theta[i] = PRIOR_LOG_L_MEAN;
    theta[d] = PRIOR_LOG_SF2_MEAN;
    theta[d + 1] = PRIOR_LOG_SN2_MEAN;
}

const double *ns_gp_theta(const ns_gp *gp) { return gp->theta; }
int ns_gp_n(const ns_gp *gp) { return gp->n; }

void ns_gp_y_scale(const ns_gp *gp, double *mean, double *sd)
{
    *mean = gp->y_mean;
    *sd = gp->y_sd;
}

/* ---- kernel -------------------------------------------------------------------------- */

static double r2_of(const double *a, const double *b, const double *inv_l2, int d)
{
    double s = 0;
    for (int k = 0; k < d; k++) {
        double t = a[k] - b[k];
        s += t * t * inv_l2[k];
    }
    return s;
}

static double matern52(double r2, double sf2)
{
    double r = sqrt(r2);
    return sf2 * (1 + SQRT5 * r + 5.0 / 3.0 * r2) * exp(-SQRT5 * r);
}

/* Fills the lower triangle of m with K(theta) + sn2 I + N + jitter I (N the diagonal of
 * per-observation noise variances, when given) and factorises it in
 * place, raising the jitter until it succeeds. Each pair's kernel value and the factor
 * sf2 5/3 (1 + sqrt5 r) e^{-sqrt5 r} of its length-scale derivatives go to gp->pair first
 * (two doubles per pair j < i at 2 (i (i - 1) / 2 + j)): the exps are the bulk of an
 * evaluation and the gradient needs them again. Returns 0, or -1 when nothing worked. */
static int factorise(const ns_gp *gp, gsl_matrix *m, const double *inv_l2, double sf2,
                     double sn2, double *jit_used)
{
    int n = gp->n, d = gp->d;
    double *pr = gp->pair;
    for (int i = 0; i < n; i++) {
        const double *xi = gp->X + (size_t)i * d;
        for (int j = 0; j < i; j++, pr += 2) {
            double r2 = r2_of(xi, gp->X + (size_t)j * d, inv_l2, d), r = sqrt(r2);
            double e = sf2 * exp(-SQRT5 * r);
            pr[0] = (1 + SQRT5 * r + 5.0 / 3.0 * r2) * e;
            pr[1] = (5.0 / 3.0) * (1 + SQRT5 * r) * e;
        }
    }
    gsl_set_error_handler_off();
    for (int t = 0; t < JITTER_TRIES; t++) {
        double jit = t == 0 ? 0 : 1e-10 * pow(10, t - 1);
        pr = gp->pair;
        for (int i = 0; i < n; i++) {
            double *row = m->data + (size_t)i * m->tda;
            for (int j = 0; j < i; j++, pr += 2)
                row[j] = pr[0];
            row[i] = sf2 + sn2 + (gp->nug ? gp->nug[i] : 0) + jit;
        }
        gsl_matrix_view v = gsl_matrix_submatrix(m, 0, 0, n, n);
        if (gsl_linalg_cholesky_decomp1(&v.matrix) == GSL_SUCCESS) {
            if (jit_used)
                *jit_used = jit;
            return 0;
        }
    }
    return -1;
}

/* alpha = L^-T L^-1 y */
static void solve_alpha(const ns_gp *gp, const gsl_matrix *L, double *alpha)
{
    gsl_matrix_const_view lv = gsl_matrix_const_submatrix(L, 0, 0, gp->n, gp->n);
    gsl_vector_view av = gsl_vector_view_array(alpha, gp->n);
    memcpy(alpha, gp->y, (size_t)gp->n * sizeof *alpha);
    gsl_linalg_cholesky_svx(&lv.matrix, &av.vector);
}

static void theta_unpack(int d, const double *theta, double *inv_l2, double *sf2, double *sn2)
{
    for (int k = 0; k < d; k++)
        inv_l2[k] = exp(-2 * theta[k]);
    *sf2 = exp(theta[d]);
    *sn2 = exp(theta[d + 1]);
}

static int refactor(ns_gp *gp, ns_err *err)
{
    theta_unpack(gp->d, gp->theta, gp->inv_l2, &gp->sf2, &gp->sn2);
    gp->factored = 0;
    if (gp->n == 0)
        return NS_OK;
    if (factorise(gp, gp->L, gp->inv_l2, gp->sf2, gp->sn2, &gp->jit) != 0)
        return ns_err_set(err, NS_ERUNTIME,
                          "gp: the kernel matrix is not positive definite even with jitter 0.1");
    solve_alpha(gp, gp->L, gp->alpha);
    gsl_matrix_const_view lv = gsl_matrix_const_submatrix(gp->L, 0, 0, gp->n, gp->n);
    gsl_vector_view wv = gsl_vector_view_array(gp->w, gp->n);
    memcpy(gp->w, gp->y, (size_t)gp->n * sizeof *gp->w);
    gsl_blas_dtrsv(CblasLower, CblasNoTrans, CblasNonUnit, &lv.matrix, &wv.vector);
    gp->factored = 1;
    return NS_OK;
}

/* Room for cap rows, keeping the first n of every array (L's n x n block included). The
 * fit's scratch (W, pair) is reallocated empty. 0, or -1 when out of memory (the model
 * then has no room and no data). */
static int grow(ns_gp *gp, int cap)
{
    int n = gp->n, d = gp->d;
    double *X = malloc((size_t)cap * d * sizeof *X), *y = malloc((size_t)cap * sizeof *y);
    double *alpha = malloc((size_t)cap * sizeof *alpha), *w = malloc((size_t)cap * sizeof *w);
    double *scratch = malloc((size_t)(cap + d) * sizeof *scratch);
    double *pair = malloc(((size_t)cap * (cap - 1) + 1) * sizeof *pair);
    double *nug = gp->nug ? malloc((size_t)cap * sizeof *nug) : NULL;
    gsl_set_error_handler_off();
    gsl_matrix *L = gsl_matrix_alloc(cap, cap), *W = gsl_matrix_alloc(cap, cap);
    int ok = X && y && alpha && w && scratch && pair && (!gp->nug || nug) && L && W;
    if (ok && n > 0) {
        memcpy(X, gp->X, (size_t)n * d * sizeof *X);
        memcpy(y, gp->y, (size_t)n * sizeof *y);
        memcpy(alpha, gp->alpha, (size_t)n * sizeof *alpha);
        memcpy(w, gp->w, (size_t)n * sizeof *w);
        if (nug)
            memcpy(nug, gp->nug, (size_t)n * sizeof *nug);
        for (int i = 0; i < n; i++)
            memcpy(L->data + (size_t)i * L->tda, gp->L->data + (size_t)i * gp->L->tda,
                   (size_t)(i + 1) * sizeof *L->data);
    }
    int keep_n = gp->n, keep_f = gp->factored;
    free_data(gp);
    gp->n = keep_n;
    gp->factored = keep_f;
    gp->X = X, gp->y = y, gp->alpha = alpha, gp->w = w, gp->scratch = scratch;
    gp->pair = pair, gp->nug = nug, gp->L = L, gp->W = W;
    gp->cap = cap;
    if (ok)
        return 0;
    free_data(gp);
    return -1;
}

void ns_gp_y_stats(const double *y, int n, double *mean, double *sd)
{
    double m = 0, s = 0;
    for (int i = 0; i < n; i++)
        m += y[i];
    m /= n;
    for (int i = 0; i < n; i++)
        s += (y[i] - m) * (y[i] - m);
    s = n > 1 ? sqrt(s / (n - 1)) : 0;
    if (!(s > 0) || !isfinite(s))
        s = 1;
    *mean = m;
    *sd = s;
}

int ns_gp_data(ns_gp *gp, const double *X, const double *y, int n, ns_err *err)
{
    return ns_gp_data_noise(gp, X, y, NULL, n, err);
}

int ns_gp_data_noise(ns_gp *gp, const double *X, const double *y, const double *noise_var,
                     int n, ns_err *err)
{
    int d = gp->d;
    if (n < 1)
        return ns_err_set(err, NS_EINPUT, "gp: no observations");
    for (long i = 0; i < (long)n * d; i++)
        if (!isfinite(X[i]))
            return ns_err_set(err, NS_EINPUT, "gp: input %ld is not finite", i);
    for (int i = 0; i < n; i++)
        if (!isfinite(y[i]))
            return ns_err_set(err, NS_EINPUT, "gp: output %d is not finite", i);
    for (int i = 0; noise_var && i < n; i++)
        if (!(noise_var[i] >= 0 && isfinite(noise_var[i])))
            return ns_err_set(err, NS_EINPUT, "gp: noise variance %d is %g, not finite and >= 0",
                              i, noise_var[i]);
    /* the old nuggets go first, so a model never mixes new data with old noise */
    free(gp->nug);
    gp->nug = NULL;
    if (n > gp->cap) {
        gp->n = 0;
        if (grow(gp, n))
            return ns_err_set(err, NS_ERUNTIME, "gp: out of memory for %d observations", n);
    }
    if (noise_var && !(gp->nug = malloc((size_t)n * sizeof *gp->nug)))
        return ns_err_set(err, NS_ERUNTIME, "gp: out of memory for %d noise variances", n);
    gp->n = n;
    memcpy(gp->X, X, (size_t)n * d * sizeof *X);
    double m, s;
    ns_gp_y_stats(y, n, &m, &s);
    gp->y_mean = m;
    gp->y_sd = s;
    for (int i = 0; i < n; i++)
        gp->y[i] = (y[i] - m) / s;
    for (int i = 0; noise_var && i < n; i++)
        gp->nug[i] = noise_var[i] / (s * s); /* y's units to the standardised ones */
    return refactor(gp, err);
}

int ns_gp_theta_set(ns_gp *gp, const double *theta, ns_err *err)
{
    for (int k = 0; k < gp->d + 2; k++)
        if (!isfinite(theta[k]))
            return ns_err_set(err, NS_EINPUT, "gp: hyperparameter %d is not finite", k);
    memcpy(gp->theta, theta, (size_t)(gp->d + 2) * sizeof *theta);
    return refactor(gp, err);
}

/* ---- marginal likelihood ------------------------------------------------------------- */

static double log_prior(int d, const double *theta, double *grad)
{
    double lp = 0;
    for (int k = 0; k < d + 2; k++) {
        double mu = k < d ? PRIOR_LOG_L_MEAN : k == d ? PRIOR_LOG_SF2_MEAN : PRIOR_LOG_SN2_MEAN;
        double sd = k < d ? PRIOR_LOG_L_SD : k == d ? PRIOR_LOG_SF2_SD : PRIOR_LOG_SN2_SD;
        double z = (theta[k] - mu) / sd;
        lp += -0.5 * z * z - log(sd) - 0.5 * LOG_2PI;
        if (grad)
            grad[k] += -z / sd;
    }
    return lp;
}

double ns_gp_log_post(ns_gp *gp, const double *theta, int with_prior, double *grad)
{
    int n = gp->n, d = gp->d;
    double *inv_l2 = gp->scratch + n; /* d doubles after the n used below */
    double sf2, sn2;
    theta_unpack(d, theta, inv_l2, &sf2, &sn2);
    if (grad)
        memset(grad, 0, (size_t)(d + 2) * sizeof *grad);
    /* W holds the factor here so the model's own L stays valid for prediction */
    if (factorise(gp, gp->W, inv_l2, sf2, sn2, NULL) != 0)
        return -HUGE_VAL;
    double *alpha = gp->scratch;
    solve_alpha(gp, gp->W, alpha);
    double lml = -0.5 * n * LOG_2PI;
    for (int i = 0; i < n; i++)
        lml += -0.5 * gp->y[i] * alpha[i] - log(gsl_matrix_get(gp->W, i, i));
    if (grad) {
        gsl_matrix_view wv = gsl_matrix_submatrix(gp->W, 0, 0, n, n);
        if (gsl_linalg_cholesky_invert(&wv.matrix) != GSL_SUCCESS) {
            memset(grad, 0, (size_t)(d + 2) * sizeof *grad);
            return -HUGE_VAL;
        }
        /* grad_k = 1/2 sum_ij (alpha_i alpha_j - Kinv_ij) dK_ij/dtheta_k; the sum over
         * i != j is twice the sum over j < i (symmetry). The diagonal of the total K only
         * depends on sf2 and sn2 (the jitter is not differentiated: it is a rescue). */
        double *g = grad;
        const double *pr = gp->pair;
        for (int i = 0; i < n; i++) {
            const double *xi = gp->X + (size_t)i * d;
            const double *ki = wv.matrix.data + (size_t)i * wv.matrix.tda;
            for (int j = 0; j < i; j++, pr += 2) {
                const double *xj = gp->X + (size_t)j * d;
                double w = alpha[i] * alpha[j] - ki[j];
                /* dk/dlog l_q = sf2 5/3 (1 + sqrt5 r) e^{-sqrt5 r} (x_iq - x_jq)^2 / l_q^2 */
                double c = w * pr[1];
                for (int q = 0; q < d; q++) {
                    double t = xi[q] - xj[q];
                    g[q] += c * t * t * inv_l2[q];
                }
                g[d] += w * pr[0];
            }
            double wii = alpha[i] * alpha[i] - ki[i];
            g[d] += 0.5 * wii * sf2;
            g[d + 1] += 0.5 * wii * sn2;
        }
    }
    if (with_prior)
        lml += log_prior(d, theta, grad);
    return lml;
}

/* ---- fitting ------------------------------------------------------------------------- */

/* gsl_multimin minimises: f = -log posterior. */
static double obj_f(const gsl_vector *v, void *p)
{
    ns_gp *gp = p;
    double lp = ns_gp_log_post(gp, v->data, 1, NULL);
    return isfinite(lp) ? -lp : 1e300;
}

static void obj_df(const gsl_vector *v, void *p, gsl_vector *g)
{
    ns_gp *gp = p;
    ns_gp_log_post(gp, v->data, 1, g->data);
    for (size_t k = 0; k < g->size; k++)
        g->data[k] = -g->data[k];
}

static void obj_fdf(const gsl_vector *v, void *p, double *f, gsl_vector *g)
{
    ns_gp *gp = p;
    double lp = ns_gp_log_post(gp, v->data, 1, g->data);
    *f = isfinite(lp) ? -lp : 1e300;
    for (size_t k = 0; k < g->size; k++)
        g->data[k] = -g->data[k];
}

int ns_gp_fit(ns_gp *gp, const double *theta0, int n_starts, int max_iter, ns_rng *rng,
              ns_err *err)
{
    int d = gp->d, np = d + 2;
    if (gp->n < 1)
        return ns_err_set(err, NS_EINPUT, "gp: fit without data");
    gsl_set_error_handler_off();
    double best_f = HUGE_VAL;
    double best[np], start[np];
    if (theta0)
        memcpy(best, theta0, sizeof best);
    else
        ns_gp_theta_default(d, best);
    gsl_multimin_fdfminimizer *s = gsl_multimin_fdfminimizer_alloc(
        gsl_multimin_fdfminimizer_vector_bfgs2, (size_t)np);
    if (!s)
        return ns_err_set(err, NS_ERUNTIME, "gp: out of memory for the optimiser");
    gsl_multimin_function_fdf fn = {obj_f, obj_df, obj_fdf, (size_t)np, gp};
    /* the other starts: the best of RAW_PER_START prior draws each, by objective value
     * alone (no gradient: a factorisation each), so BFGS runs only from promising ones */
    int n_raw = (n_starts - 1) * RAW_PER_START;
    double *raw = n_raw > 0 ? malloc((size_t)n_raw * (np + 1) * sizeof *raw) : NULL;
    if (n_raw > 0 && !raw) {
        gsl_multimin_fdfminimizer_free(s);
        return ns_err_set(err, NS_ERUNTIME, "gp: out of memory for the optimiser");
    }
    for (int a = 0; a < n_raw; a++) {
        double *th = raw + (size_t)a * (np + 1);
        for (int k = 0; k < np; k++) {
            double mu = k < d ? PRIOR_LOG_L_MEAN : k == d ? PRIOR_LOG_SF2_MEAN : PRIOR_LOG_SN2_MEAN;
            double sd = k < d ? PRIOR_LOG_L_SD : k == d ? PRIOR_LOG_SF2_SD : PRIOR_LOG_SN2_SD;
            th[k] = mu + sd * ns_rng_normal(rng);
        }
        double lp = ns_gp_log_post(gp, th, 1, NULL);
        th[np] = isfinite(lp) ? lp : -HUGE_VAL;
    }
    for (int st = 0; st < n_starts; st++) {
        if (st == 0) {
            memcpy(start, best, sizeof start);
        } else { /* the best unused draw (first on ties), then marked used */
            int bi = 0;
            for (int a = 1; a < n_raw; a++)
                if (raw[(size_t)a * (np + 1) + np] > raw[(size_t)bi * (np + 1) + np])
                    bi = a;
            memcpy(start, raw + (size_t)bi * (np + 1), sizeof start);
            raw[(size_t)bi * (np + 1) + np] = -INFINITY;
        }
        gsl_vector_view x0 = gsl_vector_view_array(start, (size_t)np);
        if (gsl_multimin_fdfminimizer_set(s, &fn, &x0.vector, 0.1, 0.1) != GSL_SUCCESS)
            continue;
        double f_prev = s->f;
        for (int it = 0; it < max_iter; it++) {
            if (gsl_multimin_fdfminimizer_iterate(s) != GSL_SUCCESS)
                break; /* no progress: the line search found nothing better */
            /* a thousandth of a nat changes no posterior that matters */
            if (gsl_multimin_test_gradient(s->gradient, 1e-3) == GSL_SUCCESS ||
                f_prev - s->f < 1e-3)
                break;
            f_prev = s->f;
        }
        double f = s->f;
        int finite = isfinite(f) && f < 1e299;
        for (int k = 0; k < np && finite; k++)
            finite = isfinite(gsl_vector_get(s->x, k));
        if (finite && f < best_f) {
            best_f = f;
            memcpy(best, s->x->data, sizeof best);
        }
    }
    gsl_multimin_fdfminimizer_free(s);
    free(raw);
    return ns_gp_theta_set(gp, best, err);
}

/* ---- prediction ---------------------------------------------------------------------- */

void ns_gp_predict(const ns_gp *gp, const double *x, double *mean, double *var,
                   double *grad_mean, double *grad_var)
{
    int n = gp->n, d = gp->d;
    double kv[n > 0 ? n : 1], v[n > 0 ? n : 1];
    double mu = 0;
    for (int i = 0; i < n; i++) {
        kv[i] = matern52(r2_of(x, gp->X + (size_t)i * d, gp->inv_l2, d), gp->sf2);
        mu += kv[i] * gp->alpha[i];
    }
    /* v = L^-1 k; var = sf2 - v.v */
    gsl_matrix_const_view lv = gsl_matrix_const_submatrix(gp->L, 0, 0, n, n);
    memcpy(v, kv, sizeof v);
    gsl_vector_view vv = gsl_vector_view_array(v, n);
    gsl_blas_dtrsv(CblasLower, CblasNoTrans, CblasNonUnit, &lv.matrix, &vv.vector);
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i] * v[i];
    double var_floor = 1e-12 * gp->sf2;
    double vr = gp->sf2 - s;
    *mean = mu;
    *var = vr > var_floor ? vr : var_floor;
    if (!grad_mean && !grad_var)
        return;
    /* w = K^-1 k = L^-T v; dvar/dx = -2 sum_i w_i dk_i/dx (0 where the floor holds) */
    gsl_blas_dtrsv(CblasLower, CblasTrans, CblasNonUnit, &lv.matrix, &vv.vector);
    if (grad_mean)
        memset(grad_mean, 0, (size_t)d * sizeof *grad_mean);
    if (grad_var)
        memset(grad_var, 0, (size_t)d * sizeof *grad_var);
    for (int i = 0; i < n; i++) {
        const double *xi = gp->X + (size_t)i * d;
        double r = sqrt(r2_of(x, xi, gp->inv_l2, d));
        /* dk/dx_q = -sf2 5/3 (1 + sqrt5 r) e^{-sqrt5 r} (x_q - X_iq) / l_q^2 */
        double c = -gp->sf2 * (5.0 / 3.0) * (1 + SQRT5 * r) * exp(-SQRT5 * r);
        for (int q = 0; q < d; q++) {
            double dk = c * (x[q] - xi[q]) * gp->inv_l2[q];
            if (grad_mean)
                grad_mean[q] += gp->alpha[i] * dk;
            if (grad_var && vr > var_floor)
                grad_var[q] += -2 * v[i] * dk;
        }
    }
}

int ns_gp_predict_many(const ns_gp *gp, const double *Xs, int m, double *mean, double *var,
                       ns_err *err)
{
    int n = gp->n, d = gp->d;
    if (m < 1)
        return NS_OK;
    gsl_set_error_handler_off();
    gsl_matrix *B = gsl_matrix_alloc((size_t)m, (size_t)n);
    if (!B)
        return ns_err_set(err, NS_ERUNTIME, "gp: out of memory predicting %d points", m);
    for (int a = 0; a < m; a++) {
        const double *x = Xs + (size_t)a * d;
        double *row = B->data + (size_t)a * B->tda;
        double mu = 0;
        for (int i = 0; i < n; i++) {
            row[i] = matern52(r2_of(x, gp->X + (size_t)i * d, gp->inv_l2, d), gp->sf2);
            mu += row[i] * gp->alpha[i];
        }
        mean[a] = mu;
    }
    /* rows of B L^-T are (L^-1 k_a)^T */
    gsl_matrix_const_view lv = gsl_matrix_const_submatrix(gp->L, 0, 0, n, n);
    gsl_blas_dtrsm(CblasRight, CblasLower, CblasTrans, CblasNonUnit, 1.0, &lv.matrix, B);
    double var_floor = 1e-12 * gp->sf2;
    for (int a = 0; a < m; a++) {
        const double *row = B->data + (size_t)a * B->tda;
        double s = 0;
        for (int i = 0; i < n; i++)
            s += row[i] * row[i];
        double vr = gp->sf2 - s;
        var[a] = vr > var_floor ? vr : var_floor;
    }
    gsl_matrix_free(B);
    return NS_OK;
}

/* ---- points added to a factorised model, and a posterior kept up to date ---------------- */

int ns_gp_append(ns_gp *gp, const double *x, double y, ns_err *err)
{
    int n = gp->n, d = gp->d;
    if (!gp->factored)
        return ns_err_set(err, NS_EINPUT, "gp: append to a model without data");
    for (int k = 0; k < d; k++)
        if (!isfinite(x[k]))
            return ns_err_set(err, NS_EINPUT, "gp: appended input %d is not finite", k);
    if (!isfinite(y))
        return ns_err_set(err, NS_EINPUT, "gp: appended output is not finite");
    if (n == gp->cap && grow(gp, n + (n / 4 > 64 ? n / 4 : 64)))
        return ns_err_set(err, NS_ERUNTIME, "gp: out of memory for %d observations", n + 1);
    /* the new row l of L solves L l = k(X, x); its pivot is what is left of k(x, x) + the
     * noise. In exact arithmetic that is at least sn2 + jitter; rounding near a repeated
     * point can take it below, so it is held there (the factor stays that of a valid,
     * slightly noisier model) */
    double *row = gp->L->data + (size_t)n * gp->L->tda;
    for (int i = 0; i < n; i++)
        row[i] = matern52(r2_of(x, gp->X + (size_t)i * d, gp->inv_l2, d), gp->sf2);
    gsl_matrix_const_view lv = gsl_matrix_const_submatrix(gp->L, 0, 0, n, n);
    gsl_vector_view rv = gsl_vector_view_array(row, n);
    gsl_blas_dtrsv(CblasLower, CblasNoTrans, CblasNonUnit, &lv.matrix, &rv.vector);
    double ll = 0, lw = 0;
    for (int i = 0; i < n; i++) {
        ll += row[i] * row[i];
        lw += row[i] * gp->w[i];
    }
    double floor = gp->sn2 + gp->jit, p2 = gp->sf2 + gp->sn2 + gp->jit - ll;
    row[n] = sqrt(p2 > floor ? p2 : floor);
    memcpy(gp->X + (size_t)n * d, x, (size_t)d * sizeof *x);
    gp->y[n] = (y - gp->y_mean) / gp->y_sd;
    if (gp->nug)
        gp->nug[n] = 0;
    gp->w[n] = (gp->y[n] - lw) / row[n];
    gp->n = ++n;
    /* alpha = L^-T w */
    memcpy(gp->alpha, gp->w, (size_t)n * sizeof *gp->alpha);
    gsl_matrix_const_view lv1 = gsl_matrix_const_submatrix(gp->L, 0, 0, n, n);
    gsl_vector_view av = gsl_vector_view_array(gp->alpha, n);
    gsl_blas_dtrsv(CblasLower, CblasTrans, CblasNonUnit, &lv1.matrix, &av.vector);
    return NS_OK;
}

void ns_gp_at_free(ns_gp_at *a)
{
    if (!a)
        return;
    free(a->Xs);
    free(a->V);
    free(a->mean);
    free(a->ssq);
    free(a->var);
    memset(a, 0, sizeof *a);
}

/* a->var from the sums of squares, floored as ns_gp_predict does */
static void at_var(ns_gp_at *a, const ns_gp *gp)
{
    double var_floor = 1e-12 * gp->sf2;
    for (int c = 0; c < a->m; c++) {
        double vr = gp->sf2 - a->ssq[c];
        a->var[c] = vr > var_floor ? vr : var_floor;
    }
}

int ns_gp_at_init(ns_gp_at *a, const ns_gp *gp, const double *Xs, int m, ns_err *err)
{
    int n = gp->n, d = gp->d;
    memset(a, 0, sizeof *a);
    if (!gp->factored || m < 1)
        return ns_err_set(err, NS_EINPUT, "gp: a posterior at %d points of a model without data", m);
    a->m = m;
    a->cap = gp->cap;
    a->Xs = malloc((size_t)m * d * sizeof *a->Xs);
    a->V = malloc((size_t)a->cap * m * sizeof *a->V);
    a->mean = malloc((size_t)m * sizeof *a->mean);
    a->ssq = malloc((size_t)m * sizeof *a->ssq);
    a->var = malloc((size_t)m * sizeof *a->var);
    if (!a->Xs || !a->V || !a->mean || !a->ssq || !a->var) {
        ns_gp_at_free(a);
        return ns_err_set(err, NS_ERUNTIME, "gp: out of memory predicting %d points", m);
    }
    memcpy(a->Xs, Xs, (size_t)m * d * sizeof *Xs);
    /* V = L^-1 K(X, Xs), one row per observation */
    for (int i = 0; i < n; i++) {
        const double *xi = gp->X + (size_t)i * d;
        double *vi = a->V + (size_t)i * m;
        for (int c = 0; c < m; c++)
            vi[c] = matern52(r2_of(Xs + (size_t)c * d, xi, gp->inv_l2, d), gp->sf2);
    }
    gsl_matrix_const_view lv = gsl_matrix_const_submatrix(gp->L, 0, 0, n, n);
    gsl_matrix_view vv = gsl_matrix_view_array(a->V, n, m);
    gsl_blas_dtrsm(CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, 1.0, &lv.matrix, &vv.matrix);
    /* mean = V^T w, ssq = the columns' sums of squares */
    for (int c = 0; c < m; c++)
        a->mean[c] = a->ssq[c] = 0;
    for (int i = 0; i < n; i++) {
        const double *vi = a->V + (size_t)i * m;
        double wi = gp->w[i];
        for (int c = 0; c < m; c++) {
            a->mean[c] += vi[c] * wi;
            a->ssq[c] += vi[c] * vi[c];
        }
    }
    a->n = n;
    at_var(a, gp);
    return NS_OK;
}

int ns_gp_at_update(ns_gp_at *a, const ns_gp *gp, ns_err *err)
{
    int m = a->m, d = gp->d;
    if (gp->n < a->n)
        return ns_err_set(err, NS_EINPUT, "gp: the model has fewer points than its posterior");
    if (gp->n > a->cap) {
        double *V = realloc(a->V, (size_t)gp->cap * m * sizeof *V);
        if (!V)
            return ns_err_set(err, NS_ERUNTIME, "gp: out of memory predicting %d points", m);
        a->V = V;
        a->cap = gp->cap;
    }
    for (int i = a->n; i < gp->n; i++) {
        /* row i of L^-1 K: (k(x_i, Xs) - L[i, 0..i) V[0..i, :]) / L[i, i] */
        const double *xi = gp->X + (size_t)i * d, *li = gp->L->data + (size_t)i * gp->L->tda;
        double *vi = a->V + (size_t)i * m;
        for (int c = 0; c < m; c++)
            vi[c] = matern52(r2_of(a->Xs + (size_t)c * d, xi, gp->inv_l2, d), gp->sf2);
        if (i > 0) {
            gsl_matrix_const_view vp = gsl_matrix_const_view_array(a->V, i, m);
            gsl_vector_const_view lr = gsl_vector_const_view_array(li, i);
            gsl_vector_view out = gsl_vector_view_array(vi, m);
            gsl_blas_dgemv(CblasTrans, -1.0, &vp.matrix, &lr.vector, 1.0, &out.vector);
        }
        double wi = gp->w[i];
        for (int c = 0; c < m; c++) {
            vi[c] /= li[i];
            a->mean[c] += vi[c] * wi;
            a->ssq[c] += vi[c] * vi[c];
        }
    }
    a->n = gp->n;
    at_var(a, gp);
    return NS_OK;
}

/* ---- log expected improvement -------------------------------------------------------- */

/* log(1 - e^a) for a < 0, accurate on both sides of -log 2 (Maechler 2012). */
static double log1mexp(double a)
{
    return a > -M_LN2 ? log(-expm1(a)) : log1p(-exp(a));
}

double ns_gp_log_h(double z)
{
    if (z > -1)
        return log(z * gsl_cdf_ugaussian_P(z) + exp(-0.5 * z * z) / sqrt(2 * M_PI));
    double x = -z; /* >= 1 */
    double log_phi = -0.5 * x * x - 0.5 * LOG_2PI;
    if (x > 1000) {
        /* 1 - x Q(x)/phi(x) = 1/x^2 - 3/x^4 + 15/x^6 - ...; the next term is 105/x^8 */
        double u = 1 / (x * x);
        return log_phi + log(u * (1 - u * (3 - 15 * u)));
    }
    /* x Q(x)/phi(x) = x / hazard(x) < 1 */
    return log_phi + log1mexp(log(x) - log(gsl_sf_hazard(x)));
}

double ns_gp_log_ei(double mean, double sd, double best, double *d_mean, double *d_sd)
{
    double z = (best - mean) / sd;
    double lh = ns_gp_log_h(z);
    if (d_mean || d_sd) {
        /* d log h / dz = Phi(z) / h(z), from logs so it stays finite in the tail */
        double log_Phi = gsl_sf_log_erfc(-z / M_SQRT2) - M_LN2;
        double r = exp(log_Phi - lh);
        if (d_mean)
            *d_mean = -r / sd;
        if (d_sd)
            *d_sd = (1 - r * z) / sd;
    }
    return log(sd) + lh;
}
