// Streaming completion parser. Text that could still be the start of a marker is held back, so the
// emitted deltas never contain markup and their concatenation does not depend on chunking. The
// DSML grammar is the one encoding_dsv4.py's parse_tool_calls accepts (strict); anything else in a
// tool-call block becomes content.
#include "text/completion_parser.h"

#include <algorithm>
#include <random>

#include "text/chat_encoder.h"

namespace v4::text {

namespace {

constexpr std::string_view kThinkStart = "<think>";
constexpr std::string_view kThinkEnd = "</think>";
constexpr std::string_view kEos = "<｜end▁of▁sentence｜>";
constexpr std::string_view kCallsOpen = "<｜DSML｜tool_calls>";
constexpr std::string_view kCallsClose = "</｜DSML｜tool_calls>";
constexpr std::string_view kInvokeOpen = "<｜DSML｜invoke";
constexpr std::string_view kInvokeClose = "</｜DSML｜invoke>";
constexpr std::string_view kParamOpen = "<｜DSML｜parameter";
constexpr std::string_view kParamClose = "</｜DSML｜parameter>";

std::string random_call_id() {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id.push_back(alphabet[rng() % (sizeof alphabet - 1)]);
  return id;
}

// Length of the longest suffix of `text` that is a proper prefix of `marker`.
size_t partial_suffix(std::string_view text, std::string_view marker) {
  size_t max = std::min(text.size(), marker.size() - 1);
  for (size_t n = max; n > 0; --n)
    if (text.substr(text.size() - n) == marker.substr(0, n)) return n;
  return 0;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Parses one "<｜DSML｜invoke name="N">\n<params>\n</｜DSML｜invoke>" element (the text from
// kInvokeOpen through kInvokeClose) as parse_tool_calls does. Returns false if malformed.
bool parse_invoke(std::string_view s, ToolCall& call) {
  if (!starts_with(s, kInvokeOpen)) return false;
  s.remove_prefix(kInvokeOpen.size());
  s.remove_suffix(kInvokeClose.size());
  // Header: \s*name="NAME">\n up to the first parameter or the end of the invoke.
  size_t header_end = s.find(kParamOpen);
  std::string_view header = s.substr(0, header_end);
  size_t ws = 0;
  while (ws < header.size() && (header[ws] == ' ' || header[ws] == '\n' || header[ws] == '\t' || header[ws] == '\r'))
    ++ws;
  header.remove_prefix(ws);
  // The official pattern is ^\s*name="(.*?)">\n$ where Python's $ also matches before one final
  // newline, so an invoke without parameters may be followed by an empty line.
  constexpr std::string_view kNameOpen = "name=\"";
  std::string_view close_with_blank = "\">\n\n", close = "\">\n";
  auto ends_with = [&](std::string_view suffix) {
    return header.size() >= kNameOpen.size() + suffix.size() && header.substr(header.size() - suffix.size()) == suffix;
  };
  if (!starts_with(header, kNameOpen)) return false;
  size_t close_len = ends_with(close_with_blank) ? close_with_blank.size() : ends_with(close) ? close.size() : 0;
  if (close_len == 0) return false;
  call.name = std::string(header.substr(kNameOpen.size(), header.size() - kNameOpen.size() - close_len));

  std::vector<std::pair<std::string, std::string>> args;  // key -> JSON value text
  std::string_view rest = header_end == std::string_view::npos ? std::string_view() : s.substr(header_end);
  while (!rest.empty()) {
    // rest = <｜DSML｜parameter name="K" string="B">V</｜DSML｜parameter>\n ...
    rest.remove_prefix(kParamOpen.size());
    size_t close = rest.find(kParamClose);
    if (close == std::string_view::npos) return false;
    std::string_view param = rest.substr(0, close);
    rest.remove_prefix(close + kParamClose.size());
    constexpr std::string_view kKeyOpen = " name=\"";
    if (!starts_with(param, kKeyOpen)) return false;
    param.remove_prefix(kKeyOpen.size());
    size_t t = param.find("\" string=\"true\">"), f = param.find("\" string=\"false\">");
    bool is_string = t != std::string_view::npos && (f == std::string_view::npos || t < f);
    size_t key_end = is_string ? t : f;
    if (key_end == std::string_view::npos) return false;
    std::string key(param.substr(0, key_end));
    std::string_view value = param.substr(key_end + (is_string ? 16 : 17));
    for (const auto& a : args)
      if (a.first == key) return false;  // duplicate parameter
    args.emplace_back(key, is_string ? python_json_dumps(boost::json::string(value)) : std::string(value));
    // Separator: exactly "\n" then the next parameter or the end of the invoke.
    if (rest == "\n") break;
    if (!starts_with(rest, "\n") || !starts_with(rest.substr(1), kParamOpen)) return false;
    rest.remove_prefix(1);
  }
  if (header_end == std::string_view::npos && !s.empty() && s.back() != '\n') return false;
  std::string arguments(1, '{');
  for (size_t i = 0; i < args.size(); ++i) {
    if (i) arguments += ", ";
    arguments += python_json_dumps(boost::json::string(args[i].first));
    arguments += ": ";
    arguments += args[i].second;
  }
  arguments += '}';
  call.arguments = std::move(arguments);
  return true;
}

}  // namespace

struct CompletionParser::State {
  enum class Mode { reasoning, content, tool_block, done };
  ParserOptions options;
  Mode mode = Mode::content;
  std::string buffer;           // received, not yet emitted / consumed
  std::string block_raw;        // the tool block's text consumed so far (for degrading to content)
  bool content_started = false; // any content character seen (a leading <think> is only honoured before)
  size_t tool_calls = 0;
  std::vector<CompletionEvent> events;

  void emit(CompletionEvent::Kind kind, std::string_view text) {
    if (text.empty()) return;
    if (!events.empty() && events.back().kind == kind && kind != CompletionEvent::Kind::tool_call) {
      events.back().text += text;
      return;
    }
    CompletionEvent e{kind, std::string(text), {}, false};
    events.push_back(std::move(e));
  }
  void emit_content(std::string_view text) {
    if (text.empty()) return;
    content_started = true;
    emit(CompletionEvent::Kind::content_delta, text);
  }
  void end(bool saw_eos) {
    mode = Mode::done;
    CompletionEvent e{CompletionEvent::Kind::end, {}, {}, saw_eos};
    events.push_back(std::move(e));
  }

  // Runs the state machine over the buffer until it needs more text. `final` flushes everything.
  void run(bool final) {
    while (mode != Mode::done) {
      size_t before = buffer.size();
      Mode mode_before = mode;
      step(final);
      if (mode == mode_before && buffer.size() == before) break;
    }
  }

  void step(bool final) {
    switch (mode) {
      case Mode::reasoning: return step_reasoning(final);
      case Mode::content: return step_content(final);
      case Mode::tool_block: return step_tool_block(final);
      case Mode::done: return;
    }
  }

  void step_reasoning(bool final) {
    size_t end_pos = buffer.find(kThinkEnd), eos_pos = buffer.find(kEos);
    if (end_pos != std::string::npos && (eos_pos == std::string::npos || end_pos < eos_pos)) {
      emit(CompletionEvent::Kind::reasoning_delta, std::string_view(buffer).substr(0, end_pos));
      buffer.erase(0, end_pos + kThinkEnd.size());
      mode = Mode::content;
      content_started = true;  // a <think> after </think> is plain text
      return;
    }
    if (eos_pos != std::string::npos) {
      emit(CompletionEvent::Kind::reasoning_delta, std::string_view(buffer).substr(0, eos_pos));
      buffer.clear();
      end(true);
      return;
    }
    size_t hold = final ? 0 : std::max(partial_suffix(buffer, kThinkEnd), partial_suffix(buffer, kEos));
    emit(CompletionEvent::Kind::reasoning_delta, std::string_view(buffer).substr(0, buffer.size() - hold));
    buffer.erase(0, buffer.size() - hold);
  }

  void step_content(bool final) {
    if (!content_started && tool_calls == 0) {
      // A completion that opens its own reasoning (e.g. the prompt did not end with <think>).
      if (starts_with(buffer, kThinkStart)) {
        buffer.erase(0, kThinkStart.size());
        mode = Mode::reasoning;
        return;
      }
      if (!final && buffer.size() < kThinkStart.size() && starts_with(kThinkStart, buffer)) return;
    }
    size_t eos_pos = buffer.find(kEos);
    size_t calls_pos = options.parse_tool_calls ? buffer.find(kCallsOpen) : std::string::npos;
    if (calls_pos != std::string::npos && (eos_pos == std::string::npos || calls_pos < eos_pos)) {
      // The block is introduced by "\n\n"; those newlines belong to the block, not the content.
      size_t text_end = calls_pos, newlines = 0;
      while (text_end > 0 && newlines < 2 && buffer[text_end - 1] == '\n') --text_end, ++newlines;
      emit_content(std::string_view(buffer).substr(0, text_end));
      block_raw = buffer.substr(text_end, calls_pos + kCallsOpen.size() - text_end);
      buffer.erase(0, calls_pos + kCallsOpen.size());
      mode = Mode::tool_block;
      return;
    }
    if (eos_pos != std::string::npos) {
      emit_content(std::string_view(buffer).substr(0, eos_pos));
      buffer.clear();
      end(true);
      return;
    }
    size_t hold = 0;
    if (!final) {
      hold = partial_suffix(buffer, kEos);
      if (options.parse_tool_calls) {
        size_t calls_hold = partial_suffix(buffer, kCallsOpen);
        // Also keep back newlines right before it: they may introduce a tool-call block.
        size_t k = buffer.size() - calls_hold;
        while (k > 0 && buffer[k - 1] == '\n') --k;
        hold = std::max(hold, buffer.size() - k);
      }
    }
    emit_content(std::string_view(buffer).substr(0, buffer.size() - hold));
    buffer.erase(0, buffer.size() - hold);
  }

  // Inside <｜DSML｜tool_calls>: each "\n<｜DSML｜invoke ...</｜DSML｜invoke>" yields one call as soon
  // as it closes; "\n</｜DSML｜tool_calls>" ends the block.
  void step_tool_block(bool final) {
    size_t invoke_end = buffer.find(kInvokeClose), block_end = buffer.find(kCallsClose);
    size_t eos_pos = buffer.find(kEos);
    if (eos_pos != std::string::npos && eos_pos < invoke_end && eos_pos < block_end) return degrade();
    if (block_end != std::string::npos && (invoke_end == std::string::npos || block_end < invoke_end)) {
      if (std::string_view(buffer).substr(0, block_end) != "\n") return degrade();
      buffer.erase(0, block_end + kCallsClose.size());
      block_raw.clear();
      mode = Mode::content;
      return;
    }
    if (invoke_end != std::string::npos) {
      std::string_view element = std::string_view(buffer).substr(0, invoke_end + kInvokeClose.size());
      ToolCall call;
      if (!starts_with(element, "\n") || !parse_invoke(element.substr(1), call)) return degrade();
      call.index = tool_calls++;
      call.id = options.make_tool_call_id ? options.make_tool_call_id(call.index) : random_call_id();
      CompletionEvent e{CompletionEvent::Kind::tool_call, {}, std::move(call), false};
      events.push_back(std::move(e));
      block_raw.clear();  // calls already emitted are not repeated as content
      buffer.erase(0, element.size());
      return;
    }
    // Give up early when the text can no longer become an invoke / block end, or at the end.
    std::string_view b = buffer;
    bool plausible = b.empty() || (b[0] == '\n' && (starts_with(b.substr(1), kInvokeOpen) || starts_with(kInvokeOpen, b.substr(1)) ||
                                                    starts_with(kCallsClose, b.substr(1)))) ;
    if (final || !plausible) degrade();
  }

  // Malformed DSML: what was consumed of the block goes back to being content. The opener itself
  // (in block_raw unless calls were already emitted) is emitted so it is not recognised again.
  void degrade() {
    emit_content(block_raw);
    block_raw.clear();
    mode = Mode::content;
  }
};

CompletionParser::CompletionParser(ParserOptions options) : state_(std::make_unique<State>()) {
  state_->options = std::move(options);
  state_->mode = state_->options.start_in_reasoning ? State::Mode::reasoning : State::Mode::content;
}
CompletionParser::~CompletionParser() = default;
CompletionParser::CompletionParser(CompletionParser&&) noexcept = default;
CompletionParser& CompletionParser::operator=(CompletionParser&&) noexcept = default;

std::vector<CompletionEvent> CompletionParser::feed(std::string_view chunk) {
  if (state_->mode == State::Mode::done) return {};
  state_->buffer.append(chunk);
  state_->run(false);
  return std::exchange(state_->events, {});
}

std::vector<CompletionEvent> CompletionParser::finish() {
  if (state_->mode != State::Mode::done) {
    state_->run(true);
    if (state_->mode != State::Mode::done) state_->end(false);
  }
  return std::exchange(state_->events, {});
}

bool CompletionParser::in_reasoning() const { return state_->mode == State::Mode::reasoning; }
bool CompletionParser::done() const { return state_->mode == State::Mode::done; }

ParsedCompletion parse_completion(std::string_view text, ParserOptions options) {
  CompletionParser parser(std::move(options));
  ParsedCompletion out;
  auto take = [&](std::vector<CompletionEvent> events) {
    for (auto& e : events) {
      switch (e.kind) {
        case CompletionEvent::Kind::reasoning_delta: out.reasoning_content += e.text; break;
        case CompletionEvent::Kind::content_delta: out.content += e.text; break;
        case CompletionEvent::Kind::tool_call: out.tool_calls.push_back(std::move(e.tool_call)); break;
        case CompletionEvent::Kind::end: out.saw_eos = e.saw_eos; break;
      }
    }
  };
  take(parser.feed(text));
  take(parser.finish());
  return out;
}

}  // namespace v4::text
