#include <gtest/gtest.h>

#include "export/synth.h"
#include "runtime/state_memory.h"

using namespace v4::runtime;

TEST(StateMemory, FlashFormulaByHand) {
  v4::core::SynthOptions o;
  o.shape = "flash";
  const auto config = v4::core::synth_config(o);
  ASSERT_EQ(config.num_hidden_layers, 43);
  // V4-Flash: layers 0-1 window only, then 21 CSA (ratio 4) and 20 HCA (ratio 128) layers.
  // CSA: 512/4 KV + 128/4 indexer-key floats per token; HCA: 512/128. (21*160 + 20*4) * 4 bytes.
  const StateMemory m = state_memory(config, false);
  EXPECT_EQ(m.per_token_bytes, 13760);
  // Fixed: 43 windows of 128 x 512 floats; compressor buffers: CSA 4*1024*2*2 (KV) + 4*256*2*2
  // (indexer), HCA 128*512*2.
  EXPECT_EQ(m.fixed_bytes, (43 * 128 * 512 + 21 * (16384 + 4096) + 20 * 131072) * 4);
  // At the full 1M context (whole blocks): fixed + per-token growth.
  EXPECT_EQ(m.bytes_at(config, 1 << 20), m.fixed_bytes + int64_t(13760) * (1 << 20));
  std::printf("[state memory] V4-Flash sequence state at 1M tokens: %.2f GiB (fp32)\n",
              double(m.bytes_at(config, 1 << 20)) / double(1 << 30));
  // Partial blocks count only complete entries.
  EXPECT_EQ(m.bytes_at(config, 3), m.fixed_bytes);
  EXPECT_EQ(m.bytes_at(config, 4), m.fixed_bytes + 21 * (512 + 128) * 4);
}

// The model as trained keeps entries and keys as FP8/FP4 codes (model/state_rows.h): a V4-Flash
// entry is 448 FP8 codes + 7 scale bytes (padded to 456) + 64 fp32 RoPE dims = 712 bytes, a key 64
// bytes of FP4 codes + 4 scale bytes = 68. Per token: 21 * (712 + 68) / 4 + 20 * 712 / 128 =
// 4206.25, against 13760 in fp32 and 6880 in the reference's BF16 cache
// (21 * (512 + 128) * 2 / 4 + 20 * 512 * 2 / 128).
TEST(StateMemory, PackedFlashFormulaByHand) {
  v4::core::SynthOptions o;
  o.shape = "flash";
  const auto config = v4::core::synth_config(o);
  const StateMemory m = state_memory(config, true);
  EXPECT_EQ(m.rows, 712);
  EXPECT_EQ(m.key_rows, 68);
  EXPECT_EQ(m.per_token_bytes, 4207);
  EXPECT_LT(m.per_token_bytes, 6880);
  EXPECT_EQ(m.fixed_bytes, state_memory(config, false).fixed_bytes);  // rings and compressor buffers stay fp32
  EXPECT_EQ(m.bytes_at(config, 1 << 20), m.fixed_bytes + int64_t(21) * (1 << 18) * (712 + 68) + int64_t(20) * (1 << 13) * 712);
  std::printf("[state memory] V4-Flash sequence state at 1M tokens: %.2f GiB (packed)\n",
              double(m.bytes_at(config, 1 << 20)) / double(1 << 30));
}
