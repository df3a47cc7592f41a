// Parameter groups for fine-tuning: layers frozen through a named one (--freeze-through) and
// per-layer learning-rate factors (--lr-mult), as ranges of the flat parameter buffer that the
// optimizer updates each with its own factor (0: not at all, momentum and weight decay included).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "distnet/model.hpp"

namespace distnet {

struct UpdateRange {
  std::int64_t offset = 0, count = 0;  // floats of the flat buffers
  double lr_factor = 1.0;
};

struct ParamGroups {
  // Contiguous, covering the whole flat buffer, neighbours with equal factors merged: one range
  // with factor 1 when nothing was asked for.
  std::vector<UpdateRange> ranges;
  std::int64_t frozen_parameters = 0;
  std::string summary;  // for the log: "conv1 .. conv2 frozen (2,572 parameters); dense3 lr x 10"
  bool trivial() const { return ranges.size() == 1 && ranges[0].lr_factor == 1.0; }
};

// Throws UsageError for a layer name or pattern that matches no layer of `model`, naming the
// model's layers.
ParamGroups make_param_groups(const Model& model, const std::string& freeze_through,
                              const std::vector<std::pair<std::string, double>>& lr_mults);

}  // namespace distnet
