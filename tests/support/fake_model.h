#pragma once
// A small deterministic stand-in for model::Model: a sequence's logits are a hash of every token
// it has consumed (so any mix-up of states, positions or batch rows changes them), and its state
// is an explicit token list that clones exactly. Counts what the engine asked it to do.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "model/model.h"
#include "runtime/engine.h"

namespace v4::runtime::testing {

class FakeState final : public model::SequenceState {
 public:
  static constexpr size_t kBaseBytes = 1000, kBytesPerToken = 16;
  std::vector<int32_t> tokens;
  int64_t position() const override { return int64_t(tokens.size()); }
  std::unique_ptr<model::SequenceState> clone() const override { return std::make_unique<FakeState>(*this); }
  size_t bytes() const override { return kBaseBytes + kBytesPerToken * tokens.size(); }
};

inline uint64_t fake_mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  h *= 0xFF51AFD7ED558CCDull;
  return h ^ (h >> 29);
}

class FakeModel final : public model::Model {
 public:
  explicit FakeModel(int64_t vocab = 64) {
    config_.vocab_size = vocab;
    config_.eos_token_id = 1;
    config_.max_position_embeddings = 1 << 20;
    config_.num_hidden_layers = 2;
    config_.head_dim = 8;
    config_.sliding_window = 4;
    config_.compress_ratios = {0, 4, 0};
  }
  const core::ModelConfig& config() const override { return config_; }
  std::unique_ptr<model::SequenceState> new_state() const override { return std::make_unique<FakeState>(); }

  // After `prompt`, the model prefers `tokens` in order (logit 100 against at most 4): how a test
  // scripts what the engine generates while the engine still samples, stops and streams as usual.
  void script(std::vector<int32_t> prompt, std::vector<int32_t> tokens) {
    std::lock_guard lock(mutex);
    scripts_.emplace_back(std::move(prompt), std::move(tokens));
  }

  // Logits after the history: a spread of values in [-4, 4); EOS (id 1) kept low so generation
  // runs to max_tokens unless a script asks for EOS.
  std::vector<float> logits_for(const std::vector<int32_t>& history) const {
    uint64_t h = 0x1234;
    for (int32_t t : history) h = fake_mix(h, uint64_t(t));
    std::vector<float> row(size_t(config_.vocab_size));
    for (size_t v = 0; v < row.size(); ++v) {
      uint64_t x = fake_mix(h, v + 7);
      row[v] = float(int64_t(x % 8000) - 4000) / 1000.0f;
    }
    row[size_t(config_.eos_token_id)] = -20.0f;
    if (auto next = scripted_next(history)) row[size_t(*next)] = 100.0f;
    return row;
  }

  std::vector<float> forward(std::span<const model::BatchItem> batch) override {
    if (auto d = delay.load(); d.count() > 0) std::this_thread::sleep_for(d);
    if (fail_next.exchange(false)) throw std::runtime_error("injected failure");
    std::vector<float> out;
    std::lock_guard lock(mutex);
    for (const auto& item : batch) {
      auto* state = dynamic_cast<FakeState*>(item.state);
      if (!state) throw std::runtime_error("foreign state");
      for (auto t : item.tokens) {
        state->tokens.push_back(t);
      }
      tokens_fed += int64_t(item.tokens.size());
      chunk_sizes.push_back(int64_t(item.tokens.size()));
      auto row = logits_for(state->tokens);
      out.insert(out.end(), row.begin(), row.end());
    }
    calls++;
    max_batch = std::max<int64_t>(max_batch.load(), int64_t(batch.size()));
    return out;
  }

  std::vector<float> forward_traced(std::span<const model::BatchItem> batch, model::ForwardTrace*) override {
    return forward(batch);
  }
  std::vector<float> mtp_logits(model::SequenceState&, std::span<const int32_t>, bool) override {
    throw std::runtime_error("the fake model has no MTP block");
  }

  // The scripted token that follows `history`, if a script covers it.
  std::optional<int32_t> scripted_next(const std::vector<int32_t>& history) const {
    for (const auto& [prompt, tokens] : scripts_) {
      if (history.size() < prompt.size() || history.size() >= prompt.size() + tokens.size()) continue;
      if (!std::equal(prompt.begin(), prompt.end(), history.begin())) continue;
      if (std::equal(history.begin() + ptrdiff_t(prompt.size()), history.end(), tokens.begin()))
        return tokens[history.size() - prompt.size()];
    }
    return std::nullopt;
  }

  core::ModelConfig config_;
  std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> scripts_;
  std::mutex mutex;
  std::atomic<int64_t> tokens_fed{0}, calls{0}, max_batch{0};  // read by tests while the engine runs
  std::vector<int64_t> chunk_sizes;
  std::atomic<std::chrono::milliseconds> delay{std::chrono::milliseconds(0)};
  std::atomic<bool> fail_next{false};
};

// Token id -> text for tests: ids 2..27 are 'a'..'z', and a few multi-byte or special pieces.
class FakeVocabulary final : public TokenVocabulary {
 public:
  static constexpr int32_t kThinkEnd = 40, kThinkStart = 41, kEuroHead = 42, kEuroTail = 43,
                           kSpace = 44, kStopWord = 45, kNewline = 46, kLt = 47, kSlash = 48;
  bool is_valid(int32_t id) const override { return id >= 0 && id < 64; }
  std::string token_text_bytes(int32_t id) const override {
    if (id >= 2 && id < 28) return std::string(1, char('a' + id - 2));
    switch (id) {
      case kThinkEnd: return "</think>";
      case kThinkStart: return "<think>";
      case kEuroHead: return "\xE2\x82";  // first two bytes of U+20AC
      case kEuroTail: return "\xAC";
      case kSpace: return " ";
      case kStopWord: return "STOP";
      case kNewline: return "\n";
      case kLt: return "<";
      case kSlash: return "/";
      default: return {};
    }
  }
  std::optional<int32_t> token_id(const std::string& token) const override {
    if (token == "</think>") return kThinkEnd;
    if (token == "<think>") return kThinkStart;
    return std::nullopt;
  }
};

inline int32_t letter(char c) { return int32_t(c - 'a' + 2); }

// Collects one request's callbacks; wait() blocks the test thread until on_finish.
struct Collector {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<GeneratedToken> tokens;
  std::optional<FinishInfo> finish;
  int finish_calls = 0;

  RequestCallbacks callbacks() {
    return {[this](const GeneratedToken& t) {
              std::lock_guard lock(mutex);
              tokens.push_back(t);
            },
            [this](const FinishInfo& f) {
              std::lock_guard lock(mutex);
              finish = f;
              finish_calls++;
              cv.notify_all();
            },
            nullptr};  // on_admitted: not collected
  }
  bool wait(std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, timeout, [&] { return finish.has_value(); });
  }
  std::vector<int32_t> ids() {
    std::lock_guard lock(mutex);
    std::vector<int32_t> out;
    for (auto& t : tokens) out.push_back(t.token);
    return out;
  }
  std::string text() {
    std::lock_guard lock(mutex);
    std::string out;
    for (auto& t : tokens) out += t.text;
    return out;
  }
};

}  // namespace v4::runtime::testing
