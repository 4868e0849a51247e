/* offsets.h — decision offsets: one number per class added to a classifier's outputs so
 * that its decisions, argmax(z + o), score best by a class-averaged metric (macro-F1,
 * balanced accuracy) on held-out rows. A network trained with class weights, or without,
 * puts the boundary between a rare class and the rest where its loss wants it, which is
 * not where macro-F1 is highest; moving it is the cheap last step of imbalanced
 * classification. The fit is a pure function; select applies it to its winner. */
#ifndef NS_OFFSETS_H
#define NS_OFFSETS_H

#include <stdint.h>

#include "engine/err.h"

#include "search/config/config.h"

/* The offsets tried for each class: -NS_OFFSETS_RANGE to +NS_OFFSETS_RANGE in steps of
 * NS_OFFSETS_STEP (logit units; class weights move the boundary by log of a weight ratio,
 * under 3 for a 1:18 imbalance). */
#define NS_OFFSETS_RANGE 6.0
#define NS_OFFSETS_STEP 0.05
/* Held-out rows every class needs before offsets are fitted: below it a rare class's F1
 * moves by more than 0.1 per row and the fit would follow noise. */
#define NS_OFFSETS_MIN_ROWS 10

/* Offsets o[0..K) for the n held-out rows' outputs z (n x K, row-major) and labels y (in
 * [0, K)) that maximise `metric` (NS_METRIC_VAL_F1 or NS_METRIC_VAL_BACC) of argmax(z + o):
 * o[0] stays 0 and each other class's offset is chosen on the grid above in turn, over at
 * most four sweeps, until none changes. A change needs a strictly better metric; among
 * equal ones the offset nearest 0 is kept, so data that argmax already serves best keeps
 * o = 0. *before and *after: the metric at o = 0 and at the offsets returned. A row whose
 * label is out of range is ignored. NS_OK, or NS_ERUNTIME when out of memory. */
int ns_offsets_fit(const float *z, const int32_t *y, long n, int K, ns_metric metric, float *o,
                   double *before, double *after, ns_err *err);

#endif
