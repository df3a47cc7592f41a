// The NCCL communicator, for gradients in GPU memory. MPI only bootstraps it (rank 0's unique id
// is broadcast over MPI) and provides the barrier. Collectives run on the communicator's own
// stream: a bucket's all-reduce waits for an event of the compute stream (its gradients are
// written), and the optimizer's stream waits for an event of ours (the sums are complete), so the
// host never blocks on a bucket. The host does wait -- polling, with NCCL's asynchronous error
// state and --comm-timeout -- for blocking calls and for the previous step's buckets before a new
// step starts sending: a peer that hangs or dies is noticed within the timeout.
#include <mpi.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <thread>
#include <vector>

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

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(MPI_Comm comm, CudaBackend& be, double timeout_s, std::string who)
      : be_(be), timeout_s_(timeout_s), who_(std::move(who)) {
    DISTNET_CHECK_MPI(MPI_Comm_dup(comm, &mpi_));
    MPI_Comm_set_errhandler(mpi_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(mpi_, &rank_);
    MPI_Comm_size(mpi_, &size_);
    DISTNET_CUDA_CHECK(cudaSetDevice(be.device().index));
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
    run_with_deadline([&] { DISTNET_NCCL_CHECK(ncclCommInitRank(&comm_, size_, id, rank_)); },
                      timeout_s_, who_, "NCCL initialisation (ncclCommInitRank)");
    stream_ = make_stream();
    ready_ = make_event();
    done_ = make_event();
    result_ = make_event();
  }

  // Never blocks without a bound. Leaving because of an exception (this rank failed, or a peer
  // did and main is taking the job down), collectives may be queued that a failed peer will never
  // match: abort the communicator, which ends its kernels. On a normal end, give the queue
  // --comm-timeout to drain before destroying it, and abort if it does not.
  ~NcclCommunicator() override {
    if (comm_) {
      bool drained = false;
      if (std::uncaught_exceptions() == 0) {
        try {
          DISTNET_CUDA_CHECK(cudaEventRecord(done_, stream_));
          drained = wait_event_for(done_, timeout_s_);
        } catch (const std::exception&) {
        }
      }
      if (drained)
        ncclCommDestroy(comm_);
      else
        ncclCommAbort(comm_);
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
    DISTNET_NCCL_CHECK(ncclAllReduce(data, data, count, ncclFloat, ncclSum, comm_, stream_));
    finish_blocking("all-reduce of " + std::to_string(count) + " floats");
  }
  void allreduce_sum(double* data, std::size_t count) override {
    count_bytes(CollectiveOp::allreduce, count * sizeof(double));
    if (count == 0) return;
    after_compute();
    DISTNET_NCCL_CHECK(ncclAllReduce(data, data, count, ncclDouble, ncclSum, comm_, stream_));
    finish_blocking("all-reduce of " + std::to_string(count) + " doubles");
  }
  void broadcast(void* data, std::size_t bytes, int root) override {
    count_bytes(CollectiveOp::broadcast, bytes);
    if (bytes == 0) return;
    after_compute();
    DISTNET_NCCL_CHECK(ncclBroadcast(data, data, bytes, ncclChar, root, comm_, stream_));
    finish_blocking("broadcast of " + std::to_string(bytes) + " bytes");
  }
  void barrier() override {
    be_.synchronize();
    DISTNET_CHECK_MPI(MPI_Barrier(mpi_));
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
    DISTNET_NCCL_CHECK(ncclAllGather(send, recv, count, ncclFloat, comm_, stream_));
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
    DISTNET_NCCL_CHECK(ncclReduceScatter(send, recv, count, ncclFloat, ncclSum, comm_, stream_));
    exchange_span(begin, "reduce-scatter", count * std::size_t(size_));
    end_timed(timed);
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
    if (timeline_ && !clock_) clock_ = std::make_unique<StreamClock>(stream_);
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
      DISTNET_NCCL_CHECK(ncclAllReduce(data, data, count, ncclFloat, ncclSum, comm_, stream_));
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
    DISTNET_NCCL_CHECK(ncclAllReduce(w, w, count, ncclBfloat16, ncclSum, comm_, stream_));
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
  // (thrown: main prints it and aborts the job), or --comm-timeout passes (the communicator is
  // aborted, so its kernels end, and the whole job with it).
  void wait_for(cudaEvent_t ev, const std::string& what) {
    const bool done = wait_event_for(ev, timeout_s_, [&] {
      ncclResult_t async = ncclSuccess;
      DISTNET_NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
      if (async != ncclSuccess && async != ncclInProgress) {
        ncclCommAbort(std::exchange(comm_, nullptr));
        throw Error("NCCL " + what + " failed: " + ncclGetErrorString(async));
      }
    });
    if (done) return;
    mark_aborting();  // the SIGTERM that follows is not a stop request (abort.hpp)
    std::fprintf(stderr,
                 "%salexnet: error: NCCL %s did not complete within --comm-timeout %g s; a "
                 "peer rank has hung or died -- aborting the job\n",
                 who_.c_str(), what.c_str(), timeout_s_);
    std::fflush(stderr);
    ncclCommAbort(std::exchange(comm_, nullptr));
    abort_job(1);
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
  Buffer wire_;  // bf16 copy of a bucket
  bool pending_ = false;
  Timeline* timeline_ = nullptr;        // device-side bucket spans, with --timeline
  std::unique_ptr<StreamClock> clock_;  // of stream_, made when a timeline is set
  std::size_t bucket_ = 0;              // index of the next bucket in this step
};

}  // namespace
}  // namespace cuda

namespace gpu {

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, Backend& backend,
                                                     double timeout_s, const std::string& who) {
  auto* be = dynamic_cast<cuda::CudaBackend*>(&backend);
  if (!be) throw UsageError("--comm nccl needs the CUDA backend (--device cuda)");
  return std::make_unique<cuda::NcclCommunicator>(comm, *be, timeout_s, who);
}

}  // namespace gpu
}  // namespace distnet
