// A model definition as data: named nodes, each an op with its inputs and its settings as
// written. The parser reads it from a YAML file (docs/models.md); the zoo's models are the same
// kind of file (models/*.yaml in the repository, built into the binary) read through the same
// parser. Layers are made from nodes by the layer registry (distnet/layer_registry.hpp).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace distnet {

struct NodeSpec {
  std::string name;  // unique within the model ("conv1")
  std::string op;    // a key of layer_registry() ("conv"), or a block's "add" or "concat"
  std::vector<std::string> inputs;  // the nodes feeding this one; "input" is the model's input
  std::map<std::string, std::string> settings;  // as written: "96", "relu", "classes", "6,6"
  int line = 0;                                 // where the node is written (1-based)
};

struct ModelSpec {
  std::string name;    // the definition's `name:`, else the file's stem
  std::string source;  // what messages name: the user's path, or "models/alexnet.yaml"
  int input_size = 0;  // the square input the network was designed for (--resize auto); 0: none
  std::vector<NodeSpec> nodes;  // in execution order: every input of a node comes before it

  // "mynet.yaml:7", and "mynet.yaml:7: layer conv3 (conv)": the start of messages about a node.
  std::string at(const NodeSpec& node) const;
  std::string where(const NodeSpec& node) const;
};

// Parses a definition. Throws UsageError with one line, "SOURCE:LINE: what was expected", for
// YAML syntax errors, unknown keys, ops or settings, and duplicate names.
ModelSpec parse_model_definition(const std::string& text, const std::string& source);

// `model`: a zoo name ("alexnet") or the path of a definition file. A name that is neither in
// the zoo nor looks like a path (no '/' and no '.') is an unknown model.
ModelSpec load_model_spec(const std::string& model);

// The zoo's names, sorted (for help texts and error messages).
const std::vector<std::string>& zoo_model_names();

}  // namespace distnet
