/* predict.h — `nnsearch predict`: apply a model file to new data with the preprocessing
 * stored in it, after checking that the data has the shape and columns it was trained on. */
#ifndef NS_PREDICT_H
#define NS_PREDICT_H

#include "../engine/err.h"

typedef struct ns_predict_summary {
    long rows;
    int has_accuracy; /* labels were available (IDX --labels, or the CSV label column) */
    double accuracy;
    int has_rmse;
    double rmse;
} ns_predict_summary;

/* Writes one CSV line per row to out_path (atomically) or stdout when NULL:
 * classification "row,prediction,p_<class>..." (prediction is the class name or index),
 * regression "row,prediction" in the original target units. */
int ns_predict_file(const char *model_path, const char *data_path, const char *labels_path,
                    const char *out_path, ns_predict_summary *sum, ns_err *err);

#endif
