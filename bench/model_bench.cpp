// distnet_model_bench: forward + loss + backward + SGD step of one model replica on the CPU
// backend, on random data already in memory, so the figure is compute only. Prints images/s over
// the timed steps, the cost of the trainer's divergence check (two passes over the flat
// buffers), then a per-layer split measured in separate, synchronised passes.
//   distnet_model_bench --model alexnet --batch 16 --resize 224
#include <omp.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <vector>

#include "distnet/backend.hpp"
#include "distnet/model.hpp"
#include "distnet/philox.hpp"

namespace po = boost::program_options;
using namespace distnet;

int main(int argc, char** argv) {
  try {
    ModelConfig mc;
    int batch = 16, channels = 1, resize = 224, warmup = 3, iters = 10, threads = 0;
    bool json = false;
    std::string conv = "auto";
    po::options_description opts("Usage: distnet_model_bench [options]");
    opts.add_options()("help,h", "show this help")(
        "model", po::value(&mc.name)->default_value(mc.name), "network")(
        "batch", po::value(&batch)->default_value(batch), "batch size")(
        "channels", po::value(&channels)->default_value(channels), "input channels")(
        "resize", po::value(&resize)->default_value(resize), "input height and width")(
        "classes", po::value(&mc.classes)->default_value(mc.classes), "classes")(
        "warmup", po::value(&warmup)->default_value(warmup), "untimed steps first")(
        "iters", po::value(&iters)->default_value(iters), "timed steps")(
        "threads", po::value(&threads)->default_value(threads), "OpenMP threads (0: default)")(
        "cpu-conv", po::value(&conv)->default_value(conv), "convolution algorithm: auto or direct")(
        "json", po::bool_switch(&json), "also print one JSON line with the figures");
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << opts << "\n";
      return 0;
    }
    if (batch < 1 || iters < 1 || warmup < 0) throw UsageError("--batch and --iters must be >= 1");
    if (threads > 0) omp_set_num_threads(threads);
    mc.input = Shape{channels, resize, resize};

    if (conv != "auto" && conv != "direct")
      throw UsageError("--cpu-conv must be auto or direct, got '" + conv + "'");
    CpuOptions cpu_opts;
    if (conv == "direct") cpu_opts.conv = CpuOptions::ConvAlgorithm::direct;
    auto be = make_cpu_backend(cpu_opts);
    Model model(mc, *be, batch);
    model.initialize({});
    const std::int64_t per = mc.input.numel();
    std::vector<float> x(static_cast<std::size_t>(batch * per));
    for (std::size_t i = 0; i < x.size(); ++i)
      x[i] = philox_uniform(philox_block(7, RngPurpose::synthetic, 0, 0, 0, std::uint32_t(i)).v[0]);
    std::vector<std::int32_t> labels(static_cast<std::size_t>(batch));
    std::vector<std::uint32_t> ids(static_cast<std::size_t>(batch));
    for (int i = 0; i < batch; ++i)
      labels[std::size_t(i)] = i % mc.classes, ids[std::size_t(i)] = std::uint32_t(i);
    double stats[3] = {0, 0, 0};

    auto step = [&](std::uint32_t s) {
      StepContext ctx{true, 1, s, ids.data()};
      const float* logits = model.forward(ctx, batch, x.data());
      be->softmax_xent(batch, mc.classes, logits, labels.data(), 1.0f / batch, model.dlogits(),
                       stats);
      model.backward(ctx, batch, x.data());
      be->sgd_update(model.flat_size(), model.param_data(), model.grad_data(),
                     model.momentum_data(), {0.01f, 0.9f, 0.0f});
      be->synchronize();
    };
    for (int i = 0; i < warmup; ++i) step(std::uint32_t(i));
    std::vector<double> ms;
    for (int i = 0; i < iters; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      step(std::uint32_t(warmup + i));
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted[sorted.size() / 2];

    // The trainer's divergence check: the summed gradient and the updated parameters counted for
    // non-finite values once a step (Trainer::train_step), timed alone.
    std::vector<double> check_ms;
    double bad = 0;
    for (int i = 0; i < iters; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      be->count_nonfinite(model.flat_size(), model.grad_data(), &bad);
      be->count_nonfinite(model.flat_size(), model.param_data(), &bad);
      be->synchronize();
      check_ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(check_ms.begin(), check_ms.end());
    const double check = check_ms[check_ms.size() / 2];

    // Per-layer split: separate passes with a device sync around every layer.
    LayerTimes times;
    std::vector<double> fwd(model.layers().size(), 0.0), bwd(model.layers().size(), 0.0);
    model.set_profiling(&times);
    const int prof_iters = std::max(1, std::min(iters, 5));
    for (int i = 0; i < prof_iters; ++i) {
      step(std::uint32_t(1000 + i));
      for (std::size_t l = 0; l < fwd.size(); ++l) {
        fwd[l] += times.forward_ms[l] / prof_iters;
        bwd[l] += times.backward_ms[l] / prof_iters;
      }
    }
    model.set_profiling(nullptr);

    std::printf("backend %s\n", be->description().c_str());
    std::printf("model %s input %s batch %d\n", mc.name.c_str(), mc.input.str().c_str(), batch);
    std::printf("images_per_s %.2f\n", batch * 1000.0 / median);
    std::printf("step_ms_median %.2f\nstep_ms_min %.2f\nstep_ms_max %.2f\n", median, sorted.front(),
                sorted.back());
    std::printf("finite_check_ms_median %.3f (%.3f %% of a step; %lld floats twice, %.0f found)\n",
                check, 100.0 * check / median, static_cast<long long>(model.flat_size()), bad);
    std::printf("# per-layer ms per step (synchronised passes, %d steps)\n", prof_iters);
    double tf = 0, tb = 0;
    for (std::size_t l = 0; l < fwd.size(); ++l) {
      std::printf("layer %-9s fwd_ms %8.2f bwd_ms %8.2f\n", model.layers()[l]->name().c_str(),
                  fwd[l], bwd[l]);
      tf += fwd[l], tb += bwd[l];
    }
    std::printf("layer_total fwd_ms %.2f bwd_ms %.2f\n", tf, tb);
    if (json) {
      std::printf(
          "{\"model\":\"%s\",\"batch\":%d,\"images_per_s\":%.3f,\"step_ms_median\":%.3f,"
          "\"fwd_ms\":%.3f,\"bwd_ms\":%.3f}\n",
          mc.name.c_str(), batch, batch * 1000.0 / median, median, tf, tb);
    }
    return 0;
  } catch (const UsageError& e) {
    std::cerr << "distnet_model_bench: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "distnet_model_bench: error: " << e.what() << "\n";
    return 1;
  }
}
