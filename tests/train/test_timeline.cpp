// The timeline's recorder: the ring bound, the step window, and the named ranges handed to an
// external profiler (--nvtx) -- checked with a recording annotator in place of NVTX.
#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "distnet/timeline.hpp"

using namespace distnet;

namespace {

std::mutex g_mu;
std::vector<std::string> g_calls;  // "push NAME" / "pop", in order
thread_local int g_depth = 0;      // per thread, as NVTX's range stacks are
int g_worst_depth = 0;

void record_push(const char* name) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_calls.push_back(std::string("push ") + name);
  g_worst_depth = std::max(g_worst_depth, ++g_depth);
}
void record_pop() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_calls.push_back("pop");
  --g_depth;
}

}  // namespace

TEST(Timeline, ScopesPushAndPopNestedRangesEvenWhenNotRecording) {
  g_calls.clear();
  Timeline tl;  // disabled: records nothing
  tl.set_annotator({record_push, record_pop});
  {
    Timeline::Scope step(&tl, Timeline::Track::compute, "step 0", "step");
    { Timeline::Scope f(&tl, Timeline::Track::compute, "forward conv1", "forward"); }
    { Timeline::Scope b(&tl, Timeline::Track::compute, "backward conv1", "backward"); }
  }
  const std::vector<std::string> want = {
      "push step 0", "push forward conv1", "pop", "push backward conv1", "pop", "pop"};
  EXPECT_EQ(g_calls, want);
  EXPECT_EQ(tl.events(), 0u);
}

TEST(Timeline, RangesBalanceOnEveryThread) {
  g_calls.clear();
  g_worst_depth = 0;
  Timeline tl(1000, 0, -1);
  tl.set_step(0);
  tl.set_annotator({record_push, record_pop});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&tl, t] {
      for (int i = 0; i < 50; ++i) {
        Timeline::Scope outer(&tl, Timeline::Track::loader, "load batch ", i, "loader");
        Timeline::Scope inner(&tl, Timeline::Track::loader, "decode ", t, "loader");
      }
      EXPECT_EQ(g_depth, 0);
    });
  for (auto& th : threads) th.join();
  std::size_t pushes = 0, pops = 0;
  for (const auto& c : g_calls) (c == "pop" ? pops : pushes)++;
  EXPECT_EQ(pushes, 400u);
  EXPECT_EQ(pops, 400u);
  EXPECT_EQ(g_worst_depth, 2);  // no thread's ranges leaked into another's
  EXPECT_EQ(tl.events(), 400u);
}

TEST(Timeline, TheRingKeepsTheNewestAndCountsTheDropped) {
  Timeline tl(1000, 0, -1);
  tl.set_step(0);
  for (int i = 0; i < 2500; ++i) tl.span(Timeline::Track::compute, "x", "c", i, i + 1);
  EXPECT_EQ(tl.events(), 1000u);
  EXPECT_EQ(tl.dropped(), 1500u);
}

TEST(Timeline, RecordsOnlyInsideTheStepWindow) {
  Timeline tl(1000, 2, 4);
  for (int step = 0; step < 6; ++step) {
    tl.set_step(step);
    Timeline::Scope s(&tl, Timeline::Track::compute, "step ", step, "step");
  }
  EXPECT_EQ(tl.events(), 2u);  // steps 2 and 3
}
