// Everything a run is configured by. Sources, weakest first: built-in defaults (the d2l.ai
// AlexNet/Fashion-MNIST run), a config file (--config FILE, INI), the command line.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "distnet/data/dataset.hpp"
#include "distnet/model.hpp"
#include "distnet/schedule.hpp"

namespace distnet {

struct RunConfig {
  // what to do
  bool help = false, version = false, print_shapes = false, print_config = false, benchmark = false;
  std::string help_text;
  std::string config_file;

  // model
  std::string model = "alexnet";
  int resize = 224;             // 0: the dataset's own size; the model's natural input unless given
  bool resize_given = false;    // --resize was set on the command line or in the config file
  bool model_given = false;     // --model likewise
  bool norm_given = false;      // --normalize-mean or --normalize-std likewise
  bool dataset_given = false;   // --dataset likewise
  bool data_dir_given = false;  // --data-dir likewise
  float dropout = 0.5f;
  float bn_momentum = 0.9f;
  bool sync_bn = false;  // batch-norm statistics of the global batch (all ranks), not per rank
  std::string init = "xavier";
  float init_magnitude = 2.24f, init_sigma = 0.01f;

  // data
  data::DatasetOptions data;  // name, dir, synthetic_*, seed (set from `seed`)
  std::int64_t train_limit = 0, test_limit = 0;
  bool drop_last = false;
  int workers = -1;                    // -1: from the core count
  std::string on_bad_image = "error";  // imagefolder: error or skip
  std::string augment = "standard";    // imagefolder: standard or none
  std::vector<float> norm_mean, norm_std;
  std::int64_t eval_batch = 0;  // 0: the training batch

  // training
  int epochs = 10;
  std::int64_t batch = 128;  // global batch over all ranks, per optimizer step
  // Micro-batches per optimizer step (gradient accumulation): each rank's part of a micro-batch
  // is about batch / (accumulate x ranks) samples (docs/training.md#gradient-accumulation).
  int accumulate = 1;
  double lr = 0.01, momentum = 0.0, weight_decay = 0.0;
  // Cross-entropy against (1 - eps) onehot + eps / classes (PyTorch's label_smoothing); 0: off.
  double label_smoothing = 0.0;
  // The summed gradient scaled to this global L2 norm when it is larger (PyTorch's
  // clip_grad_norm_); 0: off.
  double clip_grad_norm = 0.0;
  // The optimizer (docs/training.md#optimizers): sgd, lars or adamw, and their settings.
  std::string optimizer = "sgd";
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_eps = 1e-8;
  double lars_trust = 0.001;
  bool no_decay_bias_bn = false;
  std::string lr_schedule = "constant";
  double lr_poly_power = 2.0;  // --lr-schedule poly
  std::vector<double> lr_steps;
  double lr_gamma = 0.1, lr_min = 0.0, warmup_epochs = 0.0;
  bool lr_scale_by_world = false;
  std::uint64_t seed = 0;
  // fine-tuning: layers through this one are frozen; per-layer learning-rate factors
  std::string freeze_through;
  std::string lr_mult;                                   // as given: "dense*=10,conv1=0.1"
  std::vector<std::pair<std::string, double>> lr_mults;  // parsed, in order

  // devices and distribution
  std::string device = "auto";
  std::string cpu_conv = "auto";
  std::string math = "tf32";         // CUDA: tf32 or fp32
  std::string cudnn_algo = "find";   // CUDA: find or heuristic
  bool deterministic = false;        // CUDA: only deterministic cuDNN algorithms (runs repeat)
  double cudnn_workspace_mb = 1024;  // CUDA: largest convolution workspace an algorithm may use
  std::string comm = "auto";         // auto (nccl on GPUs, mpi on CPUs), nccl or mpi
  double bucket_mb = 25.0;
  std::string overlap = "on";  // all-reduce buckets during backward (on) or after it (off)
  std::string grad_compression = "none";  // none or bf16
  int model_parallel = 1;  // M: ranks per group that split the dense layers (docs/process-grid.md)

  // output
  std::string metrics_file;
  std::string progress = "auto";
  double progress_interval = 30;  // seconds between progress lines (not a terminal)
  std::string timeline;           // Chrome trace JSON file; empty: no timeline
  bool nvtx = false;              // NVTX ranges for Nsight Systems
  std::int64_t timeline_first = 0, timeline_last = -1;  // steps [first, last); -1: to the end
  std::int64_t timeline_events = 200000;                // ring capacity per rank
  std::string tensorboard;                 // TensorBoard event files here (rank 0); empty: none
  std::int64_t tensorboard_interval = 10;  // a train/ point every N optimizer steps
  double straggler_threshold = 0.1;        // (slowest - median) / median compute that is named
  int debug_delay_rank = -1;               // testing aid: this rank sleeps debug_delay_ms a step
  double debug_delay_ms = 0;
  // Testing aid (--debug-fault): a NaN in one rank's summed gradient, or a stop request in the
  // middle of a step, at a chosen step (1-based) -- faults at an exact place, not by timing.
  enum class DebugFault { none, nonfinite, stop_in_step, stop_in_eval, error_in_step };
  DebugFault debug_fault = DebugFault::none;
  int debug_fault_rank = 0;
  std::int64_t debug_fault_step = 0;

  // benchmark mode
  int warmup_steps = 5, steps = 20;
  // time-to-accuracy: stop once the test accuracy reaches this (0: train all epochs)
  double target_accuracy = 0;

  // checkpoints and failures
  std::string checkpoint_dir;  // empty: no checkpoints
  std::string checkpoint_every = "1epochs";
  std::int64_t checkpoint_every_epochs = 1, checkpoint_every_steps = 0;  // parsed from the above
  int keep_checkpoints = 3;
  std::string keep_best;      // a metric: DIR/best.h5 holds the best epoch by it; empty: none
  std::string resume;         // "", "auto" (newest valid in checkpoint_dir) or a file
  bool eval_only = false;     // with `checkpoint`
  std::string checkpoint;     // file for --eval-only
  std::string init_from;      // weights only (fine-tuning)
  double comm_timeout = 300;  // seconds a collective may take before the job is aborted; 0: never
  std::string on_nonfinite = "stop";  // a non-finite loss or gradient: stop or skip-step
  int max_skipped_steps = 10;         // skip-step: how many a run may skip before it stops
  std::string start_over;  // a fresh run over another run's checkpoints: "", aside or delete

  // The effective configuration as INI text (every option with its final value).
  std::string effective_ini() const;
};

// "dense*=10,conv1=0.1" -> {{"dense*", 10}, {"conv1", 0.1}}; UsageError for a malformed entry
// or a factor that is negative or not finite. "" -> {}.
std::vector<std::pair<std::string, double>> parse_lr_mults(const std::string& text);

// Parses and validates; throws UsageError (one line) for unknown options, bad values, a missing
// or malformed config file, or an option given twice.
RunConfig parse_run_config(int argc, const char* const argv[]);

// The largest slice of a training micro-batch on one of `world` ranks: ceil(ceil(batch /
// accumulate) / world) -- what the model holds activations for, and the default evaluation batch.
std::int64_t rank_micro_batch(const RunConfig& c, int world);

// --resume: refuses (UsageError naming `source`, the setting and both values) a run whose
// settings would take other steps than the checkpoint's run (its `config` attribute, INI, written
// on `checkpoint_world` ranks): model, input, data, batch, optimizer, schedule, seed and so on.
// The number of ranks and --accumulate may change: the global batch decides the steps.
void check_resume_settings(const RunConfig& c, const std::string& checkpoint_ini,
                           std::int64_t checkpoint_world, int world, const std::string& source);

// --eval-only: a checkpoint's own configuration (its `config` attribute, INI) decides the model,
// the input size and the normalisation. Copies them into `c`; an option given explicitly with a
// different value is refused with a UsageError naming `source` (the checkpoint file).
void adopt_trained_settings(RunConfig& c, const std::string& checkpoint_ini,
                            const std::string& source);

}  // namespace distnet
