/* shared_math.h — the formulas both backends evaluate per element and per row: the
 * activations and their derivatives, the dropout draw, the softmax and the softmax
 * cross-entropy with label smoothing and class weights. The CPU loops (backend_cpu.c) and
 * the CUDA kernels (engine/cuda/cuda_layers.cu) call these, so that the two compute one
 * formula in one order and differ only in how they sum over rows and in the GEMMs. */
#ifndef NS_SHARED_MATH_H
#define NS_SHARED_MATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/backend/backend.h"
#include "engine/hostdev.h"
#include "engine/rng.h"

/* Element i's dropout draw in [0, 1) under seed: an odd multiplier makes (seed, i) -> hash
 * input injective for a fixed seed, and the top 24 bits of the hash are the draw. An element
 * is kept when its draw is >= the dropout rate. */
static inline NS_HOST_DEVICE float ns_dropout_draw(uint64_t seed, size_t i)
{
    return (float)(ns_mix64(seed + (uint64_t)i * 0xD1342543DE82EF95ULL) >> 40) * 0x1.0p-24f;
}

/* act(x) */
static inline NS_HOST_DEVICE float ns_act_value(ns_act act, float x)
{
    switch (act) {
    case NS_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case NS_ACT_LEAKY_RELU: return x > 0.0f ? x : NS_LEAKY_SLOPE * x;
    case NS_ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case NS_ACT_TANH: return tanhf(x);
    case NS_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case NS_ACT_IDENTITY: break;
    }
    return x;
}

/* act'(x) */
static inline NS_HOST_DEVICE float ns_act_slope(ns_act act, float x)
{
    switch (act) {
    case NS_ACT_RELU: return x > 0.0f ? 1.0f : 0.0f;
    case NS_ACT_LEAKY_RELU: return x > 0.0f ? 1.0f : NS_LEAKY_SLOPE;
    case NS_ACT_GELU:
        return 0.5f * (1.0f + erff(x * 0.70710678118654752f)) +
               x * 0.3989422804014327f * expf(-0.5f * x * x);
    case NS_ACT_TANH: {
        float t = tanhf(x);
        return 1.0f - t * t;
    }
    case NS_ACT_SIGMOID: {
        float s = 1.0f / (1.0f + expf(-x));
        return s * (1.0f - s);
    }
    case NS_ACT_IDENTITY: break;
    }
    return 1.0f;
}

/* The gradient g of act's output at input x passed back to x: g * act'(x), with ReLU's
 * and leaky ReLU's as selects (what backend_cpu.c's vector loops compute), so that an
 * infinite g below 0 gives 0 rather than inf * 0 and a negative one +0 rather than -0. */
static inline NS_HOST_DEVICE float ns_act_backward(ns_act act, float x, float g)
{
    switch (act) {
    case NS_ACT_RELU: return x > 0.0f ? g : 0.0f;
    case NS_ACT_LEAKY_RELU: return x > 0.0f ? g : NS_LEAKY_SLOPE * g;
    case NS_ACT_IDENTITY: return g;
    default: return g * ns_act_slope(act, x);
    }
}

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
