/* cpu_ops.h — the CPU kernels behind the CPU backend's op table, as plain functions on
 * host memory (no ns_backend argument), so tests and benchmarks can call them directly.
 * Each is a fused, vectorisable loop compiled for AVX-512, AVX2 and a baseline x86-64 target with
 * per-function dispatch; both clones give the same bits (no FMA contraction).
 * Not the public interface: model and training code call the ns_op_* ops of backend.h. */
#ifndef NS_CPU_OPS_H
#define NS_CPU_OPS_H

#include <stddef.h>

/* ---- optimizer updates (cpu_optim.c) ------------------------------------------------ */
/* One pass over n parameters each; formulas and operation order as torch.optim, in float.
 * Contracts as ns_op_sgd_update / ns_op_adam_update / ns_op_rmsprop_update (backend.h).
 * p, the state buffers and g must not overlap. */

/* g' = g + wd p; buf = mu buf + g'; p -= lr * (nesterov ? g' + mu buf : buf).
 * mu == 0: p -= lr g' and buf is not touched (may be NULL). */
double ns_cpu_sgd_update(float *p, float *buf, const float *g, size_t n, float lr, float mu,
                       float wd, int nesterov);
/* Adam (decoupled = 0: g' = g + wd p) or AdamW (decoupled = 1: p *= 1 - lr wd first);
 * m = b1 m + (1 - b1) g'; v = b2 v + (1 - b2) g'^2;
 * p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps), bc_k = 1 - b_k^t from the caller. */
double ns_cpu_adam_update(float *p, float *m, float *v, const float *g, size_t n, float lr,
                        double b1, double b2, float eps, float wd, double bc1, double bc2,
                        int decoupled);
/* g' = g + wd p; v = alpha v + (1 - alpha) g'^2; d = g' / (sqrt(v) + eps);
 * mu > 0: buf = mu buf + d, p -= lr buf; mu == 0: p -= lr d, buf untouched (may be NULL). */
double ns_cpu_rmsprop_update(float *p, float *v, float *buf, const float *g, size_t n,
                           float lr, double alpha, float eps, float wd, float mu);

#endif
