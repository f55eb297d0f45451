#include "model/llama.h"

#include <cmath>
#include <numbers>

#include <ATen/ATen.h>
#include <torch/nn/functional/activation.h>

namespace lethe::model {
namespace F = torch::nn::functional;

RmsNormImpl::RmsNormImpl(int64_t size, double eps) : eps_(eps) {
  weight_ = register_parameter("weight", torch::ones({size}));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = x.to(torch::kFloat);
  h = h * torch::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return weight_ * h.to(x.scalar_type());
}

// The same fp32 operations, in the same order, as transformers' _compute_{default,linear_scaling,llama3}
// rope parameters: the frequencies are bit-identical.
torch::Tensor rotary_inv_freq(const LlamaConfig& cfg) {
  const int64_t d = cfg.head_dim();
  torch::Tensor exponents = torch::arange(0, d, 2, torch::kLong).to(torch::kFloat) / static_cast<double>(d);
  torch::Tensor inv = 1.0 / torch::pow(cfg.rope_theta, exponents);  // [D/2]
  const RopeScaling& s = cfg.rope_scaling;
  if (s.type == RopeType::kLinear) return inv / s.factor;
  if (s.type != RopeType::kLlama3) return inv;
  // Llama 3.1: wavelengths beyond the original context are stretched by `factor`, those shorter than
  // original / high_freq_factor kept, and the band between interpolated smoothly.
  const double old_len = static_cast<double>(s.original_max_position_embeddings);
  const double low_wavelen = old_len / s.low_freq_factor, high_wavelen = old_len / s.high_freq_factor;
  torch::Tensor wavelen = 2 * std::numbers::pi / inv;
  torch::Tensor scaled = torch::where(wavelen > low_wavelen, inv / s.factor, inv);
  torch::Tensor smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  torch::Tensor smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
  torch::Tensor medium = (wavelen < high_wavelen).logical_not() & (wavelen > low_wavelen).logical_not();
  return torch::where(medium, smoothed, scaled);
}

namespace {
// [.., D] → [.., D]: (x1, x2) → (-x2, x1) over the two halves of the last dimension.
torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// x [B, H, T, D], cos/sin [B or 1, T, D].
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  return x * cos.unsqueeze(1) + rotate_half(x) * sin.unsqueeze(1);
}

// [B, G, K, D] → [B, G·n, K, D]: each key/value head serves n consecutive query heads (HF's repeat_kv).
torch::Tensor repeat_kv(const torch::Tensor& x, int64_t n) {
  if (n == 1) return x;
  const int64_t b = x.size(0), g = x.size(1), k = x.size(2), d = x.size(3);
  return x.unsqueeze(2).expand({b, g, n, k, d}).reshape({b, g * n, k, d});
}

torch::nn::Linear linear(int64_t in, int64_t out, bool bias) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}
}  // namespace

// ---------------------------------------------------------------------------------------------------------------
LlamaBlockImpl::LlamaBlockImpl(const LlamaConfig& cfg, int64_t layer)
    : layer_(layer), num_heads_(cfg.num_heads), num_kv_heads_(cfg.num_kv_heads), head_dim_(cfg.head_dim()) {
  const int64_t c = cfg.hidden_size, q = num_heads_ * head_dim_, kv = num_kv_heads_ * head_dim_;
  auto attn = register_module("self_attn", std::make_shared<Holder>());
  q_proj_ = attn->register_module("q_proj", linear(c, q, cfg.attention_bias));
  k_proj_ = attn->register_module("k_proj", linear(c, kv, cfg.attention_bias));
  v_proj_ = attn->register_module("v_proj", linear(c, kv, cfg.attention_bias));
  o_proj_ = attn->register_module("o_proj", linear(q, c, cfg.attention_bias));
  auto mlp = register_module("mlp", std::make_shared<Holder>());
  gate_proj_ = mlp->register_module("gate_proj", linear(c, cfg.intermediate_size, cfg.mlp_bias));
  up_proj_ = mlp->register_module("up_proj", linear(c, cfg.intermediate_size, cfg.mlp_bias));
  down_proj_ = mlp->register_module("down_proj", linear(cfg.intermediate_size, c, cfg.mlp_bias));
  input_layernorm_ = register_module("input_layernorm", RmsNorm(c, cfg.rms_norm_eps));
  post_attention_layernorm_ = register_module("post_attention_layernorm", RmsNorm(c, cfg.rms_norm_eps));
}

torch::Tensor LlamaBlockImpl::attention(const torch::Tensor& x, const BlockInputs& in, KvCache* cache) {
  const int64_t b = x.size(0), t = x.size(1);
  // [B, T, heads·D] → [B, heads, T, D]
  auto split = [&](const torch::Tensor& y, int64_t heads) {
    return y.view({b, t, heads, head_dim_}).transpose(1, 2);
  };
  torch::Tensor q = apply_rotary(split(project(x, q_proj_), num_heads_), in.cos, in.sin);
  torch::Tensor k = apply_rotary(split(project(x, k_proj_), num_kv_heads_), in.cos, in.sin);
  torch::Tensor v = split(project(x, v_proj_), num_kv_heads_);
  if (cache) std::tie(k, v) = cache->append(layer_, k, v);  // the cache holds G heads, rotated keys
  const int64_t groups = num_heads_ / num_kv_heads_;
  const std::optional<torch::Tensor> attn_mask =
      in.mask.additive.defined() ? std::optional(in.mask.additive) : std::nullopt;
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
  if (t == 1 && groups > 1) {
    // Decoding: the `groups` query heads that share a key/value head become that many query rows against it,
    // [B, H, 1, D] → [B, G, groups, D], so the cache is read as it is instead of being copied per query head
    // every token. The mask, [B or 1, 1, 1, K], is the same for every row.
    torch::Tensor y =
        at::scaled_dot_product_attention(q.reshape({b, num_kv_heads_, groups, head_dim_}), k, v, attn_mask,
                                         /*dropout_p=*/0.0, /*is_causal=*/false, scale);
    return project(y.reshape({b, t, num_heads_ * head_dim_}), o_proj_);  // [B, G·groups·1·D] = [B, 1, C]
  }
  torch::Tensor y = at::scaled_dot_product_attention(q, repeat_kv(k, groups), repeat_kv(v, groups), attn_mask,
                                                     /*dropout_p=*/0.0, /*is_causal=*/in.mask.causal, scale);
  return project(y.transpose(1, 2).reshape({b, t, num_heads_ * head_dim_}), o_proj_);  // [B, T, C]
}

torch::Tensor LlamaBlockImpl::forward(const torch::Tensor& x, const BlockInputs& in, KvCache* cache) {
  torch::Tensor h = x + attention(input_layernorm_(x), in, cache);
  torch::Tensor n = post_attention_layernorm_(h);
  return h + project(F::silu(project(n, gate_proj_)) * project(n, up_proj_), down_proj_);
}

// ---------------------------------------------------------------------------------------------------------------
LlamaImpl::LlamaImpl(const LlamaConfig& cfg, torch::Device device, torch::ScalarType dtype)
    : CausalLmImpl(cfg), cfg_(cfg), inv_freq_(rotary_inv_freq(cfg)) {
  TORCH_CHECK(cfg_.num_heads % cfg_.num_kv_heads == 0, "num_heads ", cfg_.num_heads,
              " is not a multiple of num_kv_heads ", cfg_.num_kv_heads);
  auto model = register_module("model", std::make_shared<Holder>());
  auto embed = torch::nn::EmbeddingOptions(cfg_.vocab_size, cfg_.hidden_size);
  if (cfg_.pad_token_id >= 0) embed.padding_idx(cfg_.pad_token_id);
  embed_tokens_ = model->register_module("embed_tokens", torch::nn::Embedding(embed));
  embed_tokens_->to(device, dtype);
  layers_ = model->register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg_.num_layers; ++i) {
    blocks_.emplace_back(cfg_, i);
    blocks_.back()->to(device, dtype);
    layers_->push_back(blocks_.back());
  }
  norm_ = model->register_module("norm", RmsNorm(cfg_.hidden_size, cfg_.rms_norm_eps));
  norm_->to(device, dtype);
  if (!cfg_.tie_word_embeddings) {
    lm_head_ = register_module("lm_head", linear(cfg_.hidden_size, cfg_.vocab_size, /*bias=*/false));
    lm_head_->to(device, dtype);
  }
}

void LlamaImpl::reset_parameters(uint64_t seed) {
  init_weights(seed, [](const std::string& name) { return name.ends_with("norm.weight"); });
  torch::NoGradGuard no_grad;
  if (cfg_.pad_token_id >= 0) embed_tokens_->weight[cfg_.pad_token_id].zero_();  // as nn.Embedding's init
}

bool LlamaImpl::ignorable_tensor(const std::string& name) const {
  return (cfg_.tie_word_embeddings && name == "lm_head.weight") || name.ends_with(".rotary_emb.inv_freq");
}

std::pair<torch::Tensor, torch::Tensor> LlamaImpl::rotary(const torch::Tensor& positions,
                                                          torch::ScalarType dtype) {
  if (inv_freq_.device() != positions.device()) inv_freq_ = inv_freq_.to(positions.device());
  torch::Tensor freqs = positions.unsqueeze(-1).to(torch::kFloat) * inv_freq_;  // [B, T, D/2]
  torch::Tensor angles = torch::cat({freqs, freqs}, -1);                        // [B, T, D]
  return {angles.cos().to(dtype), angles.sin().to(dtype)};
}

AttentionMask LlamaImpl::build_mask(int64_t past, int64_t t, const torch::Tensor& attention_mask,
                                    torch::ScalarType dtype, torch::Device device) const {
  // As GPT-Neo's global layers: nothing for one unpadded query, the causal kernel for an unpadded prompt.
  if (t == 1 && !attention_mask.defined()) return {.built = true};
  if (past == 0 && !attention_mask.defined()) return {.causal = true, .built = true};
  // HF: 0 where causal and not padding, the dtype's minimum elsewhere; [B or 1, 1, T, K].
  torch::Tensor term = padding_causal_term(causal_pattern(past, t, device), attention_mask, dtype);
  return {.additive = term.unsqueeze(1).to(dtype), .built = true};
}

ForwardOutput LlamaImpl::forward(const torch::Tensor& input_ids, const ForwardArgs& args) {
  const int64_t t = input_ids.size(1);
  KvCache* cache = args.cache;
  const int64_t past = start_forward(cache);
  // Rotary positions have no table, so nothing bounds them here; callers keep sequences within the
  // trained context (max_position_embeddings).
  torch::Tensor pos =
      args.position_ids.defined()
          ? args.position_ids
          : torch::arange(past, past + t, input_ids.options().dtype(torch::kLong)).unsqueeze(0);
  torch::Tensor x = embed_tokens_(input_ids);  // [B, T, C]
  BlockInputs in{build_mask(past, t, args.attention_mask, x.scalar_type(), x.device())};
  std::tie(in.cos, in.sin) = rotary(pos, x.scalar_type());
  ForwardOutput out;
  for (auto& block : blocks_) {
    if (args.output_hidden_states) out.hidden_states.push_back(x);
    const bool recompute = checkpoint_blocks_ && !cache && torch::GradMode::is_enabled() && x.requires_grad();
    x = run_block(*block, x, in, cache, recompute);
  }
  return finish_forward(norm_(x), args, t, std::move(out));
}

const torch::Tensor& LlamaImpl::head_weight() const {
  return cfg_.tie_word_embeddings ? embed_tokens_->weight : lm_head_->weight;
}

torch::Tensor LlamaImpl::lm_head(const torch::Tensor& hidden) const {
  return head_project(hidden, head_weight());
}

}  // namespace lethe::model
