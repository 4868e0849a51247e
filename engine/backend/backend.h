/* backend.h — the compute runtime behind every numerical step of training.
 * Model and training code hold buffers that belong to a backend ("device" buffers) and
 * call these ops; they never do arithmetic on layer data themselves, so a CUDA backend
 * can sit beside the CPU one. Not a tensor library: only the ops an MLP trainer needs.
 *
 * Conventions (after llm.c): outputs first, then const inputs, then sizes. Matrices are
 * row-major. A weight matrix W of a layer with C inputs and OC outputs is (OC, C).
 * Gradients of parameters accumulate (+=); gradients of activations are overwritten. */
#ifndef NS_BACKEND_H
#define NS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

typedef struct ns_backend ns_backend;

typedef enum ns_act {
    NS_ACT_IDENTITY = 0,
    NS_ACT_RELU,
    NS_ACT_LEAKY_RELU, /* slope 0.01 for x < 0 */
    NS_ACT_GELU,       /* exact: x * Phi(x) */
    NS_ACT_TANH,
    NS_ACT_SIGMOID,
} ns_act;

#define NS_LEAKY_SLOPE 0.01f

/* ---- lifetime and memory ---------------------------------------------------------- */

/* Where training runs. The order is train.device's (search/config). */
typedef enum ns_device {
    NS_DEVICE_CPU = 0,
    NS_DEVICE_CUDA,  /* GPU 0 through engine/cuda (cuda.h) */
    NS_DEVICE_AUTO,  /* cuda when a GPU answers, else cpu */
} ns_device;

/* The arithmetic of the GEMMs (train.precision). Weights, gradients, optimizer state and
 * every other op stay fp32 whatever it is. */
typedef enum ns_precision {
    NS_PREC_FP32 = 0,
    NS_PREC_TF32, /* GPU tensor cores, inputs rounded to 10-bit mantissas, fp32 sums */
    NS_PREC_BF16, /* GPU tensor cores, inputs rounded to bfloat16, fp32 sums */
} ns_precision;

/* The one place a trainer's backend is chosen: cpu (threads BLAS threads), cuda, or auto
 * (ns_device_resolve), with GEMMs in prec. NULL and *err when the device cannot be had:
 * cuda without a GPU or in a build without CUDA, or tf32/bf16 on the CPU, is NS_EINPUT,
 * with the fix in the message. */
ns_backend *ns_backend_open(ns_device dev, int threads, ns_precision prec, ns_err *err);
const char *ns_precision_name(ns_precision prec); /* "fp32", "tf32", "bf16" */
/* auto -> cuda when this build has CUDA and the driver sees a GPU, else cpu; the others
 * as they are. */
ns_device ns_device_resolve(ns_device dev);
const char *ns_device_name(ns_device dev); /* "cpu", "cuda", "auto" */

/* CPU backend on OpenBLAS; threads = BLAS threads for this backend's GEMMs (>= 1).
 * Returns NULL and sets *err on failure; caller frees with ns_backend_free. */
ns_backend *ns_backend_cpu_alloc(int threads, ns_err *err);
/* Sets OpenBLAS's thread count, which is process-wide, to threads (>= 1; written only when
 * it changes) and returns the count it had. A threaded BLAS call can round differently from
 * a single-threaded one, and the count at any moment is whatever the last caller set (or
 * OpenBLAS's default, all cores or OPENBLAS_NUM_THREADS, in a fresh process), so code that
 * promises the same bits whatever ran before it sets the count itself (search/bo/bo.c). */
int ns_blas_threads_set(int threads);
void ns_backend_free(ns_backend *be);
const char *ns_backend_name(const ns_backend *be);
/* Nonzero when device buffers are ordinary host memory (the CPU backend). */
int ns_backend_is_host(const ns_backend *be);

void *ns_buf_alloc(ns_backend *be, size_t bytes); /* zeroed; NULL on failure */
/* Fault injection for tests (SQLite's habit): the n-th CPU buffer allocation from now
 * (0 = the next) fails, once; n < 0 turns it off. Process-wide, not thread-safe. */
void ns_backend_cpu_fail_alloc_after(long n);
void ns_buf_free(ns_backend *be, void *p);
void ns_buf_upload(ns_backend *be, void *dst_dev, const void *src_host, size_t bytes);
void ns_buf_download(ns_backend *be, void *dst_host, const void *src_dev, size_t bytes);
void ns_buf_copy(ns_backend *be, void *dst_dev, const void *src_dev, size_t bytes);

/* ---- batches from a dataset on the device ----------------------------------------- */

/* out (B, d) = rows idx[0..B) of src (n, d): a batch gathered where the data lives, so a
 * dataset uploaded once needs only its row order each epoch. idx is device int32. */
void ns_op_gather_rows(ns_backend *be, float *out, const float *src, const int32_t *idx, int B,
                       int d);
/* out[i] = src[idx[i]] for i < B: the batch's class labels. */
void ns_op_gather_labels(ns_backend *be, int32_t *out, const int32_t *src, const int32_t *idx,
                         int B);

/* ---- elementwise and reductions --------------------------------------------------- */

void ns_op_zero(ns_backend *be, float *x, size_t n);                 /* x = 0 */
void ns_op_scale(ns_backend *be, float *x, float s, size_t n);       /* x *= s */
double ns_op_sumsq(ns_backend *be, const float *x, size_t n);        /* sum x^2, in double */
int ns_op_all_finite(ns_backend *be, const float *x, size_t n);      /* 1 if no inf/nan */

/* ---- dense layer ------------------------------------------------------------------ */

/* out (B, OC) = inp (B, C) @ w^T, w (OC, C). Overwrites out. */
void ns_op_matmul_forward(ns_backend *be, float *out, const float *inp, const float *w,
                          int B, int C, int OC);
/* dw (OC, C) += dout^T @ inp; dinp (B, C) = dout @ w unless dinp is NULL. */
void ns_op_matmul_backward(ns_backend *be, float *dinp, float *dw, const float *dout,
                           const float *inp, const float *w, int B, int C, int OC);

/* The same products for K same-shaped members at once (trials trained together): member
 * k's operands start at base + k * stride (strides in floats) and members with active[k]
 * == 0 are left alone (active NULL: all K). Equal, bit for bit on the CPU, to K calls of
 * the ops above; a GPU runs each run of consecutive active members as one strided-batched
 * GEMM, whose sums can round differently from single GEMMs' (test_cuda.c's tolerance). */
void ns_op_matmul_forward_batched(ns_backend *be, int K, const unsigned char *active,
                                  float *out, size_t out_stride, const float *inp,
                                  size_t inp_stride, const float *w, size_t w_stride, int B,
                                  int C, int OC);
/* dinp may be NULL (then dinp_stride is unused). */
void ns_op_matmul_backward_batched(ns_backend *be, int K, const unsigned char *active,
                                   float *dinp, size_t dinp_stride, float *dw, size_t dw_stride,
                                   const float *dout, size_t dout_stride, const float *inp,
                                   size_t inp_stride, const float *w, size_t w_stride, int B,
                                   int C, int OC);

/* In one pass over (B, OC): pre += b (broadcast over rows), then
 * out = act(pre) * keep / (1 - p) where keep is a Bernoulli(1 - p) draw that depends only
 * on (seed, element index). p = 0 disables dropout (seed unused). */
void ns_op_bias_act_forward(ns_backend *be, float *out, float *pre, const float *b,
                            ns_act act, float p, uint64_t seed, int B, int OC);
/* Inverse of the above: dpre = dout * keep / (1 - p) * act'(pre); db += column sums of
 * dpre. dpre may alias dout. */
void ns_op_bias_act_backward(ns_backend *be, float *dpre, float *db, const float *dout,
                             const float *pre, ns_act act, float p, uint64_t seed,
                             int B, int OC);

/* ---- losses ----------------------------------------------------------------------- */

/* Softmax cross-entropy over B rows of C logits, labels in [0, C), as torch's
 * CrossEntropyLoss(weight=w, label_smoothing=eps): per row
 * l_i = (1 - eps) w_{y_i} (-log p_{i,y_i}) + (eps / C) sum_c w_c (-log p_ic), with w = 1 when
 * class_w is NULL. Returns sum_i l_i and sets *wsum = sum_i w_{y_i}; the mean loss is their
 * ratio. If dlogits is not NULL, writes d(mean loss)/dlogits. If correct is not NULL, adds
 * the number of rows whose argmax equals the label. */
double ns_op_softmax_xent(ns_backend *be, float *dlogits, long *correct, double *wsum,
                          const float *logits, const int32_t *labels, const float *class_w,
                          float eps, int B, int C);
/* probs (B, C) = softmax(logits) row-wise; may alias. */
void ns_op_softmax(ns_backend *be, float *probs, const float *logits, int B, int C);
/* Mean squared error over B*K values. Returns sum of squared errors; if dpred is not
 * NULL writes d(mean)/dpred = 2 (pred - target) / (B K). */
double ns_op_mse(ns_backend *be, float *dpred, const float *pred, const float *target,
                 int B, int K);

/* ---- optimizer updates over a flat parameter buffer ------------------------------- */
/* Each is one fused pass over n parameters; the formulas follow torch.optim exactly.
 * Betas, alpha and bias corrections come in double so that 1 - beta and lr / bc are
 * formed in double as torch forms them; 0.999f is not 0.999. Each returns the sum of
 * squares of g (read in the same pass), so gradient norms need no extra pass. */

/* g' = g + wd p; buf = mu buf + g' (when mu > 0); step = nesterov ? g' + mu buf : buf;
 * p -= lr * step. With mu = 0, buf is unused and step = g'. */
double ns_op_sgd_update(ns_backend *be, float *p, float *buf, const float *g, size_t n,
                      float lr, float mu, float wd, int nesterov);
/* Adam (decoupled = 0: g' = g + wd p) or AdamW (decoupled = 1: p *= 1 - lr wd first).
 * m = b1 m + (1 - b1) g'; v = b2 v + (1 - b2) g'^2;
 * p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps), bc_k = 1 - b_k^t. */
double ns_op_adam_update(ns_backend *be, float *p, float *m, float *v, const float *g,
                       size_t n, float lr, double b1, double b2, float eps, float wd,
                       double bc1, double bc2, int decoupled);
/* RMSprop: g' = g + wd p; v = alpha v + (1 - alpha) g'^2; d = g' / (sqrt(v) + eps);
 * with mu > 0: buf = mu buf + d, p -= lr buf; else p -= lr d. */
double ns_op_rmsprop_update(ns_backend *be, float *p, float *v, float *buf, const float *g,
                          size_t n, float lr, double alpha, float eps, float wd, float mu);

/* ---- results left on the device ---------------------------------------------------- */
/* The ops above that return a number wait for the device to get it. A training step needs
 * the loss and every layer's gradient sum of squares, and on a GPU each wait costs more
 * than a small layer's arithmetic; these forms write the same numbers, bit for bit, to res
 * (device memory; NULL when not wanted) and return at once, so that a step reads all of
 * them back in one ns_buf_download. */

/* Slots of a loss's results: the sum of the rows' losses (MSE: each row's mean over its
 * outputs), the sum of their weights (MSE: B), and the rows whose argmax is the label
 * (MSE: the sum of squared errors). */
enum { NS_RES_LOSS = 0, NS_RES_WEIGHT, NS_RES_EXTRA, NS_RES_LOSS_N };

/* ns_op_softmax_xent's loss, weight sum and correct count at res[0..NS_RES_LOSS_N). */
void ns_op_softmax_xent_to(ns_backend *be, double *res, float *dlogits, const float *logits,
                           const int32_t *labels, const float *class_w, float eps, int B,
                           int C);
/* ns_op_mse's pass; res[NS_RES_LOSS] = sse / K (in double), res[NS_RES_WEIGHT] = B,
 * res[NS_RES_EXTRA] = sse. */
void ns_op_mse_to(ns_backend *be, double *res, float *dpred, const float *pred,
                  const float *target, int B, int K);
/* The updates above with the gradient's sum of squares at res[0]. gate (device, may be
 * NULL): when *gate is not finite (a step whose loss blew up) nothing is updated and
 * res[0] = 0, as a step that never began. */
void ns_op_sgd_update_to(ns_backend *be, double *res, const double *gate, float *p, float *buf,
                         const float *g, size_t n, float lr, float mu, float wd, int nesterov);
void ns_op_adam_update_to(ns_backend *be, double *res, const double *gate, float *p, float *m,
                          float *v, const float *g, size_t n, float lr, double b1, double b2,
                          float eps, float wd, double bc1, double bc2, int decoupled);
void ns_op_rmsprop_update_to(ns_backend *be, double *res, const double *gate, float *p,
                             float *v, float *buf, const float *g, size_t n, float lr,
                             double alpha, float eps, float wd, float mu);

/* ---- one update for many members (trials trained together) ------------------------- */
/* Member k's update: what ns_op_sgd_update_to, ns_op_adam_update_to or
 * ns_op_rmsprop_update_to (by kind) make of its fields, with its own hyperparameters,
 * gate and result. */
typedef enum ns_update_kind { NS_UPD_SGD = 0, NS_UPD_ADAM, NS_UPD_RMSPROP } ns_update_kind;
typedef struct ns_member_update {
    ns_update_kind kind;
    float *p, *m, *v;          /* parameters and state (sgd: m = buf; rmsprop: v, m = buf) */
    const float *g;
    size_t n;
    float lr, eps, wd, mu;     /* mu: momentum (sgd, rmsprop) */
    double b1, b2, bc1, bc2;   /* adam */
    double alpha;              /* rmsprop */
    int nesterov, decoupled;
    const double *gate;        /* device, may be NULL (as the single ops) */
    double *res;               /* device, may be NULL: the gradient's sum of squares */
} ns_member_update;
/* The K updates u[0..K) (K >= 0): the same bits as K calls of the single ops, on a GPU in a
 * few launches for all of them instead of two each. */
void ns_op_update_members(ns_backend *be, const ns_member_update *u, int K);

/* The bias-activation passes of many members (trials trained together, each with its own
 * activation, dropout and mask seed), all of B rows and OC columns: member k's is
 * ns_op_bias_act_forward(out, pre, b, act, p, seed, B, OC), or ns_op_bias_act_backward(dpre,
 * db, dout, pre, act, p, seed, B, OC), of its fields; the same bits as K such calls, on a
 * GPU one launch or two for all of them. */
typedef struct ns_member_act {
    float *out;         /* forward: the activations; backward: dpre (may alias dout) */
    float *pre;         /* pre-activations: forward adds the bias to them */
    const float *b;     /* forward: the bias */
    float *db;          /* backward: the bias gradient, added to */
    const float *dout;  /* backward: the activations' gradient */
    ns_act act;
    float p;
    uint64_t seed;
} ns_member_act;
void ns_op_bias_act_forward_members(ns_backend *be, const ns_member_act *m, int K, int B, int OC);
void ns_op_bias_act_backward_members(ns_backend *be, const ns_member_act *m, int K, int B, int OC);

/* Many members' softmax cross-entropies, all of B rows and C classes, each left on the
 * device: member k's is ns_op_softmax_xent_to(res, dlogits, logits, labels, class_w, eps,
 * B, C) of its fields (res must not be NULL); the same bits as K such calls, on a GPU five
 * launches for all of them. */
typedef struct ns_member_xent {
    double *res;
    float *dlogits;             /* may be NULL */
    const float *logits;
    const int32_t *labels;
    const float *class_w;       /* may be NULL */
    float eps;
} ns_member_xent;
void ns_op_softmax_xent_members(ns_backend *be, const ns_member_xent *m, int K, int B, int C);

/* The start of a training step for many members: member k's rows idx[0..B) of x_src (d
 * columns each) into x, its labels from y_src into y and targets from t_src into t (either
 * pair may be NULL), and its n gradients zeroed; what ns_op_gather_rows,
 * ns_op_gather_labels and ns_op_zero make of them, on a GPU in one launch for all. */
typedef struct ns_member_batch {
    float *x;
    const float *x_src;
    int32_t *y;
    const int32_t *y_src;
    float *t;
    const float *t_src;
    const int32_t *idx;
    int B;
    float *grads;
    size_t n;
} ns_member_batch;
void ns_op_batch_members(ns_backend *be, const ns_member_batch *m, int K, int d);

/* ---- plain-loop references (no BLAS), for tests of every backend ------------------ */
void ns_ref_matmul_forward(float *out, const float *inp, const float *w, int B, int C, int OC);
void ns_ref_matmul_backward(float *dinp, float *dw, const float *dout, const float *inp,
                            const float *w, int B, int C, int OC);
float ns_act_eval(ns_act act, float x);  /* act(x) */
float ns_act_deriv(ns_act act, float x); /* act'(x) */
/* The dropout keep decision for element i of a mask seeded with seed. */
int ns_dropout_keep(uint64_t seed, size_t i, float p);

#endif
