// The CUDA backend as the module libdistnet_cuda.so, reached through the loader exactly as alexnet
// reaches it (this binary is linked like alexnet). Runs with or without a GPU: the exceptions
// checked here are thrown inside the module in both cases.
#include <cxxabi.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <typeinfo>

#include "distnet/error.hpp"
#include "distnet/gpu.hpp"

using namespace distnet;

namespace {

// The module of this build, unless the caller names another one or the build is gone (a copy of
// this test in a bundle finds the module beside itself, as alexnet does).
const bool module_named = access(DISTNET_TEST_CUDA_MODULE, F_OK) != 0 ||
                          setenv("DISTNET_CUDA_MODULE", DISTNET_TEST_CUDA_MODULE, 0) == 0;

// The type_info object of the exception being handled (the one the thrower used).
const std::type_info* current_exception_type() {
  return abi::__cxa_current_exception_type();
}

TEST(GpuModule, Loads) {
  ASSERT_TRUE(module_named);
  std::string why;
  ASSERT_TRUE(gpu::backend_available(&why)) << why;
  EXPECT_TRUE(gpu::built_with_cuda());
  const std::string v = gpu::library_versions();
  for (const char* part : {"CUDA runtime", "cuDNN 9.", "cuBLAS", "NCCL 2.", "; module /"})
    EXPECT_NE(v.find(part), std::string::npos) << v;
}

TEST(GpuModule, ZeroDevicesComeWithOneLineReason) {
  std::string why;
  if (gpu::usable_devices(&why) > 0) GTEST_SKIP() << "a GPU is usable here";
  EXPECT_FALSE(why.empty());
  EXPECT_EQ(why.find('\n'), std::string::npos) << why;
  std::printf("no GPU: %s\n", why.c_str());
}

// make_cuda_backend throws UsageError inside the module, with or without a GPU: no usable GPU,
// or no GPU number 1000. It is caught here by type, and it is the executable's type_info.
TEST(GpuModule, UsageErrorThrownInTheModuleIsCaughtByType) {
  gpu::CudaOptions o;
  o.device = 1000;
  bool caught = false;
  try {
    gpu::make_cuda_backend(o);
  } catch (const UsageError& e) {
    caught = true;
    EXPECT_EQ(current_exception_type(), &typeid(UsageError));
    const std::string m = e.what();
    EXPECT_TRUE(m.find("--device cuda: ") == 0 || m.find("GPU 1000 requested") == 0) << m;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not caught as UsageError: " << typeid(e).name() << ": " << e.what();
  }
  EXPECT_TRUE(caught);
}

// A failed CUDA call inside the module throws distnet::Error (not UsageError).
TEST(GpuModule, ErrorThrownInTheModuleIsCaughtByType) {
  bool caught = false;
  try {
    gpu::device_info(1000);
  } catch (const UsageError& e) {
    ADD_FAILURE() << "a UsageError: " << e.what();
  } catch (const Error& e) {
    caught = true;
    EXPECT_EQ(current_exception_type(), &typeid(Error));
    EXPECT_NE(std::string(e.what()).find("CUDA call `cudaGetDeviceProperties"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(caught);
}

}  // namespace

// The hybrid grid on GPUs: NCCL must order the kernels of its communicators by the host's launch
// order. The module sets NCCL_LAUNCH_ORDER_IMPLICIT=1 (NCCL 2.26+; this build has a newer one),
// and refuses, with one line naming it, a value the user set to something else. No GPU needed:
// ncclGetVersion and the environment are all it reads.
TEST(GpuModule, ConcurrentCommunicatorsAreOrderedByLaunchOrder) {
  unsetenv("NCCL_LAUNCH_ORDER_IMPLICIT");
  gpu::order_concurrent_communicators();
  const char* v = std::getenv("NCCL_LAUNCH_ORDER_IMPLICIT");
  ASSERT_NE(v, nullptr);
  EXPECT_STREQ(v, "1");
  gpu::order_concurrent_communicators();  // already 1: fine
  setenv("NCCL_LAUNCH_ORDER_IMPLICIT", "0", 1);
  try {
    gpu::order_concurrent_communicators();
    ADD_FAILURE() << "NCCL_LAUNCH_ORDER_IMPLICIT=0 was accepted";
  } catch (const UsageError& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find("NCCL_LAUNCH_ORDER_IMPLICIT=0 is set, but --model-parallel"), 0u) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  unsetenv("NCCL_LAUNCH_ORDER_IMPLICIT");
}
