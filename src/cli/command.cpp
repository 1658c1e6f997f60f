// The subcommand registry and the option parser, shared by every command (and by the test
// server in tests/support, which reuses `serve`).
#include <climits>
#include <exception>
#include <optional>
#include <stdexcept>

#include "cli/command.h"

namespace v4::cli {

std::map<std::string, Command>& registry() {
  static std::map<std::string, Command> commands;
  return commands;
}

std::optional<std::string> ArgParser::value(const std::string& name) const {
  const std::string flag = "--" + name;
  for (size_t i = 0; i < args_.size(); ++i) {
    if (args_[i] == flag) {
      if (i + 1 >= args_.size()) throw std::invalid_argument(flag + " needs a value");
      return args_[i + 1];
    }
    if (args_[i].rfind(flag + "=", 0) == 0) return args_[i].substr(flag.size() + 1);
  }
  return std::nullopt;
}

std::string ArgParser::value_or(const std::string& name, const std::string& fallback) const {
  auto v = value(name);
  return v ? *v : fallback;
}

bool ArgParser::flag(const std::string& name) const {
  for (const auto& a : args_)
    if (a == "--" + name) return true;
  return false;
}

std::vector<std::string> ArgParser::positional() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < args_.size(); ++i) {
    if (args_[i].rfind("--", 0) == 0) {
      // "--name value" consumes the value unless the option is known to be a bare flag; callers
      // that mix flags and positionals put positionals first.
      if (args_[i].find('=') == std::string::npos && i + 1 < args_.size() &&
          args_[i + 1].rfind("--", 0) != 0)
        ++i;
      continue;
    }
    out.push_back(args_[i]);
  }
  return out;
}

int64_t ArgParser::integer(const std::string& name, int64_t fallback, int64_t lo, int64_t hi) const {
  const auto v = value(name);
  if (!v) return fallback;
  size_t used = 0;
  long long x = 0;
  try {
    x = std::stoll(*v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != v->size() || x < lo || x > hi)
    throw std::invalid_argument("--" + name + " needs an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                "], got '" + *v + "'");
  return x;
}

std::vector<int32_t> parse_token_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    const size_t end = text.find_first_of(", \t\r\n", i);
    const std::string item = text.substr(i, end == std::string::npos ? std::string::npos : end - i);
    i = end == std::string::npos ? text.size() : end + 1;
    if (item.empty()) continue;
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument("bad token id '" + item + "'");
    ids.push_back(int32_t(v));
  }
  return ids;
}

void ArgParser::check_known(const std::vector<std::string>& known, const std::vector<std::string>& flags) const {
  for (size_t i = 0; i < args_.size(); ++i) {
    const auto& a = args_[i];
    if (a.rfind("--", 0) != 0) continue;
    std::string name = a.substr(2, a.find('=') == std::string::npos ? std::string::npos : a.find('=') - 2);
    bool is_flag = false, ok = false;
    for (const auto& f : flags) if (f == name) is_flag = ok = true;
    for (const auto& k : known) if (k == name) ok = true;
    if (!ok) throw std::invalid_argument("unknown option --" + name);
    if (!is_flag && a.find('=') == std::string::npos) ++i;
  }
}

}  // namespace v4::cli
