#include "distnet/data/sampler.hpp"

#include <string>

#include "distnet/error.hpp"
#include "distnet/philox.hpp"

namespace distnet::data {

Slice split_slice(std::int64_t n, int world, int rank) {
  DISTNET_CHECK(world >= 1 && rank >= 0 && rank < world,
                "rank " + std::to_string(rank) + " outside a world of " + std::to_string(world));
  const std::int64_t base = n / world, extra = n % world;
  const std::int64_t begin = rank * base + std::min<std::int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

Sampler::Sampler(std::int64_t size, std::int64_t batch, bool shuffle, bool drop_last,
                 std::uint64_t seed, std::int64_t offset)
    : size_(size),
      batch_(batch),
      shuffle_(shuffle),
      drop_last_(drop_last),
      seed_(seed),
      offset_(offset) {
  DISTNET_CHECK_USAGE(batch >= 1, "batch size must be at least 1, got " + std::to_string(batch));
  DISTNET_CHECK_USAGE(size >= 0, "dataset size must be >= 0, got " + std::to_string(size));
  DISTNET_CHECK_USAGE(!drop_last || size >= batch,
                      "--drop-last with a batch of " + std::to_string(batch) +
                          " leaves no batch of " + std::to_string(size) + " samples");
  DISTNET_CHECK(offset + size <= (std::int64_t(1) << 32), "dataset too large for 32-bit indices");
}

std::int64_t Sampler::batches_per_epoch() const {
  return drop_last_ ? size_ / batch_ : (size_ + batch_ - 1) / batch_;
}

std::int64_t Sampler::batch_size(std::int64_t b) const {
  return std::min(batch_, size_ - b * batch_);
}

std::vector<std::uint32_t> Sampler::order(std::int64_t epoch) const {
  std::vector<std::uint32_t> v(static_cast<std::size_t>(size_));
  for (std::int64_t i = 0; i < size_; ++i) v[std::size_t(i)] = std::uint32_t(offset_ + i);
  if (!shuffle_) return v;
  // Fisher-Yates: position i swaps with j uniform in [0, i], drawn from 64 random bits by a
  // multiply-shift (bias below 2^-32 for any dataset that fits 32-bit indices).
  for (std::int64_t i = size_ - 1; i > 0; --i) {
    const Philox4 r = philox_block(seed_, RngPurpose::shuffle, 0, static_cast<std::uint32_t>(epoch),
                                   static_cast<std::uint32_t>(i), 0);
    const std::uint64_t bits = std::uint64_t(r.v[0]) << 32 | r.v[1];
    const auto j = static_cast<std::int64_t>(
        (static_cast<unsigned __int128>(bits) * static_cast<std::uint64_t>(i + 1)) >> 64);
    std::swap(v[std::size_t(i)], v[std::size_t(j)]);
  }
  return v;
}

std::vector<std::uint32_t> Sampler::indices(const std::vector<std::uint32_t>& order, std::int64_t b,
                                            Slice part) const {
  const std::int64_t first = b * batch_ + part.begin;
  return {order.begin() + first, order.begin() + first + part.size()};
}

}  // namespace distnet::data
