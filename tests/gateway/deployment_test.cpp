// serve --deployment's file: the documented shape is read; every mistake names its key path.
#include <gtest/gtest.h>

#include <cstring>

#include "gateway/deployment.h"

using v4::gateway::Deployment;

namespace {

const char* fake_env(const char* name) { return std::strcmp(name, "UPSTREAM_KEY") == 0 ? "sk-upstream" : nullptr; }

std::string error_of(const std::string& text) {
  try {
    Deployment::from_json(text, fake_env);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(accepted)";
}

}  // namespace

TEST(Deployment, TheDocumentedShapeIsRead) {
  auto d = Deployment::from_json(R"J({"models": {
      "deepseek-v4-flash": {"region": "Germany (Frankfurt)", "backends": [
          {"url": "http://engine-2.internal:8000/v1/", "model": "dsv4", "api_key_env": "UPSTREAM_KEY", "max_concurrency": 8},
          {"local": true}]},
      "deepseek-v4-flash:variant1": {"region": "Singapore", "rates": {"input": "0.5", "output": "1"},
          "parameters": ["temperature", "max_tokens"], "backends": [{"url": "https://sg.example/v1"}]}},
    "routing": {"eject_after_errors": 2, "eject_ms": 500, "health_interval_ms": 0}})J",
                                 fake_env);
  ASSERT_EQ(d.models.size(), 2u);
  const auto& base = d.models.at("deepseek-v4-flash");
  EXPECT_EQ(base.region, "Germany (Frankfurt)");
  ASSERT_EQ(base.backends.size(), 2u);
  EXPECT_EQ(base.backends[0].url, "http://engine-2.internal:8000/v1");  // trailing '/' dropped
  EXPECT_EQ(base.backends[0].model, "dsv4");
  EXPECT_EQ(base.backends[0].api_key, "sk-upstream");
  EXPECT_EQ(base.backends[0].max_concurrency, 8);
  EXPECT_TRUE(base.backends[1].local);
  EXPECT_FALSE(base.rates.has_value());
  EXPECT_FALSE(base.parameters.has_value());
  const auto& v1 = d.models.at("deepseek-v4-flash:variant1");
  EXPECT_EQ(v1.backends[0].model, "deepseek-v4-flash:variant1");  // the upstream's name defaults to the id
  ASSERT_TRUE(v1.rates.has_value());
  EXPECT_EQ(v1.rates->input_per_token, 500);   // 0.5 USD per 1M tokens = 500 nanodollars per token
  EXPECT_EQ(v1.rates->output_per_token, 1000);
  EXPECT_EQ(*v1.parameters, (std::vector<std::string>{"temperature", "max_tokens"}));
  EXPECT_EQ(d.routing.eject_after_errors, 2);
  EXPECT_EQ(d.routing.eject_time.count(), 500);
  EXPECT_EQ(d.routing.health_interval.count(), 0);
  EXPECT_TRUE(d.has_local());
}

TEST(Deployment, ErrorsNameTheKeyPath) {
  struct Case {
    const char* text;
    const char* path;
  } cases[] = {
      {R"({"models": {}})", "models:"},
      {R"({"modles": {}})", "(top).modles:"},
      {R"({"models": {"m": {"region": "x"}}})", "models.m.backends: is required"},
      {R"({"models": {"m": {"backends": []}}})", "models.m.backends: must be a non-empty list"},
      {R"({"models": {"m": {"backends": [{"url": "ftp://x"}]}}})", "models.m.backends[0].url: must start with"},
      {R"({"models": {"m": {"backends": [{"local": true}, {"model": "x"}]}}})", "models.m.backends[1].url: is required"},
      {R"({"models": {"m": {"backends": [{"url": "http://a/v1", "api_key_env": "NOT_SET"}]}}})",
       "models.m.backends[0].api_key_env: the environment variable NOT_SET is not set"},
      {R"({"models": {"m": {"backends": [{"url": "http://a/v1", "weight": 2}]}}})", "models.m.backends[0].weight: unknown key"},
      {R"({"models": {"m": {"backends": [{"local": false}]}}})", "models.m.backends[0].local: must be true"},
      {R"({"models": {"m": {"backends": [{"local": true}, {"local": true}]}}})", "models.m.backends[1]: the local engine is listed twice"},
      {R"({"models": {"m": {"backends": [{"local": true}], "rates": {"input": "1"}}}})", "models.m.rates:"},
      {R"({"models": {"m": {"backends": [{"local": true}], "parameters": [3]}}})", "models.m.parameters[0]:"},
      {R"({"models": {"m": {"backends": [{"url": "http://a/v1", "extra_body": {"stream": false}}]}}})",
       "models.m.backends[0].extra_body.stream: is set by the gateway"},
      {R"({"models": {"m": {"backends": [{"local": true}]}}, "routing": {"eject_after_errors": 0}})",
       "routing.eject_after_errors: must be between"},
  };
  for (auto& c : cases) EXPECT_NE(error_of(c.text).find(c.path), std::string::npos) << c.text << " -> " << error_of(c.text);
  EXPECT_NE(error_of("{").find("not JSON"), std::string::npos);
}
