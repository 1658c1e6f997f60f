// Engine::submit_choices on the deterministic fake model: the n choices of one prompt run its
// prefill once, each choice makes the tokens it would make alone, and they start, cancel and end
// together.
#include <gtest/gtest.h>

#include <cstring>

#include "fake_model.h"

using namespace v4::runtime;
using namespace v4::runtime::testing;
using namespace std::chrono_literals;

namespace {

std::vector<int32_t> prompt_of(size_t n, uint64_t salt) {
  std::vector<int32_t> p(n);
  uint64_t h = salt;
  for (auto& t : p) {
    h = fake_mix(h, 5);
    t = int32_t(2 + h % 60);
  }
  return p;
}

GenerationRequest sampled(const std::vector<int32_t>& prompt, uint64_t seed, int max_tokens) {
  GenerationRequest r;
  r.prompt = prompt;
  r.params.temperature = 1.0;
  r.params.top_p = 0.95;
  r.params.max_tokens = max_tokens;
  r.params.top_logprobs = 3;
  r.params.seed = seed;
  return r;
}

struct Group {
  std::vector<std::shared_ptr<Collector>> choices;
  std::shared_ptr<RequestHandle> handle;
  Group(Engine& engine, const std::vector<GenerationRequest>& requests) {
    std::vector<RequestCallbacks> cbs;
    for (size_t i = 0; i < requests.size(); ++i) {
      choices.push_back(std::make_shared<Collector>());
      cbs.push_back(choices.back()->callbacks());
    }
    handle = engine.submit_choices(requests, std::move(cbs));
  }
  bool wait() {
    for (auto& c : choices)
      if (!c->wait()) return false;
    return true;
  }
};

EngineOptions small_blocks(int64_t cache_budget) {
  EngineOptions o;
  o.vocabulary = std::make_shared<FakeVocabulary>();
  o.prefix_block_tokens = 32;
  o.step_token_budget = 96;  // the prompt takes several chunks
  o.prefix_cache_budget = cache_budget;
  return o;
}

bool same_tokens(const std::vector<GeneratedToken>& a, const std::vector<GeneratedToken>& b) {
  if (a.size() != b.size()) return false;
  for (size_t k = 0; k < a.size(); ++k) {
    if (a[k].token != b[k].token || !a[k].logprob || !b[k].logprob) return false;
    if (std::memcmp(&a[k].logprob->logprob, &b[k].logprob->logprob, sizeof(float)) != 0) return false;
  }
  return true;
}

bool wait_for(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace

// Four choices of a 300-token prompt: the model runs its 300 tokens once, then one token per
// choice per step; each choice equals a lone request with its seed, logprobs bit for bit.
TEST(EngineChoices, FourChoicesPrefillThePromptOnceAndEachEqualsItsLoneRun) {
  const auto prompt = prompt_of(300, 7);
  constexpr int kMax = 12;
  std::vector<GenerationRequest> requests;
  for (uint64_t i = 0; i < 4; ++i) requests.push_back(sampled(prompt, 100 + i, kMax));

  std::vector<std::vector<GeneratedToken>> alone;
  for (auto& r : requests) {  // no prefix cache: each lone run prefills on its own
    auto model = std::make_shared<FakeModel>();
    auto engine = create_engine(model, small_blocks(0));
    Collector c;
    engine->submit(r, c.callbacks());
    ASSERT_TRUE(c.wait());
    alone.push_back(c.tokens);
    EXPECT_EQ(model->tokens_fed, 300 + kMax - 1);
  }

  for (int64_t cache : {int64_t(0), int64_t(1) << 30}) {
    auto model = std::make_shared<FakeModel>();
    auto engine = create_engine(model, small_blocks(cache));
    Group g(*engine, requests);
    ASSERT_TRUE(g.wait());
    EXPECT_EQ(model->tokens_fed, 300 + 4 * (kMax - 1)) << "the prompt ran once";
    const EngineMetrics m = engine->metrics();
    EXPECT_EQ(m.prompt_tokens_computed_total, 300);
    EXPECT_EQ(m.prompt_tokens_total, 300);
    EXPECT_EQ(m.prefix_cache_hits_total, 0);
    EXPECT_EQ(m.requests_finished_total, 4);
    for (size_t i = 0; i < 4; ++i) {
      const auto& c = *g.choices[i];
      EXPECT_EQ(c.finish_calls, 1);
      EXPECT_EQ(c.finish->reason, FinishReason::Length);
      EXPECT_EQ(c.finish->prompt_tokens, 300);
      EXPECT_EQ(c.finish->cached_prompt_tokens, 0);
      EXPECT_EQ(c.finish->completion_tokens, kMax);
      EXPECT_TRUE(same_tokens(c.tokens, alone[i])) << "choice " << i;
    }
    EXPECT_NE(g.choices[0]->ids(), g.choices[1]->ids()) << "different seeds, different choices";
  }
}

// Greedy choices are all the same answer; a prompt already cached is looked up once for them all.
TEST(EngineChoices, GreedyChoicesAgreeAndShareOneCacheHit) {
  auto model = std::make_shared<FakeModel>();
  auto engine = create_engine(model, small_blocks(int64_t(1) << 30));
  const auto prompt = prompt_of(200, 9);
  GenerationRequest r = sampled(prompt, 1, 6);
  r.params.temperature = 0;
  Collector warm;
  engine->submit(r, warm.callbacks());
  ASSERT_TRUE(warm.wait());
  const int64_t fed = model->tokens_fed;
  Group g(*engine, {r, r, r});
  ASSERT_TRUE(g.wait());
  for (auto& c : g.choices) {
    EXPECT_EQ(c->ids(), warm.ids());
    EXPECT_EQ(c->finish->cached_prompt_tokens, 192);  // the last boundary before the final token
  }
  EXPECT_EQ(model->tokens_fed - fed, (200 - 192) + 3 * 5);
  EXPECT_EQ(engine->metrics().prefix_cache_hits_total, 192);
}

// One handle stops every choice, before the fork (waiting for a slot, prefilling) and after it.
TEST(EngineChoices, OneCancelEndsEveryChoiceOnce) {
  EngineOptions o = small_blocks(0);
  o.max_running = 2;
  o.step_token_budget = 32;
  auto model = std::make_shared<FakeModel>();
  model->delay = 5ms;
  auto engine = create_engine(model, o);
  const auto prompt = prompt_of(320, 3);  // ten prefill steps
  Collector other;
  auto h0 = engine->submit(sampled(prompt_of(20, 4), 9, 100000), other.callbacks());
  Group waiting(*engine, {sampled(prompt, 1, 50), sampled(prompt, 2, 50), sampled(prompt, 3, 50)});
  ASSERT_TRUE(wait_for([&] { return other.ids().size() >= 2; }));
  EXPECT_EQ(engine->metrics().waiting, 1) << "three choices wait for room for all three";
  waiting.handle->cancel();
  ASSERT_TRUE(waiting.wait());
  h0->cancel();
  ASSERT_TRUE(other.wait());

  Group prefilling(*engine, {sampled(prompt, 1, 50), sampled(prompt, 2, 50)});
  ASSERT_TRUE(wait_for([&] { return engine->metrics().prompt_tokens_computed_total >= 20 + 64; }));
  prefilling.handle->cancel();
  ASSERT_TRUE(prefilling.wait());

  Group decoding(*engine, {sampled(prompt, 1, 100000), sampled(prompt, 2, 100000)});
  ASSERT_TRUE(wait_for([&] { return decoding.choices[1]->ids().size() >= 3; }));
  decoding.handle->cancel();
  ASSERT_TRUE(decoding.wait());

  std::this_thread::sleep_for(20ms);
  for (Group* g : {&waiting, &prefilling, &decoding})
    for (auto& c : g->choices) {
      EXPECT_EQ(c->finish_calls, 1);
      EXPECT_EQ(c->finish->reason, FinishReason::Cancelled);
    }
  EXPECT_TRUE(waiting.choices[2]->tokens.empty());
  EXPECT_TRUE(prefilling.choices[1]->tokens.empty());
  ASSERT_TRUE(wait_for([&] { auto m = engine->metrics(); return m.running == 0 && m.waiting == 0; }));
  EXPECT_EQ(engine->metrics().state_bytes, 0);
}

// A failed forward ends the choices waiting for the prompt with the same error; shutdown ends the
// ones still queued.
TEST(EngineChoices, AFailedPrefillOrAShutdownEndsTheWaitingChoices) {
  auto model = std::make_shared<FakeModel>();
  auto engine = create_engine(model, small_blocks(0));
  model->fail_next = true;
  const auto prompt = prompt_of(40, 5);
  Group failed(*engine, {sampled(prompt, 1, 5), sampled(prompt, 2, 5)});
  ASSERT_TRUE(failed.wait());
  for (auto& c : failed.choices) EXPECT_EQ(c->finish->reason, FinishReason::Error);
  EXPECT_NE(failed.choices[1]->finish->error.find("injected failure"), std::string::npos);

  EXPECT_THROW(engine->submit_choices({sampled(prompt, 1, 5), sampled(prompt_of(41, 5), 2, 5)}, {{}, {}}),
               std::invalid_argument);
  EXPECT_THROW(engine->submit_choices({sampled(prompt, 1, 5)}, {}), std::invalid_argument);
  engine->shutdown();
  EXPECT_THROW(engine->submit_choices({sampled(prompt, 1, 5)}, {{}}), OverloadedError);
}
