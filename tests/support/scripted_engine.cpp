#include "scripted_engine.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "script.h"
#include "text/detokenizer.h"

namespace v4::testing {

namespace {

using runtime::FinishInfo;
using runtime::FinishReason;
using runtime::GeneratedToken;

struct ScriptedRequest : runtime::RequestHandle {
  runtime::GenerationRequest req;
  runtime::RequestCallbacks cb;
  std::atomic<bool> cancelled{false};
  std::vector<int32_t> script;  // tokens to emit
  size_t next = 0;
  bool in_reasoning = false;
  int generated = 0, reasoning = 0;
  std::string reasoning_text;   // to spot </think> across token boundaries
  bool stopped = false, budget_forced = false;
  bool admitted = false;        // on_admitted called
  bool from_prompt = false;     // the prompt's script: emitted as is, thinking budget aside
  std::string held;             // content text withheld as a possible stop-string prefix
  std::string content;          // content shown so far (stop matching)
  std::unique_ptr<text::IncrementalDetokenizer> detok;
  std::chrono::steady_clock::time_point start;
  FinishInfo info;
  void cancel() override { cancelled = true; }
};

class ScriptedEngine final : public runtime::Engine {
 public:
  ScriptedEngine(std::shared_ptr<const text::Tokenizer> tokenizer, ScriptedEngineOptions options)
      : tokenizer_(std::move(tokenizer)), options_(options) {
    config_.vocab_size = int64_t(tokenizer_->vocab_size());
    config_.max_position_embeddings = options.context_length;
    eos_ = tokenizer_->token_id("<｜end▁of▁sentence｜>").value_or(1);
    think_end_ = tokenizer_->encode("</think>");
    worker_ = std::thread([this] { run(); });
  }
  ~ScriptedEngine() override { shutdown(); }

  const core::ModelConfig& config() const override { return config_; }

  std::shared_ptr<runtime::RequestHandle> submit(runtime::GenerationRequest req, runtime::RequestCallbacks cb) override {
    auto r = std::make_shared<ScriptedRequest>();
    {
      std::lock_guard lock(mutex_);
      if (stopping_) throw runtime::OverloadedError("engine is shutting down");
      if (int(active_.size()) >= options_.max_running)
        throw runtime::OverloadedError("scripted engine: " + std::to_string(active_.size()) + " requests running");
      r->req = std::move(req);
      r->cb = std::move(cb);
      r->in_reasoning = r->req.params.thinking;
      r->detok = std::make_unique<text::IncrementalDetokenizer>(*tokenizer_);
      r->start = std::chrono::steady_clock::now();
      if (auto script = find_script(tokenizer_->decode(r->req.prompt))) {
        r->script = tokenizer_->encode(*script, /*allow_special=*/true);
        r->from_prompt = true;
      } else {
        std::string text = (r->req.params.thinking ? std::string(kScriptedReasoning) + "</think>" : std::string()) + kScriptedAnswer;
        r->script = tokenizer_->encode(text, /*allow_special=*/true);
        r->script.push_back(eos_);
      }
      r->info.prompt_tokens = int(r->req.prompt.size());
      r->info.cached_prompt_tokens = cached_prefix(r->req.cache_salt, r->req.prompt);
      ++metrics_.waiting;
      metrics_.prompt_tokens_total += r->info.prompt_tokens;
      active_.push_back(r);
    }
    wake_.notify_one();
    return r;
  }

  runtime::EngineMetrics metrics() const override {
    std::lock_guard lock(mutex_);
    return metrics_;
  }

  std::string prometheus_text() const override {
    auto m = metrics();
    return fmt::format(
        "# HELP v4flash:num_requests_running Requests being decoded.\n# TYPE v4flash:num_requests_running gauge\n"
        "v4flash:num_requests_running {}\n"
        "# HELP v4flash:prompt_tokens_total Prompt tokens processed.\n# TYPE v4flash:prompt_tokens_total counter\n"
        "v4flash:prompt_tokens_total {}\n"
        "# HELP v4flash:generation_tokens_total Tokens generated.\n# TYPE v4flash:generation_tokens_total counter\n"
        "v4flash:generation_tokens_total {}\n",
        m.running, m.prompt_tokens_total, m.generation_tokens_total);
  }

  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      if (stopping_ && !worker_.joinable()) return;
      stopping_ = true;
      for (auto& r : active_) r->cancelled = true;
    }
    wake_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

 private:
  // Toy prefix cache: the longest common prefix with an earlier prompt, in blocks of 16 tokens.
  // Like the real prefix cache, a hit never crosses cache salts (tenants).
  int cached_prefix(const std::string& salt, const std::vector<int32_t>& prompt) {
    size_t best = 0;
    for (auto& [seen_salt, p] : seen_prompts_) {
      if (seen_salt != salt) continue;
      size_t n = 0;
      while (n < p.size() && n < prompt.size() && p[n] == prompt[n]) ++n;
      best = std::max(best, n);
    }
    seen_prompts_.emplace_back(salt, prompt);
    if (seen_prompts_.size() > 64) seen_prompts_.pop_front();
    best = std::min(best, prompt.empty() ? 0 : prompt.size() - 1);
    return int(best / 16 * 16);
  }

  void run() {
    for (;;) {
      std::vector<std::shared_ptr<ScriptedRequest>> batch;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !active_.empty(); });
        if (active_.empty() && stopping_) return;
        batch.assign(active_.begin(), active_.end());
        metrics_.running = int64_t(batch.size());
        metrics_.waiting = 0;
      }
      for (auto& r : batch) step(*r);
      {
        std::lock_guard lock(mutex_);
        active_.remove_if([](const std::shared_ptr<ScriptedRequest>& r) { return r->info.total_seconds > 0; });
        metrics_.running = int64_t(active_.size());
      }
      if (options_.token_delay_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(options_.token_delay_us));
    }
  }

  void finish(ScriptedRequest& r, FinishReason reason) {
    r.info.reason = reason;
    r.info.completion_tokens = r.generated;
    r.info.reasoning_tokens = r.reasoning;
    r.info.total_seconds = std::max(1e-9, std::chrono::duration<double>(std::chrono::steady_clock::now() - r.start).count());
    if (reason != FinishReason::StopString) r.info.tail_text = r.held + r.detok->flush();
    // Drop the callbacks once done: they own the API's Generation, which owns this handle.
    runtime::RequestCallbacks cb = std::move(r.cb);
    r.cb = {};
    cb.on_finish(r.info);
  }

  void emit(ScriptedRequest& r, int32_t id) {
    GeneratedToken t;
    t.token = id;
    t.reasoning = r.in_reasoning;
    std::string text = r.detok->push(id);
    if (r.req.params.top_logprobs >= 0) {
      // Deterministic pseudo-probabilities: the chosen token is the most likely one.
      t.logprob = runtime::TokenLogprob{id, -0.25f};
      for (int k = 0; k < r.req.params.top_logprobs; ++k)
        t.top.push_back({k == 0 ? id : int32_t((id + 7 * k) % std::max<int64_t>(2, config_.vocab_size)), -0.25f - 1.5f * float(k)});
    }
    ++r.generated;
    {
      std::lock_guard lock(mutex_);
      ++metrics_.generation_tokens_total;
    }
    if (r.in_reasoning) {
      ++r.reasoning;
      r.reasoning_text += text;
      t.text = text;
      if (r.reasoning_text.find("</think>") != std::string::npos) r.in_reasoning = false;
      r.cb.on_token(t);
      return;
    }
    // Content: withhold any tail that could start a stop string; stop before a full match.
    r.held += text;
    for (auto& s : r.req.params.stop) {
      auto pos = r.held.find(s);
      if (pos != std::string::npos) {
        t.text = r.held.substr(0, pos);
        r.info.matched_stop = s;
        r.held.clear();
        r.cb.on_token(t);
        r.stopped = true;
        return;
      }
    }
    size_t keep = 0;
    for (auto& s : r.req.params.stop)
      for (size_t n = std::min(s.size() - 1, r.held.size()); n > keep; --n)
        if (r.held.compare(r.held.size() - n, n, s, 0, n) == 0) {
          keep = n;
          break;
        }
    t.text = r.held.substr(0, r.held.size() - keep);
    r.held.erase(0, r.held.size() - keep);
    r.cb.on_token(t);
  }

  void step(ScriptedRequest& r) {
    if (r.info.total_seconds > 0) return;
    if (r.cancelled) return finish(r, FinishReason::Cancelled);
    if (!r.admitted) {
      r.admitted = true;
      if (r.cb.on_admitted) r.cb.on_admitted(r.info.cached_prompt_tokens);
    }
    if (r.generated >= r.req.params.max_tokens) return finish(r, FinishReason::Length);
    if (r.next >= r.script.size()) return finish(r, FinishReason::Stop);
    // Thinking budget reached: close the reasoning now, then continue with the answer.
    if (r.in_reasoning && !r.budget_forced && r.reasoning >= r.req.params.thinking_budget &&
        !r.from_prompt) {
      r.budget_forced = true;
      r.script.resize(r.next);
      r.script.insert(r.script.end(), think_end_.begin(), think_end_.end());
      auto answer = tokenizer_->encode(kScriptedAnswer);
      r.script.insert(r.script.end(), answer.begin(), answer.end());
      r.script.push_back(eos_);
    }
    int32_t id = r.script[r.next++];
    if (id == eos_) {
      ++r.generated;
      return finish(r, FinishReason::Stop);
    }
    emit(r, id);
    if (r.stopped) finish(r, FinishReason::StopString);
  }

  std::shared_ptr<const text::Tokenizer> tokenizer_;
  ScriptedEngineOptions options_;
  core::ModelConfig config_;
  int32_t eos_ = 1;
  std::vector<int32_t> think_end_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::list<std::shared_ptr<ScriptedRequest>> active_;
  std::deque<std::pair<std::string, std::vector<int32_t>>> seen_prompts_;
  runtime::EngineMetrics metrics_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace

std::unique_ptr<runtime::Engine> create_scripted_engine(std::shared_ptr<const text::Tokenizer> tokenizer,
                                                    const ScriptedEngineOptions& options) {
  if (!tokenizer) throw std::invalid_argument("the scripted engine needs a tokenizer");
  return std::make_unique<ScriptedEngine>(std::move(tokenizer), options);
}

}  // namespace v4::testing
