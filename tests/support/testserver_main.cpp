// v4flash-testserver: `v4flash serve` with scripted engines, for the out-of-process suites
// (tests/api/sdk, tests/product/billing_e2e_test.py). Test-only: never installed, never the product.
//   v4flash-testserver --model DIR [serve options]        the real engine; prompts carrying a script
//                                                         (script.h) get exactly that completion
//   v4flash-testserver --scripted-engine --tokenizer F    no model at all (scripted_engine.h)
//                      [--scripted-token-delay-us N]
#include <cstdio>
#include <exception>

#include "cli/serve.h"
#include "scripted_engine.h"
#include "scripted_model.h"

int main(int argc, char** argv) {
  using namespace v4;
  cli::ServeHooks hooks;
  hooks.options = {"scripted-token-delay-us"};
  hooks.flags = {"scripted-engine"};
  hooks.engine_without_model = [](const cli::ArgParser& args, std::shared_ptr<const text::Tokenizer> tokenizer)
      -> std::unique_ptr<runtime::Engine> {
    if (!args.flag("scripted-engine")) return nullptr;
    testing::ScriptedEngineOptions o;
    o.max_running = int(args.integer("max-running", 64, 1, 1 << 20));
    o.token_delay_us = int(args.integer("scripted-token-delay-us", 200, 0, 10'000'000));
    std::fprintf(stderr, "v4flash-testserver: the scripted engine (no model)\n");
    return testing::create_scripted_engine(std::move(tokenizer), o);
  };
  hooks.wrap_model = [](std::shared_ptr<model::Model> m, std::shared_ptr<const text::Tokenizer> tokenizer) {
    return testing::scripted_model(std::move(m), std::move(tokenizer));
  };
  try {
    return cli::serve(cli::Args(argv + 1, argv + argc), hooks);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "v4flash-testserver: %s\n", e.what());
    return 1;
  }
}
