// `v4flash render-chat --mode thinking|chat [--reasoning-effort high|max] [--keep-thinking]
//  [--no-bos] [--tokens --tokenizer FILE] < messages.json`
// Prints the DeepSeek V4 prompt for a JSON array of messages, or for an object with "messages" and
// optional "tools" / "response_format" (attached to the first, system, message as the official
// tests do).
#include <cstdio>
#include <iostream>
#include <iterator>

#include <boost/json.hpp>

#include "cli/command.h"
#include "text/chat_encoder.h"

namespace v4::cli {
namespace {
namespace json = boost::json;

int render_chat_main(const Args& args) {
  ArgParser p(args);
  p.check_known({"mode", "reasoning-effort", "tokenizer"}, {"keep-thinking", "no-bos", "tokens"});
  text::ChatEncodeOptions options;
  std::string mode = p.value_or("mode", "thinking");
  if (mode == "thinking")
    options.mode = text::ThinkingMode::thinking;
  else if (mode == "chat")
    options.mode = text::ThinkingMode::chat;
  else
    throw std::invalid_argument("--mode must be thinking or chat");
  if (auto effort = p.value("reasoning-effort")) options.reasoning_effort = *effort;
  options.drop_thinking = !p.flag("keep-thinking");
  options.add_default_bos_token = !p.flag("no-bos");

  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  json::value v = json::parse(input);
  json::array messages;
  if (v.is_array()) {
    messages = v.as_array();
  } else if (v.is_object() && v.as_object().contains("messages") && v.as_object().at("messages").is_array()) {
    const json::object& o = v.as_object();
    messages = o.at("messages").as_array();
    const json::array* tools = o.contains("tools") && o.at("tools").is_array() ? &o.at("tools").as_array() : nullptr;
    const json::value* format = o.contains("response_format") ? &o.at("response_format") : nullptr;
    messages = text::attach_request_fields(std::move(messages), tools, format);
  } else {
    throw std::invalid_argument("input must be a JSON array of messages or an object with \"messages\"");
  }
  std::string prompt = text::encode_messages(messages, options);
  if (p.flag("tokens")) {
    auto path = p.value("tokenizer");
    if (!path) throw std::invalid_argument("--tokens needs --tokenizer FILE");
    auto tok = text::Tokenizer::from_file(*path);
    auto ids = text::encode_prompt_tokens(*tok, prompt);
    std::string out = "[";
    for (size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + std::to_string(ids[i]);
    std::printf("%s]\n", out.c_str());
    return 0;
  }
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  return 0;
}

}  // namespace

V4_COMMAND("render-chat", "render messages (JSON on stdin) as the DeepSeek V4 prompt (--mode thinking|chat)",
           render_chat_main);

}  // namespace v4::cli
