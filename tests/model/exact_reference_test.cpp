// Exact mode (activation quantisers off) against the official reference run in fp32:
// logits max-abs <= 1e-4 on every case, argmax 100%, identical greedy tokens, per-layer streams
// within 1e-5 relative, identical indexer top-k sets (fixtures/README.md).
#include <cstdio>
#include <set>

#include "reference_fixture.h"

namespace v4::model::testing {
namespace {

constexpr double kLogitTolerance = 1e-4;

class ExactReference : public ReferenceSuite<true> {
 protected:

  void check_case(const std::string& name, size_t prefill) {
    const std::vector<int32_t> tokens = ref_->ints(name + ".tokens");
    const std::vector<float> want = ref_->floats(name + ".logits");
    const std::vector<float> got = run_teacher_forced(*model_, tokens, prefill);
    const Comparison c = compare_rows(got, want, vocab());
    std::printf("[exact] case %s: rows %zu  logits max-abs %.3g  mean-abs %.3g  argmax %.1f%%\n", name.c_str(),
                want.size() / size_t(vocab()), c.max_abs, c.mean_abs, 100 * c.argmax_agreement);
    EXPECT_LE(c.max_abs, kLogitTolerance) << "case " << name;
    EXPECT_EQ(c.argmax_agreement, 1.0) << "case " << name;
  }

};

TEST_F(ExactReference, CaseA_Prefill320ThenDecode) { check_case("A", 320); }
TEST_F(ExactReference, CaseB_Prefill100ThenDecodeAcrossWindowAndBlock) { check_case("B", 100); }
TEST_F(ExactReference, CaseE_ShortPrefill) { check_case("E", 5); }

TEST_F(ExactReference, CaseF_OnePrefillOf384) {
  const std::vector<int32_t> tokens = ref_->ints("A.tokens");
  const std::vector<float> want = ref_->floats("F.logits");
  const std::vector<float> got = run_teacher_forced(*model_, tokens, tokens.size());
  const Comparison c = compare_rows(got, want, vocab());
  std::printf("[exact] case F: logits max-abs %.3g  argmax %.1f%%\n", c.max_abs, 100 * c.argmax_agreement);
  EXPECT_LE(c.max_abs, kLogitTolerance);
  EXPECT_EQ(c.argmax_agreement, 1.0);
}

TEST_F(ExactReference, CaseG_GreedyTokensIdentical) {
  const std::vector<int32_t> prompt = slice(ref_->ints("A.tokens"), 320);
  const std::vector<int32_t> want_tokens = ref_->ints("G.generated");
  const std::vector<float> want = ref_->floats("G.logits");
  auto state = model_->new_state();
  std::vector<int32_t> generated;
  std::vector<float> got;
  BatchItem item{state.get(), prompt, false};
  std::vector<float> row = model_->forward(std::span<const BatchItem>(&item, 1));
  for (size_t k = 0; k < want_tokens.size(); ++k) {
    got.insert(got.end(), row.begin(), row.end());
    generated.push_back(int32_t(argmax(row.data(), vocab())));
    item.tokens = std::span<const int32_t>(&generated.back(), 1);
    row = model_->forward(std::span<const BatchItem>(&item, 1));
  }
  got.insert(got.end(), row.begin(), row.end());
  EXPECT_EQ(generated, want_tokens);
  const Comparison c = compare_rows(got, want, vocab());
  std::printf("[exact] case G: generated %s, logits max-abs %.3g  argmax %.1f%%\n",
              generated == want_tokens ? "identical" : "DIFFERENT", c.max_abs, 100 * c.argmax_agreement);
  EXPECT_LE(c.max_abs, kLogitTolerance);
}

TEST_F(ExactReference, LayerStreamsAndIndexerSelectionOfPrefillA) {
  const std::vector<int32_t> prompt = slice(ref_->ints("A.tokens"), 320);
  ForwardTrace trace;
  trace.capture_layers = true;
  trace.capture_indexer = true;
  auto state = model_->new_state();
  BatchItem item{state.get(), prompt, false};
  model_->forward_traced(std::span<const BatchItem>(&item, 1), &trace);
  const auto& cfg = model_->config();
  ASSERT_EQ(int64_t(trace.layer_out_last.size()), cfg.num_hidden_layers);
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    const std::vector<float> want = ref_->floats("layer" + std::to_string(l) + ".out_last");
    const std::vector<float>& got = trace.layer_out_last[size_t(l)];
    ASSERT_EQ(got.size(), want.size());
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      max_diff = std::max(max_diff, std::fabs(double(got[i]) - want[i]));
      max_ref = std::max(max_ref, std::fabs(double(want[i])));
    }
    std::printf("[exact] layer%lld.out_last: max-abs %.3g, relative %.3g\n", (long long)l, max_diff, max_diff / max_ref);
    EXPECT_LE(max_diff / max_ref, 1e-5) << "layer " << l;
  }
  const int64_t topk = cfg.index_topk;
  for (int64_t l : {1, 3}) {
    const std::vector<int32_t> want = ref_->ints("layer" + std::to_string(l) + ".indexer_topk");
    ASSERT_TRUE(trace.indexer_topk.count(l));
    const std::vector<int32_t>& got = trace.indexer_topk.at(l);
    ASSERT_EQ(got.size(), want.size());
    int64_t differing = 0;
    for (size_t row = 0; row < want.size() / size_t(topk); ++row) {
      std::set<int32_t> a, b;
      for (int64_t k = 0; k < topk; ++k) {
        if (int32_t v = want[row * size_t(topk) + size_t(k)]; v >= 0) a.insert(v - int32_t(prompt.size()));
        if (int32_t v = got[row * size_t(topk) + size_t(k)]; v >= 0) b.insert(v);
      }
      differing += a != b;
    }
    std::printf("[exact] layer%lld.indexer_topk: %lld of %zu rows differ\n", (long long)l, (long long)differing,
                want.size() / size_t(topk));
    EXPECT_EQ(differing, 0) << "layer " << l;
  }
}

}  // namespace
}  // namespace v4::model::testing
