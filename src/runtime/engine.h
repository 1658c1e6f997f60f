#pragma once
// The serving runtime's interface, as the API layer uses it. One Engine owns the model, the
// scheduler thread (continuous batching, chunked prefill), the sequence states and the prefix cache.
// Requests arrive as token ids; results leave as tokens plus stop-string-safe UTF-8 text deltas.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "runtime/token_constraint.h"

namespace v4::runtime {

struct SamplingParams {
  double temperature = 0.7;
  double top_p = 0.9;
  int top_k = 0;                      // 0 = off
  double min_p = 0;                   // drop tokens below min_p x the most likely one's probability
  double frequency_penalty = 0;       // logit -= frequency_penalty x times generated so far
  double presence_penalty = 0;        // logit -= presence_penalty once generated
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token, added to its logit)
  std::optional<uint64_t> seed;       // reproducible sampling when set
  int max_tokens = 4096;              // generated tokens, reasoning included
  int top_logprobs = -1;              // -1: no logprobs; 0..20: chosen token's logprob + N alternatives
  std::vector<std::string> stop;      // up to kMaxStopStrings of kMaxStopBytes each, matched on the answer text across tokens (not on reasoning)
  bool thinking = false;              // prompt ended with <think>: output starts in reasoning
  int thinking_budget = 32768;        // reasoning tokens before </think> is forced
};

// Limits on a request's parameters. The API validates against these same values and this same
// check (check_sampling_params), so a request the API accepted is never refused by the engine.
inline constexpr int kMaxStopStrings = 4;
inline constexpr size_t kMaxStopBytes = 256;  // a stop string is matched at every token: keep it short

// A parameter outside the engine's limits; `field` names it as the API's request does.
struct InvalidParameter : std::invalid_argument {
  InvalidParameter(std::string field_name, const std::string& message)
      : std::invalid_argument(message), field(std::move(field_name)) {}
  std::string field;
};
// Throws InvalidParameter for max_tokens < 1, temperature < 0, top_p outside (0, 1], top_k < 0,
// top_logprobs outside [-1, 20], more than kMaxStopStrings stop strings or one longer than
// kMaxStopBytes, thinking_budget < 0.
void check_sampling_params(const SamplingParams& params);

struct GenerationRequest {
  std::string id;
  std::vector<int32_t> prompt;
  SamplingParams params;
  int priority = 0;
  // Fair sharing: one tenant (an API key or account) holds at most
  // EngineOptions::max_running_per_tenant running slots, and a free slot goes to the waiting tenant
  // with the fewest running. Empty: internal work, not capped.
  std::string tenant;
  // Prefix-cache namespace: a cached prefix is only found by requests with the same salt. Empty:
  // the shared namespace (the operator's choice, e.g. a deployment-wide system prompt).
  std::string cache_salt;
  // Structured output / forced tool calls: the answer's tokens are sampled from those it allows
  // (the reasoning is free). Not shared between requests: it keeps the request's parse state.
  std::shared_ptr<TokenConstraint> constraint;
};

struct TokenLogprob {
  int32_t token;
  float logprob;
};

struct GeneratedToken {
  int32_t token = -1;
  std::string text;                  // new text safe to show (complete UTF-8, stop strings withheld)
  bool reasoning = false;            // produced while in the reasoning section
  std::optional<TokenLogprob> logprob;
  std::vector<TokenLogprob> top;     // top_logprobs alternatives
};

enum class FinishReason { Stop, Length, StopString, Cancelled, Error };

struct FinishInfo {
  FinishReason reason = FinishReason::Stop;
  std::string matched_stop;          // for StopString
  std::string error;                 // for Error
  std::string tail_text;             // text withheld for a stop-string candidate that turned out not to be one
  int prompt_tokens = 0;
  int cached_prompt_tokens = 0;      // served from the prefix cache (billed as cache reads)
  int completion_tokens = 0;
  int reasoning_tokens = 0;
  double queue_seconds = 0, ttft_seconds = 0, total_seconds = 0;
};

struct RequestCallbacks {
  // All are called on the engine's thread; they must not block.
  std::function<void(const GeneratedToken&)> on_token;
  std::function<void(const FinishInfo&)> on_finish;  // exactly once per accepted request
  // Optional: the request left the queue and its prefix-cache lookup is done (before its prefill),
  // so a stream can report cached tokens in its first event (Anthropic's message_start).
  std::function<void(int cached_prompt_tokens)> on_admitted;
};

// Admission control refused the request (queue or memory full); the API maps it to 429/503/529.
struct OverloadedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class RequestHandle {
 public:
  virtual ~RequestHandle() = default;
  virtual void cancel() = 0;  // safe from any thread, any time; on_finish(Cancelled) follows
};

struct EngineMetrics {
  int64_t running = 0, waiting = 0;
  int64_t prompt_tokens_total = 0, generation_tokens_total = 0;
  // Prompt tokens the model ran (prefill work): the rest came from the prefix cache, or from the
  // prefill a request's other choices share (Engine::submit_choices).
  int64_t prompt_tokens_computed_total = 0;
  // In tokens, as vLLM counts them: prompt tokens looked up / prompt tokens served from the cache.
  int64_t prefix_cache_queries_total = 0, prefix_cache_hits_total = 0;
  int64_t state_bytes = 0;               // sequence states of running requests (0 when idle)
  int64_t prefix_cache_bytes = 0;        // snapshots held by the prefix cache
  int64_t prefix_cache_entries = 0;
  int64_t requests_finished_total = 0;
  int64_t steps_total = 0;               // scheduler steps (model forward calls)
  int64_t max_batch_sequences = 0;       // most sequences seen in one forward call
  // The prefix cache's disk tier (zero without --cache-dir); its latency histograms are in
  // prometheus_text().
  int64_t disk_cache_hits_total = 0, disk_cache_hit_tokens_total = 0;
  int64_t disk_cache_bytes = 0, disk_cache_entries = 0;
  int64_t disk_cache_evictions_total = 0, disk_cache_corrupt_total = 0;
  int64_t disk_cache_writes_pending = 0;  // snapshots queued or being written
  // Speculative decoding (EngineOptions::speculative_tokens), as vLLM counts it: verify steps of a
  // sequence (drafts), draft tokens they checked, drafts accepted, and tokens they emitted
  // (accepted drafts plus the token each step picks itself).
  int64_t spec_drafts_total = 0, spec_draft_tokens_total = 0, spec_accepted_tokens_total = 0;
  int64_t spec_emitted_tokens_total = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual const core::ModelConfig& config() const = 0;
  // Throws OverloadedError when refused; otherwise callbacks fire as the request runs.
  virtual std::shared_ptr<RequestHandle> submit(GenerationRequest req, RequestCallbacks cb) = 0;
  // The n choices of one prompt (Chat Completions `n`): requests[i] is choice i, with its own
  // sampling (seed) and constraint, and all share the prompt, cache salt, tenant and priority
  // (std::invalid_argument otherwise). The prompt is prefilled once, by choice 0: when its last
  // chunk has run, each other choice starts from a copy of that state and picks its first token
  // from the same logits row, so a choice's tokens are those it would make alone. They are admitted
  // together; callbacks[i] hears of choice i, and every choice's FinishInfo reports the one prompt
  // (its tokens and cached tokens alike); the handle cancels them all. Throws like submit().
  // This default runs them as separate requests, each prefilling the prompt; create_engine's
  // engine shares the prefill.
  virtual std::shared_ptr<RequestHandle> submit_choices(std::vector<GenerationRequest> requests,
                                                         std::vector<RequestCallbacks> callbacks);
  virtual EngineMetrics metrics() const = 0;
  // Prometheus text for GET /metrics (the v4flash: names of the runtime issue).
  virtual std::string prometheus_text() const = 0;
  // Stop accepting, finish or cancel what runs, join the scheduler thread.
  virtual void shutdown() = 0;
};

}  // namespace v4::runtime

namespace v4::model { class Model; }
namespace v4::text { class Tokenizer; }

namespace v4::runtime {

// What the engine needs of a tokenizer to produce text and match stop strings. create_engine wraps
// a text::Tokenizer in one (special tokens give no text except <think>, </think> and ｜DSML｜, as
// text::IncrementalDetokenizer does); tests may pass their own.
class TokenVocabulary {
 public:
  virtual ~TokenVocabulary() = default;
  virtual bool is_valid(int32_t id) const = 0;
  // The bytes the token adds to the text (may be part of a UTF-8 character; empty for a
  // special token that shows no text).
  virtual std::string token_text_bytes(int32_t id) const = 0;
  virtual std::optional<int32_t> token_id(const std::string& token) const = 0;
};
std::shared_ptr<const TokenVocabulary> vocabulary_from_tokenizer(std::shared_ptr<const text::Tokenizer> tokenizer);

struct EngineOptions {
  int max_running = 0;                  // sequences decoded together; 0 = default_max_running()
  int max_running_per_tenant = 0;       // running slots one tenant may hold; 0 = 3/4 of max_running (>= 1)
  int max_waiting = 256;                // queued requests before OverloadedError
  // New tokens per step: the running decodes, then prefill chunks of whole prefix blocks up to the
  // rest (a prompt's first chunk may exceed it by one block).
  int step_token_budget = 2048;
  int64_t state_memory_budget = int64_t(8) << 30;   // bytes for running sequence states
  int64_t prefix_cache_budget = int64_t(2) << 30;   // bytes for cached prefix snapshots
  int threads = 0;                      // threads sampling a step's sequences (0 = hardware concurrency)
  // Token ids -> text. Without one (both null), text deltas are empty, stop strings are refused
  // (std::invalid_argument) and the thinking budget cannot force </think>.
  std::shared_ptr<const text::Tokenizer> tokenizer;
  std::shared_ptr<const TokenVocabulary> vocabulary;  // used instead of `tokenizer` when set
  // Prefill chunks end at multiples of this many positions and prefix-cache snapshots are taken
  // there, so a sequence is always fed in the same chunks (with or without a cache hit, alone or
  // in a batch) and its results are bitwise reproducible.
  int prefix_block_tokens = 128;
  // Bytes of state per context token reserved at admission (for prompt + max_tokens, checked
  // against state_memory_budget); 0 = the architecture's formula (runtime/state_memory.h).
  int64_t state_bytes_per_token = 0;
  // The prefix cache's disk tier (runtime/disk_cache.h): snapshots under cache_dir, at most
  // cache_disk_bytes of them, written off the decode path and read back when they hold a longer
  // prefix than memory. Empty cache_dir: off. cache_identity (runtime/cache_identity.h: checkpoint,
  // build, numeric mode) is required with a directory; snapshots of another identity are never read.
  std::string cache_dir;
  int64_t cache_disk_bytes = int64_t(64) << 30;
  std::string cache_identity;
  // Speculative decoding with the model's MTP block (runtime/speculative.h): after each step a
  // decoding sequence drafts this many tokens (the first from the MTP block on the main model's
  // streams, the others on its own) and its next step verifies them as extra rows of the batch,
  // keeping the accepted ones and rolling the rest back. 0: off. Greedy output is bit for bit the
  // output without it; sampled output has the same distribution. Needs a model loaded with
  // ModelOptions::enable_mtp; at most kMaxSpeculativeTokens.
  int speculative_tokens = 0;
  // Benchmarks only (`v4flash bench decode --force-accept`): every draft is accepted, so random
  // weights (which accept nothing) still show what verify steps cost. The output is not the model's.
  bool force_accept = false;
};
inline constexpr int kMaxSpeculativeTokens = 8;

// The default batch size: as many sequences as state_memory_budget holds at a context of
// kDefaultContextForSizing tokens each (runtime/state_memory.h), between 16 and 256. A decode step
// reads the weights once for the whole batch, so on CPU the batch is bounded by memory, not by the
// weight reads; past 256 a step's own compute makes every stream slower than the reads saved.
inline constexpr int64_t kDefaultContextForSizing = 8192;
int default_max_running(const core::ModelConfig& config, bool packed_state, const EngineOptions& opts);

// Starts the scheduler thread on a loaded model. submit() throws OverloadedError (queue/memory
// full, shutting down) or std::invalid_argument (empty prompt, id out of vocabulary, prompt beyond
// the context, more than 4 stop strings, top_logprobs > 20, stop strings without a tokenizer).
// max_tokens is clamped to what the context leaves after the prompt.
// Generated tokens: the EOS token ends the request (FinishReason::Stop) without an on_token call
// but counts in completion_tokens; the token that completes a stop string is delivered (its text
// cut before the stop) and the request ends with StopString. With params.thinking, once
// thinking_budget reasoning tokens were generated the next token is forced to </think> (itself
// counted as a reasoning token, marked reasoning).
std::unique_ptr<Engine> create_engine(std::shared_ptr<model::Model> model, const EngineOptions& opts);

}  // namespace v4::runtime
