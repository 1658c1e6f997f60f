#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "runtime/sampler.h"

using namespace v4::runtime;

namespace {
SamplingParams params(double temperature, double top_p = 1.0, int top_k = 0) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_p = top_p;
  p.top_k = top_k;
  return p;
}

std::map<int32_t, int> histogram(const std::vector<float>& logits, const SamplingParams& p, int draws, uint64_t seed) {
  RequestRng rng(seed);
  std::map<int32_t, int> counts;
  for (int i = 0; i < draws; ++i) counts[sample_token(logits, p, rng)]++;
  return counts;
}
}  // namespace

TEST(Sampler, GreedyTakesArgmaxAndLowestIdOnTies) {
  RequestRng rng(1);
  EXPECT_EQ(sample_token(std::vector<float>{0.1f, 2.0f, -1.0f, 1.5f}, params(0), rng), 1);
  EXPECT_EQ(sample_token(std::vector<float>{0.1f, 2.0f, 2.0f, 1.5f}, params(0), rng), 1);
  EXPECT_EQ(sample_token(std::vector<float>{-INFINITY, 0.5f, 0.2f}, params(0), rng), 1);
}

TEST(Sampler, GreedyDoesNotConsumeRandomness) {
  RequestRng a(7), b(7);
  sample_token(std::vector<float>{1, 2, 3}, params(0), a);
  EXPECT_EQ(a.next_u64(), b.next_u64());
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferentTokens) {
  std::vector<float> logits(50);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(std::sin(double(i)));
  auto run = [&](uint64_t seed) {
    RequestRng rng(seed);
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) out.push_back(sample_token(logits, params(1.0), rng));
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

TEST(Sampler, FrequenciesFollowSoftmaxWithTemperature) {
  // weights 1:3 at T=1 -> p(1) = 0.75; at T=0.5 -> 1:9 -> p(1) = 0.9.
  std::vector<float> logits = {0.0f, float(std::log(3.0))};
  const int draws = 40000;
  auto t1 = histogram(logits, params(1.0), draws, 5);
  EXPECT_NEAR(double(t1[1]) / draws, 0.75, 0.01);
  auto t05 = histogram(logits, params(0.5), draws, 6);
  EXPECT_NEAR(double(t05[1]) / draws, 0.9, 0.01);
}

TEST(Sampler, TopKKeepsOnlyTheKMostLikely) {
  std::vector<float> logits = {1.0f, 0.9f, 0.8f, 0.7f, 0.6f, 0.5f};
  auto counts = histogram(logits, params(1.0, 1.0, 3), 5000, 9);
  EXPECT_EQ(counts.size(), 3u);
  for (int32_t id : {0, 1, 2}) EXPECT_GT(counts[id], 1000) << id;
  auto one = histogram(logits, params(5.0, 1.0, 1), 200, 9);
  EXPECT_EQ(one.size(), 1u);
  EXPECT_EQ(one.begin()->first, 0);
}

TEST(Sampler, TopPKeepsTheSmallestHeadReachingP) {
  // probabilities 0.5, 0.3, 0.15, 0.05 (ids shuffled)
  std::vector<float> logits = {float(std::log(0.15)), float(std::log(0.5)), float(std::log(0.05)), float(std::log(0.3))};
  auto counts = histogram(logits, params(1.0, 0.75), 20000, 11);
  ASSERT_EQ(counts.size(), 2u);  // 0.5 + 0.3 >= 0.75
  EXPECT_NEAR(double(counts[1]) / 20000, 0.5 / 0.8, 0.015);
  auto wider = histogram(logits, params(1.0, 0.81), 20000, 12);
  EXPECT_EQ(wider.size(), 3u);
}

TEST(Sampler, LogprobsAreLogSoftmaxOfRawLogits) {
  std::vector<float> logits = {0.0f, float(std::log(3.0)), -100.0f};
  auto r = compute_logprobs(logits, 0, 2);
  EXPECT_NEAR(r.chosen.logprob, std::log(0.25), 1e-6);
  ASSERT_EQ(r.top.size(), 2u);
  EXPECT_EQ(r.top[0].token, 1);
  EXPECT_NEAR(r.top[0].logprob, std::log(0.75), 1e-6);
  EXPECT_EQ(r.top[1].token, 0);
  EXPECT_TRUE(compute_logprobs(logits, 2, 0).top.empty());
}

TEST(Sampler, TopLogprobsCappedAtTwentyAndTiesByLowestId) {
  std::vector<float> logits(30, 1.0f);
  logits[25] = 2.0f;
  auto r = compute_logprobs(logits, 3, 25);
  ASSERT_EQ(r.top.size(), 20u);
  EXPECT_EQ(r.top[0].token, 25);
  for (int i = 1; i < 20; ++i) EXPECT_EQ(r.top[size_t(i)].token, i - 1);
  EXPECT_THROW(compute_logprobs(logits, 30, 1), std::invalid_argument);
}

TEST(Sampler, TopPOverAWideFlatHeadWidensBeyondTheFirstCandidates) {
  // 1000 equal logits: top_p 0.5 keeps exactly the 500 lowest ids (ties by id), more than the
  // sampler's first 64-candidate sort.
  std::vector<float> logits(1000, 0.25f);
  auto counts = histogram(logits, params(1.0, 0.5), 50000, 21);
  EXPECT_EQ(counts.rbegin()->first, 499);
  EXPECT_GT(counts.size(), 490u);
  // A peaked row is cut inside the first candidates: 0.6 + 0.3 of the mass in two ids.
  std::vector<float> peaked(5000, -30.0f);
  peaked[4000] = float(std::log(0.6));
  peaked[17] = float(std::log(0.3));
  peaked[2] = float(std::log(0.1));
  auto head = histogram(peaked, params(1.0, 0.85), 20000, 22);
  ASSERT_EQ(head.size(), 2u);
  EXPECT_NEAR(double(head[4000]) / 20000, 2.0 / 3.0, 0.015);
}

TEST(Sampler, TopKThenTopP) {
  // probabilities 0.5, 0.3, 0.15, 0.05; top_k 3 renormalises to 0.5/0.95, 0.3/0.95, ...; top_p 0.8
  // of that keeps the first two (0.526 + 0.316 >= 0.8).
  std::vector<float> logits = {float(std::log(0.15)), float(std::log(0.5)), float(std::log(0.05)), float(std::log(0.3))};
  auto counts = histogram(logits, params(1.0, 0.8, 3), 20000, 23);
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_GT(counts[1], counts[3]);
  auto three = histogram(logits, params(1.0, 0.9, 3), 20000, 24);  // 0.842 < 0.9: needs the third
  EXPECT_EQ(three.size(), 3u);
  EXPECT_EQ(three.count(2), 0u);
}
