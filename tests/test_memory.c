/* test_memory.c — refusing a model the machine cannot hold, before anything is allocated:
 * what the process may use (physical RAM, ulimit -v), the model's bytes, and the one-line
 * refusal naming the keys and the machine. Nothing here allocates a large model: a check
 * that failed would otherwise fill the machine instead of failing the test. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "engine/backend/backend.h"
#include "engine/sysmem.h"
#include "model/mlp.h"
#include "search/config/config.h"
#include "search/stages/pipeline.h"

#ifndef NS_SOURCE_DIR
#define NS_SOURCE_DIR "."
#endif

/* A config of the tiny data with extra lines and a prepared set that looks like it (8
 * features, 3 classes, 480 training rows) without loading anything. */
static void tiny(ns_config *c, ns_prepared *p, const char *extra)
{
    char text[2048];
    snprintf(text, sizeof text, "data:\n  train: %s/configs/data/tiny.csv\n%s", NS_SOURCE_DIR, extra);
    ns_err e = {0};
    cr_assert_eq(ns_config_parse(c, "cfg.yaml", text, strlen(text), &e), NS_OK, "%s", e.msg);
    memset(p, 0, sizeof *p);
    p->task = NS_TASK_CLASSIFY;
    p->n_classes = 3;
    p->train.d = 8;
    p->train.n = 480;
}

Test(memory, the_limit_is_the_physical_ram_without_rlimits)
{
    struct rlimit inf = {RLIM_INFINITY, RLIM_INFINITY}, rl;
    /* a test runs in its own process: raising a soft limit to the hard one stays here */
    getrlimit(RLIMIT_AS, &rl);
    if (rl.rlim_max == RLIM_INFINITY)
        setrlimit(RLIMIT_AS, &inf);
    getrlimit(RLIMIT_DATA, &rl);
    if (rl.rlim_max == RLIM_INFINITY)
        setrlimit(RLIMIT_DATA, &inf);
    const char *what;
    uint64_t have = ns_sysmem_limit(&what);
    uint64_t ram = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    cr_assert(have <= ram && have > 0, "limit %llu, RAM %llu", (unsigned long long)have,
              (unsigned long long)ram);
    if (have == ram)
        cr_assert_str_eq(what, "physical RAM");
    else
        cr_assert_str_eq(what, "the cgroup's memory limit");
}

Test(memory, ulimit_v_binds_less_what_is_mapped)
{
#ifdef __SANITIZE_ADDRESS__
    /* AddressSanitizer reserves terabytes of address space before main: any ulimit -v
     * leaves nothing, and the allocator cannot start under one */
    cr_skip_test("under AddressSanitizer");
#endif
    const char *what;
    struct rlimit rl = {(rlim_t)4 << 30, RLIM_INFINITY};
    getrlimit(RLIMIT_AS, &rl);
    rl.rlim_cur = (rlim_t)4 << 30;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rl.rlim_cur)
        rl.rlim_cur = rl.rlim_max;
    cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0);
    uint64_t have = ns_sysmem_limit(&what);
    cr_assert_str_eq(what, "ulimit -v, the address-space limit, less what is mapped");
    cr_assert(have < (uint64_t)rl.rlim_cur, "%llu", (unsigned long long)have);
    cr_assert(have > 0);
}

Test(memory, human_sizes)
{
    char b[32];
    cr_assert_str_eq(ns_sysmem_human(512, b, sizeof b), "512 B");
    cr_assert_str_eq(ns_sysmem_human(3u << 20, b, sizeof b), "3.0 MiB");
    cr_assert_str_eq(ns_sysmem_human(17592186044416ULL, b, sizeof b), "16.0 TiB");
}

/* The model's bytes follow ns_mlp_alloc's layout: checked on a small model, where the
 * allocation is harmless. */
Test(memory, model_bytes_follow_the_allocation)
{
    ns_mlp_spec s = {.n_in = 10, .n_out = 3, .n_hidden = 2, .hidden = {64, 32}};
    uint64_t np = (uint64_t)(64 * 10 + 64 + 32 * 64 + 32 + 3 * 32 + 3);
    cr_assert_eq(ns_mlp_spec_param_count(&s), np);
    /* params + grads, pre + out of (64 + 32 + 3) units per row, two buffers of the widest */
    cr_assert_eq(ns_mlp_spec_bytes(&s, 16), 4 * (2 * np + 2 * 16 * 99 + 2 * 16 * 64));
    ns_err e = {0};
    ns_backend *be = ns_backend_cpu_alloc(1, &e);
    cr_assert_not_null(be, "%s", e.msg);
    ns_mlp *m = ns_mlp_alloc(&s, be, 16, &e);
    cr_assert_not_null(m, "%s", e.msg);
    cr_assert_eq(m->n_params, np);
    ns_mlp_free(m);
    ns_backend_free(be);
}

/* 2^40 parameters (16 TiB with gradients and Adam's state) on any machine of today: one
 * line naming the keys, the bytes and the limit; NS_EINPUT (exit 2), not NS_ERUNTIME. */
Test(memory, a_model_beyond_the_machine_is_refused_with_its_keys)
{
    ns_config c;
    ns_prepared p;
    tiny(&c, &p, "model:\n  hidden: [1048576, 1048576]\n");
    ns_err e = {0};
    cr_assert_eq(ns_pipeline_memory_check(&c, &p, 0, &e), NS_EINPUT, "%d: %s", e.code, e.msg);
    cr_assert_null(strchr(e.msg, '\n'));
    const char *want[] = {
        "cfg.yaml: the model does not fit in memory: model.hidden [1048576, 1048576] with 8 "
        "inputs and 3 outputs has 1099525259267 parameters; with their gradients, adam's 2 state "
        "copies (train.optimizer) and the activations of batch 1024 (train.batch_size, "
        "train.eval_batch) training needs 16.0 TiB, but this process may use ",
        "use fewer or narrower hidden layers or a smaller batch"};
    for (int i = 0; i < 2; i++)
        cr_assert(strstr(e.msg, want[i]), "lacks \"%s\": %s", want[i], e.msg);
    /* the search refuses it up front: every trial has this model */
    cr_assert_eq(ns_pipeline_search_memory_check(&c, &p, &e), NS_EINPUT);
    cr_assert(strstr(e.msg, "cfg.yaml: no trial can fit in memory: model.hidden [1048576, 1048576] "
                            "with 8 inputs and 3 outputs has 1099525259267 parameters; they and "
                            "their gradients alone need 8.0 TiB"), "%s", e.msg);
    ns_config_free(&c);

    /* depth x width is named as such, sgd without momentum has no state, patience a copy */
    tiny(&c, &p, "model:\n  depth: 3\n  width: 1048576\ntrain:\n  optimizer: sgd\n  momentum: 0\n"
                 "  patience: 2\n  batch_size: 64\n  eval_batch: 32\n");
    cr_assert_eq(ns_pipeline_memory_check(&c, &p, 0, &e), NS_EINPUT);
    cr_assert(strstr(e.msg, "model.hidden [1048576, 1048576, 1048576] (model.depth x model.width) "
                            "with 8 inputs and 3 outputs"), "%s", e.msg);
    cr_assert(strstr(e.msg, "with their gradients, the best weights (train.patience) and the "
                            "activations of batch 64 (train.batch_size"), "%s", e.msg);
    ns_config_free(&c);
}

Test(memory, models_that_fit_pass_and_a_searched_model_is_judged_per_trial)
{
    ns_config c;
    ns_prepared p;
    ns_err e = {0};
    tiny(&c, &p, "model:\n  hidden: [256, 128]\n");
    cr_assert_eq(ns_pipeline_memory_check(&c, &p, 0, &e), NS_OK, "%s", e.msg);
    cr_assert_eq(ns_pipeline_search_memory_check(&c, &p, &e), NS_OK, "%s", e.msg);
    ns_config_free(&c);
    tiny(&c, &p, "model:\n  hidden: {choice: [[16], [1048576, 1048576]]}\n"
                 "search:\n  stages:\n    - {stage: random, trials: 2, epochs: 1}\n");
    cr_assert_eq(ns_pipeline_search_memory_check(&c, &p, &e), NS_OK, "%s", e.msg);
    ns_config_free(&c);
}

/* A batch too large for the activations alone: the batch is named. */
Test(memory, a_batch_beyond_the_machine_is_refused)
{
    ns_config c;
    ns_prepared p;
    ns_err e = {0};
    tiny(&c, &p, "model:\n  hidden: [1048576]\ntrain:\n  batch_size: 16777216\n");
    cr_assert_eq(ns_pipeline_memory_check(&c, &p, 0, &e), NS_EINPUT);
    cr_assert(strstr(e.msg, "activations of batch 16777216 (train.batch_size, train.eval_batch)"), "%s", e.msg);
    cr_assert_eq(ns_pipeline_search_memory_check(&c, &p, &e), NS_OK, "parameters alone fit: %s", e.msg);
    ns_config_free(&c);
}
