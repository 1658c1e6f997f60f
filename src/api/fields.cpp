// The request JSON reader and the errors it throws.
#include "api/fields.h"

#include <algorithm>
#include <climits>
#include <cmath>

namespace v4::api {

namespace json = boost::json;

ApiError bad_request(const std::string& param, const std::string& message) {
  return ApiError(400, "invalid_request_error", message, param, param.empty() ? "invalid_request" : "invalid_parameter");
}

ApiError invalid_value(Dialect dialect, const std::string& param, const std::string& message) {
  return ApiError(dialect == Dialect::anthropic ? 400 : 422, "invalid_request_error", message, param,
                  "invalid_parameter");
}

ApiError unsupported(const std::string& path, const std::string& why) {
  return ApiError(400, "invalid_request_error", "'" + path + "' is not supported by this server: " + why, path,
                  "unsupported_parameter");
}

json::value parse_json_body(const std::string& body) {
  if (body.empty()) throw bad_request("", "request body is empty; expected a JSON object");
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 64;
  json::value v = json::parse(body, ec, {}, opts);
  if (ec) throw bad_request("", "request body is not valid JSON: " + ec.message());
  if (!v.is_object()) throw bad_request("", "request body must be a JSON object");
  return v;
}

const char* kind_name(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_: return "a number";
    case json::kind::string: return "a string";
    case json::kind::array: return "an array";
    case json::kind::object: return "an object";
  }
  return "?";
}

const json::object& as_object(const json::value& v, const std::string& path, Dialect) {
  if (!v.is_object()) throw bad_request(path, "invalid type for '" + path + "': expected an object, got " + kind_name(v));
  return v.get_object();
}

const json::value* Fields::find(std::string_view key) const {
  auto it = obj_.find(key);
  if (it == obj_.end() || it->value().is_null()) return nullptr;
  return &it->value();
}

const json::value& Fields::require(std::string_view key) const {
  auto* v = find(key);
  if (!v) throw bad_request(path(key), "missing required parameter '" + path(key) + "'");
  return *v;
}

ApiError Fields::type_error(std::string_view key, const char* want, const json::value& got) const {
  return bad_request(path(key), "invalid type for '" + path(key) + "': expected " + want + ", got " + kind_name(got));
}

std::optional<std::string> Fields::str(std::string_view key) const {
  auto* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_string()) throw type_error(key, "a string", *v);
  return std::string(v->get_string());
}

std::string Fields::req_str(std::string_view key) const {
  require(key);
  return *str(key);
}

std::optional<bool> Fields::boolean(std::string_view key) const {
  auto* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_bool()) throw type_error(key, "a boolean", *v);
  return v->get_bool();
}

std::optional<double> Fields::number(std::string_view key, double lo, double hi) const {
  auto* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_number()) throw type_error(key, "a number", *v);
  double d = v->to_number<double>();
  if (!(d >= lo && d <= hi))
    throw invalid_value(dialect_, path(key), "'" + path(key) + "' must be between " + fmt_num(lo) + " and " +
                                                 fmt_num(hi) + ", got " + fmt_num(d));
  return d;
}

std::optional<int64_t> Fields::integer(std::string_view key, int64_t lo, int64_t hi) const {
  auto* v = find(key);
  if (!v) return std::nullopt;
  int64_t n = 0;
  if (v->is_int64()) {
    n = v->get_int64();
  } else if (v->is_uint64()) {
    n = v->get_uint64() > uint64_t(INT64_MAX) ? INT64_MAX : int64_t(v->get_uint64());
  } else if (v->is_double() && std::floor(v->get_double()) == v->get_double() && std::fabs(v->get_double()) < 9e15) {
    n = int64_t(v->get_double());
  } else {
    throw type_error(key, "an integer", *v);
  }
  if (n < lo || n > hi)
    throw invalid_value(dialect_, path(key), "'" + path(key) + "' must be between " + std::to_string(lo) + " and " +
                                                 std::to_string(hi) + ", got " + std::to_string(n));
  return n;
}

const json::array* Fields::array(std::string_view key) const {
  auto* v = find(key);
  if (!v) return nullptr;
  if (!v->is_array()) throw type_error(key, "an array", *v);
  return &v->get_array();
}

const json::object* Fields::object(std::string_view key) const {
  auto* v = find(key);
  if (!v) return nullptr;
  if (!v->is_object()) throw type_error(key, "an object", *v);
  return &v->get_object();
}

void Fields::only(std::initializer_list<std::string_view> known) const {
  for (auto& kv : obj_) {
    if (std::find(known.begin(), known.end(), kv.key()) != known.end()) continue;
    throw ApiError(400, "invalid_request_error",
                   "'" + path(kv.key()) + "' is not supported by this server (docs/api.md lists the fields it honours)",
                   path(kv.key()), "unsupported_parameter");
  }
}

std::string Fields::fmt_num(double d) {
  if (std::floor(d) == d && std::fabs(d) < 1e15) return std::to_string(int64_t(d));
  std::string s = std::to_string(d);
  while (!s.empty() && s.back() == '0') s.pop_back();
  return s;
}

}  // namespace v4::api
