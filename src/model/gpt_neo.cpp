#include "model/gpt_neo.h"

#include <limits>

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/loss.h>

namespace lethe::model {
namespace F = torch::nn::functional;

namespace {
// Decoding steps multiply a handful of rows by weights streamed from DRAM. MKL's sgemm streams a [N, K]
// weight markedly faster as W·xᵀ than as x·Wᵀ when x has few rows (measured on this project's machine, 8
// rows: LM head 8.5 vs 17.9 ms; 566 MB of [3072, 768] layers 31 vs 39 ms), so small inputs take that
// orientation. Same sums, same result up to float rounding.
constexpr int64_t kFewRows = 16;

// x [..., K] · Wᵀ (+ b) → [..., N] for weight W [N, K].
torch::Tensor project(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b = {}) {
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
}  // namespace

std::pair<torch::Tensor, torch::Tensor> KvCache::append(int64_t layer, const torch::Tensor& k,
                                                        const torch::Tensor& v) {
  torch::Tensor& ck = keys[layer];
  torch::Tensor& cv = values[layer];
  const int64_t t = k.size(2);
  if (capacity == 0) {  // concatenation re-copies the cache every step (faster on the CPU, see above)
    ck = ck.defined() ? torch::cat({ck, k}, 2) : k;
    cv = cv.defined() ? torch::cat({cv, v}, 2) : v;
    return {ck, cv};
  }
  TORCH_CHECK(length + t <= capacity, "KV cache of ", capacity, " positions cannot take ", length + t);
  if (!ck.defined()) {
    ck = torch::empty({k.size(0), k.size(1), capacity, k.size(3)}, k.options());
    cv = torch::empty({v.size(0), v.size(1), capacity, v.size(3)}, v.options());
  }
  ck.narrow(2, length, t).copy_(k);
  cv.narrow(2, length, t).copy_(v);
  return {ck.narrow(2, 0, length + t), cv.narrow(2, 0, length + t)};
}

void KvCache::reorder(const torch::Tensor& index) {
  for (auto* store : {&keys, &values})
    for (auto& t : *store) {
      if (!t.defined()) continue;
      if (capacity == 0) {
        t = t.index_select(0, index);
        continue;
      }
      // Rows may also multiply (prefill → beams): a fresh buffer of index.size(0) rows, filled positions
      // only.
      torch::Tensor fresh = torch::empty({index.size(0), t.size(1), capacity, t.size(3)}, t.options());
      fresh.narrow(2, 0, length).copy_(t.narrow(2, 0, length).index_select(0, index));
      t = fresh;
    }
}

// ---------------------------------------------------------------------------------------------------------------
SelfAttentionImpl::SelfAttentionImpl(const GptNeoConfig& cfg, AttentionKind kind)
    : num_heads_(cfg.num_heads), head_dim_(cfg.head_dim()), kind_(kind) {
  const int64_t c = cfg.hidden_size;
  k_proj_ = register_module("k_proj", torch::nn::Linear(torch::nn::LinearOptions(c, c).bias(false)));
  v_proj_ = register_module("v_proj", torch::nn::Linear(torch::nn::LinearOptions(c, c).bias(false)));
  q_proj_ = register_module("q_proj", torch::nn::Linear(torch::nn::LinearOptions(c, c).bias(false)));
  out_proj_ = register_module("out_proj", torch::nn::Linear(torch::nn::LinearOptions(c, c).bias(true)));
}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x, const AttentionMask& mask, KvCache* cache,
                                         int64_t layer) {
  const int64_t b = x.size(0), t = x.size(1);
  // [B, T, C] → [B, H, T, D]
  auto split = [&](const torch::Tensor& y) { return y.view({b, t, num_heads_, head_dim_}).transpose(1, 2); };
  torch::Tensor q = split(project(x, q_proj_)), k = split(project(x, k_proj_)),
                v = split(project(x, v_proj_));
  if (cache) std::tie(k, v) = cache->append(layer, k, v);
  // GPT-Neo does not scale scores by 1/sqrt(D): scale = 1. HF computes q·k in fp32; for fp32 models SDPA does
  // the same, for bf16 the kernel accumulates in fp32 (bf16 → fp32 is exact), so only the rounding of the
  // probabilities before the value product differs.
  const std::optional<torch::Tensor> attn_mask =
      mask.additive.defined() ? std::optional(mask.additive) : std::nullopt;
  torch::Tensor y = at::scaled_dot_product_attention(q, k, v, attn_mask, /*dropout_p=*/0.0,
                                                     /*is_causal=*/mask.causal, /*scale=*/1.0);
  // [B, H, T, D] → [B, T, C]
  return project(y.transpose(1, 2).reshape({b, t, num_heads_ * head_dim_}), out_proj_);
}

// ---------------------------------------------------------------------------------------------------------------
namespace {
// A module with no computation of its own, only children: it reproduces HF's nesting ("transformer.",
// "attn.attention.", "mlp.") so parameter names equal the checkpoint's tensor names.
struct Holder : torch::nn::Module {};
}  // namespace

BlockImpl::BlockImpl(const GptNeoConfig& cfg, int64_t layer) : layer_(layer) {
  const int64_t c = cfg.hidden_size;
  auto ln = [&] {
    return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c}).eps(cfg.layer_norm_epsilon));
  };
  ln_1_ = register_module("ln_1", ln());
  auto holder = register_module("attn", std::make_shared<Holder>());
  attention_ = holder->register_module("attention", SelfAttention(cfg, cfg.attention_layers.at(layer)));
  ln_2_ = register_module("ln_2", ln());
  auto mlp = register_module("mlp", std::make_shared<Holder>());
  c_fc_ = mlp->register_module("c_fc", torch::nn::Linear(c, cfg.inner_dim()));
  c_proj_ = mlp->register_module("c_proj", torch::nn::Linear(cfg.inner_dim(), c));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const AttentionMask& mask, KvCache* cache) {
  torch::Tensor h = x + attention_->forward(ln_1_(x), mask, cache, layer_);
  // gelu_new is GELU with the tanh approximation.
  return h + project(F::gelu(project(ln_2_(h), c_fc_), F::GELUFuncOptions().approximate("tanh")), c_proj_);
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
// fires once, as ZeRO-2's bucket counting requires. The block has no dropout: nothing random to replay.
struct CheckpointedBlock : torch::autograd::Function<CheckpointedBlock> {
  // params: the block's parameters that require gradients, in a fixed order.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, torch::TensorList params,
                               BlockImpl* block, const AttentionMask* mask) {
    std::vector<torch::Tensor> saved{x};
    saved.insert(saved.end(), params.begin(), params.end());
    ctx->save_for_backward(saved);
    // The block outlives its graph (the model owns it); saved_data holds IValues, so its address as an int.
    ctx->saved_data["block"] = reinterpret_cast<int64_t>(block);
    ctx->saved_data["causal"] = mask->causal;
    ctx->saved_data["built"] = mask->built;
    if (mask->additive.defined()) ctx->saved_data["additive"] = mask->additive;
    return block->forward(x, *mask, nullptr);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto* block = reinterpret_cast<BlockImpl*>(ctx->saved_data["block"].toInt());
    AttentionMask mask;
    mask.causal = ctx->saved_data["causal"].toBool();
    mask.built = ctx->saved_data["built"].toBool();
    if (ctx->saved_data.count("additive")) mask.additive = ctx->saved_data["additive"].toTensor();
    variable_list inputs = ctx->get_saved_variables();  // x, then the parameters
    inputs[0] = inputs[0].detach().requires_grad_(true);
    torch::Tensor y;
    {
      torch::AutoGradMode record(true);
      y = block->forward(inputs[0], mask, nullptr);
    }
    variable_list grads = torch::autograd::grad({y}, inputs, {grad_out[0]}, /*retain_graph=*/false,
                                                /*create_graph=*/false, /*allow_unused=*/true);
    grads.emplace_back();  // block
    grads.emplace_back();  // mask
    return grads;
  }
};
}  // namespace

GptNeoImpl::GptNeoImpl(const GptNeoConfig& cfg, torch::Device device, torch::ScalarType dtype) : cfg_(cfg) {
  if (cfg_.attention_layers.empty()) cfg_.attention_layers = alternating_attention(cfg_.num_layers);
  TORCH_CHECK(static_cast<int64_t>(cfg_.attention_layers.size()) == cfg_.num_layers, "attention_layers has ",
              cfg_.attention_layers.size(), " entries for ", cfg_.num_layers, " layers");
  auto transformer = register_module("transformer", std::make_shared<Holder>());
  wte_ = transformer->register_module("wte", torch::nn::Embedding(cfg_.vocab_size, cfg_.hidden_size));
  wte_->to(device, dtype);
  wpe_ = transformer->register_module("wpe",
                                      torch::nn::Embedding(cfg_.max_position_embeddings, cfg_.hidden_size));
  wpe_->to(device, dtype);
  h_ = transformer->register_module("h", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg_.num_layers; ++i) {
    blocks_.emplace_back(cfg_, i);
    blocks_.back()->to(device, dtype);
    h_->push_back(blocks_.back());
  }
  ln_f_ = transformer->register_module(
      "ln_f",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({cfg_.hidden_size}).eps(cfg_.layer_norm_epsilon)));
  ln_f_->to(device, dtype);
}

void GptNeoImpl::reset_parameters(uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& p : named_parameters()) {
    const std::string& name = p.key();
    torch::Tensor& w = p.value();
    const bool is_norm = name.find("ln_") != std::string::npos;
    if (name.ends_with(".bias")) {
      w.zero_();
    } else if (is_norm) {
      w.fill_(1.0);
    } else {
      // Draw on the CPU in fp32 so a given seed gives the same weights whatever the device and dtype.
      w.copy_(at::empty(w.sizes(), at::kFloat).normal_(0.0, cfg_.initializer_range, gen));
    }
  }
}

AttentionMask GptNeoImpl::build_mask(AttentionKind kind, int64_t past, int64_t t,
                                     const torch::Tensor& attention_mask, torch::ScalarType dtype,
                                     torch::Device device) const {
  const int64_t k = past + t;
  const bool in_window = kind == AttentionKind::kGlobal || k <= cfg_.window_size;
  // A single query with no padding sees every key (global), or every key in its window (local): no mask at
  // all, which spares the mask ops and SDPA's mask read on every decoding step. Numerically the same as
  // adding 0.
  if (t == 1 && !attention_mask.defined() && in_window) return {.built = true};
  // No padding, no cache, and every causal key inside the window: plain causal attention. SDPA may then pick
  // its flash kernel (an explicit mask rules that out). The same numbers: HF's masked scores are the dtype's
  // minimum, which the softmax turns into exact zeros, as the causal kernel's −inf.
  if (past == 0 && !attention_mask.defined() && in_window) return {.causal = true, .built = true};
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(device);
  torch::Tensor qi = torch::arange(past, k, opts).unsqueeze(1);  // [T, 1] absolute slot of each query
  torch::Tensor kj = torch::arange(0, k, opts).unsqueeze(0);     // [1, K]
  torch::Tensor causal = kj <= qi;                               // [T, K]
  torch::Tensor allowed = kind == AttentionKind::kLocal ? causal & (kj > qi - cfg_.window_size) : causal;
  const double min = dtype == torch::kBFloat16
                         ? static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest())
                     : dtype == torch::kHalf ? static_cast<double>(std::numeric_limits<c10::Half>::lowest())
                                             : static_cast<double>(std::numeric_limits<float>::lowest());
  // HF: scores = where(layer's causal window, scores, fp32 min) + where(causal & not padding, 0, dtype min).
  // Scores are fp32, so the mask is built in fp32 for every model dtype.
  auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(device);
  torch::Tensor window_term = torch::where(allowed, torch::zeros({}, f32),
                                           torch::full({}, std::numeric_limits<float>::lowest(), f32));
  torch::Tensor visible = causal.unsqueeze(0);  // [1, T, K]
  if (attention_mask.defined())
    visible = visible & attention_mask.to(torch::kBool).unsqueeze(1);  // [B, T, K]
  torch::Tensor model_term = torch::where(visible, torch::zeros({}, f32), torch::full({}, min, f32));
  // [B or 1, 1, T, K]; in the model's dtype for SDPA (bf16 rounds the fp32 minimum to -inf, which SDPA
  // handles: every row keeps at least its own diagonal at a finite value).
  return {.additive = (window_term + model_term).unsqueeze(1).to(dtype), .built = true};
}

ForwardOutput GptNeoImpl::forward(const torch::Tensor& input_ids, const ForwardArgs& args) {
  const int64_t t = input_ids.size(1);
  KvCache* cache = args.cache;
  if (cache && cache->keys.empty()) {
    cache->keys.resize(cfg_.num_layers);
    cache->values.resize(cfg_.num_layers);
  }
  const int64_t past = cache ? cache->length : 0;
  torch::Tensor pos = args.position_ids;
  if (!pos.defined()) {
    TORCH_CHECK(past + t <= cfg_.max_position_embeddings, "sequence of ", past + t,
                " tokens exceeds max_position_embeddings ", cfg_.max_position_embeddings);
    pos = torch::arange(past, past + t, input_ids.options().dtype(torch::kLong)).unsqueeze(0);
  } else {
    // Explicit positions (padded batches): the key length may exceed the table, the positions may not. Not
    // read back here (a host read every forward would stall a GPU): the embedding lookup rejects an id past
    // the table, and callers bound prompt + new tokens on the host.
  }
  torch::Tensor x = wte_(input_ids) + wpe_(pos);  // [B, T, C]

  const auto dtype = x.scalar_type();
  // The caller says whether there is padding (a mask given); it is not inspected here, since reading it back
  // would cost a host sync every forward.
  const torch::Tensor& padding = args.attention_mask;
  const AttentionMask global_mask = build_mask(AttentionKind::kGlobal, past, t, padding, dtype, x.device());
  AttentionMask local_mask;  // built once, only if some layer is local
  ForwardOutput out;
  for (auto& block : blocks_) {
    if (args.output_hidden_states) out.hidden_states.push_back(x);
    if (block->kind() == AttentionKind::kLocal && !local_mask.built)
      local_mask = build_mask(AttentionKind::kLocal, past, t, padding, dtype, x.device());
    const AttentionMask& mask = block->kind() == AttentionKind::kLocal ? local_mask : global_mask;
    const bool recompute = checkpoint_blocks_ && !cache && torch::GradMode::is_enabled() && x.requires_grad();
    if (recompute) {
      std::vector<torch::Tensor> params;
      for (const torch::Tensor& p : block->parameters())
        if (p.requires_grad()) params.push_back(p);
      x = CheckpointedBlock::apply(x, torch::TensorList(params), block.get(), &mask);
    } else {
      x = block->forward(x, mask, cache);
    }
  }
  if (cache) cache->length += t;
  x = ln_f_(x);
  if (args.output_hidden_states) out.hidden_states.push_back(x);
  out.last_hidden_state = x;
  if (args.compute_logits) out.logits = lm_head(x);
  return out;
}

torch::Tensor GptNeoImpl::lm_head(const torch::Tensor& hidden) const {
  const int64_t rows = hidden.numel() / cfg_.hidden_size;
  if (rows <= 4 || rows > kFewRows) return project(hidden, wte_->weight);
  // The [V, C] head is the largest weight a decoding step streams; MKL reads it fastest 4 rows at a time
  // (measured, 8 rows: 7.9 ms as two 4-row products vs 8.9 ms as one).
  std::vector<torch::Tensor> parts;
  for (const torch::Tensor& chunk : hidden.reshape({rows, cfg_.hidden_size}).split(4))
    parts.push_back(project(chunk, wte_->weight));
  std::vector<int64_t> shape = hidden.sizes().vec();
  shape.back() = cfg_.vocab_size;
  return torch::cat(parts).view(shape);
}

// ---------------------------------------------------------------------------------------------------------------
torch::Tensor position_ids_from_mask(const torch::Tensor& attention_mask) {
  torch::Tensor m = attention_mask.to(torch::kLong);
  return (m.cumsum(-1) - 1).masked_fill(m == 0, 0);
}

torch::Tensor causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels) {
  const int64_t v = logits.size(-1);
  torch::Tensor shift_logits = logits.slice(1, 0, -1).to(torch::kFloat).reshape({-1, v});
  torch::Tensor shift_labels = labels.slice(1, 1).reshape({-1});
  return F::cross_entropy(shift_logits, shift_labels, F::CrossEntropyFuncOptions().ignore_index(-100));
}

torch::Tensor next_token_logprobs(const torch::Tensor& logits, const torch::Tensor& input_ids) {
  torch::Tensor lp = torch::log_softmax(logits.slice(1, 0, -1).to(torch::kFloat), -1);  // [B, T-1, V]
  return lp.gather(-1, input_ids.slice(1, 1).unsqueeze(-1)).squeeze(-1);
}

}  // namespace lethe::model
