// The zoo's definition files (models/*.yaml) build today's five models exactly: the same layers
// (names, kinds, shapes, parameter specs, also split by the hybrid grid), the same flat-buffer
// layout and initial values, and bitwise the same training steps (dropout masks included) as
// the construction that was compiled into distnet before (tests/model/legacy_zoo.cpp).
#include <gtest/gtest.h>

#include <cstring>

#include "distnet/model.hpp"
#include "legacy_zoo.hpp"
#include "ops/gradcheck.hpp"
#include "unused_group.hpp"

using namespace distnet;

namespace {

const std::vector<std::string> kModels = {"alexnet", "alexnet-bn", "alexnet-nopad",
                                          "alexnet-torchvision", "lenet"};

ModelConfig cfg(const std::string& name, Shape in, int classes = 10) {
  ModelConfig c;
  c.name = name, c.input = std::move(in), c.classes = classes;
  return c;
}

std::string describe(const ParamSpec& p) {
  return p.name + " " + p.shape.str() + " role " + std::to_string(int(p.role)) + " fan " +
         std::to_string(p.fan_in) + "/" + std::to_string(p.fan_out) + " sum " +
         std::to_string(int(p.sum)) + " full " + p.full.str() + " axis " + std::to_string(p.axis) +
         " begin " + std::to_string(p.begin);
}

// Everything a layer shows: name, kind, shapes and parameter specs, one line per layer.
std::vector<std::string> describe(const std::vector<std::unique_ptr<Layer>>& layers) {
  std::vector<std::string> v;
  for (const auto& l : layers) {
    std::string s = l->name() + " | " + l->kind() + " | " + l->input_shape().str() + " -> " +
                    l->output_shape().str() + (l->collective() ? " | collective" : "");
    for (const auto& p : l->param_specs()) s += " | " + describe(p);
    v.push_back(s);
  }
  return v;
}

void expect_same_layers(const ModelConfig& c, const LayerSplit& split = {}) {
  SCOPED_TRACE(c.name + " at " + c.input.str() + ", " + std::to_string(c.classes) +
               " classes, shard " + std::to_string(split.shard) + "/" +
               std::to_string(split.shards));
  EXPECT_EQ(describe(build_layers(c, split)), describe(legacy::build_layers(c, split)));
}

bool same_floats(const float* a, const float* b, std::int64_t n) {
  return std::memcmp(a, b, sizeof(float) * static_cast<std::size_t>(n)) == 0;
}

}  // namespace

TEST(ZooFiles, BuildTheCompiledInLayers) {
  for (const auto& m : kModels) {
    const int side = m == "lenet" ? 28 : 224;
    expect_same_layers(cfg(m, Shape{1, side, side}));
    expect_same_layers(cfg(m, Shape{3, side, side}, 100));
  }
  expect_same_layers(cfg("alexnet-torchvision", Shape{3, 224, 224}, 1000));
  expect_same_layers(cfg("alexnet-torchvision", Shape{3, 256, 256}, 1000));
  expect_same_layers(cfg("alexnet", Shape{1, 67, 67}));
  ModelConfig settings = cfg("alexnet-bn", Shape{1, 224, 224});
  settings.dropout = 0.3f, settings.bn_momentum = 0.8f, settings.bn_eps = 1e-3f;
  expect_same_layers(settings);
}

// The hybrid grid's split of the first two dense layers (construction needs no communicator).
TEST(ZooFiles, SplitTheDenseLayersAsBefore) {
  for (const auto& m : kModels) {
    const int side = m == "lenet" ? 28 : 224;
    for (int shards : {2, 3})
      for (int shard = 0; shard < shards; ++shard) {
        testkit::UnusedGroup group(shard, shards);
        expect_same_layers(cfg(m, Shape{1, side, side}), LayerSplit{&group, shards, shard});
      }
  }
}

TEST(ZooFiles, RefuseTheSameInputsWithTheSameAdvice) {
  for (const auto& m : kModels) {
    const Shape small{1, 10, 10};
    std::string mine, theirs;
    try {
      build_layers(cfg(m, small));
    } catch (const UsageError& e) {
      mine = e.what();
    }
    try {
      legacy::build_layers(cfg(m, small));
    } catch (const UsageError& e) {
      theirs = e.what();
    }
    SCOPED_TRACE(m);
    ASSERT_FALSE(theirs.empty());
    // The same advice; the message now also says where the layer is written.
    EXPECT_EQ(mine.substr(mine.find("; the smallest")),
              theirs.substr(theirs.find("; the smallest")));
    EXPECT_NE(mine.find(": models/" + m + ".yaml:"), std::string::npos) << mine;
  }
}

// Same layout, same initial values, and two SGD steps with dropout and batch-norm bitwise equal:
// checkpoints of today load into the file-built models and resume exactly.
TEST(ZooFiles, TrainBitwiseLikeTheCompiledInModels) {
  auto be = make_cpu_backend();
  for (const auto& m : kModels) {
    SCOPED_TRACE(m);
    // The smallest inputs that keep the networks quick: their dense layers stay full width.
    const int side = m == "lenet" ? 28 : m == "alexnet-nopad" ? 195 : 67;
    const ModelConfig c = cfg(m, Shape{1, side, side});
    const int n = 3;
    Model a(c, *be, n), b(c, legacy::build_layers(c), *be, n);
    ASSERT_EQ(a.params().size(), b.params().size());
    for (std::size_t i = 0; i < a.params().size(); ++i) {
      EXPECT_EQ(describe(a.params()[i].spec), describe(b.params()[i].spec));
      EXPECT_EQ(a.params()[i].offset, b.params()[i].offset);
      EXPECT_EQ(a.params()[i].layer, b.params()[i].layer);
    }
    ASSERT_EQ(a.state().size(), b.state().size());
    for (std::size_t i = 0; i < a.state().size(); ++i) {
      EXPECT_EQ(a.state()[i].spec.name, b.state()[i].spec.name);
      EXPECT_EQ(a.state()[i].offset, b.state()[i].offset);
    }
    ASSERT_EQ(a.flat_size(), b.flat_size());
    ASSERT_EQ(a.state_size(), b.state_size());
    InitConfig init;
    init.seed = 7;
    a.initialize(init);
    b.initialize(init);
    EXPECT_TRUE(same_floats(a.param_data(), b.param_data(), a.flat_size()));
    const auto x = testkit::random_vector(n * c.input.numel(), 5, -1.0f, 1.0f);
    const std::vector<std::int32_t> labels{1, 4, 9};
    const std::vector<std::uint32_t> ids{11, 12, 13};
    const SgdParams sgd{0.05f, 0.9f, 1e-4f};
    for (std::uint32_t step = 0; step < 2; ++step) {
      const StepContext ctx{true, 3, step, ids.data()};
      for (Model* model : {&a, &b}) {
        const float* logits = model->forward(ctx, n, x.data());
        double stats[3] = {0, 0, 0};
        be->softmax_xent(n, c.classes, logits, labels.data(), 1.0f / n, model->dlogits(), stats);
        model->backward(ctx, n, x.data());
        be->sgd_update(model->flat_size(), model->param_data(), model->grad_data(),
                       model->momentum_data(), sgd);
      }
      EXPECT_TRUE(same_floats(a.grad_data(), b.grad_data(), a.flat_size())) << "step " << step;
      EXPECT_TRUE(same_floats(a.param_data(), b.param_data(), a.flat_size())) << "step " << step;
      EXPECT_TRUE(same_floats(a.momentum_data(), b.momentum_data(), a.flat_size()));
      EXPECT_TRUE(same_floats(a.state_data(), b.state_data(), a.state_size()));
    }
    // Inference too (batch-norm's running statistics, dropout off).
    const StepContext eval{false, 3, 2, ids.data()};
    const float* la = a.forward(eval, n, x.data());
    const float* lb = b.forward(eval, n, x.data());
    EXPECT_TRUE(same_floats(la, lb, n * c.classes));
  }
}
