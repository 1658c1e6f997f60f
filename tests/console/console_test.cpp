// The console's routes without a browser: sessions and cookie flags, CSRF rules, isolation between
// accounts, the playground principal, model data from the billing's rate cards, assets and headers.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>

#include "api/request.h"
#include "console/console.h"
#include "product/accounts.h"

using namespace v4;

namespace {

struct ConsoleFixture : ::testing::Test {
  std::string dir = std::filesystem::temp_directory_path() / ("v4f-console-" + std::to_string(::getpid()) + "-" +
                                                              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::shared_ptr<product::Accounts> accounts;
  std::unique_ptr<console::Console> web;

  void SetUp() override {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    accounts = product::Accounts::open(dir + "/db.sqlite");
    accounts->create_account("alice@example.com", "alice-password", product::parse_usd("5"));
    accounts->create_account("bob@example.com", "bob-password-1", product::parse_usd("1"));
    console::ConsoleOptions o;
    o.model_ids = {"deepseek-v4-flash", "deepseek-v4-flash:variant1", "deepseek-v4-flash:variant2"};
    o.context_length = 1048576;
    o.max_output_tokens = 393216;
    web = std::make_unique<console::Console>(accounts, o);
  }
  void TearDown() override { std::filesystem::remove_all(dir); }

  api::WebResponse send(const std::string& method, const std::string& target, const std::string& body = "",
                        std::map<std::string, std::string> headers = {}) {
    api::WebRequest r;
    r.method = method;
    r.target = target;
    r.path = target.substr(0, target.find('?'));
    r.body = body;
    r.client = "127.0.0.1";
    headers.emplace("host", "127.0.0.1:8000");
    if (!body.empty()) headers.emplace("content-type", "application/json");
    r.headers = headers;
    return web->handle(r);
  }

  static std::string header(const api::WebResponse& r, const std::string& name) {
    for (auto& [n, v] : r.headers)
      if (n == name) return v;
    return "";
  }

  struct Session {
    std::string cookie, csrf;
  };
  Session sign_in(const std::string& email, const std::string& password) {
    auto r = send("POST", "/console/api/signin", R"({"email":")" + email + R"(","password":")" + password + R"("})",
                  {{"x-requested-with", "v4flash-console"}});
    EXPECT_EQ(r.status, 200) << r.body;
    std::string c = header(r, "Set-Cookie");
    return {c.substr(0, c.find(';')), std::string(boost::json::parse(r.body).at("csrf_token").as_string())};
  }
};

TEST_F(ConsoleFixture, SignInSetsAStrictHttpOnlyCookieAndNeedsTheCustomHeader) {
  auto refused = send("POST", "/console/api/signin", R"({"email":"alice@example.com","password":"alice-password"})");
  EXPECT_EQ(refused.status, 403);
  auto r = send("POST", "/console/api/signin", R"({"email":"alice@example.com","password":"alice-password"})",
                {{"x-requested-with", "v4flash-console"}});
  ASSERT_EQ(r.status, 200);
  std::string cookie = header(r, "Set-Cookie");
  EXPECT_NE(cookie.find("HttpOnly"), std::string::npos);
  EXPECT_NE(cookie.find("SameSite=Strict"), std::string::npos);
  EXPECT_EQ(cookie.find("Secure"), std::string::npos);
  auto tls = send("POST", "/console/api/signin", R"({"email":"alice@example.com","password":"alice-password"})",
                  {{"x-requested-with", "v4flash-console"}, {"x-forwarded-proto", "https"}});
  EXPECT_NE(header(tls, "Set-Cookie").find("; Secure"), std::string::npos);
  EXPECT_EQ(send("POST", "/console/api/signin", R"({"email":"alice@example.com","password":"nope-nope"})",
                 {{"x-requested-with", "v4flash-console"}}).status, 401);
}

TEST_F(ConsoleFixture, StateChangesNeedTheSessionsCsrfTokenAndSameOrigin) {
  auto s = sign_in("alice@example.com", "alice-password");
  EXPECT_EQ(send("POST", "/console/api/keys", R"({"name":"k"})", {{"cookie", s.cookie}}).status, 403);
  EXPECT_EQ(send("POST", "/console/api/keys", R"({"name":"k"})", {{"cookie", s.cookie}, {"x-csrf-token", (s.csrf[0] == '0' ? "1" : "0") + s.csrf.substr(1)}}).status, 403);
  EXPECT_EQ(send("POST", "/console/api/keys", R"({"name":"k"})",
                 {{"cookie", s.cookie}, {"x-csrf-token", s.csrf}, {"origin", "https://evil.example"}}).status, 403);
  auto ok = send("POST", "/console/api/keys", R"({"name":"k","rpm_limit":5})", {{"cookie", s.cookie}, {"x-csrf-token", s.csrf}});
  EXPECT_EQ(ok.status, 201) << ok.body;
  EXPECT_EQ(send("POST", "/console/api/keys", R"({"name":"k","color":"red"})", {{"cookie", s.cookie}, {"x-csrf-token", s.csrf}}).status, 400);
}

TEST_F(ConsoleFixture, AccountsSeeOnlyTheirOwnKeysAndUsage) {
  auto a = sign_in("alice@example.com", "alice-password");
  auto created = send("POST", "/console/api/keys", R"({"name":"alice key"})", {{"cookie", a.cookie}, {"x-csrf-token", a.csrf}});
  std::string key_id(boost::json::parse(created.body).at("id").as_string());
  auto b = sign_in("bob@example.com", "bob-password-1");
  auto keys = send("GET", "/console/api/keys", "", {{"cookie", b.cookie}});
  EXPECT_EQ(boost::json::parse(keys.body).at("data").as_array().size(), 0u);
  EXPECT_EQ(send("GET", "/console/api/usage?key=" + key_id, "", {{"cookie", b.cookie}}).status, 404);
  EXPECT_EQ(send("POST", "/console/api/keys/" + key_id + "/revoke", "{}", {{"cookie", b.cookie}, {"x-csrf-token", b.csrf}}).status, 404);
  EXPECT_FALSE(accounts->find_key(key_id)->revoked());
  EXPECT_EQ(send("GET", "/console/api/admin/accounts", "", {{"cookie", b.cookie}}).status, 403);
  EXPECT_EQ(send("GET", "/console/api/keys").status, 401);
}

TEST_F(ConsoleFixture, PlaygroundRequestsNeedTheCsrfTokenAndUseTheAccountsInternalKey) {
  auto s = sign_in("alice@example.com", "alice-password");
  api::WebRequest r;
  r.method = "POST";
  r.path = r.target = "/v1/chat/completions";
  r.headers = {{"cookie", s.cookie}};
  EXPECT_THROW(web->session_principal(r), api::ApiError);
  r.headers["x-csrf-token"] = s.csrf;
  auto who = web->session_principal(r);
  ASSERT_TRUE(who);
  EXPECT_EQ(who->source, "playground");
  auto key = accounts->find_key(who->key_id);
  ASSERT_TRUE(key && key->internal);
  EXPECT_EQ(accounts->find_account(key->account_id)->email, "alice@example.com");
  r.headers = {};
  EXPECT_FALSE(web->session_principal(r));  // no cookie: the ordinary 401 path
  r.path = r.target = "/v1/responses";
  r.headers = {{"cookie", s.cookie}, {"x-csrf-token", s.csrf}};
  EXPECT_FALSE(web->session_principal(r));  // only the playground's endpoint
}

TEST_F(ConsoleFixture, ModelDataComesFromTheBillingRateCardsAndTheApiDefaults) {
  auto r = send("GET", "/console/api/model");
  ASSERT_EQ(r.status, 200);
  auto m = boost::json::parse(r.body).as_object();
  auto& cards = m.at("rate_cards").as_array();
  ASSERT_EQ(cards.size(), 3u);
  for (auto& c : cards) {
    const auto* card = accounts->rate_cards().find(std::string(c.at("id").as_string()));
    ASSERT_TRUE(card);
    EXPECT_EQ(product::parse_usd(std::string(c.at("input_usd_per_m").as_string())), card->input_per_token * 1'000'000);
    EXPECT_EQ(product::parse_usd(std::string(c.at("output_usd_per_m").as_string())), card->output_per_token * 1'000'000);
  }
  api::Request defaults;
  for (auto& p : m.at("parameters").as_array()) {
    if (p.at("name") == "temperature") EXPECT_DOUBLE_EQ(p.at("default").to_number<double>(), defaults.temperature);
  }
  EXPECT_EQ(m.at("base_url"), "http://127.0.0.1:8000");
}

TEST_F(ConsoleFixture, PagesRedirectWhenSignedOutAndCarryAStrictCsp) {
  auto r = send("GET", "/dashboard");
  EXPECT_EQ(r.status, 302);
  EXPECT_EQ(header(r, "Location"), "/signin?next=/dashboard");
  auto page = send("GET", "/models/deepseek-v4-flash");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(header(page, "Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(header(page, "Content-Security-Policy").find("script-src 'self'"), std::string::npos);
  auto at = page.body.find("/assets/");
  ASSERT_NE(at, std::string::npos);
  std::string base = page.body.substr(at, page.body.find('/', at + 8) - at);
  auto js = send("GET", base + "/app.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(header(js, "Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(send("GET", "/assets/0000000000000000/app.js").status, 404);
  EXPECT_EQ(send("POST", "/console/api/signup", R"({"email":"c@example.com","password":"long-enough"})",
                 {{"x-requested-with", "v4flash-console"}}).status, 403);  // closed by default
}

TEST_F(ConsoleFixture, CsvExportNeutralisesSpreadsheetFormulas) {
  auto s = sign_in("alice@example.com", "alice-password");
  auto created = send("POST", "/console/api/keys", R"j({"name":"=HYPERLINK(\"x\")"})j", {{"cookie", s.cookie}, {"x-csrf-token", s.csrf}});
  std::string key_id(boost::json::parse(created.body).at("id").as_string());
  auto key = *accounts->find_key(key_id);
  ASSERT_TRUE(accounts->admit(key, {"req-1", "deepseek-v4-flash", 10, 10, 0}).admitted());
  product::LedgerEntry e;
  e.request_id = "req-1";
  e.key_id = key_id;
  e.model = "deepseek-v4-flash";
  e.prompt_uncached_tokens = 10;
  e.output_tokens = 5;
  accounts->record(e);
  auto csv = send("GET", "/console/api/usage.csv", "", {{"cookie", s.cookie}});
  EXPECT_EQ(header(csv, "Content-Type"), "text/csv; charset=utf-8");
  EXPECT_NE(csv.body.find("\"'=HYPERLINK(\"\"x\"\")\""), std::string::npos) << csv.body;
}

}  // namespace
