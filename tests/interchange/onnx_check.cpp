// The distnet side of the ONNX tests (tests/interchange/test_onnx_runtime.py,
// test_export_cli.sh): makes checkpoints with random weights, and runs a checkpoint's model
// forward on real images after distnet's own evaluation transform.
//
//   distnet_onnx_check make --model NAME|FILE --input C,H,W --classes K --out CKPT.h5
//                           [--mean M --std S] [--seed N] [--dataset NAME]
//     Xavier weights (He's scale); biases, batch-norm's gamma and beta and its running statistics
//     drawn away from their initial 0 and 1 (so a mix-up of any of them shows). The checkpoint's
//     configuration says resize H and the normalisation given, as a training run's would.
//   distnet_onnx_check run --checkpoint CKPT.h5 --count N [--random R] --out DIR
//     The first N Fashion-MNIST test images (a 3-channel model gets three consecutive images as
//     its channels), through the checkpoint's resize and normalisation, then R uniform random
//     inputs in [-2, 2); the model's inference forward on them. DIR/tensors.txt lists "input"
//     (N+R x C x H x W) and "logits" (N+R x classes), one line each, "name d0 d1 ...", their
//     floats in that order in DIR/tensors.bin (little-endian float32).
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "distnet/checkpoint.hpp"
#include "distnet/config.hpp"
#include "distnet/data/dataset.hpp"
#include "distnet/data/transform.hpp"
#include "distnet/model.hpp"
#include "distnet/version.hpp"

using namespace distnet;

namespace {

struct Args {
  std::string mode, model, out, checkpoint, dataset = "fashion-mnist";
  Shape input;
  int classes = 10, count = 8, random = 0;
  std::uint64_t seed = 1;
  std::vector<float> mean, std_dev;
};

Args parse(int argc, char** argv) {
  DISTNET_CHECK(argc >= 2, "usage: distnet_onnx_check make|run ...");
  Args a;
  a.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string k = argv[i];
    DISTNET_CHECK(i + 1 < argc, k + " needs a value");
    const std::string v = argv[++i];
    if (k == "--model") {
      a.model = v;
    } else if (k == "--input") {
      std::vector<std::int64_t> dims;
      std::istringstream is(v);
      for (std::string d; std::getline(is, d, ',');) dims.push_back(std::stoll(d));
      a.input = Shape(dims);
    } else if (k == "--classes") {
      a.classes = std::stoi(v);
    } else if (k == "--out") {
      a.out = v;
    } else if (k == "--checkpoint") {
      a.checkpoint = v;
    } else if (k == "--count") {
      a.count = std::stoi(v);
    } else if (k == "--random") {
      a.random = std::stoi(v);
    } else if (k == "--seed") {
      a.seed = std::stoull(v);
    } else if (k == "--dataset") {
      a.dataset = v;
    } else if (k == "--mean") {
      a.mean = {std::stof(v)};
    } else if (k == "--std") {
      a.std_dev = {std::stof(v)};
    } else {
      DISTNET_CHECK(false, "unknown argument " + k);
    }
  }
  return a;
}

void make(const Args& a) {
  DISTNET_CHECK(a.input.rank() == 3 && !a.out.empty(), "make needs --input C,H,W and --out");
  auto be = make_cpu_backend();
  ModelConfig mc;
  mc.name = a.model;
  mc.input = a.input;
  mc.classes = a.classes;
  Model model(mc, *be, 1);
  // Xavier at magnitude 6 has He's variance (2 / fan), which keeps the activations' scale
  // through the ReLUs of a deep network: the logits depend on the image, not only on the biases.
  InitConfig init;
  init.seed = a.seed;
  init.xavier_magnitude = 6.0f;
  model.initialize(init);
  std::mt19937 rng(static_cast<std::uint32_t>(a.seed));
  auto draw = [&](const std::vector<ParamEntry>& entries, float* base) {
    for (const ParamEntry& e : entries) {
      float lo = 0, hi = 0;
      switch (e.spec.role) {
        case ParamRole::weight:
          continue;
        case ParamRole::bias:
        case ParamRole::beta:
          lo = -0.1f, hi = 0.1f;
          break;
        case ParamRole::gamma:
        case ParamRole::running_var:
          lo = 0.5f, hi = 1.5f;
          break;
        case ParamRole::running_mean:
          lo = -0.1f, hi = 0.1f;
          break;
      }
      std::uniform_real_distribution<float> u(lo, hi);
      for (std::int64_t i = 0; i < e.spec.shape.numel(); ++i) base[e.offset + i] = u(rng);
    }
  };
  draw(model.params(), model.param_data());
  draw(model.state(), model.state_data());

  RunConfig run;
  run.model = a.model;
  run.resize = int(a.input[1]);
  run.norm_mean = a.mean;
  run.norm_std = a.std_dev;
  run.data.name = a.dataset;
  CheckpointMeta meta;
  meta.distnet_version = DISTNET_VERSION;
  meta.model = a.model;
  meta.input = a.input;
  meta.classes = a.classes;
  meta.global_batch = 1;
  meta.train_samples = 1;
  meta.config = run.effective_ini();
  meta.run_id = "00000000000000a1";
  write_checkpoint(take_snapshot(model, meta), a.out);
}

void write_tensors(
    const std::string& dir,
    const std::vector<std::pair<std::string, std::pair<Shape, const float*>>>& list) {
  std::ofstream index(dir + "/tensors.txt"), bin(dir + "/tensors.bin", std::ios::binary);
  for (const auto& [name, t] : list) {
    index << name;
    for (auto d : t.first.dims()) index << " " << d;
    index << "\n";
    bin.write(reinterpret_cast<const char*>(t.second), std::streamsize(4 * t.first.numel()));
  }
  DISTNET_CHECK(index.good() && bin.good(), "cannot write the tensors to " + dir);
}

void run(const Args& a) {
  DISTNET_CHECK(!a.checkpoint.empty() && !a.out.empty(), "run needs --checkpoint and --out");
  const CheckpointMeta meta = read_checkpoint_meta(a.checkpoint);
  RunConfig trained;
  adopt_trained_settings(trained, meta.config, a.checkpoint);
  // Direct convolution, the tightest rounding (oneDNN may pick Winograd for 3x3 layers
  // otherwise): the comparison measures the export, not the algorithm.
  auto be = make_cpu_backend({CpuOptions::ConvAlgorithm::direct});
  ModelConfig mc;
  mc.name = meta.model;
  mc.input = meta.input;
  mc.classes = int(meta.classes);
  const int n = a.count + a.random;
  Model model(mc, *be, n);
  load_checkpoint(a.checkpoint, model, /*weights_only=*/true);

  // Real images through the transform evaluation uses (src/app/setup.cpp).
  data::DatasetOptions d;
  d.name = "fashion-mnist";
  const auto test = data::open_dataset(d, data::Split::test);
  const Shape image = test->image_shape();  // 1 x 28 x 28
  const std::int64_t c = meta.input[0], plane = image.numel();
  const data::ImageTransform transform(
      Shape{c, image[1], image[2]},
      data::TransformSpec{int(meta.input[1]), trained.norm_mean, trained.norm_std});
  const std::int64_t per = meta.input.numel();
  std::vector<float> x(std::size_t(n * per));
  std::vector<std::uint8_t> pixels(std::size_t(c * plane));
  for (int i = 0; i < a.count; ++i) {
    for (std::int64_t ch = 0; ch < c; ++ch) test->read(i * c + ch, pixels.data() + ch * plane);
    transform.apply(pixels.data(), x.data() + i * per);
  }
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (std::int64_t k = a.count * per; k < n * per; ++k) x[std::size_t(k)] = u(rng);

  const StepContext eval{};  // training = false: running statistics, no dropout
  const float* logits = model.forward(eval, n, x.data());
  DISTNET_CHECK(logits != nullptr, "the forward pass was abandoned");
  write_tensors(a.out, {{"input", {meta.input.with_batch(n), x.data()}},
                        {"logits", {Shape{n, mc.classes}, logits}}});
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    if (a.mode == "make")
      make(a);
    else if (a.mode == "run")
      run(a);
    else
      DISTNET_CHECK(false, "unknown mode " + a.mode + "; expected make or run");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distnet_onnx_check: error: %s\n", e.what());
    return 1;
  }
}
