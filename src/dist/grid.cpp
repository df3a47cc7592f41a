#include "distnet/grid.hpp"

#include <string>

#include "distnet/mpi_check.hpp"

namespace distnet {

void check_grid_shape(int world_size, int model_parallel) {
  if (model_parallel < 1)
    throw UsageError("--model-parallel must be at least 1, got " + std::to_string(model_parallel));
  if (world_size % model_parallel == 0) return;
  std::string divisors;
  for (int d = 1; d <= world_size; ++d)
    if (world_size % d == 0) divisors += (divisors.empty() ? "" : ", ") + std::to_string(d);
  throw UsageError("--model-parallel " + std::to_string(model_parallel) +
                   " does not divide the world of " + std::to_string(world_size) +
                   " ranks into groups; expected one of " + divisors);
}

Grid::Grid(MPI_Comm world_comm, Communicator& world, int model_parallel,
           const CommunicatorFactory& make)
    : world_(world), size_(world.size()), rank_(world.rank()), m_(model_parallel) {
  check_grid_shape(size_, m_);
  if (m_ == 1) return;
  // Split communicators are only a source to duplicate: each Communicator owns its own copy.
  auto split = [&](int color) {
    MPI_Comm c = MPI_COMM_NULL;
    DISTNET_CHECK_MPI(MPI_Comm_split(world_comm, color, rank_, &c));
    auto comm = make(c);
    MPI_Comm_free(&c);
    return comm;
  };
  group_ = split(group());
  shard_ = split(shard());
  DISTNET_CHECK(
      group_->size() == m_ && group_->rank() == shard(),
      "grid: the group communicator does not have the expected " + std::to_string(m_) + " ranks");
}

CommBytes Grid::bytes_sent() const {
  CommBytes b = world_.bytes_sent();
  if (group_) b += group_->bytes_sent();
  if (shard_) b += shard_->bytes_sent();
  return b;
}

void Grid::reset_bytes() {
  world_.reset_bytes();
  if (group_) group_->reset_bytes();
  if (shard_) shard_->reset_bytes();
}

Range split_range(std::int64_t total, int pieces, int index) {
  const std::int64_t base = total / pieces, extra = total % pieces;
  const std::int64_t begin = index * base + std::min<std::int64_t>(index, extra);
  return {begin, begin + base + (index < extra ? 1 : 0)};
}

}  // namespace distnet
