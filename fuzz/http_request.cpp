// libFuzzer target for HTTP/1.1 requests as the server reads them: Beast's parser with the
// server's limits (64 KiB of headers, a body limit), fed in pieces cut by the input itself, then
// the server's routing of a complete request (path without query, credentials from Authorization
// or x-api-key) into the dialect parsers. Only Beast's error codes and ApiError may come out.
#include <cstdint>
#include <string>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "api/anthropic.h"
#include "api/chat.h"
#include "api/request.h"
#include "api/responses.h"

namespace http = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = 1 + data[0] % 64;  // bytes per put(): requests split across reads
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  http::request_parser<http::string_body> parser;
  parser.body_limit(1 << 16);
  parser.header_limit(64 * 1024);
  boost::beast::error_code ec;
  std::string pending;
  size_t pos = 0;
  while (!parser.is_done()) {
    if (pos < in.size()) {
      pending.append(in.substr(pos, piece));
      pos += std::min(piece, in.size() - pos);
    }
    const size_t used = parser.put(boost::asio::buffer(pending), ec);
    pending.erase(0, used);
    if (ec == http::error::need_more) {
      if (pos >= in.size()) return 0;
      ec = {};
      continue;
    }
    if (ec) return 0;
    if (used == 0 && pos >= in.size()) return 0;
  }
  const auto& req = parser.get();
  const std::string target(req.target());
  const std::string path = target.substr(0, target.find('?'));
  std::string secret(req[http::field::authorization]);
  if (secret.rfind("Bearer ", 0) == 0) secret.erase(0, 7);
  if (secret.empty()) secret = std::string(req["x-api-key"]);
  if (secret.size() > size) std::abort();  // a credential is a slice of the request
  using namespace v4::api;
  try {
    if (path == "/v1/chat/completions") (void)parse_chat_request(parse_json_body(req.body()));
    else if (path == "/v1/responses") (void)parse_responses_request(parse_json_body(req.body()));
    else if (path == "/v1/messages") (void)parse_anthropic_request(parse_json_body(req.body()));
    else if (path == "/v1/messages/count_tokens") (void)parse_anthropic_request(parse_json_body(req.body()), true);
  } catch (const ApiError&) {
  }
  return 0;
}
