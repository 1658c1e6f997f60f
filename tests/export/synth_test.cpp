// Synthetic checkpoints: official layout, accepted by the loader, deterministic per seed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/checkpoint.h"
#include "core/dequant.h"
#include "export/synth.h"

using namespace v4::core;
namespace fs = std::filesystem;

namespace {
fs::path temp(const std::string& tag) {
  fs::path p = fs::temp_directory_path() / ("v4core-synth-" + std::to_string(::getpid()) + "-" + tag);
  fs::remove_all(p);
  return p;
}
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

TEST(Synth, TinyMatchesTheFixtureLayoutAndOpens) {
  const fs::path dir = temp("tiny");
  SynthOptions o;
  o.seed = 7;
  const SynthResult r = write_synthetic_checkpoint(o, dir.string());
  EXPECT_EQ(r.tensors, 585u);
  auto ckpt = Checkpoint::open(dir.string());
  auto fixture = Checkpoint::open(std::string(V4_SHARED_DIR) + "/fixtures/tiny-v4");
  ASSERT_EQ(ckpt->tensors().size(), fixture->tensors().size());
  for (const auto& [name, t] : fixture->tensors()) {
    const TensorView* s = ckpt->find(name);
    ASSERT_NE(s, nullptr) << name;
    EXPECT_EQ(s->shape, t->shape) << name;
    // Same dtypes as the fixture except hc_*_scale, which synth writes as the official F32.
    if (!name.ends_with("_scale")) {
      EXPECT_EQ(s->dtype, t->dtype) << name;
    }
  }
  // Weights have the intended spread: FP8 std ~ 1/sqrt(fan_in) within a factor of 2.
  const auto w = dequantize(*ckpt, "layers.0.attn.wq_a.weight");  // [128, 256]
  double sq = 0;
  for (float v : w) sq += double(v) * v;
  const double stdev = std::sqrt(sq / double(w.size()));
  EXPECT_GT(stdev, 0.5 / 16);
  EXPECT_LT(stdev, 2.0 / 16);
  fs::remove_all(dir);
}

TEST(Synth, DeterministicPerSeed) {
  const fs::path a = temp("a"), b = temp("b"), c = temp("c");
  SynthOptions o;
  o.layers = 3;
  o.experts = 4;
  o.seed = 42;
  write_synthetic_checkpoint(o, a.string());
  write_synthetic_checkpoint(o, b.string());
  o.seed = 43;
  write_synthetic_checkpoint(o, c.string());
  EXPECT_EQ(slurp(a / "model.safetensors"), slurp(b / "model.safetensors"));
  EXPECT_NE(slurp(a / "model.safetensors"), slurp(c / "model.safetensors"));
  EXPECT_EQ(slurp(a / "config.json"), slurp(c / "config.json"));
  EXPECT_NO_THROW(Checkpoint::open(c.string()));
  for (const auto& p : {a, b, c}) fs::remove_all(p);
}

TEST(Synth, FlashShapesAreTheRealOnes) {
  SynthOptions o;
  o.shape = "flash";
  o.layers = 2;
  const ModelConfig c = synth_config(o);
  EXPECT_EQ(c.compress_ratios, (std::vector<int64_t>{4, 128, 0}));
  EXPECT_EQ(c.num_hash_layers, 1);
  EXPECT_EQ(c.vocab_size, 129280);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& s : expected_tensors(c)) shapes[s.name] = s.shape;
  // Spec §2 shapes.
  EXPECT_EQ(shapes["embed.weight"], (std::vector<int64_t>{129280, 4096}));
  EXPECT_EQ(shapes["layers.0.attn.wq_a.weight"], (std::vector<int64_t>{1024, 4096}));
  EXPECT_EQ(shapes["layers.0.attn.wq_a.scale"], (std::vector<int64_t>{8, 32}));
  EXPECT_EQ(shapes["layers.0.attn.wq_b.weight"], (std::vector<int64_t>{32768, 1024}));
  EXPECT_EQ(shapes["layers.0.attn.wq_b.scale"], (std::vector<int64_t>{256, 8}));
  EXPECT_EQ(shapes["layers.0.attn.wo_a.weight"], (std::vector<int64_t>{8192, 4096}));
  EXPECT_EQ(shapes["layers.0.attn.wo_b.weight"], (std::vector<int64_t>{4096, 8192}));
  EXPECT_EQ(shapes["layers.0.attn.compressor.wkv.weight"], (std::vector<int64_t>{1024, 4096}));
  EXPECT_EQ(shapes["layers.0.attn.compressor.ape"], (std::vector<int64_t>{4, 1024}));
  EXPECT_EQ(shapes["layers.1.attn.compressor.wkv.weight"], (std::vector<int64_t>{512, 4096}));
  EXPECT_EQ(shapes["layers.1.attn.compressor.ape"], (std::vector<int64_t>{128, 512}));
  EXPECT_EQ(shapes["layers.0.attn.indexer.wq_b.weight"], (std::vector<int64_t>{8192, 1024}));
  EXPECT_EQ(shapes["layers.0.attn.indexer.wq_b.scale"], (std::vector<int64_t>{64, 8}));
  EXPECT_EQ(shapes["layers.0.attn.indexer.compressor.wkv.weight"], (std::vector<int64_t>{256, 4096}));
  EXPECT_EQ(shapes["layers.0.attn.indexer.compressor.ape"], (std::vector<int64_t>{4, 256}));
  EXPECT_EQ(shapes.count("layers.1.attn.indexer.wq_b.weight"), 0u);
  EXPECT_EQ(shapes["layers.0.ffn.gate.tid2eid"], (std::vector<int64_t>{129280, 6}));
  EXPECT_EQ(shapes["layers.1.ffn.gate.bias"], (std::vector<int64_t>{256}));
  EXPECT_EQ(shapes["layers.0.ffn.experts.255.w1.weight"], (std::vector<int64_t>{2048, 2048}));
  EXPECT_EQ(shapes["layers.0.ffn.experts.255.w1.scale"], (std::vector<int64_t>{2048, 128}));
  EXPECT_EQ(shapes["layers.0.ffn.experts.255.w2.weight"], (std::vector<int64_t>{4096, 1024}));
  EXPECT_EQ(shapes["layers.0.ffn.experts.255.w2.scale"], (std::vector<int64_t>{4096, 64}));
  EXPECT_EQ(shapes["layers.0.ffn.shared_experts.w1.scale"], (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(shapes["layers.0.ffn.shared_experts.w2.scale"], (std::vector<int64_t>{32, 16}));
  EXPECT_EQ(shapes["layers.0.hc_attn_fn"], (std::vector<int64_t>{24, 16384}));
  EXPECT_EQ(shapes["hc_head_fn"], (std::vector<int64_t>{4, 16384}));
  EXPECT_EQ(shapes["mtp.0.e_proj.scale"], (std::vector<int64_t>{32, 32}));
}

TEST(Synth, FullFlashInventoryMatchesTheOfficialCount) {
  // Spec §2: the official index has 69,187 tensors and 159,609,485,896 bytes.
  SynthOptions o;
  o.shape = "flash";
  const ModelConfig c = synth_config(o);
  EXPECT_EQ(c.compress_ratios.size(), 44u);
  const auto specs = expected_tensors(c);
  EXPECT_EQ(specs.size(), 69187u);
  uint64_t bytes = 0;
  for (const auto& s : specs) {
    uint64_t n = dtype_size(s.dtypes[0]);
    for (int64_t d : s.shape) n *= uint64_t(d);
    bytes += n;
  }
  EXPECT_EQ(bytes, 159609485896ull);
  int mtp = 0;
  for (const auto& s : specs) mtp += s.name.starts_with("mtp.0.");
  EXPECT_EQ(mtp, 1575);
}

TEST(Synth, TokenizerGetsTheV4SpecialTokensAndSizesTheVocabulary) {
  const fs::path dir = temp("tok");
  fs::create_directories(dir);
  const fs::path tok = dir / "in-tokenizer.json";
  // A minimal HF tokenizer.json; id 128821 is taken by a placeholder that must give way.
  std::ofstream(tok) << R"({"version":"1.0","added_tokens":[)"
                        R"({"id":0,"content":"<s>","special":true},)"
                        R"({"id":128821,"content":"<placeholder>","special":true}],)"
                        R"("model":{"type":"BPE","vocab":{"a":3,"b":4}}})";
  SynthOptions o;
  o.tokenizer = tok.string();
  o.layers = 1;
  const fs::path out = dir / "ckpt";
  const SynthResult r = write_synthetic_checkpoint(o, out.string());
  EXPECT_EQ(r.tokenizer_tokens_added, 10);
  EXPECT_EQ(r.config.vocab_size, 128846);  // <｜read_url｜> = 128845 is the largest id
  const auto t = boost::json::parse(slurp(out / "tokenizer.json")).as_object();
  std::map<int64_t, std::string> by_id;
  for (const auto& e : t.at("added_tokens").as_array())
    by_id[e.at("id").as_int64()] = std::string(e.at("content").as_string());
  EXPECT_EQ(by_id[128821], "<think>");
  EXPECT_EQ(by_id[128822], "</think>");
  EXPECT_EQ(by_id[128825], "\xef\xbd\x9c" "DSML" "\xef\xbd\x9c");
  EXPECT_EQ(by_id[0], "<s>");
  auto ckpt = Checkpoint::open(out.string());
  EXPECT_EQ(ckpt->get("embed.weight").shape[0], 128846);
  fs::remove_all(dir);
}

TEST(Synth, RejectsBadOptions) {
  SynthOptions o;
  o.shape = "huge";
  EXPECT_THROW(synth_config(o), std::invalid_argument);
  o.shape = "tiny";
  o.layers = 0;
  EXPECT_THROW(synth_config(o), std::invalid_argument);
  o.layers = 2;
  o.experts = 0;
  EXPECT_THROW(synth_config(o), std::invalid_argument);
}
