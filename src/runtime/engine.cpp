// The engine: one scheduler thread runs steps; each step feeds the model one batch made of every
// running sequence's decode token plus prefill chunks, then samples and delivers tokens.
//
// Reproducibility rule: a sequence's model inputs never depend on other requests. Prefill chunks
// always end at multiples of prefix_block_tokens (absolute positions), decode feeds one token per
// step, sampling uses the request's own random stream, and the model contract makes each item's
// logits independent of the rest of the batch. So a request gets the same tokens and logprobs
// alone, beside others, and resumed from a prefix-cache snapshot (which is taken at a chunk end).
//
// Speculative decoding (EngineOptions::speculative_tokens) keeps the rule: a sequence's drafts come
// from its own MTP state and random stream, its verify rows are its own rows of the batch, and the
// rows it keeps are the rows one token per step would have given (the model computes every row in
// the same order whatever the chunking), so greedy output is bit for bit the plain output.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <random>
#include <thread>

#include <spdlog/spdlog.h>

#include "kernels/thread_pool.h"
#include "model/model.h"
#include "runtime/disk_cache.h"
#include "runtime/engine.h"
#include "runtime/metrics.h"
#include "runtime/prefix_cache.h"
#include "runtime/sampler.h"
#include "runtime/speculative.h"
#include "runtime/state_memory.h"
#include "runtime/text_stream.h"
#include "text/tokenizer.h"

namespace v4::runtime {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Shared by the engine and its handles, which may outlive it.
struct Wakeup {
  std::mutex mutex;
  std::condition_variable cv;
  bool cancel_pending = false;
};

class Handle final : public RequestHandle {
 public:
  explicit Handle(std::shared_ptr<Wakeup> wakeup) : wakeup_(std::move(wakeup)) {}
  void cancel() override {
    cancelled_.store(true);
    {
      std::lock_guard lock(wakeup_->mutex);
      wakeup_->cancel_pending = true;
    }
    wakeup_->cv.notify_all();
  }
  bool cancelled() const { return cancelled_.load(); }

 private:
  std::shared_ptr<Wakeup> wakeup_;
  std::atomic<bool> cancelled_{false};
};

class TokenizerVocabulary final : public TokenVocabulary {
 public:
  explicit TokenizerVocabulary(std::shared_ptr<const text::Tokenizer> tokenizer)
      : tokenizer_(std::move(tokenizer)) {
    for (const char* marker : {"<think>", "</think>", "｜DSML｜"})
      if (auto id = tokenizer_->token_id(marker)) pass_through_.push_back(*id);
  }
  bool is_valid(int32_t id) const override { return tokenizer_->is_valid(id); }
  std::string token_text_bytes(int32_t id) const override {
    if (!tokenizer_->is_valid(id)) return {};
    if (tokenizer_->is_special(id) &&
        std::find(pass_through_.begin(), pass_through_.end(), id) == pass_through_.end())
      return {};
    return tokenizer_->token_bytes(id);
  }
  std::optional<int32_t> token_id(const std::string& token) const override {
    return tokenizer_->token_id(token);
  }

 private:
  std::shared_ptr<const text::Tokenizer> tokenizer_;
  std::vector<int32_t> pass_through_;
};

struct Sequence {
  GenerationRequest request;
  RequestCallbacks callbacks;
  std::shared_ptr<Handle> handle;
  uint64_t arrival = 0;
  Clock::time_point submitted, admitted, last_token;
  bool first_token_sent = false;
  double first_token_seconds = 0;
  bool done = false;

  std::unique_ptr<model::SequenceState> state;
  int64_t prompt_done = 0;  // prompt tokens the state has consumed
  int cached_tokens = 0;
  int64_t reserved_bytes = 0;
  int32_t next_input = -1;  // the last generated token, fed at the next step

  int generated = 0, reasoning = 0;
  bool in_reasoning = false;
  StopTextStream reasoning_text;  // the reasoning section: complete UTF-8 only, no stop strings
  StopTextStream text;            // the answer: stop strings apply here
  RequestRng rng{0};
  std::vector<int32_t> output;    // generated tokens (the sampler's penalties count them)
  std::vector<uint64_t> allowed;  // the constraint's last answer
  std::vector<float> masked;      // the logits row with the constraint applied

  // Speculative decoding: whether this sequence drafts (its state's MTP block has seen every
  // position), the drafts its next step verifies, that step's input (next_input, then the drafts)
  // and the tokens that follow the rows of its last forward (what the MTP block sees with them).
  bool speculate = false;
  std::vector<Draft> drafts;
  std::vector<int32_t> step_tokens;
  std::vector<int32_t> mtp_next;

  // The other choices of a request with several (Engine::submit_choices), on its choice 0: carried
  // until it is admitted (`followers`), then pointed at in running_ while they wait, with no state
  // of their own (`awaiting_fork`), for its last prompt chunk (`forks`).
  std::vector<std::unique_ptr<Sequence>> followers;
  std::vector<Sequence*> forks;
  bool awaiting_fork = false;

  size_t group_size() const { return 1 + followers.size(); }
  bool prefilling() const { return prompt_done < int64_t(request.prompt.size()); }
};

class EngineImpl final : public Engine {
 public:
  EngineImpl(std::shared_ptr<model::Model> model, const EngineOptions& options)
      : model_(std::move(model)),
        options_(options),
        config_(model_->config()),
        cache_(options.prefix_block_tokens > 0 ? options.prefix_block_tokens : 128,
               std::max<int64_t>(0, options.prefix_cache_budget)),
        wakeup_(std::make_shared<Wakeup>()),
        ttft_(ttft_buckets()),
        inter_token_(inter_token_buckets()),
        e2e_(request_latency_buckets()),
        queue_time_(request_latency_buckets()) {
    if (options_.max_running < 1) options_.max_running = default_max_running(config_, model_->packed_state(), options_);
    if (options_.step_token_budget < 1) options_.step_token_budget = 1;
    per_tenant_cap_ = options_.max_running_per_tenant > 0 ? options_.max_running_per_tenant
                                                          : std::max(1, options_.max_running * 3 / 4);
    block_ = cache_.block_tokens();
    vocabulary_ = options_.vocabulary;
    if (!vocabulary_ && options_.tokenizer) vocabulary_ = vocabulary_from_tokenizer(options_.tokenizer);
    if (vocabulary_) think_end_ = vocabulary_->token_id("</think>").value_or(-1);
    if (vocabulary_)
      for (int32_t id = 0; id < config_.vocab_size; ++id)
        if (!vocabulary_->is_valid(id)) no_token_ids_.push_back(id);
    base_state_bytes_ = int64_t(model_->new_state()->bytes());
    if (options_.speculative_tokens < 0 || options_.speculative_tokens > kMaxSpeculativeTokens)
      throw std::invalid_argument("speculative tokens must be between 0 and " + std::to_string(kMaxSpeculativeTokens));
    if (options_.speculative_tokens > 0 && model_->mtp_resume_position(*model_->new_state()) < 0)
      throw std::invalid_argument("speculative decoding needs the model's MTP block (a checkpoint with one, loaded with "
                                  "ModelOptions::enable_mtp)");
    state_memory_ = state_memory(config_, model_->packed_state());
    if (!options_.cache_dir.empty()) {
      if (options_.cache_identity.empty()) throw std::invalid_argument("a cache directory needs a cache identity");
      disk_ = std::make_unique<DiskCache>(
          DiskCacheOptions{options_.cache_dir, options_.cache_identity, block_, options_.cache_disk_bytes},
          model_->new_state());
    }
    const int threads = options_.threads > 0 ? options_.threads : int(std::thread::hardware_concurrency());
    sampling_pool_ = std::make_unique<kernels::ThreadPool>(std::max(1, threads));
    thread_ = std::thread([this] { run(); });
  }

  ~EngineImpl() override { shutdown(); }

  const core::ModelConfig& config() const override { return config_; }

  std::shared_ptr<RequestHandle> submit(GenerationRequest request, RequestCallbacks callbacks) override {
    validate(request);
    auto seq = make_sequence(std::move(request), std::move(callbacks), std::make_shared<Handle>(wakeup_));
    if (seq->reserved_bytes > options_.state_memory_budget) throw too_big(seq->reserved_bytes);
    auto handle = seq->handle;
    queue(std::move(seq));
    return handle;
  }

  // Choice 0 waits for admission carrying the others; they share its handle (a cancel stops all).
  std::shared_ptr<RequestHandle> submit_choices(std::vector<GenerationRequest> requests,
                                                std::vector<RequestCallbacks> callbacks) override {
    if (requests.empty() || requests.size() != callbacks.size())
      throw std::invalid_argument("submit_choices needs one callback set per request, and at least one request");
    for (const auto& r : requests) {
      validate(r);
      const auto& first = requests.front();
      if (r.prompt != first.prompt || r.cache_salt != first.cache_salt || r.tenant != first.tenant ||
          r.priority != first.priority)
        throw std::invalid_argument("the choices of one request must share its prompt, cache salt, tenant and priority");
    }
    auto handle = std::make_shared<Handle>(wakeup_);
    std::unique_ptr<Sequence> leader;
    int64_t reserved = 0;
    for (size_t i = 0; i < requests.size(); ++i) {
      auto seq = make_sequence(std::move(requests[i]), std::move(callbacks[i]), handle);
      reserved += seq->reserved_bytes;
      if (!leader) leader = std::move(seq);
      else leader->followers.push_back(std::move(seq));
    }
    if (reserved > options_.state_memory_budget) throw too_big(reserved);
    queue(std::move(leader));
    return handle;
  }

  EngineMetrics metrics() const override {
    std::lock_guard lock(stats_mutex_);
    EngineMetrics m = stats_;
    m.waiting = queued_.load();
    if (disk_) {  // the writer thread changes these between steps
      const DiskCacheStats d = disk_->stats();
      m.disk_cache_hits_total = d.hits;
      m.disk_cache_hit_tokens_total = d.hit_tokens;
      m.disk_cache_bytes = d.bytes;
      m.disk_cache_entries = d.entries;
      m.disk_cache_evictions_total = d.evictions;
      m.disk_cache_corrupt_total = d.corrupt;
      m.disk_cache_writes_pending = d.pending_writes;
    }
    return m;
  }

  std::string prometheus_text() const override {
    std::lock_guard lock(stats_mutex_);
    std::string out;
    const std::string p = "v4flash:";
    write_metric(out, p + "num_requests_running", "gauge", "Requests in the running batch.", double(stats_.running));
    write_metric(out, p + "num_requests_waiting", "gauge", "Requests waiting to be scheduled.", double(queued_.load()));
    write_metric(out, p + "prompt_tokens_total", "counter", "Prompt tokens of admitted requests.",
                 double(stats_.prompt_tokens_total));
    write_metric(out, p + "prompt_tokens_computed_total", "counter",
                 "Prompt tokens the model ran (the rest came from the prefix cache or a shared prefill).",
                 double(stats_.prompt_tokens_computed_total));
    write_metric(out, p + "generation_tokens_total", "counter", "Generated tokens.",
                 double(stats_.generation_tokens_total));
    write_metric(out, p + "prefix_cache_queries_total", "counter", "Prompt tokens looked up in the prefix cache.",
                 double(stats_.prefix_cache_queries_total));
    write_metric(out, p + "prefix_cache_hits_total", "counter", "Prompt tokens served from the prefix cache.",
                 double(stats_.prefix_cache_hits_total));
    write_metric(out, p + "state_memory_bytes", "gauge", "Bytes of sequence state held by running requests.",
                 double(stats_.state_bytes));
    write_metric(out, p + "prefix_cache_memory_bytes", "gauge", "Bytes held by prefix-cache snapshots.",
                 double(stats_.prefix_cache_bytes));
    write_metric(out, p + "requests_finished_total", "counter", "Requests finished (any reason).",
                 double(stats_.requests_finished_total));
    write_metric(out, p + "engine_steps_total", "counter", "Scheduler steps (model forward calls).",
                 double(stats_.steps_total));
    write_metric(out, p + "engine_forward_seconds_total", "counter", "Time in the model's forward calls.",
                 step_time_.forward);
    write_metric(out, p + "engine_sampling_seconds_total", "counter", "Time sampling the steps' tokens (all threads' wall).",
                 step_time_.sampling);
    write_metric(out, p + "engine_delivery_seconds_total", "counter", "Time delivering tokens (text, stop strings, callbacks).",
                 step_time_.delivery);
    if (options_.speculative_tokens > 0) write_speculative_metrics(out);
    ttft_.write(out, p + "time_to_first_token_seconds", "Time from arrival to the first generated token.");
    inter_token_.write(out, p + "inter_token_latency_seconds", "Time between consecutive generated tokens.");
    e2e_.write(out, p + "e2e_request_latency_seconds", "Time from arrival to finish.");
    queue_time_.write(out, p + "request_queue_time_seconds", "Time from arrival to admission into the batch.");
    if (disk_) disk_->write_metrics(out, p);
    return out;
  }

  void shutdown() override {
    {
      std::lock_guard lock(wakeup_->mutex);
      stopping_ = true;
    }
    wakeup_->cv.notify_all();
    std::lock_guard join_lock(join_mutex_);
    // From a callback (the engine's own thread) the loop ends after this step; it cannot join itself.
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
    if (disk_) disk_->flush();  // queued snapshots reach the disk before the process may exit
  }

 private:
  // What a sequence of `tokens` context tokens holds, from the architecture (state_memory.h), or
  // from the configured per-token figure.
  int64_t projected_bytes(int64_t tokens) const {
    if (options_.state_bytes_per_token > 0)
      return std::max(base_state_bytes_, state_memory_.fixed_bytes) + options_.state_bytes_per_token * tokens;
    return std::max(base_state_bytes_, state_memory_.fixed_bytes) +
           (state_memory_.bytes_at(config_, tokens) - state_memory_.fixed_bytes);
  }

  std::unique_ptr<Sequence> make_sequence(GenerationRequest request, RequestCallbacks callbacks,
                                          std::shared_ptr<Handle> handle) const {
    auto seq = std::make_unique<Sequence>();
    auto& params = request.params;
    // Never generate past the context.
    params.max_tokens = int(std::min<int64_t>(params.max_tokens,
                                              config_.max_position_embeddings - int64_t(request.prompt.size())));
    seq->reserved_bytes = projected_bytes(int64_t(request.prompt.size()) + params.max_tokens);
    seq->rng = RequestRng(params.seed ? *params.seed : std::random_device{}() * 0x100000001ull ^ std::random_device{}());
    seq->text = StopTextStream(params.stop);
    seq->in_reasoning = params.thinking;
    seq->request = std::move(request);
    seq->callbacks = std::move(callbacks);
    seq->handle = std::move(handle);
    seq->submitted = Clock::now();
    return seq;
  }

  OverloadedError too_big(int64_t reserved) const {
    return OverloadedError("request needs " + std::to_string(reserved >> 20) +
                           " MiB of sequence state (prompt + max_tokens), more than the engine's budget of " +
                           std::to_string(options_.state_memory_budget >> 20) + " MiB");
  }

  void queue(std::unique_ptr<Sequence> seq) {
    {
      std::lock_guard lock(wakeup_->mutex);
      if (stopping_) throw OverloadedError("engine is shutting down");
      if (queued_.load() >= options_.max_waiting) throw OverloadedError("request queue is full");
      seq->arrival = next_arrival_++;
      incoming_.push_back(std::move(seq));
      queued_++;
    }
    wakeup_->cv.notify_all();
  }

  void validate(const GenerationRequest& request) const {
    const auto& p = request.params;
    if (request.prompt.empty()) throw std::invalid_argument("prompt is empty");
    if (int64_t(request.prompt.size()) >= config_.max_position_embeddings)
      throw std::invalid_argument("prompt of " + std::to_string(request.prompt.size()) +
                                  " tokens leaves no room in the context of " +
                                  std::to_string(config_.max_position_embeddings));
    for (int32_t t : request.prompt)
      if (t < 0 || t >= config_.vocab_size)
        throw std::invalid_argument("prompt token id " + std::to_string(t) + " is outside the vocabulary");
    check_sampling_params(p);
    for (const auto& entry : p.logit_bias) {
      if (entry.first < 0 || entry.first >= config_.vocab_size)
        throw InvalidParameter("logit_bias", "logit_bias token id " + std::to_string(entry.first) + " is outside the vocabulary");
      if (std::binary_search(no_token_ids_.begin(), no_token_ids_.end(), entry.first))
        throw InvalidParameter("logit_bias", "logit_bias token id " + std::to_string(entry.first) +
                                                 " is a padding row of the vocabulary with no token (never sampled)");
    }
    if (!vocabulary_)
      for (const auto& s : p.stop)
        if (!s.empty()) throw std::invalid_argument("stop strings need the engine to have a tokenizer");
  }

  void write_speculative_metrics(std::string& out) const {
    const std::string p = "v4flash:";
    const EngineMetrics& m = stats_;
    write_metric(out, p + "engine_draft_seconds_total", "counter", "Time in the MTP block and drawing drafts.",
                 step_time_.draft);
    write_metric(out, p + "spec_decode_num_drafts_total", "counter", "Verify steps of a sequence (speculative decoding).",
                 double(m.spec_drafts_total));
    write_metric(out, p + "spec_decode_num_draft_tokens_total", "counter", "Draft tokens verified.",
                 double(m.spec_draft_tokens_total));
    write_metric(out, p + "spec_decode_num_accepted_tokens_total", "counter", "Draft tokens accepted.",
                 double(m.spec_accepted_tokens_total));
    write_metric(out, p + "spec_decode_num_emitted_tokens_total", "counter",
                 "Tokens emitted by verify steps (accepted drafts plus one per step).", double(m.spec_emitted_tokens_total));
    write_metric(out, p + "spec_decode_acceptance_rate", "gauge", "Accepted / verified draft tokens since the start.",
                 m.spec_draft_tokens_total ? double(m.spec_accepted_tokens_total) / double(m.spec_draft_tokens_total) : 0.0);
    write_metric(out, p + "spec_decode_tokens_per_step", "gauge",
                 "Tokens a verify step emitted per sequence, on average since the start.",
                 m.spec_drafts_total ? double(m.spec_emitted_tokens_total) / double(m.spec_drafts_total) : 0.0);
  }

  // ---- scheduler thread ----

  void run() {
    for (;;) {
      bool stop_now = false;
      {
        std::unique_lock lock(wakeup_->mutex);
        wakeup_->cv.wait(lock, [&] {
          return stopping_ || wakeup_->cancel_pending || !incoming_.empty() || !running_.empty() ||
                 !waiting_.empty();
        });
        wakeup_->cancel_pending = false;
        while (!incoming_.empty()) {
          enqueue(std::move(incoming_.front()));
          incoming_.pop_front();
        }
        stop_now = stopping_;
      }
      if (stop_now) {
        for (auto& s : running_) finish(*s, FinishReason::Cancelled);
        for (auto& s : waiting_) finish(*s, FinishReason::Cancelled);
        running_.clear();
        waiting_.clear();
        publish();
        return;
      }
      reap_cancelled();
      admit();
      if (!running_.empty()) step();
      publish();
    }
  }

  // Waiting order: higher priority first, then arrival.
  void enqueue(std::unique_ptr<Sequence> seq) {
    auto pos = std::upper_bound(waiting_.begin(), waiting_.end(), seq, [](const auto& a, const auto& b) {
      if (a->request.priority != b->request.priority) return a->request.priority > b->request.priority;
      return a->arrival < b->arrival;
    });
    waiting_.insert(pos, std::move(seq));
  }

  void reap_cancelled() {
    for (auto& s : waiting_)
      if (s->handle->cancelled()) finish(*s, FinishReason::Cancelled);
    for (auto& s : running_)
      if (s->handle->cancelled()) finish(*s, FinishReason::Cancelled);
    remove_done();
  }

  void remove_done() {
    auto gone = [](const std::unique_ptr<Sequence>& s) { return s->done; };
    size_t before = waiting_.size();
    std::erase_if(waiting_, gone);
    queued_ -= int64_t(before - waiting_.size());
    std::erase_if(running_, gone);
  }

  int64_t running_state_bytes() const {
    int64_t total = 0;
    for (const auto& s : running_)
      if (s->state) total += int64_t(s->state->bytes());
    return total;
  }

  int running_of(const std::string& tenant) const {
    return int(std::count_if(running_.begin(), running_.end(),
                             [&](const auto& r) { return !r->done && r->request.tenant == tenant; }));
  }

  // The next waiting sequence to run: highest priority first; within it the tenant with the fewest
  // running sequences (so one tenant's backlog cannot hold every slot), then arrival. Tenants at
  // their cap wait (a request with several choices takes its slots at once, or all of its tenant's
  // when it has more choices than the cap). Returns waiting_.size() when none may start.
  size_t next_waiting() const {
    size_t best = waiting_.size();
    int best_running = 0;
    for (size_t i = 0; i < waiting_.size(); ++i) {
      const auto& req = waiting_[i]->request;
      if (best < waiting_.size() && req.priority < waiting_[best]->request.priority) break;  // sorted by priority
      const int running = req.tenant.empty() ? 0 : running_of(req.tenant);
      if (!req.tenant.empty() && running > 0 && running + int(waiting_[i]->group_size()) > per_tenant_cap_) continue;
      if (best == waiting_.size() || running < best_running) best = i, best_running = running;
    }
    return best;
  }

  void admit() {
    while (!waiting_.empty() && int(running_.size()) < options_.max_running) {
      const size_t next = next_waiting();
      if (next == waiting_.size()) break;
      Sequence& s = *waiting_[next];
      if (!running_.empty()) {
        // A request's choices start together: room for all of them (an idle engine takes any).
        if (running_.size() + s.group_size() > size_t(options_.max_running)) break;
        int64_t reserved = 0;
        for (const auto& r : running_) reserved += r->reserved_bytes;
        for (const auto& f : s.followers) reserved += f->reserved_bytes;
        if (reserved + s.reserved_bytes > options_.state_memory_budget) break;
        if (running_state_bytes() + base_state_bytes_ > options_.state_memory_budget) break;
      }
      std::unique_ptr<Sequence> seq = std::move(waiting_[next]);
      waiting_.erase(waiting_.begin() + std::ptrdiff_t(next));
      queued_--;
      start(std::move(seq));
    }
  }

  void start(std::unique_ptr<Sequence> seq) {
    Sequence& s = *seq;
    s.admitted = Clock::now();
    const auto& prompt = s.request.prompt;
    PrefixCache::Hit hit;
    // At least the last prompt token is always run: its logits give the first generated token.
    const std::string& salt = s.request.cache_salt;
    if (cache_.entries() > 0) hit = cache_.lookup(prompt, int64_t(prompt.size()) - 1, salt);
    // The disk tier is keyed by tokens alone: only the shared namespace uses it, so a tenant's
    // prompts never cross to another tenant through it.
    if (disk_ && salt.empty()) take_disk_hit(prompt, hit);
    try {
      s.state = hit.state ? std::move(hit.state) : model_->new_state();
    } catch (const std::exception& e) {
      finish(s, FinishReason::Error, e.what());
      return;
    }
    s.prompt_done = hit.tokens;
    s.cached_tokens = int(hit.tokens);
    if (s.callbacks.on_admitted) {
      try {
        s.callbacks.on_admitted(s.cached_tokens);
      } catch (const std::exception& e) {
        finish(s, FinishReason::Error, std::string("on_admitted callback failed: ") + e.what());
        return;
      }
    }
    start_speculating(s);
    {
      std::lock_guard lock(stats_mutex_);
      stats_.prompt_tokens_total += int64_t(prompt.size());
      stats_.prefix_cache_queries_total += int64_t(prompt.size());
      stats_.prefix_cache_hits_total += hit.tokens;
      queue_time_.observe(seconds_between(s.submitted, s.admitted));
    }
    std::vector<std::unique_ptr<Sequence>> followers = std::move(s.followers);
    s.followers.clear();
    running_.push_back(std::move(seq));
    for (auto& f : followers) start_follower(s, std::move(f));
  }

  // Another choice of `leader`'s request: running, without a state until the leader's prompt has
  // run (fork_followers); its prompt is the leader's, cached tokens included.
  void start_follower(Sequence& leader, std::unique_ptr<Sequence> f) {
    f->admitted = leader.admitted;
    f->cached_tokens = leader.cached_tokens;
    f->awaiting_fork = true;
    if (f->callbacks.on_admitted) {
      try {
        f->callbacks.on_admitted(f->cached_tokens);
      } catch (const std::exception& e) {
        finish(*f, FinishReason::Error, std::string("on_admitted callback failed: ") + e.what());
        return;
      }
    }
    leader.forks.push_back(f.get());
    running_.push_back(std::move(f));
  }

  // A sequence drafts when its state's MTP block can see every position; a snapshot taken at the
  // end of a prompt chunk may leave it that chunk's rows to see first (the prompt has their tokens).
  void start_speculating(Sequence& s) {
    if (options_.speculative_tokens <= 0) return;
    const int64_t resume = model_->mtp_resume_position(*s.state);
    s.speculate = resume >= 0;
    if (!s.speculate || resume == s.prompt_done) return;
    const model::MtpItem item{s.state.get(),
                              std::span<const int32_t>(s.request.prompt.data() + resume + 1, size_t(s.prompt_done - resume)),
                              false, false};
    run_mtp(std::span<const model::MtpItem>(&item, 1), {&s});
  }

  // The MTP block over `items` (of `seqs`); on a failure those sequences decode without drafts.
  std::vector<float> run_mtp(std::span<const model::MtpItem> items, const std::vector<Sequence*>& seqs) {
    if (items.empty()) return {};
    try {
      return model_->mtp_draft(items);
    } catch (const std::exception& e) {
      spdlog::warn("engine: the MTP block failed ({}); {} sequence(s) go on without speculative decoding", e.what(),
                   seqs.size());
      for (Sequence* s : seqs) {
        s->speculate = false;
        s->drafts.clear();
      }
      return {};
    }
  }

  // The longest prefix wins across the tiers: a longer one on disk replaces the memory hit and is
  // kept in memory too (the next request with this prefix, often right behind, reads no file).
  void take_disk_hit(const std::vector<int32_t>& prompt, PrefixCache::Hit& hit) {
    try {
      DiskCache::Hit d = disk_->lookup(prompt, int64_t(prompt.size()) - 1, hit.tokens);
      if (!d.state) return;
      hit.state = d.state->clone();
      hit.tokens = d.tokens;
      if (options_.prefix_cache_budget > 0) cache_.insert(std::span(prompt).first(size_t(d.tokens)), *d.state);
    } catch (const std::exception& e) {
      spdlog::warn("engine: disk cache lookup failed: {}", e.what());
    }
  }

  // Whether to keep a snapshot after `blocks` whole blocks of a prompt: the last boundary of the
  // prompt (continuations and repeats reuse it), the first 8 blocks, then ~8 per doubling of
  // length, so snapshots cost O(log n) copies per prompt.
  static bool worth_snapshot(int64_t blocks, bool last_boundary) {
    if (last_boundary || blocks <= 8) return true;
    int log2 = 63 - std::countl_zero(uint64_t(blocks));
    int64_t stride = int64_t(1) << std::max(0, log2 - 3);
    return blocks % stride == 0;
  }

  // Where this step's prefill chunk of `s` ends, given `budget` tokens: whole blocks up to the
  // budget (at least one), ending at a block multiple or the prompt's end. With a prefix cache, a
  // chunk also ends at the next boundary that gets a snapshot (maybe_snapshot: every block up to 8,
  // then about eight per doubling of the length, and the last boundary before the prompt's final
  // token), so the cache keeps the granularity it had with one-block chunks while a 16K-token prompt
  // takes ~40 steps instead of 128 (each step reads the weights once). The model computes every row
  // in the same order whatever the chunking, so the bits do not depend on it.
  int64_t prefill_chunk_end(const Sequence& s, int64_t budget) const {
    const int64_t prompt_len = int64_t(s.request.prompt.size());
    const int64_t start = s.prompt_done;
    const int64_t first = start / block_ + 1;  // blocks
    const int64_t limit = std::max(first, (start + budget) / block_);
    const int64_t last_boundary = (prompt_len - 1) / block_;
    const bool caching = options_.prefix_cache_budget > 0 || disk_ != nullptr;
    int64_t b = first;
    while (b < limit && b != last_boundary && !(caching && worth_snapshot(b, false))) ++b;
    return std::min(prompt_len, b * block_);
  }

  // One item of a step's batch.
  struct Planned {
    Sequence* seq;
    bool prefill = false;
    int64_t chunk_begin = 0, chunk_end = 0;  // the prompt positions a prefill chunk feeds
    size_t row = 0;                          // its first logits row
    size_t drafts = 0;                       // the drafts a decode verifies (one row each after the first)
    bool forked = false;                     // another choice's prefill: a copy of its state, its row
  };

  struct Pick {
    int32_t token = -1;
    bool reasoning = false;  // picked in the reasoning section
    std::optional<LogprobResult> logprobs;
  };

  // An item's tokens in order (accepted drafts, then the token it picked itself), or an error.
  struct ItemPicks {
    std::vector<Pick> picks;
    size_t accepted = 0;
    std::string error;
  };

  // The leader's prompt has run: each waiting choice starts from a copy of its state, and picks
  // its first token from the leader's last row (`p`, appended to this step's plan).
  void fork_followers(Sequence& leader, Planned p, std::vector<Planned>& planned) {
    for (Sequence* f : std::exchange(leader.forks, {})) {
      if (f->done) continue;
      try {
        f->state = leader.state->clone();
      } catch (const std::exception& e) {
        finish(*f, FinishReason::Error, e.what());
        continue;
      }
      f->awaiting_fork = false;
      f->prompt_done = leader.prompt_done;
      f->speculate = leader.speculate;
      p.seq = f;
      p.forked = true;
      planned.push_back(p);
    }
  }

  void step() {
    std::vector<model::BatchItem> items;
    std::vector<Planned> planned;
    const size_t rows = plan(items, planned);
    std::vector<float> logits;
    const auto t_forward = Clock::now();
    try {
      logits = model_->forward(items);
      if (logits.size() != rows * size_t(config_.vocab_size))
        throw std::runtime_error("model returned " + std::to_string(logits.size()) + " logits for " +
                                 std::to_string(rows) + " rows");
    } catch (const std::exception& e) {
      spdlog::error("engine: forward failed: {}", e.what());
      for (auto& p : planned) finish(*p.seq, FinishReason::Error, std::string("model forward failed: ") + e.what());
      remove_done();
      return;
    }
    mask_ids_without_token(logits);
    const auto t_prompt_mtp = Clock::now();
    {
      std::lock_guard lock(stats_mutex_);
      step_time_.forward += seconds_between(t_forward, t_prompt_mtp);
      stats_.steps_total++;
      stats_.max_batch_sequences = std::max<int64_t>(stats_.max_batch_sequences, int64_t(items.size()));
    }
    see_prompt_chunks(planned);  // before their snapshots are taken
    const auto t_sampling = Clock::now();

    std::vector<size_t> ready;  // items whose logits pick a token this step
    for (size_t i = 0; i < planned.size(); ++i) {  // forks of a finished prompt are appended to it
      Sequence& s = *planned[i].seq;
      if (planned[i].prefill && !planned[i].forked) {
        s.prompt_done = planned[i].chunk_end;
        maybe_snapshot(s);
        if (s.prefilling()) continue;
        if (!s.forks.empty()) fork_followers(s, planned[i], planned);
      }
      if (s.handle->cancelled()) {
        finish(s, FinishReason::Cancelled);
        continue;
      }
      ready.push_back(i);
    }
    // Sampling (and logprobs, and a verify step's rollback) touch only the sequence's own state, so
    // the sequences of a step are sampled in parallel; delivery (callbacks, text) stays on this
    // thread, in batch order.
    const auto t_pick = Clock::now();
    std::vector<ItemPicks> picks(ready.size());
    sampling_pool_->parallel_for(int64_t(ready.size()), [&](int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j) {
        const Planned& p = planned[ready[size_t(j)]];
        picks[size_t(j)] = pick_item(*p.seq, p, logits);
      }
    });
    const auto t_delivery = Clock::now();
    for (size_t j = 0; j < ready.size(); ++j) deliver_item(planned[ready[j]], picks[j]);
    const auto t_draft = Clock::now();
    if (options_.speculative_tokens > 0) draft_next(planned, ready, picks);
    {
      std::lock_guard lock(stats_mutex_);
      step_time_.sampling += seconds_between(t_pick, t_delivery);
      step_time_.delivery += seconds_between(t_delivery, t_draft);
      step_time_.draft += seconds_between(t_prompt_mtp, t_sampling) + seconds_between(t_draft, Clock::now());
    }
    remove_done();
  }

  // This step's batch: every running decode (its next input, then the drafts it verifies), then
  // prefill chunks. Returns the logits rows it asks for.
  size_t plan(std::vector<model::BatchItem>& items, std::vector<Planned>& planned) {
    int64_t budget = options_.step_token_budget;
    size_t rows = 0;
    // Running decodes first: a prefill never delays them by more than one chunk.
    for (auto& s : running_) {
      if (s->prefilling()) continue;
      // No draft is fed past the end of the context.
      const int64_t room = config_.max_position_embeddings - 1 - s->state->position();
      const size_t m = std::min(s->drafts.size(), size_t(std::max<int64_t>(0, room)));
      s->step_tokens.assign(1, s->next_input);
      for (size_t j = 0; j < m; ++j) s->step_tokens.push_back(s->drafts[j].token);
      model::BatchItem item{s->state.get(), s->step_tokens, m > 0};
      item.speculative = m > 0;
      items.push_back(item);
      planned.push_back({s.get(), false, 0, 0, rows, m});
      rows += 1 + m;
      budget -= int64_t(1 + m);
    }
    bool any_prefill = false;
    for (auto& s : running_) {
      if (!s->prefilling() || s->awaiting_fork) continue;
      const int64_t end = prefill_chunk_end(*s, budget);
      const int64_t n = end - s->prompt_done;
      if (any_prefill && n > budget) break;  // FCFS: later prompts wait for their turn
      items.push_back({s->state.get(),
                       std::span<const int32_t>(s->request.prompt.data() + s->prompt_done, size_t(n)), false});
      planned.push_back({s.get(), true, s->prompt_done, end, rows, 0});
      rows += 1;
      budget -= n;
      any_prefill = true;
      std::lock_guard lock(stats_mutex_);
      stats_.prompt_tokens_computed_total += n;
    }
    return rows;
  }

  // The tokens of one item: each draft's verdict until one is rejected, then (all accepted) the
  // token its last row picks; at most what max_tokens leaves, nothing after EOS. A verify step then
  // rolls back the rows of the rejected drafts.
  // The model's vocabulary is padded past the tokenizer's last id (V4-Flash: 129,280 rows for
  // ~128,800 tokens); those rows have no text. A trained model gives them next to no mass, random
  // weights do not: nothing samples them (-inf, like a grammar's mask) and logprobs are over the
  // tokens that exist, as vLLM does.
  void mask_ids_without_token(std::vector<float>& logits) const {
    if (no_token_ids_.empty()) return;
    const size_t vocab = size_t(config_.vocab_size);
    for (size_t row = 0; row * vocab < logits.size(); ++row)
      for (int32_t id : no_token_ids_) logits[row * vocab + size_t(id)] = -std::numeric_limits<float>::infinity();
  }

  ItemPicks pick_item(Sequence& s, const Planned& p, const std::vector<float>& logits) {
    ItemPicks out;
    const size_t vocab = size_t(config_.vocab_size);
    const int top = s.request.params.top_logprobs;
    const size_t room = size_t(std::max(1, s.request.params.max_tokens - s.generated));
    try {
      for (size_t i = 0; i <= p.drafts; ++i) {
        const std::span<const float> row(logits.data() + (p.row + i) * vocab, vocab);
        Pick pick;
        bool accepted = false;
        if (i < p.drafts) {
          const Verdict v = options_.force_accept ? Verdict{s.drafts[i].token, true} : verify(s, row, s.drafts[i]);
          pick.token = v.token;
          accepted = v.accepted;
        } else {
          pick.token = choose(s, row);
        }
        if (top >= 0) pick.logprobs = compute_logprobs(row, pick.token, top);
        const bool more = advance(s, pick);
        out.picks.push_back(std::move(pick));
        out.accepted += accepted;
        if (!accepted || !more || out.picks.size() >= room) break;
      }
      if (p.drafts > 0) model_->rollback(*s.state, int64_t(out.picks.size()));
    } catch (const std::exception& e) {
      out.error = std::string("sampling failed: ") + e.what();
    }
    return out;
  }

  void maybe_snapshot(Sequence& s) {
    if ((options_.prefix_cache_budget <= 0 && !disk_) || s.prompt_done % block_ != 0) return;
    const int64_t prompt_len = int64_t(s.request.prompt.size());
    // The prompt's last boundary (continuations reuse it) and the last one before its final token
    // (a repeat of the same prompt can reuse no more: that token must run for its logits).
    const bool last_boundary = s.prompt_done + block_ > prompt_len || s.prompt_done == (prompt_len - 1) / block_ * block_;
    if (!worth_snapshot(s.prompt_done / block_, last_boundary)) return;
    std::span<const int32_t> prefix(s.request.prompt.data(), size_t(s.prompt_done));
    try {
      if (options_.prefix_cache_budget > 0) cache_.insert(prefix, *s.state, s.request.cache_salt);
      // a clone here; the writer thread does the rest (shared namespace only: see start())
      if (disk_ && s.request.cache_salt.empty()) disk_->store(prefix, *s.state);
    } catch (const std::exception& e) {
      spdlog::warn("engine: prefix snapshot failed: {}", e.what());
    }
  }

  // What the sampler sees for the next token: the row (masked by the constraint in the answer), or
  // the token the thinking budget forces.
  struct Target {
    std::span<const float> row;
    int32_t forced = -1;
  };

  Target target(Sequence& s, std::span<const float> logits) {
    const auto& p = s.request.params;
    if (p.thinking && s.in_reasoning && think_end_ >= 0 && s.reasoning >= p.thinking_budget) return {logits, think_end_};
    if (!s.request.constraint || s.in_reasoning) return {logits};
    s.request.constraint->allowed(s.allowed, logits.size());
    s.masked.assign(logits.begin(), logits.end());
    constexpr float kMasked = -std::numeric_limits<float>::infinity();
    for (size_t w = 0; w * 64 < s.masked.size(); ++w) {
      const uint64_t keep = w < s.allowed.size() ? s.allowed[w] : 0;
      if (keep == ~uint64_t(0)) continue;  // inside a string most words allow every token
      const size_t end = std::min(s.masked.size(), w * 64 + 64);
      for (size_t t = w * 64; t < end; ++t)
        if (!((keep >> (t - w * 64)) & 1)) s.masked[t] = kMasked;
    }
    return {s.masked};
  }

  int32_t choose(Sequence& s, std::span<const float> logits) {
    const Target t = target(s, logits);
    // sample_token refuses a row with nothing finite: a constraint that allows nothing fails the request
    return t.forced >= 0 ? t.forced : sample_token(t.row, s.request.params, s.rng, s.output);
  }

  // A draft against the row choose() would sample from: a grammar's mask rejects every draft it
  // does not allow (p = 0), a forced token accepts only itself.
  Verdict verify(Sequence& s, std::span<const float> logits, const Draft& draft) {
    const Target t = target(s, logits);
    if (t.forced >= 0) return {t.forced, t.forced == draft.token};
    return verify_draft(t.row, s.request.params, s.rng, s.output, draft);
  }

  // What a picked token changes for picking the next one: the penalties' history, the reasoning
  // section (and the thinking budget's count) and the constraint's parse state. False after EOS.
  bool advance(Sequence& s, Pick& pick) {
    s.output.push_back(pick.token);
    pick.reasoning = s.in_reasoning;
    if (pick.token == config_.eos_token_id) return false;
    if (s.in_reasoning) {
      s.reasoning++;
      if (pick.token == think_end_) s.in_reasoning = false;
    } else if (s.request.constraint) {
      s.request.constraint->accept(pick.token);
    }
    return true;
  }

  void deliver_item(const Planned& p, ItemPicks& item) {
    Sequence& s = *p.seq;
    if (!item.error.empty()) {
      finish(s, FinishReason::Error, item.error);
      return;
    }
    if (p.drafts > 0) {  // counted first: the last token's on_finish may read the metrics
      std::lock_guard lock(stats_mutex_);
      stats_.spec_drafts_total++;
      stats_.spec_draft_tokens_total += int64_t(p.drafts);
      stats_.spec_accepted_tokens_total += int64_t(item.accepted);
    }
    for (Pick& pick : item.picks) {
      if (s.done) break;
      if (p.drafts > 0) {
        std::lock_guard lock(stats_mutex_);
        stats_.spec_emitted_tokens_total++;
      }
      try {
        deliver(s, pick);
      } catch (const std::exception& e) {
        finish(s, FinishReason::Error, e.what());
      }
    }
  }

  void deliver(Sequence& s, Pick& pick) {
    const auto& p = s.request.params;
    const int32_t token = pick.token;
    const auto now = Clock::now();
    s.generated++;
    {
      std::lock_guard lock(stats_mutex_);
      stats_.generation_tokens_total++;
      if (!s.first_token_sent) ttft_.observe(seconds_between(s.submitted, now));
      else inter_token_.observe(seconds_between(s.last_token, now));
    }
    if (!s.first_token_sent) s.first_token_seconds = seconds_between(s.submitted, now);
    s.first_token_sent = true;
    s.last_token = now;
    if (token == config_.eos_token_id) {
      finish(s, FinishReason::Stop);
      return;
    }
    GeneratedToken out;
    out.token = token;
    out.reasoning = pick.reasoning;
    if (pick.logprobs) {
      out.logprob = pick.logprobs->chosen;
      out.top = std::move(pick.logprobs->top);
    }
    if (vocabulary_) {
      // Stop strings apply to the answer, as in DeepSeek's API, not to the reasoning. The reasoning
      // text is all released with its closing tag, so no delta mixes the two sections.
      if (out.reasoning) {
        out.text = s.reasoning_text.push(vocabulary_->token_text_bytes(token));
        if (token == think_end_) out.text += s.reasoning_text.flush();
      } else {
        out.text = s.text.push(vocabulary_->token_text_bytes(token));
      }
    }
    if (!call_on_token(s, out)) return;
    if (s.text.stopped()) {
      finish(s, FinishReason::StopString, "", s.text.matched_stop());
      return;
    }
    if (s.generated >= p.max_tokens) {
      finish(s, FinishReason::Length);
      return;
    }
    s.next_input = token;
  }

  // ---- speculative decoding ----

  // The MTP block sees the rows of prompt chunks that are not a prompt's last (the prompt holds the
  // tokens after them); a last chunk waits for its first generated token (draft_next).
  void see_prompt_chunks(const std::vector<Planned>& planned) {
    std::vector<model::MtpItem> items;
    std::vector<Sequence*> seqs;
    for (const Planned& p : planned) {
      Sequence& s = *p.seq;
      if (!p.prefill || !s.speculate || p.chunk_end >= int64_t(s.request.prompt.size())) continue;
      const std::span<const int32_t> next(s.request.prompt.data() + p.chunk_begin + 1, size_t(p.chunk_end - p.chunk_begin));
      items.push_back({s.state.get(), next, false, false});
      seqs.push_back(&s);
    }
    run_mtp(items, seqs);
  }

  // Every speculating sequence that goes on: the MTP block sees its rows of this step with the
  // tokens after them and drafts its next step's tokens: the first on the main model's streams,
  // each further one chained on the block's own (one batched call per draft position).
  void draft_next(const std::vector<Planned>& planned, const std::vector<size_t>& ready,
                  const std::vector<ItemPicks>& picks) {
    std::vector<model::MtpItem> items;
    std::vector<Sequence*> seqs;
    for (size_t j = 0; j < ready.size(); ++j) {
      const Planned& p = planned[ready[j]];
      Sequence& s = *p.seq;
      s.drafts.clear();
      if (s.done || !s.speculate) continue;
      s.mtp_next.clear();
      if (p.prefill) s.mtp_next.assign(s.request.prompt.begin() + p.chunk_begin + 1, s.request.prompt.end());
      for (const Pick& pick : picks[j].picks) s.mtp_next.push_back(pick.token);
      items.push_back({s.state.get(), s.mtp_next, false, true});
      seqs.push_back(&s);
    }
    const size_t vocab = size_t(config_.vocab_size);
    for (int k = 0; k < options_.speculative_tokens && !items.empty(); ++k) {
      const std::vector<float> rows = run_mtp(items, seqs);
      if (rows.size() != items.size() * vocab) return;  // run_mtp turned them off
      std::vector<char> failed(seqs.size(), 0);
      sampling_pool_->parallel_for(int64_t(seqs.size()), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          Sequence& s = *seqs[size_t(i)];
          try {
            s.drafts.push_back(draw_draft(std::span<const float>(rows.data() + size_t(i) * vocab, vocab),
                                          s.request.params, s.rng, s.output));
          } catch (const std::exception&) {
            failed[size_t(i)] = 1;  // e.g. a NaN in the MTP row: this sequence goes on without drafts
          }
        }
      });
      std::vector<model::MtpItem> chained;
      std::vector<Sequence*> drafting;
      for (size_t i = 0; i < seqs.size(); ++i) {
        Sequence& s = *seqs[i];
        if (failed[i]) {
          spdlog::warn("engine: drafting for {} failed; it goes on without speculative decoding", s.request.id);
          s.speculate = false;
          s.drafts.clear();
          continue;
        }
        s.mtp_next.assign(1, s.drafts.back().token);
        chained.push_back({s.state.get(), s.mtp_next, true, true});
        drafting.push_back(&s);
      }
      items.swap(chained);
      seqs.swap(drafting);
    }
  }

  bool call_on_token(Sequence& s, const GeneratedToken& token) {
    if (!s.callbacks.on_token) return true;
    try {
      s.callbacks.on_token(token);
      return true;
    } catch (const std::exception& e) {
      finish(s, FinishReason::Error, std::string("on_token callback failed: ") + e.what());
    } catch (...) {
      finish(s, FinishReason::Error, "on_token callback failed");
    }
    return false;
  }

  void finish(Sequence& s, FinishReason reason, const std::string& error = {}, const std::string& matched = {}) {
    if (s.done) return;
    s.done = true;
    // Choices still waiting for this one's prompt end with it (cancelled, refused, failed).
    for (auto& f : std::exchange(s.followers, {})) finish(*f, reason, error, matched);
    for (Sequence* f : std::exchange(s.forks, {})) finish(*f, reason, error, matched);
    const auto now = Clock::now();
    FinishInfo info;
    info.reason = reason;
    info.error = error;
    info.matched_stop = matched;
    if (reason != FinishReason::StopString && reason != FinishReason::Error)
      info.tail_text = s.reasoning_text.flush() + s.text.flush();
    info.prompt_tokens = int(s.request.prompt.size());
    info.cached_prompt_tokens = s.cached_tokens;
    info.completion_tokens = s.generated;
    info.reasoning_tokens = s.reasoning;
    const bool was_admitted = s.admitted != Clock::time_point{};
    info.queue_seconds = seconds_between(s.submitted, was_admitted ? s.admitted : now);
    info.ttft_seconds = s.first_token_seconds;
    info.total_seconds = seconds_between(s.submitted, now);
    s.state.reset();  // free the memory before telling anyone, and show it in the metrics
    {
      std::lock_guard lock(stats_mutex_);
      stats_.requests_finished_total++;
      e2e_.observe(info.total_seconds);
    }
    publish();
    if (s.callbacks.on_finish) {
      try {
        s.callbacks.on_finish(info);
      } catch (const std::exception& e) {
        spdlog::error("engine: on_finish callback of {} threw: {}", s.request.id, e.what());
      } catch (...) {
        spdlog::error("engine: on_finish callback of {} threw", s.request.id);
      }
    }
  }

  void publish() {
    std::lock_guard lock(stats_mutex_);
    stats_.running = std::count_if(running_.begin(), running_.end(), [](const auto& s) { return !s->done; });
    stats_.state_bytes = running_state_bytes();
    stats_.prefix_cache_bytes = cache_.bytes();
    stats_.prefix_cache_entries = int64_t(cache_.entries());
  }

  std::shared_ptr<model::Model> model_;
  EngineOptions options_;
  core::ModelConfig config_;
  std::shared_ptr<const TokenVocabulary> vocabulary_;
  std::vector<int32_t> no_token_ids_;  // vocabulary rows without a token: never sampled
  int32_t think_end_ = -1;
  int64_t block_ = 128;
  int per_tenant_cap_ = 1;
  int64_t base_state_bytes_ = 0;
  StateMemory state_memory_;
  PrefixCache cache_;
  std::unique_ptr<DiskCache> disk_;  // null without a cache directory

  std::unique_ptr<kernels::ThreadPool> sampling_pool_;

  std::shared_ptr<Wakeup> wakeup_;
  // Guarded by wakeup_->mutex.
  std::deque<std::unique_ptr<Sequence>> incoming_;
  bool stopping_ = false;
  uint64_t next_arrival_ = 0;
  std::atomic<int64_t> queued_{0};  // accepted, not yet admitted (incoming + waiting)

  // Scheduler thread only.
  std::vector<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;

  mutable std::mutex stats_mutex_;
  EngineMetrics stats_;
  struct {
    double forward = 0, sampling = 0, delivery = 0, draft = 0;
  } step_time_;
  Histogram ttft_, inter_token_, e2e_, queue_time_;

  std::mutex join_mutex_;
  std::thread thread_;
};

}  // namespace

void check_sampling_params(const SamplingParams& p) {
  if (p.max_tokens < 1) throw InvalidParameter("max_tokens", "max_tokens must be at least 1");
  if (!(p.temperature >= 0) || !std::isfinite(p.temperature))
    throw InvalidParameter("temperature", "temperature must be >= 0");
  if (!(p.top_p > 0 && p.top_p <= 1)) throw InvalidParameter("top_p", "top_p must be in (0, 1]");
  if (p.top_k < 0) throw InvalidParameter("top_k", "top_k must be >= 0");
  if (!(p.min_p >= 0 && p.min_p <= 1)) throw InvalidParameter("min_p", "min_p must be in [0, 1]");
  if (!(std::abs(p.frequency_penalty) <= 2))
    throw InvalidParameter("frequency_penalty", "frequency_penalty must be in [-2, 2]");
  if (!(std::abs(p.presence_penalty) <= 2))
    throw InvalidParameter("presence_penalty", "presence_penalty must be in [-2, 2]");
  for (const auto& entry : p.logit_bias)
    if (!(std::abs(entry.second) <= 100)) throw InvalidParameter("logit_bias", "logit_bias values must be in [-100, 100]");
  if (p.top_logprobs < -1 || p.top_logprobs > kMaxTopLogprobs)
    throw InvalidParameter("top_logprobs", "top_logprobs must be between 0 and " + std::to_string(kMaxTopLogprobs));
  if (p.stop.size() > size_t(kMaxStopStrings))
    throw InvalidParameter("stop", "at most " + std::to_string(kMaxStopStrings) + " stop strings");
  for (const auto& s : p.stop)
    if (s.size() > kMaxStopBytes)
      throw InvalidParameter("stop", "a stop string may be at most " + std::to_string(kMaxStopBytes) + " bytes, got " +
                                         std::to_string(s.size()));
  if (p.thinking_budget < 0) throw InvalidParameter("thinking_budget", "thinking_budget must be >= 0");
}

namespace {
// The choices of an engine that runs them as separate requests: one handle cancels them all, and
// once one was refused the others' callbacks go quiet (the caller heard of the refusal instead).
struct ChoicesHandle final : RequestHandle {
  std::vector<std::shared_ptr<RequestHandle>> handles;
  std::shared_ptr<std::atomic<bool>> refused = std::make_shared<std::atomic<bool>>(false);
  void cancel() override {
    for (auto& h : handles) h->cancel();
  }
};

RequestCallbacks quiet_once_refused(RequestCallbacks cb, std::shared_ptr<std::atomic<bool>> refused) {
  RequestCallbacks out;
  if (cb.on_token)
    out.on_token = [refused, f = std::move(cb.on_token)](const GeneratedToken& t) { if (!*refused) f(t); };
  if (cb.on_finish)
    out.on_finish = [refused, f = std::move(cb.on_finish)](const FinishInfo& i) { if (!*refused) f(i); };
  if (cb.on_admitted)
    out.on_admitted = [refused, f = std::move(cb.on_admitted)](int cached) { if (!*refused) f(cached); };
  return out;
}
}  // namespace

std::shared_ptr<RequestHandle> Engine::submit_choices(std::vector<GenerationRequest> requests,
                                                      std::vector<RequestCallbacks> callbacks) {
  if (requests.empty() || requests.size() != callbacks.size())
    throw std::invalid_argument("submit_choices needs one callback set per request, and at least one request");
  auto group = std::make_shared<ChoicesHandle>();
  try {
    for (size_t i = 0; i < requests.size(); ++i)
      group->handles.push_back(submit(std::move(requests[i]), quiet_once_refused(std::move(callbacks[i]), group->refused)));
  } catch (...) {
    group->refused->store(true);
    group->cancel();
    throw;
  }
  return group;
}

std::shared_ptr<const TokenVocabulary> vocabulary_from_tokenizer(std::shared_ptr<const text::Tokenizer> tokenizer) {
  if (!tokenizer) return nullptr;
  return std::make_shared<TokenizerVocabulary>(std::move(tokenizer));
}

int default_max_running(const core::ModelConfig& config, bool packed_state, const EngineOptions& opts) {
  const StateMemory memory = state_memory(config, packed_state);
  const int64_t per_sequence = std::max<int64_t>(1, memory.bytes_at(config, kDefaultContextForSizing));
  return int(std::clamp<int64_t>(opts.state_memory_budget / per_sequence, 16, 256));
}

std::unique_ptr<Engine> create_engine(std::shared_ptr<model::Model> model, const EngineOptions& opts) {
  if (!model) throw std::invalid_argument("create_engine: no model");
  return std::make_unique<EngineImpl>(std::move(model), opts);
}

}  // namespace v4::runtime
