#include "model/gpt_neo.h"

#include <limits>

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/nn/functional/activation.h>

namespace lethe::model {
namespace F = torch::nn::functional;

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

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const BlockInputs& in, KvCache* cache) {
  torch::Tensor h = x + attention_->forward(ln_1_(x), in.mask, cache, layer_);
  // gelu_new is GELU with the tanh approximation.
  return h + project(F::gelu(project(ln_2_(h), c_fc_), F::GELUFuncOptions().approximate("tanh")), c_proj_);
}

// ---------------------------------------------------------------------------------------------------------------
namespace {
GptNeoConfig completed(GptNeoConfig cfg) {
  if (cfg.attention_layers.empty()) cfg.attention_layers = alternating_attention(cfg.num_layers);
  TORCH_CHECK(static_cast<int64_t>(cfg.attention_layers.size()) == cfg.num_layers, "attention_layers has ",
              cfg.attention_layers.size(), " entries for ", cfg.num_layers, " layers");
  return cfg;
}
}  // namespace

GptNeoImpl::GptNeoImpl(const GptNeoConfig& cfg, torch::Device device, torch::ScalarType dtype)
    : CausalLmImpl(completed(cfg)), cfg_(completed(cfg)) {
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
  init_weights(seed, [](const std::string& name) { return name.find("ln_") != std::string::npos; });
}

bool GptNeoImpl::ignorable_tensor(const std::string& name) const {
  return name == "lm_head.weight" || name.ends_with(".attn.attention.bias") ||
         name.ends_with(".attn.attention.masked_bias");
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
  torch::Tensor causal = causal_pattern(past, t, device);  // [T, K]
  torch::Tensor allowed = causal;
  if (kind == AttentionKind::kLocal) {
    auto opts = torch::TensorOptions().dtype(torch::kLong).device(device);
    torch::Tensor qi = torch::arange(past, k, opts).unsqueeze(1), kj = torch::arange(0, k, opts).unsqueeze(0);
    allowed = causal & (kj > qi - cfg_.window_size);
  }
  // HF: scores = where(layer's causal window, scores, fp32 min) + where(causal & not padding, 0, dtype min).
  // Scores are fp32, so the mask is built in fp32 for every model dtype.
  auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(device);
  torch::Tensor window_term = torch::where(allowed, torch::zeros({}, f32),
                                           torch::full({}, std::numeric_limits<float>::lowest(), f32));
  torch::Tensor model_term = padding_causal_term(causal, attention_mask, dtype);
  // [B or 1, 1, T, K]; in the model's dtype for SDPA (bf16 rounds the fp32 minimum to -inf, which SDPA
  // handles: every row keeps at least its own diagonal at a finite value).
  return {.additive = (window_term + model_term).unsqueeze(1).to(dtype), .built = true};
}

ForwardOutput GptNeoImpl::forward(const torch::Tensor& input_ids, const ForwardArgs& args) {
  const int64_t t = input_ids.size(1);
  KvCache* cache = args.cache;
  const int64_t past = start_forward(cache);
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
  const BlockInputs global_inputs{build_mask(AttentionKind::kGlobal, past, t, padding, dtype, x.device())};
  BlockInputs local_inputs;  // built once, only if some layer is local
  ForwardOutput out;
  for (auto& block : blocks_) {
    if (args.output_hidden_states) out.hidden_states.push_back(x);
    if (block->kind() == AttentionKind::kLocal && !local_inputs.mask.built)
      local_inputs.mask = build_mask(AttentionKind::kLocal, past, t, padding, dtype, x.device());
    const BlockInputs& in = block->kind() == AttentionKind::kLocal ? local_inputs : global_inputs;
    const bool recompute = checkpoint_blocks_ && !cache && torch::GradMode::is_enabled() && x.requires_grad();
    x = run_block(*block, x, in, cache, recompute);
  }
  return finish_forward(ln_f_(x), args, t, std::move(out));
}

torch::Tensor GptNeoImpl::lm_head(const torch::Tensor& hidden) const {
  return head_project(hidden, wte_->weight);
}

}  // namespace lethe::model
