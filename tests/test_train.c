/* test_train.c — the training loop: determinism (same seed, same bits), exact checkpoint
 * round trips (N epochs straight = k epochs, checkpoint, restore, N - k epochs), budgets,
 * early stopping keeping the best weights, clipping, and that training actually learns. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "engine/backend/backend.h"
#include "engine/rng.h"
#include "engine/train/metrics.h"
#include "engine/train/train.h"
#include "model/mlp.h"
#include "search/stages/driver.h"
#include "search/stages/pipeline.h"
#include "tests/testutil.h"

typedef struct run {
    ns_backend *be;
    ns_mlp *m;
    ns_trainer tr;
    ns_epoch_record recs[64];
    int n_recs;
} run;

static int keep_record(void *user, const ns_epoch_record *rec)
{
    run *r = user;
    if (r->n_recs < 64)
        r->recs[r->n_recs++] = *rec;
    return 0;
}

static void run_start(run *r, const ns_train_spec *ts, const ns_dataset *tr, const ns_dataset *va,
                      float dropout, ns_opt_kind opt)
{
    memset(r, 0, sizeof *r);
    ns_err err = {0};
    r->be = ns_backend_cpu_alloc(1, &err);
    ns_mlp_spec spec = {.n_in = tr->d, .n_out = 3, .n_hidden = 2, .hidden = {16, 8},
                        .act = NS_ACT_RELU, .dropout = dropout};
    r->m = ns_mlp_alloc(&spec, r->be, ts->batch_size > ts->eval_batch ? ts->batch_size : ts->eval_batch, &err);
    cr_assert(r->m, "%s", err.msg);
    ns_rng rng;
    ns_rng_seed(&rng, 99);
    cr_assert_eq(ns_mlp_init_params(r->m, &rng, NULL), NS_OK);
    ns_train_spec s = *ts;
    ns_optim_spec_default(&s.opt, opt);
    cr_assert_eq(ns_trainer_init(&r->tr, &s, r->be, &r->m->net, tr, va, &err), NS_OK, "%s", err.msg);
}

static void run_free(run *r)
{
    ns_trainer_free(&r->tr);
    ns_mlp_free(r->m);
    ns_backend_free(r->be);
}

static ns_train_spec base_spec(void)
{
    ns_train_spec s;
    ns_train_spec_default(&s);
    s.epochs = 6;
    s.batch_size = 32;
    s.eval_batch = 64;
    s.lr = 0.01;
    s.seed = 5;
    s.sched.kind = NS_SCHED_COSINE;
    return s;
}

static int same_bits(const run *a, const run *b)
{
    return a->m->n_params == b->m->n_params &&
           !memcmp(a->m->params, b->m->params, a->m->n_params * sizeof(float));
}

Test(train, learns_separable_blobs)
{
    ns_dataset tr, va;
    tu_blobs(&tr, 600, 6, 1, 0.5);
    tu_blobs(&va, 300, 6, 2, 0.5);
    ns_train_spec s = base_spec();
    run r;
    run_start(&r, &s, &tr, &va, 0.0f, NS_OPT_ADAM);
    ns_err err = {0};
    cr_assert_eq(ns_trainer_run(&r.tr, 0, keep_record, &r, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(r.n_recs, 6);
    cr_assert(r.recs[5].val_acc > 0.95, "val_acc %g", r.recs[5].val_acc);
    cr_assert(r.recs[5].train_loss < r.recs[0].train_loss);
    cr_assert(r.recs[0].grad_norm > 0 && isfinite(r.recs[0].grad_norm));
    cr_assert_eq(r.recs[0].n_groups, 3);
    for (int g = 0; g < 3; g++)
        cr_assert(r.recs[0].group_grad_norm[g] > 0);
    cr_assert(r.recs[0].samples_per_s > 0);
    cr_assert_eq(r.recs[5].step, 6 * ((600 + 31) / 32));
    run_free(&r);
    ns_dataset_free(&tr);
    ns_dataset_free(&va);
}

static void check_deterministic(ns_opt_kind opt, float dropout)
{
    ns_dataset tr, va;
    tu_blobs(&tr, 500, 6, 1, 1.0);
    tu_blobs(&va, 100, 6, 2, 1.0);
    ns_train_spec s = base_spec();
    run a, b;
    ns_err err = {0};
    run_start(&a, &s, &tr, &va, dropout, opt);
    run_start(&b, &s, &tr, &va, dropout, opt);
    cr_assert_eq(ns_trainer_run(&a.tr, 0, keep_record, &a, &err), NS_OK);
    cr_assert_eq(ns_trainer_run(&b.tr, 0, keep_record, &b, &err), NS_OK);
    cr_assert(same_bits(&a, &b), "two runs with the same seed differ (%s)", ns_opt_kind_name(opt));
    for (int e = 0; e < a.n_recs; e++)
        cr_assert_eq(memcmp(&a.recs[e].train_loss, &b.recs[e].train_loss, sizeof(double)), 0);
    run_free(&a);
    run_free(&b);
    /* a different seed gives a different run */
    ns_train_spec s2 = s;
    s2.seed = 6;
    run_start(&a, &s2, &tr, &va, dropout, opt);
    run_start(&b, &s, &tr, &va, dropout, opt);
    ns_trainer_run(&a.tr, 0, NULL, NULL, &err);
    ns_trainer_run(&b.tr, 0, NULL, NULL, &err);
    cr_assert(!same_bits(&a, &b));
    run_free(&a);
    run_free(&b);
    ns_dataset_free(&tr);
    ns_dataset_free(&va);
}

Test(train, deterministic_every_optimizer)
{
    check_deterministic(NS_OPT_SGD, 0.0f);
    check_deterministic(NS_OPT_ADAM, 0.2f);
    check_deterministic(NS_OPT_ADAMW, 0.0f);
    check_deterministic(NS_OPT_RMSPROP, 0.1f);
}

/* N epochs straight versus k epochs, save, a fresh process state, load, N - k epochs. */
static void check_roundtrip(ns_sched_kind sched, int patience, ns_opt_kind opt, int k)
{
    ns_dataset tr, va;
    tu_blobs(&tr, 400, 6, 3, 1.2);
    tu_blobs(&va, 120, 6, 4, 1.2);
    ns_train_spec s = base_spec();
    s.sched.kind = sched;
    ns_sched_spec_default(&s.sched, sched);
    s.patience = patience;
    s.epochs = 7;
    s.clip_norm = 0.5;
    ns_err err = {0};
    run straight, first, second;
    run_start(&straight, &s, &tr, &va, 0.1f, opt);
    cr_assert_eq(ns_trainer_run(&straight.tr, 0, keep_record, &straight, &err), NS_OK);

    run_start(&first, &s, &tr, &va, 0.1f, opt);
    cr_assert_eq(ns_trainer_run(&first.tr, k, keep_record, &first, &err), NS_OK);
    char *dir = tu_temp_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/ckpt.bin", dir);
    cr_assert_eq(ns_trainer_save(&first.tr, path, &err), NS_OK, "%s", err.msg);
    run_free(&first);

    /* A fresh run with different initial weights: everything must come from the file. */
    run_start(&second, &s, &tr, &va, 0.1f, opt);
    ns_rng other;
    ns_rng_seed(&other, 12345);
    cr_assert_eq(ns_mlp_init_params(second.m, &other, NULL), NS_OK);
    cr_assert_eq(ns_trainer_load(&second.tr, path, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_trainer_run(&second.tr, 0, keep_record, &second, &err), NS_OK);
    cr_assert(same_bits(&straight, &second), "resumed run differs (sched %s, patience %d, k %d)",
              ns_sched_kind_name(sched), patience, k);
    cr_assert_eq(straight.tr.epoch, second.tr.epoch);
    cr_assert_eq(straight.tr.step, second.tr.step);
    ns_epoch_record *last_a = &straight.recs[straight.n_recs - 1], *last_b = &second.recs[second.n_recs - 1];
    cr_assert_eq(last_a->epoch, last_b->epoch);
    cr_assert_eq(memcmp(&last_a->val_loss, &last_b->val_loss, sizeof(double)), 0);
    unlink(path);
    rmdir(dir);
    free(dir);
    run_free(&straight);
    run_free(&second);
    ns_dataset_free(&tr);
    ns_dataset_free(&va);
}

Test(train, checkpoint_roundtrip_is_exact)
{
    check_roundtrip(NS_SCHED_COSINE, 0, NS_OPT_ADAM, 3);
    check_roundtrip(NS_SCHED_PLATEAU, 2, NS_OPT_SGD, 2);
    check_roundtrip(NS_SCHED_ONECYCLE, 0, NS_OPT_RMSPROP, 5);
    check_roundtrip(NS_SCHED_STEP, 3, NS_OPT_ADAMW, 1);
}

Test(train, corrupt_checkpoint_is_refused)
{
    ns_dataset tr;
    tu_blobs(&tr, 100, 6, 3, 1.0);
    ns_train_spec s = base_spec();
    run r;
    ns_err err = {0};
    run_start(&r, &s, &tr, NULL, 0.0f, NS_OPT_ADAM);
    ns_trainer_run(&r.tr, 1, NULL, NULL, &err);
    char *dir = tu_temp_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/ckpt.bin", dir);
    cr_assert_eq(ns_trainer_save(&r.tr, path, &err), NS_OK);
    FILE *f = fopen(path, "r+b");
    fseek(f, 100, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 100, SEEK_SET);
    fputc(c ^ 0x55, f);
    fclose(f);
    cr_assert_eq(ns_trainer_load(&r.tr, path, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "checksum"), "%s", err.msg);
    truncate(path, 10);
    cr_assert_eq(ns_trainer_load(&r.tr, path, &err), NS_EINPUT);
    unlink(path);
    cr_assert_eq(ns_trainer_load(&r.tr, path, &err), NS_EINPUT);
    rmdir(dir);
    free(dir);
    run_free(&r);
    ns_dataset_free(&tr);
}

/* Sets the int64 at byte off of checkpoint path to v and makes its CRC-32 right again, as a
 * file written by a buggy or hostile writer would be. */
static void patch_checkpoint(const char *path, long off, int64_t v)
{
    FILE *f = fopen(path, "r+b");
    cr_assert(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    unsigned char *buf = malloc((size_t)size);
    fseek(f, 0, SEEK_SET);
    cr_assert_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    memcpy(buf + off, &v, sizeof v);
    uint32_t crc = (uint32_t)crc32(0L, buf, (uInt)(size - 4));
    memcpy(buf + size - 4, &crc, 4);
    fseek(f, 0, SEEK_SET);
    fwrite(buf, 1, (size_t)size, f);
    fclose(f);
    free(buf);
}

/* Found by fuzzing (tests/fuzz/regressions/ckpt/): a checkpoint with a valid checksum but
 * a position in the epoch beyond its steps made the resumed run index the row order out of
 * bounds. The counters are now checked against the run. */
Test(train, checkpoint_with_impossible_counters_is_refused)
{
    ns_dataset tr;
    tu_blobs(&tr, 100, 6, 3, 1.0);
    ns_train_spec s = base_spec();
    run r;
    ns_err err = {0};
    run_start(&r, &s, &tr, NULL, 0.0f, NS_OPT_ADAM);
    ns_trainer_run(&r.tr, 1, NULL, NULL, &err);
    char *dir = tu_temp_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/ckpt.bin", dir);
    /* magic 8, version 4, n_params 8, tag 8, epoch 4: step at 32; ... rng 32 bytes at 68,
     * in_epoch at 100, epoch_step at 104 */
    const struct { long off; int64_t v; } bad[] = {
        {104, INT64_C(-7531100774462289218)}, {104, 1000}, {32, -1}, {32, INT64_MAX}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(ns_trainer_save(&r.tr, path, &err), NS_OK);
        cr_assert_eq(ns_trainer_load(&r.tr, path, &err), NS_OK, "%s", err.msg);
        patch_checkpoint(path, bad[i].off, bad[i].v);
        cr_assert_eq(ns_trainer_load(&r.tr, path, &err), NS_EINPUT, "case %zu", i);
        cr_assert(strstr(err.msg, "impossible state"), "%s", err.msg);
        run_free(&r); /* a failed load leaves the trainer to be freed */
        run_start(&r, &s, &tr, NULL, 0.0f, NS_OPT_ADAM);
        ns_trainer_run(&r.tr, 1, NULL, NULL, &err);
    }
    unlink(path);
    rmdir(dir);
    free(dir);
    run_free(&r);
    ns_dataset_free(&tr);
}

Test(train, step_budget_and_partial_epoch)
{
    ns_dataset tr;
    tu_blobs(&tr, 100, 6, 3, 1.0);
    ns_train_spec s = base_spec();
    s.budget = NS_BUDGET_STEPS;
    s.steps = 10; /* 4 steps per epoch: 2.5 epochs */
    run r;
    ns_err err = {0};
    run_start(&r, &s, &tr, NULL, 0.0f, NS_OPT_SGD);
    cr_assert_eq(ns_trainer_run(&r.tr, 0, keep_record, &r, &err), NS_OK);
    cr_assert_eq(r.tr.step, 10);
    cr_assert_eq(r.n_recs, 3);
    cr_assert(isnan(r.recs[0].val_loss));
    run_free(&r);
    ns_dataset_free(&tr);
}

Test(train, seconds_budget_stops)
{
    ns_dataset tr;
    tu_blobs(&tr, 2000, 6, 3, 1.0);
    ns_train_spec s = base_spec();
    s.budget = NS_BUDGET_SECONDS;
    s.seconds = 0.3;
    run r;
    ns_err err = {0};
    run_start(&r, &s, &tr, NULL, 0.0f, NS_OPT_ADAM);
    cr_assert_eq(ns_trainer_run(&r.tr, 0, NULL, NULL, &err), NS_OK);
    cr_assert(r.tr.elapsed >= 0.3 && r.tr.elapsed < 2.0, "elapsed %g", r.tr.elapsed);
    run_free(&r);
    ns_dataset_free(&tr);
}

Test(train, early_stopping_keeps_best_weights)
{
    /* Noisy labels and a high LR: validation accuracy peaks early, then patience ends it. */
    ns_dataset tr, va;
    tu_blobs(&tr, 300, 6, 7, 2.5);
    tu_blobs(&va, 200, 6, 8, 2.5);
    ns_train_spec s = base_spec();
    s.epochs = 40;
    s.patience = 2;
    s.lr = 0.05;
    s.sched.kind = NS_SCHED_CONSTANT;
    run r;
    ns_err err = {0};
    run_start(&r, &s, &tr, &va, 0.0f, NS_OPT_ADAM);
    cr_assert_eq(ns_trainer_run(&r.tr, 0, keep_record, &r, &err), NS_OK);
    cr_assert(r.tr.stopped_early, "did not stop early in %d epochs", r.tr.epoch);
    cr_assert_eq(r.tr.epoch, r.tr.best_epoch + 2);
    double loss, acc, rmse;
    cr_assert_eq(ns_trainer_evaluate(&r.tr, &va, &loss, &acc, &rmse, NULL, NULL, &err), NS_OK);
    double best = r.recs[r.tr.best_epoch - 1].val_acc;
    cr_assert_eq(acc, best, "restored weights give %g, best epoch had %g", acc, best);
    run_free(&r);
    ns_dataset_free(&tr);
    ns_dataset_free(&va);
}

/* The confusion table of the model's argmax on ds, counted here from the logits, and
 * each row's argmax into args (when not NULL). */
static void confusion_by_hand(ns_mlp *m, const ns_dataset *ds, long conf[9], int32_t *args)
{
    memset(conf, 0, 9 * sizeof *conf);
    for (long i = 0; i < ds->n; i++) {
        const float *z = ns_mlp_forward(m, ds->x + (size_t)i * ds->d, 1, 0, 0);
        int arg = 0;
        for (int k = 1; k < 3; k++)
            if (z[k] > z[arg])
                arg = k;
        conf[ds->y[i] * 3 + arg]++;
        if (args)
            args[i] = arg;
    }
}

Test(train, early_stopping_watches_the_monitored_metric)
{
    /* The same noisy run as above, its best epoch chosen by macro-F1 and by balanced
     * accuracy: every epoch records both (equal to those of a confusion table counted by
     * hand from the logits), the kept epoch is the first with the best monitored value,
     * and the restored weights score it. */
    ns_dataset tr, va;
    tu_blobs(&tr, 300, 6, 7, 2.5);
    tu_blobs(&va, 200, 6, 8, 2.5);
    for (long i = 0; i < va.n; i += 3) /* class 2 rarer among the validation rows */
        if (va.y[i] == 2)
            va.y[i] = 0;
    const ns_monitor monitors[2] = {NS_MONITOR_F1, NS_MONITOR_BACC};
    for (int k = 0; k < 2; k++) {
        ns_train_spec s = base_spec();
        s.epochs = 40;
        s.patience = 2;
        s.lr = 0.05;
        s.sched.kind = NS_SCHED_CONSTANT;
        s.monitor = monitors[k];
        run r;
        ns_err err = {0};
        run_start(&r, &s, &tr, &va, 0.0f, NS_OPT_ADAM);
        cr_assert_eq(ns_trainer_run(&r.tr, 0, keep_record, &r, &err), NS_OK);
        cr_assert(r.tr.stopped_early);
        int best = 0;
        for (int e = 0; e < r.n_recs; e++) {
            double v = k == 0 ? r.recs[e].val_f1 : r.recs[e].val_bacc;
            cr_assert(isfinite(r.recs[e].val_f1) && isfinite(r.recs[e].val_bacc));
            if (v > (k == 0 ? r.recs[best].val_f1 : r.recs[best].val_bacc))
                best = e;
        }
        int best_acc = 0;
        for (int e = 0; e < r.n_recs; e++)
            if (r.recs[e].val_acc > r.recs[best_acc].val_acc)
                best_acc = e;
        /* on these rows balanced accuracy peaks later than accuracy: watching accuracy
         * would keep epoch 4 and stop at 6 */
        cr_assert(k == 0 || best != best_acc, "balanced accuracy peaks with accuracy here");
        cr_assert_eq(r.tr.best_epoch, best + 1, "monitor %d kept epoch %d, the best is %d", k,
                     r.tr.best_epoch, best + 1);
        double loss, acc, rmse, bacc, f1, hb, hf;
        /* with eval_pred set the evaluation also writes each row's class, over batches of
         * 64 rows (200 rows: the last one partial) */
        int32_t pred[200], args[200];
        for (int i = 0; i < 200; i++)
            pred[i] = -1;
        r.tr.spec.eval_batch = 64;
        r.tr.eval_pred = pred;
        cr_assert_eq(ns_trainer_evaluate(&r.tr, &va, &loss, &acc, &rmse, &bacc, &f1, &err), NS_OK);
        r.tr.eval_pred = NULL;
        cr_assert_eq(f1, r.recs[best].val_f1);
        cr_assert_eq(bacc, r.recs[best].val_bacc);
        long conf[9];
        confusion_by_hand(r.m, &va, conf, args);
        ns_class_metrics(conf, 3, &hb, &hf);
        cr_assert_eq(bacc, hb);
        cr_assert_eq(f1, hf);
        cr_assert_eq(va.n, 200);
        cr_assert_arr_eq(pred, args, sizeof pred, "the evaluation's classes are the argmax of the logits");
        run_free(&r);
    }
    ns_dataset_free(&tr);
    ns_dataset_free(&va);
}

Test(train, divergence_stops_the_run_not_the_program)
{
    ns_dataset tr;
    tu_blobs(&tr, 200, 6, 3, 1.0);
    ns_train_spec s = base_spec();
    s.lr = 1e30;
    s.opt.kind = NS_OPT_SGD;
    run r;
    ns_err err = {0};
    run_start(&r, &s, &tr, NULL, 0.0f, NS_OPT_SGD);
    cr_assert_eq(ns_trainer_run(&r.tr, 0, keep_record, &r, &err), NS_OK);
    cr_assert(r.tr.stopped_early);
    cr_assert(isnan(r.recs[r.n_recs - 1].train_loss));
    cr_assert(r.n_recs < 6);
    run_free(&r);
    ns_dataset_free(&tr);
}

/* A step whose loss is not finite changes nothing (the update waits on the loss where the
 * backend left it): the run ends with the weights, optimizer state and step count of the
 * steps before it, as a run budgeted to those steps. */
static ns_net nan_inner;
static int nan_after;
static int nan_batch(void *ctx, const float *x, const int32_t *y, const float *t, int B,
                     int training, uint64_t seed, ns_batch_out *out, ns_err *err)
{
    int rc = nan_inner.batch(ctx, x, y, t, B, training, seed, out, err);
    ns_net *net = &((ns_mlp *)ctx)->net;
    if (training && --nan_after == 0) {
        cr_assert_not_null(net->res, "a training batch should leave its loss on the device");
        net->res[NS_RES_LOSS] = NAN; /* the CPU backend's device memory is the host's */
    }
    return rc;
}

Test(train, a_step_whose_loss_blew_up_changes_nothing)
{
    ns_dataset tr;
    tu_blobs(&tr, 200, 6, 3, 1.0);
    for (int clip = 0; clip < 2; clip++) {
        ns_train_spec s = base_spec();
        s.sched.kind = NS_SCHED_CONSTANT; /* the same LRs whatever the budget */
        s.clip_norm = clip ? 0.5 : 0;
        ns_err err = {0};
        run blown, short_run;
        run_start(&blown, &s, &tr, NULL, 0.1f, NS_OPT_ADAM);
        nan_inner = blown.m->net;
        blown.m->net.batch = nan_batch;
        nan_after = 9; /* the 9th step: the first epoch has 7 */
        cr_assert_eq(ns_trainer_run(&blown.tr, 0, keep_record, &blown, &err), NS_OK);
        cr_assert_eq(blown.tr.step, 8);
        cr_assert_eq(blown.tr.opt.t, 8, "clip %d: the optimizer counted %ld steps", clip,
                     blown.tr.opt.t);
        cr_assert(blown.recs[blown.n_recs - 1].diverged, "clip %d: not marked diverged", clip);

        s.budget = NS_BUDGET_STEPS;
        s.steps = 8;
        run_start(&short_run, &s, &tr, NULL, 0.1f, NS_OPT_ADAM);
        cr_assert_eq(ns_trainer_run(&short_run.tr, 0, NULL, NULL, &err), NS_OK);
        cr_assert_eq(short_run.tr.step, 8);
        cr_assert(memcmp(blown.m->params, short_run.m->params,
                         blown.m->n_params * sizeof(float)) == 0,
                  "clip %d: the blown-up step changed the weights", clip);
        cr_assert(memcmp(blown.tr.opt.m, short_run.tr.opt.m,
                         blown.m->n_params * sizeof(float)) == 0,
                  "clip %d: the blown-up step changed the optimizer's state", clip);
        run_free(&blown);
        run_free(&short_run);
    }
    ns_dataset_free(&tr);
}

/* Interrupt a run between two steps in the middle of an epoch through the stop flag,
 * checkpoint, continue in a fresh trainer: the same bits as a run never interrupted. */
static ns_stop_flag stop_flag;
static int batches_left;
static ns_net inner;
static int counting_batch(void *ctx, const float *x, const int32_t *y, const float *t, int B,
                          int training, uint64_t seed, ns_batch_out *out, ns_err *err)
{
    if (training && --batches_left == 0)
        atomic_store(&stop_flag, 1);
    return inner.batch(ctx, x, y, t, B, training, seed, out, err);
}

static void interrupted_resumes_exactly(int stop_after_batches, int want_epoch, long want_step)
{
    ns_dataset tr, va;
    tu_blobs(&tr, 400, 6, 3, 1.2);
    tu_blobs(&va, 120, 6, 4, 1.2);
    ns_train_spec s = base_spec();
    s.epochs = 4;
    s.patience = 3;
    ns_sched_spec_default(&s.sched, NS_SCHED_PLATEAU);
    ns_err err = {0};
    run straight, first, second;
    run_start(&straight, &s, &tr, &va, 0.2f, NS_OPT_ADAM);
    cr_assert_eq(ns_trainer_run(&straight.tr, 0, keep_record, &straight, &err), NS_OK);

    run_start(&first, &s, &tr, &va, 0.2f, NS_OPT_ADAM);
    inner = first.m->net;
    first.m->net.batch = counting_batch;
    atomic_store(&stop_flag, 0);
    batches_left = stop_after_batches;
    first.tr.stop = &stop_flag;
    cr_assert_eq(ns_trainer_run(&first.tr, 0, keep_record, &first, &err), NS_OK);
    cr_assert(first.tr.interrupted);
    cr_assert_eq(first.tr.epoch, want_epoch - 1);
    cr_assert_eq(first.tr.epoch_step, want_step);
    char *dir = tu_temp_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/ckpt.bin", dir);
    cr_assert_eq(ns_trainer_save(&first.tr, path, &err), NS_OK, "%s", err.msg);
    run_free(&first);

    run_start(&second, &s, &tr, &va, 0.2f, NS_OPT_ADAM);
    second.n_recs = 0;
    cr_assert_eq(ns_trainer_load(&second.tr, path, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(second.tr.epoch_step, want_step);
    cr_assert_eq(ns_trainer_run(&second.tr, 0, keep_record, &second, &err), NS_OK);
    cr_assert(!second.tr.interrupted);
    cr_assert(same_bits(&straight, &second), "resumed mid-epoch run differs");
    /* the interrupted epoch's record equals the unbroken one (timings aside) */
    const ns_epoch_record *a = &second.recs[0], *b = &straight.recs[want_epoch - 1];
    cr_assert_eq(a->epoch, want_epoch);
    cr_assert_eq(memcmp(&a->train_loss, &b->train_loss, sizeof(double)), 0);
    cr_assert_eq(memcmp(&a->grad_norm, &b->grad_norm, sizeof(double)), 0);
    cr_assert_eq(memcmp(&a->val_loss, &b->val_loss, sizeof(double)), 0);
    unlink(path);
    rmdir(dir);
    free(dir);
    run_free(&straight);
    run_free(&second);
    ns_dataset_free(&tr);
    ns_dataset_free(&va);
}

/* 13 steps per epoch. The flag is raised while a batch runs and seen before the next step. */
Test(train, interrupted_mid_epoch_resumes_exactly) { interrupted_resumes_exactly(13 + 5, 2, 5); }
/* Raised during the last batch of epoch 1: seen when epoch 2 has drawn its order and not
 * yet stepped. */
Test(train, interrupted_at_epoch_start_resumes_exactly) { interrupted_resumes_exactly(13, 2, 0); }

/* The stop flag is written by a signal handler and read by the pool's threads: every
 * interface that carries it takes the lock-free atomic (a volatile int or sig_atomic_t
 * read by another thread is a data race). */
#define IS_STOP_FLAG(e) _Generic((e), const ns_stop_flag *: 1, default: 0)
_Static_assert(IS_STOP_FLAG(((ns_trainer *)0)->stop), "ns_trainer.stop is an ns_stop_flag");
_Static_assert(IS_STOP_FLAG(((ns_search_opts *)0)->stop), "ns_search_opts.stop is an ns_stop_flag");

static void *raise_stop_later(void *arg)
{
    usleep(50 * 1000);
    atomic_store((ns_stop_flag *)arg, 1);
    return NULL;
}

/* Raised by another thread while a long run trains: the run stops within a step. */
Test(train, stop_raised_by_another_thread)
{
    ns_dataset tr;
    tu_blobs(&tr, 2000, 6, 3, 1.0);
    ns_train_spec s = base_spec();
    s.epochs = 1000000;
    run r;
    ns_err err = {0};
    run_start(&r, &s, &tr, NULL, 0.0f, NS_OPT_ADAM);
    static ns_stop_flag flag;
    atomic_store(&flag, 0);
    r.tr.stop = &flag;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, raise_stop_later, &flag), 0);
    cr_assert_eq(ns_trainer_run(&r.tr, 0, NULL, NULL, &err), NS_OK, "%s", err.msg);
    pthread_join(th, NULL);
    cr_assert(r.tr.interrupted);
    cr_assert(r.tr.epoch < 1000000);
    run_free(&r);
    ns_dataset_free(&tr);
}

/* Every buffer allocation of model and trainer set-up fails in turn: each failure is
 * reported as NS_ERUNTIME and unwinds cleanly; past the last one, set-up succeeds. */
Test(train, every_allocation_failure_is_reported)
{
    ns_dataset tr;
    tu_blobs(&tr, 100, 6, 3, 1.0);
    ns_train_spec s = base_spec();
    s.patience = 2;
    int succeeded = 0;
    for (long k = 0; k < 64 && !succeeded; k++) {
        ns_err err = {0};
        ns_backend *be = ns_backend_cpu_alloc(1, &err);
        ns_backend_cpu_fail_alloc_after(k);
        ns_mlp_spec spec = {.n_in = 6, .n_out = 3, .n_hidden = 1, .hidden = {5}};
        ns_mlp *m = ns_mlp_alloc(&spec, be, 64, &err);
        ns_trainer t;
        memset(&t, 0, sizeof t);
        int rc = m ? ns_trainer_init(&t, &s, be, &m->net, &tr, &tr, &err) : err.code;
        ns_backend_cpu_fail_alloc_after(-1);
        if (rc == NS_OK) {
            succeeded = 1;
            cr_assert_gt(k, 3, "only %ld allocations before success", k);
            cr_assert_eq(ns_trainer_run(&t, 1, NULL, NULL, &err), NS_OK);
        } else {
            cr_assert_eq(rc, NS_ERUNTIME, "allocation %ld: code %d (%s)", k, rc, err.msg);
            cr_assert(strstr(err.msg, "out of memory"), "allocation %ld: %s", k, err.msg);
        }
        ns_trainer_free(&t);
        ns_mlp_free(m);
        ns_backend_free(be);
    }
    cr_assert(succeeded);
    ns_dataset_free(&tr);
}
