// Every op of the CUDA backend against the CPU backend (direct convolution: the tightest
// rounding) on the same random inputs: forward and every gradient, with two error figures
// printed and bounded by the error model of tests/cuda/error_model.hpp (docs/gpu-validation.md,
// "The error model"): convolutions and dense products per element against their magnitude
// sum |a||b|, with bounds derived from TF32 operand rounding and FP32 accumulation (shown to hold,
// and to catch wrong ops, on the CPU by test_ops ErrorModel.*); the other ops by the older FP32
// figures. One convolution is driven with batch sizes in turn (as training, the last partial
// batch and evaluation do), in both math modes and both algorithm searches. Then the whole
// AlexNet: teacher-forced layer by layer, logits and loss end to end, and a short training run
// (tests/model/model_check.hpp, exercised on the CPU by test_model ModelCheck.*).
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
#include "cuda/error_model.hpp"
#include "cuda/gpu_skip.hpp"
#include "cuda/kernels.hpp"
#include "distnet/backend.hpp"
#include "distnet/bf16.hpp"
#include "distnet/cuda_check.hpp"
#include "distnet/data/transform.hpp"
#include "distnet/gpu.hpp"
#include "distnet/model.hpp"
#include "model/model_check.hpp"
#include "ops/gradcheck.hpp"

using namespace distnet;
using namespace distnet::testkit;

namespace distnet::gpu {
// Test names and messages show "fp32"/"tf32" rather than the enum's bytes.
void PrintTo(CudaOptions::Math m, std::ostream* os) {
  *os << (m == CudaOptions::Math::fp32 ? "fp32" : "tf32");
}
}  // namespace distnet::gpu

namespace {

using Math = gpu::CudaOptions::Math;

Arith arith(Math m) {
  return m == Math::fp32 ? Arith::fp32 : Arith::tf32;
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
    const ProductResults r = run_conv(*cpu, g, n, x, w, b, dy);
    const ProductResults mag = run_conv(*cpu, g, n, abs_of(x), abs_of(w), abs_of(b), abs_of(dy));

    Dev gx(*gpu, x), gw(*gpu, w), gb(*gpu, b), gy(*gpu, ny), gdy(*gpu, dy), gdx(*gpu, x.size()),
        gdw(*gpu, w.size()), gdb(*gpu, b.size());
    auto op = gpu->make_conv2d(g);
    op->forward(n, gx.p(), gw.p(), gb.p(), gy.p());
    op->backward(n, gx.p(), gw.p(), gdy.p(), gdx.p(), gdw.p(), gdb.p());
    std::printf("conv %dx%d s%d p%d, %d -> %d channels:\n", g.kernel, g.kernel, g.stride, g.pad,
                g.c_in, g.c_out);
    const ConvTerms k = conv_terms(g, n);
    const bool tx = transforms_possible(g);
    expect_product_close("forward y", arith(m), k.y, gy.get(), r.y, mag.y, tx);
    expect_product_close("input gradient dx", arith(m), k.dx, gdx.get(), r.dx, mag.dx, tx);
    expect_product_close("weight gradient dw", arith(m), k.dw, gdw.get(), r.dw, mag.dw, tx);
    expect_sum_close("bias gradient db", k.db, gdb.get(), r.db, mag.db);
  }
}

// torchvision's ResNet convolutions (no bias: a batch norm follows) and grouped ones: cuDNN with
// the bias add and its gradient skipped, and the group count on every convolution descriptor.
TEST_P(CudaVsCpu, Conv2dWithoutBiasAndInGroups) {
  SKIP_WITHOUT_GPU();
  const Math m = GetParam();
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(m);
  const Conv2dGeom geoms[] = {{3, 35, 35, 16, 7, 2, 3, 1, false},
                              {16, 9, 9, 24, 1, 2, 0, 1, false},
                              {16, 9, 9, 24, 3, 1, 1, 4, true},
                              {12, 10, 10, 12, 3, 2, 1, 12, false}};
  for (const Conv2dGeom& g : geoms) {
    const int n = 3;
    const auto x = testkit::random_vector(std::size_t(n) * g.c_in * g.h_in * g.w_in, 1);
    const auto w =
        testkit::random_vector(std::size_t(g.c_out) * g.c_in_per_group() * g.kernel * g.kernel, 2);
    const auto b = testkit::random_vector(std::size_t(g.c_out), 3);
    const std::size_t ny = std::size_t(n) * g.c_out * g.h_out() * g.w_out();
    const auto dy = testkit::random_vector(ny, 4);
    const ProductResults r = run_conv(*cpu, g, n, x, w, b, dy);
    const ProductResults mag = run_conv(*cpu, g, n, abs_of(x), abs_of(w), abs_of(b), abs_of(dy));

    Dev gx(*gpu, x), gw(*gpu, w), gb(*gpu, b), gy(*gpu, ny), gdy(*gpu, dy), gdx(*gpu, x.size()),
        gdw(*gpu, w.size()), gdb(*gpu, b.size());
    auto op = gpu->make_conv2d(g);
    op->forward(n, gx.p(), gw.p(), g.bias ? gb.p() : nullptr, gy.p());
    op->backward(n, gx.p(), gw.p(), gdy.p(), gdx.p(), gdw.p(), g.bias ? gdb.p() : nullptr);
    std::printf("conv %dx%d s%d p%d, %d -> %d channels in %d groups, %s:\n", g.kernel, g.kernel,
                g.stride, g.pad, g.c_in, g.c_out, g.groups, g.bias ? "bias" : "no bias");
    const ConvTerms k = conv_terms(g, n);
    const bool tx = transforms_possible(g);
    expect_product_close("forward y", arith(m), k.y, gy.get(), r.y, mag.y, tx);
    expect_product_close("input gradient dx", arith(m), k.dx, gdx.get(), r.dx, mag.dx, tx);
    expect_product_close("weight gradient dw", arith(m), k.dw, gdw.get(), r.dw, mag.dw, tx);
    if (g.bias) expect_sum_close("bias gradient db", k.db, gdb.get(), r.db, mag.db);
    // A bias-less op never touches a bias: the buffer for one keeps its values.
    if (!g.bias) EXPECT_EQ(gdb.get(), std::vector<float>(b.size(), 0.0f));
  }
}

TEST_P(CudaVsCpu, MaxPoolForwardAndBackward) {
  SKIP_WITHOUT_GPU();
  const Math m = GetParam();
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(m);
  // AlexNet's 3/2, ResNet's stem pool 3/2 p1 and GoogLeNet's 3/1 p1. The inputs lie in [-3, -1]:
  // a padded position that took part would win (as 0) every window at the border.
  for (const PoolGeom g :
       {PoolGeom{5, 13, 13, 3, 2}, PoolGeom{4, 12, 11, 3, 2, 1}, PoolGeom{3, 9, 9, 3, 1, 1}}) {
    const int n = 4;
    auto x = testkit::random_vector(std::size_t(n) * g.c * g.h_in * g.w_in, 5);
    if (g.pad > 0)
      for (auto& v : x) v -= 2.0f;
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
    std::printf("max_pool %d/%d p%d on %dx%d:\n", g.kernel, g.stride, g.pad, g.h_in, g.w_in);
    expect_fp32_op_close("forward y", gy.get(), y);
    expect_fp32_op_close("input gradient dx", gdx.get(), dx);
  }
}

TEST_P(CudaVsCpu, AvgPoolForwardAndBackward) {
  SKIP_WITHOUT_GPU();
  const Math m = GetParam();
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(m);
  // d2l's 2/2 transition, GoogLeNet's 3/1 p1 and Inception v1's 5/3 aux pool, with the padding
  // counted in the divisor (PyTorch's default) and left out.
  for (const bool count : {true, false})
    for (const PoolGeom g :
         {PoolGeom{6, 12, 12, 2, 2}, PoolGeom{4, 9, 10, 3, 1, 1}, PoolGeom{3, 14, 14, 5, 3, 2}}) {
      const int n = 3;
      const auto x = testkit::random_vector(std::size_t(n) * g.c * g.h_in * g.w_in, 33);
      const std::size_t ny = std::size_t(n) * g.c * g.h_out() * g.w_out();
      const auto dy = testkit::random_vector(ny, 34);
      std::vector<float> y(ny), dx(x.size());
      auto cop = cpu->make_avg_pool(g, count);
      cop->forward(n, x.data(), y.data());
      cop->backward(n, x.data(), y.data(), dy.data(), dx.data());
      Dev gx(*gpu, x), gy(*gpu, ny), gdy(*gpu, dy), gdx(*gpu, x.size());
      auto op = gpu->make_avg_pool(g, count);
      op->forward(n, gx.p(), gy.p());
      op->backward(n, gx.p(), gy.p(), gdy.p(), gdx.p());
      std::printf("avg_pool %d/%d p%d on %dx%d, padding %s:\n", g.kernel, g.stride, g.pad, g.h_in,
                  g.w_in, count ? "counted" : "left out");
      expect_fp32_op_close("forward y", gy.get(), y);
      expect_fp32_op_close("input gradient dx", gdx.get(), dx);
    }
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
    expect_fp32_op_close("forward y", gy.get(), y);
    expect_fp32_op_close("input gradient dx", gdx.get(), dx);
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
  const ProductResults r = run_dense(*cpu, in, out, n, x, w, b, dy);
  const ProductResults mag =
      run_dense(*cpu, in, out, n, abs_of(x), abs_of(w), abs_of(b), abs_of(dy));
  Dev gx(*gpu, x), gw(*gpu, w), gb(*gpu, b), gy(*gpu, r.y.size()), gdy(*gpu, dy),
      gdx(*gpu, x.size()), gdw(*gpu, w.size()), gdb(*gpu, b.size());
  auto op = gpu->make_dense(in, out);
  op->forward(n, gx.p(), gw.p(), gb.p(), gy.p());
  op->backward(n, gx.p(), gw.p(), gdy.p(), gdx.p(), gdw.p(), gdb.p());
  std::printf("dense 300 -> 70:\n");
  const ConvTerms k = dense_terms(in, out, n);
  expect_product_close("forward y", arith(m), k.y, gy.get(), r.y, mag.y);
  expect_product_close("input gradient dx", arith(m), k.dx, gdx.get(), r.dx, mag.dx);
  expect_product_close("weight gradient dw", arith(m), k.dw, gdw.get(), r.dw, mag.dw);
  expect_sum_close("bias gradient db", k.db, gdb.get(), r.db, mag.db);
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
  expect_fp32_op_close("training forward y", gy.get(), y);
  expect_fp32_op_close("running mean", grm.get(), rmean);
  expect_fp32_op_close("running variance (biased)", grv.get(), rvar);
  expect_fp32_op_close("input gradient dx", gdx.get(), dx);
  expect_fp32_op_close("gamma gradient", gdg.get(), dg);
  expect_fp32_op_close("beta gradient", gdbt.get(), dbt);
  expect_fp32_op_close("inference forward y", gyi.get(), yi);
}

// --sync-bn's op on a batch cut into slices (one empty), each on its own op, every sum added
// over the slices on the host where the layer all-reduces it; the same calls on either backend.
struct SyncBnResult {
  std::vector<float> y, dx, dgamma, dbeta, rmean, rvar;
};
SyncBnResult sync_bn_slices(Backend& be, const std::vector<int>& rows, int c, int spatial,
                            const std::vector<float>& x, const std::vector<float>& dy,
                            const std::vector<float>& gamma, const std::vector<float>& beta) {
  const std::size_t per = std::size_t(c) * std::size_t(spatial), cs = std::size_t(c);
  // Sums a device buffer of `count` floats per slice over the slices, in place.
  auto all_reduce = [&](std::vector<std::unique_ptr<Dev>>& bufs, std::size_t count) {
    std::vector<float> total(count, 0.0f);
    for (auto& b : bufs) {
      const auto v = b->get();
      for (std::size_t i = 0; i < count; ++i) total[i] += v[i];
    }
    for (auto& b : bufs) be.upload(b->p(), total.data(), count * sizeof(float));
  };
  Dev g(be, gamma), bt(be, beta);
  std::vector<std::unique_ptr<SyncBatchNormOp>> ops;
  std::vector<std::unique_ptr<Dev>> xs, dys, ys, dxs, sums, squares, grads, dg, db, rm, rv;
  std::size_t at = 0;
  for (int n : rows) {
    const std::size_t len = std::size_t(n) * per;
    ops.push_back(be.make_sync_batch_norm(c, spatial, 1e-5f));
    // An empty slice still gets (one-float) buffers: the op must not touch them.
    auto part = [&](const std::vector<float>& v) {
      std::vector<float> p(v.begin() + std::ptrdiff_t(at), v.begin() + std::ptrdiff_t(at + len));
      if (p.empty()) p.push_back(0.0f);
      return std::make_unique<Dev>(be, p);
    };
    xs.push_back(part(x));
    dys.push_back(part(dy));
    ys.push_back(std::make_unique<Dev>(be, std::max<std::size_t>(len, 1)));
    dxs.push_back(std::make_unique<Dev>(be, std::max<std::size_t>(len, 1)));
    sums.push_back(std::make_unique<Dev>(be, cs + 1));
    squares.push_back(std::make_unique<Dev>(be, cs));
    grads.push_back(std::make_unique<Dev>(be, 2 * cs));
    dg.push_back(std::make_unique<Dev>(be, cs));
    db.push_back(std::make_unique<Dev>(be, cs));
    rm.push_back(std::make_unique<Dev>(be, std::vector<float>(cs, 0.1f)));
    rv.push_back(std::make_unique<Dev>(be, std::vector<float>(cs, 2.0f)));
    at += len;
  }
  for (std::size_t r = 0; r < rows.size(); ++r) ops[r]->sum(rows[r], xs[r]->p(), sums[r]->p());
  all_reduce(sums, cs + 1);
  for (std::size_t r = 0; r < rows.size(); ++r)
    ops[r]->sum_squares(rows[r], xs[r]->p(), sums[r]->p(), squares[r]->p());
  all_reduce(squares, cs);
  for (std::size_t r = 0; r < rows.size(); ++r)
    ops[r]->normalize(rows[r], xs[r]->p(), g.p(), bt.p(), sums[r]->p(), squares[r]->p(), ys[r]->p(),
                      rm[r]->p(), rv[r]->p(), 0.9f);
  for (std::size_t r = 0; r < rows.size(); ++r)
    ops[r]->grad_sums(rows[r], xs[r]->p(), dys[r]->p(), grads[r]->p(), dg[r]->p(), db[r]->p());
  all_reduce(grads, 2 * cs);
  for (std::size_t r = 0; r < rows.size(); ++r)
    ops[r]->grad_input(rows[r], xs[r]->p(), g.p(), dys[r]->p(), grads[r]->p(), dxs[r]->p());
  SyncBnResult out;
  out.dgamma.assign(cs, 0.0f), out.dbeta.assign(cs, 0.0f);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const std::size_t len = std::size_t(rows[r]) * per;
    const auto y = ys[r]->get(), dxv = dxs[r]->get(), dgv = dg[r]->get(), dbv = db[r]->get();
    out.y.insert(out.y.end(), y.begin(), y.begin() + std::ptrdiff_t(len));
    out.dx.insert(out.dx.end(), dxv.begin(), dxv.begin() + std::ptrdiff_t(len));
    for (std::size_t ch = 0; ch < cs; ++ch) out.dgamma[ch] += dgv[ch], out.dbeta[ch] += dbv[ch];
    // Every slice, the empty one too, ends with the same running statistics.
    EXPECT_EQ(rm[r]->get(), rm[0]->get());
    EXPECT_EQ(rv[r]->get(), rv[0]->get());
  }
  out.rmean = rm[0]->get(), out.rvar = rv[0]->get();
  return out;
}

TEST_P(CudaVsCpu, SyncBatchNormSlicesAgainstTheCpu) {
  SKIP_WITHOUT_GPU();
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(GetParam());
  // After a convolution (spatial), and after a dense layer (1-D, many channels, strided).
  for (const auto& [c, spatial] : {std::pair{6, 25}, std::pair{300, 1}}) {
    const std::vector<int> rows{3, 0, 4};
    const std::size_t count = std::size_t(7) * std::size_t(c) * std::size_t(spatial);
    const auto x = testkit::random_vector(std::int64_t(count), 61, 1.0f, 5.0f);
    const auto dy = testkit::random_vector(std::int64_t(count), 62);
    const auto gamma = testkit::random_vector(c, 63, 0.5f, 1.5f);
    const auto beta = testkit::random_vector(c, 64);
    const SyncBnResult r = sync_bn_slices(*cpu, rows, c, spatial, x, dy, gamma, beta);
    const SyncBnResult g = sync_bn_slices(*gpu, rows, c, spatial, x, dy, gamma, beta);
    std::printf("sync batch_norm, %d channels x %d, slices 3/0/4:\n", c, spatial);
    expect_fp32_op_close("training forward y", g.y, r.y);
    expect_fp32_op_close("running mean", g.rmean, r.rmean);
    expect_fp32_op_close("running variance (biased)", g.rvar, r.rvar);
    expect_fp32_op_close("input gradient dx", g.dx, r.dx);
    expect_fp32_op_close("gamma gradient", g.dgamma, r.dgamma);
    expect_fp32_op_close("beta gradient", g.dbeta, r.dbeta);
  }
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
  expect_fp32_op_close("softmax_xent dlogits", gdl.get(), dl);

  const std::int64_t count = 1003;  // not a multiple of 4: the scalar path
  for (std::int64_t cnt : {count, std::int64_t(1024)}) {
    auto w = testkit::random_vector(std::size_t(cnt), 18);
    const auto g = testkit::random_vector(std::size_t(cnt), 19);
    auto v = testkit::random_vector(std::size_t(cnt), 20);
    Dev gw(*gpu, w), gg(*gpu, g), gv(*gpu, v);
    const SgdParams p{0.05f, 0.9f, 1e-3f};
    cpu->sgd_update(cnt, w.data(), g.data(), v.data(), p);
    gpu->sgd_update(cnt, gw.p(), gg.p(), gv.p(), p);
    expect_fp32_op_close("sgd weights", gw.get(), w);
    expect_fp32_op_close("sgd momentum", gv.get(), v);
  }
}

// --label-smoothing: the smoothed loss and dlogits = (softmax - q) * scale as the CPU computes
// them (the same double arithmetic per row), accuracy unchanged; rows in several blocks.
TEST_P(CudaVsCpu, SoftmaxXentWithLabelSmoothing) {
  SKIP_WITHOUT_GPU();
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(GetParam());
  const int n = 600, classes = 37;  // 600 rows: three blocks of 256 threads
  const auto logits = testkit::random_vector(std::size_t(n) * classes, 22, -6.0f, 6.0f);
  std::vector<std::int32_t> labels(n);
  for (int i = 0; i < n; ++i) labels[std::size_t(i)] = (i * 11) % classes;
  Dev glog(*gpu, logits), gdl(*gpu, logits.size());
  Buffer glab = gpu->allocate(sizeof(std::int32_t) * std::size_t(n));
  gpu->upload(glab.data(), labels.data(), sizeof(std::int32_t) * std::size_t(n));
  Buffer gstats = gpu->allocate(3 * sizeof(double));
  for (float eps : {0.0f, 0.1f, 0.6f}) {
    std::vector<float> dl(logits.size());
    double stats[3] = {0, 0, 0};
    cpu->softmax_xent(n, classes, logits.data(), labels.data(), 1.0f / n, dl.data(), stats, eps);
    gpu->fill_zero(gstats.data(), 3 * sizeof(double));
    gpu->softmax_xent(n, classes, glog.p(), static_cast<const std::int32_t*>(glab.data()), 1.0f / n,
                      gdl.p(), static_cast<double*>(gstats.data()), eps);
    double got[3];
    gpu->download(got, gstats.data(), sizeof got);
    std::printf("softmax_xent, label smoothing %g: loss %.12g vs %.12g\n", eps, got[0], stats[0]);
    EXPECT_NEAR(got[0], stats[0], 1e-9 * std::abs(stats[0])) << "eps " << eps;
    EXPECT_EQ(got[1], stats[1]) << "eps " << eps;
    EXPECT_EQ(got[2], stats[2]) << "eps " << eps;
    expect_fp32_op_close("softmax_xent dlogits, label smoothing", gdl.get(), dl);
  }
}

// --clip-grad-norm's scaling: one rounded product per element, the CPU's bits.
TEST(CudaOps, ScaleMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(Math::fp32);
  for (std::int64_t count : {std::int64_t(1), std::int64_t(1003), std::int64_t(3) << 20}) {
    auto x = testkit::random_vector(std::size_t(count), 23);
    Dev gx(*gpu, x);
    cpu->scale(count, 0.37f, x.data());
    gpu->scale(count, 0.37f, gx.p());
    EXPECT_EQ(gx.get(), x) << count << " values";
  }
}

// The gradient norm of --tensorboard: the sum of squares in double, added to what is there, the
// CPU's up to the order of the additions (grid-stride loops, a block tree, atomics).
TEST(CudaOps, SumSquaresMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(Math::fp32);
  for (std::int64_t count : {std::int64_t(1), std::int64_t(1003), std::int64_t(3) << 20}) {
    const auto x = testkit::random_vector(std::size_t(count), 21);
    double want = 0.25;
    cpu->sum_squares(count, x.data(), &want);
    Dev gx(*gpu, x);
    Buffer acc = gpu->allocate(sizeof(double));
    const double start = 0.25;
    gpu->upload(acc.data(), &start, sizeof start);
    gpu->sum_squares(count, gx.p(), static_cast<double*>(acc.data()));
    double got = 0;
    gpu->download(&got, acc.data(), sizeof got);
    EXPECT_NEAR(got, want, 1e-12 * want) << count << " values";
  }
}

// AdamW over a range: the CPU's loop up to the rounding of sqrt and the division (fp32 ops).
TEST(CudaOps, AdamWMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(Math::fp32);
  for (std::int64_t cnt : {std::int64_t(1003), std::int64_t(1) << 20}) {
    auto w = testkit::random_vector(std::size_t(cnt), 31);
    const auto g = testkit::random_vector(std::size_t(cnt), 32);
    auto m = testkit::random_vector(std::size_t(cnt), 33);
    auto v = testkit::random_vector(std::size_t(cnt), 34);
    for (float& x : v) x = x * x;  // a second moment is never negative
    Dev gw(*gpu, w), gg(*gpu, g), gm(*gpu, m), gv(*gpu, v);
    AdamWParams p;
    p.beta1 = 0.9f, p.beta2 = 0.999f, p.eps = 1e-8f;
    p.decay = 1.0f - 1e-3f * 0.05f, p.step_size = 1e-3f / (1.0f - 0.9f * 0.9f * 0.9f);
    p.bias_correction2_sqrt = std::sqrt(1.0f - 0.999f * 0.999f * 0.999f);
    for (int step = 0; step < 3; ++step) {
      cpu->adamw_update(cnt, w.data(), g.data(), m.data(), v.data(), p);
      gpu->adamw_update(cnt, gw.p(), gg.p(), gm.p(), gv.p(), p);
    }
    expect_fp32_op_close("adamw weights", gw.get(), w);
    expect_fp32_op_close("adamw first moment", gm.get(), m);
    expect_fp32_op_close("adamw second moment", gv.get(), v);
  }
}

// LARS: the per-segment sums in double (to the order of the additions), then the update with
// each segment's local rate, adapted and plain segments, a factor, a gap left untouched.
TEST(CudaOps, LarsMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(Math::fp32);
  const std::int64_t total = (std::int64_t(1) << 20) + 4096;
  auto w = testkit::random_vector(std::size_t(total), 41);
  auto g = testkit::random_vector(std::size_t(total), 42);
  auto v = testkit::random_vector(std::size_t(total), 43);
  for (std::int64_t i = 3000; i < 3100; ++i) g[std::size_t(i)] = 0.0f;  // a zero gradient: rate 1
  const std::vector<LarsSegment> segs = {{0, 1003, 1.0f, 1},
                                         {1024, 1976, 0.5f, 0},
                                         {3000, 100, 1.0f, 1},
                                         {4096, total - 4096, 2.0f, 1}};
  const int n = int(segs.size());
  Dev gw(*gpu, w), gg(*gpu, g), gv(*gpu, v);
  Buffer dsegs = gpu->allocate(sizeof(LarsSegment) * segs.size());
  gpu->upload(dsegs.data(), segs.data(), sizeof(LarsSegment) * segs.size());
  Buffer dsums = gpu->allocate(sizeof(double) * 2 * segs.size());
  std::vector<double> sums(2 * segs.size()), got(sums.size());
  const LarsParams p{0.5f, 0.9f, 5e-4f, 0.01f};
  for (int step = 0; step < 3; ++step) {
    cpu->lars_sums(n, segs.data(), w.data(), g.data(), sums.data());
    gpu->lars_sums(n, static_cast<const LarsSegment*>(dsegs.data()), gw.p(), gg.p(),
                   static_cast<double*>(dsums.data()));
    gpu->download(got.data(), dsums.data(), sizeof(double) * got.size());
    for (std::size_t k = 0; k < sums.size(); ++k)
      EXPECT_NEAR(got[k], sums[k], 1e-12 * std::max(1.0, sums[k])) << "sum " << k;
    cpu->lars_update(n, segs.data(), sums.data(), w.data(), g.data(), v.data(), p);
    gpu->lars_update(n, static_cast<const LarsSegment*>(dsegs.data()),
                     static_cast<const double*>(dsums.data()), gw.p(), gg.p(), gv.p(), p);
  }
  expect_fp32_op_close("lars weights", gw.get(), w);
  expect_fp32_op_close("lars momentum", gv.get(), v);
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
    const ProductResults r = run_conv(*cpu, g, s.n, x, w, b, dy);
    const ProductResults mag = run_conv(*cpu, g, s.n, abs_of(x), abs_of(w), abs_of(b), abs_of(dy));
    Dev gx(*gpu, x), gy(*gpu, r.y.size()), gdy(*gpu, dy), gdx(*gpu, x.size()), gdw(*gpu, w.size()),
        gdb(*gpu, b.size());
    op->forward(s.n, gx.p(), gw.p(), gb.p(), gy.p());
    std::printf("batch %d%s:\n", s.n,
                s.backward ? (s.input_grad ? "" : " (no input gradient)") : " (forward only)");
    const ConvTerms t = conv_terms(g, s.n);
    const bool tx = transforms_possible(g);
    expect_product_close("forward y", arith(c.math), t.y, gy.get(), r.y, mag.y, tx);
    if (!s.backward) continue;
    op->backward(s.n, gx.p(), gw.p(), gdy.p(), s.input_grad ? gdx.p() : nullptr, gdw.p(), gdb.p());
    if (s.input_grad)
      expect_product_close("input gradient dx", arith(c.math), t.dx, gdx.get(), r.dx, mag.dx, tx);
    expect_product_close("weight gradient dw", arith(c.math), t.dw, gdw.get(), r.dw, mag.dw, tx);
    expect_sum_close("bias gradient db", t.db, gdb.get(), r.db, mag.db);
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

// The whole AlexNet, three ways (tests/model/model_check.hpp). Comparing every gradient of a
// full forward and backward pass cannot work: rounding flips ReLU signs and max-pool choices, and
// each flip moves a whole gradient term. So: (1) layer by layer, each GPU layer fed the CPU's
// input, output and output gradient; (2) logits and loss of the whole forward pass, which flips
// move only by the rounding that caused them, within kSpread x the CPU emulations' spread; (3) a
// short training run whose loss curve stays within that spread.
ModelConfig alexnet_config() {
  ModelConfig mc;
  mc.name = "alexnet";
  return mc;
}

std::unique_ptr<Model> initialized(const ModelConfig& mc, Backend& be, int n) {
  auto m = std::make_unique<Model>(mc, be, n);
  m->initialize({});
  return m;
}

// The CPU models whose spread around the FP32 reference stands for the candidate's rounding:
// TF32 rounded both ways, or (FP32) parameters perturbed at the Winograd/FFT allowance.
struct Emulations {
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<std::unique_ptr<Model>> models;
};
Emulations emulations(Math m, const ModelConfig& mc, int n) {
  Emulations e;
  if (m == Math::tf32) {
    for (Tf32Rounding r : {Tf32Rounding::nearest_away, Tf32Rounding::truncate}) {
      e.backends.push_back(cpu_reference(CpuOptions::Math::tf32, r));
      e.models.push_back(initialized(mc, *e.backends.back(), n));
    }
  } else {
    e.backends.push_back(cpu_reference());
    e.models.push_back(initialized(mc, *e.backends.back(), n));
    Model& p = *e.models.back();
    const auto sign = random_vector(p.flat_size(), 99);
    for (std::int64_t i = 0; i < p.flat_size(); ++i)
      p.param_data()[i] *=
          float(1.0 + (sign[std::size_t(i)] < 0 ? -1 : 1) * kTransformUnits * kFp32Unit);
  }
  return e;
}

TEST_P(CudaVsCpu, WholeAlexNetTeacherForcedLayerByLayer) {
  SKIP_WITHOUT_GPU();
  const Math m = GetParam();
  auto cpu = cpu_reference(), cpu_mag = cpu_reference();
  auto gpu = gpu_backend(m);
  const ModelConfig mc = alexnet_config();
  const int n = 4;
  auto ref = initialized(mc, *cpu, n), mag = initialized(mc, *cpu_mag, n),
       cand = initialized(mc, *gpu, n);
  std::printf("AlexNet, batch 4, dropout on, teacher-forced, %s:\n", math_name(m));
  for (const Check& c : teacher_forced(*ref, *mag, *cand, arith(m), make_batch(mc, n, 23))) {
    print(c);
    EXPECT_TRUE(c.pass()) << c.what << ": norm-wise " << c.f.normwise << " (bound " << c.b.normwise
                          << "), per element " << c.f.per_element << " (bound " << c.b.per_element
                          << ")";
  }
}

TEST_P(CudaVsCpu, WholeAlexNetLogitsAndLossEndToEnd) {
  SKIP_WITHOUT_GPU();
  const Math m = GetParam();
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(m);
  const ModelConfig mc = alexnet_config();
  const int n = 4;
  auto ref = initialized(mc, *cpu, n), cand = initialized(mc, *gpu, n);
  Emulations e = emulations(m, mc, n);
  const Batch b = make_batch(mc, n, 24);
  const Outputs r = outputs(*ref, b);
  std::vector<Outputs> spread;
  for (auto& model : e.models) spread.push_back(outputs(*model, b));
  const EndToEnd bound = spread_of(spread, r);
  const EndToEnd f = end_to_end(outputs(*cand, b), r);
  std::printf(
      "AlexNet end to end, %s: logits %.3g (bound %.3g), loss %.3g (bound %.3g), of "
      "max |logit| %.3g\n",
      math_name(m), f.logits, bound.logits, f.loss, bound.loss, max_abs(r.logits));
  EXPECT_LE(f.logits, bound.logits);
  EXPECT_LE(f.loss, bound.loss);
}

TEST_P(CudaVsCpu, ShortTrainingRunTracksTheCpu) {
  SKIP_WITHOUT_GPU();
  const Math m = GetParam();
  ModelConfig mc = alexnet_config();
  mc.input = Shape{1, 96, 96};  // small: the CPU runs it three times
  const int n = 8, steps = 6;
  const SgdParams p{0.05f, 0.9f, 0.0f};
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(m);
  const auto ref = loss_curve(*initialized(mc, *cpu, n), steps, n, p);
  const auto got = loss_curve(*initialized(mc, *gpu, n), steps, n, p);
  std::vector<std::vector<double>> spread;
  {
    Emulations e = emulations(m, mc, n);
    for (auto& model : e.models) spread.push_back(loss_curve(*model, steps, n, p));
  }
  // The floor: step 0's end-to-end loss bound.
  Batch b0 = make_batch(mc, n, 50);
  b0.step = 0;
  auto r0 = initialized(mc, *cpu, n);
  const Outputs o = outputs(*r0, b0);
  std::vector<Outputs> s0;
  {
    Emulations e = emulations(m, mc, n);
    for (auto& model : e.models) s0.push_back(outputs(*model, b0));
  }
  const double floor = spread_of(s0, o).loss * max_abs(o.logits);
  const auto bound = curve_bounds(spread, ref, floor);
  for (int s = 0; s < steps; ++s) {
    std::printf("step %d: loss cpu %.7f, gpu %.7f (|diff| %.3g, bound %.3g)\n", s, ref[s], got[s],
                std::abs(got[s] - ref[s]), bound[s]);
    EXPECT_LE(std::abs(got[s] - ref[s]), bound[s]) << "step " << s;
  }
}

// The graph's joins: an FP32 add and strided copies have one right answer, so the GPU's results
// are the CPU's bit for bit (in place too, as the model's gradient sums use it).
TEST_P(CudaVsCpu, AddAndCopyRowsAreExact) {
  SKIP_WITHOUT_GPU();
  auto cpu = cpu_reference();
  auto gpu = gpu_backend(GetParam());
  const std::size_t count = 3 * 1000 + 7;
  auto a = testkit::random_vector(std::int64_t(count), 61),
       b = testkit::random_vector(std::int64_t(count), 62);
  std::vector<float> want(count);
  cpu->add(std::int64_t(count), a.data(), b.data(), want.data());
  Dev ga(*gpu, a), gb(*gpu, b), gy(*gpu, count);
  gpu->add(std::int64_t(count), ga.p(), gb.p(), gy.p());
  EXPECT_EQ(gy.get(), want);
  gpu->add(std::int64_t(count), ga.p(), gb.p(), ga.p());  // in place
  EXPECT_EQ(ga.get(), want);
  // Three samples of a 5-channel block into channels [2, 7) of a 9-channel output, and back.
  const std::int64_t rows = 3, block = 5 * 16, out = 9 * 16, at = 2 * 16;
  const auto src = testkit::random_vector(rows * block, 63);
  std::vector<float> cat(std::size_t(rows * out), -1.0f), back(std::size_t(rows * block));
  cpu->copy_rows(rows, block, src.data(), block, cat.data() + at, out);
  cpu->copy_rows(rows, block, cat.data() + at, out, back.data(), block);
  EXPECT_EQ(back, src);
  Dev gsrc(*gpu, src), gcat(*gpu, std::vector<float>(std::size_t(rows * out), -1.0f)),
      gback(*gpu, std::size_t(rows * block));
  gpu->copy_rows(rows, block, gsrc.p(), block, gcat.p() + at, out);
  gpu->copy_rows(rows, block, gcat.p() + at, out, gback.p(), block);
  EXPECT_EQ(gcat.get(), cat);
  EXPECT_EQ(gback.get(), src);
}

// Graphs end to end: d2l's ResNet-18 (residual adds, batch-norm) and GoogLeNet (four-branch
// concats) at their 96x96 input, logits and loss within the CPU emulations' spread.
TEST_P(CudaVsCpu, WholeGraphsLogitsAndLossEndToEnd) {
  SKIP_WITHOUT_GPU();
  const Math m = GetParam();
  for (const char* name : {"resnet18", "googlenet"}) {
    auto cpu = cpu_reference();
    auto gpu = gpu_backend(m);
    ModelConfig mc;
    mc.name = name;
    mc.input = Shape{1, 96, 96};
    const int n = 4;
    auto ref = initialized(mc, *cpu, n), cand = initialized(mc, *gpu, n);
    Emulations e = emulations(m, mc, n);
    const Batch b = make_batch(mc, n, 25);
    const Outputs r = outputs(*ref, b);
    std::vector<Outputs> spread;
    for (auto& model : e.models) spread.push_back(outputs(*model, b));
    const EndToEnd bound = spread_of(spread, r);
    const EndToEnd f = end_to_end(outputs(*cand, b), r);
    std::printf("%s end to end, %s: logits %.3g (bound %.3g), loss %.3g (bound %.3g)\n", name,
                math_name(m), f.logits, bound.logits, f.loss, bound.loss);
    EXPECT_LE(f.logits, bound.logits) << name;
    EXPECT_LE(f.loss, bound.loss) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Math, CudaVsCpu, ::testing::Values(Math::fp32, Math::tf32),
                         [](const auto& info) { return std::string(math_name(info.param)); });

}  // namespace
