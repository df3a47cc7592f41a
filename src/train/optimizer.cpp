#include "distnet/optimizer.hpp"

#include <cmath>

#include "distnet/comm.hpp"
#include "distnet/error.hpp"

namespace distnet {

bool is_bias_or_norm(const ParamSpec& spec) {
  return spec.role == ParamRole::bias || spec.role == ParamRole::gamma ||
         spec.role == ParamRole::beta;
}

namespace {

// The factor of the group holding `offset`.
double factor_at(const ParamGroups& groups, std::int64_t offset) {
  for (const UpdateRange& r : groups.ranges)
    if (offset >= r.offset && offset < r.offset + r.count) return r.lr_factor;
  return 1.0;
}

}  // namespace

Optimizer::Optimizer(Model& model, const ParamGroups& groups, const OptimizerConfig& config)
    : m_(model), c_(config) {
  m_.set_optimizer(c_.name);
  const std::vector<ParamEntry>& params = m_.params();
  if (c_.name != "lars") {
    // Each tensor's range reaches to the next tensor (alignment padding), as the groups' do.
    for (std::size_t k = 0; k < params.size(); ++k) {
      const ParamEntry& e = params[k];
      const std::int64_t begin = k == 0 ? 0 : e.offset;
      const std::int64_t end = k + 1 < params.size() ? params[k + 1].offset : m_.flat_size();
      const Range r{begin, end - begin, factor_at(groups, e.offset),
                    !(c_.no_decay_bias_bn && is_bias_or_norm(e.spec))};
      if (!ranges_.empty() && ranges_.back().lr_factor == r.lr_factor &&
          ranges_.back().decay == r.decay)
        ranges_.back().count = end - ranges_.back().offset;
      else
        ranges_.push_back(r);
    }
    if (ranges_.empty()) ranges_.push_back(Range{0, m_.flat_size(), 1.0, true});
    return;
  }
  std::vector<LarsSegment> rest;
  for (const ParamEntry& e : params) {
    const double f = factor_at(groups, e.offset);
    if (f == 0.0) continue;  // frozen: neither updated nor its state touched
    const LarsSegment s{e.offset, e.spec.shape.numel(), float(f), is_bias_or_norm(e.spec) ? 0 : 1};
    (e.spec.is_piece() ? segments_ : rest).push_back(s);
  }
  pieces_ = int(segments_.size());
  segments_.insert(segments_.end(), rest.begin(), rest.end());
  Backend& be = m_.backend();
  const std::size_t bytes = sizeof(LarsSegment) * std::max<std::size_t>(1, segments_.size());
  segments_dev_ = be.allocate(bytes);
  if (!segments_.empty())
    be.upload(segments_dev_.data(), segments_.data(), sizeof(LarsSegment) * segments_.size());
  sums_ = be.allocate(sizeof(double) * 2 * std::max<std::size_t>(1, segments_.size()));
}

void Optimizer::step(double lr, std::int64_t t) {
  Backend& be = m_.backend();
  float* w = m_.param_data();
  const float* g = m_.grad_data();
  if (c_.name == "sgd") {
    const SgdParams sgd{static_cast<float>(lr), static_cast<float>(c_.momentum),
                        static_cast<float>(c_.weight_decay)};
    if (ranges_.size() == 1 && ranges_[0].lr_factor == 1.0 && ranges_[0].decay) {
      be.sgd_update(m_.flat_size(), w, g, m_.slot_data(0), sgd);
      return;
    }
    for (const Range& r : ranges_) {  // fine-tuning: each group at its own rate
      if (r.lr_factor == 0.0) continue;
      SgdParams p = sgd;
      p.lr = static_cast<float>(double(sgd.lr) * r.lr_factor);
      if (!r.decay) p.weight_decay = 0.0f;
      be.sgd_update(r.count, w + r.offset, g + r.offset, m_.slot_data(0) + r.offset, p);
    }
    return;
  }
  if (c_.name == "adamw") {
    DISTNET_CHECK(t >= 1, "an AdamW step number from 1");
    const double bc1 = 1.0 - std::pow(c_.beta1, double(t));
    const double bc2 = 1.0 - std::pow(c_.beta2, double(t));
    for (const Range& r : ranges_) {
      if (r.lr_factor == 0.0) continue;
      const double rate = lr * r.lr_factor;
      AdamWParams p;
      p.beta1 = float(c_.beta1), p.beta2 = float(c_.beta2), p.eps = float(c_.eps);
      p.decay = float(1.0 - rate * (r.decay ? c_.weight_decay : 0.0));
      p.step_size = float(rate / bc1);
      p.bias_correction2_sqrt = float(std::sqrt(bc2));
      be.adamw_update(r.count, w + r.offset, g + r.offset, m_.slot_data(0) + r.offset,
                      m_.slot_data(1) + r.offset, p);
    }
    return;
  }
  // LARS: the norms of every tensor, those of split tensors summed over the group (a piece's
  // sums are the first 2 * pieces_ doubles), then the update.
  const int n = int(segments_.size());
  if (n == 0) return;
  auto* segs = static_cast<const LarsSegment*>(segments_dev_.data());
  auto* sums = static_cast<double*>(sums_.data());
  be.lars_sums(n, segs, w, g, sums);
  if (pieces_ > 0 && m_.is_split())
    m_.split().group->allreduce_sum(sums, 2 * static_cast<std::size_t>(pieces_));
  const LarsParams p{static_cast<float>(lr), static_cast<float>(c_.momentum),
                     static_cast<float>(c_.weight_decay), static_cast<float>(c_.lars_trust)};
  be.lars_update(n, segs, sums, w, g, m_.slot_data(0), p);
}

}  // namespace distnet
