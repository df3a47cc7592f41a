// The boundary between the executables and libdistnet_cuda.so, the CUDA backend built as a module
// that they load at run time (src/gpu/loader.cpp; docs/decisions.md, "CUDA backend as a module").
// The module exports one C function, distnet_cuda_module_v1, which returns this table of the
// facade's functions (distnet/gpu.hpp). C++ types cross the boundary, so both sides must come
// from one build: the loader refuses a table whose interface_id differs from its own.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>

#include "distnet/gpu.hpp"
#include "distnet/interface_id.hpp"  // generated at build time: DISTNET_INTERFACE_ID

#define DISTNET_CUDA_MODULE_FILE "libdistnet_cuda.so"
#define DISTNET_CUDA_MODULE_ENTRY "distnet_cuda_module_v1"

namespace distnet::gpu {

// Version 1 of the table (the entry point's name carries the version). interface_id stays the
// first member in every version: the loader reads it before it trusts anything else.
struct ModuleTable {
  const char* interface_id;  // DISTNET_INTERFACE_ID of the build that made the module
  int (*usable_devices)(std::string* why);
  std::string (*library_versions)();
  DeviceInfo (*device_info)(int index);
  std::unique_ptr<Backend> (*make_cuda_backend)(const CudaOptions& options);
  std::unique_ptr<Communicator> (*make_nccl_communicator)(MPI_Comm comm, Backend& backend,
                                                          double timeout_s, const std::string& who,
                                                          Communicator* parent);
  void (*nvtx_push)(const char* name);  // NVTX ranges (header-only NVTX 3 inside the module)
  void (*nvtx_pop)();
  void (*order_concurrent_communicators)();
};

}  // namespace distnet::gpu

extern "C" const distnet::gpu::ModuleTable* distnet_cuda_module_v1();
