/* test_progress.c — the terminal side of a search (search/cli/progress.h): durations, the
 * one-line stage summaries of each decision kind, and the plain (not a terminal) lines a
 * renderer writes for a sequence of events. The live line is checked in a pseudo-terminal
 * by tests/e2e_progress.sh. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search/cli/progress.h"

Test(progress, durations)
{
    char b[32];
    ns_fmt_duration(b, sizeof b, 0.4);
    cr_assert_str_eq(b, "0s");
    ns_fmt_duration(b, sizeof b, 59.4);
    cr_assert_str_eq(b, "59s");
    ns_fmt_duration(b, sizeof b, 185);
    cr_assert_str_eq(b, "3m05s");
    ns_fmt_duration(b, sizeof b, 7440);
    cr_assert_str_eq(b, "2h04m");
    ns_fmt_duration(b, sizeof b, NAN);
    cr_assert_str_eq(b, "--");
    ns_fmt_duration(b, sizeof b, -1);
    cr_assert_str_eq(b, "--");
}

Test(progress, stage_summaries)
{
    char b[600];
    ns_stage_summary("lr_range",
                     "{\"rule\":\"valley\",\"seeds\":2,\"sgd_lr\":0.0226951,\"sgd_lo\":0.00647163,"
                     "\"sgd_hi\":0.0795885,\"adaptive_lr\":0.0310117,\"adaptive_lo\":0.00884317,"
                     "\"adaptive_hi\":0.108754}", "val_acc", b, sizeof b);
    cr_assert_str_eq(b, "LR range test: sgd LR 0.0227 (bounds 0.00647..0.0796), adaptive LR 0.031 "
                        "(bounds 0.00884..0.109)");
    ns_stage_summary("batch_sweep", "{\"batch_size\":64,\"ref_batch\":32,\"scaling\":\"sqrt\","
                     "\"tolerance\":0.02,\"noise_scale\":17.8805,\"sizes\":[]}", "val_acc", b, sizeof b);
    cr_assert_str_eq(b, "batch size 64 (LRs measured at 32, LR scaling sqrt); gradient noise scale 17.9");
    ns_stage_summary("compare", "{\"leader\":\"adam/cosine\",\"shortlist\":[\"adam/cosine\","
                     "\"sgd/constant\"],\"separated\":false}", "val_acc", b, sizeof b);
    cr_assert_str_eq(b, "short-list adam/cosine, sgd/constant (not separated at p < 0.05: searched on "
                        "as choices)");
    ns_stage_summary("compare", "{\"leader\":\"adam/cosine\",\"shortlist\":[\"adam/cosine\"],"
                     "\"separated\":true}", "val_acc", b, sizeof b);
    cr_assert_str_eq(b, "adam/cosine leads, separated from the rest (Welch p < 0.05)");
    ns_stage_summary("bayes", "{\"trials\":6,\"complete\":4,\"pruned\":1,\"diverged\":0,\"failed\":0,"
                     "\"not_run\":1,\"best_trial\":8,\"best_val_acc\":0.928333}", "val_acc", b, sizeof b);
    cr_assert_str_eq(b, "best trial 8, val_acc 0.9283; 6 trials (4 complete, 1 pruned, 1 not run)");
    ns_stage_summary("random", "{\"trials\":2,\"complete\":0,\"pruned\":0,\"diverged\":0,\"failed\":2,"
                     "\"not_run\":0,\"best_trial\":-1,\"best_val_loss\":null}", "val_loss", b, sizeof b);
    cr_assert_str_eq(b, "no complete trial; 2 trials (2 failed)");
    ns_stage_summary("select", "{\"winner\":2,\"stage\":\"1:random\",\"val_acc\":0.93333,"
                     "\"standard_error\":0.0102,\"params\":100,\"eligible\":6,\"fallback\":false,"
                     "\"test_loss\":0.3,\"test_acc\":0.918,\"final\":\"ensemble\",\"considered\":14}",
                     "val_acc", b, sizeof b);
    cr_assert_str_eq(b, "winner trial 2 (stage 1:random), val_acc 0.9333 +- 0.0102, test_acc 0.9180; "
                        "final model: fold ensemble; 6 eligible of 14");
    ns_stage_summary("select", "{\"winner\":null,\"reason\":\"no complete trial with a metric\"}",
                     "val_acc", b, sizeof b);
    cr_assert_str_eq(b, "no winner: no complete trial with a metric");
    ns_stage_summary("final", "{\"trial\":16,\"state\":\"complete\",\"val_metric\":0.933333,"
                     "\"test_acc\":null}", "val_acc", b, sizeof b);
    cr_assert_str_eq(b, "trained trial 16 (complete), val_acc 0.9333");
    ns_stage_summary("select", "not json", "val_acc", b, sizeof b);
    cr_assert_str_eq(b, "no decision");
    /* a long decision is cut, never overflows */
    char small[16];
    ns_stage_summary("bayes", "{\"trials\":6,\"best_trial\":8,\"best_val_acc\":0.9}", "val_acc", small,
                     sizeof small);
    cr_assert_eq(strlen(small), sizeof small - 1);
    cr_assert_str_eq(small + sizeof small - 4, "...");
}

/* A renderer on a file (not a terminal): timestamped lines, no escape sequences, the
 * stage summary, and trial lines with done/planned, the ETA from the measured trial times
 * and the best so far. */
Test(progress, plain_lines)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ns_term *t = ns_term_alloc(f);
    cr_assert(t);
    ns_progress p = {.kind = NS_PROGRESS_STUDY, .text = "study s in d: 1 stage(s), 4 trials",
                     .stage_index = -1, .n_stages = 1, .total = 4, .parallel = 2,
                     .metric = "val_acc", .higher = 1, .best_trial = -1, .best = NAN,
                     .stage_time_left = INFINITY, .budget_left = INFINITY, .trial = -1};
    ns_term_event(t, &p);
    p.kind = NS_PROGRESS_STAGE_BEGIN;
    p.stage = "1:random";
    p.stage_kind = "random";
    p.stage_index = 0;
    p.stage_planned = 4;
    ns_term_event(t, &p);
    for (int i = 0; i < 4; i++) {
        p.kind = NS_PROGRESS_TRIAL_END;
        p.trial = i;
        p.state = "complete";
        p.value = 0.5 + 0.1 * i; /* each one a new best: every line is printed */
        p.best = p.value;
        p.best_trial = i;
        p.epochs = 3;
        p.seconds = 10;
        p.health = "ok";
        p.done = p.stage_done = i + 1;
        ns_term_event(t, &p);
    }
    p.kind = NS_PROGRESS_STAGE_END;
    p.decision = "{\"trials\":4,\"complete\":4,\"best_trial\":3,\"best_val_acc\":0.8}";
    ns_term_event(t, &p);
    ns_term_free(t);
    fclose(f);
    cr_assert(!strchr(buf, '\r') && !strchr(buf, '\033'), "%s", buf);
    int lines = 0;
    for (char *l = buf; *l; l = strchr(l, '\n') + 1) {
        int y, mo, d, h, mi, s;
        cr_assert_eq(sscanf(l, "%4d-%2d-%2d %2d:%2d:%2d ", &y, &mo, &d, &h, &mi, &s), 6, "%s", l);
        lines++;
    }
    cr_assert_eq(lines, 7, "%s", buf);
    cr_assert(strstr(buf, " nnsearch: study s in d: 1 stage(s), 4 trials\n"), "%s", buf);
    cr_assert(strstr(buf, " stage 1/1 random: 4 trials\n"), "%s", buf);
    /* after the first trial: 3 left at 10 s each, 2 at a time */
    cr_assert(strstr(buf, " trial 0 complete: val_acc 0.5000 (3 epochs, 10.0s, ok) | 1/4 done, 0 running "
                          "| ETA 15s | best val_acc 0.5000 (trial 0)\n"), "%s", buf);
    cr_assert(strstr(buf, " trial 3 complete: val_acc 0.8000 (3 epochs, 10.0s, ok) | 4/4 done, 0 running "
                          "| ETA -- | best val_acc 0.8000 (trial 3)\n"), "%s", buf);
    cr_assert(strstr(buf, " stage 1:random done: best trial 3, val_acc 0.8; 4 trials (4 complete)\n"),
              "%s", buf);
    free(buf);
}
