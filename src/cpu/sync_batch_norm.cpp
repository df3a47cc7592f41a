// Batch-norm over the ranks' samples (--sync-bn) on the CPU: loops of ours, not oneDNN. oneDNN's
// batch-norm can take given statistics (use_global_stats) for the normalisation, but it has no
// per-channel sums to give out, and its backward with given statistics treats them as constants
// (dx = gamma * inv_std * dy), so the sums and dx would be ours anyway. Five short loops keep the
// whole computation in one place, with double accumulators for the sums (the CUDA kernels mirror
// them; the tests compare both with oneDNN's batch-norm on one rank). Channels (the sums) and
// rows (the element-wise passes) are spread over the OpenMP threads.
#include <cmath>
#include <cstdint>
#include <vector>

#include "cpu_backend.hpp"

namespace distnet::cpu {
namespace {

class CpuSyncBatchNorm final : public SyncBatchNormOp {
 public:
  CpuSyncBatchNorm(int channels, int spatial, float eps)
      : c_(channels),
        spatial_(spatial),
        eps_(eps),
        mean_(std::size_t(channels)),
        inv_std_(std::size_t(channels)) {}

  void sum(int n, const float* x, float* sums) override {
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c_; ++ch) {
      double s = 0;
      for (int i = 0; i < n; ++i) {
        const float* p = plane(x, i, ch);
        for (int k = 0; k < spatial_; ++k) s += p[k];
      }
      sums[ch] = float(s);
    }
    sums[c_] = float(n);
  }

  void sum_squares(int n, const float* x, const float* sums, float* squares) override {
    const double count = double(sums[c_]) * spatial_;
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c_; ++ch) {
      const double mean = count > 0 ? sums[ch] / count : 0.0;
      double s = 0;
      for (int i = 0; i < n; ++i) {
        const float* p = plane(x, i, ch);
        for (int k = 0; k < spatial_; ++k) {
          const double d = p[k] - mean;
          s += d * d;
        }
      }
      squares[ch] = float(s);
    }
  }

  void normalize(int n, const float* x, const float* gamma, const float* beta, const float* sums,
                 const float* squares, float* y, float* running_mean, float* running_var,
                 float momentum) override {
    count_ = double(sums[c_]) * spatial_;
    if (count_ <= 0) return;  // no samples anywhere: nothing to normalise or learn from
    for (int ch = 0; ch < c_; ++ch) {
      const double mean = sums[ch] / count_, var = squares[ch] / count_;
      mean_[std::size_t(ch)] = float(mean);
      inv_std_[std::size_t(ch)] = float(1.0 / std::sqrt(var + double(eps_)));
      running_mean[ch] = momentum * running_mean[ch] + (1.0f - momentum) * float(mean);
      running_var[ch] = momentum * running_var[ch] + (1.0f - momentum) * float(var);
    }
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; ++i) {
      for (int ch = 0; ch < c_; ++ch) {
        const float m = mean_[std::size_t(ch)], a = gamma[ch] * inv_std_[std::size_t(ch)];
        const float b = beta[ch];
        const float* p = plane(x, i, ch);
        float* q = plane(y, i, ch);
        for (int k = 0; k < spatial_; ++k) q[k] = (p[k] - m) * a + b;
      }
    }
  }

  void grad_sums(int n, const float* x, const float* dy, float* grad_sums, float* dgamma,
                 float* dbeta) override {
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c_; ++ch) {
      const float m = mean_[std::size_t(ch)], r = inv_std_[std::size_t(ch)];
      double sdy = 0, sdyx = 0;
      for (int i = 0; i < n; ++i) {
        const float* p = plane(x, i, ch);
        const float* g = plane(dy, i, ch);
        for (int k = 0; k < spatial_; ++k) {
          sdy += g[k];
          sdyx += double(g[k]) * ((p[k] - m) * r);
        }
      }
      grad_sums[ch] = dbeta[ch] = float(sdy);
      grad_sums[c_ + ch] = dgamma[ch] = float(sdyx);
    }
  }

  void grad_input(int n, const float* x, const float* gamma, const float* dy,
                  const float* grad_sums, float* dx) override {
    if (count_ <= 0) return;
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; ++i) {
      for (int ch = 0; ch < c_; ++ch) {
        const float m = mean_[std::size_t(ch)], r = inv_std_[std::size_t(ch)];
        const float scale = gamma[ch] * r;
        const float mean_dy = float(grad_sums[ch] / count_);
        const float mean_dyx = float(grad_sums[c_ + ch] / count_);
        const float* p = plane(x, i, ch);
        const float* g = plane(dy, i, ch);
        float* d = plane(dx, i, ch);
        for (int k = 0; k < spatial_; ++k)
          d[k] = scale * (g[k] - mean_dy - (p[k] - m) * r * mean_dyx);
      }
    }
  }

 private:
  template <typename T>
  T* plane(T* base, int i, int ch) const {
    return base + (std::int64_t(i) * c_ + ch) * spatial_;
  }

  int c_, spatial_;
  float eps_;
  std::vector<float> mean_, inv_std_;  // of the last normalize()
  double count_ = 0;                   // values per channel in the global batch, likewise
};

}  // namespace

std::unique_ptr<SyncBatchNormOp> CpuBackend::make_sync_batch_norm(int channels, int spatial,
                                                                  float eps) {
  return std::make_unique<CpuSyncBatchNorm>(channels, spatial, eps);
}

}  // namespace distnet::cpu
