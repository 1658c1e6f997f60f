#include "script.h"

#include <array>

namespace v4::testing {

namespace {

constexpr const char* kOpen = "[[v4-script:";
constexpr const char* kClose = "]]";
constexpr const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::optional<std::string> base64_decode(const std::string& in) {
  std::array<int, 256> value;
  value.fill(-1);
  for (int i = 0; i < 64; ++i) value[size_t(uint8_t(kAlphabet[i]))] = i;
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    const int v = value[size_t(uint8_t(c))];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(char((acc >> bits) & 0xFF));
    }
  }
  return out;
}

}  // namespace

std::string script_marker(const std::string& completion) {
  std::string b64;
  size_t i = 0;
  for (; i + 2 < completion.size(); i += 3) {
    const uint32_t n = uint32_t(uint8_t(completion[i])) << 16 | uint32_t(uint8_t(completion[i + 1])) << 8 |
                       uint32_t(uint8_t(completion[i + 2]));
    for (int s = 18; s >= 0; s -= 6) b64.push_back(kAlphabet[(n >> s) & 63]);
  }
  if (const size_t rest = completion.size() - i; rest > 0) {
    uint32_t n = uint32_t(uint8_t(completion[i])) << 16;
    if (rest == 2) n |= uint32_t(uint8_t(completion[i + 1])) << 8;
    b64.push_back(kAlphabet[(n >> 18) & 63]);
    b64.push_back(kAlphabet[(n >> 12) & 63]);
    b64.push_back(rest == 2 ? kAlphabet[(n >> 6) & 63] : '=');
    b64.push_back('=');
  }
  return kOpen + b64 + kClose;
}

std::optional<std::string> find_script(const std::string& prompt_text) {
  const size_t open = prompt_text.rfind(kOpen);
  if (open == std::string::npos) return std::nullopt;
  const size_t start = open + std::char_traits<char>::length(kOpen);
  const size_t close = prompt_text.find(kClose, start);
  if (close == std::string::npos) return std::nullopt;
  return base64_decode(prompt_text.substr(start, close - start));
}

}  // namespace v4::testing
