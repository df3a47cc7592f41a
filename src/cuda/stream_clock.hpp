// The DeviceClock of one CUDA stream (distnet/device_clock.hpp). Private to src/cuda.
//
// Marks are timing events recorded into the stream. Their times are put on the host's clock as a
// chain: the first mark is taken while the stream is idle and is bracketed by two host clock
// readings; every later mark's time is the previous mark's time plus the device-measured interval
// between the two (cudaEventElapsedTime). So spans of one stream keep the device's own order and
// durations, the whole chain is within a few microseconds of the host's clock at the start, and
// it drifts from it only as the GPU's and the CPU's oscillators differ. Intervals between
// neighbouring marks are short, so the float milliseconds that CUDA reports lose nothing.
#pragma once

#include <cuda_runtime.h>

#include <mutex>
#include <vector>

#include "distnet/device_clock.hpp"
#include "handles.hpp"

namespace distnet::cuda {

class StreamClock final : public DeviceClock {
 public:
  // Waits once for the work queued on `stream` so far, to take the first mark: at most
  // `timeout_s` seconds (--comm-timeout; 0: no bound), then Error.
  StreamClock(cudaStream_t stream, double timeout_s, int capacity = 8192);
  int mark() override;
  bool read(int id, double* us) override;
  void release(int id) override;

 private:
  // Marks live in a ring in the order they were recorded. [resolved_, next_) are recorded and not
  // yet timed; a slot is handed out again once it is released and timed, except the newest timed
  // one, which the next interval is measured from.
  struct Slot {
    Event event;
    double us = 0;
    bool in_use = false;
  };
  std::size_t slot(long long n) const { return std::size_t(n % (long long)slots_.size()); }
  bool resolve_through(long long n);  // times marks up to the n-th; false when not all reached

  cudaStream_t stream_;
  std::mutex mu_;
  std::vector<Slot> slots_;
  long long oldest_ = 0;    // the oldest mark still held
  long long resolved_ = 0;  // marks before this one are timed
  long long next_ = 0;      // the next mark to record
};

}  // namespace distnet::cuda
