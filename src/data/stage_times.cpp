#include "distnet/data/stage_times.hpp"

namespace distnet::data {
namespace {
thread_local StageTimes* current = nullptr;
}  // namespace

void set_thread_stage_times(StageTimes* t) {
  current = t;
}
StageTimes* thread_stage_times() {
  return current;
}

}  // namespace distnet::data
