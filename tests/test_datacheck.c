/* test_datacheck.c — the once-per-study data checks (engine/data/datacheck.c): the KS statistic
 * and p-value against hand-computed and tabulated values, each finding provoked on
 * synthetic parts next to a clean set that must not fire it, and the report's JSON. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/data/datacheck.h"
#include "engine/rng.h"

/* n rows of d N(0, 1) features (the first n_shift columns moved by +shift), labels
 * 0..K-1 in equal shares cycling through the rows (K = 0: regression, no labels). */
static ns_dataset make(long n, int d, int K, uint64_t seed, int n_shift, double shift)
{
    ns_dataset ds = {.n = n, .d = d, .task = K ? NS_TASK_CLASSIFY : NS_TASK_REGRESS};
    ns_rng r;
    ns_rng_seed(&r, seed);
    ds.x = malloc((size_t)n * d * sizeof *ds.x);
    cr_assert_not_null(ds.x);
    for (long i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            ds.x[i * d + j] = (float)(ns_rng_normal(&r) + (j < n_shift ? shift : 0.0));
    if (K) {
        ds.n_classes = K;
        ds.y = malloc((size_t)n * sizeof *ds.y);
        cr_assert_not_null(ds.y);
        for (long i = 0; i < n; i++)
            ds.y[i] = (int32_t)(i % K);
    } else {
        ds.t = calloc((size_t)n, sizeof *ds.t);
    }
    return ds;
}

/* Labels in the given shares: row i gets the first class whose cumulative share exceeds
 * i / n, so the counts are exact. */
static void set_labels(ns_dataset *ds, const double *share, int K)
{
    ds->n_classes = K;
    for (long i = 0; i < ds->n; i++) {
        double u = (i + 0.5) / ds->n, cum = 0;
        int c = 0;
        while (c < K - 1 && u >= cum + share[c])
            cum += share[c++];
        ds->y[i] = c;
    }
}

static void set_names(ns_dataset *ds, int n_shift, const char *shifted, const char *plain)
{
    ds->feature_names = calloc((size_t)ds->d, sizeof *ds->feature_names);
    cr_assert_not_null(ds->feature_names);
    for (int j = 0; j < ds->d; j++) {
        char b[96];
        snprintf(b, sizeof b, "%s%d", j < n_shift ? shifted : plain, j);
        ds->feature_names[j] = strdup(b);
    }
}

static const ns_finding *find(const ns_data_report *r, const char *code, int nth)
{
    for (int i = 0; i < r->n_findings; i++)
        if (strcmp(r->findings[i].code, code) == 0 && nth-- == 0)
            return &r->findings[i];
    return NULL;
}

static void expect_clean_finding(const ns_finding *f, int mistake)
{
    cr_assert_not_null(f);
    cr_assert_eq(f->mistake, mistake, "%s: mistake %d", f->code, f->mistake);
    cr_assert(strlen(f->message) > 0 && strlen(f->message) < sizeof f->message);
    cr_assert(strlen(f->fix) > 0);
    cr_assert_null(strchr(f->message, '\n'));
}

static int check(const ns_datacheck_spec *s, const ns_dataset *tr, const ns_dataset *va,
                 const ns_dataset *te, ns_data_report *rep)
{
    ns_err e = {0};
    int rc = ns_data_check(s, tr, va, te, rep, &e);
    cr_assert_eq(rc, NS_OK, "rc %d: %s", rc, e.msg);
    return rep->n_findings;
}

Test(datacheck, defaults_documented)
{
    ns_datacheck_spec s;
    ns_datacheck_spec_default(&s);
    cr_assert_eq(s.imbalance_ratio, 3.0);
    cr_assert_eq(s.imbalance_min_count, 0);
    cr_assert_eq(s.smd_max, 0.2);
    cr_assert_eq(s.alpha, 0.01);
    cr_assert_eq(s.shift_share, 0.1);
    cr_assert_eq(s.label_tv_max, 0.1);
    cr_assert_eq(s.ks_max_rows, 5000);
    cr_assert_eq(s.dup_share, 0.01);
    cr_assert_null(s.imbalance_fix);
}

Test(datacheck, kolmogorov_tabulated_values)
{
    cr_assert(fabs(ns_ks_q(1.0) - 0.26999967) < 1e-8, "Q(1.0) = %.10f", ns_ks_q(1.0));
    cr_assert(fabs(ns_ks_q(0.5) - 0.96394524) < 1e-8, "Q(0.5) = %.10f", ns_ks_q(0.5));
    cr_assert(fabs(ns_ks_q(1.36) - 0.0494) < 2e-4, "Q(1.36) = %.10f", ns_ks_q(1.36));
    cr_assert(fabs(ns_ks_q(1.63) - 0.0098) < 2e-4, "Q(1.63) = %.10f", ns_ks_q(1.63));
    /* tail: 2 exp(-18) less the next term, which is negligible */
    cr_assert(fabs(ns_ks_q(3.0) / (2 * exp(-18.0)) - 1) < 1e-9);
    cr_assert_eq(ns_ks_q(0.0), 1.0);
    cr_assert_eq(ns_ks_q(-2.0), 1.0);
    cr_assert_eq(ns_ks_q(NAN), 1.0);
    cr_assert(ns_ks_q(0.2) <= 1.0 && ns_ks_q(0.2) > 1 - 1e-12);
    cr_assert_eq(ns_ks_q(40.0), 0.0);
    /* the two series agree where the code switches between them */
    cr_assert(fabs(ns_ks_q(1.18 - 1e-12) - ns_ks_q(1.18)) < 1e-10);
    /* decreasing */
    for (double l = 0.05; l < 4; l += 0.05)
        cr_assert(ns_ks_q(l + 0.05) <= ns_ks_q(l), "Q not decreasing at %g", l);
}

Test(datacheck, ks_statistic_by_hand)
{
    double p;
    const float a[] = {1, 2, 3, 4}, b[] = {3, 4, 5, 6};
    /* F_a - F_b at 1,2,3,4,5,6: .25 .5 .5 .5 .25 0 */
    cr_assert_float_eq(ns_ks_sorted(a, 4, b, 4, &p), 0.5, 1e-15);
    double l = (sqrt(2.0) + 0.12 + 0.11 / sqrt(2.0)) * 0.5;
    cr_assert_float_eq(p, ns_ks_q(l), 1e-15);
    /* ties across samples step together: at 1, 2/3 vs 1/3; at 2 both reach 1 */
    const float c[] = {1, 1, 2}, e[] = {1, 2, 2};
    cr_assert_float_eq(ns_ks_sorted(c, 3, e, 3, NULL), 1.0 / 3, 1e-15);
    /* identical samples with repeated values: D = 0 and p = 1 */
    const float f[] = {0, 0, 0, 1, 1, 7};
    cr_assert_eq(ns_ks_sorted(f, 6, f, 6, &p), 0.0);
    cr_assert_eq(p, 1.0);
    /* disjoint samples: D = 1; different sizes */
    const float g[] = {10, 11, 12};
    cr_assert_eq(ns_ks_sorted(a, 4, g, 3, &p), 1.0);
    cr_assert(p < 0.1);
    /* uneven sizes: a = {1,2,3,4} vs {2.5}: F_a - F_b peaks at 2: 0.5 - 0, at 2.5: .5 - 1 */
    const float h[] = {2.5f};
    cr_assert_float_eq(ns_ks_sorted(a, 4, h, 1, NULL), 0.5, 1e-15);
}

Test(datacheck, same_distribution_fires_nothing)
{
    ns_dataset tr = make(5000, 12, 3, 1, 0, 0), va = make(5000, 12, 3, 2, 0, 0),
               te = make(5000, 12, 3, 3, 0, 0);
    ns_data_report r, r2;
    int n = check(NULL, &tr, &va, &te, &r);
    cr_assert_eq(n, 0, "%s: %s", n ? r.findings[0].code : "", n ? r.findings[0].message : "");
    for (int p = 0; p < 2; p++) {
        cr_assert_eq(r.pair[p].compared, 1);
        cr_assert_eq(r.pair[p].n_features, 12);
        cr_assert_eq(r.pair[p].n_shifted, 0);
        cr_assert_eq(r.pair[p].duplicates, 0);
        cr_assert_eq(r.pair[p].n_worst, NS_DATACHECK_WORST);
        cr_assert(fabs(r.pair[p].worst[0].smd) < 0.1);
        cr_assert(r.pair[p].label_tv < 1e-3);
    }
    cr_assert_float_eq(r.imbalance_ratio, 1667.0 / 1666.0, 1e-12);
    cr_assert_eq(r.n_constant, 0);
    /* deterministic: the same JSON twice */
    check(NULL, &tr, &va, &te, &r2);
    char a[8192], b[8192];
    int la = ns_data_report_json(&r, a, sizeof a), lb = ns_data_report_json(&r2, b, sizeof b);
    cr_assert(la > 0 && la < (int)sizeof a);
    cr_assert_eq(la, lb);
    cr_assert_str_eq(a, b);
    ns_data_report_free(&r);
    ns_data_report_free(&r2);
    ns_dataset_free(&tr);
    ns_dataset_free(&va);
    ns_dataset_free(&te);
}

Test(datacheck, one_std_shift_in_30_percent_fires_feature_shift)
{
    ns_dataset tr = make(5000, 20, 2, 11, 0, 0), va = make(2000, 20, 2, 12, 0, 0),
               te = make(5000, 20, 2, 13, 6, 1.0);
    set_names(&tr, 6, "moved_", "still_");
    ns_data_report r;
    check(NULL, &tr, &va, &te, &r);
    cr_assert_eq(r.pair[0].n_shifted, 0);
    cr_assert_eq(r.pair[1].n_shifted, 6);
    cr_assert_float_eq(r.pair[1].share, 0.3, 1e-12);
    cr_assert_eq(r.n_findings, 1, "%d findings, first %s", r.n_findings, r.findings[0].code);
    const ns_finding *f = find(&r, "feature_shift", 0);
    expect_clean_finding(f, 3);
    cr_assert(strstr(f->message, "train vs test") != NULL, "%s", f->message);
    cr_assert(strstr(f->message, "6 of 20") != NULL, "%s", f->message);
    cr_assert(strstr(f->message, "moved_") != NULL, "%s", f->message);
    cr_assert(strstr(f->message, "still_") == NULL, "%s", f->message);
    for (int i = 0; i < r.pair[1].n_worst; i++) {
        const ns_shift_feature *w = &r.pair[1].worst[i];
        cr_assert(w->index < 6 && w->shifted && w->smd > 0.8 && w->smd < 1.2);
        cr_assert(w->ks_d > 0.3 && w->ks_p < 1e-12);
        cr_assert(strncmp(w->name, "moved_", 6) == 0);
        if (i)
            cr_assert(fabs(w->smd) <= fabs(r.pair[1].worst[i - 1].smd));
    }
    ns_data_report_free(&r);

    /* KS on a 300-row subsample still sees a 1 std shift */
    ns_datacheck_spec s;
    ns_datacheck_spec_default(&s);
    s.ks_max_rows = 300;
    check(&s, &tr, &va, &te, &r);
    cr_assert_eq(r.pair[1].n_shifted, 6);
    cr_assert_not_null(find(&r, "feature_shift", 0));
    ns_data_report_free(&r);
    /* 2 of 20 shifted is a share of 0.1, not above it */
    ns_dataset_free(&te);
    te = make(5000, 20, 2, 13, 2, 1.0);
    check(NULL, &tr, &va, &te, &r);
    cr_assert_eq(r.pair[1].n_shifted, 2);
    cr_assert_null(find(&r, "feature_shift", 0), "share 0.1 is not above 0.1");
    ns_data_report_free(&r);
    ns_dataset_free(&tr);
    ns_dataset_free(&va);
    ns_dataset_free(&te);
}

Test(datacheck, small_mean_difference_is_not_a_shift)
{
    /* 0.1 std with 20000 rows: KS p is tiny, but |SMD| ~ 0.1 stays under 0.2 */
    ns_dataset tr = make(20000, 5, 0, 21, 0, 0), te = make(20000, 5, 0, 22, 5, 0.1);
    ns_datacheck_spec s;
    ns_datacheck_spec_default(&s);
    s.ks_max_rows = 20000;
    ns_data_report r;
    cr_assert_eq(check(&s, &tr, NULL, &te, &r), 0);
    cr_assert(r.pair[1].worst[4].ks_p < r.pair[1].ks_alpha, "KS alone would flag it");
    cr_assert_eq(r.pair[1].n_shifted, 0);
    cr_assert_eq(r.pair[0].compared, 0);
    cr_assert(isnan(r.imbalance_ratio) && r.classify == 0 && r.class_counts == NULL);
    ns_data_report_free(&r);
    ns_dataset_free(&tr);
    ns_dataset_free(&te);
}

Test(datacheck, ks_threshold_is_bonferroni_corrected)
{
    /* feature 0: evenly spaced 0..199 in train, the same grid moved up by 34 in test, so
     * D = 34/200 exactly, SMD ~ 0.59 and p = Q((10 + 0.12 + 0.011) 0.17) ~ 0.0053: under
     * alpha = 0.01, but not under alpha / 20 */
    ns_dataset tr = make(200, 20, 0, 121, 0, 0), te = make(200, 20, 0, 122, 0, 0);
    for (long i = 0; i < 200; i++) {
        tr.x[i * 20] = (float)i;
        te.x[i * 20] = (float)(i + 34);
    }
    ns_data_report r;
    check(NULL, &tr, NULL, &te, &r);
    const ns_shift_feature *w = &r.pair[1].worst[0];
    cr_assert_eq(w->index, 0);
    cr_assert_float_eq(w->ks_d, 0.17, 1e-12);
    cr_assert(w->ks_p > 0.005 && w->ks_p < 0.006, "p %g", w->ks_p);
    cr_assert(w->smd > 0.5 && !w->shifted);
    cr_assert_float_eq(r.pair[1].ks_alpha, 0.01 / 20, 1e-15);
    ns_data_report_free(&r);
    ns_dataset_free(&tr);
    ns_dataset_free(&te);

    /* the same column alone: alpha / 1, shifted */
    tr = make(200, 1, 0, 123, 0, 0);
    te = make(200, 1, 0, 124, 0, 0);
    for (long i = 0; i < 200; i++) {
        tr.x[i] = (float)i;
        te.x[i] = (float)(i + 34);
    }
    check(NULL, &tr, NULL, &te, &r);
    cr_assert(r.pair[1].worst[0].shifted);
    cr_assert_not_null(find(&r, "feature_shift", 0));
    ns_data_report_free(&r);
    ns_dataset_free(&tr);
    ns_dataset_free(&te);
}

Test(datacheck, shift_message_fits_with_long_names)
{
    ns_dataset tr = make(500, 30, 0, 31, 0, 0), te = make(500, 30, 0, 32, 30, 3.0);
    set_names(&tr, 30, "a_rather_long_feature_name_from_a_csv_header_", "");
    ns_data_report r;
    check(NULL, &tr, NULL, &te, &r);
    const ns_finding *f = find(&r, "feature_shift", 0);
    expect_clean_finding(f, 3);
    cr_assert(strstr(f->message, "30 of 30") != NULL, "%s", f->message);
    size_t len = strlen(f->message);
    cr_assert(len >= 5 && strcmp(f->message + len - 5, ", ...") == 0, "%s", f->message);
    cr_assert(strstr(f->message, "(SMD +") != NULL, "%s", f->message);
    ns_data_report_free(&r);
    ns_dataset_free(&tr);
    ns_dataset_free(&te);
}

Test(datacheck, constant_in_both_parts)
{
    ns_dataset tr = make(300, 3, 0, 41, 0, 0), te = make(300, 3, 0, 42, 0, 0);
    for (long i = 0; i < 300; i++) {
        tr.x[i * 3 + 0] = 1.0f;
        te.x[i * 3 + 0] = 2.0f; /* constant, different value: shifted */
        tr.x[i * 3 + 1] = 5.0f;
        te.x[i * 3 + 1] = 5.0f; /* constant, same value: SMD 0 */
    }
    ns_data_report r;
    check(NULL, &tr, NULL, &te, &r);
    cr_assert_eq(r.n_constant, 2);
    cr_assert_eq(r.constant_idx[0], 0);
    cr_assert_eq(r.constant_idx[1], 1);
    const ns_shift_pair *p = &r.pair[1];
    cr_assert_eq(p->n_shifted, 1);
    cr_assert_eq(p->worst[0].index, 0);
    cr_assert(isinf(p->worst[0].smd) && p->worst[0].smd > 0 && p->worst[0].shifted);
    for (int i = 1; i < p->n_worst; i++)
        if (p->worst[i].index == 1)
            cr_assert(p->worst[i].smd == 0 && !p->worst[i].shifted);
    const ns_finding *c = find(&r, "constant_features", 0);
    expect_clean_finding(c, 5);
    cr_assert(strstr(c->message, "2 of 3") && strstr(c->message, "feature 0, feature 1"),
              "%s", c->message);
    const ns_finding *s = find(&r, "feature_shift", 0);
    expect_clean_finding(s, 3);
    cr_assert(strstr(s->message, "feature 0 (constant, values differ)"), "%s", s->message);
    ns_data_report_free(&r);
    ns_dataset_free(&tr);
    ns_dataset_free(&te);
}

Test(datacheck, label_shift)
{
    const double even[] = {0.5, 0.5}, skew[] = {0.8, 0.2};
    ns_dataset tr = make(4000, 4, 2, 51, 0, 0), va = make(1000, 4, 2, 52, 0, 0),
               te = make(1000, 4, 2, 53, 0, 0);
    set_labels(&te, skew, 2);
    set_labels(&va, even, 2);
    ns_data_report r;
    check(NULL, &tr, &va, &te, &r);
    cr_assert_float_eq(r.pair[1].label_tv, 0.3, 1e-12);
    cr_assert(r.pair[1].label_p < 1e-10);
    cr_assert_float_eq(r.pair[0].label_tv, 0.0, 1e-12);
    cr_assert_eq(r.n_findings, 1);
    const ns_finding *f = find(&r, "label_shift", 0);
    expect_clean_finding(f, 3);
    cr_assert(strstr(f->message, "train vs test") && strstr(f->message, "0.300"), "%s",
              f->message);
    cr_assert(strstr(f->message, "80.0% of test"), "%s", f->message);
    ns_data_report_free(&r);
    ns_dataset_free(&tr);
    ns_dataset_free(&va);
    ns_dataset_free(&te);

    /* the same TV on 20 rows is not significant */
    tr = make(20, 4, 2, 54, 0, 0);
    te = make(10, 4, 2, 55, 0, 0);
    set_labels(&te, skew, 2);
    check(NULL, &tr, NULL, &te, &r);
    cr_assert(r.pair[1].label_tv > 0.1 && r.pair[1].label_p > 0.01);
    cr_assert_null(find(&r, "label_shift", 0));
    ns_data_report_free(&r);
    ns_dataset_free(&tr);
    ns_dataset_free(&te);
}

Test(datacheck, class_imbalance)
{
    const double skew[] = {0.95, 0.05};
    ns_dataset tr = make(1000, 3, 2, 61, 0, 0);
    ns_data_report r;
    /* balanced: nothing */
    cr_assert_eq(check(NULL, &tr, NULL, NULL, &r), 0);
    cr_assert_float_eq(r.imbalance_ratio, 1.0, 1e-15);
    ns_data_report_free(&r);
    set_labels(&tr, skew, 2);
    check(NULL, &tr, NULL, NULL, &r);
    cr_assert_eq(r.class_counts[0], 950);
    cr_assert_eq(r.class_counts[1], 50);
    cr_assert_float_eq(r.imbalance_ratio, 19.0, 1e-12);
    cr_assert_eq(r.smallest_class, 1);
    cr_assert_eq(r.smallest_count, 50);
    const ns_finding *f = find(&r, "class_imbalance", 0);
    expect_clean_finding(f, 1);
    cr_assert(strstr(f->message, "19.0") && strstr(f->message, "class 1: 50 rows"), "%s",
              f->message);
    cr_assert(strstr(f->fix, "class_weights") != NULL);
    ns_data_report_free(&r);

    /* a ratio of exactly 3 does not fire; a small class by count does when asked */
    const double three[] = {0.75, 0.25};
    set_labels(&tr, three, 2);
    ns_datacheck_spec s;
    ns_datacheck_spec_default(&s);
    cr_assert_eq(check(&s, &tr, NULL, NULL, &r), 0);
    cr_assert_float_eq(r.imbalance_ratio, 3.0, 1e-12);
    ns_data_report_free(&r);
    s.imbalance_min_count = 251;
    s.imbalance_fix = "my own fix";
    check(&s, &tr, NULL, NULL, &r);
    f = find(&r, "class_imbalance", 0);
    expect_clean_finding(f, 1);
    cr_assert_str_eq(f->fix, "my own fix");
    ns_data_report_free(&r);

    /* a declared class without training rows is counted, not used in the ratio */
    set_labels(&tr, three, 2);
    tr.n_classes = 3;
    cr_assert_eq(check(NULL, &tr, NULL, NULL, &r), 0);
    cr_assert_eq(r.empty_classes, 1);
    cr_assert_float_eq(r.imbalance_ratio, 3.0, 1e-12);
    ns_data_report_free(&r);
    ns_dataset_free(&tr);
}

Test(datacheck, duplicates_counted_exactly)
{
    ns_dataset tr = make(3000, 8, 2, 71, 0, 0), te = make(200, 8, 2, 72, 0, 0),
               va = make(500, 8, 2, 73, 0, 0);
    for (int k = 0; k < 7; k++) {
        memcpy(te.x + (size_t)(10 * k) * 8, tr.x + (size_t)(100 * k + 3) * 8, 8 * sizeof(float));
        te.y[10 * k] = 1 - tr.y[100 * k + 3]; /* the label need not match */
    }
    /* a near copy (one value one ulp away) is not a copy */
    memcpy(te.x + 150 * 8, tr.x + 7 * 8, 8 * sizeof(float));
    te.x[150 * 8 + 5] = nextafterf(te.x[150 * 8 + 5], INFINITY);
    /* a row repeated inside training and copied once into val */
    memcpy(tr.x + 20 * 8, tr.x + 21 * 8, 8 * sizeof(float));
    memcpy(va.x + 4 * 8, tr.x + 21 * 8, 8 * sizeof(float));
    ns_data_report r;
    check(NULL, &tr, &va, &te, &r);
    cr_assert_eq(r.pair[1].duplicates, 7);
    cr_assert_eq(r.pair[0].duplicates, 1);
    /* 7 of 200 is above 1%, 1 of 500 is not */
    const ns_finding *f = find(&r, "duplicate_rows", 0);
    expect_clean_finding(f, 3);
    cr_assert(strstr(f->message, "7 of 200 test rows") != NULL, "%s", f->message);
    cr_assert_null(find(&r, "duplicate_rows", 1));
    ns_data_report_free(&r);
    ns_dataset_free(&tr);
    ns_dataset_free(&va);
    ns_dataset_free(&te);
}

Test(datacheck, non_finite_counted_and_left_out)
{
    ns_dataset tr = make(1000, 4, 2, 81, 0, 0), te = make(1000, 4, 2, 82, 0, 0);
    tr.x[5 * 4 + 1] = NAN;
    tr.x[9 * 4 + 1] = INFINITY;
    te.x[3 * 4 + 2] = -INFINITY;
    for (long i = 0; i < 1000; i += 2)
        te.x[i * 4 + 3] = NAN; /* half of a column: KS sees the other half only */
    ns_data_report r;
    check(NULL, &tr, NULL, &te, &r);
    cr_assert_eq(r.non_finite[0], 2);
    cr_assert_eq(r.non_finite[1], 0);
    cr_assert_eq(r.non_finite[2], 501);
    int seen = 0;
    for (int i = 0; i < r.pair[1].n_worst; i++)
        if (r.pair[1].worst[i].index == 3) {
            seen = 1;
            cr_assert(r.pair[1].worst[i].ks_d < 0.1, "D %g", r.pair[1].worst[i].ks_d);
        }
    cr_assert(seen);
    cr_assert_eq(r.pair[1].n_features, 4);
    cr_assert_eq(r.pair[1].n_shifted, 0);
    for (int i = 0; i < r.pair[1].n_worst; i++)
        cr_assert(isfinite(r.pair[1].worst[i].smd) && isfinite(r.pair[1].worst[i].ks_p));
    cr_assert_eq(r.n_findings, 1);
    const ns_finding *f = find(&r, "non_finite", 0);
    expect_clean_finding(f, 5);
    cr_assert(strstr(f->message, "train 2, val 0, test 501") != NULL, "%s", f->message);
    ns_data_report_free(&r);
    ns_dataset_free(&tr);
    ns_dataset_free(&te);
}

Test(datacheck, bad_input)
{
    ns_dataset tr = make(50, 4, 2, 91, 0, 0), te = make(50, 5, 2, 92, 0, 0),
               empty = {.n = 0, .d = 9};
    ns_data_report r;
    ns_err e = {0};
    cr_assert_eq(ns_data_check(NULL, &tr, NULL, &te, &r, &e), NS_EINPUT);
    cr_assert(strstr(e.msg, "test has 5 features but train has 4") != NULL, "%s", e.msg);
    cr_assert_null(r.class_counts);
    cr_assert_eq(ns_data_check(NULL, &tr, &te, NULL, &r, &e), NS_EINPUT);
    cr_assert(strstr(e.msg, "val") != NULL, "%s", e.msg);
    cr_assert_eq(ns_data_check(NULL, &empty, NULL, NULL, &r, &e), NS_EINPUT);
    cr_assert_eq(ns_data_check(NULL, NULL, NULL, NULL, &r, &e), NS_EINPUT);
    /* an empty part is skipped, whatever its d */
    cr_assert_eq(ns_data_check(NULL, &tr, &empty, &empty, &r, &e), NS_OK);
    cr_assert(!r.pair[0].compared && !r.pair[1].compared && r.n_val == 0 && r.n_test == 0);
    ns_data_report_free(&r);
    ns_data_report_free(&r); /* twice is harmless */
    ns_dataset_free(&tr);
    ns_dataset_free(&te);
}

/* Checks the text is one JSON value as far as nnsearch writes it: strings with escapes,
 * balanced {} and [], bare words only true/false/null, every number finite. */
static void expect_json(const char *s)
{
    char stack[64];
    int depth = 0;
    for (const char *p = s; *p;) {
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                cr_assert((unsigned char)*p >= 0x20, "control character in a string");
                if (*p == '\\')
                    p++;
            }
            cr_assert_eq(*p, '"', "unterminated string");
            p++;
        } else if (*p == '{' || *p == '[') {
            cr_assert(depth < 64);
            stack[depth++] = *p++;
        } else if (*p == '}' || *p == ']') {
            cr_assert(depth > 0 && stack[depth - 1] == (*p == '}' ? '{' : '['), "unbalanced");
            depth--;
            p++;
        } else if (isalpha((unsigned char)*p)) {
            int n = 0;
            while (isalpha((unsigned char)p[n]))
                n++;
            cr_assert((n == 4 && !strncmp(p, "true", 4)) || (n == 5 && !strncmp(p, "false", 5)) ||
                          (n == 4 && !strncmp(p, "null", 4)),
                      "bare word %.*s", n, p);
            p += n;
        } else if (*p == '-' || isdigit((unsigned char)*p)) {
            char *end;
            double v = strtod(p, &end);
            cr_assert(end > p && isfinite(v));
            p = end;
        } else {
            cr_assert(*p == ':' || *p == ',', "stray %c", *p);
            p++;
        }
    }
    cr_assert_eq(depth, 0, "unbalanced");
    cr_assert_eq(s[0], '{');
}

Test(datacheck, json_form_and_cap)
{
    const double skew[] = {0.95, 0.05};
    ns_dataset tr = make(400, 3, 2, 101, 0, 0), te = make(100, 3, 2, 102, 0, 0);
    set_labels(&tr, skew, 2);
    set_names(&tr, 3, "say \"hi\"\\\n", "");
    for (long i = 0; i < 400; i++)
        tr.x[i * 3] = 1.0f;
    for (long i = 0; i < 100; i++)
        te.x[i * 3] = 3.0f; /* SMD infinite */
    ns_data_report r;
    check(NULL, &tr, NULL, &te, &r);
    cr_assert(isinf(r.pair[1].worst[0].smd));
    cr_assert(find(&r, "class_imbalance", 0) && find(&r, "feature_shift", 0) &&
              find(&r, "constant_features", 0) && find(&r, "label_shift", 0));
    int need = ns_data_report_json(&r, NULL, 0);
    cr_assert(need > 0);
    char *buf = malloc((size_t)need + 1);
    cr_assert_eq(ns_data_report_json(&r, buf, (size_t)need + 1), need);
    cr_assert_eq((int)strlen(buf), need);
    expect_json(buf);
    const char *keys[] = {"\"n_train\":400", "\"n_val\":0", "\"n_test\":100", "\"d\":3",
                          "\"counts\":[380,20]", "\"ratio\":19",
                          "\"smallest\":{\"index\":1,\"count\":20}",
                          "\"non_finite\":{\"train\":0,\"val\":0,\"test\":0}",
                          "\"constant\":{\"count\":1,\"first\":[0]}", "\"part\":\"test\"",
                          "\"duplicates\":0", "\"smd\":null", "\"label_tv\":",
                          "\"worst\":[{\"index\":0,", "\"name\":\"say \\\"hi\\\"\\\\\\n0\"",
                          "\"findings\":[{\"code\":\"class_imbalance\",\"mistake\":1,"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        cr_assert(strstr(buf, keys[i]) != NULL, "missing %s in %s", keys[i], buf);
    cr_assert_null(strstr(buf, "\"part\":\"val\""), "an absent part is not listed");
    /* expect_json saw every number finite; "inf" may occur inside words of the messages */
    cr_assert_null(strstr(buf, ":nan"));
    cr_assert_null(strstr(buf, ":inf"));
    cr_assert_null(strstr(buf, ":-inf"));
    /* the findings array is ns_findings_json's text */
    char fj[4096];
    int fl = ns_findings_json(r.findings, r.n_findings, fj, sizeof fj);
    cr_assert(fl > 2 && fl < (int)sizeof fj);
    cr_assert_eq(strncmp(buf + need - fl - 1, fj, (size_t)fl), 0, "%s", buf);
    cr_assert_eq(buf[need - 1], '}');
    /* too small: returns the length needed and leaves "" */
    cr_assert_eq(ns_data_report_json(&r, buf, (size_t)need), need);
    cr_assert_str_eq(buf, "");
    char small[16] = "xxxxxxxxxxxxxxx";
    cr_assert_eq(ns_data_report_json(&r, small, sizeof small), need);
    cr_assert_str_eq(small, "");
    /* cut inside the findings array too */
    cr_assert_eq(ns_data_report_json(&r, buf, (size_t)(need - 3)), need);
    cr_assert_str_eq(buf, "");
    free(buf);
    ns_data_report_free(&r);
    ns_dataset_free(&tr);
    ns_dataset_free(&te);
}

Test(datacheck, json_regression_has_null_classes)
{
    ns_dataset tr = make(100, 2, 0, 111, 0, 0);
    ns_data_report r;
    check(NULL, &tr, NULL, NULL, &r);
    char buf[1024];
    int n = ns_data_report_json(&r, buf, sizeof buf);
    cr_assert(n > 0 && n < (int)sizeof buf);
    expect_json(buf);
    cr_assert(strstr(buf, "\"classes\":null") && strstr(buf, "\"pairs\":[]") &&
                  strstr(buf, "\"findings\":[]}"),
              "%s", buf);
    ns_data_report_free(&r);
    ns_dataset_free(&tr);
}
