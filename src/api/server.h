#pragma once
// Async HTTP/1.1 server (Boost.Beast + Asio, C++20 coroutines) in front of an ApiService:
// keep-alive, SSE streaming, client disconnect -> cancellation, graceful shutdown (stop accepting,
// let running requests finish, then exit).
//
// Admission before work: a request's head is checked before its body is read: framing (RFC 9112:
// a Transfer-Encoding other than a lone final "chunked" is refused, Host is required on HTTP/1.1,
// oversized heads get 431), route, key (401, connection closed), method (405), operator-only
// routes (403), the key's standing (401 revoked / 402 no credit) and the global body budget (503).
// Only then is "100 Continue" sent and the body read. Parsing and tokenisation run on a bounded
// worker pool, never on the I/O threads. See docs/security.md.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "api/service.h"
#include "api/web.h"

namespace v4::api {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;  // 0: any free port (see HttpServer::port)
  int threads = 2;       // I/O threads
  size_t body_limit = size_t(32) << 20;           // 413 above this (Anthropic's Messages limit)
  std::chrono::seconds header_timeout{30};        // to receive a request's header and body
  std::chrono::seconds idle_timeout{75};          // keep-alive wait for the next request
  std::chrono::seconds drain_timeout{30};         // graceful shutdown: then cancel what still runs
  std::chrono::seconds ping_interval{10};         // SSE keep-alive while nothing is generated
  bool handle_signals = true;                     // SIGTERM / SIGINT -> graceful shutdown
  size_t header_limit = size_t(64) << 10;         // 431 above this (request line and header fields)
  std::chrono::seconds first_byte_timeout{10};    // a new connection's wait for its first byte
  int max_connections = 0;                        // open connections; 0 = RLIMIT_NOFILE - 64 (<= 8192); 503 above
  size_t body_budget = size_t(256) << 20;         // request bodies in memory at once (all connections); 503 above
  int work_threads = 2;                           // JSON parsing and tokenisation, off the I/O threads
  int work_queue = 64;                            // requests waiting for a work thread; 503 above
  std::chrono::milliseconds accept_backoff{100};  // accept pause when out of file descriptors (EMFILE)
  std::chrono::milliseconds entitlement_interval{500};  // revoked keys / zero credit stop running requests
  std::shared_ptr<WebRoutes> web;                 // the console's pages and session users (optional)
};

class HttpServer {
 public:
  HttpServer(ApiService& service, ServerOptions options);
  ~HttpServer();
  // Binds the listening socket (throws std::runtime_error when it cannot).
  void listen();
  uint16_t port() const;
  // Serves until stop() or a signal; returns after the drain.
  void run();
  // Graceful shutdown; safe from any thread and from signal-free contexts (tests).
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace v4::api
