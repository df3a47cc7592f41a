// What rank 0 tells the user: the start-up summary, a progress bar when stdout is a terminal,
// one line per epoch in the d2l notebooks' style, and every figure as JSON lines.
#pragma once

#include <cstdio>
#include <string>

namespace distnet {

struct EpochMetrics;
struct BenchmarkResult;
class Model;

class Reporter {
 public:
  // `active` is true on rank 0 only; the others print nothing.
  Reporter(bool active, const std::string& metrics_file, const std::string& progress_mode);
  ~Reporter();
  Reporter(const Reporter&) = delete;
  Reporter& operator=(const Reporter&) = delete;

  bool active() const { return active_; }
  void line(const std::string& text);    // one line to stdout (rank 0)
  void json(const std::string& object);  // one JSON line to the metrics file, if any
  // True when a progress-bar update is wanted now (rank 0, a terminal, >= 0.5 s since the last):
  // the trainer reads device-side figures only then.
  bool progress_due() const;
  void progress(int epoch, std::int64_t done, std::int64_t total, double loss, double acc,
                double examples_per_s);
  void epoch(const EpochMetrics& m, int world, const std::string& device);
  void benchmark(const BenchmarkResult& r, int world, const Model& model);
  void target(double target, bool reached, int epochs, double wall_s, double test_acc, int world);

 private:
  void clear_progress();
  bool active_;
  bool bar_ = false, bar_shown_ = false;
  std::FILE* metrics_ = nullptr;
  double last_bar_ = 0;
};

std::string json_escape(const std::string& s);

}  // namespace distnet
