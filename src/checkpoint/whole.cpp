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
  // Parameters, then each optimizer state slot, laid out alike.
  const std::size_t parts = 1 + s.slot_names.size();
  std::vector<std::vector<float>> out(parts);
  auto source = [&](std::size_t p) {
    return p == 0 ? s.param_values.data() : s.slot_values[p - 1].data();
  };
  std::size_t size = 0;
  for (const ParamEntry& e : s.params) {
    ParamEntry w = e;
    w.spec.shape = e.spec.whole_shape();
    w.spec.full = Shape{};
    w.offset = static_cast<std::int64_t>(size);
    const auto n = static_cast<std::size_t>(w.spec.shape.numel());
    size += n;
    for (auto& o : out) o.resize(size);
    if (!e.spec.is_piece()) {
      for (std::size_t p = 0; p < parts; ++p)
        std::copy_n(source(p) + e.offset, n, out[p].begin() + w.offset);
      whole.push_back(w);
      continue;
    }
    // Every shard's piece (parameters, then each slot), padded to the largest piece.
    const Shape& full = e.spec.full;
    const std::int64_t per_index = full.numel() / full[e.spec.axis];
    const std::int64_t largest = split_range(full[e.spec.axis], split.shards, 0).size() * per_index;
    const std::int64_t mine = e.spec.shape.numel();
    const std::int64_t per_shard = std::int64_t(parts) * largest;
    std::vector<float> host(static_cast<std::size_t>(per_shard * split.shards), 0.0f);
    float* own = host.data() + per_shard * split.shard;
    for (std::size_t p = 0; p < parts; ++p)
      std::copy_n(source(p) + e.offset, mine, own + std::int64_t(p) * largest);
    Buffer dev = be.allocate(host.size() * sizeof(float));
    auto* d = static_cast<float*>(dev.data());
    be.upload(d, host.data(), host.size() * sizeof(float));
    group.allgather(d + per_shard * split.shard, d, static_cast<std::size_t>(per_shard));
    be.download(host.data(), d, host.size() * sizeof(float));
    for (int k = 0; k < split.shards; ++k) {
      const Range r = split_range(full[e.spec.axis], split.shards, k);
      for (std::size_t p = 0; p < parts; ++p)
        insert_piece(full, e.spec.axis, r.begin, r.size(),
                     host.data() + per_shard * k + std::int64_t(p) * largest,
                     out[p].data() + w.offset);
    }
    whole.push_back(w);
  }
  s.params = std::move(whole);
  s.param_values = std::move(out[0]);
  for (std::size_t p = 1; p < parts; ++p) s.slot_values[p - 1] = std::move(out[p]);
  return s;
}

}  // namespace distnet
