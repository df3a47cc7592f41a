// Pieces of tensors: the hybrid grid keeps one piece of each split dense tensor per rank, and
// initialisation and checkpoints work on whole tensors. A tensor is viewed as
// outer x full[axis] x inner; a piece holds [begin, begin + len) of the middle dimension.
#include <algorithm>

#include "distnet/layer.hpp"

namespace distnet {
namespace {

struct Strides {
  std::int64_t outer = 1, middle = 1, inner = 1;
};

Strides strides(const Shape& full, int axis) {
  DISTNET_CHECK(axis >= 0 && axis < full.rank(),
                "piece axis " + std::to_string(axis) + " outside a tensor of shape " + full.str());
  Strides s;
  for (int i = 0; i < axis; ++i) s.outer *= full[i];
  s.middle = full[axis];
  for (int i = axis + 1; i < full.rank(); ++i) s.inner *= full[i];
  return s;
}

template <typename Copy>
void for_each_run(const Shape& full, int axis, std::int64_t begin, std::int64_t len, Copy copy) {
  const Strides s = strides(full, axis);
  DISTNET_CHECK(begin >= 0 && len >= 0 && begin + len <= s.middle,
                "piece [" + std::to_string(begin) + ", " + std::to_string(begin + len) +
                    ") outside dimension " + std::to_string(axis) + " of " + full.str());
  const std::int64_t run = len * s.inner;
  for (std::int64_t o = 0; o < s.outer; ++o)
    copy((o * s.middle + begin) * s.inner, o * run, static_cast<std::size_t>(run));
}

}  // namespace

void extract_piece(const Shape& full, int axis, std::int64_t begin, std::int64_t len,
                   const float* whole, float* piece) {
  for_each_run(full, axis, begin, len, [&](std::int64_t w, std::int64_t p, std::size_t n) {
    std::copy(whole + w, whole + w + n, piece + p);
  });
}

void insert_piece(const Shape& full, int axis, std::int64_t begin, std::int64_t len,
                  const float* piece, float* whole) {
  for_each_run(full, axis, begin, len, [&](std::int64_t w, std::int64_t p, std::size_t n) {
    std::copy(piece + p, piece + p + n, whole + w);
  });
}

}  // namespace distnet
