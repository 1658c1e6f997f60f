#include "core/checkpoint.h"

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "fmt/format.h"

namespace v4::core {

namespace json = boost::json;
namespace fs = std::filesystem;

std::string layer_prefix(const ModelConfig& c, int64_t layer) {
  if (layer < c.num_hidden_layers) return fmt::format("layers.{}.", layer);
  return fmt::format("mtp.{}.", layer - c.num_hidden_layers);
}

std::vector<TensorSpec> expected_tensors(const ModelConfig& c) {
  std::vector<TensorSpec> out;
  auto add = [&](std::string name, std::vector<DType> dtypes, std::vector<int64_t> shape) {
    out.push_back({std::move(name), std::move(dtypes), std::move(shape)});
  };
  const int64_t bo = c.weight_block_size[0], bi = c.weight_block_size[1];
  auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  // An FP8 e4m3 weight [rows, cols] with its E8M0 block scale.
  auto fp8 = [&](const std::string& base, int64_t rows, int64_t cols) {
    add(base + ".weight", {DType::F8_E4M3}, {rows, cols});
    add(base + ".scale", {DType::F8_E8M0}, {ceil_div(rows, bo), ceil_div(cols, bi)});
  };
  // A routed-expert weight: FP4 packed two per byte with one scale per 32 inputs, or FP8.
  auto expert = [&](const std::string& base, int64_t rows, int64_t cols) {
    if (c.expert_dtype == "fp4") {
      add(base + ".weight", {DType::I8}, {rows, cols / 2});
      add(base + ".scale", {DType::F8_E8M0}, {rows, cols / 32});
    } else {
      fp8(base, rows, cols);
    }
  };
  const int64_t D = c.hidden_size, H = c.num_attention_heads, dh = c.head_dim, hc = c.hc_mult;
  const int64_t hc_rows = (2 + hc) * hc;  // pre (hc) + post (hc) + the hc x hc residual mix
  // hc_*_scale is F32 in the official checkpoint; the tiny fixture stores it as BF16.
  const std::vector<DType> f32_or_bf16 = {DType::F32, DType::BF16};

  add("embed.weight", {DType::BF16}, {c.vocab_size, D});
  add("head.weight", {DType::BF16, DType::F32}, {c.vocab_size, D});
  add("norm.weight", {DType::BF16}, {D});
  add("hc_head_fn", {DType::F32}, {hc, hc * D});
  add("hc_head_base", {DType::F32}, {hc});
  add("hc_head_scale", f32_or_bf16, {1});

  const int64_t total_layers = c.num_hidden_layers + c.num_nextn_predict_layers;
  for (int64_t l = 0; l < total_layers; ++l) {
    const std::string p = layer_prefix(c, l);
    const int64_t ratio = c.compress_ratio(l);
    add(p + "attn_norm.weight", {DType::BF16}, {D});
    add(p + "ffn_norm.weight", {DType::BF16}, {D});
    for (const char* site : {"attn", "ffn"}) {
      add(p + "hc_" + site + "_fn", {DType::F32}, {hc_rows, hc * D});
      add(p + "hc_" + site + "_base", {DType::F32}, {hc_rows});
      add(p + "hc_" + site + "_scale", f32_or_bf16, {3});
    }
    add(p + "attn.attn_sink", {DType::F32}, {H});
    fp8(p + "attn.wq_a", c.q_lora_rank, D);
    add(p + "attn.q_norm.weight", {DType::BF16}, {c.q_lora_rank});
    fp8(p + "attn.wq_b", H * dh, c.q_lora_rank);
    fp8(p + "attn.wkv", dh, D);
    add(p + "attn.kv_norm.weight", {DType::BF16}, {dh});
    fp8(p + "attn.wo_a", c.o_groups * c.o_lora_rank, H * dh / c.o_groups);
    fp8(p + "attn.wo_b", D, c.o_groups * c.o_lora_rank);
    if (ratio != 0) {
      const int64_t coff = ratio == 4 ? 2 : 1;  // ratio-4 compressors use overlapping windows
      add(p + "attn.compressor.wkv.weight", {DType::BF16}, {coff * dh, D});
      add(p + "attn.compressor.wgate.weight", {DType::BF16}, {coff * dh, D});
      add(p + "attn.compressor.ape", {DType::F32}, {ratio, coff * dh});
      add(p + "attn.compressor.norm.weight", {DType::BF16}, {dh});
      if (ratio == 4) {  // CSA: the lightning indexer
        const int64_t ih = c.index_n_heads, id = c.index_head_dim;
        fp8(p + "attn.indexer.wq_b", ih * id, c.q_lora_rank);
        add(p + "attn.indexer.weights_proj.weight", {DType::BF16}, {ih, D});
        add(p + "attn.indexer.compressor.wkv.weight", {DType::BF16}, {coff * id, D});
        add(p + "attn.indexer.compressor.wgate.weight", {DType::BF16}, {coff * id, D});
        add(p + "attn.indexer.compressor.ape", {DType::F32}, {ratio, coff * id});
        add(p + "attn.indexer.compressor.norm.weight", {DType::BF16}, {id});
      }
    }
    add(p + "ffn.gate.weight", {DType::BF16}, {c.n_routed_experts, D});
    if (c.is_hash_layer(l))
      add(p + "ffn.gate.tid2eid", {DType::I64, DType::I32}, {c.vocab_size, c.num_experts_per_tok});
    else
      add(p + "ffn.gate.bias", {DType::F32}, {c.n_routed_experts});
    const int64_t I = c.moe_intermediate_size;
    for (int64_t e = 0; e < c.n_routed_experts; ++e) {
      const std::string ep = fmt::format("{}ffn.experts.{}.", p, e);
      expert(ep + "w1", I, D);
      expert(ep + "w2", D, I);
      expert(ep + "w3", I, D);
    }
    if (c.n_shared_experts > 0) {
      const int64_t Is = I * c.n_shared_experts;
      fp8(p + "ffn.shared_experts.w1", Is, D);
      fp8(p + "ffn.shared_experts.w2", D, Is);
      fp8(p + "ffn.shared_experts.w3", Is, D);
    }
    if (l >= c.num_hidden_layers) {  // MTP block extras
      fp8(p + "e_proj", D, D);
      fp8(p + "h_proj", D, D);
      add(p + "enorm.weight", {DType::BF16}, {D});
      add(p + "hnorm.weight", {DType::BF16}, {D});
      add(p + "norm.weight", {DType::BF16}, {D});
      add(p + "hc_head_fn", {DType::F32}, {hc, hc * D});
      add(p + "hc_head_base", {DType::F32}, {hc});
      add(p + "hc_head_scale", f32_or_bf16, {1});
    }
  }
  return out;
}

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string dtypes_text(const std::vector<DType>& dtypes) {
  std::string s;
  for (size_t i = 0; i < dtypes.size(); ++i) s += std::string(i ? " or " : "") + std::string(dtype_name(dtypes[i]));
  return s;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(fmt::format("{}: cannot open", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The index's weight_map: tensor name -> shard file name (a plain file name in the same folder).
std::map<std::string, std::string> read_weight_map(const fs::path& index_path) {
  const std::string label = index_path.string();
  json::error_code ec;
  json::value root = json::parse(read_text(index_path), ec);
  if (ec) throw CheckpointError(fmt::format("{}: not valid JSON: {}", label, ec.message()));
  const json::value* wm = root.is_object() ? root.as_object().if_contains("weight_map") : nullptr;
  if (!wm || !wm->is_object()) throw CheckpointError(label + ": missing object 'weight_map'");
  std::map<std::string, std::string> out;
  for (const auto& [name, file] : wm->as_object()) {
    if (!file.is_string())
      throw CheckpointError(fmt::format("{}: weight_map entry '{}' is not a file name", label, std::string(name)));
    std::string f(file.as_string());
    if (f.empty() || f.find('/') != std::string::npos || f.find('\\') != std::string::npos || f == "." || f == "..")
      throw CheckpointError(fmt::format("{}: weight_map entry '{}' names '{}', which is not a file in the checkpoint folder",
                                        label, std::string(name), f));
    out.emplace(std::string(name), std::move(f));
  }
  if (out.empty()) throw CheckpointError(label + ": weight_map is empty");
  return out;
}

}  // namespace

std::unique_ptr<Checkpoint> Checkpoint::open(const std::string& dir, WeightMemory memory) {
  auto ckpt = std::make_unique<Checkpoint>();
  ckpt->dir_ = dir;
  const fs::path root(dir);
  if (!fs::is_directory(root)) throw CheckpointError(fmt::format("{}: not a directory", dir));
  ckpt->config_ = ModelConfig::from_file((root / "config.json").string());
  const ModelConfig& c = ckpt->config_;

  std::vector<std::string> problems;
  const fs::path index_path = root / "model.safetensors.index.json";
  if (fs::exists(index_path)) {
    const auto weight_map = read_weight_map(index_path);
    std::map<std::string, SafetensorsFile*> shards;
    for (const auto& [name, file] : weight_map) {
      if (shards.count(file)) continue;
      ckpt->files_.push_back(SafetensorsFile::open((root / file).string(), memory));
      shards[file] = ckpt->files_.back().get();
    }
    for (const auto& [file, shard] : shards)
      for (const auto& [name, view] : shard->tensors()) {
        auto it = weight_map.find(name);
        if (it == weight_map.end())
          problems.push_back(fmt::format("{}: in shard {} but not listed in model.safetensors.index.json", name, file));
        else if (it->second != file)
          problems.push_back(fmt::format("{}: in shard {} but the index places it in {}", name, file, it->second));
        else
          ckpt->index_[name] = &view;
      }
    for (const auto& [name, file] : weight_map)
      if (!shards.at(file)->tensors().count(name))
        problems.push_back(fmt::format("{}: listed in the index for shard {} but not in that file", name, file));
  } else if (fs::exists(root / "model.safetensors")) {
    ckpt->files_.push_back(SafetensorsFile::open((root / "model.safetensors").string(), memory));
    for (const auto& [name, view] : ckpt->files_.back()->tensors()) ckpt->index_[name] = &view;
  } else {
    throw CheckpointError(fmt::format("{}: neither model.safetensors.index.json nor model.safetensors found", dir));
  }

  // Bind by name: every implied tensor present with its dtype and shape, nothing else.
  std::set<std::string> expected_names;
  for (const TensorSpec& spec : expected_tensors(c)) {
    expected_names.insert(spec.name);
    const TensorView* t = ckpt->find(spec.name);
    if (!t) {
      problems.push_back(fmt::format("missing {}: expected {} {}", spec.name, dtype_name(spec.dtypes[0]),
                                     shape_text(spec.shape)));
      continue;
    }
    bool dtype_ok = false;
    for (DType d : spec.dtypes) dtype_ok |= d == t->dtype;
    if (!dtype_ok)
      problems.push_back(fmt::format("{}: dtype {}, expected {}", spec.name, dtype_name(t->dtype), dtypes_text(spec.dtypes)));
    if (t->shape != spec.shape)
      problems.push_back(fmt::format("{}: shape {}, expected {}", spec.name, shape_text(t->shape), shape_text(spec.shape)));
    // Hash-routing tables index the experts directly: out-of-range ids would read out of bounds.
    if (dtype_ok && t->shape == spec.shape && spec.name.ends_with(".ffn.gate.tid2eid")) {
      const int64_t n = t->numel();
      for (int64_t i = 0; i < n; ++i) {
        int64_t id;
        if (t->dtype == DType::I64) std::memcpy(&id, t->data + 8 * i, 8);
        else {
          int32_t v;
          std::memcpy(&v, t->data + 4 * i, 4);
          id = v;
        }
        if (id < 0 || id >= c.n_routed_experts) {
          problems.push_back(fmt::format("{}: entry {} is expert id {}, outside [0, {})", spec.name, i, id,
                                         c.n_routed_experts));
          break;
        }
      }
    }
  }
  for (const auto& [name, view] : ckpt->index_)
    if (!expected_names.count(name))
      problems.push_back(fmt::format("unexpected tensor {} ({} {}): not implied by config.json", name,
                                     dtype_name(view->dtype), shape_text(view->shape)));

  if (!problems.empty()) {
    constexpr size_t kShown = 50;
    std::string msg = fmt::format("{}: checkpoint does not match its config.json ({} problem{}):", dir, problems.size(),
                                  problems.size() == 1 ? "" : "s");
    for (size_t i = 0; i < problems.size() && i < kShown; ++i) msg += "\n  " + problems[i];
    if (problems.size() > kShown) msg += fmt::format("\n  ... and {} more", problems.size() - kShown);
    throw CheckpointError(msg);
  }
  return ckpt;
}

const TensorView* Checkpoint::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const TensorView& Checkpoint::get(const std::string& name) const {
  const TensorView* t = find(name);
  if (!t) throw CheckpointError(fmt::format("{}: no tensor named {}", dir_, name));
  return *t;
}

PageResidency Checkpoint::residency() const {
  PageResidency r;
  for (const auto& f : files_) r += f->residency();
  return r;
}

}  // namespace v4::core
