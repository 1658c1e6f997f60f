#pragma once
// One upstream server over HTTP(S) (Boost.Beast on the gateway's io_context, OpenSSL with
// certificate and host name verification as search/linkup does): a streamed POST of a Chat
// Completions body whose server-sent events arrive as they come, and GET /health probes. One
// connection per call; nothing here logs the key or a body.
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "gateway/deployment.h"

namespace v4::gateway {

// scheme://host[:port]/path, split.
struct Url {
  std::string scheme, host, port, path;  // path without a trailing '/'
  static Url parse(const std::string& url);  // throws std::invalid_argument
};

struct CallResult {
  // done: a 200 stream ran to its end; answer: any other answer (an error status, a probe's 200),
  // with its status and body; transport, timeout: no complete answer.
  enum class Kind { done, answer, transport, timeout, cancelled };
  Kind kind = Kind::done;
  int status = 0;       // the upstream's HTTP status (0 when none came)
  std::string body;     // an error answer's body (at most 64 KiB)
  std::string message;  // what went wrong, for logs and errors (never the key)
};

// A call in flight; cancel() is safe from any thread, any time (the call then ends `cancelled`).
class Call : public std::enable_shared_from_this<Call> {
 public:
  void cancel();

 private:
  friend class UpstreamClient;
  explicit Call(boost::asio::any_io_executor ex) : strand_(std::move(ex)) {}
  boost::asio::any_io_executor strand_;
  bool cancelled_ = false;        // on the strand
  std::function<void()> close_;   // on the strand: closes the connection of the running call
};

class UpstreamClient {
 public:
  struct Events {
    std::function<void(std::string data)> on_event;  // one SSE event's data (a 200 answer)
    std::function<void(CallResult)> on_done;         // exactly once, last
  };
  UpstreamClient(boost::asio::io_context& ioc, const BackendSpec& spec, const RoutingOptions& routing);
  // POST {url}/chat/completions with `body` (a JSON object), streamed.
  std::shared_ptr<Call> stream_chat(std::string body, Events events);
  // GET the health URL: `done(true)` on a 200 within the connect and first-byte timeouts.
  void probe(std::function<void(bool ok, std::string why)> done);

 private:
  struct Request;
  std::shared_ptr<Call> run(std::shared_ptr<Request> r);

  boost::asio::io_context& ioc_;
  BackendSpec spec_;
  RoutingOptions routing_;
  Url base_, health_;
  std::optional<boost::asio::ssl::context> tls_;
};

}  // namespace v4::gateway
