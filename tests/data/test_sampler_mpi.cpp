// Run under mpiexec with several ranks: every rank derives the same order from (seed, epoch)
// without communicating, and the ranks' slices, gathered in rank order, are the global batch.
#include <gtest/gtest.h>
#include <mpi.h>

#include "mpi/mpi_util.hpp"

#include "distnet/data/loader.hpp"

using namespace distnet;
using distnet::testkit::world_rank;
using distnet::testkit::world_size;
using namespace distnet::data;

namespace {
std::uint64_t fnv1a(const std::vector<std::uint32_t>& v) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::uint32_t x : v) h = (h ^ x) * 1099511628211ull;
  return h;
}
}  // namespace

TEST(SamplerAcrossRanks, EveryRankDerivesTheSamePermutation) {
  ASSERT_GE(world_size(), 2) << "run under mpiexec -n 2 or more";
  const Sampler s(60000, 128, true, false, 1234);
  for (std::int64_t epoch = 0; epoch < 3; ++epoch) {
    const unsigned long long mine = fnv1a(s.order(epoch));
    std::vector<unsigned long long> all(static_cast<std::size_t>(world_size()));
    MPI_Allgather(&mine, 1, MPI_UNSIGNED_LONG_LONG, all.data(), 1, MPI_UNSIGNED_LONG_LONG,
                  MPI_COMM_WORLD);
    for (int r = 0; r < world_size(); ++r)
      EXPECT_EQ(all[std::size_t(r)], mine) << "rank " << r << " epoch " << epoch;
  }
}

TEST(SamplerAcrossRanks, GatheredSlicesAreTheGlobalBatch) {
  const auto ds = make_synthetic_dataset(Shape{1, 4, 4}, 1000, 10, 5, Split::train);
  const Sampler s(1000, 128, true, false, 99);  // 7 full batches and one of 104
  LoaderOptions o;
  o.rank = world_rank(), o.world = world_size(), o.workers = 2;
  Loader loader(*ds, s, nullptr, o);
  for (std::int64_t b = 0; b < s.batches_per_epoch(); ++b) {
    const Batch mine = loader.next();
    const int n = mine.size();
    std::vector<int> counts(static_cast<std::size_t>(world_size())), displs(counts.size());
    MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD);
    for (std::size_t r = 1; r < counts.size(); ++r) displs[r] = displs[r - 1] + counts[r - 1];
    std::vector<std::uint32_t> gathered(static_cast<std::size_t>(mine.global_size));
    MPI_Allgatherv(mine.sample_ids.data(), n, MPI_UINT32_T, gathered.data(), counts.data(),
                   displs.data(), MPI_UINT32_T, MPI_COMM_WORLD);
    const auto order = s.order(0);
    EXPECT_EQ(gathered, s.indices(order, b, Slice{0, s.batch_size(b)})) << "batch " << b;
    const auto [lo, hi] = std::minmax_element(counts.begin(), counts.end());
    EXPECT_LE(*hi - *lo, 1);
  }
}
