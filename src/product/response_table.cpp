// The stored responses table over one Store connection of its own.
#include "product/response_table.h"

#include <set>

#include <boost/json.hpp>

#include "product/schema.h"
#include "product/store.h"

namespace v4::product {

namespace {

constexpr const char* kColumns =
    "id, owner, status, background, previous_id, runner, created_at_ms, updated_at_ms, response, input_items, hidden";
constexpr const char* kFinished = "status NOT IN ('queued', 'in_progress')";

StoredResponse from_row(const SqlRow& r) {
  StoredResponse s;
  s.id = r.text(0);
  s.owner = r.text(1);
  s.status = r.text(2);
  s.background = r.integer(3) != 0;
  s.previous_id = r.text(4);
  s.runner = r.text(5);
  s.created_at_ms = r.integer(6);
  s.updated_at_ms = r.integer(7);
  s.response = r.text(8);
  s.input_items = r.text(9);
  s.hidden = r.text(10);
  return s;
}

// The ids of a row's items: its input items' and its response object's output items'. Text that
// is not what the API layer writes indexes nothing (the row is still kept).
std::set<std::string> item_ids(const StoredResponse& r) {
  std::set<std::string> ids;
  auto gather = [&](const boost::json::value& items) {
    if (!items.is_array()) return;
    for (auto& item : items.get_array())
      if (item.is_object())
        if (auto* id = item.get_object().if_contains("id"); id && id->is_string()) ids.emplace(id->get_string());
  };
  boost::system::error_code ec;
  boost::json::value input = boost::json::parse(r.input_items, ec);
  if (!ec) gather(input);
  boost::json::value response = boost::json::parse(r.response, ec);
  if (!ec && response.is_object())
    if (auto* output = response.get_object().if_contains("output")) gather(*output);
  return ids;
}

}  // namespace

std::unique_ptr<ResponseTable> ResponseTable::open(const std::string& db_url_or_path) {
  auto store = Store::open(db_url_or_path);
  migrate(*store);
  return std::unique_ptr<ResponseTable>(new ResponseTable(std::move(store)));
}

ResponseTable::ResponseTable(std::unique_ptr<Store> store) : store_(std::move(store)) {}
ResponseTable::~ResponseTable() = default;

std::string ResponseTable::backend() const { return store_->dialect() == Dialect::sqlite ? "sqlite" : "postgresql"; }

void ResponseTable::put(const StoredResponse& r) {
  std::lock_guard lock(mutex_);
  run_transaction(*store_, [&] {
    store_->exec(std::string("INSERT INTO responses (") + kColumns + ", bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, status = excluded.status, "
                 "background = excluded.background, previous_id = excluded.previous_id, runner = excluded.runner, "
                 "updated_at_ms = excluded.updated_at_ms, response = excluded.response, "
                 "input_items = excluded.input_items, hidden = excluded.hidden, bytes = excluded.bytes",
                 {r.id, r.owner, r.status, int64_t(r.background), r.previous_id, r.runner, r.created_at_ms,
                  r.updated_at_ms, r.response, r.input_items, r.hidden, r.bytes()});
    store_->exec("DELETE FROM response_items WHERE response_id = ?", {r.id});
    for (const auto& item : item_ids(r))
      store_->exec("INSERT INTO response_items (response_id, item_id, owner) VALUES (?, ?, ?)", {r.id, item, r.owner});
  });
}

std::optional<StoredResponse> ResponseTable::find(const std::string& id, const std::string& owner) {
  std::lock_guard lock(mutex_);
  auto rows = store_->query(std::string("SELECT ") + kColumns + " FROM responses WHERE id = ? AND owner = ?", {id, owner});
  if (rows.empty()) return std::nullopt;
  return from_row(rows.at(0));
}

std::optional<StoredResponse> ResponseTable::find_item(const std::string& item_id, const std::string& owner) {
  std::lock_guard lock(mutex_);
  auto rows = store_->query(std::string("SELECT ") + kColumns + " FROM responses WHERE owner = ? AND id IN "
                                "(SELECT response_id FROM response_items WHERE owner = ? AND item_id = ?) "
                                "ORDER BY created_at_ms DESC, id DESC LIMIT 1",
                            {owner, owner, item_id});
  if (rows.empty()) return std::nullopt;
  return from_row(rows.at(0));
}

bool ResponseTable::remove(const std::string& id, const std::string& owner) {
  std::lock_guard lock(mutex_);
  return run_transaction(*store_, [&] {
    return store_->exec("DELETE FROM responses WHERE id = ? AND owner = ?", {id, owner}) > 0;
  });
}

void ResponseTable::touch(const std::vector<std::string>& ids, const std::string& runner, int64_t now_ms) {
  if (ids.empty()) return;
  std::lock_guard lock(mutex_);
  run_transaction(*store_, [&] {
    for (const auto& id : ids)
      store_->exec(std::string("UPDATE responses SET updated_at_ms = ? WHERE id = ? AND runner = ? AND NOT (") +
                       kFinished + ")",
                   {now_ms, id, runner});
  });
}

int64_t ResponseTable::prune(int64_t created_before_ms, int64_t max_bytes) {
  std::lock_guard lock(mutex_);
  return run_transaction(*store_, [&] {
    int64_t deleted = store_->exec(std::string("DELETE FROM responses WHERE created_at_ms < ? AND ") + kFinished,
                                   {created_before_ms});
    if (max_bytes <= 0) return deleted;
    // Newest first: keep rows while they fit, delete the rest (oldest).
    int64_t kept = 0;
    for (const auto& r : store_->query(std::string("SELECT id, bytes FROM responses WHERE ") + kFinished +
                                       " ORDER BY created_at_ms DESC, id DESC")) {
      kept += r.integer(1);
      if (kept > max_bytes) deleted += store_->exec("DELETE FROM responses WHERE id = ?", {r.text(0)});
    }
    return deleted;
  });
}

}  // namespace v4::product
