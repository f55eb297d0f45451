#include "train/memory_plan.h"

#include <algorithm>

#include "model/loss_chunk.h"
#include "model/presets.h"

namespace lethe::train {

Plan memory_plan(const PlanInput& in) {
  const model::ModelConfig& a = in.arch;
  const int64_t psi = a.parameter_count();
  const int64_t unit = 16ll * in.ranks;
  const int64_t padded = (psi + unit - 1) / unit * unit;
  const int64_t slice = in.stage == 0 ? padded : padded / in.ranks;
  const int64_t b = in.param_bytes, B = in.micro_batch, T = in.seq, C = a.hidden_size(), L = a.num_layers(),
                V = a.vocab_size(), H = a.num_heads(), A = a.saved_values_per_token();
  std::vector<PlanTerm> t;
  if (!in.cuda) {
    t.push_back({"runtime", "resident size of this process: libtorch and its libraries loaded",
                 in.runtime_bytes, Phase::kBoth});
  } else {
    // Not measured by lethe yet (no GPU run): CUDA 12-13 contexts with libtorch's kernels loaded commonly
    // take 0.5-1 GiB; the larger figure is planned.
    t.push_back({"CUDA context", "1 GiB (driver context + libtorch kernels; typical, not yet measured)",
                 int64_t{1} << 30, Phase::kBoth});
    if (in.ranks > 1)
      // Ring/tree collectives: per channel a send and a receive buffer of NCCL_BUFFSIZE (4 MiB) for each of
      // the two neighbours; NCCL uses up to 32 channels on NVLink/NVSwitch nodes.
      t.push_back({"NCCL buffers",
                   "32 channels x 2 neighbours x 2 x 4 MiB (NCCL_BUFFSIZE; an upper estimate)",
                   int64_t{32} * 2 * 2 * (4 << 20), Phase::kBoth});
  }
  // The flat buffer exists before the model's own storage is freed.
  t.push_back({"parameters", "b·P (full flat buffer on every rank)", b * padded, Phase::kBoth});
  // The model is built tensor by tensor (torch's default init, then transformers' init through a temporary
  // per tensor) and copied into the flat buffer; its storage is then freed and handed back to the OS
  // (release_free_memory), so it only counts while building.
  t.push_back({"model as built", "2·b·Ψ while building (before flattening; returned to the OS after)",
               2 * b * psi, Phase::kBuild});
  // What is reduced travels as w bytes per element: bf16 with reduce_bf16, else the accumulation dtype.
  const int64_t accumulate = in.stage == 2 || (b < 4 && in.fp32_accumulation) ? 4 : b;
  const int64_t w = in.reduce_bf16 ? 2 : accumulate;
  if (in.stage < 2) {
    if (accumulate == b) {
      t.push_back({"gradients", "b·P flat gradient buffer + 4·S reduced fp32 slice", b * padded + 4 * slice});
    } else {
      // Each parameter's b-byte gradient lives until its hook adds it to the fp32 buffer: the largest one,
      // the embedding [V, C], bounds that.
      t.push_back({"gradients", "4·P fp32 accumulation buffer + 4·S reduced fp32 slice + b·V·C in transit",
                   4 * padded + 4 * slice + b * V * C});
    }
  } else {
    // A parameter larger than bucket_numel is a bucket of its own (the embedding, [V, C]). The receive pool
    // is sized for the largest piece of a bucket any rank owns: up to min(bucket, S) on the rank whose slice
    // holds that bucket (rank 0 and the embedding, typically).
    const int64_t bucket = std::min(std::max(in.bucket_numel, V * C), padded);
    const int64_t recv = std::min(bucket, slice);
    t.push_back(
        {"gradients",
         "4·S owned fp32 slice + 2 buckets in flight (w·bucket + w·min(bucket, S)) + b·bucket filling",
         4 * slice + 2 * (w * bucket + w * recv) + b * bucket});
  }
  t.push_back({"optimizer", "12·S (fp32 master, Adam m and v of the owned slice)", 12 * slice});
  if (in.reference_model) t.push_back({"reference model", "b·Ψ (frozen copy, replicated)", b * psi});
  // Saved for backward per layer: A values of b bytes per token (norms, residuals, q k v, the attention
  // output and the MLP's intermediates: model/model_config.h); attention keeps B·H·T log-sum-exp values
  // (fused SDPA, no T² matrix). Plus the embeddings' output.
  const int64_t per_layer = b * B * T * A + 4 * B * H * T;
  // With activation checkpointing each block keeps only its input; one block's activations exist again
  // while backward recomputes it.
  const int64_t activations = in.activation_checkpointing ? L * b * B * T * C + per_layer + b * B * T * C
                                                          : L * per_layer + b * B * T * C;
  t.push_back({"activations",
               in.activation_checkpointing
                   ? "L·b·B·T·C block inputs + one block's b·B·T·A + 4·B·H·T (recomputed in backward) + "
                     "b·B·T·C; A = 10·C + 2·I (GPT-Neo), 6·C + 2·H·D + 2·G·D + 4·I (Llama)"
                   : "L·(b·B·T·A + 4·B·H·T) + b·B·T·C; A = 10·C + 2·I (GPT-Neo), 6·C + 2·H·D + 2·G·D + 4·I "
                     "(Llama)",
               activations});
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
    t.push_back(
        {"ICU second forward", "activations + chunked head again (neighbour batch)", activations + head});
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
