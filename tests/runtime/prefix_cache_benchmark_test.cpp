// Benchmark figure (not a timed test): time to first token of a 1,024-token prompt whose first
// 1,000 tokens were seen before, with and without the prefix cache, on a V4-Flash-shaped random
// checkpoint cut to 2 layers. Opt-in, it synthesises ~9 GB and runs minutes of CPU:
//   V4_BENCH_FLASH_DIR=/some/dir ./test_runtime --gtest_filter='PrefixCacheBenchmark.*'
// (the directory is created with `synth --shape flash --layers 2` when it has no config.json).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "core/checkpoint.h"
#include "export/synth.h"
#include "fake_model.h"
#include "model/model.h"

using namespace v4::runtime;
using namespace v4::runtime::testing;

TEST(PrefixCacheBenchmark, FlashTwoLayersTimeToFirstToken) {
  const char* dir = std::getenv("V4_BENCH_FLASH_DIR");
  if (!dir) GTEST_SKIP() << "set V4_BENCH_FLASH_DIR to run the prefix-cache TTFT benchmark";
  if (!std::filesystem::exists(std::filesystem::path(dir) / "config.json")) {
    v4::core::SynthOptions o;
    o.shape = "flash";
    o.layers = 2;
    v4::core::write_synthetic_checkpoint(o, dir);
  }
  auto ckpt = v4::core::Checkpoint::open(dir);
  std::shared_ptr<v4::model::Model> model(v4::model::Model::load(*ckpt, {}));
  const int64_t vocab = model->config().vocab_size;
  std::vector<int32_t> shared(1000), second;
  uint64_t h = 17;
  for (auto& t : shared) t = int32_t(2 + (h = fake_mix(h, 1)) % uint64_t(vocab - 2));
  second = shared;
  for (int i = 0; i < 24; ++i) second.push_back(int32_t(2 + (h = fake_mix(h, 2)) % uint64_t(vocab - 2)));

  auto ttft = [&](Engine& engine, const std::vector<int32_t>& prompt, int* cached) {
    GenerationRequest r;
    r.prompt = prompt;
    r.params.temperature = 0;
    r.params.max_tokens = 1;
    Collector c;
    engine.submit(r, c.callbacks());
    EXPECT_TRUE(c.wait(std::chrono::minutes(30)));
    if (cached) *cached = c.finish->cached_prompt_tokens;
    return c.finish->ttft_seconds;
  };
  EngineOptions no_cache;
  no_cache.prefix_cache_budget = 0;
  auto cold_engine = create_engine(model, no_cache);
  const double cold = ttft(*cold_engine, second, nullptr);
  cold_engine.reset();
  auto warm_engine = create_engine(model, {});
  ttft(*warm_engine, shared, nullptr);
  int cached = 0;
  const double warm = ttft(*warm_engine, second, &cached);
  std::printf("[benchmark] flash shape, 2 layers, %d-token prompt: TTFT without cache %.2f s, with a %d-token "
              "prefix-cache hit %.2f s (%.1fx)\n",
              int(second.size()), cold, cached, warm, cold / warm);
  EXPECT_EQ(cached, 896);
}
