// alexnet-export: a checkpoint's model as an ONNX file of its inference graph
// (docs/onnx-export.md).
//   alexnet-export --checkpoint CKPT.h5 --output model.onnx [--opset 13] [--batch N|dynamic]
// Reads top to bottom: options, the checkpoint's attributes (model, input, classes, and the
// evaluation preprocessing from its configuration), the model built on the CPU and its weights
// loaded, the metadata, the export (checked by ONNX's checker and shape inference), the file
// written atomically. Exit 2: the command line is wrong; 1: anything else (a missing or damaged
// checkpoint, a layer ONNX cannot express, a file that cannot be written).
#include <boost/program_options.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "distnet/checkpoint.hpp"
#include "distnet/config.hpp"
#include "distnet/data/dataset.hpp"
#include "distnet/error.hpp"
#include "distnet/onnx_export.hpp"
#include "distnet/version.hpp"

using namespace distnet;
namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace {

constexpr int kExitOk = 0, kExitError = 1, kExitUsage = 2;

struct ExportOptions {
  std::string checkpoint, output, batch = "dynamic";
  int opset = kOnnxDefaultOpset;
  std::int64_t batch_size = 0;  // 0: dynamic
  bool help = false, version = false;
  std::string help_text;
};

ExportOptions parse_options(int argc, char** argv) {
  ExportOptions o;
  po::options_description opts(
      "alexnet-export --checkpoint CKPT.h5 --output MODEL.onnx: writes the checkpoint's model as\n"
      "an ONNX file of its inference graph: input \"input\" (N x C x H x W float, preprocessed as\n"
      "for evaluation: see the file's metadata), output \"logits\" (N x classes), the weights as\n"
      "initializers under their distnet names. See docs/onnx-export.md.\n\nOptions");
  opts.add_options()                                                                       //
      ("help,h", "show this help and exit")                                                //
      ("version", "show the version and exit")                                             //
      ("checkpoint", po::value(&o.checkpoint), "the distnet checkpoint (HDF5) to export")  //
      ("output,o", po::value(&o.output),
       "the ONNX file to write (replaced atomically; left untouched on any error)")  //
      ("opset", po::value(&o.opset)->default_value(o.opset),
       ("the ONNX opset to write, " + std::to_string(kOnnxMinOpset) + " to " +
        std::to_string(kOnnxMaxOpset))
           .c_str())  //
      ("batch", po::value(&o.batch)->default_value(o.batch),
       "the input's first dimension: a number, or dynamic (the symbol N)");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  std::ostringstream help;
  help << opts;
  o.help_text = help.str();
  o.help = vm.count("help") > 0;
  o.version = vm.count("version") > 0;
  if (o.help || o.version) return o;
  if (o.checkpoint.empty()) throw UsageError("give the checkpoint to export: --checkpoint CKPT.h5");
  if (o.output.empty()) throw UsageError("give the file to write: --output MODEL.onnx");
  if (o.opset < kOnnxMinOpset || o.opset > kOnnxMaxOpset)
    throw UsageError("--opset must be between " + std::to_string(kOnnxMinOpset) + " and " +
                     std::to_string(kOnnxMaxOpset) + ", got " + std::to_string(o.opset));
  if (o.batch != "dynamic") {
    std::size_t used = 0;
    long long n = 0;
    try {
      n = std::stoll(o.batch, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != o.batch.size() || n < 1 || n > (1LL << 31))
      throw UsageError("--batch must be a positive number or dynamic, got '" + o.batch + "'");
    o.batch_size = n;
  }
  std::error_code ec;
  if (fs::is_directory(o.output, ec))
    throw UsageError("--output " + o.output + " is a directory; give the file to write");
  if (fs::exists(o.output, ec) && fs::equivalent(o.output, o.checkpoint, ec))
    throw UsageError("--output " + o.output + " is the checkpoint itself; give another file");
  return o;
}

// "0.286,0.353": each value as the shortest text that reads back as the same float.
std::string list_text(const std::vector<float>& v) {
  std::string s;
  for (float x : v) {
    char buf[32];
    for (int digits = 6; digits <= 9; ++digits) {
      std::snprintf(buf, sizeof buf, "%.*g", digits, double(x));
      if (std::strtof(buf, nullptr) == x) break;
    }
    s += (s.empty() ? "" : ",") + std::string(buf);
  }
  return s;
}

// How evaluation prepared an image, in words: what a consumer of the file has to repeat.
std::string preprocessing(const std::string& dataset) {
  const std::string tail =
      "; x / 255; then (x - normalize-mean) / normalize-std per channel where they are given; "
      "float32 NCHW";
  if (data::dataset_is_image_folder(dataset))
    return "RGB image decoded to uint8; short side resized to S * 256 / 224 and a centre crop "
           "of S x S (S = the input's H), resampled with PIL's antialiased bilinear filter" +
           tail;
  return "uint8 C x H x W image; bilinear resize (half-pixel centres, no antialiasing) to the "
         "input's H x W unless already that size" +
         tail;
}

// classes.txt beside the checkpoint (written there for image folders): one name a line, label
// order. Empty when there is none.
std::vector<std::string> class_names(const std::string& checkpoint, std::int64_t classes) {
  const fs::path file = fs::path(checkpoint).parent_path() / "classes.txt";
  std::error_code ec;
  if (!fs::exists(file, ec)) return {};
  std::ifstream in(file);
  if (!in) throw Error(file.string() + ": cannot read the class names");
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    names.push_back(line);
  }
  if (std::int64_t(names.size()) != classes)
    throw Error(file.string() + ": " + std::to_string(names.size()) + " class names, but the " +
                "checkpoint has " + std::to_string(classes) +
                " classes; expected one name a line, one line per class (or no classes.txt)");
  return names;
}

int export_checkpoint(const ExportOptions& o) {
  // The model, its input and classes, and how its inputs were prepared for evaluation: the
  // checkpoint's own attributes and configuration, as --eval-only takes them.
  const CheckpointMeta meta = read_checkpoint_meta(o.checkpoint);
  RunConfig trained;
  adopt_trained_settings(trained, meta.config, o.checkpoint);

  ModelConfig mc;
  mc.name = meta.model;
  mc.input = meta.input;
  mc.classes = int(meta.classes);
  auto be = make_cpu_backend();
  Model model(mc, *be, 1);
  load_checkpoint(o.checkpoint, model, /*weights_only=*/true);

  OnnxExportOptions x;
  x.opset = o.opset;
  x.batch = o.batch_size;
  const std::string base = fs::path(o.checkpoint).filename().string();
  const std::string input = std::to_string(meta.input[0]) + "," + std::to_string(meta.input[1]) +
                            "," + std::to_string(meta.input[2]);
  x.metadata = {
      {"model", meta.model},
      {"classes", std::to_string(meta.classes)},
      {"input-shape", input},
      {"dataset", trained.data.name},
      {"resize", std::to_string(trained.resize)},
      {"normalize-mean", list_text(trained.norm_mean)},
      {"normalize-std", list_text(trained.norm_std)},
      {"preprocessing", preprocessing(trained.data.name)},
      {"distnet-version", DISTNET_VERSION},
      {"checkpoint", base},
      {"checkpoint-distnet-version", meta.distnet_version},
      {"step", std::to_string(meta.state.step)},
      {"run-id", meta.run_id},
  };
  std::string names;
  for (const std::string& n : class_names(o.checkpoint, meta.classes)) names += n + "\n";
  if (!names.empty()) x.metadata.push_back({"class-names", names});
  x.doc = "distnet model " + meta.model + " (input " + meta.input.str() + ", " +
          std::to_string(meta.classes) + " classes) from checkpoint " + base + ", step " +
          std::to_string(meta.state.step);

  const std::string bytes = export_onnx(model, x);
  write_file_atomically(o.output, bytes);
  std::printf("%s: %s, opset %d, input %s x %s, logits %s x %lld, %zu bytes\n", o.output.c_str(),
              meta.model.c_str(), o.opset, o.batch_size ? o.batch.c_str() : "N",
              meta.input.str().c_str(), o.batch_size ? o.batch.c_str() : "N",
              static_cast<long long>(meta.classes), bytes.size());
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  ExportOptions o;
  try {
    o = parse_options(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "alexnet-export: error: %s\n", e.what());
    return kExitUsage;
  }
  if (o.help) {
    std::cout << o.help_text << "\n";
    return kExitOk;
  }
  if (o.version) {
    std::cout << "alexnet-export (distnet) " << DISTNET_VERSION << "\n";
    return kExitOk;
  }
  try {
    return export_checkpoint(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "alexnet-export: error: %s\n", e.what());
    return kExitError;
  }
}
