/* test_ops.c — every CPU backend op against its plain-loop reference with an explicit
 * tolerance |ref - x| <= atol + rtol |ref| (reporting the worst element). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend/backend.h"
#include "engine/backend/shared_math.h"
#include "engine/rng.h"
#include "tests/testutil.h"

static ns_backend *be;
static ns_rng rng;
static void setup(void)
{
    ns_err err = {0};
    be = ns_backend_cpu_alloc(1, &err);
    cr_assert(be, "%s", err.msg);
    ns_rng_seed(&rng, 2024);
}
static void teardown(void) { ns_backend_free(be); }

static float *randn(size_t n)
{
    float *x = ns_buf_alloc(be, n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)ns_rng_normal(&rng);
    return x;
}

static double *widen(const float *x, size_t n)
{
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

static void expect_close(const float *ref, const float *x, size_t n, double atol, double rtol,
                         const char *what)
{
    double *r = widen(ref, n);
    size_t worst;
    double q = tu_close_ratio(r, x, n, atol, rtol, &worst);
    cr_assert(q <= 1.0, "%s: element %zu is %.9g, reference %.9g", what, worst, x[worst], r[worst]);
    free(r);
}

TestSuite(ops, .init = setup, .fini = teardown);

Test(ops, matmul_matches_reference_at_mlp_shapes)
{
    const int shapes[][3] = {{32, 784, 256}, {128, 256, 128}, {7, 128, 10}, {1, 3, 1}, {5, 1, 9}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int B = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        float *inp = randn((size_t)B * C), *w = randn((size_t)OC * C), *dout = randn((size_t)B * OC);
        float *out = ns_buf_alloc(be, (size_t)B * OC * 4), *ref = malloc((size_t)B * OC * 4);
        ns_op_matmul_forward(be, out, inp, w, B, C, OC);
        ns_ref_matmul_forward(ref, inp, w, B, C, OC);
        expect_close(ref, out, (size_t)B * OC, 1e-4, 1e-4, "matmul forward");
        /* backward accumulates dw: start both from the same non-zero values */
        float *dw = randn((size_t)OC * C), *dw_ref = malloc((size_t)OC * C * 4);
        memcpy(dw_ref, dw, (size_t)OC * C * 4);
        float *dinp = ns_buf_alloc(be, (size_t)B * C * 4), *dinp_ref = malloc((size_t)B * C * 4);
        ns_op_matmul_backward(be, dinp, dw, dout, inp, w, B, C, OC);
        ns_ref_matmul_backward(dinp_ref, dw_ref, dout, inp, w, B, C, OC);
        expect_close(dw_ref, dw, (size_t)OC * C, 1e-4, 1e-4, "matmul backward dw");
        expect_close(dinp_ref, dinp, (size_t)B * C, 1e-4, 1e-4, "matmul backward dinp");
        ns_buf_free(be, inp); ns_buf_free(be, w); ns_buf_free(be, dout); ns_buf_free(be, out);
        ns_buf_free(be, dw); ns_buf_free(be, dinp);
        free(ref); free(dw_ref); free(dinp_ref);
    }
}

Test(ops, bias_act_every_activation_with_and_without_dropout)
{
    const ns_act acts[] = {NS_ACT_IDENTITY, NS_ACT_RELU, NS_ACT_LEAKY_RELU, NS_ACT_GELU, NS_ACT_TANH, NS_ACT_SIGMOID};
    const int B = 9, OC = 37;
    const size_t n = (size_t)B * OC;
    for (size_t a = 0; a < sizeof acts / sizeof *acts; a++)
        for (int drop = 0; drop < 2; drop++) {
            float p = drop ? 0.25f : 0.0f;
            uint64_t seed = 77 + a;
            float *pre0 = randn(n), *b = randn(OC), *dout = randn(n);
            float *pre = ns_buf_alloc(be, n * 4), *out = ns_buf_alloc(be, n * 4), *dpre = ns_buf_alloc(be, n * 4);
            float *db = ns_buf_alloc(be, OC * 4);
            float *ref_out = malloc(n * 4), *ref_dpre = malloc(n * 4), *ref_db = calloc(OC, 4);
            memcpy(pre, pre0, n * 4);
            ns_op_bias_act_forward(be, out, pre, b, acts[a], p, seed, B, OC);
            ns_op_bias_act_backward(be, dpre, db, dout, pre, acts[a], p, seed, B, OC);
            for (int i = 0; i < B; i++)
                for (int j = 0; j < OC; j++) {
                    size_t k = (size_t)i * OC + j;
                    float z = pre0[k] + b[j];
                    float keep = p > 0 ? (ns_dropout_keep(seed, k, p) ? 1.0f / (1.0f - p) : 0.0f) : 1.0f;
                    ref_out[k] = ns_act_eval(acts[a], z) * keep;
                    ref_dpre[k] = dout[k] * keep * ns_act_deriv(acts[a], z);
                    ref_db[j] += ref_dpre[k];
                }
            expect_close(ref_out, out, n, 1e-6, 1e-5, "forward");
            expect_close(ref_dpre, dpre, n, 1e-6, 1e-5, "backward dpre");
            expect_close(ref_db, db, OC, 1e-5, 1e-5, "backward db");
            ns_buf_free(be, pre0); ns_buf_free(be, b); ns_buf_free(be, dout); ns_buf_free(be, pre);
            ns_buf_free(be, out); ns_buf_free(be, dpre); ns_buf_free(be, db);
            free(ref_out); free(ref_dpre); free(ref_db);
        }
}

/* The CPU backend's backward pass (vector selects for ReLU and leaky ReLU) is bit for bit
 * ns_act_backward, the rule the CUDA kernels call: signed zeros and infinite gradients
 * included, where g * act'(x) would give -0 or inf * 0 = NaN. */
Test(ops, activation_backward_is_the_shared_rule_to_the_bit)
{
    const ns_act acts[] = {NS_ACT_IDENTITY, NS_ACT_RELU, NS_ACT_LEAKY_RELU, NS_ACT_GELU, NS_ACT_TANH, NS_ACT_SIGMOID};
    const float xs[] = {-2.0f, -0.0f, 0.0f, 1.5f}, gs[] = {-INFINITY, -1.0f, -0.0f, 0.5f, INFINITY};
    enum { NX = 4, NG = 5, OC = NX * NG };
    float *pre = ns_buf_alloc(be, OC * 4), *dout = ns_buf_alloc(be, OC * 4);
    float *dpre = ns_buf_alloc(be, OC * 4), *db = ns_buf_alloc(be, OC * 4);
    for (int i = 0; i < NX; i++)
        for (int j = 0; j < NG; j++) {
            pre[i * NG + j] = xs[i];
            dout[i * NG + j] = gs[j];
        }
    for (size_t a = 0; a < sizeof acts / sizeof *acts; a++) {
        ns_op_bias_act_backward(be, dpre, db, dout, pre, acts[a], 0.0f, 0, 1, OC);
        for (int k = 0; k < OC; k++) {
            float want = ns_act_backward(acts[a], pre[k], dout[k]);
            cr_assert(!memcmp(&want, &dpre[k], sizeof want) || (isnan(want) && isnan(dpre[k])),
                      "activation %d at x %g, g %g: %g, the rule %g", (int)acts[a], pre[k],
                      dout[k], dpre[k], want);
        }
    }
    /* ReLU below 0: +0 whatever the gradient, where the product would give -0 and NaN */
    ns_op_bias_act_backward(be, dpre, db, dout, pre, NS_ACT_RELU, 0.0f, 0, 1, OC);
    for (int j = 0; j < NG; j++)
        cr_assert(dpre[j] == 0.0f && !signbit(dpre[j]), "g %g: %g", gs[j], dpre[j]);
    ns_buf_free(be, pre); ns_buf_free(be, dout); ns_buf_free(be, dpre); ns_buf_free(be, db);
}

Test(ops, activation_derivatives_match_finite_differences)
{
    const ns_act acts[] = {NS_ACT_RELU, NS_ACT_LEAKY_RELU, NS_ACT_GELU, NS_ACT_TANH, NS_ACT_SIGMOID};
    for (size_t a = 0; a < sizeof acts / sizeof *acts; a++)
        for (double x = -4.05; x < 4.0; x += 0.1) {
            double h = 1e-3;
            double fd = ((double)ns_act_eval(acts[a], (float)(x + h)) - ns_act_eval(acts[a], (float)(x - h))) / (2 * h);
            double d = ns_act_deriv(acts[a], (float)x);
            cr_assert(fabs(fd - d) <= 2e-3 + 2e-3 * fabs(fd), "activation %zu at %g: %g vs %g", a, x, d, fd);
        }
}

Test(ops, dropout_keeps_the_right_share_and_is_reproducible)
{
    const float p = 0.3f;
    long kept = 0, n = 200000;
    for (long i = 0; i < n; i++)
        kept += ns_dropout_keep(5, (size_t)i, p);
    double share = (double)kept / n;
    cr_assert(fabs(share - 0.7) < 0.005, "kept share %g", share);
    for (long i = 0; i < 1000; i++)
        cr_assert_eq(ns_dropout_keep(5, (size_t)i, p), ns_dropout_keep(5, (size_t)i, p));
    long same = 0;
    for (long i = 0; i < 10000; i++)
        same += ns_dropout_keep(5, (size_t)i, 0.5f) == ns_dropout_keep(6, (size_t)i, 0.5f);
    cr_assert(same > 4700 && same < 5300, "masks of two seeds agree on %ld of 10000", same);
}

Test(ops, softmax_xent_matches_double_reference)
{
    const int B = 13, C = 7;
    float *z = randn((size_t)B * C), *d = ns_buf_alloc(be, (size_t)B * C * 4);
    for (int i = 0; i < B * C; i++)
        z[i] *= 5; /* wide logits exercise the max shift */
    int32_t y[13];
    for (int i = 0; i < B; i++)
        y[i] = (int32_t)ns_rng_below(&rng, C);
    float cw[7] = {1, 2, 0.5f, 1, 3, 1, 0.25f};
    const float eps = 0.1f;
    long correct = 0;
    double wsum = 0;
    double got = ns_op_softmax_xent(be, d, &correct, &wsum, z, y, cw, eps, B, C);
    double loss = 0, W = 0;
    long hits = 0;
    float *ref_d = malloc((size_t)B * C * 4);
    for (int i = 0; i < B; i++)
        W += cw[y[i]];
    double Wc = 0;
    for (int c = 0; c < C; c++)
        Wc += cw[c];
    for (int i = 0; i < B; i++) {
        double mx = -INFINITY, se = 0;
        int arg = 0;
        for (int c = 0; c < C; c++)
            if (z[i * C + c] > mx) {
                mx = z[i * C + c];
                arg = c;
            }
        for (int c = 0; c < C; c++)
            se += exp(z[i * C + c] - mx);
        /* torch: (1 - eps) w_y nll + eps / C sum_c w_c (-log p_c), mean over sum w_y */
        for (int c = 0; c < C; c++) {
            double pc = exp(z[i * C + c] - mx) / se;
            double hard = c == y[i] ? (1 - eps) * cw[y[i]] : 0;
            loss -= (hard + eps / C * cw[c]) * log(pc);
            ref_d[i * C + c] = (float)(((1 - eps) * cw[y[i]] * (pc - (c == y[i])) + eps / C * (Wc * pc - cw[c])) / W);
        }
        hits += arg == y[i];
    }
    cr_assert(fabs(got - loss) <= 1e-5 * fabs(loss), "loss %.9g vs %.9g", got, loss);
    cr_assert(fabs(wsum - W) < 1e-9);
    cr_assert_eq(correct, hits);
    expect_close(ref_d, d, (size_t)B * C, 1e-7, 1e-5, "dlogits");
    float *pr = ns_buf_alloc(be, (size_t)B * C * 4);
    ns_op_softmax(be, pr, z, B, C);
    for (int i = 0; i < B; i++) {
        double s = 0;
        for (int c = 0; c < C; c++)
            s += pr[i * C + c];
        cr_assert(fabs(s - 1) < 1e-5);
    }
    ns_buf_free(be, z); ns_buf_free(be, d); ns_buf_free(be, pr);
    free(ref_d);
}

Test(ops, mse_sumsq_scale_finite)
{
    const int B = 11, K = 3;
    float *p = randn(B * K), *t = randn(B * K), *d = ns_buf_alloc(be, B * K * 4);
    double s = 0;
    for (int i = 0; i < B * K; i++)
        s += ((double)p[i] - t[i]) * ((double)p[i] - t[i]);
    cr_assert(fabs(ns_op_mse(be, d, p, t, B, K) - s) < 1e-6 * s);
    for (int i = 0; i < B * K; i++)
        cr_assert(fabs(d[i] - 2.0 * (p[i] - t[i]) / (B * K)) < 1e-7);
    double sq = 0;
    for (int i = 0; i < B * K; i++)
        sq += (double)p[i] * p[i];
    cr_assert(fabs(ns_op_sumsq(be, p, B * K) - sq) < 1e-9 * sq);
    ns_op_scale(be, p, 0.5f, B * K);
    cr_assert(fabs(ns_op_sumsq(be, p, B * K) - sq / 4) < 1e-9 * sq);
    cr_assert(ns_op_all_finite(be, p, B * K));
    p[17] = NAN;
    cr_assert(!ns_op_all_finite(be, p, B * K));
    p[17] = INFINITY;
    cr_assert(!ns_op_all_finite(be, p, B * K));
    ns_buf_free(be, p); ns_buf_free(be, t); ns_buf_free(be, d);
}

/* The forms that leave their results on the device write what the others return, bit for
 * bit, and change the same parameters; a gate that is not finite leaves everything alone. */
Test(ops, results_left_on_the_device_equal_the_returned_ones)
{
    const int B = 13, C = 4;
    float *z = randn(B * C), *d1 = ns_buf_alloc(be, B * C * 4), *d2 = ns_buf_alloc(be, B * C * 4);
    int32_t y[13];
    for (int i = 0; i < B; i++)
        y[i] = (i * 7) % C;
    const float cw[4] = {1.0f, 2.5f, 0.5f, 1.0f};
    long correct = 0;
    double wsum = 0, res[NS_RES_LOSS_N];
    double loss = ns_op_softmax_xent(be, d1, &correct, &wsum, z, y, cw, 0.1f, B, C);
    ns_op_softmax_xent_to(be, res, d2, z, y, cw, 0.1f, B, C);
    cr_assert(res[NS_RES_LOSS] == loss && res[NS_RES_WEIGHT] == wsum &&
              res[NS_RES_EXTRA] == (double)correct, "xent: %.17g %.17g %.17g against %.17g "
              "%.17g %ld", res[0], res[1], res[2], loss, wsum, correct);
    cr_assert(memcmp(d1, d2, B * C * 4) == 0, "xent: the gradients differ");
    double sse = ns_op_mse(be, d1, z, z + C, B - 1, C);
    ns_op_mse_to(be, res, d2, z, z + C, B - 1, C);
    cr_assert(res[NS_RES_EXTRA] == sse && res[NS_RES_LOSS] == sse / C &&
              res[NS_RES_WEIGHT] == B - 1, "mse: %.17g %.17g %.17g", res[0], res[1], res[2]);
    cr_assert(memcmp(d1, d2, (B - 1) * C * 4) == 0, "mse: the gradients differ");
    ns_buf_free(be, z); ns_buf_free(be, d1); ns_buf_free(be, d2);

    const size_t n = 301;
    float *p0 = randn(n), *g = randn(n), *m0 = randn(n), *v0 = randn(n);
    for (size_t i = 0; i < n; i++)
        v0[i] = fabsf(v0[i]);
    float *p[2], *m[2], *v[2];
    for (int k = 0; k < 2; k++) {
        p[k] = ns_buf_alloc(be, n * 4), m[k] = ns_buf_alloc(be, n * 4), v[k] = ns_buf_alloc(be, n * 4);
    }
    const double finite = 1.5, blown = NAN;
    for (int opt = 0; opt < 3; opt++) {
        for (int gate = 0; gate < 2; gate++) {
            for (int k = 0; k < 2; k++) {
                memcpy(p[k], p0, n * 4), memcpy(m[k], m0, n * 4), memcpy(v[k], v0, n * 4);
            }
            double ret = 0, got = -1;
            const double *gp = gate ? &blown : &finite;
            switch (opt) {
            case 0:
                ret = ns_op_sgd_update(be, p[0], m[0], g, n, 0.1f, 0.9f, 1e-3f, 1);
                ns_op_sgd_update_to(be, &got, gp, p[1], m[1], g, n, 0.1f, 0.9f, 1e-3f, 1);
                break;
            case 1:
                ret = ns_op_adam_update(be, p[0], m[0], v[0], g, n, 1e-2f, 0.9, 0.999, 1e-8f,
                                        1e-3f, 0.19, 0.002, 1);
                ns_op_adam_update_to(be, &got, gp, p[1], m[1], v[1], g, n, 1e-2f, 0.9, 0.999,
                                     1e-8f, 1e-3f, 0.19, 0.002, 1);
                break;
            default:
                ret = ns_op_rmsprop_update(be, p[0], v[0], m[0], g, n, 1e-2f, 0.99, 1e-8f, 1e-3f,
                                           0.9f);
                ns_op_rmsprop_update_to(be, &got, gp, p[1], v[1], m[1], g, n, 1e-2f, 0.99, 1e-8f,
                                        1e-3f, 0.9f);
                break;
            }
            if (!gate) {
                cr_assert(got == ret && ret > 0, "optimizer %d: %.17g against %.17g", opt, got, ret);
                cr_assert(memcmp(p[0], p[1], n * 4) == 0 && memcmp(m[0], m[1], n * 4) == 0 &&
                          memcmp(v[0], v[1], n * 4) == 0, "optimizer %d: the updates differ", opt);
            } else {
                cr_assert(got == 0.0, "optimizer %d gated: sum %.17g", opt, got);
                cr_assert(memcmp(p[1], p0, n * 4) == 0 && memcmp(m[1], m0, n * 4) == 0 &&
                          memcmp(v[1], v0, n * 4) == 0, "optimizer %d gated: something changed", opt);
            }
        }
    }
    for (int k = 0; k < 2; k++) {
        ns_buf_free(be, p[k]); ns_buf_free(be, m[k]); ns_buf_free(be, v[k]);
    }
    ns_buf_free(be, p0); ns_buf_free(be, g); ns_buf_free(be, m0); ns_buf_free(be, v0);
}
