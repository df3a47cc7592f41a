// The device communicator against MPI on host copies of the same data, under mpiexec: the same
// assertions for NCCL on GPU buffers (one rank per GPU, each rank on the GPU its local rank
// picks, as alexnet binds them) and for the MPI communicator on CPU buffers -- so the bucket
// offsets, the bf16 wire and the ordering of async buckets before the optimizer's wait are
// checked on 2 and 3 ranks on any machine, and on every GPU of a GPU machine. The NCCL cases
// skip, with the reason, where the ranks of a node outnumber its GPUs.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <functional>
#include <vector>

#include "distnet/bf16.hpp"
#include "distnet/gpu.hpp"
#include "mpi/mpi_util.hpp"

using namespace distnet;
using distnet::testkit::world_rank;
using distnet::testkit::world_size;

namespace {

enum class Kind { nccl, mpi };

int local_rank_and_size(int* local_size) {
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int r = 0;
  MPI_Comm_rank(node, &r);
  MPI_Comm_size(node, local_size);
  MPI_Comm_free(&node);
  return r;
}

// Every rank must agree on skipping, or the ranks that go on would wait in NCCL for the others.
std::string nccl_skip_reason() {
  std::string why;
  int local_size = 1;
  local_rank_and_size(&local_size);
  const int visible = gpu::usable_devices(&why);
  int short_of = visible < local_size ? 1 : 0, any = 0;
  MPI_Allreduce(&short_of, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (!any) return "";
  if (visible == 0) return why.empty() ? "a rank has no GPU" : why;
  return std::to_string(local_size) + " ranks on a node with " + std::to_string(visible) +
         " GPU(s): NCCL needs one GPU per rank";
}

std::vector<float> rank_data(std::size_t n) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = std::sin(0.01f * float(i) + float(world_rank())) * 3;
  return v;
}

// The communicator under test, on its backend's buffers, and MPI on host memory as reference.
struct Fixture {
  std::unique_ptr<Backend> be;
  std::unique_ptr<Communicator> comm, mpi;
  explicit Fixture(Kind kind) {
    if (kind == Kind::nccl) {
      int local_size = 1;
      gpu::CudaOptions o;
      o.device = local_rank_and_size(&local_size) % gpu::usable_devices(nullptr);
      be = gpu::make_cuda_backend(o);
      comm = gpu::make_nccl_communicator(MPI_COMM_WORLD, *be, 60, "");
    } else {
      be = make_cpu_backend();
      comm = make_mpi_communicator(MPI_COMM_WORLD);
    }
    mpi = make_mpi_communicator(MPI_COMM_WORLD);
  }
  std::vector<float> on_device(const std::vector<float>& host,
                               const std::function<void(float*)>& op) {
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

class DeviceComm : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    if (GetParam() == Kind::nccl) {
      const std::string why = nccl_skip_reason();
      if (!why.empty()) GTEST_SKIP() << why;
    }
  }
};

}  // namespace

TEST_P(DeviceComm, AllReduceMatchesMpiOnHostCopies) {
  Fixture f(GetParam());
  EXPECT_EQ(f.comm->size(), world_size());
  EXPECT_EQ(f.comm->rank(), world_rank());
  for (std::size_t n : {std::size_t(1), std::size_t(1000), std::size_t(25) << 18}) {
    const auto x = rank_data(n);
    auto want = x;
    f.mpi->allreduce_sum(want.data(), n);
    const auto got = f.on_device(x, [&](float* d) { f.comm->allreduce_sum(d, n); });
    const double e = max_rel(got, want);
    if (world_rank() == 0)
      std::printf("%s vs mpi, %zu floats: max relative error %.3g\n", f.comm->name().c_str(), n, e);
    EXPECT_LE(e, 1e-6);
  }
}

// Buckets of uneven sizes at their offsets in one flat buffer, queued one after another and
// ordered before later device work by wait_pending(), as backward and the optimizer use them;
// twice in a row, as consecutive steps do (the second step's first bucket waits for the first
// step's sums).
TEST_P(DeviceComm, AsyncBucketsAtTheirOffsetsAndBf16WireMatchMpi) {
  Fixture f(GetParam());
  const std::size_t n = 100003;
  const std::size_t offsets[] = {0, 40000, 80000, 100000, n};
  const auto x = rank_data(n);
  auto want = x;
  f.mpi->allreduce_sum(want.data(), n);
  auto want_bf16 = x;
  f.mpi->allreduce_sum_async(want_bf16.data(), n, Wire::bf16);
  for (Wire wire : {Wire::fp32, Wire::bf16}) {
    std::vector<float> got;
    for (int step = 0; step < 2; ++step) {
      got = f.on_device(x, [&](float* d) {
        for (int b = 3; b >= 0; --b)  // backward releases the buckets from the last one
          f.comm->allreduce_sum_async(d + offsets[b], offsets[b + 1] - offsets[b], wire);
        f.comm->wait_pending();
      });
    }
    const double e = max_rel(got, wire == Wire::fp32 ? want : want_bf16);
    if (world_rank() == 0)
      std::printf("%s async buckets, %s: max relative error vs mpi %.3g\n", f.comm->name().c_str(),
                  wire == Wire::fp32 ? "fp32" : "bf16", e);
    EXPECT_LE(e, wire == Wire::fp32 ? 1e-6 : 1e-2);
  }
}

TEST_P(DeviceComm, BroadcastFromRankZero) {
  Fixture f(GetParam());
  const auto x = rank_data(5000);
  const auto got = f.on_device(x, [&](float* d) { f.comm->broadcast(d, 5000 * 4, 0); });
  auto want = x;
  f.mpi->broadcast(want.data(), 5000 * 4, 0);
  EXPECT_EQ(got, want);
}

// The hybrid grid's activations: all-gather (also in place) and reduce-scatter on the device
// against MPI on host copies, and the bytes counted the same way by both.
TEST_P(DeviceComm, AllGatherAndReduceScatterMatchMpi) {
  Fixture f(GetParam());
  const std::size_t n = 4099, p = std::size_t(world_size()), r = std::size_t(world_rank());
  const auto mine = rank_data(n);
  std::vector<float> want(n * p);
  f.mpi->allgather(mine.data(), want.data(), n);
  std::vector<float> padded(n * p, 0.0f);
  std::copy(mine.begin(), mine.end(), padded.begin() + std::ptrdiff_t(n * r));
  f.comm->reset_bytes();
  const double e0 = f.comm->exchange_seconds();
  const auto got = f.on_device(padded, [&](float* d) { f.comm->allgather(d + n * r, d, n); });
  EXPECT_EQ(got, want);
  // Timed (NCCL: by events on its stream, read once the device is done). On one rank an in-place
  // all-gather moves nothing and may take no measurable time.
  f.be->synchronize();
  const double e1 = f.comm->exchange_seconds();
  if (p > 1)
    EXPECT_GT(e1, e0);
  else
    EXPECT_GE(e1, e0);
  EXPECT_LT(e1 - e0, 10.0);
  const auto all = rank_data(n * p);
  std::vector<float> want_rs(n);
  f.mpi->reduce_scatter_sum(all.data(), want_rs.data(), n);
  auto got_rs = f.on_device(all, [&](float* d) {
    Buffer out = f.be->allocate(n * 4);
    f.comm->reduce_scatter_sum(d, static_cast<float*>(out.data()), n);
    f.be->copy(d, out.data(), n * 4);
  });
  got_rs.resize(n);
  EXPECT_LE(max_rel(got_rs, want_rs), 1e-6);
  f.be->synchronize();
  if (p > 1)
    EXPECT_GT(f.comm->exchange_seconds(), e1);
  else
    EXPECT_GE(f.comm->exchange_seconds(), e1);
  const CommBytes b = f.comm->bytes_sent();
  EXPECT_DOUBLE_EQ(b.of(CollectiveOp::allgather), double(n * 4 * (p - 1)));
  EXPECT_DOUBLE_EQ(b.of(CollectiveOp::reduce_scatter), double(n * 4 * (p - 1)));
}

// --sync-bn's sums inside a pass: the input is written by device work queued just before the
// call, the result read by device work queued just after it (no host wait in between), with
// gradient buckets in flight on either side, as a backward pass issues them.
TEST_P(DeviceComm, InPassAllReduceIsOrderedWithDeviceWork) {
  Fixture f(GetParam());
  const std::size_t n = 3001, g = 50000, half = g / 2;
  const auto x = rank_data(n), grads = rank_data(g);
  auto want = x, want_grads = grads;
  f.mpi->allreduce_sum(want.data(), n);
  f.mpi->allreduce_sum(want_grads.data(), g);
  Buffer src = f.be->allocate(n * 4), sums = f.be->allocate(n * 4), out = f.be->allocate(n * 4);
  Buffer gb = f.be->allocate(g * 4);
  auto* d = static_cast<float*>(sums.data());
  auto* gp = static_cast<float*>(gb.data());
  f.be->upload(src.data(), x.data(), n * 4);
  f.be->upload(gp, grads.data(), g * 4);
  f.be->synchronize();
  f.comm->reset_bytes();
  for (int step = 0; step < 2; ++step) {  // the second step's first bucket follows the first's
    if (step == 1) f.be->upload(gp, grads.data(), g * 4);
    f.comm->allreduce_sum_async(gp + half, g - half, Wire::fp32);
    f.be->copy(d, src.data(), n * 4);
    f.comm->allreduce_sum_in_pass(d, n);
    f.be->copy(out.data(), d, n * 4);
    f.comm->allreduce_sum_async(gp, half, Wire::fp32);
    f.comm->wait_pending();
  }
  std::vector<float> got(n), got_grads(g);
  f.be->download(got.data(), out.data(), n * 4);
  f.be->download(got_grads.data(), gp, g * 4);
  const double e = max_rel(got, want), eg = max_rel(got_grads, want_grads);
  if (world_rank() == 0)
    std::printf("%s in-pass all-reduce: max relative error vs mpi %.3g (buckets %.3g)\n",
                f.comm->name().c_str(), e, eg);
  EXPECT_LE(e, 1e-6);
  EXPECT_LE(eg, 1e-6);
  EXPECT_EQ(f.comm->bytes_sent().payload[int(CollectiveOp::allreduce)],
            std::int64_t(2 * 4 * (n + g)));
}

INSTANTIATE_TEST_SUITE_P(Comm, DeviceComm, ::testing::Values(Kind::nccl, Kind::mpi),
                         [](const ::testing::TestParamInfo<Kind>& info) {
                           return std::string(info.param == Kind::nccl ? "nccl" : "mpi");
                         });
