// Fused softmax + cross-entropy + accuracy on the GPU, with the CPU backend's arithmetic: the
// row's log-sum-exp in double with the maximum subtracted, argmax ties to the lowest class.
#include "distnet/cuda_check.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void softmax_xent_kernel(int n, int classes, const float* __restrict__ logits,
                                    const std::int32_t* __restrict__ labels, float grad_scale,
                                    float* __restrict__ dlogits, double* __restrict__ stats) {
  __shared__ double loss_part[kThreads], correct_part[kThreads], top5_part[kThreads];
  double loss = 0.0, correct = 0.0, top5 = 0.0;
  for (int i = threadIdx.x; i < n; i += kThreads) {
    const float* z = logits + static_cast<std::int64_t>(i) * classes;
    const int label = labels[i];
    const bool valid = label >= 0 && label < classes;  // datasets check labels on reading
    int arg = 0;
    for (int c = 1; c < classes; ++c) arg = z[c] > z[arg] ? c : arg;
    const float zmax = z[arg];
    double sum = 0.0;
    for (int c = 0; c < classes; ++c) sum += exp(static_cast<double>(z[c] - zmax));
    const double lse = static_cast<double>(zmax) + log(sum);
    if (valid) loss += lse - z[label];
    if (valid && isfinite(lse)) {  // a non-finite row ranks nothing (NaN compares false)
      correct += arg == label ? 1.0 : 0.0;
      const float zl = z[label];
      int above = 0;  // classes ranked before the label, ties to the lower class as argmax
      for (int c = 0; c < classes; ++c) above += z[c] > zl || (z[c] == zl && c < label);
      top5 += above < 5 ? 1.0 : 0.0;
    }
    if (dlogits) {
      float* d = dlogits + static_cast<std::int64_t>(i) * classes;
      for (int c = 0; c < classes; ++c) {
        const double p = exp(static_cast<double>(z[c]) - lse);
        d[c] = static_cast<float>((p - (c == label ? 1.0 : 0.0)) * grad_scale);
      }
    }
  }
  loss_part[threadIdx.x] = loss;
  correct_part[threadIdx.x] = correct;
  top5_part[threadIdx.x] = top5;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      loss_part[threadIdx.x] += loss_part[threadIdx.x + half];
      correct_part[threadIdx.x] += correct_part[threadIdx.x + half];
      top5_part[threadIdx.x] += top5_part[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    stats[0] += loss_part[0];
    stats[1] += correct_part[0];
    stats[2] += top5_part[0];
  }
}

}  // namespace

void launch_softmax_xent(int n, int classes, const float* logits, const std::int32_t* labels,
                         float grad_scale, float* dlogits, double* stats, cudaStream_t stream) {
  if (n == 0) return;
  softmax_xent_kernel<<<1, kThreads, 0, stream>>>(n, classes, logits, labels, grad_scale, dlogits,
                                                  stats);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

}  // namespace distnet::cuda
