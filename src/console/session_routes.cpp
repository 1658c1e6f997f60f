// Sign-up, sign-in, sign-out and "who am I": server-side sessions in an HttpOnly SameSite=Strict
// cookie. Every sign-in issues a new session and ends the one the browser presented (no fixation).
#include "console/routes.h"
#include "product/money.h"

namespace v4::console {
namespace json = boost::json;

namespace {

std::string session_cookie(const Context& ctx, const std::string& token, int64_t max_age_s) {
  return std::string(kSessionCookie) + "=" + token + "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
         std::to_string(max_age_s) + (served_over_tls(ctx.req) ? "; Secure" : "");
}

json::value credit_json(const std::optional<product::Nanodollars>& c) {
  if (!c) return nullptr;
  return json::string(product::format_usd(*c));
}

json::object account_json(const product::AccountInfo& a) {
  return {{"id", a.id}, {"email", a.email}, {"admin", a.admin}, {"credit_usd", credit_json(a.credit)}};
}

std::string field(const json::object& o, const char* name) {
  auto* v = o.if_contains(name);
  if (!v || !v->is_string()) throw ConsoleError(400, "invalid_request_error", std::string(name) + ": required (a string)");
  return std::string(v->as_string());
}

api::WebResponse signed_in(Context& ctx, const product::AccountInfo& a, const product::NewSession& s) {
  if (!ctx.session_token.empty()) ctx.accounts.end_session(ctx.session_token);
  auto res = json_reply(200, json::object{{"account", account_json(a)}, {"csrf_token", s.csrf_token}});
  res.headers.emplace_back("Set-Cookie", session_cookie(ctx, s.token, product::Accounts::kSessionTtlMs / 1000));
  return res;
}

api::WebResponse session_state(Context& ctx) {
  json::object out{{"signup_open", ctx.options.signup_open}, {"signed_in", false}};
  if (ctx.session)
    if (auto a = ctx.accounts.find_account(ctx.session->account_id)) {
      out["signed_in"] = true;
      out["account"] = account_json(*a);
      out["csrf_token"] = ctx.session->csrf_token;
    }
  return json_reply(200, out);
}

api::WebResponse sign_up(Context& ctx) {
  check_state_change(ctx, false);
  if (!ctx.options.signup_open)
    throw ConsoleError(403, "permission_error", "sign-up is closed on this server: ask the operator for an account");
  auto body = parse_json_object(ctx.req.body);
  auto account = ctx.accounts.create_account(field(body, "email"), field(body, "password"), ctx.options.signup_credit);
  return signed_in(ctx, account, ctx.accounts.create_session(account.id));
}

api::WebResponse sign_in(Context& ctx) {
  check_state_change(ctx, false);
  auto body = parse_json_object(ctx.req.body);
  auto r = ctx.accounts.sign_in(field(body, "email"), field(body, "password"), ctx.req.client);
  if (r.outcome == product::SignInResult::rate_limited)
    throw ConsoleError(429, "rate_limit_error",
                       "too many failed sign-ins: try again in " + std::to_string(r.retry_after_s) + " s", r.retry_after_s);
  if (r.outcome != product::SignInResult::ok)
    throw ConsoleError(401, "authentication_error", "wrong email or password");
  return signed_in(ctx, r.account, r.session);
}

api::WebResponse sign_out(Context& ctx) {
  check_state_change(ctx, true);
  ctx.accounts.end_session(ctx.session_token);
  auto res = json_reply(200, json::object{{"signed_in", false}});
  res.headers.emplace_back("Set-Cookie", session_cookie(ctx, "", 0));
  return res;
}

}  // namespace

std::optional<api::WebResponse> session_routes(Context& ctx) {
  const auto& p = ctx.req.path;
  const bool post = ctx.req.method == "POST";
  if (p == "/console/api/session" && ctx.req.method == "GET") return session_state(ctx);
  if (p == "/console/api/signup" && post) return sign_up(ctx);
  if (p == "/console/api/signin" && post) return sign_in(ctx);
  if (p == "/console/api/signout" && post) return sign_out(ctx);
  if (p == "/console/api/session" || p == "/console/api/signup" || p == "/console/api/signin" || p == "/console/api/signout")
    throw ConsoleError(405, "invalid_request_error", "method not allowed");
  return std::nullopt;
}

}  // namespace v4::console
