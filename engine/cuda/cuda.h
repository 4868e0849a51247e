/* cuda.h — the CUDA backend's entry points: whether this build has it, the GPUs the driver
 * sees, and a backend on one of them (the .cu files of engine/cuda/; in a build without CUDA,
 * engine/cuda/nocuda.c answers "none"). Everything else goes through backend.h's ops.
 * Not the choice between CPU and GPU (backend.h: ns_backend_open). */
#ifndef NS_CUDA_H
#define NS_CUDA_H

#include <stddef.h>

#include "engine/backend/backend.h"

/* 1 when this nnsearch was built with the CUDA backend. */
int ns_cuda_compiled(void);
/* GPUs the CUDA driver sees; 0 without a driver, a GPU or CUDA in the build. */
int ns_cuda_device_count(void);
/* "NVIDIA H100 80GB HBM3, 79 GiB, compute 9.0" into out; 0, or -1 (no such GPU). */
int ns_cuda_describe(int device, char *out, size_t cap);
/* A backend on GPU `device` with GEMMs in prec: its own stream and cuBLAS handle. NULL and
 * *err (NS_EINPUT: no GPU, or no CUDA in this build; NS_ERUNTIME: the driver or cuBLAS
 * failed) otherwise. */
ns_backend *ns_backend_cuda_alloc(int device, ns_precision prec, ns_err *err);
/* 1 once any CUDA call in an op has failed (reported on stderr once): the op results
 * since are not to be trusted. */
int ns_cuda_failed(void);

#endif
