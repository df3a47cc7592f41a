// Gradient synchronisation in buckets. Gradients sit in one flat buffer in backward order, so
// after layer i's backward every gradient from the buffer's start up to the end of layer i's
// tensors is final: a growing prefix. The buffer is cut into fixed-size buckets (--bucket-mb);
// each bucket is all-reduced (summed over ranks) as soon as the prefix covers it, and finish()
// releases the rest and waits, so the optimizer sees only complete sums.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "distnet/comm.hpp"
#include "distnet/model.hpp"

namespace distnet {

struct Bucket {
  std::int64_t begin = 0, end = 0;  // float offsets in the flat gradient buffer
};

// Cuts [0, flat_size) into buckets of `bucket_bytes` (the last one shorter). A bucket may hold
// parts of several tensors, and a large tensor may span several buckets.
std::vector<Bucket> plan_buckets(std::int64_t flat_size, double bucket_bytes);

class GradSync {
 public:
  GradSync(const Model& model, Communicator& comm, double bucket_mb);

  void begin_step();
  // Model::backward's per-layer callback.
  void on_layer_done(int layer);
  // Releases the remaining buckets; afterwards every gradient is the sum over all ranks.
  void finish();

  const std::vector<Bucket>& buckets() const { return buckets_; }
  double comm_seconds() const { return comm_s_; }  // time spent inside all-reduce calls
  // For tests: called with each bucket's index when it is released.
  void set_release_hook(std::function<void(std::size_t)> hook) { hook_ = std::move(hook); }

 private:
  void release_up_to(std::int64_t prefix);

  float* grads_;
  Communicator& comm_;
  std::vector<Bucket> buckets_;
  std::vector<std::int64_t> prefix_after_;  // per layer: gradients final once it is done
  std::size_t next_ = 0;
  double comm_s_ = 0;
  std::function<void(std::size_t)> hook_;
};

}  // namespace distnet
