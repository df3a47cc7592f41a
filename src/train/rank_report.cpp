// The trainer's reports about ranks: progress lines, input waits, where each rank's time went
// (stragglers), and replaced samples.
#include "distnet/trainer.hpp"

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/clock.hpp"
#include "distnet/mpi_check.hpp"

namespace distnet {

using steady::Clock;
using steady::seconds_since;

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

// Seconds so far in the hybrid grid's activation exchange (0 without a split model).
double Trainer::exchange_seconds() const {
  Communicator* group = p_.grid ? p_.grid->group_comm() : nullptr;
  return group ? group->exchange_seconds() : 0.0;
}

// Where each rank's epoch went: compute (the rest), waiting in collectives (the time the slowest
// peer made it wait, plus the transfers themselves) and waiting for data. Rank 0 gathers the
// three figures, prints their range, and names the slowest rank when its compute time exceeds
// the median by more than --straggler-threshold: the others' collective waits are its doing.
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

}  // namespace distnet
