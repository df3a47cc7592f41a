#include "distnet/schedule.hpp"

#include <cmath>

#include "distnet/error.hpp"

namespace distnet {

double lr_at(const LrSchedule& s, std::int64_t step) {
  const double spe = static_cast<double>(s.steps_per_epoch);
  const auto warmup_steps = static_cast<std::int64_t>(std::llround(s.warmup_epochs * spe));
  if (step < warmup_steps) return s.base_lr * double(step + 1) / double(warmup_steps);
  const double epoch = double(step) / spe;
  switch (s.kind) {
    case LrSchedule::Kind::constant:
      return s.base_lr;
    case LrSchedule::Kind::step: {
      double lr = s.base_lr;
      for (double m : s.milestones)
        if (epoch >= m) lr *= s.gamma;
      return lr;
    }
    case LrSchedule::Kind::cosine: {
      const double span = double(std::max<std::int64_t>(1, s.total_steps - 1 - warmup_steps));
      const double t = std::min(1.0, double(step - warmup_steps) / span);
      return s.min_lr + (s.base_lr - s.min_lr) * 0.5 * (1.0 + std::cos(M_PI * t));
    }
    case LrSchedule::Kind::poly: {  // t as for cosine: lr_min at the last step
      const double span = double(std::max<std::int64_t>(1, s.total_steps - 1 - warmup_steps));
      const double t = std::min(1.0, double(step - warmup_steps) / span);
      return s.min_lr + (s.base_lr - s.min_lr) * std::pow(1.0 - t, s.power);
    }
  }
  return s.base_lr;
}

LrSchedule::Kind parse_schedule_kind(const std::string& name) {
  if (name == "constant") return LrSchedule::Kind::constant;
  if (name == "step") return LrSchedule::Kind::step;
  if (name == "cosine") return LrSchedule::Kind::cosine;
  if (name == "poly") return LrSchedule::Kind::poly;
  throw UsageError("--lr-schedule must be constant, step, cosine or poly, got '" + name + "'");
}

}  // namespace distnet
