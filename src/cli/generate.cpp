// v4flash generate: greedy (default) or temperature sampling from the command line.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/checkpoint.h"
#include "model/model.h"
#include "text/tokenizer.h"

namespace v4::cli {
namespace {



int32_t pick(const std::vector<float>& logits, double temperature, std::mt19937_64& rng) {
  if (temperature <= 0) return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  const float mx = *std::max_element(logits.begin(), logits.end());
  std::vector<double> w(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) w[i] = std::exp((double(logits[i]) - mx) / temperature);
  std::discrete_distribution<int32_t> dist(w.begin(), w.end());
  return dist(rng);
}

int run_generate(const Args& args) {
  ArgParser p(args);
  p.check_known({"model", "tokens", "prompt", "tokenizer", "max-tokens", "temperature", "seed", "threads"},
                {"exact", "no-stop"});
  const auto model_dir = p.value("model");
  if (!model_dir || (p.value("tokens").has_value() == p.value("prompt").has_value())) {
    std::fprintf(stderr,
                 "usage: v4flash generate --model DIR (--tokens 1,2,3 | --prompt TEXT [--tokenizer tokenizer.json])\n"
                 "                        [--max-tokens N] [--temperature T] [--seed S] [--exact] [--no-stop]\n");
    return 2;
  }
  std::unique_ptr<text::Tokenizer> tokenizer;
  const std::string tok_path = p.value_or("tokenizer", (std::filesystem::path(*model_dir) / "tokenizer.json").string());
  if (p.value("prompt") || std::filesystem::exists(tok_path)) {
    if (!std::filesystem::exists(tok_path)) throw std::invalid_argument("--prompt needs a tokenizer: " + tok_path + " not found");
    tokenizer = text::Tokenizer::from_file(tok_path);
  }
  const std::vector<int32_t> prompt = p.value("prompt") ? tokenizer->encode(*p.value("prompt")) : parse_token_ids(*p.value("tokens"));
  if (prompt.empty()) throw std::invalid_argument("empty prompt");
  const int max_tokens = int(p.integer("max-tokens", 32, 1, 1 << 24));
  double temperature = 0;
  try {
    size_t used = 0;
    const std::string t = p.value_or("temperature", "0");
    temperature = std::stod(t, &used);
    if (used != t.size() || !(temperature >= 0) || temperature > 100) throw std::invalid_argument(t);
  } catch (const std::exception&) {
    throw std::invalid_argument("--temperature needs a number in [0, 100]");
  }
  std::mt19937_64 rng(uint64_t(p.integer("seed", 0, 0, INT64_MAX)));

  auto ckpt = core::Checkpoint::open(*model_dir);
  model::ModelOptions opts;
  opts.exact = p.flag("exact");
  opts.threads = int(p.integer("threads", 0, 0, 1024));
  auto model = model::Model::load(*ckpt, opts);
  const int32_t eos = int32_t(model->config().eos_token_id);

  auto state = model->new_state();
  model::BatchItem item{state.get(), prompt, false};
  std::vector<int32_t> out;
  std::vector<float> logits = model->forward(std::span<const model::BatchItem>(&item, 1));
  for (int k = 0; k < max_tokens; ++k) {
    const int32_t next = pick(logits, temperature, rng);
    out.push_back(next);
    if (next == eos && !p.flag("no-stop")) break;
    if (k + 1 == max_tokens) break;
    item.tokens = std::span<const int32_t>(&out.back(), 1);
    logits = model->forward(std::span<const model::BatchItem>(&item, 1));
  }
  std::string ids;
  for (size_t i = 0; i < out.size(); ++i) ids += (i ? "," : "") + std::to_string(out[i]);
  std::printf("%s\n", ids.c_str());
  if (tokenizer) std::printf("%s\n", tokenizer->decode(out).c_str());
  return 0;
}

}  // namespace

V4_COMMAND("generate", "generate tokens from a prompt (greedy by default, or --temperature/--seed)", run_generate);

}  // namespace v4::cli
