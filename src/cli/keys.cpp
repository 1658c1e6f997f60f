// `v4flash keys`: API key management on the accounts database (SQLite path or postgresql:// URL).
//   keys create --db DB [--name N] [--credit USD] [--rpm N] [--tpm N] [--account EMAIL] [--json]
//       prints the secret once (--json: {"id": ..., "key": ...}); no --credit = unlimited; without
//       --account the key belongs to the built-in "default" account (unlimited: the key's own credit rules)
//   keys list --db DB [--json]
//   keys revoke ID --db DB
//   keys set-credit ID --credit USD|unlimited --db DB
// Positional arguments (the action, the key id) come before the options.
#include <boost/json.hpp>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <stdexcept>
#include <string>

#include "cli/command.h"
#include "product/accounts.h"

namespace v4::cli {
namespace {

constexpr const char* kUsage =
    "usage: v4flash keys create --db DB [--name N] [--credit USD] [--rpm N] [--tpm N] [--account EMAIL] [--json]\n"
    "       v4flash keys list --db DB [--json]\n"
    "       v4flash keys revoke ID --db DB\n"
    "       v4flash keys set-credit ID --credit USD|unlimited --db DB\n"
    "DB is a SQLite file path or a postgresql:// URL.\n";

int64_t parse_limit(const std::string& name, const std::string& text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < 0)
    throw std::invalid_argument("--" + name + " must be a whole number >= 0 (0 = unlimited), got '" + text + "'");
  return v;
}

std::optional<product::Nanodollars> parse_credit(const std::string& text) {
  if (text == "unlimited") return std::nullopt;
  auto v = product::parse_usd(text);
  if (v < 0) throw std::invalid_argument("--credit must not be negative");
  return v;
}

std::string credit_text(const std::optional<product::Nanodollars>& c) {
  return c ? product::format_usd(*c) : "unlimited";
}

std::string time_text(int64_t ms) {
  std::time_t t = std::time_t(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string require_db(const ArgParser& p) {
  auto db = p.value("db");
  if (!db || db->empty()) throw std::invalid_argument("--db DB is required (a SQLite path or postgresql:// URL)");
  return *db;
}

std::string require_id(const std::vector<std::string>& pos, const char* action) {
  if (pos.size() != 2) throw std::invalid_argument(std::string("keys ") + action + " needs exactly one key id");
  return pos[1];
}

// The credit column as JSON: an exact decimal number, or null for unlimited.
std::string credit_json(const std::optional<product::Nanodollars>& c) { return c ? product::format_usd(*c) : "null"; }

int keys_main(const Args& args) {
  ArgParser p(args);
  auto pos = p.positional();
  if (pos.empty() || pos[0] == "help" || p.flag("help")) {
    std::fputs(kUsage, pos.empty() ? stderr : stdout);
    return pos.empty() ? 2 : 0;
  }
  const std::string& action = pos[0];
  if (action == "create") {
    p.check_known({"db", "name", "credit", "rpm", "tpm", "account"}, {"json"});
    if (pos.size() != 1) throw std::invalid_argument("keys create takes no positional arguments");
    product::KeyOptions options;
    options.name = p.value_or("name", "");
    if (auto c = p.value("credit")) options.credit = parse_credit(*c);
    if (auto r = p.value("rpm")) options.rpm_limit = parse_limit("rpm", *r);
    if (auto t = p.value("tpm")) options.tpm_limit = parse_limit("tpm", *t);
    auto accounts = product::Accounts::open(require_db(p));
    if (auto email = p.value("account")) {
      auto owner = accounts->find_account_by_email(*email);
      if (!owner) throw std::invalid_argument("--account: no account with email '" + *email + "'");
      options.account_id = owner->id;
    }
    auto created = accounts->create_key(options);
    if (p.flag("json")) {
      boost::json::object o{{"id", created.info.id}, {"key", created.secret}, {"name", created.info.name}};
      std::printf("%s\n", boost::json::serialize(o).c_str());
    } else {
      std::printf("%s\n", created.secret.c_str());
      std::fprintf(stderr, "key id %s (credit %s, rpm %lld, tpm %lld); the secret above is shown only once\n",
                   created.info.id.c_str(), credit_text(created.info.credit).c_str(),
                   (long long)created.info.rpm_limit, (long long)created.info.tpm_limit);
    }
    return 0;
  }
  if (action == "list") {
    p.check_known({"db"}, {"json"});
    auto accounts = product::Accounts::open(require_db(p));
    auto keys = accounts->list_keys();
    if (p.flag("json")) {
      std::string out = "[";
      for (size_t i = 0; i < keys.size(); ++i) {
        const auto& k = keys[i];
        out += (i ? ", " : "") + std::string("{\"id\": ") + boost::json::serialize(boost::json::string(k.id)) +
               ", \"name\": " + boost::json::serialize(boost::json::string(k.name)) +
               ", \"credit_usd\": " + credit_json(k.credit) + ", \"spent_usd\": " + product::format_usd(k.spent) +
               ", \"rpm\": " + std::to_string(k.rpm_limit) + ", \"tpm\": " + std::to_string(k.tpm_limit) +
               ", \"created_at\": \"" + time_text(k.created_at_ms) + "\", \"revoked\": " +
               (k.revoked() ? "true" : "false") + "}";
      }
      std::printf("%s]\n", out.c_str());
    } else {
      std::printf("%-12s  %-16s  %14s  %14s  %6s  %9s  %-20s  %s\n", "id", "name", "credit_usd", "spent_usd", "rpm",
                  "tpm", "created", "status");
      for (const auto& k : keys)
        std::printf("%-12s  %-16s  %14s  %14s  %6lld  %9lld  %-20s  %s\n", k.id.c_str(), k.name.c_str(),
                    credit_text(k.credit).c_str(), product::format_usd(k.spent).c_str(), (long long)k.rpm_limit,
                    (long long)k.tpm_limit, time_text(k.created_at_ms).c_str(), k.revoked() ? "revoked" : "active");
    }
    return 0;
  }
  if (action == "revoke") {
    p.check_known({"db"});
    std::string id = require_id(pos, "revoke");
    auto accounts = product::Accounts::open(require_db(p));
    if (!accounts->revoke_key(id)) throw std::invalid_argument("no key with id '" + id + "'");
    std::printf("revoked %s\n", id.c_str());
    return 0;
  }
  if (action == "set-credit") {
    p.check_known({"db", "credit"});
    std::string id = require_id(pos, "set-credit");
    auto text = p.value("credit");
    if (!text) throw std::invalid_argument("keys set-credit needs --credit USD (or 'unlimited')");
    auto credit = parse_credit(*text);
    auto accounts = product::Accounts::open(require_db(p));
    if (!accounts->set_credit(id, credit)) throw std::invalid_argument("no key with id '" + id + "'");
    std::printf("credit of %s set to %s\n", id.c_str(), credit_text(credit).c_str());
    return 0;
  }
  throw std::invalid_argument("unknown keys action '" + action + "'\n" + kUsage);
}

}  // namespace

V4_COMMAND("keys", "API keys: create, list, revoke, set-credit (--db DB)", keys_main);

}  // namespace v4::cli
