// The process grid (docs/process-grid.md): the world of N ranks as N/M groups of M consecutive
// ranks. Within a group the convolutions are data-parallel and the dense layers are split by
// neurons into M shards; across groups everything is data-parallel. The grid is the one place
// that knows this: it owns the sub-communicators (the group; the ranks holding the same shard in
// every group) and says who holds which shard, so no flag is threaded through the layers.
// M = 1 is pure data parallelism: no sub-communicator is made, and the "same shard"
// communicator is the world itself.
#pragma once

#include <mpi.h>

#include <functional>
#include <memory>

#include "distnet/comm.hpp"

namespace distnet {

// Throws UsageError (one line) unless 1 <= model_parallel and it divides world_size.
void check_grid_shape(int world_size, int model_parallel);

// Makes a communicator on the backend's buffers for an MPI communicator (MPI, NCCL, ...).
using CommunicatorFactory = std::function<std::unique_ptr<Communicator>(MPI_Comm)>;

class Grid {
 public:
  // `world` is the model's communicator over all ranks of `world_comm` (not owned). A collective
  // over world_comm when model_parallel > 1 (it splits it).
  Grid(MPI_Comm world_comm, Communicator& world, int model_parallel,
       const CommunicatorFactory& make);
  Grid(const Grid&) = delete;
  Grid& operator=(const Grid&) = delete;

  int size() const { return size_; }         // N
  int rank() const { return rank_; }         // in the world
  int model_parallel() const { return m_; }  // M: ranks per group, shards per layer
  int groups() const { return size_ / m_; }  // N / M data-parallel replicas
  int group() const { return rank_ / m_; }   // this rank's group
  int shard() const { return rank_ % m_; }   // the shard it holds (rank in group)
  bool hybrid() const { return m_ > 1; }
  int holder(int group, int shard) const { return group * m_ + shard; }  // world rank

  Communicator& world() const { return world_; }
  // The M ranks of this group (null when M = 1: nothing is split).
  Communicator* group_comm() const { return group_.get(); }
  // The N / M ranks that hold this rank's shard, one per group (the world when M = 1).
  Communicator& shard_comm() const { return shard_ ? *shard_ : world_; }

  // Bytes sent over all of the grid's communicators since the last reset.
  CommBytes bytes_sent() const;
  void reset_bytes();

 private:
  Communicator& world_;
  int size_ = 1, rank_ = 0, m_ = 1;
  std::unique_ptr<Communicator> group_, shard_;
};

// Rows [begin, end) of `total` that piece `index` of `pieces` holds: sizes differ by at most one,
// the larger ones first (the same rule as the batch split).
struct Range {
  std::int64_t begin = 0, end = 0;
  std::int64_t size() const { return end - begin; }
};
Range split_range(std::int64_t total, int pieces, int index);

}  // namespace distnet
