/* test_select.c — the select stage's eligibility counts (ns_select_decide) on a study built
 * by hand with the store API (no training, no model files; each trial's config file, which
 * select reads for the parameter count): every trial but the range tests considered, each
 * reason a trial could not win counted, the winner unchanged by them. The choice itself
 * (near-ties, reasons) is checked end to end by tests/e2e_bayes.sh. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "search/stages/bayes.h"
#include "search/study/json.h"
#include "tests/testutil.h"

#define HEALTHY "[]" /* judged, whatever the flags say */

typedef struct row {
    const char *stage;
    ns_trial_state state;
    double metric;
    const char *health;    /* NULL: not judged */
    int64_t flags;
} row;

/* A study of the rows t[0..n) by hand, with a config file per trial, in a new directory
 * (returned; the caller frees it and closes s->store). */
static char *build_study(ns_search *s, const row *t, int n)
{
    char *dir = tu_temp_dir();
    cr_assert(dir);
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    ns_err err = {0};
    cr_assert_eq(ns_store_open(&s->store, dir, 1, &err), NS_OK, "%s", err.msg);
    s->metric = NS_METRIC_VAL_ACC;
    s->higher = 1;
    s->data.task = NS_TASK_CLASSIFY;
    s->data.val.n = 100;
    cr_assert_eq(ns_store_study_init(s->store, "sel", "text", "hash", 1, "val_acc", 1, 0, &err), NS_OK,
                 "%s", err.msg);
    const char *stages[] = {"1:lr_range", "2:random", "3:bayes", "4:compare", "5:select"};
    static const ns_stage_kind kinds[] = {NS_STAGE_LR_RANGE, NS_STAGE_RANDOM, NS_STAGE_BAYES,
                                          NS_STAGE_COMPARE, NS_STAGE_SELECT};
    s->base.search.n_stages = 5;
    for (int i = 0; i < 5; i++)
        s->base.search.stages[i].kind = kinds[i];
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ns_store_stage_set(s->store, stages[i], i, NS_STAGE_COMPLETE, NULL, &err), NS_OK,
                     "%s", err.msg);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(ns_store_trial_insert(s->store, i, t[i].stage, "{}", (uint64_t)i, &err), NS_OK,
                     "%s", err.msg);
        cr_assert_eq(ns_store_trial_start(s->store, i, &err), NS_OK, "%s", err.msg);
        ns_trial_result r = {.seconds = 1, .epochs = 3, .val_metric = t[i].metric,
                             .health = t[i].health, .health_flags = t[i].flags};
        cr_assert_eq(ns_store_trial_finish(s->store, i, t[i].state, &r, &err), NS_OK, "%s", err.msg);
        char path[600];
        snprintf(path, sizeof path, "%s/trials", dir);
        mkdir(path, 0755);
        snprintf(path, sizeof path, "%s/trials/%d", dir, i);
        cr_assert_eq(mkdir(path, 0755), 0);
        snprintf(path, sizeof path, "%s/trials/%d/config.yaml", dir, i);
        FILE *f = fopen(path, "w");
        cr_assert(f);
        fprintf(f, "data: {train: %s/configs/data/tiny.csv}\nmodel: {hidden: [8]}\n", NS_SOURCE_DIR);
        cr_assert_eq(fclose(f), 0);
    }
    return dir;
}

Test(select, counts_why_trials_were_not_eligible)
{
    static const row t[] = {
        {"1:lr_range", NS_TRIAL_COMPLETE, NAN, NULL, 0},              /* a sweep: not counted */
        {"2:random", NS_TRIAL_COMPLETE, 0.80, HEALTHY, 0},            /* the winner */
        {"2:random", NS_TRIAL_COMPLETE, 0.85, HEALTHY, NS_HEALTH_OVERFITTING | NS_HEALTH_GEN_GAP},
        {"2:random", NS_TRIAL_COMPLETE, 0.70, HEALTHY, NS_HEALTH_DIVERGED},
        {"2:random", NS_TRIAL_DIVERGED, NAN, HEALTHY, NS_HEALTH_DIVERGED},
        {"3:bayes", NS_TRIAL_PRUNED, 0.50, HEALTHY, 0},
        {"3:bayes", NS_TRIAL_PRUNED, 0.55, HEALTHY, 0},
        {"3:bayes", NS_TRIAL_FAILED, NAN, NULL, 0},
        {"3:bayes", NS_TRIAL_COMPLETE, 0.75, NULL, 0},                /* not judged */
        {"3:bayes", NS_TRIAL_COMPLETE, NAN, HEALTHY, 0},              /* no metric */
        {"3:bayes", NS_TRIAL_INTERRUPTED, NAN, NULL, 0},
        /* a warning alone does not disqualify; not_converged does */
        {"3:bayes", NS_TRIAL_COMPLETE, 0.90, HEALTHY, NS_HEALTH_NOT_CONVERGED | NS_HEALTH_BUDGET_LIMITED},
        {"3:bayes", NS_TRIAL_COMPLETE, 0.78, HEALTHY, NS_HEALTH_BUDGET_LIMITED},
        /* a comparison trial of a few epochs scored higher: evidence, not a candidate */
        {"4:compare", NS_TRIAL_COMPLETE, 0.95, HEALTHY, 0},
    };
    const int n = (int)(sizeof t / sizeof *t);
    ns_search s;
    char *dir = build_study(&s, t, n);
    ns_err err = {0};
    ns_stage_cfg st = {.kind = NS_STAGE_SELECT, .top = 2};
    char buf[4096];
    ns_jbuf j = {buf, sizeof buf, 0};
    cr_assert_eq(ns_select_decide(&s, &st, &j, &err), NS_OK, "%s", err.msg);
    cr_assert_lt(ns_jbuf_finish(&j), sizeof buf);
    cr_assert(strncmp(buf, "\"winner\":1,", 11) == 0, "%s", buf);
    cr_assert(strstr(buf, ",\"eligible\":2,"), "%s", buf); /* trials 1 and the last */
    cr_assert(strstr(buf, ",\"considered\":13,\"ineligible\":{\"pruned\":2,\"diverged\":2,\"failed\":1,"
                          "\"oscillating\":0,\"loss_spikes\":0,\"overfitting\":1,\"generalisation_gap\":1,"
                          "\"not_converged\":1,\"exploding_gradients\":0,\"not_run\":1,\"no_metric\":1,"
                          "\"not_judged\":1,\"short_stage\":1}"), "%s", buf);
    cr_assert(!strstr(buf, "\"advice\""), "%s", buf); /* 6 candidates: too few to judge */
    /* the decision is one JSON object once wrapped, as the driver stores it */
    char obj[4200];
    snprintf(obj, sizeof obj, "{%s}", buf);
    cr_assert(ns_json_valid(obj), "%s", obj);

    /* A candidate's config that cannot be read is an error, not a model of 0 parameters
     * (which won the tie-break on size; found by scripts/faultwalk as out of memory) */
    char path[600];
    snprintf(path, sizeof path, "%s/trials/1/config.yaml", dir);
    cr_assert_eq(unlink(path), 0);
    j.len = 0;
    cr_assert_eq(ns_select_decide(&s, &st, &j, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "trials/1/config.yaml"), "%s", err.msg);
    ns_store_close(s.store);
    free(dir);
}

/* select's decision on a study of one sweep and 12 complete bayes trials: `healthy` of them
 * without findings, the others with flags_a (the first n_a of them) or flags_b. */
static void decide_12(int healthy, int n_a, int64_t flags_a, int64_t flags_b, char *buf, size_t cap)
{
    row t[13] = {{"1:lr_range", NS_TRIAL_COMPLETE, NAN, NULL, 0}};
    for (int i = 1; i < 13; i++) {
        int k = i - 1 - healthy;
        t[i] = (row){"3:bayes", NS_TRIAL_COMPLETE, 0.5 + 0.01 * i, HEALTHY,
                     k < 0 ? 0 : k < n_a ? flags_a : flags_b};
    }
    ns_search s;
    char *dir = build_study(&s, t, 13);
    s.data.train.n = 400; /* with val.n: 500 rows */
    s.data.train.d = 700;
    s.base.train.lr = 1e-3;
    s.base.train.batch_size = 32;
    ns_dim d = {.name = "model.dropout", .kind = NS_DIM_UNIFORM, .lo = 0, .hi = 0.5};
    cr_assert_eq(ns_space_add(&s.base.space, &d), NS_OK);
    ns_err err = {0};
    ns_stage_cfg st = {.kind = NS_STAGE_SELECT, .top = 2};
    ns_jbuf j = {buf, cap, 0};
    cr_assert_eq(ns_select_decide(&s, &st, &j, &err), NS_OK, "%s", err.msg);
    cr_assert_lt(ns_jbuf_finish(&j), cap);
    char obj[4200];
    snprintf(obj, sizeof obj, "{%s}", buf);
    cr_assert(ns_json_valid(obj), "%s", obj);
    ns_space_free(&s.base.space);
    ns_store_close(s.store);
    free(dir);
}

/* Fewer than one candidate in ten eligible: the finding behind most of the others names the
 * keys to change, with the space's bounds; one in six eligible is no reason for advice. */
Test(select, advises_on_the_space_when_almost_nothing_is_eligible)
{
    char buf[4096], advice[640];
    decide_12(1, 10, NS_HEALTH_OVERFITTING | NS_HEALTH_OSCILLATING, NS_HEALTH_GEN_GAP, buf, sizeof buf);
    cr_assert(strstr(buf, "\"eligible\":1,"), "%s", buf);
    char obj[4200];
    snprintf(obj, sizeof obj, "{%s}", buf);
    cr_assert(ns_json_get_str(obj, "advice", advice, sizeof advice), "%s", buf);
    cr_assert(strstr(advice, "11 of 12 complete trials overfit") &&
              strstr(advice, "only 1 is eligible, so select chose among few") &&
              strstr(advice, "500 rows of 700 features") &&
              strstr(advice, "model.dropout (searched up to 0.5) and train.weight_decay (fixed at 0: search it)"),
              "%s", advice);

    /* oscillation behind more of them than overfitting: the LR and the batch */
    decide_12(1, 8, NS_HEALTH_LOSS_SPIKES, NS_HEALTH_OVERFITTING, buf, sizeof buf);
    snprintf(obj, sizeof obj, "{%s}", buf);
    cr_assert(ns_json_get_str(obj, "advice", advice, sizeof advice), "%s", buf);
    cr_assert(strstr(advice, "8 of 12 complete trials oscillate or spike") &&
              strstr(advice, "train.lr (fixed at 0.001: search it)") &&
              strstr(advice, "train.batch_size (fixed at 32: search it)"),
              "%s", advice);

    /* not converging: the LR's lower end or more epochs */
    decide_12(0, 12, NS_HEALTH_NOT_CONVERGED, 0, buf, sizeof buf);
    snprintf(obj, sizeof obj, "{%s}", buf);
    cr_assert(ns_json_get_str(obj, "advice", advice, sizeof advice), "%s", buf);
    cr_assert(strstr(advice, "12 of 12 complete trials did not converge") &&
              strstr(advice, "none is eligible, so select chose among flagged trials"),
              "%s", advice);

    /* two of twelve eligible: a search that found healthy trials needs no advice */
    decide_12(2, 10, NS_HEALTH_OVERFITTING, 0, buf, sizeof buf);
    cr_assert(!strstr(buf, "\"advice\""), "%s", buf);
}
