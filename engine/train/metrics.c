/* metrics.c — balanced accuracy and macro-F1 from a confusion matrix (metrics.h). */
#include "engine/train/metrics.h"

#include <math.h>

void ns_class_metrics(const long *conf, int K, double *balanced_acc, double *macro_f1)
{
    double recall_sum = 0, f1_sum = 0;
    int n_true = 0, n_any = 0;
    for (int c = 0; c < K; c++) {
        long tp = conf[(long)c * K + c], row = 0, col = 0;
        for (int j = 0; j < K; j++) {
            row += conf[(long)c * K + j];
            col += conf[(long)j * K + c];
        }
        if (row > 0) {
            recall_sum += (double)tp / (double)row;
            n_true++;
        }
        if (row > 0 || col > 0) {
            /* fp = col - tp, fn = row - tp */
            f1_sum += 2.0 * (double)tp / (double)(row + col);
            n_any++;
        }
    }
    *balanced_acc = n_true ? recall_sum / n_true : NAN;
    *macro_f1 = n_any ? f1_sum / n_any : NAN;
}
