// Check macros for the CUDA runtime, cuDNN, cuBLAS and NCCL. Only CUDA-backend sources include
// this header; each macro throws distnet::Error with the library's own error string.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <nccl.h>

#include "distnet/error.hpp"

#define DISTNET_CUDA_CHECK(expr)                                                             \
  do {                                                                                       \
    const cudaError_t distnet_rc_ = (expr);                                                  \
    if (distnet_rc_ != cudaSuccess)                                                          \
      ::distnet::detail::throw_library_error("CUDA", #expr, cudaGetErrorString(distnet_rc_), \
                                             __FILE__, __LINE__);                            \
  } while (0)

#define DISTNET_CUDNN_CHECK(expr)                                                              \
  do {                                                                                         \
    const cudnnStatus_t distnet_rc_ = (expr);                                                  \
    if (distnet_rc_ != CUDNN_STATUS_SUCCESS)                                                   \
      ::distnet::detail::throw_library_error("cuDNN", #expr, cudnnGetErrorString(distnet_rc_), \
                                             __FILE__, __LINE__);                              \
  } while (0)

#define DISTNET_CUBLAS_CHECK(expr)                                                                \
  do {                                                                                            \
    const cublasStatus_t distnet_rc_ = (expr);                                                    \
    if (distnet_rc_ != CUBLAS_STATUS_SUCCESS)                                                     \
      ::distnet::detail::throw_library_error("cuBLAS", #expr, cublasGetStatusString(distnet_rc_), \
                                             __FILE__, __LINE__);                                 \
  } while (0)

#define DISTNET_NCCL_CHECK(expr)                                                             \
  do {                                                                                       \
    const ncclResult_t distnet_rc_ = (expr);                                                 \
    if (distnet_rc_ != ncclSuccess)                                                          \
      ::distnet::detail::throw_library_error("NCCL", #expr, ncclGetErrorString(distnet_rc_), \
                                             __FILE__, __LINE__);                            \
  } while (0)
