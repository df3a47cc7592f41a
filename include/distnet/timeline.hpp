// A per-rank timeline of what each rank spends its time on, written as one Chrome trace event
// JSON file (Perfetto and chrome://tracing open it): one process row per rank, named by rank and
// host, with thread rows for compute, communication, the loader and the checkpoint writer.
//
// Recording is cheap and bounded: events go into a fixed-size ring (the oldest are dropped when
// it is full, and the file says how many), only within a window of steps (--timeline-steps A:B),
// and a disabled timeline costs one branch per event. Any thread may record. At the end rank 0
// gathers every rank's events and writes the file, with each rank's clock shifted onto rank 0's
// by an offset measured at start-up (the minimum-round-trip ping-pong estimate), so that waits
// across ranks line up.
//
// On a GPU the host's spans say when work was queued; the device's own times come from marks in
// its streams (DeviceClock), read back at the next step's start without waiting, and go on rows
// of their own ("GPU compute", "GPU communication").
#pragma once

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "distnet/abort.hpp"
#include "distnet/device_clock.hpp"

namespace distnet {

class Timeline {
 public:
  enum class Track : int {
    compute = 1,
    comm = 2,
    loader = 3,
    writer = 4,
    gpu_compute = 5,  // device-side spans of the compute stream
    gpu_comm = 6,     // device-side spans of the communication stream
    exchange = 7,     // the hybrid grid's activation collectives (host side)
    gpu_exchange = 8  // the same on the group communicator's stream (device side)
  };

  // Disabled: records nothing.
  Timeline() = default;
  // Records up to `capacity` events of steps [first_step, last_step) (last_step < 0: no end).
  Timeline(std::size_t capacity, std::int64_t first_step, std::int64_t last_step);
  ~Timeline();

  bool enabled() const { return capacity_ > 0; }
  // Named ranges for an external profiler (NVTX for Nsight Systems, with --nvtx): every Scope
  // also pushes its name on entry and pops on exit, on its own thread, whether or not the
  // timeline records. Set before any Scope runs.
  struct Annotator {
    void (*push)(const char* name) = nullptr;
    void (*pop)() = nullptr;
  };
  void set_annotator(Annotator a) { annotator_ = a; }
  bool annotating() const { return annotator_.push != nullptr; }
  // The step being run: events are kept only inside the window. Call at each step's start (it
  // also collects the device spans whose work has finished).
  void set_step(std::int64_t step);
  // The compute stream's clock (Backend::device_clock()): from now on, Scopes on the compute
  // track whose category is device work (forward, backward, optimizer, stage, step, eval) also
  // record a device-side span on the GPU compute row.
  void set_device_clock(DeviceClock* clock) { device_clock_ = clock; }

  // A device-side span by hand: a mark before the work is queued, one after; the span is filled
  // in once the device has run it. No-ops (and an invalid mark) when not recording or no clock.
  struct DeviceMark {
    DeviceClock* clock = nullptr;
    int id = -1;
  };
  DeviceMark device_begin(DeviceClock* clock);
  void device_end(DeviceMark begin, Track track, std::string name, const char* category,
                  std::string args_json = "");
  // Turns device marks the device has passed into spans; never waits. Returns how many remain.
  std::size_t collect_device_spans();
  bool recording() const { return enabled() && in_window_; }

  // Microseconds on this rank's steady clock.
  static double now_us() {
    return std::chrono::duration<double, std::micro>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  // A span [t0, t1] on `track`. `name` and `category` are copied.
  void span(Track track, const std::string& name, const char* category, double t0_us, double t1_us,
            const std::string& args_json = "");
  // A counter sample (a separate row per counter name).
  void counter(const std::string& name, double t_us, double value);
  // A span from construction to destruction. Inactive (no timeline, not recording, no
  // annotator) it costs a branch: the name is put together only when it will be used, so the
  // training loop allocates nothing for it.
  class Scope {
   public:
    Scope(Timeline* tl, Track track, const char* name, const char* category)
        : Scope(tl, track, name, std::string_view(), category) {}
    // The name is prefix + suffix, e.g. "forward " + a layer's name.
    Scope(Timeline* tl, Track track, const char* prefix, std::string_view suffix,
          const char* category)
        : tl_(active(tl)), track_(track), category_(category) {
      if (!tl_) return;
      name_ = prefix;
      name_ += suffix;
      start();
    }
    // The name is prefix + a number, e.g. "step " + 42.
    Scope(Timeline* tl, Track track, const char* prefix, std::int64_t number, const char* category)
        : tl_(active(tl)), track_(track), category_(category) {
      if (!tl_) return;
      name_ = prefix + std::to_string(number);
      start();
    }
    ~Scope() {
      if (!tl_) return;
      if (tl_->annotating()) tl_->annotator_.pop();
      tl_->span(track_, name_, category_, t0_, now_us());
      if (device_.id >= 0) tl_->device_end(device_, Track::gpu_compute, name_, category_);
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    static Timeline* active(Timeline* tl) {
      return tl && (tl->recording() || tl->annotating()) ? tl : nullptr;
    }
    void start() {
      t0_ = now_us();
      if (tl_->annotating()) tl_->annotator_.push(name_.c_str());
      if (track_ == Track::compute && tl_->device_clock_ && device_work(category_))
        device_ = tl_->device_begin(tl_->device_clock_);
    }
    static bool device_work(const char* category);
    Timeline* tl_;
    Track track_;
    std::string name_;
    const char* category_;
    double t0_ = 0;
    DeviceMark device_;
  };

  // Collective over `comm`: estimates each rank's clock offset to rank 0 (call once, early,
  // on every rank, whether or not the timeline is enabled on any of them -- it is cheap).
  void align_clocks(MPI_Comm comm);
  // Collective: rank 0 gathers every rank's events and writes `path`. `host` names the rank.
  // Collects the device spans first (the caller has let the device finish). Throws Error on rank
  // 0 when the file cannot be written.
  void write(MPI_Comm comm, const std::string& path, const std::string& host);
  // Local, no MPI: this rank's rows alone, as a complete trace file (written to a temporary
  // name, then renamed), its otherData saying "partial" and `note`. Times are on rank 0's clock
  // as in write(), so the files of several ranks line up. Throws Error when it cannot write.
  void write_rank_file(const std::string& path, int rank, const std::string& host,
                       const std::string& note) const;
  // If this rank aborts the job (abort.hpp: the watchdog), or the launcher ends it while the job
  // is aborting, it first writes its own rows to `path`.rank<rank> (write_rank_file) and says so
  // in one line: the gathered `path` is never written then. Call once the clocks are aligned;
  // lasts until the timeline is destroyed.
  void write_on_abort(const std::string& path, int rank, const std::string& host);

  std::size_t events() const;             // recorded and kept
  std::size_t dropped() const;            // overwritten because the ring was full
  std::size_t device_spans_lost() const;  // no free mark, or the device never got there

 private:
  struct Event {
    char ph;  // 'X' span, 'C' counter
    int track;
    double ts, dur;  // microseconds, this rank's clock
    std::string name, category, args;
  };
  void keep(Event e);
  // This rank's process row names and events, comma-separated Chrome trace objects.
  std::string rows(int rank, const std::string& host) const;
  std::unique_ptr<LastWords> last_words_;
  struct PendingSpan {
    DeviceMark begin, end;
    Track track;
    std::string name, category, args;
  };
  Annotator annotator_;
  DeviceClock* device_clock_ = nullptr;
  mutable std::mutex pending_mu_;
  std::vector<PendingSpan> pending_;
  std::size_t device_lost_ = 0;  // device spans not recorded: no free mark, or never finished
  std::size_t capacity_ = 0;
  std::int64_t first_step_ = 0, last_step_ = -1;
  std::atomic<bool> in_window_{false};
  double offset_us_ = 0;  // rank 0's clock minus this rank's
  double base_us_ = 0;    // rank 0's clock when the clocks were aligned: time 0 in the file
  mutable std::mutex mu_;
  std::vector<Event> ring_;
  std::size_t next_ = 0, total_ = 0;
};

}  // namespace distnet
