#include "data/rows.h"

#include <span>
#include <string>
#include <vector>

#include <c10/util/Exception.h>

#include "text/cleanup.h"

namespace lethe::data {

ModelRows stored_rows(const torch::Tensor& rows) {
  return {.ids = rows, .mask = {}};
}

std::vector<std::string> decode_rows(const torch::Tensor& rows, const text::Tokenizer& tokenizer,
                                     bool clean_up) {
  TORCH_CHECK(rows.dim() == 2, "decode_rows: rows [N, S]");
  const torch::Tensor ids32 = rows.to(torch::kCPU, torch::kInt).contiguous();
  std::vector<std::string> texts;
  texts.reserve(static_cast<size_t>(ids32.size(0)));
  for (int64_t r = 0; r < ids32.size(0); ++r) {
    std::string t = tokenizer.decode(
        std::span<const int32_t>(ids32[r].data_ptr<int32_t>(), static_cast<size_t>(ids32.size(1))));
    texts.push_back(clean_up ? text::clean_up_tokenization(t) : std::move(t));
  }
  return texts;
}

ModelRows reencode_rows(const torch::Tensor& rows, const text::Tokenizer& tokenizer, bool clean_up,
                        int64_t length) {
  TORCH_CHECK(rows.dim() == 2 && length > 0, "reencode_rows: rows [N, S] and a positive length");
  const std::vector<std::string> texts = decode_rows(rows, tokenizer, clean_up);
  // transformers' tokenizer(..., max_length, padding="max_length", truncation=True) with padding_side left
  // and pad = EOS, as ICU sets them; truncation keeps the first ids (truncation_side right).
  const text::BatchEncoding enc =
      tokenizer.encode_batch(texts, {.max_length = length, .pad_left = true, .truncate_left = false});
  const int64_t n = rows.size(0);
  torch::Tensor ids = torch::empty({n, length}, torch::kLong), mask = torch::empty({n, length}, torch::kLong);
  int64_t* id = ids.data_ptr<int64_t>();
  int64_t* m = mask.data_ptr<int64_t>();
  bool padded = false;
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < length; ++j) {
      *id++ = enc.ids[r][j];
      *m++ = enc.attention_mask[r][j];
      padded = padded || enc.attention_mask[r][j] == 0;
    }
  }
  return {.ids = ids, .mask = padded ? mask : torch::Tensor()};
}

ModelRows select_rows(const ModelRows& r, const torch::Tensor& idx) {
  ModelRows out{.ids = r.ids.index_select(0, idx), .mask = {}};
  if (r.mask.defined()) {
    torch::Tensor m = r.mask.index_select(0, idx);
    if (!m.all().item<bool>()) out.mask = m;  // host data: no device read
  }
  return out;
}

int64_t rows_differing(const ModelRows& a, const ModelRows& b) {
  torch::Tensor diff = (a.ids != b.ids).any(1);
  if (a.mask.defined() || b.mask.defined()) {
    auto ones = [&](const ModelRows& m) { return m.mask.defined() ? m.mask : torch::ones_like(m.ids); };
    diff = diff | (ones(a) != ones(b)).any(1);
  }
  return diff.sum().item<int64_t>();
}

}  // namespace lethe::data
