// The one abort path on a GPU (docs/gpus.md, "Every host wait in src/cuda, and the abort path"):
// one rank, an error thrown in the middle of a step -- gradient buckets queued on the NCCL
// stream behind busy compute work, a pinned progress read in flight -- must end the process
// within --comm-timeout. The child is a death test (the binary run again, "threadsafe" style,
// so it starts CUDA afresh); it exits 1 as alexnet does, or 3 if the end took too long.
#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "cuda/cuda_backend.hpp"
#include "cuda/gpu_skip.hpp"
#include "distnet/abort.hpp"
#include "distnet/comm.hpp"
#include "distnet/gpu.hpp"

using namespace distnet;

namespace {

constexpr double kTimeout = 5.0;

[[noreturn]] void forced_error_mid_step() {
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
  note_mpi_thread_level(provided);
  using Clock = std::chrono::steady_clock;
  Clock::time_point failed;
  {
    gpu::CudaOptions o;
    o.host_wait_timeout_s = kTimeout;
    auto be = gpu::make_cuda_backend(o);
    auto comm = gpu::make_nccl_communicator(MPI_COMM_WORLD, *be, kTimeout, "");
    auto* cb = dynamic_cast<cuda::CudaBackend*>(be.get());
    const std::size_t n = std::size_t(8) << 20;
    Buffer grads = be->allocate(n * sizeof(float));
    be->fill_zero(grads.data(), n * sizeof(float));
    auto read = be->make_async_read(2 * sizeof(double));
    // Mid-step: the compute stream busy for a second, two buckets queued behind it on the
    // communication stream, the progress read queued behind them.
    cudaLaunchHostFunc(
        cb->stream(), [](void*) { std::this_thread::sleep_for(std::chrono::seconds(1)); }, nullptr);
    auto* g = static_cast<float*>(grads.data());
    comm->allreduce_sum_async(g, n / 2, Wire::fp32);
    comm->allreduce_sum_async(g + n / 2, n / 2, Wire::fp32);
    read->start(g);
    try {
      throw Error("forced error mid-step");
    } catch (const std::exception& e) {  // as alexnet's error boundary does
      std::fprintf(stderr, "alexnet: error: %s\n", e.what());
      failed = Clock::now();
      fail_job(1, false);  // one rank: every communicator revoked, then aborted; returns
    }
    // Here the destructors run -- the pinned read, the buffer, the communicator, the backend --
    // after the abort path.
  }
  const double s = std::chrono::duration<double>(Clock::now() - failed).count();
  std::fprintf(stderr, "ended %.2f s after the error (timeout %g s)\n", s, kTimeout);
  MPI_Finalize();  // as alexnet's MpiSession does on a one-rank error exit
  std::exit(s < kTimeout ? 1 : 3);
}

}  // namespace

TEST(AbortGpu, ForcedErrorMidStepEndsWithinTheTimeout) {
  SKIP_WITHOUT_GPU();
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EXIT(forced_error_mid_step(), testing::ExitedWithCode(1), "forced error mid-step");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("the child (set-up, error, abort path, exit) took %.2f s\n", s);
}
