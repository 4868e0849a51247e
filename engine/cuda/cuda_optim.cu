/* cuda_optim.cu — the CUDA backend's optimizer updates (SGD, Adam/AdamW, RMSprop: one thread
 * an element, cpu_optim.c's loops), single and for K members at once, gated on the step's
 * loss where the backend left it, with the gradients' sums of squares in a fixed reduction
 * order. Not the layers (cuda_layers.cu) or the set-up (backend_cuda.cu). */
#include "engine/cuda/cuda_impl.h"

/* ---- optimizer updates: cpu_optim.c's loops, one thread an element ------------------------ */
/* Each writes its gradient's sum of squares to res[0] (the backend's own slot when res is
 * NULL); a gated update (its step's loss not finite, backend.h) touches nothing and sums 0.
 * A member update (ns_op_update_members) runs the same per-element code over the same
 * element-to-thread assignment, so its bits are a single update's. */

__device__ static bool gated(const double *gate) { return gate && !isfinite(*gate); }

/* One update's arguments as the kernels take them, formed on the host as the single ops
 * form them (the float constants from the doubles, in double). */
typedef struct upd_args {
    int kind;                   /* ns_update_kind */
    float *p, *m, *v;
    const float *g;
    size_t n;
    int nb;                     /* blocks: blocks_for(n) */
    float lr, mu, wd, eps;
    float b1, c1, b2, c2, decay, step, inv_bc2s; /* adam */
    float alpha, cc;            /* rmsprop */
    int has_wd, has_mu, nesterov;
    const double *gate;
    double *res;
} upd_args;

static upd_args upd_sgd(float *p, float *buf, const float *g, size_t n, float lr, float mu,
                        float wd, int nesterov)
{
    upd_args a = {};
    a.kind = NS_UPD_SGD, a.p = p, a.m = buf, a.g = g, a.n = n, a.lr = lr, a.mu = mu, a.wd = wd;
    a.has_wd = wd != 0.0f, a.has_mu = mu != 0.0f, a.nesterov = nesterov;
    return a;
}

static upd_args upd_adam(float *p, float *m, float *v, const float *g, size_t n, float lr,
                         double b1, double b2, float eps, float wd, double bc1, double bc2,
                         int decoupled)
{
    upd_args a = {};
    a.kind = NS_UPD_ADAM, a.p = p, a.m = m, a.v = v, a.g = g, a.n = n, a.eps = eps, a.wd = wd;
    a.b1 = (float)b1, a.c1 = (float)(1.0 - b1), a.b2 = (float)b2, a.c2 = (float)(1.0 - b2);
    a.step = (float)((double)lr / bc1);
    a.inv_bc2s = (float)(1.0 / sqrt(bc2));
    a.has_wd = !decoupled && wd != 0.0f;
    a.decay = a.has_wd ? 1.0f : decoupled ? (float)(1.0 - (double)lr * (double)wd) : 1.0f;
    return a;
}

static upd_args upd_rmsprop(float *p, float *v, float *buf, const float *g, size_t n, float lr,
                            double alpha, float eps, float wd, float mu)
{
    upd_args a = {};
    a.kind = NS_UPD_RMSPROP, a.p = p, a.v = v, a.m = buf, a.g = g, a.n = n, a.lr = lr;
    a.alpha = (float)alpha, a.cc = (float)(1.0 - alpha), a.eps = eps, a.wd = wd, a.mu = mu;
    a.has_wd = wd != 0.0f, a.has_mu = mu > 0.0f;
    return a;
}

/* The update of elements first, first + stride, ... of a; returns their gradients' sum of
 * squares. The intrinsics (_rn: round to nearest, no contraction into FMA) keep each
 * operation rounded as the CPU's, which compiles without FMA contraction. */
__device__ static double upd_range(const upd_args &a, size_t first, size_t stride)
{
    double gsq = 0;
    if (gated(a.gate))
        return 0;
    for (size_t i = first; i < a.n; i += stride) {
        float gi = a.g[i];
        gsq += (double)gi * gi;
        if (a.kind == NS_UPD_SGD) {
            float d = a.has_wd ? __fadd_rn(gi, __fmul_rn(a.wd, a.p[i])) : gi;
            if (a.has_mu) {
                float b = __fadd_rn(__fmul_rn(a.mu, a.m[i]), d);
                a.m[i] = b;
                d = a.nesterov ? __fadd_rn(d, __fmul_rn(a.mu, b)) : b;
            }
            a.p[i] = __fsub_rn(a.p[i], __fmul_rn(a.lr, d));
        } else if (a.kind == NS_UPD_ADAM) {
            float x = __fmul_rn(a.p[i], a.decay);
            float d = a.has_wd ? __fadd_rn(gi, __fmul_rn(a.wd, x)) : gi;
            float mi = __fadd_rn(__fmul_rn(a.m[i], a.b1), __fmul_rn(a.c1, d));
            float vi = __fadd_rn(__fmul_rn(a.v[i], a.b2), __fmul_rn(__fmul_rn(a.c2, d), d));
            a.m[i] = mi;
            a.v[i] = vi;
            float denom = __fadd_rn(__fmul_rn(__fsqrt_rn(vi), a.inv_bc2s), a.eps);
            a.p[i] = __fsub_rn(x, __fdiv_rn(__fmul_rn(a.step, mi), denom));
        } else {
            float d = a.has_wd ? __fadd_rn(gi, __fmul_rn(a.wd, a.p[i])) : gi;
            float vi = __fadd_rn(__fmul_rn(a.v[i], a.alpha), __fmul_rn(__fmul_rn(a.cc, d), d));
            a.v[i] = vi;
            float avg = __fadd_rn(__fsqrt_rn(vi), a.eps);
            if (a.has_mu) {
                float b = __fadd_rn(__fmul_rn(a.m[i], a.mu), __fdiv_rn(d, avg));
                a.m[i] = b;
                a.p[i] = __fsub_rn(a.p[i], __fmul_rn(a.lr, b));
            } else {
                a.p[i] = __fsub_rn(a.p[i], __fdiv_rn(__fmul_rn(a.lr, d), avg));
            }
        }
    }
    return gsq;
}

__global__ static void k_update(upd_args a, double *part)
{
    double gsq = upd_range(a, blockIdx.x * (size_t)blockDim.x + threadIdx.x,
                           (size_t)gridDim.x * blockDim.x);
    block_sum(gsq, part + blockIdx.x);
}

/* One update through k_update and k_finish; its sum of squares to res, or the backend's
 * own slot */
static void update(cuda_backend *c, upd_args a, double *res)
{
    if (!res)
        res = c->res;
    if (!a.n) {
        ns_cu_check(cudaMemsetAsync(res, 0, sizeof(double), c->stream), "an update");
        return;
    }
    int nb = blocks_for(a.n);
    k_update<<<nb, THREADS, 0, c->stream>>>(a, c->part);
    k_finish<<<1, THREADS, 0, c->stream>>>(c->part, nb, res, 0);
}

void cu_sgd(ns_backend *be, double *res, const double *gate, float *p, float *buf,
                   const float *g, size_t n, float lr, float mu, float wd, int nesterov)
{
    upd_args a = upd_sgd(p, buf, g, n, lr, mu, wd, nesterov);
    a.gate = gate;
    update(cb(be), a, res);
}

void cu_adam(ns_backend *be, double *res, const double *gate, float *p, float *m,
                    float *v, const float *g, size_t n, float lr, double b1, double b2, float eps,
                    float wd, double bc1, double bc2, int decoupled)
{
    upd_args a = upd_adam(p, m, v, g, n, lr, b1, b2, eps, wd, bc1, bc2, decoupled);
    a.gate = gate;
    update(cb(be), a, res);
}

void cu_rmsprop(ns_backend *be, double *res, const double *gate, float *p, float *v,
                       float *buf, const float *g, size_t n, float lr, double alpha, float eps,
                       float wd, float mu)
{
    upd_args a = upd_rmsprop(p, v, buf, g, n, lr, alpha, eps, wd, mu);
    a.gate = gate;
    update(cb(be), a, res);
}

/* Members' updates per launch: their arguments travel as one kernel parameter, which may
 * not pass 4 KB */
#define LAUNCH_MEMBERS PART_MEMBERS
typedef struct upd_members {
    upd_args u[LAUNCH_MEMBERS];
} upd_members;

/* Member blockIdx.y's blocks as k_update would run them (blocks beyond its own count have
 * nothing to do); partial sums at mpart + member * MAX_BLOCKS */
__global__ static void k_update_members(upd_members a, double *mpart)
{
    const upd_args &u = a.u[blockIdx.y];
    if (blockIdx.x >= (unsigned)u.nb)
        return; /* the whole block returns, so none of it waits in block_sum */
    double gsq = upd_range(u, blockIdx.x * (size_t)blockDim.x + threadIdx.x,
                           (size_t)u.nb * blockDim.x);
    block_sum(gsq, mpart + (size_t)blockIdx.y * MAX_BLOCKS + blockIdx.x);
}

/* k_finish for member blockIdx.x: the same sum in the same order; where its res is NULL,
 * into mpart's spare last slot */
__global__ static void k_finish_members(upd_members a, double *mpart)
{
    const upd_args &u = a.u[blockIdx.x];
    const double *part = mpart + (size_t)blockIdx.x * MAX_BLOCKS;
    double v = 0;
    for (int i = threadIdx.x; i < u.nb; i += THREADS)
        v += part[i];
    block_sum(v, u.res ? u.res : mpart + (size_t)blockIdx.x * MAX_BLOCKS + MAX_BLOCKS - 1);
}

void cu_update_members(ns_backend *be, const ns_member_update *in, int K)
{
    cuda_backend *c = cb(be);
    for (int k0 = 0; k0 < K; k0 += LAUNCH_MEMBERS) {
        int kn = K - k0 < LAUNCH_MEMBERS ? K - k0 : LAUNCH_MEMBERS, nb_max = 1;
        upd_members a = {};
        for (int j = 0; j < kn; j++) {
            const ns_member_update *u = &in[k0 + j];
            upd_args *x = &a.u[j];
            switch (u->kind) {
            case NS_UPD_SGD:
                *x = upd_sgd(u->p, u->m, u->g, u->n, u->lr, u->mu, u->wd, u->nesterov);
                break;
            case NS_UPD_ADAM:
                *x = upd_adam(u->p, u->m, u->v, u->g, u->n, u->lr, u->b1, u->b2, u->eps, u->wd,
                              u->bc1, u->bc2, u->decoupled);
                break;
            case NS_UPD_RMSPROP:
                *x = upd_rmsprop(u->p, u->v, u->m, u->g, u->n, u->lr, u->alpha, u->eps, u->wd,
                                 u->mu);
                break;
            }
            x->gate = u->gate;
            x->res = u->res;
            x->nb = u->n ? blocks_for(u->n) : 0; /* no blocks: k_finish_members sums nothing */
            if (x->nb > nb_max)
                nb_max = x->nb;
        }
        k_update_members<<<dim3(nb_max, kn), THREADS, 0, c->stream>>>(a, c->mpart);
        k_finish_members<<<kn, THREADS, 0, c->stream>>>(a, c->mpart);
    }
}

