#include "stream_clock.hpp"

#include <chrono>

#include "distnet/error.hpp"
#include "host_wait.hpp"

namespace distnet::cuda {
namespace {

double host_us() {  // Timeline::now_us()'s clock
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

StreamClock::StreamClock(cudaStream_t stream, double timeout_s, int capacity)
    : stream_(stream), slots_(std::size_t(std::max(capacity, 2))) {
  for (Slot& s : slots_) s.event = make_timing_event();
  // The first mark, taken on an idle stream: the device passes it between the two readings.
  // Both waits bounded: the stream may be queued behind a collective a dead peer never joins.
  const Event idle = make_event();
  wait_stream(stream_, idle, timeout_s, "starting the device clock");
  Slot& first = slots_[0];
  const double before = host_us();
  DISTNET_CUDA_CHECK(cudaEventRecord(first.event, stream_));
  if (!wait_event_for(first.event, timeout_s))
    throw Error("the device clock's first mark did not pass within --comm-timeout");
  const double after = host_us();
  first.us = (before + after) / 2;
  next_ = resolved_ = 1;
  oldest_ = 0;  // held: the first interval is measured from it
}

int StreamClock::mark() {
  std::lock_guard<std::mutex> lock(mu_);
  // Free the slots at the old end that are released and timed, keeping the newest timed one.
  while (oldest_ < resolved_ - 1 && !slots_[slot(oldest_)].in_use) ++oldest_;
  if (next_ - oldest_ >= (long long)slots_.size()) return -1;
  Slot& s = slots_[slot(next_)];
  DISTNET_CUDA_CHECK(cudaEventRecord(s.event, stream_));
  s.in_use = true;
  return int(slot(next_++));
}

bool StreamClock::resolve_through(long long n) {
  while (resolved_ <= n) {
    Slot& s = slots_[slot(resolved_)];
    const cudaError_t q = cudaEventQuery(s.event);
    if (q == cudaErrorNotReady) return false;
    DISTNET_CUDA_CHECK(q);
    const Slot& prev = slots_[slot(resolved_ - 1)];
    float ms = 0;
    DISTNET_CUDA_CHECK(cudaEventElapsedTime(&ms, prev.event, s.event));
    s.us = prev.us + double(ms) * 1000.0;
    ++resolved_;
  }
  return true;
}

bool StreamClock::read(int id, double* us) {
  std::lock_guard<std::mutex> lock(mu_);
  // The id is a slot; the mark it holds is the one among [oldest_, next_) in that slot.
  long long n = oldest_ + ((id - (long long)slot(oldest_)) + (long long)slots_.size()) %
                              (long long)slots_.size();
  DISTNET_CHECK(n < next_ && slots_[std::size_t(id)].in_use, "device clock: no such mark");
  if (!resolve_through(n)) return false;
  *us = slots_[std::size_t(id)].us;
  return true;
}

void StreamClock::release(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  slots_[std::size_t(id)].in_use = false;
}

}  // namespace distnet::cuda
