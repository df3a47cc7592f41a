// The NCCL communicator against MPI on host copies of the same data, under mpiexec (one rank
// per GPU: on a one-GPU machine this runs with one rank). Skipped, with the reason, without GPUs.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <vector>

#include "distnet/bf16.hpp"
#include "distnet/gpu.hpp"
#include "mpi/mpi_util.hpp"

using namespace distnet;
using distnet::testkit::world_rank;
using distnet::testkit::world_size;

namespace {

// Every rank must agree on skipping, or the ranks that go on would wait in NCCL for the others.
std::string skip_reason() {
  std::string why;
  int visible = gpu::usable_devices(&why);
  int fewest = 0;
  MPI_Allreduce(&visible, &fewest, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (fewest == 0) return why.empty() ? "a rank has no GPU" : why;
  return "";
}

#define SKIP_WITHOUT_GPUS()                \
  do {                                     \
    const std::string why = skip_reason(); \
    if (!why.empty()) GTEST_SKIP() << why; \
  } while (0)

std::vector<float> rank_data(std::size_t n) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = std::sin(0.01f * float(i) + float(world_rank())) * 3;
  return v;
}

struct Fixture {
  std::unique_ptr<Backend> be;
  std::unique_ptr<Communicator> nccl, mpi;
  Fixture() {
    gpu::CudaOptions o;
    o.device = 0;  // one GPU per node in the GPU CI; multi-GPU runs use the launcher's binding
    be = gpu::make_cuda_backend(o);
    nccl = gpu::make_nccl_communicator(MPI_COMM_WORLD, *be, 60, "");
    mpi = make_mpi_communicator(MPI_COMM_WORLD);
  }
  std::vector<float> on_gpu(const std::vector<float>& host, const std::function<void(float*)>& op) {
    Buffer b = be->allocate(host.size() * 4);
    be->upload(b.data(), host.data(), host.size() * 4);
    op(static_cast<float*>(b.data()));
    std::vector<float> out(host.size());
    be->download(out.data(), b.data(), host.size() * 4);
    return out;
  }
};

double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, s = 1e-30;
  for (std::size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, double(std::abs(a[i] - b[i])));
    s = std::max(s, double(std::abs(b[i])));
  }
  return d / s;
}

}  // namespace

TEST(Nccl, AllReduceMatchesMpiOnHostCopies) {
  SKIP_WITHOUT_GPUS();
  Fixture f;
  EXPECT_EQ(f.nccl->name(), "nccl");
  EXPECT_EQ(f.nccl->size(), world_size());
  for (std::size_t n : {std::size_t(1), std::size_t(1000), std::size_t(25) << 18}) {
    const auto x = rank_data(n);
    auto want = x;
    f.mpi->allreduce_sum(want.data(), n);
    const auto got = f.on_gpu(x, [&](float* d) { f.nccl->allreduce_sum(d, n); });
    const double e = max_rel(got, want);
    if (world_rank() == 0) std::printf("nccl vs mpi, %zu floats: max relative error %.3g\n", n, e);
    EXPECT_LE(e, 1e-6);
  }
}

TEST(Nccl, AsyncBucketsAndBf16WireMatchMpi) {
  SKIP_WITHOUT_GPUS();
  Fixture f;
  const std::size_t n = 100000;
  const auto x = rank_data(n);
  auto want = x;
  f.mpi->allreduce_sum(want.data(), n);
  auto want_bf16 = x;
  f.mpi->allreduce_sum_async(want_bf16.data(), n, Wire::bf16);
  for (Wire wire : {Wire::fp32, Wire::bf16}) {
    const auto got = f.on_gpu(x, [&](float* d) {
      // Three buckets queued behind the compute stream, then the optimizer's wait.
      f.nccl->allreduce_sum_async(d, 40000, wire);
      f.nccl->allreduce_sum_async(d + 40000, 40000, wire);
      f.nccl->allreduce_sum_async(d + 80000, 20000, wire);
      f.nccl->wait_pending();
    });
    const double e = max_rel(got, wire == Wire::fp32 ? want : want_bf16);
    if (world_rank() == 0)
      std::printf("async %s: max relative error vs mpi %.3g\n",
                  wire == Wire::fp32 ? "fp32" : "bf16", e);
    EXPECT_LE(e, wire == Wire::fp32 ? 1e-6 : 1e-2);
  }
}

TEST(Nccl, BroadcastFromRankZero) {
  SKIP_WITHOUT_GPUS();
  Fixture f;
  const auto x = rank_data(5000);
  const auto got = f.on_gpu(x, [&](float* d) { f.nccl->broadcast(d, 5000 * 4, 0); });
  auto want = x;
  f.mpi->broadcast(want.data(), 5000 * 4, 0);
  EXPECT_EQ(got, want);
}
