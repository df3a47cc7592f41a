// distnet/gpu.hpp in the executables of a CUDA build. The CUDA backend is libdistnet_cuda.so, a
// module loaded with dlopen() by the first call that needs it, so that the executable itself
// needs no CUDA library: where the module or a library it needs is missing, it runs on the CPU
// and says why. The module is $DISTNET_CUDA_MODULE when that is set, else libdistnet_cuda.so
// next to the executable (/proc/self/exe). It is loaded once per process and never unloaded:
// objects it made (backends, communicators, exceptions) may live until exit, and the CUDA
// libraries are not made to be unloaded.
#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "distnet/gpu.hpp"
#include "gpu/module_abi.hpp"

namespace distnet::gpu {
namespace {

struct Module {
  const ModuleTable* table = nullptr;  // null when the module could not be used
  std::string path;                    // the file loaded (or looked for)
  std::string why;                     // when table is null: why, in one line
};

// The directory of the running program, or "" with *why set.
std::string program_dir(std::string* why) {
  std::string buf(4096, '\0');
  const ssize_t n = readlink("/proc/self/exe", buf.data(), buf.size());
  if (n <= 0 || std::size_t(n) >= buf.size()) {
    *why = std::string("cannot find the program's directory (/proc/self/exe: ") +
           (n <= 0 ? std::strerror(errno) : "path too long") + "); set DISTNET_CUDA_MODULE";
    return "";
  }
  buf.resize(std::size_t(n));
  return buf.substr(0, buf.rfind('/'));
}

Module load() {
  Module m;
  const char* env = std::getenv("DISTNET_CUDA_MODULE");
  if (env && *env) {
    m.path = env;
    if (access(m.path.c_str(), F_OK) != 0) {
      m.why = "DISTNET_CUDA_MODULE=" + m.path + ": " + std::strerror(errno);
      return m;
    }
  } else {
    const std::string dir = program_dir(&m.why);
    if (dir.empty()) return m;
    m.path = dir + "/" DISTNET_CUDA_MODULE_FILE;
    if (access(m.path.c_str(), F_OK) != 0) {
      m.why = m.path + ": " + std::strerror(errno);
      return m;
    }
  }
  // RTLD_NOW: a library or symbol that is missing fails here, named by dlerror() (e.g.
  // "libcudnn.so.9: cannot open shared object file: No such file or directory"), rather than in
  // the middle of a run. RTLD_LOCAL: the CUDA libraries' symbols stay out of the global scope.
  void* handle = dlopen(m.path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* e = dlerror();
    m.why = e ? e : m.path + ": dlopen failed";
    return m;
  }
  using Entry = const ModuleTable* (*)();
  const auto entry = reinterpret_cast<Entry>(dlsym(handle, DISTNET_CUDA_MODULE_ENTRY));
  const ModuleTable* table = entry ? entry() : nullptr;
  if (!table) {
    m.why = m.path + " is not a distnet CUDA module (no " DISTNET_CUDA_MODULE_ENTRY ")";
    return m;  // left loaded: unloading libraries that may have started threads is not safe
  }
  if (std::strcmp(table->interface_id, DISTNET_INTERFACE_ID) != 0) {
    m.why = m.path + " comes from another build of distnet (interface " + table->interface_id +
            ", this program's is " DISTNET_INTERFACE_ID "); use the module built with it";
    return m;
  }
  m.table = table;
  return m;
}

const Module& module() {
  static const Module m = load();  // thread-safe, once per process
  return m;
}

// The table, or UsageError("<what>: the GPU backend cannot be loaded: <why>").
const ModuleTable& table_for(const char* what) {
  const Module& m = module();
  if (!m.table)
    throw UsageError(std::string(what) + ": the GPU backend cannot be loaded: " + m.why);
  return *m.table;
}

}  // namespace

bool built_with_cuda() {
  return true;
}

bool backend_available(std::string* why) {
  const Module& m = module();
  if (!m.table && why) *why = m.why;
  return m.table != nullptr;
}

bool nvtx_functions(void (**push)(const char*), void (**pop)(), std::string* why) {
  const Module& m = module();
  if (!m.table) {
    if (why) *why = "the GPU backend cannot be loaded: " + m.why;
    return false;
  }
  *push = m.table->nvtx_push;
  *pop = m.table->nvtx_pop;
  return true;
}

int usable_devices(std::string* why) {
  const Module& m = module();
  if (m.table) return m.table->usable_devices(why);
  if (why) *why = "the GPU backend cannot be loaded: " + m.why;
  return 0;
}

std::string library_versions() {
  const Module& m = module();
  return m.table ? m.table->library_versions() + "; module " + m.path : "not loaded: " + m.why;
}

void order_concurrent_communicators() {
  table_for("--model-parallel with NCCL").order_concurrent_communicators();
}

DeviceInfo device_info(int index) {
  return table_for("--device cuda").device_info(index);
}

std::unique_ptr<Backend> make_cuda_backend(const CudaOptions& options) {
  return table_for("--device cuda").make_cuda_backend(options);
}

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, Backend& backend,
                                                     double timeout_s, const std::string& who,
                                                     Communicator* parent) {
  return table_for("--comm nccl").make_nccl_communicator(comm, backend, timeout_s, who, parent);
}

}  // namespace distnet::gpu
