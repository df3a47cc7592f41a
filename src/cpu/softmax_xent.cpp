// Fused softmax + cross-entropy: log-sum-exp with the row maximum subtracted, so no exp overflows.
// Label smoothing (eps > 0) targets (1 - eps) onehot + eps / classes, as PyTorch's
// CrossEntropyLoss(label_smoothing=eps); eps = 0 takes exactly the one-hot arithmetic.
#include <cmath>

#include "cpu_backend.hpp"

namespace distnet::cpu {

void CpuBackend::softmax_xent(int n, int classes, const float* logits, const std::int32_t* labels,
                              float grad_scale, float* dlogits, double* stats,
                              float label_smoothing) {
  DISTNET_CHECK(label_smoothing >= 0.0f && label_smoothing < 1.0f,
                "label smoothing must be in [0, 1), got " + std::to_string(label_smoothing));
  for (int i = 0; i < n; ++i) {
    DISTNET_CHECK(labels[i] >= 0 && labels[i] < classes, "label " + std::to_string(labels[i]) +
                                                             " out of range [0, " +
                                                             std::to_string(classes) + ")");
  }
  const double eps = label_smoothing;
  const double spread = eps / classes;  // every class's share of the smoothing
  double loss = 0.0, correct = 0.0, top5 = 0.0;
#pragma omp parallel for reduction(+ : loss, correct, top5) schedule(static)
  for (int i = 0; i < n; ++i) {
    const float* z = logits + static_cast<std::int64_t>(i) * classes;
    int arg = 0;
    for (int c = 1; c < classes; ++c) arg = z[c] > z[arg] ? c : arg;
    const float zmax = z[arg];
    double sum = 0.0;
    for (int c = 0; c < classes; ++c) sum += std::exp(static_cast<double>(z[c] - zmax));
    const double lse = static_cast<double>(zmax) + std::log(sum);
    if (eps > 0.0) {
      // -sum_c q_c log p_c = lse - (1 - eps) z_label - eps / classes * sum_c z_c
      double zsum = 0.0;
      for (int c = 0; c < classes; ++c) zsum += z[c];
      loss += lse - (1.0 - eps) * z[labels[i]] - spread * zsum;
    } else {
      loss += lse - z[labels[i]];
    }
    // A non-finite row ranks nothing (NaN compares false): neither correct nor top-5.
    if (std::isfinite(lse)) {
      correct += arg == labels[i] ? 1.0 : 0.0;
      const float zl = z[labels[i]];
      int above = 0;  // classes ranked before the label
      for (int c = 0; c < classes; ++c) above += z[c] > zl || (z[c] == zl && c < labels[i]);
      top5 += above < 5 ? 1.0 : 0.0;
    }
    if (dlogits) {
      float* d = dlogits + static_cast<std::int64_t>(i) * classes;
      for (int c = 0; c < classes; ++c) {
        const double p = std::exp(static_cast<double>(z[c]) - lse);
        const double q = (c == labels[i] ? 1.0 - eps : 0.0) + spread;  // eps = 0: 1 or 0 exactly
        d[c] = static_cast<float>((p - q) * grad_scale);
      }
    }
  }
  stats[0] += loss;
  stats[1] += correct;
  stats[2] += top5;
}

}  // namespace distnet::cpu
