#pragma once
// config.json of model_type deepseek_v4, every field the architecture uses.
#include <cstdint>
#include <string>
#include <vector>

namespace v4::core {

struct RopeScaling {
  std::string type = "yarn";
  double factor = 16;
  int64_t original_max_position_embeddings = 65536;
  double beta_fast = 32, beta_slow = 1;
};

struct ModelConfig {
  int64_t vocab_size = 129280;
  int64_t hidden_size = 4096;        // D
  int64_t num_hidden_layers = 43;
  int64_t num_attention_heads = 64;  // H
  int64_t num_key_value_heads = 1;
  int64_t head_dim = 512;
  int64_t qk_rope_head_dim = 64;
  int64_t q_lora_rank = 1024;
  int64_t o_groups = 8;
  int64_t o_lora_rank = 1024;
  int64_t sliding_window = 128;
  int64_t moe_intermediate_size = 2048;
  int64_t n_routed_experts = 256;
  int64_t n_shared_experts = 1;
  int64_t num_experts_per_tok = 6;
  int64_t num_hash_layers = 3;
  int64_t num_nextn_predict_layers = 1;
  bool norm_topk_prob = true;
  double routed_scaling_factor = 1.5;
  std::string scoring_func = "sqrtsoftplus";
  double swiglu_limit = 10.0;
  int64_t index_n_heads = 64;
  int64_t index_head_dim = 128;
  int64_t index_topk = 512;
  int64_t hc_mult = 4;
  int64_t hc_sinkhorn_iters = 20;
  double hc_eps = 1e-6;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000;
  double compress_rope_theta = 160000;
  RopeScaling rope_scaling;
  std::vector<int64_t> compress_ratios;  // num_hidden_layers + num_nextn_predict_layers entries
  int64_t max_position_embeddings = 1048576;
  int64_t bos_token_id = 0, eos_token_id = 1;
  bool tie_word_embeddings = false;
  std::string expert_dtype = "fp4";  // "fp4" or "fp8"
  // quantization_config
  std::string quant_method = "fp8", quant_fmt = "e4m3", scale_fmt = "ue8m0";
  int64_t weight_block_size[2] = {128, 128};

  // compress ratio of layer l (l == num_hidden_layers.. for MTP layers)
  int64_t compress_ratio(int64_t layer) const { return compress_ratios.at(size_t(layer)); }
  bool is_hash_layer(int64_t layer) const { return layer < num_hash_layers; }

  // Throws CheckpointError naming the field for missing/inconsistent values.
  static ModelConfig from_json_text(const std::string& text, const std::string& label = "config.json");
  static ModelConfig from_file(const std::string& path);
  // config.json text in the official layout (every field above; from_json_text reads it back).
  std::string to_json_text() const;
};

}  // namespace v4::core
