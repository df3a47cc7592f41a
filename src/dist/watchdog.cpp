// A watchdog around a communicator: if a collective has not finished after --comm-timeout
// seconds -- a peer hung, stopped or vanished without MPI noticing -- the rank says so, naming
// itself, its host, the operation and the ranks that have not reached it (read from the progress
// board, where every guarded collective is counted), and aborts the whole job instead of
// waiting forever.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "distnet/abort.hpp"
#include "distnet/comm.hpp"
#include "distnet/progress.hpp"

namespace distnet {
namespace {

class WatchdogCommunicator final : public Communicator {
 public:
  WatchdogCommunicator(std::unique_ptr<Communicator> inner, double timeout_s, std::string who)
      : inner_(std::move(inner)),
        timeout_s_(timeout_s),
        who_(std::move(who)),
        channel_(open_channel(*inner_)),
        thread_([this] { watch(); }) {}
  ~WatchdogCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    progress::close_channel(channel_);
  }

  std::string name() const override { return inner_->name(); }
  MPI_Comm mpi_comm() const override { return inner_->mpi_comm(); }
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }

  // The operation is recorded as a format and a size; its text is made only if the watchdog
  // fires, so guarding a collective allocates nothing.
  void allreduce_sum(float* d, std::size_t n) override {
    Guard g(*this, "all-reduce of %zu floats", n);
    inner_->allreduce_sum(d, n);
  }
  void allreduce_sum(double* d, std::size_t n) override {
    Guard g(*this, "all-reduce of %zu doubles", n);
    inner_->allreduce_sum(d, n);
  }
  void broadcast(void* d, std::size_t bytes, int root) override {
    Guard g(*this, "broadcast of %zu bytes", bytes);
    inner_->broadcast(d, bytes, root);
  }
  void allgather(const float* send, float* recv, std::size_t n) override {
    Guard g(*this, "all-gather of %zu floats per rank", n);
    inner_->allgather(send, recv, n);
  }
  void reduce_scatter_sum(const float* send, float* recv, std::size_t n) override {
    Guard g(*this, "reduce-scatter of %zu floats per rank", n);
    inner_->reduce_scatter_sum(send, recv, n);
  }
  CommBytes bytes_sent() const override { return inner_->bytes_sent(); }
  void reset_bytes() override { inner_->reset_bytes(); }
  double exchange_seconds() override { return inner_->exchange_seconds(); }
  void barrier() override {
    Guard g(*this, "barrier", 0);
    inner_->barrier();
  }
  void allreduce_sum_async(float* d, std::size_t n, Wire wire) override {
    Guard g(*this, "all-reduce of %zu floats", n);
    inner_->allreduce_sum_async(d, n, wire);
  }
  void wait_pending() override {  // not a collective: timed, not counted
    Guard g(*this, "wait for gradient all-reduces", 0, false);
    inner_->wait_pending();
  }
  void set_timeline(Timeline* timeline) override { inner_->set_timeline(timeline); }

 private:
  static int open_channel(const Communicator& c) {
    const MPI_Comm comm = c.mpi_comm();
    return comm == MPI_COMM_NULL ? -1 : progress::open_channel(progress::world_ranks_of(comm));
  }

  struct Guard {
    Guard(WatchdogCommunicator& w, const char* format, std::size_t size, bool collective = true)
        : w_(w), collective_(collective) {
      if (collective_) progress::entered(w_.channel_);
      std::lock_guard<std::mutex> lock(w_.mu_);
      w_.format_ = format;
      w_.size_ = size;
      w_.since_ = std::chrono::steady_clock::now();
      w_.active_ = true;
    }
    ~Guard() {
      {
        std::lock_guard<std::mutex> lock(w_.mu_);
        w_.active_ = false;
      }
      if (collective_) progress::finished(w_.channel_);
    }
    WatchdogCommunicator& w_;
    bool collective_;
  };

  void watch() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(200));
      if (!active_) continue;
      const double waited =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - since_).count();
      if (waited > timeout_s_) {
        // Marked first, so that the SIGTERM the launcher sends every rank once MPI_Abort runs is
        // not announced as a stop that saves a checkpoint (here, or on ranks of this host).
        mark_aborting();
        char op[128];
        std::snprintf(op, sizeof op, format_, size_);
        const std::int64_t n = progress::entered_count(channel_);
        const std::string which =
            progress::describe_laggards(channel_, n, std::min(5.0, timeout_s_));
        const std::string number =
            channel_ >= 0 ? " (collective #" + std::to_string(n) + " on this communicator)" : "";
        std::fprintf(stderr,
                     "%salexnet: error: %s%s did not complete within --comm-timeout %g s; %s -- "
                     "aborting the job\n",
                     who_.c_str(), op, number.c_str(), timeout_s_, which.c_str());
        std::fflush(stderr);
        abort_job(1);
      }
    }
  }

  std::unique_ptr<Communicator> inner_;
  double timeout_s_;
  std::string who_;
  int channel_;  // on the progress board; -1: not tracked
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, active_ = false;
  const char* format_ = "";
  std::size_t size_ = 0;
  std::chrono::steady_clock::time_point since_;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<Communicator> with_watchdog(std::unique_ptr<Communicator> inner, double timeout_s,
                                            std::string who) {
  if (timeout_s <= 0) return inner;
  return std::make_unique<WatchdogCommunicator>(std::move(inner), timeout_s, std::move(who));
}

}  // namespace distnet
