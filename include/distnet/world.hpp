// The world of ranks: MPI start-up and shut-down, who is where, and which device each rank drives.
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

namespace distnet {

// Initialises MPI (asking for thread support) for its lifetime; finalises in the destructor.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

 private:
  int provided_ = 0;
};

struct RankInfo {
  int rank = 0;
  std::string host;
  int local_rank = 0;
  std::string device;  // "cpu" or "cuda:N"
};

class World {
 public:
  explicit World(MPI_Comm comm = MPI_COMM_WORLD);

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }  // rank among the ranks on this host
  int local_size() const { return local_size_; }
  const std::string& host() const { return host_; }
  bool is_root() const { return rank_ == 0; }
  MPI_Comm comm() const { return comm_; }

  // Every rank with its host and device, in rank order (a collective).
  std::vector<RankInfo> gather_ranks(const std::string& my_device) const;

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  std::string host_;
};

// Rank and world size as the launcher announced them (Open MPI, MPICH/PMI, Slurm), readable
// before MPI_Init -- for reporting command-line errors once rather than on every rank.
int launcher_rank();

}  // namespace distnet
