// Host waits on device work, always with a bound. Device work can depend on a collective (the
// compute stream waits for the communication stream's sums), and a collective can hang when a
// peer dies; an unbounded cudaStreamSynchronize would then hang this rank with it. These waits
// poll instead, and give up after --comm-timeout. Private to src/cuda.
#pragma once

#include <cuda_runtime.h>

#include <chrono>
#include <string>
#include <thread>

#include "distnet/cuda_check.hpp"
#include "distnet/error.hpp"

namespace distnet::cuda {

// Polls `event` (spinning first, then sleeping 50 us between queries) until it has happened:
// true; false when `timeout_s` > 0 seconds passed first. A device error is thrown. `between`,
// if given, runs after every query that found the event pending (e.g. to check NCCL's error
// state, throwing to stop the wait).
template <typename Between>
bool wait_event_for(cudaEvent_t event, double timeout_s, Between between) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int spins = 0;; ++spins) {
    const cudaError_t q = cudaEventQuery(event);
    if (q == cudaSuccess) return true;
    if (q != cudaErrorNotReady) DISTNET_CUDA_CHECK(q);
    between();
    if (timeout_s > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s)
      return false;
    if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

inline bool wait_event_for(cudaEvent_t event, double timeout_s) {
  return wait_event_for(event, timeout_s, [] {});
}

// Everything queued on `stream` so far has run, or Error after `timeout_s`, naming `what`.
// `marker` is an event this wait may record on the stream.
inline void wait_stream(cudaStream_t stream, cudaEvent_t marker, double timeout_s,
                        const std::string& what) {
  DISTNET_CUDA_CHECK(cudaEventRecord(marker, stream));
  if (!wait_event_for(marker, timeout_s))
    throw Error("GPU work did not finish within --comm-timeout " + std::to_string(int(timeout_s)) +
                " s while " + what + "; it waits for a collective that a peer rank never joined");
}

}  // namespace distnet::cuda
