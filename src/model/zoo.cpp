// Models by name or file. Input channels and classes come from the data; the layers from a
// definition (models/*.yaml for the zoo's names), through the parser and the layer registry.
#include "distnet/layer_registry.hpp"
#include "distnet/model.hpp"

namespace distnet {

const std::vector<std::string>& model_names() {
  return zoo_model_names();
}

int default_resize(const std::string& model) {
  try {
    return load_model_spec(model).input_size;
  } catch (const UsageError&) {
    return 0;  // reported where the model is checked
  }
}

std::vector<std::unique_ptr<Layer>> build_layers(const ModelConfig& cfg, const LayerSplit& split) {
  const ModelSpec spec = load_model_spec(cfg.name);
  if (cfg.classes < 1) {
    throw UsageError("number of classes must be at least 1, got " + std::to_string(cfg.classes));
  }
  if (cfg.input.rank() != 3 || cfg.input.numel() < 1) {
    throw UsageError("input shape must be C x H x W with every dimension >= 1, got " +
                     cfg.input.str());
  }
  try {
    return build_layers(spec, cfg, split);
  } catch (const UsageError& e) {
    // Say what would work: the smallest square input this model accepts (a definition that no
    // input fits keeps its own message).
    for (std::int64_t s = 1; s <= 4096; ++s) {
      ModelConfig probe = cfg;
      probe.input = Shape{cfg.input[0], s, s};
      try {
        build_layers(spec, probe, LayerSplit{});
      } catch (const UsageError&) {
        continue;
      }
      throw UsageError("model '" + cfg.name + "' does not fit input " + cfg.input.str() + ": " +
                       e.what() + "; the smallest square input it accepts is " + std::to_string(s) +
                       "x" + std::to_string(s) + " (use a resize)");
    }
    throw;
  }
}

}  // namespace distnet
