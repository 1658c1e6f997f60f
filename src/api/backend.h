#pragma once
// Where a prepared request runs: the seam between the API and what generates its output. The
// service runs a model id on the backend ServiceOptions::backends names for it, else on its own
// engine; ApiService::local_backend() is that engine as a Backend too, so a pool (src/gateway) can
// mix it with upstream servers. A backend hands back dialect-neutral deltas and a usage count; the
// service keeps admission, the ledger and the caller's dialect.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "api/output.h"
#include "api/request.h"
#include "runtime/engine.h"

namespace v4::api {

struct PreparedRequest;

// How a run ended. `failure`: the run failed before any output reached the caller, with the error
// the caller gets (an upstream's 400 or 429 keeps its status); std::nullopt otherwise.
struct RunEnd {
  runtime::FinishReason reason = runtime::FinishReason::Stop;
  std::string matched_stop;
  std::string error;
  Usage usage;  // as the backend counted it (billed once, by the service)
  std::optional<ApiError> failure;
};

// The receiving end of one run (the service's Generation). Any thread; never called again after
// on_end.
class RunOutput {
 public:
  virtual ~RunOutput() = default;
  // The backend has committed to this run (its first byte arrived): no failover after this.
  virtual void on_start() = 0;
  // The engine admitted it: prompt tokens served from the prefix cache, for a stream's opening event
  // (Anthropic's message_start). An upstream says so only in its final usage: it never calls this.
  virtual void on_admitted(int cached_prompt_tokens) {}
  virtual void on_deltas(std::vector<Delta> deltas) = 0;
  virtual void on_end(RunEnd end) = 0;  // exactly once per started run
};

struct RunContext {
  std::string tenant;      // fair sharing on an engine (the key or account)
  std::string cache_salt;  // prefix-cache namespace ("" shared)
};

class Backend {
 public:
  virtual ~Backend() = default;
  // Refuses what this backend cannot honour (ApiError naming the field); called by prepare.
  virtual void check(const PreparedRequest& p) const {}
  // Starts the run; `out` hears of it. Throws ApiError when it cannot start at all (overloaded);
  // `out` is then never called. The handle cancels it (on_end(Cancelled) follows).
  virtual std::shared_ptr<runtime::RequestHandle> start(const PreparedRequest& p, const RunContext& ctx,
                                                        std::shared_ptr<RunOutput> out) = 0;
  // For GET /health (null: nothing to report) and GET /metrics (Prometheus text, "" for none).
  virtual boost::json::value status() const { return nullptr; }
  virtual std::string metrics_text() const { return {}; }
};

}  // namespace v4::api
