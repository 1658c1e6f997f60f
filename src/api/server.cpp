#include "api/server.h"

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

namespace v4::api {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;
using net::awaitable;
using net::use_awaitable;

namespace {

// Wakes the session coroutine when the engine produced something (called from the engine thread).
struct Waker {
  explicit Waker(net::any_io_executor ex) : timer(ex) {}
  net::steady_timer timer;
  std::atomic<bool> pending{false};
  std::atomic<bool> client_gone{false};
  void wake(const std::shared_ptr<Waker>& self) {
    pending = true;
    net::post(timer.get_executor(), [self] { self->timer.cancel(); });
  }
};

struct Route {
  Dialect dialect = Dialect::chat;  // error shape
  bool anthropic = false;
};

Dialect dialect_for_path(std::string_view path) {
  return path.starts_with("/v1/messages") ? Dialect::anthropic : Dialect::chat;
}

std::string presented_secret(const http::request<http::string_body>& req) {
  auto auth = req[http::field::authorization];
  if (!auth.empty()) {
    std::string_view a(auth.data(), auth.size());
    if (a.size() > 7 && (a.substr(0, 7) == "Bearer " || a.substr(0, 7) == "bearer ")) {
      a.remove_prefix(7);
      while (!a.empty() && a.front() == ' ') a.remove_prefix(1);
      while (!a.empty() && a.back() == ' ') a.remove_suffix(1);
      return std::string(a);
    }
  }
  auto x = req["x-api-key"];
  return std::string(x.data(), x.size());
}

}  // namespace

struct HttpServer::Impl {
  Impl(ApiService& s, ServerOptions o) : service(s), options(std::move(o)), ioc(std::max(1, options.threads)),
                                          acceptor(ioc), signals(ioc) {}

  ApiService& service;
  ServerOptions options;
  net::io_context ioc;
  tcp::acceptor acceptor;
  net::signal_set signals;
  std::atomic<bool> draining{false};

  struct SessionInfo {
    std::shared_ptr<beast::tcp_stream> stream;
    std::shared_ptr<Generation> generation;
    bool idle = true;
  };
  std::mutex sessions_mutex;
  std::map<uint64_t, SessionInfo> sessions;
  uint64_t next_session = 0;

  // ------------------------------------------------------------------ responses
  template <class Body>
  static void common_headers(http::response<Body>& res, const std::string& request_id) {
    res.set(http::field::server, "v4flash");
    res.set("x-request-id", request_id);
    res.set("request-id", request_id);
  }

  http::response<http::string_body> json_response(http::status status, const json::value& body, unsigned version,
                                                   bool keep_alive, const std::string& request_id) {
    http::response<http::string_body> res{status, version};
    common_headers(res, request_id);
    res.set(http::field::content_type, "application/json");
    res.body() = json::serialize(body);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    return res;
  }

  http::response<http::string_body> error_response(Dialect dialect, const ApiError& e, unsigned version, bool keep_alive,
                                                   const std::string& request_id) {
    auto res = json_response(http::status(e.status), render_error(dialect, e, request_id), version, keep_alive, request_id);
    if (e.status == 429 || e.status == 503 || e.status == 529)
      res.set(http::field::retry_after, std::to_string(e.retry_after_s > 0 ? e.retry_after_s : 1));
    if (e.status == 401) res.set(http::field::www_authenticate, "Bearer");
    return res;
  }

  // ------------------------------------------------------------------ session
  awaitable<void> session(tcp::socket socket) {
    auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
    uint64_t id;
    {
      std::lock_guard lock(sessions_mutex);
      id = next_session++;
      sessions[id] = SessionInfo{stream, nullptr, true};
    }
    beast::flat_buffer buffer;
    try {
      for (;;) {
        if (draining) break;
        boost::system::error_code ec;
        // Keep-alive idle wait for the first byte of the next request.
        if (buffer.size() == 0) {
          stream->expires_after(options.idle_timeout);
          size_t n = co_await stream->async_read_some(buffer.prepare(4096), net::redirect_error(use_awaitable, ec));
          if (ec) break;
          buffer.commit(n);
        }
        set_idle(id, false);
        http::request_parser<http::string_body> parser;
        parser.body_limit(options.body_limit);
        parser.header_limit(64 * 1024);
        stream->expires_after(options.header_timeout);
        co_await http::async_read_header(*stream, buffer, parser, net::redirect_error(use_awaitable, ec));
        if (!ec && beast::iequals(parser.get()[http::field::expect], "100-continue")) {
          // curl and others wait for this before sending a large body.
          http::response<http::empty_body> cont{http::status::continue_, parser.get().version()};
          co_await http::async_write(*stream, cont, net::redirect_error(use_awaitable, ec));
        }
        if (!ec) co_await http::async_read(*stream, buffer, parser, net::redirect_error(use_awaitable, ec));
        if (ec) {
          if (ec == http::error::body_limit) {
            std::string target(parser.get().target());
            ApiError e(413, "invalid_request_error",
                       "request body exceeds the limit of " + std::to_string(options.body_limit) + " bytes", "",
                       "request_too_large");
            auto res = error_response(dialect_for_path(target), e, 11, false, "req_" + random_id(24));
            stream->expires_after(std::chrono::seconds(10));
            co_await http::async_write(*stream, res, net::redirect_error(use_awaitable, ec));
            // Lingering close: read and drop what the client is still sending (bounded), so it sees
            // the 413 instead of a connection reset.
            boost::system::error_code lec;
            stream->socket().shutdown(tcp::socket::shutdown_send, lec);
            stream->expires_after(std::chrono::seconds(5));
            std::vector<char> scratch(64 * 1024);
            size_t drained = 0;
            while (!lec && drained < (size_t(256) << 20)) {
              drained += co_await stream->async_read_some(net::buffer(scratch), net::redirect_error(use_awaitable, lec));
            }
          } else if (ec != http::error::end_of_stream && ec != beast::error::timeout && ec != net::error::eof &&
                     ec != net::error::connection_reset && ec != net::error::operation_aborted) {
            ApiError e(400, "invalid_request_error", "malformed HTTP request: " + ec.message());
            auto res = error_response(Dialect::chat, e, 11, false, "req_" + random_id(24));
            stream->expires_after(std::chrono::seconds(10));
            co_await http::async_write(*stream, res, net::redirect_error(use_awaitable, ec));
          }
          break;
        }
        stream->expires_never();
        auto req = parser.release();
        bool keep = co_await handle(id, stream, std::move(req));
        set_idle(id, true);
        if (!keep || draining) break;
      }
    } catch (const std::exception& e) {
      spdlog::warn("session ended by error: {}", e.what());
    }
    boost::system::error_code ignored;
    stream->socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream->socket().close(ignored);
    std::lock_guard lock(sessions_mutex);
    sessions.erase(id);
  }

  void set_idle(uint64_t id, bool idle, std::shared_ptr<Generation> g = nullptr) {
    std::lock_guard lock(sessions_mutex);
    auto it = sessions.find(id);
    if (it == sessions.end()) return;
    it->second.idle = idle;
    it->second.generation = std::move(g);
  }

  template <class Res>
  awaitable<bool> send(const std::shared_ptr<beast::tcp_stream>& stream, Res&& res) {
    boost::system::error_code ec;
    bool keep = res.keep_alive();
    stream->expires_after(std::chrono::seconds(60));
    co_await http::async_write(*stream, res, net::redirect_error(use_awaitable, ec));
    stream->expires_never();
    co_return !ec && keep;
  }

  awaitable<bool> handle(uint64_t session_id, std::shared_ptr<beast::tcp_stream> stream, http::request<http::string_body> req) {
    const unsigned version = req.version();
    const bool keep_alive = req.keep_alive() && !draining;
    std::string target(req.target());
    std::string path = target.substr(0, target.find('?'));
    const Dialect dialect = dialect_for_path(path);
    std::string request_id = "req_" + random_id(24);
    std::optional<http::response<http::string_body>> reply;
    std::optional<PreparedRequest> prepared;
    Principal who;
    // (no co_await inside the try: a coroutine cannot suspend in a handler)
    try {
      reply = route(req, path, version, keep_alive, request_id, prepared, who);
    } catch (const ApiError& e) {
      if (e.status >= 500) spdlog::warn("{} {} -> {} {}", std::string(req.method_string()), path, e.status, e.what());
      reply = error_response(dialect, e, version, keep_alive, request_id);
    } catch (const std::exception& e) {
      spdlog::error("{} {} failed: {}", std::string(req.method_string()), path, e.what());
      ApiError err(500, dialect == Dialect::anthropic ? "api_error" : "server_error", std::string("internal error: ") + e.what());
      reply = error_response(dialect, err, version, false, request_id);
    }
    if (reply) co_return co_await send(stream, std::move(*reply));
    auto waker = std::make_shared<Waker>(co_await net::this_coro::executor);
    std::shared_ptr<Generation> gen;
    try {
      gen = service.start(*prepared, who, [waker] { waker->wake(waker); });
    } catch (const ApiError& e) {
      reply = error_response(dialect, e, version, keep_alive, request_id);
    } catch (const std::exception& e) {
      ApiError err(500, dialect == Dialect::anthropic ? "api_error" : "server_error", std::string("internal error: ") + e.what());
      reply = error_response(dialect, err, version, false, request_id);
    }
    if (reply) co_return co_await send(stream, std::move(*reply));
    co_return co_await generate(session_id, stream, std::move(*prepared), gen, waker, version, keep_alive, request_id);
  }

  // Everything but generation; returns the reply, or leaves `prepared` set for generate().
  std::optional<http::response<http::string_body>> route(const http::request<http::string_body>& req, const std::string& path,
                                                         unsigned version, bool keep_alive, const std::string& request_id,
                                                         std::optional<PreparedRequest>& prepared, Principal& who) {
    const auto method = req.method();
    if (path == "/health" || path == "/healthz")
      return json_response(http::status::ok, json::object{{"status", draining ? "draining" : "ok"}}, version, keep_alive, request_id);
    const bool known = path == "/v1/models" || path.starts_with("/v1/models/") || path == "/metrics" ||
                       path == "/v1/chat/completions" || path == "/v1/responses" || path == "/v1/messages" ||
                       path == "/v1/messages/count_tokens" || path == "/v1/usage";
    if (!known)
      throw ApiError(404, "not_found_error", "no route for " + std::string(req.method_string()) + " " + path, "", "unknown_route");
    who = service.authenticate(presented_secret(req));

    if (path == "/v1/models" || path.starts_with("/v1/models/") || path == "/metrics") {
      if (method != http::verb::get) throw ApiError(405, "invalid_request_error", "use GET for " + path, "", "method_not_allowed");
      if (path == "/metrics") {
        http::response<http::string_body> res{http::status::ok, version};
        common_headers(res, request_id);
        res.set(http::field::content_type, "text/plain; version=0.0.4");
        res.body() = service.engine().prometheus_text();
        res.keep_alive(keep_alive);
        res.prepare_payload();
        return res;
      }
      json::object list = service.list_models();
      if (path == "/v1/models") return json_response(http::status::ok, list, version, keep_alive, request_id);
      std::string id = path.substr(std::string("/v1/models/").size());
      for (auto& m : list["data"].as_array())
        if (m.at("id").as_string() == id) return json_response(http::status::ok, m, version, keep_alive, request_id);
      throw ApiError(404, "not_found_error", "the model '" + id + "' does not exist", "model", "model_not_found");
    }
    if (path == "/v1/usage") {
      if (method != http::verb::get) throw ApiError(405, "invalid_request_error", "use GET for " + path, "", "method_not_allowed");
      auto report = service.usage_report(who);
      if (!report) throw ApiError(404, "not_found_error", "this server keeps no usage ledger (start it with --db)", "", "unknown_route");
      http::response<http::string_body> res{http::status::ok, version};
      common_headers(res, request_id);
      res.set(http::field::content_type, "application/json");
      res.body() = std::move(*report);
      res.keep_alive(keep_alive);
      res.prepare_payload();
      return res;
    }
    if (method != http::verb::post) throw ApiError(405, "invalid_request_error", "use POST for " + path, "", "method_not_allowed");
    if (path == "/v1/messages/count_tokens")
      return json_response(http::status::ok, service.count_tokens(req.body()), version, keep_alive, request_id);
    Dialect d = path == "/v1/chat/completions" ? Dialect::chat : path == "/v1/responses" ? Dialect::responses : Dialect::anthropic;
    prepared = service.prepare(d, req.body());
    return std::nullopt;
  }

  // Notices a client that goes away while its request runs: a readable socket with nothing to
  // read is a closed one.
  static awaitable<void> watch_disconnect(std::shared_ptr<beast::tcp_stream> stream, std::shared_ptr<Waker> waker,
                                          std::shared_ptr<Generation> gen) {
    boost::system::error_code ec;
    co_await stream->socket().async_wait(tcp::socket::wait_read, net::redirect_error(use_awaitable, ec));
    if (ec == net::error::operation_aborted) co_return;
    if (!ec) {
      char byte;
      size_t n = stream->socket().receive(net::buffer(&byte, 1), tcp::socket::message_peek, ec);
      if (!ec && n > 0) co_return;  // a pipelined request, not a disconnect
    }
    waker->client_gone = true;
    gen->cancel();
    waker->wake(waker);
  }

  awaitable<bool> generate(uint64_t session_id, std::shared_ptr<beast::tcp_stream> stream, PreparedRequest p,
                           std::shared_ptr<Generation> gen, std::shared_ptr<Waker> waker, unsigned version, bool keep_alive,
                           std::string request_id) {
    auto ex = co_await net::this_coro::executor;
    set_idle(session_id, false, gen);
    net::co_spawn(ex, watch_disconnect(stream, waker, gen), net::detached);
    boost::system::error_code ec;

    auto wait_for_output = [&]() -> awaitable<void> {
      if (waker->pending.exchange(false)) co_return;
      waker->timer.expires_after(options.ping_interval);
      co_await waker->timer.async_wait(net::redirect_error(use_awaitable, ec));
    };
    auto stop_watching = [&] {
      boost::system::error_code ignored;
      stream->socket().cancel(ignored);
    };

    if (!p.req.stream) {
      Turn turn;
      std::optional<Outcome> outcome;
      for (;;) {
        auto batch = gen->take();
        for (auto& d : batch.deltas) turn.add(d);
        if (batch.outcome) {
          outcome = batch.outcome;
          break;
        }
        co_await wait_for_output();
      }
      stop_watching();
      if (waker->client_gone) co_return false;
      if (outcome->stop == StopKind::error)
        co_return co_await send(stream, error_response(p.req.dialect,
                                                       ApiError(500, p.req.dialect == Dialect::anthropic ? "api_error" : "server_error",
                                                                "generation failed: " + outcome->error),
                                                       version, keep_alive, request_id));
      co_return co_await send(stream, json_response(http::status::ok, render_response(p.req, p.meta, turn, *outcome),
                                                    version, keep_alive, request_id));
    }

    // Streamed: chunked SSE.
    http::response<http::empty_body> res{http::status::ok, version};
    common_headers(res, request_id);
    res.set(http::field::content_type, "text/event-stream; charset=utf-8");
    res.set(http::field::cache_control, "no-cache");
    res.set("x-accel-buffering", "no");
    // HTTP/1.0 has no chunked encoding: the stream then ends with the connection.
    const bool chunked = version >= 11;
    res.keep_alive(keep_alive && chunked);
    res.chunked(chunked);
    http::response_serializer<http::empty_body> sr{res};
    stream->expires_after(std::chrono::seconds(60));
    co_await http::async_write_header(*stream, sr, net::redirect_error(use_awaitable, ec));
    auto renderer = make_stream_renderer(p.req, p.meta, int(p.prompt.size()));
    auto write_chunk = [&](const std::string& text) -> awaitable<bool> {
      if (text.empty()) co_return true;
      stream->expires_after(std::chrono::seconds(60));
      if (chunked)
        co_await net::async_write(*stream, http::make_chunk(net::buffer(text)), net::redirect_error(use_awaitable, ec));
      else
        co_await net::async_write(*stream, net::buffer(text), net::redirect_error(use_awaitable, ec));
      stream->expires_never();
      co_return !ec;
    };
    bool ok = !ec && co_await write_chunk(renderer->start());
    while (ok) {
      auto batch = gen->take();
      std::string out;
      for (auto& d : batch.deltas) out += renderer->delta(d);
      if (batch.outcome) {
        if (batch.outcome->stop == StopKind::error)
          out += renderer->error(ApiError(500, p.req.dialect == Dialect::anthropic ? "api_error" : "server_error",
                                          "generation failed: " + batch.outcome->error));
        else
          out += renderer->finish(*batch.outcome);
        ok = co_await write_chunk(out);
        break;
      }
      if (!out.empty()) {
        ok = co_await write_chunk(out);
        continue;
      }
      if (waker->client_gone) {
        ok = false;
        break;
      }
      bool was_pending = waker->pending.load();
      co_await wait_for_output();
      if (!was_pending && !waker->pending.load() && !waker->client_gone && !gen->finished())
        ok = co_await write_chunk(renderer->ping());
    }
    stop_watching();
    if (!ok || waker->client_gone) {
      gen->cancel();
      co_return false;
    }
    stream->expires_after(std::chrono::seconds(60));
    if (!chunked) co_return false;
    co_await net::async_write(*stream, http::make_chunk_last(), net::redirect_error(use_awaitable, ec));
    stream->expires_never();
    co_return !ec && keep_alive;
  }

  // ------------------------------------------------------------------ accept / shutdown
  awaitable<void> accept_loop() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket socket = co_await acceptor.async_accept(net::make_strand(ioc), net::redirect_error(use_awaitable, ec));
      if (ec) {
        if (!acceptor.is_open() || draining) co_return;
        continue;
      }
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      auto ex = socket.get_executor();
      net::co_spawn(ex, session(std::move(socket)), net::detached);
    }
  }

  awaitable<void> drain() {
    auto deadline = std::chrono::steady_clock::now() + options.drain_timeout;
    net::steady_timer t(co_await net::this_coro::executor);
    bool cancelled = false;
    for (;;) {
      {
        std::lock_guard lock(sessions_mutex);
        if (sessions.empty()) break;
        for (auto& [id, s] : sessions) {
          if (s.idle) {
            // On the session's strand: sockets are not safe to touch from two threads at once.
            net::post(s.stream->get_executor(), [st = s.stream] {
              boost::system::error_code ignored;
              st->socket().cancel(ignored);
            });
          } else if (!cancelled && std::chrono::steady_clock::now() >= deadline && s.generation) {
            s.generation->cancel();
          }
        }
        if (std::chrono::steady_clock::now() >= deadline) cancelled = true;
        if (cancelled && std::chrono::steady_clock::now() >= deadline + std::chrono::seconds(5)) break;
      }
      t.expires_after(std::chrono::milliseconds(50));
      co_await t.async_wait(use_awaitable);
    }
    ioc.stop();
  }

  void begin_shutdown() {
    if (draining.exchange(true)) return;
    spdlog::info("shutting down: no new connections; finishing running requests (up to {} s)", options.drain_timeout.count());
    boost::system::error_code ignored;
    acceptor.close(ignored);
    signals.cancel(ignored);
    net::co_spawn(ioc, drain(), net::detached);
  }
};

HttpServer::HttpServer(ApiService& service, ServerOptions options)
    : impl_(std::make_unique<Impl>(service, std::move(options))) {}
HttpServer::~HttpServer() = default;

void HttpServer::listen() {
  auto& a = impl_->acceptor;
  boost::system::error_code ec;
  auto address = net::ip::make_address(impl_->options.host, ec);
  if (ec) throw std::runtime_error("invalid --host '" + impl_->options.host + "': " + ec.message());
  tcp::endpoint ep(address, impl_->options.port);
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + impl_->options.host + ":" + std::to_string(impl_->options.port) + ": " + ec.message());
}

uint16_t HttpServer::port() const { return impl_->acceptor.local_endpoint().port(); }

void HttpServer::run() {
  auto* impl = impl_.get();
  if (!impl->acceptor.is_open()) listen();
  if (impl->options.handle_signals) {
    impl->signals.add(SIGTERM);
    impl->signals.add(SIGINT);
    impl->signals.async_wait([impl](const boost::system::error_code& ec, int) {
      if (!ec) impl->begin_shutdown();
    });
  }
  net::co_spawn(impl->ioc, impl->accept_loop(), net::detached);
  std::vector<std::thread> threads;
  for (int i = 1; i < std::max(1, impl->options.threads); ++i) threads.emplace_back([impl] { impl->ioc.run(); });
  impl->ioc.run();
  for (auto& t : threads) t.join();
}

void HttpServer::stop() {
  auto* impl = impl_.get();
  net::post(impl->ioc, [impl] { impl->begin_shutdown(); });
}

}  // namespace v4::api
