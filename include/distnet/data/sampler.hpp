// Which samples form each global batch, and which part of it each rank takes.
//
// Every epoch, every rank derives the same permutation from (seed, epoch) -- no communication.
// A global batch of B samples is split along the batch axis across the world in rank order, with
// slice sizes that differ by at most one (Gluon's split_and_load, over all ranks of all nodes).
// With --accumulate K the global batch is first split the same way into K consecutive
// micro-batches, each then split over the ranks (data::Batch, the loader).
#pragma once

#include <cstdint>
#include <vector>

namespace distnet::data {

struct Slice {
  std::int64_t begin = 0, end = 0;  // positions [begin, end)
  std::int64_t size() const { return end - begin; }
};

// Rank r's part of n items split over `world` ranks: sizes floor(n/world) or one more, the larger
// ones first. Also the evaluation shard of a test set of n samples.
Slice split_slice(std::int64_t n, int world, int rank);

class Sampler {
 public:
  // Samples `offset .. offset + size - 1` of a dataset, in batches of `batch`.
  Sampler(std::int64_t size, std::int64_t batch, bool shuffle, bool drop_last, std::uint64_t seed,
          std::int64_t offset = 0);

  std::int64_t size() const { return size_; }
  std::int64_t batch() const { return batch_; }
  std::int64_t batches_per_epoch() const;
  std::int64_t batch_size(std::int64_t b) const;  // B, or fewer for a kept last partial batch

  // The epoch's order of samples (dataset indices): identity without shuffling, else a
  // Fisher-Yates shuffle driven by Philox(seed, epoch) -- the same on every rank.
  std::vector<std::uint32_t> order(std::int64_t epoch) const;

  // Dataset indices at positions `part` of batch b, given that epoch's order().
  std::vector<std::uint32_t> indices(const std::vector<std::uint32_t>& order, std::int64_t b,
                                     Slice part) const;

 private:
  std::int64_t size_, batch_;
  bool shuffle_, drop_last_;
  std::uint64_t seed_;
  std::int64_t offset_;
};

}  // namespace distnet::data
