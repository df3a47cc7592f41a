// DISTNET_CHECK_HDF5: HDF5 calls signal failure with a negative return (herr_t or hid_t);
// the message is taken from the innermost entry of HDF5's default error stack.
#pragma once

#include <hdf5.h>

#include "distnet/error.hpp"

namespace distnet::detail {
[[noreturn]] void throw_hdf5_error(const char* expr, const char* file, int line);
}

#define DISTNET_CHECK_HDF5(expr)                                                         \
  ([&]() {                                                                               \
    auto distnet_rc_ = (expr);                                                           \
    if (distnet_rc_ < 0) ::distnet::detail::throw_hdf5_error(#expr, __FILE__, __LINE__); \
    return distnet_rc_;                                                                  \
  }())
