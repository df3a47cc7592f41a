// Model definition files (docs/models.md): a user's own network parses and builds, and a bad
// definition gets one line naming the file, the line or layer, and what was expected.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "data/error_text.hpp"
#include "distnet/layer_registry.hpp"
#include "distnet/model.hpp"
#include "distnet/model_spec.hpp"
#include "ops/gradcheck.hpp"
#include "unused_group.hpp"

using namespace distnet;
using testkit::error_of;
using testkit::expect_one_line;

namespace {

// The example of docs/models.md.
const char* kMyNet = R"(# A small network of my own for 1x28x28 images.
name: mynet
input_size: 28
layers:
  - conv:       {name: c1, channels: 16, kernel: 3, padding: 1}
  - batch_norm: {name: bn1, act: relu}
  - max_pool:   {kernel: 2}
  - conv:       {name: c2, channels: 32, kernel: 3, padding: 1, act: relu}
  - adaptive_avg_pool: {name: gap, size: 1}
  - flatten
  - dense:      {units: 64}
  - batch_norm: {name: bn2}
  - relu
  - dropout:    {p: 0.25}
  - dense:      {name: out, units: classes}
)";

std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

ModelConfig cfg(const std::string& model, Shape in = Shape{1, 28, 28}) {
  ModelConfig c;
  c.name = model, c.input = std::move(in);
  return c;
}

std::string parse_error(const std::string& text) {
  return error_of([&] { parse_model_definition(text, "bad.yaml"); });
}

std::string build_error(const std::string& text, Shape in = Shape{1, 28, 28}) {
  return error_of([&] {
    build_layers(parse_model_definition(text, "bad.yaml"), cfg("bad.yaml", std::move(in)));
  });
}

}  // namespace

TEST(Definitions, AUsersNetworkParsesIntoNamedNodes) {
  const ModelSpec s = parse_model_definition(kMyNet, "mynet.yaml");
  EXPECT_EQ(s.name, "mynet");
  EXPECT_EQ(s.input_size, 28);
  ASSERT_EQ(s.nodes.size(), 11u);
  std::vector<std::string> names, inputs;
  for (const auto& n : s.nodes) names.push_back(n.name), inputs.push_back(n.inputs.at(0));
  // Unnamed layers are named after their op, counted per op.
  EXPECT_EQ(names, (std::vector<std::string>{"c1", "bn1", "max_pool1", "c2", "gap", "flatten1",
                                             "dense1", "bn2", "relu1", "dropout1", "out"}));
  EXPECT_EQ(inputs.front(), "input");
  for (std::size_t i = 1; i < names.size(); ++i) EXPECT_EQ(inputs[i], names[i - 1]);
  EXPECT_EQ(s.nodes[0].op, "conv");
  EXPECT_EQ(s.nodes[0].line, 5);
  EXPECT_EQ(s.nodes[0].settings.at("channels"), "16");
  EXPECT_EQ(s.nodes[10].settings.at("units"), "classes");
}

TEST(Definitions, AUsersNetworkBuildsAndTrainsFromAFile) {
  const std::string path = write_file("mynet.yaml", kMyNet);
  const auto layers = build_layers(cfg(path));
  std::vector<std::string> shapes;
  for (const auto& l : layers) shapes.push_back(l->output_shape().str());
  EXPECT_EQ(shapes, (std::vector<std::string>{"16x28x28", "16x28x28", "16x14x14", "32x14x14",
                                              "32x1x1", "32", "64", "64", "64", "64", "10"}));
  EXPECT_EQ(layers[2]->kind(), "max_pool 2/2");  // stride defaults to the kernel
  EXPECT_EQ(layers[8]->kind(), "relu");
  EXPECT_EQ(layers[9]->kind(), "dropout 0.25");
  EXPECT_EQ(default_resize(path), 28);

  auto be = make_cpu_backend();
  Model m(cfg(path), *be, 2);
  m.initialize({});
  EXPECT_EQ(m.num_trainable(),
            (16 * 9 + 16) + 2 * 16 + (32 * 16 * 9 + 32) + (64 * 32 + 64) + 2 * 64 + (10 * 64 + 10));
  std::vector<float> x(2 * 28 * 28, 0.5f);
  x[3] = -1.0f;
  const std::vector<std::uint32_t> ids{0, 1};
  const std::vector<std::int32_t> labels{2, 7};
  const StepContext ctx{true, 1, 0, ids.data()};
  const float* logits = m.forward(ctx, 2, x.data());
  double stats[3] = {0, 0, 0};
  be->softmax_xent(2, 10, logits, labels.data(), 0.5f, m.dlogits(), stats);
  EXPECT_TRUE(m.backward(ctx, 2, x.data()));
  EXPECT_GT(stats[0], 0.0);
}

// The pieces d2l's GoogLeNet and the ResNet-18s (d2l's, torchvision's) need besides their
// blocks: convolutions without a bias or in groups, padded max pooling, average pooling with the
// padding counted or not. They build from a file, show their settings, count their parameters
// (a bias-less convolution has its weight only) and train a step.
TEST(Definitions, ResNetAndGoogLeNetLayersBuildAndTrain) {
  const std::string path = write_file("pieces.yaml", R"(layers:
  - conv:       {name: stem, channels: 8, kernel: 7, stride: 2, padding: 3, bias: false}
  - batch_norm: {name: bn, act: relu}
  - max_pool:   {name: pool, kernel: 3, stride: 2, padding: 1}
  - max_pool:   {name: keep, kernel: 3, stride: 1, padding: 1}
  - avg_pool:   {name: avg, kernel: 3, stride: 1, padding: 1}
  - avg_pool:   {name: avgx, kernel: 3, stride: 1, padding: 1, count_padding: false}
  - conv:       {name: grouped, channels: 16, kernel: 3, padding: 1, groups: 4, bias: false}
  - conv:       {name: biased, channels: 16, kernel: 1, bias: true, act: relu}
  - avg_pool:   {name: down, kernel: 2}
  - flatten
  - dense:      {units: classes}
)");
  const ModelConfig c = cfg(path, Shape{3, 32, 32});
  const auto layers = build_layers(c);
  std::vector<std::string> got;
  for (const auto& l : layers) got.push_back(l->kind() + " " + l->output_shape().str());
  EXPECT_EQ(got, (std::vector<std::string>{
                     "conv2d 8@7x7 s2 p3 nobias 8x16x16", "batch_norm +relu 8x16x16",
                     "max_pool 3/2 p1 8x8x8", "max_pool 3/1 p1 8x8x8", "avg_pool 3/1 p1 8x8x8",
                     "avg_pool 3/1 p1 excl-pad 8x8x8", "conv2d 16@3x3 s1 p1 g4 nobias 16x8x8",
                     "conv2d 16@1x1 s1 p0 +relu 16x8x8", "avg_pool 2/2 16x4x4", "flatten 256",
                     "dense 256->10 10"}));
  const auto stem = layers[0]->param_specs();
  ASSERT_EQ(stem.size(), 1u);
  EXPECT_EQ(stem[0].name, "stem.weight");
  const auto grouped = layers[6]->param_specs();
  ASSERT_EQ(grouped.size(), 1u);
  EXPECT_EQ(grouped[0].shape, (Shape{16, 2, 3, 3}));  // (c_out, c_in / groups, k, k)
  EXPECT_EQ(grouped[0].fan_in, 2 * 9);
  EXPECT_EQ(grouped[0].fan_out, 16 * 9);
  EXPECT_EQ(layers[7]->param_specs().size(), 2u);

  auto be = make_cpu_backend();
  Model m(c, *be, 2);
  m.initialize({});
  EXPECT_EQ(m.num_trainable(), 8 * 3 * 49 + 2 * 8 + 16 * 2 * 9 + (16 * 16 + 16) + (256 * 10 + 10));
  std::vector<std::string> names;
  for (const ParamEntry& e : m.params()) names.push_back(e.spec.name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"biased.bias", "biased.weight", "bn.beta", "bn.gamma",
                                             "dense1.bias", "dense1.weight", "grouped.weight",
                                             "stem.weight"}));
  const auto x = testkit::random_vector(2 * 3 * 32 * 32, 3);
  const std::vector<std::uint32_t> ids{0, 1};
  const std::vector<std::int32_t> labels{2, 7};
  const StepContext ctx{true, 1, 0, ids.data()};
  const float* logits = m.forward(ctx, 2, x.data());
  double stats[3] = {0, 0, 0};
  be->softmax_xent(2, 10, logits, labels.data(), 0.5f, m.dlogits(), stats);
  EXPECT_TRUE(m.backward(ctx, 2, x.data()));
  EXPECT_TRUE(std::isfinite(stats[0]));
  // Every weight got a gradient (the stem's reaches it through every new layer).
  for (const ParamEntry& e : m.params()) {
    if (e.spec.role != ParamRole::weight) continue;
    const float* g = m.grad_data() + e.offset;
    double sum = 0;
    for (std::int64_t i = 0; i < e.spec.shape.numel(); ++i) sum += std::abs(g[i]);
    EXPECT_GT(sum, 0.0) << e.spec.name;
  }
}

TEST(Definitions, BadPoolingAndConvolutionSettingsNameTheLayer) {
  expect_one_line(build_error("layers:\n  - max_pool: {kernel: 3, stride: 2, padding: 2}\n"),
                  {"bad.yaml:2: layer max_pool1 (max_pool): padding must be at most half the "
                   "kernel (1 for kernel 3), got 2"});
  expect_one_line(build_error("layers:\n  - avg_pool: {name: a, kernel: 2, padding: 2}\n"),
                  {"bad.yaml:2: layer a (avg_pool): padding must be at most half the kernel (1 "
                   "for kernel 2), got 2"});
  expect_one_line(build_error("layers:\n  - max_pool: {kernel: 3, padding: -1}\n"),
                  {"bad.yaml:2: layer max_pool1 (max_pool): padding must be an integer >= 0, got "
                   "'-1'"});
  expect_one_line(build_error("layers:\n  - avg_pool: {kernel: 0}\n"),
                  {"bad.yaml:2: layer avg_pool1 (avg_pool): kernel must be a positive integer, "
                   "got '0'"});
  expect_one_line(build_error("layers:\n  - avg_pool: {stride: 2}\n"),
                  {"bad.yaml:2: layer avg_pool1 (avg_pool): needs a setting 'kernel' (a positive "
                   "integer)"});
  expect_one_line(
      build_error("layers:\n  - avg_pool: {kernel: 3, padding: 1, count_padding: no}\n"),
      {"bad.yaml:2: layer avg_pool1 (avg_pool): count_padding must be true or false, got 'no'"});
  expect_one_line(build_error("layers:\n  - conv: {name: c, channels: 4, kernel: 3, bias: 0}\n"),
                  {"bad.yaml:2: layer c (conv): bias must be true or false, got '0'"});
  expect_one_line(build_error("layers:\n  - conv: {name: c, channels: 4, kernel: 3, groups: 0}\n"),
                  {"bad.yaml:2: layer c (conv): groups must be a positive integer, got '0'"});
  expect_one_line(
      build_error("layers:\n  - conv: {name: c, channels: 6, kernel: 3, groups: 2}\n",
                  Shape{3, 28, 28}),
      {"bad.yaml:2: layer c (conv): groups must divide the input's 3 channels and the 6 output "
       "channels, got 2"});
  expect_one_line(
      build_error("layers:\n  - conv: {name: c, channels: 6, kernel: 3, groups: 4}\n",
                  Shape{4, 28, 28}),
      {"bad.yaml:2: layer c (conv): groups must divide the input's 4 channels and the 6 output "
       "channels, got 4"});
  expect_one_line(parse_error("layers:\n  - avg_pool: {kernel: 2, count_pad: true}\n"),
                  {"bad.yaml:2: unknown setting 'count_pad' of avg_pool; expected one of: name, "
                   "count_padding, kernel, padding, stride"});
  // A non-positive output size, padding included: 1 + 2 - 4 < 0.
  expect_one_line(
      build_error("layers:\n  - max_pool: {name: p, kernel: 4, padding: 1}\n", Shape{1, 1, 1}),
      {"bad.yaml:2: layer p (pool 4/4 p1) would produce an empty output from input "
       "1x1x1"});
  expect_one_line(build_error("layers:\n  - avg_pool: {name: p, kernel: 5}\n", Shape{1, 4, 4}),
                  {"bad.yaml:2: layer p (pool 5/5) would produce an empty output from input "
                   "1x4x4"});
}

TEST(Definitions, ANameWithoutAPathFindsTheZoo) {
  EXPECT_EQ(load_model_spec("lenet").source, "models/lenet.yaml");
  EXPECT_EQ(zoo_model_names(),
            (std::vector<std::string>{"alexnet", "alexnet-bn", "alexnet-nopad",
                                      "alexnet-torchvision", "googlenet", "lenet", "nin",
                                      "resnet18", "resnet18-torchvision", "vgg11"}));
  EXPECT_EQ(default_resize("lenet"), 28);
  EXPECT_EQ(default_resize("alexnet-torchvision"), 224);
  EXPECT_EQ(default_resize("vgg"), 0);
  expect_one_line(error_of([] { load_model_spec("vgg"); }),
                  {"unknown model 'vgg'; expected one of: alexnet, alexnet-bn"});
  expect_one_line(error_of([] { load_model_spec("no/such/net.yaml"); }),
                  {"cannot read the model definition 'no/such/net.yaml': No such file"});
  expect_one_line(error_of([] { load_model_spec("nonet.yaml"); }),
                  {"cannot read the model definition 'nonet.yaml'"});
}

TEST(Definitions, UnknownLayersAndSettingsNameTheLine) {
  expect_one_line(
      parse_error("layers:\n  - conv: {channels: 8, kernel: 3}\n  - convolution: {}\n"),
      {"bad.yaml:3: unknown layer 'convolution'; expected one of: adaptive_avg_pool, "
       "avg_pool, batch_norm, conv, dense, dropout, flatten, max_pool, relu, residual, concat, "
       "repeat"});
  expect_one_line(parse_error("layers:\n  - conv: {channels: 8, kernal: 3}\n"),
                  {"bad.yaml:2: unknown setting 'kernal' of conv; expected one of: name, act, "
                   "bias, channels, groups, kernel, padding, stride"});
  expect_one_line(parse_error("layers:\n  - flatten: {size: 3}\n"),
                  {"bad.yaml:2: unknown setting 'size' of flatten; expected only name"});
  expect_one_line(parse_error("name: x\nlayer:\n  - flatten\n"),
                  {"bad.yaml:2: unknown key 'layer'; expected name, input_size, loss or layers"});
  expect_one_line(parse_error("layers:\n  - conv: {channels: 8, channels: 3}\n"),
                  {"bad.yaml:2: setting 'channels' given twice"});
  expect_one_line(parse_error("loss: hinge\nlayers: [flatten]\n"),
                  {"bad.yaml:1: expected loss: softmax_cross_entropy"});
  expect_one_line(parse_error("input_size: -3\nlayers: [flatten]\n"),
                  {"bad.yaml:1: input_size must be a positive integer, got '-3'"});
}

TEST(Definitions, SyntaxAndStructureErrorsNameTheLine) {
  expect_one_line(parse_error("layers:\n  - conv: {channels: 8\n"), {"bad.yaml:"});
  expect_one_line(parse_error(""), {"bad.yaml:1: expected a mapping with 'layers:'"});
  expect_one_line(parse_error("layers: 3\n"), {"bad.yaml:1: expected layers: a list of layers"});
  expect_one_line(parse_error("name: x\nlayers: []\n"),
                  {"bad.yaml:2: expected a list of at least one layer"});
  expect_one_line(parse_error("layers:\n  - conv: 3\n"),
                  {"bad.yaml:2: expected the settings of conv as a mapping"});
  expect_one_line(parse_error("layers:\n  - {conv: {}, dense: {}}\n"),
                  {"bad.yaml:2: expected a layer: '- op' or '- op: {setting: value, ...}'"});
}

TEST(Definitions, DuplicateNamesAreRefused) {
  expect_one_line(
      parse_error("layers:\n  - conv: {name: a, channels: 8, kernel: 3}\n  - flatten\n"
                  "  - dense: {name: a, units: 3}\n"),
      {"bad.yaml:4: duplicate layer name 'a' (first at line 2); expected every name once"});
  // An explicit name may collide with a generated one.
  expect_one_line(parse_error("layers:\n  - flatten: {name: dense1}\n  - dense: {units: 3}\n"),
                  {"bad.yaml:3: duplicate layer name 'dense1'"});
  expect_one_line(parse_error("layers:\n  - flatten: {name: input}\n"),
                  {"bad.yaml:2: the name 'input' is reserved"});
}

TEST(Definitions, BadValuesAndEmptyOutputsNameTheLayer) {
  expect_one_line(build_error("layers:\n  - conv: {name: c1, channels: 0, kernel: 3}\n"),
                  {"bad.yaml:2: layer c1 (conv): channels must be a positive integer, got '0'"});
  expect_one_line(build_error("layers:\n  - conv: {name: c1, kernel: 3}\n"),
                  {"bad.yaml:2: layer c1 (conv): needs a setting 'channels' (a positive integer)"});
  expect_one_line(build_error("layers:\n  - conv: {channels: 4, kernel: 3, padding: -1}\n"),
                  {"bad.yaml:2: layer conv1 (conv): padding must be an integer >= 0, got '-1'"});
  expect_one_line(build_error("layers:\n  - dense: {units: 3, act: tanh}\n"),
                  {"bad.yaml:2: layer dense1 (dense): act must be relu or none, got 'tanh'"});
  expect_one_line(build_error("layers:\n  - dense: {units: many}\n"),
                  {"bad.yaml:2: layer dense1 (dense): units must be a positive integer, got "
                   "'many'"});
  expect_one_line(build_error("layers:\n  - dropout: {p: 1.5}\n"),
                  {"bad.yaml:2: layer dropout1 (dropout): p must be in [0, 1), got 1.5"});
  expect_one_line(build_error("layers:\n  - adaptive_avg_pool: {size: [2, 2, 2]}\n"),
                  {"bad.yaml:2: layer adaptive_avg_pool1 (adaptive_avg_pool): size must be N or "
                   "[H, W]"});
  expect_one_line(build_error("layers:\n  - flatten\n  - conv: {channels: 4, kernel: 3}\n"),
                  {"bad.yaml:3: layer conv1 (conv): needs a C x H x W input, got 784"});
  // A layer that leaves a non-positive size: where, which layer, and the input that would fit.
  const std::string path = write_file(
      "shrinks.yaml",
      "layers:\n  - conv: {name: big, channels: 4, kernel: 40}\n  - dense: {units: classes}\n");
  expect_one_line(error_of([&] { build_layers(cfg(path)); }),
                  {"model '" + path + "' does not fit input 1x28x28: " + path +
                   ":2: layer big (conv 40x40) would produce an empty output from input "
                   "1x28x28; the smallest square input it accepts is 40x40 (use a resize)"});
}

// Blocks parse into a graph of named nodes: a residual block's body and shortcut both start from
// the block's input and meet in an add named after the block; a concat block's branches meet in
// a concat; a repeat chains copies of its layers, named by repetition. The built layers keep the
// wiring as indices.
TEST(Definitions, BlocksParseIntoAGraphOfNamedNodes) {
  const char* text = R"(layers:
  - conv: {name: stem, channels: 8, kernel: 3, padding: 1}
  - residual:
      name: b1
      body:
        - conv: {name: c1, channels: 8, kernel: 3, padding: 1}
        - batch_norm: {name: bn1, act: relu}
        - conv: {name: c2, channels: 8, kernel: 3, padding: 1}
      act: relu
  - residual:
      name: b2
      body:
        - conv: {channels: 16, kernel: 3, stride: 2, padding: 1}
      shortcut:
        - conv: {name: proj, channels: 16, kernel: 1, stride: 2}
  - concat:
      name: inc
      branches:
        - - conv: {channels: 4, kernel: 1}
        - - conv: {channels: 4, kernel: 1}
          - conv: {channels: 4, kernel: 3, padding: 1}
  - repeat:
      name: stage
      times: 2
      layers:
        - conv: {channels: 8, kernel: 3, padding: 1}
  - dense: {units: classes}
)";
  const ModelSpec s = parse_model_definition(text, "blocks.yaml");
  std::vector<std::string> got;
  for (const auto& n : s.nodes) {
    std::string line = n.name + " " + n.op + " <-";
    for (const auto& i : n.inputs) line += " " + i;
    got.push_back(line);
  }
  EXPECT_EQ(got, (std::vector<std::string>{
                     "stem conv <- input", "b1.c1 conv <- stem", "b1.bn1 batch_norm <- b1.c1",
                     "b1.c2 conv <- b1.bn1", "b1 add <- b1.c2 stem", "b2.conv1 conv <- b1",
                     "b2.proj conv <- b1", "b2 add <- b2.conv1 b2.proj", "inc.conv1 conv <- b2",
                     "inc.conv2 conv <- b2", "inc.conv3 conv <- inc.conv2",
                     "inc concat <- inc.conv1 inc.conv3", "stage.1.conv1 conv <- inc",
                     "stage.2.conv1 conv <- stage.1.conv1", "dense1 dense <- stage.2.conv1"}));
  EXPECT_EQ(s.nodes[4].settings.at("act"), "relu");
  EXPECT_EQ(s.nodes[4].line, 3);
  const auto graph = build_layers(s, cfg("blocks.yaml"));
  ASSERT_EQ(graph.size(), s.nodes.size());
  EXPECT_EQ(graph[4]->kind(), "add 2 +relu");
  EXPECT_EQ(graph[4]->inputs(), (std::vector<int>{3, 0}));
  EXPECT_EQ(graph[11]->kind(), "concat 2");
  EXPECT_EQ(graph[11]->inputs(), (std::vector<int>{8, 10}));
  EXPECT_EQ(graph[11]->output_shape(), (Shape{8, 14, 14}));
  EXPECT_EQ(graph[0]->inputs(), (std::vector<int>{-1}));
  // A repeat is a sequence: it builds, its layers named by repetition.
  const auto layers = build_layers(
      parse_model_definition("layers:\n  - repeat:\n      name: stage\n      times: 2\n"
                             "      layers:\n        - conv: {channels: 4, kernel: 3}\n"
                             "  - dense: {units: classes}\n",
                             "repeat.yaml"),
      cfg("repeat.yaml"));
  ASSERT_EQ(layers.size(), 3u);
  EXPECT_EQ(layers[1]->name(), "stage.2.conv1");
  EXPECT_EQ(layers[1]->output_shape(), (Shape{4, 24, 24}));
  EXPECT_EQ(layers[1]->param_specs()[0].name, "stage.2.conv1.weight");
}

TEST(Definitions, TheLastLayerGivesOneOutputPerClass) {
  expect_one_line(build_error("layers:\n  - flatten\n  - dense: {units: 3}\n"),
                  {"bad.yaml:3: layer dense1 (dense): gives 3 outputs per sample; expected one per "
                   "class (10: units: classes)"});
  // NiN ends in a convolution with one channel per class, pooled to 1x1.
  const auto layers =
      build_layers(parse_model_definition("layers:\n  - conv: {channels: classes, kernel: 3}\n"
                                          "  - adaptive_avg_pool: {size: 1}\n  - flatten\n",
                                          "nin.yaml"),
                   cfg("nin.yaml"));
  EXPECT_EQ(layers.back()->output_shape(), (Shape{10}));
}

TEST(Definitions, BadBlocksNameTheLine) {
  expect_one_line(parse_error("layers:\n  - residual: {name: b}\n"),
                  {"bad.yaml:2: residual needs 'body'"});
  expect_one_line(parse_error("layers:\n  - residual: {body: [flatten], short: [flatten]}\n"),
                  {"bad.yaml:2: unknown setting 'short' of residual; expected one of: name, body, "
                   "shortcut, act"});
  expect_one_line(parse_error("layers:\n  - concat:\n      branches:\n        - [flatten]\n"),
                  {"bad.yaml:4: expected branches: a list of at least two lists of layers"});
  expect_one_line(parse_error("layers:\n  - repeat: {times: 0, layers: [flatten]}\n"),
                  {"bad.yaml:2: times must be a positive integer, got '0'"});
  expect_one_line(parse_error("layers:\n  - repeat: {times: 2, layers: []}\n"),
                  {"bad.yaml:2: expected a list of at least one layer"});
  expect_one_line(parse_error("layers:\n  - flatten: {name: a.b}\n"),
                  {"bad.yaml:2: a layer name must be non-empty without '.'"});
  expect_one_line(
      parse_error("layers:\n  - residual:\n      name: b\n      body:\n        - flatten: "
                  "{name: x}\n        - flatten: {name: x}\n"),
      {"bad.yaml:6: duplicate layer name 'b.x' (first at line 5)"});
}

// A graph that cannot be built names the layer: shapes that do not match at an add or a concat,
// an output nothing reads, an input that is not an earlier layer (a dangling reference or a
// cycle; the block syntax cannot write either, a spec made by a program can).
TEST(Definitions, BadGraphsNameTheLayer) {
  expect_one_line(
      build_error("layers:\n  - residual:\n      name: b\n      body:\n        - conv: "
                  "{channels: 4, kernel: 3, padding: 1}\n  - dense: {units: classes}\n"),
      {"bad.yaml:2: layer b (add) joins inputs of shapes 4x28x28, 1x28x28; expected one shape"});
  expect_one_line(
      build_error("layers:\n  - concat:\n      name: j\n      branches:\n        - [conv: "
                  "{channels: 4, kernel: 3}]\n        - [conv: {channels: 4, kernel: 1}]\n"
                  "  - dense: {units: classes}\n"),
      {"bad.yaml:2: layer j (concat) joins inputs of shapes 4x26x26, 4x28x28; expected C x H x W "
       "inputs of one height and width"});
  ModelSpec spec = parse_model_definition(
      "layers:\n  - conv: {name: a, channels: 4, kernel: 1}\n  - conv: {name: b, channels: 4, "
      "kernel: 1}\n  - dense: {name: out, units: classes}\n",
      "graph.yaml");
  ModelSpec dangling = spec;
  dangling.nodes[1].inputs = {"out"};
  expect_one_line(error_of([&] { build_layers(dangling, cfg("graph.yaml")); }),
                  {"graph.yaml:3: layer b (conv): takes the output of 'out', which is not a layer "
                   "before it (a dangling reference or a cycle)"});
  ModelSpec unused = spec;
  unused.nodes[2].inputs = {"a"};
  expect_one_line(error_of([&] { build_layers(unused, cfg("graph.yaml")); }),
                  {"graph.yaml:3: layer b (conv): its output is never used"});
  ModelSpec two = spec;
  two.nodes[1].inputs = {"a", "input"};
  expect_one_line(error_of([&] { build_layers(two, cfg("graph.yaml")); }),
                  {"graph.yaml:3: layer b (conv): takes 2 inputs; expected one"});
}

// --model-parallel splits the first two dense layers; a definition where that cannot work says so.
TEST(Definitions, ModelParallelSaysWhereItCannotSplit) {
  testkit::UnusedGroup group(0, 2);
  const LayerSplit split{&group, 2, 0};
  const auto error = [&](const std::string& text) {
    return error_of(
        [&] { build_layers(parse_model_definition(text, "bad.yaml"), cfg("bad.yaml"), split); });
  };
  expect_one_line(error("layers:\n  - dense: {units: 8}\n  - batch_norm\n  - dense: {units: 3}\n"),
                  {"bad.yaml:3: layer batch_norm1 (batch_norm): --model-parallel splits the first "
                   "two dense layers by neurons; between them only dropout and relu can run on a "
                   "shard"});
  expect_one_line(
      error("layers:\n  - conv: {channels: 2, kernel: 3}\n  - dense: {units: classes}\n"),
      {"bad.yaml: --model-parallel splits the first two dense layers by neurons; "
       "expected a model with two, it has 1"});
}
