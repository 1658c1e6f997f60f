// `v4flash accounts`: console accounts (email + password) on the accounts database.
//   accounts create --db DB --email E --password-stdin [--credit USD] [--admin]
//   accounts credit --db DB --email E --add USD
//   accounts list --db DB [--json]
// The password is read from the first line of stdin, never from the command line (where other
// users could read it in the process list).
#include <boost/json.hpp>
#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <string>

#include "cli/command.h"
#include "product/accounts.h"

namespace v4::cli {
namespace {

constexpr const char* kUsage =
    "usage: v4flash accounts create --db DB --email E --password-stdin [--credit USD] [--admin]\n"
    "       v4flash accounts credit --db DB --email E --add USD\n"
    "       v4flash accounts list --db DB [--json]\n"
    "DB is a SQLite file path or a postgresql:// URL. New accounts start with --credit (default 0).\n";

std::string required(const ArgParser& p, const char* name) {
  auto v = p.value(name);
  if (!v || v->empty()) throw std::invalid_argument(std::string("--") + name + " is required");
  return *v;
}

std::string credit_text(const std::optional<product::Nanodollars>& c) { return c ? product::format_usd(*c) : "unlimited"; }

int create(const ArgParser& p) {
  p.check_known({"db", "email", "credit"}, {"password-stdin", "admin"});
  if (!p.flag("password-stdin")) throw std::invalid_argument("pass the password on stdin with --password-stdin");
  std::string password;
  std::getline(std::cin, password);
  if (!password.empty() && password.back() == '\r') password.pop_back();
  product::Nanodollars credit = product::parse_usd(p.value_or("credit", "0"));
  if (credit < 0) throw std::invalid_argument("--credit must not be negative");
  auto accounts = product::Accounts::open(required(p, "db"));
  auto a = accounts->create_account(required(p, "email"), password, credit, p.flag("admin"));
  std::printf("created account %s (%s), credit %s%s\n", a.id.c_str(), a.email.c_str(), credit_text(a.credit).c_str(),
              a.admin ? ", admin" : "");
  return 0;
}

int credit(const ArgParser& p) {
  p.check_known({"db", "email", "add"});
  product::Nanodollars add = product::parse_usd(required(p, "add"));
  if (add <= 0) throw std::invalid_argument("--add must be a positive amount");
  auto accounts = product::Accounts::open(required(p, "db"));
  auto a = accounts->find_account_by_email(required(p, "email"));
  if (!a) throw std::invalid_argument("no account with email '" + required(p, "email") + "'");
  accounts->add_credit(a->id, add);
  std::printf("credit of %s is now %s\n", a->email.c_str(), credit_text(accounts->find_account(a->id)->credit).c_str());
  return 0;
}

int list(const ArgParser& p) {
  p.check_known({"db"}, {"json"});
  auto accounts = product::Accounts::open(required(p, "db"));
  boost::json::array out;
  if (!p.flag("json"))
    std::printf("%-21s  %-32s  %14s  %14s  %5s  %s\n", "id", "email", "credit_usd", "spent_usd", "keys", "role");
  for (const auto& a : accounts->list_accounts()) {
    product::UsageQuery q;
    q.account_id = a.id;
    auto spent = accounts->usage_totals(q).cost;
    size_t keys = accounts->list_account_keys(a.id).size();
    if (p.flag("json")) {
      boost::json::value credit = nullptr;
      if (a.credit) credit = product::format_usd(*a.credit);
      out.push_back(boost::json::object{{"id", a.id}, {"email", a.email}, {"admin", a.admin}, {"credit_usd", credit},
                                        {"spent_usd", product::format_usd(spent)}, {"keys", keys}});
    } else {
      std::printf("%-21s  %-32s  %14s  %14s  %5zu  %s\n", a.id.c_str(), a.email.c_str(), credit_text(a.credit).c_str(),
                  product::format_usd(spent).c_str(), keys, a.admin ? "admin" : "user");
    }
  }
  if (p.flag("json")) std::printf("%s\n", boost::json::serialize(out).c_str());
  return 0;
}

int accounts_main(const Args& args) {
  ArgParser p(args);
  auto pos = p.positional();
  if (pos.empty() || p.flag("help")) {
    std::fputs(kUsage, pos.empty() ? stderr : stdout);
    return pos.empty() ? 2 : 0;
  }
  if (pos.size() != 1) throw std::invalid_argument("accounts " + pos[0] + " takes no positional arguments");
  if (pos[0] == "create") return create(p);
  if (pos[0] == "credit") return credit(p);
  if (pos[0] == "list") return list(p);
  throw std::invalid_argument("unknown accounts action '" + pos[0] + "'\n" + kUsage);
}

}  // namespace

V4_COMMAND("accounts", "console accounts: create, credit, list (--db DB)", accounts_main);

}  // namespace v4::cli
