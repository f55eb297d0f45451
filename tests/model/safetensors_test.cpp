// Safetensors reader/writer: round trips, every malformed-file rule, checkpoint folders, and (with
// LETHE_PYTHON set to a python that has numpy + safetensors) byte-level interop with the PyPI package.
#include "model/safetensors.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "test_util.h"

namespace lethe::model {
namespace {

namespace fs = std::filesystem;

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "lethe_st_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A hand-crafted file: u64 length (or `len_override`), header text, data bytes.
  fs::path raw(const std::string& name, const std::string& header, size_t data_bytes = 0,
               std::optional<uint64_t> len_override = std::nullopt) {
    const fs::path p = dir_ / name;
    std::ofstream out(p, std::ios::binary);
    const uint64_t len = len_override.value_or(header.size());
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((len >> (8 * i)) & 0xff));
    out << header << std::string(data_bytes, '\x01');
    return p;
  }

  // Opening `p` must throw InputError whose message names the file and contains every piece.
  static void expect_bad(const fs::path& p, std::initializer_list<std::string> pieces) {
    try {
      SafetensorsFile::open(p);
      ADD_FAILURE() << p << " was accepted";
    } catch (const InputError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
      for (const auto& piece : pieces)
        EXPECT_NE(msg.find(piece), std::string::npos) << "'" << piece << "' not in: " << msg;
    }
  }

  static void expect_bad_dir(const fs::path& d, std::initializer_list<std::string> pieces) {
    try {
      SafetensorsCheckpoint::open_dir(d);
      ADD_FAILURE() << d << " was accepted";
    } catch (const InputError& e) {
      const std::string msg = e.what();
      for (const auto& piece : pieces)
        EXPECT_NE(msg.find(piece), std::string::npos) << "'" << piece << "' not in: " << msg;
    }
  }

  static std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }

  fs::path dir_;
};

template <typename T>
TensorRef ref(std::string name, DType dtype, std::vector<int64_t> shape, const std::vector<T>& v) {
  return TensorRef{std::move(name), dtype, std::move(shape), v.data(), v.size() * sizeof(T)};
}

TEST_F(SafetensorsTest, RoundTripsEveryDtypeScalarsAndEmptyTensors) {
  const std::vector<float> f32{1.5f, -2.f, 3.f, 4.f, 5.f, 6.f};
  const std::vector<uint16_t> f16{0x3c00, 0xc000, 0x7bff, 0};  // F16/BF16 are stored as raw 16-bit words
  const std::vector<uint16_t> bf16{0x3f80, 0x4000};
  const std::vector<double> f64{3.25};
  const std::vector<int64_t> i64{-1, int64_t{1} << 40, 7};
  const std::vector<int32_t> i32{};
  const std::vector<int16_t> i16{-300, 300};
  const std::vector<int8_t> i8{};
  const std::vector<uint8_t> u8{0, 255, 9};
  const std::vector<uint8_t> boolean{1, 0, 1};
  const std::vector<uint16_t> u16{65535};
  const std::vector<TensorRef> refs{
      ref("z.f32", DType::kF32, {2, 3}, f32),  ref("f16", DType::kF16, {4}, f16),
      ref("bf16", DType::kBF16, {1, 2}, bf16), ref("scalar", DType::kF64, {}, f64),
      ref("i64", DType::kI64, {3}, i64),       ref("empty", DType::kI32, {0, 3}, i32),
      ref("i16", DType::kI16, {2}, i16),       ref("empty8", DType::kI8, {0}, i8),
      ref("u8", DType::kU8, {3}, u8),          ref("bool", DType::kBool, {3}, boolean),
      ref("u16", DType::kU16, {1, 1, 1}, u16),
  };
  const fs::path p = dir_ / "model.safetensors";
  write_safetensors(p, refs);

  const std::string bytes = slurp(p);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);  // little-endian host, as every platform lethe runs on
  EXPECT_EQ(header_len % 8, 0u);
  EXPECT_EQ(bytes.substr(8, 31), R"({"__metadata__":{"format":"pt"})");

  SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_EQ(f.path(), p);
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  ASSERT_EQ(f.tensors().size(), refs.size());
  for (size_t i = 0; i < refs.size(); ++i) {
    const TensorView& t = f.tensors()[i];  // file order is the order written
    EXPECT_EQ(t.name, refs[i].name);
    EXPECT_EQ(t.dtype, refs[i].dtype);
    EXPECT_EQ(t.shape, refs[i].shape);
    ASSERT_EQ(t.nbytes, refs[i].nbytes);
    if (t.nbytes > 0) {
      EXPECT_EQ(std::memcmp(t.data, refs[i].data, t.nbytes), 0) << t.name;
    }
    EXPECT_EQ(f.find(t.name), &t);
  }
  EXPECT_EQ(f.find("missing"), nullptr);
  EXPECT_EQ(dtype_name(DType::kBool), "BOOL");
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);

  // Moving keeps the mapping, so views taken before the move stay valid.
  const TensorView* before = f.find("z.f32");
  SafetensorsFile moved = std::move(f);
  EXPECT_EQ(moved.find("z.f32"), before);
  float x = 0;
  std::memcpy(&x, before->data, sizeof x);
  EXPECT_EQ(x, 1.5f);
}

TEST_F(SafetensorsTest, MetadataEmptyFileAndAtomicOverwrite) {
  const fs::path p = dir_ / "m.safetensors";
  write_safetensors(p, {}, {});
  EXPECT_EQ(slurp(p), std::string("\x08\0\0\0\0\0\0\0{}      ", 16));  // no __metadata__, padded header
  EXPECT_TRUE(SafetensorsFile::open(p).tensors().empty());

  const std::vector<int32_t> v{1, 2};
  write_safetensors(p, {ref("a", DType::kI32, {2}, v)}, {{"k", "v"}, {"format", "pt"}});
  const auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f.metadata().at("k"), "v");
  EXPECT_EQ(f.tensors().size(), 1u);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator{}), 1);  // no .tmp left
}

TEST_F(SafetensorsTest, WriterRejectsInconsistentRefs) {
  const std::vector<float> v{1, 2, 3};
  EXPECT_THROW(write_safetensors(dir_ / "x", {ref("a", DType::kF32, {2}, v)}), std::invalid_argument);
  EXPECT_THROW(write_safetensors(dir_ / "x", {ref("a", DType::kF32, {3}, v), ref("a", DType::kF32, {3}, v)}),
               std::invalid_argument);
  EXPECT_THROW(write_safetensors(dir_ / "x", {ref("__metadata__", DType::kF32, {3}, v)}),
               std::invalid_argument);
  EXPECT_THROW(write_safetensors(dir_ / "no_such_dir" / "x", {}), std::runtime_error);
  EXPECT_FALSE(fs::exists(dir_ / "x"));
}

TEST_F(SafetensorsTest, RejectsBrokenFraming) {
  {
    const fs::path p = dir_ / "short.safetensors";
    std::ofstream(p) << "abc";
    expect_bad(p, {"3 bytes", "8-byte header length"});
  }
  expect_bad(raw("long.safetensors", "{}", 0, 4096), {"header length 4096", "truncated"});
  expect_bad(raw("huge.safetensors", "{}", 0, 200'000'000), {"header length 200000000", "100 MB"});
  expect_bad(raw("notjson.safetensors", "{\"a\": "), {"not valid JSON"});
  expect_bad(raw("array.safetensors", "[1, 2]"), {"must be a JSON object", "array"});
  expect_bad(dir_ / "absent.safetensors", {"cannot open"});
  expect_bad(dir_, {"not a readable regular file"});
}

TEST_F(SafetensorsTest, RejectsMalformedEntries) {
  struct Case {
    std::string header;
    size_t data;
    std::vector<std::string> pieces;
  };
  const std::vector<Case> cases{
      {R"({"t": 5})", 0, {"tensor 't'", "must be an object"}},
      {R"({"t": {"shape": [1], "data_offsets": [0, 4]}})", 4, {"tensor 't'", "no \"dtype\""}},
      {R"({"t": {"dtype": "F32", "data_offsets": [0, 4]}})", 4, {"tensor 't'", "no \"shape\""}},
      {R"({"t": {"dtype": "F32", "shape": [1]}})", 4, {"tensor 't'", "no \"data_offsets\""}},
      {R"({"t": {"dtype": 5, "shape": [1], "data_offsets": [0, 4]}})", 4, {"\"dtype\" must be a string"}},
      {R"({"t": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}})",
       1,
       {"unsupported dtype \"F8_E4M3\""}},
      {R"({"t": {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}})", 4, {"\"shape\" must be an array"}},
      {R"({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})",
       4,
       {"non-negative", "negative number -1"}},
      {R"({"t": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4, {"non-negative integers"}},
      {R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4, {"must be [begin, end]"}},
      {R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, "4"]}})",
       4,
       {"two non-negative integers"}},
      {R"({"t": {"dtype": "F32", "shape": [0], "data_offsets": [4, 0]}})", 4, {"begin > end"}},
      {R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
       4,
       {"tensor 't'", "end 8", "truncated"}},
      {R"({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})",
       8,
       {"needs 12 bytes", "span 8 bytes"}},
      {R"({"t": {"dtype": "F32", "shape": [4611686018427387904, 8], "data_offsets": [0, 4]}})",
       4,
       {"overflows"}},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
           "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
       12,
       {"tensor 'b'", "overlap tensor 'a'"}},
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
           "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
       12,
       {"tensor 'b'", "unused"}},
      {R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
       9,
       {"cover 4 bytes", "9 bytes", "trailing"}},
      {R"({"__metadata__": {"format": 1}})", 0, {"__metadata__ value for 'format' must be a string"}},
      {R"({"__metadata__": ["pt"]})", 0, {"__metadata__ must be an object"}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].header);
    const fs::path p = raw("case" + std::to_string(i) + ".safetensors", cases[i].header, cases[i].data);
    try {
      SafetensorsFile::open(p);
      ADD_FAILURE() << "accepted";
    } catch (const InputError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
      for (const auto& piece : cases[i].pieces)
        EXPECT_NE(msg.find(piece), std::string::npos) << piece << " | " << msg;
    }
  }
}

// nlohmann::json::dump() recurses; messages must not dump a hostile, deeply nested value.
TEST_F(SafetensorsTest, SurvivesDeeplyNestedHeader) {
  const std::string deep = std::string(1'000'000, '[') + std::string(1'000'000, ']');
  expect_bad(
      raw("deep.safetensors", R"({"t": {"dtype": "F32", "shape": )" + deep + R"(, "data_offsets": [0, 0]}})"),
      {"tensor 't'", "array of 1 elements"});
  expect_bad(raw("deep2.safetensors", R"({"t": )" + deep + "}"), {"tensor 't'", "must be an object"});
}

TEST_F(SafetensorsTest, OpensSingleAndShardedFolders) {
  const std::vector<float> a{1, 2}, b{3}, c{4, 5, 6};
  const fs::path single = dir_ / "single";
  fs::create_directory(single);
  write_safetensors(single / "model.safetensors",
                    {ref("a", DType::kF32, {2}, a), ref("b", DType::kF32, {1}, b)});
  const auto s = SafetensorsCheckpoint::open_dir(single);
  EXPECT_EQ(s.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(s.file_of("b"), single / "model.safetensors");
  EXPECT_EQ(s.find("zz"), nullptr);
  EXPECT_THROW(s.file_of("zz"), InputError);

  const fs::path sharded = dir_ / "sharded";
  fs::create_directory(sharded);
  write_safetensors(sharded / "model-00001-of-00002.safetensors",
                    {ref("a", DType::kF32, {2}, a), ref("b", DType::kF32, {1}, b)});
  write_safetensors(sharded / "model-00002-of-00002.safetensors", {ref("c", DType::kF32, {3}, c)});
  const auto write_index = [&](const std::string& map) {
    std::ofstream(sharded / "model.safetensors.index.json")
        << R"({"metadata": {"total_size": 24}, "weight_map": {)" << map << "}}";
  };
  write_index(R"("a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                 "c": "model-00002-of-00002.safetensors")");
  const auto ck = SafetensorsCheckpoint::open_dir(sharded);
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ck.file_of("c"), sharded / "model-00002-of-00002.safetensors");
  ASSERT_NE(ck.find("c"), nullptr);
  float x = 0;
  std::memcpy(&x, ck.find("c")->data + 8, sizeof x);
  EXPECT_EQ(x, 6.f);

  write_index(R"("a": "model-00001-of-00002.safetensors", "c": "model-00003-of-00003.safetensors")");
  expect_bad_dir(sharded, {"model.safetensors.index.json", "shard 'model-00003-of-00003.safetensors'", "'c'",
                           "does not exist"});
  write_index(R"("a": "model-00002-of-00002.safetensors")");
  expect_bad_dir(sharded, {"tensor 'a'", "shard 'model-00002-of-00002.safetensors'", "no such tensor"});
  write_index(R"("a": "../single/model.safetensors")");
  expect_bad_dir(sharded, {"not a file name inside the folder"});
  write_index(R"("a": 3)");
  expect_bad_dir(sharded, {"weight_map['a']", "shard file name"});
  std::ofstream(sharded / "model.safetensors.index.json") << R"({"weights": {}})";
  expect_bad_dir(sharded, {"model.safetensors.index.json", "\"weight_map\""});

  // A single model.safetensors wins over an index, as in transformers.
  fs::copy_file(single / "model.safetensors", sharded / "model.safetensors");
  EXPECT_EQ(SafetensorsCheckpoint::open_dir(sharded).names(), (std::vector<std::string>{"a", "b"}));
}

TEST_F(SafetensorsTest, RefusesPickleAndMissingWeights) {
  const fs::path bin = dir_ / "bin";
  fs::create_directory(bin);
  std::ofstream(bin / "pytorch_model.bin") << "not unpickled";
  std::ofstream(bin / "config.json") << "{}";
  expect_bad_dir(bin, {bin.string(), "pytorch_model.bin", "never unpickles", "safe_serialization=True",
                       "from_pretrained('" + bin.string() + "')"});

  expect_bad_dir(dir_ / "nope", {"nope", "does not exist", "model.safetensors"});
  expect_bad_dir(bin / "config.json", {"is not a folder"});
  const fs::path empty = dir_ / "empty";
  fs::create_directory(empty);
  expect_bad_dir(empty, {"no model weights", "model.safetensors.index.json", "nothing"});
  std::ofstream(empty / "adapter.safetensors") << "x";
  expect_bad_dir(empty, {"found adapter.safetensors", "model.safetensors"});
}

// Interop with the PyPI package, run only when LETHE_PYTHON names a python with numpy + safetensors.
constexpr const char* kInteropScript = R"PY(
import sys, numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file, load_file
want = {
    "f32": (np.arange(6, dtype=np.float32) * 0.5).reshape(2, 3),
    "f16": np.array([1.5, -2.0, 65504.0], dtype=np.float16),
    "f64": np.array(3.25, dtype=np.float64),
    "i64": np.array([-1, 2**40], dtype=np.int64),
    "i32": np.zeros((0, 3), dtype=np.int32),
    "i16": np.array([-300, 300], dtype=np.int16),
    "i8": np.array([-128, 127], dtype=np.int8),
    "u8": np.array([0, 255], dtype=np.uint8),
    "bool": np.array([True, False, True]),
    "u16": np.array([65535, 1], dtype=np.uint16),
}
mode, path = sys.argv[1], sys.argv[2]
if mode == "write":
    save_file(want, path, metadata={"format": "pt"})
else:
    got = load_file(path)
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for k, v in want.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape and np.array_equal(got[k], v), k
    with safe_open(path, "np") as f:
        assert f.metadata() == {"format": "pt"}, f.metadata()
)PY";

TEST_F(SafetensorsTest, InteroperatesWithPythonPackage) {
  const auto py = test::python();
  if (!py) GTEST_SKIP() << "set LETHE_PYTHON to a python with numpy + safetensors to run";
  const std::string& python = *py;
  std::ofstream(dir_ / "interop.py") << kInteropScript;
  const auto run = [&](const std::string& mode, const fs::path& file) {
    const std::string cmd =
        fmt::format("'{}' '{}' {} '{}'", python, (dir_ / "interop.py").string(), mode, file.string());
    return std::system(cmd.c_str());
  };
  const fs::path theirs = dir_ / "theirs.safetensors", ours = dir_ / "ours.safetensors";
  ASSERT_EQ(run("write", theirs), 0);
  const auto f = SafetensorsFile::open(theirs);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  ASSERT_EQ(f.tensors().size(), 10u);
  const TensorView* scalar = f.find("f64");
  ASSERT_NE(scalar, nullptr);
  EXPECT_TRUE(scalar->shape.empty());
  double d = 0;
  std::memcpy(&d, scalar->data, sizeof d);
  EXPECT_EQ(d, 3.25);
  EXPECT_EQ(f.find("i32")->shape, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(f.find("bool")->dtype, DType::kBool);
  float x = 0;
  std::memcpy(&x, f.find("f32")->data + 5 * sizeof(float), sizeof x);
  EXPECT_EQ(x, 2.5f);

  // Re-written in the package's own layout order, our file must be byte-identical to theirs.
  std::vector<TensorRef> refs;
  for (const TensorView& t : f.tensors()) refs.push_back({t.name, t.dtype, t.shape, t.data, t.nbytes});
  write_safetensors(ours, refs);
  EXPECT_EQ(slurp(ours), slurp(theirs));
  EXPECT_EQ(run("check", ours), 0);

  // And in a different order (ours: as given), the package still loads it.
  std::reverse(refs.begin(), refs.end());
  write_safetensors(ours, refs);
  EXPECT_EQ(run("check", ours), 0);
}

}  // namespace
}  // namespace lethe::model
