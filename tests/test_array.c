/* test_array.c — runs trained in lock-step (engine/train/array.h over model/mlp.h's group):
 * on the CPU every member ends with the bits, records and state of its run alone, through
 * different optimizers, schedules, dropout, activations, early stopping, divergence, a
 * member stopped by the caller, a steps budget, and an interruption mid-epoch continued from
 * checkpoints; shapes and budgets that cannot share steps are refused; and the search's
 * entry (ns_run_training_array): a group the backend cannot allocate trains its members
 * alone to the same results, and a member whose checkpoint is refused fails alone. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend/backend.h"
#include "engine/rng.h"
#include "engine/train/array.h"
#include "engine/train/train.h"
#include "model/mlp.h"
#include "search/stages/pipeline.h"
#include "tests/testutil.h"

#define K 6
#define MAX_RECS 16

typedef struct member_cfg {
    ns_mlp_spec mlp;
    ns_train_spec train;
    uint64_t init_seed;
    int class_weights;
} member_cfg;

static ns_dataset train_rows, val_rows;

static void data_setup(void)
{
    /* 203 rows: batches of 32 end with a partial one of 11 */
    tu_blobs(&train_rows, 203, 6, 11, 1.0);
    tu_blobs(&val_rows, 61, 6, 12, 1.0);
}

static void data_teardown(void)
{
    ns_dataset_free(&train_rows);
    ns_dataset_free(&val_rows);
}

TestSuite(array, .init = data_setup, .fini = data_teardown);

/* Six runs as different as one shape allows. */
static void configs(member_cfg *c)
{
    static const ns_opt_kind opt[K] = {NS_OPT_ADAM, NS_OPT_SGD, NS_OPT_RMSPROP, NS_OPT_ADAMW,
                                       NS_OPT_ADAM, NS_OPT_SGD};
    static const ns_sched_kind sched[K] = {NS_SCHED_COSINE, NS_SCHED_STEP, NS_SCHED_ONECYCLE,
                                           NS_SCHED_PLATEAU, NS_SCHED_CONSTANT, NS_SCHED_EXP};
    static const ns_act act[K] = {NS_ACT_RELU, NS_ACT_GELU, NS_ACT_TANH, NS_ACT_LEAKY_RELU,
                                  NS_ACT_SIGMOID, NS_ACT_RELU};
    static const double lr[K] = {0.03, 0.05, 0.003, 0.02, 0.3, 80.0};
    for (int k = 0; k < K; k++) {
        member_cfg *m = &c[k];
        memset(m, 0, sizeof *m);
        m->mlp = (ns_mlp_spec){.n_in = 6, .n_out = 3, .n_hidden = 2, .hidden = {16, 8},
                               .act = act[k], .dropout = 0.1f * (float)(k % 3),
                               .label_smoothing = k == 3 ? 0.1f : 0.0f};
        ns_train_spec_default(&m->train);
        m->train.epochs = 4 + k % 4;
        m->train.batch_size = 32;
        m->train.eval_batch = 64;
        m->train.lr = lr[k];
        m->train.seed = 100 + (uint64_t)k;
        ns_optim_spec_default(&m->train.opt, opt[k]);
        m->train.opt.weight_decay = k % 2 ? 1e-3 : 0.0;
        m->train.opt.nesterov = k == 1;
        ns_sched_spec_default(&m->train.sched, sched[k]);
        m->train.sched.step_size = 2;
        m->train.clip_norm = k == 2 ? 0.5 : 0.0;
        m->train.patience = k == 4 ? 1 : 0; /* lr 0.3: it overshoots and stops early */
        m->train.monitor = k == 3 ? NS_MONITOR_F1 : NS_MONITOR_AUTO;
        m->init_seed = 7 + (uint64_t)k;
        m->class_weights = k == 0;
    }
}

typedef struct recs {
    ns_epoch_record r[K][MAX_RECS];
    int n[K];
    int stop_member, stop_after; /* the caller stops stop_member after that many epochs */
} recs;

static int keep(recs *rc, int k, const ns_epoch_record *rec)
{
    if (rc->n[k] < MAX_RECS)
        rc->r[k][rc->n[k]++] = *rec;
    return k == rc->stop_member && rc->n[k] >= rc->stop_after;
}

static int keep_member(void *user, int k, const ns_epoch_record *rec) { return keep(user, k, rec); }

typedef struct alone_ctx {
    recs *rc;
    int k;
} alone_ctx;

static int keep_alone(void *user, const ns_epoch_record *rec)
{
    alone_ctx *a = user;
    return keep(a->rc, a->k, rec);
}

static const float class_w[3] = {0.8f, 1.0f, 1.25f};

static void init_member(ns_mlp *m, const member_cfg *c)
{
    ns_rng rng;
    ns_rng_seed(&rng, c->init_seed);
    cr_assert_eq(ns_mlp_init_params(m, &rng, NULL), NS_OK);
    if (c->class_weights)
        cr_assert_eq(ns_mlp_set_class_weights(m, class_w, NULL), NS_OK);
}

/* Member k trained alone: its final weights into w (n floats), its records into rc. */
static void train_alone(ns_backend *be, const member_cfg *c, int k, recs *rc, float *w,
                        ns_trainer *state)
{
    ns_err err = {0};
    ns_mlp *m = ns_mlp_alloc(&c->mlp, be, 64, &err);
    cr_assert(m, "%s", err.msg);
    init_member(m, c);
    ns_trainer tr;
    cr_assert_eq(ns_trainer_init(&tr, &c->train, be, &m->net, &train_rows, &val_rows, &err), NS_OK,
                 "%s", err.msg);
    alone_ctx ac = {rc, k};
    cr_assert_eq(ns_trainer_run(&tr, 0, keep_alone, &ac, &err), NS_OK, "%s", err.msg);
    memcpy(w, m->params, m->n_params * sizeof *w);
    *state = tr; /* the counters only: its buffers are freed below */
    ns_trainer_free(&tr);
    ns_mlp_free(m);
}

typedef struct group_run {
    ns_mlp_group *g;
    ns_trainer_array a;
} group_run;

static void group_start(group_run *gr, ns_backend *be, const member_cfg *c)
{
    ns_err err = {0};
    ns_mlp_spec specs[K];
    ns_train_spec ts[K];
    ns_net *nets[K];
    for (int k = 0; k < K; k++) {
        specs[k] = c[k].mlp;
        ts[k] = c[k].train;
    }
    gr->g = ns_mlp_group_alloc(specs, K, be, 64, &err);
    cr_assert(gr->g, "%s", err.msg);
    for (int k = 0; k < K; k++) {
        init_member(gr->g->m[k], &c[k]);
        nets[k] = &gr->g->m[k]->net;
    }
    cr_assert_eq(ns_trainer_array_init(&gr->a, ts, K, be, nets, &gr->g->net, &train_rows,
                                       &val_rows, &err), NS_OK, "%s", err.msg);
}

static void group_free(group_run *gr)
{
    ns_trainer_array_free(&gr->a);
    ns_mlp_group_free(gr->g);
}

/* Two epoch records equal in everything but their wall times. */
static void same_record(const ns_epoch_record *a, const ns_epoch_record *b, int k)
{
    ns_epoch_record x = *a, y = *b;
    x.seconds = y.seconds = 0;
    x.samples_per_s = y.samples_per_s = 0;
    cr_assert(!memcmp(&x, &y, sizeof x), "member %d, epoch %d: records differ (val_loss %.9g vs "
              "%.9g, train_loss %.9g vs %.9g)", k, a->epoch, a->val_loss, b->val_loss,
              a->train_loss, b->train_loss);
}

static void compare_with_alone(group_run *gr, const member_cfg *c, const recs *together,
                               int stop_member, int stop_after)
{
    ns_backend *be = gr->g->be;
    size_t n = gr->g->n_params;
    float *w = malloc(n * sizeof *w);
    recs *alone = calloc(1, sizeof *alone);
    cr_assert(w && alone);
    alone->stop_member = stop_member;
    alone->stop_after = stop_after;
    for (int k = 0; k < K; k++) {
        ns_trainer st;
        train_alone(be, &c[k], k, alone, w, &st);
        const ns_trainer *t = &gr->a.tr[k];
        cr_assert(!memcmp(w, gr->g->m[k]->params, n * sizeof *w),
                  "member %d: weights differ from its run alone", k);
        cr_assert_eq(together->n[k], alone->n[k], "member %d: %d epochs together, %d alone", k,
                     together->n[k], alone->n[k]);
        for (int e = 0; e < alone->n[k]; e++)
            same_record(&together->r[k][e], &alone->r[k][e], k);
        cr_assert_eq(t->step, st.step, "member %d", k);
        cr_assert_eq(t->epoch, st.epoch, "member %d", k);
        cr_assert_eq(t->best_epoch, st.best_epoch, "member %d", k);
        cr_assert_eq(t->stopped_early, st.stopped_early, "member %d", k);
    }
    free(alone);
    free(w);
}

Test(array, members_equal_their_runs_alone)
{
    ns_err err = {0};
    ns_backend *be = ns_backend_cpu_alloc(1, &err);
    cr_assert(be, "%s", err.msg);
    member_cfg c[K];
    configs(c);
    group_run gr;
    group_start(&gr, be, c);
    recs *rc = calloc(1, sizeof *rc);
    rc->stop_member = -1;
    cr_assert_eq(ns_trainer_array_run(&gr.a, 0, keep_member, rc, &err), NS_OK, "%s", err.msg);
    /* the mix exercised what it is meant to: a diverged member, an early stop, full runs */
    cr_assert(rc->r[5][rc->n[5] - 1].diverged, "member 5 (lr 80) should diverge");
    cr_assert(gr.a.tr[4].stopped_early && rc->n[4] < c[4].train.epochs, "member 4 should stop early");
    cr_assert_eq(rc->n[1], 5);
    compare_with_alone(&gr, c, rc, -1, 0);
    /* and training learnt: the calm members classify the blobs */
    for (int k = 0; k < 4; k++)
        cr_assert_gt(rc->r[k][rc->n[k] - 1].val_acc, 0.8, "member %d: val_acc %g", k,
                     rc->r[k][rc->n[k] - 1].val_acc);
    free(rc);
    group_free(&gr);
    ns_backend_free(be);
}

Test(array, a_member_stopped_by_the_caller_leaves_the_others_alone)
{
    ns_err err = {0};
    ns_backend *be = ns_backend_cpu_alloc(1, &err);
    member_cfg c[K];
    configs(c);
    group_run gr;
    group_start(&gr, be, c);
    recs *rc = calloc(1, sizeof *rc);
    rc->stop_member = 1; /* as a pruner would, after its second epoch */
    rc->stop_after = 2;
    cr_assert_eq(ns_trainer_array_run(&gr.a, 0, keep_member, rc, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(rc->n[1], 2);
    compare_with_alone(&gr, c, rc, 1, 2);
    free(rc);
    group_free(&gr);
    ns_backend_free(be);
}

Test(array, a_steps_budget_ends_mid_epoch_as_alone)
{
    ns_err err = {0};
    ns_backend *be = ns_backend_cpu_alloc(1, &err);
    member_cfg c[K];
    configs(c);
    for (int k = 0; k < K; k++) {
        c[k].train.budget = NS_BUDGET_STEPS;
        c[k].train.steps = 9 + 4 * k; /* 7 steps an epoch: most end inside one */
    }
    group_run gr;
    group_start(&gr, be, c);
    recs *rc = calloc(1, sizeof *rc);
    rc->stop_member = -1;
    cr_assert_eq(ns_trainer_array_run(&gr.a, 0, keep_member, rc, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(gr.a.tr[0].step, 9);
    compare_with_alone(&gr, c, rc, -1, 0);
    free(rc);
    group_free(&gr);
    ns_backend_free(be);
}

/* An array's batch() that raises the stop flag after `after` calls: an interruption
 * mid-epoch, as a signal would make it. */
typedef struct stopper {
    const ns_net_array *inner;
    ns_net_array net;
    ns_stop_flag *flag;
    int calls, after;
} stopper;

static int stopping_batch(void *ctx, const unsigned char *active, const float *x, size_t xs,
                          const int32_t *y, const float *t, size_t ys, const int *B,
                          const uint64_t *seed, ns_batch_out *out, ns_err *err)
{
    stopper *s = ctx;
    int rc = s->inner->batch(s->inner->ctx, active, x, xs, y, t, ys, B, seed, out, err);
    if (++s->calls == s->after)
        atomic_store(s->flag, 1);
    return rc;
}

Test(array, interrupted_mid_epoch_and_continued_from_checkpoints_as_unbroken)
{
    ns_err err = {0};
    ns_backend *be = ns_backend_cpu_alloc(1, &err);
    member_cfg c[K];
    configs(c);
    char *dir = tu_temp_dir();

    group_run gr;
    group_start(&gr, be, c);
    ns_stop_flag flag = 0;
    stopper st = {.inner = &gr.g->net, .flag = &flag, .after = 17}; /* epoch 3, step 3 */
    st.net = (ns_net_array){.ctx = &st, .k = K, .batch = stopping_batch};
    gr.a.net = &st.net;
    for (int k = 0; k < K; k++)
        gr.a.tr[k].stop = &flag;
    recs *rc = calloc(1, sizeof *rc);
    rc->stop_member = -1;
    cr_assert_eq(ns_trainer_array_run(&gr.a, 0, keep_member, rc, &err), NS_OK, "%s", err.msg);
    char path[K][512];
    int interrupted = 0;
    for (int k = 0; k < K; k++) {
        interrupted += gr.a.tr[k].interrupted;
        snprintf(path[k], sizeof path[k], "%s/m%d.ckpt", dir, k);
        cr_assert_eq(ns_trainer_save(&gr.a.tr[k], path[k], &err), NS_OK, "%s", err.msg);
    }
    cr_assert_geq(interrupted, 3, "the flag should interrupt the members still training");
    cr_assert(gr.a.tr[0].epoch_step > 0, "the interruption should fall inside an epoch");
    group_free(&gr);

    /* a fresh array from the checkpoints (the weights come from them) */
    group_start(&gr, be, c);
    for (int k = 0; k < K; k++)
        cr_assert_eq(ns_trainer_load(&gr.a.tr[k], path[k], &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_trainer_array_run(&gr.a, 0, keep_member, rc, &err), NS_OK, "%s", err.msg);
    compare_with_alone(&gr, c, rc, -1, 0);
    free(rc);
    group_free(&gr);
    ns_backend_free(be);
    free(dir);
}

Test(array, refuses_runs_that_cannot_share_steps)
{
    ns_err err = {0};
    ns_backend *be = ns_backend_cpu_alloc(1, &err);
    member_cfg c[K];
    configs(c);
    ns_mlp_spec specs[2] = {c[0].mlp, c[1].mlp};
    specs[1].hidden[1] = 9;
    cr_assert_null(ns_mlp_group_alloc(specs, 2, be, 64, &err));
    cr_assert_eq(err.code, NS_EINPUT);
    cr_assert(strstr(err.msg, "other layer widths"), "%s", err.msg);

    specs[1] = c[1].mlp;
    ns_mlp_group *g = ns_mlp_group_alloc(specs, 2, be, 64, &err);
    cr_assert(g, "%s", err.msg);
    ns_net *nets[2] = {&g->m[0]->net, &g->m[1]->net};
    ns_train_spec ts[2] = {c[0].train, c[1].train};
    ns_trainer_array a;
    ts[1].batch_size = 16;
    cr_assert_eq(ns_trainer_array_init(&a, ts, 2, be, nets, &g->net, &train_rows, &val_rows, &err),
                 NS_EINPUT);
    cr_assert(strstr(err.msg, "same batches"), "%s", err.msg);
    ts[1] = c[1].train;
    ts[1].budget = NS_BUDGET_SECONDS;
    ts[1].seconds = 5;
    cr_assert_eq(ns_trainer_array_init(&a, ts, 2, be, nets, &g->net, &train_rows, &val_rows, &err),
                 NS_EINPUT);
    cr_assert(strstr(err.msg, "seconds budget"), "%s", err.msg);
    ns_mlp_group_free(g);
    ns_backend_free(be);
}

/* ---- the search's entry: ns_run_training_array ----------------------------------------- */

#define NR 3

static int no_records(void *user, const ns_epoch_record *rec)
{
    (void)user, (void)rec;
    return 0;
}

/* Three configs of one shape on configs/data/tiny.csv, trained by ns_run_training_array
 * with the n-th CPU buffer allocation from its start failing (n < 0: none); res gets the
 * results, rc and err each member's outcome. */
static void run_array(long fail_at, const char *bad_ckpt, ns_run_result *res, int *rc, ns_err *err)
{
    static const char *const opt[NR] = {"adam", "sgd", "rmsprop"};
    ns_config c[NR];
    const ns_config *cp[NR];
    void *user[NR] = {0};
    ns_run_out out[NR] = {0};
    ns_prepared p;
    ns_err e = {0};
    for (int k = 0; k < NR; k++) {
        char text[512];
        snprintf(text, sizeof text,
                 "data: {train: %s/configs/data/tiny.csv, val_fraction: 0.2}\n"
                 "model: {hidden: [12, 6], dropout: %g}\n"
                 "train: {epochs: 3, batch_size: 32, optimizer: %s, lr: %g, seed: %d}\n",
                 NS_SOURCE_DIR, 0.1 * k, opt[k], 0.01 * (k + 1), 7 + k);
        cr_assert_eq(ns_config_parse(&c[k], "array-test.yaml", text, strlen(text), &e), NS_OK,
                     "%s", e.msg);
        cp[k] = &c[k];
    }
    out[1].checkpoint = bad_ckpt;
    cr_assert_eq(ns_prepare_data(&p, &c[0], &e), NS_OK, "%s", e.msg);
    ns_backend_cpu_fail_alloc_after(fail_at);
    ns_run_training_array(cp, NR, &p, no_records, user, out, NULL, res, rc, err);
    ns_backend_cpu_fail_alloc_after(-1);
    ns_prepared_free(&p);
    for (int k = 0; k < NR; k++)
        ns_config_free(&c[k]);
}

Test(array, a_group_the_backend_cannot_allocate_trains_its_members_alone)
{
    ns_run_result together[NR] = {0}, alone[NR] = {0};
    int rc[NR];
    ns_err err[NR];
    memset(err, 0, sizeof err);
    run_array(-1, NULL, together, rc, err);
    for (int k = 0; k < NR; k++)
        cr_assert_eq(rc[k], NS_OK, "member %d: %s", k, err[k].msg);
    /* the group's first buffer (its parameters, K times one model's) cannot be had */
    run_array(0, NULL, alone, rc, err);
    for (int k = 0; k < NR; k++) {
        cr_assert_eq(rc[k], NS_OK, "member %d trained alone: %s", k, err[k].msg);
        cr_assert_eq(alone[k].epochs, 3);
        cr_assert(together[k].val_loss == alone[k].val_loss && together[k].val_acc == alone[k].val_acc,
                  "member %d: val_loss %.9g together, %.9g alone", k, together[k].val_loss,
                  alone[k].val_loss);
    }
}

Test(array, a_member_whose_checkpoint_is_refused_fails_alone)
{
    char *bad = tu_write_temp("not-a-checkpoint", "garbage", 7);
    ns_run_result res[NR] = {0};
    int rc[NR];
    ns_err err[NR];
    memset(err, 0, sizeof err);
    run_array(-1, bad, res, rc, err);
    cr_assert_eq(rc[1], NS_EINPUT, "member 1: code %d (%s)", rc[1], err[1].msg);
    cr_assert_eq(rc[0], NS_OK, "%s", err[0].msg);
    cr_assert_eq(rc[2], NS_OK, "%s", err[2].msg);
    cr_assert_eq(res[0].epochs, 3);
    cr_assert_eq(res[2].epochs, 3);
    free(bad);
}
