/* test_drift.c — training statistics (ns_feature_stats_compute) and the prediction-time
 * drift check (ns_drift_check): no drift on data like the training rows, a shifted feature
 * named, exact out-of-range shares, constant features, and no verdict on a few rows. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/rng.h"
#include "model/drift.h"
#include "model/modelfile.h"

/* n x d rows of N(mu_j, sd_j) from seed: mu_j = j, sd_j = 1 + j / 4. */
static float *normal_rows(long n, int d, uint64_t seed)
{
    float *x = malloc((size_t)n * d * sizeof *x);
    cr_assert_not_null(x);
    ns_rng r;
    ns_rng_seed(&r, seed);
    for (long i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            x[(size_t)i * d + j] = (float)(j + (1 + j / 4.0) * ns_rng_normal(&r));
    return x;
}

static void stats_of(ns_feature_stats *fs, float *x, long n, int d)
{
    ns_dataset ds = {.n = n, .d = d, .x = x};
    ns_err err = {0};
    cr_assert_eq(ns_feature_stats_compute(fs, &ds, &err), NS_OK, "%s", err.msg);
}

/* Hand-made statistics of d features. */
static void set_stats(ns_feature_stats *fs, int d, long n_rows, const float *mn,
                      const float *mx, const float *mean, const float *sd)
{
    float *buf = malloc(4 * (size_t)d * sizeof *buf);
    cr_assert_not_null(buf);
    *fs = (ns_feature_stats){.d = d, .n_rows = n_rows, .min = buf, .max = buf + d,
                             .mean = buf + 2 * d, .std = buf + 3 * d};
    memcpy(fs->min, mn, (size_t)d * sizeof *mn);
    memcpy(fs->max, mx, (size_t)d * sizeof *mx);
    memcpy(fs->mean, mean, (size_t)d * sizeof *mean);
    memcpy(fs->std, sd, (size_t)d * sizeof *sd);
}

static char *NAMES[] = {"age", "income", "height", "weight", "score", "f5", "f6", "f7"};

/* ---- statistics ------------------------------------------------------------------- */

Test(drift, stats_compute_exact)
{
    /* col 0: 1 2 3 4 (mean 2.5, population std sqrt(1.25)); col 1 constant 7;
     * col 2: -1 -1 1 1 (mean 0, std 1). */
    float x[] = {1, 7, -1, 2, 7, -1, 3, 7, 1, 4, 7, 1};
    ns_feature_stats fs;
    stats_of(&fs, x, 4, 3);
    cr_assert_eq(fs.d, 3);
    cr_assert_eq(fs.n_rows, 4);
    const float mn[] = {1, 7, -1}, mx[] = {4, 7, 1}, mean[] = {2.5f, 7, 0};
    const float sd[] = {(float)sqrt(1.25), 0, 1};
    for (int j = 0; j < 3; j++) {
        cr_assert_eq(fs.min[j], mn[j], "min[%d] %g", j, (double)fs.min[j]);
        cr_assert_eq(fs.max[j], mx[j], "max[%d] %g", j, (double)fs.max[j]);
        cr_assert_eq(fs.mean[j], mean[j], "mean[%d] %g", j, (double)fs.mean[j]);
        cr_assert_eq(fs.std[j], sd[j], "std[%d] %g", j, (double)fs.std[j]);
    }
    /* One buffer, in file order. */
    cr_assert_eq(fs.max, fs.min + 3);
    cr_assert_eq(fs.std, fs.min + 9);
    ns_feature_stats_free(&fs);
    cr_assert_null(fs.min);
    ns_feature_stats_free(&fs);
}

Test(drift, stats_compute_refuses_empty_and_non_finite)
{
    ns_feature_stats fs;
    ns_err err = {0};
    float x[] = {1, 2, INFINITY, 4};
    ns_dataset empty = {.n = 0, .d = 2, .x = x};
    cr_assert_eq(ns_feature_stats_compute(&fs, &empty, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "at least one row"), "%s", err.msg);
    cr_assert_null(fs.min);
    ns_dataset inf = {.n = 2, .d = 2, .x = x};
    cr_assert_eq(ns_feature_stats_compute(&fs, &inf, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "feature 0"), "%s", err.msg);
    cr_assert_null(fs.min);
    cr_assert_eq(fs.d, 0);
}

/* ---- the check -------------------------------------------------------------------- */

Test(drift, same_distribution_gives_no_warning)
{
    const int d = 8;
    float *tr = normal_rows(5000, d, 1), *x = normal_rows(1000, d, 2);
    ns_feature_stats fs;
    stats_of(&fs, tr, 5000, d);
    ns_drift_report r;
    ns_err err = {0};
    cr_assert_eq(ns_drift_check(&r, &fs, NAMES, x, 1000, d, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(r.rows, 1000);
    cr_assert(r.judged);
    cr_assert_eq(r.n_shifted, 0, "%d features flagged", r.n_shifted);
    cr_assert(!r.warn_shift && !r.warn_out, "out share %g", r.out_share);
    for (int j = 0; j < d; j++) /* the mean of 1000 rows wanders by ~0.03 std */
        cr_assert_lt(fabs(r.smd[j]), 0.15, "smd[%d] = %g", j, r.smd[j]);
    cr_assert_lt(r.out_share, 0.005);
    cr_assert_eq(r.out_limit, NS_DRIFT_OUT_SHARE);
    cr_assert_eq(r.n_worst_smd, NS_DRIFT_WORST);
    ns_drift_report_free(&r);
    ns_drift_report_free(&r);
    ns_feature_stats_free(&fs);
    free(tr);
    free(x);
}

Test(drift, feature_shifted_by_two_std_is_named)
{
    const int d = 8;
    float *tr = normal_rows(5000, d, 1), *x = normal_rows(400, d, 3);
    for (long i = 0; i < 400; i++) /* "weight": sd 1.75 */
        x[(size_t)i * d + 3] += 2 * 1.75f;
    ns_feature_stats fs;
    stats_of(&fs, tr, 5000, d);
    ns_drift_report r;
    ns_err err = {0};
    cr_assert_eq(ns_drift_check(&r, &fs, NAMES, x, 400, d, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(r.n_shifted, 1);
    cr_assert(r.warn_shift);
    cr_assert_eq(r.worst_smd[0].j, 3);
    cr_assert_str_eq(r.worst_smd[0].name, "weight");
    cr_assert(fabs(r.worst_smd[0].smd - 2.0) < 0.2, "smd %g", r.worst_smd[0].smd);
    cr_assert_lt(fabs(r.worst_smd[1].smd), NS_DRIFT_SMD);
    ns_drift_report_free(&r);

    /* Without names: "feature <j>", 0-based like the column index. Shifted down: sign. */
    for (long i = 0; i < 400; i++)
        x[(size_t)i * d + 3] -= 4 * 1.75f;
    cr_assert_eq(ns_drift_check(&r, &fs, NULL, x, 400, d, &err), NS_OK, "%s", err.msg);
    cr_assert_str_eq(r.worst_smd[0].name, "feature 3");
    cr_assert(fabs(r.worst_smd[0].smd + 2.0) < 0.2, "smd %g", r.worst_smd[0].smd);
    cr_assert_eq(r.n_shifted, 1);
    ns_drift_report_free(&r);
    ns_feature_stats_free(&fs);
    free(tr);
    free(x);
}

Test(drift, out_of_range_share_is_exact)
{
    /* Feature 0 trained on [0, 1] (tol 1e-5), feature 1 on [-1, 1]. */
    ns_feature_stats fs;
    set_stats(&fs, 2, 1000, (float[]){0, -1}, (float[]){1, 1}, (float[]){0.5f, 0},
              (float[]){0.5f, 1});
    float x[] = {
        0.0f,          -1.0f,
        1.0f + 5e-6f,  2.0f,  /* within tolerance; out */
        1.5f,          0.0f,  /* out */
        -1e-4f,        0.0f,  /* out: beyond the tolerance */
    };
    ns_drift_report r;
    ns_err err = {0};
    cr_assert_eq(ns_drift_check(&r, &fs, NAMES, x, 4, 2, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(r.n_out[0], 2);
    cr_assert_eq(r.n_out[1], 1);
    cr_assert_eq(r.out_values, 3);
    cr_assert_eq(r.out_share, 3.0 / 8.0);
    cr_assert_eq(r.out_limit, 0.01); /* 4 / 1001 is below 1% */
    cr_assert(r.warn_out);
    cr_assert_eq(r.n_worst_out, 2);
    cr_assert_eq(r.worst_out[0].j, 0);
    cr_assert_str_eq(r.worst_out[0].name, "age");
    cr_assert_eq(r.worst_out[0].out_share, 0.5);
    cr_assert_eq(r.worst_out[1].j, 1);
    cr_assert_eq(r.worst_out[1].out_share, 0.25);
    ns_drift_report_free(&r);

    /* The same values inside the range: nothing out, no warning. */
    float in[] = {0, -1, 1, 1, 0.25f, 0, 1e-6f, 0.5f};
    cr_assert_eq(ns_drift_check(&r, &fs, NAMES, in, 4, 2, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(r.out_values, 0);
    cr_assert_eq(r.n_worst_out, 0);
    cr_assert(!r.warn_out);
    ns_drift_report_free(&r);

    /* A small training set raises the limit to twice its expected share: 2 * 2 / 100. */
    fs.n_rows = 99;
    cr_assert_eq(ns_drift_check(&r, &fs, NAMES, in, 4, 2, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(r.out_limit, 0.04);
    ns_drift_report_free(&r);
    ns_feature_stats_free(&fs);
}

Test(drift, constant_training_feature)
{
    /* Feature 0 was always 3; feature 1 is ordinary. 60 rows: enough for a verdict. */
    ns_feature_stats fs;
    set_stats(&fs, 2, 500, (float[]){3, -2}, (float[]){3, 2}, (float[]){3, 0},
              (float[]){0, 1});
    float x[120];
    for (int i = 0; i < 60; i++) {
        x[2 * i] = i % 2 ? 3.0f : 3.0f + 2e-5f; /* within tol = 3e-5 */
        x[2 * i + 1] = i % 2 ? 0.5f : -0.5f;
    }
    ns_drift_report r;
    ns_err err = {0};
    cr_assert_eq(ns_drift_check(&r, &fs, NAMES, x, 60, 2, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(r.smd[0], 0.0);
    cr_assert_eq(r.n_shifted, 0);
    cr_assert(!r.warn_shift && !r.warn_out);
    ns_drift_report_free(&r);

    x[10] = 3.5f; /* one different value is a shift */
    cr_assert_eq(ns_drift_check(&r, &fs, NAMES, x, 60, 2, &err), NS_OK, "%s", err.msg);
    cr_assert(isinf(r.smd[0]) && r.smd[0] > 0, "smd %g", r.smd[0]);
    cr_assert_eq(r.n_shifted, 1);
    cr_assert_eq(r.worst_smd[0].j, 0);
    cr_assert_eq(r.n_out[0], 1);
    ns_drift_report_free(&r);

    x[10] = 2.0f;
    cr_assert_eq(ns_drift_check(&r, &fs, NAMES, x, 60, 2, &err), NS_OK, "%s", err.msg);
    cr_assert(isinf(r.smd[0]) && r.smd[0] < 0, "smd %g", r.smd[0]);
    ns_drift_report_free(&r);
    ns_feature_stats_free(&fs);
}

Test(drift, few_rows_give_no_shift_verdict)
{
    const int d = 8;
    float *tr = normal_rows(5000, d, 1), *x = normal_rows(NS_DRIFT_MIN_ROWS, d, 4);
    for (long i = 0; i < NS_DRIFT_MIN_ROWS; i++)
        x[(size_t)i * d] += 5.0f; /* feature 0: sd 1, moved by 5 std */
    ns_feature_stats fs;
    stats_of(&fs, tr, 5000, d);
    ns_drift_report r;
    ns_err err = {0};
    /* One row short of the minimum: the SMD is computed but is no verdict. */
    cr_assert_eq(ns_drift_check(&r, &fs, NAMES, x, NS_DRIFT_MIN_ROWS - 1, d, &err), NS_OK);
    cr_assert(!r.judged);
    cr_assert_eq(r.n_shifted, 0);
    cr_assert(!r.warn_shift);
    cr_assert_gt(r.smd[0], 4.0);
    cr_assert_eq(r.worst_smd[0].j, 0);
    ns_drift_report_free(&r);
    /* At the minimum it is. */
    cr_assert_eq(ns_drift_check(&r, &fs, NAMES, x, NS_DRIFT_MIN_ROWS, d, &err), NS_OK);
    cr_assert(r.judged);
    cr_assert_eq(r.n_shifted, 1);
    cr_assert(r.warn_shift);
    ns_drift_report_free(&r);
    /* No rows: nothing to say, nothing divided by zero. */
    cr_assert_eq(ns_drift_check(&r, &fs, NAMES, x, 0, d, &err), NS_OK);
    cr_assert_eq(r.out_share, 0.0);
    cr_assert_eq(r.n_worst_smd + r.n_worst_out + r.warn_out + r.warn_shift, 0);
    ns_drift_report_free(&r);
    ns_feature_stats_free(&fs);
    free(tr);
    free(x);
}

Test(drift, refuses_missing_or_mismatched_statistics)
{
    ns_feature_stats none = {0}, fs;
    set_stats(&fs, 1, 10, (float[]){0}, (float[]){1}, (float[]){0.5f}, (float[]){0.5f});
    float x[2] = {0, 1};
    ns_drift_report r;
    ns_err err = {0};
    cr_assert_eq(ns_drift_check(&r, &none, NULL, x, 1, 2, &err), NS_EINPUT);
    cr_assert_null(r.smd);
    cr_assert_eq(ns_drift_check(&r, &fs, NULL, x, 1, 2, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "1 features, the data has 2"), "%s", err.msg);
    ns_drift_report_free(&r);
    ns_feature_stats_free(&fs);
}

Test(drift, long_names_are_cut_on_a_character_boundary)
{
    char longname[200];
    memset(longname, 'a', sizeof longname);
    /* "é" (2 bytes) straddling the cut at NS_DRIFT_NAME_MAX - 4 = 44 */
    longname[43] = (char)0xc3;
    longname[44] = (char)0xa9;
    longname[199] = '\0';
    char *names[] = {longname};
    ns_feature_stats fs;
    set_stats(&fs, 1, 10, (float[]){0}, (float[]){1}, (float[]){0.5f}, (float[]){0.5f});
    float x[] = {7};
    ns_drift_report r;
    ns_err err = {0};
    cr_assert_eq(ns_drift_check(&r, &fs, names, x, 1, 1, &err), NS_OK);
    cr_assert_eq(r.n_worst_out, 1);
    const char *nm = r.worst_out[0].name;
    cr_assert_eq(strlen(nm), 43 + 3, "%s", nm);
    cr_assert_eq(strncmp(nm, longname, 43), 0);
    cr_assert_str_eq(nm + 43, "...");
    ns_drift_report_free(&r);
    ns_feature_stats_free(&fs);
}
