#pragma once
// Streaming parser of a DeepSeek V4 completion (the text the model generates after the prompt):
//   [reasoning] </think> content [\n\n<｜DSML｜tool_calls> ... </｜DSML｜tool_calls>] <｜end▁of▁sentence｜>
// Feed text chunks as they are detokenised; events come out as soon as they are certain, so no
// markup ever leaks into reasoning/content deltas. The result is the same for any split of the
// text into chunks. Malformed DSML degrades to plain content (never throws on model output).
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace v4::text {

struct ToolCall {
  std::string id;         // from ParserOptions::make_tool_call_id
  std::string name;
  std::string arguments;  // a JSON object text, e.g. {"city": "Paris", "days": 3}
  size_t index = 0;       // position among this completion's tool calls
};

struct CompletionEvent {
  enum class Kind { reasoning_delta, content_delta, tool_call, end };
  Kind kind;
  std::string text;    // reasoning/content delta
  ToolCall tool_call;  // kind == tool_call
  bool saw_eos = false;  // kind == end: the EOS token text was seen (else: stream just ended)
};

struct ParserOptions {
  // True when the prompt ended with <think> (thinking mode): output starts as reasoning.
  bool start_in_reasoning = false;
  bool parse_tool_calls = true;  // false: DSML stays content
  // Generates the id of the n-th tool call; default "call_" + 24 random alphanumerics.
  std::function<std::string(size_t)> make_tool_call_id;
};

class CompletionParser {
 public:
  explicit CompletionParser(ParserOptions options = {});
  ~CompletionParser();
  CompletionParser(CompletionParser&&) noexcept;
  CompletionParser& operator=(CompletionParser&&) noexcept;

  // Appends generated text; returns the events it completes. After EOS further text is ignored.
  std::vector<CompletionEvent> feed(std::string_view chunk);
  // End of generation (EOS already fed, max tokens, stop): flushes held-back text (an unfinished
  // tool-call block becomes content) and emits `end`. Idempotent.
  std::vector<CompletionEvent> finish();
  bool in_reasoning() const;
  bool done() const;

  struct State;

 private:
  std::unique_ptr<State> state_;
};

// Whole-text convenience (non-streaming): accumulates the events of one parser.
struct ParsedCompletion {
  std::string reasoning_content;
  std::string content;
  std::vector<ToolCall> tool_calls;
  bool saw_eos = false;
};
ParsedCompletion parse_completion(std::string_view text, ParserOptions options = {});

}  // namespace v4::text
