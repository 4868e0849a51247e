/* ops_ref.c — plain-loop references of the GEMM ops (no BLAS, double accumulation).
 * Tests compare every backend against these; nothing on the training path calls them. */
#include <stddef.h>

#include "engine/backend/backend.h"

void ns_ref_matmul_forward(float *out, const float *inp, const float *w, int B, int C, int OC)
{
    for (int i = 0; i < B; i++)
        for (int o = 0; o < OC; o++) {
            double s = 0.0;
            for (int c = 0; c < C; c++)
                s += (double)inp[(size_t)i * C + c] * (double)w[(size_t)o * C + c];
            out[(size_t)i * OC + o] = (float)s;
        }
}

void ns_ref_matmul_backward(float *dinp, float *dw, const float *dout, const float *inp,
                            const float *w, int B, int C, int OC)
{
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int i = 0; i < B; i++)
                s += (double)dout[(size_t)i * OC + o] * (double)inp[(size_t)i * C + c];
            dw[(size_t)o * C + c] += (float)s;
        }
    if (!dinp)
        return;
    for (int i = 0; i < B; i++)
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int o = 0; o < OC; o++)
                s += (double)dout[(size_t)i * OC + o] * (double)w[(size_t)o * C + c];
            dinp[(size_t)i * C + c] = (float)s;
        }
}
