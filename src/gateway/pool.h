#pragma once
// One public model id's pool of backends (docs/deployment.md): the local engine and/or upstream
// Chat Completions servers, as one api::Backend. A request goes to its prefix's preferred backend
// while that one is healthy and has room (prefix affinity: the prompt's first tokens, or its
// prompt_cache_key, hashed onto the healthy backends by rendezvous hashing), else to the one with
// the fewest requests in flight. Before the first byte of the answer a failed backend (refused
// connection, timeout, 5xx, 429) is left for another one, never after. Consecutive failures eject a
// backend for a while; active GET /health probes take it out and bring it back.
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio.hpp>

#include "api/backend.h"
#include "gateway/deployment.h"
#include "gateway/upstream_client.h"

namespace v4::gateway {

struct PoolRun;

class Pool final : public api::Backend, public std::enable_shared_from_this<Pool> {
 public:
  // `local`: this process's engine (api::ApiService::local_backend), for a {"local": true} member.
  Pool(std::string model_id, const ModelSpec& spec, const RoutingOptions& routing, boost::asio::io_context& ioc,
       std::shared_ptr<api::Backend> local);

  void check(const api::PreparedRequest& p) const override;
  std::shared_ptr<runtime::RequestHandle> start(const api::PreparedRequest& p, const api::RunContext& ctx,
                                                std::shared_ptr<api::RunOutput> out) override;
  boost::json::value status() const override;
  std::string metrics_text() const override;

  // One round of active health probes (the gateway's timer calls it every health_interval).
  void probe();
  const std::string& model_id() const { return model_id_; }

 private:
  friend struct PoolRun;
  using Clock = std::chrono::steady_clock;
  struct Member {
    BackendSpec spec;
    std::shared_ptr<api::Backend> local;     // a {"local": true} member
    std::unique_ptr<UpstreamClient> client;  // an upstream
    uint64_t name_hash = 0;
    // Under mutex_:
    int in_flight = 0;
    int consecutive_errors = 0;
    Clock::time_point ejected_until{};
    bool probe_down = false;
    uint64_t requests = 0, errors = 0, ejections = 0, failovers = 0;
    double latency_sum = 0, first_byte_sum = 0;
    uint64_t latency_count = 0, first_byte_count = 0;
  };
  bool healthy(const Member& m, Clock::time_point now) const;
  // The backend for the next attempt (its in-flight count taken), or null when none is left.
  Member* pick(uint64_t affinity, const std::vector<const Member*>& tried);
  // An attempt ended: `error` counts against the backend (ejection), `failover` left it for another.
  void release(Member& m, bool error, bool failover, double seconds);
  void first_byte(Member& m, double seconds);
  void mark_error_locked(Member& m, Clock::time_point now);

  std::string model_id_;
  RoutingOptions routing_;
  bool has_upstream_ = false;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Member>> members_;
};

// The prefix-affinity key of a prepared request (0: none).
uint64_t affinity_key(const api::PreparedRequest& p, int tokens);

}  // namespace v4::gateway
