#include "distnet/trainer.hpp"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <thread>

#include "core/clock.hpp"
#include "distnet/mpi_check.hpp"
#include "distnet/signals.hpp"
#include "distnet/version.hpp"

namespace distnet {

using steady::Clock;
using steady::seconds_since;

namespace {

OptimizerConfig optimizer_config(const RunConfig& c) {
  OptimizerConfig o;
  o.name = c.optimizer;
  o.momentum = c.momentum, o.weight_decay = c.weight_decay;
  o.beta1 = c.adam_beta1, o.beta2 = c.adam_beta2, o.eps = c.adam_eps;
  o.lars_trust = c.lars_trust;
  o.no_decay_bias_bn = c.no_decay_bias_bn;
  return o;
}

LrSchedule make_schedule(const RunConfig& c, std::int64_t steps_per_epoch, int world) {
  LrSchedule s;
  s.kind = parse_schedule_kind(c.lr_schedule);
  s.base_lr = c.lr * (c.lr_scale_by_world ? world : 1);
  s.milestones = c.lr_steps;
  s.gamma = c.lr_gamma;
  s.min_lr = c.lr_min;
  s.power = c.lr_poly_power;
  s.warmup_epochs = c.warmup_epochs;
  s.steps_per_epoch = steps_per_epoch;
  s.total_steps = steps_per_epoch * c.epochs;
  return s;
}

}  // namespace

Trainer::Trainer(const RunConfig& cfg, const TrainerParts& parts)
    : cfg_(cfg),
      p_(parts),
      sampler_(parts.train.size(), cfg.batch, /*shuffle=*/true, cfg.drop_last, cfg.seed),
      schedule_(make_schedule(cfg, sampler_.batches_per_epoch(), parts.world.size())),
      groups_(make_param_groups(parts.model, cfg.freeze_through, cfg.lr_mults)),
      optimizer_(parts.model, groups_, optimizer_config(cfg)),
      sync_(parts.model, parts.comm,
            GradSyncOptions{cfg.bucket_mb, cfg.overlap == "on", parse_wire(cfg.grad_compression),
                            cfg.comm == "none"},
            parts.model.is_split() ? &parts.grid->shard_comm() : nullptr) {
  DISTNET_CHECK(!parts.model.is_split() ||
                    (parts.grid && parts.grid->model_parallel() == parts.model.split().shards),
                "a split model needs the grid it was split for");
  workers_ =
      cfg.workers >= 0
          ? cfg.workers
          : std::clamp(data::LoaderOptions::default_workers() / parts.world.local_size(), 1, 4);
  tensorboard_ = !cfg.tensorboard.empty() && !cfg.benchmark && !cfg.eval_only;
  clip_ = cfg.clip_grad_norm > 0;
  stats_ = p_.backend.allocate(kStats * sizeof(double));
  p_.backend.fill_zero(stats_.data(), kStats * sizeof(double));
  if (parts.model.state_size() > 0)
    state_backup_ = p_.backend.allocate(sizeof(float) * std::size_t(parts.model.state_size()));
  broadcast_parameters();
  if (Timeline* tl = p_.timeline) {
    p_.model.set_timeline(tl);
    sync_.set_timeline(tl);
    if (p_.writer) p_.writer->set_timeline(tl);
  }
}

// Every rank initialised from the same seed already; broadcasting from rank 0 makes it a fact
// rather than an assumption (and covers parameters loaded on rank 0 only).
// A split model's ranks hold different shards: each is broadcast from group 0's rank of the
// same shard, over the same-shard ranks.
void Trainer::broadcast_parameters() {
  Model& m = p_.model;
  Communicator& c = m.is_split() ? p_.grid->shard_comm() : p_.comm;
  c.broadcast(m.param_data(), sizeof(float) * std::size_t(m.flat_size()), 0);
  c.broadcast(m.state_data(), sizeof(float) * std::size_t(m.state_size()), 0);
  for (std::size_t k = 0; k < m.slot_names().size(); ++k)
    c.broadcast(m.slot_data(k), sizeof(float) * std::size_t(m.flat_size()), 0);
}

CommBytes Trainer::bytes_sent() const {
  return p_.grid ? p_.grid->bytes_sent() : p_.comm.bytes_sent();
}

void Trainer::reset_bytes() {
  if (p_.grid)
    p_.grid->reset_bytes();
  else
    p_.comm.reset_bytes();
}

// Checkpoint names count epochs as the log does, from 1: the epoch the last step taken belongs to
// (ckpt-epoch0001-step00000469.h5 ends epoch 1 of 469 steps; ...-step00000050.h5 is within it).
std::int64_t Trainer::file_epoch() const {
  const std::int64_t spe = sampler_.batches_per_epoch();
  return (step_ + spe - 1) / spe;
}

void Trainer::restore(const TrainingState& s) {
  step_ = s.step;
  const std::int64_t spe = sampler_.batches_per_epoch();
  const std::int64_t done = step_ / spe, in_epoch = step_ % spe;
  p_.report.line(in_epoch == 0
                     ? "continuing after epoch " + std::to_string(done) + " (step " +
                           std::to_string(step_) + ") with epoch " + std::to_string(done + 1)
                     : "continuing epoch " + std::to_string(done + 1) + " at batch " +
                           std::to_string(in_epoch + 1) + " of " + std::to_string(spe) + " (step " +
                           std::to_string(step_) + ")");
  saved_step_ = s.step;
  skipped_steps_ = s.skipped_steps;
  // The running epoch's sums live on rank 0 only; the epoch-end all-reduce adds everyone's.
  const bool root = p_.world.rank() == 0;
  const double sums[2] = {root ? s.epoch_sums[0] : 0.0, root ? s.epoch_sums[1] : 0.0};
  p_.backend.upload(stats_.data(), sums, sizeof sums);
  epoch_samples_ = root ? static_cast<std::int64_t>(s.epoch_sums[2]) : 0;
  // At an epoch's end with its sums still there: a stop came during its evaluation.
  pending_epoch_end_ = step_ > 0 && in_epoch == 0 && s.epoch_sums[2] > 0;
}

void Trainer::save_checkpoint(bool borrow) {
  save(borrow, /*regular=*/true);
}

void Trainer::save_pending_best() {
  if (best_pending_) save(/*borrow=*/false, /*regular=*/false);
}

void Trainer::save(bool borrow, bool regular) {
  const std::optional<BestMark> best = std::exchange(best_pending_, std::nullopt);
  std::array<double, kBadParam + 1> local{};
  p_.backend.download(local.data(), stats_.data(), sizeof local);
  double sums[4] = {local[kLoss], local[kCorrect], double(epoch_samples_),
                    local[kBadParam] > 0 ? 1.0 : 0.0};
  host_comm().allreduce_sum(sums, 4);
  if (sums[3] > 0)
    diverged("non-finite parameters after the update of step " + std::to_string(step_), false);
  if (regular) saved_step_ = step_;  // best.h5 alone is not a point --resume auto takes
  if (!p_.writer && !p_.model.is_split()) return;
  const std::int64_t spe = sampler_.batches_per_epoch();
  CheckpointMeta meta;
  meta.distnet_version = DISTNET_VERSION;
  meta.model = p_.model.config().name;
  meta.input = p_.model.config().input;
  meta.classes = p_.model.config().classes;
  meta.world_size = p_.world.size();
  meta.global_batch = cfg_.batch;
  meta.train_samples = p_.train.size();
  meta.config = cfg_.effective_ini();
  meta.run_id = p_.run_id;
  meta.state.step = step_;
  meta.state.skipped_steps = skipped_steps_;
  meta.state.epoch = step_ / spe;
  meta.state.batch_in_epoch = step_ % spe;
  meta.state.seed = cfg_.seed;
  meta.state.learning_rate = step_ > 0 ? lr_at(schedule_, step_ - 1) : lr_at(schedule_, 0);
  meta.state.epoch_sums = {sums[0], sums[1], sums[2]};
  // The host copy is the only stall; the writer thread does the disk work.
  Timeline::Scope span(p_.timeline, Timeline::Track::compute, "checkpoint snapshot", "checkpoint");
  // After the launcher has gone (mpirun killed, the job cancelled) nothing more is written: the
  // user has been told the job ended, and a file appearing later would contradict them. (Checked
  // by rank 0 alone, after any collective of the snapshot.)
  auto submit = [&](Snapshot snap) {
    if (launcher_gone()) {
      p_.report.line("alexnet: the launcher has gone; checkpoint at step " + std::to_string(step_) +
                     " not written (those already written are kept)");
      return;
    }
    p_.writer->submit(std::move(snap), regular ? checkpoint_file_name(file_epoch(), step_) : "",
                      best);
  };
  if (p_.model.is_split()) {  // whole tensors, gathered in every group (a collective of each)
    Snapshot whole = take_whole_snapshot(p_.model, meta);
    if (p_.writer) submit(std::move(whole));
    return;
  }
  submit(take_snapshot(p_.model, meta, borrow));
}

// A stop request: every rank is at the same step boundary (the last applied step). Write the
// checkpoint and wait for it, saying what happens, since a launcher may be counting down.
void Trainer::stop_and_save(bool abandoned, const std::string& during) {
  const bool checkpoints = !cfg_.checkpoint_dir.empty();
  const std::string at = "step " + std::to_string(step_) +
                         (abandoned ? " (the step in progress was abandoned, not applied)" : "") +
                         (during.empty() ? "" : ", during " + during);
  if (!checkpoints) {
    p_.report.line("stopped on request at " + at + "; no --checkpoint-dir, nothing saved");
    return;
  }
  const auto t0 = Clock::now();
  if (saved_step_ != step_) save_checkpoint(/*borrow=*/true);  // nothing changes the model now
  finish_writes();
  char took[64];
  std::snprintf(took, sizeof took, " in %.2f s", seconds_since(t0));
  if (launcher_gone()) return;  // save_checkpoint said that nothing was written
  p_.report.line("stopped on request at " + at + "; checkpoint " +
                 checkpoint_file_name(file_epoch(), step_) + " written" + took +
                 "; resume with --resume auto");
}

bool Trainer::writer_failed() const {
  return (p_.writer && p_.writer->failed()) || !p_.report.failure().empty();
}

// Rank 0's checkpoint writer or metrics file failed: every rank stops now, at this step, with
// the checkpoints already written intact; rank 0 says why in one line.
void Trainer::check_writer(bool failed) {
  if (!failed) return;
  std::string why = p_.report.failure();
  if (p_.writer && p_.writer->failed()) {
    try {
      p_.writer->wait();
    } catch (const std::exception& e) {
      why = e.what();
    }
  }
  throw AgreedError(1, why.empty() ? why
                                   : why + "; the run stops at step " + std::to_string(step_) +
                                         ", and the checkpoints written before are kept");
}

void Trainer::finish_writes() {
  if (p_.writer) {  // rank 0 waits without throwing: the ranks learn of a failure together
    SlowNotice notice(p_.report.active(), "writing the checkpoint");
    p_.writer->idle();
  }
  double failed = writer_failed() ? 1.0 : 0.0;
  host_comm().allreduce_sum(&failed, 1);
  check_writer(failed > 0);
}

// Which tensor holds the first non-finite value, in forward order (the flat buffers hold the
// layers in backward order); the counts are summed over ranks so a split layer's piece on any
// rank is seen. Runs only after the check has fired: the host copies are no concern.
void Trainer::diverged(const std::string& what, bool check_gradient, const std::string& why) {
  Model& m = p_.model;
  const std::vector<ParamEntry>& entries = m.params();
  const std::size_t n = entries.size();
  std::vector<float> host(static_cast<std::size_t>(m.flat_size()));
  std::vector<double> bad(2 * n, 0.0);
  const float* buffers[2] = {check_gradient ? m.grad_data() : nullptr, m.param_data()};
  for (int b = 0; b < 2; ++b) {
    if (!buffers[b]) continue;
    p_.backend.download(host.data(), buffers[b], host.size() * sizeof(float));
    for (std::size_t i = 0; i < n; ++i) {
      const float* v = host.data() + entries[i].offset;
      const std::int64_t count = entries[i].spec.shape.numel();
      for (std::int64_t k = 0; k < count; ++k) bad[std::size_t(b) * n + i] += !std::isfinite(v[k]);
    }
  }
  host_comm().allreduce_sum(bad.data(), bad.size());
  // The first layer in forward order with a non-finite value, and its tensors that have one.
  std::string where;
  for (int b = 0; b < 2 && where.empty(); ++b) {
    for (std::size_t i = n; i-- > 0 && where.empty();) {
      if (bad[std::size_t(b) * n + i] == 0) continue;
      const std::string layer = entries[i].spec.name.substr(0, entries[i].spec.name.find('.'));
      std::string tensors;
      for (std::size_t j = 0; j < n; ++j)
        if (bad[std::size_t(b) * n + j] > 0 && entries[j].spec.name.rfind(layer + ".", 0) == 0)
          tensors += (tensors.empty() ? "" : ", ") + entries[j].spec.name;
      where = std::string("; the first layer with a non-finite ") +
              (b == 0 ? "gradient" : "parameter") + " is " + layer + " (" + tensors + ")";
    }
  }
  const std::int64_t spe = sampler_.batches_per_epoch();
  const std::string at = " (epoch " + std::to_string(step_ / spe + 1) + ", batch " +
                         std::to_string(step_ % spe + 1) + ")";
  std::string msg;
  if (p_.world.rank() == 0) {
    msg = what + at + why + where + "; nothing non-finite was applied or checkpointed" +
          (p_.writer ? " (the checkpoints in " + cfg_.checkpoint_dir + " are kept)" : "") +
          (cfg_.on_nonfinite == "skip-step" ? "; try a lower --lr"
                                            : "; try a lower --lr, or --on-nonfinite skip-step");
  }
  if (p_.writer) p_.writer->idle();  // an earlier, finite checkpoint being written is finished
  throw AgreedError(kExitDiverged, msg);
}

std::array<double, 3> Trainer::read_and_reset_stats() {
  std::array<double, 3> s{};
  p_.backend.download(s.data(), stats_.data(), sizeof s);
  p_.backend.fill_zero(stats_.data(), sizeof s);
  return s;
}

// Loader threads resize on the CPU; a backend that resizes itself gets raw uint8 images.
const data::ImageTransform* Trainer::loader_transform() const {
  return p_.backend.transforms_images() ? nullptr : &p_.transform;
}

const float* Trainer::device_images(const data::Batch& b) {
  Backend& be = p_.backend;
  if (!be.transforms_images()) {
    return static_cast<const float*>(
        be.stage(b.images.data(), b.images.size() * sizeof(float), stage_x_));
  }
  const auto* raw =
      static_cast<const std::uint8_t*>(be.stage(b.raw.data(), b.raw.size(), stage_raw_));
  const std::size_t bytes = sizeof(float) * std::size_t(p_.model.max_batch()) *
                            std::size_t(p_.transform.output_shape().numel());
  if (input_.bytes() < bytes) input_ = be.allocate(bytes);
  be.resize_normalize(b.size(), p_.transform.as_op(), raw, static_cast<float*>(input_.data()));
  return static_cast<const float*>(input_.data());
}

// One data-parallel SGD step on this rank's slices of a global batch: its K micro-batches
// (--accumulate; K = 1 is the whole batch at once), taken from `next` one at a time. A stop
// request that arrives during the step abandons it: the remaining layers are skipped (their
// collectives still run, so every rank stays in step), the ranks agree, and nobody applies the
// update -- the model is left exactly as it was at the last step boundary, ready to be
// checkpointed at once.
Trainer::StepOutcome Trainer::train_step(const std::function<data::Batch()>& next) {
  Backend& be = p_.backend;
  Model& m = p_.model;
  const int micros = cfg_.accumulate;
  if (cfg_.debug_delay_rank == p_.world.rank() && cfg_.debug_delay_ms > 0) {
    Timeline::Scope span(p_.timeline, Timeline::Track::compute, "debug delay", "debug");
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(cfg_.debug_delay_ms));
  }
  reset_bytes();
  // What a step changes before its update -- the loss sums and the batch-norm running
  // statistics -- is kept, so that an abandoned step leaves no trace.
  auto* stats = static_cast<double*>(stats_.data());
  be.copy(stats + kBackup, stats, 3 * sizeof(double));
  if (m.state_size() > 0)
    be.copy(state_backup_.data(), m.state_data(), sizeof(float) * std::size_t(m.state_size()));
  // --debug-fault stop-in-step:S: rank 0 sees a stop request from the middle of step S on.
  const bool stop_here = cfg_.debug_fault == RunConfig::DebugFault::stop_in_step &&
                         step_ + 1 == cfg_.debug_fault_step && p_.world.rank() == 0;
  int layers_seen = 0;
  const std::function<bool()> cancel = [&] {
    return stop_requested() || (stop_here && ++layers_seen > 2);
  };
  const std::function<bool()> cancelled = [] { return true; };
  // The last micro-batch's backward releases the buckets; the earlier ones communicate nothing
  // (as DDP's no_sync) and their gradients are summed into the model's kept buffer, which the
  // last backward adds layer by layer before a bucket that holds the layer goes out.
  const auto on_layer_done = [&](int layer) {
    if (micros > 1) m.add_kept_gradients(layer);
    sync_.on_layer_done(layer);
  };
  int n = 0;  // this rank's samples in the step
  bool complete = true;
  step_global_size_ = 0;
  for (int k = 0; k < micros; ++k) {
    const bool last = k + 1 == micros;
    if (!complete) {
      // Abandoned in an earlier micro-batch (a model whose passes are no collectives): no more
      // compute, but the last backward's collectives, as every peer issues them.
      if (last) {
        sync_.begin_step();
        for (int i = static_cast<int>(m.layers().size()) - 1; i >= 0; --i) sync_.on_layer_done(i);
      }
      continue;
    }
    const data::Batch b = next();
    step_global_size_ = b.global_size;
    const int rows = b.size();
    n += rows;
    std::optional<Timeline::Scope> stage_span;
    stage_span.emplace(p_.timeline, Timeline::Track::compute, "stage input", "stage");
    const float* x = device_images(b);
    const auto* ids = static_cast<const std::uint32_t*>(
        be.stage(b.sample_ids.data(), b.sample_ids.size() * sizeof(std::uint32_t), stage_ids_));
    const auto* labels = static_cast<const std::int32_t*>(
        be.stage(b.labels.data(), b.labels.size() * sizeof(std::int32_t), stage_labels_));
    stage_span.reset();
    // Dropout masks are keyed by (step, global sample index): the same for any K and any ranks.
    StepContext ctx{true, cfg_.seed, static_cast<std::uint32_t>(step_), ids};
    // A split model pads every rank's slice to the micro-batch's largest (the same everywhere).
    if (m.is_split()) ctx.slice_rows = int((b.micro_size + p_.world.size() - 1) / p_.world.size());
    const float* logits = m.forward(ctx, rows, x, cancel);
    // The loss is the sum over this rank's samples divided by the *global* batch, and gradients
    // are summed over micro-batches and ranks: N ranks with K micro-batches each take exactly the
    // step one process with the whole batch takes.
    if (logits)
      be.softmax_xent(rows, m.config().classes, logits, labels, 1.0f / float(b.global_size),
                      m.dlogits(), stats, static_cast<float>(cfg_.label_smoothing));
    if (last) sync_.begin_step();
    complete = m.backward(
        ctx, rows, x, last ? std::function<void(int)>(on_layer_done) : std::function<void(int)>(),
        logits ? cancel : cancelled);
    if (!complete && !last) continue;  // the next iteration issues the buckets
    if (!last) m.keep_gradients(/*first=*/k == 0);
  }
  // --debug-fault error-in-step:R:S: rank R fails alone here, its buckets in flight, the other
  // ranks waiting for them -- main's error boundary must take the job down (abort.hpp).
  if (cfg_.debug_fault == RunConfig::DebugFault::error_in_step &&
      step_ + 1 == cfg_.debug_fault_step && p_.world.rank() == cfg_.debug_fault_rank)
    throw Error("--debug-fault error-in-step: rank " + std::to_string(p_.world.rank()) +
                " fails in the middle of step " + std::to_string(step_ + 1));
  {
    Timeline::Scope span(p_.timeline, Timeline::Track::compute, "wait for buckets", "comm");
    sync_.finish();
  }
  step_rank_samples_ = n;
  step_bytes_ = bytes_sent();
  // The divergence check: the step's loss and its summed gradient (non-finite values in the
  // parameters were counted after the last update). One small read; the vote below carries it.
  std::array<double, kStats> checks{};
  {
    Timeline::Scope span(p_.timeline, Timeline::Track::compute, "finite check", "check");
    // A --tensorboard point after this step, or --clip-grad-norm (every step): the gradient's
    // norm, read with the checks.
    if (complete && (clip_ || (tensorboard_ && (step_ + 1) % cfg_.tensorboard_interval == 0)))
      queue_grad_square_sum(stats + kGradSq);
    if (cfg_.debug_fault == RunConfig::DebugFault::nonfinite &&
        step_ + 1 == cfg_.debug_fault_step && p_.world.rank() == cfg_.debug_fault_rank) {
      const float nan = std::nanf("");
      be.upload(m.grad_data() + m.params().back().offset, &nan, sizeof nan);  // the first layer's
    }
    be.fill_zero(stats + kBadGrad, sizeof(double));
    if (complete) be.count_nonfinite(m.flat_size(), m.grad_data(), stats + kBadGrad);
    be.download(checks.data(), stats, sizeof checks);
  }
  const bool bad_step = complete && (!std::isfinite(checks[kLoss]) || checks[kBadGrad] > 0);
  // The step boundary: do all ranks go on? (A signal may have reached only some of them.)
  // With --tensorboard it carries the step's loss sum, samples and squared gradient norm too;
  // with --clip-grad-norm the squared norm, every step.
  const bool point_due = complete && tensorboard_ && (step_ + 1) % cfg_.tensorboard_interval == 0;
  double vote[8] = {stop_requested() || stop_here ? 1.0 : 0.0,
                    complete ? 0.0 : 1.0,
                    bad_step ? 1.0 : 0.0,
                    checks[kBadParam] > 0 ? 1.0 : 0.0,
                    writer_failed() ? 1.0 : 0.0,
                    complete ? checks[kLoss] - checks[kBackup + kLoss] : 0.0,
                    double(step_rank_samples_),
                    point_due || (complete && clip_) ? checks[kGradSq] : 0.0};
  {
    Timeline::Scope span(p_.timeline, Timeline::Track::compute, "stop vote", "comm");
    const auto v0 = Clock::now();
    host_comm().allreduce_sum(vote, tensorboard_ || clip_ ? 8 : 5);
    vote_s_ += seconds_since(v0);
  }
  step_loss_ = vote[5], step_samples_ = vote[6], step_grad_sq_ = vote[7];
  check_writer(vote[4] > 0);
  if (vote[3] > 0)  // parameters that are already non-finite: nothing to skip
    diverged("non-finite parameters after the update of step " + std::to_string(step_), false);
  if (vote[1] > 0 || vote[2] > 0) {
    be.copy(stats, stats + kBackup, 3 * sizeof(double));
    if (m.state_size() > 0)
      be.copy(m.state_data(), state_backup_.data(), sizeof(float) * std::size_t(m.state_size()));
  }
  if (vote[1] > 0) return StepOutcome::abandoned;
  if (vote[2] > 0) {
    const std::string what = "non-finite " +
                             std::string(std::isfinite(checks[kLoss]) ? "gradient" : "loss") +
                             " at step " + std::to_string(step_ + 1);
    if (cfg_.on_nonfinite != "skip-step" || skipped_steps_ >= cfg_.max_skipped_steps) {
      diverged(what, true,
               cfg_.on_nonfinite == "skip-step" ? ", after " + std::to_string(skipped_steps_) +
                                                      " skipped steps (--max-skipped-steps " +
                                                      std::to_string(cfg_.max_skipped_steps) + ")"
                                                : std::string());
    }
    ++skipped_steps_;
    ++step_;  // the batch is passed over; the schedule and the sampler move on
    p_.report.line("warning: " + what + ": step skipped, nothing applied (" +
                   std::to_string(skipped_steps_) + " of at most " +
                   std::to_string(cfg_.max_skipped_steps) + " skipped steps)");
    return StepOutcome::skipped;  // a stop request is taken at the next step's vote
  }
  {
    Timeline::Scope span(p_.timeline, Timeline::Track::compute, "optimizer", "optimizer");
    LayerTimes* profile = m.profiling();  // the benchmark's synchronised passes
    if (profile) be.synchronize();
    const auto t0 = Clock::now();
    // --clip-grad-norm: the summed gradient, whose norm over all ranks came with the vote,
    // scaled as PyTorch's clip_grad_norm_ scales it (the same factor on every rank).
    if (clip_) {
      const double coef = clip_coefficient(std::sqrt(step_grad_sq_), cfg_.clip_grad_norm);
      if (coef < 1.0) {
        be.scale(m.flat_size(), static_cast<float>(coef), m.grad_data());
        ++clipped_steps_;
      }
    }
    // The update's number counts applied steps only (skipped ones changed nothing).
    optimizer_.step(lr_at(schedule_, step_), step_ - skipped_steps_ + 1);
    if (profile) {
      be.synchronize();
      profile->optimizer_ms = 1000.0 * seconds_since(t0);
    }
    // Queued, not read: the next vote, checkpoint or epoch end reads it.
    be.fill_zero(stats + kBadParam, sizeof(double));
    be.count_nonfinite(m.flat_size(), m.param_data(), stats + kBadParam);
  }
  ++step_;
  return vote[0] > 0 ? StepOutcome::stop : StepOutcome::applied;
}

// The end of an epoch: evaluation, the epoch's line and metrics, the time-to-accuracy check.
// The running sums are kept until the evaluation has ended: a stop request during it saves them
// with the checkpoint, and the resumed run ends the epoch again (timing null: not measured).
// Returns true when fit() should return (stopped, or the target reached).
bool Trainer::end_epoch(int epoch, const EpochTiming* timing, FitResult& result,
                        Clock::time_point fit_start) {
  const bool checkpoints = !cfg_.checkpoint_dir.empty();
  // Loss and accuracy accumulated on the fly over the epoch (as the notebooks report them),
  // summed over ranks.
  std::array<double, kBadParam + 1> s{};
  p_.backend.download(s.data(), stats_.data(), sizeof s);
  const data::Dataset::BadSamples bad = p_.train.take_bad_samples(epoch);
  double sums[5] = {s[kLoss], s[kCorrect], double(epoch_samples_), double(bad.count),
                    s[kBadParam] > 0 ? 1.0 : 0.0};
  host_comm().allreduce_sum(sums, 5);
  if (sums[4] > 0)
    diverged("non-finite parameters after the update of step " + std::to_string(step_), false);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EpochMetrics em;
  em.epoch = epoch + 1;
  em.step = step_;
  em.samples = static_cast<std::int64_t>(sums[2]);
  em.steps = sampler_.batches_per_epoch();
  em.loss = sums[0] / sums[2];
  em.train_acc = sums[1] / sums[2];
  em.time_s = timing ? timing->train_s : nan;
  em.examples_per_s = timing ? double(timing->global_samples) / timing->train_s : nan;
  em.lr = lr_at(schedule_, step_ - 1);
  em.data_wait_s = timing ? timing->data_wait_s : nan;
  em.comm_s = timing ? timing->comm_s : nan;
  em.exchange_s = timing ? timing->exchange_s : nan;
  em.clipped_steps = clip_ ? clipped_steps_ : -1;
  if (p_.test) {
    Timeline::Scope span(p_.timeline, Timeline::Track::compute, "evaluate", "eval");
    const EvalResult ev = evaluate();
    if (ev.interrupted) {
      stop_and_save(false, "the evaluation of epoch " + std::to_string(em.epoch) +
                               " (it is done again on resume)");
      result.stopped = true;
      return true;
    }
    em.test_loss = ev.loss;
    em.test_acc = ev.accuracy;
    em.test_top5 = ev.top5;
  }
  p_.backend.fill_zero(stats_.data(), 3 * sizeof(double));
  epoch_samples_ = 0;
  clipped_steps_ = 0;
  pending_epoch_end_ = false;
  p_.report.epoch(em, p_.world.size(), p_.backend.device().str());
  report_bad_samples("epoch " + std::to_string(em.epoch) + " (training)", bad, sums[3]);
  if (timing)
    report_stragglers("epoch " + std::to_string(em.epoch), em.epoch, timing->train_s,
                      em.comm_s + timing->vote_s + em.exchange_s, em.data_wait_s);
  if (p_.timeline) p_.timeline->counter("epoch loss", Timeline::now_us(), em.loss);
  result.history.push_back(em);
  consider_best(em);
  if (cfg_.target_accuracy > 0 && p_.test && em.test_acc >= cfg_.target_accuracy) {
    result.target_reached = true;
    result.wall_s = seconds_since(fit_start);
    p_.report.target(cfg_.target_accuracy, true, em.epoch, result.wall_s, em.test_acc,
                     p_.world.size());
    if (checkpoints && saved_step_ != step_) save_checkpoint();
    save_pending_best();
    finish_writes();
    return true;
  }
  return false;
}

FitResult Trainer::fit() {
  FitResult result;
  const auto fit_start = Clock::now();
  const std::int64_t steps_per_epoch = sampler_.batches_per_epoch();
  const bool checkpoints = !cfg_.checkpoint_dir.empty();
  data::LoaderOptions lo;
  lo.rank = p_.world.rank(), lo.world = p_.world.size(), lo.workers = workers_;
  lo.timeline = p_.timeline;
  lo.micros = cfg_.accumulate;
  data::Loader loader(p_.train, sampler_, loader_transform(), lo, step_ / steps_per_epoch,
                      step_ % steps_per_epoch);
  // Resumed from a stop during an evaluation: that epoch ends first.
  if (pending_epoch_end_) {
    if (end_epoch(int(step_ / steps_per_epoch) - 1, nullptr, result, fit_start)) return result;
    save_pending_best();  // its checkpoint exists already
  }
  point_ = PointSums{};
  point_.wait0_s = loader.wait_seconds();

  for (int epoch = int(step_ / steps_per_epoch); epoch < cfg_.epochs; ++epoch) {
    const auto t0 = Clock::now();
    const double wait0 = loader.wait_seconds(), comm0 = sync_.comm_seconds(), vote0 = vote_s_;
    const double exchange0 = exchange_seconds();
    std::int64_t global_samples = 0;
    const std::int64_t first_batch = step_ % steps_per_epoch;
    progress_pending_ = false;  // a read started in the last epoch is stale
    for (std::int64_t b = step_ % steps_per_epoch; b < steps_per_epoch; ++b) {
      Timeline* tl = p_.timeline;
      if (tl) tl->set_step(step_);
      const double step_start = Timeline::now_us();
      std::optional<Timeline::Scope> step_span;
      if (tl) step_span.emplace(tl, Timeline::Track::compute, "step ", step_, "step");
      const auto step_t0 = Clock::now();
      const auto next = [&] {  // each micro-batch of the step (--accumulate)
        const double wait_start = Timeline::now_us();
        data::Batch batch = loader.next();
        if (tl)
          tl->span(Timeline::Track::compute, "data wait", "data", wait_start, Timeline::now_us());
        return batch;
      };
      std::optional<SlowNotice> first;  // the first step also chooses algorithms and plans
      if (!first_step_done_)
        first.emplace(p_.report.active(), p_.backend.device().is_cuda()
                                              ? "first step (cuDNN chooses convolution algorithms)"
                                              : "first step (oneDNN builds its kernels)");
      const StepOutcome outcome = train_step(next);
      first.reset();
      first_step_done_ = true;
      step_span.reset();
      if (tl && tl->recording()) {
        const double now = Timeline::now_us();
        tl->counter("images/s", now, double(step_global_size_) * 1e6 / (now - step_start));
        tl->counter("loader queue", now, double(loader.queued()));
      }
      if (outcome == StepOutcome::applied || outcome == StepOutcome::stop) {
        epoch_samples_ += step_rank_samples_;
        global_samples += step_global_size_;
        if (tensorboard_) add_to_point(seconds_since(step_t0), loader.wait_seconds());
        if (b + 1 == steps_per_epoch && p_.report.active()) {
          // The epoch's end reads the sums anyway: the bar's last state, at once.
          std::array<double, 2> st{};
          p_.backend.download(st.data(), stats_.data(), sizeof st);
          const double n = double(std::max<std::int64_t>(1, epoch_samples_));
          p_.report.progress(epoch + 1, b + 1, steps_per_epoch, st[0] / n, st[1] / n,
                             double(global_samples) / seconds_since(t0), 0.0);
        } else if (p_.report.progress_due()) {
          report_progress({epoch, b, steps_per_epoch, first_batch, global_samples, epoch_samples_,
                           seconds_since(t0)});
        }
      }
      if (outcome == StepOutcome::stop || outcome == StepOutcome::abandoned) {
        stop_and_save(outcome == StepOutcome::abandoned);
        result.stopped = true;
        return result;
      }
      if (checkpoints && cfg_.checkpoint_every_steps > 0 &&
          step_ % cfg_.checkpoint_every_steps == 0)
        save_checkpoint();
    }
    EpochTiming timing;
    timing.train_s = seconds_since(t0);
    timing.global_samples = global_samples;
    timing.data_wait_s = loader.wait_seconds() - wait0;
    timing.comm_s = sync_.comm_seconds() - comm0;
    timing.exchange_s = exchange_seconds() - exchange0;
    timing.vote_s = vote_s_ - vote0;
    if (end_epoch(epoch, &timing, result, fit_start)) return result;
    // The last epoch's checkpoint is written here rather than after the loop, so that it
    // carries a new best (one snapshot for both files).
    const bool last = epoch + 1 == cfg_.epochs;
    if (checkpoints &&
        ((cfg_.checkpoint_every_epochs > 0 && (epoch + 1) % cfg_.checkpoint_every_epochs == 0) ||
         (last && saved_step_ != step_)))
      save_checkpoint();
    save_pending_best();  // a new best at an epoch without a checkpoint: best.h5 alone
  }
  if (checkpoints && saved_step_ != step_) save_checkpoint();  // always one at the end
  finish_writes();
  result.wall_s = seconds_since(fit_start);
  if (cfg_.target_accuracy > 0) {
    p_.report.target(cfg_.target_accuracy, false, int(result.history.size()), result.wall_s,
                     result.history.empty() ? 0.0 : result.history.back().test_acc,
                     p_.world.size());
  }
  return result;
}

void Trainer::queue_grad_square_sum(double* acc) {
  Backend& be = p_.backend;
  const Model& m = p_.model;
  be.fill_zero(acc, sizeof(double));
  // Every rank holds the whole summed gradient (rank 0 counts it), except with a split model:
  // there each rank of a group holds its piece of a split tensor (group 0's ranks count theirs)
  // and the whole of the others (rank 0 counts those). Tensors the optimizer leaves as they are
  // (frozen, --lr-mult 0) are not counted, as PyTorch leaves out parameters without a gradient.
  const bool split = m.is_split();
  if (split ? p_.grid->group() != 0 : p_.world.rank() != 0) return;
  auto frozen = [&](const ParamEntry& e) {
    for (const UpdateRange& r : groups_.ranges)
      if (e.offset >= r.offset && e.offset < r.offset + r.count) return r.lr_factor == 0.0;
    return false;
  };
  for (const ParamEntry& e : m.params())
    if ((p_.world.rank() == 0 || (split && e.spec.is_piece())) && !frozen(e))
      be.sum_squares(e.spec.shape.numel(), m.grad_data() + e.offset, acc);
}

void Trainer::add_to_point(double step_s, double wait_s) {
  point_.loss += step_loss_;
  point_.samples += step_samples_;
  point_.time_s += step_s;
  ++point_.steps;
  if (step_ % cfg_.tensorboard_interval != 0) return;
  TrainPoint p;
  p.step = step_;
  p.loss = point_.loss / std::max(1.0, point_.samples);
  p.lr = lr_at(schedule_, step_ - 1);
  p.images_per_s = point_.samples / point_.time_s;
  p.data_wait_ms = 1000.0 * (wait_s - point_.wait0_s) / double(point_.steps);
  p.grad_norm = std::sqrt(step_grad_sq_);
  p_.report.train_point(p);
  point_ = PointSums{};
  point_.wait0_s = wait_s;
}

// Rank 0 decides, since only it knows the best of an earlier process of the run; all ranks learn
// the verdict, as the save that follows is a collective.
void Trainer::consider_best(const EpochMetrics& em) {
  const std::string& metric = cfg_.keep_best;
  if (metric.empty() || cfg_.checkpoint_dir.empty()) return;
  const double v = metric == "train_loss"  ? em.loss
                   : metric == "train_acc" ? em.train_acc
                   : metric == "test_loss" ? em.test_loss
                   : metric == "test_acc"  ? em.test_acc
                                           : em.test_top5;
  const bool higher = best_metric_higher_is_better(metric);
  double better = 0;
  if (p_.world.rank() == 0 && std::isfinite(v))
    better = !best_ || (higher ? v > best_->value : v < best_->value) ? 1.0 : 0.0;
  host_comm().allreduce_sum(&better, 1);
  if (better == 0) return;
  best_pending_ = BestMark{metric, v, em.epoch};
  if (p_.world.rank() != 0) return;
  char text[96];
  std::snprintf(text, sizeof text, "epoch %d is the best so far by %s (%.6g", em.epoch,
                metric.c_str(), v);
  std::string line = text;
  if (best_) {
    std::snprintf(text, sizeof text, "; before: %.6g at epoch %lld", best_->value,
                  static_cast<long long>(best_->epoch));
    line += text;
  }
  p_.report.line(line + "): " + cfg_.checkpoint_dir + "/" + kBestCheckpointName);
  p_.report.json("{\"event\":\"best\",\"epoch\":" + std::to_string(em.epoch) +
                 ",\"step\":" + std::to_string(step_) + ",\"metric\":\"" + metric +
                 "\",\"value\":" + json_number(v) + "}");
  best_ = best_pending_;
}

}  // namespace distnet
