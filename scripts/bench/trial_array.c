/* trial_array.c — K small trials trained as one array (engine/train/array.h) against the
 * same K trained one at a time, on one device: throughput in training samples per second
 * summed over the trials, and how far the two ways' final weights are apart (0 on the
 * CPU, where an array member is its run alone to the bit). The trials differ as a round of
 * a search does: LR, optimizer, dropout, seed. Synthetic Fashion-MNIST-shaped data (784
 * features, 10 classes; speed does not depend on the values). Built by scripts/bench and
 * scripts/gpu-check; not part of nnsearch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/backend/backend.h"
#include "engine/rng.h"
#include "engine/train/array.h"
#include "engine/train/train.h"
#include "model/mlp.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: trial_array [--device cpu|cuda] [--precision fp32|tf32|bf16] [-k N]\n"
               "                   [--batch N] [--epochs N] [--rows N] [--hidden W]\n"
               "  -k N         trials [32]            --batch N   batch size [128]\n"
               "  --epochs N   epochs per trial [2]   --rows N    training rows [54000]\n"
               "  --hidden W   one hidden layer's width [128] (784-W-10)\n"
               "  --device D   cpu or cuda [cpu]      --precision P  GEMMs [fp32]\n"
               "prints one JSON object: samples/s of the array and of one at a time, their ratio\n");
}

/* Trial k's hyperparameters: a spread like a search round's. */
static void trial(int k, int width, int batch, int epochs, ns_mlp_spec *ms, ns_train_spec *ts)
{
    *ms = (ns_mlp_spec){.n_in = 784, .n_out = 10, .n_hidden = 1, .hidden = {width},
                        .act = NS_ACT_RELU, .dropout = 0.05f * (float)(k % 5)};
    ns_train_spec_default(ts);
    ts->epochs = epochs;
    ts->batch_size = batch;
    ts->eval_batch = batch > 1024 ? batch : 1024;
    ts->lr = 1e-4 * pow(100.0, (double)(k % 8) / 7.0);
    ts->seed = 1000 + (uint64_t)k;
    ns_optim_spec_default(&ts->opt, k % 3 == 2 ? NS_OPT_SGD : k % 3 ? NS_OPT_ADAMW : NS_OPT_ADAM);
    if (ts->opt.kind == NS_OPT_SGD)
        ts->lr *= 30;
}

int main(int argc, char **argv)
{
    int K = 32, batch = 128, epochs = 2, width = 128;
    long rows = 54000;
    ns_device dev = NS_DEVICE_CPU;
    ns_precision prec = NS_PREC_FP32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            usage(stderr);
            return 2;
        }
        if (!strcmp(a, "-k"))
            K = atoi(v);
        else if (!strcmp(a, "--batch"))
            batch = atoi(v);
        else if (!strcmp(a, "--epochs"))
            epochs = atoi(v);
        else if (!strcmp(a, "--rows"))
            rows = atol(v);
        else if (!strcmp(a, "--hidden"))
            width = atoi(v);
        else if (!strcmp(a, "--device") && (!strcmp(v, "cpu") || !strcmp(v, "cuda")))
            dev = !strcmp(v, "cpu") ? NS_DEVICE_CPU : NS_DEVICE_CUDA;
        else if (!strcmp(a, "--precision") && (!strcmp(v, "fp32") || !strcmp(v, "tf32") || !strcmp(v, "bf16")))
            prec = !strcmp(v, "fp32") ? NS_PREC_FP32 : !strcmp(v, "tf32") ? NS_PREC_TF32 : NS_PREC_BF16;
        else {
            fprintf(stderr, "trial_array: bad option %s %s\n", a, v);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (K < 1 || batch < 1 || epochs < 1 || rows < batch || width < 1) {
        fprintf(stderr, "trial_array: -k, --batch, --epochs, --hidden must be >= 1 and --rows >= --batch\n");
        return 2;
    }
    ns_err err = {0};
    ns_backend *be = ns_backend_open(dev, 1, prec, &err);
    if (!be) {
        fprintf(stderr, "trial_array: %s\n", err.msg);
        return 2;
    }
    /* data: 10 classes, each a shifted pattern plus noise, standardised-looking values */
    ns_dataset tr = {0};
    tr.task = NS_TASK_CLASSIFY;
    tr.n = rows;
    tr.d = 784;
    tr.n_classes = 10;
    tr.x = malloc((size_t)rows * 784 * sizeof *tr.x);
    tr.y = malloc((size_t)rows * sizeof *tr.y);
    ns_mlp_spec *ms = calloc((size_t)K, sizeof *ms);
    ns_train_spec *ts = calloc((size_t)K, sizeof *ts);
    ns_net **nets = calloc((size_t)K, sizeof *nets);
    if (!tr.x || !tr.y || !ms || !ts || !nets) {
        fprintf(stderr, "trial_array: out of memory\n");
        return 1;
    }
    ns_rng r;
    ns_rng_seed(&r, 1);
    for (long i = 0; i < rows; i++) {
        int c = (int)(i % 10);
        tr.y[i] = c;
        for (int j = 0; j < 784; j++)
            tr.x[i * 784 + j] = (float)(ns_rng_normal(&r) + (j % 10 == c ? 0.5 : 0.0));
    }
    for (int k = 0; k < K; k++)
        trial(k, width, batch, epochs, &ms[k], &ts[k]);
    int mb = ts[0].eval_batch;
    size_t np = (size_t)ns_mlp_spec_param_count(&ms[0]);
    float *alone_w = malloc(np * (size_t)K * sizeof *alone_w);
    float *array_w = malloc(np * (size_t)K * sizeof *array_w);
    if (!alone_w || !array_w) {
        fprintf(stderr, "trial_array: out of memory\n");
        return 1;
    }

    /* one at a time, as a pool worker trains them today */
    double t0 = now();
    for (int k = 0; k < K; k++) {
        ns_mlp *m = ns_mlp_alloc(&ms[k], be, mb, &err);
        ns_rng ir;
        ns_rng_seed(&ir, 7 + (uint64_t)k);
        ns_trainer t;
        if (!m || ns_mlp_init_params(m, &ir, &err) ||
            ns_trainer_init(&t, &ts[k], be, &m->net, &tr, NULL, &err) ||
            ns_trainer_run(&t, 0, NULL, NULL, &err)) {
            fprintf(stderr, "trial_array: trial %d alone: %s\n", k, err.msg);
            return 1;
        }
        ns_buf_download(be, alone_w + k * np, m->params, np * sizeof(float));
        ns_trainer_free(&t);
        ns_mlp_free(m);
    }
    double t_alone = now() - t0;

    /* the same K as one array */
    t0 = now();
    ns_mlp_group *g = ns_mlp_group_alloc(ms, K, be, mb, &err);
    if (!g) {
        fprintf(stderr, "trial_array: %s\n", err.msg);
        return 1;
    }
    for (int k = 0; k < K; k++) {
        ns_rng ir;
        ns_rng_seed(&ir, 7 + (uint64_t)k);
        if (ns_mlp_init_params(g->m[k], &ir, &err)) {
            fprintf(stderr, "trial_array: %s\n", err.msg);
            return 1;
        }
        nets[k] = &g->m[k]->net;
    }
    ns_trainer_array a;
    if (ns_trainer_array_init(&a, ts, K, be, nets, &g->net, &tr, NULL, &err) ||
        ns_trainer_array_run(&a, 0, NULL, NULL, &err)) {
        fprintf(stderr, "trial_array: the array: %s\n", err.msg);
        return 1;
    }
    ns_buf_download(be, array_w, g->params, np * (size_t)K * sizeof(float));
    double t_array = now() - t0;

    double maxdiff = 0;
    int diverged = 0;
    for (size_t i = 0; i < np * (size_t)K; i++) {
        double d = fabs((double)alone_w[i] - array_w[i]);
        if (isfinite(alone_w[i]) && d > maxdiff)
            maxdiff = d;
    }
    for (int k = 0; k < K; k++)
        diverged += a.tr[k].step < a.tr[k].total_steps;
    double samples = (double)K * (double)epochs * (double)rows;
    printf("{\"device\": \"%s\", \"precision\": \"%s\", \"trials\": %d, \"shape\": \"784-%d-10\", "
           "\"batch\": %d, \"epochs\": %d, \"rows\": %ld, \"alone_s\": %.3f, \"array_s\": %.3f, "
           "\"alone_samples_per_s\": %.0f, \"array_samples_per_s\": %.0f, \"ratio\": %.3f, "
           "\"max_weight_diff\": %.3g, \"stopped_before_budget\": %d}\n",
           ns_backend_name(be), ns_precision_name(prec), K, width, batch, epochs, rows, t_alone,
           t_array, samples / t_alone, samples / t_array, t_alone / t_array, maxdiff, diverged);
    ns_trainer_array_free(&a);
    ns_mlp_group_free(g);
    ns_backend_free(be);
    free(tr.x);
    free(tr.y);
    free(ms);
    free(ts);
    free(nets);
    free(alone_w);
    free(array_w);
    return 0;
}
