// `v4flash tokenize` / `v4flash detokenize`: tokenizer.json tooling.
//   tokenize --tokenizer FILE [--jsonl] [--no-special]
//     --jsonl: each stdin line is a JSON string; prints one JSON array of ids per line.
//     otherwise: all of stdin is the text; prints one JSON array.
//   detokenize --tokenizer FILE [--jsonl] [--skip-special]
//     --jsonl: each stdin line is a JSON array of ids; prints one JSON string per line.
//     otherwise: stdin holds ids (a JSON array or whitespace separated); writes the raw bytes.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>

#include <boost/json.hpp>

#include "cli/command.h"
#include "text/detokenizer.h"
#include "text/tokenizer.h"

namespace v4::cli {
namespace {
namespace json = boost::json;

std::string ids_to_json(const std::vector<int32_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  return out + "]";
}

std::vector<int32_t> parse_ids(const json::value& v) {
  if (!v.is_array()) throw std::invalid_argument("expected a JSON array of token ids");
  std::vector<int32_t> ids;
  for (const auto& e : v.as_array()) {
    if (!e.is_int64() && !e.is_uint64()) throw std::invalid_argument("token ids must be integers");
    int64_t x = e.is_int64() ? e.as_int64() : int64_t(e.as_uint64());
    if (x < 0 || x > INT32_MAX) throw std::invalid_argument("token id out of range: " + std::to_string(x));
    ids.push_back(int32_t(x));
  }
  return ids;
}

int tokenize_main(const Args& args) {
  ArgParser p(args);
  p.check_known({"tokenizer"}, {"jsonl", "no-special"});
  auto path = p.value("tokenizer");
  if (!path) {
    std::fprintf(stderr, "usage: v4flash tokenize --tokenizer tokenizer.json [--jsonl] [--no-special] < input\n");
    return 2;
  }
  auto tok = text::Tokenizer::from_file(*path);
  const bool allow_special = !p.flag("no-special");
  if (p.flag("jsonl")) {
    std::string line;
    size_t line_no = 0;
    while (std::getline(std::cin, line)) {
      ++line_no;
      json::value v;
      try {
        v = json::parse(line);
      } catch (const std::exception& e) {
        throw std::invalid_argument("line " + std::to_string(line_no) + ": not JSON: " + e.what());
      }
      if (!v.is_string()) throw std::invalid_argument("line " + std::to_string(line_no) + ": expected a JSON string");
      std::string out = ids_to_json(tok->encode(v.as_string(), allow_special));
      out += '\n';
      std::fwrite(out.data(), 1, out.size(), stdout);
    }
    return 0;
  }
  std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  std::printf("%s\n", ids_to_json(tok->encode(text, allow_special)).c_str());
  return 0;
}

int detokenize_main(const Args& args) {
  ArgParser p(args);
  p.check_known({"tokenizer"}, {"jsonl", "skip-special"});
  auto path = p.value("tokenizer");
  if (!path) {
    std::fprintf(stderr, "usage: v4flash detokenize --tokenizer tokenizer.json [--jsonl] [--skip-special] < ids\n");
    return 2;
  }
  auto tok = text::Tokenizer::from_file(*path);
  const bool skip = p.flag("skip-special");
  if (p.flag("jsonl")) {
    std::string line;
    while (std::getline(std::cin, line)) {
      auto ids = parse_ids(json::parse(line));
      // JSON strings must be valid UTF-8: bytes of split characters become U+FFFD.
      std::string out = json::serialize(json::string(text::sanitize_utf8(tok->decode(ids, skip))));
      out += '\n';
      std::fwrite(out.data(), 1, out.size(), stdout);
    }
    return 0;
  }
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  std::vector<int32_t> ids;
  if (input.find('[') != std::string::npos) {
    ids = parse_ids(json::parse(input));
  } else {
    std::istringstream in(input);
    long long x;
    while (in >> x) {
      if (x < 0 || x > INT32_MAX) throw std::invalid_argument("token id out of range");
      ids.push_back(int32_t(x));
    }
    if (!in.eof()) throw std::invalid_argument("expected whitespace-separated integer ids");
  }
  std::string out = tok->decode(ids, skip);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace

V4_COMMAND("tokenize", "text -> token ids with a tokenizer.json (--jsonl: one JSON string per line)", tokenize_main);
V4_COMMAND("detokenize", "token ids -> text with a tokenizer.json (--jsonl: one JSON array per line)", detokenize_main);

}  // namespace v4::cli
