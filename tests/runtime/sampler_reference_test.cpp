// The sampler against a plain full-sort definition of the same rule (sampler.h): same token for
// the same seed and logits over many distributions and parameters.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <thread>

#include "runtime/sampler.h"

using namespace v4::runtime;

namespace {

// Steps 5-6 by sorting the whole row.
int32_t full_sort_sample(std::span<const float> logits, const SamplingParams& p, uint64_t seed,
                         std::span<const int32_t> generated = {}) {
  std::vector<float> w = sampling_weights(logits, p, generated);
  std::vector<int32_t> ids(w.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    return w[size_t(a)] != w[size_t(b)] ? w[size_t(a)] > w[size_t(b)] : a < b;
  });
  size_t kept = ids.size();
  if (p.top_k > 0) kept = std::min(kept, size_t(p.top_k));
  if (p.top_p < 1) {
    double total = 0;
    for (size_t i = 0; i < kept; ++i) total += double(w[size_t(ids[i])]);
    double cumulative = 0;
    for (size_t i = 0; i < kept; ++i) {
      cumulative += double(w[size_t(ids[i])]);
      if (cumulative >= p.top_p * total) {
        kept = i + 1;
        break;
      }
    }
  }
  for (size_t i = kept; i < ids.size(); ++i) w[size_t(ids[i])] = 0;
  RequestRng rng(seed);
  return draw_token(w, rng.next_unit());
}

SamplingParams params(double t, double top_p, int top_k, double min_p = 0) {
  SamplingParams p;
  p.temperature = t;
  p.top_p = top_p;
  p.top_k = top_k;
  p.min_p = min_p;
  return p;
}

std::vector<std::vector<float>> distributions(size_t vocab, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> normal(0, 1);
  std::vector<std::vector<float>> rows;
  rows.emplace_back(vocab, 0.5f);  // flat
  std::vector<float> peaked(vocab, -20.0f);
  peaked[vocab / 3] = 5;
  rows.push_back(peaked);
  std::vector<float> ties(vocab);  // three levels repeated: ties everywhere
  for (size_t i = 0; i < vocab; ++i) ties[i] = float(i % 3);
  rows.push_back(ties);
  // 0.01 and 0.05: near flat, every weight within a factor of two of the largest (the demo's
  // random-weight logits; the cut's first pass spreads them over the row's own key range)
  for (float scale : {0.01f, 0.05f, 0.5f, 3.0f, 12.0f}) {
    std::vector<float> r(vocab);
    for (auto& x : r) x = normal(gen) * scale;
    rows.push_back(r);
  }
  std::vector<float> masked(vocab);
  for (size_t i = 0; i < vocab; ++i) masked[i] = i % 5 == 0 ? normal(gen) : -INFINITY;
  rows.push_back(masked);
  std::vector<float> near_ties(vocab);  // values a few ulps apart
  for (size_t i = 0; i < vocab; ++i) near_ties[i] = std::nextafter(1.0f, 2.0f * float(i % 7));
  rows.push_back(near_ties);
  return rows;
}

}  // namespace

TEST(SamplerReference, SameTokenAsTheFullSortDefinition) {
  int checked = 0;
  for (size_t vocab : {size_t(1), size_t(2), size_t(7), size_t(300), size_t(5000)}) {
    for (const auto& row : distributions(vocab, vocab)) {
      for (double t : {0.3, 1.0, 2.0})
        for (double top_p : {0.1, 0.5, 0.9, 0.99, 1.0})
          for (int top_k : {0, 1, 5, 64})
            for (double min_p : {0.0, 0.05}) {
              const auto p = params(t, top_p, top_k, min_p);
              for (uint64_t seed = 0; seed < 4; ++seed) {
                RequestRng rng(seed * 7919 + vocab);
                const int32_t got = sample_token(row, p, rng);
                ASSERT_EQ(got, full_sort_sample(row, p, seed * 7919 + vocab))
                    << "vocab " << vocab << " t " << t << " top_p " << top_p << " top_k " << top_k
                    << " min_p " << min_p << " seed " << seed;
                ++checked;
              }
            }
    }
  }
  EXPECT_GT(checked, 10000);
}

TEST(SamplerReference, FullVocabularyFlatAndRandomRows) {
  const size_t vocab = 128846;
  for (const auto& row : distributions(vocab, 99))
    for (double top_p : {0.9, 0.99})
      for (uint64_t seed = 0; seed < 3; ++seed) {
        const auto p = params(0.7, top_p, 0);
        RequestRng rng(seed);
        ASSERT_EQ(sample_token(row, p, rng), full_sort_sample(row, p, seed));
      }
}

TEST(SamplerReference, TopPCutsInsideATieByLowestIds) {
  // 1000 equal weights: top_p 0.5 keeps exactly ids 0..499.
  std::vector<float> row(1000, 0.25f);
  int32_t highest = -1;
  for (uint64_t seed = 0; seed < 3000; ++seed) {
    RequestRng rng(seed);
    highest = std::max(highest, sample_token(row, params(1.0, 0.5, 0), rng));
  }
  EXPECT_EQ(highest, 499);
}

// Ties of one weight: how many the cut keeps, against the full-sort definition's count (its sums in
// sorted order), with and without tokens above the tie (the closed form and the walk).
TEST(SamplerReference, TiedWeightsKeepTheDefinitionsCount) {
  for (size_t vocab : {size_t(1), size_t(7), size_t(1000), size_t(128846)})
    for (int raised : {0, 3})
      for (double top_p : {0.1, 0.333, 0.5, 0.9, 0.99, 0.999, 1.0})
        for (int top_k : {0, 1, 5, 777}) {
          std::vector<float> row(vocab, 0.0f);
          for (int r = 0; r < raised && size_t(r) < vocab; ++r) row[vocab - 1 - size_t(r)] = 0.5f;
          const auto p = params(0.7, top_p, top_k);
          // the definition: sort (ids ascending among equals), top_k, then top_p's shortest head
          std::vector<float> w = sampling_weights(row, p);
          std::vector<int32_t> ids(w.size());
          std::iota(ids.begin(), ids.end(), 0);
          std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return w[size_t(a)] > w[size_t(b)]; });
          size_t kept = ids.size();
          if (top_k > 0) kept = std::min(kept, size_t(top_k));
          if (top_p < 1) {
            double total = 0, cumulative = 0;
            for (size_t i = 0; i < kept; ++i) total += double(w[size_t(ids[i])]);
            for (size_t i = 0; i < kept; ++i) {
              cumulative += double(w[size_t(ids[i])]);
              if (cumulative >= top_p * total) {
                kept = i + 1;
                break;
              }
            }
          }
          std::vector<float> got;
          draw_weights(row, p, {}, got);
          const size_t nonzero = size_t(std::count_if(got.begin(), got.end(), [](float v) { return v > 0; }));
          ASSERT_EQ(nonzero, kept) << "vocab " << vocab << " raised " << raised << " top_p " << top_p << " top_k "
                                   << top_k;
          for (size_t i = 0; i < kept; ++i) ASSERT_GT(got[size_t(ids[i])], 0.0f) << "id " << ids[i];
        }
}

TEST(SamplerReference, NanAndPositiveInfinityAreRefused) {
  RequestRng rng(1);
  for (double t : {0.0, 0.7}) {
    EXPECT_THROW(sample_token(std::vector<float>{0.1f, NAN, 0.2f}, params(t, 0.9, 0), rng), std::invalid_argument);
    EXPECT_THROW(sample_token(std::vector<float>{0.1f, INFINITY}, params(t, 0.9, 0), rng), std::invalid_argument);
    EXPECT_THROW(sample_token(std::vector<float>{-INFINITY, -INFINITY}, params(t, 0.9, 0), rng),
                 std::invalid_argument);
  }
  // -inf is a masked token, never drawn.
  for (uint64_t seed = 0; seed < 200; ++seed) {
    RequestRng r(seed);
    EXPECT_NE(sample_token(std::vector<float>{-INFINITY, 0, 0, -INFINITY}, params(2.0, 1.0, 0), r), 0);
  }
}

TEST(SamplerReference, LogitBiasAndPenaltiesMoveTheLogits) {
  std::vector<float> row = {1.0f, 2.0f, 1.5f};
  RequestRng rng(1);
  auto greedy = params(0, 1, 0);
  EXPECT_EQ(sample_token(row, greedy, rng), 1);
  greedy.logit_bias = {{0, 5.0f}};
  EXPECT_EQ(sample_token(row, greedy, rng), 0);
  greedy.logit_bias = {{1, -100.0f}};
  EXPECT_EQ(sample_token(row, greedy, rng), 2);
  auto pen = params(0, 1, 0);
  pen.presence_penalty = 0.6;  // 2.0 - 0.6 = 1.4 < 1.5
  const std::vector<int32_t> once = {1};
  EXPECT_EQ(sample_token(row, pen, rng, once), 2);
  pen.presence_penalty = 0;
  pen.frequency_penalty = 0.3;  // one use: 1.7 still wins; two: 1.4 loses
  EXPECT_EQ(sample_token(row, pen, rng, once), 1);
  const std::vector<int32_t> twice = {1, 0, 1};
  EXPECT_EQ(sample_token(row, pen, rng, twice), 2);
  // Negative penalties encourage repeats.
  pen.frequency_penalty = -2;
  EXPECT_EQ(sample_token(row, pen, rng, std::vector<int32_t>{0}), 0);
}

TEST(SamplerReference, MinPDropsTokensBelowTheFractionOfTheBest) {
  // weights 1, 0.5, 0.04: min_p 0.1 never draws id 2.
  std::vector<float> row = {0, float(std::log(0.5)), float(std::log(0.04))};
  std::vector<int> counts(3);
  for (uint64_t seed = 0; seed < 4000; ++seed) {
    RequestRng rng(seed);
    counts[size_t(sample_token(row, params(1.0, 1.0, 0, 0.1), rng))]++;
  }
  EXPECT_EQ(counts[2], 0);
  EXPECT_NEAR(double(counts[1]) / 4000, 1.0 / 3.0, 0.03);
}

TEST(SamplerReference, ExpMatchesStdExp) {
  for (float x = -90; x <= 0; x += 0.0137f) {
    const float want = x < -87 ? 0.0f : std::exp(x);
    EXPECT_NEAR(sampling_exp(x), want, 1e-6 * want + 1e-38) << x;
  }
  EXPECT_EQ(sampling_exp(0), 1.0f);
  EXPECT_EQ(sampling_exp(-INFINITY), 0.0f);
}

TEST(SamplerReference, SameTokensOnAnyThread) {
  // Batch invariance rests on this: a pure function of (row, params, generated, rng).
  std::vector<float> row(128846);
  std::mt19937_64 gen(3);
  std::normal_distribution<float> normal(0, 2);
  for (auto& x : row) x = normal(gen);
  auto run = [&] {
    RequestRng rng(42);
    std::vector<int32_t> out;
    for (int i = 0; i < 16; ++i) out.push_back(sample_token(row, params(1.0, 0.9, 0), rng));
    return out;
  };
  const auto here = run();
  std::vector<int32_t> there;
  std::thread([&] { there = run(); }).join();
  EXPECT_EQ(here, there);
}
