// GPU probing through the CUDA runtime; version queries of cuDNN, cuBLAS and NCCL need no device.
#include <cstdlib>
#include <string>

#include "distnet/cuda_check.hpp"
#include "distnet/gpu.hpp"

namespace distnet::gpu {
namespace {
std::string dotted(int major, int minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}
}  // namespace

bool built_with_cuda() {
  return true;
}

bool backend_available(std::string*) {
  return true;  // this code is the backend
}

int usable_devices(std::string* why) {
  int count = 0;
  const cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc == cudaSuccess && count > 0) return count;
  if (why) {
    switch (rc) {
      case cudaSuccess:
      case cudaErrorNoDevice:
        *why = "no CUDA device is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)";
        break;
      case cudaErrorInsufficientDriver: {
        int runtime = 0;
        cudaRuntimeGetVersion(&runtime);
        *why = "the NVIDIA driver is missing or older than CUDA " +
               dotted(runtime / 1000, runtime % 1000 / 10) + " that this build needs";
        break;
      }
      default:
        *why = std::string("CUDA cannot be initialised: ") + cudaGetErrorString(rc);
    }
  }
  cudaGetLastError();  // clear the sticky error a failed probe leaves behind
  return 0;
}

DeviceInfo device_info(int index) {
  cudaDeviceProp prop{};
  DISTNET_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  DeviceInfo info;
  info.name = prop.name;
  info.major = prop.major;
  info.minor = prop.minor;
  static const char* hex = "0123456789abcdef";
  info.uuid = "GPU-";
  for (int i = 0; i < 16; ++i) {
    const auto b = static_cast<unsigned char>(prop.uuid.bytes[i]);
    info.uuid += hex[b >> 4];
    info.uuid += hex[b & 15];
    if (i == 3 || i == 5 || i == 7 || i == 9) info.uuid += '-';
  }
  int current = 0;
  DISTNET_CUDA_CHECK(cudaGetDevice(&current));
  DISTNET_CUDA_CHECK(cudaSetDevice(index));
  const cudaError_t rc = cudaMemGetInfo(&info.free_bytes, &info.total_bytes);
  cudaSetDevice(current);
  DISTNET_CUDA_CHECK(rc);
  return info;
}

void order_concurrent_communicators() {
  const char* const name = "NCCL_LAUNCH_ORDER_IMPLICIT";
  int version = 0;
  ncclGetVersion(&version);  // major*10000 + minor*100 + patch since NCCL 2.9
  if (version < 22600)
    throw UsageError("--model-parallel on GPUs needs NCCL 2.26 or newer (" + std::string(name) +
                     " orders the grid's three communicators); this process loaded NCCL " +
                     dotted(version / 10000, version % 10000 / 100) + "." +
                     std::to_string(version % 100) + " -- use a newer NCCL or --comm mpi");
  const char* set = std::getenv(name);
  if (set && std::string(set) != "1")
    throw UsageError(std::string(name) + "=" + set +
                     " is set, but --model-parallel on GPUs needs it at 1 (its communicators "
                     "could deadlock otherwise); unset it");
  setenv(name, "1", 1);
}

std::string library_versions() {
  int runtime = 0, driver = 0, nccl = 0, cublas_major = 0, cublas_minor = 0, cublas_patch = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);  // 0 when no driver is installed
  ncclGetVersion(&nccl);          // major*10000 + minor*100 + patch since NCCL 2.9
  cublasGetProperty(MAJOR_VERSION, &cublas_major);
  cublasGetProperty(MINOR_VERSION, &cublas_minor);
  cublasGetProperty(PATCH_LEVEL, &cublas_patch);
  const std::size_t cudnn = cudnnGetVersion();  // major*10000 + minor*100 + patch since cuDNN 9
  return "CUDA runtime " + dotted(runtime / 1000, runtime % 1000 / 10) + ", driver " +
         (driver ? dotted(driver / 1000, driver % 1000 / 10) : std::string("none")) + ", cuDNN " +
         dotted(int(cudnn / 10000), int(cudnn % 10000 / 100)) + "." + std::to_string(cudnn % 100) +
         ", cuBLAS " + dotted(cublas_major, cublas_minor) + "." + std::to_string(cublas_patch) +
         ", NCCL " + dotted(nccl / 10000, nccl % 10000 / 100) + "." + std::to_string(nccl % 100);
}

}  // namespace distnet::gpu
