#include <gtest/gtest.h>

#include <string>

#include "distnet/model.hpp"

using namespace distnet;

namespace {
std::vector<std::string> output_shapes(const ModelConfig& c) {
  std::vector<std::string> v;
  for (const auto& l : build_layers(c)) v.push_back(l->output_shape().str());
  return v;
}
std::int64_t trainable(const ModelConfig& c) {
  std::int64_t n = 0;
  for (const auto& l : build_layers(c))
    for (const auto& p : l->param_specs())
      if (p.trainable()) n += p.shape.numel();
  return n;
}
ModelConfig cfg(const std::string& name, Shape in, int classes = 10) {
  ModelConfig c;
  c.name = name, c.input = std::move(in), c.classes = classes;
  return c;
}
std::string usage_error(const ModelConfig& c) {
  try {
    build_layers(c);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(no error)";
}
}  // namespace

TEST(Shapes, AlexNetAsInD2l) {
  const auto c = cfg("alexnet", Shape{1, 224, 224});
  EXPECT_EQ(output_shapes(c),
            (std::vector<std::string>{"96x54x54", "96x26x26", "256x26x26", "256x12x12", "384x12x12",
                                      "384x12x12", "256x12x12", "256x5x5", "4096", "4096", "4096",
                                      "4096", "10"}));
  EXPECT_EQ(trainable(c), 46764746);
}

// torchvision.models.alexnet(): 61,100,840 parameters at 1000 classes; its features end at
// 256x6x6 for 224x224 input, where the adaptive pool is a copy, and at 7x7 for 256x256.
TEST(Shapes, AlexNetTorchvision) {
  const auto c = cfg("alexnet-torchvision", Shape{3, 224, 224}, 1000);
  EXPECT_EQ(output_shapes(c),
            (std::vector<std::string>{"64x55x55", "64x27x27", "192x27x27", "192x13x13", "384x13x13",
                                      "256x13x13", "256x13x13", "256x6x6", "256x6x6", "256x6x6",
                                      "4096", "4096", "4096", "1000"}));
  EXPECT_EQ(trainable(c), 61100840);
  const auto larger = output_shapes(cfg("alexnet-torchvision", Shape{3, 256, 256}, 1000));
  EXPECT_EQ(larger[7], "256x7x7");
  EXPECT_EQ(larger[8], "256x6x6");
  EXPECT_EQ(trainable(cfg("alexnet-torchvision", Shape{3, 256, 256}, 1000)), 61100840);
}

TEST(Shapes, AlexNetNoPadOnCifarAt224) {
  const auto c = cfg("alexnet-nopad", Shape{3, 224, 224});
  EXPECT_EQ(output_shapes(c),
            (std::vector<std::string>{"96x54x54", "96x26x26", "256x22x22", "256x10x10", "384x8x8",
                                      "384x6x6", "256x4x4", "256x1x1", "4096", "4096", "4096",
                                      "4096", "10"}));
}

TEST(Shapes, AlexNetBnAddsANormAfterEveryConv) {
  const auto c = cfg("alexnet-bn", Shape{1, 224, 224});
  const auto layers = build_layers(c);
  int bn = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    if (layers[i]->name().rfind("bn", 0) == 0) {
      ++bn;
      EXPECT_EQ(layers[i - 1]->name().rfind("conv", 0), 0u) << layers[i]->name();
      EXPECT_EQ(layers[i]->output_shape(), layers[i - 1]->output_shape());
    }
  }
  EXPECT_EQ(bn, 5);
  // gamma and beta of 96+256+384+384+256 channels are trained; running stats are not.
  EXPECT_EQ(trainable(c), 46764746 + 2 * 1376);
}

TEST(Shapes, LeNetOnMnist) {
  const auto c = cfg("lenet", Shape{1, 28, 28});
  EXPECT_EQ(output_shapes(c),
            (std::vector<std::string>{"20x24x24", "20x12x12", "50x8x8", "50x4x4", "500", "10"}));
  EXPECT_EQ(trainable(c), 520 + 25050 + 400500 + 5010);
}

TEST(Shapes, ClassesAndChannelsComeFromTheData) {
  const auto c = cfg("alexnet", Shape{3, 224, 224}, 100);
  const auto layers = build_layers(c);
  EXPECT_EQ(layers.back()->output_shape(), (Shape{100}));
  EXPECT_EQ(layers.front()->param_specs()[0].shape, (Shape{96, 3, 11, 11}));
}

TEST(Shapes, BadInputsGiveOneClearLine) {
  const std::string small = usage_error(cfg("alexnet", Shape{1, 28, 28}));
  EXPECT_NE(small.find("does not fit input 1x28x28"), std::string::npos) << small;
  EXPECT_NE(small.find("67x67"), std::string::npos) << small;
  const std::string unknown = usage_error(cfg("resnet", Shape{1, 224, 224}));
  EXPECT_NE(unknown.find("unknown model 'resnet'"), std::string::npos) << unknown;
  EXPECT_NE(
      unknown.find("alexnet, alexnet-bn, alexnet-nopad, alexnet-torchvision, googlenet, lenet"),
      std::string::npos);
  const std::string zero = usage_error(cfg("lenet", Shape{1, 28, 28}, 0));
  EXPECT_NE(zero.find("classes must be at least 1, got 0"), std::string::npos) << zero;
  for (const auto& m : {small, unknown, zero}) EXPECT_EQ(m.find('\n'), std::string::npos);
}

// Parameters sit in backward order, each tensor 64-byte aligned, params/grads/momentum alike.
TEST(Layout, FlatBuffersInBackwardOrder) {
  auto be = make_cpu_backend();
  Model m(cfg("lenet", Shape{1, 28, 28}), *be, 2);
  const auto& p = m.params();
  ASSERT_EQ(p.size(), 8u);
  EXPECT_EQ(p.front().spec.name, "dense2.weight");
  EXPECT_EQ(p.back().spec.name, "conv1.bias");
  std::int64_t prev_end = 0;
  for (const auto& e : p) {
    EXPECT_EQ(e.offset % 16, 0);
    EXPECT_GE(e.offset, prev_end);
    prev_end = e.offset + e.spec.shape.numel();
  }
  EXPECT_LE(prev_end, m.flat_size());
  EXPECT_EQ(m.num_trainable(), 431080);
}
