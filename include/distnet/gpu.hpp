// What this build and this machine offer on the GPU side. Safe to call on a machine without a
// driver: nothing here aborts; a missing or too old driver is reported as a reason.
#pragma once

#include <string>

namespace distnet::gpu {

bool built_with_cuda();

// Number of GPUs this process can use. When it is 0, *why says why in one line (built without
// CUDA, no NVIDIA driver, a driver older than this build needs, no device visible).
int usable_devices(std::string* why);

// One line such as "CUDA runtime 13.0, driver 13.0, cuDNN 9.19.0, cuBLAS 13.1.0, NCCL 2.28.3";
// "built without CUDA" otherwise.
std::string library_versions();

}  // namespace distnet::gpu
