// Evaluation on the test set: every rank its shard, sums over ranks.
#include "distnet/trainer.hpp"

#include <optional>

#include "core/clock.hpp"
#include "distnet/signals.hpp"

namespace distnet {

using steady::Clock;
using steady::seconds_since;

EvalResult Trainer::evaluate() {
  DISTNET_CHECK(p_.test != nullptr, "no test set to evaluate on");
  Backend& be = p_.backend;
  Model& m = p_.model;
  const data::Slice shard = data::split_slice(p_.test->size(), p_.world.size(), p_.world.rank());
  const std::int64_t batch =
      cfg_.eval_batch > 0 ? cfg_.eval_batch : rank_micro_batch(cfg_, p_.world.size());
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
  // --debug-fault stop-in-eval:E: rank 0 receives a stop request as epoch E's evaluation starts.
  const bool stop_here = cfg_.debug_fault == RunConfig::DebugFault::stop_in_eval &&
                         p_.world.rank() == 0 &&
                         step_ == cfg_.debug_fault_step * sampler_.batches_per_epoch();
  // Every rank votes before each round (the same number of rounds everywhere), so a stop
  // request is taken within one batch, not after the whole evaluation.
  const std::int64_t votes = (largest + batch - 1) / batch;
  for (std::int64_t b = 0; b < votes; ++b) {
    double stop = stop_requested() || stop_here ? 1.0 : 0.0;
    host_comm().allreduce_sum(&stop, 1);
    if (stop > 0) {
      be.upload(stats_.data(), saved.data(), sizeof saved);
      EvalResult r;
      r.interrupted = true;
      return r;
    }
    if (b >= rounds) continue;
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

}  // namespace distnet
