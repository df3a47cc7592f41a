// What this build and this machine offer on the GPU side, and the factories of the CUDA backend
// and the NCCL communicator. Safe to include and call in a build without CUDA: the probes report
// why there is no GPU, the factories throw UsageError with that reason. Nothing here aborts on a
// machine without a driver; a missing or too old driver is reported as a reason.
//
// In the executables of a CUDA build these functions load the backend, libdistnet_cuda.so, on
// first use (src/gpu/loader.cpp): a missing module or CUDA library is then one more reason.
// Tests that call CUDA code directly link the backend itself (src/cuda) instead.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <memory>
#include <string>

#include "distnet/backend.hpp"
#include "distnet/comm.hpp"

namespace distnet::gpu {

// True when this build has the CUDA backend (linked in, or as a module to load).
bool built_with_cuda();

// Whether the CUDA backend could be loaded in this process (always true when it is linked in;
// false without CUDA). When false, *why names what is missing in one line, e.g.
// "libcudnn.so.9: cannot open shared object file: No such file or directory".
bool backend_available(std::string* why);

// NVTX range functions (for Nsight Systems), from the CUDA module; false, with the reason, when it
// cannot be loaded.
bool nvtx_functions(void (**push)(const char*), void (**pop)(), std::string* why);

// Number of GPUs this process can use. When it is 0, *why says why in one line (built without
// CUDA, the backend cannot be loaded, no NVIDIA driver, a driver older than this build needs, no
// device visible).
int usable_devices(std::string* why);

// One line such as "CUDA runtime 13.0, driver 13.0, cuDNN 9.19.0, cuBLAS 13.1.0, NCCL 2.28.3"
// (followed by "; module <path>" when the backend was loaded as a module); "not loaded: <why>"
// when it could not be; "built without CUDA" otherwise.
std::string library_versions();

struct DeviceInfo {
  std::string name;  // "NVIDIA H100 80GB HBM3"
  std::string uuid;  // "GPU-8f2c...": tells two ranks that were handed the same physical GPU
  int major = 0, minor = 0;
  std::size_t free_bytes = 0, total_bytes = 0;
};
DeviceInfo device_info(int index);  // index among the visible devices

struct CudaOptions {
  int device = 0;  // index among the visible devices
  // tf32: cuBLAS and cuDNN may use TF32 tensor cores for float data (Ampere and newer; the
  // default). fp32: plain FP32 arithmetic everywhere, for comparisons with the CPU backend.
  enum class Math { tf32, fp32 };
  Math math = Math::tf32;
  // find: time every cuDNN algorithm once per shape and keep the fastest (cudnn.benchmark in
  // PyTorch); heuristic: take cuDNN's first suggestion without running anything.
  enum class ConvSearch { find, heuristic };
  ConvSearch conv_search = ConvSearch::find;
  // Only convolution algorithms cuDNN reports as deterministic (--deterministic): the same run
  // on the same GPU model, software and rank count gives the same bits (docs/gpus.md).
  bool deterministic = false;
  std::size_t workspace_limit = std::size_t(1) << 30;  // bytes; algorithms needing more are skipped
  // The longest the host waits for device work (which may wait for a collective) before it
  // reports a hang: --comm-timeout; 0 waits without a bound.
  double host_wait_timeout_s = 300;
};

// The CUDA backend on one GPU: cuDNN for convolution, pooling, activation and batch-norm, cuBLAS
// for dense layers, distnet's kernels for the rest. Throws UsageError when no GPU is usable.
std::unique_ptr<Backend> make_cuda_backend(const CudaOptions& options);

// How gradients travel: as they are (fp32) or as a bfloat16 copy (half the bytes, 8 bits of
// mantissa; the sum is accumulated in the reduction's own precision and converted back).
enum class Wire { fp32, bf16 };

// An NCCL communicator over the ranks of `comm` (every rank calls this; rank 0 creates the unique
// id and broadcasts it over MPI). Works on device memory of `backend` (a CUDA backend), on its own
// stream at the device's greatest priority. A collective that has not finished after `timeout_s`
// seconds (0: never) takes the job down by the one abort path (abort.hpp: every NCCL
// communicator revoked, then MPI_Abort), printing "<who>alexnet: error: NCCL <operation> did not
// complete ...". With `parent` (an NCCL communicator over a superset of `comm`'s ranks, each of
// which makes its sub-communicator in the same order, as the grid does) the new one is split
// from it (ncclCommSplit) instead of bootstrapped afresh.
std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, Backend& backend,
                                                     double timeout_s, const std::string& who,
                                                     Communicator* parent = nullptr);

// Several NCCL communicators with work in flight on one GPU at once -- the hybrid grid's world,
// group and same-shard communicators, each on its own stream -- can deadlock unless NCCL orders
// their kernels by the order the host launched them (every rank launches in the same program
// order). NCCL 2.26 and later do that with NCCL_LAUNCH_ORDER_IMPLICIT=1; this sets it for the
// process, before any NCCL launch. Throws UsageError, naming what it found, when the NCCL loaded is
// older than 2.26 or the variable is already set to another value.
void order_concurrent_communicators();

}  // namespace distnet::gpu
