// The trainer: epochs of data-parallel SGD steps, distributed evaluation, metrics, and the
// benchmark mode. Every rank runs the same code; only rank 0 prints.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "distnet/backend.hpp"
#include "distnet/checkpoint.hpp"
#include "distnet/comm.hpp"
#include "distnet/config.hpp"
#include "distnet/data/loader.hpp"
#include "distnet/grad_sync.hpp"
#include "distnet/grid.hpp"
#include "distnet/model.hpp"
#include "distnet/optimizer.hpp"
#include "distnet/param_groups.hpp"
#include "distnet/report.hpp"
#include "distnet/world.hpp"

namespace distnet {

// A non-finite loss, gradient or parameter stopped the run (--on-nonfinite stop, or more skipped
// steps than --max-skipped-steps): nothing non-finite was applied or checkpointed.
constexpr int kExitDiverged = 4;

// --clip-grad-norm: the factor PyTorch's clip_grad_norm_ multiplies a gradient of global L2 norm
// `norm` by, max_norm / (norm + 1e-6) capped at 1 (1: not clipped); max_norm 0 (off): 1.
inline double clip_coefficient(double norm, double max_norm) {
  if (max_norm <= 0) return 1.0;
  const double coef = max_norm / (norm + 1e-6);
  return coef < 1.0 ? coef : 1.0;
}

struct EvalResult {
  double loss = 0, accuracy = 0;
  double top5 = -1;  // top-5 accuracy; -1 with fewer than 10 classes (not reported)
  std::int64_t samples = 0;
  bool interrupted = false;  // a stop request ended it early: no figures
};

struct EpochMetrics {
  int epoch = 0;          // 1-based, as printed
  std::int64_t step = 0;  // optimizer steps taken at its end
  double loss = 0, train_acc = 0, test_loss = 0, test_acc = 0;
  double test_top5 = -1;  // -1: not reported (fewer than 10 classes, or no evaluation)
  double time_s = 0, examples_per_s = 0, lr = 0;
  double data_wait_s = 0, comm_s = 0;  // this rank's, during the epoch's steps
  double exchange_s = 0;               // this rank's activation exchange (--model-parallel)
  std::int64_t clipped_steps = -1;     // steps whose gradient --clip-grad-norm scaled; -1: off
  std::int64_t samples = 0, steps = 0;
};

struct BenchmarkResult {
  double images_per_s = 0, images_per_s_per_rank = 0;
  double step_ms = 0, compute_ms = 0, comm_ms = 0, data_ms = 0;  // per step, mean over ranks
  double exchange_ms = 0;  // the hybrid grid's activation exchange (comm.hpp exchange_seconds)
  double vote_ms = 0;      // the step boundary's stop vote, a small host all-reduce
  int steps = 0;
  std::int64_t global_batch = 0;
  int model_parallel = 1;
  CommBytes bytes_per_step;  // rank 0's counted bytes per timed step, by operation
  LayerTimes layers;         // rank 0, from separate synchronised steps
  bool stopped = false;      // a stop request ended it early: no figures
  // With --timeline: the timed steps ran twice, recorded and not; the relative cost of recording.
  double timeline_overhead = 0, step_ms_without_timeline = 0;
  double timeline_event_us = 0, timeline_events_per_step = 0;  // rank 0's, measured
};

struct TrainerParts {
  const World& world;
  Communicator& comm;  // the model's buffers (device memory): parameters, gradient buckets
  Backend& backend;
  Model& model;
  const data::Dataset& train;
  const data::Dataset* test;  // null: no evaluation
  const data::ImageTransform& transform;
  Reporter& report;
  CheckpointWriter* writer = nullptr;  // rank 0 when --checkpoint-dir is set; null elsewhere
  // Sums of host figures (loss, counts, the stop vote); null: `comm` (when both are MPI).
  Communicator* host_comm = nullptr;
  Timeline* timeline = nullptr;  // --timeline: what each step spends its time on; null: off
  // The process grid; with M > 1 the model is split over its groups (null: data-parallel).
  Grid* grid = nullptr;
  std::string run_id;  // written into every checkpoint (docs/reliability.md)
};

struct FitResult {
  std::vector<EpochMetrics> history;
  bool stopped = false;  // a stop request ended the run early (after a checkpoint, if enabled)
  bool target_reached = false;
  double wall_s = 0;  // from the start of fit() to its end
};

class Trainer {
 public:
  Trainer(const RunConfig& cfg, const TrainerParts& parts);

  FitResult fit();  // trains up to cfg.epochs epochs
  // Continue from a checkpoint's state (parameters and momentum are already in the model on
  // rank 0; the constructor broadcast them). Call on every rank, with the same state.
  void restore(const TrainingState& s);
  // A collective: every rank calls it; rank 0 snapshots and hands the snapshot to the writer.
  // `borrow`: the model will not change until the write ends (a stopping run), so a CPU model's
  // buffers are written without a copy.
  void save_checkpoint(bool borrow = false);
  // --keep-best, rank 0 of a resumed run: the best so far (from its best.h5), which a later epoch
  // must beat to replace it.
  void set_best(const BestMark& best) { best_ = best; }
  EvalResult evaluate();        // every test sample exactly once over the ranks
  BenchmarkResult benchmark();  // cfg.warmup_steps, then cfg.steps timed steps

  std::int64_t step_count() const { return step_; }
  // Bytes this rank sent in the last step's collectives (gradients and, with the hybrid grid,
  // activations; not the stop vote), by the convention of comm.hpp.
  const CommBytes& last_step_bytes() const { return step_bytes_; }
  const GradSync& grad_sync() const { return sync_; }
  const data::Sampler& sampler() const { return sampler_; }
  const LrSchedule& schedule() const { return schedule_; }

 private:
  enum class StepOutcome {
    applied,    // the update is applied; go on
    stop,       // applied, and a stop was requested: checkpoint and leave
    abandoned,  // a stop arrived during the step on some rank: nothing applied; checkpoint, leave
    skipped,    // non-finite loss or gradient, --on-nonfinite skip-step: the batch is passed over
  };
  // One optimizer step; `next` yields its micro-batches (the loader's next()), --accumulate of
  // them, fewer when the step is abandoned.
  StepOutcome train_step(const std::function<data::Batch()>& next);
  // Of the last step: the global batch's samples and this rank's share of them.
  std::int64_t step_global_size_ = 0;
  int step_rank_samples_ = 0;
  // The batch's images on the backend's device, as model input (resized there if it wants).
  const float* device_images(const data::Batch& b);
  const data::ImageTransform* loader_transform() const;
  Communicator& host_comm() const { return p_.host_comm ? *p_.host_comm : p_.comm; }
  // Seconds so far in the hybrid grid's activation exchange (0 without a split model).
  double exchange_seconds() const;
  void broadcast_parameters();
  // `during`: what the stop interrupted besides a step ("" for a step), for the message.
  void stop_and_save(bool abandoned, const std::string& during = "");
  struct EpochTiming {
    double train_s = 0, data_wait_s = 0, comm_s = 0, exchange_s = 0, vote_s = 0;
    std::int64_t global_samples = 0;
  };
  bool end_epoch(int epoch, const EpochTiming* timing, FitResult& result,
                 std::chrono::steady_clock::time_point fit_start);
  std::int64_t file_epoch() const;
  struct ProgressPoint {
    int epoch = 0;  // 0-based
    std::int64_t batch = 0, steps = 0, first_batch = 0, global_samples = 0, epoch_samples = 0;
    double elapsed_s = 0;
  };
  void report_progress(const ProgressPoint& at);
  void report_bad_samples(const std::string& when, const data::Dataset::BadSamples& mine,
                          double total);
  // A collective: each rank's compute, collective and data-wait seconds to rank 0, which prints
  // "<label> ranks: ..." and names a straggler. `epoch` goes into the metrics (0: benchmark).
  void report_stragglers(const std::string& label, int epoch, double train_s, double collectives_s,
                         double data_s);
  // After each training epoch (rank 0): the largest share of a rank's epoch time spent waiting
  // for data; a line when it is at least kDataWaitShareReported.
  void report_data_wait(const std::string& label, int epoch, const std::vector<double>& train_s,
                        const std::vector<double>& data_s);
  static constexpr double kDataWaitShareReported = 0.10;
  std::array<double, 3> read_and_reset_stats();
  // --tensorboard, --clip-grad-norm: this rank's share of the squared L2 norm of the step's
  // summed gradient, queued into `acc` on the device (each tensor counted once over the ranks).
  void queue_grad_square_sum(double* acc);
  // --tensorboard: adds an applied step to the running point, and reports the point every
  // --tensorboard-interval steps. `wait_s`: the loader's wait so far (this rank).
  void add_to_point(double step_s, double wait_s);
  struct PointSums {
    double loss = 0, samples = 0, time_s = 0, wait0_s = 0;
    std::int64_t steps = 0;
  };
  // --keep-best: whether the epoch is the best so far (agreed by all ranks); if so it is marked
  // for the next save, which writes best.h5 first.
  void consider_best(const EpochMetrics& em);
  // The marked best, when no checkpoint was written at this step to carry it. Collective.
  void save_pending_best();
  // A snapshot for the writer: a checkpoint (`regular`), best.h5 (a marked best), or both.
  void save(bool borrow, bool regular);
  // The divergence check's verdicts, agreed by all ranks: stops the run with one line on rank 0
  // naming the step and the first tensor (in forward order) with non-finite values. Collective.
  [[noreturn]] void diverged(const std::string& what, bool check_gradient,
                             const std::string& why = "");
  // Rank 0's checkpoint writer failed: every rank leaves (rank 0 says why). `failed` is agreed.
  void check_writer(bool failed);
  bool writer_failed() const;
  // All ranks wait for rank 0's writes to end; a failure stops every rank. Collective.
  void finish_writes();

  RunConfig cfg_;
  TrainerParts p_;
  data::Sampler sampler_;
  LrSchedule schedule_;
  ParamGroups groups_;   // --freeze-through, --lr-mult: what the optimizer updates, how fast
  Optimizer optimizer_;  // --optimizer: the update, over groups_
  GradSync sync_;
  int workers_;
  std::int64_t step_ = 0;
  std::int64_t epoch_samples_ = 0;  // this rank's samples so far in the running epoch
  std::int64_t saved_step_ = -1;
  std::int64_t skipped_steps_ = 0;
  bool pending_epoch_end_ = false;  // resumed from a stop during an epoch's evaluation  //
                                    // --on-nonfinite skip-step: over the whole run
  bool first_step_done_ = false;
  std::unique_ptr<AsyncRead> progress_read_;  // rank 0: the loss sums, read without stalling
  ProgressPoint progress_at_;
  bool progress_pending_ = false;
  double vote_s_ = 0;  // time in the per-step vote (a collective)
  CommBytes step_bytes_;
  CommBytes bytes_sent() const;
  void reset_bytes();
  // Doubles on the device: the running epoch's sums (loss, correct, top-5), the step's checks
  // (non-finite values in the summed gradient; in the parameters after the last update), and the
  // sums as they were at the step's start; with --tensorboard, the squared norm of the summed
  // gradient at a point's step (every step with --clip-grad-norm).
  enum Stat {
    kLoss = 0,
    kCorrect = 1,
    kTop5 = 2,
    kBadGrad = 3,
    kBadParam = 4,
    kBackup = 5,  // 3 doubles
    kGradSq = 8
  };
  static constexpr int kStats = 9;
  bool tensorboard_ = false;        // --tensorboard, in training
  bool clip_ = false;               // --clip-grad-norm: the gradient's norm every step
  std::int64_t clipped_steps_ = 0;  // in the running epoch (since the start of this process)
  // The last step's loss sum, samples and squared gradient norm, summed over the ranks (with the
  // step's vote, so no extra collective).
  double step_loss_ = 0, step_samples_ = 0, step_grad_sq_ = 0;
  PointSums point_;
  std::optional<BestMark> best_;          // rank 0: the best epoch so far
  std::optional<BestMark> best_pending_;  // every rank: the epoch just ended is a new best
  Buffer stats_;
  Buffer state_backup_;  // batch-norm running statistics at the step's start
  Buffer stage_x_, stage_ids_, stage_labels_, stage_raw_;
  Buffer input_;  // resized images when the backend transforms them
};

}  // namespace distnet
