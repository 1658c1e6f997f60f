#pragma once
// The one internal request model the three dialect adapters (api/chat.h, api/responses.h,
// api/anthropic.h) parse into, and what their parsers share: sampling and thinking fields, effort
// budgets, tools in the internal shape, and the encoder messages the prompt is made of.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include "api/fields.h"

namespace v4::api {

// The product sheet: model ids served, context and output limits.
struct ModelCatalog {
  std::vector<std::string> ids = {"deepseek-v4-flash", "deepseek-v4-flash:variant1", "deepseek-v4-flash:variant2"};
  // Names clients send for a served id (serve --model-alias PATTERN=ID; a trailing '*' matches any
  // suffix). The default lets Claude Code's claude-* names reach the model, as DeepSeek's own
  // Anthropic endpoint does.
  std::vector<std::pair<std::string, std::string>> aliases = {{"claude-*", "deepseek-v4-flash"}};
  int64_t context_length = 1048576;
  int64_t max_output_tokens = 393216;
  bool serves(const std::string& id) const;
  // The served id that `id` names (itself or through an alias); std::nullopt when none.
  std::optional<std::string> resolve(const std::string& id) const;
};

// Parses one --model-alias value, PATTERN=ID (throws std::invalid_argument).
std::pair<std::string, std::string> parse_model_alias(const std::string& spec);

struct ToolCallIn {
  std::string id, name, arguments;  // arguments: JSON text
};

// How a tool the model sees was declared, so its calls go back in the declaring shape: Responses
// `namespace` groups (the model sees "NAMESPACE.NAME"; the call item carries `namespace`) and
// `custom` freeform tools (one string parameter `input`; the call is a custom_tool_call).
struct ToolOrigin {
  std::string model_name;  // the name in the prompt
  std::string name;        // the client's name
  std::string ns;          // Responses namespace, or empty
  bool custom = false;
};

struct Message {
  std::string role;  // system | developer | user | assistant | tool
  std::string content;
  std::optional<std::string> reasoning_content;
  std::vector<ToolCallIn> tool_calls;
  std::string tool_call_id;
};

// Which tool calls the model must make, in one shape for the three dialects: the OpenAI tool_choice
// (none | auto | required | a named function) and Anthropic's (auto | any | tool | none).
struct ToolChoice {
  enum class Mode { automatic, none, required, named };
  Mode mode = Mode::automatic;
  std::string name;  // Mode::named: the tool, by the name the model knows it

  // none keeps the tools out of the prompt and no call is parsed.
  bool offers_tools() const { return mode != Mode::none; }
  // required or named: the first thing the model writes is a call (api/constraint.h).
  bool forced() const { return mode == Mode::required || mode == Mode::named; }
};

// The form of the answer, in one shape for the three dialects: Chat response_format, Responses
// text.format, Anthropic output_config.format. A JSON format is described in the system prompt and
// held by constrained decoding (api/constraint.h).
struct OutputFormat {
  enum class Kind { text, json_object, json_schema };
  Kind kind = Kind::text;
  std::string name;           // json_schema: the client's name for it ("" when it gave none)
  boost::json::value schema;  // json_schema: the schema object
  bool strict = false;        // json_schema: as declared; the answer is held to the schema either way
};

struct Request {
  Dialect dialect = Dialect::chat;
  std::string model;
  std::vector<Message> messages;
  boost::json::array tools;  // OpenAI chat shape: [{type:"function", function:{name, description, parameters}}]
  ToolChoice tool_choice;
  std::vector<ToolOrigin> tool_origins;  // only for tools not plain functions (namespaced, custom)
  bool parallel_tool_calls = true;       // false: at most one call per turn (later ones dropped)
  // Tools declared strict (Chat function.strict, Responses strict, Anthropic strict): their calls'
  // arguments are held to their schema by constrained decoding (api/constraint.h).
  std::vector<std::string> strict_tools;
  // Tools the request declared that this server does not give the model (the Responses web_search
  // tool while the server has no search, or when it asks for no live web access and the server
  // searches the live web; docs/api.md): named in the response (`x-v4flash-withheld-tools` header
  // and the response object's `withheld_tools`, with withheld_reason), never silently. The parser
  // lists the search tool here; the service takes it out when it gives it to the model.
  std::vector<std::string> withheld_tools;
  std::string withheld_reason;

  // A search tool the model calls and the server runs (Responses web_search / web_search_preview,
  // Anthropic web_search_20250305). The service gives it to the model as the function `web_search`
  // when search is enabled (`enabled`).
  struct SearchTool {
    std::string type;            // as declared
    std::string param;           // "tools[i]", for errors
    int max_uses = 0;            // Anthropic max_uses (0: the server's cap of rounds only)
    int results = 0;             // Responses search_context_size (0: the server's --search-results)
    bool live_web = true;        // Responses external_web_access (false: cached/offline sources only)
    std::vector<std::string> allowed_domains, blocked_domains;
    bool user_location = false;  // declared: refused when the tool is enabled (the provider takes none)
    bool enabled = false;
  };
  std::optional<SearchTool> search_tool;

  double temperature = 0.7;
  double top_p = 0.9;
  int top_k = 0;
  double frequency_penalty = 0, presence_penalty = 0;      // chat completions
  std::vector<std::pair<int32_t, float>> logit_bias;       // chat completions: (token id, bias)
  std::optional<uint64_t> seed;
  // Chat `n`: independent choices of the same prompt, prefilled once (Engine::submit_choices);
  // choice i samples with choice_seed(seed, i). Every other dialect has one.
  int n = 1;
  int max_tokens = 4096;
  bool max_tokens_given = false;
  std::vector<std::string> stop;

  bool thinking = true;
  std::string effort = "medium";  // none | low | medium | high | max (normalised)
  int thinking_budget = 32768;
  bool thinking_budget_given = false;
  bool show_thinking = true;  // thinking.display = "omitted" (every dialect): the reasoning is not shown
  bool thinking_token_count = false;  // anthropic-beta thinking-token-count: usage.output_tokens_details

  bool logprobs = false;
  int top_logprobs = 0;
  OutputFormat output_format;

  bool stream = false;
  bool include_usage = false;

  // Web search before the answer (web_search_linkup, or Chat's web_search_options): the request
  // field that asked for it (named in errors), the results wanted (0: the server's --search-results)
  // and whether the Sources footer is left out.
  std::string web_search_field;
  int web_search_results = 0;
  bool disable_formatting = false;


  // Responses: request fields the response object echoes.
  std::string reasoning_summary;     // "" (none) | auto | concise | detailed
  bool encrypted_reasoning = false;  // include: ["reasoning.encrypted_content"]
  bool search_sources = false;       // include: ["web_search_call.action.sources"]
  bool store = false;                // Responses: kept (api/response_store.h); the parser's default is true
  bool background = false;           // Responses: runs detached, polled by GET (needs store, not stream)
  std::string prompt_cache_key;      // echoed; the single engine's prefix cache is shared anyway
  std::string instructions;
  std::optional<std::string> previous_response_id;
  boost::json::object metadata;
};

// Opaque reasoning round trip (Responses include ["reasoning.encrypted_content"]): the reasoning
// text sealed with a per-process key, and read back (400 naming `param` when it was not made here).
std::string seal_reasoning(const std::string& text);
std::string unseal_reasoning(const std::string& sealed, const std::string& param);

// The most choices a Chat request may ask for (`n`).
constexpr int kMaxChoices = 8;
// The seed choice `choice` of a request with `seed` samples with: the seed itself for choice 0 (so
// n = 1 is unchanged), else splitmix64(seed + choice * 0x9E3779B97F4A7C15) with its top bit
// cleared (below 2^63, so a request can send it). A request with that seed and n = 1 makes the same
// choice.
uint64_t choice_seed(uint64_t seed, int choice);

// Budget of reasoning tokens that a reasoning effort maps to (explicit thinking_budget wins).
int effort_budget(const std::string& effort);
// The most of max_tokens an effort's budget may take (the rest is left for the answer): low a
// quarter, medium half, high three quarters, max seven eighths. A request without an explicit
// budget reasons for at most min(effort_budget, reasoning_share) tokens.
int reasoning_share(const std::string& effort, int max_tokens);

// The V4 encoder's effort (std::nullopt or "max") for a normalised effort.
std::optional<std::string> encoder_effort(const std::string& effort);

// The format as the V4 prompt states it (the encoder's response_format): std::nullopt for text.
std::optional<boost::json::value> format_for_prompt(const OutputFormat& format);

// The conversation as OpenAI-style messages (text::encode_messages' input, and what a gateway sends
// upstream as Chat messages).
boost::json::array to_encoder_messages(const Request& req);
// What the V4 prompt is made of: the encoder messages with the tools (unless tool_choice is none)
// and the output format attached to the system message.
boost::json::array prompt_messages(const Request& req);

// ---- Shared by the dialect parsers. Each validates every parameter of the product sheet,
// normalises aliases and throws ApiError naming the offending parameter; none looks at the model
// catalog or the prompt.

constexpr int kMaxOutput = 393216;  // the most output tokens a request may ask for

// reasoning_effort (and its aliases) -> none | low | medium | high | max.
std::string normalise_effort(Dialect dialect, const std::string& param, const std::string& e);
void apply_effort(Request& req, const std::string& effort);
// Stop strings: a string or up to 4 non-empty strings.
void read_stop(Request& req, const Fields& f, std::string_view key);
// temperature, top_p, seed and the DeepSeek extensions every dialect takes.
void read_common_sampling(Request& req, const Fields& f);
// DeepSeek's thinking: {"type": "enabled"|"disabled"} (Anthropic adds budget_tokens, display, adaptive).
void read_thinking_object(Request& req, const Fields& f);
// An effort's budget capped to its share of max_tokens; an explicit budget checked (finish_thinking).
void finish_thinking(Request& req);
void check_model(const Request& req, const Fields& f);

// The text of a string or an array of text parts (OpenAI content).
std::string text_of_parts(const boost::json::value& content, const std::string& path, Dialect dialect);

// A function tool in the internal shape (Chat's), validated.
boost::json::object chat_tool(const std::string& name, const std::string& description,
                              const boost::json::value* parameters);
// A named tool choice must name one of the request's tools (or the server's search tool).
void check_tool_choice_name(const Request& req, const std::string& name, const std::string& param);
// A refused tool type: the refusal names the field and the request field that searches instead.
[[noreturn]] void refuse_tool_type(Dialect dialect, const std::string& param, const std::string& type,
                                   const char* supported);
// A search tool's domain list (non-empty strings).
std::vector<std::string> domain_list(const Fields& f, std::string_view key);
void only_one_search_tool(const Request& req, const std::string& tp);

// OpenAI's tool_choice: "none" | "auto" | "required", or an object naming one of the request's
// tools; the two OpenAI dialects nest that name differently (`name_of` reads it).
template <class NameOf>
void read_tool_choice(Request& req, const Fields& f, const boost::json::value& tc, NameOf name_of) {
  if (tc.is_string()) {
    const std::string_view s = tc.get_string();
    if (s == "auto") req.tool_choice.mode = ToolChoice::Mode::automatic;
    else if (s == "none") req.tool_choice.mode = ToolChoice::Mode::none;
    else if (s == "required") req.tool_choice.mode = ToolChoice::Mode::required;
    else throw invalid_value(req.dialect, "tool_choice", "'tool_choice' must be none, auto, required or a function");
  } else if (tc.is_object()) {
    req.tool_choice = {ToolChoice::Mode::named, name_of(f.sub(tc.get_object(), "tool_choice"))};
    check_tool_choice_name(req, req.tool_choice.name, "tool_choice");
  } else {
    throw f.type_error("tool_choice", "a string or an object", tc);
  }
}

// OpenAI's output format object (Chat response_format, Responses text.format) at `param`.
void read_response_format(Request& req, const Fields& f, const boost::json::object& rf, const std::string& param);

}  // namespace v4::api
