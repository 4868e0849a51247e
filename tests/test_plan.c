/* test_plan.c — the trial plan, the settings a stage hands to one trial (driver.c,
 * ns_plan_set): every setting is kept, a key set again takes its new value in its first
 * place, and a setting the plan cannot hold marks the plan bad instead of being dropped. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "search/stages/driver_impl.h"

/* Twenty distinct keys: more than the 16 a plan once kept (the rest were dropped). */
static const char *const keys[] = {
    "train.lr", "train.momentum", "train.nesterov", "train.beta1", "train.beta2",
    "train.eps", "train.alpha", "train.weight_decay", "train.schedule", "train.step_size",
    "train.gamma", "train.warmup", "train.warmup_start", "train.min_lr", "train.pct_start",
    "train.div", "train.final_div", "train.clip_norm", "train.patience", "train.batch_size"};
#define N_KEYS_HERE ((int)(sizeof keys / sizeof keys[0]))

Test(plan, keeps_every_setting)
{
    ns_trial_plan p;
    memset(&p, 0, sizeof p);
    for (int i = 0; i < N_KEYS_HERE; i++)
        ns_plan_set(&p, keys[i], "%d", i + 1);
    cr_assert_eq(p.n_set, N_KEYS_HERE, "kept %d of %d settings", p.n_set, N_KEYS_HERE);
    for (int i = 0; i < N_KEYS_HERE; i++) {
        cr_assert_str_eq(p.set[i].key, keys[i]);
        cr_assert_eq(atoi(p.set[i].value), i + 1);
    }
    cr_assert_null(p.bad);
}

/* Applying a key twice is applying its last value: the plan holds each key once. */
Test(plan, a_key_set_again_takes_its_new_value_in_its_place)
{
    ns_trial_plan p;
    memset(&p, 0, sizeof p);
    ns_plan_set(&p, "train.lr", "%.17g", 0.1);
    ns_plan_set(&p, "train.batch_size", "%d", 64);
    ns_plan_set(&p, "train.lr", "%.17g", 0.25);
    cr_assert_eq(p.n_set, 2);
    cr_assert_str_eq(p.set[0].key, "train.lr");
    cr_assert_str_eq(p.set[0].value, "0.25");
    cr_assert_str_eq(p.set[1].key, "train.batch_size");
    cr_assert_str_eq(p.set[1].value, "64");
}

/* Every key of the config fits: a valid plan can never run out of room. */
Test(plan, holds_every_key_of_the_config)
{
    cr_assert_geq(NS_PLAN_MAX_SETTINGS, NS_CONFIG_MAX_KEYS);
}

/* A value longer than a plan holds is not cut short: the plan is bad, naming the key. */
Test(plan, a_value_it_cannot_hold_marks_it_bad)
{
    ns_trial_plan p;
    memset(&p, 0, sizeof p);
    char big[200];
    memset(big, '1', sizeof big - 1);
    big[sizeof big - 1] = 0;
    ns_plan_set(&p, "model.hidden", "[%s]", big);
    cr_assert_not_null(p.bad);
    cr_assert_str_eq(p.bad, "model.hidden");
}
