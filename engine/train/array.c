/* array.c — K runs in lock-step (array.h). Each step takes every active member through the
 * same phases as ns_trainer_run (train_impl.h), with the networks' passes in one call of
 * the array's batch(); members leave the step as they finish, are stopped or interrupted.
 * Not the grouping of trials (the caller's) and not the batched arithmetic (the model's). */
#include "engine/train/array.h"

#include "engine/train/train_impl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ns_trainer_array_free(ns_trainer_array *a)
{
    if (!a->tr)
        return;
    for (int k = 0; k < a->k; k++)
        ns_trainer_free(&a->tr[k]);
    free(a->tr);
    if (a->be) {
        ns_buf_free(a->be, a->xb);
        ns_buf_free(a->be, a->yb);
        ns_buf_free(a->be, a->tb);
        ns_buf_free(a->be, a->res);
    }
    free(a->res_host);
    free(a->active);
    free(a->rows);
    free(a->noise_seed);
    free(a->t_epoch);
    free(a->out);
    free(a->step_tr);
    free(a->batch);
    memset(a, 0, sizeof *a);
}

int ns_trainer_array_init(ns_trainer_array *a, const ns_train_spec *specs, int K, ns_backend *be,
                          ns_net *const *nets, const ns_net_array *net, const ns_dataset *train,
                          const ns_dataset *val, ns_err *err)
{
    memset(a, 0, sizeof *a);
    if (K < 1 || net->k != K)
        return ns_err_set(err, NS_EINPUT, "an array of %d runs needs a network array of as many "
                          "(it has %d)", K, net->k);
    for (int k = 0; k < K; k++) {
        const ns_train_spec *s = &specs[k];
        if (s->budget == NS_BUDGET_SECONDS)
            return ns_err_set(err, NS_EINPUT, "run %d of the array has a seconds budget; runs "
                              "in lock-step need epochs or steps (train it alone)", k);
        if (s->batch_size != specs[0].batch_size || s->drop_last != specs[0].drop_last)
            return ns_err_set(err, NS_EINPUT, "run %d of the array has batch_size %d (drop_last "
                              "%d), run 0 %d (%d); runs in lock-step need the same batches", k,
                              s->batch_size, s->drop_last, specs[0].batch_size, specs[0].drop_last);
        if (nets[k]->max_batch != nets[0]->max_batch)
            return ns_err_set(err, NS_EINPUT, "network %d of the array takes %d rows, network 0 "
                              "%d; allocate them together (ns_mlp_group_alloc)", k,
                              nets[k]->max_batch, nets[0]->max_batch);
    }
    a->k = K;
    a->net = net;
    a->be = be;
    a->tr = calloc((size_t)K, sizeof *a->tr);
    a->active = calloc((size_t)K, 5); /* active, stepping, ending, ready, left_out */
    a->rows = calloc((size_t)K * 3, sizeof *a->rows);
    a->noise_seed = calloc((size_t)K, sizeof *a->noise_seed);
    a->t_epoch = calloc((size_t)K, sizeof *a->t_epoch);
    a->out = calloc((size_t)K, sizeof *a->out);
    a->step_tr = calloc((size_t)K, sizeof *a->step_tr);
    a->batch = calloc((size_t)K, sizeof *a->batch);
    if (!a->tr || !a->active || !a->rows || !a->noise_seed || !a->t_epoch || !a->out ||
        !a->step_tr || !a->batch)
        goto oom;
    a->stepping = a->active + K;
    a->ending = a->active + 2 * K;
    a->ready = a->active + 3 * K;
    a->left_out = a->active + 4 * K;
    a->diverged = a->rows + K;
    a->epochs_run = a->rows + 2 * K;
    for (int k = 0; k < K; k++) {
        int rc = ns_trainer_init(&a->tr[k], &specs[k], be, nets[k], train, val, err);
        if (rc) {
            ns_trainer_array_free(a);
            return rc;
        }
    }
    /* the members' batches side by side, so that a batched product reads them at a stride */
    size_t mb = (size_t)nets[0]->max_batch;
    a->x_stride = mb * (size_t)train->d;
    a->yt_stride = mb;
    a->xb = ns_buf_alloc(be, a->x_stride * K * sizeof(float));
    a->yb = ns_buf_alloc(be, a->yt_stride * K * sizeof(int32_t));
    a->tb = ns_buf_alloc(be, a->yt_stride * K * sizeof(float));
    /* and their step scalars, so that one download a step reads every member's */
    for (int k = 0; k < K; k++) {
        size_t slots = (size_t)ns_trainer_step_slots(&a->tr[k]);
        if (slots > a->res_stride)
            a->res_stride = slots;
    }
    a->res = ns_buf_alloc(be, a->res_stride * K * sizeof(double));
    a->res_host = calloc(a->res_stride * K, sizeof(double));
    if (!a->xb || !a->yb || !a->tb || !a->res || !a->res_host)
        goto oom;
    for (int k = 0; k < K; k++) {
        ns_trainer_borrow_batch(&a->tr[k], a->xb + k * a->x_stride, a->yb + k * a->yt_stride,
                                a->tb + k * a->yt_stride);
        ns_trainer_borrow_results(&a->tr[k], a->res + k * a->res_stride,
                                  a->res_host + k * a->res_stride);
    }
    return NS_OK;
oom:
    ns_trainer_array_free(a);
    return ns_err_set(err, NS_ERUNTIME, "out of memory preparing an array of %d runs", K);
}

/* Member k's epoch has ended: the record, the caller's verdict, and whether it goes on. */
static int end_member_epoch(ns_trainer_array *a, int k, int max_epochs_now, ns_member_epoch_fn fn,
                            void *user, ns_err *err)
{
    ns_trainer *tr = &a->tr[k];
    ns_epoch_record rec;
    int rc = ns_trainer_epoch_end(tr, a->diverged[k], &rec, err);
    if (rc)
        return rc;
    rec.seconds = now_s() - a->t_epoch[k];
    a->epochs_run[k]++;
    a->ready[k] = 0;
    a->diverged[k] = 0;
    int done = ns_trainer_done(tr);
    if (done)
        ns_trainer_finish(tr);
    if ((fn && fn(user, k, &rec)) || done ||
        (max_epochs_now > 0 && a->epochs_run[k] >= max_epochs_now))
        a->active[k] = 0;
    return NS_OK;
}

int ns_trainer_array_run(ns_trainer_array *a, int max_epochs_now, ns_member_epoch_fn fn,
                         void *user, ns_err *err)
{
    const int K = a->k;
    const ns_dataset *ds = a->tr[0].train;
    int left = 0;
    for (int k = 0; k < K; k++) {
        a->tr[k].interrupted = 0;
        a->active[k] = !a->left_out[k] && !ns_trainer_done(&a->tr[k]);
        a->ready[k] = 0;
        a->diverged[k] = 0;
        a->epochs_run[k] = 0;
        left += a->active[k];
    }
    while (left) {
        double t0 = now_s();
        int stepping = 0;
        for (int k = 0; k < K; k++) {
            ns_trainer *tr = &a->tr[k];
            a->stepping[k] = a->ending[k] = 0;
            if (!a->active[k])
                continue;
            if (!a->ready[k]) { /* as ns_trainer_run's loop does at an epoch's start */
                a->t_epoch[k] = now_s();
                int rc = ns_trainer_epoch_start(tr, err);
                if (rc)
                    return rc;
                if (!a->shared) { /* the rows go to the device once, for every member */
                    for (int m = 0; m < K; m++)
                        if (m != k)
                            ns_trainer_share_data(&a->tr[m], tr);
                    a->shared = 1;
                }
                a->ready[k] = 1;
            }
            if (ns_stop_requested(tr->stop)) {
                tr->interrupted = 1;
                a->active[k] = 0;
                continue;
            }
            if (ns_trainer_epoch_full(tr)) {
                a->ending[k] = 1;
                continue;
            }
            a->rows[k] = ns_trainer_step_batch(tr, &a->batch[stepping], &a->noise_seed[k]);
            a->stepping[k] = 1;
            stepping++;
        }
        if (stepping) {
            /* every stepping member's batch gathered and gradients zeroed at once */
            ns_op_batch_members(a->be, a->batch, stepping, ds->d);
            for (int k = 0; k < K; k++)
                a->tr[k].net->res = a->stepping[k] ? a->tr[k].res : NULL;
            int rc = a->net->batch(a->net->ctx, a->stepping, a->xb, a->x_stride,
                                   ds->y ? a->yb : NULL, ds->t ? a->tb : NULL, a->yt_stride,
                                   a->rows, a->noise_seed, a->out, err);
            for (int k = 0; k < K; k++)
                a->tr[k].net->res = NULL;
            if (rc)
                return rc;
            int n = 0;
            for (int k = 0; k < K; k++)
                if (a->stepping[k])
                    a->step_tr[n++] = &a->tr[k];
            ns_trainer_step_update_members(a->step_tr, n);
            /* the step's one wait: every member's loss and norms together */
            ns_buf_download(a->be, a->res_host, a->res, a->res_stride * K * sizeof(double));
            for (int k = 0; k < K; k++) {
                if (!a->stepping[k])
                    continue;
                ns_trainer_step_end(&a->tr[k], a->rows[k], &a->diverged[k]);
                if (a->diverged[k] || ns_trainer_epoch_full(&a->tr[k]))
                    a->ending[k] = 1;
            }
            /* the step's wall time is every member's: they trained side by side */
            double spent = now_s() - t0;
            for (int k = 0; k < K; k++)
                if (a->stepping[k]) {
                    a->tr[k].elapsed += spent;
                    a->tr[k].sums.seconds += spent;
                }
        }
        left = 0;
        for (int k = 0; k < K; k++) {
            if (a->ending[k]) {
                int rc = end_member_epoch(a, k, max_epochs_now, fn, user, err);
                if (rc)
                    return rc;
            }
            left += a->active[k];
        }
    }
    return NS_OK;
}
