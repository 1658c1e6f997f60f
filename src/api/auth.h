#pragma once
// The seams between the HTTP API and key management / billing. The server asks an Authenticator
// who the caller is and whether the request may run, and tells a UsageSink what every request
// used (exactly once per admitted request, also when it failed or the client went away).
#include <cstdint>
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
};

struct AdmissionInfo {
  std::string request_id;
  std::string model;
  int64_t prompt_tokens = 0;
  int64_t max_output_tokens = 0;
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // The secret from "Authorization: Bearer …" or "x-api-key" (empty when none was sent).
  // Throws ApiError (401) when it is missing or wrong.
  virtual Principal authenticate(const std::string& presented_secret) = 0;
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
};

class UsageSink {
 public:
  virtual ~UsageSink() = default;
  virtual void record(const UsageRecord& record) = 0;  // called from the engine thread; must not block long
};

// No keys configured: everyone is "anonymous".
class OpenAuthenticator final : public Authenticator {
 public:
  Principal authenticate(const std::string&) override { return {"anonymous"}; }
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
