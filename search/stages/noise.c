/* noise.c — the gradient noise scale of a config's model on its data (pipeline.h): how
 * large a batch can grow before larger batches stop buying progress per step. A
 * measurement at the initial weights, for the batch-size sweep's evidence; it trains
 * nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend/backend.h"
#include "engine/rng.h"
#include "search/stages/pipeline.h"
#include "search/stages/stats.h"

/* Batches averaged per size: the squared norm of one batch's gradient is itself noisy. */
#define NOISE_BATCHES 8

/* Mean |g_B|^2 over NOISE_BATCHES batches of B rows drawn with replacement by rng. */
static int mean_sq_grad(ns_mlp *m, const ns_dataset *ds, int B, ns_rng *rng, float *x,
                        int32_t *y, float *t, double *out, ns_err *err)
{
    double sum = 0;
    for (int k = 0; k < NOISE_BATCHES; k++) {
        for (int i = 0; i < B; i++) {
            long r = (long)ns_rng_below(rng, (uint64_t)ds->n);
            memcpy(x + (size_t)i * ds->d, ds->x + (size_t)r * ds->d, (size_t)ds->d * sizeof *x);
            if (ds->y)
                y[i] = ds->y[r];
            if (ds->t)
                t[i] = ds->t[r];
        }
        ns_op_zero(m->be, m->grads, m->n_params);
        ns_batch_out o;
        int rc = m->net.batch(m->net.ctx, x, ds->y ? y : NULL, ds->t ? t : NULL, B, 1,
                              ns_rng_next(rng), &o, err);
        if (rc)
            return rc;
        sum += ns_op_sumsq(m->be, m->grads, m->n_params);
    }
    *out = sum / NOISE_BATCHES;
    return NS_OK;
}

int ns_pipeline_noise_scale(const ns_config *c, const ns_prepared *p, int b_small, int b_big,
                            uint64_t seed, double *out, ns_err *err)
{
    *out = NAN;
    if (b_small < 1 || b_big <= b_small)
        return ns_err_set(err, NS_EINPUT, "noise scale: needs two batch sizes, got %d and %d",
                          b_small, b_big);
    ns_backend *be = ns_backend_cpu_alloc(1, err);
    if (!be)
        return err ? err->code : NS_ERUNTIME;
    const ns_dataset *ds = &p->train;
    ns_mlp *m = ns_pipeline_model_alloc(c, p, be, b_big, c->train.seed, err);
    float *x = malloc((size_t)b_big * ds->d * sizeof *x), *t = malloc((size_t)b_big * sizeof *t);
    int32_t *y = malloc((size_t)b_big * sizeof *y);
    int rc = NS_OK;
    if (!m) {
        rc = err ? err->code : NS_ERUNTIME;
    } else if (!x || !t || !y) {
        rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
    } else {
        /* the host backend reads x in place; a device backend would need the rows copied */
        ns_rng rng;
        ns_rng_seed(&rng, seed);
        double g_small, g_big;
        if (!(rc = mean_sq_grad(m, ds, b_small, &rng, x, y, t, &g_small, err)) &&
            !(rc = mean_sq_grad(m, ds, b_big, &rng, x, y, t, &g_big, err))) {
            *out = ns_noise_scale(b_small, g_small, b_big, g_big);
        }
    }
    free(x);
    free(t);
    free(y);
    ns_mlp_free(m);
    ns_backend_free(be);
    return rc;
}
