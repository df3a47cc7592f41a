// Regression tests, on a GPU, for the first review's fixes of the CUDA backend (issue 13): the
// fallback past algorithms cuDNN refuses or whose workspace is too large, no backward-data search
// for a layer whose input gradient is never asked for (the first), cudnnFind*Ex searching with
// scratch memory from the caching allocator, and ReLU as element-wise kernels over flat buffers
// (a flat cuDNN tensor descriptor cannot hold more than INT_MAX elements). The selection rules
// themselves are tested on the CPU (tests/ops/test_conv_choice.cpp). Without a usable GPU each
// test is reported as skipped, with the reason.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <vector>

#include "cuda/allocator.hpp"
#include "cuda/conv_choice.hpp"
#include "cuda/error_model.hpp"
#include "cuda/gpu_skip.hpp"
#include "distnet/backend.hpp"
#include "distnet/cuda_check.hpp"
#include "distnet/gpu.hpp"
#include "ops/gradcheck.hpp"

using namespace distnet;
using namespace distnet::testkit;

namespace {

using Math = gpu::CudaOptions::Math;
using Search = gpu::CudaOptions::ConvSearch;

std::unique_ptr<Backend> gpu_backend(Math m, Search s, std::size_t workspace_limit) {
  gpu::CudaOptions o;
  o.math = m;
  o.conv_search = s;
  o.workspace_limit = workspace_limit;
  return gpu::make_cuda_backend(o);
}

std::vector<float> run_on(Backend& gpu, Conv2dOp& op, int n, const std::vector<float>& x,
                          const std::vector<float>& w, const std::vector<float>& b, float* dx_host,
                          std::size_t dx_count, const std::vector<float>& dy,
                          std::vector<float>* dw_host) {
  auto put = [&](const std::vector<float>& v) {
    Buffer d = gpu.allocate(v.size() * 4);
    gpu.upload(d.data(), v.data(), v.size() * 4);
    return d;
  };
  Buffer gx = put(x), gw = put(w), gb = put(b), gdy = put(dy);
  Buffer gy = gpu.allocate(dy.size() * 4), gdx = gpu.allocate(dx_count * 4 + 4),
         gdw = gpu.allocate(w.size() * 4), gdb = gpu.allocate(b.size() * 4);
  auto f = [](Buffer& buf) { return static_cast<float*>(buf.data()); };
  op.forward(n, f(gx), f(gw), f(gb), f(gy));
  op.backward(n, f(gx), f(gw), f(gdy), dx_host ? f(gdx) : nullptr, f(gdw), f(gdb));
  std::vector<float> y(dy.size());
  gpu.download(y.data(), gy.data(), y.size() * 4);
  if (dx_host) gpu.download(dx_host, gdx.data(), dx_count * 4);
  if (dw_host) {
    dw_host->resize(w.size());
    gpu.download(dw_host->data(), gdw.data(), w.size() * 4);
  }
  return y;
}

// With no workspace allowed, the fastest candidates (which need workspace) are rejected and the
// choice falls back to one that needs none; the results still match the CPU. Both searches, both
// math modes.
TEST(CudaRegressions, ConvFallsBackToAnAlgorithmWithinAZeroWorkspaceLimit) {
  SKIP_WITHOUT_GPU();
  auto cpu = make_cpu_backend(CpuOptions{CpuOptions::ConvAlgorithm::direct});
  const Conv2dGeom g{16, 13, 13, 24, 3, 1, 1};
  const int n = 4;
  const auto x = random_vector(std::int64_t(n) * g.c_in * g.h_in * g.w_in, 61);
  const auto w = random_vector(std::int64_t(g.c_out) * g.c_in * 9, 62);
  const auto b = random_vector(g.c_out, 63);
  const auto dy = random_vector(std::int64_t(n) * g.c_out * g.h_out() * g.w_out(), 64);
  const ProductResults r = run_conv(*cpu, g, n, x, w, b, dy);
  const ProductResults mag = run_conv(*cpu, g, n, abs_of(x), abs_of(w), abs_of(b), abs_of(dy));
  const ConvTerms k = conv_terms(g, n);
  for (Math m : {Math::fp32, Math::tf32})
    for (Search s : {Search::heuristic, Search::find}) {
      auto gpu = gpu_backend(m, s, 0);
      auto op = gpu->make_conv2d(g);
      std::vector<float> dx(x.size()), dw;
      std::vector<float> y;
      ASSERT_NO_THROW(y = run_on(*gpu, *op, n, x, w, b, dx.data(), dx.size(), dy, &dw))
          << "no algorithm within a zero workspace";
      const Arith a = m == Math::fp32 ? Arith::fp32 : Arith::tf32;
      std::printf("workspace limit 0, %s, %s:\n", arith_name(a),
                  s == Search::find ? "find" : "heuristic");
      expect_product_close("forward y", a, k.y, y, r.y, mag.y, true);
      expect_product_close("input gradient dx", a, k.dx, dx, r.dx, mag.dx, true);
      expect_product_close("weight gradient dw", a, k.dw, dw, r.dw, mag.dw, true);
    }
}

// A backward pass without an input gradient (the first layer's) searches only backward-filter;
// backward-data is searched when dx is first asked for, once per batch size.
TEST(CudaRegressions, NoBackwardDataSearchWithoutAnInputGradient) {
  SKIP_WITHOUT_GPU();
  for (Search s : {Search::find, Search::heuristic}) {
    auto gpu = gpu_backend(Math::tf32, s, std::size_t(64) << 20);
    const Conv2dGeom g{3, 35, 35, 8, 11, 4, 0};
    const int n = 3;
    const auto x = random_vector(std::int64_t(n) * g.c_in * g.h_in * g.w_in, 1);
    const auto w = random_vector(std::int64_t(g.c_out) * g.c_in * g.kernel * g.kernel, 2);
    const auto b = random_vector(g.c_out, 3);
    const auto dy = random_vector(std::int64_t(n) * g.c_out * g.h_out() * g.w_out(), 4);
    auto op = gpu->make_conv2d(g);
    const cuda::ConvSearchCounts before = cuda::conv_search_counts();
    run_on(*gpu, *op, n, x, w, b, nullptr, 0, dy, nullptr);
    run_on(*gpu, *op, n, x, w, b, nullptr, 0, dy, nullptr);
    const cuda::ConvSearchCounts first = cuda::conv_search_counts();
    EXPECT_EQ(first.forward - before.forward, 1);
    EXPECT_EQ(first.backward_filter - before.backward_filter, 1);
    EXPECT_EQ(first.backward_data - before.backward_data, 0) << "searched for the first layer";
    std::vector<float> dx(x.size());
    run_on(*gpu, *op, n, x, w, b, dx.data(), dx.size(), dy, nullptr);
    run_on(*gpu, *op, n, x, w, b, dx.data(), dx.size(), dy, nullptr);
    const cuda::ConvSearchCounts asked = cuda::conv_search_counts();
    EXPECT_EQ(asked.backward_data - first.backward_data, 1);
    EXPECT_EQ(asked.forward - first.forward, 0);
    EXPECT_EQ(asked.backward_filter - first.backward_filter, 0);
  }
}

// cudnnFind*Ex searches on scratch from the caching allocator, as large as the workspace limit
// allows; the heuristic search needs none.
TEST(CudaRegressions, FindExSearchesWithTheAllocatorsScratch) {
  SKIP_WITHOUT_GPU();
  const std::size_t limit = std::size_t(32) << 20;
  const Conv2dGeom g{8, 13, 13, 16, 5, 1, 2};
  const int n = 3;
  const auto x = random_vector(std::int64_t(n) * g.c_in * g.h_in * g.w_in, 1);
  const auto w = random_vector(std::int64_t(g.c_out) * g.c_in * g.kernel * g.kernel, 2);
  const auto b = random_vector(g.c_out, 3);
  const auto dy = random_vector(std::int64_t(n) * g.c_out * g.h_out() * g.w_out(), 4);
  {
    auto gpu = gpu_backend(Math::tf32, Search::heuristic, limit);
    auto op = gpu->make_conv2d(g);
    const auto before = cuda::conv_search_counts().find_scratch_bytes;
    run_on(*gpu, *op, n, x, w, b, nullptr, 0, dy, nullptr);
    EXPECT_EQ(cuda::conv_search_counts().find_scratch_bytes, before);
  }
  auto gpu = gpu_backend(Math::tf32, Search::find, limit);
  auto& alloc = cuda::DeviceAllocator::of(gpu->device().index);
  auto op = gpu->make_conv2d(g);
  run_on(*gpu, *op, n, x, w, b, nullptr, 0, dy, nullptr);
  const std::size_t scratch = cuda::conv_search_counts().find_scratch_bytes;
  std::printf("Find*Ex scratch %zu MiB (limit %zu MiB); allocator peak %zu MiB\n", scratch >> 20,
              limit >> 20, alloc.peak_in_use() >> 20);
  EXPECT_GE(scratch, std::size_t(1) << 20);
  EXPECT_GE(alloc.peak_in_use(), scratch);
}

// ReLU over a flat buffer of more than INT_MAX elements, in place as the layers call it: the
// head and the tail (beyond 2^31) come out exact.
TEST(CudaRegressions, ReluKernelsCoverBuffersBeyondIntRange) {
  SKIP_WITHOUT_GPU();
  const std::int64_t count = (std::int64_t(1) << 31) + 77;
  const std::size_t bytes = std::size_t(count) * 4;
  std::size_t free_bytes = 0, total = 0;
  DISTNET_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
  if (free_bytes < 2 * bytes + (std::size_t(2) << 30))
    GTEST_SKIP() << "needs " << ((2 * bytes) >> 30) << " GiB of free device memory, "
                 << (free_bytes >> 30) << " GiB free";
  auto gpu = gpu_backend(Math::fp32, Search::heuristic, std::size_t(64) << 20);
  Buffer x = gpu->allocate(bytes), dy = gpu->allocate(bytes);
  DISTNET_CUDA_CHECK(cudaMemset(x.data(), 0xbf, bytes));   // -1.49...: ReLU gives 0
  DISTNET_CUDA_CHECK(cudaMemset(dy.data(), 0x3f, bytes));  // 0.747...
  const std::int64_t k = 4096;
  const auto head = random_vector(k, 71), tail = random_vector(k, 72);
  const auto dhead = random_vector(k, 73), dtail = random_vector(k, 74);
  auto* px = static_cast<float*>(x.data());
  auto* pdy = static_cast<float*>(dy.data());
  gpu->upload(px, head.data(), k * 4);
  gpu->upload(px + count - k, tail.data(), k * 4);
  gpu->upload(pdy, dhead.data(), k * 4);
  gpu->upload(pdy + count - k, dtail.data(), k * 4);
  gpu->relu_forward(count, px, px);
  gpu->relu_backward(count, px, pdy, pdy);
  auto check = [&](std::int64_t at, const std::vector<float>& v, const std::vector<float>& dv) {
    std::vector<float> y(static_cast<std::size_t>(k)), dx(static_cast<std::size_t>(k));
    gpu->download(y.data(), px + at, k * 4);
    gpu->download(dx.data(), pdy + at, k * 4);
    for (std::size_t i = 0; i < std::size_t(k); ++i) {
      const float want = v[i] > 0 ? v[i] : 0.0f;
      ASSERT_EQ(y[i], want) << "element " << at + std::int64_t(i);
      ASSERT_EQ(dx[i], want > 0 ? dv[i] : 0.0f) << "element " << at + std::int64_t(i);
    }
  };
  check(0, head, dhead);
  check(count - k, tail, dtail);
  float mid[2];
  gpu->download(mid, px + (std::int64_t(1) << 30), 4);
  gpu->download(mid + 1, pdy + (std::int64_t(1) << 30), 4);
  EXPECT_EQ(mid[0], 0.0f);
  EXPECT_EQ(mid[1], 0.0f);
}

}  // namespace
