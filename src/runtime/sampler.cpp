#include "runtime/sampler.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

// The O(vocabulary) loops are compiled for AVX-512, AVX2 and baseline x86-64 and picked at load
// (GCC function multiversioning): the binary is built for baseline x86-64, where they would run
// 4 floats wide. The same float operations in the same order in every clone (no FMA contraction:
// -ffp-contract=off), so the weights, masses and tokens are the same bits on every CPU.
#if defined(__x86_64__) && defined(__GNUC__)
#define V4_SAMPLER_LOOP __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define V4_SAMPLER_LOOP
#endif

namespace v4::runtime {

uint64_t RequestRng::next_u64() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double RequestRng::next_unit() { return double(next_u64() >> 11) * 0x1.0p-53; }

namespace {

// e^x = 2^n * e^f with n = round(x / ln 2), f = x - n ln 2 (Cody-Waite, two-part ln 2) in
// [-0.35, 0.35], e^f by its degree-6 Taylor polynomial (relative error < 2e-7). Plain arithmetic,
// so the loops calling it vectorise.
inline float exp_nonpositive(float x) {
  const float xc = std::max(x, -87.0f);
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round (1.5 * 2^23 trick)
  const float f = (xc - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  float p = 1.0f / 720;
  p = p * f + 1.0f / 120;
  p = p * f + 1.0f / 24;
  p = p * f + 1.0f / 6;
  p = p * f + 0.5f;
  p = p * f + 1.0f;
  p = p * f + 1.0f;
  const float scale = std::bit_cast<float>(uint32_t(int32_t(n) + 127) << 23);
  return x < -87.0f ? 0.0f : p * scale;
}

}  // namespace

float sampling_exp(float x) { return exp_nonpositive(x); }

namespace {

uint32_t key_of(float w) { return std::bit_cast<uint32_t>(w); }  // monotone for w >= 0

// Row checks and steps 1 (into `x`), returning max x.
constexpr int kLanes = 16;  // independent accumulators, so reductions vectorise in a fixed order

V4_SAMPLER_LOOP float max_of(std::span<const float> x) {
  float lanes[kLanes];
  std::fill(lanes, lanes + kLanes, -std::numeric_limits<float>::infinity());
  size_t i = 0;
  for (; i + kLanes <= x.size(); i += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] = lanes[l] > x[i + size_t(l)] ? lanes[l] : x[i + size_t(l)];
  float m = -std::numeric_limits<float>::infinity();
  for (; i < x.size(); ++i) m = std::max(m, x[i]);
  for (float v : lanes) m = std::max(m, v);
  return m;
}

// x = logits (sized alike); whether any is NaN or +inf. Nothing that throws runs inside a
// multiversioned function: with GCC 12 a throw through its dispatcher terminates the program.
V4_SAMPLER_LOOP bool copy_checked(std::span<const float> logits, std::span<float> x) {
  int bad_lanes[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= x.size(); i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const float v = logits[i + size_t(l)];
      x[i + size_t(l)] = v;
      bad_lanes[l] |= (v != v) | (v == std::numeric_limits<float>::infinity());
    }
  int bad = 0;
  for (; i < x.size(); ++i) {
    x[i] = logits[i];
    bad |= (x[i] != x[i]) | (x[i] == std::numeric_limits<float>::infinity());
  }
  for (int b : bad_lanes) bad |= b;
  return bad != 0;
}

// Row checks and step 1 (into `x`), returning max x.
float adjusted_logits(std::span<const float> logits, const SamplingParams& p, std::span<const int32_t> generated,
                      std::vector<float>& x) {
  x.resize(logits.size());
  if (copy_checked(logits, x)) throw std::invalid_argument("sampler: the logits row holds NaN or +inf");
  for (auto [token, bias] : p.logit_bias)
    if (token >= 0 && size_t(token) < x.size()) x[size_t(token)] += bias;
  if ((p.frequency_penalty != 0 || p.presence_penalty != 0) && !generated.empty()) {
    std::vector<int32_t> sorted(generated.begin(), generated.end());
    std::sort(sorted.begin(), sorted.end());
    for (size_t j = 0; j < sorted.size();) {
      size_t k = j;
      while (k < sorted.size() && sorted[k] == sorted[j]) ++k;
      if (sorted[j] >= 0 && size_t(sorted[j]) < x.size())
        x[size_t(sorted[j])] -= float(p.frequency_penalty * double(k - j) + p.presence_penalty);
      j = k;
    }
  }
  const float max_x = max_of(x);
  if (max_x == -std::numeric_limits<float>::infinity())
    throw std::invalid_argument("sampler: no token has a finite logit");
  return max_x;
}

// Steps 3-4 in place over x.
V4_SAMPLER_LOOP void weights_in_place(std::vector<float>& x, float max_x, const SamplingParams& p) {
  const float inv_t = float(1.0 / p.temperature);
  for (float& v : x) v = exp_nonpositive((v - max_x) * inv_t);
  if (p.min_p > 0) {
    const float floor = float(p.min_p);
    for (float& v : x) v = v >= floor ? v : 0.0f;
  }
}

// The first id holding the row's maximum (max_of's result, so no second comparison pass).
int32_t first_argmax(std::span<const float> x, float max_x) {
  return int32_t(std::find(x.begin(), x.end(), max_x) - x.begin());
}

// Which tokens a top_k or top_p cut keeps, in the order (w desc, id asc): those with key > `key`,
// and of the ties (key == `key`) the first `ties` by id.
struct Cut {
  uint32_t key = 0;
  int64_t ties = std::numeric_limits<int64_t>::max();
};

// What a cut keeps: the first `k` of the order (k > 0), or the shortest head whose mass reaches
// top_p times the mass of the whole row.
struct Goal {
  int64_t k = 0;
  double top_p = 0;
};

// The smallest and largest key of the row (the float bits: their order is the weights' order).
V4_SAMPLER_LOOP void key_range(std::span<const float> w, uint32_t& kmin, uint32_t& kmax) {
  uint32_t lo[kLanes], hi[kLanes];
  std::fill(lo, lo + kLanes, UINT32_MAX);
  std::fill(hi, hi + kLanes, 0u);
  size_t i = 0;
  for (; i + kLanes <= w.size(); i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const uint32_t k = key_of(w[i + size_t(l)]);
      lo[l] = lo[l] < k ? lo[l] : k;
      hi[l] = hi[l] > k ? hi[l] : k;
    }
  kmin = UINT32_MAX, kmax = 0;
  for (; i < w.size(); ++i) kmin = std::min(kmin, key_of(w[i])), kmax = std::max(kmax, key_of(w[i]));
  for (int l = 0; l < kLanes; ++l) kmin = std::min(kmin, lo[l]), kmax = std::max(kmax, hi[l]);
}

// Radix selection of the cut: histogram passes over the float bits, each over the ids still in the
// boundary bucket (a pass that leaves them all in one bucket gathers nothing; a group of equal
// weights stops the passes), then the exact ties left, in id order. The first pass buckets the
// row's own key range (at most 2048 buckets from its smallest key: a near-flat row, all weights
// within a factor of two, spreads over them instead of filling two or three fixed buckets); the
// rest take the bits below it, 11 at a time. A row holding zeros buckets fixed bit fields
// (21-31, 10-20, 0-9), which hold every key of [0, 1].
Cut find_cut(std::span<const float> w, Goal goal) {
  struct Level { int shift, bits; uint32_t offset; };
  std::array<Level, 3> levels{{{21, 11, 0}, {10, 11, 0}, {0, 10, 0}}};
  size_t n_levels = levels.size();
  uint32_t lo = 0, hi = 0;  // the row's key range
  key_range(w, lo, hi);
  {
    int s1 = 0;
    while (s1 < 32 && (hi >> s1) - (lo >> s1) >= 2048) ++s1;
    if (lo > 0 && lo <= hi && s1 <= 22) {  // 22: three passes reach bit 0 (always so for w <= 1)
      levels[0] = {s1, 11, lo >> s1};
      n_levels = 1;
      for (int shift = s1; shift > 0;) {
        const int next = std::max(0, shift - 11);
        levels[n_levels++] = {next, shift - next, 0};
        shift = next;
      }
    }
  }
  thread_local std::vector<int32_t> group, next;
  // kCopies interleaved histograms (id i counts into copy i % kCopies), summed in copy order: runs
  // of ids in one bucket (a flat row puts almost all of them in one) would otherwise chain every
  // add through the same memory location.
  constexpr size_t kCopies = 4;
  thread_local std::array<std::array<int64_t, 2048>, kCopies> counts;
  thread_local std::array<std::array<double, 2048>, kCopies> masses;
  thread_local std::array<int64_t, 2048> count;
  thread_local std::array<double, 2048> mass;
  bool whole_row = true;
  int64_t group_size = int64_t(w.size()), count_above = 0;
  double mass_above = 0, target = 0;
  auto enough = [&](int64_t c, double m) { return goal.k > 0 ? c >= goal.k : m >= target; };
  uint32_t prefix = 0;
  bool identical = false;
  for (size_t li = 0; li < n_levels && !identical; ++li) {
    const Level level = levels[li];
    const uint32_t mask = (1u << level.bits) - 1;
    for (size_t c = 0; c < kCopies; ++c) {
      std::fill(counts[c].begin(), counts[c].begin() + mask + 1, 0);
      std::fill(masses[c].begin(), masses[c].begin() + mask + 1, 0.0);
    }
    auto add = [&](size_t c, uint32_t k, float v) {
      const uint32_t b = ((k >> level.shift) - level.offset) & mask;
      counts[c][b]++;
      masses[c][b] += double(v);
    };
    // The whole row (the first pass): its key range is known, so the loop only counts.
    uint32_t kmin = lo, kmax = hi;
    const size_t n_ids = whole_row ? w.size() : group.size();
    size_t j = 0;
    if (whole_row) {
      for (; j + kCopies <= n_ids; j += kCopies)
        for (size_t c = 0; c < kCopies; ++c) add(c, key_of(w[j + c]), w[j + c]);
      for (size_t c = 0; j < n_ids; ++j, ++c) add(c, key_of(w[j]), w[j]);
    } else {
      kmin = UINT32_MAX, kmax = 0;
      auto visit = [&](size_t c, size_t i) {
        const uint32_t k = key_of(w[i]);
        kmin = std::min(kmin, k);
        kmax = std::max(kmax, k);
        add(c, k, w[i]);
      };
      for (; j + kCopies <= n_ids; j += kCopies)
        for (size_t c = 0; c < kCopies; ++c) visit(c, size_t(group[j + c]));
      for (size_t c = 0; j < n_ids; ++j, ++c) visit(c, size_t(group[j]));
    }
    for (uint32_t b = 0; b <= mask; ++b) {
      count[b] = counts[0][b];
      mass[b] = masses[0][b];
      for (size_t c = 1; c < kCopies; ++c) {
        count[b] += counts[c][b];
        mass[b] += masses[c][b];
      }
    }
    if (li == 0) {
      double total = 0;
      for (uint32_t b = 0; b <= mask; ++b) total += mass[b];
      target = goal.top_p * total;
    }
    int boundary = -1;
    for (int b = int(mask); b >= 0; --b) {
      if (count[size_t(b)] == 0) continue;
      if (enough(count_above + count[size_t(b)], mass_above + mass[size_t(b)])) {
        boundary = b;
        break;
      }
      count_above += count[size_t(b)];
      mass_above += mass[size_t(b)];
    }
    // Never enough: at the top level the whole row is kept; below, rounding made the parts of a
    // bucket sum short of the bucket, and its whole group is kept.
    if (boundary < 0) return Cut{prefix, std::numeric_limits<int64_t>::max()};
    prefix |= (uint32_t(boundary) + level.offset) << level.shift;
    if (count[size_t(boundary)] == group_size) {  // the group stays whole
      identical = kmin == kmax;
      if (identical) prefix = kmin;
      continue;
    }
    // Branch-free gather: the split is data-dependent and often close to random.
    next.resize(size_t(count[size_t(boundary)]) + 1);
    size_t n = 0;
    const uint32_t want = prefix >> level.shift;
    auto gather = [&](size_t i) {
      next[std::min(n, next.size() - 1)] = int32_t(i);
      n += (key_of(w[i]) >> level.shift) == want;
    };
    if (whole_row) {
      for (size_t i = 0; i < w.size(); ++i) gather(i);
    } else {
      for (int32_t i : group) gather(size_t(i));
    }
    next.resize(n);
    std::swap(group, next);
    group_size = int64_t(group.size());
    whole_row = false;
  }
  // The ties (key == prefix), in id order. They all weigh the same float w, so the count that
  // reaches the goal has a closed form where the walk's sums are exact: for top_k always; for
  // top_p when nothing lies above the ties (each sum is then r * w, exact in double for r < 2^29:
  // w has 24 significant bits). A flat row no longer walks its 128K ids one add at a time.
  const int64_t n_ties = whole_row ? int64_t(w.size()) : int64_t(group.size());
  if (n_ties > 0 && (goal.k > 0 || mass_above == 0)) {
    const double wt = double(std::bit_cast<float>(prefix));
    int64_t need = 0;
    if (goal.k > 0) {
      need = std::max<int64_t>(1, goal.k - count_above);
    } else if (wt > 0) {
      const double q = std::ceil(target / wt);
      need = q < 1 ? 1 : q > double(n_ties) + 1 ? n_ties + 1 : int64_t(q);
      while (need > 1 && double(need - 1) * wt >= target) --need;  // the division may round either way
      while (need <= n_ties && double(need) * wt < target) ++need;
    } else {
      need = 0 >= target ? 1 : n_ties + 1;  // zero weights reach only a target of zero
    }
    if (need <= n_ties) return Cut{prefix, need};
    return Cut{prefix, std::numeric_limits<int64_t>::max()};
  }
  // Left: top_p ties below heavier tokens. They are a gathered group (ties of the whole row have
  // nothing above them and took the closed form).
  double m = mass_above;
  int64_t r = 0;
  for (int32_t i : group) {
    m += double(w[size_t(i)]);
    if (enough(count_above + ++r, m)) return Cut{prefix, r};
  }
  return Cut{prefix, std::numeric_limits<int64_t>::max()};
}

// The drop below the cut is branch-free (on a spread row whether a token is kept is close to
// random) and vectorises; the ties are walked only when the cut keeps part of them.
V4_SAMPLER_LOOP void apply_cut(std::span<float> w, Cut cut) {
  int64_t equal = 0;
  for (float& v : w) {
    const uint32_t k = key_of(v);
    equal += k == cut.key;
    v = k < cut.key ? 0.0f : v;
  }
  if (equal <= cut.ties) return;
  int64_t ties = 0;
  for (float& v : w)
    if (key_of(v) == cut.key && ties++ >= cut.ties) v = 0.0f;
}

// Block masses in the documented order (sampler.h); returns the total.
V4_SAMPLER_LOOP double block_masses_into(std::span<const float> w, std::span<double> blocks) {
  double total = 0;
  for (size_t b = 0; b < blocks.size(); ++b) {
    const size_t begin = b * size_t(kSampleBlock), end = std::min(w.size(), begin + size_t(kSampleBlock));
    double lanes[8] = {};
    size_t i = begin;
    for (; i + 8 <= end; i += 8)
      for (int l = 0; l < 8; ++l) lanes[l] += double(w[i + size_t(l)]);
    double m = 0;
    for (double v : lanes) m += v;
    for (; i < end; ++i) m += double(w[i]);
    blocks[b] = m;
    total += m;
  }
  return total;
}

double block_masses(std::span<const float> w, std::vector<double>& blocks) {
  blocks.assign((w.size() + kSampleBlock - 1) / kSampleBlock, 0.0);
  return block_masses_into(w, blocks);
}

// Step 5 in place over the weights of steps 3-4.
void cut_in_place(std::vector<float>& w, const SamplingParams& p) {
  if (p.top_k > 0 && size_t(p.top_k) < w.size()) apply_cut(w, find_cut(w, Goal{p.top_k, 0}));
  if (p.top_p > 0 && p.top_p < 1) apply_cut(w, find_cut(w, Goal{0, p.top_p}));
}

int32_t draw_with(std::span<const float> w, const std::vector<double>& blocks, double total, double unit) {
  const double u = unit * total;
  double cumulative = 0;
  size_t b = 0;
  while (b + 1 < blocks.size() && !(u < cumulative + blocks[b])) cumulative += blocks[b++];
  const size_t begin = b * kSampleBlock, end = std::min(w.size(), begin + kSampleBlock);
  int32_t last = -1;
  for (size_t i = begin; i < end; ++i) {
    if (w[i] <= 0) continue;
    cumulative += double(w[i]);
    last = int32_t(i);
    if (u < cumulative) return last;
  }
  // Rounding left u just above the block's running sum: its last token with weight, else the
  // last such token of the row.
  if (last >= 0) return last;
  for (size_t i = w.size(); i-- > 0;)
    if (w[i] > 0) return int32_t(i);
  throw std::invalid_argument("sampler: every weight is zero");
}

}  // namespace

std::vector<float> sampling_weights(std::span<const float> logits, const SamplingParams& params,
                                    std::span<const int32_t> generated) {
  std::vector<float> w;
  const float max_x = adjusted_logits(logits, params, generated, w);
  weights_in_place(w, max_x, params);
  return w;
}

double draw_weights(std::span<const float> logits, const SamplingParams& params, std::span<const int32_t> generated,
                    std::vector<float>& w) {
  if (logits.empty()) throw std::invalid_argument("draw_weights: empty logits");
  const float max_x = adjusted_logits(logits, params, generated, w);
  weights_in_place(w, max_x, params);
  cut_in_place(w, params);
  std::vector<double> blocks;
  return block_masses(w, blocks);
}

int32_t draw_token(std::span<const float> w, double unit) {
  std::vector<double> blocks;
  const double total = block_masses(w, blocks);
  return draw_with(w, blocks, total, unit);
}

int32_t sample_token(std::span<const float> logits, const SamplingParams& params, RequestRng& rng,
                     std::span<const int32_t> generated) {
  if (logits.empty()) throw std::invalid_argument("sample_token: empty logits");
  thread_local std::vector<float> w;
  thread_local std::vector<double> blocks;
  const float max_x = adjusted_logits(logits, params, generated, w);
  if (!(params.temperature > kGreedyTemperature)) return first_argmax(w, max_x);
  weights_in_place(w, max_x, params);
  cut_in_place(w, params);
  const double total = block_masses(w, blocks);
  return draw_with(w, blocks, total, rng.next_unit());
}

LogprobResult compute_logprobs(std::span<const float> logits, int32_t token, int n_top) {
  if (token < 0 || size_t(token) >= logits.size())
    throw std::invalid_argument("compute_logprobs: token outside the logits row");
  auto clean = [](float x) { return std::isnan(x) ? -std::numeric_limits<float>::infinity() : x; };
  double max_logit = -std::numeric_limits<double>::infinity();
  for (float x : logits) max_logit = std::max(max_logit, double(clean(x)));
  double sum = 0;
  for (float x : logits) sum += std::exp(double(clean(x)) - max_logit);
  const double log_norm = max_logit + std::log(sum);
  auto logprob = [&](int32_t id) { return float(double(clean(logits[size_t(id)])) - log_norm); };

  LogprobResult result;
  result.chosen = {token, logprob(token)};
  n_top = std::clamp(n_top, 0, int(std::min<size_t>(logits.size(), kMaxTopLogprobs)));
  if (n_top > 0) {
    std::vector<int32_t> ids(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(ids.begin(), ids.begin() + n_top, ids.end(), [&](int32_t a, int32_t b) {
      const float la = clean(logits[size_t(a)]), lb = clean(logits[size_t(b)]);
      return la != lb ? la > lb : a < b;
    });
    for (int i = 0; i < n_top; ++i) result.top.push_back({ids[size_t(i)], logprob(ids[size_t(i)])});
  }
  return result;
}

}  // namespace v4::runtime
