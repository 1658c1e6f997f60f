// Small HTTP helpers of the console: queries, cookies, security headers, JSON replies, CSRF rules.
#include <openssl/crypto.h>

#include "console/routes.h"

namespace v4::console {
namespace json = boost::json;

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string url_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') out += ' ';
    else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += char(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else out += s[i];
  }
  return out;
}

bool same_text(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}
}  // namespace

std::map<std::string, std::string> parse_query(const std::string& target) {
  std::map<std::string, std::string> out;
  auto q = target.find('?');
  if (q == std::string::npos) return out;
  std::string rest = target.substr(q + 1);
  size_t pos = 0;
  while (pos <= rest.size()) {
    size_t amp = rest.find('&', pos);
    std::string part = rest.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    if (!part.empty()) {
      auto eq = part.find('=');
      out[url_decode(part.substr(0, eq))] = eq == std::string::npos ? "" : url_decode(part.substr(eq + 1));
    }
    if (amp == std::string::npos) break;
    pos = amp + 1;
  }
  return out;
}

std::string cookie_value(const api::WebRequest& req, const std::string& name) {
  std::string header = req.header("cookie");
  size_t pos = 0;
  while (pos < header.size()) {
    size_t end = header.find(';', pos);
    if (end == std::string::npos) end = header.size();
    std::string item = header.substr(pos, end - pos);
    size_t a = item.find_first_not_of(' ');
    if (a != std::string::npos) item = item.substr(a);
    if (item.rfind(name + "=", 0) == 0) return item.substr(name.size() + 1);
    pos = end + 1;
  }
  return "";
}

// Behind a TLS-terminating proxy the scheme arrives in X-Forwarded-Proto; it only ever makes the
// cookie stricter (Secure), so trusting it is safe.
bool served_over_tls(const api::WebRequest& req) { return req.header("x-forwarded-proto") == "https"; }

std::string base_url(const api::WebRequest& req) {
  std::string host = req.header("host");
  if (host.empty()) host = "127.0.0.1:8000";
  return (served_over_tls(req) ? "https://" : "http://") + host;
}

void add_security_headers(api::WebResponse& res) {
  res.headers.emplace_back("Content-Security-Policy",
                           "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'");
  res.headers.emplace_back("X-Content-Type-Options", "nosniff");
  res.headers.emplace_back("Referrer-Policy", "no-referrer");
  res.headers.emplace_back("X-Frame-Options", "DENY");
  res.headers.emplace_back("Cross-Origin-Opener-Policy", "same-origin");
}

api::WebResponse json_reply(int status, const json::value& body) {
  api::WebResponse res;
  res.status = status;
  res.headers.emplace_back("Content-Type", "application/json");
  res.headers.emplace_back("Cache-Control", "no-store");
  add_security_headers(res);
  res.body = json::serialize(body);
  return res;
}

api::WebResponse error_reply(const ConsoleError& e) {
  auto res = json_reply(e.status, json::object{{"error", json::object{{"message", e.what()}, {"type", e.type}}}});
  if (e.retry_after_s > 0) res.headers.emplace_back("Retry-After", std::to_string(e.retry_after_s));
  return res;
}

api::WebResponse redirect(const std::string& location) {
  api::WebResponse res;
  res.status = 302;
  res.headers.emplace_back("Location", location);
  res.headers.emplace_back("Cache-Control", "no-store");
  add_security_headers(res);
  return res;
}

json::object parse_json_object(const std::string& body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) throw ConsoleError(400, "invalid_request_error", "the body must be a JSON object");
  return v.as_object();
}

void check_state_change(const Context& ctx, bool needs_session_token) {
  const auto& req = ctx.req;
  if (req.header("content-type").rfind("application/json", 0) != 0)
    throw ConsoleError(415, "invalid_request_error", "send the body as application/json");
  std::string origin = req.header("origin");
  if (!origin.empty() && origin != "http://" + req.header("host") && origin != "https://" + req.header("host"))
    throw ConsoleError(403, "csrf_error", "cross-origin request refused");
  if (needs_session_token) {
    const auto& s = require_session(ctx);
    if (!same_text(req.header("x-csrf-token"), s.csrf_token))
      throw ConsoleError(403, "csrf_error", "missing or wrong X-CSRF-Token");
  } else if (req.header("x-requested-with") != "v4flash-console") {
    // Sign-in / sign-up have no session yet: a custom header cannot be sent cross-site without a
    // CORS preflight, which this server never grants.
    throw ConsoleError(403, "csrf_error", "missing X-Requested-With: v4flash-console");
  }
}

const product::SessionInfo& require_session(const Context& ctx) {
  if (!ctx.session) throw ConsoleError(401, "authentication_error", "sign in first");
  return *ctx.session;
}

}  // namespace v4::console
