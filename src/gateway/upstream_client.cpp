#include "gateway/upstream_client.h"

#include <openssl/ssl.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "gateway/sse_parser.h"

namespace v4::gateway {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {
constexpr size_t kMaxErrorBody = 64 << 10;
constexpr size_t kMaxPendingEvent = size_t(16) << 20;  // one SSE event's bytes
}  // namespace

Url Url::parse(const std::string& url) {
  Url u;
  auto sep = url.find("://");
  if (sep == std::string::npos) throw std::invalid_argument("'" + url + "' is not an http(s):// URL");
  u.scheme = url.substr(0, sep);
  if (u.scheme != "http" && u.scheme != "https") throw std::invalid_argument("'" + url + "' is not an http(s):// URL");
  std::string rest = url.substr(sep + 3);
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  u.path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!u.path.empty() && u.path.back() == '/') u.path.pop_back();
  auto colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']') == std::string::npos) {
    u.host = authority.substr(0, colon);
    u.port = authority.substr(colon + 1);
  } else {
    u.host = authority;
    u.port = u.scheme == "https" ? "443" : "80";
  }
  if (u.host.size() > 2 && u.host.front() == '[') u.host = u.host.substr(1, u.host.size() - 2);
  if (u.host.empty()) throw std::invalid_argument("'" + url + "' has no host");
  return u;
}

void Call::cancel() {
  net::post(strand_, [self = shared_from_this()] {
    self->cancelled_ = true;
    if (self->close_) self->close_();
  });
}

struct UpstreamClient::Request {
  http::verb verb = http::verb::post;
  const Url* url = nullptr;
  std::string target, body;
  bool streamed = false;
  std::chrono::milliseconds first_byte{0};  // from the request sent to the answer's first bytes
  Events events;
};

UpstreamClient::UpstreamClient(net::io_context& ioc, const BackendSpec& spec, const RoutingOptions& routing)
    : ioc_(ioc), spec_(spec), routing_(routing) {
  base_ = Url::parse(spec.url);
  if (!spec.health_url.empty()) {
    health_ = Url::parse(spec.health_url);
  } else {  // the origin's /health (vLLM, SGLang and v4flash all answer it)
    health_ = base_;
    health_.path = "/health";
  }
  if (base_.scheme == "https" || health_.scheme == "https") {
    tls_.emplace(ssl::context::tls_client);
    tls_->set_default_verify_paths();
    if (!spec.ca_file.empty()) {
      boost::system::error_code ec;
      tls_->load_verify_file(spec.ca_file, ec);
      if (ec) throw std::invalid_argument("ca_file " + spec.ca_file + ": " + ec.message());
    }
    tls_->set_verify_mode(ssl::verify_peer);
  }
}

std::shared_ptr<Call> UpstreamClient::stream_chat(std::string body, Events events) {
  auto r = std::make_shared<Request>();
  r->url = &base_;
  r->target = base_.path + "/chat/completions";
  r->body = std::move(body);
  r->streamed = true;
  r->first_byte = routing_.first_byte_timeout;
  r->events = std::move(events);
  return run(std::move(r));
}

void UpstreamClient::probe(std::function<void(bool, std::string)> done) {
  auto r = std::make_shared<Request>();
  r->verb = http::verb::get;
  r->url = &health_;
  r->target = health_.path.empty() ? "/" : health_.path;
  r->first_byte = routing_.connect_timeout;  // a health answer is immediate: probes never pile up
  r->events.on_done = [done = std::move(done)](CallResult res) {
    const bool ok = res.kind == CallResult::Kind::answer && res.status == 200;
    done(ok, res.message.empty() ? "HTTP " + std::to_string(res.status) : res.message);
  };
  run(std::move(r));
}

namespace {

// Forgets the connection when the stream it closes goes away (every exit of the call).
struct CloserReset {
  std::function<void()>& close;
  ~CloserReset() { close = nullptr; }
};

// The exchange on a connected (and, for https, handshaken) stream.
template <class Stream>
net::awaitable<CallResult> exchange(Stream& stream, beast::tcp_stream& lowest, const http::request<http::string_body>& req,
                                    bool streamed, const std::function<void(std::string)>& on_event,
                                    std::chrono::milliseconds first_byte, std::chrono::milliseconds idle) {
  lowest.expires_after(first_byte);
  co_await http::async_write(stream, req, net::use_awaitable);
  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);  // a stream is as long as the answer
  co_await http::async_read_header(stream, buffer, parser, net::use_awaitable);
  CallResult res;
  res.status = int(parser.get().result_int());
  const bool events = streamed && res.status == 200;
  SseParser sse;
  bool seen_event = false;
  char chunk[16384];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    boost::system::error_code ec;
    co_await http::async_read_some(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) throw boost::system::system_error(ec);
    const size_t n = sizeof chunk - parser.get().body().size;
    if (!events) {
      res.body.append(chunk, std::min(n, kMaxErrorBody - std::min(kMaxErrorBody, res.body.size())));
      continue;
    }
    for (auto& data : sse.feed(std::string_view(chunk, n))) {
      seen_event = true;
      if (data == "[DONE]") continue;
      on_event(std::move(data));
    }
    if (sse.pending() > kMaxPendingEvent) throw std::runtime_error("an event of the upstream's stream is too large");
    // Any bytes (a keep-alive comment too) show the upstream alive; after the first event, the
    // stream's own pace is bounded by the idle timeout.
    lowest.expires_after(seen_event ? idle : first_byte);
  }
  res.kind = events ? CallResult::Kind::done : CallResult::Kind::answer;
  co_return res;
}

}  // namespace

std::shared_ptr<Call> UpstreamClient::run(std::shared_ptr<Request> r) {
  auto strand = net::make_strand(ioc_);
  std::shared_ptr<Call> call(new Call(strand));
  http::request<http::string_body> req{r->verb, r->target, 11};
  req.set(http::field::host, r->url->host);
  req.set(http::field::user_agent, "v4flash-gateway");
  req.keep_alive(false);
  if (!spec_.api_key.empty()) req.set(http::field::authorization, "Bearer " + spec_.api_key);
  if (r->verb == http::verb::post) {
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, r->streamed ? "text/event-stream" : "application/json");
    req.body() = std::move(r->body);
  }
  req.prepare_payload();
  auto body = [this, r, call, req = std::move(req)]() mutable -> net::awaitable<CallResult> {
    const Url& u = *r->url;
    tcp::resolver resolver(co_await net::this_coro::executor);
    auto endpoints = co_await resolver.async_resolve(u.host, u.port, net::use_awaitable);
    if (call->cancelled_) co_return CallResult{CallResult::Kind::cancelled, 0, {}, "cancelled"};
    auto on_event = r->events.on_event ? r->events.on_event : [](std::string) {};
    if (u.scheme == "https") {
      beast::ssl_stream<beast::tcp_stream> stream(co_await net::this_coro::executor, *tls_);
      auto& lowest = beast::get_lowest_layer(stream);
      call->close_ = [&lowest] { lowest.close(); };
      CloserReset reset{call->close_};
      lowest.expires_after(routing_.connect_timeout);
      if (!SSL_set_tlsext_host_name(stream.native_handle(), u.host.c_str()))
        throw std::runtime_error("TLS: cannot set the server name");
      stream.set_verify_callback(ssl::host_name_verification(u.host));
      co_await lowest.async_connect(endpoints, net::use_awaitable);
      co_await stream.async_handshake(ssl::stream_base::client, net::use_awaitable);
      co_return co_await exchange(stream, lowest, req, r->streamed, on_event, r->first_byte, routing_.idle_timeout);
    }
    beast::tcp_stream stream(co_await net::this_coro::executor);
    call->close_ = [&stream] { stream.close(); };
    CloserReset reset{call->close_};
    stream.expires_after(routing_.connect_timeout);
    co_await stream.async_connect(endpoints, net::use_awaitable);
    co_return co_await exchange(stream, stream, req, r->streamed, on_event, r->first_byte, routing_.idle_timeout);
  };
  net::co_spawn(strand, std::move(body), [r, call](std::exception_ptr e, CallResult res) {
    call->close_ = nullptr;
    if (e) {
      res = CallResult{CallResult::Kind::transport, 0, {}, ""};
      try {
        std::rethrow_exception(e);
      } catch (const boost::system::system_error& se) {
        res.message = se.code().message();
        if (se.code() == beast::error::timeout) res.kind = CallResult::Kind::timeout;
      } catch (const std::exception& ex) {
        res.message = ex.what();
      }
    }
    if (call->cancelled_) res = CallResult{CallResult::Kind::cancelled, res.status, {}, "cancelled"};
    if (r->events.on_done) r->events.on_done(std::move(res));
  });
  return call;
}

}  // namespace v4::gateway
