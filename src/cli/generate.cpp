// v4flash generate: greedy (default) or temperature sampling from the command line; with
// --speculative K through the serving engine with speculative decoding.
#include <algorithm>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/checkpoint.h"
#include "model/model.h"
#include "runtime/engine.h"
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

void print_tokens(const std::vector<int32_t>& out, const text::Tokenizer* tokenizer) {
  std::string ids;
  for (size_t i = 0; i < out.size(); ++i) ids += (i ? "," : "") + std::to_string(out[i]);
  std::printf("%s\n", ids.c_str());
  if (tokenizer) std::printf("%s\n", tokenizer->decode(out).c_str());
}

// The engine's greedy or sampled tokens (its sampler, seeded; EOS last if it ended the request),
// with K drafts per step; the speculative decoding figures go to stderr.
std::vector<int32_t> generate_speculative(std::shared_ptr<model::Model> model, const std::vector<int32_t>& prompt,
                                          int max_tokens, double temperature, uint64_t seed, int k, int threads) {
  runtime::EngineOptions eo;
  eo.threads = threads;
  eo.speculative_tokens = k;
  const int32_t eos = int32_t(model->config().eos_token_id);
  auto engine = runtime::create_engine(std::move(model), eo);
  runtime::GenerationRequest r;
  r.id = "generate";
  r.prompt = prompt;
  r.params.temperature = temperature;
  r.params.top_p = 1;
  r.params.seed = seed;
  r.params.max_tokens = max_tokens;
  std::vector<int32_t> out;
  std::mutex m;
  std::condition_variable cv;
  std::optional<runtime::FinishInfo> done;
  runtime::RequestCallbacks cb;
  cb.on_token = [&](const runtime::GeneratedToken& t) { out.push_back(t.token); };
  cb.on_finish = [&](const runtime::FinishInfo& f) {
    std::lock_guard l(m);
    done = f;
    cv.notify_all();
  };
  engine->submit(std::move(r), std::move(cb));
  {
    std::unique_lock l(m);
    cv.wait(l, [&] { return done.has_value(); });
  }
  if (done->reason == runtime::FinishReason::Error) throw std::runtime_error(done->error);
  if (done->reason == runtime::FinishReason::Stop) out.push_back(eos);
  const runtime::EngineMetrics s = engine->metrics();
  std::fprintf(stderr, "speculative decoding: %lld verify steps, %lld of %lld drafts accepted, %.3f tokens per step\n",
               (long long)s.spec_drafts_total, (long long)s.spec_accepted_tokens_total,
               (long long)s.spec_draft_tokens_total,
               s.spec_drafts_total ? double(s.spec_emitted_tokens_total) / double(s.spec_drafts_total) : 1.0);
  engine->shutdown();
  return out;
}

int run_generate(const Args& args) {
  ArgParser p(args);
  p.check_known({"model", "tokens", "prompt", "tokenizer", "max-tokens", "temperature", "seed", "threads", "speculative"},
                {"exact", "no-stop"});
  const auto model_dir = p.value("model");
  if (!model_dir || (p.value("tokens").has_value() == p.value("prompt").has_value())) {
    std::fprintf(stderr,
                 "usage: v4flash generate --model DIR (--tokens 1,2,3 | --prompt TEXT [--tokenizer tokenizer.json])\n"
                 "                        [--max-tokens N] [--temperature T] [--seed S] [--exact] [--no-stop]\n"
                 "                        [--speculative K]\n"
                 "  --speculative K: through the serving engine, K drafts per step from the MTP block (greedy output\n"
                 "  is the plain output; sampling uses the engine's sampler, so a seed gives other tokens than without)\n");
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
  const uint64_t seed = uint64_t(p.integer("seed", 0, 0, INT64_MAX));
  std::mt19937_64 rng(seed);
  const int speculative = int(p.integer("speculative", 0, 0, runtime::kMaxSpeculativeTokens));
  if (speculative > 0 && p.flag("no-stop"))
    throw std::invalid_argument("--no-stop is for plain decoding (the engine ends a request at EOS)");

  auto ckpt = core::Checkpoint::open(*model_dir);
  model::ModelOptions opts;
  opts.exact = p.flag("exact");
  opts.threads = int(p.integer("threads", 0, 0, 1024));
  opts.enable_mtp = speculative > 0;
  std::shared_ptr<model::Model> model = model::Model::load(*ckpt, opts);
  const int32_t eos = int32_t(model->config().eos_token_id);
  if (speculative > 0) {
    print_tokens(generate_speculative(model, prompt, max_tokens, temperature, seed, speculative, opts.threads),
                 tokenizer.get());
    return 0;
  }

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
  print_tokens(out, tokenizer.get());
  return 0;
}

}  // namespace

V4_COMMAND("generate", "generate tokens from a prompt (greedy by default, or --temperature/--seed)", run_generate);

}  // namespace v4::cli
