#include "api/server.h"

#include <poll.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "api/response_store.h"

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

// The disconnect watcher's state, shared with its session (both run on the session's strand).
struct Watch {
  explicit Watch(net::any_io_executor ex) : exited(ex), pause(ex) {
    exited.expires_at(net::steady_timer::time_point::max());
  }
  std::string pipelined;  // bytes of the client's next request(s), read while this one ran
  std::string sent;       // the answer's first bytes, written to a half-closed client (see gone_after_fin)
  bool half_closed = false;
  bool stopping = false;  // the session wants the watcher to end
  bool finished = false;
  net::steady_timer exited;
  net::steady_timer pause;
};
constexpr size_t kMaxPipelined = size_t(64) << 10;

// The first bytes of every answer to an HTTP/x.y request, whatever its status: "HTTP/1.1 ".
std::string status_line_prefix(unsigned version) {
  return "HTTP/" + std::to_string(version / 10) + "." + std::to_string(version % 10) + " ";
}

// A reset (or an error) is pending on the socket: the peer is gone, not merely done sending.
bool peer_reset(tcp::socket& socket) {
  pollfd p{socket.native_handle(), 0, 0};  // POLLERR and POLLHUP are reported whatever is asked
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLERR | POLLHUP)) != 0;
}

enum class RouteId {
  health, models, model, metrics, usage, chat, responses, messages, count_tokens, web,
  stored_response, stored_input_items, stored_cancel  // /v1/responses/{id}[/input_items|/cancel]
};

struct Route {
  RouteId id;
  http::verb method;           // GET routes answer HEAD too
  bool open = false;           // no key needed
  bool operator_only = false;  // operator keys only (403 for customer keys)
  bool deletable = false;      // DELETE too
};

// /v1/responses/{id}, /v1/responses/{id}/input_items, /v1/responses/{id}/cancel: the id, or "".
std::string stored_response_id(std::string_view path) {
  constexpr std::string_view kPrefix = "/v1/responses/";
  if (!path.starts_with(kPrefix)) return {};
  path.remove_prefix(kPrefix.size());
  for (std::string_view tail : {"/input_items", "/cancel"})
    if (path.ends_with(tail)) path.remove_suffix(tail.size());
  return path.empty() || path.find('/') != std::string_view::npos ? std::string() : std::string(path);
}

std::optional<Route> find_route(std::string_view path) {
  if (path == "/health" || path == "/healthz") return Route{RouteId::health, http::verb::get, true};
  if (path == "/v1/models") return Route{RouteId::models, http::verb::get};
  if (path.starts_with("/v1/models/")) return Route{RouteId::model, http::verb::get};
  if (path == "/metrics") return Route{RouteId::metrics, http::verb::get, false, true};
  if (path == "/v1/usage") return Route{RouteId::usage, http::verb::get};
  if (path == "/v1/chat/completions") return Route{RouteId::chat, http::verb::post};
  if (path == "/v1/responses") return Route{RouteId::responses, http::verb::post};
  if (!stored_response_id(path).empty()) {
    if (path.ends_with("/input_items")) return Route{RouteId::stored_input_items, http::verb::get};
    if (path.ends_with("/cancel")) return Route{RouteId::stored_cancel, http::verb::post};
    return Route{RouteId::stored_response, http::verb::get, false, false, true};
  }
  if (path == "/v1/messages") return Route{RouteId::messages, http::verb::post};
  if (path == "/v1/messages/count_tokens") return Route{RouteId::count_tokens, http::verb::post};
  return std::nullopt;
}

// DeepSeek's base-URL styles: the API routes also without the /v1 prefix (/chat/completions,
// /models, ...) and under /anthropic (/anthropic/v1/messages, DeepSeek's Anthropic base URL).
std::string canonical_path(std::string_view path) {
  if (path.starts_with("/anthropic/v1/messages")) return std::string(path.substr(std::string_view("/anthropic").size()));
  for (std::string_view bare : {"/chat/completions", "/responses", "/messages", "/models", "/usage"})
    if (path.starts_with(bare) && (path.size() == bare.size() || path[bare.size()] == '/')) return "/v1" + std::string(path);
  return std::string(path);
}

Dialect dialect_for_path(std::string_view path) {
  const std::string p = canonical_path(path);
  return std::string_view(p).starts_with("/v1/messages") ? Dialect::anthropic : Dialect::chat;
}

std::string presented_secret(const http::fields& h) {
  auto auth = h[http::field::authorization];
  if (!auth.empty()) {
    std::string_view a(auth.data(), auth.size());
    if (a.size() > 7 && (a.substr(0, 7) == "Bearer " || a.substr(0, 7) == "bearer ")) {
      a.remove_prefix(7);
      while (!a.empty() && a.front() == ' ') a.remove_prefix(1);
      while (!a.empty() && a.back() == ' ') a.remove_suffix(1);
      return std::string(a);
    }
  }
  auto x = h["x-api-key"];
  return std::string(x.data(), x.size());
}

// The console's view of a request (head fields, lower-case names); the body is added once read.
WebRequest web_request(const http::request_header<>& h, const std::string& path, const std::string& client) {
  WebRequest w;
  w.method = std::string(h.method_string());
  w.target = std::string(h.target());
  w.path = path;
  for (const auto& f : h) {
    std::string name(f.name_string());
    for (auto& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
    w.headers[name] = std::string(f.value());
  }
  w.client = client;
  return w;
}

std::string peer_address(const beast::tcp_stream& stream) {
  boost::system::error_code ec;
  auto peer = stream.socket().remote_endpoint(ec);
  return ec ? std::string() : peer.address().to_string();
}

ApiError bad_framing(const std::string& message, const char* code) {
  return ApiError(400, "invalid_request_error", message, "", code);
}

// RFC 9112 6.1-6.3: chunked is the only transfer coding we decode, so it must be the only one (and
// on HTTP/1.1). Anything else leaves the body's length to guesswork: a body that a proxy and this
// server frame differently smuggles a request. Host is required on HTTP/1.1 (RFC 9112 3.2).
void check_framing(const http::request_header<>& h) {
  std::vector<std::string> codings;
  std::string listed;
  auto [first, last] = h.equal_range(http::field::transfer_encoding);
  for (auto it = first; it != last; ++it) {
    std::string value(it->value());
    listed += (listed.empty() ? "" : ", ") + value;
    size_t pos = 0;
    while (pos <= value.size()) {
      size_t comma = std::min(value.find(',', pos), value.size());
      std::string token = value.substr(pos, comma - pos);
      token.erase(0, token.find_first_not_of(" \t"));
      token.erase(token.find_last_not_of(" \t") + 1);
      for (auto& c : token) c = char(std::tolower(static_cast<unsigned char>(c)));
      if (!token.empty()) codings.push_back(token);
      pos = comma + 1;
    }
  }
  if (first != last) {
    if (codings.size() != 1 || codings[0] != "chunked" || h.version() < 11)
      throw bad_framing("Transfer-Encoding '" + listed + "' is not supported: only 'chunked', alone, on HTTP/1.1",
                        "unsupported_transfer_encoding");
    if (h.count(http::field::content_length) > 0)
      throw bad_framing("a request may not have both Transfer-Encoding and Content-Length", "ambiguous_framing");
  }
  if (h.version() >= 11 && h.count(http::field::host) != 1)
    throw bad_framing("an HTTP/1.1 request needs exactly one Host header", "missing_host");
}

// A share of the global budget of request bodies in memory, returned when the body is consumed.
class BodyHold {
 public:
  BodyHold() = default;
  BodyHold(std::atomic<size_t>* pool, size_t bytes) : pool_(pool), bytes_(bytes) {}
  BodyHold(const BodyHold&) = delete;
  BodyHold& operator=(const BodyHold&) = delete;
  ~BodyHold() { release(); }
  void release() {
    if (pool_ && bytes_) pool_->fetch_sub(bytes_);
    bytes_ = 0;
  }

 private:
  std::atomic<size_t>* pool_ = nullptr;
  size_t bytes_ = 0;
};

// A request head that passed every check that comes before reading its body.
struct Admitted {
  Route route;
  Principal who;
  std::shared_ptr<BodyHold> body;
  size_t body_limit = 0;  // 413 above this
};

int default_max_connections() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 8192;
  return int(std::clamp<rlim_t>(rl.rlim_cur > 128 ? rl.rlim_cur - 64 : rl.rlim_cur / 2, 1, 8192));
}

bool out_of_descriptors(const boost::system::error_code& ec) {
  return ec == net::error::no_descriptors || ec == net::error::no_buffer_space || ec == net::error::no_memory ||
         ec == boost::system::errc::too_many_files_open_in_system;
}

}  // namespace

struct HttpServer::Impl {
  Impl(ApiService& s, ServerOptions o)
      : service(s), options(std::move(o)), ioc(std::max(1, options.threads)), acceptor(ioc), signals(ioc),
        work(size_t(std::max(1, options.work_threads))),
        max_connections(options.max_connections > 0 ? options.max_connections : default_max_connections()) {}
  ~Impl() {
    work.stop();
    work.join();
  }

  ApiService& service;
  ServerOptions options;
  net::io_context ioc;
  tcp::acceptor acceptor;
  net::signal_set signals;
  std::atomic<bool> draining{false};
  net::thread_pool work;              // parsing and tokenisation
  std::atomic<int> work_pending{0};   // jobs queued or running on `work`
  std::atomic<int> connections{0};
  std::atomic<size_t> body_bytes{0};  // reserved by bodies being read or parsed
  const int max_connections;

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

  http::response<http::string_body> text_response(http::status status, std::string body, const char* content_type,
                                                   unsigned version, bool keep_alive, const std::string& request_id) {
    http::response<http::string_body> res{status, version};
    common_headers(res, request_id);
    res.set(http::field::content_type, content_type);
    res.body() = std::move(body);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    return res;
  }

  http::response<http::string_body> json_response(http::status status, const json::value& body, unsigned version,
                                                   bool keep_alive, const std::string& request_id) {
    return text_response(status, json::serialize(body), "application/json", version, keep_alive, request_id);
  }

  // A console page or console API answer: its own headers (content type, caching, CSP, cookies).
  static http::response<http::string_body> web_response(WebResponse w, unsigned version, bool keep_alive) {
    http::response<http::string_body> res{http::status(w.status), version};
    res.set(http::field::server, "v4flash");
    for (auto& [name, value] : w.headers) res.insert(name, value);
    res.body() = std::move(w.body);
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

  static ApiError internal_error(Dialect dialect, const std::string& message) {
    return ApiError(500, dialect == Dialect::anthropic ? "api_error" : "server_error", message);
  }

  // Declared tools the model was not given (docs/api.md): named in a header as well as the body.
  template <class Body>
  static void withheld_header(http::response<Body>& res, const Request& req) {
    std::string list;
    for (auto& t : req.withheld_tools) list += (list.empty() ? "" : ", ") + t;
    if (!list.empty()) res.set("x-v4flash-withheld-tools", list);
  }

  // ------------------------------------------------------------------ transport
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
      for (bool first = true;; first = false) {
        if (draining) break;
        boost::system::error_code ec;
        // Wait for the first byte of the next request: briefly on a new connection (one that
        // never sends holds a descriptor for nothing), the keep-alive time after a request.
        if (buffer.size() == 0) {
          stream->expires_after(first ? options.first_byte_timeout : options.idle_timeout);
          size_t n = co_await stream->async_read_some(buffer.prepare(4096), net::redirect_error(use_awaitable, ec));
          if (ec) break;
          buffer.commit(n);
        }
        set_idle(id, false);
        if (!co_await serve_one(id, stream, buffer) || draining) break;
        set_idle(id, true);
      }
    } catch (const std::exception& e) {
      spdlog::warn("session ended by error: {}", e.what());
    }
    boost::system::error_code ignored;
    stream->socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream->socket().close(ignored);
    connections.fetch_sub(1);
    std::lock_guard lock(sessions_mutex);
    sessions.erase(id);
  }

  // Reads one request (head, checks, body) and serves it; returns whether the connection stays.
  awaitable<bool> serve_one(uint64_t id, const std::shared_ptr<beast::tcp_stream>& stream, beast::flat_buffer& buffer) {
    boost::system::error_code ec;
    http::request_parser<http::string_body> parser;
    parser.body_limit(boost::none);  // a declared length is judged by check_head, after authentication
    parser.header_limit(std::uint32_t(options.header_limit));
    stream->expires_after(options.header_timeout);
    co_await http::async_read_header(*stream, buffer, parser, net::redirect_error(use_awaitable, ec));
    if (ec) {
      if (ec == http::error::header_limit)
        co_await refuse(stream, Dialect::chat,
                        ApiError(431, "invalid_request_error",
                                 "request header fields exceed the limit of " + std::to_string(options.header_limit) +
                                     " bytes", "", "header_too_large"));
      else if (!quiet_end(ec))
        co_await refuse(stream, Dialect::chat, bad_framing("malformed HTTP request: " + ec.message(), "malformed_request"));
      co_return false;
    }
    const std::string target(parser.get().target());
    const std::string path = target.substr(0, target.find('?'));
    std::optional<Admitted> admitted;
    std::optional<ApiError> refusal;
    try {
      admitted = check_head(parser, path, peer_address(*stream));
    } catch (const ApiError& e) {
      refusal = e;
    }
    if (refusal) {  // nothing of the body is kept: the connection closes after the answer
      // An authenticated client told its body is too large gets the time to finish sending it
      // (discarded), so it sees the 413; anyone else only briefly.
      const bool patient = refusal->status == 413;
      co_await refuse(stream, dialect_for_path(path), *refusal, patient ? size_t(256) << 20 : size_t(1) << 20,
                      patient ? std::chrono::seconds(5) : std::chrono::seconds(2),
                      parser.get().method() == http::verb::head);
      co_return false;
    }
    parser.body_limit(admitted->body_limit);  // for chunked bodies, whose length is known only as they arrive
    if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
      // Only now, authenticated and within limits, does the client send the body.
      http::response<http::empty_body> cont{http::status::continue_, parser.get().version()};
      co_await http::async_write(*stream, cont, net::redirect_error(use_awaitable, ec));
    }
    if (!ec) co_await http::async_read(*stream, buffer, parser, net::redirect_error(use_awaitable, ec));
    if (ec) {
      if (ec == http::error::body_limit)
        co_await refuse(stream, dialect_for_path(path),
                        ApiError(413, "invalid_request_error",
                                 "request body exceeds the limit of " + std::to_string(admitted->body_limit) + " bytes",
                                 "", "request_too_large"),
                        size_t(256) << 20, std::chrono::seconds(5));
      else if (!quiet_end(ec))
        co_await refuse(stream, Dialect::chat, bad_framing("malformed HTTP request: " + ec.message(), "malformed_request"));
      co_return false;
    }
    stream->expires_never();
    co_return co_await handle(id, stream, buffer, parser.release(), std::move(*admitted));
  }

  static bool quiet_end(const boost::system::error_code& ec) {
    return ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::eof ||
           ec == net::error::connection_reset || ec == net::error::operation_aborted;
  }

  // Answers with an error and closes. Lingering close: read and drop a bounded amount of what the
  // client is still sending, so it sees the answer rather than a connection reset.
  awaitable<void> refuse(const std::shared_ptr<beast::tcp_stream>& stream, Dialect dialect, const ApiError& e,
                         size_t linger_bytes = size_t(1) << 20, std::chrono::seconds linger = std::chrono::seconds(2),
                         bool head_only = false) {
    boost::system::error_code ec;
    auto res = error_response(dialect, e, 11, false, "req_" + random_id(24));
    stream->expires_after(std::chrono::seconds(10));
    if (head_only) {  // RFC 9110 9.3.2: the answer to HEAD has the fields of the answer to GET, no content
      http::response<http::empty_body> bare{res.base()};
      bare.content_length(res.body().size());
      co_await http::async_write(*stream, bare, net::redirect_error(use_awaitable, ec));
    } else {
      co_await http::async_write(*stream, res, net::redirect_error(use_awaitable, ec));
    }
    stream->socket().shutdown(tcp::socket::shutdown_send, ec);
    stream->expires_after(linger);
    std::array<char, 16384> scratch;
    size_t drained = 0;
    while (!ec && drained < linger_bytes)
      drained += co_await stream->async_read_some(net::buffer(scratch), net::redirect_error(use_awaitable, ec));
  }

  // Everything decided from the head alone, before a byte of the body is read.
  Admitted check_head(const http::request_parser<http::string_body>& parser, const std::string& path,
                      const std::string& client) {
    const auto& h = parser.get().base();
    check_framing(h);
    // The console's pages and its own JSON routes: public or signed in by session (checked by the
    // console itself, CSRF included), under the same framing rules, body limit and budget.
    // Open to anyone, so only small bodies (forms and JSON of a few fields).
    const std::string api_path = canonical_path(path);
    // A path both the console and the API answer (/models): a request carrying an API key is the API's.
    const bool api_client = !presented_secret(h).empty() && find_route(api_path) && api_path != path;
    if (options.web && options.web->serves(path) && !api_client) {
      const size_t limit = std::min(options.body_limit, options.web->body_limit());
      return {Route{RouteId::web, h.method(), true}, Principal{}, reserve_body(parser, Dialect::chat, limit), limit};
    }
    auto route = find_route(api_path);
    Principal who;
    // Unknown paths too: an anonymous caller learns nothing about which routes exist.
    if (!route || !route->open) who = authenticate(h, path, route, client);
    if (!route)
      throw ApiError(404, "not_found_error", "no route for " + std::string(h.method_string()) + " " + path, "",
                     "unknown_route");
    const bool head_of_get = h.method() == http::verb::head && route->method == http::verb::get;
    const bool deleting = h.method() == http::verb::delete_ && route->deletable;
    if (h.method() != route->method && !head_of_get && !deleting)
      throw ApiError(405, "invalid_request_error",
                     std::string("use ") + (route->method == http::verb::get ? "GET" : "POST") +
                         (route->deletable ? " or DELETE" : "") + " for " + path,
                     "", "method_not_allowed");
    if (route->operator_only && !who.is_operator)
      throw ApiError(403, "permission_error", path + " is for operator keys only", "", "operator_only");
    // (cancelling a background response costs nothing: allowed without credit)
    if (route->method == http::verb::post && route->id != RouteId::stored_cancel) service.precheck(who);
    return {*route, who, reserve_body(parser, dialect_for_path(path), options.body_limit), options.body_limit};
  }

  // A key, or for a keyless chat completion a signed-in console user (session cookie and CSRF
  // header: both in the head, so this too comes before the body).
  Principal authenticate(const http::request_header<>& h, const std::string& path, const std::optional<Route>& route,
                         const std::string& client) {
    std::string secret = presented_secret(h);
    if (secret.empty() && options.web && route && route->id == RouteId::chat)
      if (auto session = options.web->session_principal(web_request(h, path, client))) return *session;
    return service.authenticate(secret);
  }

  std::shared_ptr<BodyHold> reserve_body(const http::request_parser<http::string_body>& parser, Dialect dialect,
                                         size_t limit) {
    const uint64_t n = parser.chunked() ? limit : parser.content_length().value_or(0);
    if (n > limit)
      throw ApiError(413, "invalid_request_error", "request body exceeds the limit of " + std::to_string(limit) + " bytes",
                     "", "request_too_large");
    if (n == 0) return std::make_shared<BodyHold>();
    if (body_bytes.fetch_add(n) + n > options.body_budget) {
      body_bytes.fetch_sub(n);
      throw overloaded(dialect, "too many request bodies are being received; retry shortly");
    }
    return std::make_shared<BodyHold>(&body_bytes, n);
  }

  void set_idle(uint64_t id, bool idle, std::shared_ptr<Generation> g = nullptr) {
    std::lock_guard lock(sessions_mutex);
    auto it = sessions.find(id);
    if (it == sessions.end()) return;
    it->second.idle = idle;
    it->second.generation = std::move(g);
  }

  // Writes a response; to HEAD, its head only (RFC 9110 9.3.2: the same fields, no content).
  // `already_sent`: its first bytes, written earlier (gone_after_fin), which are not repeated.
  awaitable<bool> send(const std::shared_ptr<beast::tcp_stream>& stream, http::response<http::string_body> res,
                       bool head_only = false, const std::string& already_sent = {}) {
    boost::system::error_code ec;
    bool keep = res.keep_alive();
    stream->expires_after(std::chrono::seconds(60));
    if (!already_sent.empty()) {
      std::ostringstream whole;
      whole << res;
      const std::string text = whole.str();
      if (!text.starts_with(already_sent)) co_return false;  // cannot happen: the same status line
      co_await net::async_write(*stream, net::buffer(text.data() + already_sent.size(), text.size() - already_sent.size()),
                                net::redirect_error(use_awaitable, ec));
    } else if (head_only) {
      http::response<http::empty_body> bare{res.base()};
      bare.content_length(res.body().size());
      co_await http::async_write(*stream, bare, net::redirect_error(use_awaitable, ec));
    } else {
      co_await http::async_write(*stream, res, net::redirect_error(use_awaitable, ec));
    }
    stream->expires_never();
    co_return !ec && keep;
  }

  // Runs f() on the work pool (bounded: 503 when its queue is full) and resumes here with its result.
  template <class F>
  awaitable<std::invoke_result_t<F&>> on_work_pool(Dialect dialect, F f) {
    using R = std::invoke_result_t<F&>;
    if (work_pending.fetch_add(1) >= options.work_threads + options.work_queue) {
      work_pending.fetch_sub(1);
      throw overloaded(dialect, "too many requests are being parsed; retry shortly");
    }
    struct Done {
      std::atomic<int>& n;
      ~Done() { n.fetch_sub(1); }
    } done{work_pending};
    co_return co_await net::co_spawn(
        work.get_executor(), [&f]() -> awaitable<R> { co_return f(); }, use_awaitable);
  }

  // ------------------------------------------------------------------ handling
  awaitable<bool> handle(uint64_t session_id, std::shared_ptr<beast::tcp_stream> stream, beast::flat_buffer& buffer,
                         http::request<http::string_body> req, Admitted admitted) {
    const unsigned version = req.version();
    const bool keep_alive = req.keep_alive() && !draining;
    const bool head_only = req.method() == http::verb::head;
    std::string target(req.target());
    const Route route = admitted.route;
    const std::string raw_path = target.substr(0, target.find('?'));
    const std::string path = route.id == RouteId::web ? raw_path : canonical_path(raw_path);
    const Principal& who = admitted.who;
    const Dialect dialect = route.id == RouteId::chat        ? Dialect::chat
                            : route.id == RouteId::responses ? Dialect::responses
                                                             : dialect_for_path(path);
    std::string request_id = "req_" + random_id(24);
    std::optional<http::response<http::string_body>> reply;
    std::optional<PreparedRequest> prepared;
    std::string betas;  // every anthropic-beta header, joined
    for (auto [it, end] = req.equal_range("anthropic-beta"); it != end; ++it)
      betas += (betas.empty() ? "" : ",") + std::string(it->value());
    // (no co_await inside a catch handler: a coroutine cannot suspend there)
    try {
      if (route.id == RouteId::web) {
        WebRequest w = web_request(req.base(), path, peer_address(*stream));
        w.body = std::move(req.body());
        // On the work pool: sign-in hashes a password (Argon2id), too slow for an I/O thread.
        reply = co_await on_work_pool(dialect, [&] { return web_response(options.web->handle(w), version, keep_alive); });
      } else if (stored_route(route.id)) {
        // The response store reads and writes its table: on the work pool.
        auto answer = co_await on_work_pool(dialect, [&] {
          return service.responses().answer(stored_route_of(route.id, req.method()), stored_response_id(path),
                                            QueryParams::parse(target), req.body(), who.owner());
        });
        reply = json_response(http::status::ok, answer, version, keep_alive, request_id);
      } else if (route.method == http::verb::get) {
        reply = respond_get(route.id, path, who, version, keep_alive, request_id);
      } else if (route.id == RouteId::count_tokens) {
        auto counted = co_await on_work_pool(dialect, [&] { return service.count_tokens(req.body(), who, betas); });
        reply = json_response(http::status::ok, counted, version, keep_alive, request_id);
      } else {
        prepared = co_await on_work_pool(dialect, [&] { return service.prepare(dialect, req.body(), betas, who); });
      }
    } catch (const ApiError& e) {
      if (e.status >= 500) spdlog::warn("{} {} -> {} {}", std::string(req.method_string()), path, e.status, e.what());
      reply = error_response(dialect, e, version, keep_alive, request_id);
    } catch (const std::exception& e) {
      spdlog::error("{} {} failed: {}", std::string(req.method_string()), path, e.what());
      reply = error_response(dialect, internal_error(dialect, std::string("internal error: ") + e.what()), version,
                             false, request_id);
    }
    admitted.body->release();
    req.body().clear();
    req.body().shrink_to_fit();
    if (reply) co_return co_await send(stream, std::move(*reply), head_only);
    auto waker = std::make_shared<Waker>(co_await net::this_coro::executor);
    std::shared_ptr<Generation> gen;
    try {
      if (prepared->req.background)  // answered at once; the generation runs on without this connection
        reply = json_response(http::status::ok, service.start_background(*prepared, who), version, keep_alive,
                              request_id);
      else
        gen = service.start(*prepared, who, [waker] { waker->wake(waker); });
    } catch (const ApiError& e) {
      reply = error_response(dialect, e, version, keep_alive, request_id);
    } catch (const std::exception& e) {
      reply = error_response(dialect, internal_error(dialect, std::string("internal error: ") + e.what()), version,
                             false, request_id);
    }
    if (reply) co_return co_await send(stream, std::move(*reply));
    co_return co_await generate(session_id, stream, buffer, std::move(*prepared), who, gen, waker, version, keep_alive,
                                request_id);
  }

  static bool stored_route(RouteId id) {
    return id == RouteId::stored_response || id == RouteId::stored_input_items || id == RouteId::stored_cancel;
  }
  static ResponseRoute stored_route_of(RouteId id, http::verb method) {
    if (id == RouteId::stored_input_items) return ResponseRoute::input_items;
    if (id == RouteId::stored_cancel) return ResponseRoute::cancel;
    return method == http::verb::delete_ ? ResponseRoute::remove : ResponseRoute::retrieve;
  }

  // The GET routes: cheap answers from memory or the ledger.
  http::response<http::string_body> respond_get(RouteId id, const std::string& path, const Principal& who,
                                                unsigned version, bool keep_alive, const std::string& request_id) {
    switch (id) {
      case RouteId::health: {
        json::object health{{"status", draining ? "draining" : "ok"}};
        if (auto backends = service.backends_status(); !backends.empty()) health["backends"] = std::move(backends);
        return json_response(http::status::ok, health, version, keep_alive, request_id);
      }
      case RouteId::metrics:
        return text_response(http::status::ok, service.metrics_text(), "text/plain; version=0.0.4", version,
                             keep_alive, request_id);
      case RouteId::usage: {
        auto report = service.usage_report(who);
        if (!report)
          throw ApiError(404, "not_found_error", "this server keeps no usage ledger (start it with --db)", "",
                         "unknown_route");
        return text_response(http::status::ok, std::move(*report), "application/json", version, keep_alive, request_id);
      }
      case RouteId::models:
        return json_response(http::status::ok, service.list_models(), version, keep_alive, request_id);
      default: {
        json::object list = service.list_models();
        std::string model = path.substr(std::string("/v1/models/").size());
        for (auto& m : list["data"].as_array())
          if (m.at("id").as_string() == model) return json_response(http::status::ok, m, version, keep_alive, request_id);
        throw ApiError(404, "not_found_error", "the model '" + model + "' does not exist", "model", "model_not_found");
      }
    }
  }

  // Notices a client that goes away while its request runs. Bytes it sends meanwhile are its next
  // request (pipelining), kept for the session, not a disconnect. A reset is a disconnect. An
  // orderly end of its sending (FIN, shutdown(SHUT_WR)) is not: the client may be waiting for the
  // answer. A stream's next write finds out whether it is still there; a non-streamed request asks
  // (gone_after_fin).
  static awaitable<void> watch_disconnect(std::shared_ptr<beast::tcp_stream> stream, std::shared_ptr<Waker> waker,
                                          std::shared_ptr<Generation> gen, std::shared_ptr<Watch> watch, bool streamed,
                                          unsigned version) {
    std::array<char, 4096> chunk;
    boost::system::error_code ec;
    stream->socket().non_blocking(true, ec);
    for (;;) {
      ec = {};
      co_await stream->socket().async_wait(tcp::socket::wait_read, net::redirect_error(use_awaitable, ec));
      if (ec == net::error::operation_aborted || watch->stopping) break;
      size_t n = 0;
      if (!ec) n = stream->socket().read_some(net::buffer(chunk), ec);
      if (ec == net::error::would_block || ec == net::error::try_again) continue;
      if (!ec && n > 0) {
        watch->pipelined.append(chunk.data(), n);
        if (watch->pipelined.size() >= kMaxPipelined) break;  // more than a next request: stop reading
        continue;
      }
      if (ec == net::error::eof) {
        if (streamed) break;
        const bool gone = co_await gone_after_fin(*stream, *watch, version);
        if (!gone) break;
      }
      waker->client_gone = true;
      gen->cancel();
      waker->wake(waker);
      break;
    }
    watch->finished = true;
    watch->exited.cancel();
  }

  // A FIN on a non-streamed request: half-closed (waiting for its answer) or closed? Without writing
  // TCP cannot tell, so this writes the answer's first bytes, the same whatever its status
  // ("HTTP/1.1 "; the rest follows when it is ready). A closed peer answers them with a reset,
  // which ends the wait (EPOLLERR/EPOLLHUP) and so the generation within a step; a half-closed one
  // just reads them. Returns whether the peer is gone (false: the session ended the wait).
  static awaitable<bool> gone_after_fin(beast::tcp_stream& stream, Watch& watch, unsigned version) {
    watch.half_closed = true;
    auto& socket = stream.socket();
    const std::string prefix = status_line_prefix(version);
    boost::system::error_code ec;
    size_t n = socket.write_some(net::buffer(prefix), ec);  // non-blocking, into an empty send buffer
    watch.sent = prefix.substr(0, ec ? 0 : n);
    if (ec) co_return true;  // EPIPE, ECONNRESET: gone already
    for (;;) {
      co_await socket.async_wait(tcp::socket::wait_error, net::redirect_error(use_awaitable, ec));
      if (ec == net::error::operation_aborted || watch.stopping) co_return false;
      if (ec || peer_reset(socket)) co_return true;
      // Woken without an error (urgent data): look again after a pause rather than spin.
      watch.pause.expires_after(std::chrono::milliseconds(50));
      co_await watch.pause.async_wait(net::redirect_error(use_awaitable, ec));
      if (watch.stopping) co_return false;
    }
  }

  awaitable<bool> generate(uint64_t session_id, std::shared_ptr<beast::tcp_stream> stream, beast::flat_buffer& buffer,
                           PreparedRequest p, Principal who, std::shared_ptr<Generation> gen,
                           std::shared_ptr<Waker> waker, unsigned version, bool keep_alive, std::string request_id) {
    auto ex = co_await net::this_coro::executor;
    set_idle(session_id, false, gen);
    auto watch = std::make_shared<Watch>(ex);
    net::co_spawn(ex, watch_disconnect(stream, waker, gen, watch, p.req.stream, version), net::detached);
    boost::system::error_code ec;
    const Dialect dialect = p.req.dialect;

    // Wakes for output, and at least every entitlement_interval to see whether the key may go on.
    // A key revoked (or its credit used up) in this process stops the generation at once
    // (Generation::revoke, signalled by the Authenticator); this poll finds what other processes
    // changed (the CLI, another replica).
    using Clock = std::chrono::steady_clock;
    auto next_check = Clock::now() + options.entitlement_interval;
    auto wait_for_output = [&]() -> awaitable<void> {
      if (!waker->pending.exchange(false)) {
        waker->timer.expires_after(std::min<Clock::duration>(options.ping_interval, options.entitlement_interval));
        co_await waker->timer.async_wait(net::redirect_error(use_awaitable, ec));
      }
      if (!gen->revoked() && Clock::now() >= next_check) {
        next_check = Clock::now() + options.entitlement_interval;
        if (!service.entitled(who)) gen->revoke();
      }
    };
    // Ends the watcher and takes back the bytes it read for the next request.
    auto stop_watching = [&]() -> awaitable<void> {
      boost::system::error_code ignored;
      watch->stopping = true;
      watch->pause.cancel();
      stream->socket().cancel(ignored);
      if (!watch->finished) co_await watch->exited.async_wait(net::redirect_error(use_awaitable, ignored));
      if (!watch->pipelined.empty()) {
        auto space = buffer.prepare(watch->pipelined.size());
        net::buffer_copy(space, net::buffer(watch->pipelined));
        buffer.commit(watch->pipelined.size());
      }
    };
    const ApiError revoked_error(401, "authentication_error",
                                 "the API key was revoked or its credit ran out while the request ran", "",
                                 "invalid_api_key");

    if (!p.req.stream) {
      std::vector<Turn> turns(size_t(p.req.n));  // one per choice (Chat `n`)
      std::optional<Outcome> outcome;
      for (;;) {
        auto batch = gen->take();
        for (auto& d : batch.deltas)
          if (d.choice >= 0 && size_t(d.choice) < turns.size()) turns[size_t(d.choice)].add(d);
        if (batch.outcome) {
          outcome = batch.outcome;
          break;
        }
        co_await wait_for_output();
      }
      co_await stop_watching();
      if (waker->client_gone) co_return false;
      // A half-closed client sends nothing more after what it pipelined: close after the answer.
      const bool keep = keep_alive && !(watch->half_closed && buffer.size() == 0);
      if (gen->revoked())
        co_return co_await send(stream, error_response(dialect, revoked_error, version, false, request_id), false,
                                watch->sent);
      if (auto failure = gen->failure())  // a backend's refusal, with its status
        co_return co_await send(stream, error_response(dialect, *failure, version, keep, request_id), false, watch->sent);
      if (outcome->stop == StopKind::error)
        co_return co_await send(stream, error_response(dialect, internal_error(dialect, "generation failed: " + outcome->error),
                                                       version, keep, request_id),
                                false, watch->sent);
      // A kept response: the object as it was kept (rendered once), which a later GET answers too.
      auto res = json_response(http::status::ok,
                               outcome->response ? *outcome->response : render_choices(p.req, p.meta, turns, *outcome),
                               version, keep, request_id);
      withheld_header(res, p.req);
      co_return co_await send(stream, std::move(res), false, watch->sent);
    }

    // Streamed: chunked SSE, once the backend committed (an upstream may still fail over or refuse
    // before its first byte; its refusal is then a plain HTTP error).
    while (!gen->committed() && !waker->client_gone) co_await wait_for_output();
    if (waker->client_gone) {
      gen->cancel();
      co_await stop_watching();
      co_return false;
    }
    if (auto failure = gen->failure()) {
      co_await stop_watching();
      co_return co_await send(stream, error_response(dialect, *failure, version, keep_alive, request_id), false,
                              watch->sent);
    }
    http::response<http::empty_body> res{http::status::ok, version};
    common_headers(res, request_id);
    res.set(http::field::content_type, "text/event-stream; charset=utf-8");
    res.set(http::field::cache_control, "no-cache");
    res.set("x-accel-buffering", "no");
    withheld_header(res, p.req);
    // HTTP/1.0 has no chunked encoding: the stream then ends with the connection.
    const bool chunked = version >= 11;
    res.keep_alive(keep_alive && chunked);
    res.chunked(chunked);
    http::response_serializer<http::empty_body> sr{res};
    stream->expires_after(std::chrono::seconds(60));
    co_await http::async_write_header(*stream, sr, net::redirect_error(use_awaitable, ec));
    auto renderer = make_stream_renderer(p.req, p.meta, int(p.prompt.size()));
    auto last_write = Clock::now();
    auto write_chunk = [&](const std::string& text) -> awaitable<bool> {
      if (text.empty()) co_return true;
      stream->expires_after(std::chrono::seconds(60));
      if (chunked)
        co_await net::async_write(*stream, http::make_chunk(net::buffer(text)), net::redirect_error(use_awaitable, ec));
      else
        co_await net::async_write(*stream, net::buffer(text), net::redirect_error(use_awaitable, ec));
      stream->expires_never();
      last_write = Clock::now();
      co_return !ec;
    };
    // co_await only on named strings, never inside ?: or ||: GCC 12 mis-destroys temporaries of a
    // conditional expression around co_await (a heap corruption the soak test caught).
    bool started = !renderer->start_waits_for_admission();
    bool ok = !ec;
    if (ok && started) {
      const std::string opening = renderer->start(0);
      ok = co_await write_chunk(opening);
    }
    while (ok) {
      auto batch = gen->take();
      std::string out;
      if (!started && (batch.cached_prompt_tokens || !batch.deltas.empty() || batch.outcome)) {
        out += renderer->start(batch.cached_prompt_tokens.value_or(0));
        started = true;
      }
      for (auto& d : batch.deltas) out += renderer->delta(d);
      if (batch.outcome) {
        if (gen->revoked())
          out += renderer->error(revoked_error);
        else if (batch.outcome->stop == StopKind::error)
          out += renderer->error(internal_error(dialect, "generation failed: " + batch.outcome->error));
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
      co_await wait_for_output();
      if (!waker->pending.load() && !waker->client_gone && !gen->finished() &&
          Clock::now() - last_write >= options.ping_interval) {
        std::string keepalive = ": ping\n\n";  // an SSE comment until the dialect's opening event
        if (started) keepalive = renderer->ping();
        ok = co_await write_chunk(keepalive);
      }
    }
    co_await stop_watching();
    if (!ok || waker->client_gone) {
      gen->cancel();
      co_return false;
    }
    stream->expires_after(std::chrono::seconds(60));
    if (!chunked) co_return false;
    co_await net::async_write(*stream, http::make_chunk_last(), net::redirect_error(use_awaitable, ec));
    stream->expires_never();
    co_return !ec && keep_alive && !gen->revoked();
  }

  // ------------------------------------------------------------------ accept / shutdown
  awaitable<void> accept_loop() {
    net::steady_timer backoff(co_await net::this_coro::executor);
    bool warned = false;
    for (;;) {
      boost::system::error_code ec;
      tcp::socket socket = co_await acceptor.async_accept(net::make_strand(ioc), net::redirect_error(use_awaitable, ec));
      if (ec) {
        if (!acceptor.is_open() || draining) co_return;
        if (out_of_descriptors(ec)) {
          // The pending connection stays in the backlog and the acceptor stays readable: retrying at
          // once would spin a core. Pause; running connections go on being served meanwhile.
          if (!warned) spdlog::warn("accept: {}; pausing accepts", ec.message());
          warned = true;
          backoff.expires_after(options.accept_backoff);
          co_await backoff.async_wait(net::redirect_error(use_awaitable, ec));
        }
        continue;
      }
      warned = false;
      boost::system::error_code ignored;
      if (connections.fetch_add(1) >= max_connections) {
        connections.fetch_sub(1);
        shed(std::move(socket));
        continue;
      }
      socket.set_option(tcp::no_delay(true), ignored);
      auto ex = socket.get_executor();
      net::co_spawn(ex, session(std::move(socket)), net::detached);
    }
  }

  // Over the connection limit: a short 503 written without waiting (best effort), then close.
  static void shed(tcp::socket socket) {
    static const std::string kBusy = [] {
      const std::string body =
          R"({"error":{"message":"too many open connections, retry later","type":"overloaded_error",)"
          R"("code":"too_many_connections"}})";
      return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
             "Connection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    }();
    boost::system::error_code ignored;
    socket.non_blocking(true, ignored);
    socket.write_some(net::buffer(kBusy), ignored);
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

  awaitable<void> drain() {
    auto deadline = std::chrono::steady_clock::now() + options.drain_timeout;
    net::steady_timer t(co_await net::this_coro::executor);
    bool cancelled = false;
    for (;;) {
      // Background responses run without a session: they get the same time to finish.
      if (cancelled) service.responses().stop_background();
      {
        std::lock_guard lock(sessions_mutex);
        if (sessions.empty() && service.responses().background_running() == 0) break;
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
