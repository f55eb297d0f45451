#include "model/layers.h"

#include <limits>

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/nn/functional/linear.h>

namespace lethe::model {
namespace F = torch::nn::functional;
namespace {
// Decoding steps multiply a handful of rows by weights streamed from DRAM. MKL's sgemm streams a [N, K]
// weight markedly faster as W·xᵀ than as x·Wᵀ when x has few rows (measured on this project's machine, 8
// rows: LM head 8.5 vs 17.9 ms; 566 MB of [3072, 768] layers 31 vs 39 ms), so small inputs take that
// orientation. Same sums, same result up to float rounding.
constexpr int64_t kFewRows = 16;
}  // namespace

torch::Tensor project(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  const int64_t rows = x.numel() / x.size(-1);
  if (rows > kFewRows) return F::linear(x, w, b);
  torch::Tensor x2 = x.reshape({rows, x.size(-1)}).t();                                    // [K, R]
  torch::Tensor y = b.defined() ? torch::addmm(b.unsqueeze(1), w, x2) : torch::mm(w, x2);  // [N, R]
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = w.size(0);
  return y.t().contiguous().view(shape);
}

torch::Tensor project(const torch::Tensor& x, const torch::nn::Linear& l) {
  return project(x, l->weight, l->bias);
}

torch::Tensor head_project(const torch::Tensor& hidden, const torch::Tensor& weight) {
  const int64_t c = weight.size(1), rows = hidden.numel() / c;
  if (rows <= 4 || rows > kFewRows) return project(hidden, weight);
  // The [V, C] head is the largest weight a decoding step streams; MKL reads it fastest 4 rows at a time
  // (measured, 8 rows: 7.9 ms as two 4-row products vs 8.9 ms as one).
  std::vector<torch::Tensor> parts;
  for (const torch::Tensor& chunk : hidden.reshape({rows, c}).split(4))
    parts.push_back(project(chunk, weight));
  std::vector<int64_t> shape = hidden.sizes().vec();
  shape.back() = weight.size(0);
  return torch::cat(parts).view(shape);
}

// ---------------------------------------------------------------------------------------------------------------
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// One block whose activations are not kept: forward runs it without recording and saves its input x
// [B, T, C]; backward runs it again with recording on and takes the gradients of x and of the block's
// trainable parameters through that copy (autograd::grad, nothing accumulated there). The parameters are
// inputs of this node, so the outer graph keeps one AccumulateGrad per parameter: a model run twice before
// one backward (ICU's forget and neighbour batches) sums both contributions before the parameter's hook
// fires once, as ZeRO-2's bucket counting requires. Blocks have no dropout: nothing random to replay.
struct CheckpointedBlock : torch::autograd::Function<CheckpointedBlock> {
  // params: the block's parameters that require gradients, in a fixed order.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, torch::TensorList params,
                               DecoderBlockImpl* block, const BlockInputs* in) {
    std::vector<torch::Tensor> saved{x};
    saved.insert(saved.end(), params.begin(), params.end());
    ctx->save_for_backward(saved);
    // The block outlives its graph (the model owns it); saved_data holds IValues, so its address as an int.
    ctx->saved_data["block"] = reinterpret_cast<int64_t>(block);
    ctx->saved_data["causal"] = in->mask.causal;
    ctx->saved_data["built"] = in->mask.built;
    if (in->mask.additive.defined()) ctx->saved_data["additive"] = in->mask.additive;
    if (in->cos.defined()) {
      ctx->saved_data["cos"] = in->cos;
      ctx->saved_data["sin"] = in->sin;
    }
    return block->forward(x, *in, nullptr);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto* block = reinterpret_cast<DecoderBlockImpl*>(ctx->saved_data["block"].toInt());
    BlockInputs in;
    in.mask.causal = ctx->saved_data["causal"].toBool();
    in.mask.built = ctx->saved_data["built"].toBool();
    if (ctx->saved_data.count("additive")) in.mask.additive = ctx->saved_data["additive"].toTensor();
    if (ctx->saved_data.count("cos")) {
      in.cos = ctx->saved_data["cos"].toTensor();
      in.sin = ctx->saved_data["sin"].toTensor();
    }
    variable_list inputs = ctx->get_saved_variables();  // x, then the parameters
    inputs[0] = inputs[0].detach().requires_grad_(true);
    torch::Tensor y;
    {
      torch::AutoGradMode record(true);
      y = block->forward(inputs[0], in, nullptr);
    }
    variable_list grads = torch::autograd::grad({y}, inputs, {grad_out[0]}, /*retain_graph=*/false,
                                                /*create_graph=*/false, /*allow_unused=*/true);
    grads.emplace_back();  // block
    grads.emplace_back();  // inputs
    return grads;
  }
};
}  // namespace

torch::Tensor run_block(DecoderBlockImpl& block, const torch::Tensor& x, const BlockInputs& in,
                        KvCache* cache, bool recompute) {
  if (!recompute) return block.forward(x, in, cache);
  std::vector<torch::Tensor> params;
  for (const torch::Tensor& p : block.parameters())
    if (p.requires_grad()) params.push_back(p);
  return CheckpointedBlock::apply(x, torch::TensorList(params), &block, &in);
}

// ---------------------------------------------------------------------------------------------------------------
double mask_minimum(torch::ScalarType dtype) {
  if (dtype == torch::kBFloat16) return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
  if (dtype == torch::kHalf) return static_cast<double>(std::numeric_limits<c10::Half>::lowest());
  return static_cast<double>(std::numeric_limits<float>::lowest());
}

torch::Tensor causal_pattern(int64_t past, int64_t t, torch::Device device) {
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(device);
  torch::Tensor qi = torch::arange(past, past + t, opts).unsqueeze(1);  // [T, 1] absolute slot of each query
  torch::Tensor kj = torch::arange(0, past + t, opts).unsqueeze(0);     // [1, K]
  return kj <= qi;
}

torch::Tensor padding_causal_term(const torch::Tensor& causal, const torch::Tensor& padding,
                                  torch::ScalarType dtype) {
  auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(causal.device());
  torch::Tensor visible = causal.unsqueeze(0);                                       // [1, T, K]
  if (padding.defined()) visible = visible & padding.to(torch::kBool).unsqueeze(1);  // [B, T, K]
  return torch::where(visible, torch::zeros({}, f32), torch::full({}, mask_minimum(dtype), f32));
}

}  // namespace lethe::model
