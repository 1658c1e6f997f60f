#pragma once
// `v4flash serve` as a function, so another executable can serve with its own engine: the test
// server (tests/support/testserver_main.cpp) scripts the engine; the product passes no hooks.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cli/command.h"
#include "model/model.h"
#include "runtime/engine.h"
#include "text/tokenizer.h"

namespace v4::cli {

struct ServeHooks {
  std::vector<std::string> options, flags;  // extra option names the hooks read
  // An engine made without a model (null: load --model as usual).
  std::function<std::unique_ptr<runtime::Engine>(const ArgParser&, std::shared_ptr<const text::Tokenizer>)>
      engine_without_model;
  // Wraps the loaded model before the runtime gets it.
  std::function<std::shared_ptr<model::Model>(std::shared_ptr<model::Model>, std::shared_ptr<const text::Tokenizer>)>
      wrap_model;
};

int serve(const Args& argv, const ServeHooks& hooks);

}  // namespace v4::cli
