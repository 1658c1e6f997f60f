// prompt_cache_key behind a gateway (docs/deployment.md, "Prefix affinity"): the key, when given, is
// what a request's backend is chosen by, instead of its prompt's first tokens.
#include <gtest/gtest.h>

#include <map>

#include "harness.h"

using namespace v4;
using namespace v4::testing;
namespace json = boost::json;

// Requests that share a key go to one backend whatever their prompts (each one's system prompt is its
// own here, so by prefix alone they would spread); the keys spread over both backends.
TEST(PromptCacheKey, RequestsSharingAKeyGoToOneBackendWhateverTheirPrompts) {
  ScriptedUpstream a, b;
  auto gw = gateway_server(R"({"models": {"deepseek-v4-flash": {"backends": [
      {"url": ")" + a.url() + R"(", "name": "a"}, {"url": ")" + b.url() + R"(", "name": "b"}]}},
      "routing": {"health_interval_ms": 0, "affinity_tokens": 32}})");
  std::map<std::string, int> keys_on;
  for (int k = 0; k < 12; ++k) {
    const int a0 = a.chat_requests, b0 = b.chat_requests;
    for (int r = 0; r < 3; ++r) {
      const std::string system = "Request " + std::to_string(r) + " of key " + std::to_string(k) +
                                 ": you are a careful assistant who answers in full sentences, cites what it "
                                 "knows, says so when it does not know something, and keeps every answer short and plain.";
      json::object body{{"model", "deepseek-v4-flash"},
                        {"prompt_cache_key", "key-" + std::to_string(k)},
                        {"messages", json::array{json::object{{"role", "system"}, {"content", system}},
                                                 json::object{{"role", "user"}, {"content", "Hi"}}}}};
      ASSERT_EQ(post(gw->port, "/v1/chat/completions", json::serialize(body)).status, 200);
    }
    const int on_a = a.chat_requests - a0, on_b = b.chat_requests - b0;
    EXPECT_TRUE((on_a == 3 && on_b == 0) || (on_a == 0 && on_b == 3)) << "key " << k << ": " << on_a << " on a, " << on_b << " on b";
    ++keys_on[on_a == 3 ? "a" : "b"];
  }
  EXPECT_GT(keys_on["a"], 0);
  EXPECT_GT(keys_on["b"], 0);
}
