/* predict.h — `nnsearch predict`: apply a model file to new data with the preprocessing
 * stored in it, after checking that the data has the shape and columns it was trained on. */
#ifndef NS_PREDICT_H
#define NS_PREDICT_H

#include "engine/err.h"
#include "model/drift.h"

typedef enum ns_drift_state {
    NS_DRIFT_SKIPPED = 0,  /* not asked for (--no-drift-check) */
    NS_DRIFT_NO_STATS = 1, /* the model file has no training statistics (format version 1) */
    NS_DRIFT_DONE = 2,     /* drift holds the report */
} ns_drift_state;

typedef struct ns_predict_summary {
    long rows;
    int has_accuracy; /* labels were available (IDX --labels, or the CSV label column) */
    double accuracy;
    double balanced_acc;  /* with has_accuracy: the mean recall over the true classes */
    double macro_f1;      /* with has_accuracy: ns_class_metrics (engine/train/metrics.h) */
    int has_rmse;
    double rmse;
    ns_drift_state drift_state;
    ns_drift_report drift; /* with NS_DRIFT_DONE; zeroed otherwise */
} ns_predict_summary;

/* Writes one CSV line per row to out_path (atomically) or stdout when NULL:
 * classification "row,prediction,p_<class>..." (prediction is the class name or index),
 * regression "row,prediction" in the original target units. With drift_check set and
 * statistics in the model, also compares the standardised input with them (drift.h);
 * drift never fails the call, it is reported in sum for the caller to word. Caller frees
 * *sum with ns_predict_summary_free, whatever the result. */
int ns_predict_file(const char *model_path, const char *data_path, const char *labels_path,
                    const char *out_path, int drift_check, ns_predict_summary *sum,
                    ns_err *err);
void ns_predict_summary_free(ns_predict_summary *sum);

#endif
