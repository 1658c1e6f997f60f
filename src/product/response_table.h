#pragma once
// Stored Responses-API responses (POST /v1/responses with `store`), one row each: the response
// object as returned, its input items and the reasoning it did not show (sealed by the API layer),
// owned by the account that made it, with the ids of its items indexed (table response_items).
// Every read and delete names the owner: another owner's id is indistinguishable from a missing
// one. The API layer (api/response_store.h) decides what goes in; this is the table, on SQLite or
// PostgreSQL (schema steps 4 and 5, product/schema.cpp).
//
// Thread-safe; one connection of its own, so large writes never wait on (or hold up) the ledger's.
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace v4::product {

class Store;

struct StoredResponse {
  std::string id;
  std::string owner;             // account id (or key id where keys have no account)
  std::string status;            // queued | in_progress | completed | incomplete | failed | cancelled
  bool background = false;
  std::string previous_id;       // previous_response_id ("" when none)
  std::string runner;            // the server process that runs it while queued / in progress
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;     // last write, or the runner's last sign of life
  std::string response;          // JSON text: the Response object
  std::string input_items;       // JSON text: the request's input items, each with an id
  std::string hidden;            // JSON text: sealed reasoning the object does not show ("" when none)
  int64_t bytes() const { return int64_t(response.size() + input_items.size() + hidden.size()); }
};

class ResponseTable {
 public:
  // A SQLite path (":memory:" for a process-local table), or a PostgreSQL URL; applies migrations.
  static std::unique_ptr<ResponseTable> open(const std::string& db_url_or_path);
  ~ResponseTable();
  ResponseTable(const ResponseTable&) = delete;
  ResponseTable& operator=(const ResponseTable&) = delete;

  // Inserts, or replaces the row with its id; indexes the ids its items carry (the input items', the
  // response's output items').
  void put(const StoredResponse& r);
  std::optional<StoredResponse> find(const std::string& id, const std::string& owner);
  // The owner's newest row holding an item (input or output) with this id (a Responses item_reference).
  std::optional<StoredResponse> find_item(const std::string& item_id, const std::string& owner);
  bool remove(const std::string& id, const std::string& owner);  // false: none of this owner's
  // The runner's sign of life for the rows it still runs (queued / in progress).
  void touch(const std::vector<std::string>& ids, const std::string& runner, int64_t now_ms);
  // Deletes finished rows made before `created_before_ms`, then, while the table holds more than
  // `max_bytes` (0: no bound), the oldest finished rows. Returns how many it deleted.
  int64_t prune(int64_t created_before_ms, int64_t max_bytes);
  std::string backend() const;  // "sqlite" or "postgresql"

 private:
  explicit ResponseTable(std::unique_ptr<Store> store);
  std::mutex mutex_;  // one connection: serialise its use
  std::unique_ptr<Store> store_;
};

}  // namespace v4::product
