#include "api/query_params.h"

#include <algorithm>

#include "api/request.h"

namespace v4::api {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%') {
      const int hi = i + 2 < s.size() ? hex_digit(s[i + 1]) : -1;
      const int lo = hi >= 0 ? hex_digit(s[i + 2]) : -1;
      if (lo < 0)
        throw bad_request("", "malformed percent-escape in the query string: '" + std::string(s) + "'");
      out += char(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

QueryParams QueryParams::parse(std::string_view target) {
  QueryParams q;
  if (const size_t mark = target.find('?'); mark != std::string_view::npos) target.remove_prefix(mark + 1);
  else if (target.starts_with('/')) return q;
  while (!target.empty()) {
    const size_t amp = std::min(target.find('&'), target.size());
    std::string_view pair = target.substr(0, amp);
    target.remove_prefix(std::min(amp + 1, target.size()));
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    std::string name = decode(pair.substr(0, eq));
    std::string value = eq == std::string_view::npos ? std::string() : decode(pair.substr(eq + 1));
    q.items_.emplace_back(std::move(name), std::move(value));
  }
  return q;
}

std::optional<std::string> QueryParams::get(std::string_view name) const {
  std::optional<std::string> last;
  for (auto& [k, v] : items_)
    if (k == name) last = v;
  return last;
}

std::vector<std::string> QueryParams::all(std::string_view name) const {
  std::vector<std::string> out;
  for (auto& [k, v] : items_)
    if (k == name) out.push_back(v);
  return out;
}

void QueryParams::only(std::initializer_list<std::string_view> known) const {
  for (auto& [k, v] : items_)
    if (std::find(known.begin(), known.end(), k) == known.end())
      throw ApiError(400, "invalid_request_error", "query parameter '" + k + "' is not supported by this route", k,
                     "unsupported_parameter");
}

}  // namespace v4::api
