/* metrics.c — balanced accuracy and macro-F1 from a confusion matrix or per-class counts
 * (metrics.h). */
#include "engine/train/metrics.h"

#include <math.h>

/* Running sums of the two metrics over the classes. */
typedef struct sums {
    double recall, f1;
    int n_true, n_any;
} sums;

static void add_class(sums *s, long tp, long row, long col)
{
    if (row > 0) {
        s->recall += (double)tp / (double)row;
        s->n_true++;
    }
    if (row > 0 || col > 0) {
        /* fp = col - tp, fn = row - tp */
        s->f1 += 2.0 * (double)tp / (double)(row + col);
        s->n_any++;
    }
}

static void finish(const sums *s, double *balanced_acc, double *macro_f1)
{
    *balanced_acc = s->n_true ? s->recall / s->n_true : NAN;
    *macro_f1 = s->n_any ? s->f1 / s->n_any : NAN;
}

void ns_class_metrics(const long *conf, int K, double *balanced_acc, double *macro_f1)
{
    sums s = {0};
    for (int c = 0; c < K; c++) {
        long row = 0, col = 0;
        for (int j = 0; j < K; j++) {
            row += conf[(long)c * K + j];
            col += conf[(long)j * K + c];
        }
        add_class(&s, conf[(long)c * K + c], row, col);
    }
    finish(&s, balanced_acc, macro_f1);
}

void ns_class_metrics_counts(const long *tp, const long *row, const long *col, int K,
                             double *balanced_acc, double *macro_f1)
{
    sums s = {0};
    for (int c = 0; c < K; c++)
        add_class(&s, tp[c], row[c], col[c]);
    finish(&s, balanced_acc, macro_f1);
}
