// Console accounts on both backends: Argon2id passwords, sessions, sign-in throttling, per-account
// credit shared by the account's keys, the playground key and the ledger's source column.
#include <gtest/gtest.h>

#include "product/accounts.h"
#include "product/secrets.h"
#include "product/store.h"
#include "test_support.h"

using namespace v4::product;

namespace {

class ConsoleAccountsTest : public ::testing::TestWithParam<std::string> {};

std::atomic<int64_t> now_ms{1'780'000'000'000};
int64_t clock_fn() { return now_ms.load(); }

LedgerEntry used(const std::string& id, const std::string& key, int64_t output, const std::string& source = "api") {
  LedgerEntry e;
  e.request_id = id;
  e.key_id = key;
  e.model = "deepseek-v4-flash";
  e.prompt_uncached_tokens = 1000;
  e.output_tokens = output;
  e.source = source;
  e.ended_at_ms = now_ms.load();
  return e;
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(Backends, ConsoleAccountsTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

TEST(Passwords, Argon2idHashesVerifyAndAreSalted) {
  std::string a = hash_password("correct horse"), b = hash_password("correct horse");
  EXPECT_EQ(a.rfind("$argon2id$", 0), 0u) << a;
  EXPECT_NE(a, b);  // salted
  EXPECT_TRUE(verify_password(a, "correct horse"));
  EXPECT_FALSE(verify_password(a, "correct horsf"));
  EXPECT_FALSE(verify_password("!", "anything"));
  EXPECT_FALSE(verify_password(sha256_hex("correct horse"), "correct horse"));
}

TEST_P(ConsoleAccountsTest, PasswordsAreStoredOnlyAsArgon2idHashes) {
  V4_FRESH_DB(db, tmp);
  auto accounts = Accounts::open(db);
  auto a = accounts->create_account("Alice@Example.com", "s3cret-password", parse_usd("5"));
  EXPECT_EQ(a.email, "alice@example.com");
  auto store = Store::open(db);
  auto hash = store->query("SELECT password_hash FROM accounts WHERE id = ?", {a.id}).at(0).text(0);
  EXPECT_EQ(hash.rfind("$argon2id$", 0), 0u);
  EXPECT_EQ(hash.find("s3cret-password"), std::string::npos);
  EXPECT_THROW(accounts->create_account("alice@example.com", "another-password"), std::invalid_argument);
  EXPECT_THROW(accounts->create_account("bob@example.com", "short"), std::invalid_argument);
  EXPECT_THROW(accounts->create_account("not-an-email", "long-enough-1"), std::invalid_argument);
}

TEST_P(ConsoleAccountsTest, SignInIssuesFreshSessionsAndThrottlesFailures) {
  V4_FRESH_DB(db, tmp);
  auto accounts = Accounts::open(db);
  accounts->set_clock_for_testing(clock_fn);
  auto a = accounts->create_account("alice@example.com", "s3cret-password");
  auto first = accounts->sign_in("ALICE@example.com", "s3cret-password", "10.0.0.1");
  ASSERT_EQ(first.outcome, SignInResult::ok);
  auto second = accounts->sign_in("alice@example.com", "s3cret-password", "10.0.0.1");
  EXPECT_NE(first.session.token, second.session.token);
  EXPECT_NE(first.session.csrf_token, second.session.csrf_token);
  EXPECT_EQ(accounts->find_session(first.session.token)->account_id, a.id);
  accounts->end_session(first.session.token);
  EXPECT_FALSE(accounts->find_session(first.session.token));
  EXPECT_FALSE(accounts->find_session(std::string(64, 'a')));  // a token nobody was issued

  for (int i = 0; i < Accounts::kSignInFailures; ++i)
    EXPECT_EQ(accounts->sign_in("alice@example.com", "wrong-password", "10.0.0.2").outcome, SignInResult::bad_credentials);
  auto blocked = accounts->sign_in("alice@example.com", "s3cret-password", "10.0.0.3");
  EXPECT_EQ(blocked.outcome, SignInResult::rate_limited);  // even the right password: unchecked
  EXPECT_GE(blocked.retry_after_s, 1);
  now_ms += Accounts::kSignInWindowMs + 1000;
  EXPECT_EQ(accounts->sign_in("alice@example.com", "s3cret-password", "10.0.0.3").outcome, SignInResult::ok);

  now_ms += Accounts::kSessionTtlMs + 1;  // sessions expire
  EXPECT_FALSE(accounts->find_session(second.session.token));
}

TEST_P(ConsoleAccountsTest, AccountCreditIsSharedByItsKeysAndCharged) {
  V4_FRESH_DB(db, tmp);
  auto accounts = Accounts::open(db);
  auto a = accounts->create_account("alice@example.com", "s3cret-password", parse_usd("0.001"));
  auto b = accounts->create_account("bob@example.com", "s3cret-password", parse_usd("1"));
  KeyOptions o;
  o.account_id = a.id;
  auto k1 = accounts->create_key(o).info;
  auto k2 = accounts->create_key(o).info;
  auto play = accounts->playground_key(a.id);
  EXPECT_EQ(accounts->playground_key(a.id).id, play.id);
  EXPECT_EQ(accounts->list_account_keys(a.id).size(), 2u);  // the playground key is internal
  EXPECT_TRUE(accounts->list_account_keys(b.id).empty());

  ASSERT_TRUE(accounts->admit(k1, {"r1", "deepseek-v4-flash", 1000, 100, 0}).admitted());
  auto cost = accounts->record(used("r1", k1.id, 100)).cost;
  ASSERT_TRUE(accounts->admit(play, {"r2", "deepseek-v4-flash", 1000, 100, 0}).admitted());
  cost += accounts->record(used("r2", play.id, 100, "playground")).cost;
  EXPECT_EQ(*accounts->find_account(a.id)->credit, parse_usd("0.001") - cost);
  // 0.001 - 2 x (1000 x 0.14 + 100 x 0.28) / 1e6 = 0.000664: three more such requests fit, on another
  // key of the account; a fourth's worst case ($0.000168) exceeds the $0.00016 left: 402, and the
  // account's balance never goes below zero.
  for (int i = 0; i < 3; ++i) {
    std::string id = "r" + std::to_string(3 + i);
    ASSERT_TRUE(accounts->admit(k2, {id, "deepseek-v4-flash", 1000, 100, 0}).admitted());
    accounts->record(used(id, k2.id, 100));
  }
  EXPECT_EQ(accounts->admit(k1, {"r9", "deepseek-v4-flash", 1000, 100, 0}).http_status, 402);
  EXPECT_GE(*accounts->find_account(a.id)->credit, 0);
  EXPECT_TRUE(accounts->add_credit(a.id, parse_usd("1")));
  EXPECT_TRUE(accounts->admit(k1, {"r9", "deepseek-v4-flash", 1000, 100, 0}).admitted());

  UsageQuery q;
  q.account_id = a.id;
  auto rows = accounts->recent_requests(q, 10);
  ASSERT_EQ(rows.size(), 5u);
  int playground = 0;
  for (const auto& r : rows) playground += r.source == "playground";
  EXPECT_EQ(playground, 1);
  q.account_id = b.id;
  EXPECT_TRUE(accounts->recent_requests(q, 10).empty());
  EXPECT_EQ(accounts->usage_totals(q).requests, 0);
  EXPECT_THROW(accounts->record(used("r10", k1.id, 1, "elsewhere")), std::invalid_argument);
}

TEST_P(ConsoleAccountsTest, KeysWithoutAnAccountBelongToTheUnlimitedDefaultAccount) {
  V4_FRESH_DB(db, tmp);
  auto accounts = Accounts::open(db);
  KeyOptions o;
  o.credit = parse_usd("1");
  auto k = accounts->create_key(o).info;
  EXPECT_EQ(k.account_id, kDefaultAccount);
  EXPECT_FALSE(accounts->find_account(kDefaultAccount)->credit);  // unlimited: the key's credit rules
  ASSERT_TRUE(accounts->admit(k, {"r1", "deepseek-v4-flash", 1000, 100, 0}).admitted());
  accounts->record(used("r1", k.id, 100));
  EXPECT_LT(*accounts->find_key(k.id)->credit, parse_usd("1"));
  EXPECT_EQ(accounts->sign_in("default", "", "x").outcome, SignInResult::bad_credentials);  // no password
  o.account_id = "acct_missing";
  EXPECT_THROW(accounts->create_key(o), std::invalid_argument);
}
