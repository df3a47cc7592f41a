// Per-batch-size plans of an op (primitives, descriptors, algorithm choices). A rank sees only a
// few batch sizes (its slice, one less, the last partial batch, the evaluation batch), so plans
// are made on first use and kept. Shared by the CPU and CUDA backends.
#pragma once

#include <map>
#include <memory>

namespace distnet {

template <typename Plan>
class PlanCache {
 public:
  template <typename Make>
  Plan& get(int n, Make&& make) {
    auto it = plans_.find(n);
    if (it == plans_.end()) it = plans_.emplace(n, make(n)).first;
    return *it->second;
  }

 private:
  std::map<int, std::unique_ptr<Plan>> plans_;
};

}  // namespace distnet
