/* backend.c — dispatch of every ns_op_* / ns_buf_* call through the backend's op table.
 * Deliberately thin: no checks on the hot path beyond what the ops themselves need. */
#include "engine/backend/backend_impl.h"
#include "engine/cuda/cuda.h"

#include <math.h>

ns_device ns_device_resolve(ns_device dev)
{
    if (dev != NS_DEVICE_AUTO)
        return dev;
    return ns_cuda_compiled() && ns_cuda_device_count() > 0 ? NS_DEVICE_CUDA : NS_DEVICE_CPU;
}

const char *ns_device_name(ns_device dev)
{
    return dev == NS_DEVICE_CUDA ? "cuda" : dev == NS_DEVICE_AUTO ? "auto" : "cpu";
}

const char *ns_precision_name(ns_precision prec)
{
    return prec == NS_PREC_TF32 ? "tf32" : prec == NS_PREC_BF16 ? "bf16" : "fp32";
}

ns_backend *ns_backend_open(ns_device dev, int threads, ns_precision prec, ns_err *err)
{
    if (ns_device_resolve(dev) == NS_DEVICE_CUDA)
        return ns_backend_cuda_alloc(0, prec, err);
    if (prec != NS_PREC_FP32) {
        ns_err_set(err, NS_EINPUT, "precision %s runs on a GPU's tensor cores only, and training "
                   "runs on the CPU here; use precision fp32, or --device cuda on a machine with "
                   "a GPU", ns_precision_name(prec));
        return NULL;
    }
    return ns_backend_cpu_alloc(threads, err);
}

void ns_backend_free(ns_backend *be)
{
    if (be)
        be->ops->destroy(be);
}
const char *ns_backend_name(const ns_backend *be) { return be->ops->name; }
int ns_backend_is_host(const ns_backend *be) { return be->ops->is_host; }

void *ns_buf_alloc(ns_backend *be, size_t bytes) { return be->ops->alloc(be, bytes); }
void ns_buf_free(ns_backend *be, void *p)
{
    if (p)
        be->ops->free(be, p);
}
void ns_buf_upload(ns_backend *be, void *dst, const void *src, size_t bytes)
{
    be->ops->upload(be, dst, src, bytes);
}
void ns_buf_download(ns_backend *be, void *dst, const void *src, size_t bytes)
{
    be->ops->download(be, dst, src, bytes);
}
void ns_buf_copy(ns_backend *be, void *dst, const void *src, size_t bytes)
{
    be->ops->copy(be, dst, src, bytes);
}

void ns_op_gather_rows(ns_backend *be, float *out, const float *src, const int32_t *idx, int B,
                       int d)
{
    be->ops->gather_rows(be, out, src, idx, B, d);
}
void ns_op_gather_labels(ns_backend *be, int32_t *out, const int32_t *src, const int32_t *idx,
                         int B)
{
    be->ops->gather_labels(be, out, src, idx, B);
}
void ns_op_zero(ns_backend *be, float *x, size_t n) { be->ops->zero(be, x, n); }
void ns_op_scale(ns_backend *be, float *x, float s, size_t n) { be->ops->scale(be, x, s, n); }
double ns_op_sumsq(ns_backend *be, const float *x, size_t n) { return be->ops->sumsq(be, x, n); }
int ns_op_all_finite(ns_backend *be, const float *x, size_t n)
{
    return be->ops->all_finite(be, x, n);
}

void ns_op_matmul_forward(ns_backend *be, float *out, const float *inp, const float *w, int B,
                          int C, int OC)
{
    be->ops->matmul_forward(be, out, inp, w, B, C, OC);
}
void ns_op_matmul_backward(ns_backend *be, float *dinp, float *dw, const float *dout,
                           const float *inp, const float *w, int B, int C, int OC)
{
    be->ops->matmul_backward(be, dinp, dw, dout, inp, w, B, C, OC);
}
/* The end of the run of active members that starts at k (active NULL: all are) */
static int run_end(const unsigned char *active, int K, int k)
{
    while (k < K && (!active || active[k]))
        k++;
    return k;
}

/* With a batched product, each run of consecutive active members is one call: members
 * leaving an array early (stopped, pruned) split it into runs instead of sending every
 * member back to single products. */
void ns_op_matmul_forward_batched(ns_backend *be, int K, const unsigned char *active,
                                  float *out, size_t out_stride, const float *inp,
                                  size_t inp_stride, const float *w, size_t w_stride, int B,
                                  int C, int OC)
{
    for (int k = 0; k < K; k++) {
        if (active && !active[k])
            continue;
        int e = be->ops->matmul_forward_batched ? run_end(active, K, k) : k + 1;
        if (e - k > 1)
            be->ops->matmul_forward_batched(be, e - k, out + k * out_stride, out_stride,
                                            inp + k * inp_stride, inp_stride, w + k * w_stride,
                                            w_stride, B, C, OC);
        else
            be->ops->matmul_forward(be, out + k * out_stride, inp + k * inp_stride,
                                    w + k * w_stride, B, C, OC);
        k = e - 1;
    }
}

void ns_op_matmul_backward_batched(ns_backend *be, int K, const unsigned char *active,
                                   float *dinp, size_t dinp_stride, float *dw, size_t dw_stride,
                                   const float *dout, size_t dout_stride, const float *inp,
                                   size_t inp_stride, const float *w, size_t w_stride, int B,
                                   int C, int OC)
{
    for (int k = 0; k < K; k++) {
        if (active && !active[k])
            continue;
        int e = be->ops->matmul_backward_batched ? run_end(active, K, k) : k + 1;
        float *di = dinp ? dinp + k * dinp_stride : NULL;
        if (e - k > 1)
            be->ops->matmul_backward_batched(be, e - k, di, dinp_stride, dw + k * dw_stride,
                                             dw_stride, dout + k * dout_stride, dout_stride,
                                             inp + k * inp_stride, inp_stride, w + k * w_stride,
                                             w_stride, B, C, OC);
        else
            be->ops->matmul_backward(be, di, dw + k * dw_stride, dout + k * dout_stride,
                                     inp + k * inp_stride, w + k * w_stride, B, C, OC);
        k = e - 1;
    }
}
void ns_op_bias_act_forward(ns_backend *be, float *out, float *pre, const float *b, ns_act act,
                            float p, uint64_t seed, int B, int OC)
{
    be->ops->bias_act_forward(be, out, pre, b, act, p, seed, B, OC);
}
void ns_op_bias_act_backward(ns_backend *be, float *dpre, float *db, const float *dout,
                             const float *pre, ns_act act, float p, uint64_t seed, int B,
                             int OC)
{
    be->ops->bias_act_backward(be, dpre, db, dout, pre, act, p, seed, B, OC);
}
/* The immediate forms: the op writes to the backend's own result slots, read back here. */
static const double *results(ns_backend *be, int k)
{
    be->ops->download(be, be->res_host, be->res, (size_t)k * sizeof(double));
    return be->res_host;
}

double ns_op_softmax_xent(ns_backend *be, float *dlogits, long *correct, double *wsum,
                          const float *logits, const int32_t *labels, const float *class_w,
                          float eps, int B, int C)
{
    be->ops->softmax_xent(be, be->res, dlogits, logits, labels, class_w, eps, B, C);
    const double *r = results(be, NS_RES_LOSS_N);
    /* a GPU that failed reads back NaN (backend_cuda.cu), which no cast may see */
    if (correct && isfinite(r[NS_RES_EXTRA]))
        *correct += (long)r[NS_RES_EXTRA];
    if (wsum)
        *wsum = r[NS_RES_WEIGHT];
    return r[NS_RES_LOSS];
}
void ns_op_softmax(ns_backend *be, float *probs, const float *logits, int B, int C)
{
    be->ops->softmax(be, probs, logits, B, C);
}
double ns_op_mse(ns_backend *be, float *dpred, const float *pred, const float *target, int B,
                 int K)
{
    be->ops->mse(be, be->res, dpred, pred, target, B, K);
    return results(be, NS_RES_LOSS_N)[NS_RES_EXTRA];
}
double ns_op_sgd_update(ns_backend *be, float *p, float *buf, const float *g, size_t n, float lr,
                      float mu, float wd, int nesterov)
{
    be->ops->sgd_update(be, be->res, NULL, p, buf, g, n, lr, mu, wd, nesterov);
    return results(be, 1)[0];
}
double ns_op_adam_update(ns_backend *be, float *p, float *m, float *v, const float *g, size_t n,
                       float lr, double b1, double b2, float eps, float wd, double bc1, double bc2,
                       int decoupled)
{
    be->ops->adam_update(be, be->res, NULL, p, m, v, g, n, lr, b1, b2, eps, wd, bc1, bc2,
                         decoupled);
    return results(be, 1)[0];
}
double ns_op_rmsprop_update(ns_backend *be, float *p, float *v, float *buf, const float *g,
                          size_t n, float lr, double alpha, float eps, float wd, float mu)
{
    be->ops->rmsprop_update(be, be->res, NULL, p, v, buf, g, n, lr, alpha, eps, wd, mu);
    return results(be, 1)[0];
}

void ns_op_softmax_xent_to(ns_backend *be, double *res, float *dlogits, const float *logits,
                           const int32_t *labels, const float *class_w, float eps, int B, int C)
{
    be->ops->softmax_xent(be, res, dlogits, logits, labels, class_w, eps, B, C);
}
void ns_op_mse_to(ns_backend *be, double *res, float *dpred, const float *pred,
                  const float *target, int B, int K)
{
    be->ops->mse(be, res, dpred, pred, target, B, K);
}
void ns_op_sgd_update_to(ns_backend *be, double *res, const double *gate, float *p, float *buf,
                         const float *g, size_t n, float lr, float mu, float wd, int nesterov)
{
    be->ops->sgd_update(be, res, gate, p, buf, g, n, lr, mu, wd, nesterov);
}
void ns_op_adam_update_to(ns_backend *be, double *res, const double *gate, float *p, float *m,
                          float *v, const float *g, size_t n, float lr, double b1, double b2,
                          float eps, float wd, double bc1, double bc2, int decoupled)
{
    be->ops->adam_update(be, res, gate, p, m, v, g, n, lr, b1, b2, eps, wd, bc1, bc2, decoupled);
}
void ns_op_rmsprop_update_to(ns_backend *be, double *res, const double *gate, float *p,
                             float *v, float *buf, const float *g, size_t n, float lr,
                             double alpha, float eps, float wd, float mu)
{
    be->ops->rmsprop_update(be, res, gate, p, v, buf, g, n, lr, alpha, eps, wd, mu);
}

/* One member's update through the single ops. */
static void update_member(ns_backend *be, const ns_member_update *u)
{
    switch (u->kind) {
    case NS_UPD_SGD:
        be->ops->sgd_update(be, u->res, u->gate, u->p, u->m, u->g, u->n, u->lr, u->mu, u->wd,
                            u->nesterov);
        return;
    case NS_UPD_ADAM:
        be->ops->adam_update(be, u->res, u->gate, u->p, u->m, u->v, u->g, u->n, u->lr, u->b1,
                             u->b2, u->eps, u->wd, u->bc1, u->bc2, u->decoupled);
        return;
    case NS_UPD_RMSPROP:
        be->ops->rmsprop_update(be, u->res, u->gate, u->p, u->v, u->m, u->g, u->n, u->lr,
                                u->alpha, u->eps, u->wd, u->mu);
        return;
    }
}

void ns_op_update_members(ns_backend *be, const ns_member_update *u, int K)
{
    if (be->ops->update_members && K > 1) {
        be->ops->update_members(be, u, K);
        return;
    }
    for (int k = 0; k < K; k++)
        update_member(be, &u[k]);
}

void ns_op_bias_act_forward_members(ns_backend *be, const ns_member_act *m, int K, int B, int OC)
{
    if (be->ops->bias_act_forward_members && K > 1) {
        be->ops->bias_act_forward_members(be, m, K, B, OC);
        return;
    }
    for (int k = 0; k < K; k++)
        be->ops->bias_act_forward(be, m[k].out, m[k].pre, m[k].b, m[k].act, m[k].p, m[k].seed,
                                  B, OC);
}

void ns_op_bias_act_backward_members(ns_backend *be, const ns_member_act *m, int K, int B, int OC)
{
    if (be->ops->bias_act_backward_members && K > 1) {
        be->ops->bias_act_backward_members(be, m, K, B, OC);
        return;
    }
    for (int k = 0; k < K; k++)
        be->ops->bias_act_backward(be, m[k].out, m[k].db, m[k].dout, m[k].pre, m[k].act, m[k].p,
                                   m[k].seed, B, OC);
}

void ns_op_softmax_xent_members(ns_backend *be, const ns_member_xent *m, int K, int B, int C)
{
    if (be->ops->softmax_xent_members && K > 1) {
        be->ops->softmax_xent_members(be, m, K, B, C);
        return;
    }
    for (int k = 0; k < K; k++)
        be->ops->softmax_xent(be, m[k].res, m[k].dlogits, m[k].logits, m[k].labels, m[k].class_w,
                              m[k].eps, B, C);
}

void ns_op_batch_members(ns_backend *be, const ns_member_batch *m, int K, int d)
{
    if (be->ops->batch_members && K > 1) {
        be->ops->batch_members(be, m, K, d);
        return;
    }
    for (int k = 0; k < K; k++) {
        be->ops->gather_rows(be, m[k].x, m[k].x_src, m[k].idx, m[k].B, d);
        if (m[k].y_src)
            be->ops->gather_labels(be, m[k].y, m[k].y_src, m[k].idx, m[k].B);
        if (m[k].t_src)
            be->ops->gather_rows(be, m[k].t, m[k].t_src, m[k].idx, m[k].B, 1);
        be->ops->zero(be, m[k].grads, m[k].n);
    }
}
