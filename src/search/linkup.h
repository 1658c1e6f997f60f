#pragma once
// Linkup's search API (POST {base}/search, docs/api.md section 7) over HTTPS with certificate and
// host name verification, a deadline per attempt and bounded retries with backoff on 429 and 5xx.
// The key is given by the caller (serve reads it from an environment variable); nothing here logs
// it or the query text.
#include <chrono>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "search/provider.h"

namespace v4::search {

struct LinkupOptions {
  std::string base_url = "https://api.linkup.so/v1";  // http:// only for loopback hosts (tests)
  std::string api_key;
  std::string ca_file;  // a CA to trust besides the system's (a private gateway, tests); empty: system only
  std::chrono::milliseconds timeout{15000};  // one attempt: connect, TLS handshake, request, answer
  int max_attempts = 3;                      // attempts in all; only 429 and 5xx are tried again
  std::chrono::milliseconds backoff{500};    // pause before the second attempt, doubled after each
  std::chrono::milliseconds max_backoff{4000};  // bound on a pause, Retry-After included
};

class LinkupProvider final : public Provider {
 public:
  // Throws std::invalid_argument for an unusable URL (scheme, plain HTTP to a remote host) or CA file.
  explicit LinkupProvider(LinkupOptions options);
  std::vector<Result> search(const Query& query) const override;
  std::string name() const override { return "linkup"; }

 private:
  LinkupOptions options_;
  std::string scheme_, host_, port_, target_;
};

// The request body of one search (outputType "searchResults").
boost::json::object linkup_request_body(const Query& query);
// The results of a searchResults answer (text results only, at most max_results); throws
// Error::bad_response when the body is not that shape.
std::vector<Result> parse_linkup_results(const std::string& body, int max_results);

}  // namespace v4::search
