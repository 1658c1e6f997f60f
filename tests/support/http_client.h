#pragma once
// One HTTP/1.1 request from a test to a local server with Beast's client side, the reply read whole:
// what the API, response-state and gateway tests call the server with. (Tests whose subject is the
// HTTP layer itself use raw_socket.h.)
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

namespace v4::testing {

struct HttpReply {
  int status = 0;
  std::string body;
  std::string content_type;
  boost::beast::http::response<boost::beast::http::string_body> raw;
  boost::json::value json() const { return boost::json::parse(body); }
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// One request on an open connection (keep-alive tests send several on one); a body goes as JSON.
inline HttpReply http_exchange(boost::beast::tcp_stream& s, boost::beast::http::verb method, const std::string& target,
                               const std::string& body = {}, const HttpHeaders& headers = {}) {
  namespace http = boost::beast::http;
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, "localhost");
  for (auto& [k, v] : headers) req.set(k, v);
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.prepare_payload();
  s.expires_after(std::chrono::seconds(60));  // a server that never answers fails the test, not hangs it
  http::write(s, req);
  boost::beast::flat_buffer buf;
  http::response_parser<http::string_body> p;
  p.body_limit(64 << 20);
  p.skip(method == http::verb::head);
  http::read(s, buf, p);
  s.expires_never();
  HttpReply r;
  r.raw = p.release();
  r.status = r.raw.result_int();
  r.body = r.raw.body();
  r.content_type = std::string(r.raw[http::field::content_type]);
  return r;
}

// The same on a connection of its own to 127.0.0.1:port.
inline HttpReply http_call(uint16_t port, boost::beast::http::verb method, const std::string& target,
                           const std::string& body = {}, const HttpHeaders& headers = {}) {
  boost::asio::io_context ioc;
  boost::beast::tcp_stream s(ioc);
  s.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  return http_exchange(s, method, target, body, headers);
}

}  // namespace v4::testing
