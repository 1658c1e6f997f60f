#include "export/gguf_writer.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <stdexcept>

#include <boost/json.hpp>

#include "core/codecs.h"
#include "core/dequant.h"

namespace v4::core {

namespace {

// GGUF metadata value types.
enum : uint32_t { kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9 };

template <class T> void put(std::string& s, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // GGUF is little-endian, like every target we build for
  s.append(b, sizeof(T));
}
void put_string(std::string& s, const std::string& v) {
  put<uint64_t>(s, v.size());
  s += v;
}

}  // namespace

uint64_t ggml_nbytes(GgmlType type, uint64_t numel) {
  auto blocks = [&](uint64_t block_bytes) {
    if (numel % 32 != 0)
      throw std::invalid_argument(fmt::format("{} needs a multiple of 32 elements, got {}", ggml_type_name(type), numel));
    return numel / 32 * block_bytes;
  };
  switch (type) {
    case GgmlType::F32: return numel * 4;
    case GgmlType::F16: return numel * 2;
    case GgmlType::BF16: return numel * 2;
    case GgmlType::I32: return numel * 4;
    case GgmlType::Q8_0: return blocks(34);
    case GgmlType::MXFP4: return blocks(17);
  }
  throw std::invalid_argument("unknown ggml type");
}

const char* ggml_type_name(GgmlType type) {
  switch (type) {
    case GgmlType::F32: return "F32";
    case GgmlType::F16: return "F16";
    case GgmlType::BF16: return "BF16";
    case GgmlType::I32: return "I32";
    case GgmlType::Q8_0: return "Q8_0";
    case GgmlType::MXFP4: return "MXFP4";
  }
  return "?";
}

void GgufWriter::add_u32(const std::string& key, uint32_t v) {
  put_string(kv_bytes_, key), put<uint32_t>(kv_bytes_, kU32), put(kv_bytes_, v), ++kv_count_;
}
void GgufWriter::add_i32(const std::string& key, int32_t v) {
  put_string(kv_bytes_, key), put<uint32_t>(kv_bytes_, kI32), put(kv_bytes_, v), ++kv_count_;
}
void GgufWriter::add_f32(const std::string& key, float v) {
  put_string(kv_bytes_, key), put<uint32_t>(kv_bytes_, kF32), put(kv_bytes_, v), ++kv_count_;
}
void GgufWriter::add_bool(const std::string& key, bool v) {
  put_string(kv_bytes_, key), put<uint32_t>(kv_bytes_, kBool), put<uint8_t>(kv_bytes_, v ? 1 : 0), ++kv_count_;
}
void GgufWriter::add_string(const std::string& key, const std::string& v) {
  put_string(kv_bytes_, key), put<uint32_t>(kv_bytes_, kString), put_string(kv_bytes_, v), ++kv_count_;
}
void GgufWriter::add_i32_array(const std::string& key, const std::vector<int32_t>& v) {
  put_string(kv_bytes_, key), put<uint32_t>(kv_bytes_, kArray), put<uint32_t>(kv_bytes_, kI32);
  put<uint64_t>(kv_bytes_, v.size());
  for (int32_t x : v) put(kv_bytes_, x);
  ++kv_count_;
}
void GgufWriter::add_f32_array(const std::string& key, const std::vector<float>& v) {
  put_string(kv_bytes_, key), put<uint32_t>(kv_bytes_, kArray), put<uint32_t>(kv_bytes_, kF32);
  put<uint64_t>(kv_bytes_, v.size());
  for (float x : v) put(kv_bytes_, x);
  ++kv_count_;
}
void GgufWriter::add_string_array(const std::string& key, const std::vector<std::string>& v) {
  put_string(kv_bytes_, key), put<uint32_t>(kv_bytes_, kArray), put<uint32_t>(kv_bytes_, kString);
  put<uint64_t>(kv_bytes_, v.size());
  for (const auto& x : v) put_string(kv_bytes_, x);
  ++kv_count_;
}

void GgufWriter::add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> ne,
                            std::function<void(const ByteSink&)> produce) {
  if (ne.empty() || ne.size() > 4) throw std::invalid_argument(name + ": GGUF tensors have 1 to 4 dims");
  uint64_t numel = 1;
  for (int64_t d : ne) {
    if (d <= 0) throw std::invalid_argument(name + ": non-positive dimension");
    numel *= uint64_t(d);
  }
  if ((type == GgmlType::Q8_0 || type == GgmlType::MXFP4) && ne[0] % 32 != 0)
    throw std::invalid_argument(fmt::format("{}: {} rows need ne0 % 32 == 0, ne0 = {}", name, ggml_type_name(type), ne[0]));
  tensors_.push_back({name, type, std::move(ne), ggml_nbytes(type, numel), std::move(produce)});
}

void GgufWriter::write(const std::string& path,
                       const std::function<void(uint64_t, uint64_t, const std::string&)>& progress) const {
  auto pad = [](uint64_t x) { return (x + kAlignment - 1) / kAlignment * kAlignment; };
  std::string head;
  head += "GGUF";
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, kv_count_ + 1);
  head += kv_bytes_;
  put_string(head, "general.alignment"), put<uint32_t>(head, kU32), put<uint32_t>(head, kAlignment);
  uint64_t offset = 0, total = 0;
  for (const Tensor& t : tensors_) {
    put_string(head, t.name);
    put<uint32_t>(head, uint32_t(t.ne.size()));
    for (int64_t d : t.ne) put<uint64_t>(head, uint64_t(d));
    put<uint32_t>(head, uint32_t(t.type));
    put<uint64_t>(head, offset);
    offset = pad(offset + t.nbytes);
    total += t.nbytes;
  }
  head.resize(pad(head.size()), '\0');

  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error(fmt::format("cannot create {}: {}", path, std::strerror(errno)));
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> guard(f, &std::fclose);
  auto out = [&](const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f) != n) throw std::runtime_error(fmt::format("write to {} failed: {}", path, std::strerror(errno)));
  };
  out(head.data(), head.size());
  uint64_t done = 0;
  static const char zeros[kAlignment] = {};
  for (const Tensor& t : tensors_) {
    uint64_t written = 0;
    t.produce([&](const void* p, size_t n) {
      written += n;
      if (written > t.nbytes) throw std::runtime_error(t.name + ": producer wrote too many bytes");
      out(p, n);
    });
    if (written != t.nbytes)
      throw std::runtime_error(fmt::format("{}: producer wrote {} bytes, expected {}", t.name, written, t.nbytes));
    out(zeros, pad(written) - written);
    done += written;
    if (progress) progress(done, total, t.name);
  }
  if (std::fflush(f) != 0) throw std::runtime_error(fmt::format("write to {} failed: {}", path, std::strerror(errno)));
  guard.reset();
}

uint16_t float_to_f16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) return uint16_t(sign | 0x7C00u | (abs > 0x7F800000u ? 0x200u : 0u));  // inf / NaN
  if (abs >= 0x477FF000u) return uint16_t(sign | 0x7C00u);  // rounds past 65504: inf
  if (abs < 0x38800000u) {  // f16 subnormal or zero: value / 2^-24, rounded to nearest even
    const float scaled = std::bit_cast<float>(abs) * 16777216.0f;  // exact (power of two)
    return uint16_t(sign | uint32_t(std::nearbyint(scaled)));
  }
  // Normal: rebias the exponent, round 13 dropped mantissa bits to nearest even.
  uint32_t v = abs - 0x38000000u;  // exponent bias 127 -> 15
  const uint32_t rest = v & 0x1FFFu;
  v >>= 13;
  if (rest > 0x1000u || (rest == 0x1000u && (v & 1u))) ++v;  // a carry into the exponent is correct
  return uint16_t(sign | v);
}

void quantize_q8_0(const float* x, size_t n, std::vector<uint8_t>& out) {
  if (n % 32 != 0) throw std::invalid_argument("Q8_0 needs a multiple of 32 values");
  for (size_t b = 0; b < n; b += 32) {
    float amax = 0;
    for (size_t i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b + i]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    const uint16_t dh = float_to_f16(d);
    out.push_back(uint8_t(dh & 0xFF));
    out.push_back(uint8_t(dh >> 8));
    for (size_t i = 0; i < 32; ++i) out.push_back(uint8_t(int8_t(std::lround(x[b + i] * id))));
  }
}

void fp4_row_to_mxfp4(const uint8_t* packed, const uint8_t* scales, int64_t cols, uint8_t* out) {
  auto code = [&](int64_t e) { return uint8_t((packed[e / 2] >> (4 * (e & 1))) & 0x0F); };
  for (int64_t b = 0; b < cols / 32; ++b, out += 17) {
    out[0] = scales[b];  // E8M0 copied as is: both are 2^(e-127) with e2m1 codes
    const int64_t base = b * 32;
    for (int64_t j = 0; j < 16; ++j) out[1 + j] = uint8_t(code(base + j) | (code(base + j + 16) << 4));
  }
}

namespace {

using Producer = std::function<void(const ByteSink&)>;

// Row-chunked dequantisation of any stored weight, encoded as `type` (F32, BF16 or Q8_0).
Producer encode_dequantized(QuantizedWeight q, GgmlType type) {
  return [q, type](const ByteSink& sink) {
    const int64_t cols = q.cols(), rows = q.rows();
    const int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 22) / std::max<int64_t>(cols, 1));
    std::vector<float> buf;
    std::vector<uint8_t> bytes;
    for (int64_t r = 0; r < rows; r += chunk) {
      const int64_t n = std::min(chunk, rows - r);
      buf.resize(size_t(n * cols));
      q.dequantize_rows(r, r + n, buf.data());
      bytes.clear();
      if (type == GgmlType::F32) {
        sink(buf.data(), buf.size() * 4);
        continue;
      }
      if (type == GgmlType::BF16) {
        bytes.resize(buf.size() * 2);
        for (size_t i = 0; i < buf.size(); ++i) {
          const uint16_t h = float_to_bf16(buf[i]);
          std::memcpy(&bytes[2 * i], &h, 2);
        }
      } else if (type == GgmlType::Q8_0) {
        quantize_q8_0(buf.data(), buf.size(), bytes);
      } else {
        throw std::logic_error("encode_dequantized: unsupported type");
      }
      sink(bytes.data(), bytes.size());
    }
  };
}

// GPT-2's byte -> printable code point map (the form byte-level BPE vocabularies store bytes in).
std::string gpt2_byte_token(int byte) {
  auto printable = [](int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255); };
  int cp = byte;
  if (!printable(byte)) {
    int n = 0;
    for (int b = 0; b < byte; ++b) n += !printable(b);
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) s += char(cp);
  else {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

// llama_token_type values.
enum : int32_t { kNormal = 1, kControl = 3, kUserDefined = 4, kUnused = 5 };

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

Vocab vocab_from_tokenizer_json(const std::string& path, int64_t vocab_size) {
  namespace json = boost::json;
  json::value doc;
  try {
    doc = json::parse(read_text(path));
  } catch (const std::exception& e) {
    throw CheckpointError(fmt::format("{}: not valid JSON ({})", path, e.what()));
  }
  Vocab v;
  v.tokens.resize(size_t(vocab_size));
  v.types.assign(size_t(vocab_size), kUnused);
  std::vector<bool> have(size_t(vocab_size), false);
  auto set = [&](int64_t id, const std::string& text, int32_t type) {
    if (id < 0 || id >= vocab_size)
      throw CheckpointError(fmt::format("{}: token id {} outside the config's vocab_size {}", path, id, vocab_size));
    v.tokens[size_t(id)] = text, v.types[size_t(id)] = type, have[size_t(id)] = true;
  };
  try {
    const json::object& model = doc.at("model").as_object();
    if (model.contains("type") && model.at("type").as_string() != "BPE")
      throw CheckpointError(fmt::format("{}: model type {} is not BPE", path, json::serialize(model.at("type"))));
    for (const auto& [text, id] : model.at("vocab").as_object())
      set(id.to_number<int64_t>(), std::string(text), kNormal);
    for (const json::value& m : model.at("merges").as_array()) {
      if (m.is_string()) v.merges.emplace_back(m.as_string());
      else {  // newer tokenizers store [left, right]
        const json::array& pair = m.as_array();
        v.merges.push_back(std::string(pair.at(0).as_string()) + " " + std::string(pair.at(1).as_string()));
      }
    }
    if (doc.as_object().contains("added_tokens"))
      for (const json::value& t : doc.at("added_tokens").as_array()) {
        const json::object& o = t.as_object();
        const std::string content(o.at("content").as_string());
        // Like llama.cpp's converter: "<｜...｜>" / "<|...|>" added tokens count as control tokens too.
        const bool looks_special = (content.starts_with("<｜") && content.ends_with("｜>")) ||
                                   (content.starts_with("<|") && content.ends_with("|>"));
        const bool special = (o.contains("special") && o.at("special").as_bool()) || looks_special;
        set(o.at("id").to_number<int64_t>(), content, special ? kControl : kUserDefined);
      }
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    throw CheckpointError(fmt::format("{}: unexpected tokenizer.json layout ({})", path, e.what()));
  }
  for (int64_t i = 0; i < vocab_size; ++i)
    if (!have[size_t(i)]) v.tokens[size_t(i)] = fmt::format("[PAD{}]", i);
  return v;
}

// For checkpoints without a tokenizer: every byte as a token (llama.cpp's BPE loader needs the
// newline byte "Ċ"), BOS/EOS as control tokens, the other ids unused placeholders.
Vocab placeholder_vocab(const ModelConfig& c) {
  if (c.vocab_size < 258) throw CheckpointError("vocab_size < 258: no room for the placeholder byte tokens");
  Vocab v;
  v.tokens.resize(size_t(c.vocab_size));
  v.types.assign(size_t(c.vocab_size), kUnused);
  for (int64_t i = 0; i < c.vocab_size; ++i) v.tokens[size_t(i)] = fmt::format("[PAD{}]", i);
  v.tokens[size_t(c.bos_token_id)] = "<｜begin▁of▁sentence｜>", v.types[size_t(c.bos_token_id)] = kControl;
  v.tokens[size_t(c.eos_token_id)] = "<｜end▁of▁sentence｜>", v.types[size_t(c.eos_token_id)] = kControl;
  int64_t id = 0;
  for (int byte = 0; byte < 256; ++byte, ++id) {
    while (id == c.bos_token_id || id == c.eos_token_id) ++id;
    v.tokens[size_t(id)] = gpt2_byte_token(byte), v.types[size_t(id)] = kNormal;
  }
  return v;
}

}  // namespace

GgufWriter make_deepseek4_gguf(const Checkpoint& ckpt, const GgufExportOptions& options) {
  const ModelConfig& c = ckpt.config();
  if (c.scoring_func != "sqrtsoftplus")
    throw CheckpointError("llama.cpp's deepseek4 loader only accepts scoring_func sqrtsoftplus, got " + c.scoring_func);
  if (c.hc_mult != 4) throw CheckpointError("llama.cpp's deepseek4 graph needs hc_mult 4");
  const std::string a = "deepseek4.";
  const uint32_t n_layer = uint32_t(c.num_hidden_layers);
  GgufWriter w;
  w.add_string("general.architecture", "deepseek4");
  w.add_string("general.name", "v4flash export of " + ckpt.dir());
  w.add_u32("general.file_type", 38);  // MOSTLY_MXFP4_MOE
  w.add_u32(a + "context_length", uint32_t(c.max_position_embeddings));
  w.add_u32(a + "embedding_length", uint32_t(c.hidden_size));
  w.add_u32(a + "block_count", n_layer);
  w.add_u32(a + "attention.head_count", uint32_t(c.num_attention_heads));
  w.add_u32(a + "attention.head_count_kv", uint32_t(c.num_key_value_heads));
  w.add_u32(a + "attention.key_length", uint32_t(c.head_dim));
  w.add_u32(a + "attention.value_length", uint32_t(c.head_dim));
  w.add_u32(a + "rope.dimension_count", uint32_t(c.qk_rope_head_dim));
  w.add_f32(a + "rope.freq_base", float(c.rope_theta));
  w.add_string(a + "rope.scaling.type", c.rope_scaling.type);
  w.add_f32(a + "rope.scaling.factor", float(c.rope_scaling.factor));
  w.add_u32(a + "rope.scaling.original_context_length", uint32_t(c.rope_scaling.original_max_position_embeddings));
  w.add_f32(a + "rope.scaling.yarn_beta_fast", float(c.rope_scaling.beta_fast));
  w.add_f32(a + "rope.scaling.yarn_beta_slow", float(c.rope_scaling.beta_slow));
  w.add_u32(a + "expert_count", uint32_t(c.n_routed_experts));
  w.add_u32(a + "expert_used_count", uint32_t(c.num_experts_per_tok));
  w.add_u32(a + "expert_gating_func", 4);  // sqrtsoftplus
  w.add_f32(a + "attention.layer_norm_rms_epsilon", float(c.rms_norm_eps));
  w.add_u32(a + "attention.q_lora_rank", uint32_t(c.q_lora_rank));
  w.add_u32(a + "attention.sliding_window", uint32_t(c.sliding_window));
  w.add_u32(a + "expert_feed_forward_length", uint32_t(c.moe_intermediate_size));
  w.add_u32(a + "expert_shared_count", uint32_t(c.n_shared_experts));
  w.add_f32(a + "expert_weights_scale", float(c.routed_scaling_factor));
  w.add_bool(a + "expert_weights_norm", c.norm_topk_prob);
  w.add_f32_array(a + "swiglu_clamp_exp", std::vector<float>(n_layer, float(c.swiglu_limit)));
  w.add_f32_array(a + "swiglu_clamp_shexp", std::vector<float>(n_layer, float(c.swiglu_limit)));
  w.add_u32(a + "attention.indexer.head_count", uint32_t(c.index_n_heads));
  w.add_u32(a + "attention.indexer.key_length", uint32_t(c.index_head_dim));
  w.add_u32(a + "attention.indexer.top_k", uint32_t(c.index_topk));
  w.add_u32(a + "attention.output_group_count", uint32_t(c.o_groups));
  w.add_u32(a + "attention.output_lora_rank", uint32_t(c.o_lora_rank));
  w.add_f32(a + "attention.compress_rope_freq_base", float(c.compress_rope_theta));
  std::vector<int32_t> ratios;
  for (uint32_t l = 0; l < n_layer; ++l) ratios.push_back(int32_t(c.compress_ratio(l)));
  w.add_i32_array(a + "attention.compress_ratios", ratios);
  w.add_u32(a + "hyper_connection.count", uint32_t(c.hc_mult));
  w.add_u32(a + "hyper_connection.sinkhorn_iterations", uint32_t(c.hc_sinkhorn_iters));
  w.add_f32(a + "hyper_connection.epsilon", float(c.hc_eps));
  w.add_u32(a + "hash_layer_count", uint32_t(c.num_hash_layers));

  const std::string tokenizer_path = ckpt.dir() + "/tokenizer.json";
  const bool has_tokenizer = std::ifstream(tokenizer_path).good();
  Vocab vocab = has_tokenizer ? vocab_from_tokenizer_json(tokenizer_path, c.vocab_size) : placeholder_vocab(c);
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", "joyai-llm");
  w.add_string_array("tokenizer.ggml.tokens", vocab.tokens);
  w.add_i32_array("tokenizer.ggml.token_type", vocab.types);
  w.add_string_array("tokenizer.ggml.merges", vocab.merges);
  w.add_u32("tokenizer.ggml.bos_token_id", uint32_t(c.bos_token_id));
  w.add_u32("tokenizer.ggml.eos_token_id", uint32_t(c.eos_token_id));
  w.add_bool("tokenizer.ggml.add_bos_token", true);

  const GgmlType dense = options.dense == DenseType::Q8_0 ? GgmlType::Q8_0 : GgmlType::BF16;
  auto reversed = [](std::vector<int64_t> s) {
    std::reverse(s.begin(), s.end());
    return s;
  };
  // Stored BF16/F32 tensors: 1-d (norms, biases, scales) as F32 like the official converter;
  // matrices keep BF16 or F32; integer tables as I32.
  auto plain = [&](const std::string& hf, const std::string& gguf) {
    const TensorView& t = ckpt.get(hf);
    QuantizedWeight q = describe(t, nullptr);
    if (t.dtype == DType::I64 || t.dtype == DType::I32) {
      const TensorView* tp = &t;
      w.add_tensor(gguf, GgmlType::I32, reversed(t.shape), [tp](const ByteSink& sink) {
        const TensorView& t = *tp;
        std::vector<int32_t> ids(size_t(t.numel()));
        for (size_t i = 0; i < ids.size(); ++i) {
          int64_t v;
          if (t.dtype == DType::I64) std::memcpy(&v, t.data + 8 * i, 8);
          else {
            int32_t x;
            std::memcpy(&x, t.data + 4 * i, 4);
            v = x;
          }
          ids[i] = int32_t(v);
        }
        sink(ids.data(), ids.size() * 4);
      });
      return;
    }
    GgmlType type = GgmlType::F32;
    if (t.shape.size() >= 2 && t.dtype == DType::BF16) type = GgmlType::BF16;
    if (type == GgmlType::BF16) {  // bit copy
      const TensorView* tp = &t;
      w.add_tensor(gguf, type, reversed(t.shape), [tp](const ByteSink& sink) { sink(tp->data, tp->nbytes); });
    } else {
      w.add_tensor(gguf, type, reversed(t.shape), encode_dequantized(q, type));
    }
  };
  // FP8 block-quantised matrices (X.weight + X.scale).
  auto fp8 = [&](const std::string& hf_base, const std::string& gguf, GgmlType type) {
    QuantizedWeight q = describe(ckpt, hf_base + ".weight");
    if (q.encoding != Encoding::Fp8Block) throw CheckpointError(hf_base + ".weight is not FP8 with a block scale");
    if (type == GgmlType::Q8_0 && q.cols() % 32 != 0) type = GgmlType::BF16;
    w.add_tensor(gguf, type, {q.cols(), q.rows()}, encode_dequantized(q, type));
  };
  // Routed experts of one layer stacked as {cols, rows, X}: FP4 -> MXFP4 bit-exact; FP8 -> dense type.
  auto experts = [&](const std::string& prefix, const char* which, const std::string& gguf) {
    std::vector<QuantizedWeight> qs;
    for (int64_t e = 0; e < c.n_routed_experts; ++e)
      qs.push_back(describe(ckpt, fmt::format("{}ffn.experts.{}.{}.weight", prefix, e, which)));
    const int64_t rows = qs[0].rows(), cols = qs[0].cols();
    const std::vector<int64_t> ne = {cols, rows, c.n_routed_experts};
    if (qs[0].encoding == Encoding::Fp4Packed) {
      if (qs[0].group != 32) throw CheckpointError(gguf + ": MXFP4 needs one scale per 32 inputs");
      w.add_tensor(gguf, GgmlType::MXFP4, ne, [qs, rows, cols](const ByteSink& sink) {
        std::vector<uint8_t> out(size_t(rows * (cols / 32) * 17));
        for (const QuantizedWeight& q : qs) {
          for (int64_t r = 0; r < rows; ++r)
            fp4_row_to_mxfp4(q.weight->data + r * (cols / 2), q.scale->data + r * (cols / 32), cols,
                             out.data() + r * (cols / 32) * 17);
          sink(out.data(), out.size());
        }
      });
    } else {
      const GgmlType type = dense == GgmlType::Q8_0 && cols % 32 == 0 ? GgmlType::Q8_0 : GgmlType::BF16;
      w.add_tensor(gguf, type, ne, [qs, type](const ByteSink& sink) {
        for (const QuantizedWeight& q : qs) encode_dequantized(q, type)(sink);
      });
    }
  };

  plain("embed.weight", "token_embd.weight");
  plain("norm.weight", "output_norm.weight");
  plain("head.weight", "output.weight");
  plain("hc_head_fn", "output_hc_fn.weight");
  plain("hc_head_base", "output_hc_base.weight");
  plain("hc_head_scale", "output_hc_scale.weight");
  for (uint32_t l = 0; l < n_layer; ++l) {
    const std::string p = layer_prefix(c, l), g = fmt::format("blk.{}.", l);
    const int64_t ratio = c.compress_ratio(l);
    plain(p + "attn_norm.weight", g + "attn_norm.weight");
    plain(p + "attn.attn_sink", g + "attn_sinks.weight");
    fp8(p + "attn.wq_a", g + "attn_q_a.weight", dense);
    plain(p + "attn.q_norm.weight", g + "attn_q_a_norm.weight");
    fp8(p + "attn.wq_b", g + "attn_q_b.weight", dense);
    fp8(p + "attn.wkv", g + "attn_kv.weight", dense);
    plain(p + "attn.kv_norm.weight", g + "attn_kv_a_norm.weight");
    // Q8_0/F16 here aborts llama.cpp's scheduler on AMX CPUs (peer-llamacpp.md): always BF16.
    fp8(p + "attn.wo_a", g + "attn_output_a.weight", GgmlType::BF16);
    fp8(p + "attn.wo_b", g + "attn_output_b.weight", dense);
    for (const char* site : {"attn", "ffn"}) {
      plain(fmt::format("{}hc_{}_fn", p, site), fmt::format("{}hc_{}_fn.weight", g, site));
      plain(fmt::format("{}hc_{}_base", p, site), fmt::format("{}hc_{}_base.weight", g, site));
      plain(fmt::format("{}hc_{}_scale", p, site), fmt::format("{}hc_{}_scale.weight", g, site));
    }
    if (ratio != 0) {
      plain(p + "attn.compressor.wkv.weight", g + "attn_compressor_kv.weight");
      plain(p + "attn.compressor.wgate.weight", g + "attn_compressor_gate.weight");
      plain(p + "attn.compressor.ape", g + "attn_compressor_ape.weight");
      plain(p + "attn.compressor.norm.weight", g + "attn_compressor_norm.weight");
      if (ratio == 4) {
        plain(p + "attn.indexer.weights_proj.weight", g + "indexer.proj.weight");
        fp8(p + "attn.indexer.wq_b", g + "indexer.attn_q_b.weight", dense);
        plain(p + "attn.indexer.compressor.wkv.weight", g + "indexer_compressor_kv.weight");
        plain(p + "attn.indexer.compressor.wgate.weight", g + "indexer_compressor_gate.weight");
        plain(p + "attn.indexer.compressor.ape", g + "indexer_compressor_ape.weight");
        plain(p + "attn.indexer.compressor.norm.weight", g + "indexer_compressor_norm.weight");
      }
    }
    plain(p + "ffn.gate.weight", g + "ffn_gate_inp.weight");
    if (c.is_hash_layer(l)) plain(p + "ffn.gate.tid2eid", g + "ffn_gate_tid2eid.weight");
    else plain(p + "ffn.gate.bias", g + "exp_probs_b.bias");
    plain(p + "ffn_norm.weight", g + "ffn_norm.weight");
    experts(p, "w1", g + "ffn_gate_exps.weight");
    experts(p, "w2", g + "ffn_down_exps.weight");
    experts(p, "w3", g + "ffn_up_exps.weight");
    if (c.n_shared_experts > 0) {
      fp8(p + "ffn.shared_experts.w1", g + "ffn_gate_shexp.weight", dense);
      fp8(p + "ffn.shared_experts.w2", g + "ffn_down_shexp.weight", dense);
      fp8(p + "ffn.shared_experts.w3", g + "ffn_up_shexp.weight", dense);
    }
  }
  return w;
}

}  // namespace v4::core
