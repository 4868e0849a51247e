/* stats.h — the few statistics the stages decide with: the half-width of a 95% confidence
 * interval of a mean (Student's t), Welch's two-sample t-test, the gradient noise scale
 * from two batch sizes, and the standard error of a validation score. Pure functions over
 * summaries (GSL's t distribution); not data handling. */
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

/* What a validation score is, for its standard error (ns_score_se). */
typedef enum ns_score_kind {
    NS_SCORE_SHARE = 0, /* a share of the rows: accuracy (balanced accuracy and macro-F1 as
                           an approximation) */
    NS_SCORE_XENT,      /* mean cross-entropy */
    NS_SCORE_MSE,       /* mean squared error */
    NS_SCORE_RMSE,      /* root mean squared error */
} ns_score_kind;

/* The standard error of a score of value v measured on n rows, each row one independent
 * draw (a holdout; the per-row values are not kept, so the spread of a row comes from the
 * value itself):
 *   share: sqrt(p (1 - p) / n), p = v clamped to [1/n, 1 - 1/n] (a perfect score on n
 *          rows is no surer than one error in n);
 *   xent:  NS_ROW_SD_XENT x |v| / sqrt(n) (per-row cross-entropies spread about as much as
 *          their mean: docs/config.md, "Noise");
 *   mse:   NS_ROW_SD_MSE x |v| / sqrt(n) (a squared Gaussian residual's standard deviation
 *          is sqrt(2) times its mean);
 *   rmse:  the mse's by the delta method, NS_ROW_SD_MSE / 2 x |v| / sqrt(n).
 * NaN for n < 1 or a non-finite v. */
double ns_score_se(ns_score_kind kind, double v, long n);

/* Standard deviation of one row's loss as a multiple of the mean loss (ns_score_se). */
#define NS_ROW_SD_XENT 1.0
#define NS_ROW_SD_MSE 1.4142135623730951 /* sqrt(2): chi-square with one degree of freedom */

#endif
