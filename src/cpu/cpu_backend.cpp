#include "cpu_backend.hpp"

#include <omp.h>

#include <cstring>
#include <string>

namespace distnet {

std::unique_ptr<Backend> make_cpu_backend(const CpuOptions& options) {
  return std::make_unique<cpu::CpuBackend>(options);
}

namespace cpu {

Staged::Staged(const dnnl::memory::desc& user, const dnnl::memory::desc& want,
               const dnnl::engine& eng)
    : user_(user, eng, DNNL_MEMORY_NONE), same_(user == want) {
  if (!same_) {
    scratch_ = dnnl::memory(want, eng);
    to_want_ = dnnl::reorder(user_, scratch_);
    to_user_ = dnnl::reorder(scratch_, user_);
  }
}

dnnl::memory Staged::in(const void* ptr, dnnl::stream& s) {
  user_.set_data_handle(const_cast<void*>(ptr));
  if (same_) return user_;
  to_want_.execute(s, user_, scratch_);
  return scratch_;
}

dnnl::memory Staged::out(void* ptr) {
  user_.set_data_handle(ptr);
  return same_ ? user_ : scratch_;
}

void Staged::finish(dnnl::stream& s) {
  if (!same_) to_user_.execute(s, scratch_, user_);
}

CpuBackend::CpuBackend(const CpuOptions& options)
    : ctx_(std::make_shared<DnnlContext>()), options_(options) {}

std::string CpuBackend::description() const {
  const dnnl_version_t* v = dnnl_version();
  return "cpu (oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->patch) + ", " + std::to_string(omp_get_max_threads()) +
         (omp_get_max_threads() == 1 ? " thread, conv " : " threads, conv ") +
         (options_.conv == CpuOptions::ConvAlgorithm::direct ? "direct" : "auto") +
         (options_.math == CpuOptions::Math::tf32 ? ", TF32 emulated" : "") + ")";
}

Buffer CpuBackend::allocate(std::size_t bytes) {
  return Buffer::host(bytes);
}

void CpuBackend::upload(void* dst, const void* host_src, std::size_t bytes) {
  if (bytes) std::memcpy(dst, host_src, bytes);
}

void CpuBackend::download(void* host_dst, const void* src, std::size_t bytes) {
  if (bytes) std::memcpy(host_dst, src, bytes);
}

void CpuBackend::fill_zero(void* dst, std::size_t bytes) {
  if (bytes) std::memset(dst, 0, bytes);
}

void CpuBackend::copy(void* dst, const void* src, std::size_t bytes) {
  if (bytes && dst != src) std::memcpy(dst, src, bytes);
}

void CpuBackend::synchronize() {
  ctx_->stream.wait();
}

}  // namespace cpu
}  // namespace distnet
