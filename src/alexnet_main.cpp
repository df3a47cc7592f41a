// alexnet: data-parallel training of a CNN over MPI ranks.
//   mpirun -np 8 alexnet --config configs/fashion-mnist-alexnet.ini
// Reads top to bottom: settings, world, backend, data, model, trainer, the run.
#include <hdf5.h>
#include <mpi.h>
#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <thread>

#include "app/predict.hpp"
#include "app/setup.hpp"
#include "distnet/abort.hpp"
#include "distnet/backend.hpp"
#include "distnet/checkpoint.hpp"
#include "distnet/comm.hpp"
#include "distnet/config.hpp"
#include "distnet/data/image_folder.hpp"
#include "distnet/data/packed.hpp"
#include "distnet/gpu.hpp"
#include "distnet/grid.hpp"
#include "distnet/report.hpp"
#include "distnet/run_dir.hpp"
#include "distnet/signals.hpp"
#include "distnet/timeline.hpp"
#include "distnet/trainer.hpp"
#include "distnet/version.hpp"
#include "distnet/world.hpp"

using namespace distnet;
using namespace distnet::app;

namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string with_commas(std::int64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(std::size_t(i), ",");
  return s;
}

void print_version() {
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int len = 0;
  MPI_Get_library_version(mpi, &len);  // allowed before MPI_Init
  std::string mpi_line(mpi, std::size_t(len));
  mpi_line = mpi_line.substr(0, mpi_line.find_first_of(",\n"));
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  std::printf("distnet %s\n  cpu backend: %s\n  gpu backend: %s\n  MPI: %s\n  HDF5: %u.%u.%u\n",
              DISTNET_VERSION, make_cpu_backend()->description().c_str(),
              gpu::library_versions().c_str(), mpi_line.c_str(), maj, min, rel);
}

void print_shapes(const ModelConfig& cfg) {
  const auto layers = build_layers(cfg);
  std::printf("model %s, input %s, %d classes\n", cfg.name.c_str(), cfg.input.str().c_str(),
              cfg.classes);
  int width = 10;  // the name column, wider for the long names of a block's layers
  int kinds = 30;  // the kind column, wider for a grouped convolution without a bias and the like
  for (const auto& l : layers) {
    width = std::max(width, static_cast<int>(l->name().size()));
    kinds = std::max(kinds, static_cast<int>(l->kind().size()));
  }
  std::printf("%-*s %-*s %-14s %14s\n", width, "layer", kinds, "kind", "output", "parameters");
  // A graph: after each layer that does not simply take the one before it, where its inputs
  // come from.
  auto from = [&](std::size_t i) {
    const auto& in = layers[i]->inputs();
    if (in.empty() || in == std::vector<int>{static_cast<int>(i) - 1}) return std::string();
    std::string s = "  <- ";
    for (std::size_t k = 0; k < in.size(); ++k)
      s +=
          (k ? ", " : "") + (in[k] < 0 ? std::string("input") : layers[std::size_t(in[k])]->name());
    return s;
  };
  std::int64_t total = 0, state = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const auto& l = layers[i];
    std::int64_t n = 0;
    for (const auto& p : l->param_specs()) (p.trainable() ? n : state) += p.shape.numel();
    total += n;
    std::printf("%-*s %-*s %-14s %14s%s\n", width, l->name().c_str(), kinds, l->kind().c_str(),
                l->output_shape().str().c_str(), with_commas(n).c_str(), from(i).c_str());
  }
  std::printf("total parameters: %s\n", with_commas(total).c_str());
  if (state) std::printf("running statistics (not trained): %s\n", with_commas(state).c_str());
}

void print_start(const RunConfig& cfg, const World& world, const Setup& s, Reporter& report) {
  const auto ranks = world.gather_ranks(s.backend->description());
  if (!report.active()) return;
  const Model& m = *s.model;
  report.line("distnet " + std::string(DISTNET_VERSION) + ": " + std::to_string(world.size()) +
              (world.size() == 1 ? " rank" : " ranks") + ", communicator " + s.comm->name());
  std::string ctx_json;
  for (const RankInfo& r : ranks) {
    report.line("  ctx rank " + std::to_string(r.rank) + ": host " + r.host + ", local rank " +
                std::to_string(r.local_rank) + ", " + r.device);
    ctx_json += std::string(r.rank ? "," : "") + "{\"rank\":" + std::to_string(r.rank) +
                ",\"host\":\"" + json_escape(r.host) +
                "\",\"local_rank\":" + std::to_string(r.local_rank) + ",\"device\":\"" +
                json_escape(r.device) + "\"}";
  }
  if (s.grid->hybrid()) {
    const int mp = s.grid->model_parallel();
    std::string spread;
    for (int g = 0; g < s.grid->groups() && spread.empty(); ++g)
      for (int k = 1; k < mp && spread.empty(); ++k)
        if (ranks[std::size_t(g * mp + k)].host != ranks[std::size_t(g * mp)].host)
          spread = "group " + std::to_string(g) + " spans hosts " +
                   ranks[std::size_t(g * mp)].host + " and " + ranks[std::size_t(g * mp + k)].host;
    report.line(
        "grid: " + std::to_string(s.grid->groups()) + " group(s) of " + std::to_string(mp) +
        " consecutive ranks; convolutions data-parallel, dense1 and dense2 split by neurons "
        "within each group (docs/process-grid.md)");
    if (!spread.empty())
      report.line("alexnet: warning: --model-parallel " + std::to_string(mp) + ": " + spread +
                  ", so its activations cross the network every step; start M ranks per node "
                  "(--ntasks-per-node M, or mpirun --map-by ppr:M:node)");
  }
  // --accumulate K: each global batch in K micro-batches, each split over the ranks.
  const std::int64_t b = cfg.batch;
  const int micros = cfg.eval_only ? 1 : cfg.accumulate;
  const auto micro_lo = data::split_slice(b, micros, micros - 1).size();
  const auto micro_hi = data::split_slice(b, micros, 0).size();
  const auto lo = data::split_slice(micro_lo, world.size(), world.size() - 1).size();
  const auto hi = data::split_slice(micro_hi, world.size(), 0).size();
  report.line("model " + m.config().name + " (" + with_commas(m.num_trainable()) +
              (m.is_split() ? " parameters on rank 0, with its shards" : " parameters") +
              "), input " + m.config().input.str() + ", " + std::to_string(m.config().classes) +
              " classes");
  if (cfg.sync_bn && !cfg.eval_only && !m.state().empty())
    report.line("batch-norm: statistics of the global batch, summed over all " +
                std::to_string(world.size()) + (world.size() == 1 ? " rank" : " ranks") +
                " in every training pass (--sync-bn)");
  report.line(
      "data " + (s.train ? s.train->description() : std::string("(no training split)")) +
      (s.test ? "; test " + s.test->description() : "") + "; global batch " + std::to_string(b) +
      (micros == 1 ? std::string()
                   : " in " + std::to_string(micros) + " micro-batches of " +
                         (micro_lo == micro_hi
                              ? std::to_string(micro_hi)
                              : std::to_string(micro_hi) + "/" + std::to_string(micro_lo)) +
                         " (--accumulate), each") +
      " split " + (lo == hi ? std::to_string(hi) : std::to_string(hi) + "/" + std::to_string(lo)) +
      " per rank");
  if (cfg.eval_only) {
    report.line("evaluating " + cfg.checkpoint + " on the test set");
  } else if (cfg.benchmark) {
    report.line("benchmark: " + std::to_string(cfg.warmup_steps) + " warm-up and " +
                std::to_string(cfg.steps) +
                " timed steps on synthetic images, gradient buckets of " + num(cfg.bucket_mb) +
                " MiB");
  } else {
    char text[512];
    const std::string warmup =
        cfg.warmup_epochs > 0 ? ", linear warm-up over " + num(cfg.warmup_epochs) + " epochs" : "";
    // The optimizer as the user chose it, with the settings that it reads.
    char opt[160];
    if (cfg.optimizer == "adamw")
      std::snprintf(opt, sizeof opt, "AdamW (betas %g, %g, eps %g)", cfg.adam_beta1, cfg.adam_beta2,
                    cfg.adam_eps);
    else if (cfg.optimizer == "lars")
      std::snprintf(opt, sizeof opt, "LARS (trust %g, momentum %g)", cfg.lars_trust, cfg.momentum);
    else
      std::snprintf(opt, sizeof opt, "SGD (momentum %g)", cfg.momentum);
    std::snprintf(text, sizeof text,
                  "training %d epoch%s, %s lr %g%s (%s%s), weight decay %g, seed %llu, "
                  "gradient buckets of %g MiB",
                  cfg.epochs, cfg.epochs == 1 ? "" : "s", opt, cfg.lr,
                  cfg.lr_scale_by_world ? (" x " + std::to_string(world.size())).c_str() : "",
                  cfg.lr_schedule.c_str(), warmup.c_str(), cfg.weight_decay,
                  static_cast<unsigned long long>(cfg.seed), cfg.bucket_mb);
    report.line(text);
    const ParamGroups groups = make_param_groups(m, cfg.freeze_through, cfg.lr_mults);
    if (!groups.summary.empty()) report.line("fine-tuning: " + groups.summary);
    if (!cfg.checkpoint_dir.empty())
      report.line("run " + s.run_id + ": checkpoints in " + cfg.checkpoint_dir +
                  (cfg.on_nonfinite == "skip-step" ? "; a non-finite step is skipped (at most " +
                                                         std::to_string(cfg.max_skipped_steps) + ")"
                                                   : ""));
  }
  report.json("{\"event\":\"run\",\"run_id\":\"" + s.run_id + "\",\"version\":\"" +
              std::string(DISTNET_VERSION) + "\",\"ranks\":" + std::to_string(world.size()) +
              ",\"ctx\":[" + ctx_json + "],\"parameters\":" + std::to_string(m.num_trainable()) +
              ",\"config\":\"" + json_escape(cfg.effective_ini()) + "\"}");
}

// Rank 0's string on every rank.
std::string broadcast_string(const World& world, std::string text) {
  std::uint64_t n = text.size();
  MPI_Bcast(&n, 1, MPI_UINT64_T, 0, world.comm());
  text.resize(n);
  MPI_Bcast(text.data(), int(n), MPI_CHAR, 0, world.comm());
  return text;
}

// A run whose ranks span hosts needs a --checkpoint-dir that every host sees: rank 0 writes the
// checkpoints, and a later run resumes from them on whichever host its rank 0 lands. A directory
// that is local to each node would let such a run start from scratch without a word, so it is
// refused up front: rank 0 writes a probe file there, and every rank on another host must read
// it. Runs on one host, benchmarks and evaluations skip the check.
template <typename Phase>
int check_shared_checkpoint_dir(const RunConfig& cfg, const World& world, Phase& phase) {
  if (cfg.checkpoint_dir.empty() || cfg.eval_only || cfg.benchmark || world.size() == 1)
    return kExitOk;
  const std::string root_host = broadcast_string(world, world.host());
  int other = world.host() != root_host ? 1 : 0, any_other = 0;
  MPI_Allreduce(&other, &any_other, 1, MPI_INT, MPI_MAX, world.comm());
  if (!any_other) return kExitOk;
  std::string probe;
  const std::string token = broadcast_string(world, world.is_root() ? new_run_id() : "");
  if (int c = phase([&] {
        if (!world.is_root()) return;
        ensure_writable_dir(cfg.checkpoint_dir);
        probe = write_probe(cfg.checkpoint_dir, token);
      });
      c != kExitOk)
    return c;
  probe = broadcast_string(world, probe);
  const int c = phase([&] {
    if (other && !sees_probe(probe, token, 10.0))
      throw UsageError("--checkpoint-dir " + cfg.checkpoint_dir + " is not shared: rank " +
                       std::to_string(world.rank()) + " on " + world.host() +
                       " does not see the file that rank 0 on " + root_host +
                       " wrote there; checkpoints (and --resume) need a directory that every node "
                       "mounts, on a shared filesystem");
  });
  if (world.is_root()) std::remove(probe.c_str());
  return c;
}

// What a run holds that can wait in its destructor -- for the device (the backend, pinned
// buffers of the trainer), a peer (the communicators) or a disk (the checkpoint writer). It lives
// in run(), outside the error boundary, so that on an error the abort comes first (abort.hpp).
struct Held {
  Setup s;
  std::unique_ptr<Timeline> timeline;
  std::unique_ptr<Reporter> report;
  std::unique_ptr<CheckpointWriter> writer;
  std::unique_ptr<Trainer> trainer;
};

int run_job(const RunConfig& given, const World& world, Held& held) {
  RunConfig cfg = given;
  Setup& s = held.s;
  int code = kExitOk;
  std::string message;
  // Set-up in phases, each ended by an agreement, so that no rank enters a collective that a
  // failed peer will never join: the device (local), the device check and the communicators
  // (collective), then data, model and checkpoints (local again).
  auto phase = [&](const std::function<void()>& step) {
    try {
      step();
    } catch (const UsageError& e) {
      code = kExitUsage, message = e.what();
    } catch (const std::exception& e) {
      code = kExitError, message = e.what();
    }
    return agree_on_failure(world, code, message);
  };
  // The timeline (--timeline) and NVTX ranges (--nvtx) share the spans; both are off by default.
  std::unique_ptr<Timeline>& timeline = held.timeline;
  if (!cfg.timeline.empty())
    timeline = std::make_unique<Timeline>(std::size_t(cfg.timeline_events), cfg.timeline_first,
                                          cfg.timeline_last);
  else if (cfg.nvtx)
    timeline = std::make_unique<Timeline>();
  if (int c = phase([&] {
        set_threads(world);
        s.backend = select_backend(cfg, world);
        // Before any NCCL communicator exists; a refusal is agreed on by every rank.
        if (cfg.model_parallel > 1 && !s.backend->device().is_cpu() && cfg.comm != "mpi")
          gpu::order_concurrent_communicators();
        if (cfg.nvtx) {
          Timeline::Annotator a;
          std::string why;
          if (!gpu::nvtx_functions(&a.push, &a.pop, &why)) throw UsageError("--nvtx: " + why);
          timeline->set_annotator(a);
        }
      });
      c != kExitOk)
    return c;
  if (int c = phase([&] {
        const std::string problem = check_devices(world, *s.backend);  // same on every rank
        if (!problem.empty()) throw UsageError(problem);
        make_communicators(cfg, world, s);
      });
      c != kExitOk)
    return c;
  if (cfg.eval_only) {  // the checkpoint decides the model, input size and normalisation
    std::string trained;
    if (int c = phase([&] {
          if (world.is_root()) trained = read_checkpoint_meta(cfg.checkpoint).config;
        });
        c != kExitOk)
      return c;
    trained = broadcast_string(world, trained);
    if (int c = phase([&] { adopt_trained_settings(cfg, trained, cfg.checkpoint); }); c != kExitOk)
      return c;
  }
  // An image folder is walked once, by rank 0; the other ranks get its list.
  // So is a packed directory's manifest read once; each rank then opens the shards' indexes.
  const bool packed = cfg.data.name == "packed";
  if (data::dataset_is_image_folder(cfg.data.name) && !cfg.benchmark) {
    std::string listing;
    if (int c = phase([&] {
          if (world.is_root() && packed) {
            listing = data::PackedManifest::read_text(cfg.data.dir);
          } else if (world.is_root()) {
            SlowNotice scanning(true, "listing the image folder " + cfg.data.dir);
            listing = data::scan_image_folder(cfg.data.dir).serialize();
          }
        });
        c != kExitOk)
      return c;
    listing = broadcast_string(world, std::move(listing));
    if (int c = phase([&] {
          if (packed)
            cfg.data.packed = std::make_shared<const data::PackedManifest>(
                data::PackedManifest::parse(listing, cfg.data.dir + "/" + data::kManifestName));
          else
            cfg.data.folder = std::make_shared<const data::ImageFolderList>(
                data::ImageFolderList::parse(listing, "the image list from rank 0"));
        });
        c != kExitOk)
      return c;
  }
  if (int c = check_shared_checkpoint_dir(cfg, world, phase); c != kExitOk) return c;
  if (int c = phase([&] { s = set_up(cfg, world, std::move(s)); }); c != kExitOk) return c;
  if (s.model->is_split()) {
    // Rank 0 read its shard of any checkpoint; the other ranks of group 0 read theirs from the
    // same file (the trainer then broadcasts each shard to the other groups).
    const std::string resumed = broadcast_string(world, s.resumed_path);
    if (int c = phase([&] {
          if (world.is_root() || s.grid->group() != 0) return;
          if (!cfg.init_from.empty()) load_initial_weights(cfg.init_from, *s.model);
          if (cfg.eval_only) load_checkpoint(cfg.checkpoint, *s.model, true);
          if (!resumed.empty()) load_checkpoint(resumed, *s.model, false);
        });
        c != kExitOk)
      return c;
  }

  const std::optional<TrainingState> resume = share_resume_state(world, s);
  held.report = std::make_unique<Reporter>(world.is_root(), cfg.metrics_file, cfg.progress,
                                           cfg.progress_interval);
  Reporter& report = *held.report;
  report.set_run_id(s.run_id);
  print_start(cfg, world, s, report);
  if (s.tensorboard) {
    report.line("tensorboard: " + s.tensorboard->path() + " (tensorboard --logdir " +
                cfg.tensorboard + ")");
    report.set_tensorboard(std::move(s.tensorboard));
  }
  if (s.resumed) {  // the metrics file gets a record where this run's history goes on
    report.json("{\"event\":\"resume\",\"run_id\":\"" + s.run_id +
                "\",\"step\":" + std::to_string(s.resumed->state.step) + ",\"checkpoint\":\"" +
                json_escape(s.resumed_path) + "\",\"ranks\":" + std::to_string(world.size()) + "}");
  }
  std::unique_ptr<CheckpointWriter>& writer = held.writer;
  if (world.is_root() && !cfg.checkpoint_dir.empty() && !cfg.eval_only && !cfg.benchmark)
    writer = std::make_unique<CheckpointWriter>(cfg.checkpoint_dir, cfg.keep_checkpoints, s.run_id);
  // Every rank has the same options, so all of them take part in the alignment and the write.
  if (!cfg.timeline.empty()) {
    timeline->align_clocks(world.comm());
    // A rank that aborts the job (the watchdog, a fatal error) writes its own rows first.
    timeline->write_on_abort(cfg.timeline, world.rank(), world.host());
    // On a GPU, device-side spans too: the compute stream's and the communication stream's.
    timeline->set_device_clock(s.backend->device_clock());
    s.comm->set_timeline(timeline.get());
    // The grid's activation collectives on their own rows (host side; NCCL: device side too).
    if (s.grid->hybrid()) s.grid->group_comm()->set_timeline(timeline.get());
  }
  held.trainer = std::make_unique<Trainer>(
      cfg, TrainerParts{world, *s.comm, *s.backend, *s.model, s.train ? *s.train : *s.test,
                        s.test.get(), *s.transform, report, writer.get(), s.host_comm.get(),
                        timeline.get(), s.grid.get(), s.run_id});
  Trainer& trainer = *held.trainer;
  if (s.best) trainer.set_best(*s.best);
  // Rank 0 gathers the timeline and writes it, after the run (also after a stop).
  auto write_timeline = [&] {
    if (cfg.timeline.empty()) return;
    SlowNotice notice(world.is_root(), "writing the timeline " + cfg.timeline);
    timeline->write(world.comm(), cfg.timeline, world.host());
    report.line("timeline: " + cfg.timeline + " (" + std::to_string(timeline->events()) +
                " events on rank 0" +
                (timeline->dropped() ? ", " + std::to_string(timeline->dropped()) +
                                           " older ones dropped: see --timeline-steps"
                                     : std::string()) +
                "; open it in Perfetto or chrome://tracing)");
  };
  if (cfg.eval_only) {
    const EvalResult r = trainer.evaluate();
    if (r.interrupted) {
      report.line("stopped on request during the evaluation; nothing to save");
      return kExitStopped;
    }
    char text[512], top5[32] = "";
    if (r.top5 >= 0) std::snprintf(top5, sizeof top5, ", top-5 %.4f", r.top5);
    std::snprintf(text, sizeof text, "%s: test loss %.4f, test acc %.4f%s on %lld samples",
                  cfg.checkpoint.c_str(), r.loss, r.accuracy, top5,
                  static_cast<long long>(r.samples));
    report.line(text);
    report.json("{\"event\":\"eval\",\"checkpoint\":\"" + json_escape(cfg.checkpoint) +
                "\",\"test_loss\":" + json_number(r.loss) +
                ",\"test_acc\":" + json_number(r.accuracy) +
                (r.top5 >= 0 ? ",\"test_top5\":" + json_number(r.top5) : std::string()) +
                ",\"samples\":" + std::to_string(r.samples) + "}");
    return kExitOk;
  }
  if (cfg.benchmark) {
    const bool stopped = trainer.benchmark().stopped;
    write_timeline();
    return stopped ? kExitStopped : kExitOk;
  }
  if (resume) trainer.restore(*resume);
  set_stop_saves_checkpoint(!cfg.checkpoint_dir.empty());  // what a stop message may promise
  bool stopped = false;
  try {
    stopped = trainer.fit().stopped;
  } catch (const AgreedError&) {  // every rank is here (a divergence, a failed write): the
    write_timeline();             // timeline is gathered as after a stop
    throw;
  }
  write_timeline();
  if (!report.failure().empty()) throw Error(report.failure());  // the last records
  return stopped ? kExitStopped : kExitOk;
}

// The error boundary of a run. An error that every rank knows of (AgreedError) is printed and
// each rank leaves with its code, without an abort; `held` is then destroyed as after a normal
// end (the communicators drain, finalize and are destroyed, all bounded), since every rank
// takes the same path. Any other error is this rank's alone: it is named, and
// -- before anything in `held` is destroyed, since those destructors may wait for a peer or for
// device work that waits for one -- the one abort path runs (abort.hpp, fail_job): with more
// than one rank every NCCL communicator is revoked and the job aborted (MPI_Abort); with one,
// the communicators are revoked and aborted, then `held` is freed.
int run(const RunConfig& cfg, const World& world) {
  Held held;
  try {
    return run_job(cfg, world, held);
  } catch (const AgreedError& e) {
    if (*e.what()) std::fprintf(stderr, "%salexnet: error: %s\n", prefix(world).c_str(), e.what());
    return e.code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%salexnet: error: %s\n", prefix(world).c_str(), e.what());
    std::fflush(stderr);
    fail_job(kExitError, world.size() > 1);  // returns only with one rank
    return kExitError;
  }
}

}  // namespace

int main(int argc, char** argv) {
  // After a write that failed half way (a full disk), HDF5 keeps the file it could not close,
  // and its clean-up at exit crashes on it; the operating system releases it just as well.
  H5dont_atexit();
  // Subcommands: `alexnet predict ...` classifies images with a checkpoint (no MPI).
  if (argc > 1 && std::strcmp(argv[1], "predict") == 0) return predict_main(argc - 1, argv + 1);
  RunConfig cfg;
  if (argc == 1) {  // a 10-epoch AlexNet run deserves to be asked for
    std::fprintf(stderr,
                 "usage: alexnet [options]   (mpirun -np N alexnet [options] for N ranks)\n"
                 "  e.g. alexnet --config configs/quickstart.ini\n"
                 "  alexnet predict --checkpoint FILE IMAGES... classifies images with a "
                 "trained checkpoint\n"
                 "  alexnet --help lists every option; a run with only the defaults (AlexNet on "
                 "Fashion-MNIST, 10 epochs) is alexnet --epochs 10\n");
    return kExitUsage;
  }
  try {
    cfg = parse_run_config(argc, argv);
    if (cfg.help) {
      std::cout << cfg.help_text << "\n";
      return kExitOk;
    }
    if (cfg.version) {
      print_version();
      return kExitOk;
    }
    if (cfg.print_config) {
      std::cout << cfg.effective_ini();
      return kExitOk;
    }
    if (cfg.print_shapes) {
      data::DatasetOptions d = cfg.data;
      d.image_size = cfg.resize;
      print_shapes(model_config(cfg, data::nominal_image_shape(d), data::nominal_classes(d)));
      return kExitOk;
    }
  } catch (const UsageError& e) {
    // Every rank of an mpirun sees the same bad argument: say it once, leave with 2 everywhere.
    if (launcher_rank() == 0) std::fprintf(stderr, "alexnet: error: %s\n", e.what());
    return kExitUsage;
  } catch (const Error& e) {  // --print-shapes reading a missing manifest or class folder
    if (launcher_rank() == 0) std::fprintf(stderr, "alexnet: error: %s\n", e.what());
    return kExitError;
  }

  try {
    install_stop_handlers();  // before MPI and any thread starts: they all inherit the mask
    // A file-size limit (ulimit -f) makes a write fail with EFBIG, reported as the write error it
    // is, instead of killing the process with SIGXFSZ mid-checkpoint.
    std::signal(SIGXFSZ, SIG_IGN);
    MpiSession mpi(&argc, &argv);
    World world;
    try {
      return run(cfg, world);  // its error boundary aborts, where needed, before destructors
    } catch (const std::exception& e) {
      // Thrown outside the boundary (the world's set-up): nothing is held yet that could wait.
      std::fprintf(stderr, "%salexnet: error: %s\n", prefix(world).c_str(), e.what());
      std::fflush(stderr);
      if (world.size() > 1) abort_job(kExitError);  // marked, so peers do not promise a save
      return kExitError;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "alexnet: error: %s\n", e.what());
    return kExitError;
  }
}
