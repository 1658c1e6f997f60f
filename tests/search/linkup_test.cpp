// The Linkup client against a local Linkup-compatible server (fake_linkup.h), over plain HTTP and
// HTTPS with a test CA: the request it sends, retries, and each failure's kind.
#include <gtest/gtest.h>

#include <chrono>

#include "fake_linkup.h"
#include "search/linkup.h"

using namespace v4;
using namespace v4::search;
namespace json = boost::json;
using v4::testing::FakeLinkup;
using v4::testing::FakeReply;

namespace {

const char* kTwoResults =
    R"({"results":[{"type":"text","name":"Bern","url":"https://en.wikipedia.org/wiki/Bern","content":"Bern is the capital.","favicon":"x"},)"
    R"({"type":"image","name":"A map","url":"https://img.example/map.png"},)"
    R"({"type":"text","name":"Swiss cities","url":"https://example.ch/cities","content":"Zurich, Geneva, Bern."}]})";

LinkupOptions options_for(const FakeLinkup& server, bool trust_ca = true) {
  LinkupOptions o;
  o.base_url = server.base_url();
  o.api_key = "lk-test-secret";
  if (trust_ca) o.ca_file = server.ca_file();
  o.timeout = std::chrono::milliseconds(1500);
  o.backoff = std::chrono::milliseconds(10);
  o.max_backoff = std::chrono::milliseconds(50);
  return o;
}

Query query() {
  Query q;
  q.text = "capital of Switzerland";
  q.depth = Depth::fast;
  q.max_results = 5;
  q.include_domains = {"wikipedia.org"};
  q.exclude_domains = {"spam.example"};
  q.from_date = "2026-01-01";
  q.to_date = "2026-12-31";
  return q;
}

Error::Kind kind_of(const LinkupProvider& p, const Query& q) {
  try {
    p.search(q);
  } catch (const Error& e) {
    return e.kind;
  }
  ADD_FAILURE() << "the search did not fail";
  return Error::Kind::no_results;
}

}  // namespace

TEST(Linkup, HttpsRequestCarriesKeyAndEveryFieldAndTextResultsComeBackRanked) {
  FakeLinkup server(/*tls=*/true);
  server.script({{200, kTwoResults}});
  LinkupProvider p(options_for(server));
  auto results = p.search(query());
  ASSERT_EQ(results.size(), 2u);  // the image result is left out
  EXPECT_EQ(results[0].title, "Bern");
  EXPECT_EQ(results[0].url, "https://en.wikipedia.org/wiki/Bern");
  EXPECT_EQ(results[0].content, "Bern is the capital.");
  EXPECT_EQ(results[1].title, "Swiss cities");

  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].target, "/v1/search");
  EXPECT_EQ(seen[0].authorization, "Bearer lk-test-secret");
  EXPECT_EQ(seen[0].content_type, "application/json");
  json::value body = json::parse(seen[0].body);
  EXPECT_EQ(body.at("q"), "capital of Switzerland");
  EXPECT_EQ(body.at("depth"), "fast");
  EXPECT_EQ(body.at("outputType"), "searchResults");
  EXPECT_EQ(body.at("maxResults"), 5);
  EXPECT_EQ(body.at("includeDomains"), json::array{"wikipedia.org"});
  EXPECT_EQ(body.at("excludeDomains"), json::array{"spam.example"});
  EXPECT_EQ(body.at("fromDate"), "2026-01-01");
  EXPECT_EQ(body.at("toDate"), "2026-12-31");
}

TEST(Linkup, PlainHttpToLoopbackWorksAndMaxResultsBoundsTheList) {
  FakeLinkup server(/*tls=*/false);
  server.script({{200, kTwoResults}});
  LinkupProvider p(options_for(server, /*trust_ca=*/false));
  Query q = query();
  q.max_results = 1;
  auto results = p.search(q);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].title, "Bern");
}

TEST(Linkup, RateLimitedThenSuccessIsRetried) {
  FakeLinkup server(true);
  server.script({{429, R"({"statusCode":429,"error":{"code":"RATE","message":"slow down"}})", 0, "0"}, {200, kTwoResults}});
  LinkupProvider p(options_for(server));
  EXPECT_EQ(p.search(query()).size(), 2u);
  EXPECT_EQ(server.seen().size(), 2u);
}

TEST(Linkup, ServerErrorsAreRetriedAFixedNumberOfTimesThenReported) {
  FakeLinkup server(true);
  server.script({{503, "{}"}, {502, "{}"}, {500, R"({"error":{"message":"boom"}})"}, {200, kTwoResults}});
  LinkupProvider p(options_for(server));
  try {
    p.search(query());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind, Error::Kind::unavailable);
    EXPECT_EQ(e.http_status, 500);
    EXPECT_NE(std::string(e.what()).find("boom"), std::string::npos);
  }
  EXPECT_EQ(server.seen().size(), 3u);  // max_attempts, not more
}

TEST(Linkup, UnauthorizedAndNoCreditAreNotRetried) {
  FakeLinkup server(true);
  server.script({{401, R"({"statusCode":401,"error":{"code":"UNAUTHORIZED","message":"bad key"}})"}, {402, "{}"}});
  LinkupProvider p(options_for(server));
  EXPECT_EQ(kind_of(p, query()), Error::Kind::unauthorized);
  EXPECT_EQ(kind_of(p, query()), Error::Kind::no_credit);
  EXPECT_EQ(server.seen().size(), 2u);
}

TEST(Linkup, TimeoutIsReported) {
  FakeLinkup server(true);
  server.script({{200, kTwoResults, /*delay_ms=*/1500}});
  LinkupOptions o = options_for(server);
  o.timeout = std::chrono::milliseconds(300);
  LinkupProvider p(o);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(kind_of(p, query()), Error::Kind::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1200));
}

TEST(Linkup, UntrustedCertificateIsRefusedBeforeTheKeyIsSent) {
  FakeLinkup server(true);
  server.script({{200, kTwoResults}});
  LinkupProvider p(options_for(server, /*trust_ca=*/false));
  try {
    p.search(query());
    FAIL() << "a self-signed certificate was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind, Error::Kind::unavailable);
    EXPECT_NE(std::string(e.what()).find("certificate"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(server.seen().empty());
}

TEST(Linkup, CertificateForAnotherHostIsRefused) {
  FakeLinkup server(true);  // its certificate names IP 127.0.0.1 only
  server.script({{200, kTwoResults}});
  LinkupOptions o = options_for(server);
  o.base_url = "https://localhost:" + std::to_string(server.port()) + "/v1";
  LinkupProvider p(o);
  EXPECT_EQ(kind_of(p, query()), Error::Kind::unavailable);
  EXPECT_TRUE(server.seen().empty());
}

TEST(Linkup, MalformedAnswersAndEmptyResults) {
  FakeLinkup server(true);
  server.script({{200, "{not json"}, {200, R"({"answer":"no results list"})"}, {200, R"({"results":[]})"}});
  LinkupProvider p(options_for(server));
  EXPECT_EQ(kind_of(p, query()), Error::Kind::bad_response);
  EXPECT_EQ(kind_of(p, query()), Error::Kind::bad_response);
  EXPECT_EQ(kind_of(p, query()), Error::Kind::no_results);
}

TEST(Linkup, UnreachableServerIsUnavailable) {
  uint16_t port;
  {
    FakeLinkup gone(false);
    port = gone.port();
  }
  LinkupOptions o;
  o.base_url = "http://127.0.0.1:" + std::to_string(port) + "/v1";
  o.timeout = std::chrono::milliseconds(500);
  LinkupProvider p(o);
  EXPECT_EQ(kind_of(p, query()), Error::Kind::unavailable);
}

TEST(Linkup, UrlRules) {
  auto with_url = [](const char* url) {
    LinkupOptions o;
    o.base_url = url;
    return LinkupProvider(o);
  };
  EXPECT_THROW(with_url("ftp://api.linkup.so/v1"), std::invalid_argument);
  EXPECT_THROW(with_url("http://api.linkup.so/v1"), std::invalid_argument);  // the key would travel in clear
  EXPECT_THROW(with_url("api.linkup.so"), std::invalid_argument);
  EXPECT_NO_THROW(with_url("https://api.linkup.so/v1/"));
  EXPECT_NO_THROW(with_url("http://127.0.0.1:9/v1"));
  LinkupOptions bad_ca;
  bad_ca.ca_file = "/nonexistent/ca.pem";
  EXPECT_THROW(LinkupProvider{bad_ca}, std::invalid_argument);
}
