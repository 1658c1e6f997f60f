#include "export/synth.h"

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/checkpoint.h"
#include "core/codecs.h"
#include "export/safetensors_writer.h"
#include "fmt/format.h"

namespace v4::core {

namespace json = boost::json;
namespace fs = std::filesystem;

const std::vector<SpecialToken>& v4_extra_special_tokens() {
  // Spec §5: the ids verified against the V4 tokenizer.json or its tests. (<｜image｜> 129279 is left
  // out: it may belong to V4.1.)
  static const std::vector<SpecialToken> tokens = {
      {"<think>", 128821},
      {"</think>", 128822},
      {"\xef\xbd\x9c" "DSML" "\xef\xbd\x9c", 128825},                          // ｜DSML｜
      {"<\xef\xbd\x9c" "latest_reminder" "\xef\xbd\x9c>", 128828},
      {"<\xef\xbd\x9c" "action" "\xef\xbd\x9c>", 128829},
      {"<\xef\xbd\x9c" "query" "\xef\xbd\x9c>", 128830},
      {"<\xef\xbd\x9c" "authority" "\xef\xbd\x9c>", 128831},
      {"<\xef\xbd\x9c" "domain" "\xef\xbd\x9c>", 128832},
      {"<\xef\xbd\x9c" "title" "\xef\xbd\x9c>", 128836},
      {"<\xef\xbd\x9c" "read_url" "\xef\xbd\x9c>", 128845},
  };
  return tokens;
}

std::string add_v4_special_tokens(const std::string& text, int64_t* max_id, int64_t* added) {
  json::error_code ec;
  json::value root = json::parse(text, ec);
  if (ec || !root.is_object()) throw std::runtime_error("tokenizer.json is not a JSON object: " + ec.message());
  json::object& obj = root.as_object();
  json::value* at = obj.if_contains("added_tokens");
  if (!at || !at->is_array()) throw std::runtime_error("tokenizer.json has no added_tokens list");
  json::array& list = at->as_array();
  const auto& extras = v4_extra_special_tokens();
  // Drop entries that hold one of our ids or contents, then append ours.
  json::array kept;
  for (auto& entry : list) {
    bool clash = false;
    if (entry.is_object())
      for (const auto& t : extras) {
        const auto* id = entry.as_object().if_contains("id");
        const auto* content = entry.as_object().if_contains("content");
        if ((id && id->is_int64() && id->as_int64() == t.id) ||
            (content && content->is_string() && content->as_string() == t.content))
          clash = true;
      }
    if (!clash) kept.push_back(std::move(entry));
  }
  for (const auto& t : extras)
    kept.push_back(json::object{{"id", t.id},          {"content", t.content}, {"single_word", false},
                                {"lstrip", false},     {"rstrip", false},      {"normalized", false},
                                {"special", true}});
  std::sort(kept.begin(), kept.end(), [](const json::value& a, const json::value& b) {
    auto id = [](const json::value& v) -> int64_t {
      const auto* i = v.is_object() ? v.as_object().if_contains("id") : nullptr;
      return i && i->is_int64() ? i->as_int64() : 0;
    };
    return id(a) < id(b);
  });
  list = std::move(kept);
  int64_t top = -1;
  for (const auto& e : list)
    if (const auto* i = e.as_object().if_contains("id"); i && i->is_int64()) top = std::max(top, i->as_int64());
  if (const json::value* model = obj.if_contains("model"); model && model->is_object())
    if (const json::value* vocab = model->as_object().if_contains("vocab"); vocab && vocab->is_object())
      for (const auto& [k, v] : vocab->as_object())
        if (v.is_int64()) top = std::max(top, v.as_int64());
  *max_id = top;
  *added = int64_t(extras.size());
  return json::serialize(root);
}

ModelConfig synth_config(const SynthOptions& o) {
  ModelConfig c;  // V4-Flash values by default
  if (o.shape == "tiny") {
    c.vocab_size = 4096;
    c.hidden_size = 256;
    c.num_hidden_layers = 6;
    c.num_attention_heads = 4;
    c.head_dim = 128;
    c.q_lora_rank = 128;
    c.o_groups = 2;
    c.o_lora_rank = 128;
    c.moe_intermediate_size = 128;
    c.n_routed_experts = 8;
    c.num_experts_per_tok = 2;
    c.num_hash_layers = 2;
    c.index_n_heads = 4;
    c.index_head_dim = 128;
    c.index_topk = 16;
  } else if (o.shape != "flash") {
    throw std::invalid_argument(fmt::format("unknown --shape '{}' (tiny or flash)", o.shape));
  }
  const int64_t default_layers = c.num_hidden_layers, default_hash = c.num_hash_layers;
  const int64_t layers = o.layers < 0 ? default_layers : o.layers;
  if (layers < 1 || layers > 1000) throw std::invalid_argument(fmt::format("--layers {} out of range [1, 1000]", layers));
  c.num_hidden_layers = layers;
  c.num_hash_layers = layers == default_layers ? default_hash : std::min(default_hash, layers - 1);
  if (o.experts >= 0) {
    if (o.experts < 1 || o.experts > 4096)
      throw std::invalid_argument(fmt::format("--experts {} out of range [1, 4096]", o.experts));
    c.n_routed_experts = o.experts;
    c.num_experts_per_tok = std::min(c.num_experts_per_tok, o.experts);
  }
  c.num_nextn_predict_layers = 1;
  c.compress_ratios.clear();
  auto alternate = [](int64_t i) { return i % 2 == 0 ? int64_t(4) : int64_t(128); };
  for (int64_t l = 0; l < layers; ++l) {
    int64_t r;
    if (o.shape == "tiny")
      r = layers == 6 ? std::vector<int64_t>{0, 4, 128, 4, 128, 0}[size_t(l)] : (l == 0 ? 0 : alternate(l - 1));
    else if (layers < 4)
      r = alternate(l);
    else
      r = l < 2 ? 0 : alternate(l);  // 43 layers: exactly the official list
    c.compress_ratios.push_back(r);
  }
  c.compress_ratios.push_back(0);  // the MTP layer
  return c;
}

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t hash_name(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  uint64_t s = h;
  return splitmix64(s);
}

// Standard-normal quantiles at (i + 0.5) / 65536: sampling an index uniformly gives a (finely
// discretised) normal value without a transcendental call per element.
const std::vector<float>& normal_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (size_t i = 0; i < t.size(); ++i) {
      const double p = (double(i) + 0.5) / 65536.0;
      double lo = -10, hi = 10;
      for (int it = 0; it < 60; ++it) {
        const double mid = 0.5 * (lo + hi);
        (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
      }
      t[i] = float(0.5 * (lo + hi));
    }
    return t;
  }();
  return table;
}

// Fills `rows` rows of `row_bytes` each in parallel chunks; chunk k's bytes depend only on
// (tensor seed, k), so output does not depend on the thread count.
void parallel_rows(int64_t rows, uint64_t tensor_seed,
                   const std::function<void(int64_t row_begin, int64_t row_end, uint64_t& rng)>& fill) {
  const int64_t chunk = 64;
  const int64_t chunks = (rows + chunk - 1) / chunk;
  std::atomic<int64_t> next{0};
  auto worker = [&] {
    for (int64_t k; (k = next.fetch_add(1)) < chunks;) {
      uint64_t rng = tensor_seed ^ (uint64_t(k) * 0xD1B54A32D192ED03ull);
      splitmix64(rng);
      fill(k * chunk, std::min(rows, (k + 1) * chunk), rng);
    }
  };
  const int64_t n_threads =
      std::min<int64_t>(chunks, std::max<int64_t>(1, int64_t(std::thread::hardware_concurrency())));
  std::vector<std::thread> threads;
  for (int64_t t = 1; t < n_threads; ++t) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
}

int64_t rows_of(const std::vector<int64_t>& shape) {
  int64_t r = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) r *= shape[i];
  return r;
}
int64_t cols_of(const std::vector<int64_t>& shape) { return shape.empty() ? 1 : shape.back(); }

int round_log2(double x) { return int(std::lround(std::log2(x))); }

class Generator {
 public:
  Generator(const ModelConfig& c, uint64_t seed) : c_(c), seed_(seed) {}

  void add(SafetensorsWriter& w, const TensorSpec& spec) {
    const std::string& n = spec.name;
    const DType dtype = spec.dtypes[0];
    const uint64_t s = hash_name(seed_, n);
    auto ends = [&](const char* suffix) { return n.ends_with(suffix); };
    const double D = double(c_.hidden_size);
    if (ends(".scale") && dtype == DType::F8_E8M0) return;  // written together with its weight
    if (dtype == DType::F8_E4M3) return add_fp8(w, spec, s);
    if (dtype == DType::I8) return add_fp4(w, spec, s);
    if (ends("tid2eid")) return add_tid2eid(w, spec, s);
    // Plain float tensors: (mean, std) chosen so a forward pass keeps O(1) activations.
    double mean = 0, stdev = 1;
    if (ends("norm.weight")) mean = 1, stdev = 0.1;
    else if (ends("embed.weight")) stdev = 1;
    else if (ends("_fn")) stdev = 1 / std::sqrt(double(cols_of(spec.shape)));
    else if (ends("_base")) stdev = 0.5;
    else if (ends("_scale")) mean = 1, stdev = 0.2;
    else if (ends("attn_sink")) stdev = 1;
    else if (ends(".ape")) stdev = 0.5;
    else if (ends("gate.bias")) stdev = 0.05;
    else if (ends(".weight")) stdev = 1 / std::sqrt(D);  // head, gate, compressors, weights_proj
    const int64_t rows = rows_of(spec.shape), cols = cols_of(spec.shape);
    const size_t elem = dtype_size(dtype);
    w.add(n, dtype, spec.shape, [=](std::span<uint8_t> out) {
      const auto& table = normal_table();
      parallel_rows(rows, s, [&](int64_t r0, int64_t r1, uint64_t& rng) {
        for (int64_t i = r0 * cols; i < r1 * cols; i += 4) {
          uint64_t bits = splitmix64(rng);
          for (int64_t j = i; j < std::min(i + 4, r1 * cols); ++j, bits >>= 16) {
            const float v = float(mean + stdev * table[bits & 0xFFFF]);
            if (dtype == DType::F32) std::memcpy(out.data() + elem * size_t(j), &v, 4);
            else {
              const uint16_t b = float_to_bf16(v);
              std::memcpy(out.data() + elem * size_t(j), &b, 2);
            }
          }
        }
      });
    });
  }

 private:
  // FP8 e4m3 weight [rows, cols], std 1/sqrt(cols), with an E8M0 128x128 block scale. The scale is
  // a power of two near std/16, so codes spread over the e4m3 range without saturating.
  void add_fp8(SafetensorsWriter& w, const TensorSpec& spec, uint64_t s) {
    const int64_t rows = spec.shape[0], cols = spec.shape[1];
    const int64_t bo = c_.weight_block_size[0], bi = c_.weight_block_size[1];
    const int exponent = std::clamp(round_log2(1 / std::sqrt(double(cols)) / 16), -127, 127);
    static const std::vector<uint8_t> codes = [] {
      std::vector<uint8_t> t(65536);
      for (size_t i = 0; i < t.size(); ++i) t[i] = float_to_e4m3(normal_table()[i] * 16);
      return t;
    }();
    w.add(spec.name, DType::F8_E4M3, spec.shape, [=](std::span<uint8_t> out) {
      parallel_rows(rows, s, [&](int64_t r0, int64_t r1, uint64_t& rng) {
        for (int64_t i = r0 * cols; i < r1 * cols; i += 4) {
          uint64_t bits = splitmix64(rng);
          for (int64_t j = i; j < std::min(i + 4, r1 * cols); ++j, bits >>= 16) out[size_t(j)] = codes[bits & 0xFFFF];
        }
      });
    });
    const std::string scale = spec.name.substr(0, spec.name.size() - 7) + ".scale";
    w.add(scale, DType::F8_E8M0, {(rows + bo - 1) / bo, (cols + bi - 1) / bi},
          [=](std::span<uint8_t> out) { std::fill(out.begin(), out.end(), uint8_t(127 + exponent)); });
  }

  // Packed FP4 e2m1 [rows, cols/2] bytes, std 1/sqrt(cols), scale per 32 inputs near std/1.5.
  void add_fp4(SafetensorsWriter& w, const TensorSpec& spec, uint64_t s) {
    const int64_t rows = spec.shape[0], packed = spec.shape[1], cols = packed * 2;
    const int exponent = std::clamp(round_log2(1 / std::sqrt(double(cols)) / 1.5), -127, 127);
    static const std::vector<uint8_t> nibbles = [] {
      std::vector<uint8_t> t(256);
      for (size_t i = 0; i < t.size(); ++i) t[i] = float_to_e2m1(normal_table()[i * 256 + 128] * 1.5f);
      return t;
    }();
    w.add(spec.name, DType::I8, spec.shape, [=](std::span<uint8_t> out) {
      parallel_rows(rows, s, [&](int64_t r0, int64_t r1, uint64_t& rng) {
        for (int64_t i = r0 * packed; i < r1 * packed; i += 4) {
          uint64_t bits = splitmix64(rng);
          for (int64_t j = i; j < std::min(i + 4, r1 * packed); ++j, bits >>= 16)
            out[size_t(j)] = uint8_t(nibbles[bits & 0xFF] | (nibbles[(bits >> 8) & 0xFF] << 4));
        }
      });
    });
    const std::string scale = spec.name.substr(0, spec.name.size() - 7) + ".scale";
    w.add(scale, DType::F8_E8M0, {rows, cols / 32},
          [=](std::span<uint8_t> out) { std::fill(out.begin(), out.end(), uint8_t(127 + exponent)); });
  }

  // Hash routing table: each token gets top-k distinct experts.
  void add_tid2eid(SafetensorsWriter& w, const TensorSpec& spec, uint64_t s) {
    const int64_t rows = spec.shape[0], k = spec.shape[1], experts = c_.n_routed_experts;
    const bool i64 = spec.dtypes[0] == DType::I64;
    w.add(spec.name, spec.dtypes[0], spec.shape, [=](std::span<uint8_t> out) {
      parallel_rows(rows, s, [&](int64_t r0, int64_t r1, uint64_t& rng) {
        std::vector<int64_t> chosen;
        for (int64_t r = r0; r < r1; ++r) {
          chosen.clear();
          while (int64_t(chosen.size()) < k) {
            const int64_t e = int64_t(splitmix64(rng) % uint64_t(experts));
            if (std::find(chosen.begin(), chosen.end(), e) == chosen.end()) chosen.push_back(e);
          }
          for (int64_t j = 0; j < k; ++j) {
            const size_t at = size_t(r * k + j);
            if (i64) std::memcpy(out.data() + 8 * at, &chosen[size_t(j)], 8);
            else {
              const int32_t v = int32_t(chosen[size_t(j)]);
              std::memcpy(out.data() + 4 * at, &v, 4);
            }
          }
        }
      });
    });
  }

  const ModelConfig& c_;
  uint64_t seed_;
};

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f.flush()) throw std::runtime_error(path.string() + ": write failed");
}

}  // namespace

SynthResult write_synthetic_checkpoint(const SynthOptions& options, const std::string& out_dir,
                                       const SynthProgress& progress) {
  SynthResult result;
  ModelConfig c = synth_config(options);
  const fs::path dir(out_dir);
  fs::create_directories(dir);

  if (!options.tokenizer.empty()) {
    std::ifstream in(options.tokenizer, std::ios::binary);
    if (!in) throw std::runtime_error(options.tokenizer + ": cannot open");
    std::ostringstream text;
    text << in.rdbuf();
    int64_t max_id = 0;
    const std::string out = add_v4_special_tokens(text.str(), &max_id, &result.tokenizer_tokens_added);
    c.vocab_size = std::max(c.vocab_size, max_id + 1);
    write_text(dir / "tokenizer.json", out);
  }
  write_text(dir / "config.json", c.to_json_text());
  // Tells `serve` (and people) that this model's text is meaningless, whatever its shape.
  write_text(dir / "RANDOM_WEIGHTS", "written by v4flash synth (seed " + std::to_string(options.seed) +
                                         "): random weights, the text it generates is meaningless\n");

  // Group tensors into files: tiny -> one model.safetensors; flash -> model-level tensors, then
  // one shard per layer (the official checkpoint is sharded the same way, with an index).
  const bool sharded = options.shape == "flash";
  const int64_t total_layers = c.num_hidden_layers + c.num_nextn_predict_layers;
  std::vector<SafetensorsWriter> writers(sharded ? size_t(1 + total_layers) : 1);
  Generator gen(c, options.seed);
  for (const TensorSpec& spec : expected_tensors(c)) {
    size_t file = 0;
    if (sharded) {
      for (int64_t l = 0; l < total_layers; ++l)
        if (spec.name.starts_with(layer_prefix(c, l))) file = size_t(1 + l);
    }
    gen.add(writers[file], spec);
  }
  uint64_t total = 0;
  for (const auto& w : writers) total += w.data_bytes();
  uint64_t done_before = 0;
  json::object weight_map;
  for (size_t i = 0; i < writers.size(); ++i) {
    const std::string name =
        sharded ? fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, writers.size()) : "model.safetensors";
    writers[i].write((dir / name).string(), [&](uint64_t done, uint64_t) {
      if (progress) progress(done_before + done, total);
    });
    done_before += writers[i].data_bytes();
    result.tensors += writers[i].size();
    for (const auto& t : writers[i].names()) weight_map[t] = name;
  }
  if (sharded)
    write_text(dir / "model.safetensors.index.json",
               json::serialize(json::object{{"metadata", json::object{{"total_size", total}}},
                                            {"weight_map", std::move(weight_map)}}) +
                   "\n");
  result.config = c;
  result.bytes = total;
  result.files = writers.size();
  return result;
}

}  // namespace v4::core
