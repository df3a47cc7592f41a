// The process grid under mpiexec on 1 to 4 and 6 ranks, for every M that divides N: groups of
// M consecutive ranks, the "same shard" communicator across groups, who holds which shard, the
// byte counters summed over the grid's communicators, and the one-line error for an M that does
// not divide N.
#include <gtest/gtest.h>
#include <mpi.h>

#include <vector>

#include "distnet/grid.hpp"
#include "mpi/mpi_util.hpp"

using namespace distnet;
using distnet::testkit::world_rank;
using distnet::testkit::world_size;

namespace {
const CommunicatorFactory kMpi = [](MPI_Comm c) { return make_mpi_communicator(c); };

std::vector<float> gather_ranks(Communicator& c) {
  std::vector<float> all(std::size_t(c.size()));
  const float mine = float(world_rank());
  c.allgather(&mine, all.data(), 1);
  return all;
}
}  // namespace

TEST(Grid, EveryDivisorMakesGroupsOfConsecutiveRanks) {
  const int n = world_size(), r = world_rank();
  auto world = make_mpi_communicator(MPI_COMM_WORLD);
  for (int m = 1; m <= n; ++m) {
    if (n % m != 0) continue;
    Grid g(MPI_COMM_WORLD, *world, m, kMpi);
    EXPECT_EQ(g.model_parallel(), m);
    EXPECT_EQ(g.groups(), n / m);
    EXPECT_EQ(g.group(), r / m);
    EXPECT_EQ(g.shard(), r % m);
    EXPECT_EQ(g.holder(g.group(), g.shard()), r);
    EXPECT_EQ(g.hybrid(), m > 1);
    EXPECT_EQ(&g.world(), world.get());
    if (m == 1) {
      EXPECT_EQ(g.group_comm(), nullptr);  // today's path: nothing extra is made
      EXPECT_EQ(&g.shard_comm(), world.get());
      continue;
    }
    ASSERT_NE(g.group_comm(), nullptr);
    EXPECT_EQ(g.group_comm()->rank(), g.shard());
    std::vector<float> group_ranks;
    for (int s = 0; s < m; ++s) group_ranks.push_back(float(g.holder(g.group(), s)));
    EXPECT_EQ(gather_ranks(*g.group_comm()), group_ranks) << "m=" << m;
    std::vector<float> shard_ranks;
    for (int k = 0; k < g.groups(); ++k) shard_ranks.push_back(float(g.holder(k, g.shard())));
    EXPECT_EQ(gather_ranks(g.shard_comm()), shard_ranks) << "m=" << m;
    EXPECT_EQ(g.shard_comm().rank(), g.group());

    // Bytes over all three communicators, each by its own rank count.
    g.reset_bytes();
    std::vector<float> v(100, 1.0f);
    g.world().allreduce_sum(v.data(), 100);
    g.group_comm()->allreduce_sum(v.data(), 100);
    g.shard_comm().allreduce_sum(v.data(), 100);
    const double want = ring_bytes_sent(CollectiveOp::allreduce, 400, n) +
                        ring_bytes_sent(CollectiveOp::allreduce, 400, m) +
                        ring_bytes_sent(CollectiveOp::allreduce, 400, n / m);
    EXPECT_DOUBLE_EQ(g.bytes_sent().of(CollectiveOp::allreduce), want);
    EXPECT_EQ(g.bytes_sent().payload[int(CollectiveOp::allreduce)], 1200);
  }
}

TEST(Grid, AnMThatDoesNotDivideTheWorldIsOneLine) {
  auto world = make_mpi_communicator(MPI_COMM_WORLD);
  const int n = world_size();
  EXPECT_THROW(Grid(MPI_COMM_WORLD, *world, 0, kMpi), UsageError);
  try {
    check_grid_shape(n, n + 1);
    FAIL() << "M = N + 1 accepted";
  } catch (const UsageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("--model-parallel " + std::to_string(n + 1) +
                        " does not divide the world of " + std::to_string(n) + " ranks"),
              std::string::npos)
        << what;
    EXPECT_EQ(what.find('\n'), std::string::npos);
  }
  EXPECT_NO_THROW(check_grid_shape(6, 3));
  EXPECT_THROW(check_grid_shape(6, 4), UsageError);
}

TEST(Grid, SplitRangeCoversInOrderSizesDifferByOne) {
  for (int pieces : {1, 2, 3, 4, 6}) {
    for (std::int64_t total : {0, 1, 5, 10, 4096}) {
      std::int64_t next = 0;
      for (int i = 0; i < pieces; ++i) {
        const Range r = split_range(total, pieces, i);
        EXPECT_EQ(r.begin, next);
        EXPECT_LE(r.size(), total / pieces + 1);
        EXPECT_GE(r.size(), total / pieces);
        next = r.end;
      }
      EXPECT_EQ(next, total);
    }
  }
}
