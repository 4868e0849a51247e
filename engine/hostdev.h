/* hostdev.h — NS_HOST_DEVICE marks an inline function that the CPU code and the CUDA
 * kernels both call (nvcc compiles it for both; a C compiler sees a plain function). */
#ifndef NS_HOSTDEV_H
#define NS_HOSTDEV_H

#ifdef __CUDACC__
#define NS_HOST_DEVICE __host__ __device__
#else
#define NS_HOST_DEVICE
#endif

#endif
