#include "distnet/param_groups.hpp"

#include <fnmatch.h>

#include <cstdio>

#include "distnet/error.hpp"

namespace distnet {
namespace {

std::string layer_list(const Model& m) {
  std::string s;
  for (const auto& l : m.layers())
    if (!l->param_specs().empty()) s += (s.empty() ? "" : ", ") + l->name();
  return s;
}

std::string factor_text(double f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", f);
  return buf;
}

}  // namespace

ParamGroups make_param_groups(const Model& model, const std::string& freeze_through,
                              const std::vector<std::pair<std::string, double>>& lr_mults) {
  const auto& layers = model.layers();
  const std::string model_name = model.config().name;
  std::vector<double> factor(layers.size(), 1.0);
  ParamGroups g;
  std::string frozen_text, mult_text;
  for (const auto& [pattern, f] : lr_mults) {
    bool any = false;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      if (::fnmatch(pattern.c_str(), layers[i]->name().c_str(), 0) != 0) continue;
      if (layers[i]->param_specs().empty()) continue;
      factor[i] = f, any = true;
    }
    if (!any)
      throw UsageError("--lr-mult " + pattern + "=" + factor_text(f) + ": no layer of model " +
                       model_name + " with parameters matches '" + pattern +
                       "' (its layers: " + layer_list(model) + ")");
    mult_text += (mult_text.empty() ? "" : ", ") + pattern + " lr x " + factor_text(f);
  }
  if (!freeze_through.empty()) {
    std::size_t last = layers.size();
    for (std::size_t i = 0; i < layers.size(); ++i)
      if (layers[i]->name() == freeze_through) last = i;
    if (last == layers.size())
      throw UsageError(
          "--freeze-through " + freeze_through + ": model " + model_name +
          " has no layer of that name (its layers with parameters: " + layer_list(model) + ")");
    for (std::size_t i = 0; i <= last; ++i) factor[i] = 0.0;
    frozen_text = layers[0]->name() + " .. " + freeze_through + " frozen";
  }
  // Ranges in buffer order; each tensor's range reaches to the next tensor (alignment padding).
  const auto& params = model.params();
  for (std::size_t k = 0; k < params.size(); ++k) {
    const ParamEntry& e = params[k];
    const double f = factor[std::size_t(e.layer)];
    const std::int64_t end = k + 1 < params.size() ? params[k + 1].offset : model.flat_size();
    if (f == 0.0) g.frozen_parameters += e.spec.shape.numel();
    if (!g.ranges.empty() && g.ranges.back().lr_factor == f)
      g.ranges.back().count = end - g.ranges.back().offset;
    else
      g.ranges.push_back(UpdateRange{e.offset, end - e.offset, f});
  }
  if (g.ranges.empty()) g.ranges.push_back(UpdateRange{0, model.flat_size(), 1.0});
  g.ranges.front().count += g.ranges.front().offset;  // from 0: padding before the first tensor
  g.ranges.front().offset = 0;
  if (!frozen_text.empty())
    g.summary = frozen_text + " (" + std::to_string(g.frozen_parameters) + " parameters)";
  if (!mult_text.empty()) g.summary += (g.summary.empty() ? "" : "; ") + mult_text;
  return g;
}

}  // namespace distnet
