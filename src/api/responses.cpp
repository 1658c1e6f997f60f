// The OpenAI Responses adapter: request parsing (input items, tools, state) and the Response object
// and its event stream.
#include "api/responses.h"

#include <algorithm>

namespace v4::api {

namespace json = boost::json;

namespace {

// A freeform (`custom`) tool's one parameter, as the model sees it.
json::object custom_tool_parameters() {
  return json::object{{"type", "object"},
                      {"properties", json::object{{"input", json::object{{"type", "string"},
                                                                         {"description", "the tool's freeform input"}}}}},
                      {"required", json::array{"input"}}};
}

// The Responses web search tool: recorded for the service, which gives it to the model when the
// server searches (else it stays withheld, as the parser lists it).
void read_responses_search_tool(Request& req, const Fields& tf, const std::string& type, const std::string& tp) {
  tf.only({"type", "external_web_access", "search_context_size", "user_location", "filters"});
  only_one_search_tool(req, tp);
  Request::SearchTool st;
  st.type = type;
  st.param = tp;
  if (auto live = tf.boolean("external_web_access")) st.live_web = *live;
  if (auto size = tf.str("search_context_size")) {
    if (*size == "low") st.results = 3;
    else if (*size == "medium") st.results = 5;
    else if (*size == "high") st.results = 10;
    else
      throw invalid_value(req.dialect, tp + ".search_context_size",
                          "'" + tp + ".search_context_size' must be low, medium or high; got '" + *size + "'");
  }
  if (auto* filters = tf.object("filters")) {
    Fields ff = tf.sub(*filters, tp + ".filters");
    ff.only({"allowed_domains"});
    st.allowed_domains = domain_list(ff, "allowed_domains");
  }
  st.user_location = tf.find("user_location") != nullptr;
  req.search_tool = std::move(st);
  req.withheld_tools.push_back(type);
  req.withheld_reason = "web search is not enabled on this server";
}

// One Responses tool. function and custom tools reach the model (a namespace's members named
// "NAMESPACE.NAME"); web_search is the server's search tool (withheld while the server has no
// search provider); anything else is refused naming it.
void read_responses_tool(Request& req, const Fields& f, const json::value& t, const std::string& tp,
                         const std::string& ns = {}, const std::string& ns_description = {}) {
  Fields tf = f.sub(as_object(t, tp, req.dialect), tp);
  std::string type = tf.req_str("type");
  auto describe = [&](std::string d) { return ns_description.empty() ? d : "(" + ns + ": " + ns_description + ") " + d; };
  if (type == "function") {
    tf.only({"type", "name", "description", "parameters", "strict"});
    if (auto* p = tf.find("parameters"); p && !p->is_object()) throw tf.type_error("parameters", "an object", *p);
    const std::string name = tf.req_str("name");
    const std::string model_name = ns.empty() ? name : ns + "." + name;
    if (auto strict = tf.boolean("strict"); strict && *strict) req.strict_tools.push_back(model_name);
    req.tools.push_back(chat_tool(model_name, describe(tf.str("description").value_or("")), tf.find("parameters")));
    if (!ns.empty()) req.tool_origins.push_back({model_name, name, ns, false});
  } else if (type == "custom") {
    tf.only({"type", "name", "description", "format"});
    if (auto* fmt = tf.object("format")) {
      Fields ff = f.sub(*fmt, tp + ".format");
      ff.only({"type", "syntax", "definition"});
      if (ff.req_str("type") != "text")
        throw invalid_value(req.dialect, tp + ".format.type",
                            "'" + tp + ".format.type': grammar-constrained custom tools need constrained decoding, "
                            "which this server does not have; use format {\"type\": \"text\"}");
    }
    const std::string name = tf.req_str("name");
    const std::string model_name = ns.empty() ? name : ns + "." + name;
    const json::value params = custom_tool_parameters();
    req.tools.push_back(chat_tool(model_name, describe(tf.str("description").value_or("")), &params));
    req.tool_origins.push_back({model_name, name, ns, true});
  } else if (type == "namespace" && ns.empty()) {
    tf.only({"type", "name", "description", "tools"});
    const std::string name = tf.req_str("name");
    const json::array* members = tf.array("tools");
    if (!members) throw bad_request(tp + ".tools", "missing required parameter '" + tp + ".tools'");
    size_t k = 0;
    for (auto& m : *members)
      read_responses_tool(req, f, m, tp + ".tools[" + std::to_string(k++) + "]", name, tf.str("description").value_or(""));
  } else if ((type == "web_search" || type == "web_search_preview") && ns.empty()) {
    read_responses_search_tool(req, tf, type, tp);
  } else {
    refuse_tool_type(req.dialect, tp + ".type", type, "function, custom, namespace and web_search tools");
  }
}

// The text of a reasoning input item: its sealed copy when it has one, else its content or summary.
std::string reasoning_input_text(const Fields& itf, const std::string& ip) {
  if (auto sealed = itf.str("encrypted_content"); sealed && !sealed->empty())
    return unseal_reasoning(*sealed, ip + ".encrypted_content");
  std::string text;
  auto gather = [&](const json::array* parts) {
    if (!parts) return;
    for (auto& p : *parts)
      if (p.is_object() && p.get_object().contains("text") && p.at("text").is_string()) text += p.at("text").get_string();
  };
  gather(itf.array("content"));
  if (text.empty()) gather(itf.array("summary"));
  return text;
}

// A call's name as the model knows it (namespaced tools: "NAMESPACE.NAME").
std::string model_tool_name(const Fields& itf) {
  std::string name = itf.req_str("name");
  if (auto ns = itf.str("namespace"); ns && !ns->empty()) return *ns + "." + name;
  return name;
}

// An earlier web_search_call item: the model's call again, and as its result the sources the item
// lists (the pages' text is not kept between requests).
void read_web_search_call_item(Request& req, const Fields& itf, const std::string& ip, Message& turn) {
  itf.only({"type", "id", "status", "action"});
  std::string query, sources;
  if (auto* action = itf.object("action")) {
    Fields af = itf.sub(*action, ip + ".action");
    af.only({"type", "query", "queries", "sources", "url", "pattern"});
    query = af.str("query").value_or("");
    if (auto* list = af.array("sources"))
      for (auto& src : *list)
        if (src.is_object() && src.get_object().contains("url") && src.at("url").is_string())
          sources += "\n- " + std::string(src.at("url").get_string());
  }
  const std::string id = itf.str("id").value_or("ws_" + std::to_string(req.messages.size()));
  turn.tool_calls.push_back({id, "web_search", json::serialize(json::object{{"query", query}})});
  req.messages.push_back(Message{"tool", sources.empty() ? "(earlier search; its results are not kept)"
                                                         : "(earlier search; its results are not kept) Sources:" + sources,
                                 {}, {}, id});
}

// `name`: the items' parameter in errors ("input", or "previous_response_id" for the stored ones).
void read_responses_input(Request& req, const Fields& f, const json::array& items, const std::string& name = "input") {
  size_t i = 0;
  // Consecutive reasoning / assistant message / call items form one assistant turn.
  auto assistant_turn = [&]() -> Message& {
    if (req.messages.empty() || req.messages.back().role != "assistant" || !req.messages.back().tool_calls.empty())
      req.messages.push_back(Message{"assistant", "", {}, {}, {}});
    return req.messages.back();
  };
  for (auto& item : items) {
    std::string ip = name + "[" + std::to_string(i++) + "]";
    Fields itf = f.sub(as_object(item, ip, req.dialect), ip);
    std::string type = itf.str("type").value_or("message");
    if (type == "message") {
      itf.only({"type", "id", "role", "content", "status"});
      std::string role = itf.req_str("role");
      if (role != "system" && role != "developer" && role != "user" && role != "assistant")
        throw invalid_value(req.dialect, ip + ".role", "'" + ip + ".role' must be system, developer, user or assistant");
      std::string content = text_of_parts(itf.require("content"), ip + ".content", req.dialect);
      if (role == "assistant") assistant_turn().content += content;
      else req.messages.push_back(Message{role, content, {}, {}, {}});
    } else if (type == "reasoning") {
      itf.only({"type", "id", "summary", "content", "encrypted_content", "status"});
      Message& a = assistant_turn();
      a.reasoning_content = a.reasoning_content.value_or("") + reasoning_input_text(itf, ip);
    } else if (type == "function_call") {
      itf.only({"type", "id", "call_id", "name", "namespace", "arguments", "status"});
      assistant_turn().tool_calls.push_back({itf.req_str("call_id"), model_tool_name(itf), itf.str("arguments").value_or("{}")});
    } else if (type == "custom_tool_call") {
      itf.only({"type", "id", "call_id", "name", "namespace", "input", "status"});
      json::object args{{"input", itf.str("input").value_or("")}};
      assistant_turn().tool_calls.push_back({itf.req_str("call_id"), model_tool_name(itf), json::serialize(args)});
    } else if (type == "web_search_call") {
      read_web_search_call_item(req, itf, ip, assistant_turn());
    } else if (type == "function_call_output" || type == "custom_tool_call_output") {
      itf.only({"type", "id", "call_id", "output", "status"});
      Message m{"tool", "", {}, {}, itf.req_str("call_id")};
      m.content = text_of_parts(itf.require("output"), ip + ".output", req.dialect);
      req.messages.push_back(std::move(m));
    } else {
      throw bad_request(ip + ".type", "'" + ip + ".type': input item type '" + type + "' is not supported");
    }
  }
}

void read_responses_include(Request& req, const Fields& f) {
  const json::array* inc = f.array("include");
  if (!inc) return;
  size_t i = 0;
  for (auto& v : *inc) {
    std::string p = "include[" + std::to_string(i++) + "]";
    if (!v.is_string()) throw bad_request(p, "'" + p + "' must be a string");
    if (v.get_string() == "message.output_text.logprobs") req.logprobs = true;
    else if (v.get_string() == "reasoning.encrypted_content") req.encrypted_reasoning = true;
    else if (v.get_string() == "web_search_call.action.sources") req.search_sources = true;
    else
      throw invalid_value(req.dialect, p, "'" + p + "': '" + std::string(v.get_string()) +
                                              "' is not supported (reasoning.encrypted_content, "
                                              "message.output_text.logprobs, web_search_call.action.sources)");
  }
}

// store (default true, as OpenAI's), background and previous_response_id. A previous_response_id
// the service did not look up (no `earlier`) cannot be continued: refused rather than dropped.
void read_responses_state(Request& req, const Fields& f, bool looked_up) {
  req.store = f.boolean("store").value_or(true);
  req.background = f.boolean("background").value_or(false);
  if (auto p = f.str("previous_response_id")) {
    if (!looked_up)
      throw bad_request("previous_response_id", "'previous_response_id' needs the server's response store");
    req.previous_response_id = *p;
  }
  if (req.background && !req.store)
    throw bad_request("background", "'background': true needs 'store': true (a background response is read back with "
                                    "GET /v1/responses/{id})");
  if (req.background && req.stream)
    throw bad_request("stream", "'stream': true with 'background': true is not supported: poll GET /v1/responses/{id}, "
                                "or stream without background");
}

void read_responses_reasoning(Request& req, const Fields& f) {
  const json::object* r = f.object("reasoning");
  if (!r) return;
  Fields rf = f.sub(*r, "reasoning");
  rf.only({"effort", "summary", "generate_summary"});
  if (auto e = rf.str("effort")) apply_effort(req, normalise_effort(req.dialect, "reasoning.effort", *e));
  for (const char* key : {"generate_summary", "summary"}) {
    auto s = rf.str(key);
    if (!s) continue;
    if (*s != "auto" && *s != "concise" && *s != "detailed")
      throw invalid_value(req.dialect, rf.path(key), "'" + rf.path(key) + "' must be auto, concise or detailed");
    req.reasoning_summary = *s;
  }
}

// A Responses tool_choice object, {"type": "function" | "custom", "name": ...}: the named tool, whose
// kind the type must match. allowed_tools, mcp and hosted-tool choices are refused.
std::string responses_tool_choice_name(const Request& req, const Fields& cf) {
  const std::string type = cf.req_str("type");
  if (type != "function" && type != "custom")
    throw invalid_value(req.dialect, "tool_choice.type",
                        "'tool_choice.type' must be function or custom (allowed_tools, mcp and hosted-tool choices "
                        "are not supported); got '" + type + "'");
  cf.only({"type", "name"});
  std::string name = cf.req_str("name");
  check_tool_choice_name(req, name, "tool_choice");
  const bool custom = std::any_of(req.tool_origins.begin(), req.tool_origins.end(),
                                  [&](const ToolOrigin& o) { return o.custom && o.model_name == name; });
  if (custom != (type == "custom"))
    throw invalid_value(req.dialect, "tool_choice.type", "'tool_choice.type' is '" + type + "' but '" + name + "' is " +
                                                             (custom ? "a custom" : "not a custom") + " tool");
  return name;
}

}  // namespace

Request parse_responses_request(const json::value& body, const json::array* earlier) {
  Request req;
  req.dialect = Dialect::responses;
  Fields f(body.as_object(), req.dialect);
  f.only({"model", "input", "instructions", "reasoning", "thinking", "temperature", "top_p", "seed", "thinking_budget",
          "enable_thinking", "web_search_linkup", "disable_formatting", "max_output_tokens", "stream", "top_logprobs",
          "include", "previous_response_id", "metadata", "text", "tools", "tool_choice", "parallel_tool_calls",
          "store", "background", "prompt_cache_key", "client_metadata", "truncation"});
  req.model = f.req_str("model");
  check_model(req, f);
  read_responses_reasoning(req, f);
  read_thinking_object(req, f);
  read_common_sampling(req, f);
  if (auto m = f.integer("max_output_tokens", 1, kMaxOutput)) req.max_tokens = int(*m), req.max_tokens_given = true;
  if (auto s = f.boolean("stream")) req.stream = *s;
  req.include_usage = true;
  if (auto t = f.integer("top_logprobs", 0, 20)) req.logprobs = true, req.top_logprobs = int(*t);
  read_responses_include(req, f);
  read_responses_state(req, f, earlier != nullptr);
  if (auto t = f.str("truncation"); t && *t != "disabled")
    throw invalid_value(req.dialect, "truncation", "'truncation' must be disabled (a prompt over the context is refused)");
  if (auto k = f.str("prompt_cache_key")) req.prompt_cache_key = *k;
  f.object("client_metadata");  // Codex's own tags: no behaviour is defined for them (docs/api.md)
  if (auto* md = f.object("metadata")) req.metadata = *md;
  if (auto* text = f.object("text")) {
    Fields tf = f.sub(*text, "text");
    tf.only({"format"});
    if (auto* fmt = tf.object("format")) read_response_format(req, f, *fmt, "text.format");
  }
  if (auto* tools = f.array("tools")) {
    size_t i = 0;
    for (auto& t : *tools) read_responses_tool(req, f, t, "tools[" + std::to_string(i++) + "]");
  }
  if (auto* tc = f.find("tool_choice"))
    read_tool_choice(req, f, *tc, [&](const Fields& cf) { return responses_tool_choice_name(req, cf); });
  if (auto p = f.boolean("parallel_tool_calls")) req.parallel_tool_calls = *p;
  if (auto ins = f.str("instructions")) {
    req.instructions = *ins;
    if (!ins->empty()) req.messages.push_back(Message{"system", *ins, {}, {}, {}});
  }
  if (earlier) read_responses_input(req, f, *earlier, "previous_response_id");  // its instructions stay behind

  const json::value& input = f.require("input");
  if (input.is_string()) req.messages.push_back(Message{"user", std::string(input.get_string()), {}, {}, {}});
  else if (input.is_array()) read_responses_input(req, f, input.get_array());
  else throw f.type_error("input", "a string or an array", input);
  if (req.messages.empty() || (req.messages.size() == 1 && req.messages[0].role == "system"))
    throw bad_request("input", "'input' must contain at least one message");
  finish_thinking(req);
  return req;
}

json::object responses_usage(const Usage& u) {
  json::object o{
      {"input_tokens", u.prompt_tokens},
      {"input_tokens_details", json::object{{"cached_tokens", u.cached_tokens}, {"cache_write_tokens", 0}}},
      {"output_tokens", u.completion_tokens},
      {"output_tokens_details", json::object{{"reasoning_tokens", u.reasoning_tokens}}},
      {"total_tokens", u.prompt_tokens + u.completion_tokens},
  };
  add_search_usage(o, u);
  return o;
}

namespace {

json::array responses_logprobs(const std::vector<TokenLogprobOut>& lps) {
  json::array out;
  for (auto& lp : lps) {
    json::array top;
    for (auto& t : lp.top)
      top.push_back(json::object{{"token", t.token}, {"logprob", t.logprob}, {"bytes", byte_array(t.bytes)}});
    out.push_back(json::object{{"token", lp.chosen.token},
                               {"logprob", lp.chosen.logprob},
                               {"bytes", byte_array(lp.chosen.bytes)},
                               {"top_logprobs", std::move(top)}});
  }
  return out;
}

// The Responses web_search_call item; its sources once the search ran, when the request includes them.
json::object search_item(const Request& req, const SearchCall& c, const char* status) {
  json::object action{{"type", "search"}, {"query", c.query}, {"queries", json::array{json::value(c.query)}}};
  if (req.search_sources && std::string(status) == "completed") {
    json::array sources;
    for (auto& r : c.results) sources.push_back(json::object{{"type", "url"}, {"url", r.url}});
    action["sources"] = std::move(sources);
  }
  return json::object{{"type", "web_search_call"}, {"id", c.id}, {"status", status}, {"action", std::move(action)}};
}

const SearchCall* result_of(const std::vector<SearchCall>& searches, const std::string& id) {
  for (auto& s : searches)
    if (s.id == id) return &s;
  return nullptr;
}

// The k-th reasoning / message item (several when searches split the answer).
std::string reasoning_item_id(const ResponseMeta& m, int k = 0) {
  return "rs_" + m.item_id + (k ? "_" + std::to_string(k) : "");
}

std::string message_item_id(const ResponseMeta& m, int k = 0) {
  return "msg_" + m.item_id + (k ? "_" + std::to_string(k) : "");
}

std::string call_item_id(const ResponseMeta& m, size_t i) { return "fc_" + m.item_id + "_" + std::to_string(i); }

// The reasoning item. reasoning.summary asked for: the summary is the reasoning itself (this server
// has no summariser; docs/api.md). include reasoning.encrypted_content: the sealed copy, once complete.
json::object reasoning_item(const Request& req, const ResponseMeta& m, const std::string& text, const char* status,
                            int k = 0) {
  const bool done = std::string(status) == "completed";
  // thinking.display "omitted": the reasoning is not shown, but still sealed for the round trip
  const std::string shown = req.show_thinking ? text : std::string();
  json::array content, summary;
  if (!shown.empty() || done) content.push_back(json::object{{"type", "reasoning_text"}, {"text", shown}});
  if (!req.reasoning_summary.empty() && (!shown.empty() || done))
    summary.push_back(json::object{{"type", "summary_text"}, {"text", shown}});
  json::value sealed = nullptr;
  if (req.encrypted_reasoning && done) sealed = json::value(seal_reasoning(text));
  return json::object{{"type", "reasoning"}, {"id", reasoning_item_id(m, k)}, {"summary", std::move(summary)},
                      {"content", std::move(content)}, {"encrypted_content", std::move(sealed)}, {"status", status}};
}

json::object output_text_part(const std::string& text, const std::vector<TokenLogprobOut>& lps,
                              json::array annotations = {}) {
  return json::object{{"type", "output_text"}, {"text", text}, {"annotations", std::move(annotations)},
                      {"logprobs", responses_logprobs(lps)}};
}

json::object message_item(const ResponseMeta& m, json::array content, const char* status, int k = 0) {
  return json::object{{"type", "message"}, {"id", message_item_id(m, k)}, {"role", "assistant"},
                      {"status", status}, {"content", std::move(content)}};
}

const ToolOrigin* origin_of(const Request& req, const std::string& model_name) {
  for (auto& o : req.tool_origins)
    if (o.model_name == model_name) return &o;
  return nullptr;
}

// A custom tool's input: the `input` argument the model gave (its raw arguments if it gave none).
std::string custom_input(const std::string& arguments) {
  boost::system::error_code ec;
  json::value v = json::parse(arguments, ec);
  if (!ec && v.is_object() && v.get_object().contains("input") && v.at("input").is_string())
    return std::string(v.at("input").get_string());
  return arguments;
}

// A call in the shape its tool was declared in: function_call (with `namespace` for a namespace's
// member) or custom_tool_call.
json::object call_item(const Request& req, const ResponseMeta& m, const text::ToolCall& c, const std::string& arguments,
                       const char* status) {
  const ToolOrigin* o = origin_of(req, c.name);
  if (o && o->custom) {
    json::object item{{"type", "custom_tool_call"}, {"id", "ctc_" + m.item_id + "_" + std::to_string(c.index)},
                      {"call_id", c.id}, {"name", o->name}, {"input", custom_input(arguments)}, {"status", status}};
    if (!o->ns.empty()) item["namespace"] = o->ns;
    return item;
  }
  json::object item{{"type", "function_call"}, {"id", call_item_id(m, c.index)}, {"call_id", c.id},
                    {"name", o ? o->name : c.name}, {"arguments", arguments}, {"status", status}};
  if (o && !o->ns.empty()) item["namespace"] = o->ns;
  return item;
}

json::array responses_tools(const Request& req) {
  json::array out;
  for (auto& t : req.tools) {
    auto& fn = t.at("function").as_object();
    if (const ToolOrigin* origin = origin_of(req, std::string(fn.at("name").as_string())); origin && origin->custom) {
      out.push_back(json::object{{"type", "custom"}, {"name", origin->name}});
      continue;
    }
    json::object o{{"type", "function"}, {"name", fn.at("name")}, {"parameters", fn.at("parameters")}, {"strict", false}};
    o["description"] = fn.contains("description") ? fn.at("description") : json::value(nullptr);
    out.push_back(std::move(o));
  }
  return out;
}

// A named choice is echoed in its tool's kind (a custom tool's by its own name).
json::value responses_tool_choice(const Request& req) {
  const ToolChoice& choice = req.tool_choice;
  switch (choice.mode) {
    case ToolChoice::Mode::automatic: return "auto";
    case ToolChoice::Mode::none: return "none";
    case ToolChoice::Mode::required: return "required";
    case ToolChoice::Mode::named:
      if (const ToolOrigin* origin = origin_of(req, choice.name); origin && origin->custom)
        return json::object{{"type", "custom"}, {"name", origin->name}};
      return json::object{{"type", "function"}, {"name", choice.name}};
  }
  return "auto";
}

// text.format as the response echoes it (the schema's name and strict as this server has always
// echoed them).
json::object responses_text_format(const OutputFormat& format) {
  switch (format.kind) {
    case OutputFormat::Kind::text: return json::object{{"type", "text"}};
    case OutputFormat::Kind::json_object: return json::object{{"type", "json_object"}};
    case OutputFormat::Kind::json_schema:
      return json::object{{"type", "json_schema"}, {"name", "response"}, {"schema", format.schema}, {"strict", false}};
  }
  return json::object{{"type", "text"}};
}

// Declared tools the model was not given, with why (docs/api.md): a v4flash extension field.
json::array withheld_tools(const Request& req) {
  json::array out;
  for (auto& type : req.withheld_tools)
    out.push_back(json::object{{"type", type},
                               {"reason", req.withheld_reason + "; the tool was not given to the model "
                                                                "(web_search_linkup searches before the answer)"}});
  return out;
}

// The Response object in any state; `output` and `usage` filled by the caller.
json::object response_object(const Request& req, const ResponseMeta& m, const char* status) {
  return json::object{
      {"id", m.id},
      {"object", "response"},
      {"created_at", m.created},
      {"status", status},
      {"background", req.background},
      {"error", nullptr},
      {"incomplete_details", nullptr},
      {"instructions", req.instructions.empty() ? json::value(nullptr) : json::value(req.instructions)},
      {"max_output_tokens", req.max_tokens_given ? json::value(req.max_tokens) : json::value(nullptr)},
      {"model", m.model},
      {"output", json::array{}},
      {"parallel_tool_calls", req.parallel_tool_calls},
      {"previous_response_id", req.previous_response_id ? json::value(*req.previous_response_id) : json::value(nullptr)},
      {"reasoning", json::object{{"effort", req.thinking ? json::value(req.effort) : json::value("none")},
                                 {"summary", req.reasoning_summary.empty() ? json::value(nullptr) : json::value(req.reasoning_summary)}}},
      {"service_tier", "default"},
      {"store", req.store},
      {"temperature", req.temperature},
      {"text", json::object{{"format", responses_text_format(req.output_format)}}},
      {"tool_choice", responses_tool_choice(req)},
      {"tools", responses_tools(req)},
      {"top_p", req.top_p},
      {"truncation", "disabled"},
      {"metadata", req.metadata},  // usage: added once known (the schema has no null usage)
      {"prompt_cache_key", req.prompt_cache_key.empty() ? json::value(nullptr) : json::value(req.prompt_cache_key)},
      {"withheld_tools", withheld_tools(req)},
  };
}

void set_response_outcome(json::object& r, const Outcome& o) {
  if (o.stop == StopKind::length) {
    r["status"] = "incomplete";
    r["incomplete_details"] = json::object{{"reason", "max_output_tokens"}};
  } else if (o.stop == StopKind::error) {
    r["status"] = "failed";
    r["error"] = json::object{{"code", "server_error"}, {"message", o.error}};
  } else {
    r["status"] = "completed";
  }
  r["usage"] = responses_usage(o.usage);
}

// A turn with searches: its items in order (reasoning, web_search_call, message, ... as the stream
// made them), each message's text annotated with the sources it cites.
json::array responses_items(const Request& req, const ResponseMeta& m, const Turn& turn) {
  const std::vector<search::Result> sources = numbered_sources(m, turn.searches);
  json::array output;
  int reasoning = 0, messages = 0;
  for (auto& p : turn.parts) {
    switch (p.kind) {
      case Delta::Kind::reasoning: output.push_back(reasoning_item(req, m, p.text, "completed", reasoning++)); break;
      case Delta::Kind::content:
        output.push_back(message_item(
            m, json::array{output_text_part(p.text, p.logprobs, url_citations(p.text, sources, false))}, "completed",
            messages++));
        break;
      case Delta::Kind::tool_call: output.push_back(call_item(req, m, p.call, p.call.arguments, "completed")); break;
      case Delta::Kind::search_call: {
        const SearchCall* done = result_of(turn.searches, p.search.id);
        output.push_back(done ? search_item(req, *done, done->error_code.empty() ? "completed" : "failed")
                              : search_item(req, p.search, "in_progress"));
        break;
      }
      case Delta::Kind::search_result: break;  // (the call's item)
    }
  }
  if (turn.content.empty() && turn.tool_calls.empty())
    output.push_back(message_item(m, json::array{output_text_part("", {})}, "completed", messages));
  return output;
}

}  // namespace

json::object render_responses_response(const Request& req, const ResponseMeta& m, const Turn& turn, const Outcome& o) {
  const bool has_calls = !turn.tool_calls.empty();
  json::object r = response_object(req, m, "completed");
  json::array output;
  if (has_search_parts(turn)) {
    output = responses_items(req, m, turn);
  } else {
    if (!turn.reasoning.empty()) output.push_back(reasoning_item(req, m, turn.reasoning, "completed"));
    if (!turn.content.empty() || !has_calls)
      output.push_back(message_item(
          m, json::array{output_text_part(turn.content, turn.logprobs, url_citations(turn.content, m.sources, false))},
          "completed"));
    for (auto& c : turn.tool_calls) output.push_back(call_item(req, m, c, c.arguments, "completed"));
  }
  r["output"] = std::move(output);
  set_response_outcome(r, o);
  return r;
}

json::object render_pending_response(const Request& req, const ResponseMeta& meta, const char* status) {
  return response_object(req, meta, status);
}

namespace {

class ResponsesStream final : public StreamRenderer {
 public:
  ResponsesStream(const Request& req, const ResponseMeta& meta) : req_(req), meta_(meta), sources_(meta.sources) {}
  std::string start(int /*cached_prompt_tokens*/) override {
    json::object r = response_object(req_, meta_, "in_progress");
    std::string out = event("response.created", json::object{{"response", r}});
    out += event("response.in_progress", json::object{{"response", r}});  // after: sequence numbers
    return out;
  }
  std::string delta(const Delta& d) override {
    std::string out;
    turn_.add(d);
    switch (d.kind) {
      case Delta::Kind::reasoning: {
        out += open_reasoning();
        item_text_ += d.text;
        if (!req_.show_thinking) break;  // thinking.display "omitted": the item stays empty
        const std::string id = reasoning_item_id(meta_, reasoning_count_);
        out += event("response.reasoning_text.delta",
                     json::object{{"item_id", id}, {"output_index", index_}, {"content_index", 0}, {"delta", d.text}});
        if (summarise())
          out += event("response.reasoning_summary_text.delta", json::object{{"item_id", id}, {"output_index", index_},
                                                                             {"summary_index", 0}, {"delta", d.text}});
        break;
      }
      case Delta::Kind::content:
        out += open_message();
        item_text_ += d.text;
        item_logprobs_.insert(item_logprobs_.end(), d.logprobs.begin(), d.logprobs.end());
        out += event("response.output_text.delta",
                     json::object{{"item_id", message_item_id(meta_, message_count_)}, {"output_index", index_},
                                  {"content_index", 0}, {"delta", d.text}, {"logprobs", responses_logprobs(d.logprobs)}});
        break;
      case Delta::Kind::tool_call: out += call_events(d.call); break;
      case Delta::Kind::search_call: out += search_started(d.search); break;
      case Delta::Kind::search_result: out += search_done(d.search); break;
    }
    return out;
  }
  std::string finish(const Outcome& o) override {
    std::string out;
    // A turn without any visible answer still has its (empty) message item, as the object does.
    if (turn_.content.empty() && turn_.tool_calls.empty() && open_ != Open::message) out += open_message();
    out += close();
    json::object r = o.response ? *o.response : render_responses_response(req_, meta_, turn_, o);
    const char* type = o.stop == StopKind::length ? "response.incomplete"
                       : o.stop == StopKind::error ? "response.failed" : "response.completed";
    out += event(type, json::object{{"response", std::move(r)}});
    return out;
  }
  std::string error(const ApiError& e) override {
    std::string out = event("error", json::object{{"code", e.code.empty() ? json::value(e.type) : json::value(e.code)},
                                                   {"message", e.what()},
                                                   {"param", e.param.empty() ? json::value(nullptr) : json::value(e.param)}});
    json::object r = response_object(req_, meta_, "failed");
    r["error"] = json::object{{"code", "server_error"}, {"message", e.what()}};
    return out + event("response.failed", json::object{{"response", std::move(r)}});
  }

 private:
  enum class Open { none, reasoning, message };
  bool summarise() const { return !req_.reasoning_summary.empty(); }
  std::string event(const std::string& type, json::object body) {
    body["type"] = type;
    body["sequence_number"] = seq_++;
    return sse_event(type, body);
  }
  std::string open_reasoning() {
    if (open_ == Open::reasoning) return {};
    std::string out = close();
    open_ = Open::reasoning;
    index_ = next_index_++;
    const std::string id = reasoning_item_id(meta_, reasoning_count_);
    out += event("response.output_item.added",
                 json::object{{"output_index", index_},
                              {"item", reasoning_item(req_, meta_, "", "in_progress", reasoning_count_)}});
    out += event("response.content_part.added",
                 json::object{{"item_id", id}, {"output_index", index_}, {"content_index", 0},
                              {"part", json::object{{"type", "reasoning_text"}, {"text", ""}}}});
    if (summarise())
      out += event("response.reasoning_summary_part.added",
                   json::object{{"item_id", id}, {"output_index", index_}, {"summary_index", 0},
                                {"part", json::object{{"type", "summary_text"}, {"text", ""}}}});
    return out;
  }
  std::string open_message() {
    if (open_ == Open::message) return {};
    std::string out = close();
    open_ = Open::message;
    index_ = next_index_++;
    out += event("response.output_item.added",
                 json::object{{"output_index", index_},
                              {"item", message_item(meta_, json::array{}, "in_progress", message_count_)}});
    out += event("response.content_part.added",
                 json::object{{"item_id", message_item_id(meta_, message_count_)}, {"output_index", index_},
                              {"content_index", 0}, {"part", output_text_part("", {})}});
    return out;
  }
  std::string call_events(const text::ToolCall& c) {
    std::string out = close();
    int idx = next_index_++;
    json::object added = call_item(req_, meta_, c, "", "in_progress");
    json::object done = call_item(req_, meta_, c, c.arguments, "completed");
    const json::value item_id = done.at("id");
    out += event("response.output_item.added", json::object{{"output_index", idx}, {"item", std::move(added)}});
    if (done.at("type") == "custom_tool_call") {
      out += event("response.custom_tool_call_input.delta",
                   json::object{{"item_id", item_id}, {"output_index", idx}, {"delta", done.at("input")}});
      out += event("response.custom_tool_call_input.done",
                   json::object{{"item_id", item_id}, {"output_index", idx}, {"input", done.at("input")}});
    } else {
      out += event("response.function_call_arguments.delta",
                   json::object{{"item_id", item_id}, {"output_index", idx}, {"delta", c.arguments}});
      out += event("response.function_call_arguments.done",
                   json::object{{"item_id", item_id}, {"output_index", idx}, {"name", done.at("name")},
                                {"arguments", c.arguments}});
    }
    out += event("response.output_item.done", json::object{{"output_index", idx}, {"item", std::move(done)}});
    return out;
  }
  // The model called the search tool: its item, in progress and searching until the results come.
  std::string search_started(const SearchCall& c) {
    std::string out = close();
    const int idx = next_index_++;
    search_index_.emplace_back(c.id, idx);
    out += event("response.output_item.added", json::object{{"output_index", idx}, {"item", search_item(req_, c, "in_progress")}});
    out += event("response.web_search_call.in_progress", json::object{{"item_id", c.id}, {"output_index", idx}});
    out += event("response.web_search_call.searching", json::object{{"item_id", c.id}, {"output_index", idx}});
    return out;
  }
  std::string search_done(const SearchCall& c) {
    int idx = -1;
    for (auto& [id, i] : search_index_)
      if (id == c.id) idx = i;
    if (idx < 0) return {};
    sources_.insert(sources_.end(), c.results.begin(), c.results.end());
    const bool ok = c.error_code.empty();
    std::string out;
    if (ok) out += event("response.web_search_call.completed", json::object{{"item_id", c.id}, {"output_index", idx}});
    out += event("response.output_item.done",
                 json::object{{"output_index", idx}, {"item", search_item(req_, c, ok ? "completed" : "failed")}});
    return out;
  }
  std::string close() {
    std::string out;
    if (open_ == Open::reasoning) {
      const std::string id = reasoning_item_id(meta_, reasoning_count_);
      const std::string shown = req_.show_thinking ? item_text_ : std::string();
      if (summarise()) {
        out += event("response.reasoning_summary_text.done", json::object{{"item_id", id}, {"output_index", index_},
                                                                          {"summary_index", 0}, {"text", shown}});
        out += event("response.reasoning_summary_part.done",
                     json::object{{"item_id", id}, {"output_index", index_}, {"summary_index", 0},
                                  {"part", json::object{{"type", "summary_text"}, {"text", shown}}}});
      }
      out += event("response.reasoning_text.done",
                   json::object{{"item_id", id}, {"output_index", index_}, {"content_index", 0}, {"text", shown}});
      out += event("response.content_part.done",
                   json::object{{"item_id", id}, {"output_index", index_}, {"content_index", 0},
                                {"part", json::object{{"type", "reasoning_text"}, {"text", shown}}}});
      out += event("response.output_item.done",
                   json::object{{"output_index", index_},
                                {"item", reasoning_item(req_, meta_, item_text_, "completed", reasoning_count_)}});
      ++reasoning_count_;
    } else if (open_ == Open::message) {
      const std::string id = message_item_id(meta_, message_count_);
      json::array annotations = url_citations(item_text_, sources_, false);
      for (size_t k = 0; k < annotations.size(); ++k)
        out += event("response.output_text.annotation.added",
                     json::object{{"item_id", id}, {"output_index", index_}, {"content_index", 0},
                                  {"annotation_index", k}, {"annotation", annotations[k]}});
      out += event("response.output_text.done",
                   json::object{{"item_id", id}, {"output_index", index_}, {"content_index", 0}, {"text", item_text_},
                                {"logprobs", responses_logprobs(item_logprobs_)}});
      json::object part = output_text_part(item_text_, item_logprobs_, std::move(annotations));
      out += event("response.content_part.done",
                   json::object{{"item_id", id}, {"output_index", index_}, {"content_index", 0}, {"part", part}});
      out += event("response.output_item.done",
                   json::object{{"output_index", index_},
                                {"item", message_item(meta_, json::array{part}, "completed", message_count_)}});
      ++message_count_;
    }
    open_ = Open::none;
    item_text_.clear();
    item_logprobs_.clear();
    return out;
  }
  const Request& req_;
  ResponseMeta meta_;
  Turn turn_;
  Open open_ = Open::none;
  int index_ = -1, next_index_ = 0;
  int reasoning_count_ = 0, message_count_ = 0;
  std::string item_text_;  // the open item's text
  std::vector<TokenLogprobOut> item_logprobs_;
  std::vector<search::Result> sources_;  // cited as [n]: web_search_linkup's, then each search's results
  std::vector<std::pair<std::string, int>> search_index_;  // search call id -> output index
  int64_t seq_ = 0;
};

}  // namespace

std::unique_ptr<StreamRenderer> make_responses_stream(const Request& req, const ResponseMeta& meta) {
  return std::make_unique<ResponsesStream>(req, meta);
}

}  // namespace v4::api
