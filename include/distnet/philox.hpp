// Philox4x32-10 (Salmon et al., SC'11): a counter-based RNG, i.e. a pure function of a 128-bit
// counter and a 64-bit key. Used wherever distnet needs randomness that must come out the same on
// any rank split and on either backend (dropout masks, initialisers, synthetic data); the same
// code compiles for host and device.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define DISTNET_HD __host__ __device__ __forceinline__
#else
#define DISTNET_HD inline
#endif

namespace distnet {

struct Philox4 {
  std::uint32_t v[4];
};

DISTNET_HD Philox4 philox4x32_10(Philox4 ctr, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = static_cast<std::uint64_t>(kM0) * ctr.v[0];
    const std::uint64_t p1 = static_cast<std::uint64_t>(kM1) * ctr.v[2];
    const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32),
                        lo0 = static_cast<std::uint32_t>(p0);
    const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32),
                        lo1 = static_cast<std::uint32_t>(p1);
    ctr = Philox4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
    k0 += kW0;
    k1 += kW1;
  }
  return ctr;
}

// What a random stream is for; goes into the counter so streams never overlap.
enum class RngPurpose : std::uint32_t {
  dropout = 0,
  init = 1,
  synthetic = 2,
  shuffle = 3,
  augment = 4
};

// The counter layout used throughout distnet (documented in docs/randomness.md):
//   c0 = block index within the item (element / 4), c1 = item (e.g. global sample index),
//   c2 = purpose << 24 | stream (e.g. layer id), c3 = step.   key = the 64-bit seed.
DISTNET_HD Philox4 philox_block(std::uint64_t seed, RngPurpose purpose, std::uint32_t stream,
                                std::uint32_t step, std::uint32_t item, std::uint32_t block) {
  return philox4x32_10(
      Philox4{
          {block, item, (static_cast<std::uint32_t>(purpose) << 24) | (stream & 0xFFFFFFu), step}},
      static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

// Uniform float in [0, 1) with 24 random bits (exactly representable, identical on any device).
DISTNET_HD float philox_uniform(std::uint32_t r) {
  return static_cast<float>(r >> 8) * (1.0f / 16777216.0f);
}

// Dropout keeps element e of sample `item` iff its 32-bit draw is below this threshold; an integer
// comparison, so CPU and GPU agree bit for bit. keep_prob in (0, 1].
DISTNET_HD std::uint64_t dropout_threshold(float keep_prob) {
  return static_cast<std::uint64_t>(static_cast<double>(keep_prob) * 4294967296.0);
}

DISTNET_HD bool dropout_keep(std::uint64_t seed, std::uint32_t layer, std::uint32_t step,
                             std::uint32_t item, std::uint32_t element, std::uint64_t threshold) {
  const Philox4 r = philox_block(seed, RngPurpose::dropout, layer, step, item, element >> 2);
  return static_cast<std::uint64_t>(r.v[element & 3u]) < threshold;
}

}  // namespace distnet
