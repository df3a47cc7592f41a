// The timeline's recorder: the ring bound, the step window, and the named ranges handed to an
// external profiler (--nvtx) -- checked with a recording annotator in place of NVTX.
#include <gtest/gtest.h>

#include <mpi.h>

#include <fstream>
#include <iterator>
#include <map>
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

// ---- device-side spans ---------------------------------------------------------------------
// A stand-in for a GPU stream's clock, driven by the test: marks are queued in order and the
// "device" reaches them when the test says so, at the times it says. (The CUDA clock itself,
// src/cuda/stream_clock.cpp, can only run on a GPU: the gpu.train_one_epoch test checks its
// spans in a real trace.)
namespace {

class StepClock final : public DeviceClock {
 public:
  explicit StepClock(int capacity) : held_(std::size_t(capacity), false) {}
  int mark() override {
    for (std::size_t i = 0; i < held_.size(); ++i)
      if (!held_[i]) {
        held_[i] = true;
        queued_.push_back(int(i));
        return int(i);
      }
    return -1;
  }
  bool read(int id, double* us) override {
    const auto it = times_.find(id);
    if (it == times_.end()) return false;
    *us = it->second;
    return true;
  }
  void release(int id) override {
    held_[std::size_t(id)] = false;
    times_.erase(id);
    ++released_;
  }
  // The device reaches the next `n` queued marks, at t, t + step, ...
  void run(int n, double t, double step) {
    for (int k = 0; k < n && next_ < queued_.size(); ++k) times_[queued_[next_++]] = t + k * step;
  }
  int released() const { return released_; }

 private:
  std::vector<bool> held_;
  std::vector<int> queued_;
  std::size_t next_ = 0;
  std::map<int, double> times_;
  int released_ = 0;
};

std::string written(Timeline& tl) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) MPI_Init(nullptr, nullptr);  // a singleton; each test is its own process
  const std::string path = ::testing::TempDir() + "/device_spans.json";
  tl.write(MPI_COMM_SELF, path, "here");
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST(TimelineDevice, SpansWaitForTheDeviceAndLandOnTheGpuRow) {
  Timeline tl(1000, 0, -1);
  StepClock clock(64);
  tl.set_device_clock(&clock);
  tl.set_step(0);
  {
    Timeline::Scope step(&tl, Timeline::Track::compute, "step ", 0, "step");
    { Timeline::Scope f(&tl, Timeline::Track::compute, "forward ", "conv1", "forward"); }
    // Host-only work (a wait, a vote) gets no device span.
    { Timeline::Scope w(&tl, Timeline::Track::compute, "wait for buckets", "comm"); }
  }
  EXPECT_EQ(tl.events(), 3u);  // the host spans only: the device has not run anything yet
  // Marks: step begin, forward begin, forward end, step end. The device reaches two of them.
  clock.run(2, 1000, 10);
  EXPECT_EQ(tl.collect_device_spans(), 2u);  // both spans still wait for their end marks
  EXPECT_EQ(tl.events(), 3u);
  clock.run(2, 1500, 100);  // forward ends at 1500, the step at 1600
  tl.set_step(1);           // collects what is done, without waiting
  EXPECT_EQ(tl.collect_device_spans(), 0u);
  EXPECT_EQ(tl.events(), 5u);
  EXPECT_EQ(clock.released(), 4);
  const std::string json = written(tl);
  EXPECT_NE(json.find("\"name\":\"GPU compute\""), std::string::npos) << json;
  EXPECT_EQ(json.find("\"name\":\"GPU communication\""), std::string::npos) << "an empty row";
  // The device's forward span: from 1010 to 1500 on the device clock, on row 5.
  EXPECT_NE(json.find("\"tid\":5,\"ts\":1010.000,\"name\":\"forward conv1\""), std::string::npos)
      << json;
  EXPECT_NE(json.find("\"dur\":490.000"), std::string::npos) << json;
  EXPECT_NE(json.find("\"dur\":600.000"), std::string::npos) << json;  // the step
  EXPECT_NE(json.find("\"device_spans_lost\":0"), std::string::npos) << json;
}

TEST(TimelineDevice, NoFreeMarkOrAnUnfinishedSpanIsCountedAsLost) {
  Timeline tl(1000, 0, -1);
  StepClock clock(3);
  tl.set_device_clock(&clock);
  tl.set_step(0);
  {
    Timeline::Scope a(&tl, Timeline::Track::compute, "forward ", "a", "forward");  // 2 marks
    Timeline::Scope b(&tl, Timeline::Track::compute, "forward ", "b", "forward");  // 1 free: lost
  }
  EXPECT_EQ(tl.device_spans_lost(), 1u);
  EXPECT_EQ(clock.released(), 1);  // b's begin mark went back
  // a never finishes on the device: the write gives its marks back and counts it.
  const std::string json = written(tl);
  EXPECT_EQ(tl.device_spans_lost(), 2u);
  EXPECT_EQ(clock.released(), 3);
  EXPECT_NE(json.find("\"device_spans_lost\":2"), std::string::npos) << json;
}

TEST(TimelineDevice, NothingIsMarkedOutsideTheWindow) {
  Timeline tl(1000, 5, 6);
  StepClock clock(8);
  tl.set_device_clock(&clock);
  tl.set_step(0);
  { Timeline::Scope f(&tl, Timeline::Track::compute, "forward ", "conv1", "forward"); }
  EXPECT_EQ(clock.mark(), 0) << "a mark was taken outside the window";
}
