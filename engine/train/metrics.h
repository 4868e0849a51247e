/* metrics.h — per-class classification metrics from a confusion matrix: balanced accuracy
 * and macro-F1, the figures that stay honest on imbalanced classes where accuracy does not.
 * Pure functions; not the evaluation loop (that is the caller's forward pass). */
#ifndef NS_METRICS_H
#define NS_METRICS_H

/* conf is (K, K) row-major, conf[t * K + p] = rows of true class t predicted as p.
 * Balanced accuracy: the mean recall over the classes that occur in the truth.
 * Macro-F1: the mean F1 = 2 tp / (2 tp + fp + fn) over the classes that occur in the truth
 * or the predictions (scikit-learn's labels = union of both). NaN when there are no rows. */
void ns_class_metrics(const long *conf, int K, double *balanced_acc, double *macro_f1);
/* The same from per-class counts: tp[c] rows of class c predicted as c, row[c] rows of
 * class c, col[c] rows predicted as c (O(K) where the table is O(K^2)). */
void ns_class_metrics_counts(const long *tp, const long *row, const long *col, int K,
                             double *balanced_acc, double *macro_f1);

#endif
