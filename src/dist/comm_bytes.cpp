// Counting what a communicator sends, by the ring-algorithm convention of comm.hpp.
#include "distnet/comm.hpp"

namespace distnet {

const char* collective_name(CollectiveOp op) {
  switch (op) {
    case CollectiveOp::allreduce:
      return "all-reduce";
    case CollectiveOp::allgather:
      return "all-gather";
    case CollectiveOp::reduce_scatter:
      return "reduce-scatter";
    case CollectiveOp::broadcast:
      return "broadcast";
  }
  return "?";
}

double ring_bytes_sent(CollectiveOp op, double payload_bytes, int ranks) {
  if (ranks <= 1) return 0.0;
  const double share = double(ranks - 1) / double(ranks) * payload_bytes;
  return op == CollectiveOp::allreduce ? 2.0 * share : share;
}

CommBytes& CommBytes::operator+=(const CommBytes& o) {
  for (int i = 0; i < kCollectiveOps; ++i) {
    sent[i] += o.sent[i];
    payload[i] += o.payload[i];
  }
  return *this;
}

void Communicator::count_bytes(CollectiveOp op, std::size_t payload_bytes) {
  const int i = static_cast<int>(op);
  counted_.payload[i] += static_cast<std::int64_t>(payload_bytes);
  // Recomputed from the integer total, so the figure does not depend on how calls were cut.
  counted_.sent[i] = ring_bytes_sent(op, double(counted_.payload[i]), size());
}

}  // namespace distnet
