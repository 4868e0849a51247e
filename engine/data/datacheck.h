/* datacheck.h — the once-per-study data checks: class imbalance, train/val/test feature and
 * label shift, non-finite values, constant features and test rows copied from training.
 * A pure function over datasets already in memory that reports numbers and findings; not
 * the per-trial detectors (health.h), not the predict-time drift check, and it changes
 * nothing: the caller decides what to do with the findings. */
#ifndef NS_DATACHECK_H
#define NS_DATACHECK_H

#include <stddef.h>

#include "engine/data/data.h"
#include "engine/err.h"
#include "engine/train/health.h"

/* Every threshold; defaults in [brackets] (ns_datacheck_spec_default). Comparisons are
 * strict ("above" is >, "below" is <). The checks see the parts as given (normally
 * standardised with the training statistics; SMD and KS do not depend on the scale).
 *
 * class_imbalance (mistake 1; classification): over the classes with training rows,
 *   largest / smallest count above imbalance_ratio, or (imbalance_min_count > 0) the
 *   smallest count below imbalance_min_count. Classes without training rows are counted
 *   in the report (empty_classes) but never enter the ratio.
 * feature_shift (mistake 3; per pair train vs val, train vs test): a feature is compared
 *   when it has at least one finite value in both parts (non-finite values are left out of
 *   every statistic). It is SHIFTED when BOTH
 *     |SMD| > smd_max, SMD = (mean_other - mean_train) / sqrt((var_train + var_other) / 2)
 *       (population variances over all finite rows), AND
 *     KS p < alpha / (features compared)  (two-sample Kolmogorov-Smirnov, Bonferroni),
 *   because with thousands of rows KS alone flags differences too small to matter, and
 *   SMD alone is noisy on small parts. Exception: a feature constant in both parts
 *   (pooled std 0) is shifted exactly when the two values differ (SMD +-inf, JSON null);
 *   equal values give SMD 0. KS uses at most ks_max_rows rows per part, an even-stride
 *   subsample (rows floor(k n / m), k = 0..m-1), so the result is deterministic.
 *   Fires when shifted / compared > shift_share.
 * label_shift (mistake 3; classification, per pair): total-variation distance
 *   0.5 sum_c |p_train(c) - p_other(c)| above label_tv_max AND the chi-square test of
 *   homogeneity of the 2 x K count table (classes with rows in either part) p < alpha.
 * non_finite (mistake 5): any NaN/inf feature value in any part.
 * constant_features (mistake 5): a feature whose finite training values are all equal (or
 *   that has none). Mistake 5, not 3: training cannot learn from the column (after
 *   standardisation it is all zeros, its weights keep their initial values), so the harm
 *   shows when new data varies there and meets those untrained weights.
 * duplicate_rows (mistake 3; per pair): rows of val/test bitwise equal to some training
 *   row (features only; the label need not match); fires when their share of the part is
 *   above dup_share. A copy of a training row can at most inflate the part's score by its
 *   own share, so the default 1% means "the score may be a point too optimistic". */
typedef struct ns_datacheck_spec {
    double imbalance_ratio;    /* largest / smallest training class count [3] */
    long imbalance_min_count;  /* smallest training class count below which it fires;
                                  0 = off [0] */
    double smd_max;            /* |standardised mean difference| [0.2] */
    double alpha;              /* significance level: KS per feature at alpha / d_compared,
                                  label chi-square at alpha [0.01] */
    double shift_share;        /* share of compared features shifted [0.1] */
    double label_tv_max;       /* total-variation distance of label distributions [0.1] */
    long ks_max_rows;          /* rows per part used by KS (even stride); <= 0: all [5000] */
    double dup_share;          /* share of a part's rows copied from training [0.01] */
    const char *imbalance_fix; /* fix text of class_imbalance; NULL: a generic one naming
                                  model.class_weights (the pipeline words it after the
                                  config's setting) */
} ns_datacheck_spec;

void ns_datacheck_spec_default(ns_datacheck_spec *s);

#define NS_DATACHECK_WORST 5        /* features listed per pair, by |SMD| */
#define NS_DATACHECK_CONST_LIST 8   /* constant feature indices listed */
/* class_imbalance, non_finite, constant_features, and per pair feature_shift, label_shift,
 * duplicate_rows: each fires at most once per pair, so this many always fit. */
#define NS_DATACHECK_MAX_FINDINGS 9

typedef struct ns_shift_feature {
    int index;          /* feature column */
    char name[48];      /* train->feature_names[index] or "feature <index>", truncated */
    double smd;         /* see above; +-INFINITY when both parts are constant and differ */
    double ks_d;        /* KS statistic sup |F_train - F_other| on the subsamples */
    double ks_p;        /* its asymptotic p-value */
    int shifted;        /* both rules hold */
} ns_shift_feature;

typedef struct ns_shift_pair {
    const char *part;     /* "val" or "test" (static string) */
    int compared;         /* 0: the part was absent or empty and nothing below is set */
    long n;               /* rows in the part */
    int n_features;       /* features compared */
    int n_shifted;
    double share;         /* n_shifted / n_features (0 when none compared) */
    double ks_alpha;      /* per-feature KS threshold used: alpha / n_features */
    int n_worst;
    ns_shift_feature worst[NS_DATACHECK_WORST]; /* |SMD| descending, ties by index */
    double label_tv;      /* NAN unless both parts have labels (classification) */
    double label_p;       /* chi-square homogeneity p-value; NAN likewise */
    long duplicates;      /* rows bitwise equal to some training row */
} ns_shift_pair;

typedef struct ns_data_report {
    long n_train, n_val, n_test; /* 0 for an absent part */
    int d;
    int classify;            /* train is classification with labels */
    int n_classes;
    long *class_counts;      /* (n_classes) training counts; NULL unless classify */
    int empty_classes;       /* classes with no training row */
    double imbalance_ratio;  /* largest / smallest nonzero count; NAN unless classify */
    int smallest_class;      /* index of the smallest nonzero class (lowest on ties); -1 */
    long smallest_count;
    long non_finite[3];      /* NaN/inf feature values in train, val, test */
    int n_constant;          /* constant training features */
    int constant_idx[NS_DATACHECK_CONST_LIST]; /* the first min(n_constant, 8) */
    ns_shift_pair pair[2];   /* [0] train vs val, [1] train vs test */
    int n_findings;
    ns_finding findings[NS_DATACHECK_MAX_FINDINGS];
} ns_data_report;

/* Runs every check. train is required (n >= 1); val and test may be NULL or empty, and a
 * missing part is skipped. spec NULL means the defaults. *rep is overwritten (free it
 * first) and owned by the caller: ns_data_report_free. Deterministic; single-threaded.
 * Errors (on error *rep is zeroed, nothing allocated): NS_EINPUT when train is NULL or
 * empty, or a part's d differs from train's; NS_ERUNTIME on out of memory. */
int ns_data_check(const ns_datacheck_spec *spec, const ns_dataset *train,
                  const ns_dataset *val, const ns_dataset *test, ns_data_report *rep,
                  ns_err *err);

void ns_data_report_free(ns_data_report *rep);

/* Compact JSON object: {"n_train","n_val","n_test","d","classes" (null for regression:
 * counts, ratio, smallest {index,count}, empty), "non_finite" {train,val,test},
 * "constant" {count, first[]}, "pairs" [one per compared part: part, n, compared,
 * shifted, share, ks_alpha, label_tv, label_p, duplicates, worst [{index, name, smd, ks_d,
 * ks_p, shifted}]], "findings" (ns_findings_json's array)}. Non-finite numbers are
 * written as null. Like snprintf: returns the length of the whole text without its NUL;
 * when that is >= cap the text did not fit and buf holds "" (cap > 0). buf may be NULL
 * when cap is 0. */
int ns_data_report_json(const ns_data_report *rep, char *buf, size_t cap);

/* The statistics, exposed for tests and for the predict-time drift check.
 * ns_ks_q: Kolmogorov survival function Q(l) = 2 sum_{k>=1} (-1)^{k-1} exp(-2 k^2 l^2),
 * in [0, 1]; 1 for l <= 0 (the theta-function form is used for small l, where the
 * alternating series converges slowly). */
double ns_ks_q(double lambda);
/* Two-sample KS on sorted, finite samples a[0..na), b[0..nb) (na, nb >= 1): returns
 * D = sup |F_a - F_b| (equal values step together) and sets *p (if not NULL) to
 * Q((sqrt(ne) + 0.12 + 0.11 / sqrt(ne)) D), ne = na nb / (na + nb). */
double ns_ks_sorted(const float *a, long na, const float *b, long nb, double *p);

#endif
