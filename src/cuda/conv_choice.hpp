// The rules for choosing a convolution algorithm from cuDNN's ranked candidates, as a pure
// function of plain values, so that they are tested without a GPU (tests/ops/test_conv_choice.cpp)
// and conv2d.cpp only translates cuDNN's structures into them. Private to src/cuda.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace distnet::cuda {

// The math type a candidate runs with: FMA (FP32), tensor cores (TF32 for FP32 data), or tensor
// cores allowed to convert down.
enum class CandidateMath { fma, tensor_op, tensor_op_allow_conversion };

struct AlgoCandidate {
  int algo = 0;
  bool ran = false;  // cuDNN's status for it was success (it ran in Find, or was suggested)
  CandidateMath math = CandidateMath::fma;
  bool deterministic = true;  // cuDNN reports it CUDNN_DETERMINISTIC
};

// cuDNN's answer for one candidate's workspace on a descriptor set to the math it would run with.
struct WorkspaceAnswer {
  bool accepted = false;
  std::size_t bytes = 0;
  std::string error;  // cuDNN's message when not accepted
};

struct AlgoPick {
  int index = -1;  // into the candidates; -1: none fits
  std::size_t workspace = 0;
  std::string rejected;  // "algo: 2048 MiB, algo: CUDNN_STATUS_NOT_SUPPORTED, ..."
};

// Walks the candidates (fastest first) and keeps the first that (a) ran or was suggested without
// error, (b) has an allowed math: never tensor cores allowed to convert down (ALLOW_CONVERSION
// lets cuDNN convert FP32 operands to FP16, far coarser than TF32), and no tensor cores at all
// under --math fp32 (they would round the inputs to TF32), (b') under --deterministic, is
// reported deterministic, and (c) cuDNN accepts, with a workspace within `limit`, when asked on a
// descriptor set to its math (`workspace_of(i)`, FMA under fp32) -- heuristics list NOT_SUPPORTED
// combinations and under-estimate workspaces, so each candidate is checked before it is taken, and
// a later one is the fallback when the first fails.
inline AlgoPick pick_algorithm(const std::vector<AlgoCandidate>& candidates, bool fp32,
                               bool deterministic, std::size_t limit,
                               const std::function<WorkspaceAnswer(std::size_t)>& workspace_of) {
  AlgoPick pick;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const AlgoCandidate& c = candidates[i];
    if (!c.ran) continue;
    if (c.math == CandidateMath::tensor_op_allow_conversion) continue;
    if (fp32 && c.math != CandidateMath::fma) continue;
    if (deterministic && !c.deterministic) continue;
    const WorkspaceAnswer w = workspace_of(i);
    if (w.accepted && w.bytes <= limit) {
      pick.index = int(i);
      pick.workspace = w.bytes;
      return pick;
    }
    pick.rejected += (pick.rejected.empty() ? "" : ", ") + std::to_string(c.algo) + ": " +
                     (w.accepted ? std::to_string(w.bytes >> 20) + " MiB" : w.error);
  }
  return pick;
}

// Algorithm searches made so far in this process, per direction, and the largest scratch buffer
// handed to cudnnFind*Ex (from the caching allocator). For the GPU regression tests: the first
// layer never searches backward-data, Find*Ex gets the allocator's memory. Defined in conv2d.cpp.
struct ConvSearchCounts {
  long forward = 0, backward_data = 0, backward_filter = 0;
  std::size_t find_scratch_bytes = 0;
};
ConvSearchCounts conv_search_counts();

}  // namespace distnet::cuda
