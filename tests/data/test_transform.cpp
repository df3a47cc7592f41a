#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "distnet/backend.hpp"
#include "distnet/data/transform.hpp"
#include "distnet/error.hpp"

using namespace distnet;
using namespace distnet::data;

TEST(Transform, SameSizeOnlyScales) {
  const ImageTransform t(Shape{1, 2, 2}, {});
  const std::uint8_t in[4] = {0, 51, 255, 102};
  float out[4];
  t.apply(in, out);
  EXPECT_FLOAT_EQ(out[0], 0.0f);
  EXPECT_FLOAT_EQ(out[1], 0.2f);
  EXPECT_FLOAT_EQ(out[2], 1.0f);
  EXPECT_FLOAT_EQ(out[3], 0.4f);
}

// 2x2 -> 4x4 with half-pixel centres: output x maps to (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75,
// 1.25, clamped to [0, 1]; so columns blend the inputs with weights 0, 0.25, 0.75, 1.
TEST(Transform, BilinearUpscaleByHand) {
  const ImageTransform t(Shape{1, 2, 2}, {4, {}, {}});
  EXPECT_EQ(t.output_shape(), (Shape{1, 4, 4}));
  const std::uint8_t in[4] = {0, 100, 200, 40};
  float out[16];
  t.apply(in, out);
  auto at = [&](int y, int x) { return out[y * 4 + x] * 255.0f; };
  EXPECT_NEAR(at(0, 0), 0.0f, 1e-4);
  EXPECT_NEAR(at(0, 1), 25.0f, 1e-4);
  EXPECT_NEAR(at(0, 2), 75.0f, 1e-4);
  EXPECT_NEAR(at(0, 3), 100.0f, 1e-4);
  EXPECT_NEAR(at(3, 0), 200.0f, 1e-4);
  EXPECT_NEAR(at(3, 3), 40.0f, 1e-4);
  // centre: rows blend 0.25/0.75 of (row0 at x=1: 25) and (row1 at x=1: 200 - 0.25*160 = 160)
  EXPECT_NEAR(at(1, 1), 0.75f * 25.0f + 0.25f * 160.0f, 1e-3);
}

TEST(Transform, Resize28To224KeepsAConstantImageAndTheCorners) {
  const ImageTransform t(Shape{1, 28, 28}, {224, {}, {}});
  std::vector<std::uint8_t> in(784, 77);
  in[0] = 10;
  in[783] = 250;
  std::vector<float> out(224 * 224);
  t.apply(in.data(), out.data());
  EXPECT_FLOAT_EQ(out[0], 10.0f / 255);
  EXPECT_FLOAT_EQ(out.back(), 250.0f / 255);
  EXPECT_FLOAT_EQ(out[100 * 224 + 100], 77.0f / 255);
}

TEST(Transform, PerChannelNormalisation) {
  const ImageTransform t(Shape{3, 1, 1}, {0, {0.5f, 0.25f, 0.0f}, {0.5f, 0.25f, 2.0f}});
  const std::uint8_t in[3] = {255, 0, 255};
  float out[3];
  t.apply(in, out);
  EXPECT_FLOAT_EQ(out[0], 1.0f);   // (1 - 0.5) / 0.5
  EXPECT_FLOAT_EQ(out[1], -1.0f);  // (0 - 0.25) / 0.25
  EXPECT_FLOAT_EQ(out[2], 0.5f);   // (1 - 0) / 2
}

TEST(Transform, BadSpecsAreUsageErrors) {
  EXPECT_THROW(ImageTransform(Shape{1, 28, 28}, {-1, {}, {}}), UsageError);
  EXPECT_THROW(ImageTransform(Shape{3, 8, 8}, {0, {0.5f, 0.5f}, {0.5f, 0.5f}}), UsageError);
  EXPECT_THROW(ImageTransform(Shape{1, 8, 8}, {0, {0.5f}, {}}), UsageError);
  EXPECT_THROW(ImageTransform(Shape{1, 8, 8}, {0, {0.5f}, {0.0f}}), UsageError);
}

// The backend op (what the CUDA backend runs on the GPU, here the CPU backend's version of it)
// gives exactly the loader's floats, enlarging and shrinking, 1 and 3 channels.
TEST(Transform, BackendResizeNormalizeIsTheLoaderTransformBitForBit) {
  auto be = make_cpu_backend();
  const std::pair<Shape, TransformSpec> cases[] = {
      {Shape{1, 28, 28}, {224, {0.2f}, {0.5f}}},
      {Shape{3, 32, 32}, {224, {0.2f, 0.3f, 0.4f}, {0.5f, 0.6f, 0.7f}}},
      {Shape{3, 32, 32}, {20, {}, {}}}};
  for (const auto& [in, spec] : cases) {
    const ImageTransform t(in, spec);
    const int n = 3;
    std::vector<std::uint8_t> raw(std::size_t(n * in.numel()));
    for (std::size_t i = 0; i < raw.size(); ++i) raw[i] = std::uint8_t((i * 37 + i / 5) % 256);
    std::vector<float> want(std::size_t(n * t.output_shape().numel())), got(want.size());
    for (int i = 0; i < n; ++i)
      t.apply(raw.data() + i * in.numel(), want.data() + i * t.output_shape().numel());
    be->resize_normalize(n, t.as_op(), raw.data(), got.data());
    EXPECT_EQ(got, want) << in.str() << " -> " << t.output_shape().str();
  }
  EXPECT_THROW(ImageTransform(Shape{5, 8, 8}, {}).as_op(), UsageError);  // > 4 channels
}
