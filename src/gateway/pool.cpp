#include "gateway/pool.h"

#include <algorithm>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "api/service.h"
#include "gateway/chat_translation.h"
#include "runtime/metrics.h"

namespace v4::gateway {

namespace json = boost::json;

namespace {

uint64_t fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull) {
  auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

uint64_t mix(uint64_t a, uint64_t b) {  // splitmix64 of the pair: the rendezvous score
  uint64_t z = a ^ (b + 0x9e3779b97f4a7c15ull + (a << 6) + (a >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

uint64_t affinity_key(const api::PreparedRequest& p, int tokens) {
  if (!p.req.prompt_cache_key.empty()) return fnv1a(p.req.prompt_cache_key.data(), p.req.prompt_cache_key.size()) | 1;
  // A prompt shorter than the hashed block has no cacheable prefix to keep (and would hash
  // differently at every turn): it goes to the least busy backend.
  if (tokens <= 0 || p.prompt.size() < size_t(tokens)) return 0;
  return fnv1a(p.prompt.data(), size_t(tokens) * sizeof(int32_t)) | 1;
}

Pool::Pool(std::string model_id, const ModelSpec& spec, const RoutingOptions& routing, boost::asio::io_context& ioc,
           std::shared_ptr<api::Backend> local)
    : model_id_(std::move(model_id)), routing_(routing) {
  for (auto& b : spec.backends) {
    auto m = std::make_unique<Member>();
    m->spec = b;
    m->name_hash = fnv1a(b.name.data(), b.name.size());
    if (b.local) {
      if (!local) throw std::invalid_argument("models." + model_id_ + ": a local backend needs --model");
      m->local = local;
    } else {
      m->client = std::make_unique<UpstreamClient>(ioc, b, routing);
      has_upstream_ = true;
    }
    members_.push_back(std::move(m));
  }
}

void Pool::check(const api::PreparedRequest& p) const {
  if (has_upstream_) check_upstream_request(p);
}

bool Pool::healthy(const Member& m, Clock::time_point now) const { return !m.probe_down && now >= m.ejected_until; }

Pool::Member* Pool::pick(uint64_t affinity, const std::vector<const Member*>& tried) {
  std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  Member* preferred = nullptr;
  uint64_t best_score = 0;
  Member* least = nullptr;
  for (auto& m : members_) {
    if (!healthy(*m, now) || std::find(tried.begin(), tried.end(), m.get()) != tried.end()) continue;
    const bool room = m->spec.max_concurrency == 0 || m->in_flight < m->spec.max_concurrency;
    if (affinity) {
      const uint64_t score = mix(affinity, m->name_hash);
      if (!preferred || score > best_score) preferred = m.get(), best_score = score;
    }
    if (room && (!least || m->in_flight < least->in_flight)) least = m.get();
  }
  // The prefix's own backend while it is healthy and has room; otherwise the least busy.
  Member* chosen = preferred && (preferred->spec.max_concurrency == 0 || preferred->in_flight < preferred->spec.max_concurrency)
                       ? preferred
                       : least;
  if (chosen) {
    ++chosen->in_flight;
    ++chosen->requests;
  }
  return chosen;
}

void Pool::mark_error_locked(Member& m, Clock::time_point now) {
  ++m.errors;
  if (++m.consecutive_errors >= routing_.eject_after_errors) {
    if (now >= m.ejected_until) {
      ++m.ejections;
      spdlog::warn("gateway: {} backend {} ejected for {} ms after {} consecutive failures", model_id_, m.spec.name,
                   routing_.eject_time.count(), m.consecutive_errors);
    }
    m.ejected_until = now + routing_.eject_time;
  }
}

void Pool::release(Member& m, bool error, bool failover, double seconds) {
  std::lock_guard lock(mutex_);
  --m.in_flight;
  if (failover) ++m.failovers;
  if (error) {
    mark_error_locked(m, Clock::now());
  } else {
    m.latency_sum += seconds;
    ++m.latency_count;
  }
}

void Pool::first_byte(Member& m, double seconds) {
  std::lock_guard lock(mutex_);
  m.consecutive_errors = 0;  // it answers: a later ejection needs a new run of failures
  m.first_byte_sum += seconds;
  ++m.first_byte_count;
}

void Pool::probe() {
  for (auto& m : members_) {
    if (!m->client) continue;
    Member* member = m.get();
    auto self = shared_from_this();
    m->client->probe([self, member](bool ok, std::string why) {
      std::lock_guard lock(self->mutex_);
      if (ok && member->probe_down)
        spdlog::info("gateway: {} backend {} is healthy again", self->model_id_, member->spec.name);
      if (!ok && !member->probe_down) {
        spdlog::warn("gateway: {} backend {} failed its health check: {}", self->model_id_, member->spec.name, why);
        if (Clock::now() >= member->ejected_until) ++member->ejections;
      }
      if (ok && member->probe_down) {  // recovered: a clean slate
        member->consecutive_errors = 0;
        member->ejected_until = {};
      }
      member->probe_down = !ok;
    });
  }
}

json::value Pool::status() const {
  std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  json::array list;
  for (auto& m : members_) {
    const char* state = m->probe_down ? "down" : now < m->ejected_until ? "ejected" : "healthy";
    list.push_back(json::object{{"name", m->spec.name},
                                {"kind", m->local ? "local" : "upstream"},
                                {"state", state},
                                {"in_flight", m->in_flight},
                                {"consecutive_errors", m->consecutive_errors}});
  }
  return json::object{{"backends", std::move(list)}};
}

std::string Pool::metrics_text() const {
  std::lock_guard lock(mutex_);
  std::string out;
  auto family = [&](const char* name, const char* type, const char* help, auto value) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    for (auto& m : members_) {
      std::string labels = "{model=\"" + model_id_ + "\",backend=\"" + m->spec.name + "\"}";
      out += fmt::format("{}{} {}\n", name, labels, double(value(*m)));  // shortest form: 3, 0.25
    }
  };
  const auto now = Clock::now();
  family("v4flash:backend_requests_total", "counter", "Requests sent to the backend (attempts, failovers included).",
         [](const Member& m) { return double(m.requests); });
  family("v4flash:backend_errors_total", "counter", "Attempts that failed: refused, timed out, 5xx, or broke mid-stream.",
         [](const Member& m) { return double(m.errors); });
  family("v4flash:backend_failovers_total", "counter", "Requests moved from this backend to another before their first byte.",
         [](const Member& m) { return double(m.failovers); });
  family("v4flash:backend_ejections_total", "counter", "Times the backend was taken out of rotation.",
         [](const Member& m) { return double(m.ejections); });
  family("v4flash:backend_in_flight", "gauge", "Requests running on the backend.",
         [](const Member& m) { return double(m.in_flight); });
  family("v4flash:backend_healthy", "gauge", "1 while the backend is in rotation.",
         [&](const Member& m) { return healthy(m, now) ? 1.0 : 0.0; });
  family("v4flash:backend_request_seconds_sum", "counter", "Seconds of the backend's completed requests.",
         [](const Member& m) { return m.latency_sum; });
  family("v4flash:backend_request_seconds_count", "counter", "The backend's completed requests.",
         [](const Member& m) { return double(m.latency_count); });
  family("v4flash:backend_first_byte_seconds_sum", "counter", "Seconds to the backend's first byte.",
         [](const Member& m) { return m.first_byte_sum; });
  family("v4flash:backend_first_byte_seconds_count", "counter", "First bytes received from the backend.",
         [](const Member& m) { return double(m.first_byte_count); });
  return out;
}

// ----------------------------------------------------------------------------- one request
struct PoolRun final : api::RunOutput, runtime::RequestHandle, std::enable_shared_from_this<PoolRun> {
  std::shared_ptr<Pool> pool;
  std::shared_ptr<const api::PreparedRequest> p;
  api::RunContext ctx;
  uint64_t affinity = 0;

  std::mutex mutex;
  std::shared_ptr<api::RunOutput> out;  // released at the end (it holds this run as its handle)
  std::vector<const Pool::Member*> tried;
  Pool::Member* member = nullptr;
  std::shared_ptr<Call> call;
  std::shared_ptr<runtime::RequestHandle> local_handle;
  bool committed = false, cancelled = false;
  std::optional<api::ApiError> last_error;
  std::optional<ChunkReader> reader;
  std::chrono::steady_clock::time_point attempt_start;

  void next_attempt();
  void start_upstream(Pool::Member& m);
  void end(api::RunEnd e);  // with mutex held; forwards and lets go of `out`
  api::Usage estimate() const;

  // A local member's run.
  void on_start() override;
  void on_admitted(int cached_prompt_tokens) override;
  void on_deltas(std::vector<api::Delta> deltas) override;
  void on_end(api::RunEnd e) override;
  // An upstream call's.
  void on_event(std::string data);
  void on_call_done(CallResult r);

  void cancel() override;
};

api::Usage PoolRun::estimate() const {
  api::Usage u;
  u.prompt_tokens = int(p->prompt.size());
  u.completion_tokens = reader ? reader->output_events : 0;
  return u;
}

void PoolRun::end(api::RunEnd e) {
  if (!out) return;
  auto o = std::move(out);
  o->on_end(std::move(e));
}

void PoolRun::next_attempt() {
  Pool::Member* m = nullptr;
  {
    std::lock_guard lock(mutex);
    if (cancelled) {
      api::RunEnd e;
      e.reason = runtime::FinishReason::Cancelled;
      return end(std::move(e));
    }
    if (int(tried.size()) < pool->routing_.max_attempts) m = pool->pick(affinity, tried);
    if (!m) {
      api::RunEnd e;
      e.reason = runtime::FinishReason::Error;
      e.failure = last_error ? *last_error
                             : api::overloaded(p->req.dialect, "no backend of '" + pool->model_id_ + "' is available");
      e.error = e.failure->what();
      return end(std::move(e));
    }
    tried.push_back(m);
    member = m;
    attempt_start = std::chrono::steady_clock::now();
    reader.emplace(p->req.dialect);
  }
  if (m->client) return start_upstream(*m);
  std::shared_ptr<runtime::RequestHandle> h;
  try {
    h = m->local->start(*p, ctx, shared_from_this());
  } catch (const api::ApiError& e) {  // the engine is full: another backend may take it
    pool->release(*m, false, true, 0);
    {
      std::lock_guard lock(mutex);
      last_error = e;
    }
    return next_attempt();
  }
  bool cancel_now = false;
  {
    std::lock_guard lock(mutex);
    local_handle = h;
    cancel_now = cancelled;
  }
  if (cancel_now) h->cancel();
}

void PoolRun::start_upstream(Pool::Member& m) {
  std::string body = json::serialize(upstream_chat_body(*p, m.spec.model, m.spec.extra_body));
  auto self = shared_from_this();
  UpstreamClient::Events ev;
  ev.on_event = [self](std::string data) { self->on_event(std::move(data)); };
  ev.on_done = [self](CallResult r) { self->on_call_done(std::move(r)); };
  auto c = m.client->stream_chat(std::move(body), std::move(ev));
  bool cancel_now = false;
  {
    std::lock_guard lock(mutex);
    call = c;
    cancel_now = cancelled;
  }
  if (cancel_now) c->cancel();
}

void PoolRun::on_event(std::string data) {
  std::lock_guard lock(mutex);
  if (!out || !reader) return;
  if (!committed) {
    committed = true;
    pool->first_byte(*member, seconds_since(attempt_start));
    out->on_start();
  }
  try {
    auto deltas = reader->feed(data);
    if (!deltas.empty()) out->on_deltas(std::move(deltas));
  } catch (const std::exception& e) {
    if (!reader->error) reader->error = e.what();
    if (call) call->cancel();
  }
}

void PoolRun::on_call_done(CallResult r) {
  Pool::Member& m = *member;
  const double seconds = seconds_since(attempt_start);
  std::unique_lock lock(mutex);
  if (r.kind == CallResult::Kind::cancelled && !(reader && reader->error)) {
    pool->release(m, false, false, seconds);
    api::RunEnd e;
    e.reason = runtime::FinishReason::Cancelled;
    e.usage = reader && reader->usage ? *reader->usage : estimate();
    return end(std::move(e));
  }
  if (committed) {  // after the first byte: this backend's answer, whatever it is
    const bool ok = r.kind == CallResult::Kind::done && !reader->error && !reader->finish_reason.empty();
    pool->release(m, !ok, false, seconds);
    auto tail = reader->flush();
    if (!tail.empty() && out) out->on_deltas(std::move(tail));
    api::RunEnd e;
    e.usage = reader->usage ? *reader->usage : estimate();
    if (ok) {
      e.reason = reader->finish_reason == "length"   ? runtime::FinishReason::Length
                 : !reader->matched_stop.empty()      ? runtime::FinishReason::StopString
                                                      : runtime::FinishReason::Stop;
      e.matched_stop = reader->matched_stop;
    } else {
      e.reason = runtime::FinishReason::Error;
      e.error = "the upstream '" + m.spec.name + "' failed mid-stream: " +
                (reader->error ? *reader->error : r.message.empty() ? std::string("the stream ended early") : r.message);
    }
    return end(std::move(e));
  }
  // Before the first byte: another backend may take it, unless the upstream refused the request.
  if (r.kind == CallResult::Kind::answer && r.status >= 400 && r.status < 500 && r.status != 429) {
    pool->release(m, false, false, seconds);
    api::RunEnd e;
    e.reason = runtime::FinishReason::Error;
    e.failure = upstream_error(p->req.dialect, r.status, r.body, m.spec.name);
    e.error = e.failure->what();
    return end(std::move(e));
  }
  const bool error = r.status != 429;  // a rate-limiting upstream is busy, not broken
  if (r.kind == CallResult::Kind::answer || r.status)
    last_error = upstream_error(p->req.dialect, r.status, r.body, m.spec.name);
  else if (r.kind == CallResult::Kind::timeout)
    last_error = api::ApiError(504, "server_error", "the upstream '" + m.spec.name + "' did not answer in time", "",
                               "upstream_timeout");
  else
    last_error = api::ApiError(502, "server_error",
                               "the upstream '" + m.spec.name + "' cannot be reached: " +
                                   (r.message.empty() ? std::string("no answer") : r.message),
                               "", "upstream_unreachable");
  spdlog::warn("gateway: {} backend {} failed before its first byte ({}); trying another", pool->model_id_,
               m.spec.name, last_error->what());
  pool->release(m, error, true, seconds);
  call.reset();
  lock.unlock();
  next_attempt();
}

void PoolRun::on_start() {
  std::lock_guard lock(mutex);
  committed = true;
  if (member) pool->first_byte(*member, seconds_since(attempt_start));
  if (out) out->on_start();
}

void PoolRun::on_admitted(int cached_prompt_tokens) {
  std::lock_guard lock(mutex);
  if (out) out->on_admitted(cached_prompt_tokens);
}

void PoolRun::on_deltas(std::vector<api::Delta> deltas) {
  std::lock_guard lock(mutex);
  if (out) out->on_deltas(std::move(deltas));
}

void PoolRun::on_end(api::RunEnd e) {
  std::lock_guard lock(mutex);
  pool->release(*member, e.reason == runtime::FinishReason::Error, false, seconds_since(attempt_start));
  end(std::move(e));
}

void PoolRun::cancel() {
  std::shared_ptr<Call> c;
  std::shared_ptr<runtime::RequestHandle> h;
  {
    std::lock_guard lock(mutex);
    if (cancelled) return;
    cancelled = true;
    c = call;
    h = local_handle;
  }
  if (c) c->cancel();
  if (h) h->cancel();
}

std::shared_ptr<runtime::RequestHandle> Pool::start(const api::PreparedRequest& p, const api::RunContext& ctx,
                                                    std::shared_ptr<api::RunOutput> out) {
  auto run = std::make_shared<PoolRun>();
  run->pool = shared_from_this();
  run->p = std::make_shared<const api::PreparedRequest>(p);
  run->ctx = ctx;
  run->affinity = affinity_key(p, routing_.affinity_tokens);
  run->out = std::move(out);
  run->next_attempt();
  return run;
}

}  // namespace v4::gateway
