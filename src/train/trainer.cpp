#include "distnet/trainer.hpp"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <thread>

#include "distnet/mpi_check.hpp"
#include "distnet/signals.hpp"
#include "distnet/version.hpp"

namespace distnet {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

LrSchedule make_schedule(const RunConfig& c, std::int64_t steps_per_epoch, int world) {
  LrSchedule s;
  s.kind = parse_schedule_kind(c.lr_schedule);
  s.base_lr = c.lr * (c.lr_scale_by_world ? world : 1);
  s.milestones = c.lr_steps;
  s.gamma = c.lr_gamma;
  s.min_lr = c.lr_min;
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
  // Loss sum and correct count of the running epoch, and their copy from the step's start.
  stats_ = p_.backend.allocate(4 * sizeof(double));
  p_.backend.fill_zero(stats_.data(), 4 * sizeof(double));
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
  c.broadcast(m.momentum_data(), sizeof(float) * std::size_t(m.flat_size()), 0);
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
  // The running epoch's sums live on rank 0 only; the epoch-end all-reduce adds everyone's.
  const bool root = p_.world.rank() == 0;
  const double sums[2] = {root ? s.epoch_sums[0] : 0.0, root ? s.epoch_sums[1] : 0.0};
  p_.backend.upload(stats_.data(), sums, sizeof sums);
  epoch_samples_ = root ? static_cast<std::int64_t>(s.epoch_sums[2]) : 0;
}

void Trainer::save_checkpoint(bool borrow) {
  std::array<double, 2> local{};
  p_.backend.download(local.data(), stats_.data(), sizeof local);
  double sums[3] = {local[0], local[1], double(epoch_samples_)};
  host_comm().allreduce_sum(sums, 3);
  saved_step_ = step_;
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
  meta.state.step = step_;
  meta.state.epoch = step_ / spe;
  meta.state.batch_in_epoch = step_ % spe;
  meta.state.seed = cfg_.seed;
  meta.state.learning_rate = step_ > 0 ? lr_at(schedule_, step_ - 1) : lr_at(schedule_, 0);
  meta.state.epoch_sums = {sums[0], sums[1], sums[2]};
  // The host copy is the only stall; the writer thread does the disk work.
  Timeline::Scope span(p_.timeline, Timeline::Track::compute, "checkpoint snapshot", "checkpoint");
  if (p_.model.is_split()) {  // whole tensors, gathered in every group (a collective of each)
    Snapshot whole = take_whole_snapshot(p_.model, meta);
    if (p_.writer) p_.writer->submit(std::move(whole), checkpoint_file_name(file_epoch(), step_));
    return;
  }
  p_.writer->submit(take_snapshot(p_.model, meta, borrow),
                    checkpoint_file_name(file_epoch(), step_));
}

// A stop request: every rank is at the same step boundary (the last applied step). Write the
// checkpoint and wait for it, saying what happens, since a launcher may be counting down.
void Trainer::stop_and_save(bool abandoned) {
  const bool checkpoints = !cfg_.checkpoint_dir.empty();
  const std::string at = "step " + std::to_string(step_) +
                         (abandoned ? " (the step in progress was abandoned, not applied)" : "");
  if (!checkpoints) {
    p_.report.line("stopped on request at " + at + "; no --checkpoint-dir, nothing saved");
    return;
  }
  const auto t0 = Clock::now();
  if (saved_step_ != step_) save_checkpoint(/*borrow=*/true);  // nothing changes the model now
  wait_for_writer();
  char took[64];
  std::snprintf(took, sizeof took, " in %.2f s", seconds_since(t0));
  p_.report.line("stopped on request at " + at + "; checkpoint " +
                 checkpoint_file_name(file_epoch(), step_) + " written" + took +
                 "; resume with --resume auto");
}

// Progress figures live on the device; reading them must not stall it. A copy is started when a
// progress line is due and printed once it has arrived (at once on the CPU; on a GPU normally at
// the next step), with the step, sample count and time from when it was started.
void Trainer::report_progress(const ProgressPoint& at) {
  if (!progress_read_) progress_read_ = p_.backend.make_async_read(2 * sizeof(double));
  if (!progress_pending_) {
    progress_read_->start(stats_.data());
    progress_at_ = at;
    progress_pending_ = true;
  }
  if (!progress_read_->ready()) return;
  progress_pending_ = false;
  const auto* sums = static_cast<const double*>(progress_read_->data());
  const ProgressPoint& p = progress_at_;
  const double n = double(std::max<std::int64_t>(1, p.epoch_samples));
  const double done = double(p.batch + 1 - p.first_batch);
  p_.report.progress(p.epoch + 1, p.batch + 1, p.steps, sums[0] / n, sums[1] / n,
                     double(p.global_samples) / p.elapsed_s,
                     p.elapsed_s * double(p.steps - p.batch - 1) / done);
}

// Training epochs only (the benchmark prints its own step split): the largest share of a rank's
// epoch spent blocked in Loader::next, as a line when it reaches kDataWaitShareReported (the
// loader does not keep up; docs/input-throughput.md says what to do) and always as JSON.
void Trainer::report_data_wait(const std::string& label, int epoch,
                               const std::vector<double>& train_s,
                               const std::vector<double>& data_s) {
  if (!p_.world.is_root()) return;
  std::size_t worst = 0;
  auto share = [&](std::size_t r) { return train_s[r] > 0 ? data_s[r] / train_s[r] : 0.0; };
  for (std::size_t r = 1; r < data_s.size(); ++r)
    if (share(r) > share(worst)) worst = r;
  const double f = share(worst);
  p_.report.json("{\"event\":\"data_wait\",\"epoch\":" + std::to_string(epoch) +
                 ",\"fraction\":" + std::to_string(f) + ",\"rank\":" + std::to_string(worst) +
                 ",\"data_wait_s\":" + std::to_string(data_s[worst]) +
                 ",\"time_s\":" + std::to_string(train_s[worst]) + "}");
  if (f < kDataWaitShareReported) return;
  char text[320];
  std::snprintf(text, sizeof text,
                "input wait in %s: %.0f%% of the training time (rank %d: %.2f s of %.2f s) was "
                "spent waiting for data; the loader does not keep up (more --workers, packed "
                "shards, faster storage: docs/input-throughput.md)",
                label.c_str(), 100.0 * f, int(worst), data_s[worst], train_s[worst]);
  p_.report.line(text);
}

// Where each rank's epoch went: compute (the rest), waiting in collectives (the time the slowest
// peer made it wait, plus the transfers themselves) and waiting for data. Rank 0 gathers the
// three figures, prints their range, and names the slowest rank when its compute time exceeds
// the median by more than --straggler-threshold: the others' collective waits are its doing.
double Trainer::exchange_seconds() const {
  Communicator* group = p_.grid ? p_.grid->group_comm() : nullptr;
  return group ? group->exchange_seconds() : 0.0;
}

void Trainer::report_stragglers(const std::string& label, int epoch, double train_s,
                                double collectives_s, double data_s) {
  const int n = p_.world.size();
  if (n < 2) {
    if (epoch > 0) report_data_wait(label, epoch, {train_s}, {data_s});
    return;
  }
  struct Record {
    double figures[3];
    char host[64];
  } mine{};
  mine.figures[0] = train_s - collectives_s - data_s;
  mine.figures[1] = collectives_s;
  mine.figures[2] = data_s;
  std::snprintf(mine.host, sizeof mine.host, "%s", p_.world.host().c_str());
  std::vector<Record> records(p_.world.is_root() ? std::size_t(n) : 0);
  DISTNET_CHECK_MPI(MPI_Gather(&mine, sizeof mine, MPI_BYTE, records.data(), sizeof mine, MPI_BYTE,
                               0, p_.world.comm()));
  if (!p_.world.is_root()) return;
  std::vector<double> all;
  for (const Record& r : records) all.insert(all.end(), r.figures, r.figures + 3);
  auto column = [&](int k) {
    std::vector<double> v(static_cast<std::size_t>(n));
    for (int r = 0; r < n; ++r) v[std::size_t(r)] = all[3 * std::size_t(r) + std::size_t(k)];
    return v;
  };
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t m = v.size() / 2;
    return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
  };
  auto range = [](const std::vector<double>& v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f-%.2f s", *std::min_element(v.begin(), v.end()),
                  *std::max_element(v.begin(), v.end()));
    return std::string(buf);
  };
  const auto compute = column(0), waits = column(1), data = column(2);
  if (epoch > 0) {
    std::vector<double> totals(static_cast<std::size_t>(n));
    for (int r = 0; r < n; ++r)
      totals[std::size_t(r)] =
          all[3 * std::size_t(r)] + waits[std::size_t(r)] + data[std::size_t(r)];
    report_data_wait(label, epoch, totals, data);
  }
  const double mid = median(compute);
  const auto slowest = std::max_element(compute.begin(), compute.end()) - compute.begin();
  const double spread = mid > 0 ? compute[std::size_t(slowest)] / mid - 1.0 : 0.0;
  char text[256];
  std::snprintf(text, sizeof text,
                "ranks in %s: compute %s (median %.2f s), waiting in collectives %s, data wait %s",
                label.c_str(), range(compute).c_str(), mid, range(waits).c_str(),
                range(data).c_str());
  p_.report.line(text);
  std::string per_rank;
  for (int r = 0; r < n; ++r) {
    char one[160];
    std::snprintf(one, sizeof one,
                  "%s{\"rank\":%d,\"compute_s\":%.4f,\"collectives_s\":%.4f,"
                  "\"data_wait_s\":%.4f}",
                  r ? "," : "", r, compute[std::size_t(r)], waits[std::size_t(r)],
                  data[std::size_t(r)]);
    per_rank += one;
  }
  if (spread > cfg_.straggler_threshold) {
    std::snprintf(text, sizeof text,
                  "straggler: rank %d (host %s) computed %.2f s, %.0f%% above the median; the "
                  "other ranks waited for it in collectives",
                  int(slowest), records[std::size_t(slowest)].host, compute[std::size_t(slowest)],
                  100.0 * spread);
    p_.report.line(text);
  }
  p_.report.json("{\"event\":\"ranks\",\"epoch\":" + std::to_string(epoch) +
                 ",\"straggler_spread\":" + std::to_string(spread) +
                 ",\"slowest_rank\":" + std::to_string(slowest) + ",\"ranks\":[" + per_rank + "]}");
}

void Trainer::wait_for_writer() {
  if (!p_.writer) return;
  SlowNotice notice(p_.report.active(), "writing the checkpoint");
  p_.writer->wait();
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

// One data-parallel SGD step on this rank's slice of a global batch. A stop request that arrives
// during the step abandons it: the remaining layers are skipped (their collectives still run, so
// every rank stays in step), the ranks agree, and nobody applies the update -- the model is left
// exactly as it was at the last step boundary, ready to be checkpointed at once.
Trainer::StepOutcome Trainer::train_step(const data::Batch& b) {
  Backend& be = p_.backend;
  Model& m = p_.model;
  const int n = b.size();
  if (cfg_.debug_delay_rank == p_.world.rank() && cfg_.debug_delay_ms > 0) {
    Timeline::Scope span(p_.timeline, Timeline::Track::compute, "debug delay", "debug");
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(cfg_.debug_delay_ms));
  }
  std::optional<Timeline::Scope> stage_span;
  stage_span.emplace(p_.timeline, Timeline::Track::compute, "stage input", "stage");
  const float* x = device_images(b);
  const auto* ids = static_cast<const std::uint32_t*>(
      be.stage(b.sample_ids.data(), b.sample_ids.size() * sizeof(std::uint32_t), stage_ids_));
  const auto* labels = static_cast<const std::int32_t*>(
      be.stage(b.labels.data(), b.labels.size() * sizeof(std::int32_t), stage_labels_));
  stage_span.reset();
  StepContext ctx{true, cfg_.seed, static_cast<std::uint32_t>(step_), ids};
  // A split model pads every rank's slice to the step's largest one (the same on every rank).
  if (m.is_split()) ctx.slice_rows = int((b.global_size + p_.world.size() - 1) / p_.world.size());
  reset_bytes();
  // What a step changes before its update -- the loss sums and the batch-norm running
  // statistics -- is kept, so that an abandoned step leaves no trace.
  auto* stats = static_cast<double*>(stats_.data());
  be.copy(stats + 2, stats, 2 * sizeof(double));
  if (m.state_size() > 0)
    be.copy(state_backup_.data(), m.state_data(), sizeof(float) * std::size_t(m.state_size()));
  const std::function<bool()> cancel = [] { return stop_requested(); };
  const std::function<bool()> cancelled = [] { return true; };

  const float* logits = m.forward(ctx, n, x, cancel);
  // The loss is the sum over this rank's samples divided by the *global* batch, and gradients
  // are summed over ranks: N ranks take exactly the step one process with the whole batch takes.
  if (logits)
    be.softmax_xent(n, m.config().classes, logits, labels, 1.0f / float(b.global_size), m.dlogits(),
                    stats);
  sync_.begin_step();
  const bool complete = m.backward(
      ctx, n, x, [this](int layer) { sync_.on_layer_done(layer); }, logits ? cancel : cancelled);
  {
    Timeline::Scope span(p_.timeline, Timeline::Track::compute, "wait for buckets", "comm");
    sync_.finish();
  }
  step_bytes_ = bytes_sent();
  // The step boundary: do all ranks go on? (A signal may have reached only some of them.)
  double vote[2] = {stop_requested() ? 1.0 : 0.0, complete ? 0.0 : 1.0};
  {
    Timeline::Scope span(p_.timeline, Timeline::Track::compute, "stop vote", "comm");
    const auto v0 = Clock::now();
    host_comm().allreduce_sum(vote, 2);
    vote_s_ += seconds_since(v0);
  }
  if (vote[1] > 0) {
    be.copy(stats, stats + 2, 2 * sizeof(double));
    if (m.state_size() > 0)
      be.copy(m.state_data(), state_backup_.data(), sizeof(float) * std::size_t(m.state_size()));
    return StepOutcome::abandoned;
  }
  const SgdParams sgd{static_cast<float>(lr_at(schedule_, step_)),
                      static_cast<float>(cfg_.momentum), static_cast<float>(cfg_.weight_decay)};
  {
    Timeline::Scope span(p_.timeline, Timeline::Track::compute, "optimizer", "optimizer");
    LayerTimes* profile = m.profiling();  // the benchmark's synchronised passes
    if (profile) be.synchronize();
    const auto t0 = Clock::now();
    be.sgd_update(m.flat_size(), m.param_data(), m.grad_data(), m.momentum_data(), sgd);
    if (profile) {
      be.synchronize();
      profile->optimizer_ms = 1000.0 * seconds_since(t0);
    }
  }
  ++step_;
  return vote[0] > 0 ? StepOutcome::stop : StepOutcome::applied;
}

FitResult Trainer::fit() {
  FitResult result;
  const auto fit_start = Clock::now();
  const std::int64_t steps_per_epoch = sampler_.batches_per_epoch();
  const bool checkpoints = !cfg_.checkpoint_dir.empty();
  data::LoaderOptions lo;
  lo.rank = p_.world.rank(), lo.world = p_.world.size(), lo.workers = workers_;
  lo.timeline = p_.timeline;
  data::Loader loader(p_.train, sampler_, loader_transform(), lo, step_ / steps_per_epoch,
                      step_ % steps_per_epoch);

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
      const double wait_start = Timeline::now_us();
      const data::Batch batch = loader.next();
      if (tl)
        tl->span(Timeline::Track::compute, "data wait", "data", wait_start, Timeline::now_us());
      std::optional<SlowNotice> first;  // the first step also chooses algorithms and plans
      if (!first_step_done_)
        first.emplace(p_.report.active(), p_.backend.device().is_cuda()
                                              ? "first step (cuDNN chooses convolution algorithms)"
                                              : "first step (oneDNN builds its kernels)");
      const StepOutcome outcome = train_step(batch);
      first.reset();
      first_step_done_ = true;
      step_span.reset();
      if (tl && tl->recording()) {
        const double now = Timeline::now_us();
        tl->counter("images/s", now, double(batch.global_size) * 1e6 / (now - step_start));
        tl->counter("loader queue", now, double(loader.queued()));
      }
      if (outcome != StepOutcome::abandoned) {
        epoch_samples_ += batch.size();
        global_samples += batch.global_size;
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
      if (outcome != StepOutcome::applied) {
        stop_and_save(outcome == StepOutcome::abandoned);
        result.stopped = true;
        return result;
      }
      if (checkpoints && cfg_.checkpoint_every_steps > 0 &&
          step_ % cfg_.checkpoint_every_steps == 0)
        save_checkpoint();
    }
    // Loss and accuracy accumulated on the fly over the epoch (as the notebooks report them),
    // summed over ranks.
    const auto s = read_and_reset_stats();
    const data::Dataset::BadSamples bad = p_.train.take_bad_samples(epoch);
    double sums[4] = {s[0], s[1], double(epoch_samples_), double(bad.count)};
    epoch_samples_ = 0;
    host_comm().allreduce_sum(sums, 4);
    const double train_time = seconds_since(t0);

    EpochMetrics em;
    em.epoch = epoch + 1;
    em.samples = static_cast<std::int64_t>(sums[2]);
    em.steps = steps_per_epoch;
    em.loss = sums[0] / sums[2];
    em.train_acc = sums[1] / sums[2];
    em.time_s = train_time;
    em.examples_per_s = double(global_samples) / train_time;
    em.lr = lr_at(schedule_, step_ - 1);
    em.data_wait_s = loader.wait_seconds() - wait0;
    em.comm_s = sync_.comm_seconds() - comm0;
    em.exchange_s = exchange_seconds() - exchange0;
    if (p_.test) {
      Timeline::Scope span(p_.timeline, Timeline::Track::compute, "evaluate", "eval");
      const EvalResult ev = evaluate();
      em.test_loss = ev.loss;
      em.test_acc = ev.accuracy;
      em.test_top5 = ev.top5;
    }
    p_.report.epoch(em, p_.world.size(), p_.backend.device().str());
    report_bad_samples("epoch " + std::to_string(em.epoch) + " (training)", bad, sums[3]);
    report_stragglers("epoch " + std::to_string(em.epoch), em.epoch, train_time,
                      em.comm_s + (vote_s_ - vote0) + em.exchange_s, em.data_wait_s);
    if (p_.timeline) p_.timeline->counter("epoch loss", Timeline::now_us(), em.loss);
    result.history.push_back(em);
    if (cfg_.target_accuracy > 0 && p_.test && em.test_acc >= cfg_.target_accuracy) {
      result.target_reached = true;
      result.wall_s = seconds_since(fit_start);
      p_.report.target(cfg_.target_accuracy, true, em.epoch, result.wall_s, em.test_acc,
                       p_.world.size());
      if (checkpoints && saved_step_ != step_) save_checkpoint();
      wait_for_writer();
      return result;
    }
    if (checkpoints && cfg_.checkpoint_every_epochs > 0 &&
        (epoch + 1) % cfg_.checkpoint_every_epochs == 0)
      save_checkpoint();
  }
  if (checkpoints && saved_step_ != step_) save_checkpoint();  // always one at the end
  wait_for_writer();
  result.wall_s = seconds_since(fit_start);
  if (cfg_.target_accuracy > 0) {
    p_.report.target(cfg_.target_accuracy, false, int(result.history.size()), result.wall_s,
                     result.history.empty() ? 0.0 : result.history.back().test_acc,
                     p_.world.size());
  }
  return result;
}

// --on-bad-image skip: every rank that replaced files names the first few (stderr); rank 0
// gives the total over all ranks.
void Trainer::report_bad_samples(const std::string& when, const data::Dataset::BadSamples& mine,
                                 double total) {
  if (mine.count > 0) {
    std::string paths;
    for (const auto& f : mine.first) paths += (paths.empty() ? "" : ", ") + f;
    std::fprintf(stderr,
                 "[rank %d %s] alexnet: warning: %s: %lld bad image%s replaced, the first: %s\n",
                 p_.world.rank(), p_.world.host().c_str(), when.c_str(),
                 static_cast<long long>(mine.count), mine.count == 1 ? "" : "s", paths.c_str());
    std::fflush(stderr);
  }
  if (total > 0)
    p_.report.line(when + ": " + std::to_string(static_cast<long long>(total)) +
                   " bad image(s) replaced by the next good one (--on-bad-image skip)");
}

EvalResult Trainer::evaluate() {
  DISTNET_CHECK(p_.test != nullptr, "no test set to evaluate on");
  Backend& be = p_.backend;
  Model& m = p_.model;
  const data::Slice shard = data::split_slice(p_.test->size(), p_.world.size(), p_.world.rank());
  const std::int64_t batch =
      cfg_.eval_batch > 0 ? cfg_.eval_batch : (cfg_.batch + p_.world.size() - 1) / p_.world.size();
  const auto saved = read_and_reset_stats();  // keep the training figures of a running epoch
  // A split model's forward is a collective of its group: every rank takes as many batches as
  // the largest shard, with empty ones once its own shard is done, all padded to `batch` rows.
  const std::int64_t own = shard.size() > 0 ? (shard.size() + batch - 1) / batch : 0;
  const std::int64_t largest = data::split_slice(p_.test->size(), p_.world.size(), 0).size();
  const std::int64_t rounds = m.is_split() ? (largest + batch - 1) / batch : own;
  std::optional<data::Sampler> s;
  std::optional<data::Loader> loader;
  if (shard.size() > 0) {
    s.emplace(shard.size(), batch, false, false, 0, shard.begin);
    data::LoaderOptions lo;
    lo.workers = workers_;
    loader.emplace(*p_.test, *s, loader_transform(), lo);
  }
  const auto t0 = Clock::now();
  for (std::int64_t b = 0; b < rounds; ++b) {
    if (b > 0 && p_.report.progress_due())  // rank 0's shard; the others' are as large
      p_.report.phase_progress("evaluating", b, rounds, seconds_since(t0));
    StepContext ctx{false, cfg_.seed, 0, nullptr};
    if (m.is_split()) ctx.slice_rows = int(batch);
    if (b >= own) {
      m.forward(ctx, 0, nullptr);
      continue;
    }
    const data::Batch bt = loader->next();
    const float* x = device_images(bt);
    const auto* labels = static_cast<const std::int32_t*>(
        be.stage(bt.labels.data(), bt.labels.size() * sizeof(std::int32_t), stage_labels_));
    const float* logits = m.forward(ctx, bt.size(), x);
    be.softmax_xent(bt.size(), m.config().classes, logits, labels, 1.0f, nullptr,
                    static_cast<double*>(stats_.data()));
  }
  const auto sums_read = read_and_reset_stats();
  be.upload(stats_.data(), saved.data(), sizeof saved);
  const data::Dataset::BadSamples bad = p_.test->take_bad_samples(0);
  double sums[5] = {sums_read[0], sums_read[1], sums_read[2], double(shard.size()),
                    double(bad.count)};
  host_comm().allreduce_sum(sums, 5);
  report_bad_samples("evaluation", bad, sums[4]);
  EvalResult r;
  r.samples = static_cast<std::int64_t>(sums[3]);
  r.loss = r.samples ? sums[0] / sums[3] : 0.0;
  r.accuracy = r.samples ? sums[1] / sums[3] : 0.0;
  if (m.config().classes >= 10) r.top5 = r.samples ? sums[2] / sums[3] : 0.0;
  return r;
}

BenchmarkResult Trainer::benchmark() {
  data::LoaderOptions lo;
  lo.rank = p_.world.rank(), lo.world = p_.world.size(), lo.workers = workers_;
  lo.timeline = p_.timeline;
  data::Loader loader(p_.train, sampler_, loader_transform(), lo);
  // A stop request ends the benchmark at once, without figures (they would be partial).
  auto step = [&](const data::Batch& b) {
    if (train_step(b) == StepOutcome::applied) return true;
    p_.report.line("benchmark stopped on request; no figures");
    return false;
  };
  BenchmarkResult r;
  const auto t_start = Clock::now();
  for (int i = 0; i < cfg_.warmup_steps; ++i) {
    if (!step(loader.next())) {
      r.stopped = true;
      return r;
    }
    if (p_.report.progress_due())
      p_.report.phase_progress("benchmark warm-up", i + 1, cfg_.warmup_steps,
                               seconds_since(t_start));
  }
  p_.backend.synchronize();
  host_comm().barrier();

  // The timed steps; with --timeline, recorded or not (`record`), to measure what recording costs.
  Timeline* tl = p_.timeline;
  CommBytes bytes;  // summed over the first timed run's steps
  auto timed = [&](bool record, const char* what, double* wall_s, std::int64_t* images) {
    const auto t0 = Clock::now();
    bytes = CommBytes{};
    for (int i = 0; i < cfg_.steps; ++i) {
      if (tl) tl->set_step(record ? step_ : -1);
      Timeline::Scope step_span(tl, Timeline::Track::compute, "step ", step_, "step");
      const double wait_start = Timeline::now_us();
      const data::Batch b = loader.next();
      if (tl)
        tl->span(Timeline::Track::compute, "data wait", "data", wait_start, Timeline::now_us());
      if (!step(b)) return false;
      bytes += step_bytes_;
      *images += b.global_size;
      if (p_.report.progress_due())
        p_.report.phase_progress(what, i + 1, cfg_.steps, seconds_since(t0));
    }
    p_.backend.synchronize();
    *wall_s = seconds_since(t0);
    return true;
  };
  const double wait0 = loader.wait_seconds(), comm0 = sync_.comm_seconds(), vote0 = vote_s_;
  const double exchange0 = exchange_seconds();
  double wall = 0;
  std::int64_t images = 0;
  if (!timed(tl && tl->enabled(), "benchmark timed steps", &wall, &images)) {
    r.stopped = true;
    return r;
  }
  for (int k = 0; k < kCollectiveOps; ++k) {  // per step (every step moves the same bytes)
    r.bytes_per_step.sent[k] = bytes.sent[k] / cfg_.steps;
    r.bytes_per_step.payload[k] = bytes.payload[k] / cfg_.steps;
  }
  r.model_parallel = p_.grid ? p_.grid->model_parallel() : 1;
  report_stragglers(
      "the benchmark", 0, wall,
      sync_.comm_seconds() - comm0 + (vote_s_ - vote0) + (exchange_seconds() - exchange0),
      loader.wait_seconds() - wait0);
  if (tl && tl->enabled()) {  // the same steps again without recording: its cost
    double plain = 0;
    std::int64_t ignored = 0;
    host_comm().barrier();
    if (!timed(false, "benchmark timed steps without the timeline", &plain, &ignored)) {
      r.stopped = true;
      return r;
    }
    double both[2] = {wall, plain};
    host_comm().allreduce_sum(both, 2);
    r.timeline_overhead = both[1] > 0 ? both[0] / both[1] - 1.0 : 0.0;
    r.step_ms_without_timeline = 1000.0 * both[1] / p_.world.size() / cfg_.steps;
    // The A/B difference is within the machine's noise; the cost itself is the events a step
    // records times what one costs, measured on the same code path.
    Timeline probe(20000, 0, -1);
    probe.set_step(0);
    const double p0 = Timeline::now_us();
    for (int i = 0; i < 20000; ++i)
      probe.span(Timeline::Track::compute, "forward conv1", "forward", p0, p0 + 1.0);
    r.timeline_event_us = (Timeline::now_us() - p0) / 20000;
    r.timeline_events_per_step = double(tl->events()) / cfg_.steps;
  }

  r.steps = cfg_.steps;
  r.global_batch = cfg_.batch;
  // (With --timeline the comm and data-wait sums cover both timed runs: halve them.)
  const double runs = tl && tl->enabled() ? 2.0 : 1.0;
  double split[4] = {wall, (sync_.comm_seconds() - comm0) / runs,
                     (loader.wait_seconds() - wait0) / runs,
                     (exchange_seconds() - exchange0) / runs};
  host_comm().allreduce_sum(split, 4);  // mean over ranks
  const double ranks = p_.world.size();
  r.step_ms = 1000.0 * split[0] / ranks / cfg_.steps;
  r.comm_ms = 1000.0 * split[1] / ranks / cfg_.steps;
  r.data_ms = 1000.0 * split[2] / ranks / cfg_.steps;
  r.exchange_ms = 1000.0 * split[3] / ranks / cfg_.steps;
  r.compute_ms = r.step_ms - r.comm_ms - r.data_ms - r.exchange_ms;
  r.images_per_s = double(images) / wall;
  r.images_per_s_per_rank = r.images_per_s / ranks;

  // Per-layer split from a few more steps with a device sync around every layer.
  p_.model.set_profiling(&r.layers);
  LayerTimes sum;
  const int profiled = std::min(cfg_.steps, 3);
  for (int i = 0; i < profiled; ++i) {
    if (!step(loader.next())) {
      p_.model.set_profiling(nullptr);
      r.stopped = true;
      return r;
    }
    sum.forward_ms.resize(r.layers.forward_ms.size());
    sum.backward_ms.resize(r.layers.backward_ms.size());
    sum.optimizer_ms += r.layers.optimizer_ms / profiled;
    for (std::size_t l = 0; l < sum.forward_ms.size(); ++l) {
      sum.forward_ms[l] += r.layers.forward_ms[l] / profiled;
      sum.backward_ms[l] += r.layers.backward_ms[l] / profiled;
    }
  }
  p_.model.set_profiling(nullptr);
  r.layers = sum;
  p_.report.benchmark(r, p_.world.size(), p_.model);
  return r;
}

}  // namespace distnet
