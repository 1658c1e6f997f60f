// A gateway in front of upstreams, end to end over HTTP: each dialect served through an upstream's
// Chat Completions with its shapes and the upstream's usage billed once; refusals in the caller's
// dialect; failover before the first byte, ejection and recovery; prefix affinity.
#include <gtest/gtest.h>

#include <algorithm>
#include <initializer_list>
#include <map>

#include "../search/fake_linkup.h"  // an HTTPS server with a certificate of its own
#include "harness.h"

using namespace v4;
using namespace v4::testing;
namespace json = boost::json;

namespace {

std::string one_upstream(const std::string& url, const std::string& routing = R"({"health_interval_ms": 0})") {
  return R"J({"models": {"deepseek-v4-flash": {"region": "Germany (Frankfurt)", "backends": [{"url": ")J" + url +
         R"("}]}}, "routing": )" + routing + "}";
}

std::string joined_text(const std::vector<json::value>& events, const char* type_key, const char* type,
                        const char* field) {
  std::string out;
  for (auto& e : events)
    if (e.as_object().contains(type_key) && e.at(type_key) == type) out += std::string(e.at(field).as_string());
  return out;
}

// The ledger rows of a sink once it holds `n` (up to 2 s): a streamed request's row is written
// after its last event is sent, so the client can finish reading before it lands.
std::vector<api::UsageRecord> records_once(api::MemoryUsageSink& sink, size_t n) {
  for (int i = 0; i < 200 && sink.records().size() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return sink.records();
}

}  // namespace

TEST(Gateway, AnthropicAndResponsesAreServedThroughAnUpstreamsChatCompletions) {
  auto upstream = v4flash_upstream();
  auto gw = gateway_server(one_upstream("http://127.0.0.1:" + std::to_string(upstream->port) + "/v1"));

  auto msg = post(gw->port, "/v1/messages",
                  R"({"model": "deepseek-v4-flash", "max_tokens": 256, "messages": [{"role": "user", "content": "Hi"}]})");
  ASSERT_EQ(msg.status, 200) << msg.body;
  auto m = msg.json();
  EXPECT_EQ(m.at("type"), "message");
  EXPECT_EQ(m.at("model"), "deepseek-v4-flash");
  EXPECT_EQ(m.at("stop_reason"), "end_turn");
  auto& blocks = m.at("content").as_array();
  ASSERT_FALSE(blocks.empty());
  EXPECT_EQ(blocks.back().at("type"), "text");
  EXPECT_EQ(blocks.back().at("text"), kScriptedAnswer);

  auto resp = post(gw->port, "/v1/responses", R"({"model": "deepseek-v4-flash", "input": "Hi", "stream": true})");
  ASSERT_EQ(resp.status, 200) << resp.body;
  EXPECT_NE(resp.content_type.find("text/event-stream"), std::string::npos);
  auto events = sse_events(resp.body);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.front().at("type"), "response.created");
  EXPECT_EQ(joined_text(events, "type", "response.output_text.delta", "delta"), kScriptedAnswer);
  auto& done = events.back();
  ASSERT_EQ(done.at("type"), "response.completed");

  // Billed once each, from the upstream's own count.
  auto ours = records_once(*gw->usage, 2);
  auto theirs = records_once(*upstream->usage, 2);
  ASSERT_EQ(ours.size(), 2u);
  ASSERT_EQ(theirs.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(ours[i].status, "completed");
    EXPECT_EQ(ours[i].model, "deepseek-v4-flash");
    EXPECT_EQ(ours[i].usage.prompt_tokens, theirs[i].usage.prompt_tokens);
    EXPECT_EQ(ours[i].usage.cached_tokens, theirs[i].usage.cached_tokens);
    EXPECT_EQ(ours[i].usage.completion_tokens, theirs[i].usage.completion_tokens);
    EXPECT_GT(ours[i].usage.completion_tokens, 0);
  }
  EXPECT_EQ(m.at("usage").at("output_tokens"), theirs[0].usage.completion_tokens);
  EXPECT_EQ(done.at("response").at("usage").at("output_tokens"), theirs[1].usage.completion_tokens);
  EXPECT_EQ(done.at("response").at("usage").at("input_tokens"), theirs[1].usage.prompt_tokens);

  auto models = http_call(gw->port, gw_http::verb::get, "/v1/models");
  EXPECT_EQ(models.json().at("data").at(0).at("region"), "Germany (Frankfurt)");
}

TEST(Gateway, CachedTokensAndReasoningOfTheUpstreamAreBilled) {
  ScriptedUpstream up;
  auto gw = gateway_server(one_upstream(up.url()));
  auto r = post(gw->port, "/v1/messages",
                R"({"model": "deepseek-v4-flash", "max_tokens": 64, "stream": true,
                    "thinking": {"type": "enabled", "budget_tokens": 32},
                    "messages": [{"role": "user", "content": "Hi"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto events = sse_events(r.body);
  std::string text, thinking;
  for (auto& e : events)
    if (e.at("type") == "content_block_delta") {
      auto& d = e.at("delta");
      if (d.at("type") == "text_delta") text += std::string(d.at("text").as_string());
      if (d.at("type") == "thinking_delta") thinking += std::string(d.at("thinking").as_string());
    }
  EXPECT_EQ(text, "Hello world");
  EXPECT_EQ(thinking, "Think.");
  auto recs = records_once(*gw->usage, 1);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].usage.prompt_tokens, 7);
  EXPECT_EQ(recs[0].usage.cached_tokens, 3);
  EXPECT_EQ(recs[0].usage.completion_tokens, 5);
  EXPECT_EQ(recs[0].usage.reasoning_tokens, 2);
  EXPECT_EQ(recs[0].dialect, api::Dialect::anthropic);
  // The upstream was asked in Chat Completions, streamed, with usage.
  auto sent = json::parse(up.last_body);
  EXPECT_EQ(sent.at("model"), "deepseek-v4-flash");
  EXPECT_EQ(sent.at("stream"), true);
  EXPECT_EQ(sent.at("stream_options").at("include_usage"), true);
}

TEST(Gateway, AnUpstreamRefusalKeepsItsStatusInTheCallersDialectAndIsNotRetried) {
  ScriptedUpstream up;
  up.status = 400;
  auto gw = gateway_server(one_upstream(up.url()));
  auto a = post(gw->port, "/v1/messages",
                R"({"model": "deepseek-v4-flash", "max_tokens": 64, "stream": true, "messages": [{"role": "user", "content": "Hi"}]})");
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(a.json().at("type"), "error");
  EXPECT_EQ(a.json().at("error").at("type"), "invalid_request_error");
  EXPECT_EQ(a.json().at("error").at("message"), "scripted failure");
  auto c = post(gw->port, "/v1/chat/completions",
                R"({"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "Hi"}]})");
  EXPECT_EQ(c.status, 400);
  EXPECT_EQ(c.json().at("error").at("param"), "temperature");
  EXPECT_EQ(up.chat_requests, 2);
  auto recs = gw->usage->records();  // released, never in the ledger: nothing ran that the caller got
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].status, "refused");
  EXPECT_EQ(recs[1].status, "refused");
}

TEST(Gateway, FailsOverBeforeTheFirstByteThenEjectsTheDeadBackend) {
  ScriptedUpstream live;
  auto gw = gateway_server(R"({"models": {"deepseek-v4-flash": {"backends": [
      {"url": "http://127.0.0.1:)" + std::to_string(dead_port()) + R"(/v1", "name": "dead"},
      {"url": ")" + live.url() + R"(", "name": "live"}]}},
      "routing": {"health_interval_ms": 0, "eject_after_errors": 2, "eject_ms": 60000, "affinity_tokens": 0}})");
  for (int i = 0; i < 6; ++i) {
    auto r = post(gw->port, "/v1/chat/completions",
                  R"({"model": "deepseek-v4-flash", "stream": true, "messages": [{"role": "user", "content": "Hi"}]})");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(joined_text(sse_events(r.body), "object", "chat.completion.chunk", "id").empty(), false);
  }
  EXPECT_EQ(live.chat_requests, 6);
  EXPECT_EQ(records_once(*gw->usage, 6).size(), 6u);  // one ledger row per request, failovers included
  auto health = http_call(gw->port, gw_http::verb::get, "/health").json();
  auto& members = health.at("backends").at("deepseek-v4-flash").at("backends").as_array();
  EXPECT_EQ(members[0].at("name"), "dead");
  EXPECT_EQ(members[0].at("state"), "ejected");
  EXPECT_EQ(members[1].at("state"), "healthy");
  auto metrics = http_call(gw->port, gw_http::verb::get, "/metrics").body;
  EXPECT_NE(metrics.find(R"(v4flash:backend_ejections_total{model="deepseek-v4-flash",backend="dead"} 1)"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find(R"(v4flash:backend_errors_total{model="deepseek-v4-flash",backend="dead"} 2)"), std::string::npos);
  EXPECT_NE(metrics.find(R"(v4flash:backend_requests_total{model="deepseek-v4-flash",backend="live"} 6)"), std::string::npos);
}

TEST(Gateway, WithEveryBackendUnreachableTheCallerGetsBadGatewayInItsDialect) {
  auto gw = gateway_server(one_upstream("http://127.0.0.1:" + std::to_string(dead_port()) + "/v1"));
  auto a = post(gw->port, "/v1/messages",
                R"({"model": "deepseek-v4-flash", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]})");
  EXPECT_EQ(a.status, 502);
  EXPECT_EQ(a.json().at("type"), "error");
  EXPECT_NE(std::string(a.json().at("error").at("message").as_string()).find("cannot be reached"), std::string::npos);
}

TEST(Gateway, AHealthCheckTakesABackendOutAndBringsItBack) {
  ScriptedUpstream a, b;
  a.healthy = false;
  auto gw = gateway_server(R"({"models": {"deepseek-v4-flash": {"backends": [
      {"url": ")" + a.url() + R"(", "name": "a"}, {"url": ")" + b.url() + R"(", "name": "b"}]}},
      "routing": {"health_interval_ms": 50, "affinity_tokens": 0}})");
  auto state_of_a = [&] {
    return std::string(http_call(gw->port, gw_http::verb::get, "/health")
                           .json().at("backends").at("deepseek-v4-flash").at("backends").at(0).at("state").as_string());
  };
  for (int i = 0; i < 100 && state_of_a() != "down"; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(state_of_a(), "down");
  const std::string chat = R"({"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "Hi"}]})";
  for (int i = 0; i < 3; ++i) ASSERT_EQ(post(gw->port, "/v1/chat/completions", chat).status, 200);
  EXPECT_EQ(a.chat_requests, 0);
  EXPECT_EQ(b.chat_requests, 3);
  a.healthy = true;
  for (int i = 0; i < 100 && state_of_a() != "healthy"; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(state_of_a(), "healthy");
  ASSERT_EQ(post(gw->port, "/v1/chat/completions", chat).status, 200);
  EXPECT_EQ(a.chat_requests, 1);  // back in rotation (the least busy, first listed)
}

TEST(Gateway, PrefixAffinityKeepsAConversationOnOneBackend) {
  ScriptedUpstream a, b;
  auto gw = gateway_server(R"({"models": {"deepseek-v4-flash": {"backends": [
      {"url": ")" + a.url() + R"(", "name": "a"}, {"url": ")" + b.url() + R"(", "name": "b"}]}},
      "routing": {"health_interval_ms": 0, "affinity_tokens": 32}})");
  std::map<std::string, int> conversations_on;
  for (int c = 0; c < 12; ++c) {
    std::string system = "Conversation " + std::to_string(c) + ": you are a careful assistant who answers in full sentences, "
                         "cites what it knows, and says so when it does not know something. Keep every answer short.";
    json::array messages{json::object{{"role", "system"}, {"content", system}}};
    const int a0 = a.chat_requests, b0 = b.chat_requests;
    for (int turn = 0; turn < 3; ++turn) {
      messages.push_back(json::object{{"role", "user"}, {"content", "Question " + std::to_string(turn)}});
      json::object body{{"model", "deepseek-v4-flash"}, {"messages", messages}};
      ASSERT_EQ(post(gw->port, "/v1/chat/completions", json::serialize(body)).status, 200);
      messages.push_back(json::object{{"role", "assistant"}, {"content", "Hello world"}});
    }
    const int on_a = a.chat_requests - a0, on_b = b.chat_requests - b0;
    EXPECT_TRUE((on_a == 3 && on_b == 0) || (on_a == 0 && on_b == 3)) << "conversation " << c;
    ++conversations_on[on_a == 3 ? "a" : "b"];
  }
  EXPECT_GT(conversations_on["a"], 0);  // the prefixes spread over both
  EXPECT_GT(conversations_on["b"], 0);
}

TEST(Gateway, ParametersOutsideTheModelsListAreRefusedNamingThem) {
  ScriptedUpstream up;
  auto gw = gateway_server(R"({"models": {"deepseek-v4-flash": {"parameters": ["temperature", "max_tokens"],
      "backends": [{"url": ")" + up.url() + R"("}]}}, "routing": {"health_interval_ms": 0}})");
  auto ok = post(gw->port, "/v1/chat/completions",
                 R"({"model": "deepseek-v4-flash", "temperature": 0.5, "messages": [{"role": "user", "content": "Hi"}]})");
  EXPECT_EQ(ok.status, 200);
  auto no = post(gw->port, "/v1/chat/completions",
                 R"({"model": "deepseek-v4-flash", "top_p": 0.5, "messages": [{"role": "user", "content": "Hi"}]})");
  EXPECT_EQ(no.status, 400);
  EXPECT_EQ(no.json().at("error").at("param"), "top_p");
  EXPECT_EQ(up.chat_requests, 1);
}

// Chat `n` above 1 is not relayed: the gateway refuses it (422 naming n) before sending anything.
TEST(Gateway, ChatNAboveOneIsRefusedBeforeAnythingGoesUpstream) {
  ScriptedUpstream up;
  auto gw = gateway_server(R"({"models": {"deepseek-v4-flash": {"backends": [{"url": ")" + up.url() +
                           R"("}]}}, "routing": {"health_interval_ms": 0}})");
  auto no = post(gw->port, "/v1/chat/completions",
                 R"({"model": "deepseek-v4-flash", "n": 2, "messages": [{"role": "user", "content": "Hi"}]})");
  EXPECT_EQ(no.status, 422);
  EXPECT_EQ(no.json().at("error").at("param"), "n");
  EXPECT_EQ(up.chat_requests, 0);
  auto ok = post(gw->port, "/v1/chat/completions",
                 R"({"model": "deepseek-v4-flash", "n": 1, "messages": [{"role": "user", "content": "Hi"}]})");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(up.chat_requests, 1);
}

TEST(Gateway, AfterTheFirstByteAFailureIsNotRetriedElsewhere) {
  ScriptedUpstream broken, spare;
  broken.truncate = true;
  auto gw = gateway_server(R"({"models": {"deepseek-v4-flash": {"backends": [
      {"url": ")" + broken.url() + R"(", "name": "broken"}, {"url": ")" + spare.url() + R"(", "name": "spare"}]}},
      "routing": {"health_interval_ms": 0, "affinity_tokens": 0}})");
  auto r = post(gw->port, "/v1/chat/completions",
                R"({"model": "deepseek-v4-flash", "stream": true, "messages": [{"role": "user", "content": "Hi"}]})");
  ASSERT_EQ(r.status, 200);
  auto events = sse_events(r.body);
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(events.back().as_object().contains("error")) << r.body;  // the stream's own error event
  EXPECT_EQ(broken.chat_requests, 1);
  EXPECT_EQ(spare.chat_requests, 0);
  auto recs = records_once(*gw->usage, 1);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].status, "failed");
}

namespace {

// A client that goes away mid-answer: a streamed chat on `port`, read until any of `markers` shows
// (a token arrived), then the connection reset (not a polite close).
void stream_then_reset(uint16_t port, std::initializer_list<const char*> markers) {
  gw_net::io_context ioc;
  gw_beast::tcp_stream s(ioc);
  s.connect(gw_tcp::endpoint(gw_net::ip::make_address("127.0.0.1"), port));
  gw_http::request<gw_http::string_body> req{gw_http::verb::post, "/v1/chat/completions", 11};
  req.set(gw_http::field::host, "localhost");
  req.set(gw_http::field::content_type, "application/json");
  req.body() = R"({"model": "deepseek-v4-flash", "stream": true, "messages": [{"role": "user", "content": "Hi"}]})";
  req.prepare_payload();
  gw_http::write(s, req);
  std::string seen;
  char buf[4096];
  auto arrived = [&] {
    return std::any_of(markers.begin(), markers.end(), [&](const char* m) { return seen.find(m) != std::string::npos; });
  };
  while (!arrived()) seen.append(buf, s.socket().read_some(gw_net::buffer(buf)));
  s.socket().set_option(gw_net::socket_base::linger(true, 0));
}

}  // namespace

TEST(Gateway, AClientThatGoesAwayCancelsTheUpstreamRequest) {
  auto upstream = v4flash_upstream(/*token_delay_us=*/20000);  // ~0.5 s for the whole answer
  auto gw = gateway_server(one_upstream("http://127.0.0.1:" + std::to_string(upstream->port) + "/v1"));
  stream_then_reset(gw->port, {"\"content\":\""});  // once the answer's first token arrived
  auto theirs = records_once(*upstream->usage, 1);
  ASSERT_EQ(theirs.size(), 1u);
  EXPECT_EQ(theirs[0].status, "cancelled");
  auto ours = records_once(*gw->usage, 1);
  ASSERT_EQ(ours.size(), 1u);
  EXPECT_EQ(ours[0].status, "cancelled");
}

namespace {

// A multi-turn workload: `conversations` conversations of `turns` turns, each with its own system
// prompt; the cached share (cached / prompt tokens) the server's ledger records for it.
double cached_share(uint16_t port, ServerHarness& ledger, int conversations, int turns) {
  const size_t before = ledger.usage->records().size();
  for (int turn = 0; turn < turns; ++turn)
    for (int c = 0; c < conversations; ++c) {  // interleaved, as real traffic is
      json::array messages{json::object{
          {"role", "system"},
          {"content", "Conversation " + std::to_string(c) + ". You are a careful assistant who answers in full "
                      "sentences, cites what it knows, and says so when it does not know something."}}};
      for (int t = 0; t <= turn; ++t) {
        messages.push_back(json::object{{"role", "user"}, {"content", "Question " + std::to_string(t) + " of " +
                                                                          std::to_string(c)}});
        if (t < turn) messages.push_back(json::object{{"role", "assistant"}, {"content", kScriptedAnswer}});
      }
      json::object body{{"model", "deepseek-v4-flash"}, {"messages", messages}, {"thinking", json::object{{"type", "disabled"}}}};
      EXPECT_EQ(post(port, "/v1/chat/completions", json::serialize(body)).status, 200);
    }
  int64_t prompt = 0, cached = 0;
  auto recs = ledger.usage->records();
  for (size_t i = before; i < recs.size(); ++i) prompt += recs[i].usage.prompt_tokens, cached += recs[i].usage.cached_tokens;
  return prompt ? double(cached) / double(prompt) : 0;
}

}  // namespace

TEST(Gateway, PrefixAffinityKeepsTheCachedShareOfOneEngine) {
  auto alone = v4flash_upstream();
  const double one_engine = cached_share(alone->port, *alone, 8, 4);
  auto a = v4flash_upstream(), b = v4flash_upstream();
  auto gw = gateway_server(R"({"models": {"deepseek-v4-flash": {"backends": [
      {"url": "http://127.0.0.1:)" + std::to_string(a->port) + R"(/v1", "name": "a"},
      {"url": "http://127.0.0.1:)" + std::to_string(b->port) + R"(/v1", "name": "b"}]}},
      "routing": {"health_interval_ms": 0, "affinity_tokens": 32}})");
  const double two_engines = cached_share(gw->port, *gw, 8, 4);
  std::printf("cached share of the workload: one engine %.3f, two engines behind the gateway %.3f (%.1f%%)\n", one_engine,
              two_engines, 100 * two_engines / one_engine);
  EXPECT_GT(one_engine, 0.3);
  EXPECT_GE(two_engines, 0.9 * one_engine);
  EXPECT_GT(a->usage->records().size(), 0u);  // both engines took conversations
  EXPECT_GT(b->usage->records().size(), 0u);
}

TEST(Gateway, AnHttpsUpstreamIsVerifiedAndGetsItsKeyFromTheEnvironment) {
  FakeLinkup up(/*tls=*/true);
  up.script({FakeReply(200, ScriptedUpstream::stream_body())});
  ::setenv("V4_GATEWAY_TEST_KEY", "sk-upstream-secret", 1);
  auto gw = gateway_server(R"({"models": {"deepseek-v4-flash": {"backends": [{"url": ")" + up.base_url() +
                           R"(", "api_key_env": "V4_GATEWAY_TEST_KEY", "ca_file": ")" + up.ca_file() +
                           R"("}]}}, "routing": {"health_interval_ms": 0}})");
  auto r = post(gw->port, "/v1/chat/completions",
                R"({"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "Hi"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json().at("choices").at(0).at("message").at("content"), "Hello world");
  auto seen = up.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].target, "/v1/chat/completions");
  EXPECT_EQ(seen[0].authorization, "Bearer sk-upstream-secret");
}

TEST(Gateway, AnHttpsUpstreamWhoseCertificateIsNotTrustedIsNotUsed) {
  FakeLinkup up(/*tls=*/true);  // its CA is not given to the gateway
  up.script({FakeReply(200, ScriptedUpstream::stream_body())});
  auto gw = gateway_server(one_upstream(up.base_url()));
  auto r = post(gw->port, "/v1/chat/completions",
                R"({"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "Hi"}]})");
  EXPECT_EQ(r.status, 502);
  EXPECT_NE(r.body.find("certificate"), std::string::npos) << r.body;
  EXPECT_TRUE(up.seen().empty());
}

TEST(Gateway, APoolMixesTheLocalEngineWithAnUpstream) {
  auto upstream = v4flash_upstream();
  ScriptedEngineOptions o;
  o.token_delay_us = 0;
  auto gw = gateway_server(R"({"models": {"deepseek-v4-flash": {"backends": [{"local": true},
      {"url": "http://127.0.0.1:)" + std::to_string(upstream->port) + R"(/v1", "name": "up"}]}},
      "routing": {"health_interval_ms": 0, "affinity_tokens": 16}})",
                           create_scripted_engine(gateway_tokenizer(), o));
  for (int c = 0; c < 12; ++c) {
    json::object body{{"model", "deepseek-v4-flash"}, {"stream", c % 2 == 0},
                      {"messages", json::array{json::object{{"role", "system"}, {"content", "Conversation " + std::to_string(c) +
                          ": you are a careful assistant who answers in full sentences and says so when it does not know."}},
                                               json::object{{"role", "user"}, {"content", "Hi"}}}}};
    auto r = post(gw->port, "/v1/messages", [&] { body["max_tokens"] = 256; return json::serialize(body); }());
    ASSERT_EQ(r.status, 200) << r.body;
    if (c % 2) {
      EXPECT_NE(r.body.find("fake engine of v4flash"), std::string::npos) << r.body;
    }
  }
  auto ours = records_once(*gw->usage, 12);  // half of them streamed
  const size_t upstream_runs = upstream->usage->records().size();
  ASSERT_EQ(ours.size(), 12u);
  EXPECT_GT(upstream_runs, 0u);
  EXPECT_LT(upstream_runs, 12u);  // the rest ran on the gateway's own engine
  for (auto& r : ours) {
    EXPECT_EQ(r.status, "completed");
    EXPECT_GT(r.usage.prompt_tokens, 0);
    EXPECT_GT(r.usage.completion_tokens, 0);
  }
}

TEST(Gateway, AClientThatGoesAwayCancelsALocalRunInAPool) {
  ScriptedEngineOptions o;
  o.token_delay_us = 20000;
  auto gw = gateway_server(R"({"models": {"deepseek-v4-flash": {"backends": [{"local": true},
      {"url": "http://127.0.0.1:)" + std::to_string(dead_port()) + R"(/v1", "name": "spare"}]}},
      "routing": {"health_interval_ms": 0, "affinity_tokens": 0}})",
                           create_scripted_engine(gateway_tokenizer(), o));
  stream_then_reset(gw->port, {"\"content\":\"", "\"reasoning_content\":\""});
  auto recs = records_once(*gw->usage, 1);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].status, "cancelled");
  EXPECT_LT(recs[0].usage.completion_tokens, 20);
}

TEST(Gateway, AnAnthropicStreamFromTheLocalEngineInAPoolOpensWithItsCachedTokens) {
  ScriptedEngineOptions o;
  o.token_delay_us = 0;
  auto gw = gateway_server(R"({"models": {"deepseek-v4-flash": {"backends": [{"local": true},
      {"url": "http://127.0.0.1:)" + std::to_string(dead_port()) + R"(/v1", "name": "spare"}]}},
      "routing": {"health_interval_ms": 0, "affinity_tokens": 0}})",
                           create_scripted_engine(gateway_tokenizer(), o));
  const std::string body = R"({"model":"deepseek-v4-flash","stream":true,"max_tokens":16,"system":")" +
                           std::string(400, 'x') + R"(","messages":[{"role":"user","content":"Hi"}]})";
  json::value start, end;
  for (int i = 0; i < 2; ++i) {  // the second identical prompt hits the engine's prefix cache
    auto r = post(gw->port, "/v1/messages", body);
    ASSERT_EQ(r.status, 200) << r.body;
    for (auto& ev : sse_events(r.body)) {
      if (ev.at("type") == "message_start") start = ev.at("message").at("usage");
      if (ev.at("type") == "message_delta") end = ev.at("usage");
    }
  }
  EXPECT_GT(start.at("cache_read_input_tokens").as_int64(), 0);
  EXPECT_EQ(start.at("cache_read_input_tokens"), end.at("cache_read_input_tokens"));
  EXPECT_EQ(start.at("input_tokens"), end.at("input_tokens"));
}

TEST(Gateway, AnUpstreamSilentPastTheFirstByteTimeoutIsLeftForAnother) {
  ScriptedUpstream slow, live;
  slow.delay_ms = 3000;
  auto gw = gateway_server(R"({"models": {"deepseek-v4-flash": {"backends": [
      {"url": ")" + slow.url() + R"(", "name": "slow"}, {"url": ")" + live.url() + R"(", "name": "live"}]}},
      "routing": {"health_interval_ms": 0, "affinity_tokens": 0, "first_byte_timeout_ms": 200}})");
  const auto t0 = std::chrono::steady_clock::now();
  auto r = post(gw->port, "/v1/chat/completions",
                R"({"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "Hi"}]})");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json().at("choices").at(0).at("message").at("content"), "Hello world");
  EXPECT_LT(seconds, 2.0);
  EXPECT_EQ(slow.chat_requests, 1);
  EXPECT_EQ(live.chat_requests, 1);
  auto metrics = http_call(gw->port, gw_http::verb::get, "/metrics").body;
  EXPECT_NE(metrics.find(R"(v4flash:backend_failovers_total{model="deepseek-v4-flash",backend="slow"} 1)"), std::string::npos)
      << metrics;
}

TEST(Gateway, ABackendAtItsConcurrencyLimitIsPassedOverEvenForItsPrefix) {
  ScriptedUpstream a, b;
  a.delay_ms = 400;
  b.delay_ms = 400;
  auto gw = gateway_server(R"({"models": {"deepseek-v4-flash": {"backends": [
      {"url": ")" + a.url() + R"(", "name": "a", "max_concurrency": 1},
      {"url": ")" + b.url() + R"(", "name": "b", "max_concurrency": 1}]}},
      "routing": {"health_interval_ms": 0, "affinity_tokens": 8}})");
  // One prefix: both prefer the same backend, which takes only one at a time.
  const std::string chat = R"({"model": "deepseek-v4-flash", "messages": [{"role": "system", "content": "One shared )"
                           R"(system prompt, long enough to be hashed."}, {"role": "user", "content": "Hi"}]})";
  std::thread first([&] { EXPECT_EQ(post(gw->port, "/v1/chat/completions", chat).status, 200); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(post(gw->port, "/v1/chat/completions", chat).status, 200);
  first.join();
  EXPECT_EQ(a.chat_requests, 1);
  EXPECT_EQ(b.chat_requests, 1);
  // One at a time, the prefix keeps to its backend.
  EXPECT_EQ(post(gw->port, "/v1/chat/completions", chat).status, 200);
  EXPECT_EQ(post(gw->port, "/v1/chat/completions", chat).status, 200);
  EXPECT_EQ(std::max(a.chat_requests.load(), b.chat_requests.load()), 3);
}

TEST(Gateway, StoredResponsesAreKeptHereAndTheirConversationGoesUpstream) {
  ScriptedUpstream up;
  auto gw = gateway_server(one_upstream(up.url()));
  auto first = post(gw->port, "/v1/responses", R"({"model": "deepseek-v4-flash", "input": "My name is Ada."})");
  ASSERT_EQ(first.status, 200) << first.body;
  const std::string id(first.json().at("id").as_string());
  auto stored = http_call(gw->port, gw_http::verb::get, "/v1/responses/" + id);
  ASSERT_EQ(stored.status, 200) << stored.body;
  EXPECT_EQ(stored.json().at("output"), first.json().at("output"));
  auto second = post(gw->port, "/v1/responses",
                     R"({"model": "deepseek-v4-flash", "input": "What is my name?", "previous_response_id": ")" + id + R"("})");
  ASSERT_EQ(second.status, 200) << second.body;
  auto sent = json::parse(up.last_body).at("messages").as_array();  // the whole chain, as Chat messages
  ASSERT_GE(sent.size(), 3u);
  EXPECT_EQ(sent[sent.size() - 3].at("content"), "My name is Ada.");
  EXPECT_EQ(sent[sent.size() - 2].at("role"), "assistant");
  EXPECT_EQ(sent.back().at("content"), "What is my name?");
}
