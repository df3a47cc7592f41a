// The order of the one abort path and of a communicator's shut-down (core/bounded_wait.hpp), with
// stand-ins that record their calls: no MPI, no NCCL, no GPU, no timing.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "core/bounded_wait.hpp"
#include "distnet/abort.hpp"

using namespace distnet;

namespace {

struct Recorder {
  std::vector<std::string> calls;
  std::function<void()> note(const std::string& what) {
    return [this, what] { calls.push_back(what); };
  }
};

AbortSteps recorded(Recorder& r) {
  return {r.note("mark"), r.note("revoke all"), r.note("last words"),
          [&r](int code) { r.calls.push_back("MPI_Abort " + std::to_string(code)); },
          r.note("abort communicators")};
}

using Calls = std::vector<std::string>;

}  // namespace

// More than one rank: peers are told (MPI_Abort) before anything else can wait; NCCL's side is
// revoked first -- every communicator, none aborted one by one (NVIDIA/nccl#549).
TEST(AbortOrder, ManyRanksRevokeEveryCommunicatorThenAbortTheJob) {
  Recorder r;
  run_abort(recorded(r), true, 1);
  EXPECT_EQ(r.calls, (Calls{"mark", "revoke all", "last words", "MPI_Abort 1"}));
}

// One rank: nobody to tell; every communicator is revoked before any is aborted, and the caller's
// destructors (pinned buffers, the backend) come after.
TEST(AbortOrder, OneRankRevokesAllBeforeAbortingAny) {
  Recorder r;
  run_abort(recorded(r), false, 1);
  EXPECT_EQ(r.calls, (Calls{"revoke all", "abort communicators"}));
}

// The registry behind fail_job: every live communicator is revoked, then every one is waited for
// until quiet, then every one aborted; a destroyed one is no longer touched.
TEST(AbortOrder, RegisteredCommunicatorsAreAllRevokedThenAllAborted) {
  Recorder r;
  {
    CommunicatorKill world(r.note("revoke world"), r.note("quiet world"), r.note("abort world"));
    CommunicatorKill group(r.note("revoke group"), r.note("quiet group"), r.note("abort group"));
    { CommunicatorKill gone(r.note("revoke gone"), r.note("quiet gone"), r.note("abort gone")); }
    CommunicatorKill shard(r.note("revoke shard"), r.note("quiet shard"), r.note("abort shard"));
    fail_job(1, false);
  }
  EXPECT_EQ(r.calls,
            (Calls{"revoke world", "revoke group", "revoke shard", "quiet world", "quiet group",
                   "quiet shard", "abort world", "abort group", "abort shard"}));
  r.calls.clear();
  revoke_all_communicators();  // all unregistered
  EXPECT_TRUE(r.calls.empty());
}

// A throwing revoke, wait or abort does not stop the others.
TEST(AbortOrder, AFailingCommunicatorDoesNotStopTheOthers) {
  Recorder r;
  CommunicatorKill bad([] { throw std::runtime_error("revoke"); },
                       [] { throw std::runtime_error("quiet"); },
                       [] { throw std::runtime_error("abort"); });
  CommunicatorKill good(r.note("revoke good"), r.note("quiet good"), r.note("abort good"));
  fail_job(1, false);
  EXPECT_EQ(r.calls, (Calls{"revoke good", "quiet good", "abort good"}));
}

namespace {

struct FakeComm {
  Recorder r;
  WaitEnd drain = WaitEnd::done, quiet = WaitEnd::done;
  bool drain_throws = false;
  CommShutdownSteps steps() {
    return {[this] {
              r.calls.push_back("drain");
              if (drain_throws) throw std::runtime_error("NCCL error");
              return drain;
            },
            r.note("finalize"),
            [this] {
              r.calls.push_back("wait quiet");
              return quiet;
            },
            r.note("destroy"),
            r.note("revoke"),
            r.note("abort")};
  }
};

}  // namespace

TEST(CommShutdown, NormalEndDrainsFinalizesWaitsAndDestroys) {
  FakeComm c;
  EXPECT_EQ(shut_down_comm(c.steps(), false), CommEnd::destroyed);
  EXPECT_EQ(c.r.calls, (Calls{"drain", "finalize", "wait quiet", "destroy"}));
}

TEST(CommShutdown, ADrainThatTimesOutRevokesAndAborts) {
  FakeComm c;
  c.drain = WaitEnd::timed_out;
  EXPECT_EQ(shut_down_comm(c.steps(), false), CommEnd::aborted);
  EXPECT_EQ(c.r.calls, (Calls{"drain", "revoke", "wait quiet", "abort"}));
}

// After a network error the drain sees NCCL's error state and stops at once (it throws), instead
// of waiting the whole timeout for each of the grid's communicators.
TEST(CommShutdown, AnAsyncErrorDuringTheDrainRevokesAndAborts) {
  FakeComm c;
  c.drain_throws = true;
  EXPECT_EQ(shut_down_comm(c.steps(), false), CommEnd::aborted);
  EXPECT_EQ(c.r.calls, (Calls{"drain", "revoke", "wait quiet", "abort"}));
}

// Revoking after finalize is invalid (nccl.h): a finalize that does not quiet down is aborted.
TEST(CommShutdown, AFinalizeThatDoesNotQuietDownIsAbortedWithoutRevoke) {
  FakeComm c;
  c.quiet = WaitEnd::timed_out;
  EXPECT_EQ(shut_down_comm(c.steps(), false), CommEnd::aborted);
  EXPECT_EQ(c.r.calls, (Calls{"drain", "finalize", "wait quiet", "abort"}));
}

TEST(CommShutdown, LeavingOnAnErrorNeverDrains) {
  FakeComm c;
  EXPECT_EQ(shut_down_comm(c.steps(), true), CommEnd::aborted);
  EXPECT_EQ(c.r.calls, (Calls{"revoke", "wait quiet", "abort"}));
}

// poll_until with a fake clock: the bound is kept whatever the polled thing does.
namespace {

struct FakeClock {
  double t = 0;
  double step = 0.25;  // each reading advances the clock
  int readings = 0;
  double operator()() {
    ++readings;
    return t += step;
  }
};

}  // namespace

TEST(BoundedWait, DoneWorkNeverTimesOutEvenWithAZeroBudget) {
  FakeClock clock;
  int queries = 0;
  const auto end =
      poll_until([&] { return ++queries, true; }, [] {}, std::ref(clock), [](long) {}, 1e-9);
  EXPECT_EQ(end, WaitEnd::done);
  EXPECT_EQ(queries, 1);
}

TEST(BoundedWait, PendingWorkGivesUpJustAfterTheTimeout) {
  FakeClock clock;
  int queries = 0, between = 0;
  long last_spin = -1;
  const auto end = poll_until([&] { return ++queries, false; }, [&] { ++between; }, std::ref(clock),
                              [&](long s) { last_spin = s; }, 2.0);
  EXPECT_EQ(end, WaitEnd::timed_out);
  // Readings at 0.25 (start), then 0.5, 0.75, ... : elapsed > 2 s at the 10th reading (2.5).
  EXPECT_EQ(queries, 9);
  EXPECT_EQ(between, 9);
  EXPECT_EQ(last_spin, 7);  // no pause after the last query
}

TEST(BoundedWait, WorkThatFinishesInTimeIsDone) {
  FakeClock clock;
  int queries = 0;
  const auto end =
      poll_until([&] { return ++queries == 4; }, [] {}, std::ref(clock), [](long) {}, 2.0);
  EXPECT_EQ(end, WaitEnd::done);
  EXPECT_EQ(queries, 4);
}

TEST(BoundedWait, AnErrorSeenBetweenQueriesStopsTheWait) {
  FakeClock clock;
  int queries = 0;
  EXPECT_THROW(poll_until([&] { return ++queries, false; },
                          [&] {
                            if (queries == 3) throw std::runtime_error("NCCL remote error");
                          },
                          std::ref(clock), [](long) {}, 100.0),
               std::runtime_error);
  EXPECT_EQ(queries, 3);
}

TEST(BoundedWait, ZeroTimeoutWaitsWithoutABound) {
  FakeClock clock;
  clock.step = 1000;
  int queries = 0;
  EXPECT_EQ(poll_until([&] { return ++queries == 50; }, [] {}, std::ref(clock), [](long) {}, 0),
            WaitEnd::done);
}
