// The MPI communicator, for host buffers.
#include <climits>
#include <vector>

#include "core/clock.hpp"
#include "distnet/bf16.hpp"
#include "distnet/comm.hpp"
#include "distnet/mpi_check.hpp"
#include "distnet/timeline.hpp"

namespace distnet {

Wire parse_wire(const std::string& name) {
  if (name == "none" || name == "fp32") return Wire::fp32;
  if (name == "bf16") return Wire::bf16;
  throw UsageError("--grad-compression must be none or bf16, got '" + name + "'");
}

void Communicator::allreduce_sum_async(float* data, std::size_t count, Wire wire) {
  DISTNET_CHECK(wire == Wire::fp32, name() + " communicator cannot send bf16");
  allreduce_sum(data, count);
}

namespace {

using steady::seconds_since;

// MPI has no bfloat16 type: the values travel as 16-bit integers and this operation adds them,
// each addition in float and rounded back to bf16 (as a bf16 reduction on the wire does).
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const std::uint16_t*>(in);
  auto* b = static_cast<std::uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = float_to_bf16(bf16_to_float(a[i]) + bf16_to_float(b[i]));
}

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm) {
    DISTNET_CHECK_MPI(MPI_Comm_dup(comm, &comm_));
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    if (bf16_op_ != MPI_OP_NULL) MPI_Op_free(&bf16_op_);
    MPI_Comm_free(&comm_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  std::string name() const override { return "mpi"; }
  MPI_Comm mpi_comm() const override { return comm_; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void allreduce_sum(float* data, std::size_t count) override { reduce(data, count, MPI_FLOAT); }
  void allreduce_sum(double* data, std::size_t count) override { reduce(data, count, MPI_DOUBLE); }

  void broadcast(void* data, std::size_t bytes, int root) override {
    count_bytes(CollectiveOp::broadcast, bytes);
    auto* p = static_cast<char*>(data);
    // MPI counts are int: send large buffers in pieces.
    for (std::size_t done = 0; done < bytes;) {
      const int n = static_cast<int>(std::min<std::size_t>(bytes - done, INT_MAX));
      DISTNET_CHECK_MPI(MPI_Bcast(p + done, n, MPI_BYTE, root, comm_));
      done += static_cast<std::size_t>(n);
    }
  }

  void barrier() override { DISTNET_CHECK_MPI(MPI_Barrier(comm_)); }

  // Equal pieces (MPI_Allgather; MPI_Reduce_scatter with equal counts): the grid pads uneven
  // ones, so the same calls exist in NCCL. Counts are int in MPI; activations are far below the
  // limit. MPI_Reduce_scatter_block would say the same, but Open MPI 4.1 runs it as a reduce and
  // a scatter, 2-3x slower than MPI_Reduce_scatter's algorithms on 1-16 MB
  // (distnet_allreduce_bench --op reduce_scatter).
  void allgather(const float* send, float* recv, std::size_t count) override {
    count_bytes(CollectiveOp::allgather, count * std::size_t(size_) * sizeof(float));
    const int n = int_count(count, "all-gather");
    const bool in_place = send == recv + std::size_t(rank_) * count;
    const auto t0 = steady::Clock::now();
    const double t0_us = timeline_ ? Timeline::now_us() : 0.0;
    DISTNET_CHECK_MPI(
        MPI_Allgather(in_place ? MPI_IN_PLACE : send, n, MPI_FLOAT, recv, n, MPI_FLOAT, comm_));
    add_exchange_seconds(seconds_since(t0));
    if (timeline_) record("all-gather", t0_us, count * std::size_t(size_));
  }
  void reduce_scatter_sum(const float* send, float* recv, std::size_t count) override {
    count_bytes(CollectiveOp::reduce_scatter, count * std::size_t(size_) * sizeof(float));
    const int n = int_count(count, "reduce-scatter");
    counts_.assign(std::size_t(size_), n);
    const auto t0 = steady::Clock::now();
    const double t0_us = timeline_ ? Timeline::now_us() : 0.0;
    DISTNET_CHECK_MPI(MPI_Reduce_scatter(send, recv, counts_.data(), MPI_FLOAT, MPI_SUM, comm_));
    add_exchange_seconds(seconds_since(t0));
    if (timeline_) record("reduce-scatter", t0_us, count * std::size_t(size_));
  }

  void allreduce_sum_async(float* data, std::size_t count, Wire wire) override {
    if (wire == Wire::fp32) return reduce(data, count, MPI_FLOAT);
    count_bytes(CollectiveOp::allreduce, count * sizeof(std::uint16_t));
    wire_.resize(count);
    for (std::size_t i = 0; i < count; ++i) wire_[i] = float_to_bf16(data[i]);
    if (bf16_op_ == MPI_OP_NULL) DISTNET_CHECK_MPI(MPI_Op_create(&bf16_sum, 1, &bf16_op_));
    for (std::size_t done = 0; done < count;) {
      const int n = static_cast<int>(std::min<std::size_t>(count - done, INT_MAX / 8));
      DISTNET_CHECK_MPI(
          MPI_Allreduce(MPI_IN_PLACE, wire_.data() + done, n, MPI_UINT16_T, bf16_op_, comm_));
      done += static_cast<std::size_t>(n);
    }
    for (std::size_t i = 0; i < count; ++i) data[i] = bf16_to_float(wire_[i]);
  }

  // The activation collectives as spans on the "activation exchange" row (--timeline).
  void set_timeline(Timeline* timeline) override {
    timeline_ = timeline && timeline->enabled() ? timeline : nullptr;
  }

 private:
  void record(const char* what, double t0_us, std::size_t floats) {
    if (!timeline_->recording()) return;  // outside --timeline-steps: no string is made
    timeline_->span(Timeline::Track::exchange, what, "exchange", t0_us, Timeline::now_us(),
                    "{\"bytes\":" + std::to_string(floats * sizeof(float)) + "}");
  }
  int int_count(std::size_t count, const char* what) const {
    DISTNET_CHECK(count * std::size_t(size_) <= std::size_t(INT_MAX),
                  std::string(what) + " of " + std::to_string(count) + " floats per rank on " +
                      std::to_string(size_) + " ranks exceeds MPI's int count; expected at most " +
                      std::to_string(INT_MAX / size_));
    return static_cast<int>(count);
  }

  template <typename T>
  void reduce(T* data, std::size_t count, MPI_Datatype type) {
    count_bytes(CollectiveOp::allreduce, count * sizeof(T));
    for (std::size_t done = 0; done < count;) {
      const int n = static_cast<int>(std::min<std::size_t>(count - done, INT_MAX / 8));
      DISTNET_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, data + done, n, type, MPI_SUM, comm_));
      done += static_cast<std::size_t>(n);
    }
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  MPI_Op bf16_op_ = MPI_OP_NULL;
  std::vector<std::uint16_t> wire_;
  std::vector<int> counts_;  // MPI_Reduce_scatter's receive counts (all equal)
  Timeline* timeline_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm) {
  return std::make_unique<MpiCommunicator>(comm);
}

}  // namespace distnet
