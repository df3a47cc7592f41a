// The CUDA backend's rules for choosing a convolution algorithm (src/cuda/conv_choice.hpp), on
// the CPU: the fallback past candidates cuDNN refuses or whose workspace is too large, tensor-core
// candidates never taken under --math fp32, cuDNN's ranking kept otherwise. The same rules on a
// real cuDNN: tests/cuda/test_cuda_regressions.cpp.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cuda/conv_choice.hpp"

using namespace distnet::cuda;

namespace {

constexpr std::size_t MiB = std::size_t(1) << 20;

// A stand-in for cuDNN's workspace query: per candidate, accepted or not and the bytes; records
// which candidates were asked.
struct FakeCudnn {
  std::vector<WorkspaceAnswer> answers;
  std::vector<std::size_t> asked;
  WorkspaceAnswer operator()(std::size_t i) {
    asked.push_back(i);
    return answers.at(i);
  }
};

WorkspaceAnswer ok(std::size_t bytes) {
  return {true, bytes, ""};
}
WorkspaceAnswer refused() {
  return {false, 0, "CUDNN_STATUS_NOT_SUPPORTED"};
}

AlgoPick pick(const std::vector<AlgoCandidate>& c, bool fp32, std::size_t limit, FakeCudnn& f) {
  return pick_algorithm(c, fp32, false, limit, [&f](std::size_t i) { return f(i); });
}

TEST(ConvChoice, FallsBackPastARefusedCandidate) {
  // The heuristics' first suggestion is NOT_SUPPORTED on this descriptor: the second is taken.
  const std::vector<AlgoCandidate> c = {{6, true, CandidateMath::fma},
                                        {1, true, CandidateMath::fma}};
  FakeCudnn f{{refused(), ok(4 * MiB)}, {}};
  const AlgoPick p = pick(c, true, 64 * MiB, f);
  EXPECT_EQ(p.index, 1);
  EXPECT_EQ(p.workspace, 4 * MiB);
  EXPECT_EQ(p.rejected, "6: CUDNN_STATUS_NOT_SUPPORTED");
}

TEST(ConvChoice, FallsBackPastAWorkspaceOverTheLimit) {
  const std::vector<AlgoCandidate> c = {
      {7, true, CandidateMath::fma}, {2, true, CandidateMath::fma}, {0, true, CandidateMath::fma}};
  FakeCudnn f{{ok(2048 * MiB), ok(64 * MiB), ok(0)}, {}};
  const AlgoPick p = pick(c, true, 64 * MiB, f);
  EXPECT_EQ(p.index, 1);  // exactly the limit fits
  EXPECT_EQ(p.rejected, "7: 2048 MiB");
  FakeCudnn g{{ok(2048 * MiB), ok(64 * MiB), ok(0)}, {}};
  EXPECT_EQ(pick(c, true, 64 * MiB - 1, g).index, 2);  // a byte less: the zero-workspace one
}

TEST(ConvChoice, SkipsCandidatesThatFailedWithoutAskingForTheirWorkspace) {
  const std::vector<AlgoCandidate> c = {{5, false, CandidateMath::fma},
                                        {1, true, CandidateMath::fma}};
  FakeCudnn f{{ok(0), ok(0)}, {}};
  EXPECT_EQ(pick(c, true, 0, f).index, 1);
  EXPECT_EQ(f.asked, (std::vector<std::size_t>{1}));
}

TEST(ConvChoice, NeverTakesTensorCoresUnderFp32) {
  const std::vector<AlgoCandidate> c = {{1, true, CandidateMath::tensor_op},
                                        {1, true, CandidateMath::tensor_op_allow_conversion},
                                        {1, true, CandidateMath::fma}};
  FakeCudnn f{{ok(0), ok(0), ok(0)}, {}};
  EXPECT_EQ(pick(c, true, 64 * MiB, f).index, 2);
  EXPECT_EQ(f.asked, (std::vector<std::size_t>{2}));
  // Under TF32 cuDNN's ranking stands: the tensor-core candidate first.
  FakeCudnn g{{ok(0), ok(0), ok(0)}, {}};
  EXPECT_EQ(pick(c, false, 64 * MiB, g).index, 0);
}

TEST(ConvChoice, NeverTakesDownConversionEvenUnderTf32) {
  // ALLOW_CONVERSION lets cuDNN compute in FP16: refused in both math modes, without asking.
  const std::vector<AlgoCandidate> c = {{1, true, CandidateMath::tensor_op_allow_conversion},
                                        {1, true, CandidateMath::tensor_op}};
  FakeCudnn f{{ok(0), ok(0)}, {}};
  EXPECT_EQ(pick(c, false, 64 * MiB, f).index, 1);
  EXPECT_EQ(f.asked, (std::vector<std::size_t>{1}));
}

TEST(ConvChoice, DeterministicTakesOnlyDeterministicCandidates) {
  const std::vector<AlgoCandidate> c = {{3, true, CandidateMath::fma, false},
                                        {0, true, CandidateMath::fma, true}};
  FakeCudnn f{{ok(0), ok(0)}, {}};
  EXPECT_EQ(pick_algorithm(c, true, true, 64 * MiB, [&f](std::size_t i) { return f(i); }).index, 1);
  EXPECT_EQ(f.asked, (std::vector<std::size_t>{1}));
  FakeCudnn g{{ok(0), ok(0)}, {}};  // without it, cuDNN's fastest stands
  EXPECT_EQ(pick(c, true, 64 * MiB, g).index, 0);
}

TEST(ConvChoice, NoneFitsNamesEveryRejectedCandidate) {
  const std::vector<AlgoCandidate> c = {
      {7, true, CandidateMath::fma}, {2, true, CandidateMath::fma}, {3, false, CandidateMath::fma}};
  FakeCudnn f{{ok(3 * MiB), refused(), ok(0)}, {}};
  const AlgoPick p = pick(c, true, 1 * MiB, f);
  EXPECT_EQ(p.index, -1);
  EXPECT_EQ(p.rejected, "7: 3 MiB, 2: CUDNN_STATUS_NOT_SUPPORTED");
}

}  // namespace
