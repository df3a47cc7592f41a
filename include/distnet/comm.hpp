// The communicator: what the trainer needs from the other ranks. Two implementations share this
// interface -- MPI (host buffers, here) and NCCL (GPU buffers) -- and the model never knows which.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <memory>
#include <string>

namespace distnet {

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
};

// Owns a duplicate of `comm`, so distnet's traffic never mixes with anyone else's.
std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm);

// Wraps `inner` so that a collective still waiting after `timeout_s` seconds prints
// "<who>alexnet: error: <operation> did not complete within ..." and aborts the job (MPI_Abort).
// timeout_s <= 0 returns `inner` unchanged.
std::unique_ptr<Communicator> with_watchdog(std::unique_ptr<Communicator> inner, double timeout_s,
                                            std::string who);

}  // namespace distnet
