/* test_estimate.c — the bootstrap bias-corrected estimate (search/stages/estimate.h): a
 * single candidate's estimate is its own score; the best of hundreds of coin-flippers is
 * estimated near 0.5 though it measured far above; one real candidate among them is found
 * and estimated near its true score; perfect candidates give exactly 1; the same seed gives
 * the same bits. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "engine/rng.h"
#include "search/stages/estimate.h"

#define N 400
#define T 300

static int32_t y[N];
static int32_t *pred[T];

/* labels half 0, half 1 in a shuffled order; candidate t right on each row with
 * probability p[t] (independently) */
static void make(const double *p, int nt, uint64_t seed)
{
    ns_rng r;
    ns_rng_seed(&r, seed);
    for (int i = 0; i < N; i++)
        y[i] = ns_rng_uniform(&r) < 0.5;
    for (int t = 0; t < nt; t++) {
        pred[t] = malloc(N * sizeof *pred[t]);
        cr_assert_not_null(pred[t]);
        for (int i = 0; i < N; i++)
            pred[t][i] = ns_rng_uniform(&r) < p[t] ? y[i] : 1 - y[i];
    }
}

static void unmake(int nt)
{
    for (int t = 0; t < nt; t++)
        free(pred[t]);
}

static double acc_of(const int32_t *p)
{
    int hit = 0;
    for (int i = 0; i < N; i++)
        hit += p[i] == y[i];
    return (double)hit / N;
}

Test(estimate, one_candidate_is_estimated_at_its_own_score)
{
    double p[1] = {0.7}, est;
    make(p, 1, 11);
    cr_assert_eq(ns_bbc_estimate(y, N, 2, (const int32_t *const *)pred, 1, NS_METRIC_VAL_ACC, 1000, 5, &est, NULL), NS_OK);
    /* the out-of-bag rows are a random third of the rows: their mean score is the score */
    cr_assert(fabs(est - acc_of(pred[0])) < 0.005, "estimate %.4f, score %.4f", est, acc_of(pred[0]));
    unmake(1);
}

Test(estimate, the_best_of_many_coin_flippers_is_not_believed)
{
    double p[T], est;
    for (int t = 0; t < T; t++)
        p[t] = 0.5;
    make(p, T, 12);
    double best = 0;
    for (int t = 0; t < T; t++)
        best = fmax(best, acc_of(pred[t]));
    cr_assert_eq(ns_bbc_estimate(y, N, 2, (const int32_t *const *)pred, T, NS_METRIC_VAL_ACC, 300, 5, &est, NULL), NS_OK);
    /* the best measured ~0.57 (about 2.7 of its standard errors of 0.025 above 0.5); on new
     * rows every candidate scores 0.5 */
    cr_assert_gt(best, 0.55, "best measured %.4f", best);
    cr_assert(fabs(est - 0.5) < 0.02, "estimate %.4f (best measured %.4f)", est, best);
    unmake(T);
}

Test(estimate, one_real_candidate_among_coin_flippers_is_estimated_at_its_score)
{
    double p[100], est;
    for (int t = 0; t < 100; t++)
        p[t] = t == 37 ? 0.8 : 0.5;
    make(p, 100, 13);
    cr_assert_eq(ns_bbc_estimate(y, N, 2, (const int32_t *const *)pred, 100, NS_METRIC_VAL_ACC, 500, 5, &est, NULL), NS_OK);
    cr_assert(fabs(est - acc_of(pred[37])) < 0.02, "estimate %.4f, its score %.4f", est, acc_of(pred[37]));
    unmake(100);
}

Test(estimate, perfect_candidates_score_one_by_every_class_metric)
{
    double p[3] = {1, 1, 1}, est;
    make(p, 3, 14);
    const ns_metric m[3] = {NS_METRIC_VAL_ACC, NS_METRIC_VAL_BACC, NS_METRIC_VAL_F1};
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(ns_bbc_estimate(y, N, 2, (const int32_t *const *)pred, 3, m[k], 200, 5, &est, NULL), NS_OK);
        cr_assert_eq(est, 1.0, "metric %d: %.17g", (int)m[k], est);
    }
    unmake(3);
}

Test(estimate, macro_f1_of_a_rare_class_is_corrected_too)
{
    /* class 1 on one row in ten; 200 candidates that find each class-1 row with probability
     * 0.5 and flag 10% of class-0 rows: measured macro-F1 varies by candidate, but all have
     * the same expected score */
    ns_rng r;
    ns_rng_seed(&r, 15);
    for (int i = 0; i < N; i++)
        y[i] = i % 10 == 0;
    for (int t = 0; t < 200; t++) {
        pred[t] = malloc(N * sizeof *pred[t]);
        for (int i = 0; i < N; i++)
            pred[t][i] = y[i] ? ns_rng_uniform(&r) < 0.5 : ns_rng_uniform(&r) < 0.1;
    }
    /* expected: class 1 tp 20, fp 36, fn 20: F1 = 40/96; class 0 tp 324, fp 20, fn 36: F1 = 648/704 */
    const double truth = (40.0 / 96 + 648.0 / 704) / 2;
    double est, best = 0;
    for (int t = 0; t < 200; t++) {
        long conf[4] = {0};
        for (int i = 0; i < N; i++)
            conf[y[i] * 2 + pred[t][i]]++;
        double f1_1 = 2.0 * conf[3] / (2.0 * conf[3] + conf[1] + conf[2]);
        double f1_0 = 2.0 * conf[0] / (2.0 * conf[0] + conf[1] + conf[2]);
        best = fmax(best, (f1_0 + f1_1) / 2);
    }
    cr_assert_eq(ns_bbc_estimate(y, N, 2, (const int32_t *const *)pred, 200, NS_METRIC_VAL_F1, 300, 5, &est, NULL), NS_OK);
    cr_assert_gt(best - truth, 0.05, "best measured %.4f, expected %.4f", best, truth);
    cr_assert(fabs(est - truth) < 0.03, "estimate %.4f, expected %.4f (best measured %.4f)", est, truth, best);
    unmake(200);
}

Test(estimate, the_same_seed_gives_the_same_bits)
{
    double p[20], a, b, c;
    for (int t = 0; t < 20; t++)
        p[t] = 0.5 + 0.01 * t;
    make(p, 20, 16);
    const int32_t *const *pp = (const int32_t *const *)pred;
    cr_assert_eq(ns_bbc_estimate(y, N, 2, pp, 20, NS_METRIC_VAL_BACC, 200, 9, &a, NULL), NS_OK);
    cr_assert_eq(ns_bbc_estimate(y, N, 2, pp, 20, NS_METRIC_VAL_BACC, 200, 9, &b, NULL), NS_OK);
    cr_assert_eq(ns_bbc_estimate(y, N, 2, pp, 20, NS_METRIC_VAL_BACC, 200, 10, &c, NULL), NS_OK);
    cr_assert_eq(a, b, "%.17g vs %.17g", a, b);
    cr_assert_neq(a, c, "another seed, other resamples");
    unmake(20);
}
