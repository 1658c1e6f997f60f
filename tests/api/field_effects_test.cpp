// Request fields whose effect no other test showed (docs/api-fields.md): each one goes through
// ApiService::prepare, which gives what the engine would receive (prompt tokens, SamplingParams,
// the output's constraint), and where the effect is in the answer, runs on the scripted engine and
// reads the dialect's response object. Each test sets the field against a control without it.
#include <gtest/gtest.h>

#include <mutex>

#include "api/service.h"
#include "grammar/matcher.h"
#include "grammar/tool_calls.h"
#include "script.h"
#include "service_fixture.h"

using namespace v4;
using namespace v4::api;
namespace json = boost::json;

namespace {

using v4::testing::demo_tokenizer;
using v4::testing::kScriptedReasoning;
using v4::testing::script_marker;

const std::string kEos = "<｜end▁of▁sentence｜>";

// Answers every query with one result whose text scripts the model's next round (an answer), and
// records the queries.
class RecordingProvider final : public search::Provider {
 public:
  std::vector<search::Result> search(const search::Query& q) const override {
    std::lock_guard l(mu_);
    queries_.push_back(q);
    return {{"Bern - Wikipedia", "https://en.wikipedia.org/wiki/Bern",
             "Bern is the capital. " + script_marker("Found it.</think>Bern [1]." + kEos), "2026-01-02"}};
  }
  std::string name() const override { return "recording"; }
  std::vector<search::Query> queries() const {
    std::lock_guard l(mu_);
    return queries_;
  }

 private:
  mutable std::mutex mu_;
  mutable std::vector<search::Query> queries_;
};

struct Fixture : v4::testing::SearchServiceFixture<RecordingProvider> {
  using SearchServiceFixture::SearchServiceFixture;
  PreparedRequest prepare(Dialect d, const std::string& body) { return service->prepare(d, body); }
  ApiError error(Dialect d, const std::string& body) {
    try {
      service->prepare(d, body);
    } catch (const ApiError& e) {
      return e;
    }
    ADD_FAILURE() << "prepare accepted " << body;
    return ApiError(0, "", "");
  }
  std::string prompt_text(const PreparedRequest& p) const { return demo_tokenizer()->decode(p.prompt); }
  json::object respond(const PreparedRequest& p) {
    auto [turn, outcome] = run(p);
    return render_response(p.req, p.meta, turn, outcome);
  }
};

// A request of `d` with a system prompt `system` (a script marker, when a test scripts the output),
// one user message and the extra top-level fields `more` (",\"key\":value...").
std::string body(Dialect d, const std::string& more, const std::string& system = "Be brief.",
                 const std::string& user = "What is the weather in Bern?") {
  const std::string sys = json::serialize(json::value(system)), usr = json::serialize(json::value(user));
  switch (d) {
    case Dialect::chat:
      return R"({"model":"deepseek-v4-flash","messages":[{"role":"system","content":)" + sys +
             R"(},{"role":"user","content":)" + usr + "}]" + more + "}";
    case Dialect::responses:
      return R"({"model":"deepseek-v4-flash","instructions":)" + sys + R"(,"input":)" + usr + more + "}";
    case Dialect::anthropic:
      return R"({"model":"deepseek-v4-flash","max_tokens":4096,"system":)" + sys +
             R"(,"messages":[{"role":"user","content":)" + usr + "}]" + more + "}";
  }
  return {};
}

const std::string kCity = R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]})";
const std::string kZone = R"({"type":"object","properties":{"zone":{"type":"string"}},"required":["zone"]})";

// get_weather(city) and get_time(zone) in the dialect's tool shape.
std::string two_tools(Dialect d) {
  switch (d) {
    case Dialect::chat:
      return R"(,"tools":[{"type":"function","function":{"name":"get_weather","parameters":)" + kCity +
             R"(}},{"type":"function","function":{"name":"get_time","parameters":)" + kZone + "}}]";
    case Dialect::responses:
      return R"(,"tools":[{"type":"function","name":"get_weather","parameters":)" + kCity +
             R"(},{"type":"function","name":"get_time","parameters":)" + kZone + "}]";
    case Dialect::anthropic:
      return R"(,"tools":[{"name":"get_weather","input_schema":)" + kCity + R"(},{"name":"get_time","input_schema":)" +
             kZone + "}]";
  }
  return {};
}

// One call block as V4 writes it (grammar/tool_calls.h).
std::string call_block(const std::string& name, const std::string& param, const std::string& value) {
  return std::string(grammar::kToolCallsOpen) + "<｜DSML｜invoke name=\"" + name + "\">\n<｜DSML｜parameter name=\"" +
         param + "\" string=\"true\">" + value + "</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>";
}

// Whether the request's constraint takes `text` as a complete answer.
bool constraint_takes(const PreparedRequest& p, const std::string& text) {
  if (!p.grammar) return true;
  grammar::Matcher m(p.grammar);
  return m.advance(text) && m.accepting();
}

constexpr Dialect kDialects[] = {Dialect::chat, Dialect::responses, Dialect::anthropic};
const char* name_of(Dialect d) { return d == Dialect::chat ? "chat" : d == Dialect::responses ? "responses" : "anthropic"; }

}  // namespace

// ------------------------------------------------------------------------ sampling and thinking

// ApiService::prepare copies every sampling field of each dialect into the engine's SamplingParams.
TEST(FieldEffects, SamplingFieldsReachTheEngineInEveryDialect) {
  Fixture f(false);
  const std::string common = R"(,"temperature":0.25,"top_p":0.75,"seed":42,"thinking_budget":300)";
  auto chat = f.prepare(Dialect::chat, body(Dialect::chat, common + R"(,"max_tokens":700,"stop":["END"],
      "frequency_penalty":0.5,"presence_penalty":-0.5,"logit_bias":{"100":5,"7":-100},"logprobs":true,"top_logprobs":3)"));
  auto resp = f.prepare(Dialect::responses, body(Dialect::responses, common + R"(,"max_output_tokens":700,"top_logprobs":3)"));
  auto anth = f.prepare(Dialect::anthropic, body(Dialect::anthropic, common + R"(,"top_k":40,"stop_sequences":["END"])"));
  for (auto* p : {&chat, &resp, &anth}) {
    SCOPED_TRACE(name_of(p->req.dialect));
    EXPECT_DOUBLE_EQ(p->params.temperature, 0.25);
    EXPECT_DOUBLE_EQ(p->params.top_p, 0.75);
    EXPECT_EQ(p->params.seed, std::optional<uint64_t>(42));
    EXPECT_TRUE(p->params.thinking);
    EXPECT_EQ(p->params.thinking_budget, 300);
  }
  EXPECT_EQ(chat.params.max_tokens, 700);
  EXPECT_EQ(chat.params.stop, std::vector<std::string>{"END"});
  EXPECT_DOUBLE_EQ(chat.params.frequency_penalty, 0.5);
  EXPECT_DOUBLE_EQ(chat.params.presence_penalty, -0.5);
  EXPECT_EQ(chat.params.logit_bias, (std::vector<std::pair<int32_t, float>>{{100, 5.f}, {7, -100.f}}));
  EXPECT_EQ(chat.params.top_logprobs, 3);
  EXPECT_EQ(resp.params.max_tokens, 700);
  EXPECT_EQ(resp.params.top_logprobs, 3);
  EXPECT_EQ(anth.params.max_tokens, 4096);
  EXPECT_EQ(anth.params.top_k, 40);
  EXPECT_EQ(anth.params.stop, std::vector<std::string>{"END"});
  // The controls: without the fields, the defaults (so each value above came from its field).
  for (Dialect d : kDialects) {
    auto p = f.prepare(d, body(d, ""));
    SCOPED_TRACE(name_of(d));
    EXPECT_DOUBLE_EQ(p.params.temperature, 0.7);
    EXPECT_DOUBLE_EQ(p.params.top_p, 0.9);
    EXPECT_FALSE(p.params.seed);
    EXPECT_EQ(p.params.thinking_budget, 2048);  // medium: half of the default 4096
    EXPECT_EQ(p.params.top_logprobs, -1);
    EXPECT_EQ(p.params.top_k, 0);
    EXPECT_TRUE(p.params.stop.empty());
  }
}

// thinking.budget_tokens is the reasoning budget as given; adaptive is thinking on with the effort's
// budget (capped to its share of max_tokens), in each dialect that takes the thinking object.
TEST(FieldEffects, ThinkingBudgetTokensAndAdaptiveSetTheBudget) {
  Fixture f(false);
  auto given = f.prepare(Dialect::chat, body(Dialect::chat, R"(,"thinking":{"type":"enabled","budget_tokens":5})"));
  EXPECT_EQ(given.params.thinking_budget, 5);
  // The budget closes the reasoning early (the scripted engine's reasoning is longer than 5 tokens).
  auto [turn, outcome] = f.run(given);
  EXPECT_FALSE(turn.reasoning.empty());
  EXPECT_LT(turn.reasoning.size(), std::string(kScriptedReasoning).size());
  EXPECT_EQ(std::string(kScriptedReasoning).rfind(turn.reasoning, 0), 0u) << turn.reasoning;
  EXPECT_FALSE(turn.content.empty());
  auto full = f.run(f.prepare(Dialect::chat, body(Dialect::chat, "")));
  EXPECT_EQ(full.first.reasoning, kScriptedReasoning);

  const std::string off = R"(,"thinking":{"type":"disabled"})";
  struct Case {
    Dialect d;
    std::string more;
    int budget;
  } cases[] = {
      {Dialect::chat, R"(,"thinking":{"type":"adaptive"},"reasoning_effort":"high","max_tokens":8000)", 6000},
      {Dialect::chat, R"(,"thinking":{"type":"adaptive","budget_tokens":300},"max_tokens":8000)", 300},
      {Dialect::responses, R"(,"thinking":{"type":"adaptive"},"reasoning":{"effort":"low"},"max_output_tokens":8000)", 2000},
      {Dialect::anthropic, R"(,"thinking":{"type":"adaptive"},"output_config":{"effort":"max"})", 3584},
      {Dialect::anthropic, R"(,"thinking":{"type":"enabled","budget_tokens":1000})", 1000},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.more);
    auto p = f.prepare(c.d, body(c.d, c.more));
    EXPECT_TRUE(p.params.thinking);
    EXPECT_EQ(p.params.thinking_budget, c.budget);
    // In thinking mode: the prompt is the thinking one, not the one thinking off gives.
    EXPECT_NE(p.prompt, f.prepare(c.d, body(c.d, off)).prompt);
  }
}

// chat_template_kwargs' enable_thinking / thinking false turn thinking off, as thinking disabled does.
TEST(FieldEffects, ChatTemplateKwargsTurnThinkingOff) {
  Fixture f(false);
  auto disabled = f.prepare(Dialect::chat, body(Dialect::chat, R"(,"thinking":{"type":"disabled"})"));
  auto on = f.prepare(Dialect::chat, body(Dialect::chat, R"(,"chat_template_kwargs":{"enable_thinking":true})"));
  EXPECT_TRUE(on.params.thinking);
  EXPECT_NE(on.prompt, disabled.prompt);
  for (const char* kw : {R"({"enable_thinking":false})", R"({"thinking":false})"}) {
    SCOPED_TRACE(kw);
    auto p = f.prepare(Dialect::chat, body(Dialect::chat, std::string(R"(,"chat_template_kwargs":)") + kw));
    EXPECT_FALSE(p.params.thinking);
    EXPECT_EQ(p.prompt, disabled.prompt);
    auto [turn, outcome] = f.run(p);
    EXPECT_TRUE(turn.reasoning.empty());
    EXPECT_FALSE(turn.content.empty());
  }
  EXPECT_EQ(f.error(Dialect::chat, body(Dialect::chat, R"(,"chat_template_kwargs":{"effort":"max"})")).param,
            "chat_template_kwargs.effort");
}

// Anthropic thinking.display "omitted": thinking blocks with empty text (the signature kept), no
// thinking_delta streamed; "summarized" (the default) shows the reasoning.
TEST(FieldEffects, AnthropicThinkingDisplayOmittedHidesTheThinking) {
  Fixture f(false);
  for (const char* display : {"omitted", "summarized"}) {
    SCOPED_TRACE(display);
    const bool shown = std::string(display) == "summarized";
    auto p = f.prepare(Dialect::anthropic, body(Dialect::anthropic, std::string(R"(,"thinking":{"type":"enabled","budget_tokens":1000,"display":")") + display + "\"}"));
    auto [turn, outcome] = f.run(p);
    ASSERT_EQ(turn.reasoning, kScriptedReasoning);
    auto m = render_response(p.req, p.meta, turn, outcome);
    auto& block = m.at("content").at(0).as_object();
    EXPECT_EQ(block.at("type"), "thinking");
    EXPECT_EQ(block.at("thinking"), shown ? kScriptedReasoning : "");
    EXPECT_NE(block.at("signature"), "");
    auto stream = make_stream_renderer(p.req, p.meta, int(p.prompt.size()));
    std::string sse = stream->start(0);
    for (auto& d : turn.parts) sse += stream->delta(d);
    sse += stream->finish(outcome);
    EXPECT_NE(sse.find(R"("type":"thinking")"), std::string::npos);
    EXPECT_EQ(sse.find("thinking_delta") != std::string::npos, shown);
    EXPECT_EQ(sse.find(kScriptedReasoning) != std::string::npos, shown);
    EXPECT_NE(sse.find(turn.content), std::string::npos);
  }
}

// -------------------------------------------------------------------------------- tool choice

// tool_choice "none": the tools leave the prompt (it is the prompt without them) and a call the
// model writes anyway is not parsed as one; "auto", the control, has both.
TEST(FieldEffects, ToolChoiceNoneTakesTheToolsOutOfThePromptInEveryDialect) {
  Fixture f(false);
  const std::string script = script_marker("Let me check.</think>" + call_block("get_weather", "city", "Bern") + kEos);
  for (Dialect d : kDialects) {
    SCOPED_TRACE(name_of(d));
    const std::string none = d == Dialect::anthropic ? R"(,"tool_choice":{"type":"none"})" : R"(,"tool_choice":"none")";
    auto without = f.prepare(d, body(d, "", script));
    auto with = f.prepare(d, body(d, two_tools(d), script));
    auto refused = f.prepare(d, body(d, two_tools(d) + none, script));
    EXPECT_NE(f.prompt_text(with).find("## Tools"), std::string::npos);
    EXPECT_EQ(refused.prompt, without.prompt);
    EXPECT_EQ(f.run(with).second.stop, StopKind::tool_calls);
    auto [turn, outcome] = f.run(refused);
    EXPECT_TRUE(turn.tool_calls.empty());
    EXPECT_EQ(outcome.stop, StopKind::end_turn);
  }
  // Responses: the server's search tool is not run either.
  Fixture s;
  const std::string search = script_marker("Let me search.</think>" + call_block("web_search", "query", "Bern") + kEos);
  auto p = s.prepare(Dialect::responses, body(Dialect::responses, R"(,"tools":[{"type":"web_search"}],"tool_choice":"none")", search));
  EXPECT_EQ(s.prompt_text(p).find("web_search"), std::string::npos);
  auto r = s.respond(p);
  EXPECT_TRUE(s.provider->queries().empty());
  for (auto& item : r.at("output").as_array()) EXPECT_NE(item.at("type"), "web_search_call");
}

// A named tool choice (Anthropic {type: tool}, Responses {type: function | custom}) holds the answer
// to one call of that tool: the constraint takes its call and refuses the other tool's.
TEST(FieldEffects, NamedToolChoiceForcesThatToolsCall) {
  Fixture f(false);
  const std::string weather = call_block("get_weather", "city", "Bern"), time = call_block("get_time", "zone", "CET");
  struct Case {
    Dialect d;
    std::string choice;
  } cases[] = {{Dialect::anthropic, R"(,"tool_choice":{"type":"tool","name":"get_weather"})"},
               {Dialect::responses, R"(,"tool_choice":{"type":"function","name":"get_weather"})"},
               {Dialect::chat, R"(,"tool_choice":{"type":"function","function":{"name":"get_weather"}})"}};
  for (auto& c : cases) {
    SCOPED_TRACE(c.choice);
    auto free = f.prepare(c.d, body(c.d, two_tools(c.d)));
    EXPECT_EQ(free.grammar, nullptr);
    auto forced = f.prepare(c.d, body(c.d, two_tools(c.d) + c.choice));
    ASSERT_NE(forced.grammar, nullptr);
    EXPECT_TRUE(constraint_takes(forced, weather));
    EXPECT_FALSE(constraint_takes(forced, time));
    EXPECT_FALSE(constraint_takes(forced, "It is sunny."));
  }
  auto r = f.prepare(Dialect::responses, body(Dialect::responses, two_tools(Dialect::responses) + cases[1].choice));
  EXPECT_EQ(render_response(r.req, r.meta, {}, {}).at("tool_choice"), (json::object{{"type", "function"}, {"name", "get_weather"}}));
  // A custom tool is named with type custom, and echoed so.
  auto custom = f.prepare(Dialect::responses, body(Dialect::responses, R"(,"tools":[{"type":"custom","name":"apply_patch"}],
      "tool_choice":{"type":"custom","name":"apply_patch"})"));
  ASSERT_NE(custom.grammar, nullptr);
  EXPECT_TRUE(constraint_takes(custom, call_block("apply_patch", "input", "*** Begin Patch")));
  EXPECT_EQ(render_response(custom.req, custom.meta, {}, {}).at("tool_choice"), (json::object{{"type", "custom"}, {"name", "apply_patch"}}));
  // The Responses object form: type checked against the tool, keys on its allow-list.
  struct Bad {
    std::string choice;
    int status;
    std::string param;
  } bad[] = {{R"({"type":"custom","name":"get_weather"})", 422, "tool_choice.type"},
             {R"({"type":"allowed_tools","mode":"auto","tools":[]})", 422, "tool_choice.type"},
             {R"({"type":"web_search_preview"})", 422, "tool_choice.type"},
             {R"({"type":"function","name":"get_weather","strict":true})", 400, "tool_choice.strict"},
             {R"({"type":"function","name":"lookup"})", 422, "tool_choice"}};
  for (auto& b : bad) {
    SCOPED_TRACE(b.choice);
    auto e = f.error(Dialect::responses, body(Dialect::responses, two_tools(Dialect::responses) + R"(,"tool_choice":)" + b.choice));
    EXPECT_EQ(e.status, b.status);
    EXPECT_EQ(e.param, b.param);
  }
}

// ------------------------------------------------------------------------- Responses fields

// top_logprobs and include message.output_text.logprobs turn logprobs on: the answer's output_text
// carries them (with that many alternatives); without either, none.
TEST(FieldEffects, ResponsesLogprobsFromTopLogprobsOrInclude) {
  Fixture f(false);
  struct Case {
    std::string more;
    int top;  // -1: logprobs off
  } cases[] = {{R"(,"top_logprobs":2)", 2}, {R"(,"include":["message.output_text.logprobs"])", 0}, {"", -1}};
  for (auto& c : cases) {
    SCOPED_TRACE(c.more);
    auto p = f.prepare(Dialect::responses, body(Dialect::responses, c.more));
    EXPECT_EQ(p.params.top_logprobs, c.top);
    auto r = f.respond(p);
    auto& out = r.at("output").as_array();
    auto& part = out.back().at("content").at(0).as_object();
    ASSERT_EQ(part.at("type"), "output_text");
    auto& lps = part.at("logprobs").as_array();
    if (c.top < 0) {
      EXPECT_TRUE(lps.empty());
      continue;
    }
    ASSERT_FALSE(lps.empty());
    std::string joined;
    for (auto& lp : lps) {
      joined += lp.at("token").as_string();
      EXPECT_EQ(lp.at("top_logprobs").as_array().size(), size_t(c.top));
    }
    EXPECT_EQ(joined, part.at("text").as_string());  // the answer's tokens, not the reasoning's
  }
}

// metadata, prompt_cache_key and text.format come back on the response object as sent.
TEST(FieldEffects, ResponsesEchoMetadataPromptCacheKeyAndTextFormat) {
  Fixture f(false);
  auto p = f.prepare(Dialect::responses, body(Dialect::responses, R"(,"metadata":{"session":"s-1","tier":"gold"},
      "prompt_cache_key":"conv-42","text":{"format":{"type":"text"}})"));
  auto r = f.respond(p);
  EXPECT_EQ(r.at("metadata"), (json::object{{"session", "s-1"}, {"tier", "gold"}}));
  EXPECT_EQ(r.at("prompt_cache_key"), "conv-42");
  EXPECT_EQ(r.at("text").at("format"), (json::object{{"type", "text"}}));
  EXPECT_EQ(p.grammar, nullptr);  // text: free text
  auto plain = f.respond(f.prepare(Dialect::responses, body(Dialect::responses, "")));
  EXPECT_EQ(plain.at("metadata"), json::object{});
  EXPECT_TRUE(plain.at("prompt_cache_key").is_null());
  auto json_mode = f.prepare(Dialect::responses, body(Dialect::responses, R"(,"text":{"format":{"type":"json_object"}})"));
  EXPECT_NE(json_mode.grammar, nullptr);
  EXPECT_TRUE(constraint_takes(json_mode, R"({"city": "Bern"})"));
  EXPECT_FALSE(constraint_takes(json_mode, "Bern"));
  EXPECT_EQ(render_response(json_mode.req, json_mode.meta, {}, {}).at("text").at("format"), (json::object{{"type", "json_object"}}));
}

// reasoning.generate_summary (the older name of summary) asks for the summary: the reasoning item
// carries summary_text, and the response echoes it as reasoning.summary.
TEST(FieldEffects, ResponsesGenerateSummaryAsksForTheSummary) {
  Fixture f(false);
  auto with = f.respond(f.prepare(Dialect::responses, body(Dialect::responses, R"(,"reasoning":{"generate_summary":"concise"})")));
  auto& item = with.at("output").at(0).as_object();
  ASSERT_EQ(item.at("type"), "reasoning");
  ASSERT_EQ(item.at("summary").as_array().size(), 1u);
  EXPECT_EQ(item.at("summary").at(0).at("type"), "summary_text");
  EXPECT_EQ(item.at("summary").at(0).at("text"), kScriptedReasoning);
  EXPECT_EQ(with.at("reasoning").at("summary"), "concise");
  auto without = f.respond(f.prepare(Dialect::responses, body(Dialect::responses, "")));
  EXPECT_TRUE(without.at("output").at(0).at("summary").as_array().empty());
  EXPECT_TRUE(without.at("reasoning").at("summary").is_null());
}

// Chat response_format text is free text: no constraint, the prompt of a request without it.
TEST(FieldEffects, ChatResponseFormatTextIsFreeText) {
  Fixture f(false);
  auto plain = f.prepare(Dialect::chat, body(Dialect::chat, ""));
  auto text = f.prepare(Dialect::chat, body(Dialect::chat, R"(,"response_format":{"type":"text"})"));
  EXPECT_EQ(text.grammar, nullptr);
  EXPECT_EQ(text.prompt, plain.prompt);
  auto json_mode = f.prepare(Dialect::chat, body(Dialect::chat, R"(,"response_format":{"type":"json_object"})"));
  EXPECT_NE(json_mode.grammar, nullptr);
  EXPECT_NE(json_mode.prompt, plain.prompt);
}

// ------------------------------------------------------------------------------ prefix cache

// prompt_cache_key routes a request to the cache that holds its prefix: on one server that is the
// one prefix cache, which a second request with the key and the same prefix reads (cached tokens).
TEST(FieldEffects, PromptCacheKeyRequestsShareThePrefixCache) {
  const std::string sys = "You are the weather desk of a Swiss newspaper. Answer in one sentence, in English, "
                          "and name the city and the day in every answer.";
  for (Dialect d : {Dialect::chat, Dialect::responses}) {
    SCOPED_TRACE(name_of(d));
    Fixture f(false);  // a fresh cache: the dialects' prompts share their first tokens
    const std::string key = std::string(R"(,"prompt_cache_key":"weather-)") + name_of(d) + "\"";
    auto first = f.run(f.prepare(d, body(d, key, sys, "Weather in Bern?"))).second;
    auto second = f.run(f.prepare(d, body(d, key, sys, "Weather in Basel?"))).second;
    EXPECT_EQ(first.usage.cached_tokens, 0);
    EXPECT_GE(second.usage.cached_tokens, 16);
  }
}

// cache_control (with either ttl) marks a prefix to cache: the next request with that prefix reads
// it (cache_read_input_tokens). This server's cache keeps every prefix, marked or not, until its
// byte budget needs the room (least recently used first); no entry expires by age.
TEST(FieldEffects, CacheControlTtlPrefixIsReadBack) {
  Fixture f(false);
  for (const char* ttl : {"5m", "1h"}) {
    SCOPED_TRACE(ttl);
    const std::string system = std::string(R"(,"system":[{"type":"text","text":"You are the )") + ttl +
                               R"( weather desk of a Swiss newspaper. Answer in one sentence and name the city.",
        "cache_control":{"type":"ephemeral","ttl":")" + ttl + "\"}}]";
    auto req = [&](const char* user) {
      return R"({"model":"deepseek-v4-flash","max_tokens":64,"messages":[{"role":"user","content":")" + std::string(user) +
             "\"}]" + system + "}";
    };
    f.run(f.prepare(Dialect::anthropic, req("Weather in Bern?")));
    auto p = f.prepare(Dialect::anthropic, req("Weather in Basel?"));
    auto m = f.respond(p);
    EXPECT_GE(m.at("usage").at("cache_read_input_tokens").as_int64(), 16);
  }
  auto e = f.error(Dialect::anthropic, R"({"model":"deepseek-v4-flash","max_tokens":8,"messages":[{"role":"user","content":[
      {"type":"text","text":"x","cache_control":{"type":"ephemeral","ttl":"24h"}}]}]})");
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "messages[0].content[0].cache_control.ttl");
}

// ------------------------------------------------------------------------------- Anthropic

// redacted_thinking blocks (another provider's encrypted thinking; this server makes none) leave the
// prompt wherever they are: the prompt is the one without them. A thinking block in the same place
// does reach the prompt, so the drop is the block's, not the place's.
TEST(FieldEffects, AnthropicRedactedThinkingLeavesThePrompt) {
  Fixture f(false);
  auto conversation = [&](const std::string& thinking_block, const std::string& more = "") {
    return R"({"model":"deepseek-v4-flash","max_tokens":4096,"messages":[
        {"role":"user","content":"Hello"},
        {"role":"assistant","content":[)" + thinking_block + R"({"type":"text","text":"Hi!"}]},
        {"role":"user","content":"Weather in Bern?"},
        {"role":"assistant","content":[)" + thinking_block + R"({"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Bern"}}]},
        {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"12 C, sunny"}]}])" +
           two_tools(Dialect::anthropic) + more + "}";
  };
  auto bare = f.prepare(Dialect::anthropic, conversation(""));
  auto redacted = f.prepare(Dialect::anthropic, conversation(R"({"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix/LafPsn4a"},)"));
  EXPECT_EQ(redacted.prompt, bare.prompt);
  auto thought = f.prepare(Dialect::anthropic, conversation(R"({"type":"thinking","thinking":"Check the tool.","signature":"s"},)"));
  EXPECT_NE(thought.prompt, bare.prompt);
  EXPECT_NE(f.prompt_text(thought).find("Check the tool."), std::string::npos);
  auto e = f.error(Dialect::anthropic, conversation(R"({"type":"redacted_thinking"},)"));
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "messages[1].content[0].data");
}

// ------------------------------------------------------------------------------- web search

// The search tools' options reach the provider's query: Responses search_context_size (3 / 5 / 10
// results) and filters.allowed_domains, also for web_search_preview; Anthropic allowed_domains and
// blocked_domains. The control, a tool without options, asks for the server's default.
TEST(FieldEffects, SearchToolOptionsReachTheProvider) {
  const std::string search = script_marker("Let me search.</think>" + call_block("web_search", "query", "capital of Switzerland") + kEos);
  struct Case {
    Dialect d;
    std::string tool;
    int results;
    std::vector<std::string> include, exclude;
  } cases[] = {
      {Dialect::responses, R"({"type":"web_search"})", 5, {}, {}},
      {Dialect::responses, R"({"type":"web_search","search_context_size":"low","filters":{"allowed_domains":["wikipedia.org","admin.ch"]}})", 3, {"wikipedia.org", "admin.ch"}, {}},
      {Dialect::responses, R"({"type":"web_search_preview","search_context_size":"high"})", 10, {}, {}},
      {Dialect::anthropic, R"({"type":"web_search_20250305","name":"web_search"})", 5, {}, {}},
      {Dialect::anthropic, R"({"type":"web_search_20250305","name":"web_search","allowed_domains":["wikipedia.org"]})", 5, {"wikipedia.org"}, {}},
      {Dialect::anthropic, R"({"type":"web_search_20250305","name":"web_search","blocked_domains":["example.com"]})", 5, {}, {"example.com"}},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.tool);
    Fixture f;
    auto p = f.prepare(c.d, body(c.d, R"(,"tools":[)" + c.tool + "]", search));
    auto r = f.respond(p);
    auto queries = f.provider->queries();
    ASSERT_EQ(queries.size(), 1u);
    EXPECT_EQ(queries[0].text, "capital of Switzerland");
    EXPECT_EQ(queries[0].max_results, c.results);
    EXPECT_EQ(queries[0].include_domains, c.include);
    EXPECT_EQ(queries[0].exclude_domains, c.exclude);
    if (c.d == Dialect::responses) {
      EXPECT_EQ(r.at("output").at(1).at("type"), "web_search_call");
      EXPECT_TRUE(r.at("withheld_tools").as_array().empty());
    }
  }
  // Without search on the server, web_search_preview is withheld under its own name.
  Fixture off(false);
  auto p = off.prepare(Dialect::responses, body(Dialect::responses, R"(,"tools":[{"type":"web_search_preview"}])"));
  EXPECT_EQ(p.req.withheld_tools, std::vector<std::string>{"web_search_preview"});
  EXPECT_EQ(off.prompt_text(p).find("web_search"), std::string::npos);
}

// count_tokens counts the search tool's function when the server searches (the prompt the request
// would have), refuses the tool when it does not, and refuses web_search_linkup, whose results it
// cannot count.
TEST(FieldEffects, CountTokensCountsTheSearchToolAndRefusesWebSearchLinkup) {
  Fixture f;
  const Principal who{"k1"};
  const std::string tool = R"(,"tools":[{"type":"web_search_20250305","name":"web_search"}])";
  const int64_t with = f.service->count_tokens(body(Dialect::anthropic, tool), who).at("input_tokens").as_int64();
  const int64_t without = f.service->count_tokens(body(Dialect::anthropic, ""), who).at("input_tokens").as_int64();
  EXPECT_EQ(with, int64_t(f.prepare(Dialect::anthropic, body(Dialect::anthropic, tool)).prompt.size()));
  EXPECT_GT(with, without);
  auto refused = [&](Fixture& fx, const std::string& b) {
    try {
      fx.service->count_tokens(b, who);
    } catch (const ApiError& e) {
      return e;
    }
    ADD_FAILURE() << "count_tokens accepted " << b;
    return ApiError(0, "", "");
  };
  Fixture off(false);
  auto e = refused(off, body(Dialect::anthropic, tool));
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "tools[0].type");
  auto linkup = refused(f, body(Dialect::anthropic, R"(,"web_search_linkup":true)"));
  EXPECT_EQ(linkup.status, 400);
  EXPECT_EQ(linkup.param, "web_search_linkup");
  EXPECT_TRUE(f.provider->queries().empty());
  EXPECT_NO_THROW(f.service->count_tokens(body(Dialect::anthropic, R"(,"web_search_linkup":false)"), who));
}

// ------------------------------------------------------------------------------- logit_bias

// A logit_bias token id past the vocabulary is refused before the request runs (422, as the other
// out-of-range values), naming the key; the vocabulary's last id is taken.
TEST(FieldEffects, LogitBiasPastTheVocabularyIsRefusedNamingIt) {
  Fixture f(false);
  const int64_t vocab = f.engine->config().vocab_size;
  auto last = f.prepare(Dialect::chat, body(Dialect::chat, R"(,"logit_bias":{")" + std::to_string(vocab - 1) + R"(":-100})"));
  EXPECT_EQ(last.params.logit_bias, (std::vector<std::pair<int32_t, float>>{{int32_t(vocab - 1), -100.f}}));
  auto e = f.error(Dialect::chat, body(Dialect::chat, R"(,"logit_bias":{")" + std::to_string(vocab) + R"(":1})"));
  EXPECT_EQ(e.status, 422);
  EXPECT_EQ(e.param, "logit_bias." + std::to_string(vocab));
  EXPECT_NE(std::string(e.what()).find("outside the vocabulary"), std::string::npos);
}

// ---------------------------------------------------------------------------------- refusals

// The refusals no other test sent: each names its field.
TEST(FieldEffects, RefusalsNameTheirField) {
  Fixture f;  // with search, so that a search tool's options are read
  struct Case {
    Dialect d;
    std::string more;
    int status;
    std::string param;
  } cases[] = {
      {Dialect::chat, R"(,"stream_options":{"include_obfuscation":false})", 400, "stream_options.include_obfuscation"},
      {Dialect::chat, R"(,"tools":[{"type":"custom","custom":{"name":"apply_patch"}}])", 422, "tools[0].type"},
      {Dialect::responses, R"(,"reasoning":{"effort":"low","context":"all"})", 400, "reasoning.context"},
      {Dialect::responses, R"(,"text":{"verbosity":"low"})", 400, "text.verbosity"},
      {Dialect::responses, R"(,"tools":[{"type":"function","name":"f","defer_loading":true}])", 400, "tools[0].defer_loading"},
      {Dialect::responses, R"(,"tools":[{"type":"web_search","search_content_types":["text"]}])", 400, "tools[0].search_content_types"},
      {Dialect::responses, R"(,"tools":[{"type":"web_search","user_location":{"type":"approximate","city":"Bern"}}])", 422, "tools[0].user_location"},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.more);
    auto e = f.error(c.d, body(c.d, c.more));
    EXPECT_EQ(e.status, c.status);
    EXPECT_EQ(e.param, c.param);
  }
  struct Input {
    Dialect d;
    std::string body;
    std::string param;
  } inputs[] = {
      {Dialect::responses, R"({"model":"deepseek-v4-flash","input":[{"role":"user","content":"x","phase":"final"}]})", "input[0].phase"},
      {Dialect::responses, R"({"model":"deepseek-v4-flash","input":[{"role":"user","content":[{"type":"input_image","image_url":"https://a/b.png"}]}]})", "input[0].content[0].type"},
      {Dialect::anthropic, R"({"model":"deepseek-v4-flash","max_tokens":8,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://a/b.png"}}]}]})", "messages[0].content[0].type"},
      {Dialect::anthropic, R"({"model":"deepseek-v4-flash","max_tokens":8,"messages":[{"role":"user","content":[{"type":"thinking","thinking":"x","signature":"s"}]}]})", "messages[0].content[0].type"},
  };
  for (auto& in : inputs) {
    SCOPED_TRACE(in.body);
    auto e = f.error(in.d, in.body);
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, in.param);
  }
}

// A Responses refusal content part sent back joins the turn's text, as Chat's refusal does.
TEST(FieldEffects, ResponsesRefusalPartJoinsTheTurn) {
  Fixture f(false);
  auto p = f.prepare(Dialect::responses, R"({"model":"deepseek-v4-flash","input":[{"role":"user","content":"Help me."},
      {"role":"assistant","content":[{"type":"refusal","refusal":"I cannot help with that."}]},
      {"role":"user","content":"Why not?"}]})");
  ASSERT_EQ(p.req.messages.size(), 3u);
  EXPECT_EQ(p.req.messages[1].content, "I cannot help with that.");
  EXPECT_NE(f.prompt_text(p).find("I cannot help with that."), std::string::npos);
}
