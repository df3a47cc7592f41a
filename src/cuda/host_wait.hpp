// Host waits on device work, always with a bound. Device work can depend on a collective (the
// compute stream waits for the communication stream's sums), and a collective can hang when a
// peer dies; an unbounded cudaStreamSynchronize would then hang this rank with it. These waits
// poll instead, and give up after --comm-timeout. Private to src/cuda.
#pragma once

#include <cuda_runtime.h>

#include <chrono>
#include <string>
#include <thread>

#include "core/bounded_wait.hpp"
#include "distnet/cuda_check.hpp"
#include "distnet/error.hpp"

namespace distnet::cuda {

// Polls `event` (spinning first, then sleeping 50 us between queries) until it has happened:
// true; false when `timeout_s` > 0 seconds passed first. A device error is thrown. `between`,
// if given, runs after every query that found the event pending (e.g. to check NCCL's error
// state, throwing to stop the wait). The order of queries and clock readings is
// core/bounded_wait.hpp's poll_until, tested there with a fake clock.
template <typename Between>
bool wait_event_for(cudaEvent_t event, double timeout_s, Between between) {
  using Clock = std::chrono::steady_clock;
  const auto origin = Clock::now();
  const auto done = [&] {
    const cudaError_t q = cudaEventQuery(event);
    if (q == cudaSuccess) return true;
    if (q != cudaErrorNotReady) DISTNET_CUDA_CHECK(q);
    return false;
  };
  const auto now = [&] { return std::chrono::duration<double>(Clock::now() - origin).count(); };
  const auto pause = [](long spins) {
    if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
  };
  return poll_until(done, between, now, pause, timeout_s) == WaitEnd::done;
}

// Polls `done()` (which may throw) as wait_event_for polls an event: true once it says so, false
// after `timeout_s` > 0 seconds.
template <typename Done>
bool wait_until(Done done, double timeout_s) {
  using Clock = std::chrono::steady_clock;
  const auto origin = Clock::now();
  const auto now = [&] { return std::chrono::duration<double>(Clock::now() - origin).count(); };
  const auto pause = [](long spins) {
    if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
  };
  return poll_until(
             done, [] {}, now, pause, timeout_s) == WaitEnd::done;
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
