// One ICU validation pass over every forget pair, sharded across ranks and gathered on all of them (spec
// icu.md §5): per-pair MA, EL_n, beam continuation, BLEU (and BERTScore), diversity and LM loss. Every rank
// ends with the same values, so every rank judges the same flags.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/types.h>

#include "comm/communicator.h"
#include "config/config.h"
#include "eval/forget_scores.h"
#include "model/causal_lm.h"
#include "prep/pairs.h"
#include "text/tokenizer.h"

namespace lethe::train {

struct Validation {
  eval::ForgetScores scores;  // gathered, pair order; candidate_text/reference_text filled on every rank
  double el = 0, ma = 0, bleu = 0, bert_f1 = 0, val_loss = 0, distinct = 0, entropy = 0, seconds = 0;
  bool has_bert = false;
};

// The forget rows against the model, tokenizer and unlearn geometry (prompt, suffix, EL and MA ranges):
// InputError naming the key or file. `lethe unlearn` and `lethe eval` both run it before any work.
void check_forget_rows(const UnlearnSection& u, const prep::Pairs& p, const model::ModelConfig& arch,
                       int64_t tokenizer_vocab);

// The options the unlearn section describes for a model with this EOS.
eval::ForgetScoreOptions forget_score_options(const Config& cfg, int64_t eos);

// What a validation of these pairs reads (eval::ForgetRows): for rows = "reencoded", the re-encoded rows and
// ICU's val_score prompt, the stored prefix decoded (o.clean_up) and re-encoded to its own length,
// left-padded with EOS; the true suffix always comes from the stored tokens.
eval::ForgetRows forget_rows(const prep::Pairs& p, const eval::ForgetScoreOptions& o,
                             const text::Tokenizer& tokenizer);

// Rank r scores a contiguous block of whole validation batches (o.batch rows each).
Validation validate_sharded(model::CausalLm& model, const eval::ForgetRows& rows,
                            const eval::ForgetScoreOptions& o, const text::Tokenizer& tokenizer,
                            const eval::TextScorer& bert, comm::Communicator& comm);

// Rank 0: the per-pair table of one validation under /samples/epoch-<e> in metrics.h5 (doc_id, el, ma,
// bleu, bert_p/r/f1, flag, distinct, entropy, loss; candidates and references as JSON string lists).
void write_validation_table(const std::filesystem::path& metrics_file, int64_t epoch, const Validation& v,
                            const torch::Tensor& doc_ids, const std::vector<uint8_t>& flags);

}  // namespace lethe::train
