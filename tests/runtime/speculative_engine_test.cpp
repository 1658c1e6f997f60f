// Speculative decoding in the engine on the tiny-v4 checkpoint and its MTP block: greedy output is
// the plain output bit for bit (1,000 tokens; batched; with stop strings, a thinking budget and a
// token constraint); seeded sampling is reproducible, alone or batched or resumed from a prefix
// snapshot, and distributed as plain sampling (chi-square); force_accept emits every draft.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <map>
#include <numeric>

#include "core/checkpoint.h"
#include "fake_model.h"
#include "model/model.h"

using namespace v4::runtime;
using namespace v4::runtime::testing;

namespace {

std::shared_ptr<v4::model::Model> tiny_model(bool mtp, int threads = 2) {
  static std::unique_ptr<v4::core::Checkpoint> ckpt =
      v4::core::Checkpoint::open(std::string(V4_SHARED_DIR) + "/fixtures/tiny-v4");
  v4::model::ModelOptions o;
  o.threads = threads;
  o.enable_mtp = mtp;
  return std::shared_ptr<v4::model::Model>(v4::model::Model::load(*ckpt, o));
}

std::vector<int32_t> prompt_of(size_t n, uint64_t salt) {
  std::vector<int32_t> p(n);
  uint64_t h = salt;
  for (auto& t : p) {
    h = fake_mix(h, 5);
    t = int32_t(2 + h % 4094);
  }
  return p;
}

GenerationRequest request(std::vector<int32_t> prompt, int max_tokens, double temperature, uint64_t seed) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.params.temperature = temperature;
  r.params.top_p = 1;
  r.params.seed = seed;
  r.params.max_tokens = max_tokens;
  r.params.top_logprobs = 2;
  r.params.logit_bias = {{1, -100.0f}};  // no EOS: runs are as long as asked
  return r;
}

std::unique_ptr<Engine> engine_with(std::shared_ptr<v4::model::Model> m, int k, EngineOptions opts = {}) {
  opts.speculative_tokens = k;
  return create_engine(std::move(m), opts);
}

// Submits every request at once (so they share steps) and waits for all.
std::vector<std::shared_ptr<Collector>> run_all(Engine& engine, const std::vector<GenerationRequest>& requests) {
  std::vector<std::shared_ptr<Collector>> out;
  for (const auto& r : requests) {
    out.push_back(std::make_shared<Collector>());
    engine.submit(r, out.back()->callbacks());
  }
  for (auto& c : out) EXPECT_TRUE(c->wait(std::chrono::minutes(5)));
  return out;
}

std::shared_ptr<Collector> run_one(Engine& engine, const GenerationRequest& r) { return run_all(engine, {r})[0]; }

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void expect_identical(const Collector& a, const Collector& b, const std::string& what) {
  ASSERT_EQ(a.tokens.size(), b.tokens.size()) << what;
  for (size_t k = 0; k < a.tokens.size(); ++k) {
    ASSERT_EQ(a.tokens[k].token, b.tokens[k].token) << what << " token " << k;
    ASSERT_EQ(a.tokens[k].text, b.tokens[k].text) << what << " token " << k;
    ASSERT_EQ(a.tokens[k].reasoning, b.tokens[k].reasoning) << what << " token " << k;
    ASSERT_EQ(a.tokens[k].logprob.has_value(), b.tokens[k].logprob.has_value());
    if (a.tokens[k].logprob) {
      ASSERT_TRUE(same_bits(a.tokens[k].logprob->logprob, b.tokens[k].logprob->logprob));
    }
    ASSERT_EQ(a.tokens[k].top.size(), b.tokens[k].top.size());
    for (size_t j = 0; j < a.tokens[k].top.size(); ++j) {
      ASSERT_EQ(a.tokens[k].top[j].token, b.tokens[k].top[j].token);
      ASSERT_TRUE(same_bits(a.tokens[k].top[j].logprob, b.tokens[k].top[j].logprob));
    }
  }
  ASSERT_TRUE(a.finish && b.finish);
  EXPECT_EQ(a.finish->reason, b.finish->reason) << what;
  EXPECT_EQ(a.finish->matched_stop, b.finish->matched_stop) << what;
  EXPECT_EQ(a.finish->tail_text, b.finish->tail_text) << what;
  EXPECT_EQ(a.finish->completion_tokens, b.finish->completion_tokens) << what;
  EXPECT_EQ(a.finish->reasoning_tokens, b.finish->reasoning_tokens) << what;
}

void print_spec_metrics(Engine& e, const char* what) {
  const EngineMetrics m = e.metrics();
  std::printf("[%s] %lld verify steps, %lld drafts, %lld accepted (%.3f), %.3f tokens per verify step, %lld steps\n",
              what, (long long)m.spec_drafts_total, (long long)m.spec_draft_tokens_total,
              (long long)m.spec_accepted_tokens_total,
              m.spec_draft_tokens_total ? double(m.spec_accepted_tokens_total) / double(m.spec_draft_tokens_total) : 0.0,
              m.spec_drafts_total ? double(m.spec_emitted_tokens_total) / double(m.spec_drafts_total) : 0.0,
              (long long)m.steps_total);
}

// Token ids as letters (id % 26), </think> at 40: enough text for stop strings and a thinking section.
class LetterVocabulary final : public TokenVocabulary {
 public:
  bool is_valid(int32_t id) const override { return id >= 0 && id < 4096; }
  std::string token_text_bytes(int32_t id) const override {
    if (id == 40) return "</think>";
    return id >= 2 ? std::string(1, char('a' + id % 26)) : std::string();
  }
  std::optional<int32_t> token_id(const std::string& token) const override {
    if (token == "</think>") return 40;
    return std::nullopt;
  }
};

// Allows the ids congruent to the count of tokens accepted so far, mod 3.
class ModuloConstraint final : public TokenConstraint {
 public:
  void allowed(std::vector<uint64_t>& bits, size_t vocab) override {
    bits.assign((vocab + 63) / 64, 0);
    for (size_t t = accepted % 3; t < vocab; t += 3) bits[t / 64] |= uint64_t(1) << (t % 64);
  }
  void accept(int32_t token) override {
    if (size_t(token) % 3 != accepted % 3) violations++;
    accepted++;
  }
  size_t accepted = 0, violations = 0;
};

}  // namespace

TEST(SpeculativeEngine, GreedyThousandTokensEqualPlainDecodingBitForBit) {
  const auto req = request(prompt_of(40, 1), 1000, 0.0, 0);
  auto plain_engine = engine_with(tiny_model(false), 0);
  const auto t0 = std::chrono::steady_clock::now();
  auto plain = run_one(*plain_engine, req);
  const double plain_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(plain->tokens.size(), 1000u);
  // k = 3 over the first 300 tokens (a verify step of 4 rows costs more on this tiny model).
  for (int k : {1, 3}) {
    auto engine = engine_with(tiny_model(true), k);
    auto shorter = req;
    if (k == 3) shorter.params.max_tokens = 300;
    const auto t1 = std::chrono::steady_clock::now();
    auto spec = run_one(*engine, shorter);
    const double spec_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    if (k == 3) {
      plain->tokens.resize(300);
      plain->finish->completion_tokens = 300;
    }
    expect_identical(*plain, *spec, "k " + std::to_string(k));
    const std::string what = "greedy " + std::to_string(shorter.params.max_tokens) + " tokens, k " + std::to_string(k);
    std::printf("[%s] %.2f s (plain %.2f s)\n", what.c_str(), spec_s, plain_s);
    print_spec_metrics(*engine, what.c_str());
    EXPECT_GT(engine->metrics().spec_drafts_total, 0);
    const std::string text = engine->prometheus_text();
    EXPECT_NE(text.find("v4flash:spec_decode_num_accepted_tokens_total"), std::string::npos);
    EXPECT_NE(text.find("v4flash:spec_decode_tokens_per_step"), std::string::npos);
  }
}

TEST(SpeculativeEngine, BatchedSequencesGiveTheirOwnOutputs) {
  // Greedy and seeded sampling, prompts of 9 to 134 tokens, 2 drafts; alone vs all together.
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 6; ++i) requests.push_back(request(prompt_of(size_t(9 + 25 * i), uint64_t(10 + i)), 40,
                                                         i % 2 ? 0.9 : 0.0, uint64_t(70 + i)));
  auto model = tiny_model(true);
  EngineOptions opts;
  opts.prefix_block_tokens = 64;
  opts.step_token_budget = 256;
  std::vector<std::shared_ptr<Collector>> alone;
  {
    auto engine = engine_with(model, 2, opts);
    for (const auto& r : requests) alone.push_back(run_one(*engine, r));
  }
  auto engine = engine_with(model, 2, opts);
  auto together = run_all(*engine, requests);
  EXPECT_GE(engine->metrics().max_batch_sequences, 4);
  for (size_t i = 0; i < requests.size(); ++i) expect_identical(*alone[i], *together[i], "request " + std::to_string(i));
  // The greedy ones are the plain outputs too.
  auto plain_engine = engine_with(tiny_model(false), 0, opts);
  for (size_t i = 0; i < requests.size(); i += 2)
    expect_identical(*run_one(*plain_engine, requests[i]), *together[i], "plain, request " + std::to_string(i));
}

// The choices of one prompt (Engine::submit_choices) fork its state with the MTP block's: each
// drafts and verifies as it would alone, and equals its lone run.
TEST(SpeculativeEngine, ChoicesForkedAfterThePromptEqualTheirLoneRuns) {
  const auto prompt = prompt_of(100, 77);
  std::vector<GenerationRequest> requests;
  for (uint64_t i = 0; i < 3; ++i) requests.push_back(request(prompt, 30, i == 0 ? 0.0 : 0.9, 500 + i));
  auto model = tiny_model(true);
  EngineOptions opts;
  opts.prefix_block_tokens = 32;
  opts.prefix_cache_budget = 0;  // the lone runs prefill too
  std::vector<std::shared_ptr<Collector>> alone;
  {
    auto engine = engine_with(model, 2, opts);
    for (const auto& r : requests) alone.push_back(run_one(*engine, r));
  }
  auto engine = engine_with(model, 2, opts);
  std::vector<std::shared_ptr<Collector>> choices;
  std::vector<RequestCallbacks> callbacks;
  for (size_t i = 0; i < requests.size(); ++i) {
    choices.push_back(std::make_shared<Collector>());
    callbacks.push_back(choices.back()->callbacks());
  }
  engine->submit_choices(requests, std::move(callbacks));
  for (auto& c : choices) ASSERT_TRUE(c->wait(std::chrono::minutes(5)));
  EXPECT_EQ(engine->metrics().prompt_tokens_computed_total, 100);
  EXPECT_GT(engine->metrics().spec_drafts_total, 0);
  for (size_t i = 0; i < requests.size(); ++i) expect_identical(*alone[i], *choices[i], "choice " + std::to_string(i));
}

TEST(SpeculativeEngine, StopStringsThinkingBudgetAndConstraintsAsWithoutIt) {
  EngineOptions opts;
  opts.vocabulary = std::make_shared<LetterVocabulary>();
  auto plain_engine = engine_with(tiny_model(false), 0, opts);
  auto spec_engine = engine_with(tiny_model(true), 2, opts);
  // A thinking budget of 9 tokens, then a stop string taken from the plain answer's text.
  auto thinking = request(prompt_of(30, 2), 80, 0.0, 0);
  thinking.params.thinking = true;
  thinking.params.thinking_budget = 9;
  auto first = run_one(*plain_engine, thinking);
  std::string answer;
  for (const auto& t : first->tokens)
    if (!t.reasoning) answer += t.text;
  ASSERT_GT(answer.size(), 60u);
  thinking.params.stop = {answer.substr(50, 3)};
  auto plain = run_one(*plain_engine, thinking), spec = run_one(*spec_engine, thinking);
  EXPECT_EQ(plain->finish->reason, FinishReason::StopString);
  EXPECT_EQ(plain->finish->reasoning_tokens, 10);  // the budget, then the forced </think>
  expect_identical(*plain, *spec, "thinking budget and stop string");
  // A constraint: greedy equal; sampled tokens all allowed.
  for (double temperature : {0.0, 0.9}) {
    auto constrained = request(prompt_of(25, 3), 60, temperature, 5);
    auto c_plain = std::make_shared<ModuloConstraint>(), c_spec = std::make_shared<ModuloConstraint>();
    constrained.constraint = c_plain;
    auto out_plain = run_one(*plain_engine, constrained);
    constrained.constraint = c_spec;
    auto out_spec = run_one(*spec_engine, constrained);
    EXPECT_EQ(c_spec->violations, 0u);
    EXPECT_EQ(c_spec->accepted, 60u);
    for (size_t k = 0; k < out_spec->tokens.size(); ++k) ASSERT_EQ(size_t(out_spec->tokens[k].token) % 3, k % 3);
    if (temperature == 0) expect_identical(*out_plain, *out_spec, "constrained greedy");
  }
  print_spec_metrics(*spec_engine, "stop, thinking, constraint");
}

TEST(SpeculativeEngine, SampledTokensFollowThePlainDistribution) {
  // The first two generated tokens (the second is the first verified one) over many seeds, top_k 3:
  // speculative vs plain, chi-square homogeneity over the 9 pairs (upper 0.1% point at 8 degrees
  // of freedom: 26.12); the same seeds again give the same tokens.
  const int n = 300;
  auto model = tiny_model(true, 1);
  EngineOptions opts;
  opts.max_running = 100;
  opts.max_waiting = n;
  auto pairs = [&](int k, uint64_t seed_base, int count) {
    std::vector<GenerationRequest> rs;
    for (int i = 0; i < count; ++i) {
      auto r = request(prompt_of(4, 4), 2, 1.0, seed_base + uint64_t(i));
      r.params.top_k = 3;
      rs.push_back(r);
    }
    auto engine = engine_with(model, k, opts);
    std::vector<std::pair<int32_t, int32_t>> out;
    for (auto& c : run_all(*engine, rs)) {
      const auto ids = c->ids();
      EXPECT_EQ(ids.size(), 2u);
      out.emplace_back(ids.at(0), ids.at(1));
    }
    if (k) print_spec_metrics(*engine, "sampled pairs");
    return out;
  };
  const auto spec = pairs(1, 1000, n), plain = pairs(0, 5000000, n);
  const auto again = pairs(1, 1000, 50);
  EXPECT_TRUE(std::equal(again.begin(), again.end(), spec.begin()));
  std::map<std::pair<int32_t, int32_t>, std::pair<int, int>> cells;
  for (const auto& p : spec) cells[p].first++;
  for (const auto& p : plain) cells[p].second++;
  double chi2 = 0;
  for (const auto& [pair, c] : cells) {
    const double e = double(c.first + c.second) / 2;
    chi2 += (c.first - e) * (c.first - e) / e + (c.second - e) * (c.second - e) / e;
  }
  std::printf("[sampled pairs] %zu cells, chi2 %.2f (df %zu)\n", cells.size(), chi2, cells.size() - 1);
  ASSERT_LE(cells.size(), 9u);
  EXPECT_LT(chi2, 26.12);
}

TEST(SpeculativeEngine, PrefixSnapshotResumesTheDraftsExactly) {
  // A 128-token prompt ends on a block: its snapshot leaves the MTP block the last chunk's rows to
  // see; a continuation resumed from it samples exactly what it samples without the cache.
  auto model = tiny_model(true);
  const auto shared = prompt_of(128, 6);
  auto second = shared;
  for (int32_t t : prompt_of(30, 7)) second.push_back(t);
  EngineOptions opts;
  opts.prefix_block_tokens = 64;
  auto warm = engine_with(model, 2, opts);
  run_one(*warm, request(shared, 4, 0.9, 1));
  auto hit = run_one(*warm, request(second, 60, 0.9, 2));
  EXPECT_EQ(hit->finish->cached_prompt_tokens, 128);
  opts.prefix_cache_budget = 0;
  auto cold = engine_with(model, 2, opts);
  auto miss = run_one(*cold, request(second, 60, 0.9, 2));
  EXPECT_EQ(miss->finish->cached_prompt_tokens, 0);
  expect_identical(*miss, *hit, "continuation");
  EXPECT_GT(warm->metrics().spec_drafts_total, 10);
}

TEST(SpeculativeEngine, ForceAcceptEmitsEveryDraft) {
  EngineOptions opts;
  opts.force_accept = true;
  auto engine = engine_with(tiny_model(true), 2, opts);
  auto c = run_one(*engine, request(prompt_of(20, 8), 31, 0.0, 0));
  EXPECT_EQ(c->tokens.size(), 31u);
  const EngineMetrics m = engine->metrics();
  print_spec_metrics(*engine, "force accept");
  EXPECT_EQ(m.spec_accepted_tokens_total, m.spec_draft_tokens_total);
  EXPECT_EQ(m.spec_drafts_total, 10);  // 1 token from the prompt's row, then 10 steps of 3
  EXPECT_EQ(m.spec_emitted_tokens_total, 30);
}

TEST(SpeculativeEngine, OptionsAreChecked) {
  EXPECT_THROW(engine_with(tiny_model(true), kMaxSpeculativeTokens + 1), std::invalid_argument);
  EXPECT_THROW(engine_with(tiny_model(true), -1), std::invalid_argument);
  EXPECT_THROW(engine_with(tiny_model(false), 1), std::invalid_argument);  // no MTP block loaded
  EXPECT_THROW(engine_with(std::make_shared<FakeModel>(), 1), std::invalid_argument);
}
