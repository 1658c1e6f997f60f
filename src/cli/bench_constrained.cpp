#include "cli/bench_constrained.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include <boost/json.hpp>

#include "api/auth.h"
#include "api/constraint.h"
#include "api/service.h"
#include "core/checkpoint.h"
#include "kernels/cpu_features.h"
#include "kernels/isa.h"
#include "model/model.h"
#include "runtime/engine.h"
#include "text/tokenizer.h"

namespace v4::cli {

namespace {

namespace json = boost::json;

const char* kUsage =
    "usage: v4flash bench constrained --model DIR [--tokens 256] [--threads N] [--repeats 2] [--json]\n"
    "Decode tokens/s of a Chat request prepared by the API service (DIR needs tokenizer.json), run on the\n"
    "engine with the mask of its kind of constrained decoding and without it (same prompt and sampling),\n"
    "--tokens answer tokens each (best of --repeats), and the ratio. The kinds are chosen so the\n"
    "random-weight demo cannot finish early: a JSON array of 1024 strings, of 1024 {id, ok} objects,\n"
    "and one forced tool call with a long text argument.\n";

struct Kind {
  const char* name;
  json::object extra;  // fields added to the request body
};

std::vector<Kind> kinds() {
  const json::value strings = json::parse(R"({"type":"array","items":{"type":"string"},"minItems":1024,"maxItems":1024})");
  const json::value objects = json::parse(
      R"({"type":"array","items":{"type":"object","properties":{"id":{"type":"integer"},"ok":{"type":"boolean"}},
          "required":["id","ok"],"additionalProperties":false},"minItems":1024,"maxItems":1024})");
  const json::value tools = json::parse(
      R"([{"type":"function","function":{"name":"write_file","parameters":{"type":"object","properties":{
          "path":{"type":"string","maxLength":8},"content":{"type":"string"}},"required":["path","content"]}}}])");
  auto format = [](const json::value& schema) {
    return json::object{{"type", "json_schema"}, {"json_schema", json::object{{"name", "b"}, {"schema", schema}}}};
  };
  return {{"json_strings", {{"response_format", format(strings)}}},
          {"json_objects", {{"response_format", format(objects)}}},
          {"forced_tool_call", {{"tools", tools}, {"tool_choice", "required"}}}};
}

// Decode tokens/s of one submission (answer tokens after the first, over the time after the first).
double decode_rate(runtime::Engine& engine, const api::PreparedRequest& p,
                   std::shared_ptr<runtime::TokenConstraint> constraint) {
  runtime::GenerationRequest r;
  r.id = "bench";
  r.prompt = p.prompt;
  r.params = p.params;
  r.constraint = std::move(constraint);
  std::mutex m;
  std::condition_variable cv;
  std::optional<runtime::FinishInfo> done;
  runtime::RequestCallbacks cb;
  cb.on_finish = [&](const runtime::FinishInfo& f) {
    std::lock_guard l(m);
    done = f;
    cv.notify_all();
  };
  engine.submit(std::move(r), std::move(cb));
  std::unique_lock l(m);
  cv.wait(l, [&] { return done.has_value(); });
  if (done->reason == runtime::FinishReason::Error) throw std::runtime_error("the request failed: " + done->error);
  const double seconds = done->total_seconds - done->ttft_seconds;
  return seconds > 0 ? double(done->completion_tokens - 1) / seconds : 0;
}

}  // namespace

int run_bench_constrained(const Args& args) {
  ArgParser p(args);
  if (p.flag("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  p.check_known({"model", "tokens", "threads", "repeats"}, {"json", "help"});
  const auto dir = p.value("model");
  if (!dir) throw std::invalid_argument("--model DIR is required");
  const int tokens = int(p.integer("tokens", 256, 8, 1 << 20));
  const int threads = int(p.integer("threads", 0, 0, 4096));
  const int repeats = int(p.integer("repeats", 2, 1, 100));
  const bool as_json = p.flag("json");

  const auto ckpt = core::Checkpoint::open(*dir);
  model::ModelOptions mo;
  mo.threads = threads;
  std::shared_ptr<model::Model> model = model::Model::load(*ckpt, mo);
  std::shared_ptr<const text::Tokenizer> tok = text::Tokenizer::from_file(*dir + "/tokenizer.json");
  runtime::EngineOptions eo;
  eo.tokenizer = tok;
  auto engine = runtime::create_engine(model, eo);
  api::ApiService service(*engine, tok, std::make_shared<api::OpenAuthenticator>(), nullptr, api::ServiceOptions{});

  json::object base{{"model", "deepseek-v4-flash"},
                    {"messages", json::array{json::object{{"role", "user"}, {"content", "Write a long answer."}}}},
                    {"thinking", json::object{{"type", "disabled"}}},
                    {"temperature", 0.8},
                    {"seed", 1},
                    {"max_tokens", tokens}};
  // Each kind's request twice, identical but for the mask: same prompt, same sampling, same length.
  struct Result {
    std::string name;
    double free = 0, masked = 0;
  };
  std::vector<Result> results;
  auto index = api::make_token_index(*tok);
  for (const Kind& k : kinds()) {
    json::object body = base;
    for (const auto& kv : k.extra) body[kv.key()] = kv.value();
    const api::PreparedRequest prepared = service.prepare(api::Dialect::chat, json::serialize(body));
    Result res{k.name};
    decode_rate(*engine, prepared, nullptr);  // warm: the prompt is in the prefix cache from here on
    for (int r = 0; r < repeats; ++r) {
      res.free = std::max(res.free, decode_rate(*engine, prepared, nullptr));
      res.masked = std::max(res.masked, decode_rate(*engine, prepared,
                                                    api::make_constraint(prepared.grammar, index, model->config().eos_token_id)));
    }
    results.push_back(res);
    if (!as_json) std::fprintf(stderr, "  %-17s free %8.1f tok/s, masked %8.1f tok/s\n", k.name, res.free, res.masked);
  }
  engine->shutdown();
  const auto& f = kernels::cpu_features();
  const std::string& cpu = f.name();
  const unsigned used = threads > 0 ? unsigned(threads) : std::thread::hardware_concurrency();
  if (as_json) {
    json::object out{{"cpu", cpu}, {"isa", kernels::isa_name(kernels::active_isa())}, {"threads", used},
                     {"answer_tokens", tokens}};
    json::object kinds_out;
    for (const auto& r : results)
      kinds_out[r.name] = json::object{{"free_tokens_per_s", r.free}, {"masked_tokens_per_s", r.masked},
                                       {"masked_over_free", r.free > 0 ? r.masked / r.free : 0}};
    out["kinds"] = kinds_out;
    std::printf("%s\n", json::serialize(out).c_str());
  } else {
    std::printf("bench constrained: %s, %s, %u threads, %d answer tokens per request, best of %d\n", cpu.c_str(),
                kernels::isa_name(kernels::active_isa()), used, tokens, repeats);
    for (const auto& r : results)
      std::printf("  %-17s free %8.1f tok/s  masked %8.1f tok/s  = %.3f of free\n", r.name.c_str(), r.free, r.masked,
                  r.free > 0 ? r.masked / r.free : 0);
  }
  return 0;
}

}  // namespace v4::cli
