/* drift.h — the prediction-time drift check: new inputs compared with the training
 * statistics a model file stores (design mistake 5: a model that fails on new data).
 * A pure computation that returns a report; it prints nothing and decides nothing about
 * exit status (main words the warnings). Not a statistical test with p-values. */
#ifndef NS_DRIFT_H
#define NS_DRIFT_H

#include "engine/err.h"
#include "model/modelfile.h"

/* A feature is "shifted" when |SMD| = |mean_new - mean_train| / std_train exceeds this: half
 * a training standard deviation, a medium effect in Cohen's terms and large enough to move
 * a network's decisions, while same-distribution batches stay far below it (next). */
#define NS_DRIFT_SMD 0.5
/* No shift verdict below this many input rows: the mean of n rows from the training
 * distribution wanders by about 1/sqrt(n) training std, so at 50 rows 0.5 is 3.5 standard
 * errors (a false flag per feature about 1 in 2500); at 10 rows it would be 1.6 (1 in 9). */
#define NS_DRIFT_MIN_ROWS 50
/* Warn when more than this share of all input values lie outside their feature's training
 * range, or more than twice the share expected of data like the training rows
 * (2 / (n_train + 1) per value: a new draw falls outside the range of n_train draws with
 * that probability), whichever is larger, so a small training set does not warn on its
 * own kind of data. Applies at any row count: a value out of range is a fact, not an
 * estimate, and the network extrapolates on that row. */
#define NS_DRIFT_OUT_SHARE 0.01
/* A value counts as outside [min, max] only beyond tol = NS_DRIFT_TOL * max(1, |min|,
 * |max|), so float rounding of the same raw value is never drift; a training feature
 * whose std is at most tol is treated as constant. In standardised units (std 1) that is
 * about 1e-5 of a training std. */
#define NS_DRIFT_TOL 1e-5
#define NS_DRIFT_WORST 3     /* features named in each list of the report */
#define NS_DRIFT_NAME_MAX 48 /* bytes kept of a name in the report, "..." marks a cut */

typedef struct ns_drift_feature {
    int j;                        /* feature index, 0-based */
    double smd;                   /* as in ns_drift_report.smd[j] */
    double out_share;             /* n_out[j] / rows */
    char name[NS_DRIFT_NAME_MAX]; /* the feature name (cut) or "feature <j>" */
} ns_drift_feature;

typedef struct ns_drift_report {
    long rows;
    int d;
    /* Per feature. smd: (mean_new - mean_train) / std_train; for a constant training
     * feature 0 while every value stays within tol of it, else +-INFINITY (the sign of
     * mean_new - mean_train, + when equal): any different value is a shift. 0 when rows
     * is 0. Computed at any row count; only the verdict needs NS_DRIFT_MIN_ROWS. */
    double *smd;  /* (d) */
    long *n_out;  /* (d) values outside [min - tol, max + tol] */
    long out_values;  /* sum of n_out */
    double out_share; /* out_values / (rows * d), 0 when rows is 0 */
    double out_limit; /* max(NS_DRIFT_OUT_SHARE, 4 / (n_train_rows + 1)) */
    int judged;       /* rows >= NS_DRIFT_MIN_ROWS: n_shifted is a verdict */
    int n_shifted;    /* features with |smd| > NS_DRIFT_SMD; 0 unless judged */
    int n_worst_smd;  /* entries in worst_smd: min(d, NS_DRIFT_WORST) when rows > 0 */
    ns_drift_feature worst_smd[NS_DRIFT_WORST]; /* largest |smd| first, ties by index */
    int n_worst_out;  /* entries in worst_out: features with n_out > 0, at most WORST */
    ns_drift_feature worst_out[NS_DRIFT_WORST]; /* most values out first, ties by index */
    int warn_shift;   /* n_shifted > 0 */
    int warn_out;     /* out_share > out_limit */
} ns_drift_report;

/* Compares x (n rows, d features, row-major, in the units of fs: after the model's
 * standardisation) with fs. names: (d) feature names or NULL. One pass over x, O(n d).
 * Fills *rep (zeroed first); caller frees with ns_drift_report_free, also after a
 * failure. NS_EINPUT when fs is absent (d 0) or fs->d != d; NS_ERUNTIME out of memory. */
int ns_drift_check(ns_drift_report *rep, const ns_feature_stats *fs, char *const *names,
                   const float *x, long n, int d, ns_err *err);
/* Frees the per-feature arrays and zeroes *rep; safe on a zeroed report and twice. */
void ns_drift_report_free(ns_drift_report *rep);

#endif
