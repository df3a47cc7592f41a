// What every backend shares: the default AsyncRead, for backends whose memory is the host's.
#include <vector>

#include "distnet/backend.hpp"

namespace distnet {
namespace {

class ImmediateRead final : public AsyncRead {
 public:
  ImmediateRead(Backend& be, std::size_t bytes) : be_(be), host_(bytes) {}
  void start(const void* src) override { be_.download(host_.data(), src, host_.size()); }
  bool ready() override { return true; }
  const void* data() const override { return host_.data(); }

 private:
  Backend& be_;
  std::vector<unsigned char> host_;
};

}  // namespace

std::unique_ptr<AsyncRead> Backend::make_async_read(std::size_t bytes) {
  return std::make_unique<ImmediateRead>(*this, bytes);
}

}  // namespace distnet
