// `v4flash usage`: what was used and spent, from the ledger.
//   usage --db DB [--key ID] [--since YYYY-MM-DD] [--until YYYY-MM-DD] [--model ID] [--json]
// --json: {"requests": N, "cost_usd": ..., "by_model": {"<model id>": {"requests", "input_tokens"
// (uncached), "cached_input_tokens", "output_tokens", "reasoning_tokens", "web_search_calls",
// "cost_usd"}}}; costs are exact decimals (also "cost_nano_usd" as integers).
#include <boost/json.hpp>
#include <cstdio>
#include <map>
#include <stdexcept>

#include "cli/command.h"
#include "product/accounts.h"

namespace v4::cli {
namespace {

int usage_main(const Args& args) {
  ArgParser p(args);
  p.check_known({"db", "key", "since", "until", "model"}, {"json"});
  if (!p.positional().empty()) throw std::invalid_argument("usage takes no positional arguments");
  auto db = p.value("db");
  if (!db || db->empty()) {
    std::fprintf(stderr,
                 "usage: v4flash usage --db DB [--key ID] [--since YYYY-MM-DD] [--until YYYY-MM-DD] [--model ID] "
                 "[--json]\n");
    return 2;
  }
  product::UsageQuery q;
  q.key_id = p.value("key");
  q.since_day = p.value("since");
  q.until_day = p.value("until");
  q.model = p.value("model");
  auto accounts = product::Accounts::open(*db);
  if (p.flag("json")) {
    std::printf("%s\n", accounts->usage_json(q).c_str());
    return 0;
  }
  std::map<std::string, product::UsageTotals> by_model;
  product::UsageTotals total;
  for (const auto& row : accounts->usage_rows(q)) {
    auto& m = by_model[row.model];
    for (auto* t : {&m, &total}) {
      t->requests += row.totals.requests;
      t->input_tokens += row.totals.input_tokens;
      t->cached_input_tokens += row.totals.cached_input_tokens;
      t->output_tokens += row.totals.output_tokens;
      t->reasoning_tokens += row.totals.reasoning_tokens;
      t->web_search_calls += row.totals.web_search_calls;
      t->cost += row.totals.cost;
    }
  }
  auto line = [](const std::string& name, const product::UsageTotals& t) {
    std::printf("%-28s %9lld %12lld %12lld %12lld %12lld %7lld %14s\n", name.c_str(), (long long)t.requests,
                (long long)t.input_tokens, (long long)t.cached_input_tokens, (long long)t.output_tokens,
                (long long)t.reasoning_tokens, (long long)t.web_search_calls, product::format_usd(t.cost).c_str());
  };
  std::printf("%-28s %9s %12s %12s %12s %12s %7s %14s\n", "model", "requests", "input", "cached_in", "output",
              "reasoning", "search", "cost_usd");
  for (const auto& [model, t] : by_model) line(model, t);
  line("total", total);
  return 0;
}

}  // namespace

V4_COMMAND("usage", "Usage and spend from the ledger (--db DB [--key] [--since] [--model] [--json])", usage_main);

}  // namespace v4::cli
