/* stats.h — the few statistics the stages decide with: the half-width of a 95% confidence
 * interval of a mean (Student's t), Welch's two-sample t-test, and the gradient noise scale
 * from two batch sizes. Pure functions over summaries (GSL's t distribution); not data
 * handling. */
#ifndef NS_STATS_H
#define NS_STATS_H

/* t_{0.975, n-1} * sd / sqrt(n), the half-width of the 95% CI of a mean of n values with
 * sample standard deviation sd; NaN for n < 2. */
double ns_ci95_half(double sd, int n);

/* Welch's t-test of two means (sample sds, counts): the two-sided p-value, with the
 * Welch-Satterthwaite degrees of freedom. 1 when a count is below 2 (no evidence either
 * way); with both variances 0, 1 for equal means and 0 otherwise. */
double ns_welch_p(double mean1, double sd1, int n1, double mean2, double sd2, int n2);

/* B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018) from the mean squared gradient
 * norms g_small, g_big measured at batch sizes b_small < b_big:
 *   |G|^2 ~ (b_big g_big - b_small g_small) / (b_big - b_small),
 *   tr(Sigma) ~ (g_small - g_big) / (1/b_small - 1/b_big).
 * NaN when either estimate is not positive (the measurement was too noisy to say). */
double ns_noise_scale(int b_small, double g_small, int b_big, double g_big);

#endif
