// data/rows.h: ICU's decode -> re-encode round trip on hand-made rows with the real GPT-2 vocabulary. The
// oracle test over every row of exp0..exp4 is tests/unlearn/test_unlearn.py (transformers' tokenizer).
#include "data/rows.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace lethe::data {
namespace {

namespace fs = std::filesystem;

class Rows : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto shared = test::shared_data_dir();
    if (!shared) GTEST_SKIP() << "shared data not found; set LETHE_SHARED_DATA";
    tok_.emplace(text::Tokenizer::from_dir(*shared / "gpt2_tokenizer"));
  }
  torch::Tensor row(const std::string& s) {
    std::vector<int64_t> v;
    for (int32_t id : tok_->encode(s)) v.push_back(id);
    return torch::tensor(v, torch::kLong).unsqueeze(0);
  }
  std::optional<text::Tokenizer> tok_;
};

TEST_F(Rows, CanonicalRowsComeBackUnchangedWithoutMask) {
  const torch::Tensor r = torch::cat({row("The cat sat on the mat today"), row("A dog ran in the park now")});
  const ModelRows m = reencode_rows(r, *tok_, /*clean_up=*/false, r.size(1));
  EXPECT_TRUE(m.ids.equal(r));
  EXPECT_FALSE(m.mask.defined());  // nothing padded: callers run unmasked attention
  EXPECT_EQ(rows_differing(m, stored_rows(r)), 0);
}

TEST_F(Rows, CleanUpShortensARowThatIsThenLeftPaddedWithEos) {
  const torch::Tensor a = row("It 's fine , is n't it ?"),
                      b = row("one two three four five six seven eight nine ten");
  ASSERT_EQ(a.size(1), b.size(1));
  const torch::Tensor r = torch::cat({a, b});
  const int64_t t = r.size(1);
  const ModelRows m = reencode_rows(r, *tok_, /*clean_up=*/true, t);
  const std::vector<int32_t> want = tok_->encode("It's fine, isn't it?");
  ASSERT_LT(static_cast<int64_t>(want.size()), t);
  const int64_t pad = t - static_cast<int64_t>(want.size());
  ASSERT_TRUE(m.mask.defined());
  for (int64_t j = 0; j < t; ++j) {
    EXPECT_EQ(m.mask[0][j].item<int64_t>(), j >= pad ? 1 : 0) << j;
    EXPECT_EQ(m.ids[0][j].item<int64_t>(), j >= pad ? want[static_cast<size_t>(j - pad)] : tok_->eos_id())
        << j;
  }
  EXPECT_TRUE(m.ids[1].equal(r[1]));
  EXPECT_EQ(m.mask[1].sum().item<int64_t>(), t);
  EXPECT_EQ(rows_differing(m, stored_rows(r)), 1);

  // Selecting only the unpadded row drops the mask; selecting the padded one keeps it.
  EXPECT_FALSE(select_rows(m, torch::tensor({1}, torch::kLong)).mask.defined());
  EXPECT_TRUE(select_rows(m, torch::tensor({0, 1}, torch::kLong)).mask.defined());
}

TEST_F(Rows, LongerEncodingsKeepTheirFirstIds) {
  // Half a word at the end of a row re-merges differently; truncation keeps the first `length` ids.
  const torch::Tensor r = row("alpha beta gamma delta epsilon");
  const ModelRows m = reencode_rows(r, *tok_, false, 3);
  EXPECT_TRUE(m.ids[0].equal(r[0].narrow(0, 0, 3)));
  EXPECT_FALSE(m.mask.defined());
}

}  // namespace
}  // namespace lethe::data
