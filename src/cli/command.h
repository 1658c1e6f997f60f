#pragma once
// Subcommand registry: each src/cli/*.cpp registers its commands with V4_COMMAND, so adding a
// command never touches main.cpp.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace v4::cli {

using Args = std::vector<std::string>;  // arguments after the subcommand name
using CommandFn = std::function<int(const Args&)>;

struct Command {
  std::string summary;
  CommandFn run;
};

std::map<std::string, Command>& registry();

struct Registrar {
  Registrar(const std::string& name, const std::string& summary, CommandFn fn) {
    registry()[name] = Command{summary, std::move(fn)};
  }
};

// Small helpers for "--flag value" style options.
class ArgParser {
 public:
  explicit ArgParser(const Args& args) : args_(args) {}
  // Value of --name (or --name=value); empty optional when absent. Throws on a missing value.
  std::optional<std::string> value(const std::string& name) const;
  std::string value_or(const std::string& name, const std::string& fallback) const;
  bool flag(const std::string& name) const;  // --name present
  std::vector<std::string> positional() const;  // arguments not starting with --
  // Integer value of --name in [lo, hi] (fallback when absent); the error names the option.
  int64_t integer(const std::string& name, int64_t fallback, int64_t lo, int64_t hi) const;
  // Throws std::invalid_argument naming the first --option not in `known`.
  void check_known(const std::vector<std::string>& known, const std::vector<std::string>& flags = {}) const;

 private:
  const Args& args_;
};

// Token ids separated by commas or white space ("1,2, 3"); throws naming the bad item.
std::vector<int32_t> parse_token_ids(const std::string& text);

}  // namespace v4::cli

#define V4_CONCAT_INNER(a, b) a##b
#define V4_CONCAT(a, b) V4_CONCAT_INNER(a, b)
#define V4_COMMAND(name, summary, fn) \
  static ::v4::cli::Registrar V4_CONCAT(v4_command_, __LINE__)(name, summary, fn)
