/* cpu_optim.c — CPU kernels of the optimizer updates: one fused, vectorised pass over the
 * flat parameter buffer per step, in float, with torch.optim's operation order.
 * Not the optimizer: state allocation, step counting and bias corrections are in optim.c.
 *
 * Each loop body is written once in an always-inline helper whose flags are compile-time
 * constants at every call site, so the choices (weight decay on/off, momentum, Nesterov,
 * decoupled decay) are made outside the loop and each variant vectorises on its own.
 * The choice "wd == 0" is not folded into "g + 0 * p": torch skips the term, and
 * 0 * inf would turn an infinite parameter's update into NaN.
 * Scalars derived from the arguments (lr / bc1, sqrt(bc2), 1 - lr wd) are formed once,
 * in double, then rounded to float, as torch does with its Python-float scalars.
 * Clones for AVX-512, AVX2 and baseline x86-64 (the AVX-512 one is a quarter faster on the
 * divisions and square roots that bound Adam). ISO C mode keeps FMA contraction off, and
 * every operation is elementwise and correctly rounded, so all clones give the same
 * parameter bits on every x86-64 machine; only the returned sums of squares may differ in
 * their last bits, since the lane count sets their summation order.
 * Each kernel also returns the sum of squares of the gradient it read (float lanes, summed
 * in a fixed order): the per-layer gradient norms then cost no extra pass over memory. */
#include <math.h>

#include "engine/backend/cpu_ops.h"

#define NS_INLINE static inline __attribute__((always_inline))
/* clang 14 (Debian 12's, used for fuzzing) names an exported clone set's dispatcher
 * "f.ifunc" and emits no "f", so backend_cpu.c could not link: clang builds take the
 * baseline loop (same bits, as above). The static clone sets in backend_cpu.c are fine. */
#if defined(__clang__)
#define NS_CLONES
#else
#define NS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif

/* ---- SGD ------------------------------------------------------------------------- */

NS_INLINE float sgd_loop(float *restrict p, float *restrict buf, const float *restrict g,
                         size_t n, float lr, float mu, float wd, const int has_wd,
                         const int has_mu, const int nesterov)
{
    float gsq = 0.0f;
#pragma omp simd reduction(+ : gsq)
    for (size_t i = 0; i < n; i++) {
        gsq += g[i] * g[i];
        float d = has_wd ? g[i] + wd * p[i] : g[i];
        if (has_mu) {
            float b = mu * buf[i] + d;
            buf[i] = b;
            d = nesterov ? d + mu * b : b;
        }
        p[i] = p[i] - lr * d;
    }
    return gsq;
}

NS_CLONES
double ns_cpu_sgd_update(float *p, float *buf, const float *g, size_t n, float lr, float mu,
                         float wd, int nesterov)
{
    const int has_wd = wd != 0.0f;
    if (mu == 0.0f) {
        if (has_wd)
            return sgd_loop(p, buf, g, n, lr, mu, wd, 1, 0, 0);
        else
            return sgd_loop(p, buf, g, n, lr, mu, wd, 0, 0, 0);
    } else if (nesterov) {
        if (has_wd)
            return sgd_loop(p, buf, g, n, lr, mu, wd, 1, 1, 1);
        else
            return sgd_loop(p, buf, g, n, lr, mu, wd, 0, 1, 1);
    } else {
        if (has_wd)
            return sgd_loop(p, buf, g, n, lr, mu, wd, 1, 1, 0);
        else
            return sgd_loop(p, buf, g, n, lr, mu, wd, 0, 1, 0);
    }
}

/* ---- Adam / AdamW ------------------------------------------------------------------ */

/* decay: AdamW's p *= 1 - lr wd (exactly 1 for Adam, where it changes no bit);
 * has_wd: Adam's coupled g' = g + wd p. */
NS_INLINE float adam_loop(float *restrict p, float *restrict m, float *restrict v,
                          const float *restrict g, size_t n, float b1, float c1, float b2,
                          float c2, float eps, float wd, float decay, float step,
                          float inv_bc2s, const int has_wd)
{
    float gsq = 0.0f;
#pragma omp simd reduction(+ : gsq)
    for (size_t i = 0; i < n; i++) {
        gsq += g[i] * g[i];
        float x = p[i] * decay;
        float d = has_wd ? g[i] + wd * x : g[i];
        float mi = m[i] * b1 + c1 * d;  /* exp_avg.mul_(b1).add_(g, alpha=1-b1) */
        float vi = v[i] * b2 + c2 * d * d; /* exp_avg_sq.mul_(b2).addcmul_(g, g, 1-b2) */
        m[i] = mi;
        v[i] = vi;
        /* torch divides by sqrt(bc2); multiplying by its reciprocal saves one of the
         * loop's two divisions (a third of its time) for a last-bit difference. */
        float denom = sqrtf(vi) * inv_bc2s + eps;
        p[i] = x - step * mi / denom; /* addcdiv_(m, denom, value=-step) */
    }
    return gsq;
}

NS_CLONES
double ns_cpu_adam_update(float *p, float *m, float *v, const float *g, size_t n, float lr,
                          double b1, double b2, float eps, float wd, double bc1, double bc2,
                          int decoupled)
{
    const float c1 = (float)(1.0 - b1);
    const float c2 = (float)(1.0 - b2);
    const float step = (float)((double)lr / bc1);
    const float inv_bc2s = (float)(1.0 / sqrt(bc2));
    const float decay = decoupled ? (float)(1.0 - (double)lr * (double)wd) : 1.0f;
    if (!decoupled && wd != 0.0f)
        return adam_loop(p, m, v, g, n, (float)b1, c1, (float)b2, c2, eps, wd, 1.0f, step,
                         inv_bc2s, 1);
    return adam_loop(p, m, v, g, n, (float)b1, c1, (float)b2, c2, eps, wd, decay, step,
                     inv_bc2s, 0);
}

/* ---- RMSprop ----------------------------------------------------------------------- */

NS_INLINE float rmsprop_loop(float *restrict p, float *restrict v, float *restrict buf,
                             const float *restrict g, size_t n, float lr, float alpha,
                             float c, float eps, float wd, float mu, const int has_wd,
                             const int has_mu)
{
    float gsq = 0.0f;
#pragma omp simd reduction(+ : gsq)
    for (size_t i = 0; i < n; i++) {
        gsq += g[i] * g[i];
        float d = has_wd ? g[i] + wd * p[i] : g[i];
        float vi = v[i] * alpha + c * d * d; /* square_avg.mul_(a).addcmul_(g, g, 1-a) */
        v[i] = vi;
        float avg = sqrtf(vi) + eps;
        if (has_mu) {
            float b = buf[i] * mu + d / avg; /* buf.mul_(mu).addcdiv_(g, avg) */
            buf[i] = b;
            p[i] = p[i] - lr * b;
        } else {
            p[i] = p[i] - lr * d / avg; /* addcdiv_(g, avg, value=-lr) */
        }
    }
    return gsq;
}

NS_CLONES
double ns_cpu_rmsprop_update(float *p, float *v, float *buf, const float *g, size_t n,
                             float lr, double alpha, float eps, float wd, float mu)
{
    const float c = (float)(1.0 - alpha);
    const int has_wd = wd != 0.0f;
    if (mu > 0.0f) {
        if (has_wd)
            return rmsprop_loop(p, v, buf, g, n, lr, (float)alpha, c, eps, wd, mu, 1, 1);
        else
            return rmsprop_loop(p, v, buf, g, n, lr, (float)alpha, c, eps, wd, mu, 0, 1);
    } else {
        if (has_wd)
            return rmsprop_loop(p, v, buf, g, n, lr, (float)alpha, c, eps, wd, mu, 1, 0);
        else
            return rmsprop_loop(p, v, buf, g, n, lr, (float)alpha, c, eps, wd, mu, 0, 0);
    }
}
