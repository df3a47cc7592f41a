// Every op of the CUDA backend against the CPU backend (direct convolution: the tightest
// rounding) on the same random inputs: forward and every gradient, with two error figures
// printed and bounded -- norm-wise (max |a-b| / max |b|: within 1e-4 in FP32 math, 1e-2 in TF32)
// and per element (|a-b| / (|b| + 1e-3 max |b|): within 1e-3 and 5e-2), so an error confined to
// small elements cannot hide behind the large ones. One convolution is driven with batch sizes
// in turn (as training, the last partial batch and evaluation do), in both math modes and both
// algorithm searches. Then the whole AlexNet forward and backward from the same parameters.
// Without a usable GPU each test is reported as skipped, with the reason.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <thread>
#include <utility>
#include <vector>

#include "cuda/allocator.hpp"
#include "cuda/cuda_backend.hpp"
#include "cuda/gpu_skip.hpp"
#include "cuda/kernels.hpp"
#include "distnet/backend.hpp"
#include "distnet/bf16.hpp"
#include "distnet/cuda_check.hpp"
#include "distnet/data/transform.hpp"
#include "distnet/gpu.hpp"
#include "distnet/model.hpp"
#include "ops/gradcheck.hpp"

using namespace distnet;

namespace distnet::gpu {
// Test names and messages show "fp32"/"tf32" rather than the enum's bytes.
void PrintTo(CudaOptions::Math m, std::ostream* os) {
  *os << (m == CudaOptions::Math::fp32 ? "fp32" : "tf32");
}
}  // namespace distnet::gpu

namespace {

using Math = gpu::CudaOptions::Math;

double tolerance(Math m) {
  return m == Math::fp32 ? 1e-4 : 1e-2;
}
const char* math_name(Math m) {
  return m == Math::fp32 ? "fp32" : "tf32";
}

std::unique_ptr<Backend> gpu_backend(Math m) {
  gpu::CudaOptions o;
  o.math = m;
  return gpu::make_cuda_backend(o);
}

// A float array on the GPU, filled from and read back to host vectors.
class Dev {
 public:
  Dev(Backend& be, const std::vector<float>& host) : be_(&be) {
    buf_ = be.allocate(host.size() * sizeof(float));
    be.upload(buf_.data(), host.data(), host.size() * sizeof(float));
    n_ = host.size();
  }
  Dev(Backend& be, std::size_t n) : Dev(be, std::vector<float>(n, 0.0f)) {}
  float* p() const { return static_cast<float*>(buf_.data()); }
  std::vector<float> get() const {
    std::vector<float> h(n_);
    be_->download(h.data(), buf_.data(), n_ * sizeof(float));
    return h;
  }

 private:
  Backend* be_;
  Buffer buf_;
  std::size_t n_ = 0;
};

// max |a - b| / max |b|: the error relative to the tensor's scale.
double rel_error(const std::vector<float>& gpu, const std::vector<float>& cpu) {
  double diff = 0, scale = 1e-30;
  for (std::size_t i = 0; i < cpu.size(); ++i) {
    diff = std::max(diff, double(std::abs(gpu[i] - cpu[i])));
    scale = std::max(scale, double(std::abs(cpu[i])));
  }
  return diff / scale;
}

// max over elements of |a - b| / (|b| + floor), the floor 1e-3 of the tensor's scale: relative
// error element by element, except for elements that are ~0 at the tensor's scale.
double elementwise_error(const std::vector<float>& gpu, const std::vector<float>& cpu) {
  double scale = 1e-30;
  for (float v : cpu) scale = std::max(scale, double(std::abs(v)));
  const double floor = 1e-3 * scale;
  double worst = 0;
  for (std::size_t i = 0; i < cpu.size(); ++i)
    worst = std::max(worst, std::abs(double(gpu[i]) - cpu[i]) / (std::abs(double(cpu[i])) + floor));
  return worst;
}

double elementwise_tolerance(Math m) {
  return m == Math::fp32 ? 1e-3 : 5e-2;
}

void expect_close(const char* what, Math m, const std::vector<float>& gpu,
                  const std::vector<float>& cpu) {
  ASSERT_EQ(gpu.size(), cpu.size());
  const double e = rel_error(gpu, cpu), pe = elementwise_error(gpu, cpu);
  std::printf("  %-34s %s: max relative error %.3g, per element %.3g\n", what, math_name(m), e, pe);
  EXPECT_LE(e, tolerance(m)) << what;
  EXPECT_LE(pe, elementwise_tolerance(m)) << what << " (per element)";
}

std::unique_ptr<Backend> cpu_reference() {
  return make_cpu_backend(CpuOptions{CpuOptions::ConvAlgorithm::direct});
}

class CudaVsCpu : public ::testing::TestWithParam<Math> {};

TEST_P(CudaVsCpu, Conv2dForwardAndAllGradients) {
  SKIP_WITHOUT_GPU();
  const Math m = GetParam();
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(m);
  // AlexNet-like geometries, small enough for the CPU: 11x11 s4, 5x5 p2, 3x3 p1.
  const Conv2dGeom geoms[] = {
      {3, 35, 35, 8, 11, 4, 0}, {8, 13, 13, 16, 5, 1, 2}, {16, 7, 7, 12, 3, 1, 1}};
  for (const Conv2dGeom& g : geoms) {
    const int n = 3;
    const auto x = testkit::random_vector(std::size_t(n) * g.c_in * g.h_in * g.w_in, 1);
    const auto w = testkit::random_vector(std::size_t(g.c_out) * g.c_in * g.kernel * g.kernel, 2);
    const auto b = testkit::random_vector(std::size_t(g.c_out), 3);
    const std::size_t ny = std::size_t(n) * g.c_out * g.h_out() * g.w_out();
    const auto dy = testkit::random_vector(ny, 4);
    std::vector<float> y(ny), dx(x.size()), dw(w.size()), db(b.size());
    auto cop = cpu->make_conv2d(g);
    cop->forward(n, x.data(), w.data(), b.data(), y.data());
    cop->backward(n, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());

    Dev gx(*gpu, x), gw(*gpu, w), gb(*gpu, b), gy(*gpu, ny), gdy(*gpu, dy), gdx(*gpu, x.size()),
        gdw(*gpu, w.size()), gdb(*gpu, b.size());
    auto op = gpu->make_conv2d(g);
    op->forward(n, gx.p(), gw.p(), gb.p(), gy.p());
    op->backward(n, gx.p(), gw.p(), gdy.p(), gdx.p(), gdw.p(), gdb.p());
    std::printf("conv %dx%d s%d p%d, %d -> %d channels:\n", g.kernel, g.kernel, g.stride, g.pad,
                g.c_in, g.c_out);
    expect_close("forward y", m, gy.get(), y);
    expect_close("input gradient dx", m, gdx.get(), dx);
    expect_close("weight gradient dw", m, gdw.get(), dw);
    expect_close("bias gradient db", m, gdb.get(), db);
  }
}

TEST_P(CudaVsCpu, MaxPoolForwardAndBackward) {
  SKIP_WITHOUT_GPU();
  const Math m = GetParam();
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(m);
  const PoolGeom g{5, 13, 13, 3, 2};
  const int n = 4;
  const auto x = testkit::random_vector(std::size_t(n) * g.c * g.h_in * g.w_in, 5);
  const std::size_t ny = std::size_t(n) * g.c * g.h_out() * g.w_out();
  const auto dy = testkit::random_vector(ny, 6);
  std::vector<float> y(ny), dx(x.size());
  auto cop = cpu->make_max_pool(g);
  cop->forward(n, x.data(), y.data(), true);
  cop->backward(n, dy.data(), dx.data());
  Dev gx(*gpu, x), gy(*gpu, ny), gdy(*gpu, dy), gdx(*gpu, x.size());
  auto op = gpu->make_max_pool(g);
  op->forward(n, gx.p(), gy.p(), true);
  op->backward(n, gdy.p(), gdx.p());
  std::printf("max_pool 3/2:\n");
  expect_close("forward y", m, gy.get(), y);
  expect_close("input gradient dx", m, gdx.get(), dx);
}

TEST_P(CudaVsCpu, AdaptiveAvgPoolForwardAndBackward) {
  SKIP_WITHOUT_GPU();
  const Math m = GetParam();
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(m);
  // 7x7 to 6x6 (AlexNet-torchvision at 256x256 input): neighbouring cells share a row/column.
  for (const AdaptivePoolGeom g :
       {AdaptivePoolGeom{6, 7, 7, 6, 6}, AdaptivePoolGeom{3, 5, 9, 3, 4}}) {
    const int n = 3;
    const auto x = testkit::random_vector(std::size_t(n) * g.c * g.h * g.w, 31);
    const std::size_t ny = std::size_t(n) * g.c * g.oh * g.ow;
    const auto dy = testkit::random_vector(ny, 32);
    std::vector<float> y(ny), dx(x.size());
    cpu->adaptive_avg_pool_forward(n, g, x.data(), y.data());
    cpu->adaptive_avg_pool_backward(n, g, dy.data(), dx.data());
    Dev gx(*gpu, x), gy(*gpu, ny), gdy(*gpu, dy), gdx(*gpu, x.size());
    gpu->adaptive_avg_pool_forward(n, g, gx.p(), gy.p());
    gpu->adaptive_avg_pool_backward(n, g, gdy.p(), gdx.p());
    std::printf("adaptive_avg_pool %dx%d -> %dx%d:\n", g.h, g.w, g.oh, g.ow);
    expect_close("forward y", m, gy.get(), y);
    expect_close("input gradient dx", m, gdx.get(), dx);
  }
}

TEST_P(CudaVsCpu, DenseForwardAndAllGradients) {
  SKIP_WITHOUT_GPU();
  const Math m = GetParam();
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(m);
  const int n = 5, in = 300, out = 70;
  const auto x = testkit::random_vector(std::size_t(n) * in, 7);
  const auto w = testkit::random_vector(std::size_t(out) * in, 8);
  const auto b = testkit::random_vector(std::size_t(out), 9);
  const auto dy = testkit::random_vector(std::size_t(n) * out, 10);
  std::vector<float> y(std::size_t(n) * out), dx(x.size()), dw(w.size()), db(b.size());
  auto cop = cpu->make_dense(in, out);
  cop->forward(n, x.data(), w.data(), b.data(), y.data());
  cop->backward(n, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
  Dev gx(*gpu, x), gw(*gpu, w), gb(*gpu, b), gy(*gpu, y.size()), gdy(*gpu, dy), gdx(*gpu, x.size()),
      gdw(*gpu, w.size()), gdb(*gpu, b.size());
  auto op = gpu->make_dense(in, out);
  op->forward(n, gx.p(), gw.p(), gb.p(), gy.p());
  op->backward(n, gx.p(), gw.p(), gdy.p(), gdx.p(), gdw.p(), gdb.p());
  std::printf("dense 300 -> 70:\n");
  expect_close("forward y", m, gy.get(), y);
  expect_close("input gradient dx", m, gdx.get(), dx);
  expect_close("weight gradient dw", m, gdw.get(), dw);
  expect_close("bias gradient db", m, gdb.get(), db);
}

TEST_P(CudaVsCpu, BatchNormTrainingInferenceAndGradients) {
  SKIP_WITHOUT_GPU();
  const Math m = GetParam();
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(m);
  const int n = 4, c = 6, spatial = 25;
  const auto x = testkit::random_vector(std::size_t(n) * c * spatial, 11, 1.0f, 5.0f);
  const auto gamma = testkit::random_vector(c, 12, 0.5f, 1.5f);
  const auto beta = testkit::random_vector(c, 13);
  const auto dy = testkit::random_vector(x.size(), 14);
  std::vector<float> y(x.size()), yi(x.size()), dx(x.size()), dg(c), dbt(c);
  std::vector<float> rmean(c, 0.1f), rvar(c, 2.0f);
  auto cop = cpu->make_batch_norm(c, spatial, 1e-5f);
  cop->forward_train(n, x.data(), gamma.data(), beta.data(), y.data(), rmean.data(), rvar.data(),
                     0.9f);
  cop->backward(n, x.data(), gamma.data(), dy.data(), dx.data(), dg.data(), dbt.data());
  cop->forward_infer(n, x.data(), gamma.data(), beta.data(), rmean.data(), rvar.data(), yi.data());

  Dev gx(*gpu, x), gg(*gpu, gamma), gbt(*gpu, beta), gy(*gpu, x.size()), gyi(*gpu, x.size()),
      gdy(*gpu, dy), gdx(*gpu, x.size()), gdg(*gpu, c), gdbt(*gpu, c),
      grm(*gpu, std::vector<float>(c, 0.1f)), grv(*gpu, std::vector<float>(c, 2.0f));
  auto op = gpu->make_batch_norm(c, spatial, 1e-5f);
  op->forward_train(n, gx.p(), gg.p(), gbt.p(), gy.p(), grm.p(), grv.p(), 0.9f);
  op->backward(n, gx.p(), gg.p(), gdy.p(), gdx.p(), gdg.p(), gdbt.p());
  op->forward_infer(n, gx.p(), gg.p(), gbt.p(), grm.p(), grv.p(), gyi.p());
  std::printf("batch_norm, 6 channels:\n");
  expect_close("training forward y", m, gy.get(), y);
  expect_close("running mean", m, grm.get(), rmean);
  expect_close("running variance (biased)", m, grv.get(), rvar);
  expect_close("input gradient dx", m, gdx.get(), dx);
  expect_close("gamma gradient", m, gdg.get(), dg);
  expect_close("beta gradient", m, gdbt.get(), dbt);
  expect_close("inference forward y", m, gyi.get(), yi);
}

TEST_P(CudaVsCpu, ReluSoftmaxXentAndSgd) {
  SKIP_WITHOUT_GPU();
  const Math m = GetParam();
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(m);
  const auto x = testkit::random_vector(1000, 15);
  const auto dy = testkit::random_vector(1000, 16);
  std::vector<float> y(1000), dx(1000);
  cpu->relu_forward(1000, x.data(), y.data());
  cpu->relu_backward(1000, y.data(), dy.data(), dx.data());
  Dev gx(*gpu, x), gy(*gpu, 1000), gdy(*gpu, dy), gdx(*gpu, 1000);
  gpu->relu_forward(1000, gx.p(), gy.p());
  gpu->relu_backward(1000, gy.p(), gdy.p(), gdx.p());
  EXPECT_EQ(gy.get(), y);  // exact: no arithmetic
  EXPECT_EQ(gdx.get(), dx);

  const int n = 37, classes = 10;
  const auto logits = testkit::random_vector(std::size_t(n) * classes, 17, -4.0f, 4.0f);
  std::vector<std::int32_t> labels(n);
  for (int i = 0; i < n; ++i) labels[std::size_t(i)] = (i * 7) % classes;
  std::vector<float> dl(logits.size());
  double stats[3] = {0.5, 1.0, 2.0};  // accumulates onto what is there
  cpu->softmax_xent(n, classes, logits.data(), labels.data(), 1.0f / 64, dl.data(), stats);
  Dev glog(*gpu, logits), gdl(*gpu, logits.size());
  Buffer glab = gpu->allocate(sizeof(std::int32_t) * std::size_t(n));
  gpu->upload(glab.data(), labels.data(), sizeof(std::int32_t) * std::size_t(n));
  Buffer gstats = gpu->allocate(3 * sizeof(double));
  const double start[3] = {0.5, 1.0, 2.0};
  gpu->upload(gstats.data(), start, sizeof start);
  gpu->softmax_xent(n, classes, glog.p(), static_cast<const std::int32_t*>(glab.data()), 1.0f / 64,
                    gdl.p(), static_cast<double*>(gstats.data()));
  double got[3];
  gpu->download(got, gstats.data(), sizeof got);
  std::printf("softmax_xent: loss %.9g vs %.9g, correct %g vs %g, top-5 %g vs %g\n", got[0],
              stats[0], got[1], stats[1], got[2], stats[2]);
  EXPECT_NEAR(got[0], stats[0], 1e-9 * std::abs(stats[0]));
  EXPECT_EQ(got[1], stats[1]);
  EXPECT_EQ(got[2], stats[2]);
  expect_close("softmax_xent dlogits", Math::fp32, gdl.get(), dl);

  const std::int64_t count = 1003;  // not a multiple of 4: the scalar path
  for (std::int64_t cnt : {count, std::int64_t(1024)}) {
    auto w = testkit::random_vector(std::size_t(cnt), 18);
    const auto g = testkit::random_vector(std::size_t(cnt), 19);
    auto v = testkit::random_vector(std::size_t(cnt), 20);
    Dev gw(*gpu, w), gg(*gpu, g), gv(*gpu, v);
    const SgdParams p{0.05f, 0.9f, 1e-3f};
    cpu->sgd_update(cnt, w.data(), g.data(), v.data(), p);
    gpu->sgd_update(cnt, gw.p(), gg.p(), gv.p(), p);
    expect_close("sgd weights", Math::fp32, gw.get(), w);
    expect_close("sgd momentum", Math::fp32, gv.get(), v);
  }
}

// Host waits on the GPU are bounded by --comm-timeout: with the compute stream held up (here by a
// host function that sleeps 3 s on it, standing in for a collective a dead peer never joins), a
// download gives up with an error after the timeout (1 s) instead of waiting, and so does the
// backend's destructor. With unbounded waits both would take the full 3 s.
TEST(CudaOps, HostWaitsGiveUpAfterTheTimeout) {
  SKIP_WITHOUT_GPU();
  gpu::CudaOptions o;
  o.host_wait_timeout_s = 1.0;
  auto be = gpu::make_cuda_backend(o);
  auto* cb = dynamic_cast<cuda::CudaBackend*>(be.get());
  ASSERT_NE(cb, nullptr);
  Buffer b = be->allocate(64);
  const auto block = [](void*) { std::this_thread::sleep_for(std::chrono::seconds(3)); };
  using Clock = std::chrono::steady_clock;
  auto seconds_since = [](Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  };
  DISTNET_CUDA_CHECK(cudaLaunchHostFunc(cb->stream(), block, nullptr));
  // download goes through the backend's page-locked bounce buffer: into pageable memory,
  // cudaMemcpyAsync would return only after the held-up stream had passed the copy.
  float host[16] = {};
  auto t0 = Clock::now();
  EXPECT_THROW(be->download(host, b.data(), sizeof host), Error);
  const double download_s = seconds_since(t0);
  // The bounce buffer is still the target of that copy: an upload waits for it, bounded.
  t0 = Clock::now();
  EXPECT_THROW(be->upload(b.data(), host, sizeof host), Error);
  const double upload_s = seconds_since(t0);
  DISTNET_CUDA_CHECK(cudaLaunchHostFunc(cb->stream(), block, nullptr));
  b = Buffer();
  // The destructor's drain gives up; cudnnDestroy and cublasDestroy (which synchronise the
  // device) and cudaFreeHost are then skipped: the handles and the bounce buffer are leaked.
  t0 = Clock::now();
  be.reset();
  const double destroy_s = seconds_since(t0);
  std::printf(
      "download gave up after %.2f s, upload after %.2f s, the destructor after %.2f s (timeout "
      "1 s, stream held 3 s twice)\n",
      download_s, upload_s, destroy_s);
  EXPECT_LT(download_s, 2.5);
  EXPECT_LT(upload_s, 2.5);
  EXPECT_LT(destroy_s, 2.5);
  std::this_thread::sleep_for(std::chrono::seconds(8));  // let the held-up stream drain
}

TEST(CudaOps, DropoutMasksAreTheCpuMasksBitForBit) {
  SKIP_WITHOUT_GPU();
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(Math::fp32);
  const int n = 6;
  const std::int64_t per = 4097;
  const DropoutKey key{99, 5, 3};
  const std::vector<std::uint32_t> ids{3, 1000, 7, 65536, 2, 11};
  const auto x = testkit::random_vector(std::size_t(n * per), 21);
  std::vector<float> y(x.size()), dx(x.size());
  cpu->dropout_forward(n, per, 0.5f, key, ids.data(), x.data(), y.data());
  cpu->dropout_backward(n, per, 0.5f, key, ids.data(), x.data(), dx.data());
  Dev gx(*gpu, x), gy(*gpu, x.size()), gdx(*gpu, x.size());
  Buffer gids = gpu->allocate(ids.size() * 4);
  gpu->upload(gids.data(), ids.data(), ids.size() * 4);
  const auto* pids = static_cast<const std::uint32_t*>(gids.data());
  gpu->dropout_forward(n, per, 0.5f, key, pids, gx.p(), gy.p());
  gpu->dropout_backward(n, per, 0.5f, key, pids, gx.p(), gdx.p());
  EXPECT_EQ(gy.get(), y);
  EXPECT_EQ(gdx.get(), dx);
}

TEST(CudaOps, ResizeNormalizeIsTheCpuTransformBitForBit) {
  SKIP_WITHOUT_GPU();
  auto gpu = gpu_backend(Math::fp32);
  const std::pair<Shape, data::TransformSpec> cases[] = {
      {Shape{1, 28, 28}, {224, {0.2f}, {0.5f}}},
      {Shape{3, 32, 32}, {224, {0.2f, 0.3f, 0.4f}, {0.5f, 0.6f, 0.7f}}},
      {Shape{3, 32, 32}, {20, {}, {}}}};  // shrinking too
  for (const auto& [in, spec] : cases) {
    const data::ImageTransform t(in, spec);
    const int n = 3;
    std::vector<std::uint8_t> raw(std::size_t(n * in.numel()));
    for (std::size_t i = 0; i < raw.size(); ++i) raw[i] = std::uint8_t((i * 37 + i / 5) % 256);
    std::vector<float> want(std::size_t(n * t.output_shape().numel()));
    for (int i = 0; i < n; ++i)
      t.apply(raw.data() + i * in.numel(), want.data() + i * t.output_shape().numel());
    Buffer graw = gpu->allocate(raw.size());
    gpu->upload(graw.data(), raw.data(), raw.size());
    Dev out(*gpu, want.size());
    gpu->resize_normalize(n, t.as_op(), static_cast<const std::uint8_t*>(graw.data()), out.p());
    EXPECT_EQ(out.get(), want) << in.str();
  }
}

TEST(CudaOps, StepsAfterTheFirstAllocateNoDeviceMemory) {
  SKIP_WITHOUT_GPU();
  auto gpu = gpu_backend(Math::tf32);
  ModelConfig mc;
  mc.name = "alexnet";
  Model model(mc, *gpu, 8);
  model.initialize({});
  std::vector<float> x(std::size_t(8 * 224 * 224), 0.5f);
  Buffer gx = gpu->allocate(x.size() * 4);
  gpu->upload(gx.data(), x.data(), x.size() * 4);
  std::vector<std::uint32_t> ids{0, 1, 2, 3, 4, 5, 6, 7};
  Buffer gids = gpu->allocate(32);
  gpu->upload(gids.data(), ids.data(), 32);
  auto step = [&] {
    const StepContext ctx{true, 1, 0, static_cast<const std::uint32_t*>(gids.data())};
    model.forward(ctx, 8, static_cast<const float*>(gx.data()));
    model.backward(ctx, 8, static_cast<const float*>(gx.data()));
    gpu->sgd_update(model.flat_size(), model.param_data(), model.grad_data(), model.momentum_data(),
                    {0.01f, 0.9f, 0.0f});
  };
  step();
  gpu->synchronize();
  auto& alloc = cuda::DeviceAllocator::of(gpu->device().index);
  const std::size_t mallocs = alloc.device_mallocs();
  for (int i = 0; i < 3; ++i) step();
  gpu->synchronize();
  std::printf("AlexNet batch 8: %zu cudaMalloc calls so far, peak %zu MiB in use\n", mallocs,
              alloc.peak_in_use() >> 20);
  EXPECT_EQ(alloc.device_mallocs(), mallocs);
}

TEST(CudaOps, Bf16ConversionKernelsMatchTheHostRounding) {
  SKIP_WITHOUT_GPU();
  auto gpu = gpu_backend(Math::fp32);
  std::vector<float> x = testkit::random_vector(4099, 22, -1e3f, 1e3f);
  x[0] = 1.0f + 1.0f / 256;  // a tie: rounds to even
  std::vector<std::uint16_t> want(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) want[i] = float_to_bf16(x[i]);
  Dev gx(*gpu, x), back(*gpu, x.size());
  Buffer wire = gpu->allocate(x.size() * 2);
  auto* w = static_cast<std::uint16_t*>(wire.data());
  cuda::launch_to_bf16(std::int64_t(x.size()), gx.p(), w, nullptr);
  cuda::launch_from_bf16(std::int64_t(x.size()), w, back.p(), nullptr);
  DISTNET_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<std::uint16_t> got(x.size());
  DISTNET_CUDA_CHECK(cudaMemcpy(got.data(), w, x.size() * 2, cudaMemcpyDeviceToHost));
  EXPECT_EQ(got, want);
  const auto b = back.get();
  for (std::size_t i = 0; i < x.size(); ++i) ASSERT_EQ(b[i], bf16_to_float(want[i])) << i;
}

// The whole AlexNet, forward and backward with dropout, from the same parameters on both
// backends: logits and every gradient.
// One convolution op driven with batch sizes in turn -- training, the last partial batch,
// evaluation, and training again -- as an epoch does. Each batch size has its own plan; a plan
// made later must not change the algorithm or math type an earlier one was chosen with. The
// first layer's call (no input gradient) is included. Both searches, both math modes.
struct AlternatingCase {
  Math math;
  gpu::CudaOptions::ConvSearch search;
};
void PrintTo(const AlternatingCase& c, std::ostream* os) {
  *os << math_name(c.math)
      << (c.search == gpu::CudaOptions::ConvSearch::find ? "/find" : "/heuristic");
}

class ConvBatchSizes : public ::testing::TestWithParam<AlternatingCase> {};

TEST_P(ConvBatchSizes, AlternatingBatchSizesMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const AlternatingCase c = GetParam();
  auto cpu = cpu_reference();
  gpu::CudaOptions o;
  o.math = c.math;
  o.conv_search = c.search;
  auto gpu = gpu::make_cuda_backend(o);
  const Conv2dGeom g{16, 13, 13, 24, 3, 1, 1};  // an AlexNet conv3-like layer, scaled down
  auto cop = cpu->make_conv2d(g);
  auto op = gpu->make_conv2d(g);
  const std::size_t in = std::size_t(g.c_in) * g.h_in * g.w_in;
  const std::size_t out = std::size_t(g.c_out) * g.h_out() * g.w_out();
  const auto w = testkit::random_vector(std::size_t(g.c_out) * g.c_in * g.kernel * g.kernel, 12);
  const auto b = testkit::random_vector(std::size_t(g.c_out), 13);
  Dev gw(*gpu, w), gb(*gpu, b);
  // 8 stands for a training slice, 6 for the last partial batch, 7 for evaluation.
  const struct {
    int n;
    bool backward, input_grad;
  } steps[] = {{8, true, true},  {6, true, true}, {7, false, false}, {8, true, true},
               {8, true, false}, {6, true, true}, {7, false, false}, {8, true, true}};
  int k = 0;
  for (const auto& s : steps) {
    const auto x = testkit::random_vector(std::size_t(s.n) * in, 20 + k);
    const auto dy = testkit::random_vector(std::size_t(s.n) * out, 40 + k);
    ++k;
    std::vector<float> y(std::size_t(s.n) * out), dx(x.size()), dw(w.size()), db(b.size());
    cop->forward(s.n, x.data(), w.data(), b.data(), y.data());
    Dev gx(*gpu, x), gy(*gpu, y.size()), gdy(*gpu, dy), gdx(*gpu, x.size()), gdw(*gpu, w.size()),
        gdb(*gpu, b.size());
    op->forward(s.n, gx.p(), gw.p(), gb.p(), gy.p());
    std::printf("batch %d%s:\n", s.n,
                s.backward ? (s.input_grad ? "" : " (no input gradient)") : " (forward only)");
    expect_close("forward y", c.math, gy.get(), y);
    if (!s.backward) continue;
    cop->backward(s.n, x.data(), w.data(), dy.data(), s.input_grad ? dx.data() : nullptr, dw.data(),
                  db.data());
    op->backward(s.n, gx.p(), gw.p(), gdy.p(), s.input_grad ? gdx.p() : nullptr, gdw.p(), gdb.p());
    if (s.input_grad) expect_close("input gradient dx", c.math, gdx.get(), dx);
    expect_close("weight gradient dw", c.math, gdw.get(), dw);
    expect_close("bias gradient db", c.math, gdb.get(), db);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Plans, ConvBatchSizes,
    ::testing::Values(AlternatingCase{Math::fp32, gpu::CudaOptions::ConvSearch::find},
                      AlternatingCase{Math::tf32, gpu::CudaOptions::ConvSearch::find},
                      AlternatingCase{Math::fp32, gpu::CudaOptions::ConvSearch::heuristic},
                      AlternatingCase{Math::tf32, gpu::CudaOptions::ConvSearch::heuristic}),
    [](const ::testing::TestParamInfo<AlternatingCase>& info) {
      return std::string(math_name(info.param.math)) +
             (info.param.search == gpu::CudaOptions::ConvSearch::find ? "_find" : "_heuristic");
    });

TEST_P(CudaVsCpu, WholeAlexNetForwardAndBackward) {
  SKIP_WITHOUT_GPU();
  const Math m = GetParam();
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(m);
  ModelConfig mc;
  mc.name = "alexnet";
  const int n = 4;
  Model a(mc, *cpu, n), b(mc, *gpu, n);
  a.initialize({});
  b.initialize({});
  const auto x = testkit::random_vector(std::size_t(n) * 224 * 224, 23, 0.0f, 1.0f);
  const std::vector<std::uint32_t> ids{10, 20, 30, 40};
  const std::vector<std::int32_t> labels{1, 3, 5, 7};
  const StepContext cctx{true, 7, 2, ids.data()};
  double stats[3] = {0, 0, 0};
  const float* la = a.forward(cctx, n, x.data());
  std::vector<float> logits_cpu(la, la + n * 10);
  cpu->softmax_xent(n, 10, la, labels.data(), 1.0f / n, a.dlogits(), stats);
  a.backward(cctx, n, x.data());

  Dev gx(*gpu, x);
  Buffer gids = gpu->allocate(16), glab = gpu->allocate(16), gstats = gpu->allocate(24);
  gpu->upload(gids.data(), ids.data(), 16);
  gpu->upload(glab.data(), labels.data(), 16);
  gpu->fill_zero(gstats.data(), 24);
  const StepContext gctx{true, 7, 2, static_cast<const std::uint32_t*>(gids.data())};
  const float* lb = b.forward(gctx, n, gx.p());
  std::vector<float> logits_gpu(std::size_t(n) * 10);
  gpu->download(logits_gpu.data(), lb, logits_gpu.size() * 4);
  gpu->softmax_xent(n, 10, lb, static_cast<const std::int32_t*>(glab.data()), 1.0f / n, b.dlogits(),
                    static_cast<double*>(gstats.data()));
  b.backward(gctx, n, gx.p());
  std::vector<float> grad_gpu(std::size_t(b.flat_size()));
  gpu->download(grad_gpu.data(), b.grad_data(), grad_gpu.size() * 4);
  std::printf("AlexNet, batch 4, dropout on:\n");
  expect_close("logits", m, logits_gpu, logits_cpu);
  for (const ParamEntry& e : a.params()) {
    const auto off = std::size_t(e.offset), len = std::size_t(e.spec.shape.numel());
    std::vector<float> gc(a.grad_data() + off, a.grad_data() + off + len);
    std::vector<float> gg(grad_gpu.begin() + std::ptrdiff_t(off),
                          grad_gpu.begin() + std::ptrdiff_t(off + len));
    expect_close(("gradient " + e.spec.name).c_str(), m, gg, gc);
  }
}

INSTANTIATE_TEST_SUITE_P(Math, CudaVsCpu, ::testing::Values(Math::fp32, Math::tf32),
                         [](const auto& info) { return std::string(math_name(info.param)); });

}  // namespace
