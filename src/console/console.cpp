// Dispatch of the console's paths, and the playground's way into the API (session + CSRF token).
#include "console/console.h"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include "console/routes.h"

namespace v4::console {

namespace {

Context make_context(const api::WebRequest& req, product::Accounts& accounts, const ConsoleOptions& options) {
  Context ctx{req, accounts, options, std::nullopt, cookie_value(req, kSessionCookie)};
  if (!ctx.session_token.empty()) ctx.session = accounts.find_session(ctx.session_token);
  return ctx;
}
}  // namespace

Console::Console(std::shared_ptr<product::Accounts> accounts, ConsoleOptions options)
    : accounts_(std::move(accounts)), options_(std::move(options)) {}

bool Console::serves(const std::string& path) const {
  return path == "/" || path == "/signin" || path == "/signup" || path == "/dashboard" || path == "/playground" ||
         path == "/models" || path.rfind("/models/", 0) == 0 || path.rfind("/assets/", 0) == 0 ||
         path.rfind("/console/", 0) == 0 || path == "/favicon.ico";
}

api::WebResponse Console::handle(const api::WebRequest& req) {
  try {
    if (req.body.size() > body_limit()) throw ConsoleError(413, "invalid_request_error", "request body too large");
    Context ctx = make_context(req, *accounts_, options_);
    if (auto r = session_routes(ctx)) return *r;
    if (auto r = dashboard_routes(ctx)) return *r;
    if (req.path == "/console/api/model") {
      if (req.method != "GET") throw ConsoleError(405, "invalid_request_error", "use GET");
      return json_reply(200, model_info(ctx));
    }
    if (auto r = page_routes(ctx)) return *r;
    throw ConsoleError(404, "not_found_error", "no such page: " + req.path);
  } catch (const ConsoleError& e) {
    return error_reply(e);
  } catch (const std::invalid_argument& e) {
    return error_reply(ConsoleError(400, "invalid_request_error", e.what()));
  } catch (const std::exception& e) {
    spdlog::error("console {} {}: {}", req.method, req.path, e.what());
    return error_reply(ConsoleError(500, "server_error", "internal error"));
  }
}

std::optional<api::Principal> Console::session_principal(const api::WebRequest& req) {
  std::string token = cookie_value(req, kSessionCookie);
  if (token.empty()) return std::nullopt;
  auto session = accounts_->find_session(token);
  if (!session) return std::nullopt;
  // Only the playground's endpoint takes a session, and only with its CSRF token.
  if (req.path != "/v1/chat/completions") return std::nullopt;
  std::string csrf = req.header("x-csrf-token");
  if (csrf.size() != session->csrf_token.size() ||
      CRYPTO_memcmp(csrf.data(), session->csrf_token.data(), csrf.size()) != 0)
    throw api::ApiError(403, "permission_error", "console requests need the session's X-CSRF-Token header", "",
                        "csrf_token_missing");
  api::Principal who;
  who.key_id = accounts_->playground_key(session->account_id).id;
  who.source = "playground";
  who.account = session->account_id;
  return who;
}

}  // namespace v4::console
