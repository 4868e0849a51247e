/* test_noise.c — the gradient noise scale B_simple = tr(Sigma) / |G|^2 (ns_noise_scale in
 * search/stages/stats.h, ns_pipeline_noise_scale in search/stages/noise.c) against values
 * computed here: the formula on exact expectations, and the measurement on the tiny
 * config's model against the exact B_simple of the same initial weights, from the gradient
 * of every training row taken one at a time.
 * Not the batch-size sweep's choice of a size (tests/e2e_stages.sh checks that). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "engine/backend/backend.h"
#include "model/mlp.h"
#include "search/config/config.h"
#include "search/stages/pipeline.h"
#include "search/stages/stats.h"

/* E|g_B|^2 = |G|^2 + tr(Sigma) / B for the mean gradient of B rows drawn with replacement:
 * fed exact expectations, the estimator gives tr(Sigma) / |G|^2 back. */
Test(noise, formula_recovers_the_noise_scale_from_exact_expectations)
{
    const double G2 = 2.5, trS = 40;
    const int pairs[][2] = {{16, 128}, {8, 256}, {1, 2}, {32, 33}};
    for (size_t k = 0; k < sizeof pairs / sizeof *pairs; k++) {
        int bs = pairs[k][0], bb = pairs[k][1];
        double b = ns_noise_scale(bs, G2 + trS / bs, bb, G2 + trS / bb);
        cr_assert(fabs(b - trS / G2) <= 1e-9 * (trS / G2), "sizes %d, %d: %.17g, expected %g", bs,
                  bb, b, trS / G2);
    }
    /* no estimate where the measurement contradicts the model: the larger batch noisier,
     * a negative |G|^2, sizes out of order */
    cr_assert(isnan(ns_noise_scale(16, 1.0, 128, 2.0)));
    cr_assert(isnan(ns_noise_scale(16, 10.0, 128, 0.5)));
    cr_assert(isnan(ns_noise_scale(128, 1.0, 16, 2.0)));
    cr_assert(isnan(ns_noise_scale(16, 1.0, 16, 2.0)));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The exact B_simple of c's model at its initial weights (the stream ns_pipeline_noise_scale
 * builds it from) over p->train: G = the mean of the rows' gradients, tr(Sigma) = the mean
 * of |g_i - G|^2. */
static double exact_noise_scale(const ns_config *c, const ns_prepared *p)
{
    ns_err err = {0};
    ns_backend *be = ns_backend_cpu_alloc(1, &err);
    cr_assert(be, "%s", err.msg);
    ns_mlp *m = ns_pipeline_model_alloc(c, p, be, 1, c->train.seed, &err);
    cr_assert(m, "%s", err.msg);
    const ns_dataset *ds = &p->train;
    size_t n = m->n_params;
    double *G = calloc(n, sizeof *G), sq = 0;
    cr_assert(G);
    for (long r = 0; r < ds->n; r++) {
        ns_op_zero(be, m->grads, n);
        ns_batch_out o;
        cr_assert_eq(m->net.batch(m->net.ctx, ds->x + (size_t)r * ds->d, ds->y + r, NULL, 1, 1, 0,
                                  &o, &err), NS_OK, "%s", err.msg);
        for (size_t k = 0; k < n; k++) {
            G[k] += m->grads[k];
            sq += (double)m->grads[k] * m->grads[k];
        }
    }
    double G2 = 0;
    for (size_t k = 0; k < n; k++) {
        G[k] /= (double)ds->n;
        G2 += G[k] * G[k];
    }
    double trS = sq / (double)ds->n - G2;
    free(G);
    ns_mlp_free(m);
    ns_backend_free(be);
    return trS / G2;
}

/* One measurement averages 8 batches per size and scatters widely (for this model, 80% of
 * single estimates fall within 0.7x..1.5x of the exact value, and over other
 * initialisations within 0.2x..3x), so the median over many sampling seeds is compared:
 * 1.045x the exact value here, 0.96x to 1.17x for the weights of train seeds 2..9; a wrong
 * factor in the formula, |G|^2 taken from one size alone or the two sizes swapped move it
 * far beyond MEDIAN_TOL or make it NaN. */
#define SEEDS 101
#define MEDIAN_TOL 0.25

Test(noise, measurement_matches_the_exact_noise_scale_of_the_tiny_model, .timeout = 120)
{
    ns_config c;
    ns_err err = {0};
    cr_assert_eq(ns_config_load(&c, NS_SOURCE_DIR "/configs/tiny-train.yaml", &err), NS_OK, "%s",
                 err.msg);
    ns_prepared p;
    cr_assert_eq(ns_prepare_data(&p, &c, &err), NS_OK, "%s", err.msg);
    double exact = exact_noise_scale(&c, &p);
    cr_assert(isfinite(exact) && exact > 0, "exact B_simple %g", exact);
    double est[SEEDS];
    int finite = 0;
    for (int s = 0; s < SEEDS; s++) {
        cr_assert_eq(ns_pipeline_noise_scale(&c, &p, 16, 128, 1000 + (uint64_t)s, &est[s], &err),
                     NS_OK, "%s", err.msg);
        if (isfinite(est[s]))
            finite++;
        else
            est[s] = INFINITY; /* no estimate: counts as too large, never as a good one */
    }
    qsort(est, SEEDS, sizeof *est, cmp_double);
    double med = est[SEEDS / 2];
    cr_log_info("exact B_simple %.4g; median of %d estimates %.4g (%d finite), 10%% %.4g, 90%% %.4g",
                exact, SEEDS, med, finite, est[SEEDS / 10], est[SEEDS * 9 / 10]);
    cr_assert(fabs(med / exact - 1) <= MEDIAN_TOL,
              "median estimate %g against the exact %g (tolerance %g)", med, exact, MEDIAN_TOL);
    cr_assert(finite >= SEEDS * 9 / 10, "only %d of %d estimates finite", finite, SEEDS);
    ns_prepared_free(&p);
    ns_config_free(&c);
}
