// DISTNET_CHECK_MPI: MPI return codes become distnet::Error with MPI_Error_string's text.
#pragma once

#include <mpi.h>

#include "distnet/error.hpp"

namespace distnet::detail {
[[noreturn]] void throw_mpi_error(int code, const char* expr, const char* file, int line);
}

#define DISTNET_CHECK_MPI(expr)                                                   \
  do {                                                                            \
    const int distnet_rc_ = (expr);                                               \
    if (distnet_rc_ != MPI_SUCCESS)                                               \
      ::distnet::detail::throw_mpi_error(distnet_rc_, #expr, __FILE__, __LINE__); \
  } while (0)
