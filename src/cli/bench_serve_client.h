#pragma once
// The HTTP side of `bench serve`: one streamed generation request in any of the three dialects,
// timed per text chunk, and the server's /metrics counters.
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace v4::cli {

enum class ServeDialect { chat, responses, anthropic };

struct ServeTarget {
  std::string host = "127.0.0.1", port = "8000";
  std::string api_key;
  std::string model = "deepseek-v4-flash";
  ServeDialect dialect = ServeDialect::chat;
};

struct ServeRequest {
  std::string prompt;
  int max_tokens = 64;
  bool thinking = false;
  double temperature = -1, top_p = -1;  // < 0: the server's defaults
};

struct ServeResult {
  bool ok = false;
  std::string error;
  double ttft = 0, e2e = 0;      // seconds from sending the request
  std::vector<double> gaps;      // seconds between consecutive text chunks
  int64_t output_tokens = 0;     // from the final usage (chunks counted when it is absent)
  int64_t chunks = 0;
};

// One keep-alive connection per caller (a load-generator stream); reconnects after errors.
class ServeClient {
 public:
  explicit ServeClient(ServeTarget target);
  ~ServeClient();
  ServeClient(const ServeClient&) = delete;
  ServeClient& operator=(const ServeClient&) = delete;
  ServeResult generate(const ServeRequest& request);
  // GET /metrics as name -> value (histogram buckets and labelled series left out); empty when the
  // server did not serve it, and then metrics_problem() says why ("HTTP 403", a connection error).
  std::map<std::string, double> metrics();
  const std::string& metrics_problem() const { return metrics_problem_; }

 private:
  std::map<std::string, double> metrics_once();
  struct Impl;
  Impl* impl_;
  std::string metrics_problem_;
};

std::string request_body(const ServeTarget& target, const ServeRequest& request);

}  // namespace v4::cli
