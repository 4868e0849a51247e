/* test_optim.c — optimizers (engine/train/optim.c) and their CPU kernels (engine/backend/cpu_optim.c):
 * against a textbook double-precision reference, against values pinned from PyTorch,
 * bit-for-bit against a scalar float loop in torch's operation order (vector body and
 * tail alike), and checkpoint round trips that must not change a single bit. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend/backend.h"
#include "engine/backend/cpu_ops.h"
#include "engine/rng.h"
#include "engine/train/optim.h"
#include "tests/testutil.h"

static ns_backend *be;

static void setup(void)
{
    ns_err err = {0};
    be = ns_backend_cpu_alloc(1, &err);
    cr_assert_not_null(be, "backend: %s", err.msg);
}

static void teardown(void) { ns_backend_free(be); }

TestSuite(optim, .init = setup, .fini = teardown);

/* Host copy of a backend buffer (the optimizer state may live on a device). */
static float *download(const float *dev, size_t n)
{
    float *h = malloc(n * sizeof(float));
    cr_assert_not_null(h);
    ns_buf_download(be, h, dev, n * sizeof(float));
    return h;
}

/* Gradient of parameter i at step t (1-based) for the random tests: N(0, 0.1^2) drawn from
 * a stream of (seed, t), so a resumed run sees the same gradients. */
static void make_grads(float *g, size_t n, uint64_t seed, long t)
{
    ns_rng r;
    ns_rng_seed(&r, ns_seed_derive(seed, (uint64_t)t, 7));
    for (size_t i = 0; i < n; i++)
        g[i] = (float)(0.1 * ns_rng_normal(&r));
}

/* ---- spec, names, state layout ------------------------------------------------------ */

Test(optim, defaults_and_names)
{
    ns_optim_spec s;
    ns_optim_spec_default(&s, NS_OPT_SGD);
    cr_expect_eq(s.kind, NS_OPT_SGD);
    cr_expect_eq(s.momentum, 0.9);
    cr_expect_eq(s.nesterov, 0);
    cr_expect_eq(s.weight_decay, 0.0);
    ns_optim_spec_default(&s, NS_OPT_RMSPROP);
    cr_expect_eq(s.momentum, 0.0);
    cr_expect_eq(s.alpha, 0.99);
    cr_expect_eq(s.eps, 1e-8);
    ns_optim_spec_default(&s, NS_OPT_ADAMW);
    cr_expect_eq(s.kind, NS_OPT_ADAMW);
    cr_expect_eq(s.beta1, 0.9);
    cr_expect_eq(s.beta2, 0.999);
    cr_expect_eq(s.eps, 1e-8);
    cr_expect_str_eq(ns_opt_kind_name(NS_OPT_SGD), "sgd");
    cr_expect_str_eq(ns_opt_kind_name(NS_OPT_ADAM), "adam");
    cr_expect_str_eq(ns_opt_kind_name(NS_OPT_ADAMW), "adamw");
    cr_expect_str_eq(ns_opt_kind_name(NS_OPT_RMSPROP), "rmsprop");
}

static void expect_state(ns_opt_kind kind, double momentum, int has_m, int has_v)
{
    ns_optim_spec s;
    ns_optim_spec_default(&s, kind);
    s.momentum = momentum;
    ns_optim o;
    ns_err err = {0};
    const size_t n = 37;
    cr_assert_eq(ns_optim_init(&o, &s, be, n, &err), NS_OK, "%s", err.msg);
    cr_expect_eq(o.t, 0);
    cr_expect_eq(o.n, n);
    cr_expect_eq(o.m != NULL, has_m, "%s momentum %g: m", ns_opt_kind_name(kind), momentum);
    cr_expect_eq(o.v != NULL, has_v, "%s momentum %g: v", ns_opt_kind_name(kind), momentum);
    float *bufs[2] = {o.m, o.v};
    for (int b = 0; b < 2; b++) {
        if (!bufs[b])
            continue;
        float *h = download(bufs[b], n);
        for (size_t i = 0; i < n; i++)
            cr_expect_eq(h[i], 0.0f, "state not zeroed");
        free(h);
    }
    ns_optim_free(&o);
    cr_expect_null(o.m);
    cr_expect_null(o.v);
}

Test(optim, state_buffers_per_kind)
{
    expect_state(NS_OPT_SGD, 0.0, 0, 0);
    expect_state(NS_OPT_SGD, 0.9, 1, 0);
    expect_state(NS_OPT_ADAM, 0.0, 1, 1);
    expect_state(NS_OPT_ADAMW, 0.0, 1, 1);
    expect_state(NS_OPT_RMSPROP, 0.0, 0, 1);
    expect_state(NS_OPT_RMSPROP, 0.5, 1, 1);
}

Test(optim, bad_spec_is_input_error)
{
    ns_optim o;
    ns_optim_spec s;
    ns_err err = {0};
    ns_optim_spec_default(&s, NS_OPT_SGD);
    s.momentum = 0.0;
    s.nesterov = 1;
    cr_expect_eq(ns_optim_init(&o, &s, be, 10, &err), NS_EINPUT);
    cr_expect(strstr(err.msg, "nesterov") != NULL, "message: %s", err.msg);
    cr_expect_null(o.m);
    ns_optim_spec_default(&s, NS_OPT_ADAM);
    s.beta1 = 1.0;
    cr_expect_eq(ns_optim_init(&o, &s, be, 10, &err), NS_EINPUT);
    cr_expect(strstr(err.msg, "beta1") != NULL, "message: %s", err.msg);
    ns_optim_spec_default(&s, NS_OPT_ADAMW);
    s.weight_decay = -0.1;
    cr_expect_eq(ns_optim_init(&o, &s, be, 10, &err), NS_EINPUT);
    ns_optim_spec_default(&s, NS_OPT_RMSPROP);
    s.eps = NAN;
    cr_expect_eq(ns_optim_init(&o, &s, be, 10, &err), NS_EINPUT);
}

/* ---- against a double-precision textbook reference ---------------------------------- */

/* One step of the textbook formulas in double, written from the papers / torch docs:
 * Adam with bias-corrected moments mhat = m / (1 - b1^t), vhat = v / (1 - b2^t). */
static void ref_step(const ns_optim_spec *s, size_t n, double *p, double *m, double *v,
                     const float *g, double lr, long t)
{
    for (size_t i = 0; i < n; i++) {
        double gi = g[i];
        switch (s->kind) {
        case NS_OPT_SGD: {
            gi += s->weight_decay * p[i];
            double step = gi;
            if (s->momentum > 0) {
                m[i] = s->momentum * m[i] + gi;
                step = s->nesterov ? gi + s->momentum * m[i] : m[i];
            }
            p[i] -= lr * step;
            break;
        }
        case NS_OPT_ADAM:
        case NS_OPT_ADAMW: {
            if (s->kind == NS_OPT_ADAMW)
                p[i] -= lr * s->weight_decay * p[i];
            else
                gi += s->weight_decay * p[i];
            m[i] = s->beta1 * m[i] + (1 - s->beta1) * gi;
            v[i] = s->beta2 * v[i] + (1 - s->beta2) * gi * gi;
            double mhat = m[i] / (1 - pow(s->beta1, (double)t));
            double vhat = v[i] / (1 - pow(s->beta2, (double)t));
            p[i] -= lr * mhat / (sqrt(vhat) + s->eps);
            break;
        }
        case NS_OPT_RMSPROP: {
            gi += s->weight_decay * p[i];
            v[i] = s->alpha * v[i] + (1 - s->alpha) * gi * gi;
            double d = gi / (sqrt(v[i]) + s->eps);
            if (s->momentum > 0) {
                m[i] = s->momentum * m[i] + d;
                p[i] -= lr * m[i];
            } else {
                p[i] -= lr * d;
            }
            break;
        }
        }
    }
}

static void expect_close(const char *what, const char *name, int step, const double *ref,
                         const float *x, size_t n, double atol, double rtol)
{
    size_t wi;
    double r = tu_close_ratio(ref, x, n, atol, rtol, &wi);
    cr_expect_leq(r, 1.0, "%s step %d: %s[%zu] ref %.9g got %.9g (ratio %.3g)", name, step,
                  what, wi, ref[wi], (double)x[wi], r);
}

static void check_against_ref(const ns_optim_spec *s, const char *name, double lr)
{
    const size_t n = 1003; /* not a multiple of the vector width: the tail runs too */
    const int steps = 5;
    ns_rng r;
    ns_rng_seed(&r, 42);
    float *p = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
    double *rp = malloc(n * sizeof(double)), *rm = calloc(n, sizeof(double)),
           *rv = calloc(n, sizeof(double));
    for (size_t i = 0; i < n; i++) {
        p[i] = (float)ns_rng_normal(&r);
        rp[i] = p[i];
    }
    ns_optim o;
    ns_err err = {0};
    cr_assert_eq(ns_optim_init(&o, s, be, n, &err), NS_OK, "%s", err.msg);
    for (int t = 1; t <= steps; t++) {
        double lr_t = lr * (1.0 - 0.1 * t); /* a changing LR, as under a schedule */
        make_grads(g, n, 1234, t);
        ns_optim_step(&o, p, g, lr_t);
        ref_step(s, n, rp, rm, rv, g, lr_t, t);
        cr_assert_eq(o.t, t);
        expect_close("p", name, t, rp, p, n, 1e-6, 1e-5);
        if (o.m) {
            float *hm = download(o.m, n);
            expect_close("m", name, t, rm, hm, n, 1e-6, 1e-5);
            free(hm);
        }
        if (o.v) {
            float *hv = download(o.v, n);
            expect_close("v", name, t, rv, hv, n, 1e-9, 1e-5);
            free(hv);
        }
    }
    ns_optim_free(&o);
    free(p);
    free(g);
    free(rp);
    free(rm);
    free(rv);
}

Test(optim, sgd_matches_reference)
{
    ns_optim_spec s;
    ns_optim_spec_default(&s, NS_OPT_SGD);
    s.momentum = 0.0;
    check_against_ref(&s, "sgd", 0.1);
    s.weight_decay = 1e-2;
    check_against_ref(&s, "sgd+wd", 0.1);
    s.momentum = 0.9;
    s.weight_decay = 0.0;
    check_against_ref(&s, "sgd+momentum", 0.05);
    s.nesterov = 1;
    s.weight_decay = 1e-3;
    check_against_ref(&s, "sgd+nesterov+wd", 0.05);
}

Test(optim, adam_matches_reference)
{
    ns_optim_spec s;
    ns_optim_spec_default(&s, NS_OPT_ADAM);
    check_against_ref(&s, "adam", 1e-2);
    s.beta1 = 0.85;
    s.beta2 = 0.995;
    s.eps = 1e-6;
    s.weight_decay = 1e-2;
    check_against_ref(&s, "adam+wd", 1e-2);
    ns_optim_spec_default(&s, NS_OPT_ADAMW);
    s.weight_decay = 5e-2;
    check_against_ref(&s, "adamw+wd", 1e-2);
    s.weight_decay = 0.0;
    check_against_ref(&s, "adamw", 1e-2);
}

Test(optim, rmsprop_matches_reference)
{
    ns_optim_spec s;
    ns_optim_spec_default(&s, NS_OPT_RMSPROP);
    check_against_ref(&s, "rmsprop", 1e-2);
    s.alpha = 0.9;
    s.momentum = 0.5;
    s.eps = 1e-6;
    s.weight_decay = 1e-2;
    check_against_ref(&s, "rmsprop+momentum+wd", 1e-2);
}

/* ---- pinned PyTorch values ----------------------------------------------------------- */
/* Generated by scripts/ref/optim_ref.py (torch 1.13.0a0, Debian python3-torch): the
 * parameters after each of 3 steps from P0 with gradients GB + 0.25 t GS at step t. */

static const float P0[5] = {0.5f, -1.25f, 2.0f, -0.75f, 0.125f};
static const float GB[5] = {0.25f, -0.5f, 1.0f, 0.0625f, -2.0f};
static const float GS[5] = {1.0f, 1.0f, -1.0f, -0.5f, 0.5f};

static const float ref_sgd[3][5] = {
    {0.449999988, -1.22500002, 1.92499995, -0.743749976, 0.3125},
    {0.375, -1.22500002, 1.875, -0.724999964, 0.487500012},
    {0.275000006, -1.25, 1.85000002, -0.693749964, 0.650000036},
};
static const float ref_sgd_momentum[3][5] = {
    {0.449999988, -1.22500002, 1.92499995, -0.743749976, 0.3125},
    {0.329999983, -1.20249999, 1.8075, -0.719374955, 0.65625},
    {0.121999986, -1.20725, 1.67675006, -0.666187465, 1.12812495},
};
static const float ref_sgd_nesterov_wd[3][5] = {
    {0.404049993, -1.20012498, 1.85370004, -0.736699998, 0.481012493},
    {0.219877303, -1.17658222, 1.69280803, -0.694005251, 0.964372337},
    {-0.0684322491, -1.20173836, 1.54395723, -0.612424433, 1.54924679},
};
static const float ref_adam[3][5] = {
    {0.49000001, -1.24000001, 1.99000001, -0.74000001, 0.135000005},
    {0.480091929, -1.23329937, 1.98029649, -0.730822206, 0.144976094},
    {0.470219463, -1.23415804, 1.97136033, -0.721631706, 0.154909611},
};
static const float ref_adam_wd[3][5] = {
    {0.49000001, -1.24000001, 1.99000001, -0.74000001, 0.135000005},
    {0.480071485, -1.23130131, 1.9801923, -0.730295718, 0.144975647},
    {0.470170498, -1.22685528, 1.97083569, -0.720662951, 0.154907838},
};
static const float ref_adamw_wd[3][5] = {
    {0.489500016, -1.23874998, 1.98800004, -0.739250004, 0.134875},
    {0.479102433, -1.23081064, 1.97630858, -0.729332983, 0.144716218},
    {0.468750864, -1.23043847, 1.96539617, -0.719413161, 0.154505014},
};
static const float ref_rmsprop[3][5] = {
    {0.400000036, -1.1500001, 1.89999998, -0.650000155, 0.224999994},
    {0.316666722, -1.1500001, 1.84433699, -0.555084407, 0.293414891},
    {0.242170453, -1.22106516, 1.81739926, -0.470436007, 0.347229421},
};
static const float ref_rmsprop_momentum[3][5] = {
    {0.400000036, -1.1500001, 1.89999998, -0.650000155, 0.224999994},
    {0.226666734, -1.06000018, 1.75433695, -0.465084553, 0.383414894},
    {-0.00382951531, -1.05006528, 1.59630251, -0.214012101, 0.579802811},
};
static const float ref_rmsprop_wd[3][5] = {
    {0.400000036, -1.14999998, 1.89999998, -0.650000095, 0.224999994},
    {0.317796409, -1.1205461, 1.84104013, -0.562076747, 0.293187082},
    {0.244450808, -1.15400791, 1.80610812, -0.483034611, 0.346672982},
};

/* Agreement is to a few float ulps of the O(1) parameters, not bits: torch forms
 * 1 - beta2 and 1 - alpha in double from the double hyperparameter, while our ops receive
 * beta2 and alpha as floats (0.999f = 0.99900001), so 1 - beta2 is off by 1.3e-5 relative
 * and Adam's steps by ~6e-6 relative (~1e-7 absolute here); torch may also use FMA.
 * Measured worst: 2.6e-7 absolute (RMSprop+momentum, a parameter near 0 after
 * cancellation), 1.4e-6 relative elsewhere. */
static void check_torch(ns_opt_kind kind, double lr, double momentum, int nesterov,
                        double wd, const float ref[3][5], const char *name)
{
    ns_optim_spec s;
    ns_optim_spec_default(&s, kind);
    s.momentum = momentum;
    s.nesterov = nesterov;
    s.weight_decay = wd;
    ns_optim o;
    ns_err err = {0};
    cr_assert_eq(ns_optim_init(&o, &s, be, 5, &err), NS_OK, "%s", err.msg);
    float p[5], g[5];
    memcpy(p, P0, sizeof p);
    for (int t = 1; t <= 3; t++) {
        for (int i = 0; i < 5; i++)
            g[i] = GB[i] + 0.25f * (float)t * GS[i];
        ns_optim_step(&o, p, g, lr);
        double r[5];
        for (int i = 0; i < 5; i++)
            r[i] = ref[t - 1][i];
        expect_close("p", name, t, r, p, 5, 5e-7, 2e-6);
    }
    ns_optim_free(&o);
}

Test(optim, matches_pytorch)
{
    check_torch(NS_OPT_SGD, 0.1, 0.0, 0, 0.0, ref_sgd, "sgd");
    check_torch(NS_OPT_SGD, 0.1, 0.9, 0, 0.0, ref_sgd_momentum, "sgd_momentum");
    check_torch(NS_OPT_SGD, 0.1, 0.9, 1, 0.01, ref_sgd_nesterov_wd, "sgd_nesterov_wd");
    check_torch(NS_OPT_ADAM, 0.01, 0.0, 0, 0.0, ref_adam, "adam");
    check_torch(NS_OPT_ADAM, 0.01, 0.0, 0, 0.1, ref_adam_wd, "adam_wd");
    check_torch(NS_OPT_ADAMW, 0.01, 0.0, 0, 0.1, ref_adamw_wd, "adamw_wd");
    check_torch(NS_OPT_RMSPROP, 0.01, 0.0, 0, 0.0, ref_rmsprop, "rmsprop");
    check_torch(NS_OPT_RMSPROP, 0.01, 0.9, 0, 0.0, ref_rmsprop_momentum, "rmsprop_momentum");
    check_torch(NS_OPT_RMSPROP, 0.01, 0.0, 0, 0.1, ref_rmsprop_wd, "rmsprop_wd");
}

/* ---- kernels: same bits as a scalar float loop in torch's order ---------------------- */
/* The vector body, the scalar tail and both target clones must all round like this plain
 * loop (no FMA, no reassociation); that is what makes CPU runs bit-reproducible. The
 * derived scalars are formed as the kernels document: in double, rounded to float. */

static void scalar_sgd(float *p, float *buf, const float *g, size_t n, float lr, float mu,
                       float wd, int nesterov)
{
    for (size_t i = 0; i < n; i++) {
        float d = g[i];
        if (wd != 0.0f)
            d = d + wd * p[i];
        if (mu != 0.0f) {
            buf[i] = buf[i] * mu + d;
            d = nesterov ? d + mu * buf[i] : buf[i];
        }
        p[i] = p[i] + -lr * d;
    }
}

static void scalar_adam(float *p, float *m, float *v, const float *g, size_t n, float lr,
                        float b1, float b2, float eps, float wd, float bc1, float bc2,
                        int decoupled)
{
    float step = (float)((double)lr / bc1), inv_bc2s = (float)(1.0 / sqrt(bc2));
    for (size_t i = 0; i < n; i++) {
        float d = g[i];
        if (decoupled)
            p[i] = p[i] * (float)(1.0 - (double)lr * wd);
        else if (wd != 0.0f)
            d = d + wd * p[i];
        m[i] = m[i] * b1 + (float)(1.0 - b1) * d;
        v[i] = v[i] * b2 + (float)(1.0 - b2) * d * d;
        float denom = sqrtf(v[i]) * inv_bc2s + eps;
        p[i] = p[i] + -step * m[i] / denom;
    }
}

static void scalar_rmsprop(float *p, float *v, float *buf, const float *g, size_t n,
                           float lr, float alpha, float eps, float wd, float mu)
{
    for (size_t i = 0; i < n; i++) {
        float d = g[i];
        if (wd != 0.0f)
            d = d + wd * p[i];
        v[i] = v[i] * alpha + (float)(1.0 - alpha) * d * d;
        float avg = sqrtf(v[i]) + eps;
        if (mu > 0.0f) {
            buf[i] = buf[i] * mu + d / avg;
            p[i] = p[i] + -lr * buf[i];
        } else {
            p[i] = p[i] + -lr * d / avg;
        }
    }
}

enum { NB = 6 }; /* p, m, v for the kernel and for the scalar loop */

static void fill(float *a[NB], size_t n, uint64_t seed)
{
    ns_rng r;
    ns_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        a[0][i] = a[3][i] = (float)ns_rng_normal(&r);
        a[1][i] = a[4][i] = (float)(0.1 * ns_rng_normal(&r));
        a[2][i] = a[5][i] = (float)(0.01 * ns_rng_uniform(&r));
    }
}

static void expect_same_bits(float *a[NB], size_t n, const char *what)
{
    for (int b = 0; b < 3; b++)
        cr_expect_eq(memcmp(a[b], a[b + 3], n * sizeof(float)), 0,
                     "%s n=%zu: buffer %d differs from the scalar loop", what, n, b);
}

Test(optim, kernels_bit_identical_to_scalar_loop)
{
    const size_t sizes[] = {1, 3, 7, 8, 9, 15, 16, 17, 1003};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t n = sizes[k];
        float *a[NB], *g = malloc(n * sizeof(float));
        for (int b = 0; b < NB; b++)
            a[b] = malloc(n * sizeof(float));
        make_grads(g, n, 99, (long)n);
        for (int variant = 0; variant < 4; variant++) {
            float wd = variant & 1 ? 0.01f : 0.0f;
            int flag = variant >> 1;
            fill(a, n, 1000 + (uint64_t)variant);
            for (int t = 0; t < 3; t++) {
                ns_cpu_sgd_update(a[0], a[1], g, n, 0.05f, flag ? 0.9f : 0.0f, wd, flag);
                scalar_sgd(a[3], a[4], g, n, 0.05f, flag ? 0.9f : 0.0f, wd, flag);
            }
            expect_same_bits(a, n, "sgd");
            fill(a, n, 2000 + (uint64_t)variant);
            for (int t = 1; t <= 3; t++) {
                float bc1 = (float)(1 - pow(0.9, t)), bc2 = (float)(1 - pow(0.999, t));
                ns_cpu_adam_update(a[0], a[1], a[2], g, n, 1e-2f, 0.9f, 0.999f, 1e-8f, wd,
                                   bc1, bc2, flag);
                scalar_adam(a[3], a[4], a[5], g, n, 1e-2f, 0.9f, 0.999f, 1e-8f, wd, bc1, bc2,
                            flag);
            }
            expect_same_bits(a, n, "adam");
            fill(a, n, 3000 + (uint64_t)variant);
            for (int t = 0; t < 3; t++) {
                ns_cpu_rmsprop_update(a[0], a[2], a[1], g, n, 1e-2f, 0.99f, 1e-8f, wd,
                                      flag ? 0.9f : 0.0f);
                scalar_rmsprop(a[3], a[5], a[4], g, n, 1e-2f, 0.99f, 1e-8f, wd,
                               flag ? 0.9f : 0.0f);
            }
            expect_same_bits(a, n, "rmsprop");
        }
        for (int b = 0; b < NB; b++)
            free(a[b]);
        free(g);
    }
}

Test(optim, zero_momentum_leaves_buffer_alone)
{
    /* mu == 0: the momentum buffer may be NULL; passing NULL must not crash. */
    float p[3] = {1, 2, 3}, g[3] = {1, 1, 1}, v[3] = {0};
    ns_cpu_sgd_update(p, NULL, g, 3, 0.5f, 0.0f, 0.0f, 0);
    cr_expect_eq(p[0], 0.5f);
    ns_cpu_rmsprop_update(p, v, NULL, g, 3, 0.5f, 0.5f, 0.0f, 0.0f, 0.0f);
    cr_expect_eq(v[0], 0.5f);
    cr_expect_eq(p[0], 0.5f - 0.5f * 1.0f / sqrtf(0.5f));
}

/* ---- checkpoint exactness ------------------------------------------------------------ */

static void run(ns_optim *o, float *p, float *g, size_t n, long from, long to)
{
    for (long t = from; t <= to; t++) {
        make_grads(g, n, 555, t);
        ns_optim_step(o, p, g, 0.02 * (1.0 + 0.3 * sin((double)t))); /* a varying LR */
    }
}

static void check_resume(const ns_optim_spec *s, const char *name)
{
    const size_t n = 70001; /* more than one staging chunk */
    const long total = 6, cut = 3;
    float *p1 = malloc(n * sizeof(float)), *p2 = malloc(n * sizeof(float)),
          *g = malloc(n * sizeof(float));
    ns_rng r;
    ns_rng_seed(&r, 3);
    for (size_t i = 0; i < n; i++)
        p1[i] = p2[i] = (float)ns_rng_normal(&r);
    ns_err err = {0};
    ns_optim a, b;
    cr_assert_eq(ns_optim_init(&a, s, be, n, &err), NS_OK, "%s", err.msg);
    run(&a, p1, g, n, 1, total);

    cr_assert_eq(ns_optim_init(&b, s, be, n, &err), NS_OK, "%s", err.msg);
    run(&b, p2, g, n, 1, cut);
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    cr_assert_eq(ns_optim_save(&b, f), NS_OK);
    ns_optim_free(&b);
    rewind(f);
    cr_assert_eq(ns_optim_init(&b, s, be, n, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_optim_load(&b, f), NS_OK);
    cr_expect_eq(fgetc(f), EOF, "%s: load left bytes unread", name);
    fclose(f);
    cr_expect_eq(b.t, cut);
    run(&b, p2, g, n, cut + 1, total);

    cr_expect_eq(b.t, a.t);
    cr_expect_eq(memcmp(p1, p2, n * sizeof(float)), 0, "%s: params differ after resume", name);
    float *sa[2] = {a.m, a.v}, *sb[2] = {b.m, b.v};
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(sa[k] == NULL, sb[k] == NULL);
        if (!sa[k])
            continue;
        float *ha = download(sa[k], n), *hb = download(sb[k], n);
        cr_expect_eq(memcmp(ha, hb, n * sizeof(float)), 0, "%s: state %d differs", name, k);
        free(ha);
        free(hb);
    }
    ns_optim_free(&a);
    ns_optim_free(&b);
    free(p1);
    free(p2);
    free(g);
}

Test(optim, save_load_resume_is_bit_exact)
{
    ns_optim_spec s;
    ns_optim_spec_default(&s, NS_OPT_SGD);
    s.nesterov = 1;
    check_resume(&s, "sgd+nesterov");
    ns_optim_spec_default(&s, NS_OPT_SGD);
    s.momentum = 0.0;
    check_resume(&s, "sgd plain");
    ns_optim_spec_default(&s, NS_OPT_ADAM);
    s.weight_decay = 1e-3;
    check_resume(&s, "adam+wd");
    ns_optim_spec_default(&s, NS_OPT_ADAMW);
    s.weight_decay = 1e-2;
    check_resume(&s, "adamw");
    ns_optim_spec_default(&s, NS_OPT_RMSPROP);
    s.momentum = 0.9;
    check_resume(&s, "rmsprop+momentum");
}

Test(optim, load_rejects_short_or_foreign_state)
{
    const size_t n = 100;
    ns_optim_spec s;
    ns_optim_spec_default(&s, NS_OPT_ADAM);
    ns_err err = {0};
    ns_optim o, other;
    cr_assert_eq(ns_optim_init(&o, &s, be, n, &err), NS_OK, "%s", err.msg);
    float p[100] = {0}, g[100];
    for (size_t i = 0; i < n; i++)
        g[i] = (float)i - 50.0f;
    ns_optim_step(&o, p, g, 1e-3);

    FILE *f = tmpfile();
    cr_assert_not_null(f);
    cr_assert_eq(ns_optim_save(&o, f), NS_OK);
    long full = ftell(f);
    cr_expect_eq(full, (long)(8 + 8 + 4 + 4 + 2 * n * sizeof(float)));

    /* truncated: every prefix is refused */
    char *bytes = malloc((size_t)full);
    rewind(f);
    cr_assert_eq(fread(bytes, 1, (size_t)full, f), (size_t)full);
    fclose(f);
    const long cuts[] = {0, 5, 24, 24 + 4 * 50, full - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof *cuts; k++) {
        FILE *t = tmpfile();
        cr_assert_not_null(t);
        if (cuts[k])
            cr_assert_eq(fwrite(bytes, 1, (size_t)cuts[k], t), (size_t)cuts[k]);
        rewind(t);
        cr_expect_eq(ns_optim_load(&o, t), NS_EINPUT, "prefix of %ld bytes accepted", cuts[k]);
        fclose(t);
    }

    /* another size, another kind, another state layout */
    const struct {
        ns_opt_kind kind;
        size_t n;
        double momentum;
    } bad[] = {{NS_OPT_ADAM, n + 1, 0.0}, {NS_OPT_ADAMW, n, 0.0}, {NS_OPT_RMSPROP, n, 0.0}};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        ns_optim_spec_default(&s, bad[k].kind);
        s.momentum = bad[k].momentum;
        cr_assert_eq(ns_optim_init(&other, &s, be, bad[k].n, &err), NS_OK, "%s", err.msg);
        FILE *t = tmpfile();
        cr_assert_eq(fwrite(bytes, 1, (size_t)full, t), (size_t)full);
        rewind(t);
        cr_expect_eq(ns_optim_load(&other, t), NS_EINPUT, "foreign state %zu accepted", k);
        cr_expect_eq(other.t, 0);
        fclose(t);
        ns_optim_free(&other);
    }
    free(bytes);
    ns_optim_free(&o);
}

/* Members stepped together (trials trained in lock-step) are each the member stepped
 * alone: four specs of three kinds, two parameter groups, three steps, one member gated
 * on the second step (its update skipped, its t still counted as ns_optim_step_groups
 * counts it). */
Test(optim, members_stepped_together_equal_each_alone)
{
    enum { K = 4 };
    const size_t n = 203, off[3] = {0, 150, 203};
    const ns_opt_kind kinds[K] = {NS_OPT_ADAM, NS_OPT_SGD, NS_OPT_RMSPROP, NS_OPT_ADAMW};
    ns_optim alone[K], together[K];
    float *pa[K], *pt[K], *g = ns_buf_alloc(be, n * sizeof(float));
    ns_err err = {0};
    for (int k = 0; k < K; k++) {
        ns_optim_spec s;
        ns_optim_spec_default(&s, kinds[k]);
        s.weight_decay = 1e-3 * k;
        s.momentum = kinds[k] == NS_OPT_ADAM || kinds[k] == NS_OPT_ADAMW ? 0.0 : 0.5;
        cr_assert_eq(ns_optim_init(&alone[k], &s, be, n, &err), NS_OK, "%s", err.msg);
        cr_assert_eq(ns_optim_init(&together[k], &s, be, n, &err), NS_OK, "%s", err.msg);
        pa[k] = ns_buf_alloc(be, n * sizeof(float));
        pt[k] = ns_buf_alloc(be, n * sizeof(float));
        make_grads(pa[k], n, 40 + k, 0);
        memcpy(pt[k], pa[k], n * sizeof(float));
    }
    const double finite = 1.0, blown = INFINITY;
    for (long t = 1; t <= 3; t++) {
        make_grads(g, n, 7, t);
        double lr[K], ra[K][2], rt[K][2], *res[K];
        const double *gate[K];
        const float *gs[K];
        for (int k = 0; k < K; k++) {
            lr[k] = 0.01 * (k + 1) / t;
            gate[k] = k == 2 && t == 2 ? &blown : &finite;
            res[k] = rt[k];
            gs[k] = g;
            ns_optim_step_groups(&alone[k], pa[k], g, lr[k], 2, off, gate[k], ra[k]);
        }
        ns_optim_step_members((ns_optim *const[K]){&together[0], &together[1], &together[2],
                                                   &together[3]},
                              pt, gs, lr, K, 2, off, gate, res);
        for (int k = 0; k < K; k++) {
            cr_assert(memcmp(pa[k], pt[k], n * sizeof(float)) == 0, "member %d, step %ld: the "
                      "parameters differ", k, t);
            cr_assert(ra[k][0] == rt[k][0] && ra[k][1] == rt[k][1], "member %d, step %ld: sums",
                      k, t);
            cr_assert_eq(alone[k].t, together[k].t);
            if (together[k].m)
                cr_assert(memcmp(alone[k].m, together[k].m, n * sizeof(float)) == 0);
            if (together[k].v)
                cr_assert(memcmp(alone[k].v, together[k].v, n * sizeof(float)) == 0);
        }
        cr_assert(t != 2 || (rt[2][0] == 0 && rt[2][1] == 0), "the gated member summed");
    }
    for (int k = 0; k < K; k++) {
        ns_optim_free(&alone[k]);
        ns_optim_free(&together[k]);
        ns_buf_free(be, pa[k]);
        ns_buf_free(be, pt[k]);
    }
    ns_buf_free(be, g);
}
