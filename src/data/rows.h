// Token rows as a model reads them, and ICU's decode → re-encode round trip of the benchmark rows.
//
// ICU's Datasets_mean.py never feeds the stored benchmark tokens to the model: it decodes each 200-token row
// with transformers 4.x's GPT-2 tokenizer (whose decode cleaned up " ." → "." etc., text/cleanup.h) and
// encodes the text again with the model's tokenizer, left-padded with EOS to 200 and truncated on the right,
// with an attention mask. Rows whose decode is not a canonical BPE encoding, or that the clean-up changes,
// come back as other tokens (about 1 row in 10 of ICU's forget and neighbour sets):
//
//   stored     [ 464  3290  764   ...  13  ]            the benchmark row, T tokens
//   text       "The dog. ... ."                         decode (+ clean-up)
//   re-encoded [ EOS EOS  464 3290 13 ...  ]            encode, left-padded with EOS (or truncated) to T
//   mask       [  0   0    1   1   1  ...  ]
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "text/tokenizer.h"

namespace lethe::data {

struct ModelRows {
  torch::Tensor ids;   // [N, T] int64
  torch::Tensor mask;  // [N, T] int64, 1 = token, 0 = padding; undefined when no row is padded
};

// Each row of rows [N, S] int64 decoded to text, special tokens kept (as ICU decodes), then cleaned up as
// transformers 4.x's decode did when clean_up is set (text/cleanup.h).
std::vector<std::string> decode_rows(const torch::Tensor& rows, const text::Tokenizer& tokenizer,
                                     bool clean_up);

// The stored rows as they are: no padding, no mask. rows [N, T] int64.
ModelRows stored_rows(const torch::Tensor& rows);

// ICU's round trip of rows [N, S] int64 (CPU): each row decoded (special tokens kept, clean_up as
// transformers 4.x when set), encoded again (<|endoftext|> in the text becomes EOS), then left-padded with
// EOS to `length` or truncated to its first `length` ids. ids [N, length]; the mask is left undefined when no
// row needed padding, so that callers can run unmasked attention.
ModelRows reencode_rows(const torch::Tensor& rows, const text::Tokenizer& tokenizer, bool clean_up,
                        int64_t length);

// Rows idx [k] int64 of r; the mask is dropped when none of the chosen rows is padded. Host tensors.
ModelRows select_rows(const ModelRows& r, const torch::Tensor& idx);

// Number of rows whose ids or padding differ between a and b (same shapes); for logs.
int64_t rows_differing(const ModelRows& a, const ModelRows& b);

}  // namespace lethe::data
