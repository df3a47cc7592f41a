#include "setup.hpp"

#include <hdf5.h>
#include <mpi.h>
#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <thread>

#include "distnet/data/image_folder.hpp"
#include "distnet/data/packed.hpp"
#include "distnet/gpu.hpp"
#include "distnet/param_groups.hpp"
#include "distnet/report.hpp"

namespace distnet::app {
namespace {

// A batch that cannot fit is refused before anything is allocated.
void check_gpu_memory(const Backend& be, const ModelConfig& mc, std::int64_t per_rank, int slots,
                      bool accumulate) {
  const std::int64_t kept = accumulate ? Model::accumulation_bytes(mc) : 0;
  if (!be.device().is_cuda()) {  // the host's memory, shared by the ranks on it
    const double total = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
    const double need = double(Model::device_bytes(mc, int(per_rank), slots) + kept);
    if (total > 0 && need > total)
      throw UsageError("a batch of " + std::to_string(per_rank) + " per rank needs at least " +
                       std::to_string(std::int64_t(need) >> 20) +
                       " MiB for the model and its activations, more than this machine's " +
                       std::to_string(std::int64_t(total) >> 20) +
                       " MiB of memory; use a smaller --batch-size or more ranks");
    return;
  }
  const gpu::DeviceInfo info = gpu::device_info(be.device().index);
  const std::int64_t need = Model::device_bytes(mc, int(per_rank), slots) + kept;
  if (std::size_t(need) <= info.free_bytes) return;
  throw UsageError("a batch of " + std::to_string(per_rank) + " per rank needs at least " +
                   std::to_string(need >> 20) + " MiB on " + be.device().str() + " (" + info.name +
                   ") for the model and its activations, but only " +
                   std::to_string(info.free_bytes >> 20) + " MiB of " +
                   std::to_string(info.total_bytes >> 20) +
                   " MiB are free; use a smaller --batch-size or more GPUs");
}

// Rank 0 picks the checkpoint to continue from: a given file, or with "auto" the newest valid one
// in --checkpoint-dir (damaged ones are skipped with a warning). Settings that would make the
// resumed run take other steps are refused, whichever checkpoint it is. Loads it into the model.
std::optional<CheckpointMeta> resume_from(const RunConfig& cfg, const World& world, Model& model,
                                          std::int64_t train_samples, std::string* chosen) {
  const bool automatic = cfg.resume == "auto";
  const std::vector<std::string> candidates =
      automatic ? list_checkpoints(cfg.checkpoint_dir) : std::vector<std::string>{cfg.resume};
  for (const std::string& path : candidates) {
    try {
      const CheckpointMeta meta = read_checkpoint_meta(path);
      if (meta.global_batch != cfg.batch) {
        throw UsageError(path + ": written with a global batch of " +
                         std::to_string(meta.global_batch) + ", this run has " +
                         std::to_string(cfg.batch) +
                         " (a resumed run keeps the global batch; the number of ranks and "
                         "--accumulate may change)");
      }
      check_resume_settings(cfg, meta.config, meta.world_size, world.size(), path);
      if (meta.train_samples != train_samples) {
        throw UsageError(path + ": written for " + std::to_string(meta.train_samples) +
                         " training samples, this run has " + std::to_string(train_samples));
      }
      const std::int64_t spe =
          cfg.drop_last ? train_samples / cfg.batch : (train_samples + cfg.batch - 1) / cfg.batch;
      if (spe < 1 || meta.state.epoch != meta.state.step / spe ||
          meta.state.batch_in_epoch != meta.state.step % spe) {
        throw Error(path + ": its step " + std::to_string(meta.state.step) + " is not epoch " +
                    std::to_string(meta.state.epoch) + ", batch " +
                    std::to_string(meta.state.batch_in_epoch) + " of " + std::to_string(spe) +
                    " per epoch (a damaged or edited checkpoint)");
      }
      load_checkpoint(path, model, /*weights_only=*/false);
      *chosen = path;
      std::printf("resuming from %s (run %s, written by %lld %s)\n", path.c_str(),
                  meta.run_id.empty() ? "without an id" : meta.run_id.c_str(),
                  static_cast<long long>(meta.world_size), meta.world_size == 1 ? "rank" : "ranks");
      return meta;
    } catch (const UsageError&) {
      throw;
    } catch (const Error& e) {
      if (!automatic) throw;
      std::fprintf(stderr, "alexnet: warning: skipping checkpoint %s: %s\n", path.c_str(),
                   e.what());
    }
  }
  // Checkpoints exist and none is usable: starting afresh would overwrite and prune that run.
  if (!candidates.empty()) {
    throw Error(cfg.checkpoint_dir + ": none of its " + std::to_string(candidates.size()) +
                " checkpoints can be resumed (see the warnings above); nothing was started, and "
                "they are left as they are");
  }
  std::printf("no checkpoint in %s yet; starting from scratch\n", cfg.checkpoint_dir.c_str());
  return std::nullopt;
}

// --keep-best: the best so far of this run, from DIR/best.h5 when an earlier process of the run
// wrote one (rank 0, after the run id is known). Another run's file is refused on a resume; a new
// run under --resume auto finds one only when that run was killed before its first checkpoint
// (best.h5 is written first), and sets it aside like --start-over aside.
std::optional<BestMark> earlier_best(const RunConfig& cfg, const Setup& s) {
  const std::string& dir = cfg.checkpoint_dir;
  const std::string path = dir + "/" + kBestCheckpointName;
  if (::access(path.c_str(), F_OK) != 0) return std::nullopt;
  const CheckpointMeta meta = read_checkpoint_meta(path);
  const std::string owner = meta.run_id.empty() ? "(without an id)" : meta.run_id;
  if (meta.run_id != s.run_id && s.resumed)
    throw UsageError(path + " is the best checkpoint of run " + owner + ", not of this run (" +
                     s.run_id + "); move it out of " + dir + " to keep it, or delete it");
  if (meta.run_id != s.run_id) {
    const std::string aside = set_files_aside(dir, {path}, meta.run_id);
    std::printf(
        "%s was the best checkpoint of run %s, which left no checkpoint to resume; moved "
        "into %s\n",
        path.c_str(), owner.c_str(), aside.c_str());
    return std::nullopt;
  }
  if (!meta.best) throw Error(path + ": no best_metric attribute (not written by --keep-best)");
  if (meta.best->metric != cfg.keep_best) {
    std::printf(
        "%s holds the best epoch by %s; this run keeps the best by %s from now on and "
        "replaces it at its next evaluated epoch\n",
        path.c_str(), meta.best->metric.c_str(), cfg.keep_best.c_str());
    return std::nullopt;
  }
  std::printf("best so far by %s: %.6g at epoch %lld (%s)\n", cfg.keep_best.c_str(),
              meta.best->value, static_cast<long long>(meta.best->epoch), path.c_str());
  return meta.best;
}

}  // namespace

ModelConfig model_config(const RunConfig& c, const Shape& image, int classes) {
  ModelConfig m;
  m.name = c.model;
  m.input = c.resize > 0 ? Shape{image[0], c.resize, c.resize} : image;
  m.classes = classes;
  m.dropout = c.dropout;
  m.bn_momentum = c.bn_momentum;
  m.sync_bn = c.sync_bn;
  return m;
}

// Ranks sharing a host share its cores: without an explicit OMP_NUM_THREADS each rank takes its
// share (and never more than the cores it is bound to).
void set_threads(const World& world) {
  if (std::getenv("OMP_NUM_THREADS")) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  const int bound = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : INT_MAX;
  const int share = std::max(1, int(std::thread::hardware_concurrency()) / world.local_size());
  omp_set_num_threads(std::max(1, std::min(bound, share)));
}

// --device cpu, cuda, or auto (CUDA when this rank can use a GPU). A rank drives GPU
// local_rank % visible devices: with one rank per GPU on a node (mpirun -np <GPUs per node> x
// nodes), or with one visible GPU per rank (Slurm's --gpus-per-task), each rank has its own.
// The GPU backend is loaded only here, and never for --device cpu. When auto finds no backend
// (its module or a CUDA library missing), rank 0 says so once; a node without a GPU or driver is
// the normal case for auto and stays silent.
std::unique_ptr<Backend> select_backend(const RunConfig& c, const World& world) {
  std::string why, missing;
  const int visible = c.device == "cpu" ? 0 : gpu::usable_devices(&why);
  if (c.device == "cuda" && visible == 0) throw UsageError("--device cuda: " + why);
  if (c.device == "auto" && visible == 0 && gpu::built_with_cuda() &&
      !gpu::backend_available(&missing) && world.is_root()) {
    std::fprintf(stderr, "alexnet: note: no GPU backend (%s); running on the CPU\n",
                 missing.c_str());
  }
  if (visible == 0) {
    CpuOptions o;
    o.conv = c.cpu_conv == "direct" ? CpuOptions::ConvAlgorithm::direct
                                    : CpuOptions::ConvAlgorithm::automatic;
    return make_cpu_backend(o);
  }
  gpu::CudaOptions o;
  o.device = world.local_rank() % visible;
  o.math = c.math == "fp32" ? gpu::CudaOptions::Math::fp32 : gpu::CudaOptions::Math::tf32;
  o.conv_search = c.cudnn_algo == "heuristic" ? gpu::CudaOptions::ConvSearch::heuristic
                                              : gpu::CudaOptions::ConvSearch::find;
  o.deterministic = c.deterministic;
  o.workspace_limit = static_cast<std::size_t>(c.cudnn_workspace_mb * 1024 * 1024);
  o.host_wait_timeout_s = c.comm_timeout;
  return gpu::make_cuda_backend(o);
}

// A collective over all ranks, after every rank has its backend: all ranks on the same kind of
// device, and no two ranks on one physical GPU (NCCL cannot run that way). Returns the problem in
// one line (the same on every rank), or "".
std::string check_devices(const World& world, const Backend& be) {
  struct Record {
    char host[64];
    char uuid[48];
    int cuda, index;
  } mine{};
  std::snprintf(mine.host, sizeof mine.host, "%s", world.host().c_str());
  mine.cuda = be.device().is_cuda();
  mine.index = be.device().index;
  if (mine.cuda)
    std::snprintf(mine.uuid, sizeof mine.uuid, "%s", gpu::device_info(mine.index).uuid.c_str());
  std::vector<Record> all(static_cast<std::size_t>(world.size()));
  MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, world.comm());
  int gpus = 0;
  for (const Record& r : all) gpus += r.cuda;
  if (gpus != 0 && gpus != world.size()) {
    return std::to_string(gpus) + " of " + std::to_string(world.size()) +
           " ranks have a GPU and the others do not; every rank must use the same device "
           "(--device cpu, or start ranks only where GPUs are)";
  }
  for (std::size_t a = 0; a < all.size() && gpus; ++a) {
    for (std::size_t b = a + 1; b < all.size(); ++b) {
      if (std::strcmp(all[a].uuid, all[b].uuid) != 0) continue;
      return "ranks " + std::to_string(a) + " and " + std::to_string(b) + " on host " +
             all[a].host + " would share GPU cuda:" + std::to_string(all[a].index) + " (" +
             all[a].uuid +
             "): one rank per GPU is required (NCCL cannot run two ranks on one GPU); start "
             "at most as many ranks per node as it has GPUs";
    }
  }
  return "";
}

std::string prefix(const World& w) {
  return w.size() > 1 ? "[rank " + std::to_string(w.rank()) + " " + w.host() + "] " : "";
}

// Set-up problems (bad data, a model that does not fit the data) usually hit every rank alike;
// the ranks agree on the outcome so all of them leave with the same non-zero code, and the first
// failing rank says why -- no rank is left waiting in a collective.
int agree_on_failure(const World& world, int my_code, const std::string& message) {
  int code = my_code, worst = 0;
  MPI_Allreduce(&code, &worst, 1, MPI_INT, MPI_MAX, world.comm());
  if (worst == kExitOk) return kExitOk;
  int mine = my_code != kExitOk ? world.rank() : INT_MAX, first = 0;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, world.comm());
  if (world.rank() == first)
    std::fprintf(stderr, "%salexnet: error: %s\n", prefix(world).c_str(), message.c_str());
  return worst;
}

// The communicators: MPI for host figures; for the model's buffers MPI too on the CPU, NCCL on
// GPUs (or MPI through host memory with --comm mpi). Collective: every rank calls it.
void make_communicators(const RunConfig& cfg, const World& world, Setup& s) {
  check_grid_shape(world.size(), cfg.model_parallel);  // the same answer on every rank
  const CommunicatorFactory make = [&](MPI_Comm c) -> std::unique_ptr<Communicator> {
    if (s.backend->device().is_cpu() || cfg.comm == "mpi")
      return through_host(with_watchdog(make_mpi_communicator(c), cfg.comm_timeout, prefix(world)),
                          *s.backend);
    // The grid's group and shard communicators are split from the world's (made first).
    return gpu::make_nccl_communicator(c, *s.backend, cfg.comm_timeout, prefix(world),
                                       s.comm.get());
  };
  if (s.backend->device().is_cpu()) {
    s.comm = with_watchdog(make_mpi_communicator(world.comm()), cfg.comm_timeout, prefix(world));
  } else {
    s.comm = make(world.comm());
    s.host_comm =
        with_watchdog(make_mpi_communicator(world.comm()), cfg.comm_timeout, prefix(world));
  }
  s.grid = std::make_unique<Grid>(world.comm(), *s.comm, cfg.model_parallel, make);
}

Setup set_up(const RunConfig& cfg, const World& world, Setup s) {
  // --accumulate K: every rank has a sample in every micro-batch of a full global batch (a kept
  // last partial batch may leave some slices empty, as without accumulation).
  if (cfg.accumulate > 1 && !cfg.eval_only &&
      cfg.batch < std::int64_t(cfg.accumulate) * world.size())
    throw UsageError("--accumulate " + std::to_string(cfg.accumulate) + " on " +
                     std::to_string(world.size()) + (world.size() == 1 ? " rank" : " ranks") +
                     " splits every global batch into " +
                     std::to_string(std::int64_t(cfg.accumulate) * world.size()) +
                     " slices, more than --batch-size " + std::to_string(cfg.batch) +
                     " samples; use a smaller --accumulate or a larger --batch-size");
  data::DatasetOptions d = cfg.data;
  if (cfg.benchmark) {  // synthetic images of the model's input size: no resize, no I/O
    const std::int64_t channels = data::dataset_is_image_folder(d.name) ? 3 : d.synthetic_shape[0];
    d.name = "synthetic";
    if (cfg.resize > 0) d.synthetic_shape = Shape{channels, cfg.resize, cfg.resize};
  }
  d.limit = cfg.train_limit;
  d.image_size = cfg.resize;
  d.skip_bad_images = cfg.on_bad_image == "skip";
  d.augment = cfg.augment == "standard";
  SlowNotice loading(world.is_root(), "loading the " + d.name + " data");
  // --eval-only reads the split it evaluates and nothing else.
  if (!cfg.eval_only) s.train = data::open_dataset(d, data::Split::train);
  if (!cfg.benchmark) {
    d.limit = cfg.test_limit;
    s.test = data::open_dataset(d, data::Split::test);
  }
  const data::Dataset& shape_of = s.train ? *s.train : *s.test;
  ModelConfig mc = model_config(cfg, shape_of.image_shape(), shape_of.classes());
  if (cfg.keep_best == "test_top5" && mc.classes < 10)
    throw UsageError(
        "--keep-best test_top5 needs at least 10 classes (top-5 accuracy is not "
        "reported below that); the data has " +
        std::to_string(mc.classes));
  mc.sync_bn_ranks = s.comm.get();  // --sync-bn: the data-parallel world (the grid's too)
  s.transform = std::make_unique<data::ImageTransform>(
      shape_of.image_shape(), data::TransformSpec{int(mc.input[1]), cfg.norm_mean, cfg.norm_std});
  const std::int64_t per_rank = rank_micro_batch(cfg, world.size());
  const std::int64_t eval = cfg.eval_batch > 0 ? cfg.eval_batch : per_rank;
  check_gpu_memory(*s.backend, mc, std::max(per_rank, eval),
                   int(optimizer_slot_names(cfg.optimizer).size()),
                   cfg.accumulate > 1 && !cfg.eval_only);
  SlowNotice building(world.is_root(), "building and initialising " + mc.name);
  LayerSplit split;
  if (s.grid->hybrid())
    split = LayerSplit{s.grid->group_comm(), s.grid->model_parallel(), s.grid->shard()};
  s.model = std::make_unique<Model>(mc, *s.backend, int(std::max(per_rank, eval)), split);
  s.model->set_optimizer(cfg.optimizer);  // its state slots, before a checkpoint loads them
  InitConfig init;
  init.kind = cfg.init == "normal" ? InitConfig::Kind::normal : InitConfig::Kind::xavier;
  init.xavier_magnitude = cfg.init_magnitude;
  init.normal_sigma = cfg.init_sigma;
  init.seed = cfg.seed;
  s.model->initialize(init);
  // --freeze-through and --lr-mult name layers of this model: checked here, before any step.
  (void)make_param_groups(*s.model, cfg.freeze_through, cfg.lr_mults);
  // Only batch-norm layers keep running statistics.
  if (cfg.sync_bn && s.model->state().empty() && world.is_root())
    std::fprintf(stderr,
                 "alexnet: warning: --sync-bn: model %s has no batch-norm layer; the option "
                 "changes nothing\n",
                 mc.name.c_str());
  // Checkpoint files are read on rank 0 only; the trainer broadcasts what it loaded.
  if (world.is_root()) {
    // Output files are checked before any work (the metrics file is appended to, never cut).
    for (const auto& [path, what] :
         {std::pair{cfg.metrics_file, "metrics"}, std::pair{cfg.timeline, "timeline"}}) {
      if (path.empty()) continue;
      std::FILE* f = std::fopen(path.c_str(), "a");
      if (!f)
        throw Error(path + ": cannot open the " + what +
                    " file for writing: " + std::strerror(errno));
      std::fclose(f);
    }
    const bool trains = !cfg.eval_only && !cfg.benchmark;
    if (!cfg.tensorboard.empty() && trains) TensorBoardWriter::check_dir(cfg.tensorboard);
    if (!cfg.checkpoint_dir.empty()) ensure_writable_dir(cfg.checkpoint_dir);
    // The directory is this run's from here on: a second run is refused, and a new run does not
    // start over another run's checkpoints unless told what to do with them.
    if (!cfg.checkpoint_dir.empty() && trains) {
      s.lock = std::make_unique<RunDirLock>(cfg.checkpoint_dir, world.host());
      if (cfg.resume.empty()) prepare_new_run(cfg.checkpoint_dir, cfg.start_over);
    }
    if (!cfg.checkpoint_dir.empty() && d.folder)  // label i is line i + 1
      data::write_class_names(cfg.checkpoint_dir + "/classes.txt", d.folder->classes);
    if (!cfg.checkpoint_dir.empty() && d.packed)
      data::write_class_names(cfg.checkpoint_dir + "/classes.txt", d.packed->train.classes);
    if (!cfg.init_from.empty()) {
      const InitFrom got = load_initial_weights(cfg.init_from, *s.model);
      std::printf("init-from %s: weights of %s loaded%s\n", cfg.init_from.c_str(),
                  got.meta.model.c_str(),
                  got.reinitialised.empty()
                      ? ""
                      : ("; " + got.reinitialised_detail + " re-initialised for " +
                         std::to_string(mc.classes) + " classes (the checkpoint has " +
                         std::to_string(got.meta.classes) + ")")
                            .c_str());
    }
    if (cfg.eval_only) load_checkpoint(cfg.checkpoint, *s.model, /*weights_only=*/true);
    if (!cfg.resume.empty())
      s.resumed = resume_from(cfg, world, *s.model, s.train->size(), &s.resumed_path);
    s.run_id = s.resumed && !s.resumed->run_id.empty() ? s.resumed->run_id : new_run_id();
    if (s.lock) s.lock->set_run_id(s.run_id);
    if (!cfg.keep_best.empty() && trains) s.best = earlier_best(cfg, s);
    if (!cfg.tensorboard.empty() && trains) {
      s.tensorboard = std::make_unique<TensorBoardWriter>(cfg.tensorboard, world.host(), s.run_id,
                                                          s.resumed ? s.resumed->state.step : -1);
      if (!s.tensorboard->other_run_file().empty())
        std::fprintf(stderr,
                     "alexnet: warning: --tensorboard %s already holds %s, another run's event "
                     "file; TensorBoard shows a directory as one run, so their curves mix (give "
                     "each run its own directory)\n",
                     cfg.tensorboard.c_str(), s.tensorboard->other_run_file().c_str());
    }
  }
  return s;
}

// Rank 0's resume point, on every rank (all zero when not resuming).
std::optional<TrainingState> share_resume_state(const World& world, const Setup& s) {
  double v[5] = {0, 0, 0, 0, 0};
  if (s.resumed) {
    v[0] = 1, v[1] = double(s.resumed->state.step);
    for (int i = 0; i < 3; ++i) v[2 + i] = s.resumed->state.epoch_sums[std::size_t(i)];
  }
  MPI_Bcast(v, 5, MPI_DOUBLE, 0, world.comm());
  if (v[0] == 0) return std::nullopt;
  TrainingState t;
  t.step = static_cast<std::int64_t>(v[1]);
  t.epoch_sums = {v[2], v[3], v[4]};
  return t;
}

}  // namespace distnet::app
