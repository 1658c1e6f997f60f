// Accounts on both backends: migrations, keys, authentication, the exactly-once ledger, credit and
// rate-limit admission, usage reports. Each test gets a fresh database.
#include <gtest/gtest.h>

#include <algorithm>

#include <boost/json.hpp>

#include "product/accounts.h"
#include "product/schema.h"
#include "product/store.h"
#include "test_support.h"

using namespace v4::product;

namespace {

class AccountsTest : public ::testing::TestWithParam<std::string> {};

std::atomic<int64_t> fake_now_ms{1'780'000'000'000};  // 2026-05-28T20:26:40Z
int64_t fake_clock() { return fake_now_ms.load(); }

LedgerEntry entry(const std::string& request_id, const std::string& key_id, const std::string& model,
                  int64_t cached, int64_t uncached, int64_t output, int64_t reasoning, int64_t searches,
                  int64_t ended_ms = 1'780'000'000'000) {
  LedgerEntry e;
  e.request_id = request_id;
  e.key_id = key_id;
  e.model = model;
  e.prompt_cached_tokens = cached;
  e.prompt_uncached_tokens = uncached;
  e.output_tokens = output;
  e.reasoning_tokens = reasoning;
  e.web_search_calls = searches;
  e.started_at_ms = ended_ms - 1500;
  e.first_token_at_ms = ended_ms - 1000;
  e.ended_at_ms = ended_ms;
  return e;
}

int64_t count_rows(const std::string& db, const std::string& sql, const std::vector<SqlValue>& params = {}) {
  auto store = Store::open(db);
  return store->query(sql, params).at(0).integer(0);
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(Backends, AccountsTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

TEST_P(AccountsTest, MigrationsCreateVersionTableAndAreIdempotent) {
  V4_FRESH_DB(db, tmp);
  {
    auto store = Store::open(db);
    EXPECT_EQ(migrate(*store), 0);  // new database
    EXPECT_EQ(store->query("SELECT version FROM schema_version").at(0).integer(0), latest_schema_version());
    EXPECT_EQ(migrate(*store), latest_schema_version());  // nothing left to do
    EXPECT_EQ(store->query("SELECT COUNT(*) FROM schema_version").at(0).integer(0), 1);
  }
  auto accounts = Accounts::open(db);  // opening again keeps the data
  EXPECT_EQ(accounts->backend(), GetParam());
  {
    auto store = Store::open(db);
    store->exec("UPDATE schema_version SET version = 999");
  }
  try {
    Accounts::open(db);
    FAIL() << "a newer schema must be refused";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("newer"), std::string::npos) << e.what();
  }
}

TEST_P(AccountsTest, KeysStoreOnlyAHashAndAuthenticate) {
  V4_FRESH_DB(db, tmp);
  auto accounts = Accounts::open(db);
  NewKey k = accounts->create_key({"alice", parse_usd("5"), 60, 100000});
  EXPECT_EQ(k.secret.rfind("sk-v4f-" + k.info.id + "-", 0), 0u) << k.secret;
  EXPECT_EQ(k.secret.size(), 7u + 12 + 1 + 48);

  // The secret is not in the database; its SHA-256 is.
  auto store = Store::open(db);
  auto rows = store->query("SELECT secret_sha256 FROM api_keys WHERE id = ?", {k.info.id});
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].text(0).size(), 64u);
  EXPECT_EQ(rows[0].text(0).find(k.secret.substr(20)), std::string::npos);
  EXPECT_EQ(count_rows(db, "SELECT COUNT(*) FROM api_keys WHERE secret_sha256 = ?", {k.secret}), 0);

  auto who = accounts->authenticate(k.secret);
  ASSERT_TRUE(who);
  EXPECT_EQ(who->id, k.info.id);
  EXPECT_EQ(who->name, "alice");
  EXPECT_EQ(who->credit, parse_usd("5"));
  EXPECT_EQ(who->rpm_limit, 60);
  EXPECT_EQ(who->tpm_limit, 100000);

  std::string wrong = k.secret;
  wrong.back() = wrong.back() == 'a' ? 'b' : 'a';
  EXPECT_FALSE(accounts->authenticate(wrong));
  EXPECT_FALSE(accounts->authenticate(""));
  EXPECT_FALSE(accounts->authenticate("sk-v4f-"));
  EXPECT_FALSE(accounts->authenticate(k.secret + "0"));
  EXPECT_FALSE(accounts->authenticate("Bearer " + k.secret));
  std::string other_id = k.secret;
  other_id[7] = other_id[7] == '0' ? '1' : '0';  // same secret part, another id
  EXPECT_FALSE(accounts->authenticate(other_id));

  NewKey k2 = accounts->create_key({"bob", std::nullopt, 0, 0});
  EXPECT_NE(k2.info.id, k.info.id);
  auto bob = accounts->authenticate(k2.secret);
  ASSERT_TRUE(bob);
  EXPECT_FALSE(bob->credit.has_value());  // unlimited

  auto keys = accounts->list_keys();
  ASSERT_EQ(keys.size(), 2u);

  EXPECT_TRUE(accounts->set_credit(k2.info.id, parse_usd("0.5")));
  EXPECT_EQ(accounts->find_key(k2.info.id)->credit, 500'000'000);
  EXPECT_FALSE(accounts->set_credit("nosuchkey", 1));

  EXPECT_TRUE(accounts->revoke_key(k.info.id));
  EXPECT_FALSE(accounts->authenticate(k.secret));
  EXPECT_TRUE(accounts->find_key(k.info.id)->revoked());
  EXPECT_FALSE(accounts->revoke_key("nosuchkey"));
  ASSERT_TRUE(accounts->authenticate(k2.secret));  // other keys unaffected
}

TEST_P(AccountsTest, LedgerIsExactlyOncePerRequestAndChargesCredit) {
  V4_FRESH_DB(db, tmp);
  auto accounts = Accounts::open(db);
  auto key = accounts->create_key({"k", parse_usd("1"), 0, 0}).info;

  // Hand-computed: flash, 500 cached*140 + 1000 uncached*140 + 200 out*280 + 2*13e6 = 26,266,000.
  auto first = accounts->record(entry("req-1", key.id, "deepseek-v4-flash", 500, 1000, 200, 50, 2));
  EXPECT_TRUE(first.inserted);
  EXPECT_EQ(first.cost, 26'266'000);
  // Same request id again (a retry after a lost reply), even with other numbers: nothing changes.
  auto again = accounts->record(entry("req-1", key.id, "deepseek-v4-flash", 0, 99999, 99999, 0, 0));
  EXPECT_FALSE(again.inserted);
  EXPECT_EQ(again.cost, 26'266'000);
  // variant2 with a cached share: 100 cached*28 + 10 uncached*138 + 30 out*275 = 2800+1380+8250 = 12,430.
  auto second = accounts->record(entry("req-2", key.id, "deepseek-v4-flash:variant2", 100, 10, 30, 0, 0));
  EXPECT_EQ(second.cost, 12'430);

  EXPECT_EQ(count_rows(db, "SELECT COUNT(*) FROM ledger"), 2);
  auto k = accounts->find_key(key.id);
  EXPECT_EQ(k->spent, 26'266'000 + 12'430);
  EXPECT_EQ(*k->credit, 1'000'000'000 - 26'266'000 - 12'430);

  // The row carries the rate card in force, the split counts and timings.
  auto store = Store::open(db);
  auto rows = store->query(
      "SELECT key_id, model, prompt_cached_tokens, prompt_uncached_tokens, output_tokens, reasoning_tokens, "
      "web_search_calls, input_rate_nano, cached_input_rate_nano, output_rate_nano, web_search_rate_nano, cost_nano, "
      "status, started_at_ms, first_token_at_ms, ended_at_ms, day FROM ledger WHERE request_id = 'req-1'");
  ASSERT_EQ(rows.size(), 1u);
  const auto& r = rows[0];
  EXPECT_EQ(r.text(0), key.id);
  EXPECT_EQ(r.text(1), "deepseek-v4-flash");
  EXPECT_EQ(r.integer(2), 500);
  EXPECT_EQ(r.integer(3), 1000);
  EXPECT_EQ(r.integer(4), 200);
  EXPECT_EQ(r.integer(5), 50);
  EXPECT_EQ(r.integer(6), 2);
  EXPECT_EQ(r.integer(7), 140);
  EXPECT_EQ(r.integer(8), 140);
  EXPECT_EQ(r.integer(9), 280);
  EXPECT_EQ(r.integer(10), 13'000'000);
  EXPECT_EQ(r.integer(11), 26'266'000);
  EXPECT_EQ(r.text(12), "completed");
  EXPECT_EQ(r.integer(13), 1'780'000'000'000 - 1500);
  EXPECT_EQ(r.integer(14), 1'780'000'000'000 - 1000);
  EXPECT_EQ(r.integer(15), 1'780'000'000'000);
  EXPECT_EQ(r.text(16), "2026-05-28");

  // Rows are immutable in the database itself.
  EXPECT_THROW(store->exec("UPDATE ledger SET cost_nano = 0"), std::runtime_error);
  EXPECT_THROW(store->exec("DELETE FROM ledger"), std::runtime_error);
  EXPECT_EQ(count_rows(db, "SELECT COUNT(*) FROM ledger"), 2);

  // Bad entries are refused without a row.
  EXPECT_THROW(accounts->record(entry("req-3", key.id, "no-such-model", 0, 1, 1, 0, 0)), std::invalid_argument);
  EXPECT_THROW(accounts->record(entry("req-4", key.id, "deepseek-v4-flash", 0, -1, 1, 0, 0)), std::invalid_argument);
  EXPECT_THROW(accounts->record(entry("req-5", key.id, "deepseek-v4-flash", 0, 1, 1, 2, 0)), std::invalid_argument);
  EXPECT_THROW(accounts->record(entry("req-6", "nokey", "deepseek-v4-flash", 0, 1, 1, 0, 0)), std::runtime_error);
  EXPECT_EQ(count_rows(db, "SELECT COUNT(*) FROM ledger"), 2);
}

// Keys that lose the right to run through this object (revoked, credit or the account's balance
// used up) are signalled at once, so the API stops their running requests without waiting for
// its poll; a listener whose subscriber is gone is dropped.
TEST_P(AccountsTest, KeysThatLoseTheirEntitlementAreSignalled) {
  V4_FRESH_DB(db, tmp);
  auto accounts = Accounts::open(db);
  std::vector<std::vector<std::string>> heard;
  accounts->watch_entitlements([&](const std::vector<std::string>& ids) {
    heard.push_back(ids);
    std::sort(heard.back().begin(), heard.back().end());
    return true;
  });
  int gone_calls = 0;
  accounts->watch_entitlements([&](const std::vector<std::string>&) { return ++gone_calls, false; });
  auto a = accounts->create_key({"a", parse_usd("1"), 0, 0}).info;
  auto b = accounts->create_key({"b", std::nullopt, 0, 0}).info;
  accounts->set_credit(b.id, parse_usd("2"));  // more credit: nothing to stop
  accounts->record(entry("req-0", a.id, "deepseek-v4-flash", 0, 10, 10, 0, 0));  // credit left
  EXPECT_TRUE(heard.empty());
  accounts->revoke_key(b.id);
  accounts->set_credit(a.id, 0);
  ASSERT_EQ(heard.size(), 2u);
  EXPECT_EQ(heard[0], std::vector<std::string>{b.id});
  EXPECT_EQ(heard[1], std::vector<std::string>{a.id});
  EXPECT_EQ(gone_calls, 1);
  // A charge that uses the key's credit up (cost 26,266,000: see the ledger test).
  auto c = accounts->create_key({"c", 26'266'000, 0, 0}).info;
  accounts->record(entry("req-1", c.id, "deepseek-v4-flash", 500, 1000, 200, 50, 2));
  ASSERT_EQ(heard.size(), 3u);
  EXPECT_EQ(heard[2], std::vector<std::string>{c.id});
  // An account's balance used up: all its keys.
  auto account = accounts->create_account("x@example.com", "x-password-1", parse_usd("1"));
  KeyOptions ko;
  ko.account_id = account.id;
  std::vector<std::string> keys = {accounts->create_key(ko).info.id, accounts->create_key(ko).info.id};
  std::sort(keys.begin(), keys.end());
  accounts->add_credit(account.id, -parse_usd("1"));
  ASSERT_EQ(heard.size(), 4u);
  EXPECT_EQ(heard[3], keys);
}

TEST_P(AccountsTest, AdmissionRefusesSpentKeysWith402) {
  V4_FRESH_DB(db, tmp);
  auto accounts = Accounts::open(db);
  auto key = accounts->create_key({"k", 100'000, 0, 0}).info;  // $0.0001
  // 1000 uncached on flash = 140,000 n$: more than the credit, refused before it runs.
  auto too_big = accounts->admit(key, {"a0", "deepseek-v4-flash", 1000, 0, 0});
  EXPECT_EQ(too_big.http_status, 402);
  EXPECT_EQ(too_big.limit, "credit");
  EXPECT_NE(too_big.message.find("may cost up to $0.00014"), std::string::npos) << too_big.message;
  // 500 = 70,000 n$ fits; afterwards 30,000 n$ are left, less than the next request's worst case.
  auto d = accounts->admit(key, {"a1", "deepseek-v4-flash", 500, 0, 0});
  ASSERT_TRUE(d.admitted()) << d.message;
  EXPECT_EQ(d.hold, 70'000);
  accounts->record(entry("a1", key.id, "deepseek-v4-flash", 0, 500, 0, 0, 0));
  EXPECT_EQ(*accounts->find_key(key.id)->credit, 30'000);
  EXPECT_EQ(accounts->admit(key, {"a1b", "deepseek-v4-flash", 500, 0, 0}).http_status, 402);
  EXPECT_EQ(*accounts->find_key(key.id)->credit, 30'000) << "a refused request never touches the balance";

  accounts->set_credit(key.id, 0);
  auto refused = accounts->admit(key, {"a2", "deepseek-v4-flash", 1, 1, 0});
  EXPECT_EQ(refused.outcome, Admission::insufficient_balance);
  EXPECT_EQ(refused.http_status, 402);
  EXPECT_EQ(refused.limit, "credit");
  EXPECT_EQ(refused.message, "Insufficient Balance");

  accounts->set_credit(key.id, parse_usd("1"));  // topped up: admitted again
  EXPECT_TRUE(accounts->admit(key, {"a3", "deepseek-v4-flash", 1, 1, 0}).admitted());

  auto unknown = accounts->admit(key, {"a4", "gpt-4", 1, 1, 0});
  EXPECT_EQ(unknown.outcome, Admission::unknown_model);
  EXPECT_EQ(unknown.http_status, 400);
  auto dup = accounts->admit(key, {"a3", "deepseek-v4-flash", 1, 1, 0});
  EXPECT_EQ(dup.outcome, Admission::duplicate_request);
  auto dup_of_recorded = accounts->admit(key, {"a1", "deepseek-v4-flash", 1, 1, 0});
  EXPECT_EQ(dup_of_recorded.outcome, Admission::duplicate_request);

  accounts->revoke_key(key.id);
  EXPECT_EQ(accounts->admit(key, {"a5", "deepseek-v4-flash", 1, 1, 0}).http_status, 401);
}

TEST_P(AccountsTest, InFlightHoldsKeepParallelRequestsWithinCredit) {
  V4_FRESH_DB(db, tmp);
  auto accounts = Accounts::open(db);
  // Each request may cost up to 100 in + 100 out on flash = 14,000 + 28,000 = 42,000 n$.
  auto key = accounts->create_key({"k", 100'000, 0, 0}).info;
  AdmissionRequest req{"", "deepseek-v4-flash", 100, 100, 0};
  std::vector<std::string> admitted;
  for (int i = 0; i < 10; ++i) {
    req.request_id = "h" + std::to_string(i);
    auto d = accounts->admit(key, req);
    if (d.admitted()) admitted.push_back(req.request_id);
    else {
      EXPECT_EQ(d.http_status, 429);
      EXPECT_EQ(d.limit, "credit_reserved");
      EXPECT_GE(d.retry_after_s, 1);
    }
  }
  // 100,000 credit: a request is admitted while the credit not yet held covers its 42k worst case:
  // 100k and 58k do, 16k does not -> 2 admitted.
  EXPECT_EQ(admitted.size(), 2u);
  accounts->release(admitted[1]);  // abandoned before producing anything: its hold goes away
  EXPECT_TRUE(accounts->admit(key, {"h-after-release", "deepseek-v4-flash", 100, 100, 0}).admitted());
}

TEST_P(AccountsTest, RequestsPerMinuteSlidingWindowGives429WithRetryAfter) {
  V4_FRESH_DB(db, tmp);
  auto accounts = Accounts::open(db);
  accounts->set_clock_for_testing(&fake_clock);
  fake_now_ms = 1'780'000'000'000;
  auto key = accounts->create_key({"k", std::nullopt, 3, 0}).info;
  auto admit = [&](const std::string& id) { return accounts->admit(key, {id, "deepseek-v4-flash", 10, 10, 0}); };
  EXPECT_TRUE(admit("r1").admitted());
  fake_now_ms += 10'000;
  EXPECT_TRUE(admit("r2").admitted());
  fake_now_ms += 10'000;
  EXPECT_TRUE(admit("r3").admitted());
  fake_now_ms += 5'000;  // t = 25 s: r1 (t=0) leaves the window at t = 60 s -> retry after 35 s
  auto d = admit("r4");
  EXPECT_EQ(d.outcome, Admission::rate_limited);
  EXPECT_EQ(d.http_status, 429);
  EXPECT_EQ(d.limit, "rpm");
  EXPECT_EQ(d.retry_after_s, 35);
  fake_now_ms += 34'500;  // t = 59.5 s: still full, 0.5 s left rounds up to 1
  EXPECT_EQ(admit("r5").retry_after_s, 1);
  fake_now_ms += 600;  // t = 60.1 s: r1 has left
  EXPECT_TRUE(admit("r6").admitted());
  EXPECT_FALSE(admit("r7").admitted());
}

TEST_P(AccountsTest, TokensPerMinuteCountsRealUsageOnceRecorded) {
  V4_FRESH_DB(db, tmp);
  auto accounts = Accounts::open(db);
  accounts->set_clock_for_testing(&fake_clock);
  fake_now_ms = 1'780'000'000'000;
  auto key = accounts->create_key({"k", std::nullopt, 0, 1000}).info;
  ASSERT_TRUE(accounts->admit(key, {"t1", "deepseek-v4-flash", 300, 4096, 0}).admitted());
  accounts->record(entry("t1", key.id, "deepseek-v4-flash", 0, 300, 400, 0, 0));  // 700 tokens used
  fake_now_ms += 20'000;
  ASSERT_TRUE(accounts->admit(key, {"t2", "deepseek-v4-flash", 200, 4096, 0}).admitted());  // 700 + 200 <= 1000
  fake_now_ms += 1'000;  // window: t1 700 (t=0), t2 200 pending (t=20s); 900 + 150 > 1000
  auto d = accounts->admit(key, {"t3", "deepseek-v4-flash", 150, 10, 0});
  EXPECT_EQ(d.http_status, 429);
  EXPECT_EQ(d.limit, "tpm");
  EXPECT_EQ(d.retry_after_s, 39);  // t1 leaves at t = 60 s, now t = 21 s
  auto huge = accounts->admit(key, {"t4", "deepseek-v4-flash", 5000, 10, 0});
  EXPECT_EQ(huge.http_status, 429);
  EXPECT_NE(huge.message.find("exceed"), std::string::npos);
  fake_now_ms += 39'001;
  EXPECT_TRUE(accounts->admit(key, {"t5", "deepseek-v4-flash", 150, 10, 0}).admitted());
}

TEST_P(AccountsTest, UsageReportsGroupByModelAndDay) {
  V4_FRESH_DB(db, tmp);
  auto accounts = Accounts::open(db);
  auto a = accounts->create_key({"a", std::nullopt, 0, 0}).info;
  auto b = accounts->create_key({"b", std::nullopt, 0, 0}).info;
  const int64_t day1 = 1'780'000'000'000;            // 2026-05-28
  const int64_t day2 = day1 + 24 * 3'600'000;        // 2026-05-29
  accounts->record(entry("u1", a.id, "deepseek-v4-flash", 500, 1000, 200, 50, 2, day1));        // 26,266,000
  accounts->record(entry("u2", a.id, "deepseek-v4-flash", 0, 10, 10, 0, 0, day2));              // 1400+2800 = 4,200
  accounts->record(entry("u3", a.id, "deepseek-v4-flash:variant2", 100, 10, 30, 5, 0, day2));   // 12,430
  accounts->record(entry("u4", b.id, "deepseek-v4-flash:variant1", 0, 3, 7, 0, 1, day2));       // 3400 + 20e6

  auto all = accounts->usage_totals({});
  EXPECT_EQ(all.requests, 4);
  EXPECT_EQ(all.cost, 26'266'000 + 4'200 + 12'430 + 20'003'400);

  auto json = boost::json::parse(accounts->usage_json({a.id, std::nullopt, std::nullopt, std::nullopt}));
  EXPECT_EQ(json.at("requests").as_int64(), 3);
  const auto& flash = json.at("by_model").at("deepseek-v4-flash");
  EXPECT_EQ(flash.at("requests").as_int64(), 2);
  EXPECT_EQ(flash.at("input_tokens").as_int64(), 1010);
  EXPECT_EQ(flash.at("cached_input_tokens").as_int64(), 500);
  EXPECT_EQ(flash.at("output_tokens").as_int64(), 210);
  EXPECT_EQ(flash.at("reasoning_tokens").as_int64(), 50);
  EXPECT_EQ(flash.at("web_search_calls").as_int64(), 2);
  EXPECT_EQ(flash.at("cost_nano_usd").as_int64(), 26'270'200);
  EXPECT_DOUBLE_EQ(flash.at("cost_usd").to_number<double>(), 0.0262702);
  EXPECT_EQ(json.at("by_model").at("deepseek-v4-flash:variant2").at("cost_nano_usd").as_int64(), 12'430);
  EXPECT_FALSE(json.at("by_model").as_object().contains("deepseek-v4-flash:variant1"));

  auto since = boost::json::parse(accounts->usage_json({std::nullopt, "2026-05-29", std::nullopt, "deepseek-v4-flash"}));
  EXPECT_EQ(since.at("requests").as_int64(), 1);
  EXPECT_EQ(since.at("by_model").at("deepseek-v4-flash").at("cost_nano_usd").as_int64(), 4'200);
  EXPECT_THROW(accounts->usage_json({std::nullopt, "29/05/2026", std::nullopt, std::nullopt}), std::invalid_argument);

  auto daily = boost::json::parse(accounts->daily_usage_json(a.id));
  const auto& data = daily.at("data").as_array();
  ASSERT_EQ(data.size(), 3u);
  EXPECT_EQ(data[0].at("date").as_string(), "2026-05-28");
  EXPECT_EQ(data[0].at("model").as_string(), "deepseek-v4-flash");
  EXPECT_DOUBLE_EQ(data[0].at("cached_share").to_number<double>(), 0.3333);  // 500 of 1500
  EXPECT_EQ(data[1].at("date").as_string(), "2026-05-29");
  EXPECT_EQ(data[2].at("model").as_string(), "deepseek-v4-flash:variant2");
  EXPECT_DOUBLE_EQ(data[2].at("cached_share").to_number<double>(), 0.9091);  // 100 of 110
  EXPECT_EQ(daily.at("total").at("requests").as_int64(), 3);
}
