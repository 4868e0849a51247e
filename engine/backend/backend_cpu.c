/* backend_cpu.c — the CPU backend: GEMMs on OpenBLAS, everything else as fused,
 * vectorisable loops (one pass for bias + activation + dropout, one for each optimizer
 * update). Device buffers are ordinary host memory. Reduction orders are fixed, so a run
 * gives the same bits every time on the same machine. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend/backend_impl.h"
#include "engine/backend/cpu_ops.h"
#include "engine/backend/shared_math.h"
#include "engine/rng.h"

/* OpenBLAS exports these; cblas.h of other BLAS builds does not declare them. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

#define NS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

/* ---- activations and dropout (shared_math.h), exported for the reference ops and tests */

float ns_act_eval(ns_act act, float x) { return ns_act_value(act, x); }

float ns_act_deriv(ns_act act, float x) { return ns_act_slope(act, x); }

int ns_dropout_keep(uint64_t seed, size_t i, float p) { return ns_dropout_draw(seed, i) >= p; }

/* ---- memory ---------------------------------------------------------------------- */

/* The CPU backend: the op table and the immediate ops' result slots (host memory, as
 * every buffer of this backend). */
typedef struct cpu_backend {
    ns_backend base; /* first: the op table sees an ns_backend */
    double res[NS_RES_LOSS_N], res_host[NS_RES_LOSS_N];
} cpu_backend;

static void cpu_destroy(ns_backend *be) { free(be); }

static long fail_countdown = -1;

void ns_backend_cpu_fail_alloc_after(long n) { fail_countdown = n; }

static void *cpu_alloc(ns_backend *be, size_t bytes)
{
    (void)be;
    if (fail_countdown >= 0 && fail_countdown-- == 0)
        return NULL;
    /* 64-byte alignment: whole cache lines and aligned AVX loads for every buffer. */
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (p)
        memset(p, 0, rounded ? rounded : 64);
    return p;
}

static void cpu_free(ns_backend *be, void *p)
{
    (void)be;
    free(p);
}

static void cpu_memcpy(ns_backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (dst != src && bytes)
        memcpy(dst, src, bytes);
}

static void cpu_gather_rows(ns_backend *be, float *out, const float *src, const int32_t *idx,
                            int B, int d)
{
    (void)be;
    for (int i = 0; i < B; i++)
        memcpy(out + (size_t)i * d, src + (size_t)idx[i] * d, (size_t)d * sizeof *out);
}

static void cpu_gather_labels(ns_backend *be, int32_t *out, const int32_t *src,
                              const int32_t *idx, int B)
{
    (void)be;
    for (int i = 0; i < B; i++)
        out[i] = src[idx[i]];
}

/* ---- elementwise and reductions --------------------------------------------------- */

static void cpu_zero(ns_backend *be, float *x, size_t n)
{
    (void)be;
    memset(x, 0, n * sizeof *x);
}

NS_CLONES static void cpu_scale(ns_backend *be, float *x, float s, size_t n)
{
    (void)be;
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
}

NS_CLONES static double cpu_sumsq(ns_backend *be, const float *x, size_t n)
{
    (void)be;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * (double)x[i];
    return s;
}

static int cpu_all_finite(ns_backend *be, const float *x, size_t n)
{
    (void)be;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* ---- dense layer ------------------------------------------------------------------ */

static void cpu_matmul_forward(ns_backend *be, float *out, const float *inp, const float *w,
                               int B, int C, int OC)
{
    (void)be;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, C, 1.0f, inp, C, w, C, 0.0f,
                out, OC);
}

static void cpu_matmul_backward(ns_backend *be, float *dinp, float *dw, const float *dout,
                                const float *inp, const float *w, int B, int C, int OC)
{
    (void)be;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, B, 1.0f, dout, OC, inp, C,
                1.0f, dw, C);
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, C, OC, 1.0f, dout, OC, w, C,
                    0.0f, dinp, C);
}

/* The activation is chosen outside the loops so that each inner loop is branch-free and
 * vectorises; transcendental activations call libm per element. */
NS_CLONES static void cpu_bias_act_forward(ns_backend *be, float *out, float *pre,
                                           const float *b, ns_act act, float p, uint64_t seed,
                                           int B, int OC)
{
    (void)be;
    const float inv_keep = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
    for (int i = 0; i < B; i++) {
        float *z = pre + (size_t)i * OC;
        float *a = out + (size_t)i * OC;
        switch (act) {
        case NS_ACT_IDENTITY:
#pragma omp simd
            for (int j = 0; j < OC; j++) {
                z[j] += b[j];
                a[j] = z[j];
            }
            break;
        case NS_ACT_RELU:
#pragma omp simd
            for (int j = 0; j < OC; j++) {
                z[j] += b[j];
                a[j] = z[j] > 0.0f ? z[j] : 0.0f;
            }
            break;
        case NS_ACT_LEAKY_RELU:
#pragma omp simd
            for (int j = 0; j < OC; j++) {
                z[j] += b[j];
                a[j] = z[j] > 0.0f ? z[j] : NS_LEAKY_SLOPE * z[j];
            }
            break;
        default:
            for (int j = 0; j < OC; j++) {
                z[j] += b[j];
                a[j] = ns_act_value(act, z[j]);
            }
            break;
        }
        if (p > 0.0f) {
            size_t base = (size_t)i * OC;
            for (int j = 0; j < OC; j++)
                a[j] = ns_dropout_draw(seed, base + j) >= p ? a[j] * inv_keep : 0.0f;
        }
    }
}

NS_CLONES static void cpu_bias_act_backward(ns_backend *be, float *dpre, float *db,
                                            const float *dout, const float *pre, ns_act act,
                                            float p, uint64_t seed, int B, int OC)
{
    (void)be;
    const float inv_keep = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
    for (int i = 0; i < B; i++) {
        const float *z = pre + (size_t)i * OC;
        const float *g = dout + (size_t)i * OC;
        float *d = dpre + (size_t)i * OC;
        if (p > 0.0f) {
            size_t base = (size_t)i * OC;
            for (int j = 0; j < OC; j++)
                d[j] = ns_dropout_draw(seed, base + j) >= p ? g[j] * inv_keep : 0.0f;
            g = d;
        }
        switch (act) {
        case NS_ACT_IDENTITY:
            if (d != g)
                memcpy(d, g, (size_t)OC * sizeof *d);
            break;
        case NS_ACT_RELU:
#pragma omp simd
            for (int j = 0; j < OC; j++)
                d[j] = z[j] > 0.0f ? g[j] : 0.0f;
            break;
        case NS_ACT_LEAKY_RELU:
#pragma omp simd
            for (int j = 0; j < OC; j++)
                d[j] = z[j] > 0.0f ? g[j] : NS_LEAKY_SLOPE * g[j];
            break;
        default:
            for (int j = 0; j < OC; j++)
                d[j] = ns_act_backward(act, z[j], g[j]);
            break;
        }
#pragma omp simd
        for (int j = 0; j < OC; j++)
            db[j] += d[j];
    }
}

/* ---- losses ----------------------------------------------------------------------- */

static void cpu_softmax_xent(ns_backend *be, double *res, float *dlogits, const float *logits,
                             const int32_t *labels, const float *class_w, float eps, int B, int C)
{
    (void)be;
    double W = 0.0, Wc = 0.0; /* sum of the rows' weights; sum of all class weights */
    for (int i = 0; i < B; i++)
        W += class_w ? (double)class_w[labels[i]] : 1.0;
    for (int c = 0; c < C; c++)
        Wc += class_w ? (double)class_w[c] : 1.0;
    const double inv_W = W > 0.0 ? 1.0 / W : 0.0;
    const double hard = 1.0 - (double)eps, soft = (double)eps / C;
    double loss = 0.0;
    long hits = 0;
    for (int i = 0; i < B; i++) {
        int hit;
        loss += ns_xent_row(logits + (size_t)i * C, labels[i], C, class_w, hard, soft, Wc, inv_W,
                            dlogits ? dlogits + (size_t)i * C : NULL, &hit);
        hits += hit;
    }
    if (res) {
        res[NS_RES_LOSS] = loss;
        res[NS_RES_WEIGHT] = W;
        res[NS_RES_EXTRA] = (double)hits;
    }
}

static void cpu_softmax(ns_backend *be, float *probs, const float *logits, int B, int C)
{
    (void)be;
    for (int i = 0; i < B; i++)
        ns_softmax_row(probs + (size_t)i * C, logits + (size_t)i * C, C);
}

static void cpu_mse(ns_backend *be, double *res, float *dpred, const float *pred,
                    const float *target, int B, int K)
{
    (void)be;
    const size_t n = (size_t)B * K;
    const float g = 2.0f / (float)n;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)pred[i] - (double)target[i];
        s += e * e;
        if (dpred)
            dpred[i] = g * (pred[i] - target[i]);
    }
    if (res) {
        res[NS_RES_LOSS] = s / K;
        res[NS_RES_WEIGHT] = B;
        res[NS_RES_EXTRA] = s;
    }
}

/* ---- optimizer updates: the kernels are in cpu_optim.c ---------------------------- */

/* Whether a gated update is skipped: its step's loss was not finite. */
static int gated(const double *gate, double *res)
{
    if (!gate || isfinite(*gate))
        return 0;
    if (res)
        *res = 0.0;
    return 1;
}

static void cpu_sgd(ns_backend *be, double *res, const double *gate, float *p, float *buf,
                    const float *g, size_t n, float lr, float mu, float wd, int nesterov)
{
    (void)be;
    if (gated(gate, res))
        return;
    double sq = ns_cpu_sgd_update(p, buf, g, n, lr, mu, wd, nesterov);
    if (res)
        *res = sq;
}

static void cpu_adam(ns_backend *be, double *res, const double *gate, float *p, float *m,
                     float *v, const float *g, size_t n, float lr, double b1, double b2,
                     float eps, float wd, double bc1, double bc2, int decoupled)
{
    (void)be;
    if (gated(gate, res))
        return;
    double sq = ns_cpu_adam_update(p, m, v, g, n, lr, b1, b2, eps, wd, bc1, bc2, decoupled);
    if (res)
        *res = sq;
}

static void cpu_rmsprop(ns_backend *be, double *res, const double *gate, float *p, float *v,
                        float *buf, const float *g, size_t n, float lr, double alpha, float eps,
                        float wd, float mu)
{
    (void)be;
    if (gated(gate, res))
        return;
    double sq = ns_cpu_rmsprop_update(p, v, buf, g, n, lr, alpha, eps, wd, mu);
    if (res)
        *res = sq;
}

static const ns_backend_ops cpu_ops = {
    .name = "cpu",
    .is_host = 1,
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .copy = cpu_memcpy,
    .gather_rows = cpu_gather_rows,
    .gather_labels = cpu_gather_labels,
    .zero = cpu_zero,
    .scale = cpu_scale,
    .sumsq = cpu_sumsq,
    .all_finite = cpu_all_finite,
    .matmul_forward = cpu_matmul_forward,
    .matmul_backward = cpu_matmul_backward,
    .bias_act_forward = cpu_bias_act_forward,
    .bias_act_backward = cpu_bias_act_backward,
    .softmax_xent = cpu_softmax_xent,
    .softmax = cpu_softmax,
    .mse = cpu_mse,
    .sgd_update = cpu_sgd,
    .adam_update = cpu_adam,
    .rmsprop_update = cpu_rmsprop,
};

ns_backend *ns_backend_cpu_alloc(int threads, ns_err *err)
{
    if (threads < 1) {
        ns_err_set(err, NS_EINPUT, "threads must be >= 1 (got %d)", threads);
        return NULL;
    }
    cpu_backend *c = calloc(1, sizeof *c);
    if (!c) {
        ns_err_set(err, NS_ERUNTIME, "out of memory allocating the CPU backend");
        return NULL;
    }
    ns_backend *be = &c->base;
    be->ops = &cpu_ops;
    be->threads = threads;
    be->res = c->res;
    be->res_host = c->res_host;
    /* OpenBLAS's thread count is process-wide: backends made side by side by a trial pool
     * must ask for the same count */
    ns_blas_threads_set(threads);
    return be;
}

int ns_blas_threads_set(int threads)
{
    int was = openblas_get_num_threads();
    if (threads >= 1 && was != threads)
        openblas_set_num_threads(threads);
    return was;
}
