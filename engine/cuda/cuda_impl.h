/* cuda_impl.h — internal to the CUDA backend's .cu files (backend_cuda.cu: set-up, memory,
 * batches, elementwise ops, the op table; cuda_layers.cu: the dense layers' GEMMs, bias and
 * activation, losses; cuda_optim.cu: the optimizer updates): the backend's state, cuBLAS's
 * entry points, the error check and the fixed-order block reduction they share. Not a
 * public header: the rest of the program sees engine/cuda/cuda.h and backend_impl.h. */
#ifndef NS_CUDA_IMPL_H
#define NS_CUDA_IMPL_H

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "engine/backend/backend_impl.h"
#include "engine/backend/shared_math.h"
#include "engine/cuda/cuda.h"
}

/* cuBLAS's entry points, opened at run time, not linked (backend_cuda.cu says why) */
typedef struct blas_fns {
    cublasStatus_t (*create)(cublasHandle_t *);
    cublasStatus_t (*destroy)(cublasHandle_t);
    cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
    cublasStatus_t (*set_math_mode)(cublasHandle_t, cublasMath_t);
    cublasStatus_t (*sgemm)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                            const float *, const float *, int, const float *, int, const float *,
                            float *, int);
    cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                              const void *, const void *, cudaDataType, int, const void *,
                              cudaDataType, int, const void *, void *, cudaDataType, int,
                              cublasComputeType_t, cublasGemmAlgo_t);
    cublasStatus_t (*sgemm_sb)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int,
                               int, const float *, const float *, int, long long,
                               const float *, int, long long, const float *, float *, int,
                               long long, int);
    cublasStatus_t (*gemm_sb_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int,
                                 int, const void *, const void *, cudaDataType, int, long long,
                                 const void *, cudaDataType, int, long long, const void *,
                                 void *, cudaDataType, int, long long, int,
                                 cublasComputeType_t, cublasGemmAlgo_t);
} blas_fns;
extern blas_fns ns_cu_blas; /* filled by backend_cuda.cu before the first backend is made */

#define THREADS 256
#define MAX_BLOCKS 1024 /* partial sums per reduction: the second pass is one block */
#define PART_MEMBERS 16 /* members whose partial sums one launch keeps (mpart) */

typedef struct cuda_backend {
    ns_backend base;       /* first: the op table sees an ns_backend */
    int device;
    ns_precision prec;
    __nv_bfloat16 *half;   /* bf16: the GEMMs' inputs rounded, `half_cap` elements */
    size_t half_cap;
    cudaStream_t stream;
    cublasHandle_t blas;
    double *part;          /* (MAX_BLOCKS) device: the first pass's partial sums */
    double *mpart;         /* (PART_MEMBERS, MAX_BLOCKS) device: member ops' partial sums */
    double *res;           /* (4) device: reduction results */
    double *host;          /* (4) pinned: results read back */
} cuda_backend;

static inline cuda_backend *cb(ns_backend *be) { return (cuda_backend *)be; }

/* A CUDA call that fails in an op has no error path (ops return nothing or a number):
 * report it once and remember it (ns_cuda_failed). */
void ns_cu_check(cudaError_t e, const char *what);
void ns_cu_check_blas(cublasStatus_t s, const char *what);

static inline int blocks_for(size_t n)
{
    size_t b = (n + THREADS - 1) / THREADS;
    return b < 1 ? 1 : b > MAX_BLOCKS ? MAX_BLOCKS : (int)b;
}

/* ---- device helpers -------------------------------------------------------------------- */

/* One block's sum of v over its threads into *out, in a fixed tree order. */
__device__ static void block_sum(double v, double *out)
{
    __shared__ double s[THREADS];
    __syncthreads(); /* a previous block_sum of this kernel is done with s */
    s[threadIdx.x] = v;
    __syncthreads();
    for (int k = THREADS / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k)
            s[threadIdx.x] += s[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        *out = s[0];
}

/* The second pass: res[slot] = the sum of part[0..n) */
__global__ static void k_finish(const double *part, int n, double *res, int slot)
{
    double v = 0;
    for (int i = threadIdx.x; i < n; i += THREADS)
        v += part[i];
    block_sum(v, res + slot);
}

/* cuda_layers.cu: the op table's dense-layer, activation and loss entries */
void cu_matmul_forward(ns_backend *be, float *out, const float *inp, const float *w, int B, int C,
        int OC);
void cu_matmul_backward(ns_backend *be, float *dinp, float *dw, const float *dout, const float *inp,
        const float *w, int B, int C, int OC);
void cu_matmul_forward_batched(ns_backend *be, int K, float *out, size_t out_stride,
        const float *inp, size_t inp_stride, const float *w, size_t w_stride, int B, int C, int OC);
void cu_matmul_backward_batched(ns_backend *be, int K, float *dinp, size_t dinp_stride, float *dw,
        size_t dw_stride, const float *dout, size_t dout_stride, const float *inp,
        size_t inp_stride, const float *w, size_t w_stride, int B, int C, int OC);
void cu_bias_act_forward(ns_backend *be, float *out, float *pre, const float *b, ns_act act,
        float p, uint64_t seed, int B, int OC);
void cu_bias_act_backward(ns_backend *be, float *dpre, float *db, const float *dout,
        const float *pre, ns_act act, float p, uint64_t seed, int B, int OC);
void cu_softmax_xent(ns_backend *be, double *res, float *dlogits, const float *logits,
        const int32_t *labels, const float *class_w, float eps, int B, int C);
void cu_softmax(ns_backend *be, float *probs, const float *logits, int B, int C);
void cu_mse(ns_backend *be, double *res, float *dpred, const float *pred, const float *target,
        int B, int K);
void cu_bias_act_forward_members(ns_backend *be, const ns_member_act *m, int K, int B, int OC);
void cu_bias_act_backward_members(ns_backend *be, const ns_member_act *m, int K, int B, int OC);
void cu_softmax_xent_members(ns_backend *be, const ns_member_xent *in, int K, int B, int C);

/* cuda_optim.cu: its optimizer entries */
void cu_sgd(ns_backend *be, double *res, const double *gate, float *p, float *buf, const float *g,
        size_t n, float lr, float mu, float wd, int nesterov);
void cu_adam(ns_backend *be, double *res, const double *gate, float *p, float *m, float *v,
        const float *g, size_t n, float lr, double b1, double b2, float eps, float wd, double bc1,
        double bc2, int decoupled);
void cu_rmsprop(ns_backend *be, double *res, const double *gate, float *p, float *v, float *buf,
        const float *g, size_t n, float lr, double alpha, float eps, float wd, float mu);
void cu_update_members(ns_backend *be, const ns_member_update *in, int K);

#endif
