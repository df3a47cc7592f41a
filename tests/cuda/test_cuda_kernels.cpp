// Compiled only when the CUDA backend is built. The check macros run without a device; kernel
// comparisons with the CPU backend need one and skip with the reason otherwise.
#include <gtest/gtest.h>

#include <vector>

#include "cuda/gpu_skip.hpp"
#include "cuda/kernels.hpp"
#include "distnet/backend.hpp"
#include "distnet/cuda_check.hpp"
#include "distnet/gpu.hpp"

using namespace distnet;

namespace {
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace

TEST(CudaChecks, EachLibraryMessageExpressionAndLocation) {
  const std::string cudnn = message_of([] { DISTNET_CUDNN_CHECK(CUDNN_STATUS_BAD_PARAM); });
  EXPECT_NE(cudnn.find("cuDNN call `CUDNN_STATUS_BAD_PARAM` failed: CUDNN_STATUS_BAD_PARAM"),
            std::string::npos)
      << cudnn;
  EXPECT_NE(cudnn.find("test_cuda_kernels.cpp:"), std::string::npos) << cudnn;
  const std::string cublas = message_of([] { DISTNET_CUBLAS_CHECK(CUBLAS_STATUS_INVALID_VALUE); });
  EXPECT_NE(cublas.find("cuBLAS call"), std::string::npos) << cublas;
  EXPECT_NE(cublas.find("CUBLAS_STATUS_INVALID_VALUE"), std::string::npos) << cublas;
  const std::string nccl = message_of([] { DISTNET_NCCL_CHECK(ncclInvalidArgument); });
  EXPECT_NE(nccl.find("NCCL call `ncclInvalidArgument` failed: invalid argument"),
            std::string::npos)
      << nccl;
  const std::string cuda = message_of([] { DISTNET_CUDA_CHECK(cudaErrorInvalidValue); });
  EXPECT_NE(cuda.find("CUDA call `cudaErrorInvalidValue` failed: invalid argument"),
            std::string::npos)
      << cuda;
}

TEST(CudaKernels, DropoutMasksMatchTheCpuBitForBit) {
  SKIP_WITHOUT_GPU();
  const int n = 5;
  const std::int64_t per = 4097;
  const DropoutKey key{11, 3, 17};
  std::vector<std::uint32_t> ids{40, 2, 999, 7, 123456};
  std::vector<float> x(std::size_t(n * per));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = 0.001f * float(i % 1000) - 0.5f;
  std::vector<float> cpu_y(x.size()), gpu_y(x.size());
  make_cpu_backend()->dropout_forward(n, per, 0.5f, key, ids.data(), x.data(), cpu_y.data());

  float *dx = nullptr, *dy = nullptr;
  std::uint32_t* dids = nullptr;
  DISTNET_CUDA_CHECK(cudaMalloc(&dx, x.size() * sizeof(float)));
  DISTNET_CUDA_CHECK(cudaMalloc(&dy, x.size() * sizeof(float)));
  DISTNET_CUDA_CHECK(cudaMalloc(&dids, ids.size() * sizeof(std::uint32_t)));
  DISTNET_CUDA_CHECK(cudaMemcpy(dx, x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice));
  DISTNET_CUDA_CHECK(cudaMemcpy(dids, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice));
  cuda::launch_dropout(n, per, 0.5f, key, dids, dx, dy, nullptr);
  DISTNET_CUDA_CHECK(
      cudaMemcpy(gpu_y.data(), dy, x.size() * sizeof(float), cudaMemcpyDeviceToHost));
  cudaFree(dx), cudaFree(dy), cudaFree(dids);
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < x.size(); ++i) mismatches += cpu_y[i] != gpu_y[i];
  std::printf("dropout cpu vs gpu: %zu of %zu elements differ\n", mismatches, x.size());
  EXPECT_EQ(mismatches, 0u);
}
