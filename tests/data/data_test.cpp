// npy token arrays (dtypes, C and Fortran order, malformed files) and the sampler's world-size independence.
#include <set>

#include <gtest/gtest.h>

#include "core/io.h"
#include "data/npy.h"
#include "data/sampler.h"
#include "test_util.h"

namespace lethe::data {
namespace {
namespace fs = std::filesystem;

void write_raw(const fs::path& p, const std::string& bytes) {
  write_file_atomic(p, {std::as_bytes(std::span(bytes.data(), bytes.size()))});
}

std::string npy(const std::string& header_dict, const std::string& data) {
  std::string h = header_dict;
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(h.size() & 0xff);
  out += static_cast<char>(h.size() >> 8);
  return out + h + data;
}

TEST(Npy, RoundTripAndFortranOrder) {
  test::TempDir tmp;
  TokenArray a{2, 3, {1, 2, 3, 40000, 5, 6}};
  write_npy(tmp.path() / "a.npy", a, /*as_uint16=*/true);
  const TokenArray b = read_npy(tmp.path() / "a.npy");
  EXPECT_EQ(b.rows, 2);
  EXPECT_EQ(b.cols, 3);
  EXPECT_EQ(b.values, a.values);
  // Fortran order: column-major bytes of [[1, 2, 3], [4, 5, 6]] as big-endian int32.
  std::string data;
  for (int v : {1, 4, 2, 5, 3, 6}) data += std::string{0, 0, 0, static_cast<char>(v)};
  write_raw(tmp.path() / "f.npy", npy("{'descr': '>i4', 'fortran_order': True, 'shape': (2, 3), }", data));
  EXPECT_EQ(read_npy(tmp.path() / "f.npy").values, (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
}

TEST(Npy, MalformedFilesNameTheProblem) {
  test::TempDir tmp;
  const fs::path p = tmp.path() / "bad.npy";
  write_raw(p, "not numpy at all");
  test::expect_input_error([&] { read_npy(p); }, {"bad.npy", "magic"});
  write_raw(p, npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", std::string(8, '\0')));
  test::expect_input_error([&] { read_npy(p); }, {"bad.npy", "f4", "integer"});
  write_raw(p, npy("{'descr': '<u2', 'fortran_order': False, 'shape': (4, 4), }", std::string(10, '\0')));
  test::expect_input_error([&] { read_npy(p); }, {"bad.npy", "truncated"});
  write_raw(p, npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", ""));
  test::expect_input_error([&] { read_npy(p); }, {"bad.npy"});
  test::expect_input_error([&] { read_npy(tmp.path() / "absent.npy"); }, {"absent.npy"});
  write_raw(p, npy("{'descr': '<u2', 'fortran_order': False, 'shape': (3, -4), }", ""));
  test::expect_input_error([&] { read_npy(p); }, {"bad.npy", "'-4'"});
  write_raw(p, npy("{'descr': '<u2', 'fortran_order': False, 'shape': (2305843009213693952, 8), }", ""));
  test::expect_input_error([&] { read_npy(p); }, {"bad.npy", "overflows"});
  write_raw(p, npy("{'descr': '<u2', 'fortran_order': False, 'shape': (99999999999999999999999, 8), }", ""));
  test::expect_input_error([&] { read_npy(p); }, {"bad.npy", "not a non-negative integer"});
}

TEST(Npy, ReadsTheExtractionBenchmark) {
  const auto shared = test::shared_data_dir();
  if (!shared) GTEST_SKIP() << "../shared/data is absent";
  const TokenArray a = read_npy(*shared / "lm_extraction" / "train_dataset.npy");
  EXPECT_EQ(a.rows, 15000);
  EXPECT_EQ(a.cols, 200);
  for (int64_t v : a.values) ASSERT_LT(v, 50257);
}

TEST(Sampler, GlobalBatchesIgnoreTheWorldSize) {
  GlobalBatchSampler s(50, 12, /*seed=*/3);
  EXPECT_EQ(s.batches_per_epoch(), 4);
  std::set<int64_t> seen;
  std::vector<std::vector<int64_t>> batches;
  for (int b = 0; b < 4; ++b) {
    batches.push_back(s.next());
    seen.insert(batches.back().begin(), batches.back().end());
  }
  EXPECT_EQ(seen.size(), 48u);  // one epoch: no repeats, the last 2 samples dropped
  // Ranks' blocks tile the global batch at any N.
  for (int world : {1, 2, 3, 4}) {
    std::vector<int64_t> joined;
    for (int r = 0; r < world; ++r) {
      const auto part = rank_part(batches[0], r, world);
      joined.insert(joined.end(), part.begin(), part.end());
    }
    EXPECT_EQ(joined, batches[0]);
  }
  // Resuming from a state continues the same sequence, across the epoch boundary too.
  GlobalBatchSampler t(50, 12, 3);
  t.set_state({0, 3});
  EXPECT_EQ(t.next(), batches[3]);
  const auto next_epoch = t.next();
  EXPECT_EQ(t.state(), (SamplerState{1, 1}));
  EXPECT_NE(next_epoch, batches[0]);
  EXPECT_EQ(GlobalBatchSampler(50, 12, 3).permutation(1), t.permutation(1));
  EXPECT_NE(GlobalBatchSampler(50, 12, 4).permutation(0), t.permutation(0));
}

}  // namespace
}  // namespace lethe::data
