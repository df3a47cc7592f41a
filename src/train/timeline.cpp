#include "distnet/timeline.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "distnet/abort.hpp"
#include "distnet/error.hpp"
#include "distnet/mpi_check.hpp"
#include "distnet/report.hpp"

namespace distnet {
namespace {

constexpr int kPingTag = 7301;
const char* track_name(int track) {
  switch (track) {
    case 1:
      return "compute";
    case 2:
      return "communication";
    case 3:
      return "loader";
    case 4:
      return "checkpoint writer";
    case 5:
      return "GPU compute";
    case 6:
      return "GPU communication";
    case 7:
      return "activation exchange";
    case 8:
      return "GPU activation exchange";
    default:
      return "counters";
  }
}

std::string number(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

}  // namespace

Timeline::Timeline(std::size_t capacity, std::int64_t first_step, std::int64_t last_step)
    : capacity_(capacity), first_step_(first_step), last_step_(last_step) {
  ring_.reserve(std::min<std::size_t>(capacity, 1 << 14));
}

Timeline::~Timeline() = default;

void Timeline::set_step(std::int64_t step) {
  in_window_ = enabled() && step >= first_step_ && (last_step_ < 0 || step < last_step_);
  if (enabled()) collect_device_spans();
}

bool Timeline::Scope::device_work(const char* category) {
  for (const char* c : {"forward", "backward", "optimizer", "stage", "step", "eval"})
    if (std::strcmp(category, c) == 0) return true;
  return false;
}

Timeline::DeviceMark Timeline::device_begin(DeviceClock* clock) {
  if (!clock || !recording()) return {};
  const int id = clock->mark();
  if (id < 0) {
    std::lock_guard<std::mutex> lock(pending_mu_);
    ++device_lost_;
    return {};
  }
  return {clock, id};
}

void Timeline::device_end(DeviceMark begin, Track track, std::string name, const char* category,
                          std::string args_json) {
  if (begin.id < 0) return;
  const int id = begin.clock->mark();
  std::lock_guard<std::mutex> lock(pending_mu_);
  if (id < 0) {
    begin.clock->release(begin.id);
    ++device_lost_;
    return;
  }
  pending_.push_back(
      {begin, {begin.clock, id}, track, std::move(name), category, std::move(args_json)});
}

// A span is ready when its end mark is: the begin mark sits earlier in the same stream.
std::size_t Timeline::collect_device_spans() {
  std::lock_guard<std::mutex> lock(pending_mu_);
  std::size_t kept = 0;
  for (PendingSpan& p : pending_) {
    double t0 = 0, t1 = 0;
    if (!p.end.clock->read(p.end.id, &t1)) {
      if (&pending_[kept] != &p) pending_[kept] = std::move(p);
      ++kept;
      continue;
    }
    const bool begun = p.begin.clock->read(p.begin.id, &t0);
    p.begin.clock->release(p.begin.id);
    p.end.clock->release(p.end.id);
    if (!begun) {  // cannot happen in one stream; not worth a wrong span
      ++device_lost_;
      continue;
    }
    // Kept whether or not the window is still open: the work was queued inside it.
    keep({'X', int(p.track), t0, std::max(0.0, t1 - t0), std::move(p.name), std::move(p.category),
          std::move(p.args)});
  }
  pending_.resize(kept);
  return kept;
}

std::size_t Timeline::device_spans_lost() const {
  std::lock_guard<std::mutex> lock(pending_mu_);
  return device_lost_;
}

void Timeline::span(Track track, const std::string& name, const char* category, double t0_us,
                    double t1_us, const std::string& args_json) {
  if (!recording()) return;
  keep({'X', int(track), t0_us, std::max(0.0, t1_us - t0_us), name, category, args_json});
}

void Timeline::counter(const std::string& name, double t_us, double value) {
  if (!recording()) return;
  keep({'C', 0, t_us, 0, name, "counter", "{\"value\":" + number(value) + "}"});
}

// Into the ring: appended until it is full, then over the oldest.
void Timeline::keep(Event e) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ring_.size() < capacity_)
    ring_.push_back(std::move(e));
  else
    ring_[next_] = std::move(e);
  next_ = (next_ + 1) % capacity_;
  ++total_;
}

std::size_t Timeline::events() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ring_.size();
}

std::size_t Timeline::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_ - ring_.size();
}

// Rank 0 and each other rank exchange timestamps a few times; the round trip with the smallest
// time bounds the error best: offset = (t_send + t_receive) / 2 - t_peer, within half of it.
void Timeline::align_clocks(MPI_Comm comm) {
  int rank = 0, size = 1;
  DISTNET_CHECK_MPI(MPI_Comm_rank(comm, &rank));
  DISTNET_CHECK_MPI(MPI_Comm_size(comm, &size));
  constexpr int kRounds = 8;
  if (rank == 0) {
    for (int r = 1; r < size; ++r) {
      double best_rtt = 1e30, offset = 0;
      for (int k = 0; k < kRounds; ++k) {
        const double t0 = now_us();
        double peer = 0;
        DISTNET_CHECK_MPI(MPI_Send(&t0, 1, MPI_DOUBLE, r, kPingTag, comm));
        DISTNET_CHECK_MPI(MPI_Recv(&peer, 1, MPI_DOUBLE, r, kPingTag, comm, MPI_STATUS_IGNORE));
        const double t1 = now_us();
        if (t1 - t0 < best_rtt) best_rtt = t1 - t0, offset = (t0 + t1) / 2 - peer;
      }
      DISTNET_CHECK_MPI(MPI_Send(&offset, 1, MPI_DOUBLE, r, kPingTag, comm));
    }
    base_us_ = now_us();
  } else {
    for (int k = 0; k < kRounds; ++k) {
      double t = 0;
      DISTNET_CHECK_MPI(MPI_Recv(&t, 1, MPI_DOUBLE, 0, kPingTag, comm, MPI_STATUS_IGNORE));
      t = now_us();
      DISTNET_CHECK_MPI(MPI_Send(&t, 1, MPI_DOUBLE, 0, kPingTag, comm));
    }
    DISTNET_CHECK_MPI(MPI_Recv(&offset_us_, 1, MPI_DOUBLE, 0, kPingTag, comm, MPI_STATUS_IGNORE));
  }
  DISTNET_CHECK_MPI(MPI_Bcast(&base_us_, 1, MPI_DOUBLE, 0, comm));
}

std::string Timeline::rows(int rank, const std::string& host) const {
  // This rank's part of the file: its row names, then its events in time order.
  std::string part;
  auto add = [&](const std::string& object) {
    part += part.empty() ? "" : ",\n";
    part += object;
  };
  const std::string pid = std::to_string(rank);
  add("{\"ph\":\"M\",\"pid\":" + pid + ",\"name\":\"process_name\",\"args\":{\"name\":\"rank " +
      pid + " (" + json_escape(host) + ")\"}}");
  add("{\"ph\":\"M\",\"pid\":" + pid +
      ",\"name\":\"process_sort_index\",\"args\":{\"sort_index\":" + pid + "}}");
  std::vector<Event> events;
  {
    std::lock_guard<std::mutex> lock(mu_);
    events = ring_;
  }
  // The host rows always; the GPU and exchange rows when there is something on them.
  constexpr int kLastTrack = int(Track::gpu_exchange);
  bool used[kLastTrack + 1] = {false, true, true, true, true};
  for (const Event& e : events)
    if (e.track >= 0 && e.track <= kLastTrack) used[e.track] = true;
  for (int t = 1; t <= kLastTrack; ++t)
    if (used[t])
      add("{\"ph\":\"M\",\"pid\":" + pid + ",\"tid\":" + std::to_string(t) +
          ",\"name\":\"thread_name\",\"args\":{\"name\":\"" + track_name(t) + "\"}}");
  std::stable_sort(events.begin(), events.end(),
                   [](const Event& a, const Event& b) { return a.ts < b.ts; });
  for (const Event& e : events) {
    const double ts = e.ts + offset_us_ - base_us_;
    std::string o = "{\"ph\":\"" + std::string(1, e.ph) + "\",\"pid\":" + pid +
                    ",\"tid\":" + std::to_string(e.track) + ",\"ts\":" + number(ts) +
                    ",\"name\":\"" + json_escape(e.name) + "\",\"cat\":\"" +
                    json_escape(e.category) + "\"";
    if (e.ph == 'X') o += ",\"dur\":" + number(e.dur);
    if (!e.args.empty()) o += ",\"args\":" + e.args;
    add(o + "}");
  }
  return part;
}

void Timeline::write_rank_file(const std::string& path, int rank, const std::string& host,
                               const std::string& note) const {
  const std::string part = rows(rank, host);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) throw Error(tmp + ": cannot open the timeline file for writing");
    out << "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"producer\":\"distnet\","
        << "\"partial\":true,\"rank\":" << rank << ",\"note\":\"" << json_escape(note)
        << "\",\"dropped_events\":" << dropped() << ",\"device_spans_lost\":" << device_spans_lost()
        << "},\"traceEvents\":[\n"
        << part << "\n]}\n";
    out.close();
    if (!out) throw Error(tmp + ": the timeline could not be written completely");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error(path + ": cannot rename " + tmp + " to it: " + std::strerror(errno));
}

void Timeline::write_on_abort(const std::string& path, int rank, const std::string& host) {
  last_words_.reset();
  const std::string mine = path + ".rank" + std::to_string(rank);
  last_words_ = std::make_unique<LastWords>([this, path, mine, rank, host] {
    const std::string who = "[rank " + std::to_string(rank) + " " + host + "] ";
    try {
      write_rank_file(mine, rank, host,
                      "written by rank " + std::to_string(rank) +
                          " alone while the job was being aborted; other ranks' rows are in "
                          "their own " +
                          path + ".rank<r> files, where they could write them");
      std::fprintf(stderr,
                   "%salexnet: timeline: this rank's %zu events written to %s (the job is being "
                   "aborted, so %s is not written)\n",
                   who.c_str(), events(), mine.c_str(), path.c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%salexnet: error: %s\n", who.c_str(), e.what());
    }
    std::fflush(stderr);
  });
}

void Timeline::write(MPI_Comm comm, const std::string& path, const std::string& host) {
  {
    const std::size_t unfinished = collect_device_spans();
    std::lock_guard<std::mutex> lock(pending_mu_);
    for (PendingSpan& p : pending_) {
      p.begin.clock->release(p.begin.id);
      p.end.clock->release(p.end.id);
    }
    pending_.clear();
    device_lost_ += unfinished;
  }
  int rank = 0, size = 1;
  DISTNET_CHECK_MPI(MPI_Comm_rank(comm, &rank));
  DISTNET_CHECK_MPI(MPI_Comm_size(comm, &size));
  const std::string part = rows(rank, host);
  const std::size_t lost = dropped(), device_lost = device_spans_lost();
  // Rank 0 gathers the parts (sizes first) and writes them in rank order.
  long long mine[3] = {static_cast<long long>(part.size()), static_cast<long long>(lost),
                       static_cast<long long>(device_lost)};
  std::vector<long long> sizes(rank == 0 ? 3 * std::size_t(size) : 0);
  DISTNET_CHECK_MPI(MPI_Gather(mine, 3, MPI_LONG_LONG, sizes.data(), 3, MPI_LONG_LONG, 0, comm));
  std::vector<int> counts, displs;
  std::string all;
  long long dropped_total = 0, device_lost_total = 0;
  if (rank == 0) {
    counts.resize(std::size_t(size));
    displs.resize(std::size_t(size));
    long long offset = 0;
    for (int r = 0; r < size; ++r) {
      const long long n = sizes[3 * std::size_t(r)];
      DISTNET_CHECK(offset + n < (1LL << 31), "timeline larger than 2 GiB: record a window");
      counts[std::size_t(r)] = int(n);
      displs[std::size_t(r)] = int(offset);
      offset += n;
      dropped_total += sizes[3 * std::size_t(r) + 1];
      device_lost_total += sizes[3 * std::size_t(r) + 2];
    }
    all.resize(std::size_t(offset));
  }
  DISTNET_CHECK_MPI(MPI_Gatherv(part.data(), int(part.size()), MPI_CHAR, all.data(), counts.data(),
                                displs.data(), MPI_CHAR, 0, comm));
  if (rank != 0) return;
  errno = 0;
  std::ofstream out(path, std::ios::trunc);
  if (!out)
    throw Error(path + ": cannot open the timeline file for writing: " + std::strerror(errno));
  out << "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"producer\":\"distnet\",\"dropped_events\":"
      << dropped_total << ",\"device_spans_lost\":" << device_lost_total << "},\"traceEvents\":[\n";
  for (int r = 0; r < size; ++r) {
    if (r > 0) out << ",\n";
    out.write(all.data() + displs[std::size_t(r)], counts[std::size_t(r)]);
  }
  out << "\n]}\n";
  out.flush();  // a full disk shows at the flush, not at the buffered writes
  if (!out)
    throw Error(path + ": cannot write the timeline file: " + std::strerror(errno ? errno : EIO));
}

}  // namespace distnet
