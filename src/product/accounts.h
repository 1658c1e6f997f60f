#pragma once
// Accounts: API keys, admission (credit and rate limits), the metering ledger and usage reports.
// The seam the API layer uses:
//
//   auto accounts = v4::product::Accounts::open("v4flash.db");            // or "postgresql://..."
//   auto key = accounts->authenticate(bearer_or_x_api_key);               // nullopt -> 401
//   auto decision = accounts->admit(*key, {request_id, model, prompt_tokens, max_tokens, 0});
//   if (!decision.admitted()) -> decision.http_status (402 / 429 + Retry-After: decision.retry_after_s)
//   ... generate (stream, cancel, fail midway: all end here) ...
//   accounts->record({request_id, key->id, model, cached, uncached, output, reasoning, searches,
//                     "completed", started_ms, first_token_ms, ended_ms});   // exactly once per id
//
// All methods are thread-safe. Several processes may share one database (PostgreSQL, or SQLite on
// one host): credit, holds and rate-limit windows live in the database, not in process memory.
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "product/money.h"
#include "product/rate_card.h"

namespace v4::product {

class Store;

inline constexpr const char* kDefaultAccount = "default";  // owner of keys made without an account

struct KeyInfo {
  std::string id;    // public id, also embedded in the secret ("sk-v4f-<id>-<secret>")
  std::string name;
  std::optional<Nanodollars> credit;  // remaining credit; nullopt = unlimited
  Nanodollars spent = 0;              // total billed so far
  int64_t rpm_limit = 0;              // requests per minute, 0 = unlimited
  int64_t tpm_limit = 0;              // tokens (prompt + output) per minute, 0 = unlimited
  int64_t created_at_ms = 0;
  std::optional<int64_t> revoked_at_ms;
  std::string account_id = kDefaultAccount;
  std::optional<int64_t> last_used_at_ms;  // last admitted request
  bool internal = false;                   // the account's playground key: no usable secret
  bool revoked() const { return revoked_at_ms.has_value(); }
};

struct KeyOptions {
  std::string name;
  std::optional<Nanodollars> credit;  // nullopt = unlimited
  int64_t rpm_limit = 0;
  int64_t tpm_limit = 0;
  std::string account_id = kDefaultAccount;
};

struct NewKey {
  KeyInfo info;
  std::string secret;  // the full key; shown once, only its SHA-256 is stored
};

struct AdmissionRequest {
  std::string request_id;          // the id the ledger row will carry (unique per request)
  std::string model;               // model id as the client sent it
  int64_t prompt_tokens = 0;       // prompt size (upper bound of what will be billed as input)
  int64_t max_output_tokens = 0;   // the request's output cap (reasoning included)
  int64_t max_web_search_calls = 0;
  // A free request (token counting): it needs credit above zero and a place in the rpm window,
  // holds nothing and is settled at once (no record() follows).
  bool free_of_charge = false;
};

enum class Admission {
  admitted,
  insufficient_balance,  // 402: the key's credit is used up
  rate_limited,          // 429: rpm / tpm window full, or credit held by in-flight requests
  unknown_model,         // 400: no rate card for the model id
  key_revoked,           // 401: the key was revoked after authentication
  duplicate_request,     // 409: the request id was already admitted
};

struct AdmissionDecision {
  Admission outcome = Admission::admitted;
  int http_status = 200;     // 200, 400, 401, 402, 409 or 429
  int64_t retry_after_s = 0; // for 429: whole seconds until the window has room (>= 1)
  std::string limit;         // "credit", "rpm", "tpm", "credit_reserved", "model", "request_id"
  std::string message;       // human-readable reason for the error body
  Nanodollars hold = 0;      // credit reserved for this request until record()/release()
  bool admitted() const { return outcome == Admission::admitted; }
};

// One finished request. Status is free text chosen by the API ("completed", "length", "cancelled",
// "failed", ...); a request that fails or is cancelled midway is billed for what was generated.
struct LedgerEntry {
  std::string request_id;
  std::string key_id;
  std::string model;
  int64_t prompt_cached_tokens = 0;
  int64_t prompt_uncached_tokens = 0;
  int64_t output_tokens = 0;     // includes reasoning_tokens
  int64_t reasoning_tokens = 0;
  int64_t web_search_calls = 0;
  std::string status = "completed";
  int64_t started_at_ms = 0;
  int64_t first_token_at_ms = 0;  // 0 when no token was produced
  int64_t ended_at_ms = 0;
  std::string source = "api";  // "api" (an API key) or "playground" (the console)
};

struct RecordResult {
  bool inserted = false;  // false: a row with this request id already existed (nothing changed)
  Nanodollars cost = 0;   // cost of the (new or existing) row
};

struct UsageQuery {
  std::optional<std::string> key_id;
  std::optional<std::string> since_day;  // "YYYY-MM-DD" (UTC), inclusive
  std::optional<std::string> until_day;  // "YYYY-MM-DD" (UTC), inclusive
  std::optional<std::string> model;
  std::optional<std::string> account_id;  // the keys of one account
};

struct UsageTotals {
  int64_t requests = 0;
  int64_t input_tokens = 0;  // uncached prompt tokens
  int64_t cached_input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t reasoning_tokens = 0;
  int64_t web_search_calls = 0;
  Nanodollars cost = 0;
};

struct UsageRow {  // one (day, key, model) group
  std::string day;
  std::string key_id;
  std::string model;
  UsageTotals totals;
};

// A console account (email + password): owns keys, credit and, through its keys, ledger rows.
struct AccountInfo {
  std::string id;
  std::string email;
  bool admin = false;
  std::optional<Nanodollars> credit;  // nullopt = unlimited (the default account)
  int64_t created_at_ms = 0;
};

struct NewSession {
  std::string token;       // the cookie value; only its SHA-256 is stored
  std::string csrf_token;  // sent back by the page in X-CSRF-Token on every state change
  int64_t expires_at_ms = 0;
};

struct SessionInfo {
  std::string account_id;
  std::string csrf_token;
  int64_t expires_at_ms = 0;
};

struct SignInResult {
  enum Outcome { ok, bad_credentials, rate_limited } outcome = bad_credentials;
  int64_t retry_after_s = 0;  // rate_limited: seconds until another attempt is counted
  AccountInfo account;        // ok
  NewSession session;         // ok: a fresh session (never one the client presented)
};

// One ledger row as the console's request table shows it.
struct RequestRow {
  std::string request_id, key_id, key_name, model, status, source;
  int64_t ended_at_ms = 0;
  int64_t cached_tokens = 0, uncached_tokens = 0, output_tokens = 0, reasoning_tokens = 0, web_search_calls = 0;
  Nanodollars cost = 0;
};

class Accounts {
 public:
  // "postgresql://..." / "postgres://..." -> PostgreSQL (libpq), anything else is a SQLite file path
  // (created if missing). Applies pending schema migrations. Throws std::runtime_error on failure.
  static std::unique_ptr<Accounts> open(const std::string& db_url_or_path,
                                        RateCards rate_cards = RateCards::defaults());
  ~Accounts();
  Accounts(const Accounts&) = delete;
  Accounts& operator=(const Accounts&) = delete;

  // Keys.
  NewKey create_key(const KeyOptions& options);
  std::vector<KeyInfo> list_keys();
  std::optional<KeyInfo> find_key(const std::string& key_id);
  bool revoke_key(const std::string& key_id);                                   // false: no such key
  bool set_credit(const std::string& key_id, std::optional<Nanodollars> credit);  // nullopt = unlimited
  // The presented secret (Bearer token or x-api-key) -> the key, if it exists and is not revoked.
  std::optional<KeyInfo> authenticate(std::string_view presented_secret);

  // Keys that lost the right to run through this object (revoked, or their credit or their
  // account's balance at zero or below): `listener` gets their ids right after the change is
  // committed, outside any lock, so running requests stop at once. It returns false once its
  // subscriber is gone, and is then dropped. Changes made by other processes (the CLI, another
  // replica) are not seen here: the API polls for those.
  using KeyListener = std::function<bool(const std::vector<std::string>& key_ids)>;
  void watch_entitlements(KeyListener listener);

  // Admission: checks credit (402) and rpm/tpm sliding windows (429); on success reserves the
  // request's worst-case cost so parallel requests cannot overspend. Every admitted request must end
  // in record() (or release() if it is abandoned before producing anything billable).
  AdmissionDecision admit(const KeyInfo& key, const AdmissionRequest& request);
  void release(const std::string& request_id);

  // Writes the request's one immutable ledger row and charges its cost to the key's credit in the same
  // transaction; releases the admission hold. Idempotent by request id. Throws std::invalid_argument
  // for an unknown model or negative counts.
  RecordResult record(const LedgerEntry& entry);

  // Console accounts (accounts_console.cpp). Emails are case-folded; passwords are Argon2id hashes.
  // create_account throws std::invalid_argument for a malformed email, a short password or a taken email.
  AccountInfo create_account(const std::string& email, const std::string& password,
                             std::optional<Nanodollars> credit = 0, bool admin = false);
  std::optional<AccountInfo> find_account(const std::string& account_id);
  std::optional<AccountInfo> find_account_by_email(const std::string& email);
  std::vector<AccountInfo> list_accounts();
  // Adds to the account's credit (an unlimited account stays unlimited). False: no such account.
  bool add_credit(const std::string& account_id, Nanodollars amount);
  std::vector<KeyInfo> list_account_keys(const std::string& account_id);  // without the internal key
  // The account's playground key (created on first use): playground requests are billed through it.
  KeyInfo playground_key(const std::string& account_id);

  // Sign-in: at most kSignInFailures failed attempts per email and 4x that per client address in
  // kSignInWindowMs; beyond that, attempts are refused unchecked until the window has room.
  static constexpr int kSignInFailures = 5;
  static constexpr int64_t kSignInWindowMs = 15 * 60'000;
  SignInResult sign_in(const std::string& email, const std::string& password, const std::string& client);
  NewSession create_session(const std::string& account_id);
  std::optional<SessionInfo> find_session(const std::string& token);  // nullopt: unknown or expired
  void end_session(const std::string& token);
  static constexpr int64_t kSessionTtlMs = 7 * 24 * 3'600'000LL;

  // The newest ledger rows matching the query (at most `limit`), newest first.
  std::vector<RequestRow> recent_requests(const UsageQuery& query, int limit);

  // Reports.
  UsageTotals usage_totals(const UsageQuery& query);
  std::vector<UsageRow> usage_rows(const UsageQuery& query);  // grouped per day, key and model
  // {"requests": N, "cost_usd": ..., "by_model": {"<id>": {"requests", "input_tokens",
  //  "cached_input_tokens", "output_tokens", "reasoning_tokens", "web_search_calls", "cost_usd"}}}
  std::string usage_json(const UsageQuery& query);
  // GET /v1/usage: {"object": "list", "data": [{"date", "model", "requests", "input_tokens",
  //  "cached_input_tokens", "cached_share", "output_tokens", "reasoning_tokens", "web_search_calls",
  //  "cost_usd"}...], "total_cost_usd": ...} for one key.
  std::string daily_usage_json(const std::string& key_id, const UsageQuery& filters = {});

  const RateCards& rate_cards() const { return rate_cards_; }
  std::string backend() const;  // "sqlite" or "postgresql"

  // Credit held by an admitted request that never reaches record() (its process died) stops
  // counting after this long. Default one hour.
  void set_hold_ttl_ms(int64_t ttl_ms) { hold_ttl_ms_ = ttl_ms; }

  // Test hook: the clock used for rate-limit windows and timestamps (milliseconds since the epoch).
  void set_clock_for_testing(int64_t (*now_ms)());

 private:
  Accounts(std::unique_ptr<Store> store, RateCards rate_cards);
  int64_t now_ms() const;
  std::optional<AccountInfo> account_where(const std::string& column, const std::string& value);
  std::vector<std::string> account_key_ids(const std::string& account_id);  // under mutex_
  std::vector<std::string> exhausted_keys(const std::string& key_id);        // under mutex_
  void entitlements_lost(const std::vector<std::string>& key_ids);         // not under mutex_

  std::mutex mutex_;  // one connection per Accounts: serialise its use
  std::unique_ptr<Store> store_;
  RateCards rate_cards_;
  int64_t (*clock_)() = nullptr;
  int64_t hold_ttl_ms_ = 3'600'000;
  std::mutex listeners_mutex_;
  std::vector<std::shared_ptr<const KeyListener>> listeners_;
};

}  // namespace v4::product
