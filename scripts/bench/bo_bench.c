/* bo_bench.c — nnsearch's GP-BO (search/bo/bo.h; with its defaults, and with the guard
 * against near-duplicates off) and random search on Branin (2-D) and Hartmann-6, the time
 * per proposal at 50 to 3000 observations in 8-D, and what the subset rule for many
 * observations costs in regret.
 * Not the driver: scripts/bench/bo builds this, runs Optuna's TPE and prints the table.
 * usage: bo_bench regret REPS EVALS   -> lines "func method rep regret seconds", method
 *                                        gp, gp-noguard (min_dist 0) or random
 *        bo_bench scale REPS N0 EVALS -> lines "hartmann6in8 rule rep regret seconds": N0
 *                                        random points then EVALS proposals, rule subset
 *                                        (the defaults) or all (fit and posterior on
 *                                        every point)
 *        bo_bench timing [K]          -> lines "timing n median_ms mean_ms max_ms", K
 *                                        proposals per n [10]
 *        bo_bench timing-at K N...    -> the same at the given observation counts N
 *        bo_bench round R N...        -> lines "round n R first_ms later_median_ms
 *                                        later_max_ms total_ms": a round of R proposals
 *                                        through the round cache (scripts/bench/mpi) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "search/bo/bo.h"

#define BRANIN_MIN 0.397887
#define HARTMANN6_MIN (-3.32237)

static double branin(const double *u)
{
    double x = -5 + 15 * u[0], y = 15 * u[1];
    double b = 5.1 / (4 * M_PI * M_PI), c = 5 / M_PI, t = 1 / (8 * M_PI);
    double q = y - b * x * x + c * x - 6;
    return q * q + 10 * (1 - t) * cos(x) + 10;
}

static double hartmann6(const double *x)
{
    static const double al[4] = {1.0, 1.2, 3.0, 3.2};
    static const double A[4][6] = {{10, 3, 17, 3.5, 1.7, 8}, {0.05, 10, 17, 0.1, 8, 14},
                                   {3, 3.5, 1.7, 10, 17, 8}, {17, 8, 0.05, 10, 0.1, 14}};
    static const double P[4][6] = {{1312, 1696, 5569, 124, 8283, 5886},
                                   {2329, 4135, 8307, 3736, 1004, 9991},
                                   {2348, 1451, 3522, 2883, 3047, 6650},
                                   {4047, 8828, 8732, 5743, 1091, 381}};
    double f = 0;
    for (int i = 0; i < 4; i++) {
        double s = 0;
        for (int j = 0; j < 6; j++) {
            double t = x[j] - P[i][j] * 1e-4;
            s += A[i][j] * t * t;
        }
        f -= al[i] * exp(-s);
    }
    return f;
}

typedef struct problem {
    const char *name;
    int d;
    double (*f)(const double *);
    double fmin;
} problem;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Hartmann-6 on inputs 1..6 of 8: two inputs that do nothing, as a study's often do */
static double hartmann6in8(const double *x) { return hartmann6(x + 1); }

/* n0 uniform random points (seeded by rep), then evals proposals of spec s (d <= 8) */
static int run_gp(const problem *p, int rep, int n0, int evals, const ns_bo_spec *spec,
                  double *regret)
{
    int d = p->d, n = n0 + evals;
    double *X = malloc((size_t)n * d * sizeof *X), *y = malloc((size_t)n * sizeof *y);
    double hyp[NS_BO_HYP_LEN(8)];
    ns_err err = {0};
    if (!X || !y) {
        snprintf(err.msg, sizeof err.msg, "out of memory");
        goto fail;
    }
    ns_bo_spec s = *spec;
    s.seed = (uint64_t)rep;
    ns_rng r;
    ns_rng_seed(&r, ns_seed_derive((uint64_t)rep, 0, 0));
    double best = HUGE_VAL;
    for (int t = 0; t < n; t++) {
        double *x = X + (size_t)t * d;
        if (t < n0)
            for (int k = 0; k < d; k++)
                x[k] = ns_rng_uniform(&r);
        else if (ns_bo_propose(&s, d, X, y, NULL, t, NULL, 0, hyp, x, &err) != NS_OK)
            goto fail;
        y[t] = p->f(x);
        best = fmin(best, y[t]);
    }
    *regret = best - p->fmin;
    free(X);
    free(y);
    return 0;
fail:
    fprintf(stderr, "bo_bench: %s\n", err.msg);
    free(X);
    free(y);
    return 1;
}

static double run_random(const problem *p, int rep, int evals)
{
    ns_rng r;
    ns_rng_seed(&r, (uint64_t)rep);
    double best = HUGE_VAL, x[6];
    for (int t = 0; t < evals; t++) {
        for (int k = 0; k < p->d; k++)
            x[k] = ns_rng_uniform(&r);
        best = fmin(best, p->f(x));
    }
    return best - p->fmin;
}

/* n points X (n, 8) of a smooth random 8-D function y = sum_k w_k sin(3 x_k + k) plus a
 * little noise (seed 42): the timing runs' observations. */
static void smooth_points(double *X, double *y, int n)
{
    enum { D = 8 };
    double w[D];
    ns_rng r;
    ns_rng_seed(&r, 42);
    for (int k = 0; k < D; k++)
        w[k] = ns_rng_normal(&r);
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < D; k++) {
            X[i * D + k] = ns_rng_uniform(&r);
            s += w[k] * sin(3 * X[i * D + k] + k);
        }
        y[i] = s + 0.01 * ns_rng_normal(&r);
    }
}

/* A round of R proposals at n observations of timing's function, as a bayes stage makes
 * them under MPI with `round: R`: the first fits (a full refit: a round of 10 or more
 * always passes a multiple of refit_every), each later one sees the earlier ones as
 * pending and reuses the first one's models through the cache. Prints "round n R first_ms
 * later_median_ms later_max_ms total_ms"; checks that the cache changed no bit against
 * uncached calls for the first few proposals. */
static int round_timing(int n, int R)
{
    enum { D = 8 };
    double *X = malloc((size_t)n * D * sizeof *X), *y = malloc((size_t)n * sizeof *y);
    double *P = malloc((size_t)R * D * sizeof *P), *ms = malloc((size_t)R * sizeof *ms);
    double hyp[NS_BO_HYP_LEN(D)], h2[NS_BO_HYP_LEN(D)], chk[D];
    ns_bo_cache *cache = ns_bo_cache_alloc();
    ns_err err = {0};
    if (!X || !y || !P || !ms || !cache) {
        snprintf(err.msg, sizeof err.msg, "out of memory");
        goto fail;
    }
    smooth_points(X, y, n);
    ns_bo_spec s;
    ns_bo_spec_default(&s, D);
    s.seed = 1;
    s.round = R;
    /* the previous round's hyperparameters, as a search would have them */
    if (ns_bo_propose(&s, D, X, y, NULL, n - 1, NULL, 0, hyp, P, &err) != NS_OK)
        goto fail;
    double t_all = now();
    for (int j = 0; j < R; j++) {
        memcpy(h2, hyp, sizeof h2); /* hyp is read and written */
        double t0 = now();
        if (ns_bo_propose_round(&s, D, X, y, NULL, NULL, n, P, j, hyp, cache, P + (size_t)j * D,
                                &err) != NS_OK)
            goto fail;
        ms[j] = 1e3 * (now() - t0);
        if (j < 3) { /* the same bits without the cache */
            if (ns_bo_propose_round(&s, D, X, y, NULL, NULL, n, P, j, h2, NULL, chk, &err) != NS_OK)
                goto fail;
            if (memcmp(chk, P + (size_t)j * D, sizeof chk) || memcmp(h2, hyp, sizeof h2)) {
                snprintf(err.msg, sizeof err.msg, "proposal %d differs without the cache", j);
                goto fail;
            }
            t_all += now() - t0 - ms[j] / 1e3; /* the check is not part of the round */
        }
    }
    double total = 1e3 * (now() - t_all);
    int K = R - 1;
    qsort(ms + 1, (size_t)K, sizeof *ms, cmp_d);
    double med = K < 1 ? 0 : K % 2 ? ms[1 + K / 2] : 0.5 * (ms[K / 2] + ms[1 + K / 2]);
    printf("round %d %d %.2f %.3f %.3f %.1f\n", n, R, ms[0], med, K < 1 ? 0 : ms[R - 1], total);
    fflush(stdout);
    ns_bo_cache_free(cache);
    free(X);
    free(y);
    free(P);
    free(ms);
    return 0;
fail:
    fprintf(stderr, "bo_bench: %s\n", err.msg);
    ns_bo_cache_free(cache);
    free(X);
    free(y);
    free(P);
    free(ms);
    return 1;
}

/* Proposals at n = n0 .. n0 + K - 1 observations of a smooth random 8-D function, each
 * warm-started from the previous one's hyperparameters (as in a search), so that with
 * K = refit_every the one full refit in every refit_every proposals is part of the
 * figures. */
static int timing(int n0, int K)
{
    enum { D = 8 };
    int nmax = n0 + K;
    double *X = malloc((size_t)nmax * D * sizeof *X), *y = malloc((size_t)nmax * sizeof *y);
    double hyp[NS_BO_HYP_LEN(D)], out[D], *ms = malloc((size_t)K * sizeof *ms);
    ns_err err = {0};
    if (!X || !y || !ms) {
        snprintf(err.msg, sizeof err.msg, "out of memory");
        goto fail;
    }
    smooth_points(X, y, nmax);
    ns_bo_spec s;
    ns_bo_spec_default(&s, D);
    s.seed = 1;
    if (ns_bo_propose(&s, D, X, y, NULL, n0 - 1, NULL, 0, hyp, out, &err) != NS_OK) /* warm-up fit */
        goto fail;
    for (int j = 0; j < K; j++) {
        double t0 = now();
        if (ns_bo_propose(&s, D, X, y, NULL, n0 + j, NULL, 0, hyp, out, &err) != NS_OK)
            goto fail;
        ms[j] = 1e3 * (now() - t0);
    }
    double mean = 0;
    for (int j = 0; j < K; j++)
        mean += ms[j] / K;
    qsort(ms, K, sizeof *ms, cmp_d);
    double med = K % 2 ? ms[K / 2] : 0.5 * (ms[K / 2 - 1] + ms[K / 2]);
    printf("timing %d %.2f %.2f %.2f\n", n0, med, mean, ms[K - 1]);
    fflush(stdout);
    free(X);
    free(y);
    free(ms);
    return 0;
fail:
    fprintf(stderr, "bo_bench: %s\n", err.msg);
    free(X);
    free(y);
    free(ms);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "regret")) {
        int reps = atoi(argv[2]), evals = atoi(argv[3]);
        problem ps[2] = {{"branin", 2, branin, BRANIN_MIN}, {"hartmann6", 6, hartmann6, HARTMANN6_MIN}};
        for (int i = 0; i < 2; i++)
            for (int rep = 1; rep <= reps; rep++) {
                ns_bo_spec s, s0;
                ns_bo_spec_default(&s, ps[i].d);
                s0 = s;
                s0.min_dist = 0;
                double g, t0 = now();
                if (run_gp(&ps[i], rep, 0, evals, &s, &g))
                    return 1;
                printf("%s gp %d %.9g %.3f\n", ps[i].name, rep, g, now() - t0);
                t0 = now();
                if (run_gp(&ps[i], rep, 0, evals, &s0, &g))
                    return 1;
                printf("%s gp-noguard %d %.9g %.3f\n", ps[i].name, rep, g, now() - t0);
                printf("%s random %d %.9g 0\n", ps[i].name, rep, run_random(&ps[i], rep, evals));
                fflush(stdout);
            }
        return 0;
    }
    if ((argc == 2 || argc == 3) && !strcmp(argv[1], "timing")) {
        static const int ns[] = {50, 100, 200, 1000, 3000};
        int K = argc == 3 ? atoi(argv[2]) : 10;
        if (K < 1) {
            fprintf(stderr, "bo_bench: K must be >= 1\n");
            return 2;
        }
        for (size_t i = 0; i < sizeof ns / sizeof *ns; i++)
            if (timing(ns[i], K))
                return 1;
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "timing-at")) { /* chosen sizes */
        int K = atoi(argv[2]);
        if (K < 1) {
            fprintf(stderr, "bo_bench: K must be >= 1\n");
            return 2;
        }
        for (int i = 3; i < argc; i++)
            if (atoi(argv[i]) < 2 || timing(atoi(argv[i]), K))
                return 1;
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "round")) { /* scripts/bench/mpi: a round's proposals */
        int R = atoi(argv[2]);
        if (R < 1) {
            fprintf(stderr, "bo_bench: R must be >= 1\n");
            return 2;
        }
        for (int i = 3; i < argc; i++)
            if (atoi(argv[i]) < 2 || round_timing(atoi(argv[i]), R))
                return 1;
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "scale")) {
        int reps = atoi(argv[2]), n0 = atoi(argv[3]), evals = atoi(argv[4]);
        problem p = {"hartmann6in8", 8, hartmann6in8, HARTMANN6_MIN};
        for (int rep = 1; rep <= reps; rep++) {
            ns_bo_spec s, all;
            ns_bo_spec_default(&s, p.d);
            all = s;
            all.fit_max = all.post_max = n0 + evals;
            double g, t0 = now();
            if (run_gp(&p, rep, n0, evals, &s, &g))
                return 1;
            printf("%s subset %d %.9g %.3f\n", p.name, rep, g, now() - t0);
            t0 = now();
            if (run_gp(&p, rep, n0, evals, &all, &g))
                return 1;
            printf("%s all %d %.9g %.3f\n", p.name, rep, g, now() - t0);
            fflush(stdout);
        }
        return 0;
    }
    fprintf(stderr, "usage: bo_bench regret REPS EVALS | bo_bench timing [K] | "
            "bo_bench timing-at K N... | bo_bench round R N... | "
            "bo_bench scale REPS N0 EVALS\n");
    return 2;
}
