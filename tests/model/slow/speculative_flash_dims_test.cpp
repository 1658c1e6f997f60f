// Model::rollback at V4-Flash's dimensions (the flash-dims checkpoint: head_dim 512, indexer top-512,
// ratio-4 and ratio-128 layers, the MTP block): 3 speculative tokens at position 126 (the dropped
// or the kept ones complete the ratio-128 block ending at 127 and a ratio-4 block), kept 0..3, leave
// the whole state (compared through the disk cache's encoding) and the next rows bit for bit as
// feeding only the kept tokens; the verify rows are the rows of feeding them one at a time.
// Quantised mode (what the server runs). The checkpoint's path comes as argv[1].
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "core/checkpoint.h"
#include "model/model.h"
#include "model/state_codec.h"

namespace v4::model {
namespace {

std::string g_checkpoint_dir;

std::vector<float> feed(Model& m, SequenceState& s, std::span<const int32_t> tokens, bool speculative = false) {
  BatchItem item{&s, tokens, true};
  item.speculative = speculative;
  return m.forward(std::span<const BatchItem>(&item, 1));
}

std::vector<std::byte> encoded(const SequenceState& s) {
  std::vector<std::byte> out;
  encode_state(s, out);
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(SpeculativeFlashDims, RollbackLeavesTheStateOfFeedingOnlyTheKeptTokens) {
  ASSERT_FALSE(g_checkpoint_dir.empty()) << "usage: test_model_speculative_flash_dims CHECKPOINT_DIR";
  auto ckpt = core::Checkpoint::open(g_checkpoint_dir);
  ModelOptions o;
  o.threads = 2;
  o.enable_mtp = true;
  auto m = Model::load(*ckpt, o);
  const int64_t V = m->config().vocab_size, p0 = 126;
  std::vector<int32_t> tokens(size_t(p0 + 4));
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t(2 + (i * 2654435761u) % uint64_t(V - 2));
  auto base = m->new_state();
  feed(*m, *base, std::span<const int32_t>(tokens.data(), size_t(p0)));
  m->mtp_logits(*base, std::span<const int32_t>(tokens.data() + 1, size_t(p0)), false);
  // The plain rows at p0 .. p0 + 2, one token at a time, and the plain states after each.
  std::vector<std::unique_ptr<SequenceState>> plain;
  std::vector<std::vector<float>> plain_rows;
  plain.push_back(base->clone());
  for (int64_t j = 0; j < 3; ++j) {
    plain.push_back(plain.back()->clone());
    plain_rows.push_back(feed(*m, *plain.back(), std::span<const int32_t>(tokens.data() + p0 + j, 1)));
  }
  for (int64_t keep = 0; keep <= 3; ++keep) {
    auto spec = base->clone();
    std::vector<int32_t> drafted(tokens.begin() + p0, tokens.begin() + p0 + 3);
    for (size_t j = size_t(keep); j < drafted.size(); ++j) drafted[j] = int32_t((drafted[j] + 7) % V);
    const std::vector<float> rows = feed(*m, *spec, drafted, true);
    for (int64_t j = 0; j < keep; ++j)
      EXPECT_TRUE(same_bits(std::vector<float>(rows.begin() + j * V, rows.begin() + (j + 1) * V), plain_rows[size_t(j)]))
          << "verify row " << j << ", keep " << keep;
    m->rollback(*spec, keep);
    ASSERT_EQ(spec->position(), p0 + keep);
    auto fed = base->clone();
    if (keep > 0) {
      feed(*m, *fed, std::span<const int32_t>(tokens.data() + p0, size_t(keep)));
      const std::span<const int32_t> next(tokens.data() + p0 + 1, size_t(keep));
      EXPECT_TRUE(same_bits(m->mtp_logits(*spec, next), m->mtp_logits(*fed, next))) << "MTP, keep " << keep;
    }
    EXPECT_EQ(encoded(*spec), encoded(*fed)) << "keep " << keep;
    const std::span<const int32_t> t(tokens.data() + p0 + keep, 1);
    EXPECT_TRUE(same_bits(feed(*m, *spec, t), feed(*m, *fed, t))) << "the next row, keep " << keep;
  }
}

}  // namespace
}  // namespace v4::model

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc > 1) v4::model::g_checkpoint_dir = argv[1];
  return RUN_ALL_TESTS();
}
