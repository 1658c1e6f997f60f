#pragma once
// How a test scripts a completion without any field in the product's request or engine types: the
// client writes `[[v4-script:BASE64]]` into the prompt (the system prompt, in practice), and the
// test engines (scripted_engine.h, scripted_model.h) emit exactly the decoded text, which may hold
// special tokens (</think>, DSML tool calls, end of sentence).
#include <optional>
#include <string>

namespace v4::testing {

// The marker for `completion` (base64 keeps it plain text through any prompt template).
std::string script_marker(const std::string& completion);

// The completion named by the LAST marker in `prompt_text` (later turns override earlier ones).
std::optional<std::string> find_script(const std::string& prompt_text);

}  // namespace v4::testing
