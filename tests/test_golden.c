/* test_golden.c — the golden end-to-end check: logits, loss, gradients and two AdamW steps
 * of small MLPs against values PyTorch computed (tests/data/golden_mlp.txt, made by
 * scripts/ref/golden_mlp.py). Independent of our own reference code. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend/backend.h"
#include "engine/train/optim.h"
#include "model/mlp.h"
#include "tests/testutil.h"

/* Reads the array called name from the golden file; returns its length. */
static int golden(const char *name, double *out, int cap)
{
    FILE *f = fopen(NS_SOURCE_DIR "/tests/data/golden_mlp.txt", "r");
    cr_assert(f, "missing tests/data/golden_mlp.txt");
    char key[64];
    int n;
    while (fscanf(f, "%63s %d", key, &n) == 2) {
        int want = !strcmp(key, name);
        cr_assert(!want || n <= cap, "%s has %d values", name, n);
        for (int i = 0; i < n; i++) {
            double v;
            cr_assert_eq(fscanf(f, "%lf", &v), 1);
            if (want)
                out[i] = v;
        }
        if (want) {
            fclose(f);
            return n;
        }
    }
    fclose(f);
    cr_assert_fail("%s not in the golden file", name);
    return 0;
}

static void check(const char *what, const double *ref, const float *x, int n, double atol, double rtol)
{
    size_t worst;
    double r = tu_close_ratio(ref, x, (size_t)n, atol, rtol, &worst);
    cr_assert(r <= 1.0, "%s[%zu] = %.9g, PyTorch %.9g", what, worst, x[worst], ref[worst]);
}

static void golden_case(const char *tag, ns_act act)
{
    char name[64];
    double params[74], xd[42], yd[7], logits[21], loss[1], grads[74], after[74];
#define LOAD(arr, suffix) (snprintf(name, sizeof name, "%s.%s", tag, suffix), golden(name, arr, (int)(sizeof arr / sizeof *arr)))
    cr_assert_eq(LOAD(params, "params"), 74);
    LOAD(xd, "x");
    LOAD(yd, "y");
    LOAD(logits, "logits");
    LOAD(loss, "loss");
    LOAD(grads, "grads");
    LOAD(after, "adamw2");
#undef LOAD
    ns_err err = {0};
    ns_backend *be = ns_backend_cpu_alloc(1, &err);
    ns_mlp_spec spec = {.n_in = 6, .n_out = 3, .n_hidden = 2, .hidden = {5, 4}, .act = act,
                        .loss = NS_LOSS_XENT, .label_smoothing = 0.1f};
    ns_mlp *m = ns_mlp_alloc(&spec, be, 7, &err);
    cr_assert(m, "%s", err.msg);
    cr_assert_eq(m->n_params, 74);
    float p[74], x[42], cw[3] = {1.0f, 2.0f, 0.5f};
    int32_t y[7];
    for (int i = 0; i < 74; i++)
        p[i] = (float)params[i];
    for (int i = 0; i < 42; i++)
        x[i] = (float)xd[i];
    for (int i = 0; i < 7; i++)
        y[i] = (int32_t)yd[i];
    ns_buf_upload(be, m->params, p, sizeof p);
    cr_assert_eq(ns_mlp_set_class_weights(m, cw, &err), NS_OK);

    ns_optim opt;
    ns_optim_spec os;
    ns_optim_spec_default(&os, NS_OPT_ADAMW);
    os.weight_decay = 0.01;
    cr_assert_eq(ns_optim_init(&opt, &os, be, m->n_params, &err), NS_OK, "%s", err.msg);
    for (int step = 0; step < 2; step++) {
        ns_op_zero(be, m->grads, m->n_params);
        ns_batch_out out;
        const float *z = ns_mlp_forward(m, x, 7, 1, 0);
        cr_assert_eq(ns_mlp_loss_backward(m, x, y, NULL, 7, 1, 0, &out, &err), NS_OK);
        if (step == 0) {
            check("logits", logits, z, 21, 1e-6, 1e-5);
            float l = (float)(out.loss_sum / out.weight_sum);
            check("loss", loss, &l, 1, 1e-6, 1e-5);
            check("grads", grads, m->grads, 74, 1e-7, 1e-4);
        }
        ns_optim_step(&opt, m->params, m->grads, 0.01);
    }
    check("params after two AdamW steps", after, m->params, 74, 1e-6, 1e-5);
    ns_optim_free(&opt);
    ns_mlp_free(m);
    ns_backend_free(be);
}

Test(golden, gelu_mlp_matches_pytorch) { golden_case("gelu", NS_ACT_GELU); }
Test(golden, tanh_mlp_matches_pytorch) { golden_case("tanh", NS_ACT_TANH); }
