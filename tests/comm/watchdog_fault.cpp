// A rank that never reaches a collective, for tests/comm/test_watchdog_fault.sh:
//   watchdog_fault LATE TIMELINE     (LATE: a rank, or ranks separated by commas)
// Every rank starts as alexnet does (stop handlers, MpiSession with its progress board), records
// a few timeline spans, arms write_on_abort(TIMELINE), and runs three all-reduces under a 2 s
// watchdog. Then rank LATE sleeps without calling MPI while the others start a fourth: their
// watchdogs fire, name rank LATE, write their own timeline rows and abort the job.
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>

#include "distnet/comm.hpp"
#include "distnet/signals.hpp"
#include "distnet/timeline.hpp"
#include "distnet/world.hpp"

using namespace distnet;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: watchdog_fault LATE TIMELINE\n");
    return 2;
  }
  install_stop_handlers();
  set_stop_saves_checkpoint(true);  // as a run with --checkpoint-dir
  MpiSession mpi(&argc, &argv);
  World world;
  bool late = false;
  std::stringstream ranks(argv[1]);
  for (std::string r; std::getline(ranks, r, ',');)
    late = late || std::atoi(r.c_str()) == world.rank();
  const std::string who = "[rank " + std::to_string(world.rank()) + " " + world.host() + "] ";
  Timeline timeline(10000, 0, -1);
  timeline.align_clocks(world.comm());
  timeline.write_on_abort(argv[2], world.rank(), world.host());
  auto comm = with_watchdog(make_mpi_communicator(world.comm()), 2.0, who);
  double x[2] = {1, 2};
  for (int step = 0; step < 3; ++step) {
    timeline.set_step(step);
    Timeline::Scope span(&timeline, Timeline::Track::compute, "step ", step, "step");
    comm->allreduce_sum(x, 2);
  }
  timeline.set_step(3);
  Timeline::Scope span(&timeline, Timeline::Track::compute, "step ", 3, "step");
  // The ranks on time enter the fourth together, so that only the late ones can be missing when
  // a watchdog fires 2 s later, however loaded the machine.
  MPI_Comm on_time;
  MPI_Comm_split(world.comm(), late ? 1 : 0, world.rank(), &on_time);
  if (!late) MPI_Barrier(on_time);
  if (late) std::this_thread::sleep_for(std::chrono::minutes(10));
  comm->allreduce_sum(x, 2);
  std::fprintf(stderr, "%swatchdog_fault: the fourth all-reduce completed\n", who.c_str());
  return 1;
}
