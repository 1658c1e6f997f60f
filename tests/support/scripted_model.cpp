#include "scripted_model.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "script.h"

namespace v4::testing {

namespace {

struct ScriptedState final : model::SequenceState {
  std::unique_ptr<model::SequenceState> inner;
  std::vector<int32_t> history;                 // every token consumed
  std::optional<std::vector<int32_t>> script;   // the last marker read before the script started

  int64_t position() const override { return inner->position(); }
  std::unique_ptr<model::SequenceState> clone() const override {
    auto c = std::make_unique<ScriptedState>();
    c->inner = inner->clone();
    c->history = history;
    c->script = script;
    return c;
  }
  size_t bytes() const override { return inner->bytes() + history.size() * sizeof(int32_t); }
};

// The longest prefix of `script` that `history[0, end)` ends with: how far the sequence has
// followed it (the prompt's own tail, a chat template's assistant header, never starts a script).
size_t followed_prefix(const std::vector<int32_t>& history, size_t end, const std::vector<int32_t>& script) {
  for (size_t k = std::min(script.size(), end); k > 0; --k)
    if (std::equal(script.begin(), script.begin() + ptrdiff_t(k), history.begin() + ptrdiff_t(end - k))) return k;
  return 0;
}

class ScriptedModel final : public model::Model {
 public:
  ScriptedModel(std::shared_ptr<model::Model> inner, std::shared_ptr<const text::Tokenizer> tokenizer)
      : inner_(std::move(inner)), tokenizer_(std::move(tokenizer)) {}

  const core::ModelConfig& config() const override { return inner_->config(); }
  std::unique_ptr<model::SequenceState> new_state() const override {
    auto s = std::make_unique<ScriptedState>();
    s->inner = inner_->new_state();
    return s;
  }

  std::vector<float> forward(std::span<const model::BatchItem> batch) override {
    return forward_traced(batch, nullptr);
  }

  std::vector<float> forward_traced(std::span<const model::BatchItem> batch, model::ForwardTrace* trace) override {
    std::vector<model::BatchItem> inner_batch(batch.begin(), batch.end());
    for (auto& item : inner_batch) item.state = own(item.state).inner.get();
    auto logits = inner_->forward_traced(inner_batch, trace);
    const size_t vocab = size_t(config().vocab_size);
    size_t row = 0;
    for (const auto& item : batch) {
      auto& s = own(item.state);
      const size_t before = s.history.size();
      s.history.insert(s.history.end(), item.tokens.begin(), item.tokens.end());
      const size_t rows = item.all_logits ? item.tokens.size() : 1;
      for (size_t j = 0; j < rows; ++j, ++row) {
        const size_t end = item.all_logits ? before + j + 1 : s.history.size();
        steer(s, end, std::span<float>(logits.data() + row * vocab, vocab));
      }
    }
    return logits;
  }

  std::vector<float> mtp_logits(model::SequenceState& state, std::span<const int32_t> next_tokens,
                                bool all_logits) override {
    return inner_->mtp_logits(*own(&state).inner, next_tokens, all_logits);
  }

  // Speculative decoding passes through; a rollback drops the dropped tokens from the history too.
  void rollback(model::SequenceState& state, int64_t keep) override {
    auto& s = own(&state);
    inner_->rollback(*s.inner, keep);
    s.history.resize(size_t(s.inner->position()));
  }
  std::vector<float> mtp_draft(std::span<const model::MtpItem> batch) override {
    std::vector<model::MtpItem> inner_batch(batch.begin(), batch.end());
    for (auto& item : inner_batch) item.state = own(item.state).inner.get();
    return inner_->mtp_draft(inner_batch);
  }
  int64_t mtp_resume_position(const model::SequenceState& state) const override {
    const auto* s = dynamic_cast<const ScriptedState*>(&state);
    return s ? inner_->mtp_resume_position(*s->inner) : -1;
  }

 private:
  static ScriptedState& own(model::SequenceState* s) {
    auto* st = dynamic_cast<ScriptedState*>(s);
    if (!st) throw std::logic_error("scripted model: a state it did not make");
    return *st;
  }

  // Makes the script's next token the only likely one. Stateless on purpose (a row's steering
  // depends only on its history, so batching and prefix-cache restores change nothing); a sequence
  // the runtime moves off the script (a thinking budget's forced </think>) starts it again.
  // Until the sequence has started following its script, the history is read again for the last
  // marker: a state restored from the prefix cache was snapshotted with an earlier turn's script,
  // and the new turn's prompt (a tool result holding the next marker) must take over. Once the
  // script's first token is out, markers in the generated text (a tool call's arguments) are not.
  void steer(ScriptedState& s, size_t end, std::span<float> row) const {
    if (!s.script || followed_prefix(s.history, end, *s.script) == 0) {
      auto text = find_script(tokenizer_->decode(std::span<const int32_t>(s.history.data(), end)));
      if (text) s.script = tokenizer_->encode(*text, /*allow_special=*/true);
      if (!s.script) return;
    }
    const size_t k = followed_prefix(s.history, end, *s.script);
    if (k >= s.script->size()) return;
    std::fill(row.begin(), row.end(), -30.0f);
    row[size_t((*s.script)[k])] = 30.0f;
  }

  std::shared_ptr<model::Model> inner_;
  std::shared_ptr<const text::Tokenizer> tokenizer_;
};

}  // namespace

std::shared_ptr<model::Model> scripted_model(std::shared_ptr<model::Model> inner,
                                             std::shared_ptr<const text::Tokenizer> tokenizer) {
  return std::make_shared<ScriptedModel>(std::move(inner), std::move(tokenizer));
}

}  // namespace v4::testing
