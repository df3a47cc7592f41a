// Running statistics of batch-norm. cuDNN would keep the unbiased batch variance in its running
// average (as PyTorch does); distnet follows Gluon and the CPU backend with the biased one, so the
// update is done here from the batch statistics cuDNN saves for backward.
#include "distnet/cuda_check.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

__global__ void bn_running_update_kernel(int channels, const float* __restrict__ mean,
                                         const float* __restrict__ inv_std, float eps,
                                         float momentum, float* __restrict__ running_mean,
                                         float* __restrict__ running_var) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  const float var = 1.0f / (inv_std[c] * inv_std[c]) - eps;  // inv_std = 1 / sqrt(var + eps)
  running_mean[c] = momentum * running_mean[c] + (1.0f - momentum) * mean[c];
  running_var[c] = momentum * running_var[c] + (1.0f - momentum) * var;
}

}  // namespace

void launch_bn_running_update(int channels, const float* mean, const float* inv_std, float eps,
                              float momentum, float* running_mean, float* running_var,
                              cudaStream_t stream) {
  bn_running_update_kernel<<<(channels + 255) / 256, 256, 0, stream>>>(
      channels, mean, inv_std, eps, momentum, running_mean, running_var);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

}  // namespace distnet::cuda
