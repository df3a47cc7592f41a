// The communicator: what the trainer needs from the other ranks. Two implementations share this
// interface -- MPI (host buffers, here) and NCCL (GPU buffers) -- and the model never knows which.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <memory>
#include <string>

#include "distnet/backend.hpp"

namespace distnet {

class Timeline;

// How gradient buckets travel: as they are (fp32), or as a bfloat16 copy (half the bytes; 8 bits
// of mantissa, so each rank's contribution and each partial sum is rounded to bf16).
enum class Wire { fp32, bf16 };
Wire parse_wire(const std::string& name);  // "none"/"fp32" or "bf16"; UsageError otherwise

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
};

// Owns a duplicate of `comm`, so distnet's traffic never mixes with anyone else's.
std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm);

// MPI on device buffers of `backend` by copying through host memory (for --comm mpi on GPUs,
// without relying on a CUDA-aware MPI). For a CPU backend: `host` itself.
std::unique_ptr<Communicator> through_host(std::unique_ptr<Communicator> host, Backend& backend);

// Wraps `inner` so that a collective still waiting after `timeout_s` seconds prints
// "<who>alexnet: error: <operation> did not complete within ..." and aborts the job (MPI_Abort).
// timeout_s <= 0 returns `inner` unchanged.
std::unique_ptr<Communicator> with_watchdog(std::unique_ptr<Communicator> inner, double timeout_s,
                                            std::string who);

}  // namespace distnet
