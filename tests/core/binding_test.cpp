// Checkpoint::open on small hand-built checkpoints: binding by name, one error listing every problem.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <functional>

#include "core/checkpoint.h"
#include "export/safetensors_writer.h"
#include "export/synth.h"

using namespace v4::core;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("v4core-bind-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// 2 layers ([SWA, CSA] + SWA MTP), hidden 256, 2 FP4 experts; layer 0 hash-routed.
ModelConfig small_config() {
  SynthOptions o;
  o.shape = "tiny";
  o.layers = 2;
  o.experts = 2;
  return synth_config(o);
}

using Mutate = std::function<bool(TensorSpec&)>;  // edit a spec in place; false drops it

// Writes config.json + model.safetensors with zeroed data for every implied tensor, after `mutate`.
void write_checkpoint(const fs::path& dir, const ModelConfig& c, const Mutate& mutate = {},
                      const std::vector<TensorSpec>& extra = {}) {
  std::ofstream(dir / "config.json") << c.to_json_text();
  SafetensorsWriter w;
  for (TensorSpec spec : expected_tensors(c))
    if (!mutate || mutate(spec)) w.add(spec.name, spec.dtypes[0], spec.shape, {});
  for (const auto& spec : extra) w.add(spec.name, spec.dtypes[0], spec.shape, {});
  w.write((dir / "model.safetensors").string());
}

std::string open_error(const fs::path& dir) {
  try {
    Checkpoint::open(dir.string());
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Binding, AWellFormedSmallCheckpointOpens) {
  TempDir d;
  const ModelConfig c = small_config();
  EXPECT_EQ(c.compress_ratios, (std::vector<int64_t>{0, 4, 0}));
  EXPECT_EQ(c.num_hash_layers, 1);
  write_checkpoint(d.path, c);
  auto ckpt = Checkpoint::open(d.path.string());
  EXPECT_EQ(ckpt->tensors().size(), expected_tensors(c).size());
  EXPECT_NE(ckpt->find("layers.1.attn.indexer.wq_b.weight"), nullptr);
  EXPECT_NE(ckpt->find("layers.0.ffn.gate.tid2eid"), nullptr);
  EXPECT_EQ(ckpt->find("layers.0.ffn.gate.bias"), nullptr);
  EXPECT_EQ(ckpt->get("layers.1.ffn.experts.1.w2.weight").shape, (std::vector<int64_t>{256, 64}));
  EXPECT_EQ(ckpt->get("layers.1.ffn.experts.1.w2.scale").shape, (std::vector<int64_t>{256, 4}));
}

TEST(Binding, OneErrorListsEveryProblemWithNameAndExpectation) {
  TempDir d;
  write_checkpoint(
      d.path, small_config(),
      [](TensorSpec& s) {
        if (s.name == "layers.1.attn.wkv.weight") return false;
        if (s.name == "layers.0.attn_norm.weight") s.dtypes = {DType::F32};
        if (s.name == "layers.0.ffn.gate.weight") s.shape = {3, 256};
        if (s.name == "mtp.0.ffn.experts.0.w1.scale") s.shape = {128, 4};
        return true;
      },
      {{"layers.0.extra.weight", {DType::F32}, {4}}});
  const std::string msg = open_error(d.path);
  EXPECT_NE(msg.find("checkpoint does not match its config.json (5 problems):"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\n  missing layers.1.attn.wkv.weight: expected F8_E4M3 [128, 256]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\n  layers.0.attn_norm.weight: dtype F32, expected BF16"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\n  layers.0.ffn.gate.weight: shape [3, 256], expected [2, 256]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\n  mtp.0.ffn.experts.0.w1.scale: shape [128, 4], expected [128, 8]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\n  unexpected tensor layers.0.extra.weight (F32 [4]): not implied by config.json"),
            std::string::npos)
      << msg;
}

TEST(Binding, HcScaleMayBeF32OrBf16ButNotOtherTypes) {
  TempDir d;
  write_checkpoint(d.path, small_config(), [](TensorSpec& s) {
    if (s.name == "layers.0.hc_attn_scale") s.dtypes = {DType::BF16};
    if (s.name == "hc_head_scale") s.dtypes = {DType::F16};
    return true;
  });
  const std::string msg = open_error(d.path);
  EXPECT_NE(msg.find("(1 problem):\n  hc_head_scale: dtype F16, expected F32 or BF16"), std::string::npos) << msg;
}

TEST(Binding, HashTableWithAnOutOfRangeExpertId) {
  TempDir d;
  const ModelConfig c = small_config();
  std::ofstream(d.path / "config.json") << c.to_json_text();
  SafetensorsWriter w;
  for (const TensorSpec& spec : expected_tensors(c)) {
    if (spec.name.ends_with("tid2eid"))
      w.add(spec.name, spec.dtypes[0], spec.shape, [](std::span<uint8_t> b) { b[8 * 5] = 2; });  // expert 2 of 2
    else
      w.add(spec.name, spec.dtypes[0], spec.shape, {});
  }
  w.write((d.path / "model.safetensors").string());
  const std::string msg = open_error(d.path);
  EXPECT_NE(msg.find("layers.0.ffn.gate.tid2eid: entry 5 is expert id 2, outside [0, 2)"), std::string::npos) << msg;
}

TEST(Binding, ConfigErrorsComeFirst) {
  TempDir d;
  std::ofstream(d.path / "config.json") << "{\"model_type\": \"deepseek_v4\"}";
  EXPECT_NE(open_error(d.path).find("field 'vocab_size' is missing (required)"), std::string::npos);
  TempDir empty;
  EXPECT_NE(open_error(empty.path).find("config.json: cannot open"), std::string::npos) << open_error(empty.path);
  TempDir no_weights;
  std::ofstream(no_weights.path / "config.json") << small_config().to_json_text();
  EXPECT_NE(open_error(no_weights.path).find("neither model.safetensors.index.json nor model.safetensors found"),
            std::string::npos);
}

namespace {
// Splits the small checkpoint into two shards (model-level tensors + layers) with an index.
void write_sharded(const fs::path& dir, const ModelConfig& c, const std::function<void(boost::json::object&)>& edit_map = {}) {
  std::ofstream(dir / "config.json") << c.to_json_text();
  SafetensorsWriter a, b;
  boost::json::object map;
  for (const TensorSpec& spec : expected_tensors(c)) {
    const bool model_level = !spec.name.starts_with("layers.") && !spec.name.starts_with("mtp.");
    (model_level ? a : b).add(spec.name, spec.dtypes[0], spec.shape, {});
    map[spec.name] = model_level ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  a.write((dir / "model-00001-of-00002.safetensors").string());
  b.write((dir / "model-00002-of-00002.safetensors").string());
  if (edit_map) edit_map(map);
  std::ofstream(dir / "model.safetensors.index.json")
      << boost::json::serialize(boost::json::object{{"metadata", {{"total_size", 0}}}, {"weight_map", map}});
}
}  // namespace

TEST(Binding, ShardedCheckpointOpens) {
  TempDir d;
  write_sharded(d.path, small_config());
  auto ckpt = Checkpoint::open(d.path.string());
  EXPECT_EQ(ckpt->get("embed.weight").file, (d.path / "model-00001-of-00002.safetensors").string());
  EXPECT_EQ(ckpt->get("layers.1.attn.wkv.weight").file, (d.path / "model-00002-of-00002.safetensors").string());
}

TEST(Binding, IndexThatDisagreesWithTheShards) {
  TempDir d;
  write_sharded(d.path, small_config(), [](boost::json::object& map) {
    map["norm.weight"] = "model-00002-of-00002.safetensors";
    map["ghost.weight"] = "model-00001-of-00002.safetensors";
  });
  const std::string msg = open_error(d.path);
  EXPECT_NE(msg.find("norm.weight: in shard model-00001-of-00002.safetensors but the index places it in "
                     "model-00002-of-00002.safetensors"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("ghost.weight: listed in the index for shard model-00001-of-00002.safetensors but not in that file"),
            std::string::npos)
      << msg;
}

TEST(Binding, IndexNamingAFileOutsideTheFolderOrMissing) {
  TempDir d;
  write_sharded(d.path, small_config(), [](boost::json::object& map) { map["norm.weight"] = "../etc/passwd"; });
  EXPECT_NE(open_error(d.path).find("names '../etc/passwd', which is not a file in the checkpoint folder"),
            std::string::npos)
      << open_error(d.path);
  TempDir e;
  write_sharded(e.path, small_config(), [](boost::json::object& map) { map["norm.weight"] = "model-00009.safetensors"; });
  EXPECT_NE(open_error(e.path).find("model-00009.safetensors: cannot open"), std::string::npos) << open_error(e.path);
}

TEST(Binding, TruncatedShardIsNamed) {
  TempDir d;
  write_sharded(d.path, small_config());
  const fs::path shard = d.path / "model-00002-of-00002.safetensors";
  fs::resize_file(shard, fs::file_size(shard) - 1000);
  const std::string msg = open_error(d.path);
  EXPECT_NE(msg.find("model-00002-of-00002.safetensors: tensor"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the file is truncated or the offsets are wrong"), std::string::npos) << msg;
}
