// The MPI communicator, for host buffers.
#include <climits>

#include "distnet/comm.hpp"
#include "distnet/mpi_check.hpp"

namespace distnet {
namespace {

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
    if (!finalized) MPI_Comm_free(&comm_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  std::string name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void allreduce_sum(float* data, std::size_t count) override { reduce(data, count, MPI_FLOAT); }
  void allreduce_sum(double* data, std::size_t count) override { reduce(data, count, MPI_DOUBLE); }

  void broadcast(void* data, std::size_t bytes, int root) override {
    auto* p = static_cast<char*>(data);
    // MPI counts are int: send large buffers in pieces.
    for (std::size_t done = 0; done < bytes;) {
      const int n = static_cast<int>(std::min<std::size_t>(bytes - done, INT_MAX));
      DISTNET_CHECK_MPI(MPI_Bcast(p + done, n, MPI_BYTE, root, comm_));
      done += static_cast<std::size_t>(n);
    }
  }

  void barrier() override { DISTNET_CHECK_MPI(MPI_Barrier(comm_)); }

 private:
  template <typename T>
  void reduce(T* data, std::size_t count, MPI_Datatype type) {
    for (std::size_t done = 0; done < count;) {
      const int n = static_cast<int>(std::min<std::size_t>(count - done, INT_MAX / 8));
      DISTNET_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, data + done, n, type, MPI_SUM, comm_));
      done += static_cast<std::size_t>(n);
    }
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm) {
  return std::make_unique<MpiCommunicator>(comm);
}

}  // namespace distnet
