#include "api/auth.h"

#include <mutex>

namespace v4::api {

namespace {
// Compares without an early exit so the time taken does not reveal the matching prefix length.
bool constant_time_equal(const std::string& a, const std::string& b) {
  unsigned diff = unsigned(a.size() ^ b.size());
  for (size_t i = 0; i < a.size(); ++i) diff |= unsigned(uint8_t(a[i]) ^ uint8_t(i < b.size() ? b[i] : 0));
  return diff == 0;
}
}  // namespace

Principal StaticKeyAuthenticator::authenticate(const std::string& presented_secret) {
  if (presented_secret.empty())
    throw ApiError(401, "authentication_error",
                   "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'", "", "missing_api_key");
  bool ok = false;
  for (auto& k : keys_) ok |= constant_time_equal(k, presented_secret);
  if (!ok) throw ApiError(401, "authentication_error", "invalid API key", "", "invalid_api_key");
  return {"static", true};
}

void MemoryUsageSink::record(const UsageRecord& record) {
  std::lock_guard lock(mutex_);
  records_.push_back(record);
  if (records_.size() > 10000) records_.erase(records_.begin(), records_.begin() + 5000);
}

std::vector<UsageRecord> MemoryUsageSink::records() const {
  std::lock_guard lock(mutex_);
  return records_;
}

}  // namespace v4::api
