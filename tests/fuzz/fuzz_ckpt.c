/* fuzz_ckpt.c — libFuzzer target for the training checkpoint reader (ns_trainer_load).
 * Byte 0 picks the run the checkpoint is loaded into: bits 1-2 the optimizer (SGD with
 * momentum, Adam, AdamW, RMSprop), bit 3 early stopping (a best-weights buffer); bit 0 set
 * leaves the file as it is, clear makes its last 4 bytes the CRC-32 of the rest, so
 * mutations reach the fields behind the checksum. The rest of the input is the file (a
 * memory file). A checkpoint that loads is then trained on for two epochs: whatever it
 * holds must not make the trainer read or write out of bounds.
 * With --make-seeds DIR (replay build) it writes valid checkpoints of every such run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend/backend.h"
#include "engine/train/train.h"
#include "model/mlp.h"
#include "tests/fuzz/fuzz_util.h"

enum { ROWS = 10, FEATURES = 3, CLASSES = 3, BATCH = 4 };

static ns_backend *be;
static ns_dataset train_ds;
static float xs[ROWS * FEATURES];
static int32_t ys[ROWS];

typedef struct run {
    ns_mlp *m;
    ns_trainer tr;
} run;

/* A fresh run of the tiny network for mode bits (weights from a fixed stream). */
static int run_start(run *r, unsigned mode)
{
    ns_err err;
    if (!be) {
        if (!(be = ns_backend_cpu_alloc(1, &err)))
            abort();
        for (int i = 0; i < ROWS; i++) {
            ys[i] = i % CLASSES;
            for (int j = 0; j < FEATURES; j++)
                xs[i * FEATURES + j] = (float)((i * 7 + j * 3) % 5) - 2.0f + (j == ys[i]);
        }
        train_ds = (ns_dataset){.n = ROWS, .d = FEATURES, .task = NS_TASK_CLASSIFY, .x = xs,
                                .y = ys, .n_classes = CLASSES};
    }
    memset(r, 0, sizeof *r);
    ns_mlp_spec spec = {.n_in = FEATURES, .n_out = CLASSES, .n_hidden = 1, .hidden = {4},
                        .act = NS_ACT_RELU, .dropout = 0.25f};
    ns_train_spec s;
    ns_train_spec_default(&s);
    s.epochs = 3;
    s.batch_size = BATCH;
    s.eval_batch = BATCH;
    s.seed = 5;
    s.patience = mode & 8 ? 2 : 0;
    static const ns_opt_kind kinds[4] = {NS_OPT_SGD, NS_OPT_ADAM, NS_OPT_ADAMW, NS_OPT_RMSPROP};
    ns_optim_spec_default(&s.opt, kinds[(mode >> 1) & 3]);
    if (!(r->m = ns_mlp_alloc(&spec, be, BATCH, &err)))
        abort();
    ns_rng rng;
    ns_rng_seed(&rng, 3);
    if (ns_mlp_init_params(r->m, &rng, &err) ||
        ns_trainer_init(&r->tr, &s, be, &r->m->net, &train_ds, &train_ds, &err))
        abort();
    return 0;
}

static void run_free(run *r)
{
    ns_trainer_free(&r->tr);
    ns_mlp_free(r->m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    size_t n = size - 1;
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return 0;
    memcpy(b, data + 1, n);
    if (!(mode & 1) && n >= 4)
        fz_put_u32(b + n - 4, fz_crc32(b, n - 4));
    const char *path = fz_memfile(0, b, n, 0);
    free(b);
    run r;
    run_start(&r, mode);
    ns_err err;
    if (fz_report(ns_trainer_load(&r.tr, path, &err), &err) == NS_OK)
        (void)ns_trainer_run(&r.tr, 2, NULL, NULL, &err);
    run_free(&r);
    return 0;
}

/* Valid checkpoints of each run (before training, after one epoch, mid-epoch) as seeds. */
int fz_make_seeds(const char *dir);
int fz_make_seeds(const char *dir)
{
    for (unsigned mode = 0; mode < 16; mode += 2) {
        for (int when = 0; when < 3; when++) {
            run r;
            run_start(&r, mode);
            ns_err err;
            if (when == 1)
                ns_trainer_run(&r.tr, 1, NULL, NULL, &err);
            ns_stop_flag stop = 1;
            if (when == 2) { /* an epoch, then one begun and stopped: in_epoch set */
                ns_trainer_run(&r.tr, 1, NULL, NULL, &err);
                r.tr.stop = &stop;
                ns_trainer_run(&r.tr, 1, NULL, NULL, &err);
            }
            char tmp[4096], out[4096];
            snprintf(tmp, sizeof tmp, "%s/.ckpt", dir);
            if (ns_trainer_save(&r.tr, tmp, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            FILE *f = fopen(tmp, "rb");
            uint8_t buf[1 << 16];
            size_t k = fread(buf, 1, sizeof buf, f);
            fclose(f);
            remove(tmp);
            snprintf(out, sizeof out, "%s/valid-mode%u-%d", dir, mode, when);
            f = fopen(out, "wb");
            fputc((int)mode, f);
            fwrite(buf, 1, k, f);
            fclose(f);
            run_free(&r);
        }
    }
    return 0;
}
