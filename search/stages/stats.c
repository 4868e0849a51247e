/* stats.c — confidence intervals, Welch's test, the gradient noise scale and the standard
 * error of a validation score (stats.h). */
#include "search/stages/stats.h"

#include <gsl/gsl_cdf.h>
#include <math.h>

double ns_ci95_half(double sd, int n)
{
    if (n < 2)
        return NAN;
    return gsl_cdf_tdist_Qinv(0.025, n - 1) * sd / sqrt((double)n);
}

double ns_welch_p(double mean1, double sd1, int n1, double mean2, double sd2, int n2)
{
    if (n1 < 2 || n2 < 2)
        return 1.0;
    double va = sd1 * sd1 / n1, vb = sd2 * sd2 / n2;
    if (!(va + vb > 0))
        return mean1 == mean2 ? 1.0 : 0.0;
    double t = (mean1 - mean2) / sqrt(va + vb);
    double df = (va + vb) * (va + vb) / (va * va / (n1 - 1) + vb * vb / (n2 - 1));
    return 2 * gsl_cdf_tdist_Q(fabs(t), df);
}

double ns_noise_scale(int b_small, double g_small, int b_big, double g_big)
{
    if (b_small < 1 || b_big <= b_small)
        return NAN;
    double G2 = ((double)b_big * g_big - (double)b_small * g_small) / (b_big - b_small);
    double S = (g_small - g_big) / (1.0 / b_small - 1.0 / b_big);
    return G2 > 0 && S > 0 ? S / G2 : NAN;
}

double ns_score_se(ns_score_kind kind, double v, long n)
{
    if (n < 1 || !isfinite(v))
        return NAN;
    double rn = sqrt((double)n);
    switch (kind) {
    case NS_SCORE_SHARE: {
        double lo = fmin(1.0 / (double)n, 0.5), p = fmin(fmax(v, lo), 1 - lo);
        return sqrt(fmax(p * (1 - p), 0) / (double)n);
    }
    case NS_SCORE_XENT: return NS_ROW_SD_XENT * fabs(v) / rn;
    case NS_SCORE_MSE: return NS_ROW_SD_MSE * fabs(v) / rn;
    case NS_SCORE_RMSE: return 0.5 * NS_ROW_SD_MSE * fabs(v) / rn;
    }
    return NAN;
}
