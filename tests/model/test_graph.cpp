// Models as graphs: residual adds and channel concats run as a schedule, gradients of an output
// that feeds several layers are summed, and the buffers for them are few.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <vector>

#include "distnet/layer_registry.hpp"
#include "distnet/model.hpp"
#include "distnet/model_spec.hpp"
#include "ops/gradcheck.hpp"

using namespace distnet;

namespace {

// Every kind of join, and outputs read by two and by three layers: the stem feeds a residual
// body and its identity shortcut, r1 a body and a projection, r2 three concat branches. No ReLU
// or max pool, whose kinks a finite difference may straddle; batch-norm in training mode keeps
// the network non-linear.
const char* kGraph = R"(name: graph
layers:
  - conv: {name: stem, channels: 4, kernel: 3, padding: 1}
  - residual:
      name: r1
      body:
        - conv: {name: c1, channels: 4, kernel: 3, padding: 1}
        - batch_norm: {name: bn1}
        - conv: {name: c2, channels: 4, kernel: 3, padding: 1}
  - residual:
      name: r2
      body:
        - conv: {name: c1, channels: 6, kernel: 3, stride: 2, padding: 1}
      shortcut:
        - conv: {name: proj, channels: 6, kernel: 1, stride: 2}
  - concat:
      name: inc
      branches:
        - [conv: {name: a, channels: 3, kernel: 1}]
        - [conv: {name: b1, channels: 2, kernel: 1}, conv: {name: b2, channels: 3, kernel: 3, padding: 1}]
        - [adaptive_avg_pool: {name: p, size: 4}, conv: {name: c, channels: 2, kernel: 1}]
  - adaptive_avg_pool: {name: gap, size: 2}
  - dense: {name: out, units: classes}
)";

ModelConfig graph_config() {
  ModelConfig c;
  c.name = "graph.yaml", c.input = Shape{2, 8, 8}, c.classes = 5;
  return c;
}

std::unique_ptr<Model> graph_model(Backend& be, int batch, const char* text = kGraph) {
  const ModelConfig c = graph_config();
  auto layers = build_layers(parse_model_definition(text, "graph.yaml"), c);
  auto m = std::make_unique<Model>(c, std::move(layers), be, batch);
  InitConfig init;
  init.seed = 3;
  m->initialize(init);
  return m;
}

// L = sum(logits * r): dL/dlogits = r.
double objective(Model& m, const StepContext& ctx, int n, const std::vector<float>& x,
                 const std::vector<float>& r) {
  const float* y = m.forward(ctx, n, x.data());
  double l = 0;
  for (std::size_t i = 0; i < r.size(); ++i) l += double(y[i]) * r[i];
  return l;
}

}  // namespace

// Central differences of L against one backward pass, for entries of every parameter tensor:
// each tensor upstream of a join gets its gradient through the add, the concat and the sums
// where outputs fan out.
TEST(Graph, GradientsMatchFiniteDifferences) {
  auto be = make_cpu_backend({CpuOptions::ConvAlgorithm::direct});
  const int n = 3;
  auto m = graph_model(*be, n);
  const auto x = testkit::random_vector(n * 2 * 8 * 8, 1);
  const auto r = testkit::random_vector(n * 5, 2);
  const std::vector<std::uint32_t> ids{0, 1, 2};
  const StepContext ctx{true, 1, 0, ids.data()};
  objective(*m, ctx, n, x, r);
  std::copy(r.begin(), r.end(), m->dlogits());
  ASSERT_TRUE(m->backward(ctx, n, x.data()));
  const std::vector<float> analytic(m->grad_data(), m->grad_data() + m->flat_size());

  int checked = 0;
  for (const ParamEntry& e : m->params()) {
    const std::int64_t count = e.spec.shape.numel();
    for (std::int64_t k = 0; k < count; k += std::max<std::int64_t>(1, count / 7)) {
      float& w = m->param_data()[e.offset + k];
      const float keep = w, h = 1e-2f;
      w = keep + h;
      const double up = objective(*m, ctx, n, x, r);
      w = keep - h;
      const double down = objective(*m, ctx, n, x, r);
      w = keep;
      const double numeric = (up - down) / (2.0 * h);
      const double got = analytic[std::size_t(e.offset + k)];
      EXPECT_NEAR(got, numeric, 2e-3 + 1e-2 * std::abs(numeric)) << e.spec.name << "[" << k << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 100);
}

// The same network written twice, once with its blocks and once with their sums spelled out by
// hand on the host: the add is the sum of body and shortcut, and the concat stacks the branches'
// channels in order.
TEST(Graph, AddAndConcatComputeWhatTheyName) {
  auto be = make_cpu_backend({CpuOptions::ConvAlgorithm::direct});
  const char* text = R"(layers:
  - conv: {name: stem, channels: 3, kernel: 3, padding: 1}
  - residual:
      name: r
      body: [conv: {name: c, channels: 3, kernel: 3, padding: 1}]
      act: relu
  - concat:
      name: j
      branches:
        - [conv: {name: a, channels: 2, kernel: 1}]
        - [conv: {name: b, channels: 1, kernel: 1}]
  - flatten
  - dense: {name: out, units: classes}
)";
  const int n = 2;
  auto m = graph_model(*be, n, text);
  const auto x = testkit::random_vector(n * 2 * 8 * 8, 5);
  const std::vector<std::uint32_t> ids{0, 1};
  const StepContext ctx{false, 1, 0, ids.data()};
  m->forward(ctx, n, x.data());
  // Layers: stem, r.c, r (add), j.a, j.b, j (concat), flatten, out.
  // Recompute with the layers themselves on the host (the CPU backend works on host memory).
  auto run = [&](int i, const std::vector<const float*>& xs) {
    const Layer& l = *m->layers()[std::size_t(i)];
    std::vector<float> y(std::size_t(n * l.output_shape().numel()));
    const_cast<Layer&>(l).forward_inputs(ctx, n, xs, y.data());
    return y;
  };
  const auto stem = run(0, {x.data()});
  const auto body = run(1, {stem.data()});
  const auto add = run(2, {body.data(), stem.data()});
  for (std::size_t i = 0; i < add.size(); ++i)
    ASSERT_EQ(add[i], std::max(0.0f, body[i] + stem[i])) << i;
  const auto a = run(3, {add.data()});
  const auto b = run(4, {add.data()});
  const auto cat = run(5, {a.data(), b.data()});
  const std::size_t plane = 8 * 8;
  for (int s = 0; s < n; ++s)
    for (std::size_t p = 0; p < plane; ++p) {
      const std::size_t at = std::size_t(s) * 3 * plane + p;
      EXPECT_EQ(cat[at], a[std::size_t(s) * 2 * plane + p]);
      EXPECT_EQ(cat[at + plane], a[std::size_t(s) * 2 * plane + plane + p]);
      EXPECT_EQ(cat[at + 2 * plane], b[std::size_t(s) * plane + p]);
    }
  // And the model's own pass gives the same logits.
  const auto logits_by_hand = run(7, {run(6, {cat.data()}).data()});
  const float* logits = m->forward(ctx, n, x.data());
  for (std::size_t i = 0; i < logits_by_hand.size(); ++i) EXPECT_EQ(logits[i], logits_by_hand[i]);
}

// Gradient buffers are assigned by liveness: a sequence needs two (the ping-pong of a chain); the
// graph above four, as many as its widest moment needs: the concat of three branches reads its
// own output's gradient and writes one for each branch. The outputs that fan out (held while a
// branch runs backward) fit in those.
TEST(Graph, GradientBuffersAreFew) {
  const std::string path = ::testing::TempDir() + "graph.yaml";
  std::ofstream(path) << kGraph;
  auto slots = [](const ModelConfig& c) {
    // device_bytes grows with the batch by 4 x (activations + slots x widest) per sample.
    const std::int64_t per_sample = Model::device_bytes(c, 2) - Model::device_bytes(c, 1);
    std::int64_t acts = 0, widest = c.input.numel();
    for (const auto& l : build_layers(c)) {
      acts += l->output_shape().numel();
      widest = std::max(widest, l->output_shape().numel());
    }
    EXPECT_EQ((per_sample / 4 - acts) % widest, 0);
    return (per_sample / 4 - acts) / widest;
  };
  ModelConfig seq;
  seq.name = "alexnet", seq.input = Shape{1, 67, 67};
  EXPECT_EQ(slots(seq), 2);
  ModelConfig g = graph_config();
  g.name = path;
  EXPECT_EQ(slots(g), 4);
  // The zoo's graphs, as docs/models.md says: three for ResNet-18 (an add reads its output's
  // gradient and writes its two inputs'), five for GoogLeNet (dy and four branches).
  ModelConfig resnet, googlenet;
  resnet.name = "resnet18", googlenet.name = "googlenet";
  resnet.input = googlenet.input = Shape{1, 96, 96};
  EXPECT_EQ(slots(resnet), 3);
  EXPECT_EQ(slots(googlenet), 5);
}
