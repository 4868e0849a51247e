/* backend_impl.h — what a backend implementation provides: its op table.
 * Only backend_*.c files include this; everyone else sees the opaque ns_backend. */
#ifndef NS_BACKEND_IMPL_H
#define NS_BACKEND_IMPL_H

#include "engine/backend/backend.h"

typedef struct ns_backend_ops {
    const char *name;
    int is_host;
    void (*destroy)(ns_backend *be);
    void *(*alloc)(ns_backend *be, size_t bytes);
    void (*free)(ns_backend *be, void *p);
    void (*upload)(ns_backend *be, void *dst, const void *src, size_t bytes);
    void (*download)(ns_backend *be, void *dst, const void *src, size_t bytes);
    void (*copy)(ns_backend *be, void *dst, const void *src, size_t bytes);
    void (*gather_rows)(ns_backend *be, float *out, const float *src, const int32_t *idx, int B,
                        int d);
    void (*gather_labels)(ns_backend *be, int32_t *out, const int32_t *src, const int32_t *idx,
                          int B);
    void (*zero)(ns_backend *be, float *x, size_t n);
    void (*scale)(ns_backend *be, float *x, float s, size_t n);
    double (*sumsq)(ns_backend *be, const float *x, size_t n);
    int (*all_finite)(ns_backend *be, const float *x, size_t n);
    void (*matmul_forward)(ns_backend *be, float *out, const float *inp, const float *w,
                           int B, int C, int OC);
    void (*matmul_backward)(ns_backend *be, float *dinp, float *dw, const float *dout,
                            const float *inp, const float *w, int B, int C, int OC);
    /* Optional (NULL: the members one by one through the ops above): K members at once,
     * called for each run of two or more consecutive active members. */
    void (*matmul_forward_batched)(ns_backend *be, int K, float *out, size_t out_stride,
                                   const float *inp, size_t inp_stride, const float *w,
                                   size_t w_stride, int B, int C, int OC);
    void (*matmul_backward_batched)(ns_backend *be, int K, float *dinp, size_t dinp_stride,
                                    float *dw, size_t dw_stride, const float *dout,
                                    size_t dout_stride, const float *inp, size_t inp_stride,
                                    const float *w, size_t w_stride, int B, int C, int OC);
    void (*bias_act_forward)(ns_backend *be, float *out, float *pre, const float *b,
                             ns_act act, float p, uint64_t seed, int B, int OC);
    void (*bias_act_backward)(ns_backend *be, float *dpre, float *db, const float *dout,
                              const float *pre, ns_act act, float p, uint64_t seed, int B,
                              int OC);
    /* The five ops with scalar results leave them at res (device memory, NULL: not
     * wanted) instead of returning them, so that a step's scalars come back in one
     * download (backend.h, "results left on the device"). */
    void (*softmax_xent)(ns_backend *be, double *res, float *dlogits, const float *logits,
                         const int32_t *labels, const float *class_w, float eps, int B, int C);
    void (*softmax)(ns_backend *be, float *probs, const float *logits, int B, int C);
    void (*mse)(ns_backend *be, double *res, float *dpred, const float *pred,
                const float *target, int B, int K);
    void (*sgd_update)(ns_backend *be, double *res, const double *gate, float *p, float *buf,
                       const float *g, size_t n, float lr, float mu, float wd, int nesterov);
    void (*adam_update)(ns_backend *be, double *res, const double *gate, float *p, float *m,
                        float *v, const float *g, size_t n, float lr, double b1, double b2,
                        float eps, float wd, double bc1, double bc2, int decoupled);
    void (*rmsprop_update)(ns_backend *be, double *res, const double *gate, float *p, float *v,
                           float *buf, const float *g, size_t n, float lr, double alpha,
                           float eps, float wd, float mu);
    /* Optional (NULL: the members one by one through the single ops above). */
    void (*update_members)(ns_backend *be, const ns_member_update *u, int K);
    void (*bias_act_forward_members)(ns_backend *be, const ns_member_act *m, int K, int B,
                                     int OC);
    void (*bias_act_backward_members)(ns_backend *be, const ns_member_act *m, int K, int B,
                                      int OC);
    void (*softmax_xent_members)(ns_backend *be, const ns_member_xent *m, int K, int B, int C);
    void (*batch_members)(ns_backend *be, const ns_member_batch *m, int K, int d);
} ns_backend_ops;

struct ns_backend {
    const ns_backend_ops *ops;
    int threads;
    /* Set by each backend: NS_RES_LOSS_N doubles of device memory where the ops that
     * return their results (ns_op_softmax_xent, ...) have them written, and as many of
     * host memory they are read back into (pinned on a GPU). */
    double *res, *res_host;
};

#endif
