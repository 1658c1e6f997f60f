// Opening the tiny official-format checkpoint in ../shared/fixtures/tiny-v4.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/checkpoint.h"
#include "core/dequant.h"

using namespace v4::core;

namespace {
const std::string kTiny = std::string(V4_SHARED_DIR) + "/fixtures/tiny-v4";
}

TEST(TinyFixture, OpensAndBindsAll585Tensors) {
  auto ckpt = Checkpoint::open(kTiny);
  const ModelConfig& c = ckpt->config();
  EXPECT_EQ(ckpt->tensors().size(), 585u);
  EXPECT_EQ(expected_tensors(c).size(), 585u);
  EXPECT_EQ(c.hidden_size, 256);
  EXPECT_EQ(c.num_hidden_layers, 6);
  EXPECT_EQ(c.num_nextn_predict_layers, 1);
  EXPECT_EQ(c.compress_ratios, (std::vector<int64_t>{0, 4, 128, 4, 128, 0, 0}));
  EXPECT_TRUE(c.is_hash_layer(1));
  EXPECT_FALSE(c.is_hash_layer(2));
  EXPECT_EQ(c.index_topk, 16);
  EXPECT_EQ(c.vocab_size, 4096);
}

TEST(TinyFixture, TensorViewsPointIntoTheFile) {
  auto ckpt = Checkpoint::open(kTiny);
  const TensorView& t = ckpt->get("layers.0.ffn.gate.tid2eid");
  EXPECT_EQ(t.dtype, DType::I64);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{4096, 2}));
  EXPECT_EQ(t.nbytes, 4096u * 2 * 8);
  EXPECT_EQ(ckpt->find("no.such.tensor"), nullptr);
  EXPECT_THROW(ckpt->get("no.such.tensor"), CheckpointError);
}

// --weights hugepages: every tensor has the mapped file's bytes, in a private read-only copy.
TEST(TinyFixture, WeightsInHugePagesHoldTheFilesBytes) {
  auto mapped = Checkpoint::open(kTiny);
  auto huge = Checkpoint::open(kTiny, WeightMemory::hugepages);
  ASSERT_EQ(huge->tensors().size(), mapped->tensors().size());
  uint64_t total = 0;
  for (const auto& [name, view] : mapped->tensors()) {
    const TensorView& h = huge->get(name);
    ASSERT_EQ(h.nbytes, view->nbytes) << name;
    EXPECT_NE(h.data, view->data) << name;  // a copy, not the mapping
    EXPECT_EQ(std::memcmp(h.data, view->data, view->nbytes), 0) << name;
    total += view->nbytes;
  }
  // Every byte compared is resident, in both (the copy read whole at open).
  EXPECT_GE(huge->residency().resident_bytes, total);
  EXPECT_GE(mapped->residency().resident_bytes, total);
  EXPECT_EQ(parse_weight_memory("hugepages", "--weights"), WeightMemory::hugepages);
  EXPECT_EQ(parse_weight_memory("mapped", "--weights"), WeightMemory::mapped);
  try {
    parse_weight_memory("huge", "--weights");
    FAIL() << "accepted 'huge'";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--weights"), std::string::npos) << e.what();
  }
}

TEST(TinyFixture, DescribesQuantisedWeights) {
  auto ckpt = Checkpoint::open(kTiny);
  auto fp4 = describe(*ckpt, "layers.0.ffn.experts.0.w2.weight");
  EXPECT_EQ(fp4.encoding, Encoding::Fp4Packed);
  EXPECT_EQ(fp4.logical_shape(), (std::vector<int64_t>{256, 128}));
  auto fp8 = describe(*ckpt, "layers.0.attn.wq_b.weight");
  EXPECT_EQ(fp8.encoding, Encoding::Fp8Block);
  EXPECT_EQ(fp8.logical_shape(), (std::vector<int64_t>{512, 128}));
  auto bf16 = describe(*ckpt, "layers.0.attn_norm.weight");
  EXPECT_EQ(bf16.encoding, Encoding::Plain);
  for (float v : bf16.dequantize()) EXPECT_TRUE(std::isfinite(v));
}
