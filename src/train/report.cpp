#include "distnet/report.hpp"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "distnet/error.hpp"
#include "distnet/model.hpp"
#include "distnet/tensorboard.hpp"
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
// A number in a JSON line: NaN and infinities are not JSON, so they are written as null.
std::string jfmt(const char* f, double v) {
  return std::isfinite(v) ? fmt(f, v) : "null";
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

std::string json_number(double v) {
  return jfmt("%.6f", v);
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto t = static_cast<long long>(std::llround(seconds));
  char buf[64];
  if (t < 60)
    std::snprintf(buf, sizeof buf, "%lld s", t);
  else if (t < 3600)
    std::snprintf(buf, sizeof buf, "%lld min %02lld s", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lld h %02lld min", t / 3600, (t % 3600) / 60);
  return buf;
}

Reporter::Reporter(bool active, const std::string& metrics_file, const std::string& progress_mode,
                   double interval_s)
    : active_(active), interval_s_(interval_s), last_(now_s()) {
  if (!active_) return;
  // Under mpirun, Open MPI hands every rank a pseudo-terminal even when the user's output goes to
  // a file or pipe, so "auto" shows the bar only outside a launcher on a terminal, and otherwise
  // prints a compact line every interval; --progress on forces the bar, off silences both.
  const bool launched = std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") ||
                        std::getenv("SLURM_STEP_ID");
  if (progress_mode == "on")
    mode_ = Mode::bar;
  else if (progress_mode == "auto")
    mode_ = !launched && isatty(STDOUT_FILENO) ? Mode::bar : Mode::lines;
  if (!metrics_file.empty()) {
    // Appended to, never truncated: a resumed (requeued) run goes on with the same history, and
    // every run's records carry its id (docs/reliability.md).
    metrics_ = std::fopen(metrics_file.c_str(), "a");
    if (!metrics_)
      throw Error(metrics_file +
                  ": cannot open the metrics file for writing: " + std::strerror(errno));
    metrics_name_ = metrics_file;
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
  if (!active_ || !metrics_ || !failure_.empty()) return;
  std::string record = object;
  if (!run_id_.empty() && record.rfind("{", 0) == 0 &&
      record.find("\"run_id\"") == std::string::npos)
    record.insert(1, "\"run_id\":\"" + run_id_ + "\",");
  // A full disk or a lost file system is found at the flush; the trainer stops the run on it.
  errno = 0;
  if (std::fprintf(metrics_, "%s\n", record.c_str()) < 0 || std::fflush(metrics_) != 0)
    failure_ =
        metrics_name_ + ": cannot write the metrics file: " + std::strerror(errno ? errno : EIO);
}

void Reporter::set_tensorboard(std::unique_ptr<TensorBoardWriter> writer) {
  tensorboard_ = std::move(writer);
}

// Like the metrics file, a failed write is remembered, and the trainer stops every rank on it.
void Reporter::tensorboard(std::int64_t step,
                           const std::vector<std::pair<std::string, double>>& values) {
  if (!active_ || !tensorboard_ || !failure_.empty()) return;
  try {
    tensorboard_->scalars(step, values);
  } catch (const std::exception& e) {
    failure_ = e.what();
  }
}

void Reporter::train_point(const TrainPoint& p) {
  json("{\"event\":\"step\",\"step\":" + std::to_string(p.step) +
       ",\"loss\":" + jfmt("%.6f", p.loss) + ",\"lr\":" + jfmt("%.8g", p.lr) +
       ",\"images_per_s\":" + jfmt("%.3f", p.images_per_s) + ",\"data_wait_ms\":" +
       jfmt("%.4f", p.data_wait_ms) + ",\"grad_norm\":" + jfmt("%.6g", p.grad_norm) + "}");
  tensorboard(p.step, {{"train/loss", p.loss},
                       {"train/learning_rate", p.lr},
                       {"train/images_per_sec", p.images_per_s},
                       {"train/data_wait_ms", p.data_wait_ms},
                       {"train/grad_norm", p.grad_norm}});
}

bool Reporter::progress_due() const {
  if (!active_ || mode_ == Mode::off) return false;
  return now_s() - last_ >= (mode_ == Mode::bar ? 0.5 : interval_s_);
}

void Reporter::progress(int epoch, std::int64_t done, std::int64_t total, double loss, double acc,
                        double images_per_s, double eta_s) {
  if (!active_ || mode_ == Mode::off) return;
  if (mode_ == Mode::lines) {
    if (done == total) return;  // the epoch's own line follows at once
    last_ = now_s();
    std::printf("epoch %d: step %lld/%lld, loss %.3f, acc %.3f, %.1f examples/sec, epoch ETA %s\n",
                epoch, static_cast<long long>(done), static_cast<long long>(total), loss, acc,
                images_per_s, format_duration(eta_s).c_str());
    std::fflush(stdout);
    return;
  }
  last_ = now_s();
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * done / std::max<std::int64_t>(1, total));
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(kWidth, '.');
  std::printf("\repoch %d [%s] %lld/%lld  loss %.3f  acc %.3f  %.1f examples/sec  ETA %s   ", epoch,
              bar.c_str(), static_cast<long long>(done), static_cast<long long>(total), loss, acc,
              images_per_s, format_duration(eta_s).c_str());
  std::fflush(stdout);
  bar_shown_ = true;
}

void Reporter::phase_progress(const std::string& what, std::int64_t done, std::int64_t total,
                              double elapsed_s) {
  if (!active_ || mode_ == Mode::off) return;
  last_ = now_s();
  const double eta = done > 0 ? elapsed_s * double(total - done) / double(done) : -1;
  std::printf("%s%s: %lld/%lld, %s elapsed, ETA %s%s", mode_ == Mode::bar ? "\r" : "", what.c_str(),
              static_cast<long long>(done), static_cast<long long>(total),
              format_duration(elapsed_s).c_str(), format_duration(eta).c_str(),
              mode_ == Mode::bar ? "   " : "\n");
  std::fflush(stdout);
  bar_shown_ = mode_ == Mode::bar;
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
  if (m.test_top5 >= 0) text += ", top-5 " + fmt("%.3f", m.test_top5);
  text += (std::isfinite(m.examples_per_s) ? ", " + fmt("%.1f", m.examples_per_s) + " examples/sec"
                                           : std::string(", ended after a resume (not timed)")) +
          " on " + std::to_string(world) + (world == 1 ? " rank (" : " ranks (") + device + ")";
  line(text);
  json("{\"event\":\"epoch\",\"epoch\":" + std::to_string(m.epoch) +
       ",\"step\":" + std::to_string(m.step) + ",\"loss\":" + jfmt("%.6f", m.loss) +
       ",\"train_acc\":" + jfmt("%.6f", m.train_acc) +
       ",\"test_loss\":" + jfmt("%.6f", m.test_loss) + ",\"test_acc\":" + jfmt("%.6f", m.test_acc) +
       (m.test_top5 >= 0 ? ",\"test_top5\":" + jfmt("%.6f", m.test_top5) : std::string()) +
       ",\"samples\":" + std::to_string(m.samples) + ",\"steps\":" + std::to_string(m.steps) +
       ",\"time_s\":" + jfmt("%.4f", m.time_s) +
       ",\"examples_per_s\":" + jfmt("%.3f", m.examples_per_s) + ",\"lr\":" + jfmt("%.8g", m.lr) +
       ",\"data_wait_s\":" + jfmt("%.4f", m.data_wait_s) + ",\"comm_s\":" + jfmt("%.4f", m.comm_s) +
       ",\"exchange_s\":" + jfmt("%.4f", m.exchange_s) +
       (m.clipped_steps >= 0 ? ",\"clipped_steps\":" + std::to_string(m.clipped_steps)
                             : std::string()) +
       ",\"ranks\":" + std::to_string(world) + ",\"device\":\"" + device + "\"}");
  std::vector<std::pair<std::string, double>> scalars = {{"epoch/train_loss", m.loss},
                                                         {"epoch/train_acc", m.train_acc}};
  if (m.test_acc > 0 || m.test_loss > 0) {
    scalars.emplace_back("epoch/test_loss", m.test_loss);
    scalars.emplace_back("epoch/test_acc", m.test_acc);
  }
  if (m.test_top5 >= 0) scalars.emplace_back("epoch/test_top5", m.test_top5);
  tensorboard(m.step, scalars);
}

void Reporter::target(double target, bool reached, int epochs, double wall_s, double test_acc,
                      int world) {
  line(std::string(reached ? "reached" : "did not reach") + " the target test accuracy " +
       fmt("%.4g", target) + (reached ? " after " : " in ") + std::to_string(epochs) +
       (epochs == 1 ? " epoch, " : " epochs, ") + fmt("%.1f", wall_s) + " s of training on " +
       std::to_string(world) + (world == 1 ? " rank" : " ranks") + " (test acc " +
       fmt("%.4f", test_acc) + ")");
  json("{\"event\":\"time_to_accuracy\",\"target\":" + jfmt("%.6g", target) +
       ",\"reached\":" + (reached ? "true" : "false") + ",\"epochs\":" + std::to_string(epochs) +
       ",\"wall_s\":" + jfmt("%.4f", wall_s) + ",\"test_acc\":" + jfmt("%.6f", test_acc) +
       ",\"ranks\":" + std::to_string(world) + "}");
}

void Reporter::benchmark(const BenchmarkResult& r, int world, const Model& model) {
  line("benchmark: " + std::to_string(r.steps) + " steps of a global batch of " +
       std::to_string(r.global_batch) + " on " + std::to_string(world) +
       (world == 1 ? " rank" : " ranks"));
  line("  images/s: " + fmt("%.1f", r.images_per_s) + " total, " +
       fmt("%.1f", r.images_per_s_per_rank) + " per rank");
  line("  step time: " + fmt("%.2f", r.step_ms) + " ms = compute " + fmt("%.2f", r.compute_ms) +
       " + exposed communication " + fmt("%.2f", r.comm_ms) +
       (r.model_parallel > 1 ? " + activation exchange " + fmt("%.2f", r.exchange_ms) : "") +
       (world > 1 ? " + stop vote " + fmt("%.2f", r.vote_ms) : "") + " + data wait " +
       fmt("%.2f", r.data_ms) + " (mean over ranks)");
  {
    // Counted, not timed: exact and the same on any machine (docs/scaling-model.md).
    const CommBytes& b = r.bytes_per_step;
    auto mb = [](double v) { return fmt("%.3f", v / 1e6) + " MB"; };
    line("  bytes sent per step and rank (counted, ring convention; --model-parallel " +
         std::to_string(r.model_parallel) + "): " + mb(b.total()) + " = all-reduce " +
         mb(b.of(CollectiveOp::allreduce)) + " + all-gather " + mb(b.of(CollectiveOp::allgather)) +
         " + reduce-scatter " + mb(b.of(CollectiveOp::reduce_scatter)) + " + broadcast " +
         mb(b.of(CollectiveOp::broadcast)));
  }
  if (r.step_ms_without_timeline > 0) {
    // Two figures that answer different questions: the cost of recording, measured per event
    // (what the timeline adds), and two runs of the same steps with and without it, whose
    // difference is mostly run-to-run variation of the machine unless it repeats.
    const double cost_ms = r.timeline_events_per_step * r.timeline_event_us / 1000.0;
    line("  timeline cost: " + fmt("%.0f", r.timeline_events_per_step) + " events per step x " +
         fmt("%.2f", r.timeline_event_us) + " us = " + fmt("%.3f", cost_ms) + " ms, " +
         fmt("%.3f", 100.0 * cost_ms / std::max(1e-9, r.step_ms_without_timeline)) +
         " % of a step (rank 0)");
    line("  timeline overhead: " + fmt("%+.2f", 100.0 * r.timeline_overhead) + " % (step " +
         fmt("%.2f", r.step_ms) + " ms recorded, " + fmt("%.2f", r.step_ms_without_timeline) +
         " ms not; the same steps run twice, mean over ranks: beyond the cost above, this is the "
         "machine's run-to-run variation)");
  }
  line("  per layer on rank 0 (ms, synchronised passes):");
  std::string layers_json;
  for (std::size_t l = 0; l < r.layers.forward_ms.size(); ++l) {
    const auto& name = model.layers()[l]->name();
    line("    " + name + std::string(10 - std::min<std::size_t>(9, name.size()), ' ') + "forward " +
         fmt("%8.2f", r.layers.forward_ms[l]) + "  backward " +
         fmt("%8.2f", r.layers.backward_ms[l]));
    std::int64_t grads = 0;  // gradient floats of this layer: what it adds to the all-reduce
    std::string tensors;     // each trainable tensor's floats (of this rank's piece), in order
    for (const auto& ps : model.layers()[l]->param_specs()) {
      if (!ps.trainable()) continue;
      grads += ps.shape.numel();
      tensors += (tensors.empty() ? "" : ",") + std::to_string(ps.shape.numel());
    }
    const Layer& layer = *model.layers()[l];
    layers_json += std::string(l ? "," : "") + "{\"layer\":\"" + name + "\",\"kind\":\"" +
                   layer.kind() + "\",\"input\":" + std::to_string(layer.input_shape().numel()) +
                   ",\"output\":" + std::to_string(layer.output_shape().numel()) +
                   ",\"forward_ms\":" + fmt("%.4f", r.layers.forward_ms[l]) +
                   ",\"backward_ms\":" + fmt("%.4f", r.layers.backward_ms[l]) +
                   ",\"grad_floats\":" + std::to_string(grads) + ",\"tensors\":[" + tensors + "]}";
  }
  line("    optimizer " + fmt("%8.2f", r.layers.optimizer_ms) + " (the update of " +
       std::to_string(model.flat_size()) + " floats of parameters)");
  json("{\"event\":\"benchmark\",\"ranks\":" + std::to_string(world) + ",\"global_batch\":" +
       std::to_string(r.global_batch) + ",\"steps\":" + std::to_string(r.steps) +
       ",\"images_per_s\":" + jfmt("%.3f", r.images_per_s) + ",\"images_per_s_per_rank\":" +
       jfmt("%.3f", r.images_per_s_per_rank) + ",\"step_ms\":" + jfmt("%.4f", r.step_ms) +
       ",\"per_rank_batch\":" + jfmt("%.4f", double(r.global_batch) / world) +
       ",\"compute_ms\":" + jfmt("%.4f", r.compute_ms) + ",\"comm_ms\":" + jfmt("%.4f", r.comm_ms) +
       ",\"data_ms\":" + jfmt("%.4f", r.data_ms) + ",\"exchange_ms\":" +
       jfmt("%.4f", r.exchange_ms) + ",\"vote_ms\":" + jfmt("%.4f", r.vote_ms) +
       ",\"optimizer_ms\":" + jfmt("%.4f", r.layers.optimizer_ms) +
       ",\"timeline_overhead\":" + jfmt("%.5f", r.timeline_overhead) + ",\"model_parallel\":" +
       std::to_string(r.model_parallel) + ",\"bytes_per_step\":{\"allreduce\":" +
       jfmt("%.1f", r.bytes_per_step.of(CollectiveOp::allreduce)) +
       ",\"allgather\":" + jfmt("%.1f", r.bytes_per_step.of(CollectiveOp::allgather)) +
       ",\"reduce_scatter\":" + jfmt("%.1f", r.bytes_per_step.of(CollectiveOp::reduce_scatter)) +
       ",\"broadcast\":" + jfmt("%.1f", r.bytes_per_step.of(CollectiveOp::broadcast)) +
       ",\"total\":" + jfmt("%.1f", r.bytes_per_step.total()) +
       "},\"payload_per_step\":{\"allreduce\":" + std::to_string(r.bytes_per_step.payload[0]) +
       ",\"allgather\":" + std::to_string(r.bytes_per_step.payload[1]) +
       ",\"reduce_scatter\":" + std::to_string(r.bytes_per_step.payload[2]) + ",\"broadcast\":" +
       std::to_string(r.bytes_per_step.payload[3]) + "},\"layers\":[" + layers_json + "]}");
}

SlowNotice::SlowNotice(bool active, std::string what, double after_s)
    : what_(std::move(what)), start_(now_s()) {
  if (!active) return;
  thread_ = std::thread([this, after_s] {
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, std::chrono::duration<double>(after_s), [this] { return done_; }))
      return;
    said_ = true;
    std::printf("%s ...\n", what_.c_str());
    std::fflush(stdout);
  });
}

SlowNotice::~SlowNotice() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
  thread_.join();
  if (said_) {
    std::printf("%s: done in %s\n", what_.c_str(), format_duration(now_s() - start_).c_str());
    std::fflush(stdout);
  }
}

}  // namespace distnet
