/* cuda_layers.cu — the CUDA backend's dense layers (row-major products as cuBLAS's
 * column-major ones, fp32, tf32 or bf16 inputs; batched for K members), fused bias +
 * activation forward and backward with dropout, and the losses (softmax cross-entropy,
 * MSE), single and for K members at once, each with the CPU backend's formulas and a fixed
 * reduction order. Not the optimizer updates (cuda_optim.cu) or the set-up (backend_cuda.cu). */
#include "engine/cuda/cuda_impl.h"

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
    ns_cu_check(cudaStreamSynchronize(c->stream), "growing the bf16 scratch");
    cudaFree(c->half);
    c->half = NULL;
    c->half_cap = 0;
    if (cudaMalloc((void **)&c->half, n * sizeof *c->half) != cudaSuccess) {
        ns_cu_check(cudaErrorMemoryAllocation, "the bf16 scratch");
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
    ns_cu_check_blas(ns_cu_blas.gemm_ex(c->blas, ta, tb, m, n, k, &one, A, CUDA_R_16BF, lda, Bm, CUDA_R_16BF,
                            ldb, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               what);
}

void cu_matmul_forward(ns_backend *be, float *out, const float *inp, const float *w,
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
    ns_cu_check_blas(ns_cu_blas.sgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, B, C, &one, w, C, inp, C,
                           &zero, out, OC), "matmul forward");
}

void cu_matmul_backward(ns_backend *be, float *dinp, float *dw, const float *dout,
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
    ns_cu_check_blas(ns_cu_blas.sgemm(cb(be)->blas, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, B, &one, inp, C, dout,
                           OC, &one, dw, C), "matmul backward (weights)");
    /* dinp (B, C) = dout w: column-major dinp^T (C x B) = w^T (C x OC) dout^T (OC x B) */
    if (dinp)
        ns_cu_check_blas(ns_cu_blas.sgemm(cb(be)->blas, CUBLAS_OP_N, CUBLAS_OP_N, C, B, OC, &one, w, C, dout,
                               OC, &zero, dinp, C), "matmul backward (inputs)");
}

/* ---- the same products for K members at once (trials trained together) ------------------ */

static void gemm16_sb(cuda_backend *c, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                      int k, const __nv_bfloat16 *A, int lda, long long sa, const __nv_bfloat16 *Bm,
                      int ldb, long long sb, float beta, float *C, int ldc, long long sc, int K,
                      const char *what)
{
    const float one = 1;
    ns_cu_check_blas(ns_cu_blas.gemm_sb_ex(c->blas, ta, tb, m, n, k, &one, A, CUDA_R_16BF, lda, sa, Bm,
                               CUDA_R_16BF, ldb, sb, &beta, C, CUDA_R_32F, ldc, sc, K,
                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               what);
}

/* The single-member products above, K at a time: the same transposes, one launch. */
void cu_matmul_forward_batched(ns_backend *be, int K, float *out, size_t out_stride,
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
    ns_cu_check_blas(ns_cu_blas.sgemm_sb(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, B, C, &one, w, C,
                             (long long)w_stride, inp, C, (long long)inp_stride, &zero, out, OC,
                             (long long)out_stride, K),
               "batched matmul forward");
}

void cu_matmul_backward_batched(ns_backend *be, int K, float *dinp, size_t dinp_stride,
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
    ns_cu_check_blas(ns_cu_blas.sgemm_sb(c->blas, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, B, &one, inp, C,
                             (long long)inp_stride, dout, OC, (long long)dout_stride, &one, dw, C,
                             (long long)dw_stride, K),
               "batched matmul backward (weights)");
    if (dinp)
        ns_cu_check_blas(ns_cu_blas.sgemm_sb(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, C, B, OC, &one, w, C,
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
    dpre[i] = ns_act_backward(act, pre[i], g);
}

static float inv_keep_of(float p) { return p > 0.0f ? 1.0f / (1.0f - p) : 1.0f; }

__global__ static void k_bias_act_fwd(float *out, float *pre, const float *b, ns_act act, float p,
                                      float inv_keep, uint64_t seed, int B, int OC)
{
    size_t n = (size_t)B * OC;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        bias_act_fwd_at(i, out, pre, b, act, p, inv_keep, seed, OC);
}

void cu_bias_act_forward(ns_backend *be, float *out, float *pre, const float *b, ns_act act,
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

void cu_bias_act_backward(ns_backend *be, float *dpre, float *db, const float *dout,
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

void cu_bias_act_forward_members(ns_backend *be, const ns_member_act *m, int K, int B,
                                        int OC)
{
    size_t n = (size_t)B * OC;
    for (int k0 = 0; k0 < K && n; k0 += ACT_MEMBERS) {
        int kn = K - k0 < ACT_MEMBERS ? K - k0 : ACT_MEMBERS;
        k_bias_act_fwd_members<<<dim3(blocks_for(n), kn), THREADS, 0, cb(be)->stream>>>(
            act_args(m + k0, kn), B, OC);
    }
}

void cu_bias_act_backward_members(ns_backend *be, const ns_member_act *m, int K, int B,
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

void cu_softmax_xent(ns_backend *be, double *res, float *dlogits, const float *logits,
                            const int32_t *labels, const float *class_w, float eps, int B, int C)
{
    cuda_backend *c = cb(be);
    if (!res)
        res = c->res;
    if (B < 1) {
        ns_cu_check(cudaMemsetAsync(res, 0, NS_RES_LOSS_N * sizeof(double), c->stream), "a loss");
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

void cu_softmax_xent_members(ns_backend *be, const ns_member_xent *in, int K, int B, int C)
{
    cuda_backend *c = cb(be);
    int nb = blocks_for((size_t)(B > 0 ? B : 1));
    if (nb > MAX_BLOCKS / 2)
        nb = MAX_BLOCKS / 2;
    for (int k0 = 0; k0 < K; k0 += XENT_MEMBERS) {
        int kn = K - k0 < XENT_MEMBERS ? K - k0 : XENT_MEMBERS;
        if (B < 1) {
            for (int j = 0; j < kn; j++)
                ns_cu_check(cudaMemsetAsync(in[k0 + j].res, 0, NS_RES_LOSS_N * sizeof(double),
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

void cu_softmax(ns_backend *be, float *probs, const float *logits, int B, int C)
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

void cu_mse(ns_backend *be, double *res, float *dpred, const float *pred,
                   const float *target, int B, int K)
{
    cuda_backend *c = cb(be);
    if (!res)
        res = c->res;
    size_t n = (size_t)B * K;
    if (!n) {
        ns_cu_check(cudaMemsetAsync(res, 0, NS_RES_LOSS_N * sizeof(double), c->stream), "a loss");
        return;
    }
    int nb = blocks_for(n);
    k_mse<<<nb, THREADS, 0, c->stream>>>(dpred, pred, target, n, 2.0f / (float)n, c->part);
    k_finish<<<1, THREADS, 0, c->stream>>>(c->part, nb, res, NS_RES_EXTRA);
    k_mse_res<<<1, 1, 0, c->stream>>>(res, B, K);
}

