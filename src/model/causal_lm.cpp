#include "model/causal_lm.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/functional/loss.h>

#include "model/gpt_neo.h"
#include "model/llama.h"

namespace lethe::model {
namespace F = torch::nn::functional;

CausalLm make_causal_lm(const ModelConfig& config, torch::Device device, torch::ScalarType dtype) {
  if (const GptNeoConfig* c = config.gpt_neo())
    return CausalLm(std::make_shared<GptNeoImpl>(*c, device, dtype));
  return CausalLm(std::make_shared<LlamaImpl>(*config.llama(), device, dtype));
}

void CausalLmImpl::init_weights(uint64_t seed, const std::function<bool(const std::string&)>& is_norm) {
  torch::NoGradGuard no_grad;
  const double std = std::visit([](const auto& c) { return c.initializer_range; }, config_.arch);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& p : named_parameters()) {
    torch::Tensor& w = p.value();
    if (p.key().ends_with(".bias"))
      w.zero_();
    else if (is_norm(p.key()))
      w.fill_(1.0);
    else
      w.copy_(at::empty(w.sizes(), at::kFloat).normal_(0.0, std, gen));
  }
}

int64_t CausalLmImpl::start_forward(KvCache* cache) const {
  if (!cache) return 0;
  if (cache->keys.empty()) {
    cache->keys.resize(config_.num_layers());
    cache->values.resize(config_.num_layers());
  }
  return cache->length;
}

ForwardOutput CausalLmImpl::finish_forward(const torch::Tensor& x, const ForwardArgs& args, int64_t t,
                                           ForwardOutput out) {
  if (args.cache) args.cache->length += t;
  if (args.output_hidden_states) out.hidden_states.push_back(x);
  out.last_hidden_state = x;
  if (args.compute_logits) out.logits = lm_head(x);
  return out;
}

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
