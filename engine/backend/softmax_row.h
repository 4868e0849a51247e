/* softmax_row.h — one row of the softmax, and of the softmax cross-entropy with label
 * smoothing and class weights (the row's loss term and, when asked, its gradient). Both
 * backends call them (the CPU loops in backend_cpu.c, the CUDA kernels in
 * engine/cuda/backend_cuda.cu), so that they compute one formula in one order and differ
 * only in how the rows' terms are summed. */
#ifndef NS_SOFTMAX_ROW_H
#define NS_SOFTMAX_ROW_H

#include <math.h>

#ifdef __CUDACC__
#define NS_HOST_DEVICE __host__ __device__
#else
#define NS_HOST_DEVICE
#endif

/* p: the row's C probabilities from its C logits z, in double before rounding to float. */
static inline NS_HOST_DEVICE void ns_softmax_row(float *p, const float *z, int C)
{
    float zmax = z[0];
    for (int c = 1; c < C; c++)
        zmax = z[c] > zmax ? z[c] : zmax;
    double se = 0.0;
    for (int c = 0; c < C; c++)
        se += exp((double)(z[c] - zmax));
    for (int c = 0; c < C; c++)
        p[c] = (float)(exp((double)(z[c] - zmax)) / se);
}

/* z: the row's C logits, y its label; class_w: NULL or the C class weights; hard = 1 - eps
 * and soft = eps / C (label smoothing eps); Wc: the sum of the class weights (C without
 * them); inv_W: 1 / the batch's sum of row weights. Returns the row's loss
 * -hard w_y log p_y - soft sum_c w_c log p_c (in nats, not yet divided by that sum);
 * *hit: 1 when the largest logit (the first on ties) is y's. d: NULL, or the row's C
 * gradients d loss / d z_c scaled by inv_W. */
static inline NS_HOST_DEVICE double ns_xent_row(const float *z, int y, int C, const float *class_w,
                                                double hard, double soft, double Wc, double inv_W,
                                                float *d, int *hit)
{
    const double wy = class_w ? class_w[y] : 1.0;
    float zmax = z[0];
    int arg = 0;
    for (int c = 1; c < C; c++)
        if (z[c] > zmax) {
            zmax = z[c];
            arg = c;
        }
    double se = 0.0, wlogp = 0.0; /* wlogp = sum_c w_c log p_c */
    for (int c = 0; c < C; c++)
        se += exp((double)(z[c] - zmax));
    const double lse = log(se);
    for (int c = 0; c < C; c++)
        wlogp += (class_w ? (double)class_w[c] : 1.0) * ((double)(z[c] - zmax) - lse);
    if (d)
        for (int c = 0; c < C; c++) {
            double pc = exp((double)(z[c] - zmax) - lse);
            double wc = class_w ? (double)class_w[c] : 1.0;
            double g = hard * wy * (pc - (c == y)) + soft * (Wc * pc - wc);
            d[c] = (float)(g * inv_W);
        }
    *hit = arg == y;
    return -hard * wy * ((double)(z[y] - zmax) - lse) - soft * wlogp;
}

#endif
