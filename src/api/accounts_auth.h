#pragma once
// Managed keys and billing: the Authenticator + UsageSink seams of the API implemented over the
// product layer's Accounts (keys, admission with credit holds and rpm/tpm windows, ledger).
#include <memory>
#include <string>
#include <vector>

#include "api/auth.h"
#include "product/accounts.h"

namespace v4::api {

class AccountsGate final : public Authenticator, public UsageSink {
 public:
  // `static_keys` (serve --api-key) are accepted too, as an unmetered operator key.
  AccountsGate(std::shared_ptr<product::Accounts> accounts, std::vector<std::string> static_keys = {});

  Principal authenticate(const std::string& presented_secret) override;
  void admit(const Principal& who, const AdmissionInfo& info) override;
  void precheck(const Principal& who) override;
  bool entitled(const Principal& who) override;
  void watch_entitlements(std::function<bool(const std::vector<std::string>& key_ids)> lost) override;
  std::optional<std::string> usage_report(const Principal& who) override;
  void record(const UsageRecord& record) override;

 private:
  std::shared_ptr<product::Accounts> accounts_;
  StaticKeyAuthenticator static_;
  bool has_static_ = false;
};

}  // namespace v4::api
