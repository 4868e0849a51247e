/* train.c — the training loop and its exact checkpoints. One run is a pure function of
 * (data, network, spec): the order of rows, dropout masks and every reduction are fixed,
 * and a checkpoint captures everything the loop reads, so a split run gives the same bits.
 * Not responsible for detecting pathologies beyond stopping on a non-finite loss. */
#include "engine/train/train.h"
#include "engine/train/train_impl.h"

#include "engine/atomic.h"
#include "engine/train/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

void ns_train_spec_default(ns_train_spec *s)
{
    memset(s, 0, sizeof *s);
    s->budget = NS_BUDGET_EPOCHS;
    s->epochs = 10;
    s->batch_size = 128;
    s->eval_batch = 1024;
    s->lr = 1e-3;
    ns_optim_spec_default(&s->opt, NS_OPT_ADAM);
    ns_sched_spec_default(&s->sched, NS_SCHED_CONSTANT);
    s->seed = 1;
    s->div_factor = 4.0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The monitored metric of an epoch record; internally every metric is "lower is better". */
static double metric_of(const ns_trainer *tr, const ns_epoch_record *rec)
{
    if (tr->train->task != NS_TASK_CLASSIFY)
        return rec->val_rmse;
    switch (tr->spec.monitor) {
    case NS_MONITOR_BACC: return -rec->val_bacc;
    case NS_MONITOR_F1: return -rec->val_f1;
    default: return -rec->val_acc;
    }
}

int ns_trainer_init(ns_trainer *tr, const ns_train_spec *spec, ns_backend *be, ns_net *net,
                    const ns_dataset *train, const ns_dataset *val, ns_err *err)
{
    memset(tr, 0, sizeof *tr);
    if (spec->batch_size < 1 || spec->eval_batch < 1)
        return ns_err_set(err, NS_EINPUT, "batch_size and eval_batch must be >= 1");
    if (train->n < 1)
        return ns_err_set(err, NS_EINPUT, "the training set is empty");
    if (net->max_batch < spec->batch_size || net->max_batch < spec->eval_batch)
        return ns_err_set(err, NS_ERUNTIME, "network allocated for batch %d, run needs %d",
                          net->max_batch,
                          spec->batch_size > spec->eval_batch ? spec->batch_size : spec->eval_batch);
    if (net->n_groups > NS_MAX_GROUPS)
        return ns_err_set(err, NS_EINPUT, "too many layers (%d > %d)", net->n_groups, NS_MAX_GROUPS);
    tr->spec = *spec;
    tr->be = be;
    tr->net = net;
    tr->train = train;
    tr->val = val && val->n > 0 ? val : NULL;
    tr->t_std = 1.0f;
    long B = spec->batch_size;
    tr->steps_per_epoch = spec->drop_last ? train->n / B : (train->n + B - 1) / B;
    if (tr->steps_per_epoch < 1)
        return ns_err_set(err, NS_EINPUT,
                          "batch_size %ld exceeds the %ld training rows with drop_last on; "
                          "lower batch_size or turn drop_last off", B, train->n);
    switch (spec->budget) {
    case NS_BUDGET_EPOCHS:
        if (spec->epochs < 1)
            return ns_err_set(err, NS_EINPUT, "epochs must be >= 1");
        tr->total_steps = spec->epochs * tr->steps_per_epoch;
        break;
    case NS_BUDGET_STEPS:
        if (spec->steps < 1)
            return ns_err_set(err, NS_EINPUT, "steps must be >= 1");
        tr->total_steps = spec->steps;
        break;
    case NS_BUDGET_SECONDS:
        if (!(spec->seconds > 0))
            return ns_err_set(err, NS_EINPUT, "seconds must be > 0");
        tr->total_steps = 0;
        break;
    }
    tr->best_metric = INFINITY;
    ns_rng_seed(&tr->rng, spec->seed);
    ns_sched_init(&tr->sched, &spec->sched, spec->lr);
    int rc = ns_optim_init(&tr->opt, &spec->opt, be, net->n_params, err);
    if (rc)
        return rc;

    int mb = net->max_batch;
    int d = train->d;
    tr->order = malloc((size_t)train->n * sizeof *tr->order);
    tr->dev_order = ns_backend_is_host(be) ? tr->order
                                           : ns_buf_alloc(be, (size_t)train->n * sizeof(int32_t));
    tr->xb = ns_buf_alloc(be, (size_t)mb * d * sizeof(float));
    tr->yb = ns_buf_alloc(be, (size_t)mb * sizeof(int32_t));
    tr->tb = ns_buf_alloc(be, (size_t)mb * sizeof(float));
    size_t slots = (size_t)ns_trainer_step_slots(tr);
    tr->res = ns_buf_alloc(be, slots * sizeof(double));
    tr->res_host = calloc(slots, sizeof(double));
    if (!tr->order || !tr->dev_order || !tr->xb || !tr->yb || !tr->tb || !tr->res ||
        !tr->res_host)
        goto oom;
    if (!ns_backend_is_host(be)) {
        tr->host_x = malloc((size_t)mb * d * sizeof(float));
        tr->host_y = malloc((size_t)mb * sizeof(int32_t));
        tr->host_t = malloc((size_t)mb * sizeof(float));
        if (!tr->host_x || !tr->host_y || !tr->host_t)
            goto oom;
    }
    if (spec->patience > 0) {
        tr->best_params = ns_buf_alloc(be, net->n_params * sizeof(float));
        if (!tr->best_params)
            goto oom;
        ns_buf_copy(be, tr->best_params, net->params, net->n_params * sizeof(float));
    }
    return NS_OK;
oom:
    ns_trainer_free(tr);
    return ns_err_set(err, NS_ERUNTIME, "out of memory preparing the training run");
}

/* The rows this trainer uploaded, if it did. */
static void free_device_data(ns_trainer *tr)
{
    if (tr->dev_owned) {
        ns_buf_free(tr->be, (void *)tr->dev_x);
        ns_buf_free(tr->be, (void *)tr->dev_y);
        ns_buf_free(tr->be, (void *)tr->dev_t);
        ns_buf_free(tr->be, (void *)tr->dev_vx);
        ns_buf_free(tr->be, (void *)tr->dev_vy);
        ns_buf_free(tr->be, (void *)tr->dev_vt);
    }
    tr->dev_x = tr->dev_t = tr->dev_vx = tr->dev_vt = NULL;
    tr->dev_y = tr->dev_vy = NULL;
    tr->dev_owned = 0;
}

void ns_trainer_free(ns_trainer *tr)
{
    if (!tr->be)
        return;
    ns_optim_free(&tr->opt);
    if (tr->dev_order != tr->order)
        ns_buf_free(tr->be, tr->dev_order);
    free(tr->order);
    free_device_data(tr);
    if (!tr->batch_borrowed) {
        ns_buf_free(tr->be, tr->xb);
        ns_buf_free(tr->be, tr->yb);
        ns_buf_free(tr->be, tr->tb);
    }
    if (!tr->res_borrowed) {
        ns_buf_free(tr->be, tr->res);
        free(tr->res_host);
    }
    ns_buf_free(tr->be, tr->best_params);
    free(tr->host_x);
    free(tr->host_y);
    free(tr->host_t);
    memset(tr, 0, sizeof *tr);
}

/* Copies rows idx[0..B) of ds into the device batch buffers. */
static void gather(ns_trainer *tr, const ns_dataset *ds, const int32_t *idx, int B)
{
    int d = ds->d;
    int host = ns_backend_is_host(tr->be);
    float *x = host ? tr->xb : tr->host_x;
    int32_t *y = host ? tr->yb : tr->host_y;
    float *t = host ? tr->tb : tr->host_t;
    for (int i = 0; i < B; i++)
        memcpy(x + (size_t)i * d, ds->x + (size_t)idx[i] * d, (size_t)d * sizeof *x);
    if (ds->y)
        for (int i = 0; i < B; i++)
            y[i] = ds->y[idx[i]];
    if (ds->t)
        for (int i = 0; i < B; i++)
            t[i] = ds->t[idx[i]];
    if (!host) {
        ns_buf_upload(tr->be, tr->xb, x, (size_t)B * d * sizeof *x);
        if (ds->y)
            ns_buf_upload(tr->be, tr->yb, y, (size_t)B * sizeof *y);
        if (ds->t)
            ns_buf_upload(tr->be, tr->tb, t, (size_t)B * sizeof *t);
    }
}

/* A copy of n elements of `size` bytes on the backend (NULL for src NULL); 0 on failure. */
static int upload(ns_backend *be, const void **dst, const void *src, size_t n, size_t size)
{
    *dst = NULL;
    if (!src || !n)
        return 1;
    void *p = ns_buf_alloc(be, n * size);
    if (!p)
        return 0;
    ns_buf_upload(be, p, src, n * size);
    *dst = p;
    return 1;
}

/* The training and validation rows where the backend computes (see dev_ready). */
static int device_data(ns_trainer *tr, ns_err *err)
{
    if (tr->dev_ready)
        return NS_OK;
    const ns_dataset *t = tr->train, *v = tr->val;
    if (ns_backend_is_host(tr->be)) {
        tr->dev_x = t->x, tr->dev_y = t->y, tr->dev_t = t->t;
        if (v)
            tr->dev_vx = v->x, tr->dev_vy = v->y, tr->dev_vt = v->t;
    } else {
        tr->dev_owned = 1;
        int ok = upload(tr->be, (const void **)&tr->dev_x, t->x, (size_t)t->n * t->d, sizeof(float)) &&
                 upload(tr->be, (const void **)&tr->dev_y, t->y, (size_t)t->n, sizeof(int32_t)) &&
                 upload(tr->be, (const void **)&tr->dev_t, t->t, (size_t)t->n, sizeof(float));
        if (ok && v)
            ok = upload(tr->be, (const void **)&tr->dev_vx, v->x, (size_t)v->n * v->d, sizeof(float)) &&
                 upload(tr->be, (const void **)&tr->dev_vy, v->y, (size_t)v->n, sizeof(int32_t)) &&
                 upload(tr->be, (const void **)&tr->dev_vt, v->t, (size_t)v->n, sizeof(float));
        if (!ok) {
            free_device_data(tr); /* what was uploaded; a later call starts afresh */
            return ns_err_set(err, NS_ERUNTIME, "out of %s memory for the %ld training and %ld "
                              "validation rows", ns_backend_name(tr->be), t->n, v ? v->n : 0L);
        }
    }
    tr->dev_ready = 1;
    return NS_OK;
}

void ns_trainer_share_data(ns_trainer *tr, const ns_trainer *from)
{
    free_device_data(tr); /* its own copy, if it made one, is not needed any more */
    tr->dev_x = from->dev_x, tr->dev_y = from->dev_y, tr->dev_t = from->dev_t;
    tr->dev_vx = from->dev_vx, tr->dev_vy = from->dev_vy, tr->dev_vt = from->dev_vt;
    tr->dev_owned = 0;
    tr->dev_ready = 1;
}

int ns_trainer_evaluate(ns_trainer *tr, const ns_dataset *ds, double *loss, double *acc,
                        double *rmse, double *bacc, double *f1, ns_err *err)
{
    ns_net *net = tr->net;
    double ls = 0, ws = 0, sq = 0;
    long hits = 0;
    int EB = tr->spec.eval_batch;
    int host = ns_backend_is_host(tr->be);
    /* the table's side: every class the net was built for (the training set's) */
    int K = ds->task == NS_TASK_CLASSIFY && ds->y && (bacc || f1)
                ? (ds->n_classes > tr->train->n_classes ? ds->n_classes : tr->train->n_classes)
                : 0;
    int32_t *idx = host ? NULL : malloc((size_t)EB * sizeof *idx);
    long *conf = K > 0 ? calloc((size_t)K * (size_t)K, sizeof *conf) : NULL;
    if ((!host && !idx) || (K > 0 && !conf)) {
        free(idx);
        free(conf);
        return ns_err_set(err, NS_ERUNTIME, "out of memory for evaluation");
    }
    /* the rows where the backend computes: the dataset's own on the host, the uploaded
     * copy of the training or validation rows, or else a staged copy batch by batch */
    const float *dx = host ? ds->x : NULL, *dt = host ? ds->t : NULL;
    const int32_t *dy = host ? ds->y : NULL;
    if (!host && (ds == tr->train || ds == tr->val)) {
        int rc = device_data(tr, err);
        if (rc) {
            free(idx);
            free(conf);
            return rc;
        }
        int tv = ds == tr->train;
        dx = tv ? tr->dev_x : tr->dev_vx;
        dy = tv ? tr->dev_y : tr->dev_vy;
        dt = tv ? tr->dev_t : tr->dev_vt;
    }
    for (long i0 = 0; i0 < ds->n; i0 += EB) {
        int B = (int)(ds->n - i0 < EB ? ds->n - i0 : EB);
        const float *x;
        const int32_t *y;
        const float *t;
        if (dx) { /* rows are contiguous: no copy needed */
            x = dx + (size_t)i0 * ds->d;
            y = dy ? dy + i0 : NULL;
            t = dt ? dt + i0 : NULL;
        } else {
            for (int i = 0; i < B; i++)
                idx[i] = (int32_t)(i0 + i);
            gather(tr, ds, idx, B);
            x = tr->xb;
            y = ds->y ? tr->yb : NULL;
            t = ds->t ? tr->tb : NULL;
        }
        ns_batch_out o;
        net->conf = conf;
        net->conf_k = K;
        net->pred = conf && tr->eval_pred ? tr->eval_pred + i0 : NULL;
        int rc = net->batch(net->ctx, x, y, t, B, 0, 0, &o, err);
        net->conf = NULL;
        net->pred = NULL;
        if (rc) {
            free(idx);
            free(conf);
            return rc;
        }
        ls += o.loss_sum;
        ws += o.weight_sum;
        hits += o.correct;
        sq += o.sq_err;
    }
    free(idx);
    *loss = ws > 0 ? ls / ws : NAN;
    *acc = ds->task == NS_TASK_CLASSIFY ? (double)hits / (double)ds->n : NAN;
    *rmse = ds->task == NS_TASK_REGRESS ? sqrt(sq / (double)ds->n) * tr->t_std : NAN;
    double b = NAN, m = NAN;
    if (conf)
        ns_class_metrics(conf, K, &b, &m);
    if (bacc)
        *bacc = b;
    if (f1)
        *f1 = m;
    free(conf);
    return NS_OK;
}

int ns_trainer_done(const ns_trainer *tr)
{
    if (tr->stopped_early)
        return 1;
    if (tr->spec.max_epochs > 0 && tr->epoch >= tr->spec.max_epochs)
        return 1;
    switch (tr->spec.budget) {
    case NS_BUDGET_EPOCHS: return tr->epoch >= tr->spec.epochs;
    case NS_BUDGET_STEPS: return tr->step >= tr->spec.steps;
    case NS_BUDGET_SECONDS: return tr->elapsed >= tr->spec.seconds;
    }
    return 1;
}

static double progress_of(const ns_trainer *tr)
{
    if (tr->spec.budget == NS_BUDGET_SECONDS)
        return fmin(1.0, tr->elapsed / tr->spec.seconds);
    return fmin(1.0, (double)tr->step / (double)tr->total_steps);
}

/* Sum of squares of each parameter group; returns the global norm. */
static double grad_norms(ns_trainer *tr, double *group_sq)
{
    ns_net *net = tr->net;
    double total = 0;
    for (int g = 0; g < net->n_groups; g++) {
        size_t a = net->group_off[g], b = net->group_off[g + 1];
        group_sq[g] = ns_op_sumsq(tr->be, net->grads + a, b - a);
        total += group_sq[g];
    }
    return sqrt(total);
}

void ns_trainer_finish(ns_trainer *tr)
{
    if (tr->best_params && tr->best_epoch > 0)
        ns_buf_copy(tr->be, tr->net->params, tr->best_params, tr->net->n_params * sizeof(float));
}

/* Feeds one step's mean loss to the divergence watch; nonzero when the run blew up. */
static int watch_loss(ns_trainer *tr, double loss)
{
    if (!(tr->spec.div_factor > 0))
        return 0;
    double beta = fmax(NS_DIV_BETA, 1.0 - tr->spec.batch_size / NS_DIV_WINDOW);
    long warmup = (long)ceil(1.0 / (1.0 - beta));
    if (warmup < NS_DIV_WARMUP)
        warmup = NS_DIV_WARMUP;
    tr->div_ema = beta * tr->div_ema + (1 - beta) * loss;
    tr->div_n++;
    double sm = tr->div_ema / (1 - pow(beta, (double)tr->div_n));
    if (tr->div_n < warmup)
        return 0;
    if (tr->div_n == warmup) {
        tr->div_start = tr->div_best = sm;
        return 0;
    }
    if (sm < tr->div_best)
        tr->div_best = sm;
    return sm > tr->spec.div_factor * tr->div_best && sm > tr->div_start;
}

int ns_trainer_step_batch(ns_trainer *tr, ns_member_batch *mb, uint64_t *noise_seed)
{
    const long n = tr->train->n, s = tr->epoch_step;
    const int Bmax = tr->spec.batch_size;
    int B = (int)(n - s * Bmax < Bmax ? n - s * Bmax : Bmax);
    *mb = (ns_member_batch){.x = tr->xb, .x_src = tr->dev_x, .y = tr->yb, .y_src = tr->dev_y,
                            .t = tr->tb, .t_src = tr->dev_t, .idx = tr->dev_order + s * Bmax,
                            .B = B, .grads = tr->net->grads, .n = tr->net->n_params};
    *noise_seed = ns_rng_next(&tr->rng);
    return B;
}

int ns_trainer_step_begin(ns_trainer *tr, uint64_t *noise_seed)
{
    ns_member_batch mb;
    int B = ns_trainer_step_batch(tr, &mb, noise_seed);
    ns_op_batch_members(tr->be, &mb, 1, tr->train->d);
    return B;
}

int ns_trainer_step_slots(const ns_trainer *tr) { return NS_RES_LOSS_N + tr->net->n_groups; }

/* Members whose updates go to the optimizer together */
#define UPDATE_AT_ONCE 32

void ns_trainer_step_update_members(ns_trainer *const *tr, int K)
{
    ns_optim *o[UPDATE_AT_ONCE];
    float *p[UPDATE_AT_ONCE];
    const float *g[UPDATE_AT_ONCE];
    double lr[UPDATE_AT_ONCE], *res[UPDATE_AT_ONCE];
    const double *gate[UPDATE_AT_ONCE];
    int n = 0;
    const ns_net *net = NULL;
    for (int k = 0; k < K; k++) {
        ns_trainer *t = tr[k];
        t->step_lr = ns_sched_lr(&t->sched, progress_of(t), t->epoch);
        /* Clipping needs the norm before the update: step_end does it all, waiting for it */
        if (t->spec.clip_norm > 0)
            continue;
        /* the update reads every gradient once anyway: the norms come with it, and the
         * loss gates it, so that a step whose loss blew up changes nothing */
        net = t->net;
        o[n] = &t->opt;
        p[n] = net->params;
        g[n] = net->grads;
        lr[n] = t->step_lr;
        gate[n] = t->res + NS_RES_LOSS;
        res[n] = t->res + NS_RES_LOSS_N;
        if (++n == UPDATE_AT_ONCE) {
            ns_optim_step_members(o, p, g, lr, n, net->n_groups, net->group_off, gate, res);
            n = 0;
        }
    }
    if (n)
        ns_optim_step_members(o, p, g, lr, n, net->n_groups, net->group_off, gate, res);
}

void ns_trainer_step_update(ns_trainer *tr) { ns_trainer_step_update_members(&tr, 1); }

void ns_trainer_step_end(ns_trainer *tr, int B, int *diverged)
{
    ns_net *net = tr->net;
    ns_epoch_sums *e = &tr->sums;
    const double *r = tr->res_host;
    const double loss_sum = r[NS_RES_LOSS], weight_sum = r[NS_RES_WEIGHT];
    double group_sq[NS_MAX_GROUPS];
    if (!isfinite(loss_sum)) {
        if (!(tr->spec.clip_norm > 0))
            tr->opt.t--; /* the gated update did not happen (ns_optim_step_groups) */
        *diverged = NS_DIV_LOSS; /* a diverged run stops; the search above it goes on */
        return;
    }
    const double lr = tr->step_lr;
    double norm;
    if (tr->spec.clip_norm > 0) { /* the norm is needed before the update */
        norm = grad_norms(tr, group_sq);
        if (isfinite(norm) && norm > tr->spec.clip_norm)
            ns_op_scale(tr->be, net->grads, (float)(tr->spec.clip_norm / (norm + 1e-6)),
                        net->n_params);
        ns_optim_step(&tr->opt, net->params, net->grads, lr);
    } else {
        double total = 0;
        for (int g = 0; g < net->n_groups; g++) {
            group_sq[g] = r[NS_RES_LOSS_N + g];
            total += group_sq[g];
        }
        norm = sqrt(total);
    }
    if (!isfinite(norm)) {
        *diverged = NS_DIV_GRAD;
        return;
    }
    for (int g = 0; g < net->n_groups; g++)
        e->group_norm[g] += sqrt(group_sq[g]);
    e->norm += norm;
    e->lr = lr;
    e->steps++;
    e->rows += B;
    e->loss += loss_sum;
    e->weight += weight_sum;
    tr->step++;
    tr->epoch_step++;
    if (weight_sum > 0 && watch_loss(tr, loss_sum / weight_sum))
        *diverged = NS_DIV_BLOWUP; /* the step is taken and counted; the run stops after it */
}

int ns_trainer_epoch_start(ns_trainer *tr, ns_err *err)
{
    int rc = device_data(tr, err);
    if (rc)
        return rc;
    /* The epoch's order comes from the stream as it was when the epoch began, so an epoch
     * resumed mid-way sees the same order. */
    if (!tr->in_epoch)
        tr->epoch_rng = tr->rng;
    ns_rng order_rng = tr->epoch_rng;
    for (long i = 0; i < tr->train->n; i++)
        tr->order[i] = (int32_t)i;
    ns_rng_shuffle_i32(&order_rng, tr->order, tr->train->n);
    if (!tr->in_epoch)
        tr->rng = order_rng;
    tr->in_epoch = 1;
    if (tr->dev_order != tr->order) /* one copy an epoch, not one per batch */
        ns_buf_upload(tr->be, tr->dev_order, tr->order, (size_t)tr->train->n * sizeof *tr->order);
    return NS_OK;
}

int ns_trainer_epoch_full(const ns_trainer *tr)
{
    return tr->epoch_step >= tr->steps_per_epoch ||
           (tr->spec.budget == NS_BUDGET_STEPS && tr->step >= tr->spec.steps);
}

/* Validation, early stopping and the plateau schedule at the end of an epoch; fills rec. */
int ns_trainer_epoch_end(ns_trainer *tr, int diverged, ns_epoch_record *rec, ns_err *err)
{
    ns_net *net = tr->net;
    const ns_epoch_sums *e = &tr->sums;
    memset(rec, 0, sizeof *rec);
    rec->n_groups = net->n_groups;
    rec->epoch = tr->epoch + 1;
    rec->step = tr->step;
    rec->diverged = diverged;
    /* the steps summed are the finite ones; a non-finite loss shows as such */
    rec->train_loss = diverged == NS_DIV_LOSS || !(e->weight > 0) ? NAN : e->loss / e->weight;
    rec->lr = e->lr;
    rec->grad_norm = e->steps ? e->norm / e->steps : NAN;
    for (int g = 0; g < net->n_groups; g++)
        rec->group_grad_norm[g] = e->steps ? e->group_norm[g] / e->steps : NAN;
    rec->samples_per_s = e->seconds > 0 ? e->rows / e->seconds : 0;
    rec->val_loss = rec->val_acc = rec->val_rmse = rec->val_bacc = rec->val_f1 = NAN;
    if (tr->val && !diverged) {
        int rc = ns_trainer_evaluate(tr, tr->val, &rec->val_loss, &rec->val_acc, &rec->val_rmse,
                                     &rec->val_bacc, &rec->val_f1, err);
        if (rc)
            return rc;
        double m = metric_of(tr, rec);
        if (m < tr->best_metric - tr->spec.min_delta) {
            tr->best_metric = m;
            tr->best_epoch = rec->epoch;
            tr->bad_epochs = 0;
            rec->improved = 1;
            if (tr->best_params)
                ns_buf_copy(tr->be, tr->best_params, net->params, net->n_params * sizeof(float));
        } else if (++tr->bad_epochs >= tr->spec.patience && tr->spec.patience > 0) {
            tr->stopped_early = 1;
            rec->stopped_early = 1;
        }
        ns_sched_epoch_end(&tr->sched, rec->val_loss);
    }
    if (diverged)
        tr->stopped_early = 1;
    tr->epoch++;
    tr->in_epoch = 0;
    tr->epoch_step = 0;
    memset(&tr->sums, 0, sizeof tr->sums);
    return NS_OK;
}

int ns_trainer_run(ns_trainer *tr, int max_epochs_now, ns_epoch_fn fn, void *user, ns_err *err)
{
    ns_net *net = tr->net;
    const ns_dataset *ds = tr->train;
    int epochs_run = 0;
    tr->interrupted = 0;
    while (!ns_trainer_done(tr) && (max_epochs_now <= 0 || epochs_run < max_epochs_now)) {
        double t_epoch = now_s();
        int rc = ns_trainer_epoch_start(tr, err);
        if (rc)
            return rc;
        int diverged = 0;
        double t0 = now_s();
        while (tr->epoch_step < tr->steps_per_epoch) {
            if (ns_stop_requested(tr->stop)) {
                double spent = now_s() - t0;
                tr->sums.seconds += spent;
                tr->elapsed += spent;
                tr->interrupted = 1;
                return NS_OK;
            }
            if (ns_trainer_epoch_full(tr))
                break;
            if (tr->spec.budget == NS_BUDGET_SECONDS &&
                tr->elapsed + (now_s() - t0) >= tr->spec.seconds)
                break;
            uint64_t noise_seed;
            int B = ns_trainer_step_begin(tr, &noise_seed);
            ns_batch_out o;
            net->res = tr->res;
            int rc = net->batch(net->ctx, tr->xb, ds->y ? tr->yb : NULL, ds->t ? tr->tb : NULL,
                                B, 1, noise_seed, &o, err);
            net->res = NULL;
            if (rc)
                return rc;
            ns_trainer_step_update(tr);
            /* the one wait of a step: its loss and norms together */
            ns_buf_download(tr->be, tr->res_host, tr->res,
                            (size_t)ns_trainer_step_slots(tr) * sizeof(double));
            ns_trainer_step_end(tr, B, &diverged);
            if (diverged)
                break;
        }
        double t_train = now_s() - t0;
        tr->elapsed += t_train;
        tr->sums.seconds += t_train;

        ns_epoch_record rec;
        rc = ns_trainer_epoch_end(tr, diverged, &rec, err);
        if (rc)
            return rc;
        epochs_run++;
        rec.seconds = now_s() - t_epoch;
        if (ns_trainer_done(tr))
            ns_trainer_finish(tr);
        if (fn && fn(user, &rec))
            break;
    }
    return NS_OK;
}

void ns_trainer_borrow_results(ns_trainer *tr, double *res, double *res_host)
{
    if (!tr->res_borrowed) {
        ns_buf_free(tr->be, tr->res);
        free(tr->res_host);
    }
    tr->res = res;
    tr->res_host = res_host;
    tr->res_borrowed = 1;
}

void ns_trainer_borrow_batch(ns_trainer *tr, float *xb, int32_t *yb, float *tb)
{
    if (!tr->batch_borrowed) {
        ns_buf_free(tr->be, tr->xb);
        ns_buf_free(tr->be, tr->yb);
        ns_buf_free(tr->be, tr->tb);
    }
    tr->xb = xb;
    tr->yb = yb;
    tr->tb = tb;
    tr->batch_borrowed = 1;
}

/* ---- checkpoints -------------------------------------------------------------------- */

/* A checkpoint continues a run on the machine that wrote it: fields are in host byte
 * order and ns_epoch_sums is stored as its bytes (zeroed before use, padding included). */
#define CKPT_MAGIC "NSCKPT\0\0"
#define CKPT_VERSION 3u

static int put(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }
static int get(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n ? 0 : -1; }

/* Writes the float buffer of n_params on the device through a host copy. */
static int put_params(const ns_trainer *tr, FILE *f, const float *dev)
{
    size_t n = tr->net->n_params;
    float *h = malloc(n * sizeof *h);
    if (!h)
        return -1;
    ns_buf_download(tr->be, h, dev, n * sizeof *h);
    int rc = put(f, h, n * sizeof *h);
    free(h);
    return rc;
}

static int get_params(ns_trainer *tr, FILE *f, float *dev)
{
    size_t n = tr->net->n_params;
    float *h = malloc(n * sizeof *h);
    if (!h)
        return -1;
    int rc = get(f, h, n * sizeof *h);
    if (!rc)
        ns_buf_upload(tr->be, dev, h, n * sizeof *h);
    free(h);
    return rc;
}

int ns_trainer_save(const ns_trainer *tr, const char *path, ns_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return ns_err_set(err, NS_ERUNTIME, "%s: cannot build checkpoint: %s", path, strerror(errno));
    uint32_t ver = CKPT_VERSION;
    uint64_t np = tr->net->n_params;
    int32_t epoch = tr->epoch, best_epoch = tr->best_epoch, bad = tr->bad_epochs,
            stopped = tr->stopped_early, sbad = tr->sched.bad_epochs,
            has_best = tr->best_params != NULL;
    int64_t step = tr->step, epoch_step = tr->epoch_step;
    int32_t in_epoch = tr->in_epoch;
    int fail = put(f, CKPT_MAGIC, 8) || put(f, &ver, 4) || put(f, &np, 8) || put(f, &tr->tag, 8) ||
               put(f, &epoch, 4) ||
               put(f, &step, 8) || put(f, &tr->elapsed, 8) || put(f, &tr->best_metric, 8) ||
               put(f, &best_epoch, 4) || put(f, &bad, 4) || put(f, &stopped, 4) ||
               put(f, tr->rng.s, sizeof tr->rng.s) || put(f, &in_epoch, 4) || put(f, &epoch_step, 8) ||
               put(f, tr->epoch_rng.s, sizeof tr->epoch_rng.s) || put(f, &tr->sums, sizeof tr->sums) ||
               put(f, &tr->sched.plateau_mult, 8) ||
               put(f, &tr->sched.best, 8) || put(f, &sbad, 4) || put(f, &has_best, 4) ||
               put(f, &tr->div_ema, 8) || put(f, &tr->div_n, 8) || put(f, &tr->div_best, 8) ||
               put(f, &tr->div_start, 8) ||
               put_params(tr, f, tr->net->params) ||
               (has_best && put_params(tr, f, tr->best_params)) || ns_optim_save(&tr->opt, f);
    if (fclose(f) || fail) {
        free(buf);
        return ns_err_set(err, NS_ERUNTIME, "%s: cannot build checkpoint (out of memory)", path);
    }
    uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)buf, (uInt)len);

    ns_atomic_file out;
    int rc = ns_atomic_open(&out, path, err);
    if (!rc) {
        put(out.f, buf, len);
        put(out.f, &crc, 4); /* a short write shows in the stream's error flag */
        rc = ns_atomic_commit(&out, err);
    }
    free(buf);
    return rc;
}

/* The bytes of the checkpoint file at path, its checksum verified: NS_OK with *buf (caller
 * frees) of *size bytes, the last 4 the CRC-32 of the rest; NS_EINPUT when it is not a
 * regular file, is truncated or damaged; open_code (NS_EINPUT or NS_ERUNTIME) when it
 * cannot be opened. The one reader of both ns_trainer_load and ns_checkpoint_epoch. */
static int ckpt_read(const char *path, int open_code, unsigned char **buf, long *size, ns_err *err)
{
    *buf = NULL;
    FILE *in = fopen(path, "rb");
    if (!in)
        return ns_err_set(err, open_code, "%s: cannot open checkpoint: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(in), &st) || !S_ISREG(st.st_mode)) { /* a folder opens, and sizes as LONG_MAX */
        fclose(in);
        return ns_err_set(err, NS_EINPUT, "%s: not a checkpoint file (a folder or a device); name "
                          "a file", path);
    }
    fseek(in, 0, SEEK_END);
    *size = ftell(in);
    fseek(in, 0, SEEK_SET);
    if (*size < 12) {
        fclose(in);
        return ns_err_set(err, NS_EINPUT, "%s: byte 0: checkpoint is truncated (%ld bytes)", path, *size);
    }
    if (!(*buf = malloc((size_t)*size))) {
        fclose(in);
        return ns_err_set(err, NS_ERUNTIME, "out of memory reading %s", path);
    }
    int rd = get(in, *buf, (size_t)*size);
    fclose(in);
    uint32_t crc;
    memcpy(&crc, *buf + *size - 4, 4);
    if (rd || crc != (uint32_t)crc32(0L, *buf, (uInt)(*size - 4))) {
        free(*buf);
        *buf = NULL;
        return ns_err_set(err, NS_EINPUT, "%s: checksum mismatch: the checkpoint is corrupt; "
                          "delete it to restart the run", path);
    }
    return NS_OK;
}

int ns_checkpoint_epoch(const char *path, int *epoch, ns_err *err)
{
    unsigned char *buf;
    long size;
    int rc = ckpt_read(path, NS_ERUNTIME, &buf, &size, err);
    if (rc)
        return rc;
    uint32_t ver = 0;
    int32_t e = -1;
    if (size >= 36) { /* magic 8, version 4, parameters 8, tag 8, epoch 4, ..., CRC 4 */
        memcpy(&ver, buf + 8, 4);
        memcpy(&e, buf + 28, 4);
    }
    int bad = size < 36 || memcmp(buf, CKPT_MAGIC, 8) || ver != CKPT_VERSION || e < 0;
    free(buf);
    if (bad)
        return ns_err_set(err, NS_EINPUT, "%s: not a checkpoint of this version", path);
    *epoch = e;
    return NS_OK;
}

/* What a checkpoint's counters must satisfy for this trainer to continue from them (the
 * checksum only proves the bytes are the ones written): the epoch in progress indexes the
 * row order, and the counters are incremented and multiplied by the loop. NULL when they
 * hold, else which rule they break. */
#define CKPT_MAX_EPOCH (1L << 30)
#define CKPT_MAX_STEP (INT64_C(1) << 53)
static const char *ckpt_counters_problem(const ns_trainer *tr, int32_t epoch, int64_t step,
                                         int32_t best_epoch, int32_t bad, int32_t stopped,
                                         int32_t sbad, int32_t in_epoch, int64_t epoch_step)
{
    const ns_epoch_sums *e = &tr->sums;
    if (epoch < 0 || epoch > CKPT_MAX_EPOCH || step < 0 || step > CKPT_MAX_STEP)
        return "epoch or step count out of range";
    if (best_epoch < 0 || best_epoch > epoch || bad < 0 || bad > epoch || sbad < 0 ||
        sbad > epoch || (stopped != 0 && stopped != 1))
        return "early-stopping counters out of range";
    if ((in_epoch != 0 && in_epoch != 1) || epoch_step < 0 ||
        epoch_step >= tr->steps_per_epoch || (!in_epoch && epoch_step) || epoch_step > step)
        return "position in the epoch out of range";
    if (e->steps < 0 || e->steps > epoch_step || e->rows < 0 ||
        e->rows > epoch_step * tr->spec.batch_size || !isfinite(e->seconds) || e->seconds < 0)
        return "sums of the epoch in progress out of range";
    if (!isfinite(tr->elapsed) || tr->elapsed < 0 || isnan(tr->best_metric) ||
        !isfinite(tr->sched.plateau_mult) || !(tr->sched.plateau_mult > 0) || tr->div_n < 0 ||
        tr->div_n > step)
        return "timing, schedule or divergence state out of range";
    return NULL;
}

int ns_trainer_load(ns_trainer *tr, const char *path, ns_err *err)
{
    unsigned char *buf;
    long size;
    int rc = ckpt_read(path, NS_EINPUT, &buf, &size, err);
    if (rc)
        return rc;
    FILE *f = fmemopen(buf, (size_t)size - 4, "rb");
    char magic[8];
    uint32_t ver = 0;
    uint64_t np = 0, tag = 0;
    int32_t epoch, best_epoch, bad, stopped, sbad, has_best;
    int64_t step, epoch_step;
    int32_t in_epoch;
    if (!f || get(f, magic, 8) || memcmp(magic, CKPT_MAGIC, 8) || get(f, &ver, 4) ||
        ver != CKPT_VERSION || get(f, &np, 8) || np != tr->net->n_params || get(f, &tag, 8) ||
        tag != tr->tag) {
        rc = ns_err_set(err, NS_EINPUT, "%s: not a checkpoint of this run (it was written by "
                        "another config or version); delete it or pass another path", path);
        goto done;
    }
    if (get(f, &epoch, 4) || get(f, &step, 8) || get(f, &tr->elapsed, 8) ||
        get(f, &tr->best_metric, 8) || get(f, &best_epoch, 4) || get(f, &bad, 4) ||
        get(f, &stopped, 4) || get(f, tr->rng.s, sizeof tr->rng.s) || get(f, &in_epoch, 4) ||
        get(f, &epoch_step, 8) ||
        get(f, tr->epoch_rng.s, sizeof tr->epoch_rng.s) || get(f, &tr->sums, sizeof tr->sums) ||
        get(f, &tr->sched.plateau_mult, 8) || get(f, &tr->sched.best, 8) || get(f, &sbad, 4) ||
        get(f, &has_best, 4) || get(f, &tr->div_ema, 8) || get(f, &tr->div_n, 8) ||
        get(f, &tr->div_best, 8) || get(f, &tr->div_start, 8) ||
        get_params(tr, f, tr->net->params) ||
        (has_best != (tr->best_params != NULL)) ||
        (has_best && get_params(tr, f, tr->best_params)) || ns_optim_load(&tr->opt, f)) {
        rc = ns_err_set(err, NS_EINPUT, "%s: checkpoint does not match this run's settings", path);
        goto done;
    }
    if (fgetc(f) != EOF) {
        rc = ns_err_set(err, NS_EINPUT, "%s: checkpoint has bytes after the optimizer state; "
                        "delete it to restart the run", path);
        goto done;
    }
    const char *why = ckpt_counters_problem(tr, epoch, step, best_epoch, bad, stopped, sbad,
                                            in_epoch, epoch_step);
    if (why) {
        rc = ns_err_set(err, NS_EINPUT, "%s: checkpoint holds an impossible state (%s); delete "
                        "it to restart the run", path, why);
        goto done;
    }
    tr->epoch = epoch;
    tr->step = step;
    tr->epoch_step = epoch_step;
    tr->in_epoch = in_epoch;
    tr->best_epoch = best_epoch;
    tr->bad_epochs = bad;
    tr->stopped_early = stopped;
    tr->sched.bad_epochs = sbad;
done:
    if (f)
        fclose(f);
    free(buf);
    return rc;
}
