// The op interface. Every op has one signature and two implementations: the CPU backend
// (oneDNN, plus loops of ours where oneDNN has nothing) and the CUDA backend (cuDNN, cuBLAS,
// kernels of ours). Ops with per-shape state (algorithm choice, workspaces, pooling indices) are
// objects made once per layer by the backend; stateless ops are backend methods.
//
// All pointers are to memory on the backend's device. Activations are NCHW (dense: N x features).
// "Overwrite" is the rule for gradients: an op writes its parameter gradients, never adds to them.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include "distnet/device_clock.hpp"
#include "distnet/tensor.hpp"
#include "distnet/tf32.hpp"

namespace distnet {

// groups: the input and output channels are split into `groups` equal parts, output part i seeing
// only input part i (PyTorch's Conv2d groups; depthwise when groups == c_in). bias: whether the
// op adds a bias (torchvision's ResNets have none before a batch norm).
struct Conv2dGeom {
  int c_in = 0, h_in = 0, w_in = 0;
  int c_out = 0, kernel = 0, stride = 1, pad = 0;
  int groups = 1;
  bool bias = true;
  int h_out() const { return (h_in + 2 * pad - kernel) / stride + 1; }
  int w_out() const { return (w_in + 2 * pad - kernel) / stride + 1; }
  int c_in_per_group() const { return c_in / groups; }
};

// Pooling windows of kernel x kernel at `stride`, over an input padded by `pad` on every side;
// the output size rounds down, as PyTorch's default (ceil_mode=False). Padding never wins a
// maximum. pad <= kernel / 2 (PyTorch's rule), so every window holds an input position.
struct PoolGeom {
  int c = 0, h_in = 0, w_in = 0, kernel = 0, stride = 1, pad = 0;
  int h_out() const { return (h_in + 2 * pad - kernel) / stride + 1; }
  int w_out() const { return (w_in + 2 * pad - kernel) / stride + 1; }
};

class Conv2dOp {
 public:
  virtual ~Conv2dOp() = default;
  // y = conv(x, w) + b.  x: n x c_in x h_in x w_in, w: c_out x (c_in / groups) x k x k (OIHW),
  // b: c_out. Without a bias (Conv2dGeom::bias false) b must be null, and backward's db too.
  virtual void forward(int n, const float* x, const float* w, const float* b, float* y) = 0;
  // dx may be null (no gradient wanted for the input, e.g. the first layer).
  virtual void backward(int n, const float* x, const float* w, const float* dy, float* dx,
                        float* dw, float* db) = 0;
};

struct AdaptivePoolGeom {
  int c = 0, h = 0, w = 0;  // input plane count and size
  int oh = 0, ow = 0;       // output size
};

class MaxPoolOp {
 public:
  virtual ~MaxPoolOp() = default;
  // In training the op remembers where each maximum came from, for backward().
  virtual void forward(int n, const float* x, float* y, bool training) = 0;
  // Uses the positions of the last training forward() with the same n.
  virtual void backward(int n, const float* dy, float* dx) = 0;
};

// Average pooling: each output is its window's sum divided by kernel^2 when count_padding
// (padding counts as zeros: PyTorch's count_include_pad=True, its default), else by the number of
// input positions in the window.
class AvgPoolOp {
 public:
  virtual ~AvgPoolOp() = default;
  virtual void forward(int n, const float* x, float* y) = 0;
  // x, y: the forward's input and output (cuDNN's interface takes them; the gradient of an
  // average does not depend on them). Overwrites dx.
  virtual void backward(int n, const float* x, const float* y, const float* dy, float* dx) = 0;
};

class DenseOp {
 public:
  virtual ~DenseOp() = default;
  // y = x w^T + b.  x: n x in, w: out x in, b: out.
  virtual void forward(int n, const float* x, const float* w, const float* b, float* y) = 0;
  virtual void backward(int n, const float* x, const float* w, const float* dy, float* dx,
                        float* dw, float* db) = 0;
};

// Spatial batch normalisation: statistics per channel over n x h x w.
class BatchNormOp {
 public:
  virtual ~BatchNormOp() = default;
  // Normalises with the batch's statistics (kept for backward) and updates the running ones:
  // running = momentum * running + (1 - momentum) * batch   (biased batch variance, as in Gluon).
  virtual void forward_train(int n, const float* x, const float* gamma, const float* beta, float* y,
                             float* running_mean, float* running_var, float momentum) = 0;
  virtual void forward_infer(int n, const float* x, const float* gamma, const float* beta,
                             const float* running_mean, const float* running_var, float* y) = 0;
  // Uses the statistics of the last forward_train() with the same n.
  virtual void backward(int n, const float* x, const float* gamma, const float* dy, float* dx,
                        float* dgamma, float* dbeta) = 0;
};

// Batch normalisation with the statistics of a batch spread over ranks (--sync-bn; the layer is
// src/model/sync_batch_norm.cpp). The op sees this rank's n rows only; between its calls the
// caller sums each `sums`-like buffer over the ranks, in place on this device, so that every rank
// normalises with the mean and biased variance of the whole global batch, computed in two passes
// (the mean first, then the squared deviations from it) exactly as one process with the whole
// batch computes them, up to the order of summation. Local sums are accumulated in double.
// Every call accepts n == 0 (an empty slice contributes zeros and still takes part). Sizes are
// in floats; c = channels.
class SyncBatchNormOp {
 public:
  virtual ~SyncBatchNormOp() = default;
  // Forward pass 1: sums[ch] = sum of channel ch over this rank's n x spatial values, sums[c] = n.
  virtual void sum(int n, const float* x, float* sums) = 0;  // c + 1 floats
  // Forward pass 2, `sums` summed over ranks: with mean = sums[ch] / (sums[c] * spatial),
  // squares[ch] = sum of (x - mean)^2 over this rank's values of channel ch.
  virtual void sum_squares(int n, const float* x, const float* sums, float* squares) = 0;  // c
  // `squares` summed over ranks too: var = squares / (sums[c] * spatial) (biased);
  // y = gamma (x - mean) / sqrt(var + eps) + beta; keeps mean, 1 / sqrt(var + eps) and the count
  // for backward; running = momentum * running + (1 - momentum) * batch, the same on every rank.
  virtual void normalize(int n, const float* x, const float* gamma, const float* beta,
                         const float* sums, const float* squares, float* y, float* running_mean,
                         float* running_var, float momentum) = 0;
  // Backward pass 1, with x_hat = (x - mean) / sqrt(var + eps) of the last normalize():
  // grad_sums[ch] = sum of dy, grad_sums[c + ch] = sum of dy * x_hat over this rank's values;
  // dbeta and dgamma get the same two (this rank's share: the gradient all-reduce sums them).
  virtual void grad_sums(int n, const float* x, const float* dy, float* grad_sums, float* dgamma,
                         float* dbeta) = 0;  // 2c floats
  // `grad_sums` summed over ranks, m = the global count of values per channel:
  // dx = gamma / sqrt(var + eps) * (dy - grad_sums[ch] / m - x_hat * grad_sums[c + ch] / m).
  virtual void grad_input(int n, const float* x, const float* gamma, const float* dy,
                          const float* grad_sums, float* dx) = 0;
};

// Identifies one dropout layer's masks in one step; see philox.hpp for the counter layout.
// element_offset: where this tensor's row starts within the full layer's row, when the layer is
// split by neurons across ranks (the hybrid grid), so element e draws the full layer's mask for
// element element_offset + e.
struct DropoutKey {
  std::uint64_t seed = 0;
  std::uint32_t layer = 0;
  std::uint32_t step = 0;
  std::uint32_t element_offset = 0;
};

// Bilinear resize (half-pixel centres, edges clamped) of uint8 C x H x W images to C x h x w
// floats, then out = pixel * scale[c] + shift[c] (scaling to [0, 1] and normalising in one).
// data::ImageTransform makes one from the run's settings; up to 4 channels.
struct ResizeNormalize {
  static constexpr int kMaxChannels = 4;
  int channels = 1, h_in = 0, w_in = 0, h_out = 0, w_out = 0;
  float scale[kMaxChannels] = {1, 1, 1, 1}, shift[kMaxChannels] = {0, 0, 0, 0};
};

struct SgdParams {
  float lr = 0.01f;
  float momentum = 0.0f;
  float weight_decay = 0.0f;
};

// One AdamW step (PyTorch's torch.optim.AdamW), with the host's figures for step t:
// decay = 1 - lr * weight_decay, step_size = lr / (1 - beta1^t),
// bias_correction2_sqrt = sqrt(1 - beta2^t).
struct AdamWParams {
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float decay = 1.0f, step_size = 0.0f, bias_correction2_sqrt = 1.0f;
};

// One tensor of a LARS step: floats [offset, offset + count) of the flat buffers, its learning-
// rate factor (--lr-mult), and whether it is adapted (a layer's weight: trust ratio and weight
// decay) or not (biases and batch-norm parameters: plain momentum, no decay).
struct LarsSegment {
  std::int64_t offset = 0, count = 0;
  float lr_factor = 1.0f;
  std::int32_t adapt = 1;
};

struct LarsParams {
  float lr = 0.01f, momentum = 0.9f, weight_decay = 0.0f, trust = 0.001f;
};

// A segment's learning rate lr * lr_factor * local, from its sums {sum w^2, sum g^2}: the one
// formula both backends use (host and device), in double.
#if defined(__CUDACC__)
#define DISTNET_HOST_DEVICE __host__ __device__
#else
#define DISTNET_HOST_DEVICE
#endif
DISTNET_HOST_DEVICE inline double lars_local_rate(const LarsSegment& s, const double* sums,
                                                  const LarsParams& p) {
  double local = 1.0;
  if (s.adapt) {
    const double wn = sqrt(sums[0]), gn = sqrt(sums[1]);
    if (wn > 0 && gn > 0) local = double(p.trust) * wn / (gn + double(p.weight_decay) * wn);
  }
  return double(p.lr) * double(s.lr_factor) * local;
}

// A few bytes of device memory read without making the host wait for the device: start() queues
// the copy behind the work already queued, ready() says whether it has arrived, data() is the
// host copy from the last start() once ready. For progress figures, which may lag a step.
class AsyncRead {
 public:
  virtual ~AsyncRead() = default;
  virtual void start(const void* device_src) = 0;
  virtual bool ready() = 0;
  virtual const void* data() const = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string description() const = 0;  // e.g. "cpu (oneDNN 2.6.3, 2 threads)"

  virtual Buffer allocate(std::size_t bytes) = 0;
  virtual void upload(void* dst, const void* host_src, std::size_t bytes) = 0;
  virtual void download(void* host_dst, const void* src, std::size_t bytes) = 0;
  virtual void fill_zero(void* dst, std::size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, std::size_t bytes) = 0;  // both on this device
  virtual void synchronize() = 0;  // all queued work on this device has finished
  // A device pointer holding `bytes` of host memory: the host pointer itself when the device is
  // the host, else a copy in `staging` (grown as needed). Valid until the next call with it.
  virtual const void* stage(const void* host, std::size_t bytes, Buffer& staging) = 0;
  // Reads of `bytes` that do not wait for the device (see AsyncRead). This default, for devices
  // that are the host, copies at once.
  virtual std::unique_ptr<AsyncRead> make_async_read(std::size_t bytes);

  virtual std::unique_ptr<Conv2dOp> make_conv2d(const Conv2dGeom& g) = 0;
  virtual std::unique_ptr<MaxPoolOp> make_max_pool(const PoolGeom& g) = 0;
  virtual std::unique_ptr<AvgPoolOp> make_avg_pool(const PoolGeom& g, bool count_padding) = 0;
  virtual std::unique_ptr<DenseOp> make_dense(int in, int out) = 0;
  virtual std::unique_ptr<BatchNormOp> make_batch_norm(int channels, int spatial, float eps) = 0;
  virtual std::unique_ptr<SyncBatchNormOp> make_sync_batch_norm(int channels, int spatial,
                                                                float eps) = 0;

  // Adaptive average pooling, as PyTorch's AdaptiveAvgPool2d: output cell (i, j) of a plane is
  // the mean of input rows [floor(i h / oh), ceil((i + 1) h / oh)) and the columns likewise, so
  // cells may share input pixels when h is not a multiple of oh. Backward overwrites dx.
  virtual void adaptive_avg_pool_forward(int n, const AdaptivePoolGeom& g, const float* x,
                                         float* y) = 0;
  virtual void adaptive_avg_pool_backward(int n, const AdaptivePoolGeom& g, const float* dy,
                                          float* dx) = 0;

  // y = a + b element-wise; y may be a or b (the graph's add, and gradients summed where an
  // output feeds several layers).
  virtual void add(std::int64_t count, const float* a, const float* b, float* y) = 0;
  // `rows` runs of `row_floats` floats, run r from src + r * src_stride to dst + r * dst_stride
  // (strides in floats; the runs must not overlap): the channel concat and its backward, which
  // move each sample's block of channels.
  virtual void copy_rows(std::int64_t rows, std::int64_t row_floats, const float* src,
                         std::int64_t src_stride, float* dst, std::int64_t dst_stride) = 0;

  // In place is allowed (y == x, dx == dy).
  virtual void relu_forward(std::int64_t count, const float* x, float* y) = 0;
  virtual void relu_backward(std::int64_t count, const float* y, const float* dy, float* dx) = 0;

  // Inverted dropout: y = x * keep / (1 - p_drop), where keep for element e of row i is drawn from
  // (key, sample_ids[i], e). sample_ids are global sample indices, on this device. Backward draws
  // the same mask again instead of storing it. In place is allowed.
  virtual void dropout_forward(int n, std::int64_t per_sample, float p_drop, const DropoutKey& key,
                               const std::uint32_t* sample_ids, const float* x, float* y) = 0;
  virtual void dropout_backward(int n, std::int64_t per_sample, float p_drop, const DropoutKey& key,
                                const std::uint32_t* sample_ids, const float* dy, float* dx) = 0;

  // Fused, numerically stable softmax + cross-entropy over n rows of `classes` logits, against
  // the target q = (1 - eps) onehot(label) + eps / classes with eps = label_smoothing in [0, 1)
  // (PyTorch's CrossEntropyLoss(label_smoothing=eps); eps = 0: the one-hot target, bit for bit):
  //   dlogits = (softmax(logits) - q) * grad_scale
  //   stats[0] += sum_i -sum_c q_c log softmax(logits_i)[c]
  //            = sum_i lse_i - (1 - eps) logits_i[label_i] - eps / classes * sum_c logits_i[c],
  //   stats[1] += #(argmax == label),
  //   stats[2] += #(label among the 5 largest logits)  (ties rank the lower class first, as
  //   argmax does, so top-1 is exactly "no class ranks above the label")
  // A row with a non-finite logit counts as neither correct nor top-5 (its loss is non-finite,
  // which the trainer detects): NaN compares false, so ranking it would call it right.
  // stats stays on the device, so a step needs no host synchronisation to accumulate metrics.
  // dlogits may be null (evaluation). Accuracy does not depend on label_smoothing.
  virtual void softmax_xent(int n, int classes, const float* logits, const std::int32_t* labels,
                            float grad_scale, float* dlogits, double* stats,
                            float label_smoothing = 0.0f) = 0;

  // acc[0] += the number of non-finite values (NaN, +-inf) among x[0..count), with acc on this
  // device: the trainer's divergence check, queued like any op (no host synchronisation).
  virtual void count_nonfinite(std::int64_t count, const float* x, double* acc) = 0;
  // acc[0] += the sum of x[i]^2 over x[0..count), accumulated in double, with acc on this device
  // (the gradient norm of --tensorboard, queued like any op). The order of summation may vary
  // between calls (threads, atomics): equal to a few ulps, not bitwise.
  virtual void sum_squares(std::int64_t count, const float* x, double* acc) = 0;

  // x[i] *= alpha over x[0..count): gradient clipping (--clip-grad-norm).
  virtual void scale(std::int64_t count, float alpha, float* x) = 0;

  // SGD with momentum and weight decay over flat buffers (PyTorch's formulation):
  //   v = momentum * v + (g + weight_decay * w);  w -= lr * v     (v unused if momentum == 0)
  virtual void sgd_update(std::int64_t count, float* w, const float* g, float* v,
                          const SgdParams& p) = 0;
  // AdamW (PyTorch's formulation, decoupled weight decay), m and v the first and second moments:
  //   w *= decay;  m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
  //   w -= step_size * m / (sqrt(v) / bias_correction2_sqrt + eps)
  virtual void adamw_update(std::int64_t count, float* w, const float* g, float* m, float* v,
                            const AdamWParams& p) = 0;
  // LARS, the two halves of a step over `n` segments (`segments` on this device):
  // sums[2s] = sum of w^2 and sums[2s + 1] = sum of g^2 over segment s, in double (overwritten);
  // the caller may sum them over the ranks that hold pieces of one tensor in between. Then with
  // ||w||, ||g|| their roots, per segment: local = trust ||w|| / (||g|| + wd ||w||) (1 when either
  // norm is 0), and per element of an adapted segment
  //   v = momentum v + lr lr_factor local (g + wd w);  w -= v
  // and of one that is not: v = momentum v + lr lr_factor g;  w -= v.
  virtual void lars_sums(int n, const LarsSegment* segments, const float* w, const float* g,
                         double* sums) = 0;
  virtual void lars_update(int n, const LarsSegment* segments, const double* sums, float* w,
                           const float* g, float* v, const LarsParams& p) = 0;

  // n raw images (on this device) resized and normalised into `out` (on this device).
  virtual void resize_normalize(int n, const ResizeNormalize& spec, const std::uint8_t* images,
                                float* out) = 0;
  // Whether the trainer should hand this backend raw uint8 images and let it resize them (the
  // GPU: a 28x28 image is 64x fewer bytes to copy than its 224x224 float version) rather than
  // resize in the loader threads (the CPU backend, whose cores the loader threads share anyway).
  virtual bool transforms_images() const { return false; }
  // The clock of the stream the ops run on, for device-side timeline spans (the GPU); null when
  // the ops run on the calling thread, where the host's spans are the device's (the CPU). Made on
  // first use, which waits once for the work queued so far.
  virtual DeviceClock* device_clock() { return nullptr; }
};

struct CpuOptions {
  // auto: oneDNN picks per shape (Winograd for the 3x3 layers where it is faster; ~1.4x on
  // AlexNet); direct: always direct convolution (the tightest rounding, for reference checks).
  enum class ConvAlgorithm { automatic, direct };
  ConvAlgorithm conv = ConvAlgorithm::automatic;
  // fp32: FP32 arithmetic throughout. tf32: the operands of every convolution and dense product
  // (forward and both gradients; not the bias) rounded to TF32 first, then FP32 arithmetic --
  // the model of the GPU's --math tf32 that the GPU tests' bounds are derived from
  // (docs/gpu-validation.md#the-error-model). For reference checks, not for training.
  enum class Math { fp32, tf32 };
  Math math = Math::fp32;
  Tf32Rounding tf32_rounding = Tf32Rounding::nearest_away;
};

std::unique_ptr<Backend> make_cpu_backend(const CpuOptions& options = {});

}  // namespace distnet
