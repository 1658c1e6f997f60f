// config.json parsing: the official fields, defaults, and errors that name the field.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <fstream>
#include <sstream>

#include "core/config.h"
#include "core/config_fields.h"
#include "core/safetensors.h"

using namespace v4::core;
namespace json = boost::json;

namespace {

json::object fixture_config() {
  std::ifstream in(std::string(V4_SHARED_DIR) + "/fixtures/tiny-v4/config.json");
  std::stringstream s;
  s << in.rdbuf();
  return json::parse(s.str()).as_object();
}

std::string config_error(const json::object& o) {
  try {
    ModelConfig::from_json_text(json::serialize(o), "cfg.json");
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Config, ReadsTheFixtureConfig) {
  const ModelConfig c = ModelConfig::from_json_text(json::serialize(fixture_config()));
  EXPECT_EQ(c.vocab_size, 4096);
  EXPECT_EQ(c.hidden_size, 256);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.qk_rope_head_dim, 64);
  EXPECT_EQ(c.q_lora_rank, 128);
  EXPECT_EQ(c.o_groups, 2);
  EXPECT_EQ(c.o_lora_rank, 128);
  EXPECT_EQ(c.moe_intermediate_size, 128);
  EXPECT_EQ(c.n_routed_experts, 8);
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_EQ(c.num_hash_layers, 2);
  EXPECT_EQ(c.index_n_heads, 4);
  EXPECT_EQ(c.index_topk, 16);
  EXPECT_EQ(c.hc_mult, 4);
  EXPECT_EQ(c.hc_sinkhorn_iters, 20);
  EXPECT_DOUBLE_EQ(c.hc_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.swiglu_limit, 10.0);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 1.5);
  EXPECT_EQ(c.scoring_func, "sqrtsoftplus");
  EXPECT_DOUBLE_EQ(c.compress_rope_theta, 160000);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 16);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 65536);
  EXPECT_DOUBLE_EQ(c.rope_scaling.beta_fast, 32);
  EXPECT_EQ(c.expert_dtype, "fp4");
  EXPECT_EQ(c.weight_block_size[0], 128);
  EXPECT_EQ(c.compress_ratio(6), 0);  // the MTP entry
}

TEST(Config, ReadsTheOfficialFlashConfigFromTheSpec) {
  // §1 of the spec, the fields that differ from the fixture.
  json::object o = fixture_config();
  o["hidden_size"] = 4096;
  o["num_hidden_layers"] = 43;
  o["num_attention_heads"] = 64;
  o["head_dim"] = 512;
  o["q_lora_rank"] = 1024;
  o["o_groups"] = 8;
  o["o_lora_rank"] = 1024;
  o["moe_intermediate_size"] = 2048;
  o["n_routed_experts"] = 256;
  o["num_experts_per_tok"] = 6;
  o["num_hash_layers"] = 3;
  o["index_n_heads"] = 64;
  o["index_topk"] = 512;
  o["vocab_size"] = 129280;
  json::array r = {0, 0};
  for (int l = 2; l < 43; ++l) r.push_back(l % 2 ? 128 : 4);
  r.push_back(0);
  o["compress_ratios"] = r;
  const ModelConfig c = ModelConfig::from_json_text(json::serialize(o));
  EXPECT_EQ(c.compress_ratios.size(), 44u);
  EXPECT_EQ(c.compress_ratio(42), 4);
  EXPECT_EQ(c.compress_ratio(41), 128);
  EXPECT_TRUE(c.is_hash_layer(2));
  EXPECT_FALSE(c.is_hash_layer(3));
}

TEST(Config, DefaultsWhereOmitted) {
  json::object o = fixture_config();
  for (const char* k : {"sliding_window", "hc_eps", "hc_mult", "hc_sinkhorn_iters", "swiglu_limit", "scoring_func",
                        "compress_rope_theta", "rope_theta", "rms_norm_eps", "num_key_value_heads", "n_shared_experts",
                        "index_head_dim", "routed_scaling_factor", "quantization_config", "rope_scaling", "expert_dtype",
                        "num_nextn_predict_layers"})
    o.erase(k);
  const ModelConfig c = ModelConfig::from_json_text(json::serialize(o));
  EXPECT_EQ(c.sliding_window, 128);
  EXPECT_EQ(c.hc_mult, 4);
  EXPECT_EQ(c.hc_sinkhorn_iters, 20);
  EXPECT_DOUBLE_EQ(c.swiglu_limit, 10);
  EXPECT_EQ(c.scoring_func, "sqrtsoftplus");
  EXPECT_DOUBLE_EQ(c.compress_rope_theta, 160000);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.num_key_value_heads, 1);
  EXPECT_EQ(c.n_shared_experts, 1);
  EXPECT_EQ(c.index_head_dim, 128);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 1.5);
  EXPECT_EQ(c.rope_scaling.type, "yarn");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 16);
  EXPECT_EQ(c.expert_dtype, "fp4");
  EXPECT_EQ(c.num_nextn_predict_layers, 1);
}

TEST(Config, AcceptsTheReferenceCodeKeyNames) {
  json::object o = fixture_config();
  o["dim"] = o["hidden_size"];
  o.erase("hidden_size");
  o["n_layers"] = o["num_hidden_layers"];
  o.erase("num_hidden_layers");
  o["moe_inter_dim"] = 128;
  o.erase("moe_intermediate_size");
  o["route_scale"] = 2.5;
  o.erase("routed_scaling_factor");
  const ModelConfig c = ModelConfig::from_json_text(json::serialize(o));
  EXPECT_EQ(c.hidden_size, 256);
  EXPECT_EQ(c.num_hidden_layers, 6);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.5);
}

TEST(Config, MissingRequiredFieldsAreNamed) {
  for (const char* field : {"hidden_size", "vocab_size", "num_hidden_layers", "num_attention_heads", "head_dim",
                            "q_lora_rank", "o_groups", "o_lora_rank", "moe_intermediate_size", "n_routed_experts",
                            "num_experts_per_tok", "compress_ratios"}) {
    json::object o = fixture_config();
    o.erase(field);
    EXPECT_EQ(config_error(o), std::string("cfg.json: field '") + field + "' is missing (required)") << field;
  }
}

TEST(Config, CompressRatiosMustCoverLayersPlusMtp) {
  json::object o = fixture_config();
  o["compress_ratios"] = json::array{0, 4, 128, 4, 128, 0};  // MTP entry missing
  EXPECT_EQ(config_error(o),
            "cfg.json: field 'compress_ratios' has 6 entries, expected num_hidden_layers + num_nextn_predict_layers = "
            "6 + 1 = 7");
  o["compress_ratios"] = json::array{0, 4, -1, 4, 128, 0, 0};
  EXPECT_NE(config_error(o).find("'compress_ratios' entries must be non-negative integers"), std::string::npos);
}

TEST(Config, InconsistentOrMistypedValuesAreNamed) {
  auto err = [](const char* key, json::value v) {
    json::object o = fixture_config();
    o[key] = v;
    return config_error(o);
  };
  EXPECT_EQ(err("model_type", "deepseek_v3"), "cfg.json: field 'model_type' is \"deepseek_v3\", expected \"deepseek_v4\"");
  EXPECT_EQ(err("hidden_size", "256"), "cfg.json: field 'hidden_size' must be an integer, got \"256\"");
  EXPECT_EQ(err("hidden_size", 0), "cfg.json: field 'hidden_size' must be positive, got 0");
  EXPECT_EQ(err("o_groups", 3), "cfg.json: field 'o_groups' is 3, must divide num_attention_heads (4)");
  EXPECT_EQ(err("num_experts_per_tok", 9), "cfg.json: field 'num_experts_per_tok' is 9, more than n_routed_experts (8)");
  EXPECT_EQ(err("num_hash_layers", 7), "cfg.json: field 'num_hash_layers' is 7, must be in [0, num_hidden_layers=6]");
  EXPECT_EQ(err("num_key_value_heads", 8),
            "cfg.json: field 'num_key_value_heads' is 8; DeepSeek-V4 attention has exactly one shared KV head");
  EXPECT_EQ(err("scoring_func", "relu"), "cfg.json: field 'scoring_func' is \"relu\", expected sqrtsoftplus, softmax or sigmoid");
  EXPECT_EQ(err("expert_dtype", "int4"), "cfg.json: field 'expert_dtype' is \"int4\", expected \"fp4\" or \"fp8\"");
  EXPECT_EQ(err("qk_rope_head_dim", 256), "cfg.json: field 'qk_rope_head_dim' is 256, must be even and in (0, head_dim=128]");
  EXPECT_EQ(err("norm_topk_prob", 1), "cfg.json: field 'norm_topk_prob' must be true or false, got 1");
  EXPECT_EQ(err("eos_token_id", 5000), "cfg.json: field 'eos_token_id' is 5000, outside the vocabulary [0, 4096)");
  EXPECT_EQ(err("hidden_size", int64_t(1) << 40), "cfg.json: field 'hidden_size' is implausibly large (1099511627776)");
  EXPECT_EQ(err("rope_scaling", json::object{{"type", "linear"}, {"factor", 2}}),
            "cfg.json: rope_scaling: field 'type' is \"linear\", only \"yarn\" is supported");
  EXPECT_EQ(err("quantization_config", json::object{{"quant_method", "gptq"}}),
            "cfg.json: quantization_config: field 'quant_method' is \"gptq\", only \"fp8\" is supported");
}

TEST(Config, BadJsonAndWrongTopLevel) {
  try {
    ModelConfig::from_json_text("{\"hidden_size\": ", "cfg.json");
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("cfg.json: not valid JSON"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ModelConfig::from_json_text("[]", "cfg.json"), CheckpointError);
  EXPECT_THROW(ModelConfig::from_file("/nonexistent/config.json"), CheckpointError);
}

TEST(Config, ToJsonRoundTrips) {
  const ModelConfig a = ModelConfig::from_json_text(json::serialize(fixture_config()));
  const ModelConfig b = ModelConfig::from_json_text(a.to_json_text());
  EXPECT_EQ(b.compress_ratios, a.compress_ratios);
  EXPECT_EQ(b.hidden_size, a.hidden_size);
  EXPECT_EQ(b.num_hash_layers, a.num_hash_layers);
  EXPECT_DOUBLE_EQ(b.hc_eps, a.hc_eps);
  EXPECT_EQ(b.index_topk, a.index_topk);
  EXPECT_EQ(b.expert_dtype, a.expert_dtype);
}

// Every key of the official config is used, or on the documented ignored list; nothing else passes.
TEST(Config, EveryOfficialKeyIsUsedOrKnowinglyIgnored) {
  const auto& ignored = ignored_config_fields();
  std::vector<std::string> keys;
  for (const auto& f : ignored) {
    EXPECT_FALSE(f.why.empty()) << f.key;
    keys.push_back(f.key);
  }
  for (const char* k : {"architectures", "attention_dropout", "initializer_range", "torch_dtype", "use_cache",
                        "transformers_version"})
    EXPECT_NE(std::find(keys.begin(), keys.end(), k), keys.end()) << k;
  json::object o = fixture_config();
  o["transformers_version"] = "4.57.1";
  EXPECT_EQ(config_error(o), "");  // the official file, verbatim keys
}

TEST(Config, UnknownKeysAreRefusedByName) {
  auto err = [](const char* key, json::value v) {
    json::object o = fixture_config();
    o[key] = v;
    return config_error(o);
  };
  EXPECT_EQ(err("kv_lora_rank", 512),
            "cfg.json: field 'kv_lora_rank' is not a DeepSeek-V4 config field this loader knows; refusing rather than "
            "ignoring it (see core/config_fields.h for the fields it ignores and why)");
  json::object o = fixture_config();
  o["rope_scaling"].as_object()["mscale"] = 1.0;
  EXPECT_NE(config_error(o).find("rope_scaling: field 'mscale' is not a DeepSeek-V4 config field"), std::string::npos)
      << config_error(o);
  o = fixture_config();
  o["quantization_config"].as_object()["modules_to_not_convert"] = json::array{};
  EXPECT_NE(config_error(o).find("quantization_config: field 'modules_to_not_convert'"), std::string::npos);
}

TEST(Config, FieldsWithOneImplementedValueRefuseTheOthers) {
  auto err = [](const char* key, json::value v) {
    json::object o = fixture_config();
    o[key] = v;
    return config_error(o);
  };
  EXPECT_EQ(err("topk_method", "greedy"),
            "cfg.json: field 'topk_method' is \"greedy\"; only \"noaux_tc\" is implemented (flat top-k over scores plus "
            "the selection bias, as the reference's Gate)");
  EXPECT_NE(err("n_group", 8).find("field 'n_group' is 8; only 1 is implemented"), std::string::npos);
  EXPECT_EQ(err("n_group", 1), "");
  EXPECT_NE(err("topk_group", 4).find("field 'topk_group' is 4"), std::string::npos);
  EXPECT_NE(err("first_k_dense_replace", 3).find("field 'first_k_dense_replace' is 3"), std::string::npos);
  EXPECT_NE(err("hidden_act", "gelu").find("field 'hidden_act' is \"gelu\"; only \"silu\""), std::string::npos);
  EXPECT_NE(err("attention_bias", true).find("field 'attention_bias' is true; only false"), std::string::npos);
  EXPECT_NE(err("dtype", "bf16").find("field 'dtype' is \"bf16\""), std::string::npos);
  EXPECT_NE(err("tie_word_embeddings", true).find("field 'tie_word_embeddings' is true"), std::string::npos);
  json::object o = fixture_config();
  o["quantization_config"].as_object()["activation_scheme"] = "static";
  EXPECT_NE(config_error(o).find("quantization_config: field 'activation_scheme' is \"static\""), std::string::npos);
}

// norm_topk_prob: read when given; otherwise the reference's rule (renormalise unless softmax).
TEST(Config, NormTopkProbFollowsTheReferenceWhenAbsent) {
  json::object o = fixture_config();
  o.erase("norm_topk_prob");
  EXPECT_TRUE(ModelConfig::from_json_text(json::serialize(o)).norm_topk_prob);
  o["scoring_func"] = "softmax";
  EXPECT_FALSE(ModelConfig::from_json_text(json::serialize(o)).norm_topk_prob);
  o["norm_topk_prob"] = true;
  EXPECT_TRUE(ModelConfig::from_json_text(json::serialize(o)).norm_topk_prob);
  o["norm_topk_prob"] = false;
  o["scoring_func"] = "sqrtsoftplus";
  EXPECT_FALSE(ModelConfig::from_json_text(json::serialize(o)).norm_topk_prob);
}
