// The one symbol libdistnet_cuda.so exports as a function (cmake/distnet_cuda_module.map): the
// CUDA backend's implementation of distnet/gpu.hpp, for the loader in the executable.
#include <nvtx3/nvToolsExt.h>

#include "gpu/module_abi.hpp"

namespace {
// NVTX 3 is header-only: without a profiler attached these calls return at once.
void nvtx_push(const char* name) {
  nvtxRangePushA(name);
}
void nvtx_pop() {
  nvtxRangePop();
}
}  // namespace

extern "C" const distnet::gpu::ModuleTable* distnet_cuda_module_v1() {
  namespace g = distnet::gpu;
  static const g::ModuleTable table{DISTNET_INTERFACE_ID,
                                    g::usable_devices,
                                    g::library_versions,
                                    g::device_info,
                                    g::make_cuda_backend,
                                    g::make_nccl_communicator,
                                    nvtx_push,
                                    nvtx_pop,
                                    g::order_concurrent_communicators};
  return &table;
}
