#pragma once
// Our prepared request as an upstream's Chat Completions request, and the upstream's streamed chunks
// back as our dialect-neutral deltas, usage and end (OpenAI's chat.completion.chunk, with DeepSeek's
// reasoning_content or vLLM's reasoning for the reasoning text).
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "api/output.h"
#include "api/service.h"

namespace v4::gateway {

// The streamed request body for `upstream_model`; `extra` is merged last (deployment extra_body).
boost::json::object upstream_chat_body(const api::PreparedRequest& p, const std::string& upstream_model,
                                       const boost::json::object& extra);

// What a pool cannot send to an upstream (the server's search tool): ApiError 400 naming the field.
void check_upstream_request(const api::PreparedRequest& p);

class ChunkReader {
 public:
  explicit ChunkReader(api::Dialect dialect) : dialect_(dialect) {}
  // One event's data. Throws std::runtime_error when it is not a chunk.
  std::vector<api::Delta> feed(const std::string& data);
  // The tool calls still being streamed, complete now (at the end of the stream).
  std::vector<api::Delta> flush();

  std::optional<api::Usage> usage;   // the final chunk's, when the upstream sent it
  std::string finish_reason;         // "" until a choice finished
  std::string matched_stop;          // the stop string that ended it, when the upstream says (stop_reason)
  std::optional<std::string> error;  // an in-stream error event's message
  int output_events = 0;             // chunks that carried output (a token count when usage is missing)

 private:
  struct PendingCall {
    std::string name, arguments;
  };
  api::Dialect dialect_;
  std::map<int64_t, PendingCall> calls_;  // by the upstream's index
  size_t calls_made_ = 0;
};

// An upstream's refusal (its status and body) as the caller's error: 4xx keep their status, type,
// param and message; the upstream's own key refused (401/403) and 5xx become 502.
api::ApiError upstream_error(api::Dialect dialect, int status, const std::string& body, const std::string& backend);

}  // namespace v4::gateway
