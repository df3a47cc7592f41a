// GPU tests skip themselves, with the reason, where no GPU is usable; CTest reports them as
// "Skipped", never as passed.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "distnet/gpu.hpp"

#define SKIP_WITHOUT_GPU()                                                                \
  do {                                                                                    \
    std::string distnet_why_;                                                             \
    if (::distnet::gpu::usable_devices(&distnet_why_) == 0) GTEST_SKIP() << distnet_why_; \
  } while (0)
