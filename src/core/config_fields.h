#pragma once
// The config.json keys the loader knowingly does not use, each with the reason it changes nothing
// the engine computes. Every other key is either used (ModelConfig) or refused with an error that
// names it: a key the loader does not know might change the model, so it is never skipped quietly.
#include <string>
#include <vector>

namespace v4::core {

struct IgnoredConfigField {
  std::string key;
  std::string why;
};

const std::vector<IgnoredConfigField>& ignored_config_fields();

}  // namespace v4::core
