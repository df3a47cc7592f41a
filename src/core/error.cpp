#include "distnet/error.hpp"

#include <string>

#include "distnet/hdf5_check.hpp"
#include "distnet/mpi_check.hpp"

namespace distnet::detail {

void throw_library_error(const char* lib, const char* expr, const std::string& msg,
                         const char* file, int line) {
  throw Error(std::string(lib) + " call `" + expr + "` failed: " + msg + " (" + file + ":" +
              std::to_string(line) + ")");
}

void throw_mpi_error(int code, const char* expr, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0, initialized = 0;
  MPI_Initialized(&initialized);  // Open MPI aborts on MPI_Error_string before MPI_Init
  if (!initialized || MPI_Error_string(code, text, &len) != MPI_SUCCESS) len = 0;
  const std::string msg = len > 0 ? std::string(text, static_cast<size_t>(len))
                                  : "MPI error code " + std::to_string(code);
  throw_library_error("MPI", expr, msg, file, line);
}

namespace {
// H5Ewalk2 visits the stack from the innermost (where the error arose) outwards; the first
// entry names the real cause, the later ones only the API layers it passed through.
herr_t take_first_entry(unsigned n, const H5E_error2_t* err, void* out) {
  if (n == 0 && err != nullptr && err->desc != nullptr) {
    *static_cast<std::string*>(out) =
        std::string(err->func_name ? err->func_name : "?") + ": " + err->desc;
  }
  return 0;
}
}  // namespace

void throw_hdf5_error(const char* expr, const char* file, int line) {
  std::string msg;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, take_first_entry, &msg);
  H5Eclear2(H5E_DEFAULT);
  if (msg.empty()) msg = "negative return value";
  throw_library_error("HDF5", expr, msg, file, line);
}

}  // namespace distnet::detail
