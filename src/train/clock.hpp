// Internal to src/train: the wall clock the trainer's parts share.
#pragma once

#include <chrono>

namespace distnet::train_clock {

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace distnet::train_clock
