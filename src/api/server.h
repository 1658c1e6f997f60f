#pragma once
// Async HTTP/1.1 server (Boost.Beast + Asio, C++20 coroutines) in front of an ApiService:
// keep-alive, body limit (413), header/idle timeouts, SSE streaming, client disconnect ->
// cancellation, graceful shutdown (stop accepting, let running requests finish, then exit).
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "api/service.h"

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
