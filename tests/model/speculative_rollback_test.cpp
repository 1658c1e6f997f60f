// Speculative steps, Model::rollback() and chained MTP drafts: feeding n tokens speculatively and
// keeping the first `keep` leaves the state bit for bit as feeding only those tokens would have
// (the whole state compared through the disk cache's encoding, then by decoding past the window),
// at positions where the dropped or the kept tokens complete ratio-4 and ratio-128 compressor
// blocks; a verify step's rows are the rows of feeding its tokens one at a time; chained drafts
// leave no trace in the MTP block's window.
#include <cstring>

#include "model/state_codec.h"
#include "reference_fixture.h"

namespace v4::model::testing {
namespace {

std::unique_ptr<Model> load_mtp(bool exact) {
  ModelOptions o;
  o.exact = exact;
  o.threads = 1;
  o.enable_mtp = true;
  return Model::load(tiny_checkpoint(), o);
}

std::vector<int32_t> pseudo_random_tokens(size_t n, int64_t vocab) {
  std::vector<int32_t> t(n);
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (auto& x : t) {
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    x = int32_t(2 + h % uint64_t(vocab - 2));
  }
  return t;
}

std::vector<float> feed(Model& m, SequenceState& s, std::span<const int32_t> tokens, bool speculative = false) {
  BatchItem item{&s, tokens, true};
  item.speculative = speculative;
  return m.forward(std::span<const BatchItem>(&item, 1));
}

std::vector<float> draft(Model& m, SequenceState& s, std::span<const int32_t> next, bool chained = false) {
  const MtpItem item{&s, next, chained, true};
  return m.mtp_draft(std::span<const MtpItem>(&item, 1));
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<std::byte> encoded(const SequenceState& s) {
  std::vector<std::byte> out;
  encode_state(s, out);
  return out;
}

class SpeculativeRollback : public ::testing::TestWithParam<bool> {};

TEST_P(SpeculativeRollback, KeptTokensLeaveTheStateOfFeedingOnlyThem) {
  auto m = load_mtp(GetParam());
  const int64_t V = m->config().vocab_size, window = m->config().sliding_window;
  const std::vector<int32_t> tokens = pseudo_random_tokens(600, V);
  // 3 speculative tokens at p0: the kept or the dropped ones complete the ratio-128 block ending at
  // 127, 255 or 383 (or a ratio-4 block, or none).
  auto base = m->new_state();
  for (int64_t p0 : {125, 126, 253, 381, 382}) {
    const int64_t from = base->position();
    feed(*m, *base, std::span<const int32_t>(tokens.data() + from, size_t(p0 - from)));
    m->mtp_logits(*base, std::span<const int32_t>(tokens.data() + from + 1, size_t(p0 - from)), false);
    for (int64_t keep : {0, 1, 2, 3}) {
      auto spec = base->clone(), plain = base->clone();
      std::vector<int32_t> drafted(tokens.begin() + p0, tokens.begin() + p0 + 3);
      for (size_t j = size_t(keep); j < drafted.size(); ++j) drafted[j] = int32_t((drafted[j] + 7) % V);  // rejected
      const std::vector<float> spec_rows = feed(*m, *spec, drafted, true);
      m->rollback(*spec, keep);
      ASSERT_EQ(spec->position(), p0 + keep);
      if (keep > 0) {
        // The kept rows of the verify step are the rows of feeding those tokens one at a time.
        std::vector<float> plain_rows;
        for (int64_t j = 0; j < keep; ++j) {
          const auto row = feed(*m, *plain, std::span<const int32_t>(tokens.data() + p0 + j, 1));
          plain_rows.insert(plain_rows.end(), row.begin(), row.end());
          if (j + 1 < keep) m->mtp_logits(*plain, std::span<const int32_t>(tokens.data() + p0 + j + 1, 1));
        }
        EXPECT_TRUE(same_bits(std::vector<float>(spec_rows.begin(), spec_rows.begin() + keep * V), plain_rows));
        // The MTP block continues from the kept streams (the plain state's last row only).
        auto fed_at_once = base->clone();
        feed(*m, *fed_at_once, std::span<const int32_t>(tokens.data() + p0, size_t(keep)));
        const std::span<const int32_t> next(tokens.data() + p0 + 1, size_t(keep));
        EXPECT_TRUE(same_bits(m->mtp_logits(*spec, next, true), m->mtp_logits(*fed_at_once, next, true)))
            << "MTP at p0 " << p0 << " keep " << keep;
        m->mtp_logits(*plain, std::span<const int32_t>(tokens.data() + p0 + keep, 1));
        EXPECT_EQ(encoded(*spec), encoded(*fed_at_once)) << "p0 " << p0 << " keep " << keep;
        EXPECT_EQ(encoded(*spec), encoded(*plain)) << "p0 " << p0 << " keep " << keep;
      } else {
        EXPECT_EQ(encoded(*spec), encoded(*plain)) << "p0 " << p0 << " keep 0";
      }
      // Decode on from both (past the window once: every overwritten ring row is read again).
      const int64_t steps = keep == 1 && (p0 == 126 || p0 == 381) ? window + 4 : 6;
      int differing = 0;
      for (int64_t k = p0 + keep; k < p0 + keep + steps; ++k) {
        const std::span<const int32_t> t(tokens.data() + k, 1);
        differing += !same_bits(feed(*m, *spec, t), feed(*m, *plain, t));
      }
      EXPECT_EQ(differing, 0) << "p0 " << p0 << " keep " << keep;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, SpeculativeRollback, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Exact" : "Quantised"; });

TEST(SpeculativeRollback, MisuseThrows) {
  auto m = load_mtp(true);
  auto s = m->new_state();
  const std::vector<int32_t> t = {5, 6, 7};
  feed(*m, *s, t);
  EXPECT_THROW(m->rollback(*s, 1), std::logic_error);  // the last step was not speculative
  feed(*m, *s, t, true);
  EXPECT_THROW(m->rollback(*s, 4), std::invalid_argument);
  EXPECT_THROW(m->rollback(*s, -1), std::invalid_argument);
  std::vector<std::byte> bytes;
  EXPECT_THROW(encode_state(*s, bytes), std::invalid_argument);  // not rolled back yet
  m->rollback(*s, 3);
  EXPECT_EQ(s->position(), 6);
  EXPECT_THROW(m->rollback(*s, 1), std::logic_error);  // at most once per step
  const std::vector<int32_t> too_long(size_t(m->config().sliding_window + 1), 5);
  EXPECT_THROW(feed(*m, *s, too_long, true), std::invalid_argument);
  EXPECT_EQ(s->position(), 6);
}

TEST(MtpDraft, ChainedDraftsLeaveNoTraceAndBatchesEqualSingles) {
  auto m = load_mtp(true);
  const int64_t V = m->config().vocab_size;
  const std::vector<int32_t> tokens = pseudo_random_tokens(300, V);
  // Two copies at position 140 (past the window), the MTP block caught up to 139.
  auto a = m->new_state();
  feed(*m, *a, std::span<const int32_t>(tokens.data(), 139));
  EXPECT_EQ(m->mtp_resume_position(*a), 0);
  m->mtp_logits(*a, std::span<const int32_t>(tokens.data() + 1, 139), false);
  feed(*m, *a, std::span<const int32_t>(tokens.data() + 139, 1));
  EXPECT_EQ(m->mtp_resume_position(*a), 139);
  auto b = a->clone();
  const std::span<const int32_t> next(tokens.data() + 140, 1);
  // a: the draft, then three chained drafts; b: the draft only.
  const std::vector<float> first = draft(*m, *a, next);
  EXPECT_EQ(m->mtp_resume_position(*a), 140);
  EXPECT_TRUE(same_bits(first, draft(*m, *b, next)));
  std::vector<std::vector<float>> chained;
  for (int k = 0; k < 3; ++k)
    chained.push_back(draft(*m, *a, std::span<const int32_t>(tokens.data() + 141 + k, 1), true));
  for (const auto& row : chained) {
    ASSERT_EQ(row.size(), size_t(V));
    for (float v : row) ASSERT_TRUE(std::isfinite(v));
  }
  EXPECT_FALSE(same_bits(chained[0], first));
  std::vector<std::byte> bytes;
  EXPECT_THROW(encode_state(*a, bytes), std::invalid_argument);  // chained rows not undone yet
  // A chained call continues only the MTP call it follows.
  feed(*m, *a, std::span<const int32_t>(tokens.data() + 140, 2));
  feed(*m, *b, std::span<const int32_t>(tokens.data() + 140, 2));
  EXPECT_THROW(draft(*m, *a, next, true), std::logic_error);
  // The next unchained call undoes the chained positions: a and b agree bit for bit from here on.
  const std::span<const int32_t> next2(tokens.data() + 141, 2);
  EXPECT_TRUE(same_bits(draft(*m, *a, next2), draft(*m, *b, next2)));
  EXPECT_EQ(encoded(*a), encoded(*b));
  for (int64_t k = 142; k < 142 + 130; ++k) {  // the MTP window wraps past the chained rows
    feed(*m, *a, std::span<const int32_t>(tokens.data() + k, 1));
    feed(*m, *b, std::span<const int32_t>(tokens.data() + k, 1));
    const std::span<const int32_t> n1(tokens.data() + k + 1, 1);
    ASSERT_TRUE(same_bits(draft(*m, *a, n1), draft(*m, *b, n1))) << "position " << k;
  }

  // A batch of unchained and chained items gives each item's rows alone; items without logits none.
  auto c = b->clone(), d = b->clone(), e = b->clone();
  feed(*m, *c, std::span<const int32_t>(tokens.data() + 280, 3));
  feed(*m, *d, std::span<const int32_t>(tokens.data() + 285, 1));
  auto c1 = c->clone(), d1 = d->clone(), e1 = e->clone();
  const std::vector<float> c_alone = draft(*m, *c1, std::span<const int32_t>(tokens.data() + 281, 3));
  draft(*m, *d1, std::span<const int32_t>(tokens.data() + 286, 1));
  const std::vector<float> e_alone = draft(*m, *e1, std::span<const int32_t>(tokens.data() + 290, 1), true);
  const MtpItem batch[] = {{c.get(), std::span<const int32_t>(tokens.data() + 281, 3), false, true},
                           {e.get(), std::span<const int32_t>(tokens.data() + 290, 1), true, true},
                           {d.get(), std::span<const int32_t>(tokens.data() + 286, 1), false, false}};
  const std::vector<float> together = m->mtp_draft(batch);
  ASSERT_EQ(together.size(), size_t(2 * V));
  EXPECT_TRUE(same_bits(std::vector<float>(together.begin(), together.begin() + V), c_alone));
  EXPECT_TRUE(same_bits(std::vector<float>(together.begin() + V, together.end()), e_alone));
  EXPECT_EQ(m->mtp_resume_position(*d), d->position());
  EXPECT_TRUE(same_bits(draft(*m, *d, std::span<const int32_t>(tokens.data() + 287, 1), true),
                        draft(*m, *d1, std::span<const int32_t>(tokens.data() + 287, 1), true)));
}

TEST(MtpDraft, StatesTheBlockCannotCatchUpOnAreReported) {
  auto m = load_mtp(true);
  const std::vector<int32_t> t = {5, 6, 7, 8};
  auto s = m->new_state();
  EXPECT_EQ(m->mtp_resume_position(*s), 0);
  feed(*m, *s, std::span<const int32_t>(t.data(), 2));
  feed(*m, *s, std::span<const int32_t>(t.data() + 2, 2));  // the MTP block never saw positions 0, 1
  EXPECT_EQ(m->mtp_resume_position(*s), -1);
  EXPECT_THROW(draft(*m, *s, std::span<const int32_t>(t.data(), 2)), std::logic_error);
  ModelOptions plain;
  plain.exact = true;
  plain.threads = 1;
  auto without = Model::load(tiny_checkpoint(), plain);
  EXPECT_EQ(without->mtp_resume_position(*without->new_state()), -1);
}

}  // namespace
}  // namespace v4::model::testing
