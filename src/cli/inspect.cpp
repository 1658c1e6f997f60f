// v4flash inspect DIR [--json] [--summary] [--tensor NAME]: what a checkpoint holds.
#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <string>

#include "cli/command.h"
#include "core/checkpoint.h"
#include "core/dequant.h"
#include "fmt/format.h"

namespace {

namespace json = boost::json;
using namespace v4::core;

std::string attention_kind(int64_t ratio) {
  if (ratio == 0) return "SWA";
  if (ratio == 4) return "CSA";
  return "HCA";
}

json::array shape_json(const std::vector<int64_t>& shape) {
  json::array a;
  for (int64_t d : shape) a.push_back(d);
  return a;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A block/group scale belonging to a quantised weight (not a model parameter of its own).
bool is_weight_scale(const Checkpoint& ckpt, const std::string& name, const TensorView& t) {
  return t.dtype == DType::F8_E8M0 && name.ends_with(".scale") &&
         ckpt.find(name.substr(0, name.size() - 6) + ".weight") != nullptr;
}

int tensor_stats(const Checkpoint& ckpt, const std::string& name, bool as_json) {
  if (!ckpt.find(name)) throw std::invalid_argument(fmt::format("no tensor named '{}' in {}", name, ckpt.dir()));
  const QuantizedWeight q = describe(ckpt, name);
  double sum = 0, sum_sq = 0, abs_max = 0;
  const int64_t rows = q.rows(), cols = q.cols();
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    q.dequantize_rows(r, r + 1, row.data());
    for (float v : row) {
      sum += v;
      sum_sq += double(v) * v;
      abs_max = std::max(abs_max, double(std::fabs(v)));
      if (std::isnan(v)) abs_max = v;
    }
  }
  const int64_t count = rows * cols;
  const double mean = count ? sum / double(count) : 0.0;
  json::object o{{"name", name},     {"dtype", std::string(dtype_name(q.weight->dtype))},
                 {"shape", shape_json(q.logical_shape())},
                 {"count", count},   {"sum", sum},
                 {"mean", mean},     {"abs_max", abs_max},
                 {"sum_sq", sum_sq}};
  if (q.encoding != Encoding::Plain) {
    o["encoding"] = q.encoding == Encoding::Fp8Block ? "fp8_e4m3 x e8m0 block scale" : "fp4_e2m1 x e8m0 per-32 scale";
    o["stored_shape"] = shape_json(q.weight->shape);
  }
  if (as_json) {
    std::puts(json::serialize(o).c_str());
  } else {
    std::printf("%s  %s %s%s\n", name.c_str(), std::string(dtype_name(q.weight->dtype)).c_str(),
                shape_text(q.logical_shape()).c_str(),
                q.encoding == Encoding::Fp8Block   ? " (FP8 x block scale, dequantised)"
                : q.encoding == Encoding::Fp4Packed ? " (packed FP4 x per-32 scale, dequantised)"
                                                    : "");
    std::printf("  count %lld  sum %.9g  mean %.9g  abs_max %.9g  sum_sq %.9g\n", static_cast<long long>(count), sum,
                mean, abs_max, sum_sq);
  }
  return 0;
}

struct DtypeTotals {
  int64_t tensors = 0, elements = 0;
  uint64_t bytes = 0;
};

int inspect(const v4::cli::Args& args) {
  v4::cli::ArgParser p(args);
  p.check_known({"tensor"}, {"json", "summary"});
  const auto pos = p.positional();
  if (pos.size() != 1) {
    std::fprintf(stderr,
                 "usage: v4flash inspect DIR [--json] [--summary] [--tensor NAME]\n"
                 "  DIR holds config.json and model.safetensors or model.safetensors.index.json + shards.\n"
                 "  --summary      leave out the per-tensor list\n"
                 "  --tensor NAME  statistics of the dequantised values of one tensor\n");
    return 2;
  }
  const bool as_json = p.flag("json");
  auto ckpt = Checkpoint::open(pos[0]);
  if (auto name = p.value("tensor")) return tensor_stats(*ckpt, *name, as_json);

  const ModelConfig& c = ckpt->config();
  std::map<std::string, DtypeTotals> by_dtype;
  std::set<std::string> files;
  int64_t parameters = 0;
  uint64_t total_bytes = 0;
  for (const auto& [name, t] : ckpt->tensors()) {
    auto& d = by_dtype[std::string(dtype_name(t->dtype))];
    const bool packed_fp4 = t->dtype == DType::I8 && c.expert_dtype == "fp4" && name.find(".experts.") != std::string::npos;
    const int64_t logical = t->numel() * (packed_fp4 ? 2 : 1);
    d.tensors++;
    d.elements += logical;
    d.bytes += t->nbytes;
    total_bytes += t->nbytes;
    files.insert(t->file);
    if (!is_weight_scale(*ckpt, name, *t)) parameters += logical;
  }
  const int64_t total_layers = c.num_hidden_layers + c.num_nextn_predict_layers;
  std::vector<int64_t> hash_layers;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    if (c.is_hash_layer(l)) hash_layers.push_back(l);

  if (as_json) {
    json::object o;
    o["dir"] = ckpt->dir();
    o["model_type"] = "deepseek_v4";
    o["config"] = json::parse(c.to_json_text());
    json::array layers;
    for (int64_t l = 0; l < total_layers; ++l) {
      const std::string prefix = layer_prefix(c, l);
      layers.push_back(json::object{{"index", l},
                                    {"name", prefix.substr(0, prefix.size() - 1)},
                                    {"mtp", l >= c.num_hidden_layers},
                                    {"attention", attention_kind(c.compress_ratio(l))},
                                    {"compress_ratio", c.compress_ratio(l)},
                                    {"routing", c.is_hash_layer(l) ? "hash" : "score"}});
    }
    o["layers"] = std::move(layers);
    json::array hl;
    for (int64_t l : hash_layers) hl.push_back(l);
    o["hash_layers"] = std::move(hl);
    o["mtp_layers"] = c.num_nextn_predict_layers;
    o["experts"] = json::object{{"routed", c.n_routed_experts},
                                {"shared", c.n_shared_experts},
                                {"per_token", c.num_experts_per_tok},
                                {"intermediate", c.moe_intermediate_size},
                                {"dtype", c.expert_dtype},
                                {"scoring_func", c.scoring_func},
                                {"routed_scaling_factor", c.routed_scaling_factor}};
    o["tensor_count"] = ckpt->tensors().size();
    o["files"] = files.size();
    o["parameters"] = parameters;
    o["bytes"] = total_bytes;
    json::object bd;
    for (const auto& [name, d] : by_dtype)
      bd[name] = json::object{{"tensors", d.tensors}, {"elements", d.elements}, {"bytes", d.bytes}};
    o["by_dtype"] = std::move(bd);
    if (!p.flag("summary")) {
      json::array tensors;
      for (const auto& [name, t] : ckpt->tensors())
        tensors.push_back(json::object{{"name", name}, {"dtype", std::string(dtype_name(t->dtype))},
                                       {"shape", shape_json(t->shape)}, {"bytes", t->nbytes}});
      o["tensors"] = std::move(tensors);
    }
    std::puts(json::serialize(o).c_str());
    return 0;
  }

  std::printf("checkpoint %s: DeepSeek-V4 (deepseek_v4)\n", ckpt->dir().c_str());
  std::printf("  hidden %lld, vocab %lld, %lld heads x %lld (rope %lld), q_lora %lld, o_groups %lld x %lld, window %lld\n",
              (long long)c.hidden_size, (long long)c.vocab_size, (long long)c.num_attention_heads, (long long)c.head_dim,
              (long long)c.qk_rope_head_dim, (long long)c.q_lora_rank, (long long)c.o_groups,
              (long long)c.o_lora_rank, (long long)c.sliding_window);
  std::printf("  indexer %lld heads x %lld, top-%lld; mHC %lld streams, %lld Sinkhorn iterations\n",
              (long long)c.index_n_heads, (long long)c.index_head_dim, (long long)c.index_topk, (long long)c.hc_mult,
              (long long)c.hc_sinkhorn_iters);
  std::printf("layers: %lld + %lld MTP\n", (long long)c.num_hidden_layers, (long long)c.num_nextn_predict_layers);
  for (int64_t l = 0; l < total_layers; ++l) {
    const std::string prefix = layer_prefix(c, l);
    const int64_t r = c.compress_ratio(l);
    std::printf("  %-9s %s%s  routing %s\n", prefix.substr(0, prefix.size() - 1).c_str(), attention_kind(r).c_str(),
                r ? fmt::format(" (ratio {:>3})", r).c_str() : "            ", c.is_hash_layer(l) ? "hash" : "score");
  }
  std::string plan;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) plan += (l ? ", " : "") + attention_kind(c.compress_ratio(l));
  std::printf("  plan: %s\n", plan.c_str());
  if (hash_layers.empty())
    std::printf("hash layers: none\n");
  else
    std::printf("hash layers: %s (token-id routing via ffn.gate.tid2eid)\n",
                hash_layers.size() == 1 ? fmt::format("{}", hash_layers[0]).c_str()
                                        : fmt::format("{}-{}", hash_layers.front(), hash_layers.back()).c_str());
  std::printf("experts: %lld routed (%s, top-%lld, intermediate %lld) + %lld shared; %s scoring, route scale %g\n",
              (long long)c.n_routed_experts, c.expert_dtype.c_str(), (long long)c.num_experts_per_tok,
              (long long)c.moe_intermediate_size, (long long)c.n_shared_experts, c.scoring_func.c_str(),
              c.routed_scaling_factor);
  std::printf("MTP: %lld layer%s\n", (long long)c.num_nextn_predict_layers, c.num_nextn_predict_layers == 1 ? "" : "s");
  std::printf("tensors: %zu in %zu file%s\n", ckpt->tensors().size(), files.size(), files.size() == 1 ? "" : "s");
  std::printf("parameters: %lld (%.3f B; scales excluded, packed FP4 counted as 2 per byte)\n", (long long)parameters,
              double(parameters) / 1e9);
  std::printf("bytes: %llu (%.3f GB)\n", (unsigned long long)total_bytes, double(total_bytes) / 1e9);
  std::printf("  %-8s %8s %16s %16s\n", "dtype", "tensors", "elements", "bytes");
  for (const auto& [name, d] : by_dtype)
    std::printf("  %-8s %8lld %16lld %16llu\n", name.c_str(), (long long)d.tensors, (long long)d.elements,
                (unsigned long long)d.bytes);
  if (!p.flag("summary")) {
    std::printf("tensor list (%zu):\n", ckpt->tensors().size());
    for (const auto& [name, t] : ckpt->tensors())
      std::printf("  %-56s %-8s %s\n", name.c_str(), std::string(dtype_name(t->dtype)).c_str(),
                  shape_text(t->shape).c_str());
  }
  return 0;
}

}  // namespace

V4_COMMAND("inspect", "describe a checkpoint (layers, tensors, dtypes) or one tensor's statistics", inspect);
