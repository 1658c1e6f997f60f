#pragma once
// The HTTP-independent core of the API: request body -> validated Request -> prompt tokens ->
// engine request; engine tokens -> completion parser -> dialect-neutral deltas and an outcome.
// The HTTP server (server.h) only moves bytes; everything a test needs to check lives here.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "api/auth.h"
#include "api/backend.h"
#include "api/output.h"
#include "api/request.h"
#include "grammar/grammar.h"
#include "grammar/token_index.h"
#include "runtime/engine.h"
#include "search/provider.h"
#include "text/completion_parser.h"
#include "text/tokenizer.h"

namespace v4::api {

class ResponseStore;

struct ServiceOptions {
  ModelCatalog catalog;
  // The Responses API's stored responses (api/response_store.h); null: the service keeps them in
  // this process's memory (ResponseStore::in_memory).
  std::shared_ptr<ResponseStore> responses;
  // Prefix-cache hits across tenants (serve --shared-prefix-cache): off by default, so a tenant's
  // cached_tokens and latency say nothing about other tenants' prompts.
  bool shared_prefix_cache = false;
  // Web search (serve --search): null when off, and a request that asks for it is refused (400).
  std::shared_ptr<const search::Provider> search;
  int search_results = 5;
  search::Depth search_depth = search::Depth::standard;
  // serve --deployment: the model ids that run elsewhere than on this process's engine (a pool of
  // upstream servers, src/gateway); the others run on the engine.
  std::map<std::string, std::shared_ptr<Backend>> backends;
  // The request fields a model id takes (serve --deployment `parameters`), besides the ones every
  // request needs (kAlwaysAllowedFields); another is refused with 400 naming it. Absent: all.
  std::map<std::string, std::vector<std::string>> parameters;
  std::map<std::string, std::string> regions;  // the region label /v1/models shows per id
};

// What a model id's `parameters` list never needs to name: the request's own structure.
inline const std::vector<std::string> kAlwaysAllowedFields = {"model", "messages", "input", "system", "instructions",
                                                               "stream", "stream_options"};

// 503 (OpenAI dialects) or 529 (Anthropic) with the reason.
ApiError overloaded(Dialect dialect, const std::string& why);

struct PreparedRequest {
  Request req;
  std::vector<int32_t> prompt;
  ResponseMeta meta;
  runtime::SamplingParams params;
  int web_search_calls = 0;
  std::vector<search::Result> sources;  // the search results the model was given
  std::string footer;                   // appended to the answer ("" with disable_formatting)
  std::shared_ptr<const grammar::Grammar> grammar;  // the output's constraint (api/constraint.h), or null
  std::string input_items;  // Responses with store: the request's input items as stored (JSON text)
};

// What a generation made, kept as it is made (Responses with store: api/response_store.h). Called
// under the generation's lock: add() with every piece of output, finish() once at the end, which
// returns the response object as kept (the client then gets that same object).
class OutputKeeper {
 public:
  virtual ~OutputKeeper() = default;
  virtual void add(const Delta& d) = 0;
  // `revoked`: stopped because its key lost the right to run.
  virtual std::shared_ptr<const boost::json::object> finish(runtime::FinishReason reason, const Outcome& outcome,
                                                            bool revoked) = 0;
};

class ApiService;

// One running generation. Engine callbacks fill it (engine thread); the HTTP side takes what is
// ready whenever `notify` fires.
class Generation : public std::enable_shared_from_this<Generation>, public RunOutput {
 public:
  struct Batch {
    std::vector<Delta> deltas;
    std::optional<Outcome> outcome;  // set once, with the last batch
    // Set once, in the first batch after the engine admitted the request: prompt tokens served
    // from the prefix cache (the first round's), for a stream's opening event.
    std::optional<int> cached_prompt_tokens;
  };
  Batch take();
  void cancel();
  // Stops it because its key may no longer run (revoked, credit used up): cancelled at the engine's
  // next step, and revoked() tells the client why. No effect once it has finished.
  void revoke();
  bool revoked() const;
  bool finished() const;
  // Whether the backend committed to it (a local run at once; an upstream one at its first byte):
  // until then the caller has been sent nothing, and a failure is answered as a plain HTTP error.
  bool committed() const;
  // The error to answer with when it failed before its first byte (RunEnd::failure).
  std::optional<ApiError> failure() const;
  ~Generation();

  // RunOutput: a backend other than the local engine feeds it.
  void on_start() override;
  void on_admitted(int cached_prompt_tokens) override;
  void on_deltas(std::vector<Delta> deltas) override;
  void on_end(RunEnd end) override;

 private:
  friend class ApiService;
  Generation() = default;
  // The engine's callbacks for choice `choice` (the first round's choice 0 also hears of admission).
  runtime::RequestCallbacks engine_callbacks(size_t choice, bool report_admission);
  void on_token(size_t choice, const runtime::GeneratedToken& t);
  void on_finish(size_t choice, const runtime::FinishInfo& f);
  // The request's end once every choice ended: the first failure (which stopped the others), else a
  // cancellation, else choice 0's end. With mutex_ held.
  const runtime::FinishInfo& request_end() const;
  void push(size_t choice, std::vector<text::CompletionEvent> events);
  void emit(Delta d);  // one piece of output, for the client and the keeper; with mutex_ held
  // The outcome (usage summed over the rounds) and the ledger record; called with mutex_ held.
  UsageRecord finish_locked(runtime::FinishReason reason, const std::string& error, const std::string& matched_stop,
                            bool pause = false);
  void deliver(const UsageRecord& rec);  // records it and notifies; without mutex_
  // The server's search tool: the round's searches (off the engine thread), then the next round.
  void search_round();
  void next_round();
  void add_search_call(text::ToolCall call);

  // The server's search tool loop (docs/api.md): each round's assistant turn and search results join
  // the conversation, which is encoded again for the next round (the prefix cache holds the rest).
  struct SearchLoop {
    const ApiService* service = nullptr;
    Request req;
    runtime::GenerationRequest base;  // id, tenant, cache salt, sampling
    int max_tokens = 0;               // the request's output budget over all rounds
    int rounds = 0;
    int searches = 0;                 // calls counted against max_uses
    size_t next_number = 1;           // citation number of the next result
    Message round{"assistant", "", {}, {}, {}};
    std::vector<SearchCall> pending;
    // Later rounds answer with the search results: the output format still holds, a forced tool
    // call does not (it was the first round's).
    std::shared_ptr<const grammar::Grammar> grammar;
  };
  std::unique_ptr<SearchLoop> loop_;
  Usage total_;  // the finished rounds'
  bool round_user_calls_ = false;

  // One of the request's choices (Chat `n`; one otherwise): its parser, its logprobs waiting for
  // their text, its tool calls, and how its engine sequence ended.
  struct Choice {
    std::unique_ptr<text::CompletionParser> parser;
    std::vector<TokenLogprobOut> pending_logprobs;
    bool has_tool_calls = false;
    std::optional<runtime::FinishInfo> end;
  };

  mutable std::mutex mutex_;
  std::function<void()> notify_;
  std::vector<Choice> choices_ = std::vector<Choice>(1);
  text::ParserOptions parser_options_;  // each round of the search loop starts a parser like it
  std::shared_ptr<const text::Tokenizer> tokenizer_;
  std::shared_ptr<runtime::RequestHandle> handle_;
  std::shared_ptr<UsageSink> usage_sink_;
  UsageRecord record_;
  bool want_logprobs_ = false;
  std::string footer_;  // the Sources footer, each choice's last content
  bool single_tool_call_ = false;
  std::vector<Delta> deltas_;
  std::optional<Outcome> outcome_;
  bool outcome_taken_ = false;
  std::optional<int> admitted_cached_;  // until take() hands it out
  bool cancel_requested_ = false;
  bool revoked_ = false;
  std::shared_ptr<OutputKeeper> keeper_;
  bool detached_ = false;  // background: no client takes the deltas (the keeper has them)
  bool committed_ = false;
  std::optional<ApiError> failure_;
};

// The running generations of each key, so that a key that loses its entitlement stops them.
class RunningByKey;

class ApiService {
 public:
  ApiService(runtime::Engine& engine, std::shared_ptr<const text::Tokenizer> tokenizer,
             std::shared_ptr<Authenticator> auth, std::shared_ptr<UsageSink> usage, ServiceOptions options);
  // Without an engine (null): every model id runs on options.backends (serve --deployment with
  // upstream pools only).
  ApiService(runtime::Engine* engine, std::shared_ptr<const text::Tokenizer> tokenizer,
             std::shared_ptr<Authenticator> auth, std::shared_ptr<UsageSink> usage, ServiceOptions options);

  Principal authenticate(const std::string& presented_secret) const { return auth_->authenticate(presented_secret); }
  std::optional<std::string> usage_report(const Principal& who) const { return auth_->usage_report(who); }
  void precheck(const Principal& who) const { auth_->precheck(who); }
  bool entitled(const Principal& who) const { return auth_->entitled(who); }

  // Parses and validates the body, checks the model id, encodes the prompt, checks the context.
  // Throws ApiError.
  // `anthropic_beta`: the Anthropic request's anthropic-beta header (each beta honoured or refused).
  // `who`: the caller, whose stored responses a Responses previous_response_id or item_reference may name.
  PreparedRequest prepare(Dialect dialect, const std::string& body, const std::string& anthropic_beta = {},
                          const Principal& who = {}) const;

  // POST /v1/messages/count_tokens: admitted like a request (rate limits, credit above zero) but
  // free of charge.
  boost::json::object count_tokens(const std::string& body, const Principal& who,
                                   const std::string& anthropic_beta = {}) const;
  // GET /v1/models
  boost::json::object list_models() const;
  int64_t context_length() const;

  // Admits and submits. Throws ApiError (admission refusals; overload -> 503, Anthropic 529).
  // `notify` is called from the engine thread whenever take() has something new.
  std::shared_ptr<Generation> start(const PreparedRequest& prepared, const Principal& who, std::function<void()> notify);
  // Responses `background`: admits and submits like start(), and answers at once with the response
  // object (queued); the generation runs detached and is kept (GET polls it). Throws ApiError.
  boost::json::object start_background(const PreparedRequest& prepared, const Principal& who);

  ResponseStore& responses() { return *responses_; }

  // This process's engine as a Backend (for a pool that mixes it with upstreams): no admission,
  // no ledger, those stay with the Generation that the pool feeds. Null without an engine.
  std::shared_ptr<Backend> local_backend();
  // Routes model ids to backends (ServiceOptions::backends), before the service takes requests:
  // a pool may hold local_backend(), which needs the service first.
  void set_backends(std::map<std::string, std::shared_ptr<Backend>> backends);
  // GET /metrics: the engine's and every backend's. GET /health's `backends`: each pool's state.
  std::string metrics_text() const;
  boost::json::object backends_status() const;
  const ServiceOptions& options() const { return options_; }

 private:
  friend class Generation;
  friend class LocalEngineBackend;
  // A run on the engine for a pool (local_backend): an inner Generation relayed to `out`.
  std::shared_ptr<runtime::RequestHandle> run_local(const PreparedRequest& p, const RunContext& ctx,
                                                    std::shared_ptr<RunOutput> out) const;
  void release_admission(Generation& g, const char* status) const;
  // Responses: the request parsed with the conversation its previous_response_id continues and the
  // stored items its item_references name, and the input items it stores (`input_items`, when it
  // stores). Throws ApiError.
  Request parse_stateful_responses(const boost::json::value& body, const Principal& who,
                                       std::string* input_items) const;
  // The backend `model` runs on, null for this process's engine.
  std::shared_ptr<Backend> backend_for(const std::string& model) const;
  // The request's fields against the model id's `parameters` (400 naming the first other).
  void check_parameters(const boost::json::value& body, const std::string& model) const;
  // Submits `g` (its parser, search loop and engine handle) to the engine. Throws ApiError.
  void submit_local(const std::shared_ptr<Generation>& g, const PreparedRequest& p, const RunContext& ctx) const;
  // The Responses/Anthropic search tool: given to the model when the server searches (Anthropic's is
  // refused when it does not; Responses' stays withheld). Throws ApiError.
  void enable_search_tool(Request& req) const;
  // The search tool's loop for a request whose first round is `gr` (later rounds start like it).
  std::unique_ptr<Generation::SearchLoop> search_loop(const PreparedRequest& p, const runtime::GenerationRequest& gr) const;
  // web_search_linkup / web_search_options: searches with the latest user message and puts the
  // results before it. Throws ApiError (400 when off, 502/503 when the search fails).
  void run_web_search(PreparedRequest& p) const;
  // A fresh engine constraint running `grammar` (null: none); the vocabulary index is built on first use.
  std::shared_ptr<runtime::TokenConstraint> constraint(std::shared_ptr<const grammar::Grammar> grammar) const;

  runtime::Engine* engine_;
  std::shared_ptr<const text::Tokenizer> tokenizer_;
  std::shared_ptr<Authenticator> auth_;
  std::shared_ptr<UsageSink> usage_;
  ServiceOptions options_;
  std::shared_ptr<RunningByKey> running_;
  std::shared_ptr<ResponseStore> responses_;
  mutable std::once_flag token_index_once_;
  mutable std::shared_ptr<const grammar::TokenIndex> token_index_;
};

}  // namespace v4::api
