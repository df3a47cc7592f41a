// What rank 0 tells the user: the start-up summary, progress while an epoch runs (a bar on a
// terminal; under a launcher or into a file, one compact line every --progress-interval
// seconds), one line per epoch in the d2l notebooks' style, and every figure as JSON lines.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace distnet {

struct EpochMetrics;
struct BenchmarkResult;
class Model;
class TensorBoardWriter;

// A --tensorboard point: the figures of the steps since the last one (docs/tensorboard.md).
struct TrainPoint {
  std::int64_t step = 0;    // optimizer steps taken
  double loss = 0;          // mean loss over the samples of those steps, all ranks
  double lr = 0;            // of the last step
  double images_per_s = 0;  // their samples over their time on rank 0 (data wait included)
  double data_wait_ms = 0;  // rank 0's wait for the loader, per step
  double grad_norm = 0;     // L2 norm of the last step's summed gradient
};

class Reporter {
 public:
  // `active` is true on rank 0 only; the others print nothing.
  Reporter(bool active, const std::string& metrics_file, const std::string& progress_mode,
           double interval_s = 30);
  ~Reporter();
  Reporter(const Reporter&) = delete;
  Reporter& operator=(const Reporter&) = delete;

  bool active() const { return active_; }
  void line(const std::string& text);  // one line to stdout (rank 0)
  // One JSON line to the metrics file, if any. A write that fails is remembered, not thrown:
  // failure() says why, and the trainer stops every rank on it.
  void json(const std::string& object);
  const std::string& failure() const { return failure_; }
  // Every later JSON line carries this run id (its first field).
  void set_run_id(const std::string& id) { run_id_ = id; }
  // --tensorboard: epoch figures and train points go to the event file too (rank 0).
  void set_tensorboard(std::unique_ptr<TensorBoardWriter> writer);
  // A --tensorboard point: a "step" JSON record and the train/ scalars, the same figures.
  void train_point(const TrainPoint& p);
  // True when a progress update is wanted now (rank 0; the bar: >= 0.5 s since the last; lines:
  // >= the interval): the trainer reads device-side figures only then.
  bool progress_due() const;
  // Training progress within an epoch; eta_s: the epoch's remaining time.
  void progress(int epoch, std::int64_t done, std::int64_t total, double loss, double acc,
                double images_per_s, double eta_s);
  // Progress of another long phase (evaluation, benchmark steps), e.g. "evaluating: 40/79".
  void phase_progress(const std::string& what, std::int64_t done, std::int64_t total,
                      double elapsed_s);
  void epoch(const EpochMetrics& m, int world, const std::string& device);
  void benchmark(const BenchmarkResult& r, int world, const Model& model);
  void target(double target, bool reached, int epochs, double wall_s, double test_acc, int world);

 private:
  void clear_progress();
  bool active_;
  enum class Mode { off, bar, lines } mode_ = Mode::off;
  bool bar_shown_ = false;
  std::FILE* metrics_ = nullptr;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
  void tensorboard(std::int64_t step, const std::vector<std::pair<std::string, double>>& values);
  std::string metrics_name_, failure_, run_id_;
  double interval_s_;
  double last_ = 0;
};

// A set-up or I/O phase that may take a while (loading a dataset, choosing cuDNN algorithms,
// writing a checkpoint): if it is still running after `after_s` seconds, rank 0 says
// "<what> ..."; when it ends after having said so, it says how long it took.
class SlowNotice {
 public:
  SlowNotice(bool active, std::string what, double after_s = 3.0);
  ~SlowNotice();
  SlowNotice(const SlowNotice&) = delete;
  SlowNotice& operator=(const SlowNotice&) = delete;

 private:
  std::string what_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false, said_ = false;
  double start_;
  std::thread thread_;
};

std::string format_duration(double seconds);  // "42 s", "5 min 03 s", "2 h 07 min"

std::string json_escape(const std::string& s);
// A number for a JSON line ("%.6f"); NaN and infinities, which JSON lacks, as null.
std::string json_number(double v);

}  // namespace distnet
