/* backend_cuda.cu — the CUDA backend: the op table of backend_impl.h on an NVIDIA GPU.
 * GEMMs through cuBLAS in fp32 (no TF32: the default math mode), or with train.precision
 * tf32 (tensor cores on fp32 data) or bf16 (inputs rounded to bfloat16 into a scratch
 * buffer, fp32 sums, fp32 outputs: the weights stay fp32), everything else as one
 * kernel per op with the CPU backend's formulas (dropout from the same counter-based
 * hash, optimizer updates in torch.optim's order). Each backend owns a stream and a cuBLAS
 * handle, so the trial pool's workers can share one GPU. Reductions (sums of squares,
 * losses, correct counts) go through a fixed two-pass tree, so a run gives the same bits
 * every time on the same GPU; the ops that return a scalar wait for the stream.
 * Here: cuBLAS's loading, memory, batches, the elementwise ops, the op table and the
 * public part; the layers' and losses' kernels are in cuda_layers.cu, the optimizer
 * updates in cuda_optim.cu. Not the factory (backend.c chooses a backend) and not the
 * trainer. */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>

#include "engine/cuda/cuda_impl.h"

/* cuBLAS is opened when the first CUDA backend is made, not linked: its two libraries are
 * a few hundred MB that every process would map at start (0.4 s and 220 MB of resident
 * memory for `nnsearch --help`), though most runs never touch a GPU. */
blas_fns ns_cu_blas;
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
    *(void **)&ns_cu_blas.create = dlsym(h, "cublasCreate_v2");
    *(void **)&ns_cu_blas.destroy = dlsym(h, "cublasDestroy_v2");
    *(void **)&ns_cu_blas.set_stream = dlsym(h, "cublasSetStream_v2");
    *(void **)&ns_cu_blas.set_math_mode = dlsym(h, "cublasSetMathMode");
    *(void **)&ns_cu_blas.sgemm = dlsym(h, "cublasSgemm_v2");
    *(void **)&ns_cu_blas.gemm_ex = dlsym(h, "cublasGemmEx");
    *(void **)&ns_cu_blas.sgemm_sb = dlsym(h, "cublasSgemmStridedBatched");
    *(void **)&ns_cu_blas.gemm_sb_ex = dlsym(h, "cublasGemmStridedBatchedEx");
    if (!ns_cu_blas.create || !ns_cu_blas.destroy || !ns_cu_blas.set_stream || !ns_cu_blas.set_math_mode || !ns_cu_blas.sgemm ||
        !ns_cu_blas.gemm_ex || !ns_cu_blas.sgemm_sb || !ns_cu_blas.gemm_sb_ex) {
        snprintf(blas_why, sizeof blas_why, "%s lacks the cuBLAS functions this build uses",
                 names[0]);
        return;
    }
    blas_ok = 1;
}

/* A CUDA call that fails in an op has no error path (ops return nothing or a number):
 * report it once and remember it; ns_cuda_failed says whether anything failed, and the
 * trainer's all_finite checks then see NaN (losses are returned as NaN). */
static int failed_flag;
void ns_cu_check(cudaError_t e, const char *what)
{
    if (e != cudaSuccess && !failed_flag) {
        failed_flag = 1;
        fprintf(stderr, "nnsearch: cuda: %s: %s\n", what, cudaGetErrorString(e));
    }
}
void ns_cu_check_blas(cublasStatus_t s, const char *what)
{
    if (s != CUBLAS_STATUS_SUCCESS && !failed_flag) {
        failed_flag = 1;
        fprintf(stderr, "nnsearch: cuda: %s: cuBLAS status %d\n", what, (int)s);
    }
}
extern "C" int ns_cuda_failed(void) { return failed_flag; }

/* A kernel that could not be launched (no image for this GPU, a bad configuration) says
 * so only in the thread's last error, which neither the stream nor a copy reports: every
 * point where results are read or memory changes hands asks for it first. */
static void check_launches(void)
{
    ns_cu_check(cudaGetLastError(), "launching a kernel");
}

/* Waits for the stream and returns the results res[0..k); NaN once the GPU failed, as
 * cu_download's, so that a figure read after a failure is never a stale finite one. */
static const double *read_back(cuda_backend *c, int k)
{
    check_launches();
    ns_cu_check(cudaMemcpyAsync(c->host, c->res, (size_t)k * sizeof(double), cudaMemcpyDeviceToHost,
                          c->stream), "reading a result");
    ns_cu_check(cudaStreamSynchronize(c->stream), "waiting for the GPU");
    if (failed_flag)
        for (int i = 0; i < k; i++)
            c->host[i] = NAN;
    return c->host;
}

/* ---- memory ------------------------------------------------------------------------------ */

static void cu_destroy(ns_backend *be)
{
    cuda_backend *c = cb(be);
    cudaSetDevice(c->device);
    if (c->blas)
        ns_cu_blas.destroy(c->blas);
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
    check_launches(); /* before the clearing below can swallow a launch's error */
    if (cudaMalloc(&p, n) != cudaSuccess) {
        cudaGetLastError(); /* out of memory is the caller's NULL, not a sticky failure */
        return NULL;
    }
    /* zeroed, as the CPU backend's, before anyone reads it */
    ns_cu_check(cudaMemsetAsync(p, 0, n, c->stream), "zeroing a buffer");
    ns_cu_check(cudaStreamSynchronize(c->stream), "zeroing a buffer");
    return p;
}

static void cu_free(ns_backend *be, void *p)
{
    cuda_backend *c = cb(be);
    ns_cu_check(cudaStreamSynchronize(c->stream), "freeing a buffer");
    ns_cu_check(cudaFree(p), "freeing a buffer");
}

static void cu_upload(ns_backend *be, void *dst, const void *src, size_t bytes)
{
    cuda_backend *c = cb(be);
    if (!bytes)
        return;
    /* synchronous: the caller may reuse src at once */
    ns_cu_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream), "upload");
    ns_cu_check(cudaStreamSynchronize(c->stream), "upload");
}

static void cu_download(ns_backend *be, void *dst, const void *src, size_t bytes)
{
    cuda_backend *c = cb(be);
    if (!bytes)
        return;
    check_launches();
    ns_cu_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream), "download");
    ns_cu_check(cudaStreamSynchronize(c->stream), "download");
    if (failed_flag) /* every bit set: NaN as float or double, so a loss read here diverges */
        memset(dst, 0xff, bytes);
}

static void cu_copy(ns_backend *be, void *dst, const void *src, size_t bytes)
{
    cuda_backend *c = cb(be);
    if (dst != src && bytes)
        ns_cu_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream), "copy");
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
        ns_cu_check(cudaMemsetAsync(x, 0, n * sizeof *x, cb(be)->stream), "zero");
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
    cublasStatus_t s = ns_cu_blas.create(&c->blas);
    if (s != CUBLAS_STATUS_SUCCESS)
        c->blas = NULL; /* no handle to destroy; one made before a later failure is */
    if (s == CUBLAS_STATUS_SUCCESS)
        s = ns_cu_blas.set_stream(c->blas, c->stream);
    /* fp32 GEMMs stay fp32: TF32 tensor-core rounding only when asked for */
    if (s == CUBLAS_STATUS_SUCCESS)
        s = ns_cu_blas.set_math_mode(c->blas, prec == NS_PREC_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                             : CUBLAS_DEFAULT_MATH);
    if (s != CUBLAS_STATUS_SUCCESS) {
        ns_err_set(err, NS_ERUNTIME, "device cuda: cuBLAS failed to start (status %d)", (int)s);
        cu_destroy(&c->base);
        return NULL;
    }
    return &c->base;
}
