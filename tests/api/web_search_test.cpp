// web_search_linkup (and Chat's web_search_options) through the API service on the scripted engine,
// with a recording provider: the query, the results in the encoded prompt, the Sources footer and
// disable_formatting, usage and billing per call, and each failure's answer.
#include <gtest/gtest.h>

#include <mutex>

#include "api/anthropic.h"
#include "api/chat.h"
#include "api/responses.h"
#include "api/service.h"
#include "search/sources.h"
#include "service_fixture.h"

using namespace v4;
using namespace v4::api;
namespace json = boost::json;

namespace {

using v4::testing::demo_tokenizer;

// Answers every query with two results, or fails with `error`; records the queries.
class RecordingProvider final : public search::Provider {
 public:
  std::vector<search::Result> search(const search::Query& q) const override {
    std::lock_guard l(mu_);
    queries_.push_back(q);
    if (error_) throw *error_;
    std::vector<search::Result> r = {{"Bern - Wikipedia", "https://en.wikipedia.org/wiki/Bern", "Bern is the de facto capital of Switzerland.", "2026-01-02"},
                                     {"Swiss cities", "https://example.ch/cities", "Zurich is the largest city.", std::nullopt}};
    r.resize(std::min<size_t>(r.size(), size_t(q.max_results)));
    return r;
  }
  std::string name() const override { return "recording"; }
  std::vector<search::Query> queries() const {
    std::lock_guard l(mu_);
    return queries_;
  }
  void fail_with(search::Error e) { error_ = e; }

 private:
  mutable std::mutex mu_;
  mutable std::vector<search::Query> queries_;
  std::optional<search::Error> error_;
};

struct Fixture : v4::testing::SearchServiceFixture<RecordingProvider> {
  using SearchServiceFixture::SearchServiceFixture;
  std::string prompt_text(const PreparedRequest& p) const { return demo_tokenizer()->decode(p.prompt); }
};

const std::string kConversation = R"({"model":"deepseek-v4-flash","web_search_linkup":true,"messages":[
  {"role":"system","content":"Be brief."},{"role":"user","content":"Hello"},{"role":"assistant","content":"Hi!"},
  {"role":"user","content":"What is the   capital of\nSwitzerland?"}]})";

ApiError prepare_error(Fixture& f, Dialect d, const std::string& body) {
  try {
    f.service->prepare(d, body);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "prepare accepted " << body;
  return ApiError(0, "", "");
}

}  // namespace

TEST(WebSearch, OffServerRefusesRequestsThatAskForItNamingTheField) {
  Fixture f(/*with_search=*/false);
  auto e = prepare_error(f, Dialect::chat, kConversation);
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "web_search_linkup");
  EXPECT_NE(std::string(e.what()).find("web search is not enabled on this server"), std::string::npos);
  auto o = prepare_error(f, Dialect::chat, R"({"model":"deepseek-v4-flash","web_search_options":{},"messages":[{"role":"user","content":"q"}]})");
  EXPECT_EQ(o.param, "web_search_options");
  auto a = prepare_error(f, Dialect::anthropic, R"({"model":"deepseek-v4-flash","max_tokens":9,"web_search_linkup":true,"messages":[{"role":"user","content":"q"}]})");
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(a.param, "web_search_linkup");
  // Without the field nothing is searched, and false means no search either.
  EXPECT_NO_THROW(f.service->prepare(Dialect::chat, R"({"model":"deepseek-v4-flash","web_search_linkup":false,"messages":[{"role":"user","content":"q"}]})"));
}

TEST(WebSearch, QueryIsTheLatestUserMessageAndResultsAreInThePromptBeforeIt) {
  Fixture f;
  auto p = f.service->prepare(Dialect::chat, kConversation);
  auto queries = f.provider->queries();
  ASSERT_EQ(queries.size(), 1u);
  EXPECT_EQ(queries[0].text, "What is the capital of Switzerland?");
  EXPECT_EQ(queries[0].max_results, 5);
  EXPECT_EQ(p.web_search_calls, 1);

  std::string prompt = f.prompt_text(p);
  auto context = prompt.find("A web search was conducted on " + search::utc_date_today());
  auto bern = prompt.find("[1] Bern - Wikipedia\nURL: https://en.wikipedia.org/wiki/Bern\nPublished: 2026-01-02\n"
                          "Bern is the de facto capital of Switzerland.");
  auto second = prompt.find("[2] Swiss cities");
  auto question = prompt.find("<｜User｜>What is the   capital of\nSwitzerland?");
  auto first_turn = prompt.find("<｜User｜>Hello");
  ASSERT_NE(context, std::string::npos) << prompt;
  ASSERT_NE(bern, std::string::npos) << prompt;
  ASSERT_NE(second, std::string::npos);
  ASSERT_NE(question, std::string::npos) << prompt;
  EXPECT_LT(first_turn, context);  // right before the message it answers
  EXPECT_LT(bern, question);
  EXPECT_NE(prompt.find("like [1]"), std::string::npos);
}

TEST(WebSearch, AnswerEndsWithTheSourcesFooterAndTheSearchIsBilledOnce) {
  Fixture f;
  auto [turn, outcome] = f.run(f.service->prepare(Dialect::chat, kConversation));
  const std::string footer =
      "\n\nSources:\n[1] Bern - Wikipedia - https://en.wikipedia.org/wiki/Bern\n[2] Swiss cities - https://example.ch/cities";
  ASSERT_GE(turn.content.size(), footer.size());
  EXPECT_EQ(turn.content.substr(turn.content.size() - footer.size()), footer);
  EXPECT_EQ(turn.content.substr(0, turn.content.size() - footer.size()), v4::testing::kScriptedAnswer);
  EXPECT_EQ(outcome.usage.web_search_calls, 1);
  auto records = f.sink->records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].web_search_calls, 1);
  EXPECT_EQ(chat_usage(outcome.usage).at("server_tool_use").at("web_search_requests"), 1);
  EXPECT_EQ(responses_usage(outcome.usage).at("server_tool_use").at("web_search_requests"), 1);
  EXPECT_EQ(anthropic_usage(outcome.usage).at("server_tool_use").at("web_search_requests"), 1);
  Usage none;
  EXPECT_FALSE(chat_usage(none).contains("server_tool_use"));
}

TEST(WebSearch, DisableFormattingDropsTheFooterButNotTheSearch) {
  Fixture f;
  std::string body = kConversation;
  body.insert(1, R"("disable_formatting":true,)");
  auto p = f.service->prepare(Dialect::chat, body);
  EXPECT_NE(f.prompt_text(p).find("[1] Bern - Wikipedia"), std::string::npos);
  auto [turn, outcome] = f.run(p);
  EXPECT_EQ(turn.content, v4::testing::kScriptedAnswer);
  EXPECT_EQ(outcome.usage.web_search_calls, 1);
  EXPECT_EQ(f.sink->records().at(0).web_search_calls, 1);
}

TEST(WebSearch, EveryDialectSearchesAndStreamsTheFooterLast) {
  Fixture f;
  auto responses = f.service->prepare(
      Dialect::responses, R"({"model":"deepseek-v4-flash","web_search_linkup":true,"stream":true,"input":"capital of Switzerland"})");
  auto anthropic = f.service->prepare(
      Dialect::anthropic,
      R"({"model":"deepseek-v4-flash:variant2","max_tokens":64,"web_search_linkup":true,"messages":[{"role":"user","content":[{"type":"text","text":"capital?"}]}]})");
  ASSERT_EQ(f.provider->queries().size(), 2u);
  EXPECT_EQ(f.provider->queries()[0].text, "capital of Switzerland");
  EXPECT_EQ(f.provider->queries()[1].text, "capital?");
  for (auto* p : {&responses, &anthropic}) {
    auto [turn, outcome] = f.run(*p);
    EXPECT_NE(turn.content.find("\n\nSources:\n[1] Bern - Wikipedia - https://en.wikipedia.org/wiki/Bern"), std::string::npos);
    EXPECT_EQ(outcome.usage.web_search_calls, 1);
  }
}

TEST(WebSearch, ChatWebSearchOptionsChoosesHowManyResults) {
  Fixture f;
  auto p = f.service->prepare(Dialect::chat, R"({"model":"deepseek-v4-flash","web_search_options":{"search_context_size":"low"},"messages":[{"role":"user","content":"q"}]})");
  EXPECT_EQ(f.provider->queries().at(0).max_results, 3);
  EXPECT_EQ(p.web_search_calls, 1);
  auto loc = prepare_error(f, Dialect::chat, R"({"model":"deepseek-v4-flash","web_search_options":{"user_location":{"type":"approximate"}},"messages":[{"role":"user","content":"q"}]})");
  EXPECT_EQ(loc.status, 422);
  EXPECT_EQ(loc.param, "web_search_options.user_location");
  auto size = prepare_error(f, Dialect::chat, R"({"model":"deepseek-v4-flash","web_search_options":{"search_context_size":"huge"},"messages":[{"role":"user","content":"q"}]})");
  EXPECT_EQ(size.param, "web_search_options.search_context_size");
}

TEST(WebSearch, ProviderFailuresAre502Or503AndNothingIsBilled) {
  using K = search::Error::Kind;
  struct Case {
    K kind;
    int status;
    const char* code;
  } cases[] = {{K::timeout, 503, "web_search_unavailable"},   {K::rate_limited, 503, "web_search_unavailable"},
               {K::unavailable, 503, "web_search_unavailable"}, {K::unauthorized, 502, "web_search_failed"},
               {K::no_credit, 502, "web_search_failed"},       {K::bad_response, 502, "web_search_failed"},
               {K::no_results, 502, "web_search_no_results"}};
  for (auto& c : cases) {
    Fixture f;
    f.provider->fail_with(search::Error(c.kind, "provider trouble"));
    auto e = prepare_error(f, Dialect::chat, kConversation);
    EXPECT_EQ(e.status, c.status);
    EXPECT_EQ(e.code, c.code);
    EXPECT_EQ(e.param, "web_search_linkup");
    EXPECT_NE(std::string(e.what()).find("web search failed: provider trouble"), std::string::npos);
    EXPECT_TRUE(f.sink->records().empty());
  }
}

// With search on, the dialects' search tools are given to the model as its web_search function
// (tests/api/search_tool_test.cpp runs them); nothing searches before the model calls it.
TEST(WebSearch, TheDialectsSearchToolsReachTheModelAndSearchOnlyWhenCalled) {
  Fixture f;
  auto r = f.service->prepare(Dialect::responses, R"({"model":"deepseek-v4-flash","input":"q","tools":[{"type":"web_search"}]})");
  EXPECT_TRUE(r.req.withheld_tools.empty());
  ASSERT_EQ(r.req.tools.size(), 1u);
  EXPECT_EQ(r.req.tools[0].at("function").at("name"), "web_search");
  EXPECT_NE(f.prompt_text(r).find("web_search"), std::string::npos);
  auto a = f.service->prepare(Dialect::anthropic, R"({"model":"deepseek-v4-flash","max_tokens":8,"messages":[{"role":"user","content":"q"}],"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":2}]})");
  ASSERT_EQ(a.req.tools.size(), 1u);
  EXPECT_EQ(a.req.search_tool->max_uses, 2);
  EXPECT_EQ(a.web_search_calls, 0);
  EXPECT_TRUE(f.provider->queries().empty());
}

// The sources come back as each dialect's citations too (docs/api.md): Chat's message annotations
// and Responses' url_citation annotations where the answer (here: its footer) names [n], Anthropic's
// web_search_result_location citations on the text block; streamed, as the annotation/citation events.
TEST(WebSearch, SourcesAreCitedInEachDialectsShape) {
  Fixture f;
  const std::string answer = v4::testing::kScriptedAnswer;
  struct Case {
    Dialect dialect;
    std::string body, stream_marker;
  } cases[] = {
      {Dialect::chat, R"({"model":"deepseek-v4-flash","web_search_linkup":true,"messages":[{"role":"user","content":"capital?"}]})",
       R"("delta":{"annotations":[{"type":"url_citation","url_citation":{"end_index":)"},
      {Dialect::responses, R"({"model":"deepseek-v4-flash","web_search_linkup":true,"input":"capital?"})",
       "event: response.output_text.annotation.added"},
      {Dialect::anthropic, R"({"model":"deepseek-v4-flash","max_tokens":256,"web_search_linkup":true,"messages":[{"role":"user","content":"capital?"}]})",
       R"("delta":{"type":"citations_delta","citation":{"type":"web_search_result_location")"},
  };
  for (auto& c : cases) {
    auto p = f.service->prepare(c.dialect, c.body);
    auto [turn, outcome] = f.run(p);
    const size_t at = turn.content.find("[1] Bern");  // the footer's first line, in code points (ASCII here)
    ASSERT_NE(at, std::string::npos);
    json::object r = render_response(p.req, p.meta, turn, outcome);
    if (c.dialect == Dialect::chat) {
      auto& a = r.at("choices").at(0).at("message").at("annotations").as_array();
      ASSERT_EQ(a.size(), 2u);
      EXPECT_EQ(a[0].at("type"), "url_citation");
      EXPECT_EQ(a[0].at("url_citation").at("url"), "https://en.wikipedia.org/wiki/Bern");
      EXPECT_EQ(a[0].at("url_citation").at("start_index"), at);
      EXPECT_EQ(a[0].at("url_citation").at("end_index"), at + 3);
      EXPECT_EQ(a[1].at("url_citation").at("title"), "Swiss cities");
    } else if (c.dialect == Dialect::responses) {
      auto& a = r.at("output").as_array().back().at("content").at(0).at("annotations").as_array();
      ASSERT_EQ(a.size(), 2u);
      EXPECT_EQ(a[1].at("type"), "url_citation");
      EXPECT_EQ(a[1].at("url"), "https://example.ch/cities");
      EXPECT_EQ(a[0].at("start_index"), at);
    } else {
      auto& text = r.at("content").as_array().back().as_object();
      auto& cites = text.at("citations").as_array();
      ASSERT_EQ(cites.size(), 2u);
      EXPECT_EQ(cites[0].at("type"), "web_search_result_location");
      EXPECT_EQ(cites[0].at("url"), "https://en.wikipedia.org/wiki/Bern");
      EXPECT_EQ(cites[0].at("cited_text"), "Bern is the de facto capital of Switzerland.");
    }
    // Streamed: the same sources as the dialect's events.
    auto renderer = make_stream_renderer(p.req, p.meta, int(p.prompt.size()));
    std::string sse = renderer->start(0);
    for (auto& d : turn.parts) sse += renderer->delta(d);
    sse += renderer->finish(outcome);
    EXPECT_NE(sse.find(c.stream_marker), std::string::npos) << sse;
  }
  // disable_formatting and an answer that cites nothing: no annotations.
  auto quiet = f.service->prepare(Dialect::chat, R"({"model":"deepseek-v4-flash","web_search_linkup":true,"disable_formatting":true,"messages":[{"role":"user","content":"capital?"}]})");
  auto [turn, outcome] = f.run(quiet);
  EXPECT_TRUE(render_response(quiet.req, quiet.meta, turn, outcome).at("choices").at(0).at("message").at("annotations").as_array().empty());
}
