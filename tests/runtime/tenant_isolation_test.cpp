// Tenants in the engine: one tenant's long requests cannot hold every running slot, a free slot
// goes to the tenant with the fewest running, and prefix-cache hits never cross cache salts.
#include <gtest/gtest.h>

#include "fake_model.h"

using namespace v4::runtime;
using namespace v4::runtime::testing;
using namespace std::chrono_literals;

namespace {

GenerationRequest request(std::string tenant, std::vector<int32_t> prompt, int max_tokens) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.params.temperature = 0;
  r.params.top_p = 1.0;
  r.params.max_tokens = max_tokens;
  r.tenant = tenant;
  r.cache_salt = tenant;
  return r;
}

std::vector<int32_t> prompt_of(size_t n, int32_t first) {
  std::vector<int32_t> p(n);
  for (size_t i = 0; i < n; ++i) p[i] = int32_t(2 + (first + int32_t(i) * 7) % 60);
  return p;
}

}  // namespace

// Issue 21: a single key held all running slots with huge max_tokens; another key's 1-token
// request got no answer. Now it completes within 2 s while the first key's backlog waits.
TEST(TenantIsolation, SecondTenantsShortRequestRunsWhileFirstTenantFillsEverySlot) {
  auto model = std::make_shared<FakeModel>();
  model->delay = 2ms;
  EngineOptions opts;
  opts.max_running = 4;
  opts.vocabulary = std::make_shared<FakeVocabulary>();
  auto engine = create_engine(model, opts);
  std::vector<std::shared_ptr<Collector>> hogs;
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (int i = 0; i < 8; ++i) {  // twice the slots, each practically endless
    hogs.push_back(std::make_shared<Collector>());
    handles.push_back(engine->submit(request("key-a", prompt_of(6, i), 1'000'000), hogs.back()->callbacks()));
  }
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (engine->metrics().running < 3 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(engine->metrics().running, 3) << "one tenant holds at most 3/4 of the slots by default";

  auto start = std::chrono::steady_clock::now();
  auto small = std::make_shared<Collector>();
  engine->submit(request("key-b", prompt_of(6, 99), 1), small->callbacks());
  ASSERT_TRUE(small->wait(2s)) << "the second tenant's 1-token request waited behind the first tenant";
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(small->finish->completion_tokens, 1);
  for (auto& h : handles) h->cancel();
  for (auto& c : hogs) EXPECT_TRUE(c->wait(10s));
}

// Among waiting requests of equal priority, the tenant with the fewest running goes first, even
// when it arrived last.
TEST(TenantIsolation, FreeSlotGoesToTheTenantWithFewestRunning) {
  auto model = std::make_shared<FakeModel>();
  model->delay = 2ms;
  EngineOptions opts;
  opts.max_running = 2;
  opts.max_running_per_tenant = 2;
  opts.vocabulary = std::make_shared<FakeVocabulary>();
  auto engine = create_engine(model, opts);
  auto a1 = std::make_shared<Collector>(), a2 = std::make_shared<Collector>(), a3 = std::make_shared<Collector>();
  auto b1 = std::make_shared<Collector>();
  auto h1 = engine->submit(request("a", prompt_of(6, 1), 1'000'000), a1->callbacks());
  auto h2 = engine->submit(request("a", prompt_of(6, 2), 20), a2->callbacks());
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (engine->metrics().running < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  auto h3 = engine->submit(request("a", prompt_of(6, 3), 1'000'000), a3->callbacks());
  engine->submit(request("b", prompt_of(6, 4), 1), b1->callbacks());
  ASSERT_TRUE(a2->wait(10s));
  ASSERT_TRUE(b1->wait(2s)) << "b arrived after a's third request but a already runs one";
  EXPECT_FALSE(a3->finish.has_value());
  h1->cancel();
  h3->cancel();
  EXPECT_TRUE(a1->wait(10s) && a3->wait(10s));
}

// Issue 21: key B got cached_tokens for key A's exact prompt, so it could confirm A's prompts.
TEST(TenantIsolation, PrefixCacheHitsNeverCrossTenants) {
  auto model = std::make_shared<FakeModel>();
  EngineOptions opts;
  opts.prefix_block_tokens = 8;
  opts.vocabulary = std::make_shared<FakeVocabulary>();
  auto engine = create_engine(model, opts);
  auto run = [&](GenerationRequest r) {
    Collector c;
    engine->submit(std::move(r), c.callbacks());
    EXPECT_TRUE(c.wait(10s));
    return c.finish->cached_prompt_tokens;
  };
  const auto prompt = prompt_of(100, 5);
  EXPECT_EQ(run(request("key-a", prompt, 1)), 0);
  EXPECT_EQ(run(request("key-a", prompt, 1)), 96) << "the same tenant hits its own cache";
  EXPECT_EQ(run(request("key-b", prompt, 1)), 0) << "another tenant must not hit key A's entries";
  auto shared = request("key-b", prompt, 1);
  shared.cache_salt.clear();  // the operator's shared namespace is separate from every tenant's
  EXPECT_EQ(run(shared), 0);
  shared.tenant = "key-c";
  EXPECT_EQ(run(shared), 96) << "prefixes in the shared namespace are shared";
}
