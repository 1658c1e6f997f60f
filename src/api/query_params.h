#pragma once
// The query string of a GET request's target, decoded: name=value pairs split at '&', percent
// escapes (RFC 3986) and '+' (as a space) undone, in order. Unknown names are refused by the route
// that reads them, as unknown body fields are.
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace v4::api {

class QueryParams {
 public:
  QueryParams() = default;
  // `target`: the request target ("/path?a=1&b=2") or the query alone. Throws ApiError (400) on a
  // malformed escape.
  static QueryParams parse(std::string_view target);

  std::optional<std::string> get(std::string_view name) const;  // the last value given
  std::vector<std::string> all(std::string_view name) const;     // every value, in order
  // Every name present must be one of `known` (400 naming the first that is not).
  void only(std::initializer_list<std::string_view> known) const;

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

}  // namespace v4::api
