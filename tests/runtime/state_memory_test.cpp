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
  const StateMemory m = state_memory(config);
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
