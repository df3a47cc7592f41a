// Fused softmax + cross-entropy + accuracy on the GPU, with the CPU backend's arithmetic: the
// row's log-sum-exp in double with the maximum subtracted, argmax ties to the lowest class, and
// the smoothed target (1 - eps) onehot + eps / classes when eps > 0.
#include "distnet/cuda_check.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

constexpr int kThreads = 256;

// Rows spread over the whole grid (grid-stride); each block reduces its threads' sums in a fixed
// order and writes them to partials[3 * block ...]; softmax_xent_sum_kernel adds the blocks' sums
// in block order. The grid depends on n only, so the result is the same bits on every run.
__global__ void softmax_xent_kernel(int n, int classes, const float* __restrict__ logits,
                                    const std::int32_t* __restrict__ labels, float grad_scale,
                                    float label_smoothing, float* __restrict__ dlogits,
                                    double* __restrict__ partials) {
  __shared__ double loss_part[kThreads], correct_part[kThreads], top5_part[kThreads];
  double loss = 0.0, correct = 0.0, top5 = 0.0;
  const double eps = label_smoothing;
  const double spread = eps / classes;  // every class's share of the smoothing
  const int stride = static_cast<int>(gridDim.x) * kThreads;
  for (int i = static_cast<int>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride) {
    const float* z = logits + static_cast<std::int64_t>(i) * classes;
    const int label = labels[i];
    const bool valid = label >= 0 && label < classes;  // datasets check labels on reading
    int arg = 0;
    for (int c = 1; c < classes; ++c) arg = z[c] > z[arg] ? c : arg;
    const float zmax = z[arg];
    double sum = 0.0;
    for (int c = 0; c < classes; ++c) sum += exp(static_cast<double>(z[c] - zmax));
    const double lse = static_cast<double>(zmax) + log(sum);
    if (valid && eps > 0.0) {
      // -sum_c q_c log p_c = lse - (1 - eps) z_label - eps / classes * sum_c z_c
      double zsum = 0.0;
      for (int c = 0; c < classes; ++c) zsum += z[c];
      loss += lse - (1.0 - eps) * z[label] - spread * zsum;
    } else if (valid) {
      loss += lse - z[label];
    }
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
        const double q = (c == label ? 1.0 - eps : 0.0) + spread;  // eps = 0: 1 or 0 exactly
        d[c] = static_cast<float>((p - q) * grad_scale);
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
    partials[3 * blockIdx.x] = loss_part[0];
    partials[3 * blockIdx.x + 1] = correct_part[0];
    partials[3 * blockIdx.x + 2] = top5_part[0];
  }
}

__global__ void softmax_xent_sum_kernel(int blocks, const double* __restrict__ partials,
                                        double* __restrict__ stats) {
  if (threadIdx.x >= 3) return;
  double sum = 0.0;
  for (int b = 0; b < blocks; ++b) sum += partials[3 * b + threadIdx.x];
  stats[threadIdx.x] += sum;
}

}  // namespace

int softmax_xent_blocks(int n) {
  constexpr int kMaxBlocks = 1024;
  const int blocks = (n + kThreads - 1) / kThreads;
  return blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks);
}

void launch_softmax_xent(int n, int classes, const float* logits, const std::int32_t* labels,
                         float grad_scale, float label_smoothing, float* dlogits, double* stats,
                         double* partials, cudaStream_t stream) {
  if (n == 0) return;
  const int blocks = softmax_xent_blocks(n);
  softmax_xent_kernel<<<blocks, kThreads, 0, stream>>>(n, classes, logits, labels, grad_scale,
                                                       label_smoothing, dlogits, partials);
  DISTNET_CUDA_CHECK(cudaGetLastError());
  softmax_xent_sum_kernel<<<1, 32, 0, stream>>>(blocks, partials, stats);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

}  // namespace distnet::cuda
