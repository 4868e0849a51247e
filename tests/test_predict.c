/* test_predict.c — ns_predict_file on ensemble files: the averaged probabilities and
 * outputs of hand-made members whose predictions are known in closed form (each member
 * with its own standardisation), and an ensemble of one (or of one model twice) predicting
 * byte for byte what the model file predicts; and ns_infer, the forward pass predict and
 * the search's scoring share, against a network of each member's own. The CLI around it:
 * tests/e2e_cli.sh. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/infer.h"
#include "model/modelfile.h"
#include "search/cli/predict.h"
#include "tests/testutil.h"

/* ---- helpers ---------------------------------------------------------------------- */

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    cr_assert_not_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static char *dup_str(const char *s)
{
    char *d = strdup(s);
    cr_assert_not_null(d);
    return d;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    return b;
}

static void write_text(const char *path, const char *s)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "create %s", path);
    fputs(s, f);
    cr_assert_eq(fclose(f), 0);
}

/* A network with one input "x" and no hidden layer, label column "y": classification
 * into "no"/"yes" (params W (2, 1) then b (2)) or regression (w, b). */
static void make_linear(ns_model_file *mf, ns_task task, const float *params, float mean,
                        float scale, float t_mean, float t_std)
{
    memset(mf, 0, sizeof *mf);
    int cls = task == NS_TASK_CLASSIFY;
    mf->spec = (ns_mlp_spec){.n_in = 1, .n_out = cls ? 2 : 1, .n_hidden = 0,
                             .act = NS_ACT_RELU, .init = NS_INIT_HE,
                             .loss = cls ? NS_LOSS_XENT : NS_LOSS_MSE};
    mf->task = task;
    mf->n_classes = cls ? 2 : 0;
    mf->stdz.d = 1;
    mf->stdz.mean = malloc(sizeof(float));
    mf->stdz.scale = malloc(sizeof(float));
    cr_assert(mf->stdz.mean && mf->stdz.scale);
    mf->stdz.mean[0] = mean;
    mf->stdz.scale[0] = scale;
    mf->stdz.t_mean = t_mean;
    mf->stdz.t_std = t_std;
    if (cls) {
        mf->class_names = calloc(2, sizeof(char *));
        cr_assert_not_null(mf->class_names);
        mf->class_names[0] = dup_str("no");
        mf->class_names[1] = dup_str("yes");
    }
    mf->feature_names = calloc(1, sizeof(char *));
    cr_assert_not_null(mf->feature_names);
    mf->feature_names[0] = dup_str("x");
    mf->label_name = dup_str("y");
    snprintf(mf->tool_version, sizeof mf->tool_version, "test");
    mf->n_params = cls ? 4 : 2;
    mf->params = malloc(mf->n_params * sizeof(float));
    cr_assert_not_null(mf->params);
    memcpy(mf->params, params, mf->n_params * sizeof(float));
}

static double sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }

/* Splits the CSV text into lines (in place); returns the count. */
static int split_lines(char *text, char **lines, int cap)
{
    int n = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l && n < cap;
         l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    return n;
}

/* ---- averages known in closed form ------------------------------------------------ */

/* Member A: logits (0, x - 1) (standardised with mean 1, scale 1); member B: logits
 * (0, 2x) (mean 0, scale 2). p(yes) = sigmoid of the second logit, so the ensemble's is
 * (sigmoid(x - 1) + sigmoid(2x)) / 2. At x = 0.5 member A says "no" (0.38) and B "yes"
 * (0.73): the mean (0.55) decides. Averaging logits instead, or using one member's
 * standardisation for both, or forgetting to divide, gives other numbers. */
Test(predict, ensemble_averages_class_probabilities)
{
    char *dir = tu_temp_dir();
    char *model = path_in(dir, "e.nse"), *data = path_in(dir, "x.csv"),
         *out = path_in(dir, "p.csv");
    ns_model_file m[2];
    const float wa[4] = {0, 1, 0, 0}, wb[4] = {0, 1, 0, 0};
    make_linear(&m[0], NS_TASK_CLASSIFY, wa, 1.0f, 1.0f, 0.0f, 1.0f);
    make_linear(&m[1], NS_TASK_CLASSIFY, wb, 0.0f, 2.0f, 0.0f, 1.0f);
    ns_err err = {0};
    cr_assert_eq(ns_ensemble_save(model, m, 2, &err), NS_OK, "%s", err.msg);
    write_text(data, "y,x\nyes,1\nno,0\nyes,3\nno,0.2\nno,0.5\n");

    ns_predict_summary sum;
    cr_assert_eq(ns_predict_file(model, data, NULL, out, 1, &sum, &err), NS_OK, "%s", err.msg);
    const double xs[5] = {1, 0, 3, 0.2, 0.5};
    const char *want_pred[5] = {"yes", "no", "yes", "no", "yes"};
    char *text = read_text(out);
    char *lines[16];
    cr_assert_eq(split_lines(text, lines, 16), 6);
    cr_assert_str_eq(lines[0], "row,prediction,p_no,p_yes");
    for (int i = 0; i < 5; i++) {
        long row;
        char pred[16];
        double p0, p1;
        cr_assert_eq(sscanf(lines[i + 1], "%ld,%15[^,],%lf,%lf", &row, pred, &p0, &p1), 4,
                     "line %d: %s", i + 1, lines[i + 1]);
        double want = (sigmoid(xs[i] - 1) + sigmoid(2 * xs[i])) / 2;
        cr_assert_eq(row, i);
        cr_assert(fabs(p1 - want) <= 2e-6, "x = %g: p(yes) %.9g, want %.9g", xs[i], p1, want);
        cr_assert(fabs(p0 - (1 - want)) <= 2e-6, "x = %g: p(no) %.9g, want %.9g", xs[i], p0,
                  1 - want);
        cr_assert_str_eq(pred, want_pred[i], "x = %g", xs[i]);
    }
    /* Scored against the CSV's label column: the last row's "no" is wrong. */
    cr_assert(sum.has_accuracy);
    cr_assert_float_eq(sum.accuracy, 0.8, 1e-12);
    cr_assert_eq(sum.rows, 5);
    cr_assert_eq(sum.drift_state, NS_DRIFT_NO_STATS);
    ns_predict_summary_free(&sum);
    free(text);
    for (int i = 0; i < 2; i++)
        ns_model_file_free(&m[i]);
    free(model);
    free(data);
    free(out);
    free(dir);
}

/* Member A: 2x + 10 (identity standardisation, targets 10 + 2 t'); member B: 3 (0.5 x' + 1)
 * - 4 with x' = 0.5 (x - 1). At x = 3: 16 and 0.5, mean 8.25; at x = 1: 12 and -1, mean
 * 5.5; all exact in binary. Each member maps back with its own target statistics. */
Test(predict, ensemble_averages_regression_outputs_in_target_units)
{
    char *dir = tu_temp_dir();
    char *model = path_in(dir, "e.nse"), *data = path_in(dir, "x.csv"),
         *out = path_in(dir, "p.csv");
    ns_model_file m[2];
    const float wa[2] = {1, 0}, wb[2] = {0.5f, 1};
    make_linear(&m[0], NS_TASK_REGRESS, wa, 0.0f, 1.0f, 10.0f, 2.0f);
    make_linear(&m[1], NS_TASK_REGRESS, wb, 1.0f, 0.5f, -4.0f, 3.0f);
    ns_err err = {0};
    cr_assert_eq(ns_ensemble_save(model, m, 2, &err), NS_OK, "%s", err.msg);
    write_text(data, "x,y\n3,9.25\n1,4.5\n");

    ns_predict_summary sum;
    cr_assert_eq(ns_predict_file(model, data, NULL, out, 1, &sum, &err), NS_OK, "%s", err.msg);
    char *text = read_text(out);
    cr_assert_str_eq(text, "row,prediction\n0,8.25\n1,5.5\n");
    cr_assert(sum.has_rmse);
    cr_assert_float_eq(sum.rmse, 1.0, 1e-12); /* both rows off by 1 */
    ns_predict_summary_free(&sum);
    free(text);
    for (int i = 0; i < 2; i++)
        ns_model_file_free(&m[i]);
    free(model);
    free(data);
    free(out);
    free(dir);
}

/* ---- an ensemble of one is the model ------------------------------------------------ */

static uint64_t lcg_state;
static double lcg(void) /* uniform in [0, 1) */
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg_state >> 11) / 9007199254740992.0;
}

static const char *FEAT[5] = {"f1", "f2", "f3", "f4", "f5"};
static const char *CLS[3] = {"a", "b", "c"};

/* A 5-7-3-3 GELU classifier (widths 5-4-3 when narrow) with training statistics, weights
 * and standardisation drawn from seed. */
static void make_net(ns_model_file *mf, uint64_t seed, int narrow)
{
    memset(mf, 0, sizeof *mf);
    lcg_state = seed;
    mf->spec = (ns_mlp_spec){.n_in = 5, .n_out = 3, .n_hidden = narrow ? 1 : 2,
                             .hidden = {narrow ? 4 : 7, narrow ? 0 : 3}, .act = NS_ACT_GELU,
                             .init = NS_INIT_HE, .loss = NS_LOSS_XENT};
    mf->task = NS_TASK_CLASSIFY;
    mf->n_classes = 3;
    mf->stdz.d = 5;
    mf->stdz.mean = malloc(5 * sizeof(float));
    mf->stdz.scale = malloc(5 * sizeof(float));
    float *st = malloc(20 * sizeof(float));
    cr_assert(mf->stdz.mean && mf->stdz.scale && st);
    mf->fstats = (ns_feature_stats){.d = 5, .n_rows = 500, .min = st, .max = st + 5,
                                    .mean = st + 10, .std = st + 15};
    for (int j = 0; j < 5; j++) {
        mf->stdz.mean[j] = (float)(lcg() - 0.5);
        mf->stdz.scale[j] = (float)(0.5 + lcg());
        st[j] = (float)(-1.5 - lcg());
        st[5 + j] = (float)(1.5 + lcg());
        st[10 + j] = (float)(0.2 * (lcg() - 0.5));
        st[15 + j] = (float)(0.8 + 0.4 * lcg());
    }
    mf->stdz.t_mean = 0;
    mf->stdz.t_std = 1;
    mf->class_names = calloc(3, sizeof(char *));
    mf->feature_names = calloc(5, sizeof(char *));
    cr_assert(mf->class_names && mf->feature_names);
    for (int c = 0; c < 3; c++)
        mf->class_names[c] = dup_str(CLS[c]);
    for (int j = 0; j < 5; j++)
        mf->feature_names[j] = dup_str(FEAT[j]);
    mf->label_name = dup_str("kind");
    snprintf(mf->tool_version, sizeof mf->tool_version, "test");
    mf->n_params = (size_t)ns_mlp_spec_param_count(&mf->spec);
    mf->params = malloc(mf->n_params * sizeof(float));
    cr_assert_not_null(mf->params);
    for (size_t i = 0; i < mf->n_params; i++)
        mf->params[i] = (float)(2 * lcg() - 1);
}

/* 2100 rows (three batches of predict's 1024) of the five features, columns in another
 * order than the model's, and the label column. */
static void write_data(const char *path)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    lcg_state = 99;
    fputs("f3,kind,f1,f2,f5,f4\n", f);
    for (int i = 0; i < 2100; i++) {
        double v[5];
        for (int j = 0; j < 5; j++)
            v[j] = 6 * lcg() - 3;
        fprintf(f, "%.5f,%s,%.5f,%.5f,%.5f,%.5f\n", v[2], CLS[i % 3], v[0], v[1], v[4], v[3]);
    }
    cr_assert_eq(fclose(f), 0);
}

static void assert_same_summary(const ns_predict_summary *a, const ns_predict_summary *b)
{
    cr_assert_eq(a->rows, b->rows);
    cr_assert_eq(a->has_accuracy, b->has_accuracy);
    cr_assert(a->accuracy == b->accuracy, "accuracy %.17g vs %.17g", a->accuracy, b->accuracy);
    cr_assert_eq(a->drift_state, b->drift_state);
    cr_assert_eq(a->drift_state, NS_DRIFT_DONE);
    cr_assert_eq(a->drift.out_values, b->drift.out_values);
    cr_assert_eq(a->drift.n_shifted, b->drift.n_shifted);
    for (int j = 0; j < a->drift.d; j++)
        cr_assert(a->drift.smd[j] == b->drift.smd[j], "smd[%d]", j);
}

/* Predicts model on data into out; returns the summary through sum. */
static void predict(const char *model, const char *data, const char *out, ns_predict_summary *sum)
{
    ns_err err = {0};
    cr_assert_eq(ns_predict_file(model, data, NULL, out, 1, sum, &err), NS_OK, "%s: %s", model,
                 err.msg);
}

Test(predict, ensemble_of_one_predicts_what_the_model_file_predicts)
{
    char *dir = tu_temp_dir();
    char *plain = path_in(dir, "m.nsm"), *one = path_in(dir, "one.nse"),
         *twice = path_in(dir, "twice.nse"), *data = path_in(dir, "d.csv"),
         *p_plain = path_in(dir, "p_plain.csv"), *p_one = path_in(dir, "p_one.csv"),
         *p_twice = path_in(dir, "p_twice.csv");
    ns_model_file m[2];
    make_net(&m[0], 1, 0);
    make_net(&m[1], 1, 0);
    ns_err err = {0};
    cr_assert_eq(ns_model_save(plain, &m[0], &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_ensemble_save(one, m, 1, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_ensemble_save(twice, m, 2, &err), NS_OK, "%s", err.msg);
    write_data(data);

    ns_predict_summary s_plain, s_one, s_twice;
    predict(plain, data, p_plain, &s_plain);
    predict(one, data, p_one, &s_one);
    predict(twice, data, p_twice, &s_twice); /* (p + p) / 2 is p exactly */
    char *t_plain = read_text(p_plain), *t_one = read_text(p_one), *t_twice = read_text(p_twice);
    cr_assert_gt(strlen(t_plain), 2100 * 20);
    cr_assert_str_eq(t_one, t_plain, "an ensemble of one predicts otherwise than its model");
    cr_assert_str_eq(t_twice, t_plain, "an ensemble of the model twice predicts otherwise");
    assert_same_summary(&s_plain, &s_one);
    assert_same_summary(&s_plain, &s_twice);
    ns_predict_summary_free(&s_plain);
    ns_predict_summary_free(&s_one);
    ns_predict_summary_free(&s_twice);
    free(t_plain);
    free(t_one);
    free(t_twice);
    ns_model_file_free(&m[0]);
    ns_model_file_free(&m[1]);
    free(plain), free(one), free(twice), free(data), free(p_plain), free(p_one), free(p_twice);
    free(dir);
}

/* Three members, the last of other widths (the runner rebuilds its network for it): each
 * row's probabilities are the mean of the three members' own predictions, and the drift
 * report is member 0's even though member 1's training statistics differ. */
Test(predict, ensemble_of_three_is_the_mean_of_its_members)
{
    char *dir = tu_temp_dir();
    char *ens = path_in(dir, "e.nse"), *data = path_in(dir, "d.csv"),
         *p_ens = path_in(dir, "p_e.csv");
    char *plain[3], *p_plain[3];
    ns_model_file m[3];
    ns_err err = {0};
    for (int k = 0; k < 3; k++) {
        make_net(&m[k], 10 + (uint64_t)k, k == 2);
        char name[32];
        snprintf(name, sizeof name, "m%d.nsm", k);
        plain[k] = path_in(dir, name);
        snprintf(name, sizeof name, "p%d.csv", k);
        p_plain[k] = path_in(dir, name);
        cr_assert_eq(ns_model_save(plain[k], &m[k], &err), NS_OK, "%s", err.msg);
    }
    for (int j = 0; j < 5; j++) { /* a narrow training range: many values out of it */
        m[1].fstats.min[j] = m[1].fstats.mean[j] - 0.01f;
        m[1].fstats.max[j] = m[1].fstats.mean[j] + 0.01f;
    }
    cr_assert_eq(ns_ensemble_save(ens, m, 3, &err), NS_OK, "%s", err.msg);
    write_data(data);

    ns_predict_summary s_ens, s[3];
    predict(ens, data, p_ens, &s_ens);
    char *t_ens = read_text(p_ens), *t[3];
    for (int k = 0; k < 3; k++) {
        predict(plain[k], data, p_plain[k], &s[k]);
        t[k] = read_text(p_plain[k]);
    }
    static char *le[2102], *lk[3][2102];
    cr_assert_eq(split_lines(t_ens, le, 2102), 2101);
    for (int k = 0; k < 3; k++)
        cr_assert_eq(split_lines(t[k], lk[k], 2102), 2101);
    double worst = 0;
    int decided = 0;
    for (int i = 1; i <= 2100; i++) {
        double pe[3], mean[3] = {0, 0, 0};
        long row;
        char pred[8];
        cr_assert_eq(sscanf(le[i], "%ld,%7[^,],%lf,%lf,%lf", &row, pred, &pe[0], &pe[1], &pe[2]),
                     5, "%s", le[i]);
        for (int k = 0; k < 3; k++) {
            double p[3];
            cr_assert_eq(sscanf(lk[k][i], "%*[^,],%*[^,],%lf,%lf,%lf", &p[0], &p[1], &p[2]), 3);
            for (int c = 0; c < 3; c++)
                mean[c] += p[c] / 3;
        }
        int arg = 0;
        for (int c = 0; c < 3; c++) {
            worst = fmax(worst, fabs(pe[c] - mean[c]));
            arg = mean[c] > mean[arg] ? c : arg;
        }
        /* The members' printed values carry 6 digits: judge the vote where it is clear. */
        int clear = 1;
        for (int c = 0; c < 3; c++)
            clear &= c == arg || mean[arg] - mean[c] > 1e-5;
        if (clear) {
            decided++;
            cr_assert_str_eq(pred, CLS[arg], "row %d", i - 1);
        }
    }
    cr_assert(worst <= 3e-6, "largest difference from the members' mean: %g", worst);
    cr_assert_gt(decided, 2000);
    /* Member 0 is the drift reference: its report, not member 1's. */
    cr_assert_eq(s_ens.drift_state, NS_DRIFT_DONE);
    cr_assert_eq(s_ens.drift.out_values, s[0].drift.out_values);
    for (int j = 0; j < 5; j++)
        cr_assert(s_ens.drift.smd[j] == s[0].drift.smd[j], "smd[%d]", j);
    ns_predict_summary_free(&s_ens);
    free(t_ens);
    for (int k = 0; k < 3; k++) {
        ns_predict_summary_free(&s[k]);
        free(t[k]);
        free(plain[k]);
        free(p_plain[k]);
        ns_model_file_free(&m[k]);
    }
    free(ens), free(data), free(p_ens);
    free(dir);
}

/* ---- ns_infer: one network for many members ------------------------------------------ */

/* Reference outputs of mf for n raw rows: a network of its own, the rows standardised by
 * hand, batches of 1024 as ns_infer's: logits into z, probabilities into p. */
static void fresh_outputs(const ns_model_file *mf, const float *x, long n, float *z, float *p)
{
    ns_err err = {0};
    const int d = mf->spec.n_in, K = mf->spec.n_out, EB = 1024;
    ns_backend *be = ns_backend_cpu_alloc(1, &err);
    cr_assert_not_null(be, "%s", err.msg);
    ns_mlp *m = ns_mlp_alloc(&mf->spec, be, EB, &err);
    cr_assert_not_null(m, "%s", err.msg);
    memcpy(m->params, mf->params, mf->n_params * sizeof(float));
    float *xs = malloc((size_t)n * d * sizeof *xs);
    cr_assert_not_null(xs);
    memcpy(xs, x, (size_t)n * d * sizeof *xs);
    for (long i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            xs[i * d + j] = (xs[i * d + j] - mf->stdz.mean[j]) * mf->stdz.scale[j];
    for (long i0 = 0; i0 < n; i0 += EB) {
        int B = (int)(n - i0 < EB ? n - i0 : EB);
        const float *out = ns_mlp_forward(m, xs + i0 * d, B, 0, 0);
        memcpy(z + i0 * K, out, (size_t)B * K * sizeof *z);
        ns_op_softmax(be, p + i0 * K, out, B, K);
    }
    free(xs);
    ns_mlp_free(m);
    ns_backend_free(be);
}

Test(predict, infer_gives_each_member_what_a_network_of_its_own_gives)
{
    enum { N = 2100, D = 5, K = 3 };
    ns_model_file m[3];
    for (int k = 0; k < 3; k++)
        make_net(&m[k], 20 + (uint64_t)k, k == 1); /* 0 and 2 share a shape, 1 is narrower */
    static float x[N * D], ref_z[3][N * K], ref_p[3][N * K], out[N * K];
    lcg_state = 7;
    for (int i = 0; i < N * D; i++)
        x[i] = (float)(4 * lcg() - 2);
    for (int k = 0; k < 3; k++)
        fresh_outputs(&m[k], x, N, ref_z[k], ref_p[k]);
    /* Swaps in every order the callers use: a new shape, the same shape, back again. */
    static const int order[] = {0, 1, 2, 0, 2, 1};
    ns_infer r;
    ns_err err = {0};
    cr_assert_eq(ns_infer_open(&r, 1024, &err), NS_OK, "%s", err.msg);
    for (size_t s = 0; s < sizeof order / sizeof *order; s++) {
        int k = order[s];
        cr_assert_eq(ns_infer_run(&r, &m[k], x, N, 1, NS_INFER_RAW, out, &err), NS_OK, "%s",
                     err.msg);
        cr_assert_eq(memcmp(out, ref_z[k], sizeof out), 0, "member %d logits, step %zu", k, s);
        cr_assert_eq(ns_infer_run(&r, &m[k], x, N, 1, NS_INFER_PROBS, out, &err), NS_OK);
        cr_assert_eq(memcmp(out, ref_p[k], sizeof out), 0, "member %d probabilities", k);
    }
    /* Rows already in the model's units: no second standardisation. */
    static float xs[N * D];
    memcpy(xs, x, sizeof xs);
    ns_standardizer_apply(&m[2].stdz, xs, N);
    cr_assert_eq(ns_infer_run(&r, &m[2], xs, N, 0, NS_INFER_RAW, out, &err), NS_OK);
    cr_assert_eq(memcmp(out, ref_z[2], sizeof out), 0);
    /* A model whose parameter count is not its architecture's is refused, and the next
     * member still loads. */
    m[0].n_params--;
    cr_assert_eq(ns_infer_load(&r, &m[0], &err), NS_EINPUT);
    m[0].n_params++;
    cr_assert_eq(ns_infer_run(&r, &m[1], x, N, 1, NS_INFER_RAW, out, &err), NS_OK);
    cr_assert_eq(memcmp(out, ref_z[1], sizeof out), 0);
    ns_infer_close(&r);
    for (int k = 0; k < 3; k++)
        ns_model_file_free(&m[k]);
}
