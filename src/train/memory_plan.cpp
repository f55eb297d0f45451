#include "train/memory_plan.h"

#include <algorithm>

#include "model/loss_chunk.h"
#include "model/presets.h"

namespace lethe::train {

Plan memory_plan(const PlanInput& in) {
  const model::GptNeoConfig& a = in.arch;
  const int64_t psi = model::parameter_count(a);
  const int64_t unit = 16ll * in.ranks;
  const int64_t padded = (psi + unit - 1) / unit * unit;
  const int64_t slice = in.stage == 0 ? padded : padded / in.ranks;
  const int64_t b = in.param_bytes, B = in.micro_batch, T = in.seq, C = a.hidden_size, L = a.num_layers,
                V = a.vocab_size, H = a.num_heads, I = a.inner_dim();
  std::vector<PlanTerm> t;
  t.push_back({"runtime", "resident size of this process: libtorch and its libraries loaded",
               in.runtime_bytes, Phase::kBoth});
  // The flat buffer exists before the model's own storage is freed.
  t.push_back({"parameters", "b·P (full flat buffer on every rank)", b * padded, Phase::kBoth});
  // The model is built tensor by tensor (torch's default init, then transformers' init through a temporary
  // per tensor) and copied into the flat buffer; its storage is then freed and handed back to the OS
  // (release_free_memory), so it only counts while building.
  t.push_back({"model as built", "2·b·Ψ while building (before flattening; returned to the OS after)",
               2 * b * psi, Phase::kBuild});
  if (in.stage < 2) {
    t.push_back({"gradients", "b·P flat gradient buffer + 4·S reduced fp32 slice", b * padded + 4 * slice});
  } else {
    // A parameter larger than bucket_numel is a bucket of its own (the embedding, [V, C]).
    const int64_t bucket = std::min(std::max(in.bucket_numel, V * C), padded);
    t.push_back({"gradients",
                 "4·S owned fp32 slice + 2 buckets in flight (4·bucket + 4·bucket/N) + b·bucket filling",
                 4 * slice + 2 * (4 * bucket + 4 * bucket / in.ranks) + b * bucket});
  }
  t.push_back({"optimizer", "12·S (fp32 master, Adam m and v of the owned slice)", 12 * slice});
  if (in.reference_model) t.push_back({"reference model", "b·Ψ (frozen copy, replicated)", b * psi});
  // Saved for backward per layer (b bytes each): LN inputs/outputs and residuals ~6·BTC, q k v and the
  // attention output 4·BTC, the MLP's c_fc output and GELU output 2·BTI; attention keeps B·H·T
  // log-sum-exp values (fused SDPA, no T² matrix). Plus the embeddings' output.
  const int64_t per_layer = b * B * T * (10 * C + 2 * I) + 4 * B * H * T;
  t.push_back({"activations", "L·(b·B·T·(10·C + 2·I) + 4·B·H·T) + b·B·T·C", L * per_layer + b * B * T * C});
  // The LM head + loss run in row chunks (model/lm_loss.h): one chunk's fp32 logits, softmax-minus-one-hot
  // and their model-dtype copies are alive at once, while the gradients the forward pass already formed wait
  // for backward: the head's [V, C] in fp32 and cast to the parameter dtype, and the hidden rows' [B·T, C].
  const int64_t rows = std::min(B * T, model::loss_chunk_rows(V));
  const int64_t head = 4 * 4 * rows * V + (4 + b) * V * C + b * B * T * C;
  t.push_back({"LM head + loss (chunked)",
               "4 tensors of 4·rows·V (rows = min(B·T, 2^24/V)) + (4 + b)·V·C head gradient + b·B·T·C",
               head});
  if (in.reference_model) {
    // ICU's step runs the forget and the neighbour batch (activations and the chunked head twice); the KL
    // term needs whole distributions: the current and the reference logits, p, q, log(q + 1e-12) and their
    // product, each [B, T, V] fp32.
    t.push_back({"ICU second forward", "activations + chunked head again (neighbour batch)",
                 L * per_layer + b * B * T * C + head});
    t.push_back({"ICU KL term", "6 tensors of 4·B·T·V (logits, reference logits, p, q, log(q+ε), p·log q)",
                 6 * 4 * B * T * V});
  }
  t.push_back(
      {"step workspace", "128 MiB (GEMM and autograd buffers of the first step, measured)", 128ll << 20});
  Plan plan{t};
  for (const PlanTerm& x : t) {
    if (x.phase != Phase::kTrain) plan.build_peak += x.bytes;
    if (x.phase != Phase::kBuild) plan.train_peak += x.bytes;
  }
  return plan;
}

}  // namespace lethe::train
