/* array.h — runs trained in lock-step: K runs of one shape (same training rows, batch size
 * and network widths) step together, so that a backend can do each layer's products for
 * all K at once (one batched GEMM on a GPU instead of K small ones). Each run keeps its own
 * spec (LR, schedule, optimizer and its state, weight decay, seed, early stopping), its own
 * divergence stop and epoch records, and its own ns_trainer, so checkpoints, evaluation
 * and the records are those of a run alone. Not a scheduler: the caller forms the array. */
#ifndef NS_ARRAY_H
#define NS_ARRAY_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/train/train.h"

/* The engine's view of K networks trained together (model/mlp.h's ns_mlp_group). */
typedef struct ns_net_array {
    void *ctx;
    int k;
    /* One training batch of every member with active[k] != 0: member k's B[k] rows at
     * x + k x_stride (device), its labels at y + k yt_stride or targets at t + k yt_stride
     * (y or t NULL when the task has none), its dropout seeded by noise_seed[k]. Like
     * ns_net.batch with training = 1 for each member: fills out[k] and ACCUMULATES the
     * gradient of the member's mean loss into its grads. Returns NS_OK or sets *err. */
    int (*batch)(void *ctx, const unsigned char *active, const float *x, size_t x_stride,
                 const int32_t *y, const float *t, size_t yt_stride, const int *B,
                 const uint64_t *noise_seed, ns_batch_out *out, ns_err *err);
} ns_net_array;

/* Called after member k's every epoch; return nonzero to stop that member (e.g. pruned). */
typedef int (*ns_member_epoch_fn)(void *user, int k, const ns_epoch_record *rec);

typedef struct ns_trainer_array {
    int k;
    ns_trainer *tr;            /* (k) the members' runs */
    const ns_net_array *net;
    ns_backend *be;
    float *xb;                 /* device (k, x_stride): the members' batches ... */
    int32_t *yb;               /* device (k, yt_stride) */
    float *tb;                 /* device (k, yt_stride) */
    size_t x_stride, yt_stride;
    double *res, *res_host;    /* device and host (k, res_stride): the members' step scalars */
    size_t res_stride;
    int shared;                /* the members gather from one copy of the rows */
    unsigned char *left_out;   /* (k) members the caller keeps out of every run [0] */
    /* scratch, (k) each */
    unsigned char *active, *stepping, *ending, *ready;
    int *rows, *diverged, *epochs_run;
    uint64_t *noise_seed;
    double *t_epoch;
    ns_batch_out *out;
    ns_trainer **step_tr;      /* (k) the members stepping, for their updates together ... */
    ns_member_batch *batch;    /* (k) ... and their batches */
} ns_trainer_array;

/* Prepares K runs: member k trains nets[k] (its own ns_net, whose params already hold its
 * initial weights; its batch() serves the member's evaluation) with specs[k], all on train
 * and val, and net trains them together. The specs must agree on batch_size and drop_last,
 * and budget in epochs or steps: a seconds budget cannot be shared (train such a run
 * alone). NS_EINPUT when they do not. Caller frees with ns_trainer_array_free. */
int ns_trainer_array_init(ns_trainer_array *a, const ns_train_spec *specs, int K, ns_backend *be,
                          ns_net *const *nets, const ns_net_array *net, const ns_dataset *train,
                          const ns_dataset *val, ns_err *err);
/* Trains every member not yet done (and not left out) until it is done (budget or early stopping), fn
 * returns nonzero for it, its stop flag (tr[k].stop) is set (tr[k].interrupted = 1, as
 * ns_trainer_run), or, with max_epochs_now > 0, it has run that many more epochs. Each
 * member's weights, records and state equal those of ns_trainer_run on it alone; on the
 * CPU to the bit. The members' trainers can be saved and loaded as ns_trainer_save/load
 * describe between two calls. */
int ns_trainer_array_run(ns_trainer_array *a, int max_epochs_now, ns_member_epoch_fn fn,
                         void *user, ns_err *err);
void ns_trainer_array_free(ns_trainer_array *a);

#endif
