#pragma once
// Internal to the console: the request context and the route groups (one file each).
#include <boost/json.hpp>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

#include "api/web.h"
#include "console/console.h"
#include "product/accounts.h"

namespace v4::console {

// A refusal in the console API's JSON shape: {"error": {"message", "type"}}.
struct ConsoleError : std::runtime_error {
  ConsoleError(int status, std::string type, const std::string& message, int64_t retry_after_s = 0)
      : std::runtime_error(message), status(status), type(std::move(type)), retry_after_s(retry_after_s) {}
  int status;
  std::string type;
  int64_t retry_after_s;
};

struct Context {
  const api::WebRequest& req;
  product::Accounts& accounts;
  const ConsoleOptions& options;
  std::optional<product::SessionInfo> session;  // from the cookie, when valid
  std::string session_token;                    // the cookie's value ("" when none)
};

constexpr const char* kSessionCookie = "v4f_session";

// http_util.cpp
std::map<std::string, std::string> parse_query(const std::string& target);
std::string cookie_value(const api::WebRequest& req, const std::string& name);
bool served_over_tls(const api::WebRequest& req);
void add_security_headers(api::WebResponse& res);
api::WebResponse json_reply(int status, const boost::json::value& body);
api::WebResponse error_reply(const ConsoleError& e);
api::WebResponse redirect(const std::string& location);
boost::json::object parse_json_object(const std::string& body);
std::string base_url(const api::WebRequest& req);
// State changes: a JSON body, a same-origin Origin (when the browser sends one) and, for a signed-in
// session, the session's CSRF token in X-CSRF-Token. Throws ConsoleError 403 otherwise.
void check_state_change(const Context& ctx, bool needs_session_token);
const product::SessionInfo& require_session(const Context& ctx);  // 401 when signed out

// session_routes.cpp: /console/api/{session,signup,signin,signout}
std::optional<api::WebResponse> session_routes(Context& ctx);
// dashboard_routes.cpp: /console/api/{keys,usage,usage.csv,admin/...}
std::optional<api::WebResponse> dashboard_routes(Context& ctx);
// model_info.cpp: /console/api/model (public)
boost::json::object model_info(const Context& ctx);
// pages.cpp: the HTML shell and /assets/<build>/...
std::optional<api::WebResponse> page_routes(Context& ctx);

}  // namespace v4::console
