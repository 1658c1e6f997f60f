// Console accounts: email + password accounts that own keys and credit, server-side sessions and
// sign-in throttling, and the request list the dashboard shows. All state lives in the Store.
#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "product/accounts.h"
#include "product/secrets.h"
#include "product/store.h"

namespace v4::product {
namespace {

constexpr size_t kAccountIdBytes = 8;
constexpr size_t kSessionBytes = 32;  // 256-bit cookie
constexpr size_t kCsrfBytes = 32;
constexpr size_t kMinPassword = 8;
constexpr size_t kMaxPassword = 1024;
constexpr const char* kAccountColumns = "id, email, is_admin, credit_nano, created_at_ms";

AccountInfo account_from_row(const SqlRow& r) {
  AccountInfo a;
  a.id = r.text(0);
  a.email = r.text(1);
  a.admin = r.integer(2) != 0;
  if (!r.is_null(3)) a.credit = r.integer(3);
  a.created_at_ms = r.integer(4);
  return a;
}

std::string fold_email(const std::string& email) {
  std::string e = email;
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return e;
}

void check_email(const std::string& e) {
  auto at = e.find('@');
  bool ok = e.size() >= 3 && e.size() <= 254 && at != std::string::npos && at > 0 && at + 1 < e.size() &&
            e.find('@', at + 1) == std::string::npos;
  for (unsigned char c : e) ok = ok && c > ' ' && c < 0x7f;
  if (!ok) throw std::invalid_argument("email: not a valid address");
}

// A real hash to verify against when the email is unknown, so both cases take the same time.
const std::string& decoy_hash() {
  static const std::string h = hash_password(random_hex(16));
  return h;
}

}  // namespace

AccountInfo Accounts::create_account(const std::string& email_in, const std::string& password,
                                     std::optional<Nanodollars> credit, bool admin) {
  std::string email = fold_email(email_in);
  check_email(email);
  if (password.size() < kMinPassword) throw std::invalid_argument("password: at least 8 characters");
  if (password.size() > kMaxPassword) throw std::invalid_argument("password: at most 1024 characters");
  if (credit && *credit < 0) throw std::invalid_argument("credit must not be negative");
  AccountInfo a;
  a.id = "acct_" + random_hex(kAccountIdBytes);
  a.email = email;
  a.admin = admin;
  a.credit = credit;
  a.created_at_ms = now_ms();
  std::string hash = hash_password(password);  // slow on purpose: outside the lock
  SqlValue c;
  if (credit) c = *credit;
  std::lock_guard lock(mutex_);
  int64_t inserted = run_transaction(*store_, [&] {
    return store_->exec(
        "INSERT INTO accounts (id, email, password_hash, is_admin, credit_nano, created_at_ms) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (email) DO NOTHING",
        {a.id, email, hash, int64_t(admin ? 1 : 0), c, a.created_at_ms});
  });
  if (inserted != 1) throw std::invalid_argument("email: an account with this email already exists");
  return a;
}

std::optional<AccountInfo> Accounts::account_where(const std::string& column, const std::string& value) {
  std::lock_guard lock(mutex_);
  auto rows = store_->query(std::string("SELECT ") + kAccountColumns + " FROM accounts WHERE " + column + " = ?", {value});
  if (rows.empty()) return std::nullopt;
  return account_from_row(rows[0]);
}

std::optional<AccountInfo> Accounts::find_account(const std::string& id) { return account_where("id", id); }
std::optional<AccountInfo> Accounts::find_account_by_email(const std::string& email) {
  return account_where("email", fold_email(email));
}

std::vector<AccountInfo> Accounts::list_accounts() {
  std::lock_guard lock(mutex_);
  std::vector<AccountInfo> out;
  for (const auto& r : store_->query(std::string("SELECT ") + kAccountColumns + " FROM accounts ORDER BY created_at_ms, id"))
    out.push_back(account_from_row(r));
  return out;
}

bool Accounts::add_credit(const std::string& account_id, Nanodollars amount) {
  std::vector<std::string> exhausted;  // a negative amount may use the balance up
  bool found;
  {
    std::lock_guard lock(mutex_);
    found = run_transaction(*store_, [&] {
      exhausted.clear();
      auto rows = store_->query("SELECT credit_nano FROM accounts WHERE id = ?", {account_id});
      if (rows.empty()) return false;
      if (rows[0].is_null(0)) return true;  // unlimited stays unlimited
      int64_t next = checked_add(rows[0].integer(0), amount);
      store_->exec("UPDATE accounts SET credit_nano = ? WHERE id = ?", {next, account_id});
      if (next <= 0) exhausted = account_key_ids(account_id);
      return true;
    });
  }
  entitlements_lost(exhausted);
  return found;
}

std::vector<KeyInfo> Accounts::list_account_keys(const std::string& account_id) {
  std::vector<KeyInfo> out;
  for (auto& k : list_keys())
    if (k.account_id == account_id && !k.internal) out.push_back(std::move(k));
  return out;
}

KeyInfo Accounts::playground_key(const std::string& account_id) {
  std::lock_guard lock(mutex_);
  return run_transaction(*store_, [&] {
    auto rows = store_->query("SELECT id FROM api_keys WHERE account_id = ? AND internal = 1", {account_id});
    KeyInfo k;
    k.name = "playground";
    k.account_id = account_id;
    k.internal = true;
    if (!rows.empty()) {
      k.id = rows[0].text(0);
      return k;
    }
    // The stored digest is of nothing anyone holds: the key cannot be presented over the API.
    k.id = random_hex(6);
    k.created_at_ms = now_ms();
    store_->exec("INSERT INTO api_keys (id, name, secret_sha256, created_at_ms, account_id, internal) VALUES (?, ?, ?, ?, ?, 1)",
                 {k.id, k.name, "unusable:" + random_hex(32), k.created_at_ms, account_id});
    return k;
  });
}

SignInResult Accounts::sign_in(const std::string& email_in, const std::string& password, const std::string& client) {
  const std::string email = fold_email(email_in);
  const std::string by_email = "email:" + email, by_client = "client:" + client;
  SignInResult result;
  std::optional<std::pair<std::string, std::string>> found;  // (id, hash)
  {
    std::lock_guard lock(mutex_);
    int64_t now = now_ms(), since = now - kSignInWindowMs;
    auto limited = run_transaction(*store_, [&]() -> int64_t {
      store_->exec("DELETE FROM signin_failures WHERE at_ms < ?", {since});
      for (auto [subject, limit] : {std::pair{by_email, kSignInFailures}, std::pair{by_client, 4 * kSignInFailures}}) {
        auto rows = store_->query("SELECT at_ms FROM signin_failures WHERE subject = ? ORDER BY at_ms DESC", {subject});
        if (int64_t(rows.size()) >= limit) return rows[size_t(limit) - 1].integer(0) + kSignInWindowMs - now;
      }
      return 0;
    });
    if (limited > 0) {
      result.outcome = SignInResult::rate_limited;
      result.retry_after_s = std::max<int64_t>(1, (limited + 999) / 1000);
      return result;
    }
    auto rows = store_->query("SELECT id, password_hash FROM accounts WHERE email = ?", {email});
    if (!rows.empty()) found = {rows[0].text(0), rows[0].text(1)};
  }
  bool ok = verify_password(found ? found->second : decoy_hash(), password) && found;
  if (!ok) {
    std::lock_guard lock(mutex_);
    int64_t now = now_ms();
    run_transaction(*store_, [&] {
      store_->exec("INSERT INTO signin_failures (subject, at_ms) VALUES (?, ?)", {by_email, now});
      store_->exec("INSERT INTO signin_failures (subject, at_ms) VALUES (?, ?)", {by_client, now});
    });
    result.outcome = SignInResult::bad_credentials;
    return result;
  }
  {
    std::lock_guard lock(mutex_);
    run_transaction(*store_, [&] { store_->exec("DELETE FROM signin_failures WHERE subject = ?", {by_email}); });
  }
  result.outcome = SignInResult::ok;
  result.account = *find_account(found->first);
  result.session = create_session(found->first);
  return result;
}

NewSession Accounts::create_session(const std::string& account_id) {
  NewSession s;
  s.token = random_hex(kSessionBytes);
  s.csrf_token = random_hex(kCsrfBytes);
  std::lock_guard lock(mutex_);
  int64_t now = now_ms();
  s.expires_at_ms = now + kSessionTtlMs;
  run_transaction(*store_, [&] {
    store_->exec("DELETE FROM sessions WHERE expires_at_ms < ?", {now});
    store_->exec("INSERT INTO sessions (token_sha256, account_id, csrf_token, created_at_ms, expires_at_ms) VALUES (?, ?, ?, ?, ?)",
                 {sha256_hex(s.token), account_id, s.csrf_token, now, s.expires_at_ms});
  });
  return s;
}

std::optional<SessionInfo> Accounts::find_session(const std::string& token) {
  if (token.size() != 2 * kSessionBytes) return std::nullopt;
  std::lock_guard lock(mutex_);
  auto rows = store_->query("SELECT account_id, csrf_token, expires_at_ms FROM sessions WHERE token_sha256 = ?",
                            {sha256_hex(token)});
  if (rows.empty() || rows[0].integer(2) <= now_ms()) return std::nullopt;
  return SessionInfo{rows[0].text(0), rows[0].text(1), rows[0].integer(2)};
}

void Accounts::end_session(const std::string& token) {
  std::lock_guard lock(mutex_);
  run_transaction(*store_, [&] { store_->exec("DELETE FROM sessions WHERE token_sha256 = ?", {sha256_hex(token)}); });
}

std::vector<RequestRow> Accounts::recent_requests(const UsageQuery& q, int limit) {
  std::string sql =
      "SELECT l.request_id, l.key_id, k.name, l.model, l.status, l.source, l.ended_at_ms, l.prompt_cached_tokens, "
      "l.prompt_uncached_tokens, l.output_tokens, l.reasoning_tokens, l.web_search_calls, l.cost_nano "
      "FROM ledger l JOIN api_keys k ON k.id = l.key_id WHERE 1 = 1";
  std::vector<SqlValue> params;
  if (q.key_id) sql += " AND l.key_id = ?", params.emplace_back(*q.key_id);
  if (q.account_id) sql += " AND k.account_id = ?", params.emplace_back(*q.account_id);
  if (q.model) sql += " AND l.model = ?", params.emplace_back(*q.model);
  if (q.since_day) sql += " AND l.day >= ?", params.emplace_back(*q.since_day);
  sql += " ORDER BY l.ended_at_ms DESC, l.request_id LIMIT ?";
  params.emplace_back(int64_t(std::clamp(limit, 1, 10000)));
  std::lock_guard lock(mutex_);
  std::vector<RequestRow> out;
  for (const auto& r : store_->query(sql, params)) {
    RequestRow row;
    row.request_id = r.text(0), row.key_id = r.text(1), row.key_name = r.text(2), row.model = r.text(3);
    row.status = r.text(4), row.source = r.text(5), row.ended_at_ms = r.integer(6);
    row.cached_tokens = r.integer(7), row.uncached_tokens = r.integer(8), row.output_tokens = r.integer(9);
    row.reasoning_tokens = r.integer(10), row.web_search_calls = r.integer(11), row.cost = r.integer(12);
    out.push_back(std::move(row));
  }
  return out;
}

}  // namespace v4::product
