/* mlp.h — the multilayer perceptron that nnsearch trains: dense layers, activations,
 * dropout, He/Xavier init and its loss, with all parameters in one contiguous buffer and
 * per-layer views into it. Arithmetic goes through backend ops only. */
#ifndef NS_MLP_H
#define NS_MLP_H

#include <stddef.h>
#include <stdint.h>

#include "engine/backend/backend.h"
#include "engine/rng.h"
#include "engine/train/array.h"
#include "engine/train/train.h"

#define NS_MAX_HIDDEN 32

typedef enum ns_init { NS_INIT_HE = 0, NS_INIT_XAVIER } ns_init;
typedef enum ns_loss { NS_LOSS_XENT = 0, NS_LOSS_MSE } ns_loss;

typedef struct ns_mlp_spec {
    int n_in;                   /* input features */
    int n_out;                  /* classes (cross-entropy) or outputs (MSE) */
    int n_hidden;               /* hidden layers, 0..NS_MAX_HIDDEN */
    int hidden[NS_MAX_HIDDEN];  /* their widths */
    ns_act act;                 /* activation of every hidden layer */
    float dropout;              /* dropout after every hidden activation, [0, 1) */
    ns_init init;
    ns_loss loss;
    float label_smoothing;      /* cross-entropy only, [0, 1) */
} ns_mlp_spec;

const char *ns_act_name(ns_act a);
const char *ns_init_name(ns_init i);
const char *ns_loss_name(ns_loss l);

typedef struct ns_mlp {
    ns_mlp_spec spec;
    ns_backend *be;
    int n_layers;              /* n_hidden + 1 */
    int dims[NS_MAX_HIDDEN + 2]; /* dims[0] = n_in, dims[n_layers] = n_out */
    size_t n_params;
    size_t off[NS_MAX_HIDDEN + 2]; /* layer l's W starts at off[l]; off[n_layers] = n_params */
    float *params;             /* device (n_params): W0 (dims1, dims0), b0 (dims1), W1, ... */
    float *grads;              /* device (n_params), same layout */
    float *w[NS_MAX_HIDDEN + 1]; /* views: w[l] (dims[l+1], dims[l]) */
    float *b[NS_MAX_HIDDEN + 1]; /* views: b[l] (dims[l+1]) */
    float *gw[NS_MAX_HIDDEN + 1], *gb[NS_MAX_HIDDEN + 1];
    float *class_w;            /* device (n_out) class weights or NULL */
    int max_batch;
    /* activations, device: pre[l], out[l] (max_batch, dims[l+1]); one buffer each */
    float *acts;
    float *pre[NS_MAX_HIDDEN + 1], *out[NS_MAX_HIDDEN + 1];
    float *dbuf[2];            /* (max_batch, max dim) ping-pong activation gradients */
    ns_net net;                /* the engine's view of this model */
    int member;                /* its buffers belong to an ns_mlp_group */
} ns_mlp;

/* Parameters of spec's network: the sum over layers of out x in weights and out biases,
 * with widths n_in, hidden..., n_out (for a spec within the model limits it fits 64 bits). */
uint64_t ns_mlp_spec_param_count(const ns_mlp_spec *spec);

/* Bytes ns_mlp_alloc(spec, be, max_batch) takes on be: parameters and gradients (4 bytes
 * each), the pre- and post-activations of max_batch rows for every layer and the two
 * activation-gradient buffers (forward and backward). Exact, not an estimate: it follows
 * ns_mlp_alloc's layout. Fits 64 bits for any spec within the model limits. */
uint64_t ns_mlp_spec_bytes(const ns_mlp_spec *spec, int max_batch);

/* Validates spec (NS_EINPUT with a reason) and allocates everything on be.
 * Parameters start at zero; call ns_mlp_init_params. Caller frees with ns_mlp_free. */
ns_mlp *ns_mlp_alloc(const ns_mlp_spec *spec, ns_backend *be, int max_batch, ns_err *err);
void ns_mlp_free(ns_mlp *m);
/* He (normal, std sqrt(2 / fan_in)) or Xavier (uniform, +-sqrt(6 / (fan_in + fan_out)))
 * weights from rng; biases zero. NS_ERUNTIME (weights untouched) if out of memory. */
int ns_mlp_init_params(ns_mlp *m, ns_rng *rng, ns_err *err);
/* Class weights (n_out floats, host) for cross-entropy; NULL removes them. */
int ns_mlp_set_class_weights(ns_mlp *m, const float *w, ns_err *err);

/* The dropout mask seed of hidden layer `layer` for a batch drawn with noise_seed. */
uint64_t ns_mlp_dropout_seed(uint64_t noise_seed, int layer);

/* Forward pass of B rows of x (device); returns the device pointer to the (B, n_out)
 * outputs (logits or predictions), valid until the next call. */
const float *ns_mlp_forward(ns_mlp *m, const float *x, int B, int training, uint64_t noise_seed);
/* Loss of the last forward pass against y or t (see ns_net.batch); with grads != 0
 * runs the backward pass and accumulates into m->grads. */
int ns_mlp_loss_backward(ns_mlp *m, const float *x, const int32_t *y, const float *t, int B,
                         int grads, uint64_t noise_seed, ns_batch_out *out, ns_err *err);

/* K networks of one shape (the same layer widths; activation, dropout, initialisation,
 * loss and label smoothing may differ) trained together: their parameters laid out [K][n]
 * in one buffer, and likewise their gradients, activations and gradient rows, so that each
 * layer's products for all K are one batched op (ns_op_matmul_*_batched). Each member is
 * a whole ns_mlp (init, class weights, evaluation, ns_net for its own trainer) whose
 * buffers are views into the group's. */
typedef struct ns_mlp_group {
    int k;
    ns_backend *be;
    ns_mlp **m;                /* (k) the members */
    size_t n_params;           /* of one member: member k's parameters start at k n_params */
    size_t acts_stride;        /* floats between two members' activations ... */
    size_t dbuf_stride;        /* ... and gradient rows */
    float *params, *grads;     /* device (k, n_params) */
    float *acts;               /* device (k, acts_stride) */
    float *dbuf[2];            /* device (k, dbuf_stride) each */
    unsigned char *mask, *left; /* (k) scratch of group_batch */
    ns_member_act *act;        /* (k) scratch of group_pass: the members' layer passes ... */
    ns_member_xent *xent;      /* (k) ... and losses */
    ns_net_array net;          /* the engine's view of the group (engine/train/array.h) */
} ns_mlp_group;

/* Allocates K members from specs[0..K) on be, each taking batches up to max_batch rows.
 * NS_EINPUT when a spec is invalid or its layer widths differ from specs[0]'s. Parameters
 * start at zero: ns_mlp_init_params each member. Caller frees with ns_mlp_group_free. */
ns_mlp_group *ns_mlp_group_alloc(const ns_mlp_spec *specs, int K, ns_backend *be, int max_batch,
                                 ns_err *err);
void ns_mlp_group_free(ns_mlp_group *g);

#endif
