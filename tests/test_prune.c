/* test_prune.c — the bayes stage's pruning (ns_stage_round_begin, ns_stage_should_prune) on
 * studies built by hand with the store API (no training): the median and asha rules keep a
 * trial that is behind by no more than the noise of a score on few validation rows and
 * stop a hopeless one; on many rows the rules are the plain median and quantile; the
 * verdict reads only the stored reference, so it is the same when computed again. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search/stages/driver_impl.h"
#include "search/stages/stats.h"
#include "tests/testutil.h"

#define EPOCHS 12
#define FIRST 0          /* the stage's first trial */

typedef struct study {
    char *dir;
    ns_search s;
    ns_stage_cfg st;
} study;

/* An empty study of metric m (higher is better for the accuracies) on val_n validation
 * rows, and a bayes stage of EPOCHS epochs with the given rule, pruning from epoch 2. */
static void study_init(study *x, ns_metric m, ns_task task, long val_n, int rule)
{
    memset(x, 0, sizeof *x);
    x->dir = tu_temp_dir();
    cr_assert(x->dir);
    ns_err err = {0};
    cr_assert_eq(ns_store_open(&x->s.store, x->dir, 1, &err), NS_OK, "%s", err.msg);
    x->s.metric = m;
    x->s.higher = ns_metric_higher_is_better(m);
    cr_assert_eq(ns_store_study_init(x->s.store, "prune", "text", "hash", 1, ns_metric_name(m),
                                     x->s.higher, 0, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_stage_set(x->s.store, "1:bayes", 0, NS_STAGE_RUNNING, NULL, &err), NS_OK,
                 "%s", err.msg);
    x->s.data.task = task;
    x->s.data.val.n = val_n;
    x->st.kind = NS_STAGE_BAYES;
    x->st.prune = rule;
    x->st.budget = NS_BUDGET_EPOCHS;
    x->st.epochs = EPOCHS;
    x->st.min_epochs = 2;
    x->st.reduction = 3;
    x->st.round = 1;
}

static void study_free(study *x)
{
    ns_stage_round_end(&x->s);
    ns_store_close(x->s.store);
    free(x->dir);
}

/* An epoch record with the value v in the compared metric's field. */
static ns_epoch_record rec_of(const study *x, int epoch, double v)
{
    ns_epoch_record r = {.epoch = epoch, .train_loss = 0.5, .val_loss = NAN, .val_acc = NAN,
                         .val_rmse = NAN, .val_bacc = NAN, .val_f1 = NAN, .grad_norm = 1};
    if (x->s.metric == NS_METRIC_VAL_ACC)
        r.val_acc = v;
    else if (x->s.metric == NS_METRIC_VAL_RMSE)
        r.val_rmse = v;
    else if (x->s.metric == NS_METRIC_VAL_BACC)
        r.val_bacc = v;
    else if (x->s.metric == NS_METRIC_VAL_F1)
        r.val_f1 = v;
    else
        r.val_loss = v;
    return r;
}

/* Trial n, final, with the value v at every epoch. */
static void reference(study *x, int n, double v)
{
    ns_err err = {0};
    cr_assert_eq(ns_store_trial_insert(x->s.store, n, "1:bayes", "{}", (uint64_t)n, &err), NS_OK,
                 "%s", err.msg);
    cr_assert_eq(ns_store_trial_start(x->s.store, n, &err), NS_OK, "%s", err.msg);
    for (int e = 1; e <= EPOCHS; e++) {
        ns_epoch_record r = rec_of(x, e, v);
        cr_assert_eq(ns_store_epoch_add(x->s.store, n, &r, &err), NS_OK, "%s", err.msg);
    }
    ns_trial_result res = {.seconds = 1, .epochs = EPOCHS, .val_metric = v};
    cr_assert_eq(ns_store_trial_finish(x->s.store, n, NS_TRIAL_COMPLETE, &res, &err), NS_OK, "%s",
                 err.msg);
}

/* References with values v[0..k) (trials 0..k-1), then the round that follows them. */
static void round_after(study *x, const double *v, int k)
{
    for (int i = 0; i < k; i++)
        reference(x, FIRST + i, v[i]);
    ns_err err = {0};
    cr_assert_eq(ns_stage_round_begin(&x->s, &x->st, FIRST, FIRST + k, &err), NS_OK, "%s", err.msg);
    cr_assert_not_null(x->s.prune_at);
}

static int prunes(const study *x, int epoch, double v)
{
    ns_epoch_record r = rec_of(x, epoch, v);
    return ns_stage_should_prune(&x->s, &r);
}

/* Accuracies of nine earlier trials on 60 validation rows (one row = 0.0167): median 0.70,
 * best 0.75. A trial at 0.667 (two rows behind the median) is within one standard error of
 * both (binomial: 0.059 at the median, 0.056 at the best); one at 0.40 is hopeless. */
static const double acc60[9] = {0.60, 0.633, 0.65, 0.683, 0.70, 0.717, 0.733, 0.733, 0.75};

Test(prune, median_keeps_a_trial_within_the_noise_of_few_rows)
{
    study x;
    study_init(&x, NS_METRIC_VAL_ACC, NS_TASK_CLASSIFY, 60, NS_PRUNE_MEDIAN);
    round_after(&x, acc60, 9);
    const ns_prune_ref *r = &x.s.prune_at[5 - 1];
    cr_assert_float_eq(r->bar, 0.70, 1e-12);
    cr_assert_float_eq(r->incumbent, 0.75, 1e-12);
    cr_assert_float_eq(r->bar_se, sqrt(0.70 * 0.30 / 60), 1e-12);
    cr_assert_float_eq(r->se, sqrt(0.75 * 0.25 / 60), 1e-12);
    cr_assert_lt(0.667, r->bar, "the plain median rule would stop it");
    for (int e = 2; e <= EPOCHS; e++)
        cr_assert(!prunes(&x, e, 0.667), "epoch %d: two rows behind the median is noise", e);
    cr_assert(prunes(&x, 5, 0.40), "a hopeless trial still stops");
    cr_assert(prunes(&x, 5, 0.70 - 0.06), "just beyond one standard error it stops");
    cr_assert(!prunes(&x, 1, 0.40), "not before min_epochs");
    cr_assert(!prunes(&x, 5, NAN), "no metric, no verdict");
    study_free(&x);
}

Test(prune, many_rows_leave_the_plain_median_rule)
{
    /* the same values on 100000 rows: the standard error (0.0015) is below the gaps, so
     * everything below the median stops, as without noise */
    study x;
    study_init(&x, NS_METRIC_VAL_ACC, NS_TASK_CLASSIFY, 100000, NS_PRUNE_MEDIAN);
    round_after(&x, acc60, 9);
    cr_assert(prunes(&x, 5, 0.667));
    cr_assert(prunes(&x, 5, 0.695));
    cr_assert(!prunes(&x, 5, 0.70), "at the median it goes on");
    cr_assert(!prunes(&x, 5, 0.80));
    /* no validation rows: no allowance at all */
    study y;
    study_init(&y, NS_METRIC_VAL_ACC, NS_TASK_CLASSIFY, 0, NS_PRUNE_MEDIAN);
    round_after(&y, acc60, 9);
    cr_assert_eq(y.s.prune_at[4].se, 0);
    cr_assert(prunes(&y, 5, 0.699));
    study_free(&y);
    study_free(&x);
}

Test(prune, never_within_one_standard_error_of_the_incumbent)
{
    /* a reference set whose median sits at the best (six of nine at 0.75): a trial at 0.70
     * is three rows behind both, within the 0.056 of the incumbent, and goes on */
    static const double v[9] = {0.50, 0.55, 0.60, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75};
    study x;
    study_init(&x, NS_METRIC_VAL_ACC, NS_TASK_CLASSIFY, 60, NS_PRUNE_MEDIAN);
    round_after(&x, v, 9);
    cr_assert_float_eq(x.s.prune_at[3].bar, 0.75, 1e-12);
    cr_assert(!prunes(&x, 4, 0.70));
    cr_assert(prunes(&x, 4, 0.75 - 0.06));
    study_free(&x);
}

Test(prune, asha_rungs_with_the_noise_allowance)
{
    /* rungs at 2, 6 (min_epochs 2, reduction 3); the best third of nine is 0.733 */
    study x;
    study_init(&x, NS_METRIC_VAL_ACC, NS_TASK_CLASSIFY, 60, NS_PRUNE_ASHA);
    round_after(&x, acc60, 9);
    cr_assert_float_eq(x.s.prune_at[2 - 1].bar, 0.733, 1e-12);
    cr_assert(isnan(x.s.prune_at[3 - 1].bar), "no verdict between rungs");
    cr_assert(!prunes(&x, 2, 0.70), "two rows behind the best third: noise");
    cr_assert(prunes(&x, 2, 0.60), "eight rows behind: stopped");
    cr_assert(!prunes(&x, 3, 0.40), "between rungs nothing stops");
    cr_assert(prunes(&x, 6, 0.40));
    study_free(&x);
}

Test(prune, losses_use_the_cross_entropy_standard_error)
{
    /* validation losses (lower is better) on 100 rows: median 0.60, best 0.50; the standard
     * error of a mean cross-entropy L over n rows is L / sqrt(n): 0.06 at the median */
    static const double v[7] = {0.50, 0.55, 0.58, 0.60, 0.64, 0.70, 0.90};
    study x;
    study_init(&x, NS_METRIC_VAL_LOSS, NS_TASK_CLASSIFY, 100, NS_PRUNE_MEDIAN);
    round_after(&x, v, 7);
    const ns_prune_ref *r = &x.s.prune_at[2];
    cr_assert_float_eq(r->bar, 0.60, 1e-12);
    cr_assert_float_eq(r->bar_se, ns_score_se(NS_SCORE_XENT, 0.60, 100), 1e-12);
    cr_assert_float_eq(r->bar_se, 0.06, 1e-12);
    cr_assert(!prunes(&x, 3, 0.65), "0.05 above the median: within its standard error");
    cr_assert(prunes(&x, 3, 0.70));
    cr_assert(!prunes(&x, 3, 0.55));
    study_free(&x);
}

Test(prune, rmse_uses_its_own_standard_error)
{
    static const double v[5] = {1.0, 1.1, 1.2, 1.3, 1.4};
    study x;
    study_init(&x, NS_METRIC_VAL_RMSE, NS_TASK_REGRESS, 50, NS_PRUNE_MEDIAN);
    round_after(&x, v, 5);
    /* RMSE / sqrt(2 n): 1.2 / 10 = 0.12 at the median */
    cr_assert_float_eq(x.s.prune_at[2].bar_se, 0.12, 1e-12);
    cr_assert(!prunes(&x, 3, 1.3));
    cr_assert(prunes(&x, 3, 1.5));
    study_free(&x);
}

/* Trial n, final, with the validation loss and macro-F1 given at every epoch. */
static void reference_loss_f1(study *x, int n, double loss, double f1)
{
    ns_err err = {0};
    cr_assert_eq(ns_store_trial_insert(x->s.store, n, "1:bayes", "{}", (uint64_t)n, &err), NS_OK,
                 "%s", err.msg);
    cr_assert_eq(ns_store_trial_start(x->s.store, n, &err), NS_OK, "%s", err.msg);
    for (int e = 1; e <= EPOCHS; e++) {
        ns_epoch_record r = rec_of(x, e, f1);
        r.val_loss = loss;
        cr_assert_eq(ns_store_epoch_add(x->s.store, n, &r, &err), NS_OK, "%s", err.msg);
    }
    ns_trial_result res = {.seconds = 1, .epochs = EPOCHS, .val_metric = f1};
    cr_assert_eq(ns_store_trial_finish(x->s.store, n, NS_TRIAL_COMPLETE, &res, &err), NS_OK, "%s",
                 err.msg);
}

Test(prune, an_imbalanced_study_prunes_by_its_macro_f1_not_the_loss)
{
    /* 90 + 10 validation rows. Five earlier trials predicted the majority: a low loss (0.2)
     * and macro-F1 0.47; two weighed the rare class: loss 0.6, F1 0.70 and 0.72. Pruned by
     * the loss, a trial that weighs the rare class (loss 0.6, F1 0.75) would stop (the
     * median loss 0.2 is 20 standard errors away); by the F1 it is the best so far. */
    int32_t y[100];
    for (int i = 0; i < 100; i++)
        y[i] = i < 90 ? 0 : 1;
    study x;
    study_init(&x, NS_METRIC_VAL_F1, NS_TASK_CLASSIFY, 100, NS_PRUNE_MEDIAN);
    x.s.data.val.y = y;
    x.s.data.val.n_classes = 2;
    static const double loss[7] = {0.2, 0.2, 0.2, 0.2, 0.2, 0.6, 0.6};
    static const double f1[7] = {0.47, 0.47, 0.47, 0.47, 0.47, 0.70, 0.72};
    for (int i = 0; i < 7; i++)
        reference_loss_f1(&x, FIRST + i, loss[i], f1[i]);
    ns_err err = {0};
    cr_assert_eq(ns_stage_round_begin(&x.s, &x.st, FIRST, FIRST + 7, &err), NS_OK, "%s", err.msg);
    const ns_prune_ref *r = &x.s.prune_at[3 - 1];
    cr_assert_float_eq(r->bar, 0.47, 1e-12);
    cr_assert_float_eq(r->incumbent, 0.72, 1e-12);
    /* as sure as a share on 2^2 / (1/90 + 1/10) = 36 rows, not on all 100 */
    cr_assert_float_eq(r->bar_se, ns_score_se(NS_SCORE_SHARE, 0.47, 36), 1e-12);
    cr_assert_float_eq(r->se, ns_score_se(NS_SCORE_SHARE, 0.72, 36), 1e-12);

    ns_epoch_record weighted = rec_of(&x, 3, 0.75);
    weighted.val_loss = 0.6;
    cr_assert(!ns_stage_should_prune(&x.s, &weighted), "the best F1 so far goes on");
    ns_epoch_record majority = rec_of(&x, 3, 0.47);
    majority.val_loss = 0.2;
    cr_assert(!ns_stage_should_prune(&x.s, &majority), "at the median: not worse than it");
    ns_epoch_record bad = rec_of(&x, 3, 0.20);
    bad.val_loss = 0.1;
    cr_assert(ns_stage_should_prune(&x.s, &bad), "a lower loss does not save a poor F1");
    study_free(&x);
}

Test(prune, the_reference_is_the_same_when_built_again)
{
    /* a resumed study builds the round's reference again from the store: equal bits */
    study x;
    study_init(&x, NS_METRIC_VAL_ACC, NS_TASK_CLASSIFY, 60, NS_PRUNE_MEDIAN);
    round_after(&x, acc60, 9);
    ns_prune_ref keep[EPOCHS];
    memcpy(keep, x.s.prune_at, sizeof keep);
    ns_err err = {0};
    cr_assert_eq(ns_stage_round_begin(&x.s, &x.st, FIRST, FIRST + 9, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(memcmp(keep, x.s.prune_at, sizeof keep), 0);
    study_free(&x);
}
