// libFuzzer target for constrained decoding's grammars. The input is a JSON Schema, a newline, and
// text: the schema is compiled (only SchemaError may escape; invalid JSON falls back to JSON mode),
// the text fed byte by byte, and at every accepted byte the token mask over a small vocabulary must
// equal trying each token (abort otherwise), the same check the unit tests make on fixed inputs.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar/token_index.h"

namespace {

const std::vector<std::string>& vocabulary() {
  static const std::vector<std::string> v = [] {
    std::vector<std::string> out;
    for (int c = 0x20; c < 0x7F; ++c) out.emplace_back(1, char(c));
    for (const char* t : {"{\"", "\":", "\",\"", "\"}", "\"]", "true", "null", "ab", "a\"", "\\n", "\\u00", "12",
                          "3.5", "e+", "\xC3\xA9", "\xC3", "\xA9", "\xE4\xB8", "\n", "<", "</", "\xF0\x9F"})
      out.emplace_back(t);
    return out;
  }();
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t cut = input.find('\n');
  const std::string schema_text = input.substr(0, cut);
  const std::string text = cut == std::string::npos ? std::string() : input.substr(cut + 1);
  std::shared_ptr<const v4::grammar::Grammar> g;
  try {
    boost::system::error_code ec;
    const boost::json::value schema = boost::json::parse(schema_text, ec);
    g = std::make_shared<const v4::grammar::Grammar>(ec ? v4::grammar::json_object_grammar()
                                                        : v4::grammar::json_schema_grammar(schema));
  } catch (const v4::grammar::SchemaError&) {
    return 0;
  }
  static const v4::grammar::TokenIndex index(vocabulary(), std::vector<char>(vocabulary().size(), 0));
  v4::grammar::Matcher m(g);
  v4::grammar::TokenBits bits;
  for (size_t i = 0; i < text.size() && i < 256; ++i) {
    m.allowed_tokens(index, bits);
    for (size_t t = 0; t < vocabulary().size(); ++t) {
      v4::grammar::Matcher copy = m;
      if (copy.advance(vocabulary()[t]) != v4::grammar::test_bit(bits, int32_t(t))) std::abort();
    }
    if (!m.advance(text.substr(i, 1))) break;
  }
  return 0;
}
