// HDF5 checkpoints (layout: docs/checkpoint-format.md). Rank 0 takes a host snapshot of the
// model and training state -- the only part that stalls training -- and a writer thread puts it
// on disk under a temporary name, flushes, fsyncs file and directory, and renames: a crash never
// leaves a half-written file under a checkpoint's name. Loading validates every attribute, name
// and shape before anything is copied into the model.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "distnet/model.hpp"
#include "distnet/timeline.hpp"

namespace distnet {

// Version 1: SGD's layout (/momentum), still what --optimizer sgd writes. Version 2: the
// optimizer's named state under /optimizer/<slot> (lars, adamw). Both load.
constexpr std::int64_t kCheckpointFormatVersion = 1;
constexpr std::int64_t kCheckpointFormatVersionOptimizer = 2;

struct TrainingState {
  std::int64_t step = 0;            // optimizer steps taken
  std::int64_t epoch = 0;           // epoch of the next step (0-based)
  std::int64_t batch_in_epoch = 0;  // sampler position: next batch within that epoch
  std::uint64_t seed = 0;    // all randomness is Philox(seed, counters): this is the RNG state
  double learning_rate = 0;  // of the last step taken
  // Running sums of the epoch in progress, over all ranks: loss, correct, samples.
  std::vector<double> epoch_sums{0, 0, 0};
  std::int64_t skipped_steps = 0;  // steps passed over by --on-nonfinite skip-step so far
};

// --keep-best: what made a checkpoint the run's best. Attributes of the best file only.
struct BestMark {
  std::string metric;      // test_acc, test_loss, test_top5, train_acc or train_loss
  double value = 0;        // the metric's value at that epoch's end
  std::int64_t epoch = 0;  // 1-based, as printed
};
// DIR/best.h5: a complete checkpoint, outside the ckpt-* names that rotation and --resume auto
// take (docs/checkpoint-format.md).
constexpr const char* kBestCheckpointName = "best.h5";
// Whether a higher value of a --keep-best metric is better (accuracies) or a lower one (losses).
bool best_metric_higher_is_better(const std::string& metric);

struct CheckpointMeta {
  std::int64_t format_version = kCheckpointFormatVersion;
  std::string distnet_version;
  std::string model;
  Shape input;
  std::int64_t classes = 0;
  std::int64_t world_size = 1;
  std::int64_t global_batch = 0;
  std::int64_t train_samples = 0;  // resuming needs the same data (and so the same epochs)
  std::string config;              // the full effective configuration, INI
  std::string run_id;              // the run that wrote it ("" in checkpoints older than run ids)
  std::optional<BestMark> best;    // best.h5 only
  std::string optimizer = "sgd";   // version 2's attribute; "sgd" for version 1
  TrainingState state;
};

// Host copies of everything a checkpoint holds -- or, when borrowed, pointers into a CPU model's
// own buffers, which must then stay unchanged until the write has finished.
struct Snapshot {
  CheckpointMeta meta;
  std::vector<ParamEntry> params, state;
  std::vector<float> param_values, state_values;
  // The optimizer's state slots (Model::slot_names), laid out as param_values.
  std::vector<std::string> slot_names;
  std::vector<std::vector<float>> slot_values;
  const float* borrowed_params = nullptr;  // set together, or none
  std::vector<const float*> borrowed_slots;
  const float* borrowed_state = nullptr;
  const float* param_data() const {
    return borrowed_params ? borrowed_params : param_values.data();
  }
  const float* slot_data(std::size_t k) const {
    return borrowed_params ? borrowed_slots[k] : slot_values[k].data();
  }
  const float* momentum_data() const { return slot_data(0); }
  const float* state_data() const { return borrowed_params ? borrowed_state : state_values.data(); }
};

// `borrow`: on the CPU backend, point at the model's buffers instead of copying them (for the
// last checkpoint of a run that is stopping: no copy, so the stop is faster).
Snapshot take_snapshot(const Model& model, const CheckpointMeta& meta, bool borrow = false);
// The same for a split model (the hybrid grid), with every piece of a split layer replaced by
// its whole tensor gathered from the group: the layout one process writes. A collective of the
// model's group (every rank of it calls it); never borrows. For an unsplit model: take_snapshot.
Snapshot take_whole_snapshot(const Model& model, const CheckpointMeta& meta);

// Writes atomically to `path` (temporary file in the same directory, then rename). Throws on any
// failure after removing the temporary file; an existing file at `path` is never touched unless
// the new one is complete.
void write_checkpoint(const Snapshot& snap, const std::string& path);

// Reads the attributes only (validating format and types).
CheckpointMeta read_checkpoint_meta(const std::string& path);

// Validates `path` against `model` (model name, input shape, classes, every tensor's presence and
// shape) and loads parameters, batch-norm statistics and -- unless weights_only -- the
// optimizer's state, which must be of the model's optimizer (Model::set_optimizer); with
// weights_only the state slots are zeroed.
// On any problem throws one line naming the file (and tensor) and leaves the model untouched.
CheckpointMeta load_checkpoint(const std::string& path, Model& model, bool weights_only);

// --init-from: the weights (and batch-norm statistics) of a checkpoint of the same model, for
// fine-tuning. Unlike load_checkpoint it takes a checkpoint trained for another class count --
// the classifier (the last layer with parameters) then keeps its fresh initialisation -- or on
// another input size, as long as every tensor's shape fits (an adaptive pooling before the dense
// layers). Momentum starts at zero. Throws one line naming the file and the tensor; leaves the
// model untouched on any problem.
struct InitFrom {
  CheckpointMeta meta;
  std::string reinitialised;         // the classifier's layer name, "" when every tensor loaded
  std::string reinitialised_detail;  // "dense3 (weight 4x84, bias 4)"
};
InitFrom load_initial_weights(const std::string& path, Model& model);

// "ckpt-epoch0003-step00001407.h5"
std::string checkpoint_file_name(std::int64_t epoch, std::int64_t step);
// Complete checkpoints in `dir` (by name; temporaries excluded), newest (highest step) first.
std::vector<std::string> list_checkpoints(const std::string& dir);
// The run id a checkpoint was written by ("" for checkpoints older than run ids). Throws when
// the file cannot be read.
std::string checkpoint_run_id(const std::string& path);
// Deletes all but the newest `keep` checkpoints of run `run_id` in `dir`; other runs' files, and
// files that cannot be read, are never touched.
void prune_checkpoints(const std::string& dir, int keep, const std::string& run_id);
// Throws a one-line error unless `dir` exists (or can be created) and is writable.
void ensure_writable_dir(const std::string& dir);

// Writes snapshots on a background thread, one at a time. submit() waits for the previous write
// (so at most one snapshot is held) and rethrows its error, if any; wait() does the same at the
// end.
class CheckpointWriter {
 public:
  // Rotation keeps the newest `keep` checkpoints of run `run_id` (prune_checkpoints).
  CheckpointWriter(std::string dir, int keep, std::string run_id);
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // With `best`, the snapshot is first written as DIR/best.h5 (with the mark's attributes), then
  // as `file_name` unless that is empty; rotation never touches best.h5.
  void submit(Snapshot snap, const std::string& file_name,
              const std::optional<BestMark>& best = std::nullopt);
  // Whether the last write failed (without waiting, without taking the error: wait() throws it).
  bool failed() const;
  // Waits until no write is pending or running; unlike wait(), leaves an error for wait().
  void idle();
  // Records each background write on the writer track (null: off).
  void set_timeline(Timeline* timeline) { timeline_ = timeline; }
  void wait();

 private:
  void run();
  std::string dir_;
  int keep_;
  std::string run_id_;
  Timeline* timeline_ = nullptr;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Snapshot> pending_;
  std::string pending_name_;
  std::optional<BestMark> pending_best_;
  bool busy_ = false, stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace distnet
