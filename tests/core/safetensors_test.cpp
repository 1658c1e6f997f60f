// Safetensors parsing, including hostile files: every malformed case must give a CheckpointError
// whose message says what is wrong (never a crash or an allocation driven by the header).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/safetensors.h"

using namespace v4::core;

namespace {

std::vector<uint8_t> file_bytes(const std::string& header, size_t data_bytes, uint64_t declared_len = UINT64_MAX) {
  const uint64_t len = declared_len == UINT64_MAX ? header.size() : declared_len;
  std::vector<uint8_t> b(8);
  for (int i = 0; i < 8; ++i) b[size_t(i)] = uint8_t(len >> (8 * i));
  b.insert(b.end(), header.begin(), header.end());
  for (size_t i = 0; i < data_bytes; ++i) b.push_back(uint8_t(i));
  return b;
}

// Parses and returns the error message ("" if it parsed).
std::string parse_error(const std::vector<uint8_t>& bytes) {
  try {
    SafetensorsFile::parse(bytes, "test.safetensors");
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR_HAS(bytes, text)                                     \
  do {                                                                    \
    const std::string msg_ = parse_error(bytes);                          \
    EXPECT_NE(msg_.find(text), std::string::npos) << "message: " << msg_; \
    EXPECT_NE(msg_.find("test.safetensors"), std::string::npos) << msg_;  \
  } while (0)

}  // namespace

TEST(Safetensors, ParsesAWellFormedHeader) {
  const auto b = file_bytes(
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"I8","shape":[2,2],"data_offsets":[8,12]},"empty":{"dtype":"BF16","shape":[0,4],"data_offsets":[12,12]}})",
      12);
  const auto t = SafetensorsFile::parse(b, "x");
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t.at("a").dtype, DType::F32);
  EXPECT_EQ(t.at("a").nbytes, 8u);
  EXPECT_EQ(t.at("b").shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(t.at("b").data[0], 8);  // data area byte 8
  EXPECT_EQ(t.at("empty").numel(), 0);
}

TEST(Safetensors, FileTooSmallForTheLength) {
  EXPECT_ERROR_HAS((std::vector<uint8_t>{1, 2, 3}), "too small for the 8-byte header length");
}

TEST(Safetensors, HeaderLengthBeyondTheFile) {
  EXPECT_ERROR_HAS(file_bytes("{}", 0, 1000), "header length 1000 is beyond the end of the file");
  EXPECT_ERROR_HAS(file_bytes("{}", 0, UINT64_MAX - 1), "is beyond the end of the file");
}

TEST(Safetensors, OffsetsOutOfRange) {
  EXPECT_ERROR_HAS(file_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8),
                   "tensor 'a': data_offsets [0, 16] are beyond the data area (8 bytes)");
  EXPECT_ERROR_HAS(file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8), "end before they begin");
  EXPECT_ERROR_HAS(file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 8),
                   "data_offsets must be non-negative integers");
  EXPECT_ERROR_HAS(
      file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551616]}})", 8),
      "tensor 'a'");
}

TEST(Safetensors, OverlappingTensors) {
  EXPECT_ERROR_HAS(file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                              12),
                   "tensors 'a' [0, 8] and 'b' [4, 12] overlap");
}

TEST(Safetensors, ShapeProductOverflow) {
  // 2^32 * 2^32 * 16 wraps to 0 in 64 bits; with offsets [0, 0] it must still be refused.
  EXPECT_ERROR_HAS(file_bytes(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}})", 0),
                   "element count that overflows");
  EXPECT_ERROR_HAS(file_bytes(R"({"a":{"dtype":"I64","shape":[4611686018427387904],"data_offsets":[0,0]}})", 0),
                   "overflows");
  EXPECT_ERROR_HAS(file_bytes(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", 0), "negative dimension");
  EXPECT_ERROR_HAS(file_bytes(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4),
                   "shape entries must be non-negative integers");
}

TEST(Safetensors, DtypeSizeMismatch) {
  EXPECT_ERROR_HAS(file_bytes(R"({"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}})", 8),
                   "tensor 'a': 8 bytes of data but dtype BF16 x shape [3] needs 6 bytes");
  EXPECT_ERROR_HAS(file_bytes(R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", 8),
                   "unsupported dtype 'F64'");
  EXPECT_ERROR_HAS(file_bytes(R"({"a":{"shape":[1],"data_offsets":[0,8]}})", 8), "missing string field 'dtype'");
  EXPECT_ERROR_HAS(file_bytes(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4), "missing array field 'shape'");
  EXPECT_ERROR_HAS(file_bytes(R"({"a":{"dtype":"F32","shape":[1]}})", 4), "missing field 'data_offsets'");
}

TEST(Safetensors, NonUtf8Names) {
  std::string header = R"({"a)";
  header += char(0xC3);  // a lead byte with no continuation
  header += R"(":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  EXPECT_ERROR_HAS(file_bytes(header, 4), "header is not valid UTF-8 (byte 3 of the header)");
  std::string overlong = R"({")";
  overlong += char(0xC0);  // overlong encoding of '/'
  overlong += char(0xAF);
  overlong += R"(":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  EXPECT_ERROR_HAS(file_bytes(overlong, 4), "not valid UTF-8");
}

TEST(Safetensors, BadJson) {
  EXPECT_ERROR_HAS(file_bytes(R"({"a":{"dtype":"F32",)", 0), "header is not valid JSON");
  EXPECT_ERROR_HAS(file_bytes(R"([1, 2, 3])", 0), "header is not a JSON object");
  EXPECT_ERROR_HAS(file_bytes(R"({"a": 5})", 0), "tensor 'a': entry is not an object");
  EXPECT_ERROR_HAS(file_bytes(std::string(200, '[') + std::string(200, ']'), 0), "header is not valid JSON");
  EXPECT_ERROR_HAS(file_bytes("x", 0), "too small for a JSON object");
}

TEST(Safetensors, ControlCharactersInNamesAreEscapedInMessages) {
  const std::string msg = parse_error(file_bytes(R"({"a\u0001b":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8));
  EXPECT_NE(msg.find("'a\\x01b'"), std::string::npos) << msg;
}

TEST(Safetensors, TruncatedFileOnDisk) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("v4core-st-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto b = file_bytes(R"({"a":{"dtype":"F32","shape":[256],"data_offsets":[0,1024]}})", 1024);
  b.resize(b.size() - 100);  // cut off the end of the data
  const fs::path p = dir / "cut.safetensors";
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  try {
    SafetensorsFile::open(p.string());
    FAIL() << "opened a truncated file";
  } catch (const CheckpointError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cut.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("beyond the data area (924 bytes); the file is truncated"), std::string::npos) << msg;
  }
  // An empty file and a missing file.
  std::ofstream(dir / "empty.safetensors").close();
  EXPECT_THROW(SafetensorsFile::open((dir / "empty.safetensors").string()), CheckpointError);
  try {
    SafetensorsFile::open((dir / "absent.safetensors").string());
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Safetensors, OpenKeepsMetadataAndMapsTheData) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("v4core-st2-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto b = file_bytes(R"({"__metadata__":{"format":"pt"},"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}})", 3);
  const fs::path p = dir / "ok.safetensors";
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  auto f = SafetensorsFile::open(p.string());
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const TensorView& a = f->tensors().at("a");
  EXPECT_EQ(a.data[0], 0);
  EXPECT_EQ(a.data[2], 2);
  EXPECT_EQ(a.file, p.string());
  fs::remove_all(dir);
}
