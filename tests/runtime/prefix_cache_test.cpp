#include <gtest/gtest.h>

#include <numeric>

#include "fake_model.h"
#include "runtime/prefix_cache.h"

using namespace v4::runtime;
using v4::runtime::testing::FakeState;

namespace {
std::vector<int32_t> tokens(size_t n, int32_t start = 0) {
  std::vector<int32_t> t(n);
  std::iota(t.begin(), t.end(), start);
  return t;
}
FakeState state_of(std::span<const int32_t> t) {
  FakeState s;
  s.tokens.assign(t.begin(), t.end());
  return s;
}
}  // namespace

TEST(PrefixCache, LongestWholeBlockPrefixIsFound) {
  PrefixCache cache(4, 1 << 20);
  auto t = tokens(20);
  cache.insert(std::span(t).first(4), state_of(std::span(t).first(4)));
  cache.insert(std::span(t).first(12), state_of(std::span(t).first(12)));
  auto hit = cache.lookup(t, 19);
  ASSERT_TRUE(hit.state);
  EXPECT_EQ(hit.tokens, 12);
  EXPECT_EQ(dynamic_cast<FakeState&>(*hit.state).tokens, std::vector<int32_t>(t.begin(), t.begin() + 12));
  // The limit: a lookup allowed only 11 tokens falls back to the 4-token snapshot.
  EXPECT_EQ(cache.lookup(t, 11).tokens, 4);
  EXPECT_EQ(cache.lookup(t, 3).tokens, 0);
}

TEST(PrefixCache, HitIsACopyTheCallerMayModify) {
  PrefixCache cache(4, 1 << 20);
  auto t = tokens(8);
  cache.insert(t, state_of(t));
  auto hit = cache.lookup(t, 8);
  dynamic_cast<FakeState&>(*hit.state).tokens.push_back(99);
  EXPECT_EQ(cache.lookup(t, 8).state->position(), 8);
}

TEST(PrefixCache, DifferentTokensMiss) {
  PrefixCache cache(4, 1 << 20);
  auto t = tokens(8);
  cache.insert(t, state_of(t));
  auto other = t;
  other[5] = 77;
  EXPECT_EQ(cache.lookup(other, 8).tokens, 4 * 0);  // no 4-token snapshot was stored either
  EXPECT_TRUE(cache.contains(t));
  EXPECT_FALSE(cache.contains(other));
}

TEST(PrefixCache, EvictsLeastRecentlyUsedUnderBudget) {
  // One 8-token FakeState entry: 1000 + 16*8 state bytes + 32 token bytes = 1160.
  PrefixCache cache(8, 2 * 1160);
  auto a = tokens(8, 0), b = tokens(8, 100), c = tokens(8, 200);
  EXPECT_TRUE(cache.insert(a, state_of(a)));
  EXPECT_TRUE(cache.insert(b, state_of(b)));
  EXPECT_EQ(cache.bytes(), 2 * 1160);
  EXPECT_EQ(cache.lookup(a, 8).tokens, 8);  // a becomes the most recent
  EXPECT_TRUE(cache.insert(c, state_of(c)));  // evicts b
  EXPECT_EQ(cache.entries(), 2u);
  EXPECT_TRUE(cache.contains(a));
  EXPECT_FALSE(cache.contains(b));
  EXPECT_TRUE(cache.contains(c));
  EXPECT_EQ(cache.bytes(), 2 * 1160);
  EXPECT_FALSE(cache.insert(c, state_of(c)));  // already there
}

TEST(PrefixCache, RefusesWhatCannotFitAndBadPrefixes) {
  PrefixCache cache(8, 1000);
  auto t = tokens(8);
  EXPECT_FALSE(cache.insert(t, state_of(t)));
  EXPECT_EQ(cache.bytes(), 0);
  auto odd = tokens(6);
  EXPECT_THROW(cache.insert(odd, state_of(odd)), std::invalid_argument);
  EXPECT_THROW(cache.insert(t, state_of(odd)), std::invalid_argument);  // position mismatch
}

// Tenant isolation: an entry stored under one salt is invisible under any other (and the shared,
// empty salt), while the same tenant still hits.
TEST(PrefixCache, SaltedEntriesNeverCrossSalts) {
  PrefixCache cache(4, 1 << 20);
  auto t = tokens(12);
  EXPECT_TRUE(cache.insert(std::span(t).first(8), state_of(std::span(t).first(8)), "tenant-a"));
  EXPECT_EQ(cache.lookup(t, 11, "tenant-a").tokens, 8);
  EXPECT_EQ(cache.lookup(t, 11, "tenant-b").tokens, 0);
  EXPECT_EQ(cache.lookup(t, 11).tokens, 0);
  EXPECT_TRUE(cache.contains(std::span(t).first(8), "tenant-a"));
  EXPECT_FALSE(cache.contains(std::span(t).first(8), "tenant-b"));
  // The same prefix under another salt is a separate entry.
  EXPECT_TRUE(cache.insert(std::span(t).first(8), state_of(std::span(t).first(8)), "tenant-b"));
  EXPECT_EQ(cache.entries(), 2u);
}
