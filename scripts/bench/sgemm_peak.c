/* sgemm_peak: single-thread OpenBLAS sgemm speed at the GEMM shapes of one training step
 * of the 784-256-128-10 MLP, and at a large square size; the best rate is the "peak" that
 * scripts/bench/trainer divides by. A benchmark helper, not part of nnsearch: it links
 * nothing of the project and is compiled by the script with plain cc.
 *
 * Usage: sgemm_peak [BATCH ...]   (default 32 128)
 * Output, one record per line, key=value tokens (parsed by scripts/bench/trainer):
 *   openblas corename=NAME parallel=N config="..."
 *   shape batch=B layer=L op=fwd|dW|dX m=M n=N k=K ta=N|T tb=N|T gflops=G us=T
 *   step batch=B gemm_us=T flops=F gemm_ceiling_sps=S   (all GEMMs of one step, back to back)
 *   square size=1024 gflops=G
 *   peak gflops=G
 */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { N_LAYERS = 3, SQUARE = 1024, MAX_BATCHES = 16 };
static const int layer_dims[N_LAYERS + 1] = {784, 256, 128, 10};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 64-byte aligned buffer of n floats filled with values in [-1, 1) from a fixed LCG state;
 * caller frees. Returns NULL on allocation failure. */
static float *matrix_alloc(size_t n, uint64_t *rng)
{
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes);
    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        *rng = *rng * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = (float)((double)(*rng >> 40) / (double)(1ULL << 24) * 2.0 - 1.0);
    }
    return p;
}

typedef struct {
    enum CBLAS_TRANSPOSE ta, tb;
    int m, n, k;
    const float *a, *b;
    float *c;
} gemm_case;

static void gemm_run(const gemm_case *g)
{
    int lda = g->ta == CblasNoTrans ? g->k : g->m;
    int ldb = g->tb == CblasNoTrans ? g->n : g->k;
    cblas_sgemm(CblasRowMajor, g->ta, g->tb, g->m, g->n, g->k, 1.0f, g->a, lda, g->b, ldb,
                0.0f, g->c, g->n);
}

/* Best time of one call, in seconds: calls are grouped in blocks of >= 20 ms (so the
 * clock's resolution does not matter) and the fastest of 7 blocks is kept; the operands
 * stay warm in cache between calls, as the weights do during training. */
static double gemm_time(const gemm_case *g)
{
    for (int i = 0; i < 3; i++)
        gemm_run(g);
    int reps = 1;
    for (;;) {
        double t0 = now_s();
        for (int i = 0; i < reps; i++)
            gemm_run(g);
        if (now_s() - t0 >= 0.02)
            break;
        reps *= 2;
    }
    double best = 1e30;
    for (int blk = 0; blk < 7; blk++) {
        double t0 = now_s();
        for (int i = 0; i < reps; i++)
            gemm_run(g);
        double t = (now_s() - t0) / reps;
        if (t < best)
            best = t;
    }
    return best;
}

static char trans_char(enum CBLAS_TRANSPOSE t) { return t == CblasNoTrans ? 'N' : 'T'; }

static double gemm_report(const gemm_case *g, int batch, int layer, const char *op,
                          double *peak)
{
    double t = gemm_time(g);
    double gflops = 2.0 * g->m * g->n * g->k / t * 1e-9;
    printf("shape batch=%d layer=%d op=%s m=%d n=%d k=%d ta=%c tb=%c gflops=%.2f us=%.2f\n",
           batch, layer, op, g->m, g->n, g->k, trans_char(g->ta), trans_char(g->tb), gflops,
           t * 1e6);
    fflush(stdout);
    if (gflops > *peak)
        *peak = gflops;
    return t;
}

int main(int argc, char **argv)
{
    int batches[MAX_BATCHES], n_batches = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        long b = strtol(argv[i], &end, 10);
        if (*end || b < 1 || b > 65536 || n_batches == MAX_BATCHES) {
            fprintf(stderr, "sgemm_peak: bad batch size '%s' (1..65536, at most %d)\n",
                    argv[i], MAX_BATCHES);
            return 2;
        }
        batches[n_batches++] = (int)b;
    }
    if (n_batches == 0) {
        batches[n_batches++] = 32;
        batches[n_batches++] = 128;
    }

    openblas_set_num_threads(1);
    char *config = openblas_get_config();
    printf("openblas corename=%s parallel=%d threads=%d config=\"%s\"\n",
           openblas_get_corename(), openblas_get_parallel(), openblas_get_num_threads(),
           config ? config : "");

    int max_batch = 0;
    for (int i = 0; i < n_batches; i++)
        if (batches[i] > max_batch)
            max_batch = batches[i];
    /* One set of buffers big enough for every shape: activations (B, 784), weights
     * (784, 256), and an output (1024, 1024) that also covers the square case. */
    size_t act = (size_t)max_batch * layer_dims[0];
    size_t sq = (size_t)SQUARE * SQUARE;
    size_t big = act > sq ? act : sq;
    uint64_t rng = 42;
    float *x = matrix_alloc(big, &rng), *dy = matrix_alloc(big, &rng);
    float *w = matrix_alloc(big, &rng), *out = matrix_alloc(big, &rng);
    if (!x || !dy || !w || !out) {
        fprintf(stderr, "sgemm_peak: out of memory\n");
        return 1;
    }

    double peak = 0.0;
    for (int bi = 0; bi < n_batches; bi++) {
        int B = batches[bi];
        double step_s = 0.0, step_flops = 0.0;
        for (int l = 0; l < N_LAYERS; l++) {
            int in = layer_dims[l], o = layer_dims[l + 1];
            /* Row-major, W stored (out, in). Forward Y(B,o) = X(B,in) W^T. */
            gemm_case fwd = {CblasNoTrans, CblasTrans, B, o, in, x, w, out};
            /* Weight gradient dW(o,in) = dY^T(o,B) X(B,in). */
            gemm_case dw = {CblasTrans, CblasNoTrans, o, in, B, dy, x, out};
            /* Input gradient dX(B,in) = dY(B,o) W(o,in); not needed for the first layer. */
            gemm_case dx = {CblasNoTrans, CblasNoTrans, B, in, o, dy, w, out};
            step_s += gemm_report(&fwd, B, l + 1, "fwd", &peak);
            step_s += gemm_report(&dw, B, l + 1, "dW", &peak);
            step_flops += 4.0 * B * in * o;
            if (l > 0) {
                step_s += gemm_report(&dx, B, l + 1, "dX", &peak);
                step_flops += 2.0 * B * in * o;
            }
        }
        printf("step batch=%d gemm_us=%.2f flops=%.0f gemm_ceiling_sps=%.0f\n", B,
               step_s * 1e6, step_flops, B / step_s);
    }

    gemm_case sqc = {CblasNoTrans, CblasNoTrans, SQUARE, SQUARE, SQUARE, x, w, out};
    double t = gemm_time(&sqc);
    double gflops = 2.0 * SQUARE * (double)SQUARE * SQUARE / t * 1e-9;
    printf("square size=%d gflops=%.2f\n", SQUARE, gflops);
    if (gflops > peak)
        peak = gflops;
    printf("peak gflops=%.2f\n", peak);

    free(x);
    free(dy);
    free(w);
    free(out);
    return 0;
}
