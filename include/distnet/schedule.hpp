// Learning-rate schedules, as a pure function of the global step (so a resumed run continues
// exactly): constant, step (times gamma at each milestone epoch), cosine or poly (down to lr_min
// at the last step), optionally after a linear warm-up.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace distnet {

struct LrSchedule {
  enum class Kind { constant, step, cosine, poly };
  Kind kind = Kind::constant;
  double base_lr = 0.01;
  std::vector<double> milestones;  // epochs, for step
  double gamma = 0.1;              // for step
  double min_lr = 0.0;             // for cosine and poly
  double power = 2.0;              // for poly: min_lr + (base_lr - min_lr) * (1 - t)^power
  double warmup_epochs = 0.0;      // linear from base_lr / warmup_steps to base_lr
  std::int64_t steps_per_epoch = 1;
  std::int64_t total_steps = 1;
};

double lr_at(const LrSchedule& s, std::int64_t step);
LrSchedule::Kind parse_schedule_kind(const std::string& name);  // throws UsageError

}  // namespace distnet
