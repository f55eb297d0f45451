// Everything ICU measures per forget sequence in one validation pass (spec icu.md §5, §6), on one device:
// MA and EL_n of the whole row, the beam continuation of the prefix with BLEU (and BERTScore when a scorer
// is given) against the true suffix, the continuation's distinct-token ratio and entropy, and the row's LM
// loss. Sharding over ranks is the caller's business.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "data/rows.h"
#include "eval/extraction.h"
#include "model/causal_lm.h"
#include "text/tokenizer.h"

namespace lethe::eval {

struct ForgetScoreOptions {
  int64_t prefix_begin = 100, suffix_begin = 150, new_tokens = 50;  // where ForgetRows' prompt and suffix are
  int64_t num_beams = 2;
  int64_t eos_token_id = 50256;  // ends beams; also the pad id whose labels the loss masks
  ElOptions el;
  int64_t ma_begin = 1;  // MA over positions ma_begin..T-1 (ICU: 1)
  int64_t batch = 8;
  // Decode the candidate and reference as transformers 4.x did (text/cleanup.h) before BLEU and BERTScore:
  // ICU's texts went through it (tokenizer.decode's default clean_up_tokenization_spaces=True).
  bool clean_up = false;
};

// ids [n] int64 → text, special tokens kept (as ICU decodes), clean_up as above.
std::string decode_text(const text::Tokenizer& tokenizer, const torch::Tensor& ids, bool clean_up);

// P, R, F1 of candidate vs reference texts, one triple per pair (BERTScore); empty function = none.
using TextScorer = std::function<std::vector<std::array<double, 3>>(
    const std::vector<std::string>& candidates, const std::vector<std::string>& references)>;

// The rows one validation reads. input: what MA, EL and the loss see ([N, T]; the mask only enters the loss,
// as in ICU's val_loss: its MA and EL generate without one). prompts [N, P]: the beam prompts, generated from
// with no attention mask. suffixes [N, S]: the true continuations, decoded as BLEU's and BERTScore's
// references. With prep.rows = stored all three are views of the benchmark rows; with reencoded, input is
// ICU's round trip of the row and the prompt ICU's re-encoding of the stored prefix (train/validation.h).
struct ForgetRows {
  data::ModelRows input;
  torch::Tensor prompts, suffixes;
  ForgetRows narrow(int64_t begin, int64_t count) const;  // rows begin..begin+count-1
};

struct ForgetScores {
  std::vector<double> el, ma, bleu, bert_p, bert_r, bert_f1, distinct, entropy, ce_sum, ce_tokens;
  torch::Tensor candidates;  // [N, new_tokens] int64 generated ids (after the prompt)
  std::vector<std::string> candidate_text, reference_text;
};

// The candidate is decoded with special tokens kept, as ICU does. o.prefix_begin/suffix_begin are not read
// here: the caller cut rows.prompts and rows.suffixes with them.
ForgetScores score_forget_rows(model::CausalLm& model, const ForgetRows& rows, const ForgetScoreOptions& o,
                               const text::Tokenizer& tokenizer, const TextScorer& bert = {});

// The stored benchmark rows [N, T] as ForgetRows: the whole row as input, prompt and suffix cut from it.
ForgetRows stored_forget_rows(const torch::Tensor& rows, const ForgetScoreOptions& o);

// Sentence BLEU of two texts, ICU style: lower-cased, NLTK-Treebank word tokens, 4-gram, no smoothing.
double text_bleu(const std::string& candidate, const std::string& reference);

}  // namespace lethe::eval
