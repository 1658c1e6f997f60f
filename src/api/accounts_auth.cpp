#include "api/accounts_auth.h"

#include <spdlog/spdlog.h>

namespace v4::api {

namespace {
constexpr const char* kOperator = "static";

// The key's own credit and its account's balance (all the account's keys draw on it): either used
// up refuses a request before its body, and stops one that runs.
bool has_credit(product::Accounts& accounts, const product::KeyInfo& key) {
  if (key.credit && *key.credit <= 0) return false;
  auto account = accounts.find_account(key.account_id);
  return !account || !account->credit || *account->credit > 0;
}
}  // namespace

AccountsGate::AccountsGate(std::shared_ptr<product::Accounts> accounts, std::vector<std::string> static_keys)
    : accounts_(std::move(accounts)), static_(static_keys), has_static_(!static_keys.empty()) {}

Principal AccountsGate::authenticate(const std::string& secret) {
  if (secret.empty())
    throw ApiError(401, "authentication_error",
                   "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'", "", "missing_api_key");
  if (has_static_) {
    try {
      return static_.authenticate(secret);
    } catch (const ApiError&) {
      // not the operator key: try the managed keys
    }
  }
  auto key = accounts_->authenticate(secret);
  if (!key) throw ApiError(401, "authentication_error", "invalid API key", "", "invalid_api_key");
  Principal who{key->id};
  who.account = key->account_id;
  return who;
}

void AccountsGate::admit(const Principal& who, const AdmissionInfo& info) {
  if (who.is_operator) return;
  auto key = accounts_->find_key(who.key_id);
  if (!key || key->revoked()) throw ApiError(401, "authentication_error", "the API key was revoked", "", "invalid_api_key");
  product::AdmissionRequest request{info.request_id, info.model, info.prompt_tokens, info.max_output_tokens,
                                    info.web_search_calls};
  request.free_of_charge = info.free_of_charge;
  auto d = accounts_->admit(*key, request);
  if (d.admitted()) return;
  std::string type = d.http_status == 402 ? "insufficient_balance"
                     : d.http_status == 429 ? "rate_limit_error"
                     : d.http_status == 401 ? "authentication_error"
                                            : "invalid_request_error";
  ApiError e(d.http_status, type, d.message.empty() ? "request refused" : d.message, "", d.limit);
  e.retry_after_s = int(d.retry_after_s);
  throw e;
}

void AccountsGate::precheck(const Principal& who) {
  if (who.is_operator) return;
  auto key = accounts_->find_key(who.key_id);
  if (!key || key->revoked()) throw ApiError(401, "authentication_error", "the API key was revoked", "", "invalid_api_key");
  if (!has_credit(*accounts_, *key)) throw ApiError(402, "insufficient_balance", "Insufficient Balance", "", "credit");
}

bool AccountsGate::entitled(const Principal& who) {
  if (who.is_operator) return true;
  try {
    auto key = accounts_->find_key(who.key_id);
    return key && !key->revoked() && has_credit(*accounts_, *key);
  } catch (const std::exception& e) {
    spdlog::warn("ledger: entitlement check of {} failed: {}", who.key_id, e.what());
    return true;  // a database hiccup does not stop paid work; admission already reserved its cost
  }
}

void AccountsGate::watch_entitlements(std::function<bool(const std::vector<std::string>& key_ids)> lost) {
  accounts_->watch_entitlements(std::move(lost));
}

std::optional<std::string> AccountsGate::usage_report(const Principal& who) {
  if (who.is_operator) return accounts_->usage_json({});
  return accounts_->daily_usage_json(who.key_id);
}

void AccountsGate::record(const UsageRecord& r) {
  if (r.key_id == kOperator || r.key_id.empty()) return;
  try {
    if (r.status == "overloaded" || r.status == "refused") {  // admitted, then refused by the engine: nothing to bill
      accounts_->release(r.request_id);
      return;
    }
    product::LedgerEntry e;
    e.request_id = r.request_id;
    e.key_id = r.key_id;
    e.model = r.model;
    e.prompt_cached_tokens = r.usage.cached_tokens;
    e.prompt_uncached_tokens = r.usage.prompt_tokens - r.usage.cached_tokens;
    e.output_tokens = r.usage.completion_tokens;
    e.reasoning_tokens = r.usage.reasoning_tokens;
    e.web_search_calls = r.web_search_calls;
    e.status = r.status;
    e.source = r.source;
    e.started_at_ms = r.started_at_ms;
    e.first_token_at_ms = r.first_token_at_ms;
    e.ended_at_ms = r.ended_at_ms;
    accounts_->record(e);
  } catch (const std::exception& ex) {
    spdlog::error("ledger: could not record {}: {}", r.request_id, ex.what());
  }
}

}  // namespace v4::api
