// Move-only owners of CUDA, cuDNN and cuBLAS handles: one template, one destroy function per kind.
// A moved-from owner is empty; destruction never throws (a failed destroy at shutdown is ignored,
// there is nobody left to tell). Private to src/cuda.
#pragma once

#include <utility>

#include "distnet/cuda_check.hpp"

namespace distnet::cuda {

template <typename H, void (*Destroy)(H)>
class Owned {
 public:
  Owned() = default;
  explicit Owned(H h) : h_(h) {}
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  Owned(Owned&& o) noexcept : h_(std::exchange(o.h_, H{})) {}
  Owned& operator=(Owned&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, H{});
    }
    return *this;
  }
  ~Owned() { reset(); }
  H get() const { return h_; }
  operator H() const { return h_; }  // NOLINT: handles are passed straight to the C APIs
  void reset() noexcept {
    if (h_) Destroy(std::exchange(h_, H{}));
  }
  // Gives the handle up without destroying it: on the way to an abort, when destroying it would
  // wait for device work that may never finish (cudnnDestroy and cublasDestroy synchronise).
  H release() noexcept { return std::exchange(h_, H{}); }

 private:
  H h_{};
};

namespace detail {
inline void destroy_stream(cudaStream_t s) {
  cudaStreamDestroy(s);
}
inline void destroy_event(cudaEvent_t e) {
  cudaEventDestroy(e);
}
inline void destroy_cudnn(cudnnHandle_t h) {
  cudnnDestroy(h);
}
inline void destroy_cublas(cublasHandle_t h) {
  cublasDestroy(h);
}
inline void destroy_tensor(cudnnTensorDescriptor_t d) {
  cudnnDestroyTensorDescriptor(d);
}
inline void destroy_filter(cudnnFilterDescriptor_t d) {
  cudnnDestroyFilterDescriptor(d);
}
inline void destroy_conv(cudnnConvolutionDescriptor_t d) {
  cudnnDestroyConvolutionDescriptor(d);
}
inline void destroy_pool(cudnnPoolingDescriptor_t d) {
  cudnnDestroyPoolingDescriptor(d);
}
inline void destroy_act(cudnnActivationDescriptor_t d) {
  cudnnDestroyActivationDescriptor(d);
}
}  // namespace detail

using Stream = Owned<cudaStream_t, detail::destroy_stream>;
using Event = Owned<cudaEvent_t, detail::destroy_event>;
using CudnnHandle = Owned<cudnnHandle_t, detail::destroy_cudnn>;
using CublasHandle = Owned<cublasHandle_t, detail::destroy_cublas>;
using TensorDesc = Owned<cudnnTensorDescriptor_t, detail::destroy_tensor>;
using FilterDesc = Owned<cudnnFilterDescriptor_t, detail::destroy_filter>;
using ConvDesc = Owned<cudnnConvolutionDescriptor_t, detail::destroy_conv>;
using PoolDesc = Owned<cudnnPoolingDescriptor_t, detail::destroy_pool>;
using ActDesc = Owned<cudnnActivationDescriptor_t, detail::destroy_act>;

// A stream that does not synchronise with the legacy default stream.
inline Stream make_stream() {
  cudaStream_t s = nullptr;
  DISTNET_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return Stream(s);
}

// Events for ordering only (no timing), which makes them cheaper.
inline Event make_event() {
  cudaEvent_t e = nullptr;
  DISTNET_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return Event(e);
}

// Events that also time (cudaEventElapsedTime between two of them).
inline Event make_timing_event() {
  cudaEvent_t e = nullptr;
  DISTNET_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDefault));
  return Event(e);
}

// A float NCHW tensor descriptor.
inline TensorDesc make_tensor(int n, int c, int h, int w) {
  cudnnTensorDescriptor_t d = nullptr;
  DISTNET_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d));
  TensorDesc owned(d);
  DISTNET_CUDNN_CHECK(
      cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, c, h, w));
  return owned;
}

}  // namespace distnet::cuda
