#pragma once
// The seam for routes served beside the API by a higher layer (the web console): the server hands
// over requests for the paths the handler claims, and asks it who sent an API request that carries
// no key (a signed-in console user's playground request: session cookie + CSRF header).
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "api/auth.h"

namespace v4::api {

struct WebRequest {
  std::string method;                         // "GET", "POST", ...
  std::string target;                         // path and query as sent
  std::string path;                           // target without the query
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string client;                         // peer address (for sign-in throttling)
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct WebResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

class WebRoutes {
 public:
  virtual ~WebRoutes() = default;
  virtual bool serves(const std::string& path) const = 0;
  // The largest request body the handler takes: the server refuses more (413) before reading it.
  virtual size_t body_limit() const { return size_t(64) << 10; }
  virtual WebResponse handle(const WebRequest& request) = 0;
  // For an API request without a key: the console user it comes from (nullopt: none, the usual
  // 401 follows). Throws ApiError to refuse (e.g. a session cookie without its CSRF token).
  virtual std::optional<Principal> session_principal(const WebRequest& request) = 0;
};

}  // namespace v4::api
