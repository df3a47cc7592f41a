// The definition-file parser: YAML (yaml-cpp) into a ModelSpec. yaml-cpp does the syntax and
// keeps every node's line; this file checks the structure, the ops and settings against the
// layer registry and the names, and says where a definition is wrong in one line.
#include "distnet/model_spec.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "distnet/error.hpp"
#include "distnet/layer_registry.hpp"
#include "model/zoo_files.hpp"

namespace distnet {
namespace {

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

class Parser {
 public:
  explicit Parser(std::string source) { spec_.source = std::move(source); }

  ModelSpec parse(const std::string& text) {
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      throw UsageError(spec_.source + ":" + std::to_string(std::max(0, e.mark.line) + 1) + ": " +
                       e.msg);
    }
    if (!root.IsMap())
      fail(root, "expected a mapping with 'layers:' (a list of layers), see docs/models.md");
    bool have_layers = false;
    for (const auto& kv : root) {
      const std::string key = scalar(kv.first, "a key");
      if (key == "name") {
        spec_.name = scalar(kv.second, "name: a text");
      } else if (key == "input_size") {
        spec_.input_size = positive(kv.second, "input_size");
      } else if (key == "loss") {
        if (scalar(kv.second, "loss: softmax_cross_entropy") != "softmax_cross_entropy")
          fail(kv.second, "expected loss: softmax_cross_entropy (the only loss today)");
      } else if (key == "layers") {
        layers(kv.second);
        have_layers = true;
      } else {
        fail(kv.first, "unknown key '" + key + "'; expected name, input_size, loss or layers");
      }
    }
    if (!have_layers || spec_.nodes.empty())
      fail(root, "expected 'layers:' with at least one layer");
    return std::move(spec_);
  }

 private:
  [[noreturn]] void fail(const YAML::Node& at, const std::string& what) const {
    throw UsageError(spec_.source + ":" + std::to_string(std::max(0, at.Mark().line) + 1) + ": " +
                     what);
  }

  std::string scalar(const YAML::Node& n, const std::string& expected) const {
    if (!n.IsScalar()) fail(n, "expected " + expected);
    return n.Scalar();
  }

  int positive(const YAML::Node& n, const std::string& key) const {
    const std::string v = scalar(n, key + ": a positive integer");
    std::size_t used = 0;
    int x = 0;
    try {
      x = std::stoi(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != v.size() || x < 1) fail(n, key + " must be a positive integer, got '" + v + "'");
    return x;
  }

  void layers(const YAML::Node& list) {
    if (!list.IsSequence()) fail(list, "expected layers: a list of layers ('- conv: {...}')");
    sequence(list, "input", "");
  }

  // Emits the nodes of `list`, the first fed by `input`, each named with `prefix` (a block's
  // "name."); returns the name of the node whose output ends the list.
  std::string sequence(const YAML::Node& list, std::string input, const std::string& prefix) {
    if (!list.IsSequence() || list.size() == 0)
      fail(list, "expected a list of at least one layer ('- conv: {...}')");
    for (const auto& entry : list) input = layer_or_block(entry, input, prefix);
    return input;
  }

  // `- op` or `- op: {setting: value, ...}` (a block mapping works too); `op` may be a block:
  // residual, concat or repeat.
  std::string layer_or_block(const YAML::Node& item, const std::string& input,
                             const std::string& prefix) {
    NodeSpec node;
    node.line = std::max(0, item.Mark().line) + 1;
    YAML::Node settings;
    if (item.IsScalar()) {
      node.op = item.Scalar();
    } else if (item.IsMap() && item.size() == 1) {
      const auto kv = *item.begin();
      node.op = scalar(kv.first, "an op name");
      settings = kv.second;
    } else {
      fail(item, "expected a layer: '- op' or '- op: {setting: value, ...}'");
    }
    if (node.op == "residual" || node.op == "concat" || node.op == "repeat")
      return block(item, settings, node, input, prefix);
    const auto type = layer_registry().find(node.op);
    if (type == layer_registry().end()) {
      std::vector<std::string> ops;
      for (const auto& kv : layer_registry()) ops.push_back(kv.first);
      ops.insert(ops.end(), {"residual", "concat", "repeat"});
      fail(item, "unknown layer '" + node.op + "'; expected one of: " + joined(ops));
    }
    std::vector<std::string> known = type->second.settings;
    known.insert(known.begin(), "name");
    for (const auto& kv : setting_nodes(settings, node.op, known))
      node.settings[kv.first] = value_text(kv.second, kv.first);
    name(item, node, prefix);
    node.inputs = {input};
    spec_.nodes.push_back(node);
    return node.name;
  }

  // A block's nodes are named "block.layer" ("stage2.1.layer" in a repeat); a residual block's
  // add and a concat block's concat take the block's own name, so its output is the block.
  std::string block(const YAML::Node& item, const YAML::Node& settings, NodeSpec node,
                    const std::string& input, const std::string& prefix) {
    const std::map<std::string, std::vector<std::string>> keys = {
        {"residual", {"name", "body", "shortcut", "act"}},
        {"concat", {"name", "branches"}},
        {"repeat", {"name", "times", "layers"}}};
    const auto given = setting_nodes(settings, node.op, keys.at(node.op));
    const auto need = [&](const std::string& key) {
      const auto it = given.find(key);
      if (it == given.end()) fail(item, node.op + " needs '" + key + "'");
      return it->second;
    };
    if (given.count("name")) node.settings["name"] = value_text(given.at("name"), "name");
    name(item, node, prefix);
    node.settings.erase("name");
    const std::string inner = node.name + ".";
    if (node.op == "repeat") {
      const int times = positive(need("times"), "times");
      std::string last = input;
      for (int i = 1; i <= times; ++i)
        last = sequence(need("layers"), last, inner + std::to_string(i) + ".");
      return last;
    }
    if (node.op == "residual") {
      const std::string body = sequence(need("body"), input, inner);
      const std::string shortcut =
          given.count("shortcut") ? sequence(given.at("shortcut"), input, inner) : input;
      node.op = "add";
      node.inputs = {body, shortcut};
      if (given.count("act")) node.settings["act"] = value_text(given.at("act"), "act");
    } else {
      const YAML::Node branches = need("branches");
      if (!branches.IsSequence() || branches.size() < 2)
        fail(branches, "expected branches: a list of at least two lists of layers");
      for (const auto& b : branches) node.inputs.push_back(sequence(b, input, inner));
    }
    spec_.nodes.push_back(node);
    return node.name;
  }

  // The settings of `op` as key -> value node, each key once and one of `known`.
  std::map<std::string, YAML::Node> setting_nodes(const YAML::Node& settings, const std::string& op,
                                                  const std::vector<std::string>& known) const {
    std::map<std::string, YAML::Node> out;
    if (!settings || settings.IsNull()) return out;
    if (!settings.IsMap()) fail(settings, "expected the settings of " + op + " as a mapping");
    for (const auto& kv : settings) {
      const std::string key = scalar(kv.first, "a setting name");
      if (std::find(known.begin(), known.end(), key) == known.end())
        fail(kv.first, "unknown setting '" + key + "' of " + op + "; expected " +
                           (known.size() == 1 ? "only name" : "one of: " + joined(known)));
      if (out.count(key)) fail(kv.first, "setting '" + key + "' given twice");
      out[key] = kv.second;
    }
    return out;
  }

  // Moves the `name` setting into node.name (or names the node after its op, counted per op
  // within its block), with the prefix, and checks that it is new.
  void name(const YAML::Node& item, NodeSpec& node, const std::string& prefix) {
    const auto it = node.settings.find("name");
    std::string own;
    if (it != node.settings.end()) {
      own = it->second;
      node.settings.erase(it);
      if (own.empty() || own.find('.') != std::string::npos)
        fail(item,
             "a layer name must be non-empty without '.' (it joins a block's name and "
             "its layers'), got '" +
                 own + "'");
    } else {
      own = node.op + std::to_string(++unnamed_[prefix + node.op]);
    }
    node.name = prefix + own;
    if (node.name == "input") fail(item, "the name 'input' is reserved for the model's input");
    const auto first = lines_.find(node.name);
    if (first != lines_.end())
      fail(item, "duplicate layer name '" + node.name + "' (first at line " +
                     std::to_string(first->second) + "); expected every name once");
    lines_[node.name] = node.line;
  }

  // A scalar, or a flow list of scalars kept as "6,6".
  std::string value_text(const YAML::Node& v, const std::string& key) const {
    if (v.IsScalar()) return v.Scalar();
    if (v.IsSequence() && v.size() > 0) {
      std::string s;
      for (const auto& x : v) s += (s.empty() ? "" : ",") + scalar(x, key + ": a list of numbers");
      return s;
    }
    fail(v, "expected a value for " + key);
  }

  ModelSpec spec_;
  std::map<std::string, int> unnamed_;  // per block and op: how many were named after the op
  std::map<std::string, int> lines_;    // name -> line
};

std::string errno_text() {
  return std::strerror(errno);
}

std::string stem(const std::string& path) {
  std::string s = path.substr(path.find_last_of('/') + 1);
  const auto dot = s.find('.');
  return dot == std::string::npos || dot == 0 ? s : s.substr(0, dot);
}

}  // namespace

std::string ModelSpec::at(const NodeSpec& node) const {
  return source + ":" + std::to_string(node.line);
}

std::string ModelSpec::where(const NodeSpec& node) const {
  return at(node) + ": layer " + node.name + " (" + node.op + ")";
}

ModelSpec parse_model_definition(const std::string& text, const std::string& source) {
  ModelSpec spec = Parser(source).parse(text);
  if (spec.name.empty()) spec.name = stem(source);
  return spec;
}

const std::vector<std::string>& zoo_model_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const ZooFile& f : zoo_files()) v.push_back(f.name);
    std::sort(v.begin(), v.end());
    return v;
  }();
  return names;
}

ModelSpec load_model_spec(const std::string& model) {
  for (const ZooFile& f : zoo_files())
    if (model == f.name) return parse_model_definition(f.text, f.path);
  if (model.find_first_of("/.") == std::string::npos) {
    throw UsageError("unknown model '" + model +
                     "'; expected one of: " + joined(zoo_model_names()));
  }
  std::ifstream in(model, std::ios::binary);
  if (!in) throw UsageError("cannot read the model definition '" + model + "': " + errno_text());
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    throw UsageError("cannot read the model definition '" + model + "': " + errno_text());
  return parse_model_definition(text.str(), model);
}

}  // namespace distnet
