/* test_health.c — the trial detectors (engine/train/health.c) on synthetic epoch records: each
 * detector provoked on purpose and a healthy run that must not fire it; swings, rises and
 * gaps within the noise of a loss on few rows, and beyond it; edge cases and the JSON
 * written into the study's trial.health column. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "engine/train/health.h"

#define MAXR 64

static ns_epoch_record R[MAXR];
static ns_finding F[NS_HEALTH_MAX_FINDINGS];

/* A healthy run that converges within its budget: loss 0.3 + 2 exp(-10 i / n), val
 * following it, layers with similar gradient norms that shrink as the loss does. */
static void healthy(int n, int groups)
{
    memset(R, 0, sizeof R);
    double tau = n / 10.0;
    for (int i = 0; i < n; i++) {
        ns_epoch_record *r = &R[i];
        r->epoch = i + 1;
        r->step = 100L * (i + 1);
        r->train_loss = 0.3 + 2.0 * exp(-i / tau);
        r->val_loss = 1.1 * r->train_loss + 0.02;
        r->val_acc = 0.9;
        r->val_rmse = NAN;
        r->lr = 1e-3;
        r->grad_norm = 0.5 + exp(-i / tau);
        r->n_groups = groups;
        for (int j = 0; j < groups; j++)
            r->group_grad_norm[j] = r->grad_norm * (0.5 + 0.25 * j);
    }
}

static int check(int n, int selected)
{
    return ns_health_check(NULL, R, n, selected, F, NS_HEALTH_MAX_FINDINGS);
}

static const ns_finding *find(int count, const char *code)
{
    for (int i = 0; i < count && i < NS_HEALTH_MAX_FINDINGS; i++)
        if (strcmp(F[i].code, code) == 0)
            return &F[i];
    return NULL;
}

static void expect_only(int count, const char *code, int mistake)
{
    cr_assert_eq(count, 1, "expected only %s, got %d findings (first: %s: %s)", code, count,
                 count > 0 ? F[0].code : "-", count > 0 ? F[0].message : "-");
    cr_assert_str_eq(F[0].code, code);
    cr_assert_eq(F[0].mistake, mistake);
    cr_assert(strlen(F[0].message) > 0 && strlen(F[0].fix) > 0);
    cr_assert_null(strchr(F[0].message, '\n'));
}

Test(health, defaults_documented)
{
    ns_health_spec s;
    ns_health_spec_default(&s);
    cr_assert_eq(s.div_factor, 4.0);
    cr_assert_eq(s.patience, 5);
    cr_assert_eq(s.min_epochs, 6);
    cr_assert_eq(s.tail_share, 0.2);
    cr_assert_eq(s.grad_ratio_lo, 1e-3);
    cr_assert_eq(s.grad_ratio_hi, 1e3);
    cr_assert_eq(s.noise_k, 2.0);
    cr_assert_eq(s.val_rel_se, 0.0, "noise unknown by default: the rules as without it");
    cr_assert_eq(s.train_rel_se, 0.0);
    /* NULL spec means the defaults */
    healthy(30, 3);
    R[29].train_loss = NAN;
    ns_finding a[NS_HEALTH_MAX_FINDINGS];
    int na = ns_health_check(&s, R, 30, 0, a, NS_HEALTH_MAX_FINDINGS);
    int nb = check(30, 0);
    cr_assert_eq(na, nb);
    cr_assert_str_eq(a[0].code, F[0].code);
}

Test(health, healthy_runs_trigger_nothing)
{
    for (int n = 1; n <= 40; n++) {
        healthy(n, 3);
        int c = check(n, 0);
        cr_assert_eq(c, 0, "n=%d: %s: %s", n, c ? F[0].code : "", c ? F[0].message : "");
    }
}

Test(health, healthy_with_mild_noise_triggers_nothing)
{
    healthy(40, 4);
    for (int i = 0; i < 40; i++) {
        double e = (i % 3 == 0 ? 0.02 : i % 3 == 1 ? -0.015 : 0.005);
        R[i].train_loss *= 1 + e;
        R[i].val_loss *= 1 - e;
    }
    cr_assert_eq(check(40, 0), 0, "%s: %s", F[0].code, F[0].message);
}

Test(health, healthy_without_validation)
{
    healthy(30, 3);
    for (int i = 0; i < 30; i++)
        R[i].val_loss = NAN;
    cr_assert_eq(check(30, 0), 0);
    cr_assert_eq(check(30, 12), 0);
}

Test(health, single_layer_has_no_ratio_check)
{
    healthy(30, 1);
    cr_assert_eq(check(30, 0), 0);
    /* no per-layer norms at all */
    healthy(30, 0);
    cr_assert_eq(check(30, 0), 0);
}

Test(health, empty_and_tiny_inputs)
{
    cr_assert_eq(ns_health_check(NULL, NULL, 0, 0, F, NS_HEALTH_MAX_FINDINGS), 0);
    cr_assert_eq(ns_health_check(NULL, NULL, 5, 0, F, NS_HEALTH_MAX_FINDINGS), 0);
    healthy(2, 3);
    cr_assert_eq(ns_health_check(NULL, R, 0, 0, F, NS_HEALTH_MAX_FINDINGS), 0);
    cr_assert_eq(ns_health_check(NULL, R, -3, 0, F, NS_HEALTH_MAX_FINDINGS), 0);
    cr_assert_eq(check(1, 0), 0);
    cr_assert_eq(check(2, 0), 0);
    cr_assert_eq(check(2, 1), 0);
    /* a flat two-epoch run is too short to judge convergence */
    R[1].train_loss = R[0].train_loss;
    cr_assert_eq(check(2, 0), 0);
}

Test(health, nan_loss_diverges_at_any_length)
{
    healthy(1, 3);
    R[0].train_loss = NAN;
    expect_only(check(1, 0), "diverged", 2);
    cr_assert(strstr(F[0].message, "epoch 1") != NULL, "%s", F[0].message);

    healthy(2, 3);
    R[1].train_loss = INFINITY;
    expect_only(check(2, 0), "diverged", 2);
    cr_assert(strstr(F[0].message, "epoch 2") != NULL, "%s", F[0].message);
}

Test(health, nan_loss_mid_run_skips_trends)
{
    /* a blown-up curve would otherwise look oscillating, not converged, overfitting */
    healthy(30, 3);
    for (int i = 20; i < 30; i++) {
        R[i].train_loss = NAN;
        R[i].val_loss = NAN;
    }
    expect_only(check(30, 0), "diverged", 2);
    cr_assert(strstr(F[0].message, "epoch 21") != NULL, "%s", F[0].message);
}

Test(health, nonfinite_gradient_or_flag_diverges)
{
    healthy(10, 3);
    R[6].grad_norm = NAN;
    expect_only(check(10, 0), "diverged", 2);

    healthy(10, 3);
    R[6].group_grad_norm[1] = INFINITY;
    expect_only(check(10, 0), "diverged", 2);

    healthy(10, 3);
    R[9].diverged = 1;
    expect_only(check(10, 0), "diverged", 2);
}

Test(health, smoothed_loss_4x_best_diverges)
{
    /* loss falls from 2.3 to 0.3, then climbs past where it started: finite but diverged */
    healthy(20, 3);
    for (int i = 12; i < 20; i++)
        R[i].train_loss = 6.0;
    int c = check(20, 0);
    cr_assert_geq(c, 1);
    cr_assert_str_eq(F[0].code, "diverged");
    cr_assert(strstr(F[0].message, "its best") != NULL, "%s", F[0].message);
    for (int i = 0; i < c; i++)
        cr_assert_str_neq(F[i].code, "oscillating");

    /* a 3x rise of the raw loss (smoothed below 4x) is not divergence */
    healthy(20, 3);
    R[19].train_loss = 3 * R[18].train_loss;
    cr_assert_null(find(check(20, 0), "diverged"));

    /* a loss near zero that grows 10x but stays below the first epoch's has not diverged
     * (the spike and oscillation detectors judge that kind of instability) */
    healthy(20, 3);
    for (int i = 10; i < 20; i++)
        R[i].train_loss = i < 15 ? 0.01 : 0.1;
    cr_assert_null(find(check(20, 0), "diverged"));
}

Test(health, trainer_blowup_reason_in_message)
{
    healthy(10, 3);
    R[9].diverged = NS_DIV_BLOWUP;
    expect_only(check(10, 0), "diverged", 2);
    cr_assert(strstr(F[0].message, "per-step") != NULL, "%s", F[0].message);
}

Test(health, oscillation)
{
    healthy(30, 3);
    for (int i = 15; i < 30; i++)
        R[i].train_loss = i % 2 ? 0.5 : 0.8;
    int c = check(30, 0);
    const ns_finding *f = find(c, "oscillating");
    cr_assert_not_null(f);
    cr_assert_eq(f->mistake, 2);
    cr_assert_null(find(c, "diverged"));

    /* the same swings confined to the first half are warm-up, not oscillation */
    healthy(30, 3);
    for (int i = 0; i < 10; i++)
        R[i].train_loss = i % 2 ? 1.5 : 2.3;
    cr_assert_null(find(check(30, 0), "oscillating"));
}

Test(health, loss_spikes)
{
    healthy(30, 3);
    R[24].train_loss = 3 * R[23].train_loss;
    int c = check(30, 0);
    const ns_finding *f = find(c, "loss_spikes");
    cr_assert_not_null(f);
    cr_assert_eq(f->mistake, 2);
    cr_assert(strstr(f->message, "epoch 25") != NULL, "%s", f->message);
    cr_assert(strstr(f->message, "1 train-loss spike ") != NULL, "%s", f->message);
    expect_only(c, "loss_spikes", 2); /* an isolated spike is not also "oscillating" */

    /* a 1.5x bump stays under the default factor 2 */
    healthy(30, 3);
    R[24].train_loss = 1.5 * R[23].train_loss;
    cr_assert_null(find(check(30, 0), "loss_spikes"));

    /* a spike in the first half is not counted */
    healthy(30, 3);
    R[6].train_loss = 3 * R[5].train_loss;
    cr_assert_null(find(check(30, 0), "loss_spikes"));
}

Test(health, overfitting)
{
    /* train keeps falling; val bottoms out at epoch 10 and climbs */
    healthy(30, 3);
    for (int i = 0; i < 30; i++)
        R[i].val_loss = 0.6 + 0.004 * (i - 9) * (i - 9);
    int c = check(30, 10);
    const ns_finding *f = find(c, "overfitting");
    cr_assert_not_null(f);
    cr_assert_eq(f->mistake, 3);
    cr_assert(strstr(f->message, "(epoch 10)") != NULL, "%s", f->message);
    cr_assert_null(find(c, "diverged"));
}

Test(health, no_overfitting_when_val_plateaus_or_train_rises)
{
    /* val stalls within noise of its best: not a rise */
    healthy(30, 3);
    for (int i = 10; i < 30; i++)
        R[i].val_loss = R[9].val_loss * (i % 2 ? 1.03 : 1.0 + 1e-3);
    cr_assert_null(find(check(30, 0), "overfitting"));

    /* one bad val epoch after the best is not a sustained rise */
    healthy(30, 3);
    for (int i = 10; i < 30; i++)
        R[i].val_loss = R[9].val_loss * 1.01;
    R[20].val_loss = R[9].val_loss * 1.2;
    cr_assert_null(find(check(30, 0), "overfitting"));

    /* val and train both rising is instability, not overfitting */
    healthy(30, 3);
    for (int i = 10; i < 30; i++) {
        R[i].train_loss = R[9].train_loss * (1 + 0.01 * (i - 9));
        R[i].val_loss = R[9].val_loss * (1 + 0.02 * (i - 9));
    }
    cr_assert_null(find(check(30, 0), "overfitting"));
}

Test(health, generalisation_gap_at_selected_epoch)
{
    /* train falls to ~0.1, val stays near 0.5 from epoch 20 on; select early vs late */
    healthy(30, 3);
    for (int i = 0; i < 30; i++) {
        R[i].train_loss = 0.1 + 2.0 * exp(-i / 4.0);
        R[i].val_loss = i < 20 ? R[i].train_loss * 1.1 + 0.02 : 0.5 - 0.0005 * (i - 20);
    }
    int c = check(30, 30);
    const ns_finding *f = find(c, "generalisation_gap");
    cr_assert_not_null(f);
    cr_assert_eq(f->mistake, 3);
    cr_assert(strstr(f->message, "epoch 30") != NULL, "%s", f->message);
    /* selected epoch 10: small gap there; 0 means the last record */
    cr_assert_null(find(check(30, 10), "generalisation_gap"));
    cr_assert_not_null(find(check(30, 0), "generalisation_gap"));
    cr_assert_not_null(find(check(30, 999), "generalisation_gap"));
    /* missing val at the selected epoch: nothing to judge */
    R[29].val_loss = NAN;
    cr_assert_null(find(check(30, 30), "generalisation_gap"));
}

Test(health, tiny_losses_need_an_absolute_gap)
{
    /* a memorising run (train 1e-4, val 1e-3) has a 9x ratio but no real gap */
    healthy(30, 3);
    for (int i = 0; i < 30; i++) {
        R[i].train_loss = 1e-4 + 2.0 * exp(-i / 2.0);
        R[i].val_loss = 1e-3 + 2.0 * exp(-i / 2.0);
    }
    cr_assert_null(find(check(30, 0), "generalisation_gap"));
}

Test(health, not_converged)
{
    healthy(20, 3);
    for (int i = 0; i < 20; i++) {
        R[i].train_loss = 2.302 - 0.0005 * i / 19.0;
        R[i].val_loss = 2.303;
    }
    int c = check(20, 0);
    const ns_finding *f = find(c, "not_converged");
    cr_assert_not_null(f);
    cr_assert_eq(f->mistake, 1);
    cr_assert(strstr(f->message, "fell") != NULL, "%s", f->message);

    /* a slow rise (under the divergence factor) is not convergence either */
    for (int i = 0; i < 20; i++)
        R[i].train_loss = 1.0 + 0.05 * i;
    f = find(check(20, 0), "not_converged");
    cr_assert_not_null(f);
    cr_assert(strstr(f->message, "rose") != NULL, "%s", f->message);
}

Test(health, budget_limited)
{
    /* linear fall to the last epoch: train and val still dropping fast */
    healthy(20, 3);
    for (int i = 0; i < 20; i++) {
        R[i].train_loss = 2.0 - 0.09 * i;
        R[i].val_loss = R[i].train_loss * 1.1 + 0.02;
    }
    int c = check(20, 0);
    const ns_finding *f = find(c, "budget_limited");
    cr_assert_not_null(f);
    cr_assert_eq(f->mistake, 1);
    cr_assert(strstr(f->message, "val loss") != NULL, "%s", f->message);
    cr_assert_null(find(c, "not_converged"));

    /* no validation: judged on the train loss alone */
    for (int i = 0; i < 20; i++)
        R[i].val_loss = NAN;
    cr_assert_not_null(find(check(20, 0), "budget_limited"));

    /* train still falling but val flat: memorising, more budget would not help */
    for (int i = 0; i < 20; i++)
        R[i].val_loss = i < 14 ? 2.0 - 0.09 * i : 2.0 - 0.09 * 13;
    cr_assert_null(find(check(20, 0), "budget_limited"));
}

Test(health, vanishing_gradients_by_ratio)
{
    healthy(20, 5);
    for (int i = 0; i < 20; i++)
        for (int j = 0; j < 5; j++)
            R[i].group_grad_norm[j] = 0.5 * pow(0.1, 4 - j); /* first 1e-4 x last */
    int c = check(20, 0);
    expect_only(c, "vanishing_gradients", 2);
    cr_assert(strstr(F[0].message, "0.0001") != NULL, "%s", F[0].message);
}

Test(health, exploding_gradients_by_ratio_and_bound)
{
    healthy(20, 5);
    for (int i = 0; i < 20; i++)
        for (int j = 0; j < 5; j++)
            R[i].group_grad_norm[j] = 0.5 * pow(10.0, 4 - j); /* first 1e4 x last */
    expect_only(check(20, 0), "exploding_gradients", 2);

    /* one epoch with a huge global norm */
    healthy(20, 3);
    R[7].grad_norm = 5e3;
    expect_only(check(20, 0), "exploding_gradients", 2);
    cr_assert(strstr(F[0].message, "epoch 8") != NULL, "%s", F[0].message);

    /* single-layer net: no ratio, the absolute bound still applies */
    healthy(20, 1);
    R[3].group_grad_norm[0] = 2e3;
    expect_only(check(20, 0), "exploding_gradients", 2);
    cr_assert(strstr(F[0].message, "layer 1") != NULL, "%s", F[0].message);
}

Test(health, vanishing_gradients_by_floor)
{
    /* a dead middle layer: zero gradient throughout */
    healthy(20, 3);
    for (int i = 0; i < 20; i++)
        R[i].group_grad_norm[1] = 0;
    expect_only(check(20, 0), "vanishing_gradients", 2);
    cr_assert(strstr(F[0].message, "layer 2 of 3") != NULL, "%s", F[0].message);

    /* tiny gradients in the last epochs of a converged run are not vanishing */
    healthy(20, 3);
    for (int i = 15; i < 20; i++)
        for (int j = 0; j < 3; j++)
            R[i].group_grad_norm[j] = 1e-12;
    cr_assert_eq(check(20, 0), 0, "%s: %s", F[0].code, F[0].message);
}

Test(health, diverged_run_still_names_exploding_gradients)
{
    healthy(10, 3);
    R[8].grad_norm = 1e6;
    R[9].train_loss = NAN;
    R[9].grad_norm = NAN;
    int c = check(10, 0);
    cr_assert_eq(c, 2);
    cr_assert_str_eq(F[0].code, "diverged");
    cr_assert_str_eq(F[1].code, "exploding_gradients");
}

Test(health, cap_limits_writes_not_the_count)
{
    healthy(20, 3);
    for (int i = 0; i < 20; i++) {
        R[i].train_loss = 1.0 + 0.01 * i;     /* not converged */
        R[i].grad_norm = 2e3;                 /* exploding */
        R[i].group_grad_norm[1] = 0;          /* a dead layer */
    }
    int total = check(20, 0);
    cr_assert_geq(total, 2);
    cr_assert_eq(ns_health_check(NULL, R, 20, 0, NULL, 0), total);
    ns_finding one[2];
    memset(one, 0, sizeof one);
    strcpy(one[1].code, "untouched");
    cr_assert_eq(ns_health_check(NULL, R, 20, 0, one, 1), total);
    cr_assert_str_eq(one[0].code, F[0].code);
    cr_assert_str_eq(one[1].code, "untouched");
}

Test(health, json_empty_and_basic)
{
    char buf[1024];
    cr_assert_eq(ns_findings_json(NULL, 0, buf, sizeof buf), 2);
    cr_assert_str_eq(buf, "[]");
    cr_assert_eq(ns_findings_json(NULL, -1, buf, sizeof buf), -1);
    cr_assert_eq(ns_findings_json(NULL, 1, buf, sizeof buf), -1);

    ns_finding f[2];
    memset(f, 0, sizeof f);
    strcpy(f[0].code, "diverged");
    f[0].mistake = 2;
    strcpy(f[0].message, "loss 1");
    strcpy(f[0].fix, "x");
    strcpy(f[1].code, "overfitting");
    f[1].mistake = 3;
    strcpy(f[1].message, "m");
    strcpy(f[1].fix, "y");
    const char *want = "[{\"code\":\"diverged\",\"mistake\":2,\"message\":\"loss 1\",\"fix\":\"x\"},"
                       "{\"code\":\"overfitting\",\"mistake\":3,\"message\":\"m\",\"fix\":\"y\"}]";
    cr_assert_eq(ns_findings_json(f, 2, buf, sizeof buf), (int)strlen(want));
    cr_assert_str_eq(buf, want);
}

Test(health, json_escaping)
{
    ns_finding f;
    memset(&f, 0, sizeof f);
    strcpy(f.code, "c");
    f.mistake = 1;
    strcpy(f.message, "say \"hi\" \\ now\nnext\ttab\x01");
    strcpy(f.fix, "caf\xc3\xa9");
    char buf[512];
    const char *want = "[{\"code\":\"c\",\"mistake\":1,"
                       "\"message\":\"say \\\"hi\\\" \\\\ now\\nnext\\ttab\\u0001\","
                       "\"fix\":\"caf\xc3\xa9\"}]";
    int len = ns_findings_json(&f, 1, buf, sizeof buf);
    cr_assert_str_eq(buf, want);
    cr_assert_eq(len, (int)strlen(want));
}

Test(health, json_too_small_buffer)
{
    ns_finding f;
    memset(&f, 0, sizeof f);
    strcpy(f.code, "diverged");
    f.mistake = 2;
    strcpy(f.message, "m");
    strcpy(f.fix, "x");
    char big[256], small[16];
    int need = ns_findings_json(&f, 1, big, sizeof big);
    cr_assert_gt(need, 16);
    memset(small, 'z', sizeof small);
    cr_assert_eq(ns_findings_json(&f, 1, small, sizeof small), need);
    cr_assert_str_eq(small, "");
    /* exactly enough room for the text and its NUL */
    char exact[256];
    cr_assert_eq(ns_findings_json(&f, 1, exact, (size_t)need + 1), need);
    cr_assert_str_eq(exact, big);
    cr_assert_eq(ns_findings_json(&f, 1, exact, (size_t)need), need);
    cr_assert_str_eq(exact, "");
    cr_assert_eq(ns_findings_json(&f, 1, NULL, 0), need);
}

Test(health, json_of_real_findings_round_trips_codes)
{
    healthy(30, 3);
    R[29].train_loss = NAN;
    int c = check(30, 0);
    char buf[4096];
    int len = ns_findings_json(F, c, buf, sizeof buf);
    cr_assert_gt(len, 0);
    cr_assert_lt(len, (int)sizeof buf);
    cr_assert(strstr(buf, "\"code\":\"diverged\"") != NULL, "%s", buf);
    cr_assert(strstr(buf, "\"message\":\"train loss became nan at epoch 30\"") != NULL, "%s",
              buf);
}

/* ---- noise: losses measured on few rows ---------------------------------------------------- */

/* The standard error of a mean cross-entropy over 60 rows, per unit of loss (1 / sqrt(60),
 * ns_pipeline_health_noise), and over 1000. */
#define REL_SE_60 0.12909944487358055
#define REL_SE_1000 0.031622776601683791

static int check_noise(int n, int selected, double val_rel_se, double train_rel_se)
{
    ns_health_spec s;
    ns_health_spec_default(&s);
    s.val_rel_se = val_rel_se;
    s.train_rel_se = train_rel_se;
    return ns_health_check(&s, R, n, selected, F, NS_HEALTH_MAX_FINDINGS);
}

/* healthy(30), then the second half's loss of one series (val or train) alternating
 * +-swing around its level: the relative std of the epoch-to-epoch changes is about
 * 2 x swing. */
static void swinging(int val, double swing)
{
    healthy(30, 3);
    for (int i = 15; i < 30; i++) {
        double *L = val ? &R[i].val_loss : &R[i].train_loss;
        *L *= 1 + (i % 2 ? swing : -swing);
    }
}

Test(health, val_swings_within_the_noise_of_60_rows_are_not_oscillation)
{
    /* +-10%: a std of changes of ~0.2 of the level, above the 0.1 limit, below the
     * 2 x 0.129 = 0.258 that chance moves a loss on 60 rows */
    swinging(1, 0.10);
    cr_assert_not_null(find(check_noise(30, 0, 0, 0), "oscillating"), "without noise: fires");
    int c = check_noise(30, 0, REL_SE_60, 0);
    cr_assert_eq(c, 0, "60 rows: %s: %s", c ? F[0].code : "", c ? F[0].message : "");
    /* on 1000 rows chance moves it by 0.063: the limit stays 0.1 */
    cr_assert_not_null(find(check_noise(30, 0, REL_SE_1000, REL_SE_1000), "oscillating"));
    /* +-25% swings are beyond the noise of 60 rows */
    swinging(1, 0.25);
    const ns_finding *f = find(check_noise(30, 0, REL_SE_60, 0), "oscillating");
    cr_assert_not_null(f);
    cr_assert(strstr(f->message, "validation loss") && strstr(f->message, "standard errors"), "%s",
              f->message);
    /* noise_k 0: no allowance whatever the rows */
    swinging(1, 0.10);
    ns_health_spec s;
    ns_health_spec_default(&s);
    s.val_rel_se = REL_SE_60;
    s.noise_k = 0;
    cr_assert_not_null(find(ns_health_check(&s, R, 30, 0, F, NS_HEALTH_MAX_FINDINGS), "oscillating"));
}

Test(health, train_swings_are_judged_against_the_train_rows)
{
    swinging(0, 0.10);
    cr_assert_not_null(find(check_noise(30, 0, REL_SE_60, 0), "oscillating"),
                       "the validation noise does not excuse the train loss");
    cr_assert_eq(check_noise(30, 0, 0, REL_SE_60), 0, "%s: %s", F[0].code, F[0].message);
    swinging(0, 0.25);
    cr_assert_not_null(find(check_noise(30, 0, 0, REL_SE_60), "oscillating"));
}

/* healthy(30) with the val loss at its lowest at epoch 10 and rising linearly to
 * (1 + rise) x that by epoch 30 while the train loss keeps falling: the mean of the last 5
 * epochs is 0.9 x rise above the best. */
static void rising(double rise)
{
    healthy(30, 3);
    double vb = R[9].val_loss;
    for (int i = 10; i < 30; i++)
        R[i].val_loss = vb * (1 + rise * (i - 9) / 20.0);
}

Test(health, a_val_rise_within_the_noise_of_60_rows_is_not_overfitting)
{
    /* +22.5%: above the 10% limit, within the 25.8% (2 standard errors) of 60 rows */
    rising(0.25);
    cr_assert_not_null(find(check_noise(30, 0, 0, 0), "overfitting"), "without noise: fires");
    int c = check_noise(30, 0, REL_SE_60, REL_SE_60);
    cr_assert_eq(c, 0, "60 rows: %s: %s", c ? F[0].code : "", c ? F[0].message : "");
    cr_assert_not_null(find(check_noise(30, 0, REL_SE_1000, REL_SE_1000), "overfitting"));
    /* +54% on 60 rows is overfitting */
    rising(0.6);
    const ns_finding *f = find(check_noise(30, 0, REL_SE_60, REL_SE_60), "overfitting");
    cr_assert_not_null(f);
    cr_assert(strstr(f->message, "(limit +25.8%)"), "%s", f->message);
    cr_assert_eq(f->mistake, 3);
}

/* train falling to ~0.1 and a flat val loss v from epoch 20 (the gap test above) */
static void gapped(double v)
{
    healthy(30, 3);
    for (int i = 0; i < 30; i++) {
        R[i].train_loss = 0.1 + 2.0 * exp(-i / 4.0);
        R[i].val_loss = i < 20 ? R[i].train_loss * 1.1 + 0.02 : v;
    }
}

Test(health, a_gap_within_the_noise_of_60_rows_is_not_one)
{
    /* val 0.32 vs train 0.1005: gap 2.2 > 2; less 2 standard errors of 60 rows the val loss
     * is 0.237 and the gap 1.4 */
    gapped(0.32);
    cr_assert_not_null(find(check_noise(30, 30, 0, 0), "generalisation_gap"));
    cr_assert_null(find(check_noise(30, 30, REL_SE_60, REL_SE_60), "generalisation_gap"));
    /* val 0.5: 0.371 less the noise, a gap of 2.7 */
    gapped(0.5);
    const ns_finding *f = find(check_noise(30, 30, REL_SE_60, REL_SE_60), "generalisation_gap");
    cr_assert_not_null(f);
    cr_assert(strstr(f->message, "less 2 standard errors"), "%s", f->message);
    /* a noise allowance of the whole loss (4 rows) leaves nothing to call a gap */
    cr_assert_null(find(check_noise(30, 30, 0.5, 0.5), "generalisation_gap"));
}
