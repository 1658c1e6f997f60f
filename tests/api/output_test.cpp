// Response objects, SSE streams and error bodies of the three dialects (api.md section 2).
#include <gtest/gtest.h>

#include "api/anthropic.h"
#include "api/chat.h"
#include "api/output.h"
#include "api/responses.h"

using namespace v4::api;
namespace json = boost::json;

namespace {

Request request(Dialect d) {
  Request r;
  r.dialect = d;
  r.model = "deepseek-v4-flash";
  return r;
}

ResponseMeta meta() {
  ResponseMeta m;
  m.id = "id_1";
  m.item_id = "item";
  m.created = 1750000000;
  m.model = "deepseek-v4-flash";
  return m;
}

Delta reasoning(const char* t) { return Delta{Delta::Kind::reasoning, t, {}, {}}; }
Delta content(const char* t) { return Delta{Delta::Kind::content, t, {}, {}}; }
Delta call(const char* id, const char* name, const char* args, size_t index = 0) {
  Delta d;
  d.kind = Delta::Kind::tool_call;
  d.call.id = id;
  d.call.name = name;
  d.call.arguments = args;
  d.call.index = index;
  return d;
}

Outcome outcome(StopKind k) {
  Outcome o;
  o.stop = k;
  o.usage = Usage{44, 32, 48, 20};
  return o;
}

// Splits an SSE text into (event, data JSON) pairs; data "[DONE]" comes back as a string value.
std::vector<std::pair<std::string, json::value>> parse_sse(const std::string& text) {
  std::vector<std::pair<std::string, json::value>> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "every event ends with a blank line";
    if (end == std::string::npos) break;
    std::string block = text.substr(pos, end - pos);
    pos = end + 2;
    std::string event, data;
    size_t lp = 0;
    while (lp < block.size()) {
      size_t le = block.find('\n', lp);
      if (le == std::string::npos) le = block.size();
      std::string line = block.substr(lp, le - lp);
      if (line.rfind("event: ", 0) == 0) event = line.substr(7);
      if (line.rfind("data: ", 0) == 0) data = line.substr(6);
      lp = le + 1;
    }
    if (data.empty()) continue;
    out.emplace_back(event, data == "[DONE]" ? json::value("[DONE]") : json::parse(data));
  }
  return out;
}

}  // namespace

TEST(Usage, EachDialectsFields) {
  Usage u{44, 32, 48, 20};
  auto c = chat_usage(u);
  EXPECT_EQ(c["prompt_tokens"], 44);
  EXPECT_EQ(c["total_tokens"], 92);
  EXPECT_EQ(c["prompt_tokens_details"].at("cached_tokens"), 32);
  EXPECT_EQ(c["completion_tokens_details"].at("reasoning_tokens"), 20);
  EXPECT_EQ(c["prompt_cache_hit_tokens"], 32);
  EXPECT_EQ(c["prompt_cache_miss_tokens"], 12);
  auto r = responses_usage(u);
  EXPECT_EQ(r["input_tokens"], 44);
  EXPECT_EQ(r["input_tokens_details"].at("cached_tokens"), 32);
  EXPECT_EQ(r["output_tokens_details"].at("reasoning_tokens"), 20);
  EXPECT_EQ(r["total_tokens"], 92);
  auto a = anthropic_usage(u);
  EXPECT_EQ(a["input_tokens"], 12) << "Anthropic input_tokens excludes cache reads";
  EXPECT_EQ(a["cache_read_input_tokens"], 32);
  EXPECT_EQ(a["output_tokens"], 48);
}

TEST(ChatObject, ReasoningContentToolCallsAndFinishReason) {
  auto req = request(Dialect::chat);
  Turn t;
  t.add(reasoning("think"));
  t.add(call("call_1", "get_weather", R"({"city": "Paris"})"));
  auto o = render_response(req, meta(), t, outcome(StopKind::tool_calls));
  EXPECT_EQ(o["object"], "chat.completion");
  auto& choice = o["choices"].as_array().at(0).as_object();
  EXPECT_EQ(choice.at("finish_reason"), "tool_calls");
  auto& msg = choice.at("message").as_object();
  EXPECT_EQ(msg.at("reasoning_content"), "think");
  EXPECT_TRUE(msg.at("content").is_null());
  EXPECT_EQ(msg.at("tool_calls").at(0).at("function").at("arguments"), R"({"city": "Paris"})");
  EXPECT_EQ(o["usage"].at("prompt_cache_miss_tokens"), 12);

  Turn plain;
  plain.add(content("Hello"));
  EXPECT_EQ(render_response(req, meta(), plain, outcome(StopKind::length))["choices"].at(0).at("finish_reason"), "length");
  EXPECT_EQ(render_response(req, meta(), plain, outcome(StopKind::stop_string))["choices"].at(0).at("finish_reason"), "stop");
}

TEST(ChatStream, ChunksUsageAndDone) {
  auto req = request(Dialect::chat);
  req.stream = req.include_usage = true;
  auto s = make_stream_renderer(req, meta(), 44);
  std::string text = s->start(0);
  text += s->delta(reasoning("Let me"));
  text += s->delta(content("Hello"));
  text += s->finish(outcome(StopKind::end_turn));
  auto ev = parse_sse(text);
  ASSERT_EQ(ev.size(), 6u);
  EXPECT_EQ(ev[0].second.at("choices").at(0).at("delta").at("role"), "assistant");
  EXPECT_EQ(ev[1].second.at("choices").at(0).at("delta").at("reasoning_content"), "Let me");
  EXPECT_EQ(ev[2].second.at("choices").at(0).at("delta").at("content"), "Hello");
  EXPECT_EQ(ev[3].second.at("choices").at(0).at("finish_reason"), "stop");
  EXPECT_TRUE(ev[3].second.at("usage").is_null()) << "usage null on all but the last chunk";
  EXPECT_TRUE(ev[4].second.at("choices").as_array().empty());
  EXPECT_EQ(ev[4].second.at("usage").at("completion_tokens"), 48);
  EXPECT_EQ(ev[5].second, "[DONE]");
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(ev[i].second.at("created"), 1750000000);
    EXPECT_EQ(ev[i].second.at("object"), "chat.completion.chunk");
  }
  // Without include_usage: no usage chunk and no usage key.
  req.include_usage = false;
  auto s2 = make_stream_renderer(req, meta(), 44);
  std::string text2 = s2->start(0);
  text2 += s2->finish(outcome(StopKind::end_turn));
  auto ev2 = parse_sse(text2);
  ASSERT_EQ(ev2.size(), 3u);
  EXPECT_FALSE(ev2[1].second.as_object().contains("usage"));
}

TEST(ChatStream, ToolCallDeltaAndMidStreamError) {
  auto req = request(Dialect::chat);
  auto s = make_stream_renderer(req, meta(), 1);
  std::string text = s->delta(call("call_9", "f", "{}", 0));
  text += s->finish(outcome(StopKind::tool_calls));
  auto ev = parse_sse(text);
  auto& tc = ev[0].second.at("choices").at(0).at("delta").at("tool_calls").at(0);
  EXPECT_EQ(tc.at("index"), 0);
  EXPECT_EQ(tc.at("id"), "call_9");
  EXPECT_EQ(tc.at("function").at("name"), "f");
  EXPECT_EQ(ev[1].second.at("choices").at(0).at("finish_reason"), "tool_calls");
  auto err = parse_sse(s->error(ApiError(500, "server_error", "boom")));
  ASSERT_EQ(err.size(), 1u);
  EXPECT_EQ(err[0].second.at("error").at("message"), "boom");
}

TEST(ResponsesObject, ItemsStatusAndIncomplete) {
  auto req = request(Dialect::responses);
  Turn t;
  t.add(reasoning("R"));
  t.add(content("Answer"));
  auto o = render_response(req, meta(), t, outcome(StopKind::end_turn));
  EXPECT_EQ(o["object"], "response");
  EXPECT_EQ(o["status"], "completed");
  auto& out = o["output"].as_array();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].at("type"), "reasoning");
  EXPECT_EQ(out[0].at("content").at(0).at("text"), "R");
  EXPECT_EQ(out[1].at("type"), "message");
  EXPECT_EQ(out[1].at("content").at(0).at("text"), "Answer");
  EXPECT_EQ(o["usage"].at("input_tokens"), 44);
  auto inc = render_response(req, meta(), t, outcome(StopKind::length));
  EXPECT_EQ(inc["status"], "incomplete");
  EXPECT_EQ(inc["incomplete_details"].at("reason"), "max_output_tokens");
}

TEST(ResponsesStream, TypedEventsWithIncreasingSequenceNumbers) {
  auto req = request(Dialect::responses);
  auto s = make_stream_renderer(req, meta(), 44);
  // (one statement per call: the order of evaluation of a + b is unspecified)
  std::string text = s->start(0);
  text += s->delta(reasoning("R1"));
  text += s->delta(reasoning("R2"));
  text += s->delta(content("Hi"));
  text += s->delta(call("call_1", "f", R"({"a": 1})", 0));
  text += s->finish(outcome(StopKind::tool_calls));
  auto ev = parse_sse(text);
  std::vector<std::string> types;
  int64_t seq = -1;
  for (auto& [event, data] : ev) {
    EXPECT_EQ(event, data.at("type").as_string()) << "event: line matches data.type";
    EXPECT_EQ(data.at("sequence_number").as_int64(), seq + 1);
    seq = data.at("sequence_number").as_int64();
    types.push_back(std::string(data.at("type").as_string()));
  }
  const std::vector<std::string> want = {
      "response.created", "response.in_progress",
      "response.output_item.added", "response.content_part.added", "response.reasoning_text.delta",
      "response.reasoning_text.delta", "response.reasoning_text.done", "response.content_part.done",
      "response.output_item.done",
      "response.output_item.added", "response.content_part.added", "response.output_text.delta",
      "response.output_text.done", "response.content_part.done", "response.output_item.done",
      "response.output_item.added", "response.function_call_arguments.delta",
      "response.function_call_arguments.done", "response.output_item.done",
      "response.completed"};
  EXPECT_EQ(types, want);
  auto& done = ev.back().second.at("response");
  EXPECT_EQ(done.at("output").as_array().size(), 3u);
  // Item ids in the stream equal those of the final object.
  EXPECT_EQ(ev[2].second.at("item").at("id"), done.at("output").at(0).at("id"));
  EXPECT_EQ(ev[9].second.at("item").at("id"), done.at("output").at(1).at("id"));
  EXPECT_EQ(ev[15].second.at("item").at("call_id"), "call_1");
}

TEST(AnthropicObject, BlocksStopReasonAndUsage) {
  auto req = request(Dialect::anthropic);
  Turn t;
  t.add(reasoning("T"));
  t.add(content("Sure."));
  t.add(call("toolu_1", "get_weather", R"({"city": "Paris"})"));
  auto o = render_response(req, meta(), t, outcome(StopKind::tool_calls));
  auto& c = o["content"].as_array();
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].at("type"), "thinking");
  EXPECT_EQ(c[1].at("type"), "text");
  EXPECT_EQ(c[2].at("type"), "tool_use");
  EXPECT_EQ(c[2].at("input").at("city"), "Paris");
  EXPECT_EQ(o["stop_reason"], "tool_use");
  Outcome so = outcome(StopKind::stop_string);
  so.matched_stop = "END";
  auto s = render_response(req, meta(), t, so);
  EXPECT_EQ(s["stop_sequence"], "END");
}

TEST(AnthropicStream, BlockOrderPingsAndMessageDelta) {
  auto req = request(Dialect::anthropic);
  auto s = make_stream_renderer(req, meta(), 44);
  std::string text = s->start(0);
  text += s->delta(reasoning("T"));
  text += s->delta(content("Hi"));
  text += s->delta(call("toolu_1", "f", R"({"a": 1})"));
  text += s->finish(outcome(StopKind::tool_calls));
  auto ev = parse_sse(text);
  std::vector<std::string> names;
  for (auto& [e, d] : ev) {
    EXPECT_EQ(e, d.at("type").as_string());
    names.push_back(e);
  }
  const std::vector<std::string> want = {
      "message_start", "ping", "content_block_start", "content_block_delta", "content_block_delta",
      "content_block_stop", "content_block_start", "content_block_delta", "content_block_stop",
      "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"};
  EXPECT_EQ(names, want);
  // The start's output count is 0: LangChain adds it to the final delta's (48, the whole count).
  EXPECT_EQ(ev[0].second.at("message").at("usage").at("output_tokens"), 0);
  EXPECT_EQ(ev[0].second.at("message").at("usage").at("input_tokens"), 44);
  EXPECT_EQ(ev[2].second.at("content_block").at("type"), "thinking");
  EXPECT_EQ(ev[3].second.at("delta").at("type"), "thinking_delta");
  EXPECT_EQ(ev[4].second.at("delta").at("type"), "signature_delta") << "signature before the thinking block stops";
  EXPECT_EQ(ev[6].second.at("index"), 1);
  EXPECT_EQ(ev[7].second.at("delta").at("type"), "text_delta");
  EXPECT_EQ(ev[9].second.at("content_block").at("input").as_object().size(), 0u);
  EXPECT_EQ(ev[10].second.at("delta").at("partial_json"), R"({"a": 1})");
  EXPECT_EQ(ev[12].second.at("delta").at("stop_reason"), "tool_use");
  EXPECT_EQ(ev[12].second.at("usage").at("output_tokens"), 48);
  auto err = parse_sse(s->error(ApiError(529, "overloaded_error", "Overloaded")));
  EXPECT_EQ(err[0].first, "error");
  EXPECT_EQ(err[0].second.at("error").at("type"), "overloaded_error");
}

// A client reading the prompt's accounting from message_start (Claude Code's context meter) and
// one reading the final message_delta must see the same split of cached and uncached tokens.
TEST(AnthropicStream, MessageStartSplitsThePromptAsMessageDeltaDoes) {
  auto req = request(Dialect::anthropic);
  auto s = make_stream_renderer(req, meta(), 44);
  EXPECT_TRUE(s->start_waits_for_admission());
  std::string text = s->start(32);
  text += s->delta(content("Hi"));
  text += s->finish(outcome(StopKind::end_turn));  // usage: 44 prompt tokens, 32 cached
  auto ev = parse_sse(text);
  auto start = ev.front().second.at("message").at("usage");
  auto end = ev[ev.size() - 2].second.at("usage");
  EXPECT_EQ(start.at("input_tokens"), 12);
  EXPECT_EQ(start.at("cache_read_input_tokens"), 32);
  EXPECT_EQ(start.at("input_tokens"), end.at("input_tokens"));
  EXPECT_EQ(start.at("cache_read_input_tokens"), end.at("cache_read_input_tokens"));
  EXPECT_EQ(start.at("cache_creation_input_tokens"), end.at("cache_creation_input_tokens"));
  EXPECT_FALSE(make_stream_renderer(request(Dialect::chat), meta(), 44)->start_waits_for_admission());
}

TEST(Errors, DialectShapes) {
  ApiError e(400, "invalid_request_error", "bad temperature", "temperature", "invalid_parameter");
  auto o = render_error(Dialect::chat, e, "req_1");
  EXPECT_EQ(o["error"].at("type"), "invalid_request_error");
  EXPECT_EQ(o["error"].at("param"), "temperature");
  EXPECT_EQ(o["error"].at("code"), "invalid_parameter");
  auto a = render_error(Dialect::anthropic, e, "req_1");
  EXPECT_EQ(a["type"], "error");
  EXPECT_EQ(a["error"].at("type"), "invalid_request_error");
  EXPECT_EQ(a["request_id"], "req_1");
  EXPECT_EQ(render_error(Dialect::anthropic, ApiError(401, "authentication_error", "x"), "r")["error"].at("type"), "authentication_error");
  EXPECT_EQ(render_error(Dialect::anthropic, ApiError(404, "not_found_error", "x"), "r")["error"].at("type"), "not_found_error");
  EXPECT_EQ(render_error(Dialect::anthropic, ApiError(413, "invalid_request_error", "x"), "r")["error"].at("type"), "request_too_large");
  EXPECT_EQ(render_error(Dialect::anthropic, ApiError(529, "overloaded_error", "x"), "r")["error"].at("type"), "overloaded_error");
}

// thinking.display "omitted" in Chat and Responses (Anthropic's own shape is tested above): the
// reasoning is not shown, non-streamed or streamed; Responses still seals it for the round trip.
TEST(ThinkingDisplay, OmittedHidesTheReasoningInChatAndResponses) {
  Turn turn;
  turn.add(reasoning("secret plan"));
  turn.add(content("answer"));
  auto chat = request(Dialect::chat);
  chat.show_thinking = false;
  auto body = render_response(chat, meta(), turn, outcome(StopKind::end_turn));
  EXPECT_EQ(body.at("choices").at(0).at("message").at("reasoning_content"), "");
  auto cs = make_stream_renderer(chat, meta(), 4);
  cs->start(0);
  EXPECT_EQ(cs->delta(reasoning("secret plan")), "");
  EXPECT_NE(cs->delta(content("answer")).find("answer"), std::string::npos);

  auto resp = request(Dialect::responses);
  resp.show_thinking = false;
  resp.encrypted_reasoning = true;
  const std::string text = json::serialize(render_response(resp, meta(), turn, outcome(StopKind::end_turn)));
  EXPECT_EQ(text.find("secret plan"), std::string::npos);
  EXPECT_NE(text.find("\"encrypted_content\":\""), std::string::npos);
  auto rs = make_stream_renderer(resp, meta(), 4);
  std::string stream = rs->start(0) + rs->delta(reasoning("secret plan")) + rs->delta(content("answer")) +
                       rs->finish(outcome(StopKind::end_turn));
  EXPECT_EQ(stream.find("secret plan"), std::string::npos);
  EXPECT_NE(stream.find("response.output_item.done"), std::string::npos);

  chat.show_thinking = true;
  EXPECT_EQ(render_response(chat, meta(), turn, outcome(StopKind::end_turn)).at("choices").at(0).at("message").at("reasoning_content"),
            "secret plan");
}
