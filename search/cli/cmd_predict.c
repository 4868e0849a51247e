/* cmd_predict.c — `nnsearch predict MODEL DATA`: the predictions CSV (predict.c), the
 * scores when the data has labels, and the drift warnings. Nothing here trains. */
#include "search/cli/cli.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "search/cli/predict.h"

/* One "feature (+2.1 std)" item of the shift warning. */
static void print_shift(const ns_drift_feature *f)
{
    if (isinf(f->smd))
        fprintf(stderr, "%s (constant in training, differs now)", f->name);
    else
        fprintf(stderr, "%s (%+.1f std)", f->name, f->smd);
}

/* Drift is a warning, never an error: the predictions are written and the exit status
 * stays 0, but the user learns that the model may fail on this data and what to do. */
static void print_drift(const ns_predict_summary *sum, const char *model)
{
    static const char advice[] =
        "check that the new data is preprocessed like the training data (same columns, units "
        "and scaling), or retrain on data like it";
    if (sum->drift_state == NS_DRIFT_NO_STATS) {
        fprintf(stderr, "nnsearch: note: %s has no training statistics (model files of "
                "format version 1 have none), so the drift check was skipped; re-train it "
                "with this nnsearch to get the check\n", model);
        return;
    }
    if (sum->drift_state != NS_DRIFT_DONE)
        return;
    const ns_drift_report *r = &sum->drift;
    if (r->warn_shift) {
        fprintf(stderr, "nnsearch: warning: drift: %d of %d features (%.1f%%) shifted from "
                "the training data (mean moved by more than %.1f training std over %ld rows): ",
                r->n_shifted, r->d, 100.0 * r->n_shifted / r->d, NS_DRIFT_SMD, r->rows);
        int shown = 0;
        for (int k = 0; k < r->n_worst_smd; k++)
            if (fabs(r->worst_smd[k].smd) > NS_DRIFT_SMD) {
                if (shown++)
                    fputs(", ", stderr);
                print_shift(&r->worst_smd[k]);
            }
        if (r->n_shifted > shown)
            fprintf(stderr, " and %d more", r->n_shifted - shown);
        fprintf(stderr, "; the model may fail on data that drifted from its training data; "
                "%s\n", advice);
    }
    if (r->warn_out) {
        fprintf(stderr, "nnsearch: warning: drift: %.1f%% of the input values (%ld of %ld) lie "
                "outside their feature's training range (warning above %.1f%%), most in ",
                100.0 * r->out_share, r->out_values, r->rows * (long)r->d, 100.0 * r->out_limit);
        for (int k = 0; k < r->n_worst_out; k++)
            fprintf(stderr, "%s%s (%.1f%% of rows)", k ? ", " : "", r->worst_out[k].name,
                    100.0 * r->worst_out[k].out_share);
        fprintf(stderr, "; the model extrapolates there and may fail on such data (drift); "
                "%s\n", advice);
    }
}

int cli_cmd_predict(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *out = NULL, *labels = NULL;
    int drift_check = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--no-drift-check"))
            drift_check = 0;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--labels")) {
            if (i + 1 >= argc)
                return cli_usage_error("option %s needs a value", a);
            if (!strcmp(a, "--labels"))
                labels = argv[++i];
            else
                out = argv[++i];
        } else if (cli_argument(a, &model, &data)) {
            return 2;
        }
    }
    if (!model || !data)
        return cli_usage_error("%s", "predict needs MODEL and DATA");
    ns_err err = {0};
    ns_predict_summary sum;
    int rc = ns_predict_file(model, data, labels, out, drift_check, &sum, &err);
    if (rc) {
        ns_predict_summary_free(&sum);
        return cli_report(&err);
    }
    if (sum.has_accuracy)
        fprintf(stderr, "nnsearch: %ld rows, accuracy %.4f, balanced_acc %.4f, macro_f1 %.4f\n",
                sum.rows, sum.accuracy, sum.balanced_acc, sum.macro_f1);
    else if (sum.has_rmse)
        fprintf(stderr, "nnsearch: %ld rows, rmse %.6g\n", sum.rows, sum.rmse);
    else
        fprintf(stderr, "nnsearch: %ld rows predicted\n", sum.rows);
    print_drift(&sum, model);
    ns_predict_summary_free(&sum);
    return 0;
}
