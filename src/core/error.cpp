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
struct Walk {
  std::string first;  // the innermost entry: where the error arose
  std::string os;     // an operating-system error that a file driver reported, if any
};
// H5Ewalk2 visits the stack from the innermost (where the error arose) outwards; the first
// entry names the real cause, the later ones only the API layers it passed through. A file
// driver's entry carries the system's own words ("errno = 28, error message = 'No space left on
// device'"): those are what a user needs, without the driver's offsets and sizes.
herr_t walk_entry(unsigned n, const H5E_error2_t* err, void* out) {
  auto* w = static_cast<Walk*>(out);
  if (err == nullptr || err->desc == nullptr) return 0;
  const std::string desc = err->desc;
  if (n == 0) w->first = std::string(err->func_name ? err->func_name : "?") + ": " + desc;
  const std::string key = "error message = '";
  const auto at = desc.find(key);
  if (w->os.empty() && at != std::string::npos) {
    const auto end = desc.find('\'', at + key.size());
    if (end != std::string::npos) w->os = desc.substr(at + key.size(), end - at - key.size());
  }
  return 0;
}
}  // namespace

void throw_hdf5_error(const char* expr, const char* file, int line) {
  Walk w;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_entry, &w);
  H5Eclear2(H5E_DEFAULT);
  if (!w.os.empty()) throw Error(w.os);  // callers add the file it concerns
  std::string msg = w.first.empty() ? "negative return value" : w.first;
  for (char& c : msg)
    if (c == '\n') c = ' ';
  throw_library_error("HDF5", expr, msg, file, line);
}

}  // namespace distnet::detail
