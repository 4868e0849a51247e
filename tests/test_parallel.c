/* test_parallel.c — trainings running side by side on an OpenMP pool, sharing one read-only
 * dataset, give the same bits as the same trainings run one after another: the property the
 * parallel trial pool of the search rests on (results independent of -j). */
#include <criterion/criterion.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend/backend.h"
#include "engine/rng.h"
#include "engine/train/train.h"
#include "model/mlp.h"

enum { N_RUNS = 6 };

static void make_data(ns_dataset *ds, long n, uint64_t seed)
{
    memset(ds, 0, sizeof *ds);
    ds->n = n;
    ds->d = 12;
    ds->task = NS_TASK_CLASSIFY;
    ds->n_classes = 4;
    ds->x = malloc((size_t)n * ds->d * sizeof(float));
    ds->y = malloc((size_t)n * sizeof(int32_t));
    ns_rng r;
    ns_rng_seed(&r, seed);
    for (long i = 0; i < n; i++) {
        ds->y[i] = (int32_t)ns_rng_below(&r, 4);
        for (int j = 0; j < ds->d; j++)
            ds->x[i * ds->d + j] = (float)((j % 4 == ds->y[i]) + ns_rng_normal(&r));
    }
}

/* One training of run k; returns NS_OK and a malloc'd copy of the final parameters. */
static int one_run(int k, const ns_dataset *tr, const ns_dataset *va, float **out, size_t *n)
{
    ns_err err = {0};
    ns_backend *be = ns_backend_cpu_alloc(1, &err);
    if (!be)
        return err.code;
    ns_mlp_spec spec = {.n_in = tr->d, .n_out = 4, .n_hidden = 2, .hidden = {48, 24},
                        .act = k % 2 ? NS_ACT_GELU : NS_ACT_RELU, .dropout = 0.1f};
    ns_train_spec ts;
    ns_train_spec_default(&ts);
    ts.epochs = 3;
    ts.batch_size = 16 << (k % 3);
    ts.eval_batch = 256;
    ts.seed = 1000 + (uint64_t)k;
    ts.lr = 3e-3;
    ns_optim_spec_default(&ts.opt, (ns_opt_kind)(k % 4));
    ns_mlp *m = ns_mlp_alloc(&spec, be, 256, &err);
    ns_trainer t;
    memset(&t, 0, sizeof t);
    ns_rng rng;
    ns_rng_seed(&rng, ts.seed);
    int rc = !m ? err.code : ns_mlp_init_params(m, &rng, &err);
    if (!rc)
        rc = ns_trainer_init(&t, &ts, be, &m->net, tr, va, &err);
    if (!rc)
        rc = ns_trainer_run(&t, 0, NULL, NULL, &err);
    if (!rc) {
        *n = m->n_params;
        *out = malloc(*n * sizeof(float));
        memcpy(*out, m->params, *n * sizeof(float));
    }
    ns_trainer_free(&t);
    ns_mlp_free(m);
    ns_backend_free(be);
    return rc;
}

Test(parallel, side_by_side_equals_one_after_another)
{
    ns_dataset tr, va;
    make_data(&tr, 1500, 1);
    make_data(&va, 300, 2);
    float *serial[N_RUNS] = {0}, *par[N_RUNS] = {0};
    size_t ns[N_RUNS], np[N_RUNS];
    int rs[N_RUNS], rp[N_RUNS];
    for (int k = 0; k < N_RUNS; k++)
        rs[k] = one_run(k, &tr, &va, &serial[k], &ns[k]);
#pragma omp parallel for num_threads(2) schedule(dynamic, 1)
    for (int k = N_RUNS - 1; k >= 0; k--) /* another order too */
        rp[k] = one_run(k, &tr, &va, &par[k], &np[k]);
    for (int k = 0; k < N_RUNS; k++) {
        cr_assert_eq(rs[k], NS_OK);
        cr_assert_eq(rp[k], NS_OK);
        cr_assert_eq(ns[k], np[k]);
        cr_assert_eq(memcmp(serial[k], par[k], ns[k] * sizeof(float)), 0,
                     "run %d differs when run on the pool", k);
        free(serial[k]);
        free(par[k]);
    }
    ns_dataset_free(&tr);
    ns_dataset_free(&va);
}
