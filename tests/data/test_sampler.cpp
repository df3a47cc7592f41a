#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "distnet/data/sampler.hpp"
#include "distnet/error.hpp"

using namespace distnet::data;

TEST(Split, Batch128OverCommonWorldSizes) {
  for (int world : {1, 2, 3, 5, 8}) {
    std::int64_t covered = 0, smallest = 128, largest = 0;
    for (int r = 0; r < world; ++r) {
      const Slice s = split_slice(128, world, r);
      EXPECT_EQ(s.begin, covered) << "world " << world << " rank " << r;  // contiguous, rank order
      covered = s.end;
      smallest = std::min(smallest, s.size());
      largest = std::max(largest, s.size());
    }
    EXPECT_EQ(covered, 128) << "world " << world;
    EXPECT_LE(largest - smallest, 1) << "world " << world;
  }
  // 128 = 3 * 42 + 2: ranks 0 and 1 take 43, rank 2 takes 42.
  EXPECT_EQ(split_slice(128, 3, 0).size(), 43);
  EXPECT_EQ(split_slice(128, 3, 1).size(), 43);
  EXPECT_EQ(split_slice(128, 3, 2).size(), 42);
  EXPECT_EQ(split_slice(128, 5, 4).begin, 103);  // 26+26+26+25
}

TEST(Split, BatchSmallerThanTheWorldLeavesEmptySlices) {
  // 3 samples over 5 ranks: 1, 1, 1, 0, 0.
  const std::int64_t expect[] = {1, 1, 1, 0, 0};
  for (int r = 0; r < 5; ++r) EXPECT_EQ(split_slice(3, 5, r).size(), expect[r]);
  EXPECT_EQ(split_slice(0, 4, 2).size(), 0);
}

TEST(Sampler, LastPartialBatchKeptOrDropped) {
  const Sampler keep(1000, 128, true, false, 1);
  EXPECT_EQ(keep.batches_per_epoch(), 8);
  EXPECT_EQ(keep.batch_size(7), 1000 - 7 * 128);  // 104
  const Sampler drop(1000, 128, true, true, 1);
  EXPECT_EQ(drop.batches_per_epoch(), 7);
  EXPECT_EQ(drop.batch_size(6), 128);
  // The last partial batch of 104 still splits exactly over 3 ranks: 35, 35, 34.
  EXPECT_EQ(split_slice(keep.batch_size(7), 3, 2).size(), 34);
}

TEST(Sampler, OrderIsAPermutationFromSeedAndEpoch) {
  const Sampler s(60000, 128, true, false, 42);
  const auto e0 = s.order(0);
  auto sorted = e0;
  std::sort(sorted.begin(), sorted.end());
  for (std::uint32_t i = 0; i < 60000; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_EQ(e0, Sampler(60000, 128, true, false, 42).order(0));  // any rank, any time
  EXPECT_NE(e0, s.order(1));                                     // next epoch
  EXPECT_NE(e0, Sampler(60000, 128, true, false, 43).order(0));  // other seed
  // Actually shuffled: few fixed points (expected about 1).
  int fixed = 0;
  for (std::uint32_t i = 0; i < 60000; ++i) fixed += e0[i] == i;
  EXPECT_LT(fixed, 10);
}

TEST(Sampler, RankSlicesReassembleTheGlobalBatch) {
  const Sampler s(1000, 128, true, false, 5);
  const auto order = s.order(3);
  for (std::int64_t b : {0, 7}) {
    const auto whole = s.indices(order, b, Slice{0, s.batch_size(b)});
    std::vector<std::uint32_t> joined;
    for (int r = 0; r < 5; ++r) {
      const auto part = s.indices(order, b, split_slice(s.batch_size(b), 5, r));
      joined.insert(joined.end(), part.begin(), part.end());
    }
    EXPECT_EQ(joined, whole) << "batch " << b;
  }
}

TEST(Sampler, UnshuffledWithOffsetForEvaluationShards) {
  const Sampler s(10, 4, false, false, 0, 100);
  const auto order = s.order(0);
  EXPECT_EQ(order.front(), 100u);
  EXPECT_EQ(order.back(), 109u);
  EXPECT_EQ(s.batches_per_epoch(), 3);
  EXPECT_EQ(s.indices(order, 2, Slice{0, s.batch_size(2)}), (std::vector<std::uint32_t>{108, 109}));
}

TEST(Sampler, EvaluationShardsCoverEverySampleOnce) {
  for (int world : {1, 2, 3, 7}) {
    std::set<std::int64_t> seen;
    for (int r = 0; r < world; ++r) {
      const Slice sh = split_slice(10000, world, r);
      for (std::int64_t i = sh.begin; i < sh.end; ++i) EXPECT_TRUE(seen.insert(i).second);
    }
    EXPECT_EQ(seen.size(), 10000u);
  }
}

TEST(Sampler, RejectsBadBatchAndDropLastEverything) {
  EXPECT_THROW(Sampler(10, 0, true, false, 0), distnet::UsageError);
  EXPECT_THROW(Sampler(10, 16, true, true, 0), distnet::UsageError);
}
