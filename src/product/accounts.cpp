// Accounts: keys, admission, ledger and reports over one Store (SQLite or PostgreSQL).
#include "product/accounts.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <boost/json.hpp>
#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>
#include <stdexcept>

#include "product/schema.h"
#include "product/secrets.h"
#include "product/store.h"

namespace v4::product {
namespace {

constexpr std::string_view kKeyPrefix = "sk-v4f-";
constexpr size_t kKeyIdBytes = 6;       // 12 hex characters, public
constexpr size_t kSecretBytes = 24;     // 192 random bits
constexpr int64_t kWindowMs = 60'000;   // rate-limit sliding window
constexpr int64_t kAdmissionKeepMs = 3'600'000;  // settled admissions are pruned after this

std::string hex(const unsigned char* data, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 15];
  }
  return out;
}

}  // namespace

std::string random_hex(size_t bytes) {
  std::vector<unsigned char> buf(bytes);
  if (RAND_bytes(buf.data(), int(bytes)) != 1) throw std::runtime_error("OpenSSL RAND_bytes failed");
  return hex(buf.data(), bytes);
}

std::string sha256_hex(std::string_view text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return hex(digest, sizeof digest);
}

namespace {

bool is_hex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string utc_day(int64_t ms) {
  std::time_t t = std::time_t(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
  return buf;
}

void check_day(const std::optional<std::string>& day, const char* what) {
  if (!day) return;
  const std::string& d = *day;
  bool ok = d.size() == 10 && d[4] == '-' && d[7] == '-';
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) ok = ok && i < d.size() && d[i] >= '0' && d[i] <= '9';
  if (!ok) throw std::invalid_argument(std::string(what) + " must be YYYY-MM-DD, got '" + d + "'");
}

const char* kKeyColumns =
    "id, name, credit_nano, spent_nano, rpm_limit, tpm_limit, created_at_ms, revoked_at_ms, account_id, "
    "last_used_at_ms, internal";

KeyInfo key_from_row(const SqlRow& r) {
  KeyInfo k;
  k.id = r.text(0);
  k.name = r.text(1);
  if (!r.is_null(2)) k.credit = r.integer(2);
  k.spent = r.integer(3);
  k.rpm_limit = r.integer(4);
  k.tpm_limit = r.integer(5);
  k.created_at_ms = r.integer(6);
  if (!r.is_null(7)) k.revoked_at_ms = r.integer(7);
  k.account_id = r.text(8);
  if (!r.is_null(9)) k.last_used_at_ms = r.integer(9);
  k.internal = r.integer(10) != 0;
  return k;
}

std::string json_string(std::string_view s) { return boost::json::serialize(boost::json::value(boost::json::string(s))); }

AdmissionDecision reject(Admission outcome, int status, std::string limit, std::string message,
                         int64_t retry_after_s = 0) {
  AdmissionDecision d;
  d.outcome = outcome;
  d.http_status = status;
  d.limit = std::move(limit);
  d.message = std::move(message);
  d.retry_after_s = retry_after_s;
  return d;
}

int64_t ceil_seconds(int64_t ms) { return std::max<int64_t>(1, (ms + 999) / 1000); }

}  // namespace

std::unique_ptr<Accounts> Accounts::open(const std::string& db_url_or_path, RateCards rate_cards) {
  auto store = Store::open(db_url_or_path);
  migrate(*store);
  return std::unique_ptr<Accounts>(new Accounts(std::move(store), std::move(rate_cards)));
}

Accounts::Accounts(std::unique_ptr<Store> store, RateCards rate_cards)
    : store_(std::move(store)), rate_cards_(std::move(rate_cards)) {}

Accounts::~Accounts() = default;

std::string Accounts::backend() const { return store_->dialect() == Dialect::sqlite ? "sqlite" : "postgresql"; }

void Accounts::set_clock_for_testing(int64_t (*now_ms)()) { clock_ = now_ms; }

int64_t Accounts::now_ms() const {
  if (clock_) return clock_();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------- keys

NewKey Accounts::create_key(const KeyOptions& options) {
  if (options.rpm_limit < 0 || options.tpm_limit < 0) throw std::invalid_argument("limits must not be negative");
  std::lock_guard lock(mutex_);
  NewKey created;
  created.info.name = options.name;
  created.info.account_id = options.account_id;
  created.info.credit = options.credit;
  created.info.rpm_limit = options.rpm_limit;
  created.info.tpm_limit = options.tpm_limit;
  created.info.created_at_ms = now_ms();
  for (int attempt = 0;; ++attempt) {  // a 48-bit id collision is unlikely; retry it anyway
    created.info.id = random_hex(kKeyIdBytes);
    created.secret = std::string(kKeyPrefix) + created.info.id + "-" + random_hex(kSecretBytes);
    SqlValue credit;  // NULL = unlimited
    if (options.credit) credit = *options.credit;
    int64_t inserted = run_transaction(*store_, [&] {
      if (store_->query("SELECT id FROM accounts WHERE id = ?", {options.account_id}).empty())
        throw std::invalid_argument("no account '" + options.account_id + "'");
      return store_->exec(
          "INSERT INTO api_keys (id, name, secret_sha256, created_at_ms, credit_nano, rpm_limit, tpm_limit, account_id) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
          {created.info.id, options.name, sha256_hex(created.secret), created.info.created_at_ms, credit,
           options.rpm_limit, options.tpm_limit, options.account_id});
    });
    if (inserted == 1) return created;
    if (attempt > 5) throw std::runtime_error("could not allocate a unique key id");
  }
}

std::vector<KeyInfo> Accounts::list_keys() {
  std::lock_guard lock(mutex_);
  std::vector<KeyInfo> keys;
  for (const auto& r : store_->query(std::string("SELECT ") + kKeyColumns + " FROM api_keys ORDER BY created_at_ms, id"))
    keys.push_back(key_from_row(r));
  return keys;
}

std::optional<KeyInfo> Accounts::find_key(const std::string& key_id) {
  std::lock_guard lock(mutex_);
  auto rows = store_->query(std::string("SELECT ") + kKeyColumns + " FROM api_keys WHERE id = ?", {key_id});
  if (rows.empty()) return std::nullopt;
  return key_from_row(rows[0]);
}

bool Accounts::revoke_key(const std::string& key_id) {
  bool found;
  {
    std::lock_guard lock(mutex_);
    int64_t now = now_ms();
    found = run_transaction(*store_, [&] {
      // Revoking twice keeps the first time.
      store_->exec("UPDATE api_keys SET revoked_at_ms = ? WHERE id = ? AND revoked_at_ms IS NULL", {now, key_id});
      return !store_->query("SELECT id FROM api_keys WHERE id = ?", {key_id}).empty();
    });
  }
  if (found) entitlements_lost({key_id});
  return found;
}

bool Accounts::set_credit(const std::string& key_id, std::optional<Nanodollars> credit) {
  bool found;
  {
    std::lock_guard lock(mutex_);
    SqlValue value;  // NULL = unlimited
    if (credit) value = *credit;
    found = run_transaction(*store_, [&] {
      return store_->exec("UPDATE api_keys SET credit_nano = ? WHERE id = ?", {value, key_id}) == 1;
    });
  }
  if (found && credit && *credit <= 0) entitlements_lost({key_id});
  return found;
}

void Accounts::watch_entitlements(KeyListener listener) {
  std::lock_guard lock(listeners_mutex_);
  listeners_.push_back(std::make_shared<const KeyListener>(std::move(listener)));
}

void Accounts::entitlements_lost(const std::vector<std::string>& key_ids) {
  if (key_ids.empty()) return;
  std::vector<std::shared_ptr<const KeyListener>> listeners;
  {
    std::lock_guard lock(listeners_mutex_);
    listeners = listeners_;
  }
  std::vector<std::shared_ptr<const KeyListener>> gone;
  for (auto& l : listeners)
    if (!(*l)(key_ids)) gone.push_back(l);
  if (gone.empty()) return;
  std::lock_guard lock(listeners_mutex_);
  std::erase_if(listeners_, [&](const auto& l) { return std::find(gone.begin(), gone.end(), l) != gone.end(); });
}

std::vector<std::string> Accounts::account_key_ids(const std::string& account_id) {
  std::vector<std::string> ids;
  for (const auto& r : store_->query("SELECT id FROM api_keys WHERE account_id = ?", {account_id}))
    ids.push_back(r.text(0));
  return ids;
}

std::optional<KeyInfo> Accounts::authenticate(std::string_view presented) {
  // "sk-v4f-<12 hex id>-<48 hex secret>"; the id selects the row, the hash decides.
  if (presented.size() != kKeyPrefix.size() + 2 * kKeyIdBytes + 1 + 2 * kSecretBytes) return std::nullopt;
  if (presented.substr(0, kKeyPrefix.size()) != kKeyPrefix) return std::nullopt;
  std::string_view id = presented.substr(kKeyPrefix.size(), 2 * kKeyIdBytes);
  if (!is_hex(id) || presented[kKeyPrefix.size() + id.size()] != '-') return std::nullopt;
  std::string presented_hash = sha256_hex(presented);
  std::lock_guard lock(mutex_);
  auto rows = store_->query(std::string("SELECT ") + kKeyColumns + ", secret_sha256 FROM api_keys WHERE id = ?",
                            {std::string(id)});
  if (rows.empty()) return std::nullopt;
  std::string stored = rows[0].text(11);
  if (stored.size() != presented_hash.size() ||
      CRYPTO_memcmp(stored.data(), presented_hash.data(), stored.size()) != 0)
    return std::nullopt;
  KeyInfo key = key_from_row(rows[0]);
  if (key.revoked()) return std::nullopt;
  return key;
}

// ---------------------------------------------------------------- admission

AdmissionDecision Accounts::admit(const KeyInfo& key, const AdmissionRequest& request) {
  const RateCard* card = rate_cards_.find(request.model);
  if (!card)
    return reject(Admission::unknown_model, 400, "model", "The model '" + request.model + "' does not exist");
  if (request.request_id.empty()) throw std::invalid_argument("admission needs a request id");
  if (request.prompt_tokens < 0 || request.max_output_tokens < 0 || request.max_web_search_calls < 0)
    throw std::invalid_argument("admission estimates must not be negative");
  // Worst case: every prompt token uncached, the whole output budget used.
  Nanodollars hold = request.free_of_charge ? 0
                     : cost_of(*card, {0, request.prompt_tokens, request.max_output_tokens, request.max_web_search_calls});

  std::lock_guard lock(mutex_);
  const bool postgres = store_->dialect() == Dialect::postgresql;
  return run_transaction(*store_, [&]() -> AdmissionDecision {
    int64_t now = now_ms();
    // Lock the key row (SQLite: BEGIN IMMEDIATE already holds the write lock) so concurrent
    // admissions of one key see each other's holds.
    auto rows = store_->query(std::string("SELECT credit_nano, revoked_at_ms, rpm_limit, tpm_limit, account_id FROM api_keys "
                                          "WHERE id = ?") + (postgres ? " FOR UPDATE" : ""),
                              {key.id});
    if (rows.empty() || !rows[0].is_null(1))
      return reject(Admission::key_revoked, 401, "key", "The API key is revoked or unknown");
    std::optional<Nanodollars> credit;
    if (!rows[0].is_null(0)) credit = rows[0].integer(0);
    int64_t rpm = rows[0].integer(2), tpm = rows[0].integer(3);
    const std::string account_id = rows[0].text(4);
    // The account's balance (nullopt = unlimited) is locked with it: all its keys draw on it.
    auto account = store_->query(std::string("SELECT credit_nano FROM accounts WHERE id = ?") + (postgres ? " FOR UPDATE" : ""),
                                 {account_id});
    std::optional<Nanodollars> balance;
    if (!account.empty() && !account[0].is_null(0)) balance = account[0].integer(0);

    if ((credit && *credit <= 0) || (balance && *balance <= 0))
      return reject(Admission::insufficient_balance, 402, "credit", "Insufficient Balance");
    // The worst case must be covered: a request may never take the balance below zero.
    if (credit && *credit < hold)
      return reject(Admission::insufficient_balance, 402, "credit",
                    "Insufficient Balance: this request may cost up to $" + format_usd(hold) +
                        " (its prompt uncached plus max_tokens of output), the balance is $" + format_usd(*credit) +
                        "; lower max_tokens or add credit");
    if (balance && *balance < hold)
      return reject(Admission::insufficient_balance, 402, "credit",
                    "Insufficient Balance: this request may cost up to $" + format_usd(hold) +
                        " (its prompt uncached plus max_tokens of output), the account's balance is $" +
                        format_usd(*balance) + "; lower max_tokens or add credit");

    store_->exec("DELETE FROM admissions WHERE key_id = ? AND admitted_at_ms < ? AND (settled = 1 OR admitted_at_ms < ?)",
                 {key.id, now - kAdmissionKeepMs, now - hold_ttl_ms_});
    if (!store_->query("SELECT request_id FROM admissions WHERE request_id = ?", {request.request_id}).empty() ||
        !store_->query("SELECT request_id FROM ledger WHERE request_id = ?", {request.request_id}).empty())
      return reject(Admission::duplicate_request, 409, "request_id",
                    "Request id '" + request.request_id + "' was already used");

    if (balance) {
      auto held = store_->query(
          "SELECT COALESCE(SUM(hold_nano), 0) FROM admissions WHERE settled = 0 AND admitted_at_ms >= ? AND key_id IN "
          "(SELECT id FROM api_keys WHERE account_id = ?)",
          {now - hold_ttl_ms_, account_id});
      if (*balance - held[0].integer(0) < hold)
        return reject(Admission::rate_limited, 429, "credit_reserved",
                      "The account's remaining credit is reserved by requests in progress; retry when they finish", 1);
    }
    if (credit) {
      auto held = store_->query(
          "SELECT COALESCE(SUM(hold_nano), 0) FROM admissions WHERE key_id = ? AND settled = 0 AND admitted_at_ms >= ?",
          {key.id, now - hold_ttl_ms_});
      Nanodollars in_flight = held[0].integer(0);
      if (*credit - in_flight < hold)
        return reject(Admission::rate_limited, 429, "credit_reserved",
                      "The remaining credit is reserved by requests in progress; retry when they finish", 1);
    }

    if (rpm > 0 || tpm > 0) {
      auto window = store_->query(
          "SELECT admitted_at_ms, tokens FROM admissions WHERE key_id = ? AND admitted_at_ms > ? "
          "ORDER BY admitted_at_ms",
          {key.id, now - kWindowMs});
      if (rpm > 0 && int64_t(window.size()) >= rpm) {
        // The window has room once the oldest (size - rpm + 1) entries have left it.
        int64_t frees_at = window[window.size() - size_t(rpm)].integer(0) + kWindowMs;
        return reject(Admission::rate_limited, 429, "rpm",
                      "Rate limit reached: " + std::to_string(rpm) + " requests per minute",
                      ceil_seconds(frees_at - now));
      }
      if (tpm > 0 && !request.free_of_charge) {
        int64_t used = 0;
        for (const auto& r : window) used += r.integer(1);
        if (used + request.prompt_tokens > tpm) {
          if (request.prompt_tokens > tpm)
            return reject(Admission::rate_limited, 429, "tpm",
                          "The request's " + std::to_string(request.prompt_tokens) +
                              " prompt tokens exceed the limit of " + std::to_string(tpm) + " tokens per minute",
                          60);
          int64_t frees_at = now + kWindowMs;
          for (const auto& r : window) {  // oldest first: drop until the request fits
            used -= r.integer(1);
            if (used + request.prompt_tokens <= tpm) {
              frees_at = r.integer(0) + kWindowMs;
              break;
            }
          }
          return reject(Admission::rate_limited, 429, "tpm",
                        "Rate limit reached: " + std::to_string(tpm) + " tokens per minute",
                        ceil_seconds(frees_at - now));
        }
      }
    }

    store_->exec("INSERT INTO admissions (request_id, key_id, admitted_at_ms, tokens, hold_nano, settled) "
                 "VALUES (?, ?, ?, ?, ?, ?)",
                 {request.request_id, key.id, now, request.free_of_charge ? int64_t(0) : request.prompt_tokens,
                  credit || balance ? hold : int64_t(0), int64_t(request.free_of_charge ? 1 : 0)});
    store_->exec("UPDATE api_keys SET last_used_at_ms = ? WHERE id = ?", {now, key.id});
    AdmissionDecision ok;
    ok.hold = credit || balance ? hold : 0;
    return ok;
  });
}

void Accounts::release(const std::string& request_id) {
  std::lock_guard lock(mutex_);
  run_transaction(*store_, [&] {
    store_->exec("DELETE FROM admissions WHERE request_id = ? AND settled = 0", {request_id});
  });
}

// ---------------------------------------------------------------- ledger

RecordResult Accounts::record(const LedgerEntry& e) {
  const RateCard* card = rate_cards_.find(e.model);
  if (!card) throw std::invalid_argument("no rate card for model '" + e.model + "'");
  if (e.request_id.empty() || e.key_id.empty()) throw std::invalid_argument("ledger entry needs request and key ids");
  if (e.source != "api" && e.source != "playground")
    throw std::invalid_argument("ledger source must be api or playground, got '" + e.source + "'");
  if (e.reasoning_tokens < 0 || e.reasoning_tokens > e.output_tokens)
    throw std::invalid_argument("reasoning tokens must be between 0 and the output tokens");
  Nanodollars cost = cost_of(*card, {e.prompt_cached_tokens, e.prompt_uncached_tokens, e.output_tokens, e.web_search_calls});
  int64_t total_tokens = checked_add(checked_add(e.prompt_cached_tokens, e.prompt_uncached_tokens), e.output_tokens);

  std::vector<std::string> exhausted;  // keys whose credit (or account's) this charge used up
  RecordResult result;
  {
    std::lock_guard lock(mutex_);
    int64_t now = now_ms();
    int64_t ended = e.ended_at_ms ? e.ended_at_ms : now;
    result = run_transaction(*store_, [&]() -> RecordResult {
      exhausted.clear();
      int64_t inserted = store_->exec(
          "INSERT INTO ledger (request_id, key_id, model, day, prompt_cached_tokens, prompt_uncached_tokens, "
          "output_tokens, reasoning_tokens, web_search_calls, input_rate_nano, cached_input_rate_nano, "
          "output_rate_nano, web_search_rate_nano, cost_nano, status, started_at_ms, first_token_at_ms, ended_at_ms, "
          "recorded_at_ms, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
          "ON CONFLICT (request_id) DO NOTHING",
          {e.request_id, e.key_id, e.model, utc_day(ended), e.prompt_cached_tokens, e.prompt_uncached_tokens,
           e.output_tokens, e.reasoning_tokens, e.web_search_calls, card->input_per_token,
           card->cached_input_per_token, card->output_per_token, card->web_search_per_call, cost, e.status,
           e.started_at_ms, e.first_token_at_ms, ended, now, e.source});
      if (inserted == 0) {  // already recorded: report the stored row, change nothing
        auto rows = store_->query("SELECT cost_nano FROM ledger WHERE request_id = ?", {e.request_id});
        return {false, rows.at(0).integer(0)};
      }
      store_->exec(
          "UPDATE api_keys SET spent_nano = spent_nano + ?, "
          "credit_nano = CASE WHEN credit_nano IS NULL THEN NULL ELSE credit_nano - ? END WHERE id = ?",
          {cost, cost, e.key_id});
      store_->exec(
          "UPDATE accounts SET credit_nano = credit_nano - ? WHERE credit_nano IS NOT NULL AND "
          "id = (SELECT account_id FROM api_keys WHERE id = ?)",
          {cost, e.key_id});
      // Settle the admission: its hold ends and the window now counts the real tokens.
      store_->exec("UPDATE admissions SET hold_nano = 0, settled = 1, tokens = ? WHERE request_id = ?",
                   {total_tokens, e.request_id});
      if (cost > 0) exhausted = exhausted_keys(e.key_id);
      return {true, cost};
    });
  }
  entitlements_lost(exhausted);
  return result;
}

// After a charge to `key_id`: the key itself if its credit is used up, every key of its account if
// the account's balance is.
std::vector<std::string> Accounts::exhausted_keys(const std::string& key_id) {
  auto rows = store_->query(
      "SELECT k.credit_nano, a.credit_nano, k.account_id FROM api_keys k LEFT JOIN accounts a ON a.id = k.account_id "
      "WHERE k.id = ?",
      {key_id});
  if (rows.empty()) return {};
  if (!rows[0].is_null(1) && rows[0].integer(1) <= 0) return account_key_ids(rows[0].text(2));
  if (!rows[0].is_null(0) && rows[0].integer(0) <= 0) return {key_id};
  return {};
}

// ---------------------------------------------------------------- reports

std::vector<UsageRow> Accounts::usage_rows(const UsageQuery& q) {
  check_day(q.since_day, "since");
  check_day(q.until_day, "until");
  std::string sql =
      "SELECT day, key_id, model, COUNT(*), SUM(prompt_uncached_tokens), SUM(prompt_cached_tokens), "
      "SUM(output_tokens), SUM(reasoning_tokens), SUM(web_search_calls), SUM(cost_nano) FROM ledger WHERE 1 = 1";
  std::vector<SqlValue> params;
  if (q.key_id) sql += " AND key_id = ?", params.emplace_back(*q.key_id);
  if (q.account_id)
    sql += " AND key_id IN (SELECT id FROM api_keys WHERE account_id = ?)", params.emplace_back(*q.account_id);
  if (q.since_day) sql += " AND day >= ?", params.emplace_back(*q.since_day);
  if (q.until_day) sql += " AND day <= ?", params.emplace_back(*q.until_day);
  if (q.model) sql += " AND model = ?", params.emplace_back(*q.model);
  sql += " GROUP BY day, key_id, model ORDER BY day, key_id, model";
  std::lock_guard lock(mutex_);
  std::vector<UsageRow> out;
  for (const auto& r : store_->query(sql, params)) {
    UsageRow row;
    row.day = r.text(0);
    row.key_id = r.text(1);
    row.model = r.text(2);
    row.totals = {r.integer(3), r.integer(4), r.integer(5), r.integer(6), r.integer(7), r.integer(8), r.integer(9)};
    out.push_back(std::move(row));
  }
  return out;
}

namespace {
void accumulate(UsageTotals& into, const UsageTotals& add) {
  into.requests += add.requests;
  into.input_tokens += add.input_tokens;
  into.cached_input_tokens += add.cached_input_tokens;
  into.output_tokens += add.output_tokens;
  into.reasoning_tokens += add.reasoning_tokens;
  into.web_search_calls += add.web_search_calls;
  into.cost = checked_add(into.cost, add.cost);
}

std::string totals_fields(const UsageTotals& t) {
  return "\"requests\": " + std::to_string(t.requests) + ", \"input_tokens\": " + std::to_string(t.input_tokens) +
         ", \"cached_input_tokens\": " + std::to_string(t.cached_input_tokens) +
         ", \"output_tokens\": " + std::to_string(t.output_tokens) +
         ", \"reasoning_tokens\": " + std::to_string(t.reasoning_tokens) +
         ", \"web_search_calls\": " + std::to_string(t.web_search_calls) + ", \"cost_usd\": " + format_usd(t.cost) +
         ", \"cost_nano_usd\": " + std::to_string(t.cost);
}

// Share of prompt tokens served from the cache, as an exact decimal with 4 places.
std::string cached_share(const UsageTotals& t) {
  int64_t prompt = t.input_tokens + t.cached_input_tokens;
  if (prompt == 0) return "0";
  int64_t per_ten_thousand = (t.cached_input_tokens * 10000 + prompt / 2) / prompt;
  std::string s = std::to_string(per_ten_thousand / 10000) + "." + std::to_string(10000 + per_ten_thousand % 10000).substr(1);
  return s;
}
}  // namespace

UsageTotals Accounts::usage_totals(const UsageQuery& q) {
  UsageTotals total;
  for (const auto& row : usage_rows(q)) accumulate(total, row.totals);
  return total;
}

std::string Accounts::usage_json(const UsageQuery& q) {
  std::map<std::string, UsageTotals> by_model;
  UsageTotals total;
  for (const auto& row : usage_rows(q)) {
    accumulate(by_model[row.model], row.totals);
    accumulate(total, row.totals);
  }
  std::string out = "{" + totals_fields(total) + ", \"by_model\": {";
  bool first = true;
  for (const auto& [model, t] : by_model) {
    out += (first ? "" : ", ") + json_string(model) + ": {" + totals_fields(t) + "}";
    first = false;
  }
  return out + "}}";
}

std::string Accounts::daily_usage_json(const std::string& key_id, const UsageQuery& filters) {
  UsageQuery q = filters;
  q.key_id = key_id;
  std::map<std::pair<std::string, std::string>, UsageTotals> groups;  // (day, model)
  UsageTotals total;
  for (const auto& row : usage_rows(q)) {
    accumulate(groups[{row.day, row.model}], row.totals);
    accumulate(total, row.totals);
  }
  std::string out = "{\"object\": \"list\", \"key_id\": " + json_string(key_id) + ", \"data\": [";
  bool first = true;
  for (const auto& [group, t] : groups) {
    out += std::string(first ? "" : ", ") + "{\"date\": " + json_string(group.first) + ", \"model\": " +
           json_string(group.second) + ", " + totals_fields(t) + ", \"cached_share\": " + cached_share(t) + "}";
    first = false;
  }
  return out + "], \"total\": {" + totals_fields(total) + ", \"cached_share\": " + cached_share(total) + "}}";
}

}  // namespace v4::product
