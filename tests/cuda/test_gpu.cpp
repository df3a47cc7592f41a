// GPU-side checks. The probe tests run everywhere. Tests that need a device call GTEST_SKIP()
// with the reason, which CTest reports as "Skipped" (never as passed).
#include <gtest/gtest.h>

#include "distnet/gpu.hpp"

using namespace distnet;

TEST(GpuProbe, ZeroDevicesAlwaysComesWithAReason) {
  std::string why;
  const int n = gpu::usable_devices(&why);
  if (n == 0) {
    EXPECT_FALSE(why.empty());
    EXPECT_EQ(why.find('\n'), std::string::npos);
    std::printf("no GPU: %s\n", why.c_str());
  } else {
    EXPECT_GT(n, 0);
  }
}

TEST(GpuProbe, VersionsLine) {
  const std::string v = gpu::library_versions();
  if (gpu::built_with_cuda()) {
    for (const char* lib : {"CUDA runtime", "cuDNN 9.", "cuBLAS", "NCCL 2."})
      EXPECT_NE(v.find(lib), std::string::npos) << v;
  } else {
    EXPECT_EQ(v, "built without CUDA");
  }
}
