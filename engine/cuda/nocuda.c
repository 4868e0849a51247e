/* nocuda.c — cuda.h in a build without the CUDA backend (CMake found no nvcc, or
 * NS_CUDA=OFF): no GPU is ever seen, and asking for one says how to get it. */
#include "engine/cuda/cuda.h"

int ns_cuda_compiled(void) { return 0; }
int ns_cuda_device_count(void) { return 0; }
int ns_cuda_describe(int device, char *out, size_t cap)
{
    (void)device;
    if (cap)
        out[0] = 0;
    return -1;
}
int ns_cuda_failed(void) { return 0; }

ns_backend *ns_backend_cuda_alloc(int device, ns_precision prec, ns_err *err)
{
    (void)device;
    (void)prec;
    ns_err_set(err, NS_EINPUT, "device cuda: this nnsearch was built without CUDA (CMake found "
               "no nvcc); rebuild with nvcc on PATH or -DNS_CUDA=ON, or use --device cpu");
    return NULL;
}
