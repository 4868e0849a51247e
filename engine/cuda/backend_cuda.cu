/* backend_cuda.cu — the CUDA backend: the op table of backend_impl.h on an NVIDIA GPU.
 * GEMMs through cuBLAS in fp32 (no TF32: the default math mode), or with train.precision
 * tf32 (tensor cores on fp32 data) or bf16 (inputs rounded to bfloat16 into a scratch
 * buffer, fp32 sums, fp32 outputs: the weights stay fp32), everything else as one
 * kernel per op with the CPU backend's formulas (dropout from the same counter-based
 * hash, optimizer updates in torch.optim's order). Each backend owns a stream and a cuBLAS
 * handle, so the trial pool's workers can share one GPU. Reductions (sums of squares,
 * losses, correct counts) go through a fixed two-pass tree, so a run gives the same bits
 * every time on the same GPU; the ops that return a scalar wait for the stream.
 * Not the factory (backend.c chooses a backend) and not the trainer. */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "engine/backend/backend_impl.h"
#include "engine/backend/shared_math.h"
#include "engine/cuda/cuda.h"
}

/* cuBLAS is opened when the first CUDA backend is made, not linked: its two libraries are
 * a few hundred MB that every process would map at start (0.4 s and 220 MB of resident
 * memory for `nnsearch --help`), though most runs never touch a GPU. */
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
static blas_fns blas;
static int blas_ok;
static char blas_why[512];
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

#define STR2(x) #x
#define STR(x) STR2(x)

static void blas_load(void)
{
    /* the major version this was compiled against, by name (LD_LIBRARY_PATH, the loader's
     * cache), then where the build found it */
    const char *names[] = {"libcublas.so." STR(CUBLAS_VER_MAJOR),
#ifdef NS_CUBLAS_DIR
                           NS_CUBLAS_DIR "/libcublas.so." STR(CUBLAS_VER_MAJOR),
#endif
                           "libcublas.so"};
    void *h = NULL;
    for (size_t i = 0; i < sizeof names / sizeof *names && !h; i++)
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(blas_why, sizeof blas_why, "cannot open %s (%s): put the CUDA toolkit's lib "
                 "folder on LD_LIBRARY_PATH", names[0], dlerror());
        return;
    }
    *(void **)&blas.create = dlsym(h, "cublasCreate_v2");
    *(void **)&blas.destroy = dlsym(h, "cublasDestroy_v2");
    *(void **)&blas.set_stream = dlsym(h, "cublasSetStream_v2");
    *(void **)&blas.set_math_mode = dlsym(h, "cublasSetMathMode");
    *(void **)&blas.sgemm = dlsym(h, "cublasSgemm_v2");
    *(void **)&blas.gemm_ex = dlsym(h, "cublasGemmEx");
    *(void **)&blas.sgemm_sb = dlsym(h, "cublasSgemmStridedBatched");
    *(void **)&blas.gemm_sb_ex = dlsym(h, "cublasGemmStridedBatchedEx");
    if (!blas.create || !blas.destroy || !blas.set_stream || !blas.set_math_mode || !blas.sgemm ||
        !blas.gemm_ex || !blas.sgemm_sb || !blas.gemm_sb_ex) {
        snprintf(blas_why, sizeof blas_why, "%s lacks the cuBLAS functions this build uses",
                 names[0]);
        return;
    }
    blas_ok = 1;
}

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

static cuda_backend *cb(ns_backend *be) { return (cuda_backend *)be; }

/* A CUDA call that fails in an op has no error path (ops return nothing or a number):
 * report it once and remember it; ns_cuda_failed says whether anything failed, and the
 * trainer's all_finite checks then see NaN (losses are returned as NaN). */
static int failed_flag;
static void check(cudaError_t e, const char *what)
{
    if (e != cudaSuccess && !failed_flag) {
        failed_flag = 1;
        fprintf(stderr, "nnsearch: cuda: %s: %s\n", what, cudaGetErrorString(e));
    }
}
static void check_blas(cublasStatus_t s, const char *what)
{
    if (s != CUBLAS_STATUS_SUCCESS && !failed_flag) {
        failed_flag = 1;
        fprintf(stderr, "nnsearch: cuda: %s: cuBLAS status %d\n", what, (int)s);
    }
}
extern "C" int ns_cuda_failed(void) { return failed_flag; }

static int blocks_for(size_t n)
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

/* Waits for the stream and returns the results res[0..k) */
static const double *read_back(cuda_backend *c, int k)
{
    check(cudaMemcpyAsync(c->host, c->res, (size_t)k * sizeof(double), cudaMemcpyDeviceToHost,
                          c->stream), "reading a result");
    check(cudaStreamSynchronize(c->stream), "waiting for the GPU");
    return c->host;
}

/* ---- memory ------------------------------------------------------------------------------ */

static void cu_destroy(ns_backend *be)
{
    cuda_backend *c = cb(be);
    cudaSetDevice(c->device);
    if (c->blas)
        blas.destroy(c->blas);
    cudaFree(c->part);
    cudaFree(c->mpart);
    cudaFree(c->res);
    cudaFree(c->half);
    cudaFreeHost(c->host);
    if (c->stream)
        cudaStreamDestroy(c->stream);
    free(c);
}

static void *cu_alloc(ns_backend *be, size_t bytes)
{
    cuda_backend *c = cb(be);
    void *p = NULL;
    size_t n = bytes ? bytes : 64;
    if (cudaMalloc(&p, n) != cudaSuccess) {
        cudaGetLastError(); /* out of memory is the caller's NULL, not a sticky failure */
        return NULL;
    }
    /* zeroed, as the CPU backend's, before anyone reads it */
    check(cudaMemsetAsync(p, 0, n, c->stream), "zeroing a buffer");
    check(cudaStreamSynchronize(c->stream), "zeroing a buffer");
    return p;
}

static void cu_free(ns_backend *be, void *p)
{
    cuda_backend *c = cb(be);
    check(cudaStreamSynchronize(c->stream), "freeing a buffer");
    check(cudaFree(p), "freeing a buffer");
}

static void cu_upload(ns_backend *be, void *dst, const void *src, size_t bytes)
{
    cuda_backend *c = cb(be);
    if (!bytes)
        return;
    /* synchronous: the caller may reuse src at once */
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream), "upload");
    check(cudaStreamSynchronize(c->stream), "upload");
}

static void cu_download(ns_backend *be, void *dst, const void *src, size_t bytes)
{
    cuda_backend *c = cb(be);
    if (!bytes)
        return;
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream), "download");
    check(cudaStreamSynchronize(c->stream), "download");
    if (failed_flag) /* every bit set: NaN as float or double, so a loss read here diverges */
        memset(dst, 0xff, bytes);
}

static void cu_copy(ns_backend *be, void *dst, const void *src, size_t bytes)
{
    cuda_backend *c = cb(be);
    if (dst != src && bytes)
        check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream), "copy");
}

/* ---- batches from a dataset on the device -------------------------------------------------- */

__global__ static void k_gather_rows(float *out, const float *src, const int32_t *idx, int B, int d)
{
    size_t n = (size_t)B * d;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = src[(size_t)idx[i / d] * d + i % d];
}

static void cu_gather_rows(ns_backend *be, float *out, const float *src, const int32_t *idx, int B,
                           int d)
{
    size_t n = (size_t)B * d;
    if (n)
        k_gather_rows<<<blocks_for(n), THREADS, 0, cb(be)->stream>>>(out, src, idx, B, d);
}

__global__ static void k_gather_labels(int32_t *out, const int32_t *src, const int32_t *idx, int B)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < B; i += gridDim.x * blockDim.x)
        out[i] = src[idx[i]];
}

static void cu_gather_labels(ns_backend *be, int32_t *out, const int32_t *src, const int32_t *idx,
                             int B)
{
    if (B > 0)
        k_gather_labels<<<blocks_for((size_t)B), THREADS, 0, cb(be)->stream>>>(out, src, idx, B);
}

/* The start of many members' steps (ns_op_batch_members) in one launch: member blockIdx.y's
 * rows, labels and targets gathered, its gradients zeroed; their arguments travel as one
 * kernel parameter (4 KB at most) */
#define BATCH_MEMBERS 32
typedef struct batch_members {
    ns_member_batch m[BATCH_MEMBERS];
} batch_members;

__global__ static void k_batch_members(batch_members a, int d)
{
    const ns_member_batch &m = a.m[blockIdx.y];
    size_t nx = (size_t)m.B * d, top = nx > m.n ? nx : m.n;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < top; i += (size_t)gridDim.x * blockDim.x) {
        if (i < nx)
            m.x[i] = m.x_src[(size_t)m.idx[i / d] * d + i % d];
        if (i < (size_t)m.B && m.y_src)
            m.y[i] = m.y_src[m.idx[i]];
        if (i < (size_t)m.B && m.t_src)
            m.t[i] = m.t_src[m.idx[i]];
        if (i < m.n)
            m.grads[i] = 0.0f;
    }
}

static void cu_batch_members(ns_backend *be, const ns_member_batch *m, int K, int d)
{
    for (int k0 = 0; k0 < K; k0 += BATCH_MEMBERS) {
        int kn = K - k0 < BATCH_MEMBERS ? K - k0 : BATCH_MEMBERS;
        batch_members a;
        size_t top = 1;
        for (int j = 0; j < kn; j++) {
            a.m[j] = m[k0 + j];
            size_t nx = (size_t)m[k0 + j].B * d;
            if (nx > top)
                top = nx;
            if (m[k0 + j].n > top)
                top = m[k0 + j].n;
        }
        k_batch_members<<<dim3(blocks_for(top), kn), THREADS, 0, cb(be)->stream>>>(a, d);
    }
}

/* ---- elementwise and reductions ---------------------------------------------------------- */

static void cu_zero(ns_backend *be, float *x, size_t n)
{
    if (n)
        check(cudaMemsetAsync(x, 0, n * sizeof *x, cb(be)->stream), "zero");
}

__global__ static void k_scale(float *x, float s, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] *= s;
}

static void cu_scale(ns_backend *be, float *x, float s, size_t n)
{
    if (n)
        k_scale<<<blocks_for(n), THREADS, 0, cb(be)->stream>>>(x, s, n);
}

__global__ static void k_sumsq(const float *x, size_t n, double *part)
{
    double v = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        v += (double)x[i] * (double)x[i];
    block_sum(v, part + blockIdx.x);
}

static double cu_sumsq(ns_backend *be, const float *x, size_t n)
{
    cuda_backend *c = cb(be);
    if (!n)
        return 0;
    int nb = blocks_for(n);
    k_sumsq<<<nb, THREADS, 0, c->stream>>>(x, n, c->part);
    k_finish<<<1, THREADS, 0, c->stream>>>(c->part, nb, c->res, 0);
    return read_back(c, 1)[0];
}

__global__ static void k_nonfinite(const float *x, size_t n, double *part)
{
    double v = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        v += !isfinite(x[i]);
    block_sum(v, part + blockIdx.x);
}

static int cu_all_finite(ns_backend *be, const float *x, size_t n)
{
    cuda_backend *c = cb(be);
    if (!n)
        return 1;
    int nb = blocks_for(n);
    k_nonfinite<<<nb, THREADS, 0, c->stream>>>(x, n, c->part);
    k_finish<<<1, THREADS, 0, c->stream>>>(c->part, nb, c->res, 0);
    return read_back(c, 1)[0] == 0 && !failed_flag;
}

/* ---- dense layer: row-major products as cuBLAS's column-major ones ------------------------ */

/* ---- bf16: the GEMMs' inputs rounded to bfloat16 in scratch, fp32 sums and outputs ---- */

/* dst[k n + i] = bf16(src[k stride + i]) for K members' operands of n values each (K = 1:
 * one operand), packed for one GEMM or one batched GEMM */
__global__ static void k_to_bf16(__nv_bfloat16 *dst, const float *src, size_t n, size_t stride,
                                 int K)
{
    size_t all = n * (size_t)K;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < all; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[(i / n) * stride + i % n]);
}

/* Room for n bf16 values in c->half; 0, or -1 (reported) when out of memory. */
static int half_room(cuda_backend *c, size_t n)
{
    if (n <= c->half_cap)
        return 0;
    check(cudaStreamSynchronize(c->stream), "growing the bf16 scratch");
    cudaFree(c->half);
    c->half = NULL;
    c->half_cap = 0;
    if (cudaMalloc((void **)&c->half, n * sizeof *c->half) != cudaSuccess) {
        check(cudaErrorMemoryAllocation, "the bf16 scratch");
        return -1;
    }
    c->half_cap = n;
    return 0;
}

/* K members' operands (n values each, stride apart) rounded into c->half from `at` */
static const __nv_bfloat16 *rounded_members(cuda_backend *c, size_t at, const float *src, size_t n,
                                            size_t stride, int K)
{
    k_to_bf16<<<blocks_for(n * (size_t)K), THREADS, 0, c->stream>>>(c->half + at, src, n, stride, K);
    return c->half + at;
}

static const __nv_bfloat16 *rounded(cuda_backend *c, size_t at, const float *src, size_t n)
{
    return rounded_members(c, at, src, n, n, 1);
}

static void gemm16(cuda_backend *c, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                   const __nv_bfloat16 *A, int lda, const __nv_bfloat16 *Bm, int ldb, float beta,
                   float *C, int ldc, const char *what)
{
    const float one = 1;
    check_blas(blas.gemm_ex(c->blas, ta, tb, m, n, k, &one, A, CUDA_R_16BF, lda, Bm, CUDA_R_16BF,
                            ldb, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               what);
}

static void cu_matmul_forward(ns_backend *be, float *out, const float *inp, const float *w,
                              int B, int C, int OC)
{
    cuda_backend *c = cb(be);
    /* out (B, OC) = inp (B, C) w^T: column-major out^T (OC x B) = w (C x OC)^T inp^T */
    if (c->prec == NS_PREC_BF16) {
        size_t nw = (size_t)OC * C, ni = (size_t)B * C;
        if (half_room(c, nw + ni))
            return;
        const __nv_bfloat16 *w16 = rounded(c, 0, w, nw), *i16 = rounded(c, nw, inp, ni);
        gemm16(c, CUBLAS_OP_T, CUBLAS_OP_N, OC, B, C, w16, C, i16, C, 0.0f, out, OC, "matmul forward");
        return;
    }
    const float one = 1, zero = 0;
    check_blas(blas.sgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, B, C, &one, w, C, inp, C,
                           &zero, out, OC), "matmul forward");
}

static void cu_matmul_backward(ns_backend *be, float *dinp, float *dw, const float *dout,
                               const float *inp, const float *w, int B, int C, int OC)
{
    cuda_backend *c = cb(be);
    if (c->prec == NS_PREC_BF16) {
        size_t nd = (size_t)B * OC, ni = (size_t)B * C, nw = (size_t)OC * C;
        if (half_room(c, nd + ni + nw))
            return;
        const __nv_bfloat16 *d16 = rounded(c, 0, dout, nd), *i16 = rounded(c, nd, inp, ni);
        gemm16(c, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, B, i16, C, d16, OC, 1.0f, dw, C,
               "matmul backward (weights)");
        if (dinp) {
            const __nv_bfloat16 *w16 = rounded(c, nd + ni, w, nw);
            gemm16(c, CUBLAS_OP_N, CUBLAS_OP_N, C, B, OC, w16, C, d16, OC, 0.0f, dinp, C,
                   "matmul backward (inputs)");
        }
        return;
    }
    const float one = 1, zero = 0;
    /* dw (OC, C) += dout^T inp: column-major dw^T (C x OC) += inp^T (C x B) dout (B x OC) */
    check_blas(blas.sgemm(cb(be)->blas, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, B, &one, inp, C, dout,
                           OC, &one, dw, C), "matmul backward (weights)");
    /* dinp (B, C) = dout w: column-major dinp^T (C x B) = w^T (C x OC) dout^T (OC x B) */
    if (dinp)
        check_blas(blas.sgemm(cb(be)->blas, CUBLAS_OP_N, CUBLAS_OP_N, C, B, OC, &one, w, C, dout,
                               OC, &zero, dinp, C), "matmul backward (inputs)");
}

/* ---- the same products for K members at once (trials trained together) ------------------ */

static void gemm16_sb(cuda_backend *c, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                      int k, const __nv_bfloat16 *A, int lda, long long sa, const __nv_bfloat16 *Bm,
                      int ldb, long long sb, float beta, float *C, int ldc, long long sc, int K,
                      const char *what)
{
    const float one = 1;
    check_blas(blas.gemm_sb_ex(c->blas, ta, tb, m, n, k, &one, A, CUDA_R_16BF, lda, sa, Bm,
                               CUDA_R_16BF, ldb, sb, &beta, C, CUDA_R_32F, ldc, sc, K,
                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               what);
}

/* The single-member products above, K at a time: the same transposes, one launch. */
static void cu_matmul_forward_batched(ns_backend *be, int K, float *out, size_t out_stride,
                                      const float *inp, size_t inp_stride, const float *w,
                                      size_t w_stride, int B, int C, int OC)
{
    cuda_backend *c = cb(be);
    if (c->prec == NS_PREC_BF16) {
        size_t nw = (size_t)OC * C, ni = (size_t)B * C;
        if (half_room(c, (nw + ni) * (size_t)K))
            return;
        const __nv_bfloat16 *w16 = rounded_members(c, 0, w, nw, w_stride, K);
        const __nv_bfloat16 *i16 = rounded_members(c, nw * K, inp, ni, inp_stride, K);
        gemm16_sb(c, CUBLAS_OP_T, CUBLAS_OP_N, OC, B, C, w16, C, (long long)nw, i16, C,
                  (long long)ni, 0.0f, out, OC, (long long)out_stride, K, "batched matmul forward");
        return;
    }
    const float one = 1, zero = 0;
    check_blas(blas.sgemm_sb(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, B, C, &one, w, C,
                             (long long)w_stride, inp, C, (long long)inp_stride, &zero, out, OC,
                             (long long)out_stride, K),
               "batched matmul forward");
}

static void cu_matmul_backward_batched(ns_backend *be, int K, float *dinp, size_t dinp_stride,
                                       float *dw, size_t dw_stride, const float *dout,
                                       size_t dout_stride, const float *inp, size_t inp_stride,
                                       const float *w, size_t w_stride, int B, int C, int OC)
{
    cuda_backend *c = cb(be);
    if (c->prec == NS_PREC_BF16) {
        size_t nd = (size_t)B * OC, ni = (size_t)B * C, nw = (size_t)OC * C;
        if (half_room(c, (nd + ni + nw) * (size_t)K))
            return;
        const __nv_bfloat16 *d16 = rounded_members(c, 0, dout, nd, dout_stride, K);
        const __nv_bfloat16 *i16 = rounded_members(c, nd * K, inp, ni, inp_stride, K);
        gemm16_sb(c, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, B, i16, C, (long long)ni, d16, OC,
                  (long long)nd, 1.0f, dw, C, (long long)dw_stride, K,
                  "batched matmul backward (weights)");
        if (dinp) {
            const __nv_bfloat16 *w16 = rounded_members(c, (nd + ni) * K, w, nw, w_stride, K);
            gemm16_sb(c, CUBLAS_OP_N, CUBLAS_OP_N, C, B, OC, w16, C, (long long)nw, d16, OC,
                      (long long)nd, 0.0f, dinp, C, (long long)dinp_stride, K,
                      "batched matmul backward (inputs)");
        }
        return;
    }
    const float one = 1, zero = 0;
    check_blas(blas.sgemm_sb(c->blas, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, B, &one, inp, C,
                             (long long)inp_stride, dout, OC, (long long)dout_stride, &one, dw, C,
                             (long long)dw_stride, K),
               "batched matmul backward (weights)");
    if (dinp)
        check_blas(blas.sgemm_sb(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, C, B, OC, &one, w, C,
                                 (long long)w_stride, dout, OC, (long long)dout_stride, &zero,
                                 dinp, C, (long long)dinp_stride, K),
                   "batched matmul backward (inputs)");
}

/* One element of the forward pass (pre += b; out = act(pre), dropped) and of the backward
 * one (dpre = dout kept / keep x act'(pre)): the single and the member kernels share them */
__device__ static void bias_act_fwd_at(size_t i, float *out, float *pre, const float *b,
                                       ns_act act, float p, float inv_keep, uint64_t seed, int OC)
{
    float z = pre[i] + b[i % OC];
    pre[i] = z;
    float a = ns_act_value(act, z);
    if (p > 0.0f)
        a = ns_dropout_draw(seed, i) >= p ? a * inv_keep : 0.0f;
    out[i] = a;
}

__device__ static void bias_act_bwd_at(size_t i, float *dpre, const float *dout, const float *pre,
                                       ns_act act, float p, float inv_keep, uint64_t seed)
{
    float g = dout[i];
    if (p > 0.0f)
        g = ns_dropout_draw(seed, i) >= p ? g * inv_keep : 0.0f;
    dpre[i] = g * ns_act_slope(act, pre[i]);
}

static float inv_keep_of(float p) { return p > 0.0f ? 1.0f / (1.0f - p) : 1.0f; }

__global__ static void k_bias_act_fwd(float *out, float *pre, const float *b, ns_act act, float p,
                                      float inv_keep, uint64_t seed, int B, int OC)
{
    size_t n = (size_t)B * OC;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        bias_act_fwd_at(i, out, pre, b, act, p, inv_keep, seed, OC);
}

static void cu_bias_act_forward(ns_backend *be, float *out, float *pre, const float *b, ns_act act,
                                float p, uint64_t seed, int B, int OC)
{
    size_t n = (size_t)B * OC;
    if (n)
        k_bias_act_fwd<<<blocks_for(n), THREADS, 0, cb(be)->stream>>>(
            out, pre, b, act, p, inv_keep_of(p), seed, B, OC);
}

__global__ static void k_bias_act_bwd(float *dpre, const float *dout, const float *pre, ns_act act,
                                      float p, float inv_keep, uint64_t seed, int B, int OC)
{
    size_t n = (size_t)B * OC;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        bias_act_bwd_at(i, dpre, dout, pre, act, p, inv_keep, seed);
}

/* db[j] += the sum of column j of d (B rows of OC): one block a column, rows in a fixed
 * order */
__device__ static void colsum_at(int j, float *db, const float *d, int B, int OC)
{
    double v = 0;
    for (int i = threadIdx.x; i < B; i += THREADS)
        v += d[(size_t)i * OC + j];
    __shared__ double total;
    block_sum(v, &total);
    if (threadIdx.x == 0)
        db[j] += (float)total;
}

__global__ static void k_colsum(float *db, const float *d, int B, int OC)
{
    colsum_at(blockIdx.x, db, d, B, OC);
}

static void cu_bias_act_backward(ns_backend *be, float *dpre, float *db, const float *dout,
                                 const float *pre, ns_act act, float p, uint64_t seed, int B,
                                 int OC)
{
    cuda_backend *c = cb(be);
    size_t n = (size_t)B * OC;
    if (!n)
        return;
    k_bias_act_bwd<<<blocks_for(n), THREADS, 0, c->stream>>>(
        dpre, dout, pre, act, p, inv_keep_of(p), seed, B, OC);
    k_colsum<<<OC, THREADS, 0, c->stream>>>(db, dpre, B, OC);
}

/* Members' passes per launch: their arguments travel as one kernel parameter (4 KB at
 * most); blockIdx.y is the member */
#define ACT_MEMBERS 32
typedef struct act_arg {
    float *out, *pre;
    const float *b;
    float *db;
    const float *dout;
    ns_act act;
    float p, inv_keep;
    uint64_t seed;
} act_arg;
typedef struct act_members {
    act_arg m[ACT_MEMBERS];
} act_members;

__global__ static void k_bias_act_fwd_members(act_members a, int B, int OC)
{
    const act_arg &m = a.m[blockIdx.y];
    size_t n = (size_t)B * OC;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        bias_act_fwd_at(i, m.out, m.pre, m.b, m.act, m.p, m.inv_keep, m.seed, OC);
}

__global__ static void k_bias_act_bwd_members(act_members a, int B, int OC)
{
    const act_arg &m = a.m[blockIdx.y];
    size_t n = (size_t)B * OC;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        bias_act_bwd_at(i, m.out, m.dout, m.pre, m.act, m.p, m.inv_keep, m.seed);
}

__global__ static void k_colsum_members(act_members a, int B, int OC)
{
    const act_arg &m = a.m[blockIdx.y];
    colsum_at(blockIdx.x, m.db, m.out, B, OC);
}

/* The members' arguments from ns_member_act's, kn of them from in */
static act_members act_args(const ns_member_act *in, int kn)
{
    act_members a = {};
    for (int j = 0; j < kn; j++) {
        act_arg x = {in[j].out, in[j].pre, in[j].b, in[j].db, in[j].dout, in[j].act,
                     in[j].p, inv_keep_of(in[j].p), in[j].seed};
        a.m[j] = x;
    }
    return a;
}

static void cu_bias_act_forward_members(ns_backend *be, const ns_member_act *m, int K, int B,
                                        int OC)
{
    size_t n = (size_t)B * OC;
    for (int k0 = 0; k0 < K && n; k0 += ACT_MEMBERS) {
        int kn = K - k0 < ACT_MEMBERS ? K - k0 : ACT_MEMBERS;
        k_bias_act_fwd_members<<<dim3(blocks_for(n), kn), THREADS, 0, cb(be)->stream>>>(
            act_args(m + k0, kn), B, OC);
    }
}

static void cu_bias_act_backward_members(ns_backend *be, const ns_member_act *m, int K, int B,
                                         int OC)
{
    size_t n = (size_t)B * OC;
    for (int k0 = 0; k0 < K && n; k0 += ACT_MEMBERS) {
        int kn = K - k0 < ACT_MEMBERS ? K - k0 : ACT_MEMBERS;
        act_members a = act_args(m + k0, kn);
        k_bias_act_bwd_members<<<dim3(blocks_for(n), kn), THREADS, 0, cb(be)->stream>>>(a, B, OC);
        k_colsum_members<<<dim3(OC, kn), THREADS, 0, cb(be)->stream>>>(a, B, OC);
    }
}

/* ---- losses ------------------------------------------------------------------------------- */

/* per row: the loss into part-row sums (three values a block: loss, weight, hits), and the
 * gradient scaled by 1 / W, W the rows' weight sum computed by k_row_weights first */
__global__ static void k_row_weights(const int32_t *labels, const float *class_w, int B, double *part)
{
    double v = 0;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < B; i += gridDim.x * blockDim.x)
        v += class_w ? (double)class_w[labels[i]] : 1.0;
    block_sum(v, part + blockIdx.x);
}

__global__ static void k_xent(float *dlogits, const float *logits, const int32_t *labels,
                              const float *class_w, double hard, double soft, const double *Wsum,
                              int B, int C, double *part_loss, double *part_hits)
{
    double W = *Wsum, inv_W = W > 0.0 ? 1.0 / W : 0.0, Wc = 0;
    if (soft > 0)
        for (int c = 0; c < C; c++)
            Wc += class_w ? (double)class_w[c] : 1.0;
    double loss = 0, hits = 0;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < B; i += gridDim.x * blockDim.x) {
        int hit;
        loss += ns_xent_row(logits + (size_t)i * C, labels[i], C, class_w, hard, soft, Wc, inv_W,
                            dlogits ? dlogits + (size_t)i * C : NULL, &hit);
        hits += hit;
    }
    block_sum(loss, part_loss + blockIdx.x);
    block_sum(hits, part_hits + blockIdx.x);
}

static void cu_softmax_xent(ns_backend *be, double *res, float *dlogits, const float *logits,
                            const int32_t *labels, const float *class_w, float eps, int B, int C)
{
    cuda_backend *c = cb(be);
    if (!res)
        res = c->res;
    if (B < 1) {
        check(cudaMemsetAsync(res, 0, NS_RES_LOSS_N * sizeof(double), c->stream), "a loss");
        return;
    }
    /* at most MAX_BLOCKS / 2 blocks: the loss and hit partials share part */
    int nb = blocks_for((size_t)B);
    if (nb > MAX_BLOCKS / 2)
        nb = MAX_BLOCKS / 2;
    k_row_weights<<<nb, THREADS, 0, c->stream>>>(labels, class_w, B, c->part);
    k_finish<<<1, THREADS, 0, c->stream>>>(c->part, nb, res, NS_RES_WEIGHT);
    k_xent<<<nb, THREADS, 0, c->stream>>>(dlogits, logits, labels, class_w, 1.0 - (double)eps,
                                          (double)eps / C, res + NS_RES_WEIGHT, B, C, c->part,
                                          c->part + MAX_BLOCKS / 2);
    k_finish<<<1, THREADS, 0, c->stream>>>(c->part, nb, res, NS_RES_LOSS);
    k_finish<<<1, THREADS, 0, c->stream>>>(c->part + MAX_BLOCKS / 2, nb, res, NS_RES_EXTRA);
}

/* Members' cross-entropies per launch (their arguments one kernel parameter); member j's
 * partial sums at mpart + j * MAX_BLOCKS as a single loss's at part: row weights, then the
 * loss from the start and the hits from the middle. Each kernel runs member blockIdx.y's
 * blocks (blockIdx.x for the finishing ones) as the single loss's kernels run them. */
#define XENT_MEMBERS PART_MEMBERS
typedef struct xent_arg {
    double *res;
    float *dlogits;
    const float *logits;
    const int32_t *labels;
    const float *class_w;
    double hard, soft;
} xent_arg;
typedef struct xent_members {
    xent_arg m[XENT_MEMBERS];
} xent_members;

__global__ static void k_row_weights_members(xent_members a, int B, double *mpart)
{
    const xent_arg &m = a.m[blockIdx.y];
    double v = 0;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < B; i += gridDim.x * blockDim.x)
        v += m.class_w ? (double)m.class_w[m.labels[i]] : 1.0;
    block_sum(v, mpart + (size_t)blockIdx.y * MAX_BLOCKS + blockIdx.x);
}

/* res[slot] of member blockIdx.x = the sum of its n partials from offset at */
__global__ static void k_finish_xent_members(xent_members a, const double *mpart, int at, int n,
                                             int slot)
{
    const double *part = mpart + (size_t)blockIdx.x * MAX_BLOCKS + at;
    double v = 0;
    for (int i = threadIdx.x; i < n; i += THREADS)
        v += part[i];
    block_sum(v, a.m[blockIdx.x].res + slot);
}

__global__ static void k_xent_members(xent_members a, int B, int C, double *mpart)
{
    const xent_arg &m = a.m[blockIdx.y];
    double *part = mpart + (size_t)blockIdx.y * MAX_BLOCKS;
    double W = m.res[NS_RES_WEIGHT], inv_W = W > 0.0 ? 1.0 / W : 0.0, Wc = 0;
    if (m.soft > 0)
        for (int c = 0; c < C; c++)
            Wc += m.class_w ? (double)m.class_w[c] : 1.0;
    double loss = 0, hits = 0;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < B; i += gridDim.x * blockDim.x) {
        int hit;
        loss += ns_xent_row(m.logits + (size_t)i * C, m.labels[i], C, m.class_w, m.hard, m.soft,
                            Wc, inv_W, m.dlogits ? m.dlogits + (size_t)i * C : NULL, &hit);
        hits += hit;
    }
    block_sum(loss, part + blockIdx.x);
    block_sum(hits, part + MAX_BLOCKS / 2 + blockIdx.x);
}

static void cu_softmax_xent_members(ns_backend *be, const ns_member_xent *in, int K, int B, int C)
{
    cuda_backend *c = cb(be);
    int nb = blocks_for((size_t)(B > 0 ? B : 1));
    if (nb > MAX_BLOCKS / 2)
        nb = MAX_BLOCKS / 2;
    for (int k0 = 0; k0 < K; k0 += XENT_MEMBERS) {
        int kn = K - k0 < XENT_MEMBERS ? K - k0 : XENT_MEMBERS;
        if (B < 1) {
            for (int j = 0; j < kn; j++)
                check(cudaMemsetAsync(in[k0 + j].res, 0, NS_RES_LOSS_N * sizeof(double),
                                      c->stream), "a loss");
            continue;
        }
        xent_members a = {};
        for (int j = 0; j < kn; j++) {
            const ns_member_xent *x = &in[k0 + j];
            xent_arg y = {x->res, x->dlogits, x->logits, x->labels, x->class_w,
                          1.0 - (double)x->eps, (double)x->eps / C};
            a.m[j] = y;
        }
        k_row_weights_members<<<dim3(nb, kn), THREADS, 0, c->stream>>>(a, B, c->mpart);
        k_finish_xent_members<<<kn, THREADS, 0, c->stream>>>(a, c->mpart, 0, nb, NS_RES_WEIGHT);
        k_xent_members<<<dim3(nb, kn), THREADS, 0, c->stream>>>(a, B, C, c->mpart);
        k_finish_xent_members<<<kn, THREADS, 0, c->stream>>>(a, c->mpart, 0, nb, NS_RES_LOSS);
        k_finish_xent_members<<<kn, THREADS, 0, c->stream>>>(a, c->mpart, MAX_BLOCKS / 2, nb,
                                                              NS_RES_EXTRA);
    }
}

__global__ static void k_softmax(float *probs, const float *logits, int B, int C)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < B; i += gridDim.x * blockDim.x)
        ns_softmax_row(probs + (size_t)i * C, logits + (size_t)i * C, C);
}

static void cu_softmax(ns_backend *be, float *probs, const float *logits, int B, int C)
{
    if (B > 0)
        k_softmax<<<blocks_for((size_t)B), THREADS, 0, cb(be)->stream>>>(probs, logits, B, C);
}

__global__ static void k_mse(float *dpred, const float *pred, const float *target, size_t n,
                             float g, double *part)
{
    double v = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        double e = (double)pred[i] - (double)target[i];
        v += e * e;
        if (dpred)
            dpred[i] = g * (pred[i] - target[i]);
    }
    block_sum(v, part + blockIdx.x);
}

/* res[EXTRA] holds the sum of squares: the loss and weight slots from it, in double */
__global__ static void k_mse_res(double *res, int B, int K)
{
    res[NS_RES_LOSS] = res[NS_RES_EXTRA] / K;
    res[NS_RES_WEIGHT] = B;
}

static void cu_mse(ns_backend *be, double *res, float *dpred, const float *pred,
                   const float *target, int B, int K)
{
    cuda_backend *c = cb(be);
    if (!res)
        res = c->res;
    size_t n = (size_t)B * K;
    if (!n) {
        check(cudaMemsetAsync(res, 0, NS_RES_LOSS_N * sizeof(double), c->stream), "a loss");
        return;
    }
    int nb = blocks_for(n);
    k_mse<<<nb, THREADS, 0, c->stream>>>(dpred, pred, target, n, 2.0f / (float)n, c->part);
    k_finish<<<1, THREADS, 0, c->stream>>>(c->part, nb, res, NS_RES_EXTRA);
    k_mse_res<<<1, 1, 0, c->stream>>>(res, B, K);
}

/* ---- optimizer updates: cpu_optim.c's loops, one thread an element ------------------------ */
/* Each writes its gradient's sum of squares to res[0] (the backend's own slot when res is
 * NULL); a gated update (its step's loss not finite, backend.h) touches nothing and sums 0.
 * A member update (ns_op_update_members) runs the same per-element code over the same
 * element-to-thread assignment, so its bits are a single update's. */

__device__ static bool gated(const double *gate) { return gate && !isfinite(*gate); }

/* One update's arguments as the kernels take them, formed on the host as the single ops
 * form them (the float constants from the doubles, in double). */
typedef struct upd_args {
    int kind;                   /* ns_update_kind */
    float *p, *m, *v;
    const float *g;
    size_t n;
    int nb;                     /* blocks: blocks_for(n) */
    float lr, mu, wd, eps;
    float b1, c1, b2, c2, decay, step, inv_bc2s; /* adam */
    float alpha, cc;            /* rmsprop */
    int has_wd, has_mu, nesterov;
    const double *gate;
    double *res;
} upd_args;

static upd_args upd_sgd(float *p, float *buf, const float *g, size_t n, float lr, float mu,
                        float wd, int nesterov)
{
    upd_args a = {};
    a.kind = NS_UPD_SGD, a.p = p, a.m = buf, a.g = g, a.n = n, a.lr = lr, a.mu = mu, a.wd = wd;
    a.has_wd = wd != 0.0f, a.has_mu = mu != 0.0f, a.nesterov = nesterov;
    return a;
}

static upd_args upd_adam(float *p, float *m, float *v, const float *g, size_t n, float lr,
                         double b1, double b2, float eps, float wd, double bc1, double bc2,
                         int decoupled)
{
    upd_args a = {};
    a.kind = NS_UPD_ADAM, a.p = p, a.m = m, a.v = v, a.g = g, a.n = n, a.eps = eps, a.wd = wd;
    a.b1 = (float)b1, a.c1 = (float)(1.0 - b1), a.b2 = (float)b2, a.c2 = (float)(1.0 - b2);
    a.step = (float)((double)lr / bc1);
    a.inv_bc2s = (float)(1.0 / sqrt(bc2));
    a.has_wd = !decoupled && wd != 0.0f;
    a.decay = a.has_wd ? 1.0f : decoupled ? (float)(1.0 - (double)lr * (double)wd) : 1.0f;
    return a;
}

static upd_args upd_rmsprop(float *p, float *v, float *buf, const float *g, size_t n, float lr,
                            double alpha, float eps, float wd, float mu)
{
    upd_args a = {};
    a.kind = NS_UPD_RMSPROP, a.p = p, a.v = v, a.m = buf, a.g = g, a.n = n, a.lr = lr;
    a.alpha = (float)alpha, a.cc = (float)(1.0 - alpha), a.eps = eps, a.wd = wd, a.mu = mu;
    a.has_wd = wd != 0.0f, a.has_mu = mu > 0.0f;
    return a;
}

/* The update of elements first, first + stride, ... of a; returns their gradients' sum of
 * squares. The intrinsics (_rn: round to nearest, no contraction into FMA) keep each
 * operation rounded as the CPU's, which compiles without FMA contraction. */
__device__ static double upd_range(const upd_args &a, size_t first, size_t stride)
{
    double gsq = 0;
    if (gated(a.gate))
        return 0;
    for (size_t i = first; i < a.n; i += stride) {
        float gi = a.g[i];
        gsq += (double)gi * gi;
        if (a.kind == NS_UPD_SGD) {
            float d = a.has_wd ? __fadd_rn(gi, __fmul_rn(a.wd, a.p[i])) : gi;
            if (a.has_mu) {
                float b = __fadd_rn(__fmul_rn(a.mu, a.m[i]), d);
                a.m[i] = b;
                d = a.nesterov ? __fadd_rn(d, __fmul_rn(a.mu, b)) : b;
            }
            a.p[i] = __fsub_rn(a.p[i], __fmul_rn(a.lr, d));
        } else if (a.kind == NS_UPD_ADAM) {
            float x = __fmul_rn(a.p[i], a.decay);
            float d = a.has_wd ? __fadd_rn(gi, __fmul_rn(a.wd, x)) : gi;
            float mi = __fadd_rn(__fmul_rn(a.m[i], a.b1), __fmul_rn(a.c1, d));
            float vi = __fadd_rn(__fmul_rn(a.v[i], a.b2), __fmul_rn(__fmul_rn(a.c2, d), d));
            a.m[i] = mi;
            a.v[i] = vi;
            float denom = __fadd_rn(__fmul_rn(__fsqrt_rn(vi), a.inv_bc2s), a.eps);
            a.p[i] = __fsub_rn(x, __fdiv_rn(__fmul_rn(a.step, mi), denom));
        } else {
            float d = a.has_wd ? __fadd_rn(gi, __fmul_rn(a.wd, a.p[i])) : gi;
            float vi = __fadd_rn(__fmul_rn(a.v[i], a.alpha), __fmul_rn(__fmul_rn(a.cc, d), d));
            a.v[i] = vi;
            float avg = __fadd_rn(__fsqrt_rn(vi), a.eps);
            if (a.has_mu) {
                float b = __fadd_rn(__fmul_rn(a.m[i], a.mu), __fdiv_rn(d, avg));
                a.m[i] = b;
                a.p[i] = __fsub_rn(a.p[i], __fmul_rn(a.lr, b));
            } else {
                a.p[i] = __fsub_rn(a.p[i], __fdiv_rn(__fmul_rn(a.lr, d), avg));
            }
        }
    }
    return gsq;
}

__global__ static void k_update(upd_args a, double *part)
{
    double gsq = upd_range(a, blockIdx.x * (size_t)blockDim.x + threadIdx.x,
                           (size_t)gridDim.x * blockDim.x);
    block_sum(gsq, part + blockIdx.x);
}

/* One update through k_update and k_finish; its sum of squares to res, or the backend's
 * own slot */
static void update(cuda_backend *c, upd_args a, double *res)
{
    if (!res)
        res = c->res;
    if (!a.n) {
        check(cudaMemsetAsync(res, 0, sizeof(double), c->stream), "an update");
        return;
    }
    int nb = blocks_for(a.n);
    k_update<<<nb, THREADS, 0, c->stream>>>(a, c->part);
    k_finish<<<1, THREADS, 0, c->stream>>>(c->part, nb, res, 0);
}

static void cu_sgd(ns_backend *be, double *res, const double *gate, float *p, float *buf,
                   const float *g, size_t n, float lr, float mu, float wd, int nesterov)
{
    upd_args a = upd_sgd(p, buf, g, n, lr, mu, wd, nesterov);
    a.gate = gate;
    update(cb(be), a, res);
}

static void cu_adam(ns_backend *be, double *res, const double *gate, float *p, float *m,
                    float *v, const float *g, size_t n, float lr, double b1, double b2, float eps,
                    float wd, double bc1, double bc2, int decoupled)
{
    upd_args a = upd_adam(p, m, v, g, n, lr, b1, b2, eps, wd, bc1, bc2, decoupled);
    a.gate = gate;
    update(cb(be), a, res);
}

static void cu_rmsprop(ns_backend *be, double *res, const double *gate, float *p, float *v,
                       float *buf, const float *g, size_t n, float lr, double alpha, float eps,
                       float wd, float mu)
{
    upd_args a = upd_rmsprop(p, v, buf, g, n, lr, alpha, eps, wd, mu);
    a.gate = gate;
    update(cb(be), a, res);
}

/* Members' updates per launch: their arguments travel as one kernel parameter, which may
 * not pass 4 KB */
#define LAUNCH_MEMBERS PART_MEMBERS
typedef struct upd_members {
    upd_args u[LAUNCH_MEMBERS];
} upd_members;

/* Member blockIdx.y's blocks as k_update would run them (blocks beyond its own count have
 * nothing to do); partial sums at mpart + member * MAX_BLOCKS */
__global__ static void k_update_members(upd_members a, double *mpart)
{
    const upd_args &u = a.u[blockIdx.y];
    if (blockIdx.x >= (unsigned)u.nb)
        return; /* the whole block returns, so none of it waits in block_sum */
    double gsq = upd_range(u, blockIdx.x * (size_t)blockDim.x + threadIdx.x,
                           (size_t)u.nb * blockDim.x);
    block_sum(gsq, mpart + (size_t)blockIdx.y * MAX_BLOCKS + blockIdx.x);
}

/* k_finish for member blockIdx.x: the same sum in the same order; where its res is NULL,
 * into mpart's spare last slot */
__global__ static void k_finish_members(upd_members a, double *mpart)
{
    const upd_args &u = a.u[blockIdx.x];
    const double *part = mpart + (size_t)blockIdx.x * MAX_BLOCKS;
    double v = 0;
    for (int i = threadIdx.x; i < u.nb; i += THREADS)
        v += part[i];
    block_sum(v, u.res ? u.res : mpart + (size_t)blockIdx.x * MAX_BLOCKS + MAX_BLOCKS - 1);
}

static void cu_update_members(ns_backend *be, const ns_member_update *in, int K)
{
    cuda_backend *c = cb(be);
    for (int k0 = 0; k0 < K; k0 += LAUNCH_MEMBERS) {
        int kn = K - k0 < LAUNCH_MEMBERS ? K - k0 : LAUNCH_MEMBERS, nb_max = 1;
        upd_members a = {};
        for (int j = 0; j < kn; j++) {
            const ns_member_update *u = &in[k0 + j];
            upd_args *x = &a.u[j];
            switch (u->kind) {
            case NS_UPD_SGD:
                *x = upd_sgd(u->p, u->m, u->g, u->n, u->lr, u->mu, u->wd, u->nesterov);
                break;
            case NS_UPD_ADAM:
                *x = upd_adam(u->p, u->m, u->v, u->g, u->n, u->lr, u->b1, u->b2, u->eps, u->wd,
                              u->bc1, u->bc2, u->decoupled);
                break;
            case NS_UPD_RMSPROP:
                *x = upd_rmsprop(u->p, u->v, u->m, u->g, u->n, u->lr, u->alpha, u->eps, u->wd,
                                 u->mu);
                break;
            }
            x->gate = u->gate;
            x->res = u->res;
            x->nb = u->n ? blocks_for(u->n) : 0; /* no blocks: k_finish_members sums nothing */
            if (x->nb > nb_max)
                nb_max = x->nb;
        }
        k_update_members<<<dim3(nb_max, kn), THREADS, 0, c->stream>>>(a, c->mpart);
        k_finish_members<<<kn, THREADS, 0, c->stream>>>(a, c->mpart);
    }
}

static const ns_backend_ops cuda_ops = {
    "cuda",              /* name */
    0,                   /* is_host */
    cu_destroy,
    cu_alloc,
    cu_free,
    cu_upload,
    cu_download,
    cu_copy,
    cu_gather_rows,
    cu_gather_labels,
    cu_zero,
    cu_scale,
    cu_sumsq,
    cu_all_finite,
    cu_matmul_forward,
    cu_matmul_backward,
    cu_matmul_forward_batched,
    cu_matmul_backward_batched,
    cu_bias_act_forward,
    cu_bias_act_backward,
    cu_softmax_xent,
    cu_softmax,
    cu_mse,
    cu_sgd,
    cu_adam,
    cu_rmsprop,
    cu_update_members,
    cu_bias_act_forward_members,
    cu_bias_act_backward_members,
    cu_softmax_xent_members,
    cu_batch_members,
};

/* ---- the public part (cuda.h) -------------------------------------------------------------- */

extern "C" int ns_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* no driver or no device: not an error of a later call */
        return 0;
    }
    return n;
}

extern "C" int ns_cuda_describe(int device, char *out, size_t cap)
{
    cudaDeviceProp pr;
    if (cudaGetDeviceProperties(&pr, device) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    snprintf(out, cap, "%s, %.0f GiB, compute %d.%d", pr.name,
             (double)pr.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), pr.major, pr.minor);
    return 0;
}

extern "C" int ns_cuda_compiled(void) { return 1; }

extern "C" ns_backend *ns_backend_cuda_alloc(int device, ns_precision prec, ns_err *err)
{
    int n = ns_cuda_device_count();
    if (n < 1) {
        ns_err_set(err, NS_EINPUT, "device cuda: no NVIDIA GPU answers (the CUDA driver finds "
                   "none); use --device cpu or auto");
        return NULL;
    }
    if (device < 0 || device >= n) {
        ns_err_set(err, NS_EINPUT, "device cuda: GPU %d does not exist (this machine has %d)",
                   device, n);
        return NULL;
    }
    cuda_backend *c = (cuda_backend *)calloc(1, sizeof *c);
    if (!c) {
        ns_err_set(err, NS_ERUNTIME, "out of memory allocating the CUDA backend");
        return NULL;
    }
    c->base.ops = &cuda_ops;
    c->base.threads = 1;
    c->device = device;
    c->prec = prec;
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess)
        e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess)
        e = cudaMalloc((void **)&c->part, MAX_BLOCKS * sizeof(double));
    if (e == cudaSuccess)
        e = cudaMalloc((void **)&c->mpart, PART_MEMBERS * MAX_BLOCKS * sizeof(double));
    if (e == cudaSuccess)
        e = cudaMalloc((void **)&c->res, 4 * sizeof(double));
    if (e == cudaSuccess)
        e = cudaMallocHost((void **)&c->host, 4 * sizeof(double));
    if (e != cudaSuccess) {
        ns_err_set(err, NS_ERUNTIME, "device cuda: %s", cudaGetErrorString(e));
        cudaGetLastError();
        cu_destroy(&c->base);
        return NULL;
    }
    c->base.res = c->res;
    c->base.res_host = c->host;
    pthread_once(&blas_once, blas_load);
    if (!blas_ok) {
        ns_err_set(err, NS_ERUNTIME, "device cuda: %s", blas_why);
        cu_destroy(&c->base);
        return NULL;
    }
    cublasStatus_t s = blas.create(&c->blas);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = blas.set_stream(c->blas, c->stream);
    /* fp32 GEMMs stay fp32: TF32 tensor-core rounding only when asked for */
    if (s == CUBLAS_STATUS_SUCCESS)
        s = blas.set_math_mode(c->blas, prec == NS_PREC_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                             : CUBLAS_DEFAULT_MATH);
    if (s != CUBLAS_STATUS_SUCCESS) {
        ns_err_set(err, NS_ERUNTIME, "device cuda: cuBLAS failed to start (status %d)", (int)s);
        c->blas = NULL;
        cu_destroy(&c->base);
        return NULL;
    }
    return &c->base;
}
