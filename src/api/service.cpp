#include "api/service.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>

#include "api/anthropic.h"
#include "api/chat.h"
#include "api/constraint.h"
#include "api/item_reference.h"
#include "api/response_store.h"
#include "api/responses.h"
#include "search/sources.h"
#include "text/chat_encoder.h"
#include "text/detokenizer.h"

namespace v4::api {

namespace json = boost::json;

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

const char* status_of(runtime::FinishReason r) {
  switch (r) {
    case runtime::FinishReason::Stop: return "completed";
    case runtime::FinishReason::Length: return "length";
    case runtime::FinishReason::StopString: return "stop";
    case runtime::FinishReason::Cancelled: return "cancelled";
    case runtime::FinishReason::Error: return "failed";
  }
  return "failed";
}

}  // namespace

ApiError overloaded(Dialect dialect, const std::string& why) {
  if (dialect == Dialect::anthropic) return ApiError(529, "overloaded_error", "Overloaded: " + why);
  return ApiError(503, "overloaded_error", "the server is overloaded, retry later: " + why, "", "server_overloaded");
}

// ----------------------------------------------------------------------------- Generation
Generation::~Generation() = default;

void Generation::push(size_t choice, std::vector<text::CompletionEvent> events) {
  Choice& ch = choices_[choice];
  for (auto& e : events) {
    Delta d;
    d.choice = int(choice);
    switch (e.kind) {
      case text::CompletionEvent::Kind::reasoning_delta:
        if (e.text.empty()) continue;
        d.kind = Delta::Kind::reasoning;
        d.text = std::move(e.text);
        break;
      case text::CompletionEvent::Kind::content_delta:
        if (e.text.empty()) continue;
        d.kind = Delta::Kind::content;
        d.text = std::move(e.text);
        d.logprobs = std::move(ch.pending_logprobs);
        ch.pending_logprobs.clear();
        break;
      case text::CompletionEvent::Kind::tool_call:
        if (loop_ && e.tool_call.name == "web_search") {
          add_search_call(std::move(e.tool_call));
          continue;
        }
        // parallel_tool_calls: false: the first call is the turn's only one (later ones dropped).
        if (single_tool_call_ && ch.has_tool_calls) continue;
        d.kind = Delta::Kind::tool_call;
        d.call = std::move(e.tool_call);
        ch.has_tool_calls = true;
        round_user_calls_ = true;
        if (loop_) loop_->round.tool_calls.push_back({d.call.id, d.call.name, d.call.arguments});
        break;
      case text::CompletionEvent::Kind::end:
        continue;
    }
    if (loop_ && d.kind == Delta::Kind::reasoning)
      loop_->round.reasoning_content = loop_->round.reasoning_content.value_or("") + d.text;
    if (loop_ && d.kind == Delta::Kind::content) loop_->round.content += d.text;
    emit(std::move(d));
  }
}

void Generation::emit(Delta d) {
  if (keeper_) keeper_->add(d);
  if (!detached_) deltas_.push_back(std::move(d));
}

namespace {
constexpr int kMaxSearchRounds = 10;      // rounds of one request's search loop (then pause_turn)
constexpr size_t kMaxQueryBytes = 400;
}  // namespace

// The model called the server's search tool: shown at once (the searching starts after the round).
void Generation::add_search_call(text::ToolCall call) {
  SearchCall sc;
  sc.id = (loop_->req.dialect == Dialect::anthropic ? "srvtoolu_" : "ws_") + random_id(24);
  boost::system::error_code ec;
  json::value args = json::parse(call.arguments, ec);
  if (!ec && args.is_object() && args.get_object().contains("query") && args.at("query").is_string())
    sc.query = std::string(args.at("query").get_string());
  if (sc.query.empty()) sc.error_code = "invalid_tool_input";
  else if (sc.query.size() > kMaxQueryBytes) sc.error_code = "query_too_long";
  loop_->round.tool_calls.push_back({sc.id, "web_search", call.arguments});
  Delta d;
  d.kind = Delta::Kind::search_call;
  d.search = sc;
  emit(std::move(d));
  loop_->pending.push_back(std::move(sc));
}

void Generation::on_admitted(int cached_prompt_tokens) {
  std::function<void()> notify;
  {
    std::lock_guard lock(mutex_);
    admitted_cached_ = cached_prompt_tokens;
    notify = notify_;
  }
  if (notify) notify();
}

runtime::RequestCallbacks Generation::engine_callbacks(size_t choice, bool report_admission) {
  auto self = shared_from_this();
  runtime::RequestCallbacks cb;
  if (report_admission) cb.on_admitted = [self](int cached) { self->on_admitted(cached); };
  cb.on_token = [self, choice](const runtime::GeneratedToken& t) { self->on_token(choice, t); };
  cb.on_finish = [self, choice](const runtime::FinishInfo& f) { self->on_finish(choice, f); };
  return cb;
}

void Generation::on_token(size_t choice, const runtime::GeneratedToken& t) {
  std::function<void()> notify;
  {
    std::lock_guard lock(mutex_);
    Choice& ch = choices_[choice];
    if (record_.first_token_at_ms == 0) record_.first_token_at_ms = now_ms();
    if (want_logprobs_ && !t.reasoning && t.logprob && tokenizer_->is_valid(t.token)) {
      auto alt = [&](const runtime::TokenLogprob& lp) {
        AltLogprob a;
        a.bytes = tokenizer_->is_valid(lp.token) ? tokenizer_->token_bytes(lp.token) : std::string();
        a.token = text::sanitize_utf8(a.bytes);
        a.logprob = lp.logprob;
        return a;
      };
      TokenLogprobOut out;
      out.chosen = alt(*t.logprob);
      for (auto& lp : t.top) out.top.push_back(alt(lp));
      ch.pending_logprobs.push_back(std::move(out));
    }
    if (!t.text.empty()) push(choice, ch.parser->feed(t.text));
    notify = notify_;
  }
  if (notify) notify();
}

void Generation::on_finish(size_t choice, const runtime::FinishInfo& f) {
  UsageRecord rec;
  bool ended = false;
  std::function<void()> notify;
  std::shared_ptr<runtime::RequestHandle> stop_others;
  {
    std::lock_guard lock(mutex_);
    Choice& ch = choices_[choice];
    if (!f.tail_text.empty()) push(choice, ch.parser->feed(f.tail_text));
    push(choice, ch.parser->finish());
    if (choice == 0) {  // every choice reports the one prompt, which ran once
      total_.prompt_tokens += f.prompt_tokens;
      total_.cached_tokens += std::min(f.cached_prompt_tokens, f.prompt_tokens);
    }
    total_.completion_tokens += f.completion_tokens;
    total_.reasoning_tokens += std::min(f.reasoning_tokens, f.completion_tokens);
    notify = notify_;
    if (loop_ && !loop_->pending.empty() && f.reason == runtime::FinishReason::Stop) {
      // The searches block on the network: off the engine thread, which goes on with the others.
      std::thread([self = shared_from_this()] { self->search_round(); }).detach();
    } else {
      ch.end = f;
      // A failed choice fails the request: the others stop.
      if (f.reason == runtime::FinishReason::Error && choices_.size() > 1 && !cancel_requested_) {
        cancel_requested_ = true;
        stop_others = handle_;
      }
      ended = std::all_of(choices_.begin(), choices_.end(), [](const Choice& c) { return c.end.has_value(); });
      if (ended) {
        const runtime::FinishInfo& end = request_end();
        rec = finish_locked(end.reason, end.error, end.matched_stop);
      }
    }
  }
  if (stop_others) stop_others->cancel();
  if (ended) deliver(rec);
  else if (notify) notify();
}

const runtime::FinishInfo& Generation::request_end() const {
  for (auto reason : {runtime::FinishReason::Error, runtime::FinishReason::Cancelled})
    for (const Choice& c : choices_)
      if (c.end->reason == reason) return *c.end;
  return *choices_.front().end;
}

namespace {

ChoiceEnd end_of(runtime::FinishReason reason, const std::string& matched_stop, bool has_tool_calls, bool pause) {
  switch (reason) {
    case runtime::FinishReason::Length: return {StopKind::length, ""};
    case runtime::FinishReason::StopString: return {StopKind::stop_string, matched_stop};
    case runtime::FinishReason::Error: return {StopKind::error, ""};
    case runtime::FinishReason::Stop:
    case runtime::FinishReason::Cancelled: break;
  }
  return {has_tool_calls ? StopKind::tool_calls : pause ? StopKind::pause_turn : StopKind::end_turn, ""};
}

bool answered(runtime::FinishReason reason) {
  return reason != runtime::FinishReason::Error && reason != runtime::FinishReason::Cancelled;
}

}  // namespace

UsageRecord Generation::finish_locked(runtime::FinishReason reason, const std::string& error,
                                      const std::string& matched_stop, bool pause) {
  Outcome o;
  for (size_t c = 0; c < choices_.size(); ++c) {
    // One choice ends as the request does (a search loop's or an upstream's end); several each as
    // its own sequence did.
    const runtime::FinishInfo* own = choices_.size() > 1 ? &*choices_[c].end : nullptr;
    const runtime::FinishReason r = own ? own->reason : reason;
    // The Sources footer closes an answer that used web search (not a failed or cancelled one, nor
    // a turn that ends in tool calls, whose answer comes in a later request).
    if (!footer_.empty() && answered(r) && !choices_[c].has_tool_calls) {
      Delta d;
      d.kind = Delta::Kind::content;
      d.text = footer_;
      d.choice = int(c);
      emit(std::move(d));
    }
    if (own) o.choices.push_back(end_of(r, own->matched_stop, choices_[c].has_tool_calls, pause));
  }
  const ChoiceEnd end = end_of(reason, matched_stop, choices_.front().has_tool_calls, pause);
  o.stop = end.stop;
  o.matched_stop = end.matched_stop;
  if (o.stop == StopKind::error) o.error = error.empty() ? "generation failed" : error;
  o.usage = total_;
  o.usage.web_search_calls = int(record_.web_search_calls);
  if (keeper_) o.response = keeper_->finish(reason, o, revoked_);
  outcome_ = o;
  record_.usage = o.usage;
  record_.status = status_of(reason);
  record_.ended_at_ms = now_ms();
  return record_;
}

void Generation::deliver(const UsageRecord& rec) {
  std::function<void()> notify;
  {
    std::lock_guard lock(mutex_);
    notify = notify_;
  }
  if (usage_sink_) {
    try {
      usage_sink_->record(rec);
    } catch (...) {
      // Billing failures must not take the engine thread down; the sink logs its own errors.
    }
  }
  if (notify) notify();
}

Generation::Batch Generation::take() {
  std::lock_guard lock(mutex_);
  Batch b;
  b.deltas.swap(deltas_);
  b.cached_prompt_tokens = std::exchange(admitted_cached_, std::nullopt);
  if (outcome_ && !outcome_taken_) {
    b.outcome = outcome_;
    outcome_taken_ = true;
  }
  return b;
}

bool Generation::finished() const {
  std::lock_guard lock(mutex_);
  return outcome_.has_value();
}

void Generation::cancel() {
  std::shared_ptr<runtime::RequestHandle> h;
  {
    std::lock_guard lock(mutex_);
    if (outcome_ || cancel_requested_) return;
    cancel_requested_ = true;
    h = handle_;
  }
  if (h) h->cancel();
}

void Generation::revoke() {
  {
    std::lock_guard lock(mutex_);
    if (outcome_) return;
    revoked_ = true;
  }
  cancel();
}

bool Generation::revoked() const {
  std::lock_guard lock(mutex_);
  return revoked_;
}

bool Generation::committed() const {
  std::lock_guard lock(mutex_);
  return committed_ || outcome_.has_value();
}

std::optional<ApiError> Generation::failure() const {
  std::lock_guard lock(mutex_);
  return failure_;
}

void Generation::on_start() {
  std::function<void()> notify;
  {
    std::lock_guard lock(mutex_);
    committed_ = true;
    notify = notify_;
  }
  if (notify) notify();
}

void Generation::on_deltas(std::vector<Delta> deltas) {
  std::function<void()> notify;
  {
    std::lock_guard lock(mutex_);
    if (record_.first_token_at_ms == 0) record_.first_token_at_ms = now_ms();
    committed_ = true;
    for (auto& d : deltas) {
      if (d.kind == Delta::Kind::tool_call) {
        if (single_tool_call_ && choices_.front().has_tool_calls) continue;  // parallel_tool_calls: false
        choices_.front().has_tool_calls = true;
      }
      emit(std::move(d));
    }
    notify = notify_;
  }
  if (notify) notify();
}

void Generation::on_end(RunEnd end) {
  UsageRecord rec;
  {
    std::lock_guard lock(mutex_);
    total_.prompt_tokens += end.usage.prompt_tokens;
    total_.cached_tokens += std::min(end.usage.cached_tokens, end.usage.prompt_tokens);
    total_.completion_tokens += end.usage.completion_tokens;
    total_.reasoning_tokens += std::min(end.usage.reasoning_tokens, end.usage.completion_tokens);
    record_.web_search_calls = std::max<int64_t>(record_.web_search_calls, end.usage.web_search_calls);
    if (end.failure && !committed_) failure_ = std::move(end.failure);  // the caller has seen nothing yet
    rec = finish_locked(end.reason, end.error, end.matched_stop);
    if (failure_) {  // nothing ran that the caller got: the admission is released, no ledger row
      const int s = failure_->status;
      rec.status = record_.status = s == 429 || s == 503 || s == 529 ? "overloaded" : "refused";
    }
  }
  deliver(rec);
}

// ----------------------------------------------------------------------------- RunningByKey
class RunningByKey {
 public:
  void add(const std::string& key_id, const std::shared_ptr<Generation>& g) {
    std::lock_guard lock(mutex_);
    std::erase_if(running_, [](const auto& entry) { return entry.second.expired(); });
    running_.emplace(key_id, g);
  }
  void revoke(const std::vector<std::string>& key_ids) {
    std::vector<std::shared_ptr<Generation>> stop;
    {
      std::lock_guard lock(mutex_);
      for (const auto& id : key_ids)
        for (auto [it, end] = running_.equal_range(id); it != end; ++it)
          if (auto g = it->second.lock()) stop.push_back(std::move(g));
    }
    for (auto& g : stop) g->revoke();  // outside the lock: cancel reaches into the engine
  }

 private:
  std::mutex mutex_;
  std::multimap<std::string, std::weak_ptr<Generation>> running_;  // expired entries pruned on add
};

// ----------------------------------------------------------------------------- ApiService
ApiService::ApiService(runtime::Engine& engine, std::shared_ptr<const text::Tokenizer> tokenizer,
                       std::shared_ptr<Authenticator> auth, std::shared_ptr<UsageSink> usage, ServiceOptions options)
    : ApiService(&engine, std::move(tokenizer), std::move(auth), std::move(usage), std::move(options)) {}

ApiService::ApiService(runtime::Engine* engine, std::shared_ptr<const text::Tokenizer> tokenizer,
                       std::shared_ptr<Authenticator> auth, std::shared_ptr<UsageSink> usage, ServiceOptions options)
    : engine_(engine), tokenizer_(std::move(tokenizer)), auth_(std::move(auth)), usage_(std::move(usage)),
      options_(std::move(options)), running_(std::make_shared<RunningByKey>()), responses_(options_.responses) {
  if (!auth_) auth_ = std::make_shared<OpenAuthenticator>();
  if (!responses_) responses_ = ResponseStore::in_memory();
  // Background responses have no client loop to poll the key's standing: the store does it.
  responses_->set_entitlement_check([auth = auth_](const Principal& who) { return auth->entitled(who); });
  auth_->watch_entitlements([weak = std::weak_ptr<RunningByKey>(running_)](const std::vector<std::string>& key_ids) {
    auto running = weak.lock();
    if (!running) return false;  // this service is gone
    running->revoke(key_ids);
    return true;
  });
}

void ApiService::set_backends(std::map<std::string, std::shared_ptr<Backend>> backends) {
  options_.backends = std::move(backends);
}

std::shared_ptr<runtime::TokenConstraint> ApiService::constraint(std::shared_ptr<const grammar::Grammar> grammar) const {
  if (!grammar) return nullptr;
  std::call_once(token_index_once_, [&] { token_index_ = make_token_index(*tokenizer_); });
  return make_constraint(std::move(grammar), token_index_, engine_->config().eos_token_id);
}

int64_t ApiService::context_length() const {
  if (!engine_) return options_.catalog.context_length;  // each upstream checks its own
  return std::min<int64_t>(options_.catalog.context_length, engine_->config().max_position_embeddings);
}

namespace {

Request parse_for(Dialect dialect, const json::value& body, bool count_only = false) {
  switch (dialect) {
    case Dialect::chat: return parse_chat_request(body);
    case Dialect::responses: return parse_responses_request(body);
    case Dialect::anthropic: return parse_anthropic_request(body, count_only);
  }
  throw std::logic_error("dialect");
}

std::vector<int32_t> encode_request(const Request& req, const text::Tokenizer& tokenizer) {
  json::array msgs = prompt_messages(req);
  text::ChatEncodeOptions o;
  o.mode = req.thinking ? text::ThinkingMode::thinking : text::ThinkingMode::chat;
  o.reasoning_effort = req.thinking ? encoder_effort(req.effort) : std::nullopt;
  try {
    std::string prompt = text::encode_messages(msgs, o);
    return text::encode_prompt_tokens(tokenizer, prompt);
  } catch (const text::ChatEncodingError& e) {
    throw bad_request("messages", std::string("the conversation cannot be encoded: ") + e.what());
  }
}

// The request's model names a served id, directly or through an alias (--model-alias); the
// request then carries the served id (billing, the response's `model`).
void apply_betas(Request& req, const std::string& anthropic_beta) {
  check_anthropic_betas(anthropic_beta);
  req.thinking_token_count = anthropic_beta.find("thinking-token-count-2026-05-13") != std::string::npos;
}

void check_model(const ServiceOptions& options, Request& req) {
  if (auto id = options.catalog.resolve(req.model)) {
    req.model = *id;
  } else {
    std::string list;
    for (auto& id : options.catalog.ids) list += (list.empty() ? "" : ", ") + id;
    throw ApiError(404, "not_found_error", "the model '" + req.model + "' does not exist; this server serves " + list,
                   "model", "model_not_found");
  }
}

}  // namespace

namespace {
// The engine's limits are the API's: one check (runtime::check_sampling_params), its refusal named
// in the request's own terms, so nothing the API accepts is refused later by the engine. A
// logit_bias token id must be a token of the model's vocabulary, not one of the padding rows past
// the tokenizer's last id, which are never sampled (the engine checks both at submit too).
void check_engine_limits(const Request& req, const runtime::SamplingParams& params, int64_t vocab_size,
                         const text::Tokenizer* tokenizer) {
  try {
    runtime::check_sampling_params(params);
  } catch (const runtime::InvalidParameter& e) {
    std::string field = e.field;
    if (field == "stop" && req.dialect == Dialect::anthropic) field = "stop_sequences";
    if (field == "max_tokens" && req.dialect == Dialect::responses) field = "max_output_tokens";
    if (field == "thinking_budget" && req.dialect == Dialect::anthropic) field = "thinking.budget_tokens";
    throw invalid_value(req.dialect, field, e.what());
  }
  for (const auto& [id, bias] : params.logit_bias)
    if (id >= vocab_size)
      throw invalid_value(req.dialect, "logit_bias." + std::to_string(id),
                          "'logit_bias' token id " + std::to_string(id) + " is outside the vocabulary (ids 0 to " +
                              std::to_string(vocab_size - 1) + ")");
    else if (tokenizer && !tokenizer->is_valid(id))
      throw invalid_value(req.dialect, "logit_bias." + std::to_string(id),
                          "'logit_bias' token id " + std::to_string(id) +
                              " is a padding row of the vocabulary with no token (never sampled)");
}
}  // namespace

PreparedRequest ApiService::prepare(Dialect dialect, const std::string& body, const std::string& anthropic_beta,
                                    const Principal& who) const {
  json::value v = parse_json_body(body);
  PreparedRequest p;
  p.req = dialect == Dialect::responses ? parse_stateful_responses(v, who, &p.input_items) : parse_for(dialect, v);
  if (dialect == Dialect::anthropic) apply_betas(p.req, anthropic_beta);
  check_model(options_, p.req);
  check_parameters(v, p.req.model);
  if (p.req.search_tool) enable_search_tool(p.req);
  p.grammar = output_grammar(p.req);  // a schema we cannot run is refused before any search
  if (!p.req.web_search_field.empty()) run_web_search(p);
  p.prompt = encode_request(p.req, *tokenizer_);

  const int64_t ctx = context_length();
  const int64_t n = int64_t(p.prompt.size());
  if (n >= ctx)
    throw ApiError(400, "invalid_request_error",
                   "the prompt is " + std::to_string(n) + " tokens, which exceeds the model's context window of " +
                       std::to_string(ctx) + " tokens",
                   "messages", "context_length_exceeded");
  if (p.req.max_tokens_given && n + p.req.max_tokens > ctx)
    throw ApiError(400, "invalid_request_error",
                   "the prompt (" + std::to_string(n) + " tokens) plus max_tokens (" + std::to_string(p.req.max_tokens) +
                       ") exceeds the model's context window of " + std::to_string(ctx) + " tokens",
                   dialect == Dialect::responses ? "max_output_tokens" : "max_tokens", "context_length_exceeded");
  int max_tokens = int(std::min<int64_t>(p.req.max_tokens, ctx - n));

  auto& s = p.params;
  s.temperature = p.req.temperature;
  s.top_p = p.req.top_p;
  s.top_k = p.req.top_k;
  s.frequency_penalty = p.req.frequency_penalty;
  s.presence_penalty = p.req.presence_penalty;
  s.logit_bias = p.req.logit_bias;
  s.seed = p.req.seed;
  s.max_tokens = max_tokens;
  s.top_logprobs = p.req.logprobs ? p.req.top_logprobs : -1;
  s.stop = p.req.stop;
  s.thinking = p.req.thinking;
  s.thinking_budget = p.req.thinking_budget;
  // Without a local engine each upstream checks the vocabulary itself.
  check_engine_limits(p.req, s, engine_ ? engine_->config().vocab_size : INT64_MAX, tokenizer_.get());

  p.meta.sources = p.sources;
  p.meta.created = std::time(nullptr);
  p.meta.model = p.req.model;
  p.meta.item_id = random_id(24);
  switch (dialect) {
    case Dialect::chat: p.meta.id = "chatcmpl-" + random_id(29); break;
    case Dialect::responses: p.meta.id = "resp_" + random_id(40); break;
    case Dialect::anthropic: p.meta.id = "msg_" + random_id(24); break;
  }
  if (auto backend = backend_for(p.req.model)) {
    // An upstream answers one choice per request here (its own `n` is not relayed).
    if (p.req.n > 1)
      throw invalid_value(dialect, "n", "'n' above 1 is not supported for the model '" + p.req.model +
                                            "', which runs on upstream servers");
    backend->check(p);
  }
  return p;
}

// A Responses request with its stored state: the conversation previous_response_id continues
// (looked up first, so the parser reads it in place), the items its item_references name (put in
// their place: the parser reads them as sent), and the input items it stores (those items).
Request ApiService::parse_stateful_responses(const json::value& body, const Principal& who,
                                                 std::string* input_items) const {
  json::array earlier;
  const json::value* previous = body.as_object().if_contains("previous_response_id");
  const bool continues = previous && previous->is_string();
  if (continues) earlier = responses_->conversation(std::string(previous->get_string()), who.owner());
  const json::value* input = body.as_object().if_contains("input");
  std::optional<json::value> resolved;
  if (input)
    if (auto items = resolve_item_references(*input, earlier, *responses_, who.owner())) {
      resolved = body;
      resolved->as_object()["input"] = std::move(*items);
    }
  const json::value& read = resolved ? *resolved : body;
  Request req = parse_responses_request(read, continues ? &earlier : nullptr);
  if (req.store && input_items) *input_items = responses_->input_items(read.at("input"));
  return req;
}

json::object ApiService::count_tokens(const std::string& body, const Principal& who, const std::string& anthropic_beta) const {
  json::value v = parse_json_body(body);
  Request req = parse_for(Dialect::anthropic, v, /*count_only=*/true);
  apply_betas(req, anthropic_beta);
  check_model(options_, req);
  if (req.search_tool) enable_search_tool(req);
  AdmissionInfo info{"count_" + random_id(24), req.model, 0, 0};
  info.free_of_charge = true;
  auth_->admit(who, info);  // before the tokenisation, which is the work
  return json::object{{"input_tokens", int64_t(encode_request(req, *tokenizer_).size())}};
}

json::object ApiService::list_models() const {
  json::array data;
  for (auto& id : options_.catalog.ids) {
    data.push_back(json::object{{"id", id},
                                {"object", "model"},
                                {"created", 1745366400},
                                {"owned_by", "deepseek"},
                                {"type", "model"},
                                {"display_name", "DeepSeek V4 Flash" + (id.find(':') == std::string::npos ? std::string() : " (" + id.substr(id.find(':') + 1) + ")")},
                                {"context_length", context_length()},
                                {"max_model_len", context_length()},
                                {"max_output_tokens", options_.catalog.max_output_tokens}});
    if (auto r = options_.regions.find(id); r != options_.regions.end()) data.back().as_object()["region"] = r->second;
  }
  return json::object{{"object", "list"}, {"data", std::move(data)}, {"has_more", false},
                      {"first_id", options_.catalog.ids.front()}, {"last_id", options_.catalog.ids.back()}};
}

namespace {

// A failed search, before any token: 503 when trying again later may work (timeout, rate limit,
// provider down), 502 when the provider's answer was unusable (key refused, no credit, malformed,
// nothing found). Nothing is billed for it.
ApiError search_failed(const std::string& field, const search::Error& e) {
  using K = search::Error::Kind;
  const bool transient = e.kind == K::timeout || e.kind == K::rate_limited || e.kind == K::unavailable;
  const char* code = e.kind == K::no_results ? "web_search_no_results"
                     : transient             ? "web_search_unavailable"
                                             : "web_search_failed";
  ApiError err(transient ? 503 : 502, "server_error", std::string("web search failed: ") + e.what(), field, code);
  if (transient) err.retry_after_s = e.kind == K::rate_limited ? 5 : 1;
  return err;
}

}  // namespace

void ApiService::run_web_search(PreparedRequest& p) const {
  Request& req = p.req;
  const std::string& field = req.web_search_field;
  if (!options_.search)
    throw bad_request(field, "web search is not enabled on this server ('" + field +
                                 "'); the operator starts it with serve --search linkup|local");
  size_t last_user = req.messages.size();
  for (size_t i = req.messages.size(); i-- > 0;)
    if (req.messages[i].role == "user") {
      last_user = i;
      break;
    }
  std::string text = last_user < req.messages.size() ? search::query_from_message(req.messages[last_user].content) : "";
  if (text.empty())
    throw bad_request(field, "'" + field + "' searches with the latest user message's text, and there is none");
  search::Query q;
  q.text = text;
  q.depth = options_.search_depth;
  q.max_results = req.web_search_results > 0 ? req.web_search_results : options_.search_results;
  try {
    p.sources = options_.search->search(q);
  } catch (const search::Error& e) {
    // The provider's status only: its message may quote the query, which stays out of the log.
    spdlog::warn("web search ({}) failed: kind {}, provider status {}", options_.search->name(), search::kind_name(e.kind),
                 e.http_status);
    throw search_failed(field, e);
  }
  p.web_search_calls = 1;
  // The results go right before the message they answer, as a system message (the V4 encoder
  // renders it as plain text there; first in the conversation it is the system prompt).
  std::string context = search::context_message(text, p.sources, search::utc_date_today());
  if (last_user > 0) context = "\n\n" + context;
  req.messages.insert(req.messages.begin() + ptrdiff_t(last_user), Message{"system", context, {}, {}, {}});
  if (!req.disable_formatting) p.footer = search::sources_footer(p.sources);
}

// An admitted request the engine did not take: its admission hold is released (nothing to bill).
void ApiService::release_admission(Generation& g, const char* status) const {
  if (g.keeper_) responses_->abandon(g.record_.request_id);  // never ran: nothing to keep
  if (!usage_) return;
  UsageRecord rec = g.record_;
  rec.status = status;
  rec.ended_at_ms = now_ms();
  usage_->record(rec);
}

std::shared_ptr<Generation> ApiService::start(const PreparedRequest& p, const Principal& who, std::function<void()> notify) {
  const bool search_tool = p.req.search_tool && p.req.search_tool->enabled && p.req.tool_choice.offers_tools();
  std::shared_ptr<Generation> g(new Generation());
  // Known as running before admission looks at the key: a revocation is then either seen by the
  // admission or signalled to this generation (which, not yet submitted, is cancelled on submit).
  if (!who.is_operator) running_->add(who.key_id, g);
  // The prompt once, the output of every choice (Chat `n`).
  AdmissionInfo admission{p.meta.id, p.req.model, int64_t(p.prompt.size()), int64_t(p.params.max_tokens) * p.req.n};
  // The search tool's calls are held at their most: max_uses, else one per round.
  admission.web_search_calls =
      p.web_search_calls + (search_tool ? (p.req.search_tool->max_uses > 0 ? p.req.search_tool->max_uses : kMaxSearchRounds) : 0);
  auth_->admit(who, admission);

  g->notify_ = std::move(notify);
  g->usage_sink_ = usage_;
  g->footer_ = p.footer;
  g->single_tool_call_ = !p.req.parallel_tool_calls;
  g->record_.request_id = p.meta.id;
  g->record_.key_id = who.key_id;
  g->record_.source = who.source;
  g->record_.model = p.req.model;
  g->record_.dialect = p.req.dialect;
  g->record_.started_at_ms = now_ms();
  g->record_.web_search_calls = p.web_search_calls;
  if (p.req.dialect == Dialect::responses && p.req.store) {  // readable (queued) from here on
    g->keeper_ = responses_->keep(p, who, g);
    g->detached_ = p.req.background;
  }
  const RunContext ctx{who.tenant(), options_.shared_prefix_cache ? std::string() : who.tenant()};
  try {
    if (auto backend = backend_for(p.req.model)) {
      auto handle = backend->start(p, ctx, g);
      bool cancel_now = false;
      {
        std::lock_guard lock(g->mutex_);
        g->handle_ = handle;
        cancel_now = g->cancel_requested_;
      }
      if (cancel_now) handle->cancel();
    } else {
      submit_local(g, p, ctx);
    }
  } catch (const ApiError& e) {
    release_admission(*g, e.status == 429 || e.status == 503 || e.status == 529 ? "overloaded" : "refused");
    throw;
  } catch (...) {
    release_admission(*g, "refused");
    throw;
  }
  return g;
}

void ApiService::submit_local(const std::shared_ptr<Generation>& g, const PreparedRequest& p, const RunContext& ctx) const {
  if (!engine_) throw overloaded(p.req.dialect, "the model '" + p.req.model + "' has no backend on this server");
  const bool search_tool = p.req.search_tool && p.req.search_tool->enabled && p.req.tool_choice.offers_tools();
  g->tokenizer_ = tokenizer_;
  g->want_logprobs_ = p.req.logprobs;
  text::ParserOptions po;
  po.start_in_reasoning = p.req.thinking;
  po.parse_tool_calls = !p.req.tools.empty() && p.req.tool_choice.offers_tools();
  const std::string prefix = p.req.dialect == Dialect::anthropic ? "toolu_" : "call_";
  po.make_tool_call_id = [prefix](size_t) { return prefix + random_id(24); };
  g->parser_options_ = po;
  g->choices_.resize(size_t(p.req.n));
  for (auto& c : g->choices_) c.parser = std::make_unique<text::CompletionParser>(po);
  g->committed_ = true;

  runtime::GenerationRequest gr;
  gr.id = p.meta.id;
  gr.prompt = p.prompt;
  gr.params = p.params;
  gr.tenant = ctx.tenant;
  gr.cache_salt = ctx.cache_salt;
  gr.constraint = constraint(p.grammar);
  if (search_tool) g->loop_ = search_loop(p, gr);
  std::shared_ptr<runtime::RequestHandle> handle;
  try {
    if (p.req.n == 1) {
      handle = engine_->submit(std::move(gr), g->engine_callbacks(0, true));
    } else {
      // Chat `n`: one prompt, prefilled once; each choice its own seed and constraint state.
      std::vector<runtime::GenerationRequest> choices;
      std::vector<runtime::RequestCallbacks> callbacks;
      for (int i = 0; i < p.req.n; ++i) {
        choices.push_back(gr);
        if (gr.params.seed) choices.back().params.seed = choice_seed(*gr.params.seed, i);
        if (i > 0) choices.back().constraint = constraint(p.grammar);
        callbacks.push_back(g->engine_callbacks(size_t(i), i == 0));
      }
      handle = engine_->submit_choices(std::move(choices), std::move(callbacks));
    }
  } catch (const runtime::OverloadedError& e) {
    throw overloaded(p.req.dialect, e.what());
  } catch (const std::invalid_argument& e) {
    throw bad_request("", std::string("the engine refused the request: ") + e.what());
  }
  bool cancel_now = false;
  {
    std::lock_guard lock(g->mutex_);
    g->handle_ = handle;
    cancel_now = g->cancel_requested_;
  }
  if (cancel_now) handle->cancel();
}

std::shared_ptr<Backend> ApiService::backend_for(const std::string& model) const {
  auto it = options_.backends.find(model);
  return it == options_.backends.end() ? nullptr : it->second;
}

std::string ApiService::metrics_text() const {
  std::string out = engine_ ? engine_->prometheus_text() : std::string();
  std::set<const Backend*> seen;  // one pool may serve several ids
  for (auto& [id, b] : options_.backends)
    if (seen.insert(b.get()).second) out += b->metrics_text();
  return out;
}

json::object ApiService::backends_status() const {
  json::object out;
  for (auto& [id, b] : options_.backends) {
    json::value s = b->status();
    if (!s.is_null()) out[id] = std::move(s);
  }
  return out;
}

void ApiService::check_parameters(const json::value& body, const std::string& model) const {
  auto it = options_.parameters.find(model);
  if (it == options_.parameters.end() || !body.is_object()) return;
  for (auto& [key, value] : body.get_object()) {
    if (value.is_null()) continue;  // a field sent as null counts as absent
    const std::string k(key);
    if (std::find(kAlwaysAllowedFields.begin(), kAlwaysAllowedFields.end(), k) != kAlwaysAllowedFields.end()) continue;
    if (std::find(it->second.begin(), it->second.end(), k) != it->second.end()) continue;
    throw ApiError(400, "invalid_request_error", "'" + k + "' is not supported by the model '" + model + "'", k,
                   "unsupported_parameter");
  }
}

std::unique_ptr<Generation::SearchLoop> ApiService::search_loop(const PreparedRequest& p,
                                                               const runtime::GenerationRequest& gr) const {
  auto loop = std::make_unique<Generation::SearchLoop>();
  loop->service = this;
  loop->req = p.req;
  loop->grammar = p.grammar;
  if (p.req.tool_choice.forced()) {  // a forced call: the first round's only
    Request later = p.req;
    later.tool_choice = {};
    loop->grammar = output_grammar(later);
  }
  loop->base = gr;
  loop->max_tokens = p.params.max_tokens;
  loop->next_number = p.sources.size() + 1;
  return loop;
}

json::object ApiService::start_background(const PreparedRequest& p, const Principal& who) {
  start(p, who, nullptr);
  return render_pending_response(p.req, p.meta, "queued");
}

// ----------------------------------------------------------------------------- search tool
namespace {

json::object search_tool_function() {
  json::object query{{"type", "string"}, {"description", "The search query: a few precise keywords or a question."}};
  json::object params{{"type", "object"}, {"properties", json::object{{"query", std::move(query)}}},
                      {"required", json::array{"query"}}};
  return json::object{
      {"type", "function"},
      {"function", json::object{{"name", "web_search"},
                                {"description", "Search the web for recent or specific information. Returns numbered, "
                                                "dated results; cite a result you use with its number in brackets, like [1]."},
                                {"parameters", std::move(params)}}}};
}

const char* tool_error_code(search::Error::Kind kind) {
  return kind == search::Error::Kind::rate_limited ? "too_many_requests" : "unavailable";
}

// What the model reads as the search's result.
std::string tool_result_text(const SearchCall& c, int max_uses) {
  if (c.error_code == "max_uses_exceeded")
    return "Error: the web search limit of this request (" + std::to_string(max_uses) +
           " searches) is reached; answer with what you have.";
  if (!c.error_code.empty()) return "Error: the web search failed (" + c.error_code + ").";
  if (c.results.empty()) return "The web search for \"" + c.query + "\" found nothing.";
  return search::context_message(c.query, c.results, search::utc_date_today(), 3000, c.first_number);
}

}  // namespace

void ApiService::enable_search_tool(Request& req) const {
  auto& st = *req.search_tool;
  if (!options_.search) {
    if (req.dialect == Dialect::responses) return;  // withheld and named (Codex sends it by default)
    throw bad_request(st.param + ".type", "web search is not enabled on this server (tool '" + st.type +
                                              "'); the operator starts it with serve --search linkup|local");
  }
  if (!st.live_web && options_.search->live_web()) {
    req.withheld_reason = "external_web_access is false and this server searches the live web (serve --search linkup)";
    return;
  }
  if (st.user_location)
    throw invalid_value(req.dialect, st.param + ".user_location",
                        "'" + st.param + ".user_location' is not supported: the search provider takes no location");
  for (auto& t : req.tools)
    if (t.at("function").at("name") == "web_search")
      throw invalid_value(req.dialect, st.param,
                          "a tool named web_search is declared beside the search tool '" + st.type + "'; rename it");
  req.tools.push_back(search_tool_function());
  std::erase(req.withheld_tools, st.type);
  req.withheld_reason.clear();
  st.enabled = true;
}

// Runs the round's searches in order (max_uses counted), hands each result to the client and to
// the conversation, then starts the next round or ends the turn.
void Generation::search_round() {
  const ApiService& svc = *loop_->service;
  const Request::SearchTool& st = *loop_->req.search_tool;
  std::vector<SearchCall> calls;
  {
    std::lock_guard lock(mutex_);
    calls.swap(loop_->pending);
    loop_->req.messages.push_back(std::move(loop_->round));
    loop_->round = Message{"assistant", "", {}, {}, {}};
  }
  for (auto& c : calls) {
    bool billed = false;
    if (c.error_code.empty() && st.max_uses > 0 && loop_->searches >= st.max_uses) {
      c.error_code = "max_uses_exceeded";
    } else if (c.error_code.empty()) {
      ++loop_->searches;
      search::Query q;
      q.text = c.query;
      q.depth = svc.options_.search_depth;
      q.max_results = st.results > 0 ? st.results : svc.options_.search_results;
      q.include_domains = st.allowed_domains;
      q.exclude_domains = st.blocked_domains;
      try {
        c.results = svc.options_.search->search(q);
        billed = true;
      } catch (const search::Error& e) {
        // Nothing found is an empty result, not a fault; neither is billed (docs/web-search.md).
        if (e.kind != search::Error::Kind::no_results) {
          c.error_code = tool_error_code(e.kind);
          spdlog::warn("web search tool ({}) failed: kind {}, provider status {}", svc.options_.search->name(),
                       search::kind_name(e.kind), e.http_status);
        }
      }
    }
    std::function<void()> notify;
    {
      std::lock_guard lock(mutex_);
      c.first_number = loop_->next_number;
      loop_->next_number += c.results.size();
      if (billed) ++record_.web_search_calls;
      loop_->req.messages.push_back(Message{"tool", tool_result_text(c, st.max_uses), {}, {}, c.id});
      Delta d;
      d.kind = Delta::Kind::search_result;
      d.search = c;
      emit(std::move(d));
      notify = notify_;
    }
    if (notify) notify();
  }
  next_round();
}

// The next round of the search loop, or the end of the turn: after a user tool call (its result
// comes in the client's next request), at the limit of rounds (pause_turn), when cancelled, or when
// the output budget is spent.
void Generation::next_round() {
  UsageRecord rec;
  std::optional<runtime::GenerationRequest> next;
  {
    std::lock_guard lock(mutex_);
    using R = runtime::FinishReason;
    if (cancel_requested_) {
      rec = finish_locked(R::Cancelled, "", "");
    } else if (round_user_calls_) {
      rec = finish_locked(R::Stop, "", "");
    } else if (++loop_->rounds >= kMaxSearchRounds) {
      rec = finish_locked(R::Stop, "", "", /*pause=*/true);
    } else {
      try {
        std::vector<int32_t> prompt = encode_request(loop_->req, *tokenizer_);
        const int64_t room = loop_->service->context_length() - int64_t(prompt.size());
        const int64_t budget = std::min<int64_t>(loop_->max_tokens - total_.completion_tokens, room);
        if (budget > 0) {
          next = loop_->base;
          next->prompt = std::move(prompt);
          next->constraint = loop_->service->constraint(loop_->grammar);
          next->params.max_tokens = int(budget);
          choices_.front().parser = std::make_unique<text::CompletionParser>(parser_options_);
          round_user_calls_ = false;
        } else {
          rec = finish_locked(R::Length, "", "");
        }
      } catch (const std::exception& e) {
        rec = finish_locked(R::Error, std::string("the search results cannot be given to the model: ") + e.what(), "");
      }
    }
  }
  if (!next) {
    deliver(rec);
    return;
  }
  std::shared_ptr<runtime::RequestHandle> handle;
  try {
    handle = loop_->service->engine_->submit(std::move(*next), engine_callbacks(0, false));
  } catch (const std::exception& e) {
    {
      std::lock_guard lock(mutex_);
      rec = finish_locked(runtime::FinishReason::Error, std::string("the next round was refused: ") + e.what(), "");
    }
    deliver(rec);
    return;
  }
  bool cancel_now = false;
  {
    std::lock_guard lock(mutex_);
    handle_ = handle;
    cancel_now = cancel_requested_;
  }
  if (cancel_now) handle->cancel();
}

}  // namespace v4::api
