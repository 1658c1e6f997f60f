// Properties the serving runtime relies on: chunked prefill equals one-shot prefill, a sequence's
// result does not depend on the rest of the batch or on the thread count, states clone, bad input
// is rejected with an exception.
#include <cstdio>
#include <cstring>

#include "reference_fixture.h"

namespace v4::model::testing {
namespace {

std::unique_ptr<Model> load(bool exact, int threads, bool mtp = false) {
  ModelOptions o;
  o.exact = exact;
  o.threads = threads;
  o.enable_mtp = mtp;
  return Model::load(tiny_checkpoint(), o);
}

const std::vector<int32_t>& tokens_a() {
  static std::vector<int32_t> t = ReferenceFile("reference-exact.safetensors").ints("A.tokens");
  return t;
}

std::vector<float> feed(Model& m, SequenceState& s, std::span<const int32_t> tokens, bool all = false) {
  BatchItem item{&s, tokens, all};
  return m.forward(std::span<const BatchItem>(&item, 1));
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Prefill the first 320 tokens of A in the given chunks, then decode 24 more one at a time; all rows.
std::vector<float> chunked_run(Model& m, const std::vector<size_t>& chunks) {
  auto s = m.new_state();
  std::vector<float> rows;
  size_t pos = 0;
  std::vector<float> r;
  for (size_t c : chunks) {
    r = feed(m, *s, std::span<const int32_t>(tokens_a().data() + pos, c));
    pos += c;
  }
  EXPECT_EQ(pos, 320u);
  rows = r;
  for (size_t k = 320; k < 344; ++k) {
    r = feed(m, *s, std::span<const int32_t>(tokens_a().data() + k, 1));
    rows.insert(rows.end(), r.begin(), r.end());
  }
  EXPECT_EQ(s->position(), 344);
  return rows;
}

class ChunkedPrefill : public ::testing::TestWithParam<bool> {};

TEST_P(ChunkedPrefill, EqualsOneShotAndMatchesReference) {
  const bool exact = GetParam();
  auto m = load(exact, 1);
  const std::vector<float> one_shot = chunked_run(*m, {320});
  const std::vector<std::vector<size_t>> splits = {{100, 100, 120}, {1, 3, 127, 129, 60}, {4, 124, 1, 191}};
  for (const auto& split : splits) {
    const std::vector<float> chunked = chunked_run(*m, split);
    const Comparison c = compare_rows(chunked, one_shot, m->config().vocab_size);
    std::printf("[chunked %s] split of %zu chunks: max-abs vs one-shot %.3g\n", exact ? "exact" : "quantised",
                split.size(), c.max_abs);
    EXPECT_LE(c.max_abs, 1e-4);
    // By construction every row is computed in the same order whatever the chunking.
    EXPECT_TRUE(bitwise_equal(chunked, one_shot));
  }
  if (exact) {  // the chunked run also continues exactly like the reference's decode of case A
    ReferenceFile ref("reference-exact.safetensors");
    std::vector<float> want = ref.floats("A.logits");
    want.resize(size_t(25 * m->config().vocab_size));
    const Comparison c = compare_rows(chunked_run(*m, {100, 100, 120}), want, m->config().vocab_size);
    std::printf("[chunked exact] 100+100+120 then 24 decodes vs reference A: max-abs %.3g\n", c.max_abs);
    EXPECT_LE(c.max_abs, 1e-4);
  }
}
INSTANTIATE_TEST_SUITE_P(Modes, ChunkedPrefill, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Exact" : "Quantised"; });

TEST(Batch, ResultsIndependentOfBatchComposition) {
  auto m = load(false, 2);
  const auto& t = tokens_a();
  const int64_t V = m->config().vocab_size;
  // Alone: sequence X prefills 150 tokens; Y prefills 40 then decodes one; Z prefills 7 (all logits).
  auto x_alone = m->new_state(), y_alone = m->new_state(), z_alone = m->new_state();
  const std::vector<float> x_ref = feed(*m, *x_alone, std::span(t.data(), 150));
  feed(*m, *y_alone, std::span(t.data() + 200, 40));
  const std::vector<float> y_ref = feed(*m, *y_alone, std::span(t.data() + 240, 1));
  const std::vector<float> z_ref = feed(*m, *z_alone, std::span(t.data() + 300, 7), true);
  ASSERT_EQ(z_ref.size(), size_t(7 * V));

  auto x = m->new_state(), y = m->new_state(), z = m->new_state();
  feed(*m, *y, std::span(t.data() + 200, 40));
  const BatchItem batch[] = {{z.get(), std::span(t.data() + 300, 7), true},
                             {x.get(), std::span(t.data(), 150), false},
                             {y.get(), std::span(t.data() + 240, 1), false}};
  const std::vector<float> out = m->forward(batch);
  ASSERT_EQ(out.size(), size_t(9 * V));
  EXPECT_TRUE(bitwise_equal(std::vector<float>(out.begin(), out.begin() + 7 * V), z_ref));
  EXPECT_TRUE(bitwise_equal(std::vector<float>(out.begin() + 7 * V, out.begin() + 8 * V), x_ref));
  EXPECT_TRUE(bitwise_equal(std::vector<float>(out.begin() + 8 * V, out.end()), y_ref));
  EXPECT_EQ(x->position(), 150);
  EXPECT_EQ(y->position(), 41);
  EXPECT_EQ(z->position(), 7);
  // all_logits' last row is the plain forward's row
  EXPECT_TRUE(bitwise_equal(std::vector<float>(z_ref.end() - V, z_ref.end()),
                            feed(*m, *m->new_state(), std::span(t.data() + 300, 7))));
}

TEST(Batch, ManyDecodingSequencesTogetherEqualEachAlone) {
  auto m = load(false, 2);
  const auto& t = tokens_a();
  const int64_t V = m->config().vocab_size;
  const size_t kSequences = 6;
  std::vector<std::unique_ptr<SequenceState>> alone, together;
  for (size_t s = 0; s < kSequences; ++s) {  // prompts of different lengths, some past the window
    const size_t len = 3 + 47 * s;
    alone.push_back(m->new_state());
    feed(*m, *alone.back(), std::span(t.data() + s, len));
    together.push_back(alone.back()->clone());
  }
  for (size_t step = 0; step < 6; ++step) {
    std::vector<BatchItem> batch;
    std::vector<float> expected;
    for (size_t s = 0; s < kSequences; ++s) {
      const int32_t* tok = t.data() + 200 + s * 7 + step;
      const auto r = feed(*m, *alone[s], std::span(tok, 1));
      expected.insert(expected.end(), r.begin(), r.end());
      batch.push_back({together[s].get(), std::span(tok, 1), false});
    }
    const std::vector<float> got = m->forward(batch);
    ASSERT_EQ(got.size(), size_t(kSequences) * size_t(V));
    ASSERT_TRUE(bitwise_equal(got, expected)) << "step " << step;
  }
}

TEST(Threads, OneAndTwoThreadsGiveIdenticalBits) {
  for (bool exact : {true, false}) {
    auto m1 = load(exact, 1), m2 = load(exact, 2);
    const std::vector<float> a = chunked_run(*m1, {200, 120});
    const std::vector<float> b = chunked_run(*m2, {200, 120});
    EXPECT_TRUE(bitwise_equal(a, b)) << (exact ? "exact" : "quantised");
  }
}

TEST(State, CloneContinuesIdenticallyAndBytesGrow) {
  auto m = load(false, 1);
  const auto& t = tokens_a();
  auto s = m->new_state();
  const size_t empty_bytes = s->bytes();
  feed(*m, *s, std::span(t.data(), 130));
  EXPECT_GT(s->bytes(), empty_bytes);
  auto c = s->clone();
  EXPECT_EQ(c->position(), 130);
  EXPECT_GT(c->bytes(), empty_bytes);
  EXPECT_LE(c->bytes(), s->bytes());  // a copy holds no spare capacity
  for (size_t k = 130; k < 140; ++k) {
    const auto a = feed(*m, *s, std::span(t.data() + k, 1));
    const auto b = feed(*m, *c, std::span(t.data() + k, 1));
    ASSERT_TRUE(bitwise_equal(a, b)) << "step " << k;
  }
  // the window ring and compressor buffers are bounded; compressed entries grow slowly
  const size_t at140 = s->bytes();
  feed(*m, *s, std::span(t.data() + 140, 200));
  EXPECT_LT(s->bytes(), at140 + 200 * 4 * 1024);
}

TEST(Errors, BadInputThrows) {
  auto m = load(true, 1);
  auto s = m->new_state();
  const int32_t bad[] = {5, int32_t(m->config().vocab_size)};
  EXPECT_THROW(feed(*m, *s, bad), std::out_of_range);
  const int32_t negative[] = {-1};
  EXPECT_THROW(feed(*m, *s, negative), std::out_of_range);
  EXPECT_THROW(feed(*m, *s, std::span<const int32_t>()), std::invalid_argument);
  EXPECT_EQ(s->position(), 0);
  const BatchItem no_state[] = {{nullptr, std::span<const int32_t>(negative, 1), false}};
  EXPECT_THROW(m->forward(no_state), std::invalid_argument);
  // one bad item rejects the whole batch before any state changes
  const int32_t good[] = {5, 6};
  auto other = m->new_state();
  const BatchItem mixed[] = {{other.get(), good, false}, {s.get(), bad, false}};
  EXPECT_THROW(m->forward(mixed), std::out_of_range);
  EXPECT_EQ(other->position(), 0);
  const BatchItem twice[] = {{s.get(), good, false}, {s.get(), good, false}};
  EXPECT_THROW(m->forward(twice), std::invalid_argument);
  EXPECT_EQ(s->position(), 0);
}

TEST(Mtp, LogitsAreFiniteDependOnTheNextTokenAndChunkInvariant) {
  auto m = load(true, 1, true);
  const auto& t = tokens_a();
  const int64_t V = m->config().vocab_size;
  // one-shot: prefill 64, MTP over the 64 positions with next tokens t[1..64]
  auto s = m->new_state();
  feed(*m, *s, std::span(t.data(), 64));
  const std::vector<float> one = m->mtp_logits(*s, std::span(t.data() + 1, 64), true);
  ASSERT_EQ(one.size(), size_t(64 * V));
  for (float v : one) ASSERT_TRUE(std::isfinite(v));
  // chunked 40 + 24 gives the same rows
  auto c = m->new_state();
  feed(*m, *c, std::span(t.data(), 40));
  std::vector<float> chunked = m->mtp_logits(*c, std::span(t.data() + 1, 40), true);
  feed(*m, *c, std::span(t.data() + 40, 24));
  const std::vector<float> rest = m->mtp_logits(*c, std::span(t.data() + 41, 24), true);
  chunked.insert(chunked.end(), rest.begin(), rest.end());
  EXPECT_TRUE(bitwise_equal(chunked, one));
  // a different next token changes the prediction
  auto d = m->new_state();
  feed(*m, *d, std::span(t.data(), 64));
  std::vector<int32_t> other(t.begin() + 1, t.begin() + 65);
  other.back() = (other.back() + 1) % int32_t(V);
  const std::vector<float> changed = m->mtp_logits(*d, other, false);
  EXPECT_FALSE(bitwise_equal(changed, std::vector<float>(one.end() - V, one.end())));
  // mis-sized next tokens are rejected
  EXPECT_THROW(m->mtp_logits(*d, std::span(t.data(), 3)), std::invalid_argument);
}

}  // namespace
}  // namespace v4::model::testing

namespace v4::model::testing {
namespace {

TEST(Lifetime, ModelOutlivesTheCallersCheckpoint) {
  std::unique_ptr<Model> m;
  {
    auto ckpt = core::Checkpoint::open(tiny_dir());
    ModelOptions o;
    o.exact = true;
    o.threads = 1;
    m = Model::load(*ckpt, o);
  }
  auto s = m->new_state();
  const std::vector<float> got = feed(*m, *s, std::span(tokens_a().data(), 16));
  auto reference_model = load(true, 1);
  EXPECT_TRUE(bitwise_equal(got, feed(*reference_model, *reference_model->new_state(), std::span(tokens_a().data(), 16))));
}

}  // namespace
}  // namespace v4::model::testing
