#include "distnet/report.hpp"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>

#include "distnet/error.hpp"
#include "distnet/model.hpp"
#include "distnet/trainer.hpp"

namespace distnet {
namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
}  // namespace

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\', o += c;
    } else if (c == '\n') {
      o += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      o += buf;
    } else {
      o += c;
    }
  }
  return o;
}

Reporter::Reporter(bool active, const std::string& metrics_file, const std::string& progress_mode)
    : active_(active) {
  if (!active_) return;
  // Under mpirun, Open MPI hands every rank a pseudo-terminal even when the user's output goes to
  // a file or pipe, so "auto" shows the bar only outside a launcher; --progress on forces it.
  const bool launched = std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") ||
                        std::getenv("SLURM_STEP_ID");
  bar_ = progress_mode == "on" || (progress_mode == "auto" && !launched && isatty(STDOUT_FILENO));
  if (!metrics_file.empty()) {
    metrics_ = std::fopen(metrics_file.c_str(), "w");
    if (!metrics_) throw Error(metrics_file + ": cannot open the metrics file for writing");
  }
}

Reporter::~Reporter() {
  if (metrics_) std::fclose(metrics_);
}

void Reporter::line(const std::string& text) {
  if (!active_) return;
  clear_progress();
  std::printf("%s\n", text.c_str());
  std::fflush(stdout);
}

void Reporter::json(const std::string& object) {
  if (!active_ || !metrics_) return;
  std::fprintf(metrics_, "%s\n", object.c_str());
  std::fflush(metrics_);
}

bool Reporter::progress_due() const {
  return active_ && bar_ && now_s() - last_bar_ >= 0.5;
}

void Reporter::progress(int epoch, std::int64_t done, std::int64_t total, double loss, double acc,
                        double examples_per_s) {
  if (!active_ || !bar_) return;
  last_bar_ = now_s();
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * done / std::max<std::int64_t>(1, total));
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(kWidth, '.');
  std::printf("\repoch %d [%s] %lld/%lld  loss %.3f  acc %.3f  %.1f examples/sec (rank 0) ", epoch,
              bar.c_str(), static_cast<long long>(done), static_cast<long long>(total), loss, acc,
              examples_per_s);
  std::fflush(stdout);
  bar_shown_ = true;
}

void Reporter::clear_progress() {
  if (!bar_shown_) return;
  std::printf("\r%100s\r", "");
  bar_shown_ = false;
}

void Reporter::epoch(const EpochMetrics& m, int world, const std::string& device) {
  std::string text = "epoch " + std::to_string(m.epoch) + ", loss " + fmt("%.3f", m.loss) +
                     ", train acc " + fmt("%.3f", m.train_acc);
  if (m.test_acc > 0 || m.test_loss > 0) text += ", test acc " + fmt("%.3f", m.test_acc);
  text += ", " + fmt("%.1f", m.examples_per_s) + " examples/sec on " + std::to_string(world) +
          (world == 1 ? " rank (" : " ranks (") + device + ")";
  line(text);
  json("{\"event\":\"epoch\",\"epoch\":" + std::to_string(m.epoch) +
       ",\"loss\":" + fmt("%.6f", m.loss) + ",\"train_acc\":" + fmt("%.6f", m.train_acc) +
       ",\"test_loss\":" + fmt("%.6f", m.test_loss) + ",\"test_acc\":" + fmt("%.6f", m.test_acc) +
       ",\"samples\":" + std::to_string(m.samples) + ",\"steps\":" + std::to_string(m.steps) +
       ",\"time_s\":" + fmt("%.4f", m.time_s) +
       ",\"examples_per_s\":" + fmt("%.3f", m.examples_per_s) + ",\"lr\":" + fmt("%.8g", m.lr) +
       ",\"data_wait_s\":" + fmt("%.4f", m.data_wait_s) + ",\"comm_s\":" + fmt("%.4f", m.comm_s) +
       ",\"ranks\":" + std::to_string(world) + ",\"device\":\"" + device + "\"}");
}

void Reporter::target(double target, bool reached, int epochs, double wall_s, double test_acc,
                      int world) {
  line(std::string(reached ? "reached" : "did not reach") + " the target test accuracy " +
       fmt("%.4g", target) + (reached ? " after " : " in ") + std::to_string(epochs) +
       (epochs == 1 ? " epoch, " : " epochs, ") + fmt("%.1f", wall_s) + " s of training on " +
       std::to_string(world) + (world == 1 ? " rank" : " ranks") + " (test acc " +
       fmt("%.4f", test_acc) + ")");
  json("{\"event\":\"time_to_accuracy\",\"target\":" + fmt("%.6g", target) +
       ",\"reached\":" + (reached ? "true" : "false") + ",\"epochs\":" + std::to_string(epochs) +
       ",\"wall_s\":" + fmt("%.4f", wall_s) + ",\"test_acc\":" + fmt("%.6f", test_acc) +
       ",\"ranks\":" + std::to_string(world) + "}");
}

void Reporter::benchmark(const BenchmarkResult& r, int world, const Model& model) {
  line("benchmark: " + std::to_string(r.steps) + " steps of a global batch of " +
       std::to_string(r.global_batch) + " on " + std::to_string(world) +
       (world == 1 ? " rank" : " ranks"));
  line("  images/s: " + fmt("%.1f", r.images_per_s) + " total, " +
       fmt("%.1f", r.images_per_s_per_rank) + " per rank");
  line("  step time: " + fmt("%.2f", r.step_ms) + " ms = compute " + fmt("%.2f", r.compute_ms) +
       " + exposed communication " + fmt("%.2f", r.comm_ms) + " + data wait " +
       fmt("%.2f", r.data_ms) + " (mean over ranks)");
  line("  per layer on rank 0 (ms, synchronised passes):");
  std::string layers_json;
  for (std::size_t l = 0; l < r.layers.forward_ms.size(); ++l) {
    const auto& name = model.layers()[l]->name();
    line("    " + name + std::string(10 - std::min<std::size_t>(9, name.size()), ' ') + "forward " +
         fmt("%8.2f", r.layers.forward_ms[l]) + "  backward " +
         fmt("%8.2f", r.layers.backward_ms[l]));
    std::int64_t grads = 0;  // gradient floats of this layer: what it adds to the all-reduce
    for (const auto& ps : model.layers()[l]->param_specs())
      if (ps.trainable()) grads += ps.shape.numel();
    layers_json += std::string(l ? "," : "") + "{\"layer\":\"" + name +
                   "\",\"forward_ms\":" + fmt("%.4f", r.layers.forward_ms[l]) +
                   ",\"backward_ms\":" + fmt("%.4f", r.layers.backward_ms[l]) +
                   ",\"grad_floats\":" + std::to_string(grads) + "}";
  }
  json("{\"event\":\"benchmark\",\"ranks\":" + std::to_string(world) + ",\"global_batch\":" +
       std::to_string(r.global_batch) + ",\"steps\":" + std::to_string(r.steps) +
       ",\"images_per_s\":" + fmt("%.3f", r.images_per_s) + ",\"images_per_s_per_rank\":" +
       fmt("%.3f", r.images_per_s_per_rank) + ",\"step_ms\":" + fmt("%.4f", r.step_ms) +
       ",\"per_rank_batch\":" + fmt("%.4f", double(r.global_batch) / world) +
       ",\"compute_ms\":" + fmt("%.4f", r.compute_ms) + ",\"comm_ms\":" + fmt("%.4f", r.comm_ms) +
       ",\"data_ms\":" + fmt("%.4f", r.data_ms) + ",\"layers\":[" + layers_json + "]}");
}

}  // namespace distnet
