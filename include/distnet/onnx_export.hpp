// ONNX export of a model's inference graph (docs/onnx-export.md). Part of alexnet-export and its
// tests only: this header names no ONNX or protobuf type, and the training binary does not link
// libonnx.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "distnet/model.hpp"

namespace distnet {

// Opsets written: from 11 (every op here in today's form) to 17, the newest that the checker of
// the ONNX library we build against (Debian's 1.12) knows.
constexpr int kOnnxDefaultOpset = 13, kOnnxMinOpset = 11, kOnnxMaxOpset = 17;

struct OnnxExportOptions {
  int opset = kOnnxDefaultOpset;
  std::int64_t batch = 0;  // the input's first dimension; 0: dynamic (the symbol "N")
  std::vector<std::pair<std::string, std::string>> metadata;  // metadata_props, in this order
  std::string doc;                                            // the model's doc_string
};

// The model's inference graph as a serialized ONNX ModelProto: input "input" (N x C x H x W
// float), output "logits" (N x classes), every layer a node or a few (dropout none), every
// parameter and running statistic an initializer under its distnet name ("conv1.weight"). It is
// checked with ONNX's checker and with strict shape inference against distnet's own shape of every
// layer's output before it is returned. Throws UsageError for an opset or batch out of range, and
// Error naming the definition, line and layer for a layer ONNX cannot express (an adaptive
// average pool whose input is not a whole multiple of its output) or a setting this exporter does
// not know, and when the checks fail.
std::string export_onnx(const Model& model, const OnnxExportOptions& options);

// Writes `bytes` to `path` through a temporary file in the same directory, flushed and fsynced,
// then renamed: `path` is either left as it was or holds all of `bytes`. Throws Error naming the
// file; no temporary file is left behind.
void write_file_atomically(const std::string& path, const std::string& bytes);

}  // namespace distnet
