// Checkpoints of a split model (the hybrid grid) hold whole tensors, in the layout one process
// writes: each dense tensor split across a group is gathered from the group's ranks and put
// together on the host. A collective of the group (docs/process-grid.md).
#include <algorithm>

#include "distnet/checkpoint.hpp"
#include "distnet/grid.hpp"

namespace distnet {

Snapshot take_whole_snapshot(const Model& model, const CheckpointMeta& meta) {
  Snapshot s = take_snapshot(model, meta);
  if (!model.is_split()) return s;
  const LayerSplit& split = model.split();
  Communicator& group = *split.group;
  Backend& be = model.backend();
  std::vector<ParamEntry> whole;
  std::vector<float> params, momentum;
  for (const ParamEntry& e : s.params) {
    ParamEntry w = e;
    w.spec.shape = e.spec.whole_shape();
    w.spec.full = Shape{};
    w.offset = static_cast<std::int64_t>(params.size());
    const auto n = static_cast<std::size_t>(w.spec.shape.numel());
    params.resize(params.size() + n);
    momentum.resize(params.size());
    if (!e.spec.is_piece()) {
      const auto from = s.param_values.begin() + e.offset;
      std::copy(from, from + std::ptrdiff_t(n), params.begin() + w.offset);
      const auto mom = s.momentum_values.begin() + e.offset;
      std::copy(mom, mom + std::ptrdiff_t(n), momentum.begin() + w.offset);
      whole.push_back(w);
      continue;
    }
    // Every shard's piece (parameters, then momentum), padded to the largest piece.
    const Shape& full = e.spec.full;
    const std::int64_t per_index = full.numel() / full[e.spec.axis];
    const std::int64_t largest = split_range(full[e.spec.axis], split.shards, 0).size() * per_index;
    const std::int64_t mine = e.spec.shape.numel();
    std::vector<float> host(static_cast<std::size_t>(2 * largest * split.shards), 0.0f);
    float* own = host.data() + 2 * largest * split.shard;
    std::copy_n(s.param_values.data() + e.offset, mine, own);
    std::copy_n(s.momentum_values.data() + e.offset, mine, own + largest);
    Buffer dev = be.allocate(host.size() * sizeof(float));
    auto* d = static_cast<float*>(dev.data());
    be.upload(d, host.data(), host.size() * sizeof(float));
    group.allgather(d + 2 * largest * split.shard, d, static_cast<std::size_t>(2 * largest));
    be.download(host.data(), d, host.size() * sizeof(float));
    for (int k = 0; k < split.shards; ++k) {
      const Range r = split_range(full[e.spec.axis], split.shards, k);
      const float* piece = host.data() + 2 * largest * k;
      insert_piece(full, e.spec.axis, r.begin, r.size(), piece, params.data() + w.offset);
      insert_piece(full, e.spec.axis, r.begin, r.size(), piece + largest,
                   momentum.data() + w.offset);
    }
    whole.push_back(w);
  }
  s.params = std::move(whole);
  s.param_values = std::move(params);
  s.momentum_values = std::move(momentum);
  return s;
}

}  // namespace distnet
