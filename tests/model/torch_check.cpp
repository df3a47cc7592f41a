// One training step of a distnet model on given weights and a given batch, for the comparison
// with PyTorch (tests/model/test_torch_equivalence.py). Under mpiexec the batch is split along the
// batch axis as the trainer splits it (slices differing by at most one); the loss is the sum over
// every rank's samples divided by the global batch, gradients are summed over ranks, then one SGD
// step. Rank 0 writes the gathered logits, the loss and every tensor after the step.
//
//   distnet_torch_check --model NAME|FILE --in DIR --out DIR [--sync-bn] [--lr X]
//                       [--checkpoint FILE] [--forward-only] [--label-smoothing EPS]
//                       [--clip-grad-norm MAX]
//   distnet_torch_check --loss-only --in DIR --out DIR [--label-smoothing EPS]
//     DIR/tensors.txt: one line per tensor, "name d0 d1 ...", its floats in that order in
//     DIR/tensors.bin (little-endian float32). The tensors: every parameter and running statistic
//     of the model by its distnet name, "input" (N x C x H x W), "labels" (N, as floats) and
//     "classes" (1).
//   --checkpoint FILE: the weights come from a distnet checkpoint instead, loaded as --init-from
//     and --eval-only load it (load_checkpoint(FILE, model, weights_only=true)); "classes" then
//     defaults to the checkpoint's. Used by the tests of tools/distnet_torch.py
//     (tests/interchange).
//   --forward-only: one rank, evaluation mode (no dropout, batch-norm with its running
//     statistics), no step; writes the logits alone. "labels" is not needed.
//   --label-smoothing EPS: the loss of the step against (1 - EPS) onehot + EPS / classes.
//   --clip-grad-norm MAX: the summed gradient clipped to global norm MAX before the step, with
//     the trainer's coefficient (clip_coefficient); writes "grad_norm", the norm before clipping,
//     and the "grad:" tensors after it.
//   --loss-only: one rank, the fused softmax cross-entropy alone on "logits" (N x C) and
//     "labels": writes "loss" (the mean over the rows) and "dlogits" (its gradient).
//   --optimizer sgd|lars|adamw --lrs L1,L2,...: instead of the one plain SGD step, one step per
//     learning rate on the same batch through the trainer's Optimizer (distnet/optimizer.hpp),
//     with [--momentum X] [--weight-decay X] [--beta1 X] [--beta2 X] [--eps X] [--trust X]
//     [--no-decay-bias-bn] [--freeze-through LAYER] [--lr-mult PATTERN=F,...]; the logits and
//     loss written are the last step's, "grad:" the last step's gradients and "grad<t>:" those of
//     step t from 0 (tests/model/test_optimizers_torch.py).
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "distnet/checkpoint.hpp"
#include "distnet/comm.hpp"
#include "distnet/config.hpp"
#include "distnet/grid.hpp"
#include "distnet/model.hpp"
#include "distnet/optimizer.hpp"
#include "distnet/param_groups.hpp"
#include "distnet/trainer.hpp"

using namespace distnet;

namespace {

struct Host {
  Shape shape;
  std::vector<float> data;
};

std::map<std::string, Host> read_tensors(const std::string& dir) {
  std::ifstream index(dir + "/tensors.txt"), bin(dir + "/tensors.bin", std::ios::binary);
  DISTNET_CHECK(index && bin, "cannot read " + dir + "/tensors.txt and tensors.bin");
  std::map<std::string, Host> out;
  std::string line;
  while (std::getline(index, line)) {
    std::istringstream words(line);
    std::string name;
    words >> name;
    std::vector<std::int64_t> dims;
    for (std::int64_t d; words >> d;) dims.push_back(d);
    Host h{Shape(dims), {}};
    h.data.resize(std::size_t(h.shape.numel()));
    bin.read(reinterpret_cast<char*>(h.data.data()), std::streamsize(4 * h.data.size()));
    DISTNET_CHECK(bin.good(), "tensors.bin ends before " + name);
    out[name] = std::move(h);
  }
  return out;
}

void write_tensors(const std::string& dir, const std::vector<std::pair<std::string, Host>>& list) {
  std::ofstream index(dir + "/tensors.txt"), bin(dir + "/tensors.bin", std::ios::binary);
  for (const auto& [name, h] : list) {
    index << name;
    for (auto d : h.shape.dims()) index << " " << d;
    index << "\n";
    bin.write(reinterpret_cast<const char*>(h.data.data()), std::streamsize(4 * h.data.size()));
  }
  DISTNET_CHECK(index.good() && bin.good(), "cannot write the tensors to " + dir);
}

// Every parameter and running statistic: from `checkpoint` through the production loader when one
// is given, else from the tensors by name, shape checked.
void load_weights(Model& m, const std::map<std::string, Host>& tensors, const std::string& in,
                  const std::string& checkpoint) {
  if (!checkpoint.empty()) {
    load_checkpoint(checkpoint, m, /*weights_only=*/true);
    return;
  }
  for (const auto& [list, base] :
       {std::pair{&m.params(), m.param_data()}, std::pair{&m.state(), m.state_data()}}) {
    for (const ParamEntry& e : *list) {
      const auto it = tensors.find(e.spec.name);
      DISTNET_CHECK(it != tensors.end(), "no tensor " + e.spec.name + " in " + in);
      DISTNET_CHECK(
          it->second.shape == e.spec.shape,
          e.spec.name + " is " + it->second.shape.str() + ", expected " + e.spec.shape.str());
      std::memcpy(base + e.offset, it->second.data.data(), 4 * it->second.data.size());
    }
  }
}

int run(int argc, char** argv) {
  std::string model, in, out, checkpoint;
  bool sync_bn = false, forward_only = false, loss_only = false;
  float lr = 0.1f, smoothing = 0.0f;
  double clip = 0.0;
  OptimizerConfig opt;
  opt.name.clear();  // none: the one plain SGD step
  std::vector<double> lrs;
  std::string freeze_through, lr_mult;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] {
      DISTNET_CHECK(i + 1 < argc, a + " needs a value");
      return std::string(argv[++i]);
    };
    if (a == "--model")
      model = next();
    else if (a == "--in")
      in = next();
    else if (a == "--out")
      out = next();
    else if (a == "--lr")
      lr = std::stof(next());
    else if (a == "--sync-bn")
      sync_bn = true;
    else if (a == "--checkpoint")
      checkpoint = next();
    else if (a == "--forward-only")
      forward_only = true;
    else if (a == "--loss-only")
      loss_only = true;
    else if (a == "--label-smoothing")
      smoothing = std::stof(next());
    else if (a == "--clip-grad-norm")
      clip = std::stod(next());
    else if (a == "--optimizer")
      opt.name = next();
    else if (a == "--lrs") {
      std::istringstream items(next());
      for (std::string item; std::getline(items, item, ',');) lrs.push_back(std::stod(item));
    } else if (a == "--momentum")
      opt.momentum = std::stod(next());
    else if (a == "--weight-decay")
      opt.weight_decay = std::stod(next());
    else if (a == "--beta1")
      opt.beta1 = std::stod(next());
    else if (a == "--beta2")
      opt.beta2 = std::stod(next());
    else if (a == "--eps")
      opt.eps = std::stod(next());
    else if (a == "--trust")
      opt.lars_trust = std::stod(next());
    else if (a == "--no-decay-bias-bn")
      opt.no_decay_bias_bn = true;
    else if (a == "--freeze-through")
      freeze_through = next();
    else if (a == "--lr-mult")
      lr_mult = next();
    else
      DISTNET_CHECK(false, "unknown argument " + a);
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  auto be = make_cpu_backend({CpuOptions::ConvAlgorithm::direct});

  auto tensors = read_tensors(in);
  if (loss_only) {
    DISTNET_CHECK(size == 1, "--loss-only runs on one rank");
    DISTNET_CHECK(tensors.count("logits") && tensors.count("labels"),
                  "no tensors logits and labels in " + in);
    const Host& z = tensors.at("logits");
    const int rows = int(z.shape[0]), classes = int(z.shape[1]);
    std::vector<std::int32_t> labels;
    for (float v : tensors.at("labels").data) labels.push_back(std::int32_t(v));
    Host d{z.shape, std::vector<float>(z.data.size())};
    double stats[3] = {0, 0, 0};
    be->softmax_xent(rows, classes, z.data.data(), labels.data(), 1.0f / float(rows), d.data.data(),
                     stats, smoothing);
    write_tensors(out, {{"loss", {Shape{1}, {float(stats[0] / rows)}}}, {"dlogits", d}});
    return 0;
  }
  DISTNET_CHECK(tensors.count("input"), "no tensor input in " + in);
  const Host& x = tensors.at("input");
  const int n_all = int(x.shape[0]);
  ModelConfig mc;
  mc.name = model;
  mc.input = Shape{x.shape[1], x.shape[2], x.shape[3]};
  mc.classes = tensors.count("classes") ? int(tensors.at("classes").data.at(0))
               : !checkpoint.empty()    ? int(read_checkpoint_meta(checkpoint).classes)
                                        : 0;
  DISTNET_CHECK(mc.classes > 0, "no tensor classes in " + in);
  if (forward_only) {
    DISTNET_CHECK(size == 1, "--forward-only runs on one rank");
    Model m(mc, *be, n_all);
    load_weights(m, tensors, in, checkpoint);
    const StepContext ctx{false, 7, 0, nullptr};  // evaluation: no dropout, running statistics
    const float* logits = m.forward(ctx, n_all, x.data.data());
    const std::int64_t count = std::int64_t(n_all) * mc.classes;
    write_tensors(out, {{"logits", {Shape{n_all, mc.classes}, {logits, logits + count}}}});
    return 0;
  }
  DISTNET_CHECK(tensors.count("labels"), "no tensor labels in " + in);
  const Host& y = tensors.at("labels");
  mc.sync_bn = sync_bn;  // batch-norm statistics of the whole batch, summed over the ranks
  mc.sync_bn_ranks = comm.get();
  const Range slice = split_range(n_all, size, rank);
  const int n = int(slice.end - slice.begin);
  Model m(mc, *be, std::max(1, n));
  load_weights(m, tensors, in, checkpoint);

  const std::int64_t per = mc.input.numel();
  std::vector<std::uint32_t> ids;
  std::vector<std::int32_t> labels;
  for (int i = 0; i < n; ++i) {
    ids.push_back(std::uint32_t(slice.begin + i));
    labels.push_back(std::int32_t(y.data[std::size_t(slice.begin + i)]));
  }
  const float* xs = x.data.data() + slice.begin * per;
  std::optional<Optimizer> optimizer;
  std::optional<ParamGroups> groups;
  if (!opt.name.empty()) {
    DISTNET_CHECK(!lrs.empty(), "--optimizer needs --lrs");
    groups.emplace(make_param_groups(m, freeze_through, parse_lr_mults(lr_mult)));
    optimizer.emplace(m, *groups, opt);
  } else {
    lrs = {double(lr)};
  }
  const float* logits = nullptr;
  double stats[3] = {0, 0, 0};
  std::vector<float> grads;
  std::vector<std::vector<float>> step_grads;  // of every step, with --optimizer
  double grad_sq = 0;                          // of the last step, before clipping
  for (std::size_t t = 0; t < lrs.size(); ++t) {
    const StepContext ctx{true, 7, std::uint32_t(t), ids.data()};
    logits = m.forward(ctx, n, xs);
    stats[0] = stats[1] = stats[2] = 0;
    if (n > 0)
      be->softmax_xent(n, mc.classes, logits, labels.data(), 1.0f / float(n_all), m.dlogits(),
                       stats, smoothing);
    DISTNET_CHECK(m.backward(ctx, n, xs), "backward was abandoned");
    comm->allreduce_sum(stats, 3);
    comm->allreduce_sum(m.grad_data(), std::size_t(m.flat_size()));
    grad_sq = 0;  // every rank holds the whole summed gradient
    be->sum_squares(m.flat_size(), m.grad_data(), &grad_sq);
    const double coef = clip_coefficient(std::sqrt(grad_sq), clip);
    if (coef < 1.0) be->scale(m.flat_size(), float(coef), m.grad_data());
    grads.assign(m.grad_data(), m.grad_data() + m.flat_size());
    if (optimizer) step_grads.push_back(grads);
    if (optimizer)
      optimizer->step(lrs[t], std::int64_t(t) + 1);
    else
      be->sgd_update(m.flat_size(), m.param_data(), m.grad_data(), m.momentum_data(),
                     {lr, 0.0f, 0.0f});
  }

  // Logits of every sample, in order, on rank 0.
  std::vector<int> counts(static_cast<std::size_t>(size)), displs(counts);
  for (int r = 0; r < size; ++r) {
    const Range s = split_range(n_all, size, r);
    counts[std::size_t(r)] = int((s.end - s.begin) * mc.classes);
    displs[std::size_t(r)] = int(s.begin * mc.classes);
  }
  Host all{Shape{n_all, mc.classes}, std::vector<float>(std::size_t(n_all * mc.classes))};
  MPI_Gatherv(n > 0 ? logits : nullptr, n * mc.classes, MPI_FLOAT, all.data.data(), counts.data(),
              displs.data(), MPI_FLOAT, 0, MPI_COMM_WORLD);
  if (rank == 0) {
    std::vector<std::pair<std::string, Host>> list{
        {"logits", all},
        {"loss", {Shape{1}, {float(stats[0] / n_all)}}},
        {"grad_norm", {Shape{1}, {float(std::sqrt(grad_sq))}}}};
    auto save = [&](const std::vector<ParamEntry>& entries, const float* base,
                    const std::string& prefix) {
      for (const ParamEntry& e : entries)
        list.push_back(
            {prefix + e.spec.name,
             {e.spec.shape,
              std::vector<float>(base + e.offset, base + e.offset + e.spec.shape.numel())}});
    };
    save(m.params(), m.param_data(), "");
    save(m.params(), grads.data(), "grad:");
    for (std::size_t t = 0; t < step_grads.size(); ++t)
      save(m.params(), step_grads[t].data(), "grad" + std::to_string(t) + ":");
    save(m.state(), m.state_data(), "");
    write_tensors(out, list);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rc = 1;
  try {
    rc = run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distnet_torch_check: error: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return rc;
}
