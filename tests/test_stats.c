/* test_stats.c — the stages' statistics against values computed independently: Student's t
 * quantiles from tables, a Welch test against a direct numerical integration of the t
 * density (done once in Python, see the comment), the noise scale on exact inputs, and the
 * standard errors of validation scores against their formulas. */
#include <criterion/criterion.h>
#include <math.h>

#include "search/stages/stats.h"

static void close_to(double got, double want, double rel)
{
    cr_assert(fabs(got - want) <= rel * fabs(want), "got %.12g, want %.12g", got, want);
}

Test(stats, ci95_uses_students_t)
{
    /* t_{0.975, df} from tables: df 2: 4.302652730, df 4: 2.776445105, df 29: 2.045229642 */
    close_to(ns_ci95_half(1.0, 3), 4.302652730 / sqrt(3.0), 1e-8);
    close_to(ns_ci95_half(2.0, 5), 2 * 2.776445105 / sqrt(5.0), 1e-8);
    close_to(ns_ci95_half(0.5, 30), 0.5 * 2.045229642 / sqrt(30.0), 1e-8);
    cr_assert(isnan(ns_ci95_half(1.0, 1)));
}

Test(stats, welch_against_direct_integration)
{
    /* a = 1..5 (mean 3, sd sqrt(2.5)), b = 2,4,..,10 (mean 6, sd sqrt(10)): t = -1.8973666,
     * df = 5.8823529; 2 * integral of the t density from |t| (Simpson, 2e5 panels) =
     * 0.107531195 */
    close_to(ns_welch_p(3, sqrt(2.5), 5, 6, sqrt(10.0), 5), 0.107531195, 1e-6);
    close_to(ns_welch_p(6, sqrt(10.0), 5, 3, sqrt(2.5), 5), 0.107531195, 1e-6); /* symmetric */
    cr_assert_eq(ns_welch_p(1, 0.1, 1, 2, 0.1, 5), 1.0, "one value: no evidence");
    cr_assert_eq(ns_welch_p(1, 0, 3, 1, 0, 3), 1.0);
    cr_assert_eq(ns_welch_p(1, 0, 3, 2, 0, 3), 0.0);
    cr_assert_lt(ns_welch_p(0, 0.01, 10, 1, 0.01, 10), 1e-10);
}

Test(stats, noise_scale_recovers_the_model)
{
    /* E|g_B|^2 = |G|^2 + tr(Sigma) / B exactly, with |G|^2 = 4 and tr(Sigma) = 100:
     * B_simple = 25 */
    double g10 = 4 + 100.0 / 10, g100 = 4 + 100.0 / 100;
    close_to(ns_noise_scale(10, g10, 100, g100), 25.0, 1e-12);
    cr_assert(isnan(ns_noise_scale(10, 1.0, 100, 2.0)), "a larger batch with a larger norm: too noisy");
    cr_assert(isnan(ns_noise_scale(100, 1.0, 10, 2.0)));
}

Test(stats, score_standard_errors)
{
    /* a share: binomial, sqrt(0.7 x 0.3 / 100) = 0.0458258 */
    close_to(ns_score_se(NS_SCORE_SHARE, 0.7, 100), sqrt(0.21 / 100), 1e-12);
    /* a perfect (or null) score on 40 rows counts as one error in 40 */
    close_to(ns_score_se(NS_SCORE_SHARE, 1.0, 40), sqrt(39.0 / 40 / 40 / 40), 1e-12);
    close_to(ns_score_se(NS_SCORE_SHARE, 0.0, 40), sqrt(39.0 / 40 / 40 / 40), 1e-12);
    close_to(ns_score_se(NS_SCORE_SHARE, 1.0, 1), 0.5, 1e-12);
    /* losses: the row spread is the mean (cross-entropy) or sqrt(2) times it (MSE) */
    close_to(ns_score_se(NS_SCORE_XENT, 0.8, 64), 0.1, 1e-12);
    close_to(ns_score_se(NS_SCORE_MSE, 0.5, 50), 0.1, 1e-12);
    /* RMSE by the delta method: SE(MSE) / (2 RMSE) = RMSE / sqrt(2 n) */
    double rmse = 0.6, mse = rmse * rmse;
    close_to(ns_score_se(NS_SCORE_RMSE, rmse, 72), ns_score_se(NS_SCORE_MSE, mse, 72) / (2 * rmse), 1e-12);
    close_to(ns_score_se(NS_SCORE_RMSE, rmse, 72), 0.05, 1e-12);
    cr_assert(isnan(ns_score_se(NS_SCORE_SHARE, 0.5, 0)), "no rows: unknown");
    cr_assert(isnan(ns_score_se(NS_SCORE_XENT, NAN, 10)));
    cr_assert(isnan(ns_score_se(NS_SCORE_XENT, INFINITY, 10)));
}
