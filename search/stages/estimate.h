/* estimate.h — the winner's expected score on new data. The best of hundreds of trials is
 * also the luckiest on the rows that scored it: its own figure flatters it, by more the
 * fewer the rows and the more the trials. The bootstrap bias-corrected estimate
 * (Tsamardinos, Greasidou & Borboudakis, "Bootstrapping the out-of-sample predictions for
 * efficient and accurate cross-validation", Machine Learning 107, 2018) takes that luck out
 * without training anything: it resamples the held-out rows, picks the best candidate on
 * each resample by the same metric, and scores that one on the rows the resample left out.
 * Its figure describes the selection that was made (the best of these candidates on rows
 * like these), so it errs low rather than high. The resampling is a pure function here;
 * ns_winner_estimate (driver_impl.h) feeds it the study's stored predictions for select. */
#ifndef NS_ESTIMATE_H
#define NS_ESTIMATE_H

#include <stdint.h>

#include "engine/err.h"

#include "search/config/config.h"

/* Bootstrap resamples: the most, and the fewest kept when the work (resamples x candidates
 * x rows) would pass NS_ESTIMATE_MAX_WORK row visits. */
#define NS_ESTIMATE_BOOTSTRAPS 1000
#define NS_ESTIMATE_MIN_BOOTSTRAPS 100
#define NS_ESTIMATE_MAX_WORK 400000000.0

/* The estimate for T candidates whose predicted classes pred[t][0..n) of the same n
 * held-out rows with labels y (in [0, K)) are known, ranked by metric (NS_METRIC_VAL_ACC,
 * NS_METRIC_VAL_BACC or NS_METRIC_VAL_F1): over B bootstrap resamples of the rows (drawn
 * from seed), the mean score, on the rows a resample left out, of the candidate that
 * scores best on the resample (ties to the lower index). *est is NaN when no resample left
 * a row out. NS_OK, or NS_ERUNTIME when out of memory. */
int ns_bbc_estimate(const int32_t *y, long n, int K, const int32_t *const *pred, int T,
                    ns_metric metric, int B, uint64_t seed, double *est, ns_err *err);

#endif
