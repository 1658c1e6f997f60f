#include "model/weights.h"

#include <cstring>
#include <string>

#include "core/codecs.h"

namespace v4::model {

using core::CheckpointError;
using core::DType;

namespace {
std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}
void expect_shape(const core::TensorView& t, const std::vector<int64_t>& shape) {
  if (t.shape != shape)
    throw CheckpointError(t.name + ": shape " + shape_str(t.shape) + ", expected " + shape_str(shape));
}
}  // namespace

kernels::Weight WeightStore::matrix(const std::string& prefix, int64_t rows, int64_t cols) const {
  const core::TensorView& t = ckpt_.get(prefix + ".weight");
  kernels::Weight w;
  w.dtype = t.dtype;
  w.data = t.data;
  w.rows = rows;
  w.cols = cols;
  switch (t.dtype) {
    case DType::F8_E4M3: {
      expect_shape(t, {rows, cols});
      const core::TensorView& s = ckpt_.get(prefix + ".scale");
      if (s.dtype != DType::F8_E8M0) throw CheckpointError(s.name + ": expected F8_E8M0 block scales");
      expect_shape(s, {(rows + 127) / 128, (cols + 127) / 128});
      w.scale = s.data;
      break;
    }
    case DType::I8: {  // packed FP4 e2m1, one E8M0 scale per 32 inputs
      expect_shape(t, {rows, cols / 2});
      const core::TensorView& s = ckpt_.get(prefix + ".scale");
      if (s.dtype != DType::F8_E8M0) throw CheckpointError(s.name + ": expected F8_E8M0 scales");
      expect_shape(s, {rows, cols / 32});
      w.scale = s.data;
      break;
    }
    case DType::BF16:
    case DType::F32:
      expect_shape(t, {rows, cols});
      break;
    default:
      throw CheckpointError(t.name + ": unsupported dtype " + std::string(core::dtype_name(t.dtype)) + " for a matrix");
  }
  return w;
}

std::vector<float> WeightStore::vector(const std::string& name, int64_t numel) const {
  const core::TensorView& t = ckpt_.get(name);
  if (t.numel() != numel)
    throw CheckpointError(name + ": " + std::to_string(t.numel()) + " elements, expected " + std::to_string(numel));
  std::vector<float> v(static_cast<size_t>(numel));
  switch (t.dtype) {
    case DType::F32: std::memcpy(v.data(), t.data, size_t(numel) * 4); break;
    case DType::BF16: {
      for (int64_t i = 0; i < numel; ++i) {
        uint16_t b;
        std::memcpy(&b, t.data + 2 * i, 2);
        v[size_t(i)] = core::bf16_to_float(b);
      }
      break;
    }
    case DType::F16: {
      for (int64_t i = 0; i < numel; ++i) {
        uint16_t b;
        std::memcpy(&b, t.data + 2 * i, 2);
        v[size_t(i)] = core::f16_to_float(b);
      }
      break;
    }
    default:
      throw CheckpointError(name + ": unsupported dtype " + std::string(core::dtype_name(t.dtype)) + " for a parameter vector");
  }
  return v;
}

std::vector<int32_t> WeightStore::ints(const std::string& name, int64_t numel) const {
  const core::TensorView& t = ckpt_.get(name);
  if (t.numel() != numel)
    throw CheckpointError(name + ": " + std::to_string(t.numel()) + " elements, expected " + std::to_string(numel));
  std::vector<int32_t> v(static_cast<size_t>(numel));
  for (int64_t i = 0; i < numel; ++i) {
    if (t.dtype == DType::I64) {
      int64_t x;
      std::memcpy(&x, t.data + 8 * i, 8);
      v[size_t(i)] = int32_t(x);
    } else if (t.dtype == DType::I32) {
      std::memcpy(&v[size_t(i)], t.data + 4 * i, 4);
    } else {
      throw CheckpointError(name + ": expected I64 or I32");
    }
  }
  return v;
}

kernels::Weight weight_rows(const kernels::Weight& w, int64_t row0, int64_t rows) {
  kernels::Weight r = w;
  r.rows = rows;
  const auto* base = static_cast<const uint8_t*>(w.data);
  switch (w.dtype) {
    case DType::F8_E4M3:
      r.data = base + row0 * w.cols;
      r.scale = w.scale + (row0 / 128) * ((w.cols + 127) / 128);
      break;
    case DType::I8:
      r.data = base + row0 * (w.cols / 2);
      r.scale = w.scale + row0 * (w.cols / 32);
      break;
    case DType::BF16: r.data = base + row0 * w.cols * 2; break;
    default: r.data = base + row0 * w.cols * 4; break;
  }
  return r;
}

namespace {

kernels::Weight hc_matrix(const WeightStore& ws, const std::string& name, int64_t rows, int64_t cols) {
  const core::TensorView& t = ws.tensor(name);
  if (t.dtype != DType::F32 && t.dtype != DType::BF16) throw CheckpointError(name + ": expected F32");
  expect_shape(t, {rows, cols});
  kernels::Weight w;
  w.dtype = t.dtype;
  w.data = t.data;
  w.rows = rows;
  w.cols = cols;
  return w;
}

HyperConnectionWeights load_hyper(const WeightStore& ws, const std::string& p, int64_t mix, int64_t hcd, int64_t nscale) {
  HyperConnectionWeights h;
  h.fn = hc_matrix(ws, p + "_fn", mix, hcd);
  h.base = ws.vector(p + "_base", mix);
  h.scale = ws.vector(p + "_scale", nscale);
  return h;
}

CompressorWeights load_compressor(const WeightStore& ws, const std::string& p, int64_t ratio, int64_t dim, int64_t D) {
  CompressorWeights c;
  c.ratio = ratio;
  c.dim = dim;
  c.coff = ratio == 4 ? 2 : 1;
  c.wkv = ws.matrix(p + ".wkv", c.coff * dim, D);
  c.wgate = ws.matrix(p + ".wgate", c.coff * dim, D);
  c.ape = ws.vector(p + ".ape", ratio * c.coff * dim);
  c.norm = ws.vector(p + ".norm.weight", dim);
  return c;
}

BlockWeights load_block(const WeightStore& ws, const core::ModelConfig& c, const std::string& p, int64_t layer) {
  const int64_t D = c.hidden_size, H = c.num_attention_heads, dh = c.head_dim;
  const int64_t mix = (2 + c.hc_mult) * c.hc_mult, hcd = c.hc_mult * D;
  BlockWeights b;
  b.layer = layer;
  b.attn_norm = ws.vector(p + ".attn_norm.weight", D);
  b.ffn_norm = ws.vector(p + ".ffn_norm.weight", D);
  b.hc_attn = load_hyper(ws, p + ".hc_attn", mix, hcd, 3);
  b.hc_ffn = load_hyper(ws, p + ".hc_ffn", mix, hcd, 3);

  AttentionWeights& a = b.attn;
  const std::string ap = p + ".attn";
  a.ratio = c.compress_ratio(layer);
  a.attn_sink = ws.vector(ap + ".attn_sink", H);
  a.wq_a = ws.matrix(ap + ".wq_a", c.q_lora_rank, D);
  a.q_norm = ws.vector(ap + ".q_norm.weight", c.q_lora_rank);
  a.wq_b = ws.matrix(ap + ".wq_b", H * dh, c.q_lora_rank);
  a.wkv = ws.matrix(ap + ".wkv", dh, D);
  a.kv_norm = ws.vector(ap + ".kv_norm.weight", dh);
  a.wo_a = ws.matrix(ap + ".wo_a", c.o_groups * c.o_lora_rank, H * dh / c.o_groups);
  a.wo_b = ws.matrix(ap + ".wo_b", D, c.o_groups * c.o_lora_rank);
  if (a.ratio != 0) {
    a.has_compressor = true;
    a.compressor = load_compressor(ws, ap + ".compressor", a.ratio, dh, D);
    if (a.ratio == 4) {
      a.has_indexer = true;
      a.indexer.wq_b = ws.matrix(ap + ".indexer.wq_b", c.index_n_heads * c.index_head_dim, c.q_lora_rank);
      a.indexer.weights_proj = ws.matrix(ap + ".indexer.weights_proj", c.index_n_heads, D);
      a.indexer.compressor = load_compressor(ws, ap + ".indexer.compressor", a.ratio, c.index_head_dim, D);
    }
  }

  MoeWeights& m = b.ffn;
  const std::string fp = p + ".ffn";
  const int64_t E = c.n_routed_experts, I = c.moe_intermediate_size;
  m.gate = ws.matrix(fp + ".gate", E, D);
  if (c.is_hash_layer(layer)) {
    m.tid2eid = ws.ints(fp + ".gate.tid2eid", c.vocab_size * c.num_experts_per_tok);
    for (int32_t e : m.tid2eid)
      if (e < 0 || e >= E) throw CheckpointError(fp + ".gate.tid2eid: expert id out of range");
  } else {
    m.gate_bias = ws.vector(fp + ".gate.bias", E);
  }
  m.experts.resize(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) {
    const std::string ep = fp + ".experts." + std::to_string(e);
    m.experts[size_t(e)] = {ws.matrix(ep + ".w1", I, D), ws.matrix(ep + ".w2", D, I), ws.matrix(ep + ".w3", I, D)};
  }
  // n_shared_experts experts of moe_intermediate_size form one shared SwiGLU that many times wider
  // (the reference's Expert(dim, n_shared_experts * moe_inter_dim)); none when 0.
  const int64_t SI = I * c.n_shared_experts;
  if (SI > 0)
    m.shared = {ws.matrix(fp + ".shared_experts.w1", SI, D), ws.matrix(fp + ".shared_experts.w2", D, SI),
                ws.matrix(fp + ".shared_experts.w3", SI, D)};
  return b;
}

}  // namespace

ModelWeights load_weights(const core::Checkpoint& ckpt) {
  const core::ModelConfig& c = ckpt.config();
  WeightStore ws(ckpt);
  const int64_t D = c.hidden_size, hcd = c.hc_mult * D;
  ModelWeights w;
  w.embed = &ckpt.get("embed.weight");
  if (w.embed->dtype != DType::BF16 && w.embed->dtype != DType::F32)
    throw CheckpointError("embed.weight: expected BF16 or F32");
  expect_shape(*w.embed, {c.vocab_size, D});
  w.head = ws.matrix("head", c.vocab_size, D);
  w.norm = ws.vector("norm.weight", D);
  w.hc_head = load_hyper(ws, "hc_head", c.hc_mult, hcd, 1);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    w.blocks.push_back(load_block(ws, c, "layers." + std::to_string(l), l));
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    const std::string p = "mtp." + std::to_string(k);
    MtpWeights m;
    m.block = load_block(ws, c, p, c.num_hidden_layers + k);
    m.e_proj = ws.matrix(p + ".e_proj", D, D);
    m.h_proj = ws.matrix(p + ".h_proj", D, D);
    m.enorm = ws.vector(p + ".enorm.weight", D);
    m.hnorm = ws.vector(p + ".hnorm.weight", D);
    m.norm = ws.vector(p + ".norm.weight", D);
    m.hc_head = load_hyper(ws, p + ".hc_head", c.hc_mult, hcd, 1);
    w.mtp.push_back(std::move(m));
  }
  return w;
}

void embed_row(const core::TensorView& embed, int64_t dim, int32_t token, float* out) {
  if (token < 0 || token >= embed.shape[0])
    throw std::out_of_range("token id " + std::to_string(token) + " outside the vocabulary");
  if (embed.dtype == DType::F32) {
    std::memcpy(out, embed.data + size_t(token) * size_t(dim) * 4, size_t(dim) * 4);
  } else {
    const uint8_t* row = embed.data + size_t(token) * size_t(dim) * 2;
    for (int64_t i = 0; i < dim; ++i) {
      uint16_t b;
      std::memcpy(&b, row + 2 * i, 2);
      out[i] = core::bf16_to_float(b);
    }
  }
}

}  // namespace v4::model
