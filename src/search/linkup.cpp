// Linkup client: Boost.Beast over OpenSSL, one connection per attempt, run on a private io_context
// so a search blocks only its caller (the API's work pool), never an I/O thread.
#include "search/linkup.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <optional>
#include <thread>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

namespace v4::search {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;

namespace {

constexpr size_t kMaxAnswerBytes = size_t(16) << 20;

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

struct Answer {
  int status = 0;
  std::string body;
  std::optional<int> retry_after_s;
};

template <class Stream>
net::awaitable<Answer> exchange(Stream& stream, const http::request<http::string_body>& req) {
  co_await http::async_write(stream, req, net::use_awaitable);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxAnswerBytes);
  co_await http::async_read(stream, buffer, parser, net::use_awaitable);
  auto& res = parser.get();
  Answer a;
  a.status = int(res.result_int());
  a.body = std::move(res.body());
  if (auto ra = res[http::field::retry_after]; !ra.empty()) {
    try {
      a.retry_after_s = std::stoi(std::string(ra));
    } catch (...) {
      // an HTTP date or garbage: use our own backoff
    }
  }
  co_return a;
}

// The provider's own error message, when its body has one ({"error": {"message": ...}}).
std::string provider_message(const std::string& body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return {};
  const json::object& o = v.get_object();
  if (auto* e = o.if_contains("error"); e && e->is_object())
    if (auto* m = e->get_object().if_contains("message"); m && m->is_string()) return std::string(m->get_string());
  if (auto* m = o.if_contains("message"); m && m->is_string()) return std::string(m->get_string());
  return {};
}

Error error_for_status(const Answer& a) {
  std::string why = provider_message(a.body);
  std::string suffix = why.empty() ? "" : ": " + why.substr(0, 200);
  std::string status = std::to_string(a.status);
  if (a.status == 401) return Error(Error::Kind::unauthorized, "the search provider refused the API key (401)" + suffix, a.status);
  if (a.status == 402 || a.status == 403)
    return Error(Error::Kind::no_credit, "the search provider refused the call (" + status + ", no credit)" + suffix, a.status);
  if (a.status == 429) return Error(Error::Kind::rate_limited, "the search provider is rate limiting (429)" + suffix, a.status);
  if (a.status >= 500) return Error(Error::Kind::unavailable, "the search provider failed (" + status + ")" + suffix, a.status);
  return Error(Error::Kind::bad_response, "the search provider answered " + status + suffix, a.status);
}

}  // namespace

json::object linkup_request_body(const Query& q) {
  json::object body{{"q", q.text}, {"depth", depth_name(q.depth)}, {"outputType", "searchResults"},
                    {"maxResults", q.max_results}};
  auto list = [](const std::vector<std::string>& v) {
    json::array a;
    for (auto& s : v) a.push_back(json::value(s));
    return a;
  };
  if (!q.include_domains.empty()) body["includeDomains"] = list(q.include_domains);
  if (!q.exclude_domains.empty()) body["excludeDomains"] = list(q.exclude_domains);
  if (q.from_date) body["fromDate"] = *q.from_date;
  if (q.to_date) body["toDate"] = *q.to_date;
  return body;
}

std::vector<Result> parse_linkup_results(const std::string& body, int max_results) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) throw Error(Error::Kind::bad_response, "the search provider's answer is not JSON: " + ec.message());
  const json::array* results = nullptr;
  if (v.is_object())
    if (auto* r = v.get_object().if_contains("results"); r && r->is_array()) results = &r->get_array();
  if (!results) throw Error(Error::Kind::bad_response, "the search provider's answer has no 'results' list");
  std::vector<Result> out;
  for (auto& item : *results) {
    if (!item.is_object()) throw Error(Error::Kind::bad_response, "a search result is not an object");
    const json::object& o = item.get_object();
    auto text = [&](const char* key) -> std::optional<std::string> {
      auto* f = o.if_contains(key);
      if (!f || !f->is_string()) return std::nullopt;
      return std::string(f->get_string());
    };
    if (auto type = text("type"); type && *type != "text") continue;  // images: nothing to read
    auto url = text("url");
    if (!url || url->empty()) throw Error(Error::Kind::bad_response, "a search result has no 'url'");
    Result r;
    r.url = *url;
    r.title = text("name").value_or(text("title").value_or(*url));
    r.content = text("content").value_or("");
    r.date = text("date");
    if (!r.date) r.date = text("publishedDate");
    out.push_back(std::move(r));
    if (int(out.size()) >= max_results) break;
  }
  return out;
}

LinkupProvider::LinkupProvider(LinkupOptions options) : options_(std::move(options)) {
  const std::string& u = options_.base_url;
  auto sep = u.find("://");
  if (sep == std::string::npos) throw std::invalid_argument("--linkup-url must start with https:// (got '" + u + "')");
  scheme_ = u.substr(0, sep);
  if (scheme_ != "https" && scheme_ != "http") throw std::invalid_argument("--linkup-url must be https:// (got '" + u + "')");
  std::string rest = u.substr(sep + 3);
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.pop_back();
  target_ = path + "/search";
  auto colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']') == std::string::npos) {
    host_ = authority.substr(0, colon);
    port_ = authority.substr(colon + 1);
  } else {
    host_ = authority;
    port_ = scheme_ == "https" ? "443" : "80";
  }
  if (host_.empty()) throw std::invalid_argument("--linkup-url has no host: '" + u + "'");
  // Plain HTTP would send the key in clear: only to this machine (a local test double or proxy).
  if (scheme_ == "http" && !is_loopback(host_))
    throw std::invalid_argument("--linkup-url: plain http:// is allowed only to a loopback address; use https://");
  if (!options_.ca_file.empty()) {
    ssl::context probe(ssl::context::tls_client);
    boost::system::error_code ec;
    probe.load_verify_file(options_.ca_file, ec);
    if (ec) throw std::invalid_argument("--linkup-ca " + options_.ca_file + ": " + ec.message());
  }
  if (options_.max_attempts < 1) options_.max_attempts = 1;
}

namespace {

// One attempt: connect, (TLS handshake with verification), POST, read. Throws Error for transport
// failures; HTTP statuses come back in the Answer.
Answer attempt(const LinkupOptions& o, const std::string& scheme, const std::string& host, const std::string& port,
               const http::request<http::string_body>& req) {
  net::io_context ioc;
  std::optional<Answer> answer;
  std::exception_ptr failure;
  std::optional<ssl::context> tls;
  if (scheme == "https") {
    tls.emplace(ssl::context::tls_client);
    tls->set_default_verify_paths();
    if (!o.ca_file.empty()) tls->load_verify_file(o.ca_file);
    tls->set_verify_mode(ssl::verify_peer);
    tls->set_verify_callback(ssl::host_name_verification(host));
  }
  auto run = [&]() -> net::awaitable<void> {
    tcp::resolver resolver(ioc);
    auto endpoints = co_await resolver.async_resolve(host, port, net::use_awaitable);
    if (tls) {
      beast::ssl_stream<beast::tcp_stream> stream(ioc, *tls);
      beast::get_lowest_layer(stream).expires_after(o.timeout);
      if (!SSL_set_tlsext_host_name(stream.native_handle(), host.c_str()))
        throw Error(Error::Kind::unavailable, "TLS: cannot set the server name");
      co_await beast::get_lowest_layer(stream).async_connect(endpoints, net::use_awaitable);
      co_await stream.async_handshake(ssl::stream_base::client, net::use_awaitable);
      answer = co_await exchange(stream, req);
    } else {
      beast::tcp_stream stream(ioc);
      stream.expires_after(o.timeout);
      co_await stream.async_connect(endpoints, net::use_awaitable);
      answer = co_await exchange(stream, req);
    }
  };
  net::co_spawn(ioc, run(), [&](std::exception_ptr e) { failure = e; });
  // The streams' deadline covers connect, handshake and I/O; this one bounds name resolution too.
  ioc.run_for(o.timeout + std::chrono::milliseconds(200));
  if (!answer && !failure) throw Error(Error::Kind::timeout, "the search provider did not answer in time");
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const Error&) {
      throw;
    } catch (const boost::system::system_error& e) {
      if (e.code() == beast::error::timeout)
        throw Error(Error::Kind::timeout, "the search provider did not answer in time");
      std::string what = e.code().category() == net::error::get_ssl_category() ||
                                 e.code().category() == ssl::error::get_stream_category()
                             ? "TLS with the search provider failed (certificate not trusted?): "
                             : "cannot reach the search provider: ";
      throw Error(Error::Kind::unavailable, what + e.code().message());
    }
  }
  return *answer;
}

}  // namespace

std::vector<Result> LinkupProvider::search(const Query& query) const {
  http::request<http::string_body> req{http::verb::post, target_, 11};
  req.set(http::field::host, host_);
  req.set(http::field::user_agent, "v4flash");
  req.set(http::field::content_type, "application/json");
  req.set(http::field::accept, "application/json");
  req.set(http::field::authorization, "Bearer " + options_.api_key);
  req.body() = json::serialize(linkup_request_body(query));
  req.prepare_payload();

  auto pause = options_.backoff;
  for (int n = 1;; ++n) {
    Answer a = attempt(options_, scheme_, host_, port_, req);
    if (a.status == 200) {
      auto results = parse_linkup_results(a.body, query.max_results);
      if (results.empty()) throw Error(Error::Kind::no_results, "the web search found nothing");
      return results;
    }
    const bool retryable = a.status == 429 || a.status >= 500;
    if (!retryable || n >= options_.max_attempts) throw error_for_status(a);
    auto wait = a.retry_after_s ? std::chrono::milliseconds(int64_t(*a.retry_after_s) * 1000) : pause;
    wait = std::min(wait, options_.max_backoff);
    spdlog::debug("linkup: attempt {} answered {}, retrying in {} ms", n, a.status, wait.count());
    std::this_thread::sleep_for(wait);
    pause = std::min(pause * 2, options_.max_backoff);
  }
}

}  // namespace v4::search
