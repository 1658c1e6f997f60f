#pragma once
// The web console served by `v4flash serve --db`: sign-up / sign-in with server-side sessions, the
// dashboard (credit, API keys, usage from the ledger), the public model page and the playground.
// Pages and assets are embedded in the binary (built from web/ at build time); the playground's
// requests go through the API's own /v1/chat/completions path, billed to the signed-in account.
#include <memory>
#include <string>
#include <vector>

#include "api/web.h"
#include "product/accounts.h"

namespace v4::console {

struct ConsoleOptions {
  bool signup_open = false;
  product::Nanodollars signup_credit = 0;  // credit of an account made by open sign-up
  std::vector<std::string> model_ids;      // the API's model ids
  int64_t context_length = 0;
  int64_t max_output_tokens = 0;
  std::string web_search;  // the search provider's name ("linkup", "local"); empty: web search is off
};

class Console final : public api::WebRoutes {
 public:
  Console(std::shared_ptr<product::Accounts> accounts, ConsoleOptions options);
  bool serves(const std::string& path) const override;
  api::WebResponse handle(const api::WebRequest& request) override;
  std::optional<api::Principal> session_principal(const api::WebRequest& request) override;

 private:
  std::shared_ptr<product::Accounts> accounts_;
  ConsoleOptions options_;
};

}  // namespace v4::console
