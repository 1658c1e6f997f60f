#pragma once
// serve --deployment FILE: which backends serve each public model id (docs/deployment.md).
//   {"models": {"deepseek-v4-flash": {"region": "Germany (Frankfurt)",
//                "rates": {"input": "0.14", "output": "0.28"},          (optional: the rate card)
//                "parameters": ["temperature", "max_tokens"],           (optional: else all)
//                "backends": [{"url": "http://engine-2.internal:8000/v1", "model": "deepseek-v4-flash",
//                              "api_key_env": "UPSTREAM_KEY"}, {"local": true}]}, ...},
//    "routing": {...}}                                                  (optional: RoutingOptions)
// Every error names the key path (models.ID.backends[1].url: ...).
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "product/rate_card.h"

namespace v4::gateway {

struct BackendSpec {
  bool local = false;
  std::string url;           // the upstream's OpenAI base URL (…/v1)
  std::string model;         // the upstream's model name (default: the public id)
  std::string api_key_env;   // the environment variable that holds its key ("" none)
  std::string api_key;       // read from api_key_env when the file is loaded
  std::string ca_file;       // a CA to trust besides the system's
  std::string health_url;    // default: the URL's origin + /health
  int max_concurrency = 0;   // requests in flight to it at once (0: no limit)
  boost::json::object extra_body;  // merged into every upstream request (e.g. chat_template_kwargs)
  std::string name;          // for /health and /metrics (default: the URL, or "local")
};

struct ModelSpec {
  std::string region;
  std::optional<product::RateCard> rates;
  std::optional<std::vector<std::string>> parameters;
  std::vector<BackendSpec> backends;
};

struct RoutingOptions {
  std::chrono::milliseconds connect_timeout{5000};      // TCP connect and TLS handshake
  std::chrono::milliseconds first_byte_timeout{60000};  // from the request sent to the upstream's first event
  std::chrono::milliseconds idle_timeout{300000};       // between two events of a stream
  std::chrono::milliseconds health_interval{5000};      // active GET /health per upstream (0: off)
  int eject_after_errors = 3;                           // consecutive failures that eject a backend
  std::chrono::milliseconds eject_time{10000};          // out of rotation before it is tried again
  int affinity_tokens = 128;   // prompt tokens hashed for prefix affinity (one prefix-cache block)
  int max_attempts = 3;        // backends tried before the first byte (failover)
};

struct Deployment {
  std::map<std::string, ModelSpec> models;
  RoutingOptions routing;
  bool has_local() const;
  // Throws std::invalid_argument naming the key path. `env` looks up api_key_env (tests pass their own).
  static Deployment from_json(const std::string& text, std::function<const char*(const char*)> env = nullptr);
  static Deployment from_file(const std::string& path);
};

}  // namespace v4::gateway
