// Internal to distnet's sources: the steady clock that durations on the host are taken with.
#pragma once

#include <chrono>

namespace distnet::steady {

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace distnet::steady
