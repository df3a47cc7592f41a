// Benchmark mode: timed steps on synthetic data, the step split into its parts, per-layer
// times from separate synchronised passes, counted bytes.
#include "distnet/trainer.hpp"

#include <algorithm>

#include "core/clock.hpp"

namespace distnet {

using steady::Clock;
using steady::seconds_since;

BenchmarkResult Trainer::benchmark() {
  data::LoaderOptions lo;
  lo.rank = p_.world.rank(), lo.world = p_.world.size(), lo.workers = workers_;
  lo.timeline = p_.timeline;
  lo.micros = cfg_.accumulate;
  data::Loader loader(p_.train, sampler_, loader_transform(), lo);
  // A stop request ends the benchmark at once, without figures (they would be partial).
  const std::function<data::Batch()> next = [&] { return loader.next(); };
  auto step = [&](const std::function<data::Batch()>& micro_batches) {
    if (train_step(micro_batches) == StepOutcome::applied) return true;
    p_.report.line("benchmark stopped on request; no figures");
    return false;
  };
  BenchmarkResult r;
  const auto t_start = Clock::now();
  for (int i = 0; i < cfg_.warmup_steps; ++i) {
    if (!step(next)) {
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
      const std::function<data::Batch()> timed_next = [&] {
        const double wait_start = Timeline::now_us();
        data::Batch b = loader.next();
        if (tl)
          tl->span(Timeline::Track::compute, "data wait", "data", wait_start, Timeline::now_us());
        return b;
      };
      if (!step(timed_next)) return false;
      bytes += step_bytes_;
      *images += step_global_size_;
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
  double split[5] = {wall, (sync_.comm_seconds() - comm0) / runs,
                     (loader.wait_seconds() - wait0) / runs,
                     (exchange_seconds() - exchange0) / runs, (vote_s_ - vote0) / runs};
  host_comm().allreduce_sum(split, 5);  // mean over ranks
  const double ranks = p_.world.size();
  r.step_ms = 1000.0 * split[0] / ranks / cfg_.steps;
  r.comm_ms = 1000.0 * split[1] / ranks / cfg_.steps;
  r.data_ms = 1000.0 * split[2] / ranks / cfg_.steps;
  r.exchange_ms = 1000.0 * split[3] / ranks / cfg_.steps;
  // The stop vote is a collective too: on a slow link it costs a round trip every step, which
  // is not compute.
  r.vote_ms = 1000.0 * split[4] / ranks / cfg_.steps;
  r.compute_ms = r.step_ms - r.comm_ms - r.data_ms - r.exchange_ms - r.vote_ms;
  r.images_per_s = double(images) / wall;
  r.images_per_s_per_rank = r.images_per_s / ranks;

  // Per-layer split from a few more steps with a device sync around every layer.
  p_.model.set_profiling(&r.layers);
  LayerTimes sum;
  const int profiled = std::min(cfg_.steps, 3);
  for (int i = 0; i < profiled; ++i) {
    if (!step(next)) {
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
