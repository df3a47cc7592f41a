// Gradient synchronisation in buckets. Gradients sit in one flat buffer in backward order, so
// after layer i's backward every gradient from the buffer's start up to the end of layer i's
// tensors is final: a growing prefix. The buffer is cut into fixed-size buckets (--bucket-mb);
// each bucket is all-reduced (summed over ranks) as soon as the prefix covers it (with overlap
// on; with it off, all of them after backward), and finish() releases the rest and orders the
// sums before the optimizer, so it sees only complete sums. With NCCL the all-reduces are queued
// on the communication stream behind an event of the compute stream: the host only enqueues.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "distnet/comm.hpp"
#include "distnet/model.hpp"
#include "distnet/timeline.hpp"

namespace distnet {

struct Bucket {
  std::int64_t begin = 0, end = 0;  // float offsets in the flat gradient buffer
  bool shard = false;  // summed over the same-shard ranks (the hybrid grid), not the world
};

// Cuts [0, flat_size) into buckets of `bucket_bytes` (the last one shorter). A bucket may hold
// parts of several tensors, and a large tensor may span several buckets.
std::vector<Bucket> plan_buckets(std::int64_t flat_size, double bucket_bytes);

struct GradSyncOptions {
  double bucket_mb = 25.0;
  bool overlap = true;     // release buckets during backward
  Wire wire = Wire::fp32;  // --grad-compression
  bool skip = false;       // benchmark "compute alone": no all-reduce at all (wrong with > 1 rank)
};

class GradSync {
 public:
  // `shard_comm`: for a split model, the ranks holding the same shard (Grid::shard_comm). The
  // buffer is cut into runs of tensors summed over the same ranks and each run into buckets;
  // an unsplit model is one run, over `comm`.
  GradSync(const Model& model, Communicator& comm, const GradSyncOptions& options,
           Communicator* shard_comm = nullptr);

  void begin_step();
  // Model::backward's per-layer callback.
  void on_layer_done(int layer);
  // Releases the remaining buckets; afterwards every gradient is the sum over all ranks.
  void finish();

  const std::vector<Bucket>& buckets() const { return buckets_; }
  // Host time spent inside the communicator's calls: the whole all-reduce with MPI; with NCCL
  // only the enqueueing (the GPU-side time shows as a longer step, see the benchmark docs).
  double comm_seconds() const { return comm_s_; }
  // For tests: called with each bucket's index when it is released.
  void set_release_hook(std::function<void(std::size_t)> hook) { hook_ = std::move(hook); }
  // Records every bucket on the communication track (null: off): when backward made it ready,
  // when its all-reduce started and when the call returned (for NCCL: when it was queued).
  void set_timeline(Timeline* timeline) { timeline_ = timeline; }

 private:
  void release_up_to(std::int64_t prefix);

  float* grads_;
  Communicator& comm_;
  Communicator* shard_comm_;
  GradSyncOptions options_;
  std::vector<Bucket> buckets_;
  std::vector<std::int64_t> prefix_after_;  // per layer: gradients final once it is done
  std::size_t next_ = 0;
  double comm_s_ = 0;
  std::function<void(std::size_t)> hook_;
  Timeline* timeline_ = nullptr;
};

}  // namespace distnet
