// Speculative sampling's acceptance rule (runtime/speculative.h) on small vocabularies: greedy
// verdicts are the target's argmax; sampled verdicts follow the target distribution (chi-square
// against the distribution computed here from the logits, and against plain sampling's
// frequencies), with the acceptance rate sum_t min(p_t, q_t); the test can tell a wrong rule.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/speculative.h"

using namespace v4::runtime;

namespace {

// Upper 0.1% points of the chi-square distribution by degrees of freedom.
double chi2_critical_001(size_t df) {
  static const double table[] = {0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88};
  return table[df];
}

// softmax((logits - penalties + bias) / T) over the k largest (k = 0: all), computed here in
// double, independently of the sampler.
std::vector<double> expected_distribution(const std::vector<float>& logits, double temperature, int top_k) {
  std::vector<size_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return logits[a] > logits[b]; });
  const size_t keep = top_k > 0 ? size_t(top_k) : logits.size();
  std::vector<double> p(logits.size(), 0.0);
  double total = 0;
  for (size_t i = 0; i < keep; ++i) {
    const size_t t = order[i];
    if (!std::isfinite(logits[t])) continue;
    p[t] = std::exp((double(logits[t]) - double(logits[order[0]])) / temperature);
    total += p[t];
  }
  for (double& v : p) v /= total;
  return p;
}

// Goodness of fit of `counts` to `p` over the cells with p > 0 (a count where p = 0 fails at once).
double chi2_fit(const std::vector<int64_t>& counts, const std::vector<double>& p, size_t& df) {
  const double n = double(std::accumulate(counts.begin(), counts.end(), int64_t(0)));
  double chi2 = 0;
  df = 0;
  for (size_t t = 0; t < p.size(); ++t) {
    if (p[t] == 0) {
      if (counts[t] > 0) return std::numeric_limits<double>::infinity();
      continue;
    }
    const double e = n * p[t];
    chi2 += (double(counts[t]) - e) * (double(counts[t]) - e) / e;
    ++df;
  }
  --df;
  return chi2;
}

// Homogeneity of two samples over the cells either one hit.
double chi2_two_samples(const std::vector<int64_t>& a, const std::vector<int64_t>& b, size_t& df) {
  const double na = double(std::accumulate(a.begin(), a.end(), int64_t(0)));
  const double nb = double(std::accumulate(b.begin(), b.end(), int64_t(0)));
  double chi2 = 0;
  df = 0;
  for (size_t t = 0; t < a.size(); ++t) {
    const double cell = double(a[t] + b[t]);
    if (cell == 0) continue;
    const double ea = cell * na / (na + nb), eb = cell * nb / (na + nb);
    chi2 += (double(a[t]) - ea) * (double(a[t]) - ea) / ea + (double(b[t]) - eb) * (double(b[t]) - eb) / eb;
    ++df;
  }
  --df;
  return chi2;
}

struct Trials {
  std::vector<int64_t> speculative, plain, drafted;
  int64_t accepted = 0;
};

Trials run(const std::vector<float>& target, const std::vector<float>& drafter, const SamplingParams& params,
           const std::vector<int32_t>& generated, int n) {
  Trials r{std::vector<int64_t>(target.size()), std::vector<int64_t>(target.size()), std::vector<int64_t>(target.size())};
  for (int i = 0; i < n; ++i) {
    RequestRng rng(uint64_t(i) * 0x9E3779B97F4A7C15ull + 17);
    const Draft d = draw_draft(drafter, params, rng, generated);
    const Verdict v = verify_draft(target, params, rng, generated, d);
    r.speculative[size_t(v.token)]++;
    r.drafted[size_t(d.token)]++;
    r.accepted += v.accepted;
    RequestRng plain_rng(uint64_t(i) * 0xD1B54A32D192ED03ull + 5);
    r.plain[size_t(sample_token(target, params, plain_rng, generated))]++;
  }
  return r;
}

void expect_target_distribution(const Trials& r, const std::vector<double>& p, const std::vector<double>& q, int n,
                                const char* what) {
  size_t df = 0;
  const double fit = chi2_fit(r.speculative, p, df);
  std::printf("[speculative %s] chi2 vs target %.2f (df %zu, 0.1%% point %.2f)", what, fit, df, chi2_critical_001(df));
  EXPECT_LT(fit, chi2_critical_001(df)) << what;
  const double plain_fit = chi2_fit(r.plain, p, df);
  EXPECT_LT(plain_fit, chi2_critical_001(df)) << what;
  const double both = chi2_two_samples(r.speculative, r.plain, df);
  std::printf(", vs plain sampling %.2f (df %zu)", both, df);
  EXPECT_LT(both, chi2_critical_001(df)) << what;
  // The drafts alone (a rule that accepted every draft) are told apart.
  const double drafts_fit = chi2_fit(r.drafted, p, df);
  std::printf(", drafts vs target %.0f", drafts_fit);
  EXPECT_GT(drafts_fit, 10 * chi2_critical_001(df)) << what;
  // Acceptance: sum_t min(p_t, q_t), within 5 standard deviations.
  double overlap = 0;
  for (size_t t = 0; t < p.size(); ++t) overlap += std::min(p[t], q[t]);
  const double rate = double(r.accepted) / n;
  std::printf(", acceptance %.4f (expected %.4f)\n", rate, overlap);
  EXPECT_NEAR(rate, overlap, 5 * std::sqrt(overlap * (1 - overlap) / n) + 1e-9) << what;
}

const std::vector<float> kTarget = {2.0f, 1.5f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, -3.0f};
const std::vector<float> kDrafter = {-1.0f, 0.5f, 2.0f, 1.0f, -0.5f, 1.5f, -2.0f, 0.0f};

}  // namespace

TEST(SpeculativeSampling, FullVocabularyFollowsTheTarget) {
  SamplingParams params;
  params.temperature = 0.8;
  params.top_p = 1;
  const int n = 100000;
  const Trials r = run(kTarget, kDrafter, params, {}, n);
  expect_target_distribution(r, expected_distribution(kTarget, 0.8, 0), expected_distribution(kDrafter, 0.8, 0), n,
                             "T 0.8");
}

TEST(SpeculativeSampling, TopKAndPenaltiesFollowTheTarget) {
  SamplingParams params;
  params.temperature = 1.0;
  params.top_p = 1;
  params.top_k = 4;
  params.frequency_penalty = 0.4;
  params.logit_bias = {{6, 2.25f}};
  const std::vector<int32_t> generated = {0, 0, 2};
  // The same adjustments by hand: token 0 twice (-0.8), token 2 once (-0.4), token 6 +2.25 (no
  // ties at the top-4 boundary of either row).
  auto adjusted = [](std::vector<float> x) {
    x[0] -= 0.8f;
    x[2] -= 0.4f;
    x[6] += 2.25f;
    return x;
  };
  const int n = 10000;  // top_k's selection has a fixed cost per row of ~30 us
  const Trials r = run(kTarget, kDrafter, params, generated, n);
  expect_target_distribution(r, expected_distribution(adjusted(kTarget), 1.0, 4),
                             expected_distribution(adjusted(kDrafter), 1.0, 4), n, "top_k 4, penalties");
}

TEST(SpeculativeSampling, MaskedTokensAreNeverEmitted) {
  // A grammar's mask on the target (-inf) but not on the draft: the drafter's favourite is masked.
  std::vector<float> masked = kTarget;
  masked[2] = masked[5] = -std::numeric_limits<float>::infinity();
  SamplingParams params;
  params.temperature = 1.0;
  params.top_p = 1;
  const int n = 50000;
  const Trials r = run(masked, kDrafter, params, {}, n);
  EXPECT_EQ(r.speculative[2] + r.speculative[5], 0);
  expect_target_distribution(r, expected_distribution(masked, 1.0, 0), expected_distribution(kDrafter, 1.0, 0), n,
                             "masked target");
}

TEST(SpeculativeSampling, GreedyVerdictIsTheTargetsArgmaxAndDrawsNothing) {
  SamplingParams params;
  params.temperature = 0;
  RequestRng rng(42), untouched(42);
  const Draft d = draw_draft(kDrafter, params, rng, {});
  EXPECT_EQ(d.token, 2);
  EXPECT_TRUE(d.weights.empty());
  const Verdict rejected = verify_draft(kTarget, params, rng, {}, d);
  EXPECT_EQ(rejected.token, 0);
  EXPECT_FALSE(rejected.accepted);
  const Verdict accepted = verify_draft(kDrafter, params, rng, {}, d);
  EXPECT_EQ(accepted.token, 2);
  EXPECT_TRUE(accepted.accepted);
  EXPECT_EQ(rng.next_u64(), untouched.next_u64());
}

TEST(SpeculativeSampling, DrawsComeFromTheRequestStreamReproducibly) {
  SamplingParams params;
  params.temperature = 1.0;
  params.top_p = 1;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    RequestRng a(seed), b(seed), count(seed);
    const Draft da = draw_draft(kDrafter, params, a, {});
    const Verdict va = verify_draft(kTarget, params, a, {}, da);
    const Draft db = draw_draft(kDrafter, params, b, {});
    const Verdict vb = verify_draft(kTarget, params, b, {}, db);
    ASSERT_EQ(va.token, vb.token);
    ASSERT_EQ(va.accepted, vb.accepted);
    // One draw for the draft, one for the test, one more after a rejection.
    for (int k = 0; k < (va.accepted ? 2 : 3); ++k) count.next_u64();
    ASSERT_EQ(a.next_u64(), count.next_u64()) << "seed " << seed;
  }
  // The same distribution for draft and target: every draft is accepted.
  for (uint64_t seed = 0; seed < 200; ++seed) {
    RequestRng rng(seed);
    ASSERT_TRUE(verify_draft(kTarget, params, rng, {}, draw_draft(kTarget, params, rng, {})).accepted);
  }
  // A draft made for another vocabulary is refused.
  RequestRng rng(1);
  const Draft wrong = draw_draft(std::vector<float>(4, 0.0f), params, rng, {});
  EXPECT_THROW(verify_draft(kTarget, params, rng, {}, wrong), std::invalid_argument);
}
