/* test_gp.c — the Gaussian process and the Bayesian optimiser: posterior against the 2x2
 * algebra written out, likelihood and prediction gradients against finite differences,
 * log EI against the direct formula and its tail, constant-liar proposals, feasibility,
 * determinism, short Branin runs that must beat random search clearly, the subset rule for
 * many observations, the guard against near-duplicate proposals, known noise variances,
 * and proposals that do not depend on OpenBLAS's thread count.
 * Not the benchmark (scripts/bench/bo measures regret against random search and TPE). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cdf.h>

#include "engine/backend/backend.h"
#include "engine/rng.h"
#include "search/bo/bo.h"
#include "search/bo/gp.h"

static double matern(double r, double sf2)
{
    return sf2 * (1 + sqrt(5) * r + 5.0 / 3.0 * r * r) * exp(-sqrt(5) * r);
}

static double branin(const double *u)
{
    double x = -5 + 15 * u[0], y = 15 * u[1];
    double b = 5.1 / (4 * M_PI * M_PI), c = 5 / M_PI, t = 1 / (8 * M_PI);
    double q = y - b * x * x + c * x - 6;
    return q * q + 10 * (1 - t) * cos(x) + 10;
}

/* ---- the model ----------------------------------------------------------------------- */

Test(gp, posterior_matches_the_2x2_closed_form)
{
    double X[2] = {0.2, 0.7}, y[2] = {1.0, 3.0};
    double l = 0.3, sf2 = 1.5, sn2 = 0.01;
    double theta[3] = {log(l), log(sf2), log(sn2)};
    ns_gp *gp = ns_gp_alloc(1);
    cr_assert(gp);
    ns_err err = {0};
    cr_assert_eq(ns_gp_theta_set(gp, theta, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_gp_data(gp, X, y, 2, &err), NS_OK, "%s", err.msg);
    /* standardised y: mean 2, sample sd sqrt(2) */
    double ys[2] = {-1 / sqrt(2), 1 / sqrt(2)};
    /* K = [[a, b], [b, a]], K^-1 = [[a, -b], [-b, a]] / (a^2 - b^2) */
    double a = sf2 + sn2, b = matern(0.5 / l, sf2), det = a * a - b * b;
    double xs = 0.4;
    double k1 = matern(0.2 / l, sf2), k2 = matern(0.3 / l, sf2);
    double w1 = (a * k1 - b * k2) / det, w2 = (-b * k1 + a * k2) / det; /* K^-1 k* */
    double mean = w1 * ys[0] + w2 * ys[1];
    double var = sf2 - (k1 * w1 + k2 * w2);
    double m, v;
    ns_gp_predict(gp, &xs, &m, &v, NULL, NULL);
    cr_assert(fabs(m - mean) < 1e-12, "mean %.17g, closed form %.17g", m, mean);
    cr_assert(fabs(v - var) < 1e-12, "var %.17g, closed form %.17g", v, var);
    double ym, ysd;
    ns_gp_y_scale(gp, &ym, &ysd);
    cr_assert(fabs(ym - 2) < 1e-15 && fabs(ysd - sqrt(2)) < 1e-15);
    /* the batch path agrees */
    double mm, vv;
    cr_assert_eq(ns_gp_predict_many(gp, &xs, 1, &mm, &vv, &err), NS_OK);
    cr_assert(fabs(mm - mean) < 1e-12 && fabs(vv - var) < 1e-12);
    /* log marginal likelihood: -1/2 y^T K^-1 y - 1/2 log det - log 2 pi */
    double yKy = (a * ys[0] * ys[0] - 2 * b * ys[0] * ys[1] + a * ys[1] * ys[1]) / det;
    double lml = -0.5 * yKy - 0.5 * log(det) - log(2 * M_PI);
    double got = ns_gp_log_post(gp, theta, 0, NULL);
    cr_assert(fabs(got - lml) < 1e-12, "lml %.17g, closed form %.17g", got, lml);
    ns_gp_free(gp);
}

Test(gp, likelihood_gradient_matches_finite_differences)
{
    enum { N = 15, D = 3, NP = D + 2 };
    ns_rng r;
    ns_rng_seed(&r, 7);
    double X[N * D], y[N];
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < D; k++)
            X[i * D + k] = ns_rng_uniform(&r);
        y[i] = sin(5 * X[i * D]) + X[i * D + 1] * X[i * D + 2] + 0.1 * ns_rng_normal(&r);
    }
    ns_gp *gp = ns_gp_alloc(D);
    ns_err err = {0};
    cr_assert_eq(ns_gp_data(gp, X, y, N, &err), NS_OK, "%s", err.msg);
    for (int rep = 0; rep < 5; rep++) {
        double th[NP], g[NP];
        ns_gp_theta_default(D, th);
        for (int k = 0; k < NP; k++)
            th[k] += ns_rng_normal(&r);
        for (int prior = 0; prior < 2; prior++) {
            double f = ns_gp_log_post(gp, th, prior, g);
            cr_assert(isfinite(f));
            for (int k = 0; k < NP; k++) {
                double h = 1e-5, tp[NP], tm[NP];
                memcpy(tp, th, sizeof tp);
                memcpy(tm, th, sizeof tm);
                tp[k] += h;
                tm[k] -= h;
                double fd = (ns_gp_log_post(gp, tp, prior, NULL) - ns_gp_log_post(gp, tm, prior, NULL)) / (2 * h);
                cr_assert(fabs(fd - g[k]) <= 1e-6 * (1 + fabs(fd)),
                          "rep %d prior %d theta[%d]: analytic %.10g, finite difference %.10g",
                          rep, prior, k, g[k], fd);
            }
        }
    }
    /* the fit raises the objective above the default's */
    double th0[NP];
    ns_gp_theta_default(D, th0);
    double f0 = ns_gp_log_post(gp, th0, 1, NULL);
    cr_assert_eq(ns_gp_fit(gp, NULL, 3, 100, &r, &err), NS_OK, "%s", err.msg);
    double th1[NP];
    memcpy(th1, ns_gp_theta(gp), sizeof th1);
    cr_assert(ns_gp_log_post(gp, th1, 1, NULL) > f0);
    ns_gp_free(gp);
}

Test(gp, prediction_gradient_matches_finite_differences)
{
    enum { N = 12, D = 2 };
    ns_rng r;
    ns_rng_seed(&r, 3);
    double X[N * D], y[N];
    for (int i = 0; i < N; i++) {
        X[i * D] = ns_rng_uniform(&r);
        X[i * D + 1] = ns_rng_uniform(&r);
        y[i] = branin(X + i * D);
    }
    ns_gp *gp = ns_gp_alloc(D);
    ns_err err = {0};
    cr_assert_eq(ns_gp_data(gp, X, y, N, &err), NS_OK);
    cr_assert_eq(ns_gp_fit(gp, NULL, 2, 50, &r, &err), NS_OK);
    for (int rep = 0; rep < 10; rep++) {
        double x[D] = {ns_rng_uniform(&r), ns_rng_uniform(&r)}, m, v, gm[D], gv[D];
        ns_gp_predict(gp, x, &m, &v, gm, gv);
        for (int k = 0; k < D; k++) {
            double h = 1e-6, xp[D], xm[D], mp, vp, mmn, vmn;
            memcpy(xp, x, sizeof xp);
            memcpy(xm, x, sizeof xm);
            xp[k] += h;
            xm[k] -= h;
            ns_gp_predict(gp, xp, &mp, &vp, NULL, NULL);
            ns_gp_predict(gp, xm, &mmn, &vmn, NULL, NULL);
            double fm = (mp - mmn) / (2 * h), fv = (vp - vmn) / (2 * h);
            cr_assert(fabs(fm - gm[k]) <= 1e-5 * (1 + fabs(fm)), "dmean %g vs %g", gm[k], fm);
            cr_assert(fabs(fv - gv[k]) <= 1e-5 * (1 + fabs(fv)), "dvar %g vs %g", gv[k], fv);
        }
    }
    ns_gp_free(gp);
}

/* ---- log EI -------------------------------------------------------------------------- */

Test(gp, log_ei_matches_the_direct_formula)
{
    double sd = 0.7, best = 0.3;
    for (double z = -5; z <= 5.0001; z += 0.125) {
        double mean = best - z * sd;
        double direct = log(sd * (z * gsl_cdf_ugaussian_P(z) + exp(-z * z / 2) / sqrt(2 * M_PI)));
        double got = ns_gp_log_ei(mean, sd, best, NULL, NULL);
        cr_assert(fabs(got - direct) <= 1e-9 * (1 + fabs(direct)), "z %g: %.15g vs direct %.15g",
                  z, got, direct);
    }
}

Test(gp, log_ei_is_finite_and_increasing_in_the_tail)
{
    double prev = -HUGE_VAL;
    for (double z = -40; z <= 5; z += 0.01) {
        double v = ns_gp_log_h(z);
        cr_assert(isfinite(v) && v > prev, "z %g: log h %.17g after %.17g", z, v, prev);
        prev = v;
    }
    /* against the asymptotic series log phi(z) + log(1/z^2 - 3/z^4 + 15/z^6 - 105/z^8) */
    double zs[] = {-30, -100, -999, -1001, -1e4, -1e6, -1e9};
    for (size_t i = 0; i < sizeof zs / sizeof *zs; i++) {
        double z = zs[i], u = 1 / (z * z);
        double ref = -z * z / 2 - 0.5 * log(2 * M_PI) + log(u * (1 - 3 * u + 15 * u * u - 105 * u * u * u));
        double v = ns_gp_log_h(z);
        cr_assert(isfinite(v) && fabs(v - ref) <= 1e-9 * fabs(ref) + 1e-9, "z %g: %.17g vs %.17g", z, v, ref);
    }
    /* the gradient: finite differences, in the body and in the tail */
    double pts[][2] = {{0.1, 1.0}, {2.0, 0.5}, {10.0, 0.5}, {30.0, 1.0}, {-1.0, 2.0}};
    for (size_t i = 0; i < sizeof pts / sizeof *pts; i++) {
        double mean = pts[i][0], sd = pts[i][1], dm, ds, h = 1e-6;
        ns_gp_log_ei(mean, sd, 0, &dm, &ds);
        double fm = (ns_gp_log_ei(mean + h, sd, 0, NULL, NULL) - ns_gp_log_ei(mean - h, sd, 0, NULL, NULL)) / (2 * h);
        double fs = (ns_gp_log_ei(mean, sd + h, 0, NULL, NULL) - ns_gp_log_ei(mean, sd - h, 0, NULL, NULL)) / (2 * h);
        cr_assert(fabs(fm - dm) <= 1e-5 * (1 + fabs(fm)), "d/dmean %g vs %g", dm, fm);
        cr_assert(fabs(fs - ds) <= 1e-5 * (1 + fabs(fs)), "d/dsd %g vs %g", ds, fs);
    }
}

/* ---- the optimiser ------------------------------------------------------------------- */

static void sample_branin(int n, uint64_t seed, double *X, double *y)
{
    ns_rng r;
    ns_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        X[2 * i] = ns_rng_uniform(&r);
        X[2 * i + 1] = ns_rng_uniform(&r);
        y[i] = branin(X + 2 * i);
    }
}

Test(gp, constant_liar_proposals_are_distinct)
{
    enum { N = 10, Q = 4 };
    double X[N * 2], y[N], pend[Q * 2], hyp[NS_BO_HYP_LEN(2)];
    sample_branin(N, 11, X, y);
    ns_bo_spec s;
    ns_bo_spec_default(&s, 2);
    s.seed = 5;
    ns_err err = {0};
    for (int q = 0; q < Q; q++) {
        cr_assert_eq(ns_bo_propose(&s, 2, X, y, NULL, N, pend, q, hyp, pend + 2 * q, &err), NS_OK,
                     "%s", err.msg);
        for (int p = 0; p < q; p++) {
            double dx = pend[2 * q] - pend[2 * p], dy = pend[2 * q + 1] - pend[2 * p + 1];
            cr_assert(sqrt(dx * dx + dy * dy) > 1e-3, "proposal %d repeats proposal %d (%g, %g)",
                      q, p, pend[2 * q], pend[2 * q + 1]);
        }
        cr_assert(pend[2 * q] >= 0 && pend[2 * q] <= 1 && pend[2 * q + 1] >= 0 && pend[2 * q + 1] <= 1);
    }
}

Test(gp, proposals_are_deterministic)
{
    enum { N = 14 };
    double X[N * 2], y[N], pend[2] = {0.3, 0.6}, a[2], b[2];
    sample_branin(N, 12, X, y);
    int feas[N];
    for (int i = 0; i < N; i++)
        feas[i] = i % 4 != 0;
    ns_bo_spec s;
    ns_bo_spec_default(&s, 2);
    s.seed = 9;
    ns_err err = {0};
    double h1[NS_BO_HYP_LEN(2)], h2[NS_BO_HYP_LEN(2)];
    for (int k = 0; k < NS_BO_HYP_LEN(2); k++)
        h1[k] = h2[k] = NAN;
    cr_assert_eq(ns_bo_propose(&s, 2, X, y, feas, N, pend, 1, h1, a, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_bo_propose(&s, 2, X, y, feas, N, pend, 1, h2, b, &err), NS_OK, "%s", err.msg);
    cr_assert(memcmp(a, b, sizeof a) == 0 && memcmp(h1, h2, sizeof h1) == 0);
    cr_assert(isfinite(h1[0]) && isfinite(h1[NS_GP_NTHETA(2)]), "both GPs were fitted");
    /* the initial design: distinct Sobol points, different per seed */
    double u0[2], u1[2], v0[2];
    cr_assert_eq(ns_bo_propose(&s, 2, X, y, NULL, 0, NULL, 0, NULL, u0, &err), NS_OK);
    cr_assert_eq(ns_bo_propose(&s, 2, X, y, NULL, 1, NULL, 0, NULL, u1, &err), NS_OK);
    s.seed = 10;
    cr_assert_eq(ns_bo_propose(&s, 2, X, y, NULL, 0, NULL, 0, NULL, v0, &err), NS_OK);
    cr_assert(memcmp(u0, u1, sizeof u0) != 0 && memcmp(u0, v0, sizeof u0) != 0);
    /* bad input is refused */
    X[0] = 1.5;
    cr_assert_eq(ns_bo_propose(&s, 2, X, y, NULL, N, NULL, 0, NULL, a, &err), NS_EINPUT);
}

Test(gp, infeasible_region_is_avoided)
{
    /* y = -x0 is best at x0 = 1, but every trial with x0 > 0.5 was unhealthy */
    enum { N = 24 };
    double X[N * 2], y[N];
    int feas[N];
    ns_rng r;
    ns_rng_seed(&r, 4);
    for (int i = 0; i < N; i++) {
        X[2 * i] = ns_rng_uniform(&r);
        X[2 * i + 1] = ns_rng_uniform(&r);
        feas[i] = X[2 * i] <= 0.5;
        y[i] = feas[i] ? -X[2 * i] : NAN;
    }
    ns_bo_spec s;
    ns_bo_spec_default(&s, 2);
    ns_err err = {0};
    double out[2];
    cr_assert_eq(ns_bo_propose(&s, 2, X, y, feas, N, NULL, 0, NULL, out, &err), NS_OK, "%s", err.msg);
    cr_assert(out[0] > 0.3 && out[0] < 0.6, "proposal x0 = %g: not at the feasibility edge", out[0]);
}

/* Random search with the same 30 evaluations (20,000 runs of ns_rng_uniform points): median
 * regret 1.20, 5% of runs below 0.094, 26% below 0.5 (the threshold this test had, which
 * a proposer no better than random passed one time in four). Over 5 runs, random's median
 * regret was below 0.05 in 1 of 10,000 groups and its worst below 0.2 in none of 20,000;
 * GP-BO's (seeds 1..20) median is 0.0098 and its worst 0.087. So both limits below sit
 * far on GP-BO's side: a GP that models nothing (proposals of the Sobol design alone, or
 * EI maximised the wrong way) fails them. */
static double branin_regret(uint64_t seed, int T)
{
    double X[30 * 2], y[30], hyp[NS_BO_HYP_LEN(2)];
    cr_assert(T <= 30);
    ns_bo_spec s;
    ns_bo_spec_default(&s, 2);
    s.seed = seed;
    ns_err err = {0};
    double best = HUGE_VAL;
    for (int t = 0; t < T; t++) {
        cr_assert_eq(ns_bo_propose(&s, 2, X, y, NULL, t, NULL, 0, hyp, X + 2 * t, &err), NS_OK,
                     "%s", err.msg);
        y[t] = branin(X + 2 * t);
        best = fmin(best, y[t]);
    }
    return best - 0.397887;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

Test(gp, branin_regret_after_30_evaluations_beats_random_search)
{
    enum { RUNS = 5, T = 30 };
    double r[RUNS];
    for (int k = 0; k < RUNS; k++)
        r[k] = branin_regret((uint64_t)k + 1, T);
    qsort(r, RUNS, sizeof *r, cmp_double);
    cr_assert(r[RUNS / 2] < 0.05 && r[RUNS - 1] < 0.2,
              "regrets after %d evaluations, seeds 1..%d: median %g (limit 0.05; random search "
              "1.20), worst %g (limit 0.2)", T, RUNS, r[RUNS / 2], r[RUNS - 1]);
}

Test(gp, space_encoding_one_hot_and_snap)
{
    ns_dim dims[3] = {
        {.name = "a", .kind = NS_DIM_LOG_UNIFORM, .lo = 1e-4, .hi = 1e-1},
        {.name = "b", .kind = NS_DIM_CHOICE, .lo = 0, .hi = 2, .n_choices = 3},
        {.name = "c", .kind = NS_DIM_INT, .lo = 1, .hi = 4},
    };
    ns_space sp = {3, dims};
    cr_assert_eq(ns_bo_dims(&sp), 5);
    double u[3] = {0.25, 0.5, 0.3}, x[5], back[3];
    ns_bo_encode(&sp, u, x);
    cr_assert(x[0] == 0.25 && x[1] == 0 && x[2] == 1 && x[3] == 0);
    cr_assert(x[4] == ns_dim_unit(&dims[2], 2)); /* 0.3 of 1..4 is 2, centre of its share */
    ns_bo_decode(&sp, x, back);
    cr_assert(back[0] == 0.25 && ns_dim_value(&dims[1], back[1]) == 1 && ns_dim_value(&dims[2], back[2]) == 2);
    double y[5] = {0.7, 0.2, 0.1, 0.6, 0.99};
    ns_bo_snap_space(y, 5, &sp);
    cr_assert(y[0] == 0.7 && y[1] == 0 && y[2] == 0 && y[3] == 1 && y[4] == ns_dim_unit(&dims[2], 4));
}

/* ---- many observations: the subset rule ---------------------------------------------- */

Test(gp, subset_keeps_the_best_then_the_farthest)
{
    /* 1-D: the two lowest y are indices 1 and 7 (x 0.52, 0.49); then the farthest from
     * them is index 2 (x 0, 0.49 away), then index 4 (x 1, 0.48 away; index 5 at 0.9 is
     * 0.38 away and index 3 at 0.1 is now 0.1 from index 2) */
    double X[8] = {0.50, 0.52, 0.0, 0.1, 1.0, 0.9, 0.51, 0.49};
    double y[8] = {1, 0, 5, 6, 7, 8, 0.5, 0.2};
    int keep[8];
    ns_err err = {0};
    cr_assert_eq(ns_bo_subset(X, y, 8, 1, 4, 2, keep, &err), NS_OK, "%s", err.msg);
    int want[4] = {1, 2, 4, 7};
    for (int j = 0; j < 4; j++)
        cr_assert_eq(keep[j], want[j], "keep[%d] = %d, not %d", j, keep[j], want[j]);
    /* no more than m points: all of them, in order */
    cr_assert_eq(ns_bo_subset(X, y, 3, 1, 4, 2, keep, &err), NS_OK);
    cr_assert(keep[0] == 0 && keep[1] == 1 && keep[2] == 2);
    /* ties in y go to the lower index; an exact repeat of a kept point goes last, and
     * n_best is clamped to at least 1 */
    double X2[10] = {0.2, 0.2, 0.8, 0.8, 0.2, 0.5, 0.6, 0.6, 0.6, 0.6};
    double y2[5] = {3, 3, 3, 3, 3};
    cr_assert_eq(ns_bo_subset(X2, y2, 5, 2, 4, 0, keep, &err), NS_OK);
    /* point 0 (0.2, 0.2) is the best by index; farthest from it: point 1 (0.8, 0.8); then
     * point 2 (0.2, 0.5), 0.3 from point 0, before points 3 and 4 (0.6, 0.6), 0.2 sqrt 2
     * from point 1; then point 3 (the lower index of the tie); point 4 repeats it */
    cr_assert(keep[0] == 0 && keep[1] == 1 && keep[2] == 2 && keep[3] == 3, "kept %d %d %d %d",
              keep[0], keep[1], keep[2], keep[3]);
    cr_assert_eq(ns_bo_subset(X2, y2, 5, 2, -1, 1, keep, &err), NS_EINPUT);
}

/* f(x) = |x - c|^2 in 3-D, c = (0.3, 0.7, 0.5), with N(0, 0.01^2) noise: n random points */
static void sample_bowl(int n, uint64_t seed, double *X, double *y)
{
    static const double c[3] = {0.3, 0.7, 0.5};
    ns_rng r;
    ns_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        y[i] = 0.01 * ns_rng_normal(&r);
        for (int k = 0; k < 3; k++) {
            X[3 * i + k] = ns_rng_uniform(&r);
            y[i] += (X[3 * i + k] - c[k]) * (X[3 * i + k] - c[k]);
        }
    }
}

static double dist_to(const double *a, const double *b, int d)
{
    double s = 0;
    for (int k = 0; k < d; k++)
        s += (a[k] - b[k]) * (a[k] - b[k]);
    return sqrt(s);
}

Test(gp, many_noisy_observations_still_find_the_optimum)
{
    enum { N = 600, D = 3 };
    static const double c[D] = {0.3, 0.7, 0.5};
    double *X = malloc(N * D * sizeof *X), *y = malloc(N * sizeof *y);
    int *feas = malloc(N * sizeof *feas);
    cr_assert(X && y && feas);
    sample_bowl(N, 21, X, y);
    for (int i = 0; i < N; i++) /* an unhealthy corner, far from the optimum */
        feas[i] = !(X[3 * i] > 0.9);
    ns_bo_spec s;
    ns_bo_spec_default(&s, D);
    cr_assert(N > s.fit_max, "the test must exercise the fit subset");
    s.seed = 3;
    ns_err err = {0};
    /* defaults (the fit on a subset), then both subsets (the posterior on one too) and
     * the feasibility GP on subsets of its own */
    for (int small = 0; small < 2; small++) {
        const int *f = small ? feas : NULL;
        if (small) {
            s.fit_max = 100;
            s.post_max = 250;
        }
        double a[D], b[D], h1[NS_BO_HYP_LEN(D)], h2[NS_BO_HYP_LEN(D)];
        for (int k = 0; k < NS_BO_HYP_LEN(D); k++)
            h1[k] = h2[k] = NAN;
        cr_assert_eq(ns_bo_propose(&s, D, X, y, f, N, NULL, 0, h1, a, &err), NS_OK, "%s",
                     err.msg);
        cr_assert_eq(ns_bo_propose(&s, D, X, y, f, N, NULL, 0, h2, b, &err), NS_OK, "%s",
                     err.msg);
        cr_assert(memcmp(a, b, sizeof a) == 0 && memcmp(h1, h2, sizeof h1) == 0,
                  "subsets %d: not deterministic", small);
        cr_assert(isfinite(h1[0]) && isfinite(h1[NS_GP_NTHETA(D)]) == small);
        cr_assert(dist_to(a, c, D) < 0.1, "subsets %d: proposal (%g, %g, %g) is %g from the "
                  "optimum", small, a[0], a[1], a[2], dist_to(a, c, D));
        /* a warm-started proposal (the previous fit) lands there too */
        cr_assert_eq(ns_bo_propose(&s, D, X, y, f, N, NULL, 0, h1, b, &err), NS_OK, "%s",
                     err.msg);
        cr_assert(dist_to(b, c, D) < 0.1, "subsets %d: warm proposal %g from the optimum", small,
                  dist_to(b, c, D));
    }
    free(X);
    free(y);
    free(feas);
}

/* ---- collapse and noise -------------------------------------------------------------- */

Test(gp, clustered_observations_push_the_proposal_away)
{
    /* 30 spread points, then 40 within 0.004 of the optimum (0.3, 0.7) of |x - c|^2: the
     * acquisition's best is in the cluster, which the guard forbids */
    enum { NS = 30, NC = 40, N = NS + NC, Q = 2 };
    double X[N * 2], y[N], pend[Q * 2], out[2];
    ns_rng r;
    ns_rng_seed(&r, 8);
    for (int i = 0; i < N; i++) {
        double w = i < NS ? 1 : 0.004;
        X[2 * i] = i < NS ? w * ns_rng_uniform(&r) : 0.3 + w * (ns_rng_uniform(&r) - 0.5);
        X[2 * i + 1] = i < NS ? w * ns_rng_uniform(&r) : 0.7 + w * (ns_rng_uniform(&r) - 0.5);
        double a = X[2 * i] - 0.3, b = X[2 * i + 1] - 0.7;
        y[i] = a * a + b * b + 1e-4 * ns_rng_normal(&r);
    }
    ns_bo_spec s;
    ns_bo_spec_default(&s, 2);
    s.seed = 2;
    cr_assert(s.min_dist > 0);
    ns_err err = {0};
    for (int q = 0; q < Q; q++) { /* the second with the first pending */
        cr_assert_eq(ns_bo_propose(&s, 2, X, y, NULL, N, pend, q, NULL, out, &err), NS_OK, "%s",
                     err.msg);
        for (int i = 0; i < N; i++)
            cr_assert(dist_to(out, X + 2 * i, 2) >= s.min_dist, "proposal %d (%g, %g) is %g "
                      "from observation %d", q, out[0], out[1], dist_to(out, X + 2 * i, 2), i);
        for (int p = 0; p < q; p++)
            cr_assert(dist_to(out, pend + 2 * p, 2) >= s.min_dist, "proposal %d repeats pending %d",
                      q, p);
        cr_assert(dist_to(out, (double[2]){0.3, 0.7}, 2) < 0.1, "proposal %d (%g, %g) left the "
                  "optimum's neighbourhood", q, out[0], out[1]);
        memcpy(pend + 2 * q, out, sizeof out);
    }
    /* without the guard the same data draw the proposal nearer than min_dist to the
     * cluster: the guard is what moved it */
    double md = s.min_dist, nearest = HUGE_VAL;
    s.min_dist = 0;
    cr_assert_eq(ns_bo_propose(&s, 2, X, y, NULL, N, NULL, 0, NULL, out, &err), NS_OK);
    for (int i = 0; i < N; i++)
        nearest = fmin(nearest, dist_to(out, X + 2 * i, 2));
    cr_assert(nearest < md, "unguarded proposal (%g, %g) is %g from the nearest observation",
              out[0], out[1], nearest);
}

Test(gp, noise_variances_set_the_posterior_variance_at_repeats)
{
    /* n observations at one point: the latent posterior there is the prior N(0, sf2)
     * updated by n Gaussian measurements, var = 1 / (1/sf2 + sum_i 1 / (sn2 + nv_i / sd^2))
     * in standardised units (sd = sd(y)) */
    enum { N = 8 };
    double X[N], y[N], nv[N], x = 0.4;
    for (int i = 0; i < N; i++) {
        X[i] = x;
        y[i] = 1 + 0.1 * (i % 3) - 0.05 * (i % 2);
        nv[i] = 0.01 * (1 + i % 2); /* y's units */
    }
    double sf2 = 1.3, sn2 = 1e-4, theta[3] = {log(0.3), log(sf2), log(sn2)};
    ns_gp *gp = ns_gp_alloc(1);
    cr_assert(gp);
    ns_err err = {0};
    cr_assert_eq(ns_gp_theta_set(gp, theta, &err), NS_OK);
    cr_assert_eq(ns_gp_data_noise(gp, X, y, nv, N, &err), NS_OK, "%s", err.msg);
    double ym, sd, m, v, prec = 1 / sf2;
    ns_gp_y_scale(gp, &ym, &sd);
    for (int i = 0; i < N; i++)
        prec += 1 / (sn2 + nv[i] / (sd * sd));
    ns_gp_predict(gp, &x, &m, &v, NULL, NULL);
    cr_assert(fabs(v - 1 / prec) <= 1e-9 * (1 / prec), "var %.12g, closed form %.12g", v, 1 / prec);
    /* without the noise array the repeats are nearly exact: variance ~ sn2 / n */
    double v0;
    cr_assert_eq(ns_gp_data(gp, X, y, N, &err), NS_OK, "%s", err.msg);
    ns_gp_predict(gp, &x, &m, &v0, NULL, NULL);
    cr_assert(v0 < 2 * sn2 / N && v > 50 * v0, "var %g with noise, %g without", v, v0);
    nv[3] = -1;
    cr_assert_eq(ns_gp_data_noise(gp, X, y, nv, N, &err), NS_EINPUT);
    ns_gp_free(gp);
}

Test(gp, likelihood_gradient_with_noise_variances)
{
    enum { N = 12, D = 2, NP = D + 2 };
    ns_rng r;
    ns_rng_seed(&r, 17);
    double X[N * D], y[N], nv[N];
    for (int i = 0; i < N; i++) {
        X[i * D] = ns_rng_uniform(&r);
        X[i * D + 1] = ns_rng_uniform(&r);
        y[i] = branin(X + i * D);
        nv[i] = 0.5 + 10 * ns_rng_uniform(&r); /* branin's y varies by ~100 */
    }
    ns_gp *gp = ns_gp_alloc(D);
    ns_err err = {0};
    cr_assert_eq(ns_gp_data_noise(gp, X, y, nv, N, &err), NS_OK, "%s", err.msg);
    double th[NP], g[NP];
    ns_gp_theta_default(D, th);
    th[0] = log(0.3);
    double f = ns_gp_log_post(gp, th, 1, g);
    cr_assert(isfinite(f));
    for (int k = 0; k < NP; k++) {
        double h = 1e-5, tp[NP], tm[NP];
        memcpy(tp, th, sizeof tp);
        memcpy(tm, th, sizeof tm);
        tp[k] += h;
        tm[k] -= h;
        double fd = (ns_gp_log_post(gp, tp, 1, NULL) - ns_gp_log_post(gp, tm, 1, NULL)) / (2 * h);
        cr_assert(fabs(fd - g[k]) <= 1e-6 * (1 + fabs(fd)), "theta[%d]: analytic %.10g, finite "
                  "difference %.10g", k, g[k], fd);
    }
    ns_gp_free(gp);
}

Test(gp, noisy_proposals_are_deterministic_and_check_their_noise)
{
    enum { N = 20 };
    double X[N * 2], y[N], nv[N], a[2], b[2];
    sample_branin(N, 13, X, y);
    for (int i = 0; i < N; i++)
        nv[i] = 4.0 * (i % 3);
    ns_bo_spec s;
    ns_bo_spec_default(&s, 2);
    s.seed = 4;
    ns_err err = {0};
    cr_assert_eq(ns_bo_propose_noisy(&s, 2, X, y, nv, NULL, N, NULL, 0, NULL, a, &err), NS_OK,
                 "%s", err.msg);
    cr_assert_eq(ns_bo_propose_noisy(&s, 2, X, y, nv, NULL, N, NULL, 0, NULL, b, &err), NS_OK);
    cr_assert(memcmp(a, b, sizeof a) == 0);
    /* NULL noise is ns_bo_propose, bit for bit */
    cr_assert_eq(ns_bo_propose_noisy(&s, 2, X, y, NULL, NULL, N, NULL, 0, NULL, a, &err), NS_OK);
    cr_assert_eq(ns_bo_propose(&s, 2, X, y, NULL, N, NULL, 0, NULL, b, &err), NS_OK);
    cr_assert(memcmp(a, b, sizeof a) == 0);
    nv[5] = NAN;
    cr_assert_eq(ns_bo_propose_noisy(&s, 2, X, y, nv, NULL, N, NULL, 0, NULL, a, &err), NS_EINPUT);
    nv[5] = 0;
    s.post_max = 1; /* below fit_max */
    cr_assert_eq(ns_bo_propose_noisy(&s, 2, X, y, nv, NULL, N, NULL, 0, NULL, a, &err), NS_EINPUT);
}

/* A resumed study must propose what the uninterrupted one did, but OpenBLAS's thread count
 * is process-wide history: a fresh process has its default (all cores), a running study
 * the last trial's train.threads, and threaded BLAS calls round differently. Studies that
 * were killed between two bayes rounds proposed other points (6th digit) from then on. */
Test(gp, proposals_do_not_depend_on_the_blas_thread_count)
{
    static const int dims[] = {2, 5, 8}, sizes[] = {19, 22, 30, 49};
    static const int threads[] = {2, 4};
    int before = ns_blas_threads_set(1);
    for (size_t a = 0; a < sizeof dims / sizeof *dims; a++)
        for (size_t b = 0; b < sizeof sizes / sizeof *sizes; b++) {
            int d = dims[a], n = sizes[b], np = NS_BO_HYP_LEN(d);
            double X[49 * 8], y[49], nv[49], ref[8], x[8], hyp0[2 * 10], h1[2 * 10], hk[2 * 10];
            ns_rng r;
            ns_rng_seed(&r, (uint64_t)(100 * n + d));
            for (int i = 0; i < n * d; i++)
                X[i] = ns_rng_uniform(&r);
            for (int i = 0; i < n; i++) {
                y[i] = sin(3 * X[i * d]) + X[i * d + 1] * X[i * d + 1] + 0.01 * ns_rng_uniform(&r);
                nv[i] = 1e-4 * ns_rng_uniform(&r);
            }
            ns_bo_spec s;
            ns_bo_spec_default(&s, d);
            s.seed = 7;
            s.n_init = 3;
            ns_err err = {0};
            /* cold (every start) and warm (from the cold fit, one start) */
            for (int warm = 0; warm < 2; warm++) {
                for (int k = 0; k < np; k++)
                    h1[k] = warm ? hyp0[k] : NAN;
                ns_blas_threads_set(1);
                cr_assert_eq(ns_bo_propose_noisy(&s, d, X, y, nv, NULL, n, NULL, 0, h1, ref, &err),
                             NS_OK, "%s", err.msg);
                if (!warm)
                    memcpy(hyp0, h1, (size_t)np * sizeof *h1);
                for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
                    for (int k = 0; k < np; k++)
                        hk[k] = warm ? hyp0[k] : NAN;
                    ns_blas_threads_set(threads[t]);
                    int now = ns_blas_threads_set(threads[t]); /* what OpenBLAS granted */
                    cr_assert_eq(ns_bo_propose_noisy(&s, d, X, y, nv, NULL, n, NULL, 0, hk, x, &err),
                                 NS_OK, "%s", err.msg);
                    cr_assert_eq(ns_blas_threads_set(now), now,
                                 "the caller's thread count is left as it was");
                    cr_assert(memcmp(ref, x, (size_t)d * sizeof *x) == 0 &&
                                  memcmp(h1, hk, (size_t)np * sizeof *hk) == 0,
                              "d %d, %d observations, %s start: 1 and %d BLAS threads propose "
                              "%.17g and %.17g (first input)", d, n, warm ? "warm" : "cold",
                              threads[t], ref[0], x[0]);
                }
            }
        }
    ns_blas_threads_set(before);
}

/* ---- rounds: appended points and the round cache --------------------------------------- */

Test(gp, appended_points_give_the_posterior_of_a_full_factorisation)
{
    enum { N = 40, A = 7, M = 25, D = 3 };
    double X[(N + A) * D], y[N + A], Xs[M * D], th[NS_GP_NTHETA(D)];
    sample_bowl(N + A, 31, X, y);
    double ys[M];
    sample_bowl(M, 32, Xs, ys); /* candidates */
    ns_gp_theta_default(D, th);
    th[D + 1] = log(1e-4);
    ns_err err = {0};
    ns_gp *inc = ns_gp_alloc(D), *full = ns_gp_alloc(D);
    cr_assert(inc && full);
    cr_assert_eq(ns_gp_theta_set(inc, th, &err), NS_OK);
    cr_assert_eq(ns_gp_theta_set(full, th, &err), NS_OK);
    cr_assert_eq(ns_gp_data(inc, X, y, N, &err), NS_OK, "%s", err.msg);
    ns_gp_at at;
    cr_assert_eq(ns_gp_at_init(&at, inc, Xs, M, &err), NS_OK, "%s", err.msg);
    for (int a = 0; a < A; a++) /* growing past the first allocation on the way */
        cr_assert_eq(ns_gp_append(inc, X + (N + a) * D, y[N + a], &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_gp_at_update(&at, inc, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_gp_n(inc), N + A);
    /* the variance does not depend on y: a model factorised on all N + A points has it */
    cr_assert_eq(ns_gp_data(full, X, y, N + A, &err), NS_OK, "%s", err.msg);
    double fm[M], fv[M]; /* (the means differ: the appended points keep the first N's
                          * standardisation, which the full model does not share) */
    cr_assert_eq(ns_gp_predict_many(full, Xs, M, fm, fv, &err), NS_OK);
    for (int c = 0; c < M; c++) {
        cr_assert(fabs(at.var[c] - fv[c]) < 1e-9, "candidate %d: variance %.12g, full %.12g", c,
                  at.var[c], fv[c]);
        double m1, v1;
        ns_gp_predict(inc, Xs + c * D, &m1, &v1, NULL, NULL);
        cr_assert(fabs(m1 - at.mean[c]) < 1e-9 && fabs(v1 - at.var[c]) < 1e-9,
                  "candidate %d: the point-wise prediction (%g, %g) differs from the kept one "
                  "(%g, %g)", c, m1, v1, at.mean[c], at.var[c]);
    }
    ns_gp_at_free(&at);
    ns_gp_free(inc);
    ns_gp_free(full);
}

/* One round of Q proposals as a bayes stage makes them: proposal j gets the earlier ones
 * as pending and, from j = 1 on, the round's first hyperparameters. Each proposal through
 * `cache` (NULL: none) into P, the hyperparameters after each into H. */
static void run_round(const ns_bo_spec *s, int D, const double *X, const double *y,
                      const double *nv, const int *feas, int n, int Q, int from,
                      ns_bo_cache *cache, double *P, double *H)
{
    int L = NS_BO_HYP_LEN(D);
    ns_err err = {0};
    for (int j = from; j < Q; j++) {
        double hyp[NS_BO_HYP_LEN(8)];
        for (int k = 0; k < L; k++)
            hyp[k] = j == 0 ? NAN : H[k]; /* the round's first proposal's, as gp.hyp keeps it */
        cr_assert_eq(ns_bo_propose_round(s, D, X, y, nv, feas, n, P, j, hyp, cache, P + j * D, &err),
                     NS_OK, "proposal %d: %s", j, err.msg);
        memcpy(H + j * L, hyp, L * sizeof *hyp);
    }
}

Test(gp, a_round_gives_the_same_bits_with_or_without_its_cache)
{
    enum { N = 320, D = 3, Q = 12 };
    int L = NS_BO_HYP_LEN(D);
    double *X = malloc(N * D * sizeof *X), *y = malloc(N * sizeof *y), *nv = malloc(N * sizeof *nv);
    int *feas = malloc(N * sizeof *feas);
    cr_assert(X && y && nv && feas);
    sample_bowl(N, 41, X, y);
    for (int i = 0; i < N; i++) {
        feas[i] = !(X[3 * i] > 0.85);
        nv[i] = 1e-4 * (i % 5);
    }
    ns_bo_spec s;
    ns_bo_spec_default(&s, D);
    s.seed = 8;
    s.round = Q;
    s.fit_max = 100; /* the subsets too */
    s.post_max = 250;
    double P0[Q * D], H0[Q * NS_BO_HYP_LEN(D)], P1[Q * D], H1[Q * NS_BO_HYP_LEN(D)];
    double P2[Q * D], H2[Q * NS_BO_HYP_LEN(D)], P3[Q * D], H3[Q * NS_BO_HYP_LEN(D)];
    /* without a cache, every proposal from scratch */
    run_round(&s, D, X, y, nv, feas, N, Q, 0, NULL, P0, H0);
    /* with one, built by the first proposal and extended by each later one */
    ns_bo_cache *c = ns_bo_cache_alloc();
    cr_assert(c);
    run_round(&s, D, X, y, nv, feas, N, Q, 0, c, P1, H1);
    cr_assert(memcmp(P0, P1, sizeof P0) == 0, "the cached round proposed other points");
    cr_assert(memcmp(H0, H1, sizeof H0) == 0, "the cached round has other hyperparameters");
    /* a resumed round: a fresh cache from proposal 5 on, given the same pending points */
    ns_bo_cache *r = ns_bo_cache_alloc();
    memcpy(P2, P0, 5 * D * sizeof *P2);
    memcpy(H2, H0, 5 * L * sizeof *H2);
    run_round(&s, D, X, y, nv, feas, N, Q, 5, r, P2, H2);
    cr_assert(memcmp(P0, P2, sizeof P0) == 0, "the resumed round proposed other points");
    /* a cache left by another round (other observations) is rebuilt, not misused */
    double *y2 = malloc(N * sizeof *y2);
    cr_assert(y2);
    for (int i = 0; i < N; i++) /* tilted: the optimum moves */
        y2[i] = y[i] + 0.5 * X[3 * i + 1];
    run_round(&s, D, X, y2, nv, feas, N, Q, 0, c, P3, H3);
    cr_assert(memcmp(P0, P3, sizeof P0) != 0, "other observations, the same proposals");
    free(y2);
    /* the last proposal again, on the first observations but with the tilted round's
     * pending points and hyperparameters, which the cache holds */
    double ha[NS_BO_HYP_LEN(D)], hb[NS_BO_HYP_LEN(D)], a[D], b[D];
    memcpy(ha, H3, sizeof ha);
    memcpy(hb, H3, sizeof hb);
    ns_err err = {0};
    cr_assert_eq(ns_bo_propose_round(&s, D, X, y, nv, feas, N, P3, Q - 1, ha, c, a, &err), NS_OK);
    cr_assert_eq(ns_bo_propose_round(&s, D, X, y, nv, feas, N, P3, Q - 1, hb, NULL, b, &err), NS_OK);
    cr_assert(memcmp(a, b, sizeof a) == 0 && memcmp(ha, hb, sizeof ha) == 0,
              "a cache of other observations was used");
    run_round(&s, D, X, y, nv, feas, N, Q, 0, c, P3, H3);
    cr_assert(memcmp(P0, P3, sizeof P0) == 0, "a stale cache changed the proposals");
    /* the round's later proposals kept its first fit and differ from each other */
    for (int j = 1; j < Q; j++) {
        cr_assert(memcmp(H0, H0 + j * L, L * sizeof *H0) == 0, "proposal %d refitted", j);
        for (int q = 0; q < j; q++)
            cr_assert(dist_to(P0 + j * D, P0 + q * D, D) >= s.min_dist, "proposal %d is within "
                      "the guard of proposal %d", j, q);
    }
    ns_bo_cache_free(c);
    ns_bo_cache_free(r);
    free(X);
    free(y);
    free(nv);
    free(feas);
}
