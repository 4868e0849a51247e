/* gp.h — a Gaussian-process regression model on the unit cube for Bayesian optimisation:
 * Matérn 5/2 ARD kernel, standardised outputs, hyperparameters by maximum a posteriori.
 * Not the optimiser (search/bo/bo.h proposes points) and not a general GP library: one
 * kernel, Gaussian noise, dense Cholesky: O(n^3) per factorisation, and every likelihood
 * evaluation of a fit is one, so bo.h hands this model at most fit_max points to fit and
 * post_max to predict from (its header states the rule and what it costs).
 *
 * Model. Inputs x in [0, 1]^d. Outputs are standardised, y_s = (y - mean(y)) / sd(y)
 * (sample sd; 1 when n < 2 or sd == 0), and modelled as f(x) + noise with
 *   k(x, x') = sf2 (1 + sqrt5 r + 5/3 r^2) exp(-sqrt5 r),  r^2 = sum_i (x_i - x'_i)^2 / l_i^2,
 *   noise ~ N(0, sn2 + nv_i / sd(y)^2),
 * nv_i an optional known noise variance of observation i in y's units (e.g. the squared
 * standard error of a metric over cross-validation folds): a heteroscedastic nugget on
 * the diagonal, on top of the fitted homoscedastic sn2, so that repeated noisy
 * observations average instead of being interpolated.
 * Hyperparameters theta (NS_GP_NTHETA(d) doubles, all in log space):
 *   theta[0..d-1] = log l_i,  theta[d] = log sf2,  theta[d+1] = log sn2.
 * Weak priors (independent normals on the logs), added to the log marginal likelihood:
 *   log l_i  ~ N(log 0.5, 1.0^2)  length scales around half the cube; 1 sd spans 0.18..1.4,
 *                                  so an irrelevant input can still be switched off (l >> 1)
 *   log sf2  ~ N(0, 1.0^2)        the standardised outputs have variance ~1
 *   log sn2  ~ N(log 1e-3, 2.0^2) noise small unless the data insist: objectives here are
 *                                  either exact (benchmarks) or a trial's metric whose seed
 *                                  noise is a small fraction of the spread across configs
 * The Cholesky factor of K + sn2 I gets jitter 1e-10 * 10^k (k = 0, 1, ..., 9) added to
 * its diagonal when plain factorisation fails; the jitter used is kept for prediction.
 * Everything here is deterministic: the same inputs give the same bits. */
#ifndef NS_GP_H
#define NS_GP_H

#include "engine/err.h"
#include "engine/rng.h"

#define NS_GP_NTHETA(d) ((d) + 2)

typedef struct ns_gp ns_gp;

/* A model for d inputs with no data and the default theta (prior means). NULL when d < 1
 * or out of memory. */
ns_gp *ns_gp_alloc(int d);
void ns_gp_free(ns_gp *gp);

/* The prior means: log l_i = log 0.5, log sf2 = 0, log sn2 = log 1e-3. */
void ns_gp_theta_default(int d, double *theta /* (d+2) */);

/* Copies the data (X (n, d) row-major, y (n), lower is better), standardises y and
 * factorises with the current theta. n >= 1. NS_OK; NS_EINPUT for n < 1 or a non-finite
 * value; NS_ERUNTIME when out of memory or when no jitter makes K positive definite. */
int ns_gp_data(ns_gp *gp, const double *X, const double *y, int n, ns_err *err);
/* The same with known noise variances noise_var (n) in y's units, each >= 0 and finite
 * (NS_EINPUT otherwise), or NULL: ns_gp_data. */
int ns_gp_data_noise(ns_gp *gp, const double *X, const double *y, const double *noise_var,
                     int n, ns_err *err);

/* Sets theta and refactorises (when data are set). Errors as ns_gp_data. */
int ns_gp_theta_set(ns_gp *gp, const double *theta, ns_err *err);
const double *ns_gp_theta(const ns_gp *gp); /* (d+2), the current theta */

/* The log marginal likelihood of the standardised data at theta,
 *   -1/2 y^T K^-1 y - 1/2 log|K| - n/2 log 2 pi,
 * plus the log prior densities above when with_prior, and its gradient
 *   d/dtheta_k = 1/2 tr((alpha alpha^T - K^-1) dK/dtheta_k) (+ prior terms)
 * into grad (d+2) when grad is not NULL. Does not change the model's theta. -HUGE_VAL
 * (grad zeroed) when no jitter makes K positive definite or out of memory. Data must be
 * set. */
double ns_gp_log_post(ns_gp *gp, const double *theta, int with_prior, double *grad);

/* Maximises ns_gp_log_post (with priors) by BFGS (gsl_multimin vector_bfgs2) from
 * n_starts >= 1 starts: theta0 when not NULL (the warm start, e.g. the previous fit),
 * else the default theta; each further start is the best (by log posterior alone, no
 * gradient) of 8 draws from the priors (rng), so BFGS only runs from promising places.
 * Each start runs at most max_iter iterations and stops early when the gradient norm is
 * below 1e-3 or an iteration gains less than 1e-3 nats. The best theta found is set (and
 * factorised); if every start fails the model keeps theta0 / the default.
 * NS_OK, or the errors of ns_gp_theta_set. */
int ns_gp_fit(ns_gp *gp, const double *theta0, int n_starts, int max_iter, ns_rng *rng,
              ns_err *err);

/* The posterior of the latent f at x (d) in standardised units: mean and variance
 * (noise excluded, >= 1e-12 sf2). grad_mean, grad_var (d) may be NULL. Data must be set. */
void ns_gp_predict(const ns_gp *gp, const double *x, double *mean, double *var,
                   double *grad_mean, double *grad_var);
/* The same at m points Xs (m, d) at once (BLAS-3); NS_OK or NS_ERUNTIME (out of memory). */
int ns_gp_predict_many(const ns_gp *gp, const double *Xs, int m, double *mean, double *var,
                       ns_err *err);

/* Appends one observation without refactorising: x (d), y in y's own units (the
 * model's standardisation and theta stay; no noise variance of its own). L gains a row,
 * L^-1 y an element, alpha is solved again: O(n^2), where ns_gp_data is O(n^3). Used for
 * a round's pending points (search/bo/bo.h's liars). Deterministic: the same model and
 * the same appends in the same order give the same bits. NS_OK; NS_EINPUT without data or
 * for a non-finite value; NS_ERUNTIME when out of memory. */
int ns_gp_append(ns_gp *gp, const double *x, double y, ns_err *err);

/* The posterior at a fixed set of m points, kept up to date as points are appended to the
 * model: V = L^-1 K(X, Xs) (one row per observation), mean = V^T L^-1 y and var = sf2 -
 * the columns' sums of squares (floored as ns_gp_predict), all standardised. Init is
 * O(n^2 m) (BLAS-3); each appended point costs O(n m). */
typedef struct ns_gp_at {
    int m, n, cap;     /* points, model rows covered, rows of room in V */
    double *Xs;        /* (m, d) */
    double *V;         /* (cap, m) */
    double *mean, *var, *ssq; /* (m) */
} ns_gp_at;
/* NS_OK; NS_EINPUT without data or m < 1; NS_ERUNTIME when out of memory (a is then
 * empty). */
int ns_gp_at_init(ns_gp_at *a, const ns_gp *gp, const double *Xs, int m, ns_err *err);
/* Takes in the points appended to gp since init or the last update. Errors as init. */
int ns_gp_at_update(ns_gp_at *a, const ns_gp *gp, ns_err *err);
void ns_gp_at_free(ns_gp_at *a); /* a itself is the caller's; it is left empty */

/* y's standardisation: y_s = (y - *mean) / *sd. */
void ns_gp_y_scale(const ns_gp *gp, double *mean, double *sd);
/* The standardisation ns_gp_data would use for y (n >= 1): the mean and the sample sd
 * (1 when n < 2 or sd == 0), so a caller can convert theta between two data sets'
 * units before handing either to a model (log sf2 and log sn2 shift by 2 log(sd ratio)). */
void ns_gp_y_stats(const double *y, int n, double *mean, double *sd);
int ns_gp_n(const ns_gp *gp); /* observations set */

/* log EI for minimisation: log E[max(best - f, 0)], f ~ N(mean, sd^2), sd > 0:
 *   z = (best - mean) / sd,  EI = sd h(z),  h(z) = z Phi(z) + phi(z).
 * Stable far into the tail (Ament et al. 2023, "Unexpected improvements to expected
 * improvement"): for z < -1, h(z) = phi(z) (1 - |z| Q(|z|) / phi(|z|)) with the Mills
 * ratio from GSL's hazard function and log1mexp, and its asymptotic series
 * 1/z^2 - 3/z^4 + 15/z^6 beyond |z| = 1000. Finite and increasing in z for any finite
 * z. d_mean, d_sd (may be NULL) receive the partial derivatives of log EI. */
double ns_gp_log_ei(double mean, double sd, double best, double *d_mean, double *d_sd);
/* log h(z) alone (log EI at sd = 1, best - mean = z). */
double ns_gp_log_h(double z);

#endif
