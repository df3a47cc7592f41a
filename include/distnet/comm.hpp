// The communicator: what the trainer needs from the other ranks. Two implementations share this
// interface -- MPI (host buffers, here) and NCCL (GPU buffers) -- and the model never knows which.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "distnet/backend.hpp"

namespace distnet {

class Timeline;

// How gradient buckets travel: as they are (fp32), or as a bfloat16 copy (half the bytes; 8 bits
// of mantissa, so each rank's contribution and each partial sum is rounded to bf16).
enum class Wire { fp32, bf16 };
Wire parse_wire(const std::string& name);  // "none"/"fp32" or "bf16"; UsageError otherwise

// Bytes one rank sends, by operation, counted by the ring-algorithm convention (the figure a
// bandwidth-bound ring or pipelined implementation sends per rank, whatever algorithm actually
// runs; docs/scaling-model.md). For a payload of n bytes on p ranks:
//   all-reduce n bytes:                    2(p-1)/p * n
//   all-gather into n bytes (p pieces):    (p-1)/p * n
//   reduce-scatter of n bytes (p pieces):  (p-1)/p * n
//   broadcast of n bytes:                  (p-1)/p * n   (pipelined; the mean over ranks)
// One rank (p = 1) sends nothing. Counted bytes are exact and machine-independent.
enum class CollectiveOp { allreduce, allgather, reduce_scatter, broadcast };
constexpr int kCollectiveOps = 4;
const char* collective_name(CollectiveOp op);  // "all-reduce", "all-gather", ...
double ring_bytes_sent(CollectiveOp op, double payload_bytes, int ranks);

struct CommBytes {
  double sent[kCollectiveOps] = {0, 0, 0, 0};           // by CollectiveOp
  std::int64_t payload[kCollectiveOps] = {0, 0, 0, 0};  // n above, summed over calls
  double of(CollectiveOp op) const { return sent[static_cast<int>(op)]; }
  double total() const { return sent[0] + sent[1] + sent[2] + sent[3]; }
  CommBytes& operator+=(const CommBytes& o);
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place: every rank ends with the element-wise sum over all ranks.
  virtual void allreduce_sum(float* data, std::size_t count) = 0;
  virtual void allreduce_sum(double* data, std::size_t count) = 0;
  virtual void broadcast(void* data, std::size_t bytes, int root) = 0;
  virtual void barrier() = 0;
  // Every rank contributes `count` floats; `recv` (size() * count floats) ends with rank r's
  // piece at r * count, on every rank. In place when send == recv + rank() * count. Pieces are
  // equal: callers with uneven pieces pad them to the largest (see docs/process-grid.md).
  virtual void allgather(const float* send, float* recv, std::size_t count) = 0;
  // `send` holds size() * count floats; rank r's `recv` (count floats) ends with the sum over all
  // ranks of their send[r * count, (r + 1) * count). `recv` must not overlap `send`.
  virtual void reduce_scatter_sum(const float* send, float* recv, std::size_t count) = 0;
  // A sum over ranks inside a forward or backward pass (--sync-bn's batch-norm statistics): in
  // place, `count` floats on the backend's device that are final once the work already queued on
  // the backend has run; backend work queued after the call reads the sums. Ordered with the
  // backend's work, not with the host, as allgather and reduce_scatter_sum are: NCCL queues it on
  // its stream behind an event of the compute stream and makes the compute stream wait for it
  // (the host does not wait). Communicators whose collectives return complete (MPI, MPI through
  // host memory) simply call allreduce_sum. Counted as an all-reduce.
  virtual void allreduce_sum_in_pass(float* data, std::size_t count) { allreduce_sum(data, count); }
  // The bytes this rank sent since the last reset (the convention above). Wrappers forward to
  // the communicator they wrap, so each byte is counted once.
  virtual CommBytes bytes_sent() const { return counted_; }
  virtual void reset_bytes() { counted_ = CommBytes{}; }
  // Seconds the caller's work waited on this communicator's all-gathers and reduce-scatters (the
  // hybrid grid's activation exchange), summed since it was made; callers take differences.
  // Where the calls block (MPI; MPI through host memory) it is the host time inside them, after
  // the device has finished the input. NCCL times each one on its stream with CUDA events
  // (the compute stream waits for the result, so the time is on the step's critical path); the
  // figure is complete once the device has been synchronised.
  virtual double exchange_seconds() { return exchange_s_; }

  // Gradient buckets. Starts an in-place sum over ranks of `count` floats that are final once the
  // work already queued on the model's backend has run. The sums may be read only by backend
  // work queued after wait_pending(). The MPI communicator (host memory) simply sums before it
  // returns; NCCL queues the sum on its own stream, behind an event of the compute stream.
  virtual void allreduce_sum_async(float* data, std::size_t count, Wire wire);
  // Orders every started sum before backend work queued from now on (NCCL: the compute stream
  // waits for the communication stream; the host does not wait).
  virtual void wait_pending() {}
  // Device-side spans of the gradient buckets on the communication stream (NCCL), recorded into
  // `timeline` from now on; communicators that work on the calling thread record none.
  virtual void set_timeline(Timeline* timeline) { (void)timeline; }
  // The MPI communicator the collectives run on, where there is one (the MPI communicator's
  // duplicate; the watchdog forwards it); MPI_COMM_NULL otherwise. For naming ranks only.
  virtual MPI_Comm mpi_comm() const { return MPI_COMM_NULL; }

 protected:
  // Implementations call this once per collective with its payload n (see above).
  void count_bytes(CollectiveOp op, std::size_t payload_bytes);
  void add_exchange_seconds(double s) { exchange_s_ += s; }

 private:
  CommBytes counted_;
  double exchange_s_ = 0;
};

// Owns a duplicate of `comm`, so distnet's traffic never mixes with anyone else's.
std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm);

// MPI on device buffers of `backend` by copying through host memory (for --comm mpi on GPUs,
// without relying on a CUDA-aware MPI). For a CPU backend: `host` itself.
std::unique_ptr<Communicator> through_host(std::unique_ptr<Communicator> host, Backend& backend);

// Wraps `inner` so that a collective still waiting after `timeout_s` seconds prints
// "<who>alexnet: error: <operation> did not complete within ...; ranks that have not reached it:
// R (host, last finished collective #k) -- aborting the job" and aborts the job (abort_job:
// MPI_Abort after this rank's last words). The ranks are read from the progress board
// (progress.hpp), where every guarded collective is counted. timeout_s <= 0 returns `inner`
// unchanged.
std::unique_ptr<Communicator> with_watchdog(std::unique_ptr<Communicator> inner, double timeout_s,
                                            std::string who);

}  // namespace distnet
