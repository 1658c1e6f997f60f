#pragma once
// The DeepSeek V4 prompt encoding: a C++ rendition of the semantics of the official
// encoding_dsv4.py `encode_messages` (normative), byte for byte.
//
// Messages are OpenAI-style Boost.JSON objects: role (system|user|assistant|tool|developer|
// latest_reminder), content, reasoning_content, tool_calls ([{id,type,function:{name,arguments}}]),
// tool_call_id, tools ([{type:"function",function:{...}}]), response_format, task
// (action|query|authority|domain|title|read_url), wo_eos, mask.
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "text/tokenizer.h"

namespace v4::text {

struct ChatEncodingError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

enum class ThinkingMode { chat, thinking };

struct ChatEncodeOptions {
  ThinkingMode mode = ThinkingMode::thinking;
  bool drop_thinking = true;
  bool add_default_bos_token = true;
  // std::nullopt, "high" or "max" (the official encoder accepts only these; others throw).
  std::optional<std::string> reasoning_effort;
};

// encode_messages(messages, thinking_mode, context, drop_thinking, add_default_bos_token,
// reasoning_effort). `context` is an already-encoded prefix of the conversation (may be empty).
// Throws ChatEncodingError on what the official encoder rejects (unknown role, bad task, ...).
std::string encode_messages(const boost::json::array& messages, const ChatEncodeOptions& options = {},
                            const boost::json::array& context = {});

// Convenience for APIs whose request carries tools / response_format at top level: attaches them
// to the first message if it is a system message, else inserts an empty system message carrying
// them (the official tests attach tools to the first, system, message).
boost::json::array attach_request_fields(boost::json::array messages, const boost::json::array* tools,
                                         const boost::json::value* response_format);

// Prompt -> ids (added tokens recognised, no automatic BOS: the prompt carries it).
std::vector<int32_t> encode_prompt_tokens(const Tokenizer& tokenizer, const std::string& prompt);

// JSON text -> value with Python json.loads semantics that matter when re-serialising: doubles
// correctly rounded (Boost.JSON 1.81's parser is not, which changes 17-digit floats), NaN/Infinity
// accepted, duplicate keys keep their first position and last value. Throws std::invalid_argument.
// Use it for request bodies whose numbers end up in the prompt (tool schemas, response_format).
boost::json::value parse_json_exact(std::string_view text);

// Python's json.dumps(value, ensure_ascii=False) with default separators (", ", ": "), keys in
// the object's order, floats as Python repr.
std::string python_json_dumps(const boost::json::value& value);

// Token strings of the format.
namespace tokens {
inline constexpr const char* bos = "<｜begin▁of▁sentence｜>";
inline constexpr const char* eos = "<｜end▁of▁sentence｜>";
inline constexpr const char* think_start = "<think>";
inline constexpr const char* think_end = "</think>";
inline constexpr const char* dsml = "｜DSML｜";
inline constexpr const char* user = "<｜User｜>";
inline constexpr const char* assistant = "<｜Assistant｜>";
inline constexpr const char* latest_reminder = "<｜latest_reminder｜>";
}  // namespace tokens

}  // namespace v4::text
