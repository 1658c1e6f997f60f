// The dashboard's data: the account's keys (create, list, revoke), usage per day and model and the
// recent requests (straight from the ledger: the console computes no prices), CSV export, and the
// admin's account list and credit top-ups.
#include <ctime>

#include "console/routes.h"
#include "product/money.h"

namespace v4::console {
namespace json = boost::json;

namespace {

constexpr const char* kKeysPath = "/console/api/keys";
constexpr const char* kAdminPath = "/console/api/admin/accounts";

json::value usd_or_null(const std::optional<product::Nanodollars>& c) {
  if (!c) return nullptr;
  return json::string(product::format_usd(*c));
}

json::value ms_or_null(const std::optional<int64_t>& ms) {
  if (!ms) return nullptr;
  return *ms;
}

json::object key_json(const product::KeyInfo& k) {
  return {{"id", k.id},
          {"name", k.name},
          {"prefix", "sk-v4f-" + k.id + "-"},
          {"created_at_ms", k.created_at_ms},
          {"last_used_at_ms", ms_or_null(k.last_used_at_ms)},
          {"spent_usd", product::format_usd(k.spent)},
          {"credit_limit_usd", usd_or_null(k.credit)},
          {"rpm_limit", k.rpm_limit},
          {"tpm_limit", k.tpm_limit},
          {"revoked", k.revoked()}};
}

std::optional<product::Nanodollars> optional_usd(const json::object& o, const char* name) {
  auto* v = o.if_contains(name);
  if (!v || v->is_null() || (v->is_string() && v->as_string().empty())) return std::nullopt;
  if (!v->is_string()) throw ConsoleError(400, "invalid_request_error", std::string(name) + ": a decimal string, e.g. \"5.00\"");
  auto amount = product::parse_usd(std::string(v->as_string()));
  if (amount < 0) throw ConsoleError(400, "invalid_request_error", std::string(name) + ": must not be negative");
  return amount;
}

int64_t optional_limit(const json::object& o, const char* name) {
  auto* v = o.if_contains(name);
  if (!v || v->is_null()) return 0;
  if (!v->is_int64() || v->as_int64() < 0)
    throw ConsoleError(400, "invalid_request_error", std::string(name) + ": a whole number >= 0 (0 = unlimited)");
  return v->as_int64();
}

api::WebResponse create_key(Context& ctx, const product::SessionInfo& s) {
  auto body = parse_json_object(ctx.req.body);
  auto* n = body.if_contains("name");
  if (!n || !n->is_string() || n->as_string().empty() || n->as_string().size() > 64)
    throw ConsoleError(400, "invalid_request_error", "name: 1 to 64 characters");
  for (const auto& [k, v] : body)
    if (k != "name" && k != "credit_limit_usd" && k != "rpm_limit" && k != "tpm_limit")
      throw ConsoleError(400, "invalid_request_error", std::string(k) + ": unknown field");
  product::KeyOptions opts;
  opts.name = std::string(n->as_string());
  opts.account_id = s.account_id;
  opts.credit = optional_usd(body, "credit_limit_usd");
  opts.rpm_limit = optional_limit(body, "rpm_limit");
  opts.tpm_limit = optional_limit(body, "tpm_limit");
  auto created = ctx.accounts.create_key(opts);
  json::object out = key_json(created.info);
  out["secret"] = created.secret;
  return json_reply(201, out);
}

// A key id from the path or a filter, checked to belong to the signed-in account (404 otherwise:
// another account's key ids are not even confirmed to exist).
product::KeyInfo owned_key(Context& ctx, const std::string& account_id, const std::string& key_id) {
  auto k = ctx.accounts.find_key(key_id);
  if (!k || k->account_id != account_id || k->internal) throw ConsoleError(404, "not_found_error", "no such key");
  return *k;
}

std::optional<api::WebResponse> key_routes(Context& ctx) {
  const auto& p = ctx.req.path;
  if (p == kKeysPath && ctx.req.method == "GET") {
    const auto& s = require_session(ctx);
    json::array keys;
    for (const auto& k : ctx.accounts.list_account_keys(s.account_id)) keys.push_back(key_json(k));
    return json_reply(200, json::object{{"data", keys}});
  }
  if (p == kKeysPath && ctx.req.method == "POST") {
    check_state_change(ctx, true);
    return create_key(ctx, *ctx.session);
  }
  std::string prefix = std::string(kKeysPath) + "/";
  if (p.rfind(prefix, 0) == 0 && p.size() > prefix.size() + 7 && p.substr(p.size() - 7) == "/revoke" &&
      ctx.req.method == "POST") {
    check_state_change(ctx, true);
    auto key = owned_key(ctx, ctx.session->account_id, p.substr(prefix.size(), p.size() - prefix.size() - 7));
    ctx.accounts.revoke_key(key.id);
    return json_reply(200, key_json(*ctx.accounts.find_key(key.id)));
  }
  return std::nullopt;
}

std::string day_before(int days_back) {
  std::time_t t = std::time(nullptr) - std::time_t(days_back) * 86400;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

product::UsageQuery usage_query(Context& ctx, const std::string& account_id) {
  auto q = parse_query(ctx.req.target);
  product::UsageQuery uq;
  uq.account_id = account_id;
  int days = 30;
  if (q.count("days")) {
    try {
      days = std::stoi(q["days"]);
    } catch (const std::exception&) {
      days = 0;
    }
    if (days < 1 || days > 366) throw ConsoleError(400, "invalid_request_error", "days: 1 to 366");
  }
  uq.since_day = day_before(days - 1);
  if (q.count("key") && !q["key"].empty()) uq.key_id = owned_key(ctx, account_id, q["key"]).id;
  if (q.count("model") && !q["model"].empty()) uq.model = q["model"];
  return uq;
}

json::object totals_json(const product::UsageTotals& t) {
  return {{"requests", t.requests},
          {"input_tokens", t.input_tokens},
          {"cached_input_tokens", t.cached_input_tokens},
          {"output_tokens", t.output_tokens},
          {"reasoning_tokens", t.reasoning_tokens},
          {"web_search_calls", t.web_search_calls},
          {"cost_usd", product::format_usd(t.cost)},
          {"cost_nano_usd", t.cost}};
}

// Ledger groups (day, key, model) folded into (day, model): the table's rows.
std::map<std::pair<std::string, std::string>, product::UsageTotals> daily(Context& ctx, const product::UsageQuery& q) {
  std::map<std::pair<std::string, std::string>, product::UsageTotals> out;
  for (const auto& r : ctx.accounts.usage_rows(q)) {
    auto& t = out[{r.day, r.model}];
    t.requests += r.totals.requests;
    t.input_tokens += r.totals.input_tokens;
    t.cached_input_tokens += r.totals.cached_input_tokens;
    t.output_tokens += r.totals.output_tokens;
    t.reasoning_tokens += r.totals.reasoning_tokens;
    t.web_search_calls += r.totals.web_search_calls;
    t.cost = product::checked_add(t.cost, r.totals.cost);
  }
  return out;
}

json::object request_json(const product::RequestRow& r) {
  return {{"request_id", r.request_id}, {"ended_at_ms", r.ended_at_ms}, {"model", r.model},
          {"key_id", r.key_id},         {"key_name", r.key_name},      {"source", r.source},
          {"status", r.status},         {"input_tokens", r.uncached_tokens}, {"cached_input_tokens", r.cached_tokens},
          {"output_tokens", r.output_tokens}, {"reasoning_tokens", r.reasoning_tokens},
          {"web_search_calls", r.web_search_calls}, {"cost_usd", product::format_usd(r.cost)}, {"cost_nano_usd", r.cost}};
}

api::WebResponse usage(Context& ctx, const product::SessionInfo& s) {
  auto q = usage_query(ctx, s.account_id);
  json::array days;
  for (const auto& [group, t] : daily(ctx, q)) {
    json::object row = totals_json(t);
    row["day"] = group.first;
    row["model"] = group.second;
    days.push_back(std::move(row));
  }
  json::array requests;
  for (const auto& r : ctx.accounts.recent_requests(q, 100)) requests.push_back(request_json(r));
  auto account = ctx.accounts.find_account(s.account_id);
  return json_reply(200, json::object{{"since_day", *q.since_day}, {"days", days}, {"requests", requests},
                                      {"credit_usd", usd_or_null(account ? account->credit : std::nullopt)}});
}

std::string csv_field(const std::string& s) {
  std::string safe = s;
  // A leading = + - @ would make a spreadsheet evaluate the cell.
  if (!safe.empty() && (safe[0] == '=' || safe[0] == '+' || safe[0] == '-' || safe[0] == '@')) safe = "'" + safe;
  std::string out = "\"";
  for (char c : safe) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

api::WebResponse usage_csv(Context& ctx, const product::SessionInfo& s) {
  auto q = usage_query(ctx, s.account_id);
  std::string csv = "time_utc_ms,request_id,model,key_id,key_name,source,status,input_tokens,cached_input_tokens,"
                    "output_tokens,reasoning_tokens,web_search_calls,cost_usd\n";
  for (const auto& r : ctx.accounts.recent_requests(q, 10000))
    csv += std::to_string(r.ended_at_ms) + "," + csv_field(r.request_id) + "," + csv_field(r.model) + "," +
           csv_field(r.key_id) + "," + csv_field(r.key_name) + "," + r.source + "," + csv_field(r.status) + "," +
           std::to_string(r.uncached_tokens) + "," + std::to_string(r.cached_tokens) + "," +
           std::to_string(r.output_tokens) + "," + std::to_string(r.reasoning_tokens) + "," +
           std::to_string(r.web_search_calls) + "," + product::format_usd(r.cost) + "\n";
  api::WebResponse res;
  res.headers.emplace_back("Content-Type", "text/csv; charset=utf-8");
  res.headers.emplace_back("Content-Disposition", "attachment; filename=\"v4flash-usage.csv\"");
  res.headers.emplace_back("Cache-Control", "no-store");
  add_security_headers(res);
  res.body = std::move(csv);
  return res;
}

const product::AccountInfo require_admin(Context& ctx) {
  auto a = ctx.accounts.find_account(require_session(ctx).account_id);
  if (!a || !a->admin) throw ConsoleError(403, "permission_error", "administrators only");
  return *a;
}

std::optional<api::WebResponse> admin_routes(Context& ctx) {
  const auto& p = ctx.req.path;
  if (p.rfind(kAdminPath, 0) != 0) return std::nullopt;
  require_admin(ctx);
  if (p == kAdminPath && ctx.req.method == "GET") {
    json::array out;
    for (const auto& a : ctx.accounts.list_accounts()) {
      product::UsageQuery q;
      q.account_id = a.id;
      auto t = ctx.accounts.usage_totals(q);
      out.push_back(json::object{{"id", a.id}, {"email", a.email}, {"admin", a.admin},
                                 {"credit_usd", usd_or_null(a.credit)}, {"spent_usd", product::format_usd(t.cost)},
                                 {"requests", t.requests}});
    }
    return json_reply(200, json::object{{"data", out}});
  }
  std::string prefix = std::string(kAdminPath) + "/";
  if (p.rfind(prefix, 0) == 0 && p.size() > prefix.size() + 7 && p.substr(p.size() - 7) == "/credit" &&
      ctx.req.method == "POST") {
    check_state_change(ctx, true);
    auto amount = optional_usd(parse_json_object(ctx.req.body), "add_usd");
    if (!amount || *amount <= 0) throw ConsoleError(400, "invalid_request_error", "add_usd: a positive amount");
    std::string id = p.substr(prefix.size(), p.size() - prefix.size() - 7);
    if (!ctx.accounts.add_credit(id, *amount)) throw ConsoleError(404, "not_found_error", "no such account");
    auto a = ctx.accounts.find_account(id);
    return json_reply(200, json::object{{"id", a->id}, {"credit_usd", usd_or_null(a->credit)}});
  }
  throw ConsoleError(404, "not_found_error", "no such admin route");
}

}  // namespace

std::optional<api::WebResponse> dashboard_routes(Context& ctx) {
  const auto& p = ctx.req.path;
  if (auto r = key_routes(ctx)) return r;
  if (p == "/console/api/usage" && ctx.req.method == "GET") return usage(ctx, require_session(ctx));
  if (p == "/console/api/usage.csv" && ctx.req.method == "GET") return usage_csv(ctx, require_session(ctx));
  if (auto r = admin_routes(ctx)) return r;
  if (p.rfind("/console/api/keys", 0) == 0 || p.rfind("/console/api/usage", 0) == 0)
    throw ConsoleError(405, "invalid_request_error", "method not allowed");
  return std::nullopt;
}

}  // namespace v4::console
