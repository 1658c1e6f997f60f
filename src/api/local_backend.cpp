// This process's engine as a Backend, for a pool that mixes it with upstreams (src/gateway): the
// request runs as an inner Generation (no admission, no ledger: the pool's Generation keeps both)
// whose output is relayed to the pool's RunOutput.
#include <memory>
#include <mutex>

#include "api/service.h"

namespace v4::api {

namespace {

runtime::FinishReason reason_of(StopKind stop) {
  switch (stop) {
    case StopKind::length: return runtime::FinishReason::Length;
    case StopKind::stop_string: return runtime::FinishReason::StopString;
    case StopKind::error: return runtime::FinishReason::Error;
    case StopKind::end_turn:
    case StopKind::tool_calls:
    case StopKind::pause_turn: return runtime::FinishReason::Stop;
  }
  return runtime::FinishReason::Stop;
}

// Moves an inner Generation's output to the pool's RunOutput, in order (one take at a time). It
// lets go of the output once it ended, which breaks the cycle output -> handle -> inner -> relay.
struct Relay {
  std::mutex mutex;
  std::shared_ptr<RunOutput> out;
  bool cancelled = false;
  void pump(Generation& inner) {
    std::lock_guard lock(mutex);
    if (!out) return;
    auto batch = inner.take();
    if (batch.cached_prompt_tokens) out->on_admitted(*batch.cached_prompt_tokens);
    if (!batch.deltas.empty()) out->on_deltas(std::move(batch.deltas));
    if (!batch.outcome) return;
    RunEnd end;
    end.reason = cancelled ? runtime::FinishReason::Cancelled : reason_of(batch.outcome->stop);
    end.matched_stop = batch.outcome->matched_stop;
    end.error = batch.outcome->error;
    end.usage = batch.outcome->usage;
    out->on_end(std::move(end));
    out.reset();
  }
};

struct RelayHandle final : runtime::RequestHandle {
  std::shared_ptr<Generation> inner;
  std::shared_ptr<Relay> relay;
  void cancel() override {
    {
      std::lock_guard lock(relay->mutex);
      relay->cancelled = true;
    }
    inner->cancel();
  }
};

}  // namespace

class LocalEngineBackend final : public Backend {
 public:
  explicit LocalEngineBackend(const ApiService& service) : service_(service) {}
  std::shared_ptr<runtime::RequestHandle> start(const PreparedRequest& p, const RunContext& ctx,
                                                std::shared_ptr<RunOutput> out) override {
    return service_.run_local(p, ctx, std::move(out));
  }

 private:
  const ApiService& service_;
};

std::shared_ptr<Backend> ApiService::local_backend() {
  if (!engine_) return nullptr;
  return std::make_shared<LocalEngineBackend>(*this);
}

std::shared_ptr<runtime::RequestHandle> ApiService::run_local(const PreparedRequest& p, const RunContext& ctx,
                                                              std::shared_ptr<RunOutput> out) const {
  std::shared_ptr<Generation> inner(new Generation());
  inner->single_tool_call_ = !p.req.parallel_tool_calls;
  inner->record_.web_search_calls = p.web_search_calls;
  auto relay = std::make_shared<Relay>();
  relay->out = out;
  inner->notify_ = [relay, weak = std::weak_ptr<Generation>(inner)] {
    if (auto g = weak.lock()) relay->pump(*g);
  };
  submit_local(inner, p, ctx);  // throws before anything ran
  out->on_start();
  auto handle = std::make_shared<RelayHandle>();
  handle->inner = inner;
  handle->relay = relay;
  relay->pump(*inner);  // what came before the handle was known
  return handle;
}

}  // namespace v4::api
