// libFuzzer target for the model definition parser and builder (build with clang and
// -DDISTNET_FUZZ=ON): build-fuzz/tests/fuzz_models -max_total_time=60 models/
// Every input must build a model or be refused with distnet::UsageError.
#include <cstddef>
#include <cstdint>
#include <string>

#include "distnet/error.hpp"
#include "distnet/layer_registry.hpp"
#include "distnet/model_spec.hpp"

using namespace distnet;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  ModelConfig cfg;
  cfg.input = Shape{3, 224, 224};
  try {
    build_layers(parse_model_definition(text, "fuzz.yaml"), cfg);
  } catch (const UsageError&) {
  }
  return 0;
}
