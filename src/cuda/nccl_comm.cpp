// The NCCL communicator, for gradients in GPU memory. MPI only bootstraps it (rank 0's unique id
// is broadcast over MPI) and provides the barrier. Collectives run on the communicator's own
// stream: a bucket's all-reduce waits for an event of the compute stream (its gradients are
// written), and the optimizer's stream waits for an event of ours (the sums are complete), so the
// host never blocks on a bucket. The host does wait -- polling, with NCCL's asynchronous error
// state and --comm-timeout -- for blocking calls and for the previous step's buckets before a new
// step starts sending: a peer that hangs or dies is noticed within the timeout.
#include <dlfcn.h>
#include <mpi.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <thread>
#include <vector>

#include "core/bounded_wait.hpp"
#include "cuda_backend.hpp"
#include "distnet/abort.hpp"
#include "distnet/bootstrap.hpp"
#include "distnet/gpu.hpp"
#include "distnet/mpi_check.hpp"
#include "distnet/timeline.hpp"
#include "host_wait.hpp"
#include "kernels.hpp"
#include "stream_clock.hpp"

namespace distnet {
namespace cuda {
namespace {

// A stream at the device's greatest priority: collectives overlap the backward pass, and a
// bucket's kernels should not queue behind compute kernels the scheduler already has.
Stream make_priority_stream() {
  int least = 0, greatest = 0;
  DISTNET_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  cudaStream_t s = nullptr;
  DISTNET_CUDA_CHECK(cudaStreamCreateWithPriority(&s, cudaStreamNonBlocking, greatest));
  return Stream(s);
}

// ncclCommRevoke is new in NCCL 2.28, and a GPU node may bring an older libnccl (a PyTorch
// wheel's, say): it is looked up at run time in the libnccl already loaded, so the module loads
// either way. Null without it; the abort path then aborts each communicator without revoking
// (the order of NCCL before 2.28, which NVIDIA/nccl#549 warns about).
using RevokeFn = ncclResult_t (*)(ncclComm_t, int);
RevokeFn nccl_revoke() {
  static const RevokeFn fn = [] {
    void* lib = dlopen("libnccl.so.2", RTLD_LAZY | RTLD_NOLOAD);
    void* sym = dlsym(lib ? lib : RTLD_DEFAULT, "ncclCommRevoke");
    if (lib) dlclose(lib);  // only drops the reference RTLD_NOLOAD took
    return reinterpret_cast<RevokeFn>(sym);
  }();
  return fn;
}

// Non-blocking communicators: no NCCL call waits inside NCCL; one that returns ncclInProgress is
// polled (ncclCommGetAsyncError) by the caller, with a bound. So set-up, finalize and revoke can
// be bounded by --comm-timeout, and an abort never waits for a peer.
ncclConfig_t nonblocking_config() {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  return config;
}

class NcclCommunicator final : public Communicator {
 public:
  // Over the ranks of `comm`. With `parent` (an NCCL communicator over a superset of them, whose
  // every rank makes its own sub-communicator in the same order, as the grid does), the new one
  // is split from it (ncclCommSplit: no new bootstrap, resources shared where NCCL can); without,
  // it is made from a unique id broadcast over MPI.
  NcclCommunicator(MPI_Comm comm, CudaBackend& be, double timeout_s, std::string who,
                   NcclCommunicator* parent)
      : be_(be), timeout_s_(timeout_s), who_(std::move(who)) {
    DISTNET_CHECK_MPI(MPI_Comm_dup(comm, &mpi_));
    MPI_Comm_set_errhandler(mpi_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(mpi_, &rank_);
    MPI_Comm_size(mpi_, &size_);
    DISTNET_CUDA_CHECK(cudaSetDevice(be.device().index));
    ncclConfig_t config = nonblocking_config();
    if (parent) {
      // Colour: the parent rank of our communicator's first rank (the same on all its ranks).
      MPI_Group mine = MPI_GROUP_NULL, theirs = MPI_GROUP_NULL;
      MPI_Comm_group(mpi_, &mine);
      MPI_Comm_group(parent->mpi_, &theirs);
      int zero = 0, color = 0;
      MPI_Group_translate_ranks(mine, 1, &zero, theirs, &color);
      MPI_Group_free(&mine);
      MPI_Group_free(&theirs);
      DISTNET_CHECK(color >= 0, "NCCL split: a sub-communicator outside its parent");
      run_with_deadline(
          [&] {
            // Collective over the parent; the new communicator's own state says when it is
            // ready (non-blocking: polled, even after ncclSuccess, which then returns at once).
            const ncclResult_t rc = ncclCommSplit(parent->comm_, color, rank_, &comm_, &config);
            settle(rc == ncclSuccess ? ncclInProgress : rc,
                   "NCCL communicator split (ncclCommSplit)");
          },
          timeout_s_, who_, "NCCL communicator split (ncclCommSplit)");
    } else {
      // Rank 0's unique id travels with whether making it worked (no usable network interface, a
      // wrong NCCL_SOCKET_IFNAME: the classic first multi-node error), so a failure there fails
      // every rank at once instead of leaving them waiting for the id.
      const std::vector<char> token = broadcast_token(
          mpi_,
          [] {
            ncclUniqueId id{};
            DISTNET_NCCL_CHECK(ncclGetUniqueId(&id));
            const char* p = reinterpret_cast<const char*>(&id);
            return std::vector<char>(p, p + sizeof id);
          },
          "NCCL set-up (ncclGetUniqueId)");
      ncclUniqueId id{};
      DISTNET_CHECK(token.size() == sizeof id, "NCCL unique id of the wrong size");
      std::memcpy(&id, token.data(), sizeof id);
      // Every rank waits in NCCL's bootstrap for all the others; one that failed before joining
      // would leave them there forever, so the initialisation runs under --comm-timeout. A rank
      // whose own initialisation fails throws, and main's set-up agreement ends the others.
      run_with_deadline(
          [&] {
            settle(ncclCommInitRankConfig(&comm_, size_, id, rank_, &config),
                   "NCCL initialisation (ncclCommInitRankConfig)");
          },
          timeout_s_, who_, "NCCL initialisation (ncclCommInitRankConfig)");
    }
    // From here on the abort path (abort.hpp) can revoke and abort this communicator.
    kill_ = std::make_unique<CommunicatorKill>([this] { revoke(); },
                                               [this] {
                                                 if (comm_) wait_quiet();
                                               },
                                               [this] { abort_now(); });
    stream_ = make_priority_stream();
    ready_ = make_event();
    done_ = make_event();
    result_ = make_event();
  }

  // Never blocks without a bound (core/bounded_wait.hpp's shut_down_comm, whose order is
  // tested there). Leaving because of an exception (this rank failed, or a peer did), collectives
  // may be queued that a failed peer will never match: revoke and abort -- normally the abort
  // path has done so already, for every communicator at once. On a normal end: let the queue
  // drain (polling NCCL's error state: after a network error there is nothing to wait for),
  // finalize, poll until quiet, destroy; any step that fails or times out ends in revoke + abort.
  ~NcclCommunicator() override {
    kill_.reset();  // the abort path leaves this one alone from now on
    if (comm_) {
      const CommShutdownSteps steps{
          [&] {
            DISTNET_CUDA_CHECK(cudaEventRecord(done_, stream_));
            return wait_event_for(done_, timeout_s_, [&] { throw_async_error("drain"); })
                       ? WaitEnd::done
                       : WaitEnd::timed_out;
          },
          [&] { check_started(ncclCommFinalize(comm_), "ncclCommFinalize"); },
          [&] { return wait_quiet(); },
          [&] { ncclCommDestroy(std::exchange(comm_, nullptr)); },
          [&] { revoke(); },
          [&] { abort_now(); }};
      shut_down_comm(steps, std::uncaught_exceptions() > 0);
    }
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&mpi_);
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  std::string name() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void allreduce_sum(float* data, std::size_t count) override {
    count_bytes(CollectiveOp::allreduce, count * sizeof(float));
    if (count == 0) return;
    after_compute();
    settle(ncclAllReduce(data, data, count, ncclFloat, ncclSum, comm_, stream_), "collective");
    finish_blocking("all-reduce of " + std::to_string(count) + " floats");
  }
  void allreduce_sum(double* data, std::size_t count) override {
    count_bytes(CollectiveOp::allreduce, count * sizeof(double));
    if (count == 0) return;
    after_compute();
    settle(ncclAllReduce(data, data, count, ncclDouble, ncclSum, comm_, stream_), "collective");
    finish_blocking("all-reduce of " + std::to_string(count) + " doubles");
  }
  void broadcast(void* data, std::size_t bytes, int root) override {
    count_bytes(CollectiveOp::broadcast, bytes);
    if (bytes == 0) return;
    after_compute();
    settle(ncclBroadcast(data, data, bytes, ncclChar, root, comm_, stream_), "collective");
    finish_blocking("broadcast of " + std::to_string(bytes) + " bytes");
  }
  // Bounded: the local queue drains (bounded wait), then a one-element all-reduce whose wait
  // polls NCCL's error state under --comm-timeout -- not MPI_Barrier, which has no bound.
  void barrier() override {
    be_.synchronize();
    if (!token_.data()) token_ = be_.allocate(sizeof(float));
    DISTNET_CUDA_CHECK(cudaMemsetAsync(token_.data(), 0, sizeof(float), stream_));
    settle(ncclAllReduce(token_.data(), token_.data(), 1, ncclFloat, ncclSum, comm_, stream_),
           "barrier");
    finish_blocking("barrier");
  }

  // Activations of the hybrid grid, ordered as the gradient buckets are: our stream waits for an
  // event of the compute stream (the input is written), the collective runs on our stream, and
  // the compute stream waits for an event of ours (the output is complete) -- the host does not
  // wait. A stuck peer is caught by the next blocking call or bucket wait, within the timeout.
  void allgather(const float* send, float* recv, std::size_t count) override {
    count_bytes(CollectiveOp::allgather, count * std::size_t(size_) * sizeof(float));
    if (count == 0) return;
    after_compute();
    const std::size_t timed = start_timed();
    const Timeline::DeviceMark begin =
        timeline_ ? timeline_->device_begin(clock_.get()) : Timeline::DeviceMark{};
    settle(ncclAllGather(send, recv, count, ncclFloat, comm_, stream_), "collective");
    exchange_span(begin, "all-gather", count * std::size_t(size_));
    end_timed(timed);
    before_compute();
  }
  void reduce_scatter_sum(const float* send, float* recv, std::size_t count) override {
    count_bytes(CollectiveOp::reduce_scatter, count * std::size_t(size_) * sizeof(float));
    if (count == 0) return;
    after_compute();
    const std::size_t timed = start_timed();
    const Timeline::DeviceMark begin =
        timeline_ ? timeline_->device_begin(clock_.get()) : Timeline::DeviceMark{};
    settle(ncclReduceScatter(send, recv, count, ncclFloat, ncclSum, comm_, stream_), "collective");
    exchange_span(begin, "reduce-scatter", count * std::size_t(size_));
    end_timed(timed);
    before_compute();
  }
  // --sync-bn's statistics, ordered like the activation exchange above (no host wait). On the
  // communicator's one stream it queues behind any gradient bucket already started, in the same
  // order on every rank.
  void allreduce_sum_in_pass(float* data, std::size_t count) override {
    count_bytes(CollectiveOp::allreduce, count * sizeof(float));
    if (count == 0) return;
    after_compute();
    settle(ncclAllReduce(data, data, count, ncclFloat, ncclSum, comm_, stream_), "collective");
    before_compute();
  }
  double exchange_seconds() override {
    read_timed();
    return Communicator::exchange_seconds();
  }

  void allreduce_sum_async(float* data, std::size_t count, Wire wire) override {
    count_bytes(CollectiveOp::allreduce,
                count * (wire == Wire::fp32 ? sizeof(float) : sizeof(std::uint16_t)));
    if (count == 0) return;
    if (!pending_) {
      // First bucket of a step: the previous step's sums must have arrived by now (the
      // optimizer already waited for them on the GPU); if they have not, a peer is stuck.
      wait_for(done_, "gradient all-reduce of the previous step");
      pending_ = true;
      bucket_ = 0;
    }
    after_compute();
    // The device-side span starts once our stream has waited for the gradients.
    const Timeline::DeviceMark begin =
        timeline_ ? timeline_->device_begin(clock_.get()) : Timeline::DeviceMark{};
    allreduce_on_stream(data, count, wire);
    if (begin.id >= 0) {
      char args[96];
      std::snprintf(args, sizeof args, "{\"bucket\":%zu,\"bytes\":%zu}", bucket_,
                    count * sizeof(float));
      timeline_->device_end(begin, Timeline::Track::gpu_comm,
                            "all-reduce bucket " + std::to_string(bucket_), "bucket", args);
    }
    ++bucket_;
  }

  void set_timeline(Timeline* timeline) override {
    timeline_ = timeline && timeline->enabled() ? timeline : nullptr;
    if (timeline_ && !clock_) clock_ = std::make_unique<StreamClock>(stream_, timeout_s_);
  }

  void wait_pending() override {
    if (!pending_) return;
    DISTNET_CUDA_CHECK(cudaEventRecord(done_, stream_));
    DISTNET_CUDA_CHECK(cudaStreamWaitEvent(be_.stream(), done_, 0));
    pending_ = false;
  }

 private:
  void allreduce_on_stream(float* data, std::size_t count, Wire wire) {
    if (wire == Wire::fp32) {
      settle(ncclAllReduce(data, data, count, ncclFloat, ncclSum, comm_, stream_), "collective");
      return;
    }
    // bf16 on the wire: convert, reduce, convert back, all in order on our stream.
    if (wire_.bytes() < count * sizeof(std::uint16_t)) {
      // The old copy may still be in use on our stream; the allocator only orders the compute
      // stream, so let it finish before the block goes back (happens in the first step only).
      DISTNET_CUDA_CHECK(cudaEventRecord(done_, stream_));
      wait_for(done_, "bf16 buffer resize");
      wire_ = be_.allocate(count * sizeof(std::uint16_t));
    }
    auto* w = static_cast<std::uint16_t*>(wire_.data());
    launch_to_bf16(std::int64_t(count), data, w, stream_);
    settle(ncclAllReduce(w, w, count, ncclBfloat16, ncclSum, comm_, stream_), "collective");
    launch_from_bf16(std::int64_t(count), w, data, stream_);
  }

  // The device-side span of an all-gather or reduce-scatter, on the "GPU activation exchange" row.
  void exchange_span(const Timeline::DeviceMark& begin, const char* what, std::size_t floats) {
    if (begin.id < 0) return;
    timeline_->device_end(begin, Timeline::Track::gpu_exchange, what, "exchange",
                          "{\"bytes\":" + std::to_string(floats * sizeof(float)) + "}");
  }

  // An all-gather or reduce-scatter timed on our stream by two events, read back without
  // waiting (cudaEventQuery) at the next exchange_seconds() or collective. The pairs form a ring
  // (oldest at timed_head_); their events are made on first use, so a step allocates nothing.
  struct Timed {
    Event begin, end;
  };
  static constexpr std::size_t kTimedSlots = 256;
  std::size_t start_timed() {
    read_timed();
    if (timed_count_ == kTimedSlots) {  // far ahead of the device: wait for the oldest
      wait_for(timed_[timed_head_].end, "activation exchange");
      read_timed();
    }
    const std::size_t slot = (timed_head_ + timed_count_) % kTimedSlots;
    Timed& t = timed_[slot];
    if (!t.begin.get()) t.begin = make_timing_event(), t.end = make_timing_event();
    DISTNET_CUDA_CHECK(cudaEventRecord(t.begin, stream_));
    return slot;
  }
  void end_timed(std::size_t slot) {
    DISTNET_CUDA_CHECK(cudaEventRecord(timed_[slot].end, stream_));
    ++timed_count_;
  }
  void read_timed() {
    while (timed_count_ > 0) {
      const Timed& t = timed_[timed_head_];
      const cudaError_t state = cudaEventQuery(t.end);
      if (state == cudaErrorNotReady) return;
      DISTNET_CUDA_CHECK(state);
      float ms = 0;
      DISTNET_CUDA_CHECK(cudaEventElapsedTime(&ms, t.begin, t.end));
      add_exchange_seconds(ms / 1000.0);
      timed_head_ = (timed_head_ + 1) % kTimedSlots;
      --timed_count_;
    }
  }

  // Our stream waits until everything queued so far on the compute stream has run.
  void after_compute() {
    DISTNET_CUDA_CHECK(cudaEventRecord(ready_, be_.stream()));
    DISTNET_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
  }

  // Compute work queued from now on waits until everything queued so far on our stream has run.
  void before_compute() {
    DISTNET_CUDA_CHECK(cudaEventRecord(result_, stream_));
    DISTNET_CUDA_CHECK(cudaStreamWaitEvent(be_.stream(), result_, 0));
  }

  void finish_blocking(const std::string& what) {
    DISTNET_CUDA_CHECK(cudaEventRecord(done_, stream_));
    wait_for(done_, what);
  }

  // Polls `ev` and NCCL's error state until the event has happened, NCCL reports an error
  // (thrown: main's error boundary takes the job down, abort.hpp), or --comm-timeout passes.
  void wait_for(cudaEvent_t ev, const std::string& what) {
    if (!wait_event_for(ev, timeout_s_, [&] { throw_async_error(what); })) timed_out(what);
  }

  // NCCL's asynchronous error state, thrown if it holds an error.
  void throw_async_error(const std::string& what) {
    ncclResult_t async = ncclSuccess;
    DISTNET_NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
    if (async != ncclSuccess && async != ncclInProgress)
      throw Error("NCCL " + what + " failed: " + ncclGetErrorString(async) + " (" +
                  ncclGetLastError(comm_) + ")");
  }

  // Polls the communicator's state until it is no longer ncclInProgress (a non-blocking call, a
  // finalize or a revoke has completed): done; an error state is thrown; timed_out after
  // --comm-timeout.
  WaitEnd wait_quiet() {
    const auto quiet = [&] {
      ncclResult_t state = ncclSuccess;
      DISTNET_NCCL_CHECK(ncclCommGetAsyncError(comm_, &state));
      if (state == ncclInProgress) return false;
      if (state != ncclSuccess)
        throw Error(std::string("NCCL communicator in error: ") + ncclGetErrorString(state));
      return true;
    };
    return wait_until(quiet, timeout_s_) ? WaitEnd::done : WaitEnd::timed_out;
  }

  // The result of a non-blocking NCCL call: in progress -- poll until it is not (bounded; a
  // timeout takes the job down); an error -- thrown.
  void settle(ncclResult_t rc, const std::string& what) {
    if (rc == ncclInProgress) {
      if (wait_quiet() == WaitEnd::timed_out) timed_out(what);
      return;
    }
    if (rc != ncclSuccess)
      throw Error("NCCL " + what + " failed: " + ncclGetErrorString(rc) + " (" +
                  ncclGetLastError(comm_) + ")");
  }

  // A call that starts something polled later (finalize, revoke): only a hard error is thrown.
  static void check_started(ncclResult_t rc, const char* what) {
    if (rc != ncclSuccess && rc != ncclInProgress)
      throw Error(std::string(what) + " failed: " + ncclGetErrorString(rc));
  }

  // Stops this communicator's in-flight work without waiting (the abort path, for every
  // communicator before any is aborted).
  void revoke() {
    if (!comm_ || revoked_ || !nccl_revoke()) return;
    revoked_ = true;
    check_started(nccl_revoke()(comm_, NCCL_REVOKE_DEFAULT), "ncclCommRevoke");
  }

  // Aborts the communicator (the callers have revoked it and waited, bounded, until quiet).
  void abort_now() {
    if (comm_) ncclCommAbort(std::exchange(comm_, nullptr));
  }

  // A collective that did not complete: name it and take the job down by the one abort path
  // (every communicator revoked, last words, MPI_Abort) -- no ncclCommAbort first, which could
  // itself wait for another communicator's kernels.
  [[noreturn]] void timed_out(const std::string& what) {
    mark_aborting();  // the SIGTERM that follows is not a stop request (abort.hpp)
    std::fprintf(stderr,
                 "%salexnet: error: NCCL %s did not complete within --comm-timeout %g s; a "
                 "peer rank has hung or died -- aborting the job\n",
                 who_.c_str(), what.c_str(), timeout_s_);
    std::fflush(stderr);
    fail_job(1, true);
    abort_job(1);  // not reached
  }

  CudaBackend& be_;
  double timeout_s_;
  std::string who_;
  MPI_Comm mpi_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  ncclComm_t comm_ = nullptr;
  Stream stream_;
  Event ready_, done_;
  Event result_;  // an all-gather or reduce-scatter is complete (for the compute stream)
  std::array<Timed, kTimedSlots> timed_;  // recorded on our stream; timed_count_ not yet read
  std::size_t timed_head_ = 0, timed_count_ = 0;
  Buffer wire_;   // bf16 copy of a bucket
  Buffer token_;  // barrier()'s one float
  bool revoked_ = false;
  std::unique_ptr<CommunicatorKill> kill_;  // registered with the abort path while comm_ lives
  bool pending_ = false;
  Timeline* timeline_ = nullptr;        // device-side bucket spans, with --timeline
  std::unique_ptr<StreamClock> clock_;  // of stream_, made when a timeline is set
  std::size_t bucket_ = 0;              // index of the next bucket in this step
};

}  // namespace
}  // namespace cuda

namespace gpu {

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, Backend& backend,
                                                     double timeout_s, const std::string& who,
                                                     Communicator* parent) {
  auto* be = dynamic_cast<cuda::CudaBackend*>(&backend);
  if (!be) throw UsageError("--comm nccl needs the CUDA backend (--device cuda)");
  return std::make_unique<cuda::NcclCommunicator>(comm, *be, timeout_s, who,
                                                  dynamic_cast<cuda::NcclCommunicator*>(parent));
}

}  // namespace gpu
}  // namespace distnet
