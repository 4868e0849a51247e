/* test_offsets.c — the decision-offset fit (search/stages/offsets.h) against cases worked by
 * hand: the threshold that maximises macro-F1 on ten binary rows, data that argmax already
 * serves best (offsets stay 0), a three-class case checked to be a coordinate-wise optimum
 * of balanced accuracy on the grid, and rows whose labels are out of range. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "engine/train/metrics.h"
#include "search/stages/offsets.h"

/* metric of argmax(z + o), computed here independently of offsets.c */
static double metric_at(const float *z, const int32_t *y, long n, int K, ns_metric metric, const float *o)
{
    long conf[9 * 9] = {0};
    for (long i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] >= K)
            continue;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (z[i * K + k] + o[k] > z[i * K + best] + o[best])
                best = k;
        conf[y[i] * K + best]++;
    }
    double bacc, f1;
    ns_class_metrics(conf, K, &bacc, &f1);
    return metric == NS_METRIC_VAL_BACC ? bacc : f1;
}

Test(offsets, the_macro_f1_threshold_of_ten_binary_rows)
{
    /* z = (0, d): class 1 is chosen when d + o > 0. Class 0 at d = -3 .. -0.4, class 1 at
     * -0.8, -0.6, -0.2, 0.5. At o = 0 one class-1 row is found: F1 = 0.8 and 0.4, macro 0.6.
     * Every o in (0.8, 1.0] finds all four at the cost of the class-0 row at -0.4: F1 =
     * 10/11 and 8/9; no other threshold does better (hand-checked: 0.762 between -0.4 and
     * -0.2, 0.670 between -0.6 and -0.4). The grid's smallest such offset is 0.85. */
    const float d[10] = {-3, -2.5f, -2, -1.5f, -1, -0.4f, -0.8f, -0.6f, -0.2f, 0.5f};
    const int32_t y[10] = {0, 0, 0, 0, 0, 0, 1, 1, 1, 1};
    float z[20], o[2];
    for (int i = 0; i < 10; i++)
        z[2 * i] = 0, z[2 * i + 1] = d[i];
    double before, after;
    cr_assert_eq(ns_offsets_fit(z, y, 10, 2, NS_METRIC_VAL_F1, o, &before, &after, NULL), NS_OK);
    cr_assert_eq(o[0], 0.0f);
    cr_assert_float_eq(o[1], 0.85f, 1e-6, "offset %g", (double)o[1]);
    cr_assert_float_eq(before, 0.6, 1e-12, "before %.12g", before);
    cr_assert_float_eq(after, (10.0 / 11 + 8.0 / 9) / 2, 1e-12, "after %.12g", after);
}

Test(offsets, data_argmax_serves_best_keeps_zero)
{
    /* separated by a margin of 1 on each side: every offset in (-1, 1) scores 1, and the
     * one nearest 0 is 0 itself */
    float z[12];
    int32_t y[6];
    for (int i = 0; i < 6; i++) {
        y[i] = i % 2;
        z[2 * i] = 0;
        z[2 * i + 1] = y[i] ? 1.0f : -1.0f;
    }
    float o[2] = {7, 7};
    double before, after;
    cr_assert_eq(ns_offsets_fit(z, y, 6, 2, NS_METRIC_VAL_F1, o, &before, &after, NULL), NS_OK);
    cr_assert(o[0] == 0 && o[1] == 0, "offsets %g %g", (double)o[0], (double)o[1]);
    cr_assert_eq(before, 1.0);
    cr_assert_eq(after, 1.0);
}

Test(offsets, three_classes_reach_a_coordinate_optimum_of_balanced_accuracy)
{
    /* 60 rows, 3 classes; class 2's rows lean to class 0 (its logit 0.3-0.9 below class 0's
     * on most rows), so argmax misses most of class 2 */
    enum { N = 60, K = 3 };
    float z[N * K];
    int32_t y[N];
    unsigned s = 12345;
    for (int i = 0; i < N; i++) {
        y[i] = i < 30 ? 0 : i < 45 ? 1 : 2;
        for (int k = 0; k < K; k++) {
            s = s * 1103515245u + 12345u;
            z[i * K + k] = (float)((s >> 8) % 1000) / 1000.0f; /* [0, 1) noise */
        }
        if (y[i] == 1)
            z[i * K + 1] += 1.0f;
        if (y[i] == 2)
            z[i * K + 0] += 0.6f, z[i * K + 2] += 0.3f;
        else if (y[i] == 0)
            z[i * K + 0] += 0.8f;
    }
    float o[K];
    double before, after;
    cr_assert_eq(ns_offsets_fit(z, y, N, K, NS_METRIC_VAL_BACC, o, &before, &after, NULL), NS_OK);
    const float zero[K] = {0, 0, 0};
    cr_assert_float_eq(before, metric_at(z, y, N, K, NS_METRIC_VAL_BACC, zero), 1e-12);
    cr_assert_float_eq(after, metric_at(z, y, N, K, NS_METRIC_VAL_BACC, o), 1e-12);
    cr_assert_eq(o[0], 0.0f);
    cr_assert_gt(after, before + 0.1, "before %g after %g", before, after);
    cr_assert_gt(o[2], 0.0f, "class 2 is under-predicted: its offset %g", (double)o[2]);
    /* no single grid move of one offset scores higher */
    const int steps = (int)lround(NS_OFFSETS_RANGE / NS_OFFSETS_STEP);
    for (int k = 1; k < K; k++)
        for (int g = -steps; g <= steps; g++) {
            float t[K];
            memcpy(t, o, sizeof t);
            t[k] = (float)(g * NS_OFFSETS_STEP);
            double v = metric_at(z, y, N, K, NS_METRIC_VAL_BACC, t);
            cr_assert_leq(v, after + 1e-12, "class %d at %g scores %g > %g", k, (double)t[k], v, after);
        }
}

Test(offsets, rows_with_labels_out_of_range_are_ignored)
{
    const float d[6] = {-2, -1, -0.5f, -0.3f, 0.2f, 3};
    const int32_t y[6] = {0, 0, 1, 1, 1, 0};
    float z[16], o[2], o2[2];
    for (int i = 0; i < 6; i++)
        z[2 * i] = 0, z[2 * i + 1] = d[i];
    int32_t y2[8];
    memcpy(y2, y, sizeof y);
    z[12] = 0, z[13] = 5, y2[6] = -1; /* would be a false positive if it counted */
    z[14] = 0, z[15] = -5, y2[7] = 2;
    double b1, a1, b2, a2;
    cr_assert_eq(ns_offsets_fit(z, y, 6, 2, NS_METRIC_VAL_F1, o, &b1, &a1, NULL), NS_OK);
    cr_assert_eq(ns_offsets_fit(z, y2, 8, 2, NS_METRIC_VAL_F1, o2, &b2, &a2, NULL), NS_OK);
    cr_assert(o[0] == o2[0] && o[1] == o2[1] && b1 == b2 && a1 == a2);
    cr_assert_gt(o[1], 0.0f);
}
