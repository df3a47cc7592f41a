#include "distnet/config.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <regex>
#include <sstream>

#include "distnet/error.hpp"
#include "distnet/model_spec.hpp"

namespace po = boost::program_options;

namespace distnet {
namespace {

template <typename T>
std::vector<T> parse_list(const std::string& text, const std::string& option) {
  std::vector<T> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    std::istringstream is(item);
    T v;
    if (!(is >> v) || !(is >> std::ws).eof()) {
      throw UsageError("--" + option + " must be a comma-separated list of numbers, got '" + text +
                       "'");
    }
    out.push_back(v);
  }
  return out;
}

Shape parse_shape(const std::string& text, const std::string& option) {
  std::vector<std::int64_t> dims;
  bool ok = true;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, 'x');) {
    std::istringstream is(item);
    std::int64_t v = 0;
    ok = ok && (is >> v) && (is >> std::ws).eof() && v >= 1;
    dims.push_back(v);
  }
  if (!ok || dims.size() != 3)
    throw UsageError("--" + option + " must be CxHxW with positive sizes (e.g. 1x28x28), got '" +
                     text + "'");
  return Shape(dims);
}

std::string num(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

void one_of(const std::string& option, const std::string& value,
            std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (value == a) return;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  throw UsageError("--" + option + " must be one of " + list + ", got '" + value + "'");
}

}  // namespace

RunConfig parse_run_config(int argc, const char* const argv[]) {
  RunConfig c;
  std::string norm_mean, norm_std, lr_steps, synthetic_shape = "1x28x28", resize = "auto";
  std::string timeline_steps, debug_delay, debug_fault;

  po::options_description general("General");
  general.add_options()                                                     //
      ("help,h", "show this help and exit")                                 //
      ("version", "show versions of distnet and its libraries, then exit")  //
      ("config", po::value(&c.config_file),
       "read options from an INI file (key = value per line); "
       "the command line overrides it")  //
      ("print-shapes",
       "print each layer's output shape and parameter count for the data's "
       "input, then exit (needs no mpirun)")  //
      ("print-config",
       "print the effective configuration (defaults < --config file < command "
       "line) as INI, then exit");

  std::string models;  // from the zoo's registry, so the list never drifts
  for (const auto& m : model_names()) models += (models.empty() ? "" : ", ") + m;
  const std::string model_help = "network: one of the zoo's (" + models +
                                 ") or the path of a definition file (docs/models.md)";
  po::options_description model("Model");
  model.add_options()                                                             //
      ("model", po::value(&c.model)->default_value(c.model), model_help.c_str())  //
      ("resize", po::value(&resize)->default_value(resize),
       "resize images to N x N (bilinear); 0 keeps the dataset's size; auto: the model's "
       "natural input (its definition's input_size: 224 for the AlexNets, 28 for lenet; none: "
       "the dataset's size); imagefolder: the crop size")                                         //
      ("dropout", po::value(&c.dropout)->default_value(c.dropout, "0.5"), "dropout probability")  //
      ("bn-momentum", po::value(&c.bn_momentum)->default_value(c.bn_momentum, "0.9"),
       "batch-norm running statistics: running = m * running + (1 - m) * batch")  //
      ("sync-bn", po::bool_switch(&c.sync_bn),
       "batch-norm in training normalises with the statistics of the whole global batch, "
       "summed over all ranks (as PyTorch's SyncBatchNorm), instead of each rank's own slice: "
       "N ranks then take the step of one process; costs three small all-reduces per "
       "batch-norm layer and step (docs/training.md#batch-norm-across-ranks)")  //
      ("init", po::value(&c.init)->default_value(c.init),
       "weight initialiser: xavier or normal")  //
      ("init-magnitude", po::value(&c.init_magnitude)->default_value(c.init_magnitude, "2.24"),
       "Xavier magnitude (uniform, average fan)")  //
      ("init-sigma", po::value(&c.init_sigma)->default_value(c.init_sigma, "0.01"),
       "standard deviation of the normal initialiser");

  po::options_description data("Data");
  data.add_options()  //
      ("dataset", po::value(&c.data.name)->default_value(c.data.name),
       "fashion-mnist, mnist, cifar10, synthetic, imagefolder (DIR/train/<class>/*.jpg|png "
       "and DIR/val/<class>/...: random crops and flips of --resize pixels for training, "
       "centre crops for evaluation, ImageNet's mean/std unless given; docs/image-folders.md) "
       "or packed (HDF5 shards of an image folder written by alexnet-pack, the same samples as "
       "imagefolder; docs/packed-shards.md)")  //
      ("data-dir", po::value(&c.data.dir),
       "dataset directory (default: /usr/share/datasets/fashion-mnist for fashion-mnist; "
       "required for imagefolder and packed: the directory alexnet-pack wrote)")  //
      ("on-bad-image", po::value(&c.on_bad_image)->default_value(c.on_bad_image),
       "imagefolder and packed: an image that cannot be read or decoded is an error (error: the "
       "run stops, "
       "naming it) or is replaced by the next good sample and counted (skip)")  //
      ("augment", po::value(&c.augment)->default_value(c.augment),
       "imagefolder and packed training images: standard (RandomResizedCrop and horizontal flip) "
       "or none "
       "(the evaluation resize and centre crop)")  //
      ("train-limit", po::value(&c.train_limit)->default_value(0),
       "use the first N training samples (0: all)")  //
      ("test-limit", po::value(&c.test_limit)->default_value(0),
       "use the first N test samples (0: all)")                                                //
      ("drop-last", po::bool_switch(&c.drop_last), "drop the last partial batch of an epoch")  //
      ("workers", po::value(&c.workers)->default_value(-1),
       "loader threads per rank (-1: from the core count, 0: load in the training thread)")  //
      ("normalize-mean", po::value(&norm_mean),
       "per-channel means, after scaling to [0,1] (e.g. 0.5,0.5,0.5)")            //
      ("normalize-std", po::value(&norm_std), "per-channel standard deviations")  //
      ("eval-batch-size", po::value(&c.eval_batch)->default_value(0),
       "per-rank batch for evaluation (0: the training batch)")  //
      ("synthetic-shape", po::value(&synthetic_shape)->default_value(synthetic_shape),
       "synthetic images: CxHxW")  //
      ("synthetic-train-size",
       po::value(&c.data.synthetic_train_size)->default_value(c.data.synthetic_train_size),
       "synthetic training samples")  //
      ("synthetic-test-size",
       po::value(&c.data.synthetic_test_size)->default_value(c.data.synthetic_test_size),
       "synthetic test samples")  //
      ("synthetic-classes",
       po::value(&c.data.synthetic_classes)->default_value(c.data.synthetic_classes),
       "synthetic classes");

  po::options_description train("Training");
  train.add_options()                                                               //
      ("epochs", po::value(&c.epochs)->default_value(c.epochs), "epochs to train")  //
      ("batch-size", po::value(&c.batch)->default_value(c.batch),
       "global batch per optimizer step, split into --accumulate micro-batches, each split over "
       "all ranks (as split_and_load)")  //
      ("accumulate", po::value(&c.accumulate)->default_value(c.accumulate),
       "micro-batches per optimizer step (gradient accumulation): each rank computes about "
       "batch-size / (accumulate x ranks) samples at a time, and the gradients are summed and "
       "all-reduced once per step; the learning rate follows the global batch")  //
      ("lr", po::value(&c.lr)->default_value(c.lr), "learning rate")             //
      ("optimizer", po::value(&c.optimizer)->default_value(c.optimizer),
       "sgd (with --momentum), lars (layer-wise adaptive rates, with --momentum) or adamw")  //
      ("momentum", po::value(&c.momentum)->default_value(c.momentum),
       "SGD's and LARS's momentum")  //
      ("weight-decay", po::value(&c.weight_decay)->default_value(c.weight_decay),
       "weight decay: L2 for sgd and lars, decoupled (w -= lr * wd * w) for adamw")  //
      ("no-decay-bias-bn", po::bool_switch(&c.no_decay_bias_bn),
       "sgd, adamw: no weight decay for biases and batch-norm's gamma and beta (lars never "
       "decays them)")  //
      ("adam-beta1", po::value(&c.adam_beta1)->default_value(c.adam_beta1, "0.9"),
       "adamw: decay of the first moment")  //
      ("adam-beta2", po::value(&c.adam_beta2)->default_value(c.adam_beta2, "0.999"),
       "adamw: decay of the second moment")  //
      ("adam-eps", po::value(&c.adam_eps)->default_value(c.adam_eps, "1e-08"),
       "adamw: added to the root of the second moment")  //
      ("lars-trust", po::value(&c.lars_trust)->default_value(c.lars_trust, "0.001"),
       "lars: the trust coefficient eta of the local rate eta * |w| / (|g| + wd * |w|)")  //
      ("label-smoothing", po::value(&c.label_smoothing)->default_value(c.label_smoothing),
       "training loss against the target (1 - EPS) one-hot + EPS / classes, as PyTorch's "
       "label_smoothing; in [0, 1), 0: off")  //
      ("clip-grad-norm", po::value(&c.clip_grad_norm)->default_value(c.clip_grad_norm),
       "scale the summed gradient down to this global L2 norm (over all ranks and shards) when "
       "it is larger, as PyTorch's clip_grad_norm_; 0: off")  //
      ("lr-schedule", po::value(&c.lr_schedule)->default_value(c.lr_schedule),
       "constant, step, cosine or poly")  //
      ("lr-poly-power", po::value(&c.lr_poly_power)->default_value(c.lr_poly_power, "2"),
       "poly schedule: lr = lr-min + (lr - lr-min) * (1 - t)^power after the warm-up")  //
      ("lr-steps", po::value(&lr_steps),
       "step schedule: epochs at which lr is multiplied by --lr-gamma (e.g. 30,60)")  //
      ("lr-gamma", po::value(&c.lr_gamma)->default_value(c.lr_gamma, num(c.lr_gamma)),
       "step schedule factor")  //
      ("lr-min", po::value(&c.lr_min)->default_value(c.lr_min),
       "cosine schedule: final learning rate")  //
      ("warmup-epochs", po::value(&c.warmup_epochs)->default_value(c.warmup_epochs),
       "linear learning-rate warm-up (may be fractional)")  //
      ("lr-scale-by-world", po::bool_switch(&c.lr_scale_by_world),
       "multiply lr by the number of ranks (linear scaling rule)")  //
      ("freeze-through", po::value(&c.freeze_through),
       "fine-tuning: the parameters of this layer and of every layer before it (in "
       "--print-shapes order) are not updated")  //
      ("lr-mult", po::value(&c.lr_mult),
       "fine-tuning: per-layer learning-rate factors, PATTERN=F[,PATTERN=F...] with shell "
       "patterns on --print-shapes names (e.g. dense3=10 or 'res4*=0.1'); the last match wins")  //
      ("target-accuracy", po::value(&c.target_accuracy)->default_value(0),
       "time-to-accuracy: stop after the first epoch whose test accuracy reaches this, and "
       "report the wall time and epochs it took (0: off)")  //
      ("seed", po::value(&c.seed)->default_value(c.seed),
       "seed of initialisation, shuffling, dropout and synthetic data");

  po::options_description dist("Devices and distribution");
  dist.add_options()                                                                  //
      ("device", po::value(&c.device)->default_value(c.device), "auto, cpu or cuda")  //
      ("cpu-conv", po::value(&c.cpu_conv)->default_value(c.cpu_conv),
       "CPU convolution algorithm: auto (oneDNN chooses, Winograd where faster) or direct")  //
      ("math", po::value(&c.math)->default_value(c.math),
       "GPU float math: tf32 (tensor cores, Ampere and newer) or fp32 (exact FP32, for "
       "comparisons)")  //
      ("cudnn-algo", po::value(&c.cudnn_algo)->default_value(c.cudnn_algo),
       "GPU convolution algorithms: find (time all once per shape, keep the fastest) or "
       "heuristic (cuDNN's first suggestion)")  //
      ("deterministic", po::bool_switch(&c.deterministic),
       "GPU runs that must repeat bit for bit: only convolution algorithms cuDNN reports as "
       "deterministic (CUDNN_DETERMINISTIC), which may be slower (docs/gpus.md)")  //
      ("cudnn-workspace-mb", po::value(&c.cudnn_workspace_mb)->default_value(c.cudnn_workspace_mb),
       "largest convolution workspace an algorithm may use, MiB")  //
      ("comm", po::value(&c.comm)->default_value(c.comm),
       "gradient communicator: auto (nccl with --device cuda, else mpi), nccl or mpi; none "
       "(with --benchmark: compute alone, to measure exposed communication)")  //
      ("bucket-mb", po::value(&c.bucket_mb)->default_value(c.bucket_mb),
       "gradient all-reduce bucket size in MiB")  //
      ("overlap", po::value(&c.overlap)->default_value(c.overlap),
       "on: all-reduce each bucket as soon as backward has written it; off: all buckets after "
       "backward")  //
      ("grad-compression", po::value(&c.grad_compression)->default_value(c.grad_compression),
       "none: gradients travel as fp32; bf16: as bfloat16 (half the bytes, ~3 significant "
       "digits)")  //
      ("model-parallel", po::value(&c.model_parallel)->default_value(c.model_parallel),
       "M: split the world into groups of M consecutive ranks (normally the GPUs of one node); "
       "within a group the convolutions stay data-parallel and the dense layers are split by "
       "neurons across the M ranks. Must divide the number of ranks; 1 = pure data "
       "parallelism (docs/process-grid.md)");

  po::options_description output("Output");
  output.add_options()  //
      ("metrics-file", po::value(&c.metrics_file),
       "write every figure as JSON lines to FILE (rank 0)")  //
      ("progress", po::value(&c.progress)->default_value(c.progress),
       "progress: auto (a bar on a terminal outside a launcher; otherwise a line every "
       "--progress-interval seconds), on (always the bar) or off")  //
      ("progress-interval",
       po::value(&c.progress_interval)->default_value(c.progress_interval, "30"),
       "seconds between progress lines under a launcher or into a file")  //
      ("timeline", po::value(&c.timeline),
       "write a Chrome trace (Perfetto, chrome://tracing) of every rank's steps to FILE")  //
      ("nvtx", po::bool_switch(&c.nvtx),
       "mark steps, layers, buckets and phases as NVTX ranges for Nsight Systems (nsys "
       "profile); needs the CUDA module")  //
      ("timeline-steps", po::value(&timeline_steps),
       "record only steps A:B (A included, B not; A: or :B open-ended), counted from 0")  //
      ("timeline-events", po::value(&c.timeline_events)->default_value(c.timeline_events),
       "most events kept per rank (a ring: the oldest are dropped)")  //
      ("tensorboard", po::value(&c.tensorboard),
       "write TensorBoard event files into DIR (rank 0): train/ scalars every "
       "--tensorboard-interval steps, epoch/ scalars every epoch; a resumed run goes on in the "
       "same DIR (docs/tensorboard.md)")  //
      ("tensorboard-interval",
       po::value(&c.tensorboard_interval)->default_value(c.tensorboard_interval),
       "optimizer steps between TensorBoard train/ points")  //
      ("straggler-threshold",
       po::value(&c.straggler_threshold)->default_value(c.straggler_threshold, "0.1"),
       "name the slowest rank when its compute time exceeds the median by this fraction")  //
      ("debug-delay-rank", po::value(&debug_delay),
       "testing aid: R:MS makes rank R sleep MS milliseconds in every step (a straggler)")  //
      ("debug-fault", po::value(&debug_fault),
       "testing aid: nonfinite:R:S puts a NaN into rank R's summed gradient in step S; "
       "stop-in-step:S makes rank 0 receive a stop request in the middle of step S; "
       "stop-in-eval:E as the evaluation of epoch E starts; error-in-step:R:S makes rank R fail "
       "alone (an error no other rank knows of) in the middle of step S, its gradient buckets in "
       "flight (steps and epochs count from 1)");

  po::options_description bench("Benchmark");
  bench.add_options()  //
      ("benchmark", po::bool_switch(&c.benchmark),
       "time training steps on synthetic data of the model's input shape instead of training")  //
      ("warmup-steps", po::value(&c.warmup_steps)->default_value(c.warmup_steps),
       "untimed steps first")  //
      ("steps", po::value(&c.steps)->default_value(c.steps), "timed steps");

  po::options_description ckpt("Checkpoints and failures");
  ckpt.add_options()                                                                           //
      ("checkpoint-dir", po::value(&c.checkpoint_dir), "rank 0 writes HDF5 checkpoints here")  //
      ("checkpoint-every", po::value(&c.checkpoint_every)->default_value(c.checkpoint_every),
       "checkpoint cadence: N or Nepochs, or Nsteps (and always at the end)")  //
      ("keep-checkpoints", po::value(&c.keep_checkpoints)->default_value(c.keep_checkpoints),
       "keep the newest N checkpoints")  //
      ("keep-best", po::value(&c.keep_best),
       "after each epoch's evaluation, keep the best epoch so far by METRIC (test_acc, "
       "test_top5, train_acc: higher is better; test_loss, train_loss: lower) in "
       "--checkpoint-dir/best.h5, never rotated")  //
      ("resume", po::value(&c.resume),
       "auto: continue from the newest valid checkpoint in --checkpoint-dir (if any); or a file")  //
      ("eval-only", po::bool_switch(&c.eval_only),
       "evaluate --checkpoint on the test set and exit")                               //
      ("checkpoint", po::value(&c.checkpoint), "the checkpoint file for --eval-only")  //
      ("init-from", po::value(&c.init_from),
       "start from a checkpoint's weights (fine-tuning); "
       "optimizer state and counters start fresh")  //
      ("comm-timeout", po::value(&c.comm_timeout)->default_value(c.comm_timeout),
       "seconds a collective may wait before the job is aborted as hung (0: no limit)")  //
      ("on-nonfinite", po::value(&c.on_nonfinite)->default_value(c.on_nonfinite),
       "a NaN or infinite loss or gradient: stop (exit 4, nothing non-finite applied or "
       "checkpointed) or skip-step (pass the batch over, at most --max-skipped-steps times)")  //
      ("max-skipped-steps", po::value(&c.max_skipped_steps)->default_value(c.max_skipped_steps),
       "--on-nonfinite skip-step: steps a run may skip before it stops as diverged")  //
      ("start-over", po::value(&c.start_over),
       "a new run in a --checkpoint-dir that holds another run's checkpoints: aside (move them "
       "into a subdirectory) or delete (without it, the run refuses to start)");

  po::options_description all(
      "Usage: alexnet [options]   (mpirun -np N alexnet [options] for N ranks)");
  all.add(general).add(model).add(data).add(train).add(dist).add(output).add(bench).add(ckpt);

  po::variables_map vm;
  try {
    // No guessing from prefixes: a typo such as --epoch must be an error, not --epochs.
    const int style =
        po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    po::store(po::command_line_parser(argc, argv).options(all).style(style).run(), vm);
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      struct stat st {};
      if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
        throw UsageError("config file '" + path + "' does not exist or is not a file");
      std::ifstream in(path);
      // Values stored first win: the command line, then the file, then the defaults.
      po::store(po::parse_config_file(in, all), vm);
    }
    po::notify(vm);
  } catch (const po::invalid_config_file_syntax& e) {
    throw UsageError("config file '" + vm["config"].as<std::string>() + "': " + e.what());
  } catch (const po::error& e) {
    std::string what = e.what();
    if (vm.count("config"))
      what += " (in " + vm["config"].as<std::string>() + " or on the command line)";
    throw UsageError(what);
  }

  std::ostringstream help;
  help << all;
  c.help_text = help.str();
  c.help = vm.count("help") > 0;
  c.version = vm.count("version") > 0;
  c.print_shapes = vm.count("print-shapes") > 0;
  c.print_config = vm.count("print-config") > 0;
  if (c.help || c.version) return c;

  if (!norm_mean.empty()) c.norm_mean = parse_list<float>(norm_mean, "normalize-mean");
  if (!norm_std.empty()) c.norm_std = parse_list<float>(norm_std, "normalize-std");
  if (!lr_steps.empty()) c.lr_steps = parse_list<double>(lr_steps, "lr-steps");
  c.data.synthetic_shape = parse_shape(synthetic_shape, "synthetic-shape");
  if (!timeline_steps.empty()) {
    static const std::regex window(R"(^\s*([0-9]*)\s*:\s*([0-9]*)\s*$)");
    std::smatch m;
    if (!std::regex_match(timeline_steps, m, window) || (m[1].length() == 0 && m[2].length() == 0))
      throw UsageError("--timeline-steps must be A:B, A: or :B with step numbers, got '" +
                       timeline_steps + "'");
    c.timeline_first = m[1].length() ? std::stoll(m[1]) : 0;
    c.timeline_last = m[2].length() ? std::stoll(m[2]) : -1;
    if (c.timeline_last >= 0 && c.timeline_last <= c.timeline_first)
      throw UsageError("--timeline-steps " + timeline_steps + " is empty (B must exceed A)");
  }
  if (!debug_delay.empty()) {
    static const std::regex delay(R"(^\s*([0-9]+)\s*:\s*([0-9.]+)\s*$)");
    std::smatch m;
    if (!std::regex_match(debug_delay, m, delay))
      throw UsageError("--debug-delay-rank must be R:MS (rank and milliseconds), got '" +
                       debug_delay + "'");
    c.debug_delay_rank = std::stoi(m[1]);
    c.debug_delay_ms = std::stod(m[2]);
  }
  if (!debug_fault.empty()) {
    static const std::regex nonfinite(R"(^nonfinite:([0-9]+):([0-9]+)$)");
    static const std::regex stop(R"(^stop-in-step:([0-9]+)$)");
    static const std::regex stop_eval(R"(^stop-in-eval:([0-9]+)$)");
    static const std::regex error_in_step(R"(^error-in-step:([0-9]+):([0-9]+)$)");
    std::smatch m;
    if (std::regex_match(debug_fault, m, nonfinite)) {
      c.debug_fault = RunConfig::DebugFault::nonfinite;
      c.debug_fault_rank = std::stoi(m[1]);
      c.debug_fault_step = std::stoll(m[2]);
    } else if (std::regex_match(debug_fault, m, stop)) {
      c.debug_fault = RunConfig::DebugFault::stop_in_step;
      c.debug_fault_rank = 0;
      c.debug_fault_step = std::stoll(m[1]);
    } else if (std::regex_match(debug_fault, m, stop_eval)) {
      c.debug_fault = RunConfig::DebugFault::stop_in_eval;
      c.debug_fault_step = std::stoll(m[1]);
    } else if (std::regex_match(debug_fault, m, error_in_step)) {
      c.debug_fault = RunConfig::DebugFault::error_in_step;
      c.debug_fault_rank = std::stoi(m[1]);
      c.debug_fault_step = std::stoll(m[2]);
    } else {
      throw UsageError(
          "--debug-fault must be nonfinite:R:S, stop-in-step:S, stop-in-eval:E or "
          "error-in-step:R:S, got '" +
          debug_fault + "'");
    }
  }
  c.resize_given = !vm["resize"].defaulted();
  c.model_given = !vm["model"].defaulted();
  c.dataset_given = !vm["dataset"].defaulted();
  c.data_dir_given = vm.count("data-dir") > 0;
  c.norm_given = vm.count("normalize-mean") > 0 || vm.count("normalize-std") > 0;
  if (resize == "auto") {
    c.resize = default_resize(c.model);
  } else {
    std::istringstream is(resize);
    int v = -1;
    if (!(is >> v) || !(is >> std::ws).eof() || v < 0)
      throw UsageError("--resize must be auto or a size >= 0 (0 keeps the dataset's size), got '" +
                       resize + "'");
    c.resize = v;
  }
  c.data.seed = c.seed;
  one_of("on-bad-image", c.on_bad_image, {"error", "skip"});
  one_of("augment", c.augment, {"standard", "none"});
  if (data::dataset_is_image_folder(c.data.name)) {
    if (c.data.dir.empty()) throw UsageError("--dataset " + c.data.name + " needs --data-dir DIR");
    if (c.resize == 0)
      throw UsageError(
          "--resize 0 keeps the dataset's image size, but an image folder's images have any size; "
          "give the crop size (e.g. --resize 224)");
    if (!c.norm_given) {  // ImageNet's per-channel statistics, as torchvision's reference uses
      c.norm_mean = {0.485f, 0.456f, 0.406f};
      c.norm_std = {0.229f, 0.224f, 0.225f};
    }
  } else if (c.on_bad_image != "error") {
    throw UsageError("--on-bad-image " + c.on_bad_image +
                     " applies to --dataset imagefolder and packed only");
  } else if (c.augment != "standard") {
    throw UsageError("--augment " + c.augment +
                     " applies to --dataset imagefolder and packed only");
  }

  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw UsageError(msg);
  };
  need(c.batch >= 1 && c.batch <= std::numeric_limits<int>::max(),
       "--batch-size must be in [1, " + std::to_string(std::numeric_limits<int>::max()) +
           "], got " + std::to_string(c.batch));
  need(c.accumulate >= 1 && c.accumulate <= c.batch, "--accumulate must be in [1, --batch-size " +
                                                         std::to_string(c.batch) + "], got " +
                                                         std::to_string(c.accumulate));
  need(c.eval_batch <= std::numeric_limits<int>::max(),
       "--eval-batch-size must be at most " + std::to_string(std::numeric_limits<int>::max()) +
           ", got " + std::to_string(c.eval_batch));
  // Benchmark settings: in a training run they would do nothing, and --warmup-steps reads like
  // a learning-rate warm-up (that one is --warmup-epochs).
  if (!c.benchmark && !vm["warmup-steps"].defaulted())
    throw UsageError(
        "--warmup-steps counts untimed steps of --benchmark; training has no such "
        "steps (a learning-rate warm-up is --warmup-epochs)");
  if (!c.benchmark && !vm["steps"].defaulted())
    throw UsageError(
        "--steps counts the timed steps of --benchmark; a training run is as long "
        "as --epochs");
  need(c.lr > 0 && std::isfinite(c.lr), "--lr must be > 0, got " + num(c.lr));
  need(c.epochs >= 1, "--epochs must be at least 1, got " + std::to_string(c.epochs));
  need(c.momentum >= 0 && c.momentum < 1, "--momentum must be in [0, 1), got " + num(c.momentum));
  need(c.weight_decay >= 0 && std::isfinite(c.weight_decay),
       "--weight-decay must be >= 0, got " + num(c.weight_decay));
  one_of("optimizer", c.optimizer, {"sgd", "lars", "adamw"});
  need(c.adam_beta1 >= 0 && c.adam_beta1 < 1,
       "--adam-beta1 must be in [0, 1), got " + num(c.adam_beta1));
  need(c.adam_beta2 >= 0 && c.adam_beta2 < 1,
       "--adam-beta2 must be in [0, 1), got " + num(c.adam_beta2));
  need(c.adam_eps > 0 && std::isfinite(c.adam_eps),
       "--adam-eps must be > 0, got " + num(c.adam_eps));
  need(c.lars_trust > 0 && std::isfinite(c.lars_trust),
       "--lars-trust must be > 0, got " + num(c.lars_trust));
  need(c.lr_poly_power > 0 && std::isfinite(c.lr_poly_power),
       "--lr-poly-power must be > 0, got " + num(c.lr_poly_power));
  // Settings of another optimizer would be silently ignored: refused instead (by value, so
  // that a printed configuration, which lists every key, reads back).
  need(c.optimizer != "adamw" || c.momentum == 0,
       "--momentum is for sgd and lars; adamw's first moment decays with --adam-beta1");
  need(c.optimizer == "adamw" ||
           (c.adam_beta1 == 0.9 && c.adam_beta2 == 0.999 && c.adam_eps == 1e-8),
       "--adam-beta1, --adam-beta2 and --adam-eps are for --optimizer adamw, this run has "
       "--optimizer " +
           c.optimizer);
  need(c.optimizer == "lars" || c.lars_trust == 0.001,
       "--lars-trust is for --optimizer lars, this run has --optimizer " + c.optimizer);
  need(c.lr_schedule == "poly" || c.lr_poly_power == 2.0,
       "--lr-poly-power is for --lr-schedule poly, this run has --lr-schedule " + c.lr_schedule);
  need(c.label_smoothing >= 0 && c.label_smoothing < 1,
       "--label-smoothing must be in [0, 1), got " + num(c.label_smoothing));
  need(c.clip_grad_norm >= 0 && std::isfinite(c.clip_grad_norm),
       "--clip-grad-norm must be >= 0 (0: off), got " + num(c.clip_grad_norm));
  need(c.dropout >= 0 && c.dropout < 1, "--dropout must be in [0, 1), got " + num(c.dropout));
  need(c.bn_momentum >= 0 && c.bn_momentum <= 1,
       "--bn-momentum must be in [0, 1], got " + num(c.bn_momentum));
  need(c.timeline_events >= 1000,
       "--timeline-events must be at least 1000, got " + std::to_string(c.timeline_events));
  need(c.straggler_threshold > 0,
       "--straggler-threshold must be > 0, got " + num(c.straggler_threshold));
  need(c.progress_interval > 0,
       "--progress-interval must be > 0 seconds, got " + num(c.progress_interval));
  need(c.train_limit >= 0, "--train-limit must be >= 0, got " + std::to_string(c.train_limit));
  need(c.test_limit >= 0, "--test-limit must be >= 0, got " + std::to_string(c.test_limit));
  need(c.workers >= -1,
       "--workers must be >= 0 (or -1 for automatic), got " + std::to_string(c.workers));
  need(c.eval_batch >= 0, "--eval-batch-size must be >= 0, got " + std::to_string(c.eval_batch));
  need(c.bucket_mb > 0, "--bucket-mb must be > 0, got " + num(c.bucket_mb));
  need(c.model_parallel >= 1,
       "--model-parallel must be at least 1, got " + std::to_string(c.model_parallel));
  need(c.lr_gamma > 0, "--lr-gamma must be > 0, got " + num(c.lr_gamma));
  need(c.lr_min >= 0 && c.lr_min <= c.lr, "--lr-min must be in [0, lr], got " + num(c.lr_min));
  need(c.warmup_epochs >= 0, "--warmup-epochs must be >= 0, got " + num(c.warmup_epochs));
  need(c.warmup_steps >= 0, "--warmup-steps must be >= 0, got " + std::to_string(c.warmup_steps));
  need(c.steps >= 1, "--steps must be at least 1, got " + std::to_string(c.steps));
  need(c.init_magnitude > 0, "--init-magnitude must be > 0");
  need(c.init_sigma > 0, "--init-sigma must be > 0");
  {
    static const std::regex every(R"(^\s*([0-9]+)\s*(epochs?|steps?)?\s*$)");
    std::smatch m;
    if (!std::regex_match(c.checkpoint_every, m, every) || std::stoll(m[1]) < 1)
      throw UsageError("--checkpoint-every must be N, Nepochs or Nsteps with N >= 1, got '" +
                       c.checkpoint_every + "'");
    const std::int64_t n = std::stoll(m[1]);
    const bool steps = m[2].length() > 0 && m[2].str()[0] == 's';
    c.checkpoint_every_epochs = steps ? 0 : n;
    c.checkpoint_every_steps = steps ? n : 0;
  }
  need(c.target_accuracy >= 0 && c.target_accuracy <= 1,
       "--target-accuracy must be in [0, 1], got " + num(c.target_accuracy));
  need(c.keep_checkpoints >= 1,
       "--keep-checkpoints must be at least 1, got " + std::to_string(c.keep_checkpoints));
  need(c.tensorboard_interval >= 1,
       "--tensorboard-interval must be at least 1, got " + std::to_string(c.tensorboard_interval));
  if (!c.keep_best.empty())
    one_of("keep-best", c.keep_best,
           {"test_acc", "test_loss", "test_top5", "train_acc", "train_loss"});
  need(c.keep_best.empty() || !c.checkpoint_dir.empty(), "--keep-best needs --checkpoint-dir");
  need(c.comm_timeout >= 0, "--comm-timeout must be >= 0, got " + num(c.comm_timeout));
  one_of("on-nonfinite", c.on_nonfinite, {"stop", "skip-step"});
  need(c.max_skipped_steps >= 0,
       "--max-skipped-steps must be >= 0, got " + std::to_string(c.max_skipped_steps));
  if (!c.start_over.empty()) one_of("start-over", c.start_over, {"aside", "delete"});
  need(c.start_over.empty() || c.resume.empty(),
       "--start-over and --resume exclude each other (one continues the run, the other begins "
       "a new one)");
  need(c.start_over.empty() || !c.checkpoint_dir.empty(), "--start-over needs --checkpoint-dir");
  need(!c.eval_only || !c.checkpoint.empty(), "--eval-only needs --checkpoint FILE");
  need(c.resume != "auto" || !c.checkpoint_dir.empty(), "--resume auto needs --checkpoint-dir");
  need(c.resume.empty() || c.init_from.empty(), "--resume and --init-from exclude each other");
  c.lr_mults = parse_lr_mults(c.lr_mult);
  one_of("init", c.init, {"xavier", "normal"});
  one_of("device", c.device, {"auto", "cpu", "cuda"});
  one_of("cpu-conv", c.cpu_conv, {"auto", "direct"});
  one_of("math", c.math, {"tf32", "fp32"});
  one_of("cudnn-algo", c.cudnn_algo, {"find", "heuristic"});
  need(c.cudnn_workspace_mb >= 0,
       "--cudnn-workspace-mb must be >= 0, got " + num(c.cudnn_workspace_mb));
  one_of("comm", c.comm, {"auto", "nccl", "mpi", "none"});
  need(c.comm != "none" || c.benchmark,
       "--comm none (compute alone: gradients are not summed) is only for --benchmark");
  one_of("overlap", c.overlap, {"on", "off"});
  one_of("grad-compression", c.grad_compression, {"none", "bf16"});
  need(!(c.comm == "nccl" && c.device == "cpu"), "--comm nccl needs --device cuda (or auto)");
  one_of("progress", c.progress, {"auto", "on", "off"});
  parse_schedule_kind(c.lr_schedule);
  if (c.lr_schedule == "step") need(!c.lr_steps.empty(), "--lr-schedule step needs --lr-steps");
  load_model_spec(c.model);  // a zoo name or a definition file that parses
  bool known_data = false;
  for (const auto& d : data::dataset_names()) known_data |= d == c.data.name;
  if (!known_data) {
    std::string list;
    for (const auto& d : data::dataset_names()) list += (list.empty() ? "" : ", ") + d;
    throw UsageError("unknown dataset '" + c.data.name + "'; expected one of: " + list);
  }
  return c;
}

namespace {

// "key = value" lines (the effective configuration a checkpoint records) as a map.
std::map<std::string, std::string> parse_ini_text(const std::string& ini) {
  std::map<std::string, std::string> kv;
  std::istringstream in(ini);
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    auto trim = [](std::string t) {
      const auto b = t.find_first_not_of(" \t"), e = t.find_last_not_of(" \t");
      return b == std::string::npos ? std::string() : t.substr(b, e - b + 1);
    };
    kv[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
  }
  return kv;
}

// Equal as text, or as comma-separated lists of numbers that agree to float precision (a value
// printed by another version may carry more digits).
bool same_setting(const std::string& a, const std::string& b) {
  if (a == b) return true;
  std::istringstream x(a), y(b);
  std::string p, q;
  while (true) {
    const bool more_x = bool(std::getline(x, p, ',')), more_y = bool(std::getline(y, q, ','));
    if (!more_x || !more_y) return more_x == more_y;
    char* end_p = nullptr;
    char* end_q = nullptr;
    const double u = std::strtod(p.c_str(), &end_p), v = std::strtod(q.c_str(), &end_q);
    if (*end_p != '\0' || *end_q != '\0' || p.empty() || q.empty()) return false;
    if (std::fabs(u - v) > 1e-6 * std::max(1.0, std::max(std::fabs(u), std::fabs(v)))) return false;
  }
}

}  // namespace

std::int64_t rank_micro_batch(const RunConfig& c, int world) {
  const std::int64_t micro = (c.batch + c.accumulate - 1) / c.accumulate;
  return (micro + world - 1) / world;
}

void check_resume_settings(const RunConfig& c, const std::string& checkpoint_ini,
                           std::int64_t checkpoint_world, int world, const std::string& source) {
  const auto was = parse_ini_text(checkpoint_ini), now = parse_ini_text(c.effective_ini());
  // What decides the steps a run takes: the same checkpoint resumed with any other value would
  // take other steps. (What may change is in docs/reliability.md.)
  std::vector<std::string> keys = {"model",
                                   "resize",
                                   "dropout",
                                   "bn-momentum",
                                   "sync-bn",
                                   "dataset",
                                   "train-limit",
                                   "drop-last",
                                   "augment",
                                   "normalize-mean",
                                   "normalize-std",
                                   "synthetic-shape",
                                   "synthetic-train-size",
                                   "synthetic-classes",
                                   "batch-size",
                                   "optimizer",
                                   "lr",
                                   "momentum",
                                   "weight-decay",
                                   "label-smoothing",
                                   "clip-grad-norm",
                                   "no-decay-bias-bn",
                                   "adam-beta1",
                                   "adam-beta2",
                                   "adam-eps",
                                   "lars-trust",
                                   "lr-schedule",
                                   "lr-poly-power",
                                   "lr-steps",
                                   "lr-gamma",
                                   "lr-min",
                                   "warmup-epochs",
                                   "lr-scale-by-world",
                                   "freeze-through",
                                   "lr-mult",
                                   "seed",
                                   "grad-compression"};
  // A cosine schedule spans all epochs: more epochs change every later learning rate.
  if (c.lr_schedule == "cosine" || c.lr_schedule == "poly") keys.push_back("epochs");
  // Checkpoints from before --optimizer existed were all written by SGD.
  auto was_all = was;
  was_all.emplace("optimizer", "sgd");
  for (const std::string& key : keys) {
    const auto w = was_all.find(key);
    const auto n = now.find(key);
    if (w == was_all.end() || n == now.end() || same_setting(w->second, n->second)) continue;
    throw UsageError(source + ": cannot resume with " + key + " = " +
                     (n->second.empty() ? "(none)" : n->second) + ": the run was started with " +
                     key + " = " + (w->second.empty() ? "(none)" : w->second) +
                     ", and a resumed run must take the same steps (to start anew from these "
                     "weights, use --init-from)");
  }
  if (c.lr_scale_by_world && checkpoint_world != world)
    throw UsageError(source + ": cannot resume on " + std::to_string(world) +
                     " ranks with --lr-scale-by-world: the run was started on " +
                     std::to_string(checkpoint_world) +
                     " ranks, and the learning rate scales with the number of ranks");
}

std::vector<std::pair<std::string, double>> parse_lr_mults(const std::string& text) {
  std::vector<std::pair<std::string, double>> out;
  std::istringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    const auto eq = item.rfind('=');
    const std::string pattern = eq == std::string::npos ? "" : item.substr(0, eq);
    const std::string factor = eq == std::string::npos ? "" : item.substr(eq + 1);
    char* end = nullptr;
    const double f = factor.empty() ? -1 : std::strtod(factor.c_str(), &end);
    if (pattern.empty() || factor.empty() || *end != '\0' || !std::isfinite(f) || f < 0)
      throw UsageError("--lr-mult: '" + item +
                       "' is not PATTERN=FACTOR with a layer-name pattern and a factor >= 0 "
                       "(e.g. --lr-mult dense3=10,conv1=0.1)");
    out.emplace_back(pattern, f);
  }
  return out;
}

void adopt_trained_settings(RunConfig& c, const std::string& checkpoint_ini,
                            const std::string& source) {
  std::map<std::string, std::string> kv = parse_ini_text(checkpoint_ini);
  for (const char* key : {"model", "resize", "normalize-mean", "normalize-std"})
    if (!kv.count(key))
      throw UsageError(source + ": its config attribute has no '" + key +
                       "' (not a distnet checkpoint, or a damaged one)");
  auto contradiction = [&](const std::string& option, const std::string& given,
                           const std::string& trained) {
    throw UsageError("--" + option + " " + given + " contradicts " + source +
                     ", which was trained with " + option + " = " +
                     (trained.empty() ? "(none)" : trained) +
                     "; --eval-only takes it from the checkpoint, so leave the option out");
  };
  const std::string model = kv["model"];
  if (c.model_given && c.model != model) contradiction("model", c.model, model);
  int resize = -1;
  {
    std::istringstream is(kv["resize"]);
    if (!(is >> resize) || resize < 0)
      throw UsageError(source + ": its config attribute has a bad resize '" + kv["resize"] + "'");
  }
  if (c.resize_given && c.resize != resize)
    contradiction("resize", std::to_string(c.resize), kv["resize"]);
  auto floats = [&](const std::string& key) {
    return kv[key].empty() ? std::vector<float>{} : parse_list<float>(kv[key], key);
  };
  const std::vector<float> mean = floats("normalize-mean"), std_dev = floats("normalize-std");
  auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)  // stored as text with 6 or more digits
      if (std::fabs(a[i] - b[i]) > 1e-5f * std::max(1.0f, std::fabs(b[i]))) return false;
    return true;
  };
  auto text = [](const std::vector<float>& v) {
    std::ostringstream o;
    for (std::size_t i = 0; i < v.size(); ++i) o << (i ? "," : "") << v[i];
    return v.empty() ? std::string("(none)") : o.str();
  };
  if (c.norm_given && !same(c.norm_mean, mean))
    contradiction("normalize-mean", text(c.norm_mean), kv["normalize-mean"]);
  if (c.norm_given && !same(c.norm_std, std_dev))
    contradiction("normalize-std", text(c.norm_std), kv["normalize-std"]);
  // The data it was trained on, unless told to evaluate other data: its image shape, classes
  // and normalisation belong to the checkpoint (an image folder's 3 channels, say).
  if (!c.dataset_given && kv.count("dataset") && !kv["dataset"].empty()) {
    c.data.name = kv["dataset"];
    if (!c.data_dir_given && kv.count("data-dir")) c.data.dir = kv["data-dir"];
  }
  c.model = model;
  c.resize = resize;
  c.norm_mean = mean;
  c.norm_std = std_dev;
}

namespace {

// The shortest text that reads back as the same value (0.9f prints as 0.9, not 0.899999976).
template <typename T>
std::string shortest(T v) {
  char buf[40];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, double(v));
    if (static_cast<T>(std::strtod(buf, nullptr)) == v) break;
  }
  return buf;
}

}  // namespace

std::string RunConfig::effective_ini() const {
  std::ostringstream o;
  auto list = [](const auto& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + shortest(v[i]);
    return s;
  };
  auto t = [](auto v) { return shortest(v); };
  o << "model = " << model << "\nresize = " << resize << "\ndropout = " << t(dropout)
    << "\nbn-momentum = " << t(bn_momentum) << "\nsync-bn = " << (sync_bn ? "true" : "false")
    << "\ninit = " << init << "\ninit-magnitude = " << t(init_magnitude)
    << "\ninit-sigma = " << t(init_sigma) << "\ndataset = " << data.name
    << "\ndata-dir = " << (data.dir.empty() ? data::default_data_dir(data.name) : data.dir)
    << "\ntrain-limit = " << train_limit << "\ntest-limit = " << test_limit
    << "\ndrop-last = " << (drop_last ? "true" : "false") << "\nworkers = " << workers
    << "\non-bad-image = " << on_bad_image << "\naugment = " << augment
    << "\nnormalize-mean = " << list(norm_mean) << "\nnormalize-std = " << list(norm_std)
    << "\neval-batch-size = " << eval_batch << "\nsynthetic-shape = " << data.synthetic_shape.str()
    << "\nsynthetic-train-size = " << data.synthetic_train_size
    << "\nsynthetic-test-size = " << data.synthetic_test_size
    << "\nsynthetic-classes = " << data.synthetic_classes << "\nepochs = " << epochs
    << "\nbatch-size = " << batch << "\naccumulate = " << accumulate << "\nlr = " << t(lr)
    << "\noptimizer = " << optimizer << "\nmomentum = " << t(momentum)
    << "\nweight-decay = " << t(weight_decay)
    << "\nno-decay-bias-bn = " << (no_decay_bias_bn ? "true" : "false")
    << "\nadam-beta1 = " << t(adam_beta1) << "\nadam-beta2 = " << t(adam_beta2)
    << "\nadam-eps = " << t(adam_eps) << "\nlars-trust = " << t(lars_trust)
    << "\nlabel-smoothing = " << t(label_smoothing) << "\nclip-grad-norm = " << t(clip_grad_norm)
    << "\nlr-schedule = " << lr_schedule << "\nlr-poly-power = " << t(lr_poly_power)
    << "\nlr-steps = " << list(lr_steps) << "\nlr-gamma = " << t(lr_gamma)
    << "\nlr-min = " << t(lr_min) << "\nwarmup-epochs = " << t(warmup_epochs)
    << "\nlr-scale-by-world = " << (lr_scale_by_world ? "true" : "false")
    << "\nfreeze-through = " << freeze_through << "\nlr-mult = " << lr_mult << "\nseed = " << seed
    << "\ndevice = " << device << "\ncpu-conv = " << cpu_conv << "\nmath = " << math
    << "\ncudnn-algo = " << cudnn_algo << "\ndeterministic = " << (deterministic ? "true" : "false")
    << "\ncudnn-workspace-mb = " << t(cudnn_workspace_mb) << "\ncomm = " << comm
    << "\nbucket-mb = " << t(bucket_mb) << "\noverlap = " << overlap
    << "\ngrad-compression = " << grad_compression << "\nmodel-parallel = " << model_parallel
    << "\nmetrics-file = " << metrics_file << "\nprogress = " << progress
    << "\nprogress-interval = " << t(progress_interval) << "\ntimeline = " << timeline
    << "\ntimeline-events = " << timeline_events << "\nnvtx = " << (nvtx ? "true" : "false")
    << "\ntensorboard = " << tensorboard << "\ntensorboard-interval = " << tensorboard_interval
    << "\nkeep-best = " << keep_best << "\nstraggler-threshold = " << t(straggler_threshold)
    << "\nbenchmark = " << (benchmark ? "true" : "false") << "\nwarmup-steps = " << warmup_steps
    << "\nsteps = " << steps << "\ncheckpoint-dir = " << checkpoint_dir
    << "\ncheckpoint-every = " << checkpoint_every << "\nkeep-checkpoints = " << keep_checkpoints
    << "\nresume = " << resume << "\neval-only = " << (eval_only ? "true" : "false")
    << "\ncheckpoint = " << checkpoint << "\ninit-from = " << init_from
    << "\ncomm-timeout = " << t(comm_timeout) << "\ntarget-accuracy = " << t(target_accuracy)
    << "\non-nonfinite = " << on_nonfinite << "\nmax-skipped-steps = " << max_skipped_steps
    << "\nstart-over = " << start_over << "\n";
  return o.str();
}

}  // namespace distnet
