#include "distnet/grad_sync.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

namespace distnet {

std::vector<Bucket> plan_buckets(std::int64_t flat_size, double bucket_bytes) {
  DISTNET_CHECK_USAGE(bucket_bytes > 0, "--bucket-mb must be > 0");
  const auto per = std::max<std::int64_t>(
      1, static_cast<std::int64_t>(std::floor(bucket_bytes / sizeof(float))));
  std::vector<Bucket> b;
  for (std::int64_t begin = 0; begin < flat_size; begin += per)
    b.push_back({begin, std::min(flat_size, begin + per)});
  return b;
}

GradSync::GradSync(const Model& model, Communicator& comm, const GradSyncOptions& options,
                   Communicator* shard_comm)
    : grads_(model.grad_data()), comm_(comm), shard_comm_(shard_comm), options_(options) {
  // Runs of consecutive tensors summed over the same ranks (each up to the next run's first
  // tensor, alignment padding included), each cut into buckets.
  const double bytes = options.bucket_mb * 1024.0 * 1024.0;
  auto shard_of = [&](const ParamEntry& e) { return shard_comm && e.spec.sum == GradSum::shard; };
  const auto& params = model.params();
  std::size_t i = 0;
  while (i < params.size()) {
    const bool shard = shard_of(params[i]);
    std::size_t j = i;
    while (j < params.size() && shard_of(params[j]) == shard) ++j;
    const std::int64_t begin = i == 0 ? 0 : params[i].offset;
    const std::int64_t end = j == params.size() ? model.flat_size() : params[j].offset;
    for (Bucket b : plan_buckets(end - begin, bytes)) {
      b.begin += begin, b.end += begin, b.shard = shard;
      buckets_.push_back(b);
    }
    i = j;
  }
  // Layers finish backward from last to first; layer i done means every tensor of layers >= i
  // is final, i.e. the prefix up to the furthest end among them.
  const int layers = static_cast<int>(model.layers().size());
  prefix_after_.assign(static_cast<std::size_t>(layers), 0);
  std::int64_t prefix = 0;
  for (int i = layers - 1; i >= 0; --i) {
    for (const ParamEntry& e : model.params())
      if (e.layer == i) prefix = std::max(prefix, e.offset + e.spec.shape.numel());
    prefix_after_[static_cast<std::size_t>(i)] = prefix;
  }
}

void GradSync::begin_step() {
  next_ = 0;
}

void GradSync::on_layer_done(int layer) {
  if (options_.overlap) release_up_to(prefix_after_[static_cast<std::size_t>(layer)]);
}

void GradSync::finish() {
  release_up_to(buckets_.empty() ? 0 : buckets_.back().end);
  if (options_.skip) return;
  const auto t0 = std::chrono::steady_clock::now();
  comm_.wait_pending();
  if (shard_comm_ && shard_comm_ != &comm_) shard_comm_->wait_pending();
  comm_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void GradSync::release_up_to(std::int64_t prefix) {
  const bool record = timeline_ && timeline_->recording();
  const double ready = record ? Timeline::now_us() : 0;  // these buckets became ready now
  while (next_ < buckets_.size() && buckets_[next_].end <= prefix) {
    const Bucket& b = buckets_[next_];
    const double start = record ? Timeline::now_us() : 0;
    const auto t0 = std::chrono::steady_clock::now();
    if (!options_.skip)
      (b.shard ? *shard_comm_ : comm_)
          .allreduce_sum_async(grads_ + b.begin, static_cast<std::size_t>(b.end - b.begin),
                               options_.wire);
    comm_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (record) {
      const double done = Timeline::now_us();
      // The span is the all-reduce (start to done); how long the bucket waited after backward
      // made it ready is an argument, since waits of successive buckets overlap.
      char args[128];
      std::snprintf(args, sizeof args,
                    "{\"bucket\":%zu,\"bytes\":%lld,\"waited_after_ready_us\":%.3f}", next_,
                    static_cast<long long>((b.end - b.begin) * 4), start - ready);
      timeline_->span(Timeline::Track::comm, "all-reduce bucket " + std::to_string(next_), "bucket",
                      start, done, args);
    }
    if (hook_) hook_(next_);
    ++next_;
  }
}

}  // namespace distnet
