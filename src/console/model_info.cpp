// The public model page's data: specs, the live rate cards (the billing's own RateCards, so the
// page always shows what the API charges) and the request parameters with defaults and ranges.
#include "api/request.h"
#include "console/routes.h"
#include "product/money.h"

namespace v4::console {
namespace json = boost::json;

namespace {

// USD per 1M tokens from nano-dollars per token, exact.
std::string per_million(product::Nanodollars per_token) {
  return product::format_usd(product::checked_mul(per_token, 1'000'000));
}

json::array rate_cards(const Context& ctx) {
  json::array out;
  for (const auto& id : ctx.options.model_ids) {
    const auto* card = ctx.accounts.rate_cards().find(id);
    if (!card) continue;
    out.push_back(json::object{{"id", id},
                               {"input_usd_per_m", per_million(card->input_per_token)},
                               {"cached_input_usd_per_m", per_million(card->cached_input_per_token)},
                               {"output_usd_per_m", per_million(card->output_per_token)},
                               {"web_search_usd_per_call", product::format_usd(card->web_search_per_call)}});
  }
  return out;
}

json::object param(const char* name, const char* type, json::value def, const std::string& range, const char* what) {
  return {{"name", name}, {"type", type}, {"default", std::move(def)}, {"range", range}, {"description", what}};
}

// Defaults are the API's own (a default-constructed Request); ranges are what it validates.
json::array parameters(const Context& ctx) {
  api::Request d;
  const std::string max_out = std::to_string(ctx.options.max_output_tokens);
  return {
      param("thinking", "object", json::object{{"type", d.thinking ? "enabled" : "disabled"}}, "enabled | disabled",
            "reasoning before the answer"),
      param("reasoning_effort", "string", json::string(d.effort), "none, low, medium, high, max",
            "sets the thinking budget (none turns thinking off)"),
      param("thinking_budget", "integer", api::effort_budget(d.effort), "1 to " + max_out,
            "reasoning tokens before the answer is forced"),
      param("temperature", "number", d.temperature, "0 to 2", "sampling temperature"),
      param("top_p", "number", d.top_p, "0 to 1", "nucleus sampling"),
      param("max_tokens", "integer", d.max_tokens, "1 to " + max_out, "output cap, reasoning included"),
      param("stop", "string | string[]", nullptr, "up to 4 non-empty strings", "stop sequences"),
      param("web_search_linkup", "boolean", false,
            ctx.options.web_search.empty() ? "false (web search is off on this server: true is refused)"
                                           : "true | false (provider: " + ctx.options.web_search + ", billed per call)",
            "search with the latest user message and give the results to the model"),
      param("disable_formatting", "boolean", false, "true | false", "no Sources footer after web-search answers (no effect without web search)"),
      param("stream", "boolean", d.stream, "true | false", "server-sent events"),
  };
}

}  // namespace

json::object model_info(const Context& ctx) {
  std::string base = base_url(ctx.req);
  return {{"id", "deepseek-v4-flash"},
          {"name", "DeepSeek V4 Flash"},
          {"context_length", ctx.options.context_length},
          {"max_output_tokens", ctx.options.max_output_tokens},
          {"region", "self-hosted: this server"},
          {"base_url", base},
          {"endpoints", json::array{"POST /v1/chat/completions", "POST /v1/responses", "POST /v1/messages",
                                    "GET /v1/models"}},
          {"rate_cards", rate_cards(ctx)},
          {"parameters", parameters(ctx)}};
}

}  // namespace v4::console
