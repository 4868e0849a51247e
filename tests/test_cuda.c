/* test_cuda.c — the CUDA backend against the CPU one: every op of backend.h (forward,
 * backward, losses, one step of each optimizer) on the same inputs within
 * |cpu - gpu| <= atol + rtol |cpu|, tf32 and bf16 GEMMs within their rounding, one
 * epoch of training in fp32 and in bf16, and the batched GEMMs and an epoch of trials
 * trained as one array. Without a GPU (or in a build
 * without CUDA) those tests report "skipped: no GPU"; what runs everywhere is the choice of
 * device: auto falls back to the CPU and cuda is refused with a message. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend/backend.h"
#include "engine/cuda/cuda.h"
#include "engine/rng.h"
#include "engine/train/array.h"
#include "engine/train/train.h"
#include "model/mlp.h"
#include "tests/testutil.h"

/* fp32 on both sides: GEMMs sum in another order (atol/rtol cover it), elementwise ops
 * round alike but libm and CUDA's transcendental functions may differ in the last bit */
#define ATOL 1e-5
#define RTOL 1e-4

static ns_backend *gpu_or_skip(void)
{
    if (ns_cuda_device_count() < 1)
        cr_skip_test("skipped: no GPU (%s)", ns_cuda_compiled() ? "the CUDA driver finds none"
                                                                : "built without CUDA");
    ns_err e = {0};
    ns_backend *g = ns_backend_cuda_alloc(0, NS_PREC_FP32, &e);
    cr_assert(g, "%s", e.msg);
    return g;
}

static ns_backend *cpu(void)
{
    ns_err e = {0};
    ns_backend *c = ns_backend_cpu_alloc(1, &e);
    cr_assert(c, "%s", e.msg);
    return c;
}

static float *randn(size_t n, uint64_t seed, double scale)
{
    float *x = malloc(n * sizeof *x);
    cr_assert(x);
    ns_rng r;
    ns_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * ns_rng_normal(&r));
    return x;
}

/* a buffer of be holding host[0..n) */
static void *put(ns_backend *be, const void *host, size_t bytes)
{
    void *d = ns_buf_alloc(be, bytes);
    cr_assert(d, "no memory for %zu bytes on %s", bytes, ns_backend_name(be));
    if (host)
        ns_buf_upload(be, d, host, bytes);
    return d;
}

static float *get(ns_backend *be, const float *dev, size_t n)
{
    float *h = malloc(n * sizeof *h);
    cr_assert(h);
    ns_buf_download(be, h, dev, n * sizeof *h);
    return h;
}

static void close_arrays(const float *ref, const float *x, size_t n, double atol, double rtol,
                         const char *what)
{
    for (size_t i = 0; i < n; i++)
        cr_assert(fabs((double)ref[i] - x[i]) <= atol + rtol * fabs((double)ref[i]),
                  "%s[%zu]: cpu %.9g, cuda %.9g", what, i, ref[i], x[i]);
}

static void close_num(double ref, double x, double atol, double rtol, const char *what)
{
    cr_assert(fabs(ref - x) <= atol + rtol * fabs(ref), "%s: cpu %.12g, cuda %.12g", what, ref, x);
}

/* ---- the choice of device (runs everywhere) -------------------------------------------- */

Test(cuda, the_device_is_chosen_in_one_place)
{
    ns_err e = {0};
    int n = ns_cuda_device_count();
    cr_assert_eq(ns_device_resolve(NS_DEVICE_AUTO), n > 0 ? NS_DEVICE_CUDA : NS_DEVICE_CPU);
    cr_assert_eq(ns_device_resolve(NS_DEVICE_CPU), NS_DEVICE_CPU);
    ns_backend *a = ns_backend_open(NS_DEVICE_AUTO, 1, NS_PREC_FP32, &e);
    cr_assert(a, "%s", e.msg);
    cr_assert_str_eq(ns_backend_name(a), n > 0 ? "cuda" : "cpu");
    ns_backend_free(a);
    ns_backend *c = ns_backend_open(NS_DEVICE_CUDA, 1, NS_PREC_FP32, &e);
    if (n > 0) {
        cr_assert(c, "%s", e.msg);
        ns_backend_free(c);
    } else {
        cr_assert_null(c);
        cr_assert_eq(e.code, NS_EINPUT);
        cr_assert(strstr(e.msg, "--device cpu"), "the message says what to do: %s", e.msg);
    }
    /* tensor-core precisions exist on a GPU only */
    ns_backend *b = ns_backend_open(NS_DEVICE_CPU, 1, NS_PREC_BF16, &e);
    cr_assert_null(b);
    cr_assert_eq(e.code, NS_EINPUT);
    cr_assert(strstr(e.msg, "bf16") && strstr(e.msg, "fp32"), "%s", e.msg);
}

static ns_backend *gpu_prec_or_skip(ns_precision prec)
{
    ns_backend_free(gpu_or_skip());
    ns_err e = {0};
    ns_backend *g = ns_backend_cuda_alloc(0, prec, &e);
    cr_assert(g, "%s", e.msg);
    return g;
}

/* ---- ops ------------------------------------------------------------------------------- */

/* One layer's GEMMs on the CPU and on g from the same inputs (x (B, C), w (OC, C), dout
 * (B, OC), dw accumulated onto dw0 or onto 0), compared: forward and dinp within atol +
 * rtol |cpu|, dw within dw_atol + rtol |cpu|. */
static void compare_gemms(ns_backend *g, int B, int C, int OC, uint64_t seed, int with_dw0,
                          double atol, double rtol, double dw_atol, const char *what)
{
    ns_backend *c = cpu();
    float *x = randn((size_t)B * C, seed, 1), *w = randn((size_t)OC * C, seed + 1, 0.3);
    float *dout = randn((size_t)B * OC, seed + 2, 1);
    float *dw0 = with_dw0 ? randn((size_t)OC * C, seed + 3, 0.1) : NULL;
    ns_backend *be[2] = {c, g};
    float *out[2], *dinp[2], *dw[2];
    for (int k = 0; k < 2; k++) {
        float *dx = put(be[k], x, (size_t)B * C * 4), *dwt = put(be[k], w, (size_t)OC * C * 4);
        float *dy = put(be[k], NULL, (size_t)B * OC * 4), *ddo = put(be[k], dout, (size_t)B * OC * 4);
        float *ddi = put(be[k], NULL, (size_t)B * C * 4), *ddw = put(be[k], dw0, (size_t)OC * C * 4);
        ns_op_matmul_forward(be[k], dy, dx, dwt, B, C, OC);
        ns_op_matmul_backward(be[k], ddi, ddw, ddo, dx, dwt, B, C, OC);
        out[k] = get(be[k], dy, (size_t)B * OC);
        dinp[k] = get(be[k], ddi, (size_t)B * C);
        dw[k] = get(be[k], ddw, (size_t)OC * C);
        ns_buf_free(be[k], dx), ns_buf_free(be[k], dwt), ns_buf_free(be[k], dy);
        ns_buf_free(be[k], ddo), ns_buf_free(be[k], ddi), ns_buf_free(be[k], ddw);
    }
    char name[64];
    snprintf(name, sizeof name, "%s: forward", what);
    close_arrays(out[0], out[1], (size_t)B * OC, atol, rtol, name);
    snprintf(name, sizeof name, "%s: dinp", what);
    close_arrays(dinp[0], dinp[1], (size_t)B * C, atol, rtol, name);
    snprintf(name, sizeof name, "%s: dw", what);
    close_arrays(dw[0], dw[1], (size_t)OC * C, dw_atol, rtol, name);
    for (int k = 0; k < 2; k++)
        free(out[k]), free(dinp[k]), free(dw[k]);
    free(x), free(w), free(dout), free(dw0);
    ns_backend_free(c);
}

Test(cuda, matmul_forward_and_backward)
{
    ns_backend *g = gpu_or_skip();
    /* sizes that are multiples of nothing; dw accumulates onto what it held */
    compare_gemms(g, 67, 45, 29, 1, 1, ATOL, RTOL, ATOL, "fp32");
    ns_backend_free(g);
}

/* tf32 and bf16 GEMMs against the CPU's fp32: inputs rounded to 10 and 7 bits of mantissa,
 * sums in fp32. Errors grow with sqrt(C) x the rounding x the terms' size (here about 2):
 * tf32 within 0.01 + 0.005 |ref|, bf16 within 0.05 + 0.02 |ref|; dw sums over B = 130
 * rows, a scale about sqrt(B / C) larger, so twice the atol. */
Test(cuda, tensor_core_matmuls_within_their_rounding)
{
    const ns_precision precs[] = {NS_PREC_TF32, NS_PREC_BF16};
    const double atol[] = {0.01, 0.05}, rtol[] = {0.005, 0.02};
    for (int q = 0; q < 2; q++) {
        ns_backend *g = gpu_prec_or_skip(precs[q]);
        compare_gemms(g, 130, 45, 31, 21, 0, atol[q], rtol[q], 2 * atol[q], ns_precision_name(precs[q]));
        ns_backend_free(g);
    }
}

/* Batches gathered on the device from rows uploaded once: copies, so the same bits. */
Test(cuda, batches_gathered_on_the_device)
{
    enum { N = 53, D = 7, B = 19 };
    ns_backend *g = gpu_or_skip(), *c = cpu();
    float *x = randn(N * D, 41, 1);
    int32_t y[N], idx[B], ry[B], gy[B];
    float rx[B * D];
    for (int i = 0; i < N; i++)
        y[i] = (i * 7) % 5;
    for (int i = 0; i < B; i++)
        idx[i] = (i * 11 + 3) % N; /* out of order; the last rows too */
    float *dx = put(g, x, N * D * 4), *dout = put(g, NULL, B * D * 4);
    int32_t *dy = put(g, y, sizeof y), *didx = put(g, idx, sizeof idx), *doy = put(g, NULL, sizeof gy);
    ns_op_gather_rows(g, dout, dx, didx, B, D);
    ns_op_gather_labels(g, doy, dy, didx, B);
    float *gx = get(g, dout, B * D);
    ns_buf_download(g, gy, doy, sizeof gy);
    ns_op_gather_rows(c, rx, x, idx, B, D);
    ns_op_gather_labels(c, ry, y, idx, B);
    cr_assert(!memcmp(rx, gx, sizeof rx), "gathered rows differ");
    cr_assert(!memcmp(ry, gy, sizeof ry), "gathered labels differ");
    free(gx), free(x);
    ns_buf_free(g, dx), ns_buf_free(g, dout), ns_buf_free(g, dy), ns_buf_free(g, didx), ns_buf_free(g, doy);
    ns_backend_free(g);
    ns_backend_free(c);
}

Test(cuda, bias_activation_and_dropout_forward_and_backward)
{
    ns_backend *g = gpu_or_skip(), *c = cpu();
    const int B = 33, OC = 70;
    const size_t n = (size_t)B * OC;
    float *pre = randn(n, 5, 1.5), *b = randn(OC, 6, 0.5), *dout = randn(n, 7, 1);
    const ns_act acts[] = {NS_ACT_IDENTITY, NS_ACT_RELU, NS_ACT_LEAKY_RELU, NS_ACT_GELU,
                           NS_ACT_TANH, NS_ACT_SIGMOID};
    for (size_t a = 0; a < sizeof acts / sizeof *acts; a++)
        for (int drop = 0; drop < 2; drop++) {
            float p = drop ? 0.3f : 0.0f;
            ns_backend *be[2] = {c, g};
            float *o[2], *z[2], *dp[2], *db[2];
            for (int k = 0; k < 2; k++) {
                float *dz = put(be[k], pre, n * 4), *dbias = put(be[k], b, OC * 4);
                float *dout_d = put(be[k], dout, n * 4), *dout2 = put(be[k], NULL, n * 4);
                float *ddb = put(be[k], b, OC * 4); /* accumulates onto b */
                ns_op_bias_act_forward(be[k], dout2, dz, dbias, acts[a], p, 1234, B, OC);
                o[k] = get(be[k], dout2, n);
                z[k] = get(be[k], dz, n);
                ns_op_bias_act_backward(be[k], dout_d, ddb, dout_d, dz, acts[a], p, 1234, B, OC);
                dp[k] = get(be[k], dout_d, n);
                db[k] = get(be[k], ddb, OC);
                ns_buf_free(be[k], dz), ns_buf_free(be[k], dbias), ns_buf_free(be[k], dout_d);
                ns_buf_free(be[k], dout2), ns_buf_free(be[k], ddb);
            }
            char what[64];
            snprintf(what, sizeof what, "act %d p %.1f: pre", (int)acts[a], p);
            close_arrays(z[0], z[1], n, 0, 0, what); /* one addition: the same bits */
            snprintf(what, sizeof what, "act %d p %.1f: out", (int)acts[a], p);
            close_arrays(o[0], o[1], n, ATOL, RTOL, what);
            for (size_t i = 0; i < n; i++) /* the same dropout mask */
                cr_assert_eq(o[0][i] == 0.0f, o[1][i] == 0.0f, "%s: the mask differs at %zu", what, i);
            snprintf(what, sizeof what, "act %d p %.1f: dpre", (int)acts[a], p);
            close_arrays(dp[0], dp[1], n, ATOL, RTOL, what);
            snprintf(what, sizeof what, "act %d p %.1f: db", (int)acts[a], p);
            close_arrays(db[0], db[1], OC, ATOL, RTOL, what);
            for (int k = 0; k < 2; k++)
                free(o[k]), free(z[k]), free(dp[k]), free(db[k]);
        }
    free(pre), free(b), free(dout);
    ns_backend_free(g);
    ns_backend_free(c);
}

Test(cuda, losses_and_reductions)
{
    ns_backend *g = gpu_or_skip(), *c = cpu();
    const int B = 301, C = 7;
    const size_t n = (size_t)B * C;
    float *logits = randn(n, 8, 2), *target = randn(n, 9, 1), *cw = randn(C, 10, 0.2);
    int32_t *labels = malloc((size_t)B * sizeof *labels);
    for (int i = 0; i < B; i++)
        labels[i] = (i * 5 + 3) % C;
    for (int k = 0; k < C; k++)
        cw[k] = 1.0f + fabsf(cw[k]);
    ns_backend *be[2] = {c, g};
    double loss[2][2], wsum[2][2], sse[2], ssq[2];
    long correct[2][2];
    float *dl[2][2], *probs[2], *dpred[2];
    int fin[2][2];
    for (int k = 0; k < 2; k++) {
        float *dlog = put(be[k], logits, n * 4), *dt = put(be[k], target, n * 4);
        int32_t *dlab = put(be[k], labels, (size_t)B * 4);
        float *dcw = put(be[k], cw, C * 4), *dd = put(be[k], NULL, n * 4);
        for (int weighted = 0; weighted < 2; weighted++) {
            correct[k][weighted] = 0;
            loss[k][weighted] = ns_op_softmax_xent(be[k], dd, &correct[k][weighted], &wsum[k][weighted],
                                                   dlog, dlab, weighted ? dcw : NULL,
                                                   weighted ? 0.1f : 0.0f, B, C);
            dl[k][weighted] = get(be[k], dd, n);
        }
        ns_op_softmax(be[k], dd, dlog, B, C);
        probs[k] = get(be[k], dd, n);
        sse[k] = ns_op_mse(be[k], dd, dlog, dt, B, C);
        dpred[k] = get(be[k], dd, n);
        ssq[k] = ns_op_sumsq(be[k], dlog, n);
        fin[k][0] = ns_op_all_finite(be[k], dlog, n);
        float nan = NAN;
        ns_buf_upload(be[k], dlog + 100, &nan, sizeof nan);
        fin[k][1] = ns_op_all_finite(be[k], dlog, n);
        ns_buf_free(be[k], dlog), ns_buf_free(be[k], dt), ns_buf_free(be[k], dlab);
        ns_buf_free(be[k], dcw), ns_buf_free(be[k], dd);
    }
    for (int w = 0; w < 2; w++) {
        close_num(loss[0][w], loss[1][w], 1e-9, 1e-9, w ? "weighted loss" : "loss");
        close_num(wsum[0][w], wsum[1][w], 0, 1e-12, "weight sum");
        cr_assert_eq(correct[0][w], correct[1][w]);
        close_arrays(dl[0][w], dl[1][w], n, 1e-7, 1e-5, w ? "weighted dlogits" : "dlogits");
    }
    close_arrays(probs[0], probs[1], n, 1e-7, 1e-5, "softmax");
    close_num(sse[0], sse[1], 1e-9, 1e-9, "mse");
    close_arrays(dpred[0], dpred[1], n, 0, 0, "dpred");
    close_num(ssq[0], ssq[1], 1e-9, 1e-12, "sumsq");
    cr_assert(fin[0][0] && fin[1][0] && !fin[0][1] && !fin[1][1], "all_finite");
    for (int k = 0; k < 2; k++)
        free(dl[k][0]), free(dl[k][1]), free(probs[k]), free(dpred[k]);
    free(logits), free(target), free(cw), free(labels);
    ns_backend_free(g);
    ns_backend_free(c);
}

Test(cuda, one_step_of_each_optimizer)
{
    ns_backend *g = gpu_or_skip(), *c = cpu();
    const size_t n = 5003;
    float *p0 = randn(n, 11, 1), *g0 = randn(n, 12, 0.1), *m0 = randn(n, 13, 0.01);
    float *v0 = randn(n, 14, 0.01);
    for (size_t i = 0; i < n; i++)
        v0[i] = fabsf(v0[i]);
    for (int opt = 0; opt < 4; opt++) {
        ns_backend *be[2] = {c, g};
        float *p[2], *s1[2], *s2[2];
        double gsq[2];
        for (int k = 0; k < 2; k++) {
            float *dp = put(be[k], p0, n * 4), *dg = put(be[k], g0, n * 4);
            float *dm = put(be[k], m0, n * 4), *dv = put(be[k], v0, n * 4);
            switch (opt) {
            case 0: gsq[k] = ns_op_sgd_update(be[k], dp, dm, dg, n, 0.1f, 0.9f, 1e-4f, 1); break;
            case 1: gsq[k] = ns_op_adam_update(be[k], dp, dm, dv, dg, n, 1e-3f, 0.9, 0.999, 1e-8f,
                                               1e-2f, 1 - 0.9 * 0.9, 1 - 0.999 * 0.999, 0); break;
            case 2: gsq[k] = ns_op_adam_update(be[k], dp, dm, dv, dg, n, 1e-3f, 0.9, 0.999, 1e-8f,
                                               1e-2f, 1 - 0.9, 1 - 0.999, 1); break;
            default: gsq[k] = ns_op_rmsprop_update(be[k], dp, dv, dm, dg, n, 1e-2f, 0.99, 1e-8f,
                                                   1e-4f, 0.9f); break;
            }
            p[k] = get(be[k], dp, n);
            s1[k] = get(be[k], dm, n);
            s2[k] = get(be[k], dv, n);
            ns_buf_free(be[k], dp), ns_buf_free(be[k], dg), ns_buf_free(be[k], dm), ns_buf_free(be[k], dv);
        }
        /* each element's update is the same rounded operations: the same bits */
        char what[32];
        snprintf(what, sizeof what, "optimizer %d: p", opt);
        close_arrays(p[0], p[1], n, 0, 0, what);
        close_arrays(s1[0], s1[1], n, 0, 0, "state 1");
        close_arrays(s2[0], s2[1], n, 0, 0, "state 2");
        close_num(gsq[0], gsq[1], 1e-9, 1e-5, "gradient sum of squares");
        for (int k = 0; k < 2; k++)
            free(p[k]), free(s1[k]), free(s2[k]);
    }
    free(p0), free(g0), free(m0), free(v0);
    ns_backend_free(g);
    ns_backend_free(c);
}

/* A step's results left in device memory: the same numbers as returned, and a gate that is
 * not finite (a blown-up loss) leaves parameters and state alone */
Test(cuda, results_left_on_the_device_and_a_gated_update)
{
    ns_backend *g = gpu_or_skip();
    const size_t n = 4099;
    float *p0 = randn(n, 21, 1), *g0 = randn(n, 22, 0.1), *m0 = randn(n, 23, 0.01);
    float *v0 = randn(n, 24, 0.01);
    for (size_t i = 0; i < n; i++)
        v0[i] = fabsf(v0[i]);
    float *dp = put(g, p0, n * 4), *dg = put(g, g0, n * 4), *dm = put(g, m0, n * 4);
    float *dv = put(g, v0, n * 4);
    const double gates[2] = {1.0, NAN};
    double *dgate = put(g, gates, sizeof gates), *dres = put(g, gates, sizeof gates);
    ns_op_adam_update_to(g, dres, dgate + 1, dp, dm, dv, dg, n, 1e-3f, 0.9, 0.999, 1e-8f, 0,
                         0.1, 0.001, 0);
    double res[2];
    ns_buf_download(g, res, dres, sizeof res);
    float *p = get(g, dp, n), *m = get(g, dm, n);
    cr_assert(res[0] == 0.0 && memcmp(p, p0, n * 4) == 0 && memcmp(m, m0, n * 4) == 0,
              "a gated update changed something (sum %g)", res[0]);
    free(p), free(m);
    double ret = ns_op_sgd_update(g, dp, dm, dg, n, 0.1f, 0.9f, 0, 0);
    ns_op_sgd_update_to(g, dres + 1, dgate, dp, dm, dg, n, 0.1f, 0.9f, 0, 0);
    ns_buf_download(g, res, dres, sizeof res);
    cr_assert(res[1] == ret && ret > 0, "sum of squares %.17g left, %.17g returned", res[1], ret);
    ns_buf_free(g, dp), ns_buf_free(g, dg), ns_buf_free(g, dm), ns_buf_free(g, dv);
    ns_buf_free(g, dgate), ns_buf_free(g, dres);
    free(p0), free(g0), free(m0), free(v0);
    ns_backend_free(g);
}

/* Many members' updates in a few launches: each member's bits are its single update's,
 * across kinds, sizes (none, one block, many), a gated member, one without a result, and
 * more members than one launch takes */
Test(cuda, member_updates_equal_single_ones)
{
    ns_backend *g = gpu_or_skip();
    enum { K = 21 };
    const size_t sizes[5] = {5003, 0, 17, 300000, 256};
    ns_member_update u[2][K];
    float *buf[2][K][4];
    double *dres[2];
    const double gates[2] = {1.0, NAN};
    double *dgate = put(g, gates, sizeof gates);
    for (int side = 0; side < 2; side++) {
        dres[side] = put(g, NULL, K * sizeof(double));
        for (int k = 0; k < K; k++) {
            size_t n = sizes[k % 5];
            for (int b = 0; b < 4; b++) { /* p, m, v, g */
                float *h = randn(n ? n : 1, 100 + 4 * k + b, b == 3 ? 0.1 : b == 0 ? 1 : 0.01);
                if (b == 2)
                    for (size_t i = 0; i < n; i++)
                        h[i] = fabsf(h[i]);
                buf[side][k][b] = put(g, h, (n ? n : 1) * 4);
                free(h);
            }
            ns_member_update *x = &u[side][k];
            *x = (ns_member_update){.kind = (ns_update_kind)(k % 3), .p = buf[side][k][0],
                                    .m = buf[side][k][1], .v = buf[side][k][2],
                                    .g = buf[side][k][3], .n = n, .lr = 1e-3f * (1 + k),
                                    .eps = 1e-8f, .wd = k % 2 ? 1e-3f : 0, .mu = k % 4 ? 0.9f : 0,
                                    .b1 = 0.9, .b2 = 0.999, .bc1 = 0.1 + 0.01 * k,
                                    .bc2 = 0.001 * (1 + k), .alpha = 0.99,
                                    .nesterov = k % 5 == 2, .decoupled = k % 6 == 1,
                                    .gate = k == 7 ? dgate + 1 : k % 2 ? dgate : NULL,
                                    .res = k == 9 ? NULL : dres[side] + k};
        }
    }
    for (int k = 0; k < K; k++) /* side 0: one at a time */
        ns_op_update_members(g, &u[0][k], 1);
    ns_op_update_members(g, u[1], K); /* side 1: together */
    double res[2][K];
    for (int side = 0; side < 2; side++)
        ns_buf_download(g, res[side], dres[side], sizeof res[side]);
    for (int k = 0; k < K; k++) {
        size_t n = sizes[k % 5];
        if (k != 9)
            cr_assert(res[0][k] == res[1][k], "member %d: sum of squares %.17g alone, %.17g "
                      "together", k, res[0][k], res[1][k]);
        for (int b = 0; b < 3 && n; b++) {
            float *x0 = get(g, buf[0][k][b], n), *x1 = get(g, buf[1][k][b], n);
            cr_assert(memcmp(x0, x1, n * 4) == 0, "member %d (kind %d, n %zu): buffer %d "
                      "differs together", k, k % 3, n, b);
            free(x0), free(x1);
        }
        for (int side = 0; side < 2; side++)
            for (int b = 0; b < 4; b++)
                ns_buf_free(g, buf[side][k][b]);
    }
    cr_assert(res[1][7] == 0.0, "the gated member summed %g", res[1][7]);
    ns_buf_free(g, dres[0]), ns_buf_free(g, dres[1]), ns_buf_free(g, dgate);
    ns_backend_free(g);
}

/* Many members' bias-activation passes in one launch (two backward): each member's bits are
 * its single pass's, across activations and dropout, with more members than one launch
 * takes and the backward pass in place as the MLP runs it */
Test(cuda, member_bias_activation_passes_equal_single_ones)
{
    ns_backend *g = gpu_or_skip();
    enum { K = 35, B = 70, OC = 33 };
    const size_t n = (size_t)B * OC;
    float *pre[2][K], *out[2][K], *b[K], *db[2][K], *d[2][K];
    ns_member_act m[2][K];
    for (int k = 0; k < K; k++) {
        float *h = randn(n, 300 + k, 1), *hb = randn(OC, 400 + k, 0.5), *hd = randn(n, 500 + k, 1);
        b[k] = put(g, hb, OC * 4);
        for (int side = 0; side < 2; side++) {
            pre[side][k] = put(g, h, n * 4);
            out[side][k] = put(g, NULL, n * 4);
            d[side][k] = put(g, hd, n * 4);
            db[side][k] = put(g, hb, OC * 4);
            m[side][k] = (ns_member_act){.out = out[side][k], .pre = pre[side][k], .b = b[k],
                                         .db = db[side][k], .dout = d[side][k],
                                         .act = (ns_act)(k % 6), .p = k % 3 ? 0.3f : 0.0f,
                                         .seed = 77 + (uint64_t)k};
        }
        free(h), free(hb), free(hd);
    }
    for (int k = 0; k < K; k++)
        ns_op_bias_act_forward_members(g, &m[0][k], 1, B, OC);
    ns_op_bias_act_forward_members(g, m[1], K, B, OC);
    for (int side = 0; side < 2; side++)
        for (int k = 0; k < K; k++)
            m[side][k].out = d[side][k]; /* backward in place on the gradient, as the MLP */
    for (int k = 0; k < K; k++)
        ns_op_bias_act_backward_members(g, &m[0][k], 1, B, OC);
    ns_op_bias_act_backward_members(g, m[1], K, B, OC);
    for (int k = 0; k < K; k++) {
        const float *x[4][2] = {{out[0][k], out[1][k]}, {pre[0][k], pre[1][k]},
                                {d[0][k], d[1][k]}, {db[0][k], db[1][k]}};
        const char *what[4] = {"activations", "pre-activations", "gradient", "bias gradient"};
        for (int q = 0; q < 4; q++) {
            size_t len = q == 3 ? OC : n;
            float *x0 = get(g, x[q][0], len), *x1 = get(g, x[q][1], len);
            cr_assert(memcmp(x0, x1, len * 4) == 0, "member %d (activation %d, p %g): %s differ",
                      k, k % 6, (double)m[0][k].p, what[q]);
            free(x0), free(x1);
        }
        ns_buf_free(g, b[k]);
        for (int side = 0; side < 2; side++) {
            ns_buf_free(g, pre[side][k]), ns_buf_free(g, out[side][k]);
            ns_buf_free(g, d[side][k]), ns_buf_free(g, db[side][k]);
        }
    }
    ns_backend_free(g);
}

/* Many members' cross-entropies in five launches: each member's loss, weight sum, hits
 * and gradient are its single loss's bits, with and without class weights and label
 * smoothing, with more members than one launch takes */
Test(cuda, member_cross_entropies_equal_single_ones)
{
    ns_backend *g = gpu_or_skip();
    enum { K = 18, B = 300, C = 7 };
    float *z[K], *dz[2][K], *cw[K];
    int32_t *lab[K];
    double *res[2];
    ns_member_xent m[2][K];
    for (int side = 0; side < 2; side++)
        res[side] = put(g, NULL, K * NS_RES_LOSS_N * sizeof(double));
    for (int k = 0; k < K; k++) {
        float *h = randn((size_t)B * C, 600 + k, 2), *hw = randn(C, 700 + k, 1);
        int32_t hl[B];
        for (int i = 0; i < B; i++)
            hl[i] = (i * 5 + k) % C;
        for (int c = 0; c < C; c++)
            hw[c] = 0.5f + fabsf(hw[c]);
        z[k] = put(g, h, (size_t)B * C * 4);
        cw[k] = put(g, hw, C * 4);
        lab[k] = put(g, hl, sizeof hl);
        for (int side = 0; side < 2; side++) {
            dz[side][k] = put(g, NULL, (size_t)B * C * 4);
            m[side][k] = (ns_member_xent){.res = res[side] + k * NS_RES_LOSS_N,
                                          .dlogits = k == 4 ? NULL : dz[side][k], .logits = z[k],
                                          .labels = lab[k], .class_w = k % 2 ? cw[k] : NULL,
                                          .eps = k % 3 ? 0.1f : 0.0f};
        }
        free(h), free(hw);
    }
    for (int k = 0; k < K; k++)
        ns_op_softmax_xent_members(g, &m[0][k], 1, B, C);
    ns_op_softmax_xent_members(g, m[1], K, B, C);
    double r[2][K * NS_RES_LOSS_N];
    for (int side = 0; side < 2; side++)
        ns_buf_download(g, r[side], res[side], sizeof r[side]);
    for (int k = 0; k < K; k++) {
        for (int q = 0; q < NS_RES_LOSS_N; q++)
            cr_assert(r[0][k * NS_RES_LOSS_N + q] == r[1][k * NS_RES_LOSS_N + q],
                      "member %d: result %d is %.17g alone, %.17g together", k, q,
                      r[0][k * NS_RES_LOSS_N + q], r[1][k * NS_RES_LOSS_N + q]);
        float *d0 = get(g, dz[0][k], (size_t)B * C), *d1 = get(g, dz[1][k], (size_t)B * C);
        cr_assert(memcmp(d0, d1, (size_t)B * C * 4) == 0, "member %d: the gradients differ", k);
        free(d0), free(d1);
        ns_buf_free(g, z[k]), ns_buf_free(g, cw[k]), ns_buf_free(g, lab[k]);
        ns_buf_free(g, dz[0][k]), ns_buf_free(g, dz[1][k]);
    }
    /* and the numbers are the loss's: member 0 against the CPU */
    ns_backend *c = cpu();
    float *h = randn((size_t)B * C, 600, 2);
    int32_t hl[B];
    for (int i = 0; i < B; i++)
        hl[i] = (i * 5) % C;
    double cr[NS_RES_LOSS_N];
    ns_op_softmax_xent_to(c, cr, NULL, h, hl, NULL, 0.0f, B, C);
    close_num(cr[NS_RES_LOSS], r[1][NS_RES_LOSS], 1e-9, 1e-9, "member 0's loss on the CPU");
    cr_assert(cr[NS_RES_EXTRA] == r[1][NS_RES_EXTRA], "member 0's hits");
    free(h);
    ns_buf_free(g, res[0]), ns_buf_free(g, res[1]);
    ns_backend_free(c);
    ns_backend_free(g);
}

/* Many members' batches gathered and gradients zeroed in one launch: the single ops' bytes,
 * with members of other row counts, with labels or targets, and more than one launch takes */
Test(cuda, member_batches_equal_single_gathers)
{
    ns_backend *g = gpu_or_skip();
    enum { K = 37, N = 500, D = 11, NP = 3000 };
    float *hx = randn((size_t)N * D, 800, 1), *ht = randn(N, 801, 1);
    int32_t hy[N], hidx[N];
    for (int i = 0; i < N; i++)
        hy[i] = i % 9, hidx[i] = (i * 37 + 11) % N;
    float *x = put(g, hx, sizeof(float) * N * D), *t = put(g, ht, sizeof(float) * N);
    int32_t *y = put(g, hy, sizeof hy), *idx = put(g, hidx, sizeof hidx);
    float *ones = randn(NP, 802, 1);
    ns_member_batch m[2][K];
    for (int side = 0; side < 2; side++)
        for (int k = 0; k < K; k++) {
            int B = k % 4 ? 64 : 13;
            m[side][k] = (ns_member_batch){.x = put(g, NULL, sizeof(float) * B * D), .x_src = x,
                                           .y = put(g, NULL, sizeof(int32_t) * B),
                                           .y_src = k % 3 ? y : NULL,
                                           .t = put(g, NULL, sizeof(float) * B),
                                           .t_src = k % 3 ? NULL : t, .idx = idx + 5 * k, .B = B,
                                           .grads = put(g, ones, sizeof(float) * NP),
                                           .n = k % 5 ? NP : 7};
        }
    for (int k = 0; k < K; k++)
        ns_op_batch_members(g, &m[0][k], 1, D);
    ns_op_batch_members(g, m[1], K, D);
    for (int k = 0; k < K; k++) {
        const ns_member_batch *a = &m[0][k], *b = &m[1][k];
        size_t sizes[4] = {(size_t)a->B * D, (size_t)a->B, (size_t)a->B, NP};
        const void *pa[4] = {a->x, a->y, a->t, a->grads}, *pb[4] = {b->x, b->y, b->t, b->grads};
        for (int q = 0; q < 4; q++) {
            float *u = get(g, pa[q], sizes[q]), *v = get(g, pb[q], sizes[q]);
            cr_assert(memcmp(u, v, sizes[q] * 4) == 0, "member %d: buffer %d differs", k, q);
            free(u), free(v);
        }
        for (int side = 0; side < 2; side++) {
            ns_buf_free(g, m[side][k].x), ns_buf_free(g, m[side][k].y);
            ns_buf_free(g, m[side][k].t), ns_buf_free(g, m[side][k].grads);
        }
    }
    ns_buf_free(g, x), ns_buf_free(g, t), ns_buf_free(g, y), ns_buf_free(g, idx);
    free(hx), free(ht), free(ones);
    ns_backend_free(g);
}

/* ---- a whole epoch --------------------------------------------------------------------- */

static ns_epoch_record last;
static int keep_last(void *user, const ns_epoch_record *rec)
{
    (void)user;
    last = *rec;
    return 0;
}

/* one epoch on the CPU and on the GPU in prec; losses within ltol relative, parameters
 * within ptol */
static void epoch_parity(ns_precision prec, double ltol, double ptol)
{
    ns_backend *g = gpu_prec_or_skip(prec), *c = cpu();
    ns_dataset tr, va;
    tu_blobs(&tr, 1000, 12, 1, 0.7);
    tu_blobs(&va, 300, 12, 2, 0.7);
    ns_train_spec s;
    ns_train_spec_default(&s);
    s.epochs = 1;
    s.batch_size = 32;
    s.eval_batch = 128;
    s.lr = 0.01;
    s.seed = 3;
    ns_optim_spec_default(&s.opt, NS_OPT_ADAM);
    ns_backend *be[2] = {c, g};
    ns_epoch_record rec[2];
    float *params[2];
    size_t np = 0;
    for (int k = 0; k < 2; k++) {
        ns_err err = {0};
        ns_mlp_spec spec = {.n_in = 12, .n_out = 3, .n_hidden = 2, .hidden = {32, 16},
                            .act = NS_ACT_GELU, .dropout = 0.2f};
        ns_mlp *m = ns_mlp_alloc(&spec, be[k], 128, &err);
        cr_assert(m, "%s", err.msg);
        ns_rng rng;
        ns_rng_seed(&rng, 99);
        cr_assert_eq(ns_mlp_init_params(m, &rng, NULL), NS_OK);
        ns_trainer t;
        cr_assert_eq(ns_trainer_init(&t, &s, be[k], &m->net, &tr, &va, &err), NS_OK, "%s", err.msg);
        cr_assert_eq(ns_trainer_run(&t, 0, keep_last, NULL, &err), NS_OK, "%s", err.msg);
        rec[k] = last;
        np = m->n_params;
        params[k] = get(be[k], m->params, np);
        ns_trainer_free(&t);
        ns_mlp_free(m);
    }
    close_num(rec[0].train_loss, rec[1].train_loss, ltol, ltol, "train loss");
    close_num(rec[0].val_loss, rec[1].val_loss, ltol, ltol, "val loss");
    close_arrays(params[0], params[1], np, ptol, 10 * ptol, "parameters after an epoch");
    free(params[0]), free(params[1]);
    ns_dataset_free(&tr);
    ns_dataset_free(&va);
    ns_backend_free(g);
    ns_backend_free(c);
}

/* 32 steps of fp32 GEMMs summed in another order: the losses agree to about 1e-5 */
Test(cuda, one_epoch_of_training_matches_the_cpu) { epoch_parity(NS_PREC_FP32, 1e-4, 1e-4); }
/* bf16 GEMMs: the same learning, the losses within 2% */
Test(cuda, one_epoch_in_bf16_learns_as_the_cpu) { epoch_parity(NS_PREC_BF16, 2e-2, 2e-2); }

/* ---- trials trained together (engine/train/array.h) ------------------------------------ */

/* K members' layer GEMMs at a stride, batched on the GPU (one strided-batched call when all
 * are active, member by member when one is not) against single CPU GEMMs per member; an
 * inactive member's buffers stay as they were. */
static void batched_gemms(ns_precision prec, double atol, double rtol)
{
    enum { KM = 5, B = 37, C = 45, OC = 29 };
    const size_t xs = B * C + 7, ws = OC * C + 3, ys = B * OC + 5; /* padded strides */
    ns_backend *g = gpu_prec_or_skip(prec), *c = cpu();
    float *x = randn(KM * xs, 31, 1), *w = randn(KM * ws, 32, 0.3), *dout = randn(KM * ys, 33, 1);
    for (int pass = 0; pass < 2; pass++) {
        unsigned char active[KM] = {1, 1, 1, 1, 1};
        if (pass)
            active[2] = 0;
        float *gx = put(g, x, KM * xs * 4), *gw = put(g, w, KM * ws * 4), *gd = put(g, dout, KM * ys * 4);
        float *gy = put(g, NULL, KM * ys * 4), *gdw = put(g, NULL, KM * ws * 4);
        float *gdi = put(g, NULL, KM * xs * 4);
        ns_op_matmul_forward_batched(g, KM, active, gy, ys, gx, xs, gw, ws, B, C, OC);
        ns_op_matmul_backward_batched(g, KM, active, gdi, xs, gdw, ws, gd, ys, gx, xs, gw, ws, B, C, OC);
        float *y = get(g, gy, KM * ys), *dw = get(g, gdw, KM * ws), *di = get(g, gdi, KM * xs);
        for (int k = 0; k < KM; k++) {
            float ry[B * OC], rdi[B * C], rdw[OC * C];
            memset(rdw, 0, sizeof rdw);
            if (active[k]) {
                ns_op_matmul_forward(c, ry, x + k * xs, w + k * ws, B, C, OC);
                ns_op_matmul_backward(c, rdi, rdw, dout + k * ys, x + k * xs, w + k * ws, B, C, OC);
            } else { /* left alone: the zeroes it was allocated with */
                memset(ry, 0, sizeof ry);
                memset(rdi, 0, sizeof rdi);
            }
            char name[80];
            snprintf(name, sizeof name, "%s pass %d member %d: forward", ns_precision_name(prec), pass, k);
            close_arrays(ry, y + k * ys, B * OC, atol, rtol, name);
            snprintf(name, sizeof name, "%s pass %d member %d: dinp", ns_precision_name(prec), pass, k);
            close_arrays(rdi, di + k * xs, B * C, atol, rtol, name);
            snprintf(name, sizeof name, "%s pass %d member %d: dw", ns_precision_name(prec), pass, k);
            close_arrays(rdw, dw + k * ws, OC * C, 2 * atol, rtol, name);
        }
        free(y), free(dw), free(di);
        ns_buf_free(g, gx), ns_buf_free(g, gw), ns_buf_free(g, gd);
        ns_buf_free(g, gy), ns_buf_free(g, gdw), ns_buf_free(g, gdi);
    }
    free(x), free(w), free(dout);
    ns_backend_free(g);
    ns_backend_free(c);
}

Test(cuda, batched_matmuls_match_single_ones) { batched_gemms(NS_PREC_FP32, ATOL, RTOL); }
Test(cuda, batched_bf16_matmuls_within_their_rounding) { batched_gemms(NS_PREC_BF16, 0.05, 0.02); }

static ns_epoch_record array_last[4];
static int keep_array_last(void *user, int k, const ns_epoch_record *rec)
{
    (void)user;
    array_last[k] = *rec;
    return 0;
}

/* Four trials of one shape (different LR, optimizer, dropout, seed) trained as one array
 * for an epoch on the GPU and on the CPU: each member's losses and weights within the
 * single-trial epoch's tolerances. */
Test(cuda, an_array_of_trials_matches_the_cpu)
{
    enum { KM = 4 };
    ns_backend *g = gpu_or_skip(), *c = cpu();
    ns_dataset tr, va;
    tu_blobs(&tr, 1000, 12, 1, 0.7);
    tu_blobs(&va, 300, 12, 2, 0.7);
    ns_mlp_spec specs[KM];
    ns_train_spec ts[KM];
    const ns_opt_kind opt[KM] = {NS_OPT_ADAM, NS_OPT_SGD, NS_OPT_ADAMW, NS_OPT_RMSPROP};
    for (int k = 0; k < KM; k++) {
        specs[k] = (ns_mlp_spec){.n_in = 12, .n_out = 3, .n_hidden = 2, .hidden = {32, 16},
                                 .act = NS_ACT_GELU, .dropout = 0.1f * k};
        ns_train_spec_default(&ts[k]);
        ts[k].epochs = 1;
        ts[k].batch_size = 32;
        ts[k].eval_batch = 128;
        ts[k].lr = 0.003 * (k + 1);
        ts[k].seed = 3 + k;
        ns_optim_spec_default(&ts[k].opt, opt[k]);
    }
    ns_backend *be[2] = {c, g};
    ns_epoch_record rec[2][KM];
    float *params[2];
    size_t np = 0;
    for (int side = 0; side < 2; side++) {
        ns_err err = {0};
        ns_mlp_group *grp = ns_mlp_group_alloc(specs, KM, be[side], 128, &err);
        cr_assert(grp, "%s", err.msg);
        ns_net *nets[KM];
        for (int k = 0; k < KM; k++) {
            ns_rng rng;
            ns_rng_seed(&rng, 99 + k);
            cr_assert_eq(ns_mlp_init_params(grp->m[k], &rng, NULL), NS_OK);
            nets[k] = &grp->m[k]->net;
        }
        ns_trainer_array a;
        cr_assert_eq(ns_trainer_array_init(&a, ts, KM, be[side], nets, &grp->net, &tr, &va, &err),
                     NS_OK, "%s", err.msg);
        cr_assert_eq(ns_trainer_array_run(&a, 0, keep_array_last, NULL, &err), NS_OK, "%s", err.msg);
        memcpy(rec[side], array_last, sizeof array_last);
        np = grp->n_params * KM;
        params[side] = get(be[side], grp->params, np);
        ns_trainer_array_free(&a);
        ns_mlp_group_free(grp);
    }
    for (int k = 0; k < KM; k++) {
        close_num(rec[0][k].train_loss, rec[1][k].train_loss, 1e-4, 1e-4, "train loss");
        close_num(rec[0][k].val_loss, rec[1][k].val_loss, 1e-4, 1e-4, "val loss");
    }
    close_arrays(params[0], params[1], np, 1e-4, 1e-3, "the members' parameters after an epoch");
    free(params[0]), free(params[1]);
    ns_dataset_free(&tr);
    ns_dataset_free(&va);
    ns_backend_free(g);
    ns_backend_free(c);
}
