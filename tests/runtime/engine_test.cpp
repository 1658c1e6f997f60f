// The engine on the deterministic fake model: scheduling, batching invariance, prefix cache,
// sampling rules, stop strings, thinking budget, cancellation, admission control and metrics.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>

#include "fake_model.h"
#include "runtime/sampler.h"

using namespace v4::runtime;
using namespace v4::runtime::testing;
using namespace std::chrono_literals;

namespace {

std::vector<int32_t> prompt_of(size_t n, uint64_t salt) {
  std::vector<int32_t> p(n);
  uint64_t h = salt;
  for (auto& t : p) {
    h = fake_mix(h, 3);
    t = int32_t(2 + h % 60);
  }
  return p;
}

GenerationRequest request(std::vector<int32_t> prompt, int max_tokens, double temperature = 0) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.params.temperature = temperature;
  r.params.top_p = 1.0;
  r.params.max_tokens = max_tokens;
  return r;
}

struct Fixture {
  std::shared_ptr<FakeModel> model = std::make_shared<FakeModel>();
  std::unique_ptr<Engine> engine;
  explicit Fixture(EngineOptions options = {}, bool with_vocabulary = true) {
    if (with_vocabulary && !options.vocabulary) options.vocabulary = std::make_shared<FakeVocabulary>();
    engine = create_engine(model, options);
  }
  // Runs one request to completion.
  std::shared_ptr<Collector> run(GenerationRequest r) {
    auto c = std::make_shared<Collector>();
    engine->submit(std::move(r), c->callbacks());
    EXPECT_TRUE(c->wait());
    return c;
  }
};

// The tokens greedy decoding must produce, from the fake model's own logits function.
std::vector<int32_t> expected_greedy(const FakeModel& m, std::vector<int32_t> history, int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    auto row = m.logits_for(history);
    int32_t best = int32_t(std::max_element(row.begin(), row.end()) - row.begin());
    out.push_back(best);
    history.push_back(best);
  }
  return out;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace

TEST(Engine, GreedyFollowsTheModelsArgmax) {
  Fixture f;
  auto prompt = prompt_of(10, 1);
  auto c = f.run(request(prompt, 12));
  EXPECT_EQ(c->ids(), expected_greedy(*f.model, prompt, 12));
  ASSERT_TRUE(c->finish);
  EXPECT_EQ(c->finish->reason, FinishReason::Length);
  EXPECT_EQ(c->finish->prompt_tokens, 10);
  EXPECT_EQ(c->finish->completion_tokens, 12);
  EXPECT_EQ(c->finish->cached_prompt_tokens, 0);
  EXPECT_EQ(c->finish_calls, 1);
  // Prompt fed once, then every generated token but the last.
  EXPECT_EQ(f.model->tokens_fed, 10 + 11);
}

// A long prompt is prefilled in chunks of many blocks (one weight pass per chunk, not per block): a
// chunk ends at the step budget, at the next boundary the prefix cache snapshots, or at the last
// boundary before the prompt's final token, so a repeat of the prompt reuses all but that token.
TEST(Engine, PrefillsInChunksOfManyBlocksEndingWhereTheCacheSnapshots) {
  EngineOptions opts;
  opts.step_token_budget = 1024;
  opts.prefix_block_tokens = 32;
  Fixture f(opts);
  const auto prompt = prompt_of(4101, 4);  // 128 blocks + 5 tokens
  auto first = f.run(request(prompt, 1));
  // Snapshot boundaries (in blocks): 1..16, 18..32 by 2, 36..64 by 4, 72..128 by 8: 40 chunks, then
  // the last 5 tokens (one block per chunk would take 129).
  EXPECT_EQ(f.model->calls, 41);
  EXPECT_EQ(f.model->tokens_fed, 4101);
  auto again = f.run(request(prompt, 1));
  ASSERT_TRUE(again->finish);
  EXPECT_EQ(again->finish->cached_prompt_tokens, 4096);
  EXPECT_EQ(again->ids(), first->ids());
}

// Without a prefix cache nothing needs a snapshot: chunks are as large as the budget allows.
TEST(Engine, WithoutAPrefixCacheChunksFillTheStepBudget) {
  EngineOptions opts;
  opts.step_token_budget = 1024;
  opts.prefix_block_tokens = 32;
  opts.prefix_cache_budget = 0;
  Fixture f(opts);
  f.run(request(prompt_of(4101, 4), 1));
  EXPECT_EQ(f.model->calls, 5);  // 4 x 1024 tokens, then 5
}

TEST(Engine, SixteenConcurrentRequestsEqualOneByOneBitForBit) {
  auto make = [](int i) {
    auto r = request(prompt_of(size_t(20 + 37 * i), uint64_t(i)), 24, i % 3 == 0 ? 0.0 : 0.9);
    r.params.seed = uint64_t(1000 + i);
    r.params.top_p = i % 2 ? 0.8 : 1.0;
    r.params.top_k = i % 4 == 1 ? 10 : 0;
    r.params.top_logprobs = 5;
    r.id = std::to_string(i);
    return r;
  };
  EngineOptions opts;
  opts.step_token_budget = 160;  // chunked prefills (32-token blocks) interleaved with decodes
  opts.prefix_block_tokens = 32;
  std::vector<std::vector<GeneratedToken>> alone;
  {
    Fixture f(opts);
    for (int i = 0; i < 16; ++i) alone.push_back(f.run(make(i))->tokens);
    EXPECT_EQ(f.model->max_batch, 1);
  }
  Fixture f(opts);
  f.model->delay = 1ms;  // lets all 16 arrive before the first ones finish
  std::vector<std::shared_ptr<Collector>> together;
  for (int i = 0; i < 16; ++i) {
    together.push_back(std::make_shared<Collector>());
    f.engine->submit(make(i), together.back()->callbacks());
  }
  for (auto& c : together) ASSERT_TRUE(c->wait());
  EXPECT_GE(f.model->max_batch, 8);  // they really ran side by side
  for (int i = 0; i < 16; ++i) {
    const auto& a = alone[size_t(i)];
    const auto& b = together[size_t(i)]->tokens;
    ASSERT_EQ(a.size(), b.size()) << i;
    for (size_t k = 0; k < a.size(); ++k) {
      EXPECT_EQ(a[k].token, b[k].token) << i << ":" << k;
      ASSERT_TRUE(a[k].logprob && b[k].logprob);
      EXPECT_EQ(std::memcmp(&a[k].logprob->logprob, &b[k].logprob->logprob, sizeof(float)), 0);
      ASSERT_EQ(a[k].top.size(), 5u);
      for (size_t j = 0; j < 5; ++j) {
        EXPECT_EQ(a[k].top[j].token, b[k].top[j].token);
        EXPECT_EQ(std::memcmp(&a[k].top[j].logprob, &b[k].top[j].logprob, sizeof(float)), 0);
      }
    }
  }
}

TEST(Engine, SeedMakesSamplingReproducibleAndDifferentSeedsDiffer) {
  Fixture f;
  auto r = request(prompt_of(30, 9), 32, 1.0);
  r.params.seed = 5;
  auto a = f.run(r)->ids(), b = f.run(r)->ids();
  EXPECT_EQ(a, b);
  r.params.seed = 6;
  EXPECT_NE(a, f.run(r)->ids());
  EXPECT_NE(a, expected_greedy(*f.model, r.prompt, 32));
}

TEST(Engine, PrefixCacheHitReportsCachedTokensAndChangesNothing) {
  auto shared = prompt_of(1000, 77);
  auto second = shared;
  for (int32_t t : prompt_of(24, 78)) second.push_back(t);
  auto req = request(second, 8);
  req.params.top_logprobs = 20;

  EngineOptions no_cache;
  no_cache.prefix_cache_budget = 0;
  Fixture cold(no_cache);
  auto reference = cold.run(req);
  EXPECT_EQ(reference->finish->cached_prompt_tokens, 0);

  for (int block : {128, 8}) {
    EngineOptions opts;
    opts.prefix_block_tokens = block;
    Fixture warm(opts);
    auto first = warm.run(request(shared, 4));
    EXPECT_EQ(first->finish->cached_prompt_tokens, 0);
    const int64_t fed_before = warm.model->tokens_fed;
    auto hit = warm.run(req);
    const int expected_cached = 1000 / block * block;  // 896 with 128-token blocks, 1000 with 8
    EXPECT_EQ(hit->finish->cached_prompt_tokens, expected_cached) << block;
    EXPECT_EQ(warm.model->tokens_fed - fed_before, int64_t(second.size()) - expected_cached + 7);
    ASSERT_EQ(hit->tokens.size(), reference->tokens.size());
    for (size_t k = 0; k < hit->tokens.size(); ++k) {
      EXPECT_EQ(hit->tokens[k].token, reference->tokens[k].token);
      EXPECT_EQ(hit->tokens[k].logprob->logprob, reference->tokens[k].logprob->logprob);
      for (size_t j = 0; j < 20; ++j) EXPECT_EQ(hit->tokens[k].top[j].logprob, reference->tokens[k].top[j].logprob);
    }
    auto m = warm.engine->metrics();
    EXPECT_EQ(m.prefix_cache_queries_total, 1000 + int64_t(second.size()));
    EXPECT_EQ(m.prefix_cache_hits_total, expected_cached);
    EXPECT_GT(m.prefix_cache_bytes, 0);
  }
}

TEST(Engine, PrefillIsChunkedAtBlockBoundariesWithoutStallingDecodes) {
  EngineOptions opts;
  opts.prefix_block_tokens = 16;
  opts.step_token_budget = 20;
  Fixture f(opts);
  f.model->delay = 2ms;
  auto decoding = std::make_shared<Collector>();
  f.engine->submit(request(prompt_of(5, 1), 40), decoding->callbacks());
  ASSERT_TRUE(wait_until([&] { return decoding->ids().size() >= 2; }));
  const int64_t calls_before = f.model->calls;
  auto longer = f.run(request(prompt_of(100, 2), 1));
  ASSERT_TRUE(decoding->wait());
  // The 100-token prompt went in chunks of at most one block (16 + 84 in 16s + 4), one per step,
  // and the decoding request kept getting a token in each of those steps.
  {
    std::lock_guard lock(f.model->mutex);
    for (int64_t n : f.model->chunk_sizes) EXPECT_LE(n, 16);
  }
  EXPECT_GE(f.model->calls - calls_before, 7);
  EXPECT_EQ(decoding->ids(), expected_greedy(*f.model, prompt_of(5, 1), 40));
  EXPECT_EQ(longer->ids(), expected_greedy(*f.model, prompt_of(100, 2), 1));
}

TEST(Engine, StopStringSplitAcrossTokensEndsWithoutLeaking) {
  Fixture f;
  auto r = request(prompt_of(4, 3), 50);
  r.params.stop = {"xyz"};
  f.model->script(r.prompt, {letter('a'), letter('x'), letter('y'), letter('b'), letter('x'), letter('y'), letter('z'), letter('c')});
  auto c = f.run(r);
  std::vector<std::string> deltas;
  for (auto& t : c->tokens) deltas.push_back(t.text);
  EXPECT_EQ(deltas, (std::vector<std::string>{"a", "", "", "xyb", "", "", ""}));
  EXPECT_EQ(c->finish->reason, FinishReason::StopString);
  EXPECT_EQ(c->finish->matched_stop, "xyz");
  EXPECT_EQ(c->finish->completion_tokens, 7);
  EXPECT_EQ(c->finish->tail_text, "");
}

TEST(Engine, WithheldStopPrefixIsReturnedAsTailAtLength) {
  Fixture f;
  auto r = request(prompt_of(4, 3), 3);
  r.params.stop = {"xyz", "STOP!"};
  f.model->script(r.prompt, {letter('a'), letter('x'), letter('y')});
  auto c = f.run(r);
  EXPECT_EQ(c->text(), "a");
  EXPECT_EQ(c->finish->reason, FinishReason::Length);
  EXPECT_EQ(c->finish->tail_text, "xy");
}

TEST(Engine, StopWordTokenAndSplitUtf8) {
  Fixture f;
  auto r = request(prompt_of(4, 3), 50);
  r.params.stop = {"TO", "\xE2\x82\xAC\xE2\x82\xAC"};
  f.model->script(r.prompt, {FakeVocabulary::kEuroHead, FakeVocabulary::kEuroTail, letter('q'), FakeVocabulary::kStopWord});
  auto c = f.run(r);
  ASSERT_EQ(c->tokens.size(), 4u);
  EXPECT_EQ(c->tokens[0].text, "");
  EXPECT_EQ(c->tokens[1].text, "");  // "€" could start "€€"
  EXPECT_EQ(c->tokens[2].text, "\xE2\x82\xAC" "q");
  EXPECT_EQ(c->tokens[3].text, "S");
  EXPECT_EQ(c->finish->matched_stop, "TO");
}

TEST(Engine, EosEndsWithStopAndIsCountedButNotDelivered) {
  Fixture f;
  auto r = request(prompt_of(4, 3), 50);
  f.model->script(r.prompt, {letter('h'), letter('i'), 1});
  auto c = f.run(r);
  EXPECT_EQ(c->ids(), (std::vector<int32_t>{letter('h'), letter('i')}));
  EXPECT_EQ(c->text(), "hi");
  EXPECT_EQ(c->finish->reason, FinishReason::Stop);
  EXPECT_EQ(c->finish->completion_tokens, 3);
}

TEST(Engine, ThinkingBudgetForcesThinkEndThenContinues) {
  Fixture f;
  auto prompt = prompt_of(6, 11);
  auto natural = expected_greedy(*f.model, prompt, 3);
  ASSERT_EQ(std::count(natural.begin(), natural.end(), FakeVocabulary::kThinkEnd), 0);
  auto r = request(prompt, 7);
  r.params.thinking = true;
  r.params.thinking_budget = 3;
  auto c = f.run(r);
  auto ids = c->ids();
  ASSERT_EQ(ids.size(), 7u);
  EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + 3), natural);
  EXPECT_EQ(ids[3], FakeVocabulary::kThinkEnd);
  // After </think>, decoding continues from the forced token.
  std::vector<int32_t> history = prompt;
  history.insert(history.end(), ids.begin(), ids.begin() + 4);
  EXPECT_EQ(std::vector<int32_t>(ids.begin() + 4, ids.end()), expected_greedy(*f.model, history, 3));
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(c->tokens[i].reasoning, i <= 3) << i;
  EXPECT_NE(c->tokens[3].text.find("</think>"), std::string::npos);
  EXPECT_EQ(c->finish->reasoning_tokens, 4);
  EXPECT_EQ(c->finish->completion_tokens, 7);
}

TEST(Engine, ThinkingWithoutBudgetPressureEndsOnGeneratedThinkEnd) {
  Fixture f;
  auto r = request(prompt_of(6, 12), 4);
  r.params.thinking = true;
  f.model->script(r.prompt, {letter('a'), FakeVocabulary::kThinkEnd, letter('b')});
  auto c = f.run(r);
  EXPECT_TRUE(c->tokens[0].reasoning);
  EXPECT_TRUE(c->tokens[1].reasoning);
  EXPECT_FALSE(c->tokens[2].reasoning);
  EXPECT_FALSE(c->tokens[3].reasoning);
  EXPECT_EQ(c->finish->reasoning_tokens, 2);
}

TEST(Engine, StopStringsApplyToTheAnswerNotTheReasoning) {
  Fixture f;
  auto r = request(prompt_of(6, 13), 20);
  r.params.thinking = true;
  r.params.stop = {"xy"};
  f.model->script(r.prompt, {letter('x'), letter('y'), FakeVocabulary::kThinkEnd, letter('a'), letter('x'), letter('y'), letter('b')});
  auto c = f.run(r);
  std::vector<std::string> deltas;
  for (auto& t : c->tokens) deltas.push_back(t.text);
  EXPECT_EQ(deltas, (std::vector<std::string>{"x", "y", "</think>", "a", "", ""}));
  EXPECT_EQ(c->finish->reason, FinishReason::StopString);
  EXPECT_EQ(c->finish->reasoning_tokens, 3);
  EXPECT_EQ(c->finish->completion_tokens, 6);
}

TEST(Engine, CancellationFreesStateAndFinishesOnce) {
  Fixture f;
  f.model->delay = 3ms;
  const auto baseline = f.engine->metrics().state_bytes;
  EXPECT_EQ(baseline, 0);
  auto running = std::make_shared<Collector>();
  auto handle = f.engine->submit(request(prompt_of(50, 1), 100000), running->callbacks());
  ASSERT_TRUE(wait_until([&] { return running->ids().size() >= 3; }));
  EXPECT_GT(f.engine->metrics().state_bytes, 0);
  handle->cancel();
  ASSERT_TRUE(running->wait());
  EXPECT_EQ(running->finish->reason, FinishReason::Cancelled);
  handle->cancel();  // a second cancel is harmless
  ASSERT_TRUE(wait_until([&] { return f.engine->metrics().running == 0; }));
  EXPECT_EQ(f.engine->metrics().state_bytes, baseline);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(running->finish_calls, 1);
}

TEST(Engine, CancelWhileWaitingOrPrefilling) {
  EngineOptions opts;
  opts.max_running = 1;
  opts.prefix_block_tokens = 8;
  opts.step_token_budget = 8;
  Fixture f(opts);
  f.model->delay = 3ms;
  auto first = std::make_shared<Collector>(), second = std::make_shared<Collector>();
  auto h1 = f.engine->submit(request(prompt_of(400, 1), 10), first->callbacks());  // 50 prefill steps
  auto h2 = f.engine->submit(request(prompt_of(10, 2), 10), second->callbacks());
  ASSERT_TRUE(wait_until([&] { return f.model->calls >= 3; }));
  EXPECT_EQ(f.engine->metrics().waiting, 1);
  h2->cancel();
  h1->cancel();
  ASSERT_TRUE(first->wait());
  ASSERT_TRUE(second->wait());
  EXPECT_EQ(first->finish->reason, FinishReason::Cancelled);
  EXPECT_EQ(second->finish->reason, FinishReason::Cancelled);
  EXPECT_TRUE(first->tokens.empty());
  EXPECT_TRUE(second->tokens.empty());
  ASSERT_TRUE(wait_until([&] { auto m = f.engine->metrics(); return m.running == 0 && m.waiting == 0; }));
  EXPECT_EQ(f.engine->metrics().state_bytes, 0);
  // The engine keeps serving.
  EXPECT_EQ(f.run(request(prompt_of(10, 2), 3))->finish->reason, FinishReason::Length);
}

TEST(Engine, QueueLimitRaisesOverloaded) {
  EngineOptions opts;
  opts.max_running = 1;
  opts.max_waiting = 2;
  Fixture f(opts);
  f.model->delay = 5ms;
  std::vector<std::shared_ptr<Collector>> accepted;
  int refused = 0;
  for (int i = 0; i < 6; ++i) {
    auto c = std::make_shared<Collector>();
    try {
      f.engine->submit(request(prompt_of(10, uint64_t(i)), 50), c->callbacks());
      accepted.push_back(c);
    } catch (const OverloadedError&) {
      refused++;
    }
  }
  EXPECT_GE(refused, 3);  // at most 1 running + 2 waiting
  EXPECT_LE(accepted.size(), 3u);
  for (auto& c : accepted) {
    ASSERT_TRUE(c->wait());
    EXPECT_EQ(c->finish_calls, 1);
  }
}

TEST(Engine, StateMemoryBudgetLimitsConcurrency) {
  EngineOptions opts;
  opts.state_bytes_per_token = 1000;
  // Each request reserves about window bytes + 1000 * (20 + 30) bytes; two do not fit.
  opts.state_memory_budget = 80000;
  Fixture f(opts);
  std::vector<std::shared_ptr<Collector>> cs;
  for (int i = 0; i < 4; ++i) {
    cs.push_back(std::make_shared<Collector>());
    f.engine->submit(request(prompt_of(20, uint64_t(i)), 30), cs.back()->callbacks());
  }
  for (auto& c : cs) ASSERT_TRUE(c->wait());
  EXPECT_EQ(f.model->max_batch, 1);
  EXPECT_THROW(f.engine->submit(request(prompt_of(20, 1), 200), {}), OverloadedError);
}

TEST(Engine, InvalidRequestsAreRefusedClearly) {
  Fixture f;
  EXPECT_THROW(f.engine->submit(request({}, 5), {}), std::invalid_argument);
  EXPECT_THROW(f.engine->submit(request({3, 64}, 5), {}), std::invalid_argument);
  EXPECT_THROW(f.engine->submit(request({3, -1}, 5), {}), std::invalid_argument);
  auto r = request({3, 4}, 5);
  r.params.stop = {"a", "b", "c", "d", "e"};
  EXPECT_THROW(f.engine->submit(r, {}), std::invalid_argument);
  r = request({3, 4}, 5);
  r.params.top_logprobs = 21;
  EXPECT_THROW(f.engine->submit(r, {}), std::invalid_argument);
  r = request({3, 4}, 0);
  EXPECT_THROW(f.engine->submit(r, {}), std::invalid_argument);
  r = request({3, 4}, 5);
  r.params.top_p = 0;
  EXPECT_THROW(f.engine->submit(r, {}), std::invalid_argument);

  Fixture no_text({}, false);
  r = request({3, 4}, 5);
  r.params.stop = {"x"};
  EXPECT_THROW(no_text.engine->submit(r, {}), std::invalid_argument);
  // Without a vocabulary, tokens still flow, with empty text.
  auto c = no_text.run(request({3, 4}, 3));
  EXPECT_EQ(c->ids().size(), 3u);
  EXPECT_EQ(c->text(), "");
}

TEST(Engine, ForwardFailureFinishesTheBatchWithErrorAndServingContinues) {
  Fixture f;
  f.model->fail_next = true;
  auto c = f.run(request(prompt_of(10, 1), 5));
  EXPECT_EQ(c->finish->reason, FinishReason::Error);
  EXPECT_NE(c->finish->error.find("injected failure"), std::string::npos);
  EXPECT_EQ(f.run(request(prompt_of(10, 1), 5))->finish->reason, FinishReason::Length);
  EXPECT_EQ(f.engine->metrics().state_bytes, 0);
}

TEST(Engine, ThrowingCallbackEndsOnlyThatRequest) {
  Fixture f;
  auto c = std::make_shared<Collector>();
  auto cb = c->callbacks();
  cb.on_token = [](const GeneratedToken&) { throw std::runtime_error("client gone"); };
  f.engine->submit(request(prompt_of(10, 1), 5), cb);
  ASSERT_TRUE(c->wait());
  EXPECT_EQ(c->finish->reason, FinishReason::Error);
  EXPECT_EQ(f.run(request(prompt_of(10, 1), 5))->finish->reason, FinishReason::Length);
}

TEST(Engine, HigherPriorityWaitsLessThanEarlierLowerPriority) {
  EngineOptions opts;
  opts.max_running = 1;
  Fixture f(opts);
  f.model->delay = 2ms;
  std::mutex order_mutex;
  std::vector<std::string> order;
  auto submit = [&](std::string id, int priority, std::shared_ptr<Collector> c) {
    auto r = request(prompt_of(5, 1), 5);
    r.priority = priority;
    auto cb = c->callbacks();
    auto inner = cb.on_finish;
    cb.on_finish = [&, id, inner](const FinishInfo& fi) {
      {
        std::lock_guard lock(order_mutex);
        order.push_back(id);
      }
      inner(fi);
    };
    f.engine->submit(r, cb);
  };
  auto a = std::make_shared<Collector>(), b = std::make_shared<Collector>(), c = std::make_shared<Collector>();
  submit("first", 0, a);
  ASSERT_TRUE(wait_until([&] { return f.engine->metrics().running == 1; }));
  submit("low", 0, b);
  submit("high", 5, c);
  ASSERT_TRUE(a->wait() && b->wait() && c->wait());
  EXPECT_EQ(order, (std::vector<std::string>{"first", "high", "low"}));
}

TEST(Engine, ShutdownCancelsEverythingAndRefusesNewWork) {
  Fixture f;
  f.model->delay = 2ms;
  auto c = std::make_shared<Collector>();
  f.engine->submit(request(prompt_of(10, 1), 100000), c->callbacks());
  ASSERT_TRUE(wait_until([&] { return !c->ids().empty(); }));
  f.engine->shutdown();
  ASSERT_TRUE(c->finish);
  EXPECT_EQ(c->finish->reason, FinishReason::Cancelled);
  EXPECT_THROW(f.engine->submit(request(prompt_of(10, 1), 5), {}), OverloadedError);
  f.engine->shutdown();  // idempotent
}

TEST(Engine, PrometheusTextHasTheVllmNamesAndCounts) {
  EngineOptions opts;
  opts.prefix_block_tokens = 8;
  Fixture f(opts);
  auto prompt = prompt_of(40, 5);
  f.run(request(prompt, 6));
  f.run(request(prompt, 6));
  auto m = f.engine->metrics();
  EXPECT_EQ(m.prompt_tokens_total, 80);
  EXPECT_EQ(m.generation_tokens_total, 12);
  EXPECT_EQ(m.prefix_cache_queries_total, 80);
  EXPECT_EQ(m.prefix_cache_hits_total, 32);  // 39 usable tokens -> 4 whole blocks of 8
  const std::string text = f.engine->prometheus_text();
  for (const char* line : {"v4flash:num_requests_running 0\n", "v4flash:num_requests_waiting 0\n",
                           "v4flash:prompt_tokens_total 80\n", "v4flash:generation_tokens_total 12\n",
                           "v4flash:prefix_cache_queries_total 80\n", "v4flash:prefix_cache_hits_total 32\n",
                           "v4flash:state_memory_bytes 0\n", "v4flash:time_to_first_token_seconds_count 2\n",
                           "v4flash:inter_token_latency_seconds_count 10\n",
                           "v4flash:e2e_request_latency_seconds_count 2\n",
                           "v4flash:request_queue_time_seconds_count 2\n",
                           "# TYPE v4flash:time_to_first_token_seconds histogram\n",
                           "v4flash:time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n",
                           "# TYPE v4flash:prompt_tokens_total counter\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
}

TEST(Engine, CallbacksMayCancelAndSubmitFromTheEngineThread) {
  Fixture f;
  std::shared_ptr<RequestHandle> handle;
  std::mutex handle_mutex;
  auto first = std::make_shared<Collector>(), chained = std::make_shared<Collector>();
  auto cb = first->callbacks();
  auto record = cb.on_token;
  cb.on_token = [&, record](const GeneratedToken& t) {
    record(t);
    std::lock_guard lock(handle_mutex);
    if (first->ids().size() == 3 && handle) handle->cancel();
  };
  auto finish = cb.on_finish;
  cb.on_finish = [&, finish](const FinishInfo& info) {
    f.engine->submit(request(prompt_of(8, 4), 2), chained->callbacks());  // must not deadlock
    finish(info);
  };
  {
    std::lock_guard lock(handle_mutex);  // on_token waits until the handle is stored
    handle = f.engine->submit(request(prompt_of(8, 3), 1000), cb);
  }
  ASSERT_TRUE(first->wait());
  EXPECT_EQ(first->finish->reason, FinishReason::Cancelled);
  EXPECT_EQ(first->ids().size(), 3u);
  ASSERT_TRUE(chained->wait());
  EXPECT_EQ(chained->finish->reason, FinishReason::Length);
}

TEST(Engine, HandlesOutliveTheEngine) {
  std::shared_ptr<RequestHandle> handle;
  {
    Fixture f;
    handle = f.engine->submit(request(prompt_of(8, 3), 2), {});
  }
  handle->cancel();  // nothing left to cancel, and nothing to crash
}
