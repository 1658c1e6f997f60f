// The dialects' search tools run by the server (docs/api.md, "Web search"): the scripted engine
// emits a web_search call, the service runs it with a scripted provider, gives the results to the
// model and decodes on within the same request; the outputs in the Responses and Anthropic shapes,
// max_uses, provider failures as error results, the loop's bound, user tools beside it, billing.
// The provider's result text carries the next script marker, so the second round's output shows
// that the results reached the model's prompt.
#include <gtest/gtest.h>

#include <mutex>

#include "api/service.h"
#include "script.h"
#include "service_fixture.h"

using namespace v4;
using namespace v4::api;
namespace json = boost::json;

namespace {

const std::string kEos = "<｜end▁of▁sentence｜>";

using v4::testing::demo_tokenizer;

std::string invoke(const std::string& name, const std::string& param, const std::string& value) {
  return "<｜DSML｜invoke name=\"" + name + "\">\n<｜DSML｜parameter name=\"" + param + "\" string=\"true\">" + value +
         "</｜DSML｜parameter>\n</｜DSML｜invoke>\n";
}
std::string calls(const std::string& invokes) {
  return "Let me search.</think>\n\n<｜DSML｜tool_calls>\n" + invokes + "</｜DSML｜tool_calls>" + kEos;
}
const std::string kSearch = calls(invoke("web_search", "query", "capital of Switzerland"));
const std::string kAnswer = "Found it.</think>Bern is the capital [1], see also [2].";

// Answers with two results whose text holds the script of the model's next round; fails the first
// `failures` calls (-1: every call).
class ScriptedProvider final : public search::Provider {
 public:
  std::vector<search::Result> search(const search::Query& q) const override {
    std::lock_guard l(mu_);
    queries_.push_back(q);
    if (failures_ < 0 || int(queries_.size()) <= failures_)
      throw search::Error(search::Error::Kind::unavailable, "provider down", 503);
    return {{"Bern - Wikipedia", "https://en.wikipedia.org/wiki/Bern", "Bern is the capital. " + v4::testing::script_marker(next_ + kEos), "2026-01-02"},
            {"Swiss cities", "https://example.ch/cities", "Zurich is the largest city.", std::nullopt}};
  }
  std::string name() const override { return "scripted"; }
  bool live_web() const override { return live_; }
  std::vector<search::Query> queries() const {
    std::lock_guard l(mu_);
    return queries_;
  }
  int failures_ = 0;
  bool live_ = true;
  std::string next_ = kAnswer;

 private:
  mutable std::mutex mu_;
  mutable std::vector<search::Query> queries_;
};

struct Fixture : v4::testing::SearchServiceFixture<ScriptedProvider> {
  using SearchServiceFixture::SearchServiceFixture;
  // A request in `dialect` with the script in its system prompt and `tools`.
  PreparedRequest prepare(Dialect d, const std::string& script, const std::string& tools, const std::string& more = "") {
    const std::string sys = json::serialize(json::value(v4::testing::script_marker(script)));
    std::string body;
    if (d == Dialect::anthropic)
      body = R"({"model":"deepseek-v4-flash","max_tokens":4096,"system":)" + sys +
             R"(,"messages":[{"role":"user","content":"What is the capital of Switzerland?"}],"tools":)" + tools + more + "}";
    else
      body = R"({"model":"deepseek-v4-flash","input":[{"role":"system","content":)" + sys +
             R"(},{"role":"user","content":"What is the capital of Switzerland?"}],"tools":)" + tools + more + "}";
    return service->prepare(d, body);
  }
};

std::vector<std::string> types_of(const json::array& a) {
  std::vector<std::string> out;
  for (auto& v : a) out.emplace_back(v.at("type").as_string());
  return out;
}

const std::string kAnthropicTool = R"([{"type":"web_search_20250305","name":"web_search"}])";

}  // namespace

TEST(SearchTool, ResponsesRunsTheCallAndAnswersWithCitedSources) {
  Fixture f;
  auto p = f.prepare(Dialect::responses, kSearch, R"([{"type":"web_search"}])", R"(,"include":["web_search_call.action.sources"])");
  EXPECT_TRUE(p.req.withheld_tools.empty());
  ASSERT_EQ(p.req.tools.size(), 1u);
  EXPECT_EQ(p.req.tools[0].at("function").at("name"), "web_search");
  auto [turn, outcome] = f.run(p);
  ASSERT_EQ(f.provider->queries().size(), 1u);
  EXPECT_EQ(f.provider->queries()[0].text, "capital of Switzerland");
  EXPECT_EQ(outcome.stop, StopKind::end_turn);
  EXPECT_EQ(outcome.usage.web_search_calls, 1);
  EXPECT_GT(outcome.usage.prompt_tokens, int(p.prompt.size()));  // two rounds' prompts
  auto r = render_response(p.req, p.meta, turn, outcome);
  auto& out = r.at("output").as_array();
  EXPECT_EQ(types_of(out), (std::vector<std::string>{"reasoning", "web_search_call", "reasoning", "message"}));
  auto& call = out[1].as_object();
  EXPECT_EQ(call.at("status"), "completed");
  EXPECT_EQ(call.at("action").at("type"), "search");
  EXPECT_EQ(call.at("action").at("query"), "capital of Switzerland");
  EXPECT_EQ(call.at("action").at("sources").at(0).at("url"), "https://en.wikipedia.org/wiki/Bern");
  EXPECT_NE(out[0].at("id"), out[2].at("id"));
  auto& text = out[3].at("content").at(0).as_object();
  EXPECT_EQ(text.at("text"), "Bern is the capital [1], see also [2].");
  auto& ann = text.at("annotations").as_array();
  ASSERT_EQ(ann.size(), 2u);
  EXPECT_EQ(ann[0].at("type"), "url_citation");
  EXPECT_EQ(ann[0].at("start_index"), 20);
  EXPECT_EQ(ann[0].at("end_index"), 23);
  EXPECT_EQ(ann[0].at("url"), "https://en.wikipedia.org/wiki/Bern");
  EXPECT_EQ(ann[1].at("url"), "https://example.ch/cities");
  EXPECT_EQ(r.at("usage").at("server_tool_use").at("web_search_requests"), 1);
  ASSERT_EQ(f.sink->records().size(), 1u);
  EXPECT_EQ(f.sink->records()[0].web_search_calls, 1);
}

TEST(SearchTool, AnthropicBlocksServerToolUseResultAndCitations) {
  Fixture f;
  auto p = f.prepare(Dialect::anthropic, kSearch, kAnthropicTool);
  auto [turn, outcome] = f.run(p);
  auto m = render_response(p.req, p.meta, turn, outcome);
  auto& c = m.at("content").as_array();
  EXPECT_EQ(types_of(c), (std::vector<std::string>{"thinking", "server_tool_use", "web_search_tool_result", "thinking", "text"}));
  EXPECT_EQ(c[1].at("name"), "web_search");
  EXPECT_EQ(c[1].at("input").at("query"), "capital of Switzerland");
  EXPECT_EQ(c[2].at("tool_use_id"), c[1].at("id"));
  EXPECT_TRUE(std::string(c[1].at("id").as_string()).starts_with("srvtoolu_"));
  auto& results = c[2].at("content").as_array();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].at("type"), "web_search_result");
  EXPECT_EQ(results[0].at("page_age"), "2026-01-02");
  EXPECT_EQ(unseal_reasoning(std::string(results[1].at("encrypted_content").as_string()), "x"), "Zurich is the largest city.");
  auto& cites = c[4].at("citations").as_array();
  ASSERT_EQ(cites.size(), 2u);
  EXPECT_EQ(cites[0].at("type"), "web_search_result_location");
  EXPECT_EQ(cites[1].at("cited_text"), "Zurich is the largest city.");
  EXPECT_EQ(m.at("stop_reason"), "end_turn");
  EXPECT_EQ(m.at("usage").at("server_tool_use").at("web_search_requests"), 1);
}

// max_uses 1 and two calls in one round: the second is not run and the model reads why.
TEST(SearchTool, MaxUsesIsEnforcedWithAnErrorResult) {
  Fixture f;
  auto p = f.prepare(Dialect::anthropic,
                     calls(invoke("web_search", "query", "Bern") + invoke("web_search", "query", "Zurich")),
                     R"([{"type":"web_search_20250305","name":"web_search","max_uses":1}])");
  auto [turn, outcome] = f.run(p);
  ASSERT_EQ(f.provider->queries().size(), 1u);
  EXPECT_EQ(f.provider->queries()[0].text, "Bern");
  const json::object m = render_response(p.req, p.meta, turn, outcome);
  auto& c = m.at("content").as_array();
  EXPECT_EQ(types_of(c), (std::vector<std::string>{"thinking", "server_tool_use", "server_tool_use",
                                                   "web_search_tool_result", "web_search_tool_result", "thinking", "text"}));
  EXPECT_TRUE(c[3].at("content").is_array());
  EXPECT_EQ(c[4].at("content").at("type"), "web_search_tool_result_error");
  EXPECT_EQ(c[4].at("content").at("error_code"), "max_uses_exceeded");
  EXPECT_EQ(outcome.usage.web_search_calls, 1);
  EXPECT_EQ(f.sink->records().at(0).web_search_calls, 1);
}

// The provider fails: the model gets an error result (and may search again), nothing is billed for
// the failed call.
TEST(SearchTool, ProviderFailureIsAnErrorResultToTheModel) {
  Fixture f;
  f.provider->failures_ = 1;
  auto p = f.prepare(Dialect::anthropic, kSearch, kAnthropicTool);
  auto [turn, outcome] = f.run(p);
  EXPECT_EQ(f.provider->queries().size(), 2u);
  const json::object m = render_response(p.req, p.meta, turn, outcome);
  auto& c = m.at("content").as_array();
  EXPECT_EQ(types_of(c), (std::vector<std::string>{"thinking", "server_tool_use", "web_search_tool_result", "thinking",
                                                   "server_tool_use", "web_search_tool_result", "thinking", "text"}));
  EXPECT_EQ(c[2].at("content").at("error_code"), "unavailable");
  EXPECT_TRUE(c[5].at("content").is_array());
  EXPECT_EQ(outcome.usage.web_search_calls, 1);
  // Responses: the failed search is a failed web_search_call item.
  Fixture g;
  g.provider->failures_ = 1;
  auto q = g.prepare(Dialect::responses, kSearch, R"([{"type":"web_search"}])");
  auto [t2, o2] = g.run(q);
  const json::object r = render_response(q.req, q.meta, t2, o2);
  auto& out = r.at("output").as_array();
  EXPECT_EQ(out[1].at("type"), "web_search_call");
  EXPECT_EQ(out[1].at("status"), "failed");
  EXPECT_EQ(out[3].at("status"), "completed");
}

// A model that keeps searching is stopped after ten rounds: Anthropic's pause_turn.
TEST(SearchTool, TheLoopIsBoundedAndPauses) {
  Fixture f;
  f.provider->failures_ = -1;
  auto p = f.prepare(Dialect::anthropic, kSearch, kAnthropicTool);
  auto [turn, outcome] = f.run(p);
  EXPECT_EQ(f.provider->queries().size(), 10u);
  EXPECT_EQ(outcome.stop, StopKind::pause_turn);
  EXPECT_EQ(outcome.usage.web_search_calls, 0);
  EXPECT_EQ(render_response(p.req, p.meta, turn, outcome).at("stop_reason"), "pause_turn");
}

// Beside the user's function tools: the search runs, the user's call ends the turn as usual.
TEST(SearchTool, UserToolCallsAreReturnedNotRun) {
  Fixture f;
  auto p = f.prepare(Dialect::anthropic, calls(invoke("web_search", "query", "Bern") + invoke("get_weather", "city", "Bern")),
                     R"([{"type":"web_search_20250305","name":"web_search"},{"name":"get_weather","input_schema":{"type":"object"}}])");
  auto [turn, outcome] = f.run(p);
  EXPECT_EQ(f.provider->queries().size(), 1u);
  EXPECT_EQ(outcome.stop, StopKind::tool_calls);
  auto m = render_response(p.req, p.meta, turn, outcome);
  EXPECT_EQ(types_of(m.at("content").as_array()),
            (std::vector<std::string>{"thinking", "server_tool_use", "tool_use", "web_search_tool_result"}));
  EXPECT_EQ(m.at("stop_reason"), "tool_use");
  EXPECT_EQ(m.at("content").at(2).at("name"), "get_weather");
}

// Search off: Anthropic's tool is refused naming it; the Responses tool (Codex sends it by default)
// is withheld and named. external_web_access: false is served by a local index only.
TEST(SearchTool, OffOrOfflineOnlyIsRefusedOrWithheld) {
  Fixture off(/*with_search=*/false);
  try {
    off.prepare(Dialect::anthropic, kSearch, kAnthropicTool);
    ADD_FAILURE() << "accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, "tools[0].type");
    EXPECT_NE(std::string(e.what()).find("not enabled"), std::string::npos);
  }
  auto r = off.prepare(Dialect::responses, kSearch, R"([{"type":"web_search"}])");
  ASSERT_EQ(r.req.withheld_tools.size(), 1u);
  EXPECT_TRUE(r.req.tools.empty());
  EXPECT_EQ(r.req.withheld_reason, "web search is not enabled on this server");

  Fixture live;
  auto cached = live.prepare(Dialect::responses, kSearch, R"([{"type":"web_search","external_web_access":false}])");
  ASSERT_EQ(cached.req.withheld_tools.size(), 1u);
  EXPECT_NE(cached.req.withheld_reason.find("external_web_access"), std::string::npos);
  Fixture local;
  local.provider->live_ = false;
  auto offline = local.prepare(Dialect::responses, kSearch, R"([{"type":"web_search","external_web_access":false}])");
  EXPECT_TRUE(offline.req.withheld_tools.empty());
  EXPECT_EQ(offline.req.tools.size(), 1u);
  try {
    live.prepare(Dialect::anthropic, kSearch, R"([{"type":"web_search_20250305","name":"web_search","user_location":{"type":"approximate"}}])");
    ADD_FAILURE() << "accepted user_location";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.param, "tools[0].user_location");
  }
}

// The client sends the turn back (Anthropic blocks, Responses items): the model reads the earlier
// call and its results again.
TEST(SearchTool, EarlierSearchesAreReadBack) {
  Fixture f;
  auto p = f.prepare(Dialect::anthropic, kSearch, kAnthropicTool);
  auto [turn, outcome] = f.run(p);
  json::object m = render_response(p.req, p.meta, turn, outcome);
  json::array history{json::object{{"role", "user"}, {"content", "What is the capital of Switzerland?"}},
                      json::object{{"role", "assistant"}, {"content", m.at("content")}},
                      json::object{{"role", "user"}, {"content", "Thanks"}}};
  json::object body{{"model", "deepseek-v4-flash"}, {"max_tokens", 64}, {"messages", history}};
  auto again = f.service->prepare(Dialect::anthropic, json::serialize(body));
  const std::string prompt = demo_tokenizer()->decode(again.prompt);
  EXPECT_NE(prompt.find("Zurich is the largest city."), std::string::npos);
  EXPECT_NE(prompt.find("capital of Switzerland"), std::string::npos);

  auto q = f.prepare(Dialect::responses, kSearch, R"([{"type":"web_search"}])", R"(,"include":["web_search_call.action.sources"])");
  auto [t2, o2] = f.run(q);
  json::array input{json::object{{"role", "user"}, {"content", "What is the capital of Switzerland?"}}};
  const json::object r = render_response(q.req, q.meta, t2, o2);
  for (auto& item : r.at("output").as_array()) input.push_back(item);
  input.push_back(json::object{{"role", "user"}, {"content", "Thanks"}});
  auto back = f.service->prepare(Dialect::responses, json::serialize(json::object{{"model", "deepseek-v4-flash"}, {"input", input}}));
  EXPECT_NE(demo_tokenizer()->decode(back.prompt).find("https://example.ch/cities"), std::string::npos);
}
