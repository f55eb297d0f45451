// A prepared unlearning dataset: forget targets, their nearest neighbours, and the retained rows, as written
// by `lethe prep` to <output_dir>/<name>/pairs.h5 and read by `lethe unlearn` / `lethe eval`.
//
// pairs.h5 (every dataset XXH3-checksummed, see io/hdf5.h):
//   attributes  format = "lethe-pairs", format_version, source, embedder, k, seq_len, rows
//   /forget/ids           [N] int64    row indices into the source array (ascending, as ICU keeps them)
//   /forget/tokens        [N, T] int64
//   /neighbours/ids       [N, k] int64 source rows, nearest first (never a target of this set)
//   /neighbours/distances [N, k] float64 squared L2 distance of the embeddings
//   /neighbours/tokens    [N, T] int64 the first neighbour's row: pair i = (forget i, neighbour i)
//   /retain/ids           [M] int64    every source row that is not a target
//   /config               resolved YAML of the prep run
// and, when rows = "reencoded" (prep.rows, data/rows.h), what the model reads instead of the tokens:
//   /forget/input_ids, /forget/attention_mask, /neighbours/input_ids, /neighbours/attention_mask  [N, T]
//   int64
// Version 1 files (no rows attribute, no input datasets) read as rows = "stored".
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/types.h>

#include "config/config.h"
#include "data/rows.h"

namespace lethe::prep {

inline constexpr int64_t kPairsFormatVersion = 2;  // 2 added rows and the re-encoded inputs

struct Pairs {
  torch::Tensor forget_ids;           // [N] int64
  torch::Tensor forget_tokens;        // [N, T] int64
  torch::Tensor neighbour_ids;        // [N, k] int64
  torch::Tensor neighbour_distances;  // [N, k] float64
  torch::Tensor neighbour_tokens;     // [N, T] int64
  torch::Tensor retain_ids;           // [M] int64
  std::string source, embedder, config_yaml;
  // What training and validation feed the model: the tokens themselves (rows = "stored", no mask) or ICU's
  // decode → re-encode of them (rows = "reencoded"). [N, T] each.
  RowTokens rows = RowTokens::kStored;
  data::ModelRows forget_input, neighbour_input;
};

// Writes <dir>/pairs.h5 atomically (temp file, fsync, rename).
void write_pairs(const std::filesystem::path& dir, const Pairs& p);

// Reads and validates <dir>/pairs.h5 (or a pairs.h5 file given directly); InputError naming the file and
// field when anything is missing, malformed or inconsistent.
Pairs read_pairs(const std::filesystem::path& dir_or_file);

}  // namespace lethe::prep
