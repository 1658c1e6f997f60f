#pragma once
// The API's error type and the reader of request JSON that every dialect adapter parses with: each
// field read by name and type, every error naming the parameter's path in the request.
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <boost/json.hpp>

namespace v4::api {

enum class Dialect { chat, responses, anthropic };

// An HTTP error with what each dialect needs to render it. `type` is the OpenAI error type
// (invalid_request_error, authentication_error, not_found_error, rate_limit_error, server_error,
// overloaded); the Anthropic renderer maps status codes to its own types.
struct ApiError : std::runtime_error {
  ApiError(int status, std::string type, std::string message, std::string param = {}, std::string code = {})
      : std::runtime_error(message), status(status), type(std::move(type)), param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type;
  std::string param;
  std::string code;
  int retry_after_s = 0;  // Retry-After header for 429/503/529 (0: the server's default of 1)
};

// 400: malformed body, wrong type, missing field. 422 (DeepSeek's "Invalid Parameters") for
// out-of-range values on the OpenAI dialects; Anthropic always answers 400.
ApiError bad_request(const std::string& param, const std::string& message);
ApiError invalid_value(Dialect dialect, const std::string& param, const std::string& message);
// 400 for a field this server does not honour, saying why.
ApiError unsupported(const std::string& path, const std::string& why);

// Parses a request body as JSON, throwing a 400 ApiError that says where it is malformed.
boost::json::value parse_json_body(const std::string& body);

// "a string", "an array", ...: the kind of a JSON value, for type errors.
const char* kind_name(const boost::json::value& v);

// `v` as an object, or a 400 naming `path`.
const boost::json::object& as_object(const boost::json::value& v, const std::string& path, Dialect);

// Reads the fields of one JSON object, naming the parameter path in every error.
class Fields {
 public:
  Fields(const boost::json::object& obj, Dialect dialect, std::string prefix = {})
      : obj_(obj), dialect_(dialect), prefix_(std::move(prefix)) {}

  std::string path(std::string_view key) const { return prefix_ + std::string(key); }
  // Present and not null.
  const boost::json::value* find(std::string_view key) const;
  const boost::json::value& require(std::string_view key) const;
  ApiError type_error(std::string_view key, const char* want, const boost::json::value& got) const;
  std::optional<std::string> str(std::string_view key) const;
  std::string req_str(std::string_view key) const;
  std::optional<bool> boolean(std::string_view key) const;
  std::optional<double> number(std::string_view key, double lo, double hi) const;
  std::optional<int64_t> integer(std::string_view key, int64_t lo, int64_t hi) const;
  const boost::json::array* array(std::string_view key) const;
  const boost::json::object* object(std::string_view key) const;
  Fields sub(const boost::json::object& o, const std::string& name) const { return Fields(o, dialect_, name + "."); }
  // Every field present must be one of `known`: a field this server does not honour is refused,
  // never ignored (400 naming it).
  void only(std::initializer_list<std::string_view> known) const;

  static std::string fmt_num(double d);

 private:
  const boost::json::object& obj_;
  Dialect dialect_;
  std::string prefix_;
};

}  // namespace v4::api
