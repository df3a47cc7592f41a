// Host launchers of distnet's own CUDA kernels. Each takes an explicit stream and checks the
// launch; none synchronises. Pointers are device memory unless a comment says otherwise.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "distnet/backend.hpp"

namespace distnet::cuda {

// Same contract as Backend::dropout_forward/backward: y = x * keep / (1 - p_drop), the mask drawn
// from Philox per (key, sample_ids[row], element) exactly as the CPU backend does.
void launch_dropout(int n, std::int64_t per_sample, float p_drop, const DropoutKey& key,
                    const std::uint32_t* sample_ids, const float* in, float* out,
                    cudaStream_t stream);

// Backend::softmax_xent: rows spread over softmax_xent_blocks(n) blocks (up to 1024), each block's
// sums in `partials` (3 per block, device memory), then added in block order: the loss and
// accuracy sums are the same on every run.
int softmax_xent_blocks(int n);
void launch_softmax_xent(int n, int classes, const float* logits, const std::int32_t* labels,
                         float grad_scale, float label_smoothing, float* dlogits, double* stats,
                         double* partials, cudaStream_t stream);

// Backend::add: y = a + b over flat buffers (in place allowed).
void launch_add(std::int64_t count, const float* a, const float* b, float* y, cudaStream_t stream);

// Backend::relu_forward/backward over flat buffers (backward reads the output y for the mask).
void launch_relu_forward(std::int64_t count, const float* x, float* y, cudaStream_t stream);
void launch_relu_backward(std::int64_t count, const float* y, const float* dy, float* dx,
                          cudaStream_t stream);

// Backend::adaptive_avg_pool_forward/backward: one thread per output (forward) or input
// (backward) element, each summing its cells in a fixed order.
void launch_adaptive_avg_pool_forward(int n, const AdaptivePoolGeom& g, const float* x, float* y,
                                      cudaStream_t stream);
void launch_adaptive_avg_pool_backward(int n, const AdaptivePoolGeom& g, const float* dy, float* dx,
                                       cudaStream_t stream);

// Backend::count_nonfinite: acc[0] += the number of NaN and infinite values in x.
void launch_count_nonfinite(std::int64_t count, const float* x, double* acc, cudaStream_t stream);
// Backend::sum_squares: acc[0] += the sum of x[i]^2, in double.
void launch_sum_squares(std::int64_t count, const float* x, double* acc, cudaStream_t stream);
// Backend::scale: x *= alpha.
void launch_scale(std::int64_t count, float alpha, float* x, cudaStream_t stream);

// Backend::sgd_update over a flat buffer.
void launch_sgd(std::int64_t count, float* w, const float* g, float* v, const SgdParams& p,
                cudaStream_t stream);
// Backend::adamw_update over a range of the flat buffers.
void launch_adamw(std::int64_t count, float* w, const float* g, float* m, float* v,
                  const AdamWParams& p, cudaStream_t stream);
// Backend::lars_sums and lars_update: `segments` and `sums` on the device.
void launch_lars_sums(int n, const LarsSegment* segments, const float* w, const float* g,
                      double* sums, cudaStream_t stream);
void launch_lars_update(int n, const LarsSegment* segments, const double* sums, float* w,
                        const float* g, float* v, const LarsParams& p, cudaStream_t stream);

// Backend::resize_normalize: one thread per output pixel.
void launch_resize_normalize(int n, const ResizeNormalize& spec, const std::uint8_t* images,
                             float* out, cudaStream_t stream);

// Dense layers: y[i, :] = b (before a GEMM that adds x w^T), and db = column sums of dy.
void launch_broadcast_rows(int n, int width, const float* row, float* out, cudaStream_t stream);
void launch_column_sums(int n, int width, const float* in, float* out, cudaStream_t stream);

// Batch-norm running statistics from cuDNN's saved batch mean and inverse standard deviation:
//   running = momentum * running + (1 - momentum) * batch   (biased batch variance, as the CPU)
void launch_bn_running_update(int channels, const float* mean, const float* inv_std, float eps,
                              float momentum, float* running_mean, float* running_var,
                              cudaStream_t stream);

// Batch-norm over the ranks' samples (SyncBatchNormOp, --sync-bn): the per-channel sums run one
// block per channel, in double, added in a fixed order. `saved` (2c + 1 floats) holds the mean,
// 1 / sqrt(var + eps) and the global sample count, written by normalize and read by backward.
void launch_sync_bn_sum(int n, int channels, int spatial, const float* x, float* sums,
                        cudaStream_t stream);
void launch_sync_bn_sum_squares(int n, int channels, int spatial, const float* x, const float* sums,
                                float* squares, cudaStream_t stream);
void launch_sync_bn_normalize(int n, int channels, int spatial, float eps, float momentum,
                              const float* x, const float* gamma, const float* beta,
                              const float* sums, const float* squares, float* saved, float* y,
                              float* running_mean, float* running_var, cudaStream_t stream);
void launch_sync_bn_grad_sums(int n, int channels, int spatial, const float* x, const float* dy,
                              const float* saved, float* grad_sums, float* dgamma, float* dbeta,
                              cudaStream_t stream);
void launch_sync_bn_grad_input(int n, int channels, int spatial, const float* x, const float* gamma,
                               const float* dy, const float* saved, const float* grad_sums,
                               float* dx, cudaStream_t stream);

// bfloat16 wire format for gradient buckets (see distnet/bf16.hpp for the rounding).
void launch_to_bf16(std::int64_t count, const float* in, std::uint16_t* out, cudaStream_t stream);
void launch_from_bf16(std::int64_t count, const std::uint16_t* in, float* out, cudaStream_t stream);

// Grid size for a grid-stride loop over `count` items with blocks of `block` threads.
inline unsigned grid_for(std::int64_t count, int block) {
  const std::int64_t blocks = (count + block - 1) / block;
  return static_cast<unsigned>(blocks < 65535 * 32 ? (blocks > 0 ? blocks : 1) : 65535 * 32);
}

}  // namespace distnet::cuda
