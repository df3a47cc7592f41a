// ONNX export of a model's inference graph. Each layer's settings are read from the node of the
// definition it was built from (the same parser and the same checked readers as the layer
// registry); the wiring, every shape and the weights come from the built model. The result goes
// through ONNX's checker, and through strict shape inference with distnet's shape of every
// layer's output declared, so a setting mapped wrongly (a pooling size rule, padding) is refused
// here rather than found by whoever runs the file.
#include "distnet/onnx_export.hpp"

#include <fcntl.h>
#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <map>
#include <set>

#include "distnet/layer_registry.hpp"
#include "distnet/model_spec.hpp"
#include "distnet/version.hpp"

namespace distnet {
namespace {

// The settings of each op that this exporter maps (the registry's, and a block's `act`). A setting
// the registry gains later is refused, naming the layer, until its meaning is mapped too -- never
// silently dropped.
const std::map<std::string, std::set<std::string>>& mapped_settings() {
  static const std::map<std::string, std::set<std::string>> m = {
      {"conv", {"act", "bias", "channels", "groups", "kernel", "padding", "stride"}},
      {"max_pool", {"kernel", "padding", "stride"}},
      {"avg_pool", {"count_padding", "kernel", "padding", "stride"}},
      {"adaptive_avg_pool", {"size"}},
      {"dense", {"act", "units"}},
      {"dropout", {"p"}},                          // identity at inference
      {"batch_norm", {"act", "eps", "momentum"}},  // momentum: training only
      {"flatten", {}},
      {"relu", {}},
      {"add", {"act"}},
      {"concat", {}},
  };
  return m;
}

// ONNX's messages run over several lines; ours are one.
std::string one_line(const std::string& text) {
  std::string s;
  for (char c : text) {
    if (c == '\n' || c == '\r') {
      if (!s.empty() && s.back() != ' ') s += ' ';
    } else {
      s += c;
    }
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// Appends nodes, declared values and initializers to a graph. Value names are unique: a wanted
// name already taken gets a suffix ("_2").
class GraphWriter {
 public:
  GraphWriter(onnx::GraphProto& g, std::int64_t batch) : g_(g), batch_(batch) {}

  std::string fresh(const std::string& want) { return unique(values_, want); }

  onnx::NodeProto& node(const std::string& op, const std::string& name,
                        const std::vector<std::string>& inputs, const std::string& output) {
    onnx::NodeProto& n = *g_.add_node();
    n.set_op_type(op);
    n.set_name(unique(nodes_, name));
    for (const std::string& in : inputs) n.add_input(in);
    n.add_output(output);
    return n;
  }

  static void ints(onnx::NodeProto& n, const std::string& name, std::vector<std::int64_t> v) {
    onnx::AttributeProto& a = *n.add_attribute();
    a.set_name(name);
    a.set_type(onnx::AttributeProto::INTS);
    for (std::int64_t x : v) a.add_ints(x);
  }
  static void integer(onnx::NodeProto& n, const std::string& name, std::int64_t v) {
    onnx::AttributeProto& a = *n.add_attribute();
    a.set_name(name);
    a.set_type(onnx::AttributeProto::INT);
    a.set_i(v);
  }
  static void real(onnx::NodeProto& n, const std::string& name, float v) {
    onnx::AttributeProto& a = *n.add_attribute();
    a.set_name(name);
    a.set_type(onnx::AttributeProto::FLOAT);
    a.set_f(v);
  }

  // A float tensor of `per_sample` shape with the batch dimension first.
  void declare(onnx::ValueInfoProto& v, const std::string& name, const Shape& per_sample) const {
    v.set_name(name);
    onnx::TypeProto::Tensor& t = *v.mutable_type()->mutable_tensor_type();
    t.set_elem_type(onnx::TensorProto::FLOAT);
    onnx::TensorShapeProto& s = *t.mutable_shape();
    if (batch_ > 0)
      s.add_dim()->set_dim_value(batch_);
    else
      s.add_dim()->set_dim_param("N");
    for (std::int64_t d : per_sample.dims()) s.add_dim()->set_dim_value(d);
  }
  void input(const std::string& name, const Shape& s) { declare(*g_.add_input(), name, s); }
  void output(const std::string& name, const Shape& s) { declare(*g_.add_output(), name, s); }
  void value(const std::string& name, const Shape& s) { declare(*g_.add_value_info(), name, s); }

  // An initializer of `shape` whose little-endian floats `fill` writes into `bytes`.
  template <typename Fill>
  void initializer(const std::string& name, const Shape& shape, Fill fill) {
    DISTNET_CHECK(unique(values_, name) == name,
                  "ONNX export: the tensor name " + name + " is used twice in the graph");
    onnx::TensorProto& t = *g_.add_initializer();
    t.set_name(name);
    t.set_data_type(onnx::TensorProto::FLOAT);
    for (std::int64_t d : shape.dims()) t.add_dims(d);
    std::string& bytes = *t.mutable_raw_data();
    bytes.resize(sizeof(float) * static_cast<std::size_t>(shape.numel()));
    fill(&bytes[0]);
  }

 private:
  static std::string unique(std::set<std::string>& used, const std::string& want) {
    std::string name = want;
    for (int k = 2; used.count(name); ++k) name = want + "_" + std::to_string(k);
    used.insert(name);
    return name;
  }
  onnx::GraphProto& g_;
  std::int64_t batch_;
  std::set<std::string> values_, nodes_;
};

// ONNX's checker, then strict shape inference against the shapes declared from distnet's layers
// (a declared shape that the ops do not produce is an error). Inference runs on a copy without
// the initializers' data, which it does not need.
void validate(onnx::ModelProto& m) {
  try {
    onnx::checker::check_model(m);
  } catch (const std::exception& e) {
    throw Error("the exported graph fails ONNX's checker: " + one_line(e.what()));
  }
  std::vector<std::string> data(std::size_t(m.graph().initializer_size()));
  for (int i = 0; i < m.graph().initializer_size(); ++i)
    data[std::size_t(i)].swap(*m.mutable_graph()->mutable_initializer(i)->mutable_raw_data());
  onnx::ModelProto probe = m;
  for (int i = 0; i < m.graph().initializer_size(); ++i)
    data[std::size_t(i)].swap(*m.mutable_graph()->mutable_initializer(i)->mutable_raw_data());
  try {
    onnx::ShapeInferenceOptions strict(/*check_type=*/true, /*error_mode=*/1);
    onnx::shape_inference::InferShapes(probe, onnx::OpSchemaRegistry::Instance(), strict);
  } catch (const std::exception& e) {
    throw Error("the exported graph's shapes disagree with distnet's (ONNX shape inference: " +
                one_line(e.what()) + ")");
  }
}

}  // namespace

std::string export_onnx(const Model& model, const OnnxExportOptions& o) {
  DISTNET_CHECK_USAGE(o.opset >= kOnnxMinOpset && o.opset <= kOnnxMaxOpset,
                      "opset must be between " + std::to_string(kOnnxMinOpset) + " and " +
                          std::to_string(kOnnxMaxOpset) + ", got " + std::to_string(o.opset));
  DISTNET_CHECK_USAGE(o.batch >= 0,
                      "batch must be >= 1 (or dynamic), got " + std::to_string(o.batch));
  DISTNET_CHECK(!model.is_split(), "ONNX export takes a whole model, not a hybrid grid's shard");
  const ModelConfig& cfg = model.config();
  const ModelSpec spec = load_model_spec(cfg.name);
  const auto& layers = model.layers();
  DISTNET_CHECK(spec.nodes.size() == layers.size(),
                spec.source + ": the definition has " + std::to_string(spec.nodes.size()) +
                    " layers, the model " + std::to_string(layers.size()));
  const LayerBuild settings(spec, cfg, LayerSplit{});

  onnx::ModelProto m;
  m.set_ir_version(onnx::IR_VERSION);
  m.set_producer_name("distnet");
  m.set_producer_version(DISTNET_VERSION);
  m.set_doc_string(o.doc);
  onnx::OperatorSetIdProto& opset = *m.add_opset_import();
  opset.set_domain("");
  opset.set_version(o.opset);
  for (const auto& [key, value] : o.metadata) {
    onnx::StringStringEntryProto& p = *m.add_metadata_props();
    p.set_key(key);
    p.set_value(value);
  }
  onnx::GraphProto& g = *m.mutable_graph();
  g.set_name(spec.name);
  GraphWriter w(g, o.batch);
  w.fresh("input");
  w.fresh("logits");
  w.input("input", cfg.input);

  // Every tensor by name: a parameter or a running statistic, with the buffer it lives in.
  std::map<std::string, std::pair<const ParamEntry*, const float*>> tensors;
  for (const ParamEntry& e : model.params()) tensors[e.spec.name] = {&e, model.param_data()};
  for (const ParamEntry& e : model.state()) tensors[e.spec.name] = {&e, model.state_data()};
  // An initializer per tensor of the layer, in param_specs() order; returns their names.
  auto weights = [&](const Layer& l) {
    std::vector<std::string> names;
    for (const ParamSpec& s : l.param_specs()) {
      const auto it = tensors.find(s.name);
      DISTNET_CHECK(it != tensors.end() && !s.is_piece(),
                    "ONNX export: layer " + l.name() + " has no whole tensor " + s.name);
      const float* src = it->second.second + it->second.first->offset;
      w.initializer(s.name, s.shape, [&](char* dst) {
        model.backend().download(dst, src, sizeof(float) * std::size_t(s.shape.numel()));
      });
      names.push_back(s.name);
    }
    return names;
  };

  std::vector<std::string> out(layers.size());  // the value holding each layer's output
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const NodeSpec& node = spec.nodes[i];
    const Layer& l = *layers[i];
    const std::string where = spec.where(node);
    DISTNET_CHECK(node.name == l.name(), where + ": the model's layer " + std::to_string(i) +
                                             " is " + l.name() + ", the definition's " + node.name);
    const auto known = mapped_settings().find(node.op);
    if (known == mapped_settings().end())
      throw Error(where + ": op '" + node.op + "' has no ONNX mapping in this exporter");
    for (const auto& kv : node.settings)
      if (!known->second.count(kv.first))
        throw Error(where + ": setting '" + kv.first + "' of " + node.op +
                    " has no ONNX mapping in this exporter");

    std::vector<std::string> in;
    for (int k : model.inputs(i)) in.push_back(k < 0 ? "input" : out[std::size_t(k)]);
    const Shape& in_shape = l.input_shape();
    const Shape& out_shape = l.output_shape();
    // The value that ends the layer: the graph's output for a last layer that gives one row per
    // sample, else the layer's name. `linear` is where an op writes before a fused ReLU.
    const bool last = i + 1 == layers.size();
    const std::string result = last && out_shape.rank() == 1 ? "logits" : w.fresh(l.name());
    const bool relu = known->second.count("act") && settings.activation(node) == Activation::relu;
    const std::string linear = relu ? w.fresh(l.name() + "/linear") : result;
    bool alias = false;  // the layer computes nothing at inference: its output is its input

    if (node.op == "conv") {
      const std::vector<std::string> p = weights(l);  // weight (O, I/G, K, K), then a bias if any
      const ParamSpec weight = l.param_specs().at(0);
      const int kernel = settings.positive_int(node, "kernel");
      const int stride = settings.positive_int(node, "stride", 1);
      const int pad = settings.non_negative_int(node, "padding", 0);
      const int groups = settings.positive_int(node, "groups", 1);
      DISTNET_CHECK(weight.shape[2] == kernel && weight.shape[1] * groups == in_shape[0] &&
                        p.size() == (settings.boolean(node, "bias", true) ? 2u : 1u),
                    where + ": the layer's weights do not match its settings");
      std::vector<std::string> args = {in.at(0)};
      args.insert(args.end(), p.begin(), p.end());
      onnx::NodeProto& n = w.node("Conv", l.name(), args, linear);
      GraphWriter::ints(n, "kernel_shape", {kernel, kernel});
      GraphWriter::ints(n, "strides", {stride, stride});
      GraphWriter::ints(n, "pads", {pad, pad, pad, pad});
      GraphWriter::ints(n, "dilations", {1, 1});
      GraphWriter::integer(n, "group", groups);
    } else if (node.op == "max_pool" || node.op == "avg_pool") {
      // Output size rounded down (ceil_mode 0), as distnet's; max pooling's padding never wins.
      const int kernel = settings.positive_int(node, "kernel");
      const int stride = settings.positive_int(node, "stride", kernel);
      const int pad = settings.non_negative_int(node, "padding", 0);
      const bool max = node.op == "max_pool";
      onnx::NodeProto& n = w.node(max ? "MaxPool" : "AveragePool", l.name(), in, linear);
      GraphWriter::ints(n, "kernel_shape", {kernel, kernel});
      GraphWriter::ints(n, "strides", {stride, stride});
      GraphWriter::ints(n, "pads", {pad, pad, pad, pad});
      GraphWriter::integer(n, "ceil_mode", 0);
      if (!max)
        GraphWriter::integer(n, "count_include_pad",
                             settings.boolean(node, "count_padding", true) ? 1 : 0);
    } else if (node.op == "adaptive_avg_pool") {
      // ONNX has no adaptive pooling: a global pool, or windows of one size when the output
      // divides the input; unequal windows (torchvision's rule otherwise) cannot be expressed.
      const std::int64_t h = in_shape[1], wd = in_shape[2], oh = out_shape[1], ow = out_shape[2];
      if (h == oh && wd == ow) {
        alias = true;
      } else if (oh == 1 && ow == 1) {
        w.node("GlobalAveragePool", l.name(), in, linear);
      } else if (h % oh == 0 && wd % ow == 0) {
        onnx::NodeProto& n = w.node("AveragePool", l.name(), in, linear);
        GraphWriter::ints(n, "kernel_shape", {h / oh, wd / ow});
        GraphWriter::ints(n, "strides", {h / oh, wd / ow});
      } else {
        throw Error(where + ": adaptive average pooling from " + std::to_string(h) + "x" +
                    std::to_string(wd) + " to " + std::to_string(oh) + "x" + std::to_string(ow) +
                    " has windows of unequal size, which ONNX cannot express; expected an output "
                    "of 1x1 or one that divides the input (train at another input size)");
      }
    } else if (node.op == "dense") {
      // y = x W^T + b over the CHW-flattened input.
      const std::vector<std::string> p = weights(l);
      std::string x = in.at(0);
      if (in_shape.rank() != 1) {
        const std::string flat = w.fresh(l.name() + "/flat");
        GraphWriter::integer(w.node("Flatten", l.name() + "/flatten", {x}, flat), "axis", 1);
        w.value(flat, Shape{in_shape.numel()});
        x = flat;
      }
      onnx::NodeProto& n = w.node("Gemm", l.name(), {x, p.at(0), p.at(1)}, linear);
      GraphWriter::integer(n, "transB", 1);
    } else if (node.op == "dropout") {
      alias = true;
    } else if (node.op == "batch_norm") {
      // Inference: the running statistics (distnet keeps the biased variance; whichever it is,
      // inference divides by sqrt(running_var + eps), as ONNX does).
      const std::vector<std::string> p = weights(l);  // gamma, beta, running_mean, running_var
      std::vector<std::string> args = {in.at(0)};
      args.insert(args.end(), p.begin(), p.end());
      onnx::NodeProto& n = w.node("BatchNormalization", l.name(), args, linear);
      GraphWriter::real(n, "epsilon", settings.real(node, "eps", cfg.bn_eps));
    } else if (node.op == "flatten") {
      GraphWriter::integer(w.node("Flatten", l.name(), in, linear), "axis", 1);
    } else if (node.op == "relu") {
      w.node("Relu", l.name(), in, linear);
    } else if (node.op == "add") {
      // ((x0 + x1) + x2) + ..., distnet's order.
      std::string sum = in.at(0);
      for (std::size_t k = 1; k < in.size(); ++k) {
        const std::string to = k + 1 == in.size() ? linear : w.fresh(l.name() + "/sum");
        w.node("Add", k + 1 == in.size() ? l.name() : l.name() + "/sum", {sum, in[k]}, to);
        if (k + 1 < in.size()) w.value(to, out_shape);
        sum = to;
      }
    } else if (node.op == "concat") {
      GraphWriter::integer(w.node("Concat", l.name(), in, linear), "axis", 1);
    } else {
      throw Error(where + ": op '" + node.op + "' has no ONNX mapping in this exporter");
    }

    if (alias) {
      out[i] = in.at(0);
      continue;
    }
    if (relu) {
      w.value(linear, out_shape);
      w.node("Relu", l.name() + "/relu", {linear}, result);
    }
    if (result != "logits") w.value(result, out_shape);
    out[i] = result;
  }
  // The logits, one row per sample: the last layer's output, flattened where it is C x 1 x 1.
  if (out.back() != "logits") {
    if (layers.back()->output_shape().rank() == 1)
      w.node("Identity", "logits", {out.back()}, "logits");
    else
      GraphWriter::integer(w.node("Flatten", "logits", {out.back()}, "logits"), "axis", 1);
  }
  DISTNET_CHECK(layers.back()->output_shape().numel() == cfg.classes,
                "ONNX export: the last layer gives " + layers.back()->output_shape().str() +
                    " outputs per sample, expected " + std::to_string(cfg.classes));
  w.output("logits", Shape{cfg.classes});

  validate(m);
  const std::size_t size = m.ByteSizeLong();
  if (size > std::size_t(INT_MAX))
    throw Error("the ONNX model would be " + std::to_string(size >> 20) +
                " MiB, above protobuf's 2 GiB limit for one message (external weight files are "
                "not supported)");
  std::string bytes;
  DISTNET_CHECK(m.SerializeToString(&bytes), "ONNX export: protobuf could not serialize the model");
  return bytes;
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  const std::size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  const std::string tmp =
      (slash == std::string::npos ? "" : dir) + "." + base + ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path + ": cannot write: " + std::strerror(errno));
  auto fail = [&](const std::string& what) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw Error(path + ": cannot " + what + ": " + std::strerror(err));
  };
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("write");
    done += std::size_t(n);
  }
  if (::fsync(fd) != 0) fail("flush");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(path + ": cannot write: " + std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(path + ": cannot rename the finished file into place: " + std::strerror(err));
  }
  const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d >= 0) {
    ::fsync(d);  // the rename survives a crash; a directory that cannot be synced is no error
    ::close(d);
  }
}

}  // namespace distnet
