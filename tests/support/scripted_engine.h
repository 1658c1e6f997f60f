#pragma once
// A scripted runtime::Engine for tests and for `v4flash-testserver --scripted-engine`: no model,
// deterministic output, the same contract as the real engine (max_tokens, stop strings withheld,
// thinking budget closing the reasoning with </think>, cancellation, usage with a toy prefix cache,
// admission limit -> OverloadedError). Output text is made with the real tokenizer, so prompts,
// token counts and the completion parser work exactly as with the model.
#include <memory>

#include "runtime/engine.h"
#include "text/tokenizer.h"

namespace v4::testing {

struct ScriptedEngineOptions {
  int max_running = 64;   // submit() beyond this many unfinished requests throws OverloadedError
  int token_delay_us = 200;  // pause per generated token, so streams and cancellation are observable
  int64_t context_length = 1048576;
};

// The answer is the prompt's script (script.h) when it has one; otherwise, with thinking,
// kScriptedReasoning then "</think>", then kScriptedAnswer, then EOS.
inline constexpr const char* kScriptedReasoning = "The user greets me. I will answer briefly and politely.";
inline constexpr const char* kScriptedAnswer =
    "Hello! I am the fake engine of v4flash. One two three four five six seven eight nine ten.";

std::unique_ptr<runtime::Engine> create_scripted_engine(std::shared_ptr<const text::Tokenizer> tokenizer,
                                                        const ScriptedEngineOptions& options = {});

}  // namespace v4::testing
