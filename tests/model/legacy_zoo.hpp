// The compiled-in model zoo of distnet before definition files (tests/model/legacy_zoo.cpp).
#pragma once

#include "distnet/model.hpp"

namespace distnet::legacy {

std::vector<std::unique_ptr<Layer>> build_layers(const ModelConfig& cfg,
                                                 const LayerSplit& split = {});

}  // namespace distnet::legacy
