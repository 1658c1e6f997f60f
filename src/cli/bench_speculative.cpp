#include "cli/bench_speculative.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "core/checkpoint.h"
#include "kernels/cpu_features.h"
#include "kernels/isa.h"
#include "model/model.h"
#include "runtime/engine.h"

namespace v4::cli {

namespace {

namespace json = boost::json;

const char* kUsage =
    "usage: v4flash bench decode --model DIR --speculative K [--force-accept] [--tokens 256] [--prompt 32]\n"
    "                            [--batch 1] [--threads N] [--repeats 2] [--json]\n"
    "Greedy decode through the engine: B sequences of random --prompt tokens generate --tokens tokens each\n"
    "(EOS suppressed), without speculative decoding, then with K drafts per step from the checkpoint's MTP\n"
    "block, then (--force-accept) with every draft accepted, so that random weights, which accept\n"
    "nothing, still show what a verify step of K + 1 rows costs against a plain step. Prints decode\n"
    "tokens/s (tokens after the first over the time after the first; best of --repeats), steps, the\n"
    "forward and drafting (MTP block) time per step, the acceptance rate, tokens per verify step, and\n"
    "whether the speculative output equals the plain output (every token and logprob, bit for bit).\n";

struct Options {
  std::string model_dir;
  int k = 1, tokens = 256, prompt = 32, batch = 1, threads = 0, repeats = 2;
  bool force_accept = false, json = false;
};

struct Run {
  std::string mode;
  double tokens_per_s = 0, seconds = 0;
  double forward_seconds = 0, draft_seconds = 0;  // the engine's /metrics split of the whole run
  int64_t decode_tokens = 0, steps = 0;
  runtime::EngineMetrics metrics;
  std::vector<std::vector<std::pair<int32_t, float>>> outputs;  // per sequence: token, logprob
};

// A counter of the engine's Prometheus text (0 when absent).
double metric(const std::string& text, const std::string& name) {
  const std::string key = "v4flash:" + name + " ";
  const size_t at = text.find("\n" + key);
  return at == std::string::npos ? 0.0 : std::stod(text.substr(at + 1 + key.size()));
}

// One engine run: every sequence submitted at once; decode time runs from the last first token to
// the last finish.
Run run_once(std::shared_ptr<model::Model> model, const Options& o, int k, bool force) {
  runtime::EngineOptions eo;
  eo.threads = o.threads;
  eo.speculative_tokens = k;
  eo.force_accept = force;
  eo.prefix_cache_budget = 0;
  auto engine = runtime::create_engine(std::move(model), eo);
  const auto& cfg = engine->config();
  std::mutex m;
  std::condition_variable cv;
  int finished = 0;
  Run run;
  run.outputs.resize(size_t(o.batch));
  std::vector<runtime::FinishInfo> infos(size_t(o.batch));
  std::string error;
  for (int b = 0; b < o.batch; ++b) {
    runtime::GenerationRequest r;
    r.id = "bench-" + std::to_string(b);
    std::mt19937 rng(uint32_t(100 + b));
    std::uniform_int_distribution<int32_t> pick(2, int32_t(cfg.vocab_size - 1));
    for (int i = 0; i < o.prompt; ++i) r.prompt.push_back(pick(rng));
    r.params.temperature = 0;
    r.params.max_tokens = o.tokens;
    r.params.top_logprobs = 0;
    r.params.logit_bias = {{int32_t(cfg.eos_token_id), -100.0f}};
    runtime::RequestCallbacks cb;
    cb.on_token = [&run, b](const runtime::GeneratedToken& t) {
      run.outputs[size_t(b)].emplace_back(t.token, t.logprob ? t.logprob->logprob : 0.0f);
    };
    cb.on_finish = [&, b](const runtime::FinishInfo& f) {
      std::lock_guard l(m);
      infos[size_t(b)] = f;
      if (f.reason == runtime::FinishReason::Error) error = f.error;
      finished++;
      cv.notify_all();
    };
    engine->submit(std::move(r), std::move(cb));
  }
  {
    std::unique_lock l(m);
    cv.wait(l, [&] { return finished == o.batch; });
  }
  if (!error.empty()) throw std::runtime_error("the request failed: " + error);
  double first = 0, last = 0;
  for (const auto& f : infos) {
    first = std::max(first, f.ttft_seconds);
    last = std::max(last, f.total_seconds);
    run.decode_tokens += f.completion_tokens - 1;
  }
  run.seconds = last - first;
  run.tokens_per_s = run.seconds > 0 ? double(run.decode_tokens) / run.seconds : 0;
  run.metrics = engine->metrics();
  run.steps = run.metrics.steps_total;
  const std::string text = engine->prometheus_text();
  run.forward_seconds = metric(text, "engine_forward_seconds_total");
  run.draft_seconds = metric(text, "engine_draft_seconds_total");
  engine->shutdown();
  return run;
}

bool same_output(const Run& a, const Run& b) {
  if (a.outputs.size() != b.outputs.size()) return false;
  for (size_t s = 0; s < a.outputs.size(); ++s) {
    if (a.outputs[s].size() != b.outputs[s].size()) return false;
    for (size_t i = 0; i < a.outputs[s].size(); ++i)
      if (a.outputs[s][i].first != b.outputs[s][i].first ||
          std::memcmp(&a.outputs[s][i].second, &b.outputs[s][i].second, sizeof(float)) != 0)
        return false;
  }
  return true;
}

Options parse(const Args& args) {
  ArgParser p(args);
  p.check_known({"model", "speculative", "tokens", "prompt", "batch", "threads", "repeats"}, {"force-accept", "json"});
  Options o;
  const auto dir = p.value("model");
  if (!dir) throw std::invalid_argument("--model DIR is required");
  o.model_dir = *dir;
  o.k = int(p.integer("speculative", 1, 1, runtime::kMaxSpeculativeTokens));
  o.tokens = int(p.integer("tokens", 256, 2, 1 << 20));
  o.prompt = int(p.integer("prompt", 32, 1, 1 << 20));
  o.batch = int(p.integer("batch", 1, 1, 4096));
  o.threads = int(p.integer("threads", 0, 0, 4096));
  o.repeats = int(p.integer("repeats", 2, 1, 100));
  o.force_accept = p.flag("force-accept");
  o.json = p.flag("json");
  return o;
}

void print(const Options& o, const std::vector<Run>& runs, bool identical) {
  const Run& plain = runs[0];
  const double plain_step = plain.steps > 1 ? plain.seconds / double(plain.steps - 1) : 0;
  const auto& f = kernels::cpu_features();
  const unsigned threads = o.threads > 0 ? unsigned(o.threads) : std::thread::hardware_concurrency();
  if (o.json) {
    json::array modes;
    for (const Run& r : runs) {
      const auto& m = r.metrics;
      modes.push_back(json::object{
          {"mode", r.mode}, {"tokens_per_s", r.tokens_per_s}, {"decode_tokens", r.decode_tokens},
          {"decode_seconds", r.seconds}, {"steps", r.steps}, {"verify_steps", m.spec_drafts_total},
          {"forward_seconds", r.forward_seconds}, {"draft_seconds", r.draft_seconds},
          {"draft_tokens", m.spec_draft_tokens_total}, {"accepted_tokens", m.spec_accepted_tokens_total},
          {"tokens_per_verify_step",
           m.spec_drafts_total ? double(m.spec_emitted_tokens_total) / double(m.spec_drafts_total) : 1.0}});
    }
    json::object out{{"cpu", f.name()}, {"isa", kernels::isa_name(kernels::active_isa())}, {"threads", threads},
                     {"speculative", o.k}, {"batch", o.batch}, {"prompt", o.prompt}, {"tokens", o.tokens},
                     {"identical_to_plain", identical}, {"modes", modes}};
    std::printf("%s\n", json::serialize(out).c_str());
    return;
  }
  std::printf("bench decode --speculative %d: %s, %s, %u threads, batch %d, %d-token prompt, %d tokens each, best of %d\n",
              o.k, f.name().c_str(), kernels::isa_name(kernels::active_isa()), threads, o.batch, o.prompt, o.tokens,
              o.repeats);
  for (const Run& r : runs) {
    const auto& m = r.metrics;
    const int64_t decode_steps = r.steps - 1;  // the first step is the prefill
    const double per_step = decode_steps > 0 ? r.seconds / double(decode_steps) : 0;
    std::printf("  %-13s %9.3f tok/s (%.3f of plain)  %lld decode steps, %.1f ms/step (%.3f of a plain step)", r.mode.c_str(),
                r.tokens_per_s, plain.tokens_per_s > 0 ? r.tokens_per_s / plain.tokens_per_s : 0, (long long)decode_steps,
                per_step * 1e3, plain_step > 0 ? per_step / plain_step : 0);
    // Per step of the whole run (the prefill's step included).
    std::printf(", forward %.1f + drafting %.1f ms/step", r.forward_seconds / double(r.steps) * 1e3,
                r.draft_seconds / double(r.steps) * 1e3);
    if (m.spec_drafts_total)
      std::printf(", acceptance %.3f, %.3f tokens/verify step",
                  double(m.spec_accepted_tokens_total) / double(m.spec_draft_tokens_total),
                  double(m.spec_emitted_tokens_total) / double(m.spec_drafts_total));
    std::printf("\n");
  }
  std::printf("  speculative output %s the plain output (tokens and logprobs, bit for bit)\n",
              identical ? "IDENTICAL to" : "DIFFERS from");
}

}  // namespace

int run_bench_speculative(const Args& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  const Options o = parse(args);
  const auto ckpt = core::Checkpoint::open(o.model_dir);
  model::ModelOptions mo;
  mo.threads = o.threads;
  mo.enable_mtp = true;
  std::shared_ptr<model::Model> model = model::Model::load(*ckpt, mo);
  struct Mode {
    const char* name;
    int k;
    bool force;
  };
  std::vector<Mode> modes = {{"plain", 0, false}, {"speculative", o.k, false}};
  if (o.force_accept) modes.push_back({"force-accept", o.k, true});
  // Warm-up (weights paged in, the pools started), not counted.
  Options warm = o;
  warm.tokens = 4;
  for (const Mode& m : modes) run_once(model, warm, m.k, m.force);
  std::vector<Run> best(modes.size());
  for (int rep = 0; rep < o.repeats; ++rep)
    for (size_t i = 0; i < modes.size(); ++i) {
      Run r = run_once(model, o, modes[i].k, modes[i].force);
      r.mode = modes[i].name;
      if (!o.json)
        std::fprintf(stderr, "  run %d %-13s %.3f tok/s over %.1f s\n", rep + 1, r.mode.c_str(), r.tokens_per_s,
                     r.seconds);
      if (rep == 0 || r.tokens_per_s > best[i].tokens_per_s) best[i] = std::move(r);
    }
  const bool identical = same_output(best[0], best[1]);
  print(o, best, identical);
  return identical ? 0 : 1;
}

}  // namespace v4::cli
