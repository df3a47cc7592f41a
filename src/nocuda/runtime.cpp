// The GPU side of a build configured with DISTNET_CUDA=OFF (or without a CUDA toolkit): probes
// that say why there is no GPU, and factories that refuse with that reason.
#include "distnet/gpu.hpp"

namespace distnet::gpu {
namespace {
const char* const kWhy = "this distnet was built without CUDA (rebuild with -DDISTNET_CUDA=ON)";
}

bool built_with_cuda() {
  return false;
}

bool backend_available(std::string* why) {
  if (why) *why = kWhy;
  return false;
}

bool nvtx_functions(void (**)(const char*), void (**)(), std::string* why) {
  if (why) *why = kWhy;
  return false;
}

int usable_devices(std::string* why) {
  if (why) *why = kWhy;
  return 0;
}

std::string library_versions() {
  return "built without CUDA";
}

void order_concurrent_communicators() {
  throw UsageError(std::string("--model-parallel with NCCL: ") + kWhy);
}

DeviceInfo device_info(int) {
  throw UsageError(kWhy);
}

std::unique_ptr<Backend> make_cuda_backend(const CudaOptions&) {
  throw UsageError(std::string("--device cuda: ") + kWhy);
}

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm, Backend&, double, const std::string&,
                                                     Communicator*) {
  throw UsageError(std::string("--comm nccl: ") + kWhy);
}

}  // namespace distnet::gpu
