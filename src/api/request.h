#pragma once
// The one internal request model the three dialects (OpenAI Chat Completions, OpenAI Responses,
// Anthropic Messages) parse into, and the error type every layer of the API throws.
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <boost/json.hpp>

namespace v4::api {

enum class Dialect { chat, responses, anthropic };

// An HTTP error with what each dialect needs to render it. `type` is the OpenAI error type
// (invalid_request_error, authentication_error, not_found_error, rate_limit_error, server_error,
// overloaded); the Anthropic renderer maps status codes to its own types.
struct ApiError : std::runtime_error {
  ApiError(int status, std::string type, std::string message, std::string param = {}, std::string code = {})
      : std::runtime_error(message), status(status), type(std::move(type)), param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type;
  std::string param;
  std::string code;
  int retry_after_s = 0;  // Retry-After header for 429/503/529 (0: the server's default of 1)
};

// 400: malformed body, wrong type, missing field. 422 (DeepSeek's "Invalid Parameters") for
// out-of-range values on the OpenAI dialects; Anthropic always answers 400.
ApiError bad_request(const std::string& param, const std::string& message);
ApiError invalid_value(Dialect dialect, const std::string& param, const std::string& message);

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

// Dialect parsers: validate every parameter of the product sheet, normalise aliases, and throw
// ApiError naming the offending parameter. They do not look at the model catalog or the prompt.
Request parse_chat_request(const boost::json::value& body);
// `earlier`: the stored conversation that the body's previous_response_id names (the service looks
// it up: api/response_store.h), read after `instructions` and before `input`.
Request parse_responses_request(const boost::json::value& body, const boost::json::array* earlier = nullptr);
Request parse_anthropic_request(const boost::json::value& body, bool count_tokens_only = false);

// The `anthropic-beta` header values (comma-separated): each must be one this server honours
// (request.cpp lists them); an unknown one is refused with 400 naming it.
void check_anthropic_betas(const std::string& header);

// Opaque reasoning round trip (Responses include ["reasoning.encrypted_content"]): the reasoning
// text sealed with a per-process key, and read back (400 naming `param` when it was not made here).
std::string seal_reasoning(const std::string& text);
std::string unseal_reasoning(const std::string& sealed, const std::string& param);

// Parses a request body as JSON, throwing a 400 ApiError that says where it is malformed.
boost::json::value parse_json_body(const std::string& body);

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

}  // namespace v4::api
