// All-gather, reduce-scatter and the byte counters of the MPI communicator, under mpiexec on 1 to
// 4 ranks, against MPI called directly (the reference): results bit for bit, the in-place forms,
// empty pieces, the watchdog and through-host wrappers (which must forward and not count twice),
// every operation's counted bytes by the ring convention of comm.hpp, and the time counted as
// activation exchange.
#include <gtest/gtest.h>
#include <mpi.h>

#include <unistd.h>

#include <cmath>
#include <vector>

#include "distnet/comm.hpp"
#include "mpi/mpi_util.hpp"

using namespace distnet;
using distnet::testkit::world_rank;
using distnet::testkit::world_size;

namespace {

std::vector<float> rank_data(std::size_t n, int salt = 0) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = std::sin(0.37f * float(i) + 1.3f * float(world_rank() + salt)) * 5.0f;
  return v;
}

std::vector<std::unique_ptr<Communicator>> communicators() {
  std::vector<std::unique_ptr<Communicator>> c;
  c.push_back(make_mpi_communicator(MPI_COMM_WORLD));
  c.push_back(with_watchdog(make_mpi_communicator(MPI_COMM_WORLD), 60, ""));
  // A CPU backend: through_host returns the communicator itself (nothing to stage).
  static auto be = make_cpu_backend();
  c.push_back(through_host(make_mpi_communicator(MPI_COMM_WORLD), *be));
  return c;
}

}  // namespace

TEST(Collectives, AllGatherMatchesMpiAllgatherAlsoInPlaceAndEmpty) {
  const int p = world_size(), r = world_rank();
  for (auto& comm : communicators()) {
    for (std::size_t n : {std::size_t(0), std::size_t(1), std::size_t(777)}) {
      const auto mine = rank_data(n);
      std::vector<float> want(n * std::size_t(p) + 1), got(want.size()), inplace(want.size());
      MPI_Allgather(mine.data(), int(n), MPI_FLOAT, want.data(), int(n), MPI_FLOAT, MPI_COMM_WORLD);
      comm->allgather(mine.data(), got.data(), n);
      EXPECT_EQ(got, want) << comm->name() << " n=" << n;
      std::copy(mine.begin(), mine.end(), inplace.begin() + std::ptrdiff_t(n) * r);
      comm->allgather(inplace.data() + n * std::size_t(r), inplace.data(), n);
      EXPECT_EQ(inplace, want) << comm->name() << " in place, n=" << n;
    }
  }
}

TEST(Collectives, ReduceScatterMatchesMpiReduceScatter) {
  const int p = world_size();
  for (auto& comm : communicators()) {
    for (std::size_t n : {std::size_t(0), std::size_t(1), std::size_t(513)}) {
      const auto all = rank_data(n * std::size_t(p), 3);
      std::vector<float> want(n + 1), got(n + 1), block(n + 1);
      // Bit for bit what MPI_Reduce_scatter with equal counts gives (the call the communicator
      // makes); MPI_Reduce_scatter_block means the same sum, perhaps in another order.
      const std::vector<int> counts(static_cast<std::size_t>(p), static_cast<int>(n));
      MPI_Reduce_scatter(all.data(), want.data(), counts.data(), MPI_FLOAT, MPI_SUM,
                         MPI_COMM_WORLD);
      MPI_Reduce_scatter_block(all.data(), block.data(), int(n), MPI_FLOAT, MPI_SUM,
                               MPI_COMM_WORLD);
      comm->reduce_scatter_sum(all.data(), got.data(), n);
      EXPECT_EQ(got, want) << comm->name() << " n=" << n;
      for (std::size_t i = 0; i < n; ++i)
        EXPECT_NEAR(got[i], block[i], 1e-6f * (1 + std::abs(got[i])));
      // And it is the piece of the all-reduce that belongs to this rank.
      auto sum = all;
      comm->allreduce_sum(sum.data(), sum.size());
      for (std::size_t i = 0; i < n; ++i)
        EXPECT_NEAR(got[i], sum[n * std::size_t(world_rank()) + i], 1e-5f * (1 + std::abs(got[i])));
    }
  }
}

TEST(Collectives, BytesCountedByTheRingConventionPerOperation) {
  const int p = world_size();
  for (auto& comm : communicators()) {
    comm->reset_bytes();
    std::vector<float> a(1000, 1.0f), g(250 * std::size_t(p)), s(250);
    std::vector<double> d(10, 1.0);
    comm->allreduce_sum(a.data(), 1000);                                         // 4000 bytes
    comm->allreduce_sum_async(a.data(), 500, Wire::fp32);                        // 2000 bytes
    comm->allreduce_sum(d.data(), 10);                                           // 80 bytes
    comm->allgather(g.data() + 250 * std::size_t(world_rank()), g.data(), 250);  // 1000 p
    comm->reduce_scatter_sum(g.data(), s.data(), 250);                           // 1000 p
    comm->broadcast(a.data(), 64, 0);
    const CommBytes b = comm->bytes_sent();
    const double f = double(p - 1) / p;
    EXPECT_EQ(b.payload[int(CollectiveOp::allreduce)], 6080);
    EXPECT_EQ(b.payload[int(CollectiveOp::allgather)], 1000 * p);
    EXPECT_EQ(b.payload[int(CollectiveOp::reduce_scatter)], 1000 * p);
    EXPECT_EQ(b.payload[int(CollectiveOp::broadcast)], 64);
    EXPECT_DOUBLE_EQ(b.of(CollectiveOp::allreduce), 2 * f * 6080);
    EXPECT_DOUBLE_EQ(b.of(CollectiveOp::allgather), 1000.0 * (p - 1));
    EXPECT_DOUBLE_EQ(b.of(CollectiveOp::reduce_scatter), 1000.0 * (p - 1));
    EXPECT_DOUBLE_EQ(b.of(CollectiveOp::broadcast), f * 64);
    EXPECT_DOUBLE_EQ(b.total(), 2 * f * 6080 + 2000.0 * (p - 1) + f * 64);
    if (p == 1) EXPECT_EQ(b.total(), 0.0);  // one rank sends nothing
    comm->reset_bytes();
    EXPECT_EQ(comm->bytes_sent().total(), 0.0);
    EXPECT_EQ(comm->bytes_sent().payload[0], 0);
  }
}

TEST(Collectives, Bf16BucketsCountTwoBytesPerValue) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  std::vector<float> a(300, 0.5f);
  comm->allreduce_sum_async(a.data(), 300, Wire::bf16);
  EXPECT_EQ(comm->bytes_sent().payload[int(CollectiveOp::allreduce)], 600);
  EXPECT_DOUBLE_EQ(ring_bytes_sent(CollectiveOp::allreduce, 600, world_size()),
                   comm->bytes_sent().of(CollectiveOp::allreduce));
}

// The activation-exchange time (the benchmark's "activation exchange"): only all-gathers and
// reduce-scatters add to it, and a rank that waits in one for a late peer counts the wait.
TEST(Collectives, ExchangeSecondsCountAllGatherAndReduceScatterWaits) {
  const int p = world_size(), r = world_rank();
  for (auto& comm : communicators()) {
    std::vector<float> a(1000, 1.0f), g(250 * std::size_t(p)), s(250);
    const double e0 = comm->exchange_seconds();
    comm->allreduce_sum(a.data(), 1000);
    comm->allreduce_sum_async(a.data(), 500, Wire::fp32);
    comm->broadcast(a.data(), 64, 0);
    comm->barrier();
    EXPECT_EQ(comm->exchange_seconds(), e0) << comm->name() << ": other collectives add nothing";
    for (int late = 0; late < 2; ++late) {  // rank 0 arrives 200 ms late, first to an all-gather
      comm->barrier();
      if (r == 0) usleep(200000);
      const double before = comm->exchange_seconds();
      if (late == 0)
        comm->allgather(g.data() + 250 * std::size_t(r), g.data(), 250);
      else
        comm->reduce_scatter_sum(g.data(), s.data(), 250);
      const double waited = comm->exchange_seconds() - before;
      EXPECT_GE(waited, 0.0);
      if (p > 1 && r != 0)
        EXPECT_GE(waited, 0.1) << comm->name() << (late ? ": reduce-scatter" : ": all-gather");
      EXPECT_LT(waited, 30.0);
    }
  }
}
