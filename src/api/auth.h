#pragma once
// The seams between the HTTP API and key management / billing. The server asks an Authenticator
// who the caller is and whether the request may run, and tells a UsageSink what every request
// used (exactly once per admitted request, also when it failed or the client went away).
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "api/output.h"
#include "api/request.h"

namespace v4::api {

struct Principal {
  std::string key_id;  // "static" for the --api-key key, "anonymous" when auth is off
  bool is_operator = false;  // the --api-key key (or no auth at all): may read /metrics and all usage
  // The unit of fair sharing and of prefix-cache isolation: the key's id (its account once keys
  // belong to accounts). The operator (or everyone, with auth off) is no tenant: not capped, and
  // its cache entries live in the shared namespace.
  std::string tenant() const { return is_operator ? std::string() : key_id; }
  std::string source = "api";  // "playground": a console user's request (billed the same way)
  std::string account = {};     // the key's account (managed keys); empty where keys have none
  // Who owns what the caller stores (Responses store): its account, else its key.
  std::string owner() const { return account.empty() ? key_id : account; }
};

struct AdmissionInfo {
  std::string request_id;
  std::string model;
  int64_t prompt_tokens = 0;
  int64_t max_output_tokens = 0;
  bool free_of_charge = false;  // token counting: rate limits and credit > 0 apply, nothing is held
  int64_t web_search_calls = 0;  // searches the request made (held and billed per call)
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // The secret from "Authorization: Bearer …" or "x-api-key" (empty when none was sent).
  // Throws ApiError (401) when it is missing or wrong.
  virtual Principal authenticate(const std::string& presented_secret) = 0;
  // Before any work on a request (reading its body, parsing, tokenising): throws ApiError (401 key
  // revoked, 402 no credit left) for a key that could not be admitted whatever the request is.
  virtual void precheck(const Principal&) {}
  // While a request runs: false once the key was revoked or its credit set to zero or below, which
  // stops its running generations.
  virtual bool entitled(const Principal&) { return true; }
  // The same news pushed, where this process learns it (a key revoked through it, a charge that
  // used its credit up): `lost` gets the keys' ids at once, from any thread, so their running
  // generations stop at the engine's next step; it returns false once its owner is gone.
  // entitled() stays the fallback for changes made elsewhere (the CLI, another replica).
  virtual void watch_entitlements(std::function<bool(const std::vector<std::string>& key_ids)> /*lost*/) {}
  // Called once the prompt size is known, before generation. Throws ApiError (402 no credit,
  // 429 rate limited, ...) to refuse. An admitted request always reaches UsageSink::record.
  virtual void admit(const Principal&, const AdmissionInfo&) {}
  // GET /v1/usage for the caller (JSON text); std::nullopt when this deployment keeps no ledger.
  virtual std::optional<std::string> usage_report(const Principal&) { return std::nullopt; }
};

struct UsageRecord {
  std::string request_id;
  std::string key_id;
  std::string model;
  Dialect dialect = Dialect::chat;
  Usage usage;
  std::string status;  // completed | length | stop | cancelled | failed
  int64_t started_at_ms = 0, first_token_at_ms = 0, ended_at_ms = 0;
  std::string source = "api";  // the Principal's source
  int64_t web_search_calls = 0;  // searches run for the request (the ledger's web_search_calls)
};

class UsageSink {
 public:
  virtual ~UsageSink() = default;
  virtual void record(const UsageRecord& record) = 0;  // called from the engine thread; must not block long
};

// No keys configured: everyone is "anonymous".
class OpenAuthenticator final : public Authenticator {
 public:
  Principal authenticate(const std::string&) override { return {"anonymous", true}; }
};

// `serve --api-key KEY` (repeatable): constant-time comparison against the configured keys.
class StaticKeyAuthenticator final : public Authenticator {
 public:
  explicit StaticKeyAuthenticator(std::vector<std::string> keys) : keys_(std::move(keys)) {}
  Principal authenticate(const std::string& presented_secret) override;

 private:
  std::vector<std::string> keys_;
};

// Keeps the last records in memory (tests, and the log line of `serve`).
class MemoryUsageSink final : public UsageSink {
 public:
  void record(const UsageRecord& record) override;
  std::vector<UsageRecord> records() const;

 private:
  mutable std::mutex mutex_;
  std::vector<UsageRecord> records_;
};

}  // namespace v4::api
