// Finite-difference checks of every op's backward through the layers that call them, on the CPU
// backend, for inputs and parameters, on small shapes.
#include <algorithm>

#include "gradcheck.hpp"

using namespace distnet;
using namespace distnet::testkit;

namespace {

std::unique_ptr<Backend> cpu() {
  return make_cpu_backend();
}

// Inputs for max-pooling: distinct values at least 0.01 apart, so a step of 1e-3 never changes
// which element is the maximum (a finite difference across a tie is meaningless).
std::vector<float> spaced_values(std::int64_t n, std::uint32_t stream) {
  std::vector<float> v(static_cast<std::size_t>(n));
  auto order = random_vector(n, stream);
  std::vector<std::size_t> idx(v.size());
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(),
            [&](std::size_t a, std::size_t b) { return order[a] < order[b]; });
  for (std::size_t rank = 0; rank < idx.size(); ++rank) v[idx[rank]] = -1.0f + 0.01f * float(rank);
  return v;
}

}  // namespace

struct ConvCase {
  int c_in, h, w, c_out, k, stride, pad;
  bool bias = true;
  int groups = 1;
};

class Conv2dGradient : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2dGradient, InputWeightAndBias) {
  const ConvCase c = GetParam();
  auto be = cpu();
  LayerHarness h(make_conv2d("conv", Shape{c.c_in, c.h, c.w},
                             {c.c_out, c.k, c.stride, c.pad, Activation::none, c.bias, c.groups}),
                 2, *be, 1);
  // Without a bias the layer has the weight only, (c_out, c_in / groups, k, k).
  const auto specs = h.layer().param_specs();
  ASSERT_EQ(specs.size(), c.bias ? 2u : 1u);
  EXPECT_EQ(specs[0].shape, (Shape{c.c_out, c.c_in / c.groups, c.k, c.k}));
  check_gradients(h, random_vector(h.in_count(), 5));
}

INSTANTIATE_TEST_SUITE_P(
    Geometries, Conv2dGradient,
    ::testing::Values(ConvCase{3, 7, 7, 4, 3, 1, 1},           // 3x3 p1 (conv3-5)
                      ConvCase{2, 9, 9, 3, 5, 1, 2},           // 5x5 p2 (conv2)
                      ConvCase{1, 15, 15, 4, 5, 4, 0},         // strided (conv1)
                      ConvCase{3, 6, 6, 2, 3, 2, 1},           // stride 2, padded
                      ConvCase{3, 9, 9, 4, 7, 2, 3, false},    // ResNet's stem: 7x7 s2 p3, no bias
                      ConvCase{4, 6, 6, 6, 1, 2, 0, false},    // ResNet's 1x1 s2 projection
                      ConvCase{4, 7, 7, 6, 3, 1, 1, true, 2},  // two groups
                      ConvCase{3, 6, 6, 3, 3, 2, 1, false, 3}  // depthwise, no bias
                      ));

TEST(ReluGradient, ThroughConvWithActivation) {
  auto be = cpu();
  LayerHarness h(make_conv2d("conv_relu", Shape{2, 6, 6}, {3, 3, 1, 1, Activation::relu}), 2, *be,
                 2);
  // eps well below the typical distance of a pre-activation from the kink.
  check_gradients(h, random_vector(h.in_count(), 6), {1e-3, 3e-2, 3e-3});
}

TEST(ReluGradient, StandaloneLayer) {
  auto be = cpu();
  LayerHarness h(make_relu("relu", Shape{2, 3, 3}), 2, *be);
  EXPECT_EQ(h.layer().output_shape(), (Shape{2, 3, 3}));
  check_gradients(h, random_vector(h.in_count(), 14), {1e-3, 3e-2, 3e-3});
}

TEST(MaxPoolGradient, Overlapping3Stride2) {
  auto be = cpu();
  LayerHarness h(make_max_pool("pool", Shape{3, 7, 7}, 3, 2), 2, *be);
  check_gradients(h, spaced_values(h.in_count(), 7), {1e-3, 1e-2, 1e-3});
}

TEST(MaxPoolGradient, NonOverlapping2Stride2) {
  auto be = cpu();
  LayerHarness h(make_max_pool("pool", Shape{2, 6, 6}, 2, 2), 2, *be);
  check_gradients(h, spaced_values(h.in_count(), 8), {1e-3, 1e-2, 1e-3});
}

// Padded max pooling as in ResNet's stem (3/2 p1) and GoogLeNet's inception branch (3/1 p1); the
// values are negative throughout, so a padded position that took part would win every border
// window (and its gradient would go nowhere).
TEST(MaxPoolGradient, PaddedStride2) {
  auto be = cpu();
  LayerHarness h(make_max_pool("pool", Shape{2, 7, 7}, 3, 2, 1), 2, *be);
  EXPECT_EQ(h.layer().output_shape(), (Shape{2, 4, 4}));
  auto x = spaced_values(h.in_count(), 15);
  for (auto& v : x) v -= 3.0f;
  check_gradients(h, x, {1e-3, 1e-2, 1e-3});
}

TEST(MaxPoolGradient, PaddedStride1KeepsTheSize) {
  auto be = cpu();
  LayerHarness h(make_max_pool("pool", Shape{2, 6, 5}, 3, 1, 1), 2, *be);
  EXPECT_EQ(h.layer().output_shape(), (Shape{2, 6, 5}));
  auto x = spaced_values(h.in_count(), 16);
  for (auto& v : x) v -= 3.0f;
  check_gradients(h, x, {1e-3, 1e-2, 1e-3});
}

struct AvgPoolCase {
  int c, h, w, k, stride, pad;
  bool count_padding;
};

class AvgPoolGradient : public ::testing::TestWithParam<AvgPoolCase> {};

TEST_P(AvgPoolGradient, Input) {
  const AvgPoolCase c = GetParam();
  auto be = cpu();
  LayerHarness h(make_avg_pool("avg", Shape{c.c, c.h, c.w}, c.k, c.stride, c.pad, c.count_padding),
                 2, *be);
  check_gradients(h, random_vector(h.in_count(), 17));
}

INSTANTIATE_TEST_SUITE_P(
    Geometries, AvgPoolGradient,
    ::testing::Values(AvgPoolCase{3, 6, 6, 2, 2, 0, true},   // 2/2: d2l's transition layers
                      AvgPoolCase{2, 7, 7, 3, 2, 0, true},   // overlapping windows
                      AvgPoolCase{2, 7, 6, 3, 1, 1, true},   // 3/1 p1, padding counted
                      AvgPoolCase{2, 7, 6, 3, 1, 1, false},  // 3/1 p1, padding left out
                      AvgPoolCase{2, 8, 8, 5, 3, 2, false}   // 5/3 p2 (Inception v1's aux head)
                      ));

TEST(AdaptiveAvgPoolGradient, OverlappingCells) {
  auto be = cpu();  // 7x5 to 3x2: rows [0,3) [2,5) [4,7), columns [0,3) [2,5) -- cells share pixels
  LayerHarness h(make_adaptive_avg_pool("avgpool", Shape{2, 7, 5}, 3, 2), 2, *be);
  check_gradients(h, random_vector(h.in_count(), 21));
}

TEST(AdaptiveAvgPoolGradient, Enlarging) {
  auto be = cpu();  // 2x3 to 5x4: every input pixel feeds several cells
  LayerHarness h(make_adaptive_avg_pool("avgpool", Shape{1, 2, 3}, 5, 4), 3, *be);
  check_gradients(h, random_vector(h.in_count(), 22));
}

TEST(DenseGradient, FlattensConvShapedInput) {
  auto be = cpu();
  LayerHarness h(make_dense("dense", Shape{3, 2, 2}, 5, Activation::none), 3, *be, 3);
  check_gradients(h, random_vector(h.in_count(), 9));
}

TEST(DenseGradient, WithRelu) {
  auto be = cpu();
  LayerHarness h(make_dense("dense_relu", Shape{7}, 6, Activation::relu), 4, *be, 4);
  check_gradients(h, random_vector(h.in_count(), 10), {1e-3, 3e-2, 3e-3});
}

TEST(DropoutGradient, MaskIsFixedWithinAStep) {
  auto be = cpu();
  LayerHarness h(make_dropout("drop", Shape{50}, 0.5f, 3), 3, *be);
  check_gradients(h, random_vector(h.in_count(), 11));
}

TEST(BatchNormGradient, TrainingModeThroughBatchStatistics) {
  auto be = cpu();
  LayerHarness h(make_batch_norm("bn", Shape{3, 3, 3}, 0.9f, 1e-5f, Activation::none), 4, *be, 5);
  check_gradients(h, random_vector(h.in_count(), 12), {1e-2, 3e-2, 3e-3});
}

TEST(FlattenGradient, IsIdentity) {
  auto be = cpu();
  LayerHarness h(make_flatten("flat", Shape{2, 3, 3}), 2, *be);
  EXPECT_EQ(h.layer().output_shape(), (Shape{18}));
  check_gradients(h, random_vector(h.in_count(), 13));
}

namespace {

// Plain cross-entropy and with label smoothing (the target (1 - eps) onehot + eps / classes).
void check_softmax_xent_gradient(float smoothing) {
  auto be = cpu();
  const int n = 3, classes = 5;
  auto logits = random_vector(n * classes, 14, -3.f, 3.f);
  const std::vector<std::int32_t> labels{4, 0, 2};
  const float scale = 1.0f / 8;  // e.g. a global batch of 8 spread over ranks
  std::vector<float> d(logits.size());
  double stats[3] = {0, 0, 0};
  be->softmax_xent(n, classes, logits.data(), labels.data(), scale, d.data(), stats, smoothing);
  const double eps = 1e-3;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    auto loss_at = [&](float v) {
      const float keep = logits[i];
      logits[i] = v;
      double s[3] = {0, 0, 0};
      be->softmax_xent(n, classes, logits.data(), labels.data(), scale, nullptr, s, smoothing);
      logits[i] = keep;
      return s[0] * scale;
    };
    const double numeric =
        (loss_at(logits[i] + float(eps)) - loss_at(logits[i] - float(eps))) / (2 * eps);
    EXPECT_NEAR(d[i], numeric, 1e-4) << "logit " << i << ", smoothing " << smoothing;
  }
}

}  // namespace

TEST(SoftmaxXentGradient, MatchesFiniteDifferences) {
  check_softmax_xent_gradient(0.0f);
}

TEST(SoftmaxXentGradient, WithLabelSmoothingMatchesFiniteDifferences) {
  check_softmax_xent_gradient(0.1f);
  check_softmax_xent_gradient(0.7f);
}
