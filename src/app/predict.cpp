// alexnet predict: a trained checkpoint classifies images.
//   alexnet predict --checkpoint ckpt.h5 photos/ more.jpg       image files and folders
//   alexnet predict --checkpoint ckpt.h5 --split test           a split of the trained-on dataset
// The checkpoint decides everything about the input: model, input size, channels, normalisation
// and, for image folders, the evaluation crop, all as training evaluated. One process; batched;
// CPU or GPU.
#include "app/predict.hpp"

#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "distnet/backend.hpp"
#include "distnet/checkpoint.hpp"
#include "distnet/config.hpp"
#include "distnet/data/augment.hpp"
#include "distnet/data/image_decode.hpp"
#include "distnet/data/image_folder.hpp"
#include "distnet/data/packed.hpp"
#include "distnet/data/transform.hpp"
#include "distnet/error.hpp"
#include "distnet/gpu.hpp"
#include "distnet/model.hpp"
#include "distnet/report.hpp"

namespace distnet::app {
namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;

struct PredictOptions {
  std::string checkpoint, split, split_dir, format, output, classes_file, device = "auto",
                                                                          on_bad = "error";
  std::vector<std::string> inputs;
  int top_k = 5;
  std::int64_t batch = 64;
  bool logits = false, help = false;
};

PredictOptions parse(int argc, char** argv, std::string* help) {
  PredictOptions o;
  po::options_description d(
      "Usage: alexnet predict --checkpoint FILE [options] [IMAGE|FOLDER|PACKED_DIR ...]\n"
      "Classifies images with a trained checkpoint: its model, input size, normalisation and\n"
      "evaluation crop are those of training");
  d.add_options()                                                                //
      ("help,h", po::bool_switch(&o.help), "this text")                          //
      ("checkpoint", po::value(&o.checkpoint), "the trained checkpoint (HDF5)")  //
      ("split", po::value(&o.split),
       "classify a split of the dataset the checkpoint was trained on (train or test), or of a "
       "packed directory given as input (default there: test)")  //
      ("data-dir", po::value<std::string>(),
       "with --split: the dataset's directory, if it moved")                       //
      ("top-k", po::value(&o.top_k)->default_value(o.top_k), "classes per image")  //
      ("format", po::value(&o.format),
       "csv or jsonl (default: from --output's extension, else csv)")  //
      ("output,o", po::value(&o.output),
       "write the predictions here (atomically: the file appears when all are done); "
       "default: standard output")  //
      ("classes", po::value(&o.classes_file),
       "class names, one a line in label order (default: classes.txt beside the checkpoint, "
       "else the dataset's own names)")                                                       //
      ("batch-size", po::value(&o.batch)->default_value(o.batch), "images per forward pass")  //
      ("device", po::value(&o.device)->default_value(o.device), "auto, cpu or cuda")          //
      ("on-bad-image", po::value(&o.on_bad)->default_value(o.on_bad),
       "an image that cannot be read or decoded: error (stop, nothing written) or skip (warn, "
       "leave it out)")  //
      ("logits", po::bool_switch(&o.logits), "also write every class's logit");
  po::options_description hidden;
  hidden.add_options()("input", po::value(&o.inputs)->composing());
  po::options_description all;
  all.add(d).add(hidden);
  po::positional_options_description pos;
  pos.add("input", -1);
  po::variables_map vm;
  try {
    const int style =
        po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).style(style).run(),
              vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(std::string(e.what()) + " (alexnet predict --help lists the options)");
  }
  std::ostringstream text;
  text << d;
  *help = text.str();
  if (o.help) return o;
  if (vm.count("data-dir")) o.split_dir = vm["data-dir"].as<std::string>();
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw UsageError(what);
  };
  need(!o.checkpoint.empty(), "predict needs --checkpoint FILE (a checkpoint written by training)");
  need(!o.inputs.empty() || !o.split.empty(),
       "predict needs images: files, folders or a packed directory after the options, or "
       "--split test|train");
  need(o.split.empty() || o.split == "test" || o.split == "train",
       "--split must be train or test, got '" + o.split + "'");
  need(o.top_k >= 1, "--top-k must be at least 1, got " + std::to_string(o.top_k));
  need(o.batch >= 1, "--batch-size must be at least 1, got " + std::to_string(o.batch));
  need(o.device == "auto" || o.device == "cpu" || o.device == "cuda",
       "--device must be auto, cpu or cuda, got '" + o.device + "'");
  need(o.on_bad == "error" || o.on_bad == "skip",
       "--on-bad-image must be error or skip, got '" + o.on_bad + "'");
  if (o.format.empty()) {
    const auto dot = o.output.rfind('.');
    const std::string ext = dot == std::string::npos ? "" : o.output.substr(dot + 1);
    o.format = ext == "jsonl" || ext == "json" ? "jsonl" : "csv";
  }
  need(o.format == "csv" || o.format == "jsonl",
       "--format must be csv or jsonl, got '" + o.format + "'");
  return o;
}

// Names the datasets have by definition, in label order.
std::vector<std::string> dataset_class_names(const std::string& dataset) {
  if (dataset == "fashion-mnist")
    return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  if (dataset == "cifar10")
    return {"airplane", "automobile", "bird",  "cat",  "deer",
            "dog",      "frog",       "horse", "ship", "truck"};
  if (dataset == "mnist") return {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  return {};
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot read the class names: " + std::strerror(errno));
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(line);
  }
  return out;
}

// --- what an input is --------------------------------------------------------------------------

// How a file becomes the raw image the training data would have given: an image folder's
// evaluation crop (3 x S x S), or for a fixed-size dataset its C x H x W (resampled to H x W if
// the file has another size; one channel: PIL's convert("L") luminance).
struct Prep {
  bool folder_kind = false;
  Shape raw;  // C x H x W
};

void file_to_raw(const std::vector<std::uint8_t>& bytes, const std::string& name, const Prep& p,
                 std::uint8_t* out) {
  const int c = int(p.raw[0]), h = int(p.raw[1]), w = int(p.raw[2]);
  if (p.folder_kind) {
    data::AugmentSpec spec;
    spec.size = h;
    spec.train = false;
    data::decode_augmented(bytes.data(), bytes.size(), name, spec, 0, 0, out);
    return;
  }
  const data::RgbImage img = data::decode_image(bytes.data(), bytes.size(), name);
  std::vector<std::uint8_t> planar(std::size_t(3) * std::size_t(h) * std::size_t(w));
  if (img.width == w && img.height == h) {
    const std::size_t n = std::size_t(h) * std::size_t(w);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t k = 0; k < 3; ++k) planar[k * n + i] = img.pixels[3 * i + k];
  } else {
    data::resample_crop(img, data::CropBox{0, 0, double(img.width), double(img.height)}, w, h,
                        false, planar.data());
  }
  const std::size_t n = std::size_t(h) * std::size_t(w);
  if (c == 3) {
    std::memcpy(out, planar.data(), planar.size());
  } else if (c == 1) {  // ITU-R 601-2 luma in 16-bit fixed point, as PIL's convert("L")
    for (std::size_t i = 0; i < n; ++i)
      out[i] = std::uint8_t(
          (planar[i] * 19595u + planar[n + i] * 38470u + planar[2 * n + i] * 7471u + 0x8000u) >>
          16);
  } else {
    throw Error(name + ": the model takes " + std::to_string(c) +
                " channels; image files give 1 (grey) or 3 (RGB)");
  }
}

bool is_image_name(const std::string& name) {
  std::string ext = fs::path(name).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

// Files as given; folders walked (recursively, image extensions only, sorted).
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const std::string& in : inputs) {
    std::error_code ec;
    const fs::file_status st = fs::status(in, ec);
    if (ec || !fs::exists(st)) throw Error(in + ": no such file or folder");
    if (!fs::is_directory(st)) {
      files.push_back(in);
      continue;
    }
    std::vector<std::string> found;
    for (auto it = fs::recursive_directory_iterator(in, ec); !ec && it != fs::end(it);
         it.increment(ec))
      if (it->is_regular_file() && is_image_name(it->path().filename().string()))
        found.push_back(it->path().string());
    if (ec) throw Error(in + ": cannot list the folder: " + ec.message());
    if (found.empty()) throw Error(in + ": a folder without .jpg, .jpeg or .png files");
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

// --- the output ----------------------------------------------------------------------------------

class Writer {
 public:
  Writer(const PredictOptions& o, int k) : o_(o), k_(k) {
    if (o.output.empty()) {
      out_ = stdout;
    } else {
      const fs::path target(o.output);
      tmp_ = (target.parent_path().empty() ? fs::path(".") : target.parent_path()) /
             ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()));
      out_ = std::fopen(tmp_.c_str(), "w");
      if (!out_) throw Error(o.output + ": cannot write the predictions: " + std::strerror(errno));
    }
  }
  ~Writer() {
    if (out_ && out_ != stdout) {
      std::fclose(out_);
      std::remove(tmp_.c_str());
    }
  }
  void header(bool truth, int classes) {
    if (o_.format != "csv") return;
    std::fprintf(out_, "source");
    if (truth) std::fprintf(out_, ",truth");
    for (int i = 1; i <= k_; ++i) std::fprintf(out_, ",label%d,class%d,prob%d", i, i, i);
    if (o_.logits)
      for (int c = 0; c < classes; ++c) std::fprintf(out_, ",logit%d", c);
    std::fprintf(out_, "\n");
  }
  void row(const std::string& source, int truth, const std::vector<int>& top,
           const std::vector<double>& prob, const std::vector<std::string>& names,
           const float* logits, int classes) {
    if (o_.format == "csv") {
      std::fprintf(out_, "%s", csv(source).c_str());
      if (truth >= 0) std::fprintf(out_, ",%d", truth);
      for (int i = 0; i < k_; ++i)
        std::fprintf(out_, ",%d,%s,%.6g", top[std::size_t(i)],
                     csv(names[std::size_t(top[std::size_t(i)])]).c_str(),
                     prob[std::size_t(top[std::size_t(i)])]);
      if (o_.logits)
        for (int c = 0; c < classes; ++c) std::fprintf(out_, ",%.9g", double(logits[c]));
      std::fprintf(out_, "\n");
      return;
    }
    std::string s = "{\"source\":\"" + json_escape(source) + "\"";
    if (truth >= 0) s += ",\"truth\":" + std::to_string(truth);
    s += ",\"top\":[";
    char buf[64];
    for (int i = 0; i < k_; ++i) {
      const int c = top[std::size_t(i)];
      std::snprintf(buf, sizeof buf, "%.6g", prob[std::size_t(c)]);
      s += std::string(i ? "," : "") + "{\"label\":" + std::to_string(c) + ",\"class\":\"" +
           json_escape(names[std::size_t(c)]) + "\",\"prob\":" + buf + "}";
    }
    s += "]";
    if (o_.logits) {
      s += ",\"logits\":[";
      for (int c = 0; c < classes; ++c) {
        std::snprintf(buf, sizeof buf, "%.9g", double(logits[c]));
        s += std::string(c ? "," : "") + buf;
      }
      s += "]";
    }
    std::fprintf(out_, "%s}\n", s.c_str());
  }
  // The file under its name only now, complete.
  void finish() {
    if (std::fflush(out_) != 0 || std::ferror(out_))
      throw Error((o_.output.empty() ? std::string("standard output") : o_.output) +
                  ": writing the predictions failed: " + std::strerror(errno));
    if (out_ == stdout) return;
    const int rc = std::fclose(out_);
    out_ = nullptr;
    if (rc != 0 || std::rename(tmp_.c_str(), o_.output.c_str()) != 0) {
      const int err = errno;
      std::remove(tmp_.c_str());
      throw Error(o_.output + ": writing the predictions failed: " + std::strerror(err));
    }
  }

 private:
  static std::string csv(const std::string& v) {
    if (v.find_first_of(",\"\n") == std::string::npos) return v;
    std::string s = "\"";
    for (char ch : v) s += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    return s + "\"";
  }
  const PredictOptions& o_;
  int k_;
  std::FILE* out_ = nullptr;
  fs::path tmp_;
};

std::unique_ptr<Backend> make_backend(const std::string& device) {
  std::string why;
  const int visible = device == "cpu" ? 0 : gpu::usable_devices(&why);
  if (device == "cuda" && visible == 0) throw UsageError("--device cuda: " + why);
  if (visible == 0) return make_cpu_backend();
  gpu::CudaOptions o;
  o.device = 0;
  return gpu::make_cuda_backend(o);
}

int launcher_size() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"})
    if (const char* s = std::getenv(v)) return std::atoi(s);
  return 1;
}

}  // namespace

int predict_main(int argc, char** argv) {
  std::string help;
  PredictOptions o;
  try {
    if (launcher_size() > 1)
      throw UsageError(
          "predict runs as one process; start it without mpirun or srun -n N (it "
          "uses every core, or one GPU)");
    o = parse(argc, argv, &help);
    if (o.help) {
      std::cout << help << "\n";
      return 0;
    }
  } catch (const UsageError& e) {
    std::fprintf(stderr, "alexnet predict: error: %s\n", e.what());
    return 2;
  }
  try {
    // The checkpoint's own settings: model, input size, normalisation, the data it was trained on.
    const CheckpointMeta meta = read_checkpoint_meta(o.checkpoint);
    RunConfig cfg;
    adopt_trained_settings(cfg, meta.config, o.checkpoint);
    if (!o.split_dir.empty()) cfg.data.dir = o.split_dir;
    const bool folder_kind = data::dataset_is_image_folder(cfg.data.name);

    // The data: a split (of the trained-on dataset, or of a packed directory), or files.
    std::unique_ptr<data::Dataset> split;
    std::vector<std::string> files;
    std::string packed_dir;
    for (const std::string& in : o.inputs)
      if (fs::is_directory(in) && fs::exists(fs::path(in) / data::kManifestName)) packed_dir = in;
    if (!packed_dir.empty() && o.inputs.size() > 1)
      throw UsageError("a packed directory (" + packed_dir + ") is predicted alone");
    if (!packed_dir.empty() || !o.split.empty()) {
      if (!o.split.empty() && !o.inputs.empty() && packed_dir.empty())
        throw UsageError("--split classifies the trained-on dataset; give either it or files");
      data::DatasetOptions d = cfg.data;
      if (!packed_dir.empty()) d.name = "packed", d.dir = packed_dir;
      d.image_size = int(meta.input[1]);
      d.augment = false;  // the evaluation crop, for training images too
      d.skip_bad_images = o.on_bad == "skip";
      split = data::open_dataset(d, o.split == "train" ? data::Split::train : data::Split::test);
    } else {
      files = expand_inputs(o.inputs);
    }
    Prep prep;
    prep.folder_kind = folder_kind || !packed_dir.empty();
    if (split) {
      prep.raw = split->image_shape();
    } else if (prep.folder_kind) {
      prep.raw = Shape{3, meta.input[1], meta.input[2]};
    } else {
      data::DatasetOptions d = cfg.data;
      prep.raw = data::nominal_image_shape(d);
    }
    const data::ImageTransform transform(
        prep.raw,
        data::TransformSpec{prep.folder_kind ? 0 : cfg.resize, cfg.norm_mean, cfg.norm_std});
    if (transform.output_shape() != meta.input)
      throw Error(o.checkpoint + ": its model takes " + meta.input.str() + ", but its data (" +
                  cfg.data.name + ", resize " + std::to_string(cfg.resize) + ") gives " +
                  transform.output_shape().str());

    // Class names: --classes, classes.txt beside the checkpoint, the dataset's, or numbers.
    const int classes = int(meta.classes);
    std::vector<std::string> names;
    std::string names_from = o.classes_file;
    if (names_from.empty()) {
      const fs::path beside = fs::path(o.checkpoint).parent_path() / "classes.txt";
      if (fs::exists(beside)) names_from = beside.string();
    }
    if (!names_from.empty()) {
      names = read_lines(names_from);
      if (int(names.size()) != classes)
        throw Error(names_from + ": " + std::to_string(names.size()) + " class names, but " +
                    o.checkpoint + " has " + std::to_string(classes) + " classes");
    } else {
      names = dataset_class_names(cfg.data.name);
      if (int(names.size()) != classes) names.clear();
    }
    for (int c = int(names.size()); c < classes; ++c) names.push_back(std::to_string(c));

    // The model, its weights.
    std::unique_ptr<Backend> be = make_backend(o.device);
    ModelConfig mc;
    mc.name = cfg.model;
    mc.input = meta.input;
    mc.classes = classes;
    const std::int64_t batch = o.batch;
    Model model(mc, *be, int(batch));
    model.initialize(InitConfig{});
    load_checkpoint(o.checkpoint, model, /*weights_only=*/true);

    const int k = std::min(o.top_k, classes);
    Writer out(o, k);
    out.header(split != nullptr, classes);
    const std::size_t raw_bytes = std::size_t(prep.raw.numel());
    const std::size_t in_floats = std::size_t(meta.input.numel());
    std::vector<std::uint8_t> raw(raw_bytes);
    std::vector<float> x(std::size_t(batch) * in_floats), logits(std::size_t(batch * classes));
    Buffer device_x = be->allocate(x.size() * sizeof(float));
    std::vector<std::string> sources;
    std::vector<int> truths;
    std::int64_t skipped = 0, correct = 0, labelled = 0;
    const std::int64_t total = split ? split->size() : std::int64_t(files.size());
    std::vector<int> order(static_cast<std::size_t>(classes));
    std::vector<double> prob(static_cast<std::size_t>(classes));
    auto flush = [&] {
      const int n = int(sources.size());
      if (n == 0) return;
      be->upload(device_x.data(), x.data(), std::size_t(n) * in_floats * sizeof(float));
      const float* y = model.forward(StepContext{false, 0, 0, nullptr}, n,
                                     static_cast<const float*>(device_x.data()));
      be->download(logits.data(), y, std::size_t(n) * std::size_t(classes) * sizeof(float));
      for (int i = 0; i < n; ++i) {
        const float* l = logits.data() + std::size_t(i) * std::size_t(classes);
        const double top = *std::max_element(l, l + classes);
        double sum = 0;
        for (int c = 0; c < classes; ++c)
          sum += prob[std::size_t(c)] = std::exp(double(l[c]) - top);
        for (double& p : prob) p /= sum;
        for (int c = 0; c < classes; ++c) order[std::size_t(c)] = c;
        std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) {
          return prob[std::size_t(a)] > prob[std::size_t(b)] ||
                 (prob[std::size_t(a)] == prob[std::size_t(b)] && a < b);
        });
        const int truth = truths[std::size_t(i)];
        if (truth >= 0) ++labelled, correct += order[0] == truth;
        out.row(sources[std::size_t(i)], truth, order, prob, names, l, classes);
      }
      sources.clear(), truths.clear();
    };
    for (std::int64_t i = 0; i < total; ++i) {
      const std::size_t slot = sources.size();
      int truth = -1;
      std::string source;
      if (split) {
        truth = split->read(i, raw.data());
        source = (packed_dir.empty() ? cfg.data.name : packed_dir) + ":" +
                 (o.split.empty() ? "test" : o.split) + ":" + std::to_string(i);
      } else {
        source = files[std::size_t(i)];
        try {
          file_to_raw(data::read_image_file(source), source, prep, raw.data());
        } catch (const Error& e) {
          if (o.on_bad == "error")
            throw Error(std::string(e.what()) +
                        " (--on-bad-image skip leaves such images out; nothing was written)");
          std::fprintf(stderr, "alexnet predict: warning: skipped: %s\n", e.what());
          ++skipped;
          continue;
        }
      }
      transform.apply(raw.data(), x.data() + slot * in_floats);
      sources.push_back(std::move(source));
      truths.push_back(truth);
      if (std::int64_t(sources.size()) == batch) flush();
    }
    flush();
    out.finish();
    std::string summary = "alexnet predict: " + std::to_string(total - skipped) + " images";
    if (skipped) summary += ", " + std::to_string(skipped) + " skipped";
    if (labelled) {
      char acc[64];
      std::snprintf(acc, sizeof acc, "; top-1 accuracy %.4f against the labels",
                    double(correct) / double(labelled));
      summary += acc;
    }
    std::fprintf(stderr, "%s (%s on %s)\n", summary.c_str(), mc.name.c_str(),
                 be->device().str().c_str());
    return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "alexnet predict: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "alexnet predict: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace distnet::app
