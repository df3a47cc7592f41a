// The GPU probe of a build configured with DISTNET_CUDA=OFF (or without a CUDA toolkit).
#include "distnet/gpu.hpp"

namespace distnet::gpu {

bool built_with_cuda() {
  return false;
}

int usable_devices(std::string* why) {
  if (why) *why = "this distnet was built without CUDA (rebuild with -DDISTNET_CUDA=ON)";
  return 0;
}

std::string library_versions() {
  return "built without CUDA";
}

}  // namespace distnet::gpu
