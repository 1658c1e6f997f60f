// Round trip of the llama.cpp export: the tiny fixture is written as GGUF, then read back with the
// small independent GGUF reader below (written from the format description, not from the writer),
// checking metadata, tensor names/shapes/types and that the data decodes to the checkpoint's values.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "core/checkpoint.h"
#include "core/codecs.h"
#include "core/dequant.h"
#include "export/gguf_writer.h"
#include "export/synth.h"

namespace {

using namespace v4::core;
const std::string kTiny = std::string(V4_SHARED_DIR) + "/fixtures/tiny-v4";

struct GgufValue {
  uint32_t type = 0;  // GGUF value type; for arrays the element type is in elem_type
  uint32_t elem_type = 0;
  uint64_t u = 0;     // unsigned/bool
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<GgufValue> arr;
};
struct GgufTensor {
  std::vector<uint64_t> ne;
  uint32_t type = 0;
  uint64_t offset = 0;
};
struct Gguf {
  uint32_t version = 0;
  std::map<std::string, GgufValue> kv;
  std::map<std::string, GgufTensor> tensors;
  std::vector<std::string> order;
  std::vector<uint8_t> bytes;
  uint64_t data_start = 0;
  const uint8_t* data(const std::string& name) const { return bytes.data() + data_start + tensors.at(name).offset; }
};

class Reader {
 public:
  explicit Reader(const std::vector<uint8_t>& b) : b_(b) {}
  template <class T> T get() {
    if (pos_ + sizeof(T) > b_.size()) throw std::runtime_error("truncated");
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str() {
    const uint64_t n = get<uint64_t>();
    if (pos_ + n > b_.size()) throw std::runtime_error("truncated string");
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  GgufValue value(uint32_t type) {
    GgufValue v;
    v.type = type;
    switch (type) {
      case 0: v.u = get<uint8_t>(); break;
      case 1: v.i = get<int8_t>(); break;
      case 2: v.u = get<uint16_t>(); break;
      case 3: v.i = get<int16_t>(); break;
      case 4: v.u = get<uint32_t>(); break;
      case 5: v.i = get<int32_t>(); break;
      case 6: v.f = get<float>(); break;
      case 7: v.u = get<uint8_t>(); break;
      case 8: v.s = str(); break;
      case 9: {
        v.elem_type = get<uint32_t>();
        const uint64_t n = get<uint64_t>();
        for (uint64_t k = 0; k < n; ++k) v.arr.push_back(value(v.elem_type));
        break;
      }
      case 10: v.u = get<uint64_t>(); break;
      case 11: v.i = get<int64_t>(); break;
      case 12: v.f = get<double>(); break;
      default: throw std::runtime_error("bad value type " + std::to_string(type));
    }
    return v;
  }
  size_t pos() const { return pos_; }

 private:
  const std::vector<uint8_t>& b_;
  size_t pos_ = 0;
};

Gguf read_gguf(const std::string& path) {
  Gguf g;
  std::ifstream in(path, std::ios::binary);
  g.bytes.assign(std::istreambuf_iterator<char>(in), {});
  Reader r(g.bytes);
  if (r.get<uint32_t>() != 0x46554747u) throw std::runtime_error("bad magic");  // "GGUF"
  g.version = r.get<uint32_t>();
  const uint64_t n_tensors = r.get<uint64_t>(), n_kv = r.get<uint64_t>();
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = r.str();
    const uint32_t type = r.get<uint32_t>();
    if (g.kv.count(key)) throw std::runtime_error("duplicate key " + key);
    g.kv[key] = r.value(type);
  }
  for (uint64_t t = 0; t < n_tensors; ++t) {
    std::string name = r.str();
    GgufTensor info;
    const uint32_t dims = r.get<uint32_t>();
    for (uint32_t d = 0; d < dims; ++d) info.ne.push_back(r.get<uint64_t>());
    info.type = r.get<uint32_t>();
    info.offset = r.get<uint64_t>();
    if (g.tensors.count(name)) throw std::runtime_error("duplicate tensor " + name);
    g.tensors[name] = info;
    g.order.push_back(name);
  }
  const uint64_t align = g.kv.count("general.alignment") ? g.kv["general.alignment"].u : 32;
  g.data_start = (r.pos() + align - 1) / align * align;
  return g;
}

// Bytes per element block and elements per block of the ggml types we expect.
uint64_t tensor_bytes(const GgufTensor& t) {
  uint64_t n = 1;
  for (uint64_t d : t.ne) n *= d;
  switch (t.type) {
    case 0: return n * 4;
    case 8: return n / 32 * 34;
    case 26: return n * 4;
    case 30: return n * 2;
    case 39: return n / 32 * 17;
  }
  throw std::runtime_error("unexpected ggml type " + std::to_string(t.type));
}

float half_to_float(uint16_t h) {  // independent of the writer's float_to_f16
  const int e = (h >> 10) & 0x1F, m = h & 0x3FF;
  const float s = (h & 0x8000) ? -1.0f : 1.0f;
  if (e == 0) return s * std::ldexp(float(m), -24);
  if (e == 31) return m ? NAN : s * INFINITY;
  return s * std::ldexp(float(1024 + m), e - 25);
}
float bf16_bits_to_float(const uint8_t* p) {
  uint32_t u = uint32_t(p[0] | (p[1] << 8)) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// MXFP4 block per the OCP MX spec / ggml: scale byte, byte j = element j (low) | element j+16 (high).
std::vector<float> decode_mxfp4(const uint8_t* p, size_t n) {
  static const float kE2M1[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  std::vector<float> out(n);
  for (size_t b = 0; b < n / 32; ++b, p += 17) {
    const float scale = std::ldexp(1.0f, int(p[0]) - 127);
    for (int j = 0; j < 16; ++j) {
      for (int half = 0; half < 2; ++half) {
        const int code = (p[1 + j] >> (4 * half)) & 0xF;
        out[b * 32 + j + 16 * half] = (code & 8 ? -1.0f : 1.0f) * kE2M1[code & 7] * scale;
      }
    }
  }
  return out;
}

class GgufExport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ckpt_ = Checkpoint::open(kTiny).release();
    dir_ = new std::string(std::filesystem::temp_directory_path() / ("v4_gguf_test_" + std::to_string(::getpid())));
    std::filesystem::create_directories(*dir_);
    make_deepseek4_gguf(*ckpt_).write(*dir_ + "/bf16.gguf");
    GgufExportOptions q8;
    q8.dense = DenseType::Q8_0;
    make_deepseek4_gguf(*ckpt_, q8).write(*dir_ + "/q8.gguf");
    bf16_ = new Gguf(read_gguf(*dir_ + "/bf16.gguf"));
    q8_ = new Gguf(read_gguf(*dir_ + "/q8.gguf"));
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete bf16_, delete q8_, delete ckpt_, delete dir_;
  }
  static Checkpoint* ckpt_;
  static std::string* dir_;
  static Gguf *bf16_, *q8_;
};
Checkpoint* GgufExport::ckpt_ = nullptr;
std::string* GgufExport::dir_ = nullptr;
Gguf* GgufExport::bf16_ = nullptr;
Gguf* GgufExport::q8_ = nullptr;

TEST_F(GgufExport, HeaderAndLoaderMetadata) {
  const Gguf& g = *bf16_;
  EXPECT_EQ(g.version, 3u);
  auto u32 = [&](const std::string& k) {
    EXPECT_TRUE(g.kv.count(k)) << k;
    EXPECT_EQ(g.kv.at(k).type, 4u) << k;
    return g.kv.at(k).u;
  };
  auto f32 = [&](const std::string& k) {
    EXPECT_TRUE(g.kv.count(k)) << k;
    EXPECT_EQ(g.kv.at(k).type, 6u) << k;
    return g.kv.at(k).f;
  };
  EXPECT_EQ(g.kv.at("general.architecture").s, "deepseek4");
  // Values from ../shared/fixtures/tiny-v4/config.json.
  EXPECT_EQ(u32("deepseek4.context_length"), 1048576u);
  EXPECT_EQ(u32("deepseek4.embedding_length"), 256u);
  EXPECT_EQ(u32("deepseek4.block_count"), 6u);  // MTP layer left out
  EXPECT_EQ(u32("deepseek4.attention.head_count"), 4u);
  EXPECT_EQ(u32("deepseek4.attention.head_count_kv"), 1u);
  EXPECT_EQ(u32("deepseek4.attention.key_length"), 128u);
  EXPECT_EQ(u32("deepseek4.attention.value_length"), 128u);
  EXPECT_EQ(u32("deepseek4.rope.dimension_count"), 64u);
  EXPECT_EQ(f32("deepseek4.rope.freq_base"), 10000.0);
  EXPECT_EQ(g.kv.at("deepseek4.rope.scaling.type").s, "yarn");
  EXPECT_EQ(f32("deepseek4.rope.scaling.factor"), 16.0);
  EXPECT_EQ(u32("deepseek4.rope.scaling.original_context_length"), 65536u);
  EXPECT_EQ(f32("deepseek4.rope.scaling.yarn_beta_fast"), 32.0);
  EXPECT_EQ(f32("deepseek4.rope.scaling.yarn_beta_slow"), 1.0);
  EXPECT_EQ(u32("deepseek4.expert_count"), 8u);
  EXPECT_EQ(u32("deepseek4.expert_used_count"), 2u);
  EXPECT_EQ(u32("deepseek4.expert_gating_func"), 4u);
  EXPECT_FLOAT_EQ(float(f32("deepseek4.attention.layer_norm_rms_epsilon")), 1e-6f);
  EXPECT_EQ(u32("deepseek4.attention.q_lora_rank"), 128u);
  EXPECT_EQ(u32("deepseek4.attention.sliding_window"), 128u);
  EXPECT_EQ(u32("deepseek4.expert_feed_forward_length"), 128u);
  EXPECT_EQ(u32("deepseek4.expert_shared_count"), 1u);
  EXPECT_EQ(f32("deepseek4.expert_weights_scale"), 1.5);
  EXPECT_EQ(g.kv.at("deepseek4.expert_weights_norm").type, 7u);
  EXPECT_EQ(g.kv.at("deepseek4.expert_weights_norm").u, 1u);
  for (const char* k : {"deepseek4.swiglu_clamp_exp", "deepseek4.swiglu_clamp_shexp"}) {
    const GgufValue& v = g.kv.at(k);
    ASSERT_EQ(v.type, 9u);
    EXPECT_EQ(v.elem_type, 6u);
    ASSERT_EQ(v.arr.size(), 6u);
    for (const auto& x : v.arr) EXPECT_EQ(x.f, 10.0);
  }
  EXPECT_EQ(u32("deepseek4.attention.indexer.head_count"), 4u);
  EXPECT_EQ(u32("deepseek4.attention.indexer.key_length") % 64, 0u);
  EXPECT_EQ(u32("deepseek4.attention.indexer.top_k"), 16u);
  EXPECT_EQ(u32("deepseek4.attention.output_group_count"), 2u);
  EXPECT_EQ(u32("deepseek4.attention.output_lora_rank"), 128u);
  EXPECT_EQ(f32("deepseek4.attention.compress_rope_freq_base"), 160000.0);
  const GgufValue& ratios = g.kv.at("deepseek4.attention.compress_ratios");
  ASSERT_EQ(ratios.elem_type, 5u);  // INT32, as gguf-py writes it
  std::vector<int64_t> r;
  for (const auto& x : ratios.arr) r.push_back(x.i);
  EXPECT_EQ(r, (std::vector<int64_t>{0, 4, 128, 4, 128, 0}));
  EXPECT_EQ(u32("deepseek4.hyper_connection.count"), 4u);
  EXPECT_EQ(u32("deepseek4.hyper_connection.sinkhorn_iterations"), 20u);
  EXPECT_FLOAT_EQ(float(f32("deepseek4.hyper_connection.epsilon")), 1e-6f);
  EXPECT_EQ(u32("deepseek4.hash_layer_count"), 2u);
  // Tokenizer: the fixture has no tokenizer.json -> placeholder gpt2 vocabulary of vocab_size tokens.
  EXPECT_EQ(g.kv.at("tokenizer.ggml.model").s, "gpt2");
  EXPECT_EQ(g.kv.at("tokenizer.ggml.pre").s, "joyai-llm");
  const auto& tokens = g.kv.at("tokenizer.ggml.tokens").arr;
  ASSERT_EQ(tokens.size(), 4096u);
  ASSERT_EQ(g.kv.at("tokenizer.ggml.token_type").arr.size(), 4096u);
  EXPECT_TRUE(g.kv.count("tokenizer.ggml.merges"));
  std::set<std::string> texts;
  for (const auto& t : tokens) texts.insert(t.s);
  EXPECT_EQ(texts.size(), tokens.size()) << "token texts must be unique";
  EXPECT_TRUE(texts.count("\xC4\x8A")) << "llama.cpp needs the newline byte token";
  EXPECT_EQ(u32("tokenizer.ggml.bos_token_id"), 0u);
  EXPECT_EQ(u32("tokenizer.ggml.eos_token_id"), 1u);
  EXPECT_EQ(g.kv.at("tokenizer.ggml.token_type").arr[0].i, 3);  // control
}

TEST_F(GgufExport, TensorNamesShapesTypesAndLayout) {
  const Gguf& g = *bf16_;
  // Expected set, written out from peer-llamacpp.md §6 for the fixture (E 256, V 4096, H 4, D 128,
  // Q 128, G 2, L 128, X 8, F 128, indexer 4 x 128, ratios 0 4 128 4 128 0, hash layers 0-1).
  std::map<std::string, std::pair<std::vector<uint64_t>, uint32_t>> want = {
      {"token_embd.weight", {{256, 4096}, 30}},   {"output_norm.weight", {{256}, 0}},
      {"output.weight", {{256, 4096}, 30}},        {"output_hc_fn.weight", {{1024, 4}, 0}},
      {"output_hc_base.weight", {{4}, 0}},         {"output_hc_scale.weight", {{1}, 0}},
  };
  const int ratios[6] = {0, 4, 128, 4, 128, 0};
  for (int l = 0; l < 6; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    auto add = [&](const std::string& n, std::vector<uint64_t> ne, uint32_t type) { want[b + n] = {ne, type}; };
    add("attn_norm.weight", {256}, 0);
    add("attn_sinks.weight", {4}, 0);
    add("attn_q_a.weight", {256, 128}, 30);
    add("attn_q_a_norm.weight", {128}, 0);
    add("attn_q_b.weight", {128, 512}, 30);
    add("attn_kv.weight", {256, 128}, 30);
    add("attn_kv_a_norm.weight", {128}, 0);
    add("attn_output_a.weight", {256, 256}, 30);
    add("attn_output_b.weight", {256, 256}, 30);
    add("hc_attn_fn.weight", {1024, 24}, 0);
    add("hc_ffn_fn.weight", {1024, 24}, 0);
    add("hc_attn_base.weight", {24}, 0);
    add("hc_ffn_base.weight", {24}, 0);
    add("hc_attn_scale.weight", {3}, 0);
    add("hc_ffn_scale.weight", {3}, 0);
    if (ratios[l]) {
      const uint64_t c = ratios[l] == 4 ? 2 : 1;
      add("attn_compressor_kv.weight", {256, c * 128}, 30);
      add("attn_compressor_gate.weight", {256, c * 128}, 30);
      add("attn_compressor_ape.weight", {c * 128, uint64_t(ratios[l])}, 0);
      add("attn_compressor_norm.weight", {128}, 0);
    }
    if (ratios[l] == 4) {
      add("indexer.proj.weight", {256, 4}, 30);
      add("indexer.attn_q_b.weight", {128, 512}, 30);
      add("indexer_compressor_kv.weight", {256, 256}, 30);
      add("indexer_compressor_gate.weight", {256, 256}, 30);
      add("indexer_compressor_ape.weight", {256, 4}, 0);
      add("indexer_compressor_norm.weight", {128}, 0);
    }
    add("ffn_gate_inp.weight", {256, 8}, 30);
    if (l < 2) add("ffn_gate_tid2eid.weight", {2, 4096}, 26);
    else add("exp_probs_b.bias", {8}, 0);
    add("ffn_norm.weight", {256}, 0);
    add("ffn_gate_exps.weight", {256, 128, 8}, 39);
    add("ffn_down_exps.weight", {128, 256, 8}, 39);
    add("ffn_up_exps.weight", {256, 128, 8}, 39);
    add("ffn_gate_shexp.weight", {256, 128}, 30);
    add("ffn_up_shexp.weight", {256, 128}, 30);
    add("ffn_down_shexp.weight", {128, 256}, 30);
  }
  std::set<std::string> got_names, want_names;
  for (const auto& [n, t] : g.tensors) got_names.insert(n);
  for (const auto& [n, t] : want) want_names.insert(n);
  EXPECT_EQ(got_names, want_names);
  for (const auto& [n, w] : want) {
    if (!g.tensors.count(n)) continue;
    EXPECT_EQ(g.tensors.at(n).ne, w.first) << n;
    EXPECT_EQ(g.tensors.at(n).type, w.second) << n;
  }
  // Data: aligned, in file order, non-overlapping, inside the file.
  uint64_t end = 0;
  for (const std::string& n : g.order) {
    const GgufTensor& t = g.tensors.at(n);
    EXPECT_EQ(t.offset % 32, 0u) << n;
    EXPECT_GE(t.offset, end) << n;
    end = t.offset + tensor_bytes(t);
  }
  EXPECT_LE(g.data_start + end, g.bytes.size());
  EXPECT_GE(g.data_start + end + 32, g.bytes.size());

  // Q8_0 export: FP8 projections become Q8_0, attn_output_a stays BF16 (AMX abort), rest unchanged.
  EXPECT_EQ(q8_->tensors.at("blk.1.attn_q_b.weight").type, 8u);
  EXPECT_EQ(q8_->tensors.at("blk.1.indexer.attn_q_b.weight").type, 8u);
  EXPECT_EQ(q8_->tensors.at("blk.1.ffn_down_shexp.weight").type, 8u);
  EXPECT_EQ(q8_->tensors.at("blk.1.attn_output_a.weight").type, 30u);
  EXPECT_EQ(q8_->tensors.at("blk.1.ffn_gate_exps.weight").type, 39u);
}

TEST_F(GgufExport, Mxfp4ExpertsDecodeToTheCheckpointFp4Values) {
  const Gguf& g = *bf16_;
  const std::pair<const char*, const char*> kinds[] = {
      {"w1", "ffn_gate_exps"}, {"w2", "ffn_down_exps"}, {"w3", "ffn_up_exps"}};
  for (int layer : {0, 3, 5}) {
    for (const auto& [hf, gg] : kinds) {
      const std::string name = "blk." + std::to_string(layer) + "." + gg + ".weight";
      const GgufTensor& t = g.tensors.at(name);
      const size_t per_expert = t.ne[0] * t.ne[1];
      for (int e : {0, 5, 7}) {
        const auto ref = dequantize(*ckpt_, "layers." + std::to_string(layer) + ".ffn.experts." + std::to_string(e) +
                                                "." + hf + ".weight");
        ASSERT_EQ(ref.size(), per_expert);
        const auto got = decode_mxfp4(g.data(name) + e * per_expert / 32 * 17, per_expert);
        size_t mismatches = 0, nonzero = 0;
        for (size_t i = 0; i < per_expert; ++i) {
          mismatches += got[i] != ref[i];
          nonzero += ref[i] != 0;
        }
        EXPECT_EQ(mismatches, 0u) << name << " expert " << e;
        EXPECT_GT(nonzero, per_expert / 4) << "fixture weights should not be mostly zero";
      }
    }
  }
}

TEST_F(GgufExport, DenseWeightsAreBf16OfFp8TimesScale) {
  const Gguf& g = *bf16_;
  const std::pair<const char*, const char*> pairs[] = {
      {"layers.1.attn.wq_b.weight", "blk.1.attn_q_b.weight"},
      {"layers.3.attn.wo_a.weight", "blk.3.attn_output_a.weight"},
      {"layers.4.ffn.shared_experts.w2.weight", "blk.4.ffn_down_shexp.weight"},
      {"layers.1.attn.indexer.wq_b.weight", "blk.1.indexer.attn_q_b.weight"}};
  for (const auto& [hf, gg] : pairs) {
    const QuantizedWeight q = describe(*ckpt_, hf);
    ASSERT_EQ(q.encoding, Encoding::Fp8Block) << hf;
    // Reference computed here from the raw bytes: e4m3 * 2^(scale - 127) per 128 x 128 block.
    const TensorView& w = *q.weight;
    const TensorView& s = *q.scale;
    const int64_t rows = w.shape[0], cols = w.shape[1], scols = s.shape[1];
    const uint8_t* p = g.data(gg);
    size_t mismatches = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t col = 0; col < cols; ++col) {
        const float v = e4m3_to_float(w.data[r * cols + col]) *
                        std::ldexp(1.0f, int(s.data[(r / 128) * scols + col / 128]) - 127);
        mismatches += bf16_bits_to_float(p + 2 * (r * cols + col)) != round_bf16(v);
      }
    EXPECT_EQ(mismatches, 0u) << gg;
  }
  // Q8_0: within half a quantisation step (+ the f16 rounding of the step) of the FP8 value.
  const std::vector<float> ref = dequantize(*ckpt_, "layers.1.attn.wq_b.weight");
  const uint8_t* p = q8_->data("blk.1.attn_q_b.weight");
  double worst = 0;
  for (size_t b = 0; b < ref.size() / 32; ++b, p += 34) {
    const float d = half_to_float(uint16_t(p[0] | (p[1] << 8)));
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(ref[b * 32 + i]));
    EXPECT_NEAR(d, amax / 127, amax / 127 * 1e-3 + 1e-12);
    for (int i = 0; i < 32; ++i) {
      const float got = d * float(int8_t(p[2 + i]));
      const double err = std::fabs(got - ref[b * 32 + i]);
      worst = std::max(worst, err / (amax > 0 ? amax : 1));
      EXPECT_LE(err, 0.5 * d + amax * 2e-3) << "block " << b << " element " << i;
    }
  }
  EXPECT_LT(worst, 0.006);
}

TEST_F(GgufExport, SmallTensorsKeepTheirValues) {
  const Gguf& g = *bf16_;
  // tid2eid: I64/I32 in the checkpoint -> I32, same [V, K] order.
  const auto tid = dequantize(*ckpt_, "layers.0.ffn.gate.tid2eid");
  const uint8_t* p = g.data("blk.0.ffn_gate_tid2eid.weight");
  for (size_t i = 0; i < tid.size(); ++i) {
    int32_t v;
    std::memcpy(&v, p + 4 * i, 4);
    ASSERT_EQ(float(v), tid[i]) << i;
  }
  // 1-d BF16 / F32 tensors -> F32 with the same values; hc params F32 as stored.
  for (const auto& [hf, gg] : std::vector<std::pair<std::string, std::string>>{
           {"layers.2.attn_norm.weight", "blk.2.attn_norm.weight"},
           {"layers.2.ffn.gate.bias", "blk.2.exp_probs_b.bias"},
           {"layers.2.hc_ffn_fn", "blk.2.hc_ffn_fn.weight"},
           {"layers.2.hc_attn_scale", "blk.2.hc_attn_scale.weight"},
           {"layers.1.attn.compressor.ape", "blk.1.attn_compressor_ape.weight"},
           {"hc_head_scale", "output_hc_scale.weight"}}) {
    const auto ref = dequantize(*ckpt_, hf);
    const uint8_t* d = g.data(gg);
    for (size_t i = 0; i < ref.size(); ++i) {
      float v;
      std::memcpy(&v, d + 4 * i, 4);
      ASSERT_EQ(v, ref[i]) << gg << " " << i;
    }
  }
  // BF16 matrices are copied bit for bit.
  const TensorView& embed = ckpt_->get("embed.weight");
  EXPECT_EQ(std::memcmp(g.data("token_embd.weight"), embed.data, embed.nbytes), 0);
}

TEST(GgufEncoders, HalfFloatAndBadShapes) {
  EXPECT_EQ(float_to_f16(1.0f), 0x3C00);
  EXPECT_EQ(float_to_f16(-2.0f), 0xC000);
  EXPECT_EQ(float_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(float_to_f16(1e6f), 0x7C00);
  EXPECT_EQ(float_to_f16(0.1f), 0x2E66);                  // 0.0999755859375
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -26)), 0x0000);  // rounds to zero
  EXPECT_EQ(float_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie -> even
  GgufWriter w;
  EXPECT_THROW(w.add_tensor("x", GgmlType::Q8_0, {48, 2}, [](const ByteSink&) {}), std::invalid_argument);
  EXPECT_THROW(w.add_tensor("x", GgmlType::F32, {0}, [](const ByteSink&) {}), std::invalid_argument);
  w.add_tensor("short", GgmlType::F32, {4}, [](const ByteSink& sink) { float v = 1; sink(&v, 4); });
  const std::string path = std::filesystem::temp_directory_path() / ("v4_gguf_short_" + std::to_string(::getpid()));
  EXPECT_THROW(w.write(path), std::runtime_error);  // producer wrote 4 of 16 bytes
  std::filesystem::remove(path);
}

}  // namespace

namespace {

// The tokenizer.json path: a synthetic tiny checkpoint with a hand-written tokenizer beside it.
TEST(GgufTokenizer, VocabularyMergesAndTokenTypesFromTokenizerJson) {
  const std::string dir =
      std::filesystem::temp_directory_path() / ("v4_gguf_tok_" + std::to_string(::getpid()));
  SynthOptions so;
  so.layers = 2;
  write_synthetic_checkpoint(so, dir);
  auto write_tokenizer = [&](const std::string& text) { std::ofstream(dir + "/tokenizer.json") << text; };
  write_tokenizer(R"({"model": {"type": "BPE", "vocab": {"a": 2, "b": 3, "ab": 4},
      "merges": ["a b", ["ab", "b"]]},
    "added_tokens": [{"id": 0, "content": "<bos>", "special": true},
                     {"id": 1, "content": "<eos>", "special": true},
                     {"id": 5, "content": "<｜fim▁hole｜>", "special": false},
                     {"id": 6, "content": "plain", "special": false}]})");
  auto ckpt = Checkpoint::open(dir);
  make_deepseek4_gguf(*ckpt).write(dir + "/t.gguf");
  const Gguf g = read_gguf(dir + "/t.gguf");
  const auto& tokens = g.kv.at("tokenizer.ggml.tokens").arr;
  const auto& types = g.kv.at("tokenizer.ggml.token_type").arr;
  ASSERT_EQ(tokens.size(), size_t(ckpt->config().vocab_size));
  EXPECT_EQ(tokens[0].s, "<bos>");
  EXPECT_EQ(tokens[3].s, "b");
  EXPECT_EQ(tokens[4].s, "ab");
  EXPECT_EQ(tokens[7].s, "[PAD7]");
  const std::vector<int64_t> want_types = {3, 3, 1, 1, 1, 3, 4, 5};  // control, normal, user-defined, unused
  for (size_t i = 0; i < want_types.size(); ++i) EXPECT_EQ(types[i].i, want_types[i]) << i;
  const auto& merges = g.kv.at("tokenizer.ggml.merges").arr;
  ASSERT_EQ(merges.size(), 2u);
  EXPECT_EQ(merges[0].s, "a b");
  EXPECT_EQ(merges[1].s, "ab b");
  // Bad tokenizers are clear errors, not crashes.
  write_tokenizer(R"({"model": {"vocab": {"a": 999999}, "merges": []}})");
  EXPECT_THROW(make_deepseek4_gguf(*ckpt), CheckpointError);
  write_tokenizer("{not json");
  EXPECT_THROW(make_deepseek4_gguf(*ckpt), CheckpointError);
  write_tokenizer(R"({"model": {"vocab": [], "merges": []}})");
  EXPECT_THROW(make_deepseek4_gguf(*ckpt), CheckpointError);
  std::filesystem::remove_all(dir);
}

}  // namespace
