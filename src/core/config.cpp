#include "core/config.h"

#include <set>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>

#include "core/config_fields.h"
#include "core/safetensors.h"
#include "fmt/format.h"

namespace v4::core {

namespace json = boost::json;

namespace {

// Reads fields out of one JSON object. Each field has its official name and optionally the key the
// reference code's inference/config.json uses for it (e.g. "dim" for hidden_size).
class Reader {
 public:
  Reader(const json::object& obj, std::string label) : obj_(obj), label_(std::move(label)) {}

  CheckpointError error(const std::string& field, const std::string& what) const {
    return CheckpointError(fmt::format("{}: field '{}' {}", label_, field, what));
  }

  const json::value* find(std::initializer_list<const char*> names, std::string* used) const {
    for (const char* n : names) seen_.insert(n);
    for (const char* n : names)
      if (const json::value* v = obj_.if_contains(n); v && !v->is_null()) {
        *used = n;
        return v;
      }
    return nullptr;
  }

  // A key read directly from object() (not through the typed readers).
  const json::value* take(const char* name) const {
    seen_.insert(name);
    const json::value* v = obj_.if_contains(name);
    return v && !v->is_null() ? v : nullptr;
  }

  // A key that is accepted only with the one value the engine implements (absent is that value).
  void require_value(const char* name, const json::value& implemented, const std::string& why) const {
    const json::value* v = take(name);
    if (v && *v != implemented)
      throw error(name, fmt::format("is {}; only {} is implemented ({})", json::serialize(*v), json::serialize(implemented), why));
  }

  // Refuses every key that was neither read nor is on the ignored list.
  void refuse_unknown(const std::vector<IgnoredConfigField>& ignored) const {
    for (const auto& kv : obj_) {
      const std::string key(kv.key());
      if (seen_.count(key)) continue;
      bool known = false;
      for (const auto& f : ignored) known = known || f.key == key;
      if (!known)
        throw error(key, "is not a DeepSeek-V4 config field this loader knows; refusing rather than ignoring it "
                         "(see core/config_fields.h for the fields it ignores and why)");
    }
  }

  // Integer field; `required` fields throw when absent, others keep `out` (the default).
  void integer(int64_t& out, std::initializer_list<const char*> names, bool required) const {
    std::string used;
    const json::value* v = find(names, &used);
    if (!v) {
      if (required) throw error(*names.begin(), "is missing (required)");
      return;
    }
    if (v->is_int64()) {
      out = v->as_int64();
    } else if (v->is_uint64() && v->as_uint64() <= uint64_t(std::numeric_limits<int64_t>::max())) {
      out = int64_t(v->as_uint64());
    } else if (v->is_double() && std::floor(v->as_double()) == v->as_double() && std::fabs(v->as_double()) < 9e15) {
      out = int64_t(v->as_double());  // "4.0" written by some tools
    } else {
      throw error(used, fmt::format("must be an integer, got {}", json::serialize(*v)));
    }
  }

  void number(double& out, std::initializer_list<const char*> names, bool required) const {
    std::string used;
    const json::value* v = find(names, &used);
    if (!v) {
      if (required) throw error(*names.begin(), "is missing (required)");
      return;
    }
    if (v->is_double())
      out = v->as_double();
    else if (v->is_int64())
      out = double(v->as_int64());
    else if (v->is_uint64())
      out = double(v->as_uint64());
    else
      throw error(used, fmt::format("must be a number, got {}", json::serialize(*v)));
    if (!std::isfinite(out)) throw error(used, "must be finite");
  }

  void boolean(bool& out, std::initializer_list<const char*> names) const {
    std::string used;
    const json::value* v = find(names, &used);
    if (!v) return;
    if (!v->is_bool()) throw error(used, fmt::format("must be true or false, got {}", json::serialize(*v)));
    out = v->as_bool();
  }

  void string(std::string& out, std::initializer_list<const char*> names) const {
    std::string used;
    const json::value* v = find(names, &used);
    if (!v) return;
    if (!v->is_string()) throw error(used, fmt::format("must be a string, got {}", json::serialize(*v)));
    out = std::string(v->as_string());
  }

  const json::object& object() const { return obj_; }
  const std::string& label() const { return label_; }

 private:
  const json::object& obj_;
  std::string label_;
  mutable std::set<std::string> seen_;  // every key some reader looked for
};

// Keys with a single value the engine implements; any other value is refused, naming the key.
void routing_and_format_checks(const Reader& r) {
  r.require_value("topk_method", json::string("noaux_tc"),
                  "flat top-k over scores plus the selection bias, as the reference's Gate");
  r.require_value("n_group", json::value(1), "no group-limited routing in DeepSeek-V4");
  r.require_value("topk_group", json::value(1), "no group-limited routing in DeepSeek-V4");
  r.require_value("first_k_dense_replace", json::value(0), "every DeepSeek-V4 layer is MoE");
  r.require_value("hidden_act", json::string("silu"), "the experts are SwiGLU");
  r.require_value("attention_bias", json::value(false), "the projections have no bias");
  r.require_value("dtype", json::string("fp8"), "the reference code's name for FP8 block-scaled weights");
}

CheckpointError config_error(const std::string& label, const std::string& what) {
  return CheckpointError(fmt::format("{}: {}", label, what));
}

}  // namespace

ModelConfig ModelConfig::from_json_text(const std::string& text, const std::string& label) {
  json::error_code ec;
  json::value root = json::parse(text, ec);
  if (ec) throw config_error(label, fmt::format("not valid JSON: {}", ec.message()));
  if (!root.is_object()) throw config_error(label, "not a JSON object");
  const json::object& obj = root.as_object();
  Reader r(obj, label);

  if (const json::value* mt = r.take("model_type")) {
    if (!mt->is_string() || mt->as_string() != "deepseek_v4")
      throw r.error("model_type", fmt::format("is {}, expected \"deepseek_v4\"", json::serialize(*mt)));
  }

  ModelConfig c;
  // The architecture's dimensions are required; hyper-parameters the official config always
  // carries but that have a single known value fall back to the V4-Flash value.
  r.integer(c.vocab_size, {"vocab_size"}, true);
  r.integer(c.hidden_size, {"hidden_size", "dim"}, true);
  r.integer(c.num_hidden_layers, {"num_hidden_layers", "n_layers"}, true);
  r.integer(c.num_attention_heads, {"num_attention_heads", "n_heads"}, true);
  r.integer(c.num_key_value_heads, {"num_key_value_heads"}, false);
  r.integer(c.head_dim, {"head_dim"}, true);
  r.integer(c.qk_rope_head_dim, {"qk_rope_head_dim", "rope_head_dim"}, false);
  r.integer(c.q_lora_rank, {"q_lora_rank"}, true);
  r.integer(c.o_groups, {"o_groups"}, true);
  r.integer(c.o_lora_rank, {"o_lora_rank"}, true);
  r.integer(c.sliding_window, {"sliding_window", "window_size"}, false);
  r.integer(c.moe_intermediate_size, {"moe_intermediate_size", "moe_inter_dim"}, true);
  r.integer(c.n_routed_experts, {"n_routed_experts"}, true);
  r.integer(c.n_shared_experts, {"n_shared_experts"}, false);
  r.integer(c.num_experts_per_tok, {"num_experts_per_tok", "n_activated_experts"}, true);
  r.integer(c.num_hash_layers, {"num_hash_layers", "n_hash_layers"}, false);
  r.number(c.routed_scaling_factor, {"routed_scaling_factor", "route_scale"}, false);
  r.string(c.scoring_func, {"scoring_func", "score_func"});
  // Without the key, the reference's Gate: top-k weights are renormalised unless scores are a softmax.
  c.norm_topk_prob = c.scoring_func != "softmax";
  r.boolean(c.norm_topk_prob, {"norm_topk_prob"});
  routing_and_format_checks(r);
  r.number(c.swiglu_limit, {"swiglu_limit"}, false);
  r.integer(c.index_n_heads, {"index_n_heads"}, false);
  r.integer(c.index_head_dim, {"index_head_dim"}, false);
  r.integer(c.index_topk, {"index_topk"}, false);
  r.integer(c.hc_mult, {"hc_mult"}, false);
  r.integer(c.hc_sinkhorn_iters, {"hc_sinkhorn_iters"}, false);
  r.number(c.hc_eps, {"hc_eps"}, false);
  r.number(c.rms_norm_eps, {"rms_norm_eps", "norm_eps"}, false);
  r.number(c.rope_theta, {"rope_theta"}, false);
  r.number(c.compress_rope_theta, {"compress_rope_theta"}, false);
  r.integer(c.max_position_embeddings, {"max_position_embeddings"}, false);
  r.boolean(c.tie_word_embeddings, {"tie_word_embeddings"});
  r.string(c.expert_dtype, {"expert_dtype"});

  // Token ids: HF configs sometimes give a list; the first entry is the one the model uses.
  for (auto [field, out] : {std::pair<const char*, int64_t*>{"bos_token_id", &c.bos_token_id},
                            std::pair<const char*, int64_t*>{"eos_token_id", &c.eos_token_id}}) {
    const json::value* v = r.take(field);
    if (v && v->is_array()) {
      if (v->as_array().empty() || !v->as_array()[0].is_number())
        throw r.error(field, "must be an integer or a non-empty list of integers");
      *out = v->as_array()[0].to_number<int64_t>();
    } else {
      r.integer(*out, {field}, false);
    }
  }

  // rope_scaling (YaRN). The reference-code config spells it out flat (rope_factor, ...).
  if (const json::value* rs = r.take("rope_scaling")) {
    if (!rs->is_object()) throw r.error("rope_scaling", "must be an object");
    Reader rr(rs->as_object(), label + ": rope_scaling");
    std::string type = c.rope_scaling.type;
    rr.string(type, {"type", "rope_type"});
    if (type != "yarn") throw rr.error("type", fmt::format("is \"{}\", only \"yarn\" is supported", type));
    c.rope_scaling.type = type;
    rr.number(c.rope_scaling.factor, {"factor"}, true);
    rr.integer(c.rope_scaling.original_max_position_embeddings, {"original_max_position_embeddings"}, true);
    rr.number(c.rope_scaling.beta_fast, {"beta_fast"}, false);
    rr.number(c.rope_scaling.beta_slow, {"beta_slow"}, false);
    rr.refuse_unknown({});
  } else {
    r.number(c.rope_scaling.factor, {"rope_factor"}, false);
    r.integer(c.rope_scaling.original_max_position_embeddings, {"original_seq_len"}, false);
    r.number(c.rope_scaling.beta_fast, {"beta_fast"}, false);
    r.number(c.rope_scaling.beta_slow, {"beta_slow"}, false);
  }

  // quantization_config: only the format the official checkpoints use is supported.
  r.string(c.scale_fmt, {"scale_fmt"});  // the reference code's flat config
  if (const json::value* q = r.take("quantization_config")) {
    if (!q->is_object()) throw r.error("quantization_config", "must be an object");
    Reader qr(q->as_object(), label + ": quantization_config");
    qr.string(c.quant_method, {"quant_method"});
    qr.string(c.quant_fmt, {"fmt"});
    qr.string(c.scale_fmt, {"scale_fmt"});
    if (const json::value* wbs = q->as_object().if_contains("weight_block_size")) {
      if (!wbs->is_array() || wbs->as_array().size() != 2 || !wbs->as_array()[0].is_int64() ||
          !wbs->as_array()[1].is_int64())
        throw qr.error("weight_block_size", "must be a list of two integers");
      c.weight_block_size[0] = wbs->as_array()[0].as_int64();
      c.weight_block_size[1] = wbs->as_array()[1].as_int64();
    }
    qr.take("weight_block_size");
    qr.require_value("activation_scheme", json::string("dynamic"),
                     "activations are quantised per block as each matmul runs");
    qr.refuse_unknown({});
    if (c.quant_method != "fp8") throw qr.error("quant_method", fmt::format("is \"{}\", only \"fp8\" is supported", c.quant_method));
    if (c.quant_fmt != "e4m3") throw qr.error("fmt", fmt::format("is \"{}\", only \"e4m3\" is supported", c.quant_fmt));
    if (c.scale_fmt != "ue8m0")
      throw qr.error("scale_fmt", fmt::format("is \"{}\", only \"ue8m0\" is supported", c.scale_fmt));
    if (c.weight_block_size[0] <= 0 || c.weight_block_size[1] <= 0)
      throw qr.error("weight_block_size", "entries must be positive");
  }

  // compress_ratios: one entry per layer plus one per MTP layer.
  const json::value* cr = r.take("compress_ratios");
  if (!cr) throw r.error("compress_ratios", "is missing (required)");
  if (!cr->is_array()) throw r.error("compress_ratios", "must be a list of integers");
  for (const auto& v : cr->as_array()) {
    if (!v.is_int64() || v.as_int64() < 0)
      throw r.error("compress_ratios", fmt::format("entries must be non-negative integers, got {}", json::serialize(v)));
    c.compress_ratios.push_back(v.as_int64());
  }
  r.integer(c.num_nextn_predict_layers, {"num_nextn_predict_layers"}, false);
  r.refuse_unknown(ignored_config_fields());

  // Consistency checks.
  auto positive = [&](int64_t v, const char* field) {
    if (v <= 0) throw r.error(field, fmt::format("must be positive, got {}", v));
  };
  positive(c.vocab_size, "vocab_size");
  positive(c.hidden_size, "hidden_size");
  positive(c.num_hidden_layers, "num_hidden_layers");
  positive(c.num_attention_heads, "num_attention_heads");
  positive(c.head_dim, "head_dim");
  positive(c.q_lora_rank, "q_lora_rank");
  positive(c.o_groups, "o_groups");
  positive(c.o_lora_rank, "o_lora_rank");
  positive(c.sliding_window, "sliding_window");
  positive(c.moe_intermediate_size, "moe_intermediate_size");
  positive(c.n_routed_experts, "n_routed_experts");
  positive(c.num_experts_per_tok, "num_experts_per_tok");
  positive(c.index_n_heads, "index_n_heads");
  positive(c.index_head_dim, "index_head_dim");
  positive(c.index_topk, "index_topk");
  positive(c.hc_mult, "hc_mult");
  positive(c.hc_sinkhorn_iters, "hc_sinkhorn_iters");
  positive(c.max_position_embeddings, "max_position_embeddings");
  if (c.num_key_value_heads != 1)
    throw r.error("num_key_value_heads", fmt::format("is {}; DeepSeek-V4 attention has exactly one shared KV head",
                                                     c.num_key_value_heads));
  if (c.qk_rope_head_dim <= 0 || c.qk_rope_head_dim > c.head_dim || c.qk_rope_head_dim % 2 != 0)
    throw r.error("qk_rope_head_dim", fmt::format("is {}, must be even and in (0, head_dim={}]", c.qk_rope_head_dim,
                                                  c.head_dim));
  if (c.num_attention_heads % c.o_groups != 0)
    throw r.error("o_groups", fmt::format("is {}, must divide num_attention_heads ({})", c.o_groups,
                                          c.num_attention_heads));
  if (c.num_experts_per_tok > c.n_routed_experts)
    throw r.error("num_experts_per_tok", fmt::format("is {}, more than n_routed_experts ({})", c.num_experts_per_tok,
                                                     c.n_routed_experts));
  if (c.n_shared_experts < 0) throw r.error("n_shared_experts", "must not be negative");
  if (c.num_hash_layers < 0 || c.num_hash_layers > c.num_hidden_layers)
    throw r.error("num_hash_layers", fmt::format("is {}, must be in [0, num_hidden_layers={}]", c.num_hash_layers,
                                                 c.num_hidden_layers));
  if (c.num_nextn_predict_layers < 0) throw r.error("num_nextn_predict_layers", "must not be negative");
  if (int64_t(c.compress_ratios.size()) != c.num_hidden_layers + c.num_nextn_predict_layers)
    throw r.error("compress_ratios",
                  fmt::format("has {} entries, expected num_hidden_layers + num_nextn_predict_layers = {} + {} = {}",
                              c.compress_ratios.size(), c.num_hidden_layers, c.num_nextn_predict_layers,
                              c.num_hidden_layers + c.num_nextn_predict_layers));
  if (c.scoring_func != "sqrtsoftplus" && c.scoring_func != "softmax" && c.scoring_func != "sigmoid")
    throw r.error("scoring_func", fmt::format("is \"{}\", expected sqrtsoftplus, softmax or sigmoid", c.scoring_func));
  if (c.expert_dtype != "fp4" && c.expert_dtype != "fp8")
    throw r.error("expert_dtype", fmt::format("is \"{}\", expected \"fp4\" or \"fp8\"", c.expert_dtype));
  if (c.expert_dtype == "fp4" && (c.hidden_size % 32 != 0 || c.moe_intermediate_size % 32 != 0))
    throw r.error("expert_dtype", fmt::format("fp4 experts need hidden_size ({}) and moe_intermediate_size ({}) to be "
                                              "multiples of 32",
                                              c.hidden_size, c.moe_intermediate_size));
  if (c.rms_norm_eps <= 0) throw r.error("rms_norm_eps", "must be positive");
  if (c.hc_eps <= 0) throw r.error("hc_eps", "must be positive");
  if (c.rope_theta <= 0) throw r.error("rope_theta", "must be positive");
  if (c.compress_rope_theta <= 0) throw r.error("compress_rope_theta", "must be positive");
  if (c.rope_scaling.factor <= 0) throw r.error("rope_scaling.factor", "must be positive");
  if (c.rope_scaling.original_max_position_embeddings <= 0)
    throw r.error("rope_scaling.original_max_position_embeddings", "must be positive");
  if (c.bos_token_id < 0 || c.bos_token_id >= c.vocab_size)
    throw r.error("bos_token_id", fmt::format("is {}, outside the vocabulary [0, {})", c.bos_token_id, c.vocab_size));
  if (c.eos_token_id < 0 || c.eos_token_id >= c.vocab_size)
    throw r.error("eos_token_id", fmt::format("is {}, outside the vocabulary [0, {})", c.eos_token_id, c.vocab_size));
  if (c.tie_word_embeddings)
    throw r.error("tie_word_embeddings", "is true; DeepSeek-V4 checkpoints have a separate head.weight");
  // Guard the binder's shape arithmetic: with every dimension below 2^31 the products of two stay
  // far from int64 overflow.
  const int64_t limit = int64_t(1) << 31;
  for (auto [v, field] :
       {std::pair{c.vocab_size, "vocab_size"}, std::pair{c.hidden_size, "hidden_size"},
        std::pair{c.num_attention_heads, "num_attention_heads"}, std::pair{c.head_dim, "head_dim"},
        std::pair{c.q_lora_rank, "q_lora_rank"}, std::pair{c.o_lora_rank, "o_lora_rank"},
        std::pair{c.n_routed_experts, "n_routed_experts"}, std::pair{c.n_shared_experts, "n_shared_experts"},
        std::pair{c.moe_intermediate_size, "moe_intermediate_size"}, std::pair{c.index_n_heads, "index_n_heads"},
        std::pair{c.index_head_dim, "index_head_dim"}, std::pair{c.hc_mult, "hc_mult"},
        std::pair{c.num_experts_per_tok, "num_experts_per_tok"}, std::pair{c.num_hidden_layers, "num_hidden_layers"},
        std::pair{c.num_nextn_predict_layers, "num_nextn_predict_layers"}})
    if (v >= limit) throw r.error(field, fmt::format("is implausibly large ({})", v));
  for (int64_t ratio : c.compress_ratios)
    if (ratio >= limit) throw r.error("compress_ratios", fmt::format("entry {} is implausibly large", ratio));
  return c;
}

const std::vector<IgnoredConfigField>& ignored_config_fields() {
  static const std::vector<IgnoredConfigField> fields = {
      {"architectures", "names the Transformers class; model_type already identifies the architecture"},
      {"attention_dropout", "dropout acts in training only; inference never drops"},
      {"initializer_range", "initialisation for training; the weights come from the checkpoint"},
      {"torch_dtype", "each tensor's dtype comes from its safetensors header, checked tensor by tensor"},
      {"transformers_version", "the version of the library that wrote the file"},
      {"use_cache", "the engine always keeps each sequence's attention state; it cannot run without it"},
  };
  return fields;
}

ModelConfig ModelConfig::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(fmt::format("{}: cannot open", path));
  std::ostringstream text;
  text << in.rdbuf();
  return from_json_text(text.str(), path);
}

}  // namespace v4::core

namespace v4::core {

namespace {

// Indented JSON, one object member per line, short scalar arrays on one line (as HF writes configs).
void pretty(const json::value& v, int indent, std::string& out) {
  const std::string pad(size_t(indent + 2), ' ');
  if (v.is_object()) {
    if (v.as_object().empty()) {
      out += "{}";
      return;
    }
    out += "{\n";
    bool first = true;
    for (const auto& [k, x] : v.as_object()) {
      if (!first) out += ",\n";
      first = false;
      out += pad + json::serialize(json::string(k)) + ": ";
      pretty(x, indent + 2, out);
    }
    out += "\n" + std::string(size_t(indent), ' ') + "}";
  } else if (v.is_array() && !v.as_array().empty() &&
             std::all_of(v.as_array().begin(), v.as_array().end(), [](const json::value& x) { return x.is_number(); })) {
    out += "[";
    for (size_t i = 0; i < v.as_array().size(); ++i) {
      if (i) out += ", ";
      pretty(v.as_array()[i], indent, out);
    }
    out += "]";
  } else if (v.is_array()) {
    out += "[";
    bool first = true;
    for (const auto& x : v.as_array()) {
      out += first ? "\n" : ",\n";
      first = false;
      out += pad;
      pretty(x, indent + 2, out);
    }
    out += v.as_array().empty() ? "]" : "\n" + std::string(size_t(indent), ' ') + "]";
  } else if (v.is_double()) {
    std::string d = fmt::format("{}", v.as_double());  // shortest round-trip form, e.g. 1e-06
    if (d.find_first_of(".en") == std::string::npos) d += ".0";
    out += d;
  } else {
    out += json::serialize(v);
  }
}

std::string pretty_json(const json::value& v) {
  std::string out;
  pretty(v, 0, out);
  return out;
}

}  // namespace

std::string ModelConfig::to_json_text() const {
  json::object o;
  o["architectures"] = json::array{"DeepseekV4ForCausalLM"};
  o["model_type"] = "deepseek_v4";
  o["attention_bias"] = false;
  o["attention_dropout"] = 0.0;
  o["bos_token_id"] = bos_token_id;
  o["eos_token_id"] = eos_token_id;
  o["expert_dtype"] = expert_dtype;
  o["hc_eps"] = hc_eps;
  o["hc_mult"] = hc_mult;
  o["hc_sinkhorn_iters"] = hc_sinkhorn_iters;
  o["head_dim"] = head_dim;
  o["hidden_act"] = "silu";
  o["hidden_size"] = hidden_size;
  o["index_head_dim"] = index_head_dim;
  o["index_n_heads"] = index_n_heads;
  o["index_topk"] = index_topk;
  o["initializer_range"] = 0.02;
  o["max_position_embeddings"] = max_position_embeddings;
  o["moe_intermediate_size"] = moe_intermediate_size;
  o["n_routed_experts"] = n_routed_experts;
  o["n_shared_experts"] = n_shared_experts;
  o["norm_topk_prob"] = norm_topk_prob;
  o["num_attention_heads"] = num_attention_heads;
  o["num_experts_per_tok"] = num_experts_per_tok;
  o["num_hidden_layers"] = num_hidden_layers;
  o["num_hash_layers"] = num_hash_layers;
  o["num_key_value_heads"] = num_key_value_heads;
  o["num_nextn_predict_layers"] = num_nextn_predict_layers;
  o["o_groups"] = o_groups;
  o["o_lora_rank"] = o_lora_rank;
  o["q_lora_rank"] = q_lora_rank;
  o["qk_rope_head_dim"] = qk_rope_head_dim;
  o["quantization_config"] = json::object{{"activation_scheme", "dynamic"},
                                          {"fmt", quant_fmt},
                                          {"quant_method", quant_method},
                                          {"scale_fmt", scale_fmt},
                                          {"weight_block_size", json::array{weight_block_size[0], weight_block_size[1]}}};
  o["rms_norm_eps"] = rms_norm_eps;
  o["rope_scaling"] = json::object{{"beta_fast", rope_scaling.beta_fast},
                                   {"beta_slow", rope_scaling.beta_slow},
                                   {"factor", rope_scaling.factor},
                                   {"original_max_position_embeddings", rope_scaling.original_max_position_embeddings},
                                   {"type", rope_scaling.type}};
  o["rope_theta"] = rope_theta;
  o["routed_scaling_factor"] = routed_scaling_factor;
  o["scoring_func"] = scoring_func;
  o["sliding_window"] = sliding_window;
  o["swiglu_limit"] = swiglu_limit;
  o["tie_word_embeddings"] = tie_word_embeddings;
  o["topk_method"] = "noaux_tc";
  o["torch_dtype"] = "bfloat16";
  o["use_cache"] = true;
  o["vocab_size"] = vocab_size;
  o["compress_rope_theta"] = compress_rope_theta;
  json::array ratios;
  for (int64_t r : compress_ratios) ratios.push_back(r);
  o["compress_ratios"] = std::move(ratios);
  return pretty_json(o) + "\n";
}

}  // namespace v4::core
