// Internal to the alexnet program: setting a run up -- threads, backend, devices, the
// communicators and the grid, data, the model, the checkpoint to resume from -- before the
// trainer takes over (src/alexnet_main.cpp runs it).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "distnet/backend.hpp"
#include "distnet/checkpoint.hpp"
#include "distnet/comm.hpp"
#include "distnet/config.hpp"
#include "distnet/grid.hpp"
#include "distnet/model.hpp"
#include "distnet/run_dir.hpp"
#include "distnet/tensorboard.hpp"
#include "distnet/trainer.hpp"
#include "distnet/world.hpp"

namespace distnet::app {

constexpr int kExitOk = 0, kExitError = 1, kExitUsage = 2;

struct Setup {
  std::optional<CheckpointMeta> resumed;           // rank 0
  std::string resumed_path;                        // rank 0
  std::string run_id;                              // rank 0: the resumed run's, or a new one
  std::unique_ptr<RunDirLock> lock;                // rank 0, training with --checkpoint-dir
  std::optional<BestMark> best;                    // rank 0, --keep-best: the run's best so far
  std::unique_ptr<TensorBoardWriter> tensorboard;  // rank 0, --tensorboard in training
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Communicator> comm;       // the model's buffers, on the backend's device
  std::unique_ptr<Communicator> host_comm;  // host figures; null when `comm` is host MPI
  std::unique_ptr<Grid> grid;               // --model-parallel: groups and their communicators
  std::unique_ptr<data::Dataset> train, test;
  std::unique_ptr<data::ImageTransform> transform;
  std::unique_ptr<Model> model;
};

// "[rank r host] " on multi-rank runs, "" on one.
std::string prefix(const World& w);
// Set-up problems (bad data, a model that does not fit the data) usually hit every rank alike;
// the ranks agree on the outcome so all of them leave with the same non-zero code, and the first
// failing rank says why -- no rank is left waiting in a collective. Collective.
int agree_on_failure(const World& world, int my_code, const std::string& message);
ModelConfig model_config(const RunConfig& c, const Shape& image, int classes);
void set_threads(const World& world);
std::unique_ptr<Backend> select_backend(const RunConfig& c, const World& world);
// Ranks that would share a GPU, or a mix of GPU and CPU ranks: the reason, or "". Collective.
std::string check_devices(const World& world, const Backend& be);
// The communicators: MPI for host figures; for the model's buffers MPI too on the CPU, NCCL on
// GPUs (or MPI through host memory with --comm mpi); the grid. Collective.
void make_communicators(const RunConfig& cfg, const World& world, Setup& s);
// Data, transform, model (initialised; on rank 0 loaded from --init-from, --checkpoint or the
// checkpoint to resume from), after the output files were checked.
Setup set_up(const RunConfig& cfg, const World& world, Setup s);
// Rank 0's resume point, on every rank (nullopt when not resuming). Collective.
std::optional<TrainingState> share_resume_state(const World& world, const Setup& s);

}  // namespace distnet::app
