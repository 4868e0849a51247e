/* step_profile.c — where one training step of the 784-256-128-10 MLP spends its time on the
 * CPU backend: zeroing gradients, forward, loss + backward, and the fused Adam update (which
 * also yields the per-layer gradient norms). Random inputs; one BLAS thread.
 * Built and run by scripts/bench/step_profile; not part of nnsearch. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine/backend/backend.h"
#include "engine/rng.h"
#include "engine/train/optim.h"
#include "model/mlp.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(int argc, char **argv)
{
    int B = argc > 1 ? atoi(argv[1]) : 32, iters = argc > 2 ? atoi(argv[2]) : 2000;
    ns_err err = {0};
    ns_backend *be = ns_backend_cpu_alloc(1, &err);
    ns_mlp_spec s = {.n_in = 784, .n_out = 10, .n_hidden = 2, .hidden = {256, 128},
                     .act = NS_ACT_RELU};
    ns_mlp *m = be ? ns_mlp_alloc(&s, be, B, &err) : NULL;
    ns_rng r;
    ns_rng_seed(&r, 1);
    float *x = m ? ns_buf_alloc(be, (size_t)B * 784 * 4) : NULL;
    int32_t *y = m ? ns_buf_alloc(be, (size_t)B * 4) : NULL;
    ns_optim o;
    ns_optim_spec os;
    ns_optim_spec_default(&os, NS_OPT_ADAM);
    if (!x || !y || ns_mlp_init_params(m, &r, &err) || ns_optim_init(&o, &os, be, m->n_params, &err)) {
        fprintf(stderr, "step_profile: set-up failed: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < B * 784; i++)
        x[i] = (float)ns_rng_normal(&r);
    for (int i = 0; i < B; i++)
        y[i] = i % 10;
    double t[4] = {0}, sq[NS_MAX_GROUPS];
    ns_batch_out bo;
    for (int it = -100; it < iters; it++) { /* 100 warm-up steps */
        double t0 = now();
        ns_op_zero(be, m->grads, m->n_params);
        double t1 = now();
        ns_mlp_forward(m, x, B, 1, (uint64_t)it);
        double t2 = now();
        ns_mlp_loss_backward(m, x, y, NULL, B, 1, (uint64_t)it, &bo, &err);
        double t3 = now();
        ns_optim_step_groups(&o, m->params, m->grads, 1e-3, m->net.n_groups, m->net.group_off,
                             NULL, sq); /* host memory: the CPU backend */
        double t4 = now();
        if (it >= 0) {
            t[0] += t1 - t0;
            t[1] += t2 - t1;
            t[2] += t3 - t2;
            t[3] += t4 - t3;
        }
    }
    double tot = t[0] + t[1] + t[2] + t[3];
    printf("batch %d, %d steps, us per step: zero %.1f  forward %.1f  loss+backward %.1f  "
           "adam+norms %.1f  total %.1f  (%.0f samples/s without data gathering)\n",
           B, iters, 1e6 * t[0] / iters, 1e6 * t[1] / iters, 1e6 * t[2] / iters,
           1e6 * t[3] / iters, 1e6 * tot / iters, B * iters / tot);
    ns_optim_free(&o);
    ns_mlp_free(m);
    ns_backend_free(be);
    return 0;
}
