// The hybrid grid's dense layers ("one weird trick", Krizhevsky 2014; docs/process-grid.md).
// Within a group of M ranks, the first dense layer is split by output neurons and the second by
// input neurons, so the activations between them never leave their rank:
//
//   own rows --all-gather--> group rows --dense1[lo:hi, :]--> relu, dropout (shard of the row)
//     --dense2[:, lo:hi] partial sums--> reduce-scatter --> own rows (+bias, relu) --> the rest
//
// Each rank's slice is padded to the step's largest slice (ctx.slice_rows) so that the pieces
// are equal (MPI_Allgather / ncclAllGather); padded rows carry zeros forward and zero gradients
// backward, so they change no sum. Backward mirrors forward: the output gradient of the group's
// rows is all-gathered for dense2, and dense1's input gradient (partial sums over its shard of
// neurons) is reduce-scattered back to the rank that owns each row.
#include "distnet/grid.hpp"
#include "distnet/layer.hpp"

namespace distnet {
namespace {

std::string act_name(Activation a) {
  return a == Activation::relu ? " +relu" : "";
}

// Device scratch that grows to the largest request.
float* grow(Backend& be, Buffer& b, std::int64_t floats) {
  const std::size_t bytes =
      sizeof(float) * static_cast<std::size_t>(std::max<std::int64_t>(1, floats));
  if (b.bytes() < bytes) b = be.allocate(bytes);
  return static_cast<float*>(b.data());
}

// Writes this rank's `n` rows (of `per` floats) into its piece of `all` (slice_rows rows), zero
// padded, and all-gathers the pieces of the group in place.
void gather_rows(Backend& be, Communicator& group, int slice_rows, int n, std::int64_t per,
                 const void* mine, float* all) {
  const std::int64_t piece = std::int64_t(slice_rows) * per;
  float* own = all + std::int64_t(group.rank()) * piece;
  const std::size_t used = sizeof(float) * static_cast<std::size_t>(std::int64_t(n) * per);
  if (n > 0) be.copy(own, mine, used);
  be.fill_zero(reinterpret_cast<char*>(own) + used,
               sizeof(float) * static_cast<std::size_t>(piece) - used);
  group.allgather(own, all, static_cast<std::size_t>(piece));
}

class DenseOutputShard final : public Layer {
 public:
  DenseOutputShard(std::string name, const Shape& in, int out, Activation act,
                   const LayerSplit& split, Range r)
      : Layer(std::move(name), in, Shape{r.size()}),
        in_(in.numel()),
        out_(out),
        r_(r),
        act_(act),
        split_(split) {}

  std::string kind() const override {
    return "dense " + std::to_string(in_) + "->" + std::to_string(out_) + " neurons [" +
           std::to_string(r_.begin) + ", " + std::to_string(r_.end) + ")" + act_name(act_);
  }
  std::vector<ParamSpec> param_specs() const override {
    ParamSpec w{name() + ".weight", Shape{r_.size(), in_}, ParamRole::weight, in_, out_};
    ParamSpec b{name() + ".bias", Shape{r_.size()}, ParamRole::bias};
    w.full = Shape{out_, in_}, b.full = Shape{out_};
    w.begin = b.begin = r_.begin;
    w.sum = b.sum = GradSum::shard;
    return {w, b};
  }
  void bind(Backend& be, const std::vector<float*>& p, const std::vector<float*>& g) override {
    be_ = &be;
    op_ = be.make_dense(int(in_), int(r_.size()));
    w_ = p[0], b_ = p[1], dw_ = g[0], db_ = g[1];
  }
  int rows_out(const StepContext& ctx, int) const override {
    return split_.shards * ctx.slice_rows;
  }
  const std::uint32_t* ids_out(const StepContext& step, const std::uint32_t*) const override {
    return step.training ? static_cast<const std::uint32_t*>(ids_.data()) : nullptr;
  }
  bool collective() const override { return true; }

  void forward(const StepContext& ctx, int n, const float* x, float* y) override {
    const int rows = split_.shards * ctx.slice_rows;
    float* xg = grow(*be_, x_all_, std::int64_t(rows) * in_);
    gather_rows(*be_, *split_.group, ctx.slice_rows, n, in_, x, xg);
    // Dropout after this layer draws masks by the group's sample ids (every rank of the group
    // joins, also one whose slice is empty).
    if (ctx.training) {
      static_assert(sizeof(std::uint32_t) == sizeof(float), "ids travel as 4-byte words");
      gather_rows(*be_, *split_.group, ctx.slice_rows, n, 1, ctx.sample_ids,
                  grow(*be_, ids_, rows));
    }
    if (rows == 0) return;
    op_->forward(rows, xg, w_, b_, y);
    if (act_ == Activation::relu) be_->relu_forward(std::int64_t(rows) * r_.size(), y, y);
  }

  void backward(const StepContext& ctx, int n, const float*, const float* y, float* dy,
                float* dx) override {
    const int rows = split_.shards * ctx.slice_rows;
    const std::int64_t piece = std::int64_t(ctx.slice_rows) * in_;
    float* dx_all = grow(*be_, dx_all_, std::int64_t(rows) * in_);
    if (rows > 0) {
      if (act_ == Activation::relu) be_->relu_backward(std::int64_t(rows) * r_.size(), y, dy, dy);
      op_->backward(rows, static_cast<const float*>(x_all_.data()), w_, dy, dx_all, dw_, db_);
    } else {
      be_->fill_zero(dw_, sizeof(float) * static_cast<std::size_t>(r_.size() * in_));
      be_->fill_zero(db_, sizeof(float) * static_cast<std::size_t>(r_.size()));
    }
    // Sum the input gradient's pieces over the group; each rank keeps its own rows.
    float* mine = grow(*be_, dx_own_, piece);
    split_.group->reduce_scatter_sum(dx_all, mine, static_cast<std::size_t>(piece));
    if (dx && n > 0) be_->copy(dx, mine, sizeof(float) * static_cast<std::size_t>(n * in_));
  }

 private:
  std::int64_t in_, out_;
  Range r_;
  Activation act_;
  LayerSplit split_;
  std::unique_ptr<DenseOp> op_;
  float *w_ = nullptr, *b_ = nullptr, *dw_ = nullptr, *db_ = nullptr;
  Buffer x_all_, ids_, dx_all_, dx_own_;
};

class DenseInputShard final : public Layer {
 public:
  DenseInputShard(std::string name, const Shape& in_piece, int in_full, int out, Activation act,
                  const LayerSplit& split, Range r)
      : Layer(std::move(name), in_piece, Shape{out}),
        in_full_(in_full),
        out_(out),
        r_(r),
        act_(act),
        split_(split) {}

  std::string kind() const override {
    return "dense " + std::to_string(in_full_) + "->" + std::to_string(out_) + " inputs [" +
           std::to_string(r_.begin) + ", " + std::to_string(r_.end) + ")" + act_name(act_);
  }
  std::vector<ParamSpec> param_specs() const override {
    ParamSpec w{name() + ".weight", Shape{out_, r_.size()}, ParamRole::weight, in_full_, out_};
    w.full = Shape{out_, in_full_}, w.axis = 1, w.begin = r_.begin, w.sum = GradSum::shard;
    // The bias is whole on every rank of the group; each computes its gradient from the group's
    // rows (the same figure), summed over the groups like the weight's piece.
    ParamSpec b{name() + ".bias", Shape{out_}, ParamRole::bias};
    b.sum = GradSum::shard;
    return {w, b};
  }
  void bind(Backend& be, const std::vector<float*>& p, const std::vector<float*>& g) override {
    be_ = &be;
    op_ = be.make_dense(int(r_.size()), int(out_));
    w_ = p[0], b_ = p[1], dw_ = g[0], db_ = g[1];
    zero_bias_ = be.allocate(sizeof(float) * static_cast<std::size_t>(out_));
    be.fill_zero(zero_bias_.data(), zero_bias_.bytes());
  }
  int rows_out(const StepContext& ctx, int) const override { return ctx.rows; }
  const std::uint32_t* ids_out(const StepContext& step, const std::uint32_t*) const override {
    return step.sample_ids;
  }
  bool collective() const override { return true; }

  void forward(const StepContext& ctx, int rows, const float* x, float* y) override {
    const std::int64_t piece = std::int64_t(ctx.slice_rows) * out_;
    float* partial = grow(*be_, partial_, std::int64_t(rows) * out_);
    // The bias joins the sum once: in the partial sums of the group's first shard.
    const float* bias = split_.shard == 0 ? b_ : static_cast<const float*>(zero_bias_.data());
    if (rows > 0) op_->forward(rows, x, w_, bias, partial);
    float* mine = grow(*be_, own_, piece);
    split_.group->reduce_scatter_sum(partial, mine, static_cast<std::size_t>(piece));
    const std::int64_t used = std::int64_t(ctx.rows) * out_;
    if (used == 0) return;
    be_->copy(y, mine, sizeof(float) * static_cast<std::size_t>(used));
    if (act_ == Activation::relu) be_->relu_forward(used, y, y);
  }

  void backward(const StepContext& ctx, int rows, const float* x, const float* y, float* dy,
                float* dx) override {
    const std::int64_t used = std::int64_t(ctx.rows) * out_;
    if (act_ == Activation::relu && used > 0) be_->relu_backward(used, y, dy, dy);
    float* dy_all = grow(*be_, dy_all_, std::int64_t(rows) * out_);
    gather_rows(*be_, *split_.group, ctx.slice_rows, ctx.rows, out_, dy, dy_all);
    if (rows > 0) {
      op_->backward(rows, x, w_, dy_all, dx, dw_, db_);
    } else {
      be_->fill_zero(dw_, sizeof(float) * static_cast<std::size_t>(out_ * r_.size()));
      be_->fill_zero(db_, sizeof(float) * static_cast<std::size_t>(out_));
    }
  }

 private:
  std::int64_t in_full_, out_;
  Range r_;
  Activation act_;
  LayerSplit split_;
  std::unique_ptr<DenseOp> op_;
  float *w_ = nullptr, *b_ = nullptr, *dw_ = nullptr, *db_ = nullptr;
  Buffer zero_bias_, partial_, own_, dy_all_;
};

}  // namespace

std::unique_ptr<Layer> make_dense_output_shard(std::string name, const Shape& in, int out,
                                               Activation act, const LayerSplit& split) {
  DISTNET_CHECK(split.group && split.group->size() == split.shards,
                "dense " + name + ": the split needs the group communicator of its M ranks");
  return std::make_unique<DenseOutputShard>(std::move(name), in, out, act, split,
                                            split_range(out, split.shards, split.shard));
}

std::unique_ptr<Layer> make_dense_input_shard(std::string name, const Shape& in_piece, int in_full,
                                              int out, Activation act, const LayerSplit& split) {
  DISTNET_CHECK(split.group && split.group->size() == split.shards,
                "dense " + name + ": the split needs the group communicator of its M ranks");
  const Range r = split_range(in_full, split.shards, split.shard);
  DISTNET_CHECK(in_piece.numel() == r.size(), "dense " + name + ": input piece " + in_piece.str() +
                                                  ", expected " + std::to_string(r.size()) +
                                                  " neurons");
  return std::make_unique<DenseInputShard>(std::move(name), in_piece, in_full, out, act, split, r);
}

}  // namespace distnet
