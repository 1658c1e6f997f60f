#pragma once
// The Responses API's state (docs/api.md, "Stored responses"). A response made with `store` (the
// default) is kept with its input items, owned by the caller's account (Principal::owner): GET
// /v1/responses/{id} reads it back, GET .../input_items lists its input, DELETE removes it, a
// later request's previous_response_id continues its conversation, and its items (input and
// output) can be sent again by id (item_reference, api/item_reference.h). A `background` response
// runs detached: the POST answers at once (queued), GET polls it, POST .../cancel stops it.
//
// A kept response is rendered once, when its generation ends (its keeper's finish()): that object is
// both what the client gets and what is stored. Rows (product/response_table.h) are written by this
// store's own thread, never a network or engine thread; until a write lands, reads are answered from
// memory, so a response is readable as soon as its client has it. The same thread refreshes the rows
// of the background responses this process runs (a row left unrefreshed lost its process, and reads
// as failed), checks their keys' standing as a client's loop would, and deletes rows past retention.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <boost/json.hpp>

#include "api/query_params.h"
#include "api/service.h"
#include "product/response_table.h"

namespace v4::api {

struct ResponseStoreOptions {
  std::chrono::milliseconds retention{30LL * 24 * 3'600'000};  // finished responses are deleted after this
  int64_t max_bytes = 0;               // all stored responses together, oldest deleted first (0: no bound)
  size_t max_input_bytes = 16u << 20;  // one request's input items; a larger input with store is refused
  std::chrono::milliseconds tick{500};         // the store thread's pace (background keys' standing)
  std::chrono::milliseconds heartbeat{15'000};  // a running background response's row is refreshed this often,
  std::chrono::milliseconds stale{60'000};      // and one unrefreshed this long lost its process
  std::chrono::milliseconds prune_every{60'000};
};

// The stored-response routes: GET and DELETE /v1/responses/{id}, GET .../input_items, POST .../cancel.
enum class ResponseRoute { retrieve, remove, input_items, cancel };

class ResponseKeeper;

class ResponseStore : public std::enable_shared_from_this<ResponseStore> {
 public:
  static std::shared_ptr<ResponseStore> open(std::unique_ptr<product::ResponseTable> table,
                                             ResponseStoreOptions options = {});
  // A server without --db: a table in this process's memory, at most 256 MiB, gone at exit.
  static std::shared_ptr<ResponseStore> in_memory(ResponseStoreOptions options = {});
  ~ResponseStore();  // writes what is queued first
  ResponseStore(const ResponseStore&) = delete;
  ResponseStore& operator=(const ResponseStore&) = delete;

  // The request's input items as stored (JSON text; each has an id). Throws ApiError 400 naming
  // `store` when they exceed max_input_bytes.
  std::string input_items(const boost::json::value& input) const;
  // What previous_response_id continues: each response of the chain's input items, then its output
  // items, oldest first. Throws ApiError (404 previous_response_not_found; 400 while it runs).
  boost::json::array conversation(const std::string& id, const std::string& owner);

  // The stored item with this id, as a later request's input reads it (a Responses item_reference):
  // an output item of one of the owner's stored responses (reasoning the object did not show goes
  // back sealed), or an input item stored with one; the newest response holding it wins. nullopt:
  // none (unknown, another owner's, deleted, or made with store false).
  std::optional<boost::json::object> find_item(const std::string& item_id, const std::string& owner);

  // A keeper for a request with store, readable (queued) from now on; `g` is cancelled by cancel().
  std::shared_ptr<OutputKeeper> keep(const PreparedRequest& p, const Principal& who, std::weak_ptr<Generation> g);
  void abandon(const std::string& id);  // its generation never started: nothing is kept

  // One request to the routes (`body`: cancel's, which must be empty or {}). Throws ApiError; another
  // owner's id answers 404 exactly as a missing one does.
  boost::json::object answer(ResponseRoute route, const std::string& id, const QueryParams& query,
                             const std::string& body, const std::string& owner);

  // Whether a key may still run (the Authenticator's entitled): background responses of keys that
  // lost it are stopped, as a client's request would be.
  void set_entitlement_check(std::function<bool(const Principal&)> entitled);
  size_t background_running() const;
  void stop_background();  // the server stops: what still runs is cancelled (kept as failed)
  void flush();            // returns once every queued write has landed
  const std::string& backend() const { return backend_; }

 private:
  friend class ResponseKeeper;
  struct Write {
    std::shared_ptr<ResponseKeeper> keeper;
    std::shared_ptr<const boost::json::object> object;  // the state to write
    bool last = false;                                   // the final object: the keeper leaves memory
  };
  // A response made here and not yet written (keeper), else its row.
  struct Found {
    std::shared_ptr<ResponseKeeper> keeper;
    std::optional<product::StoredResponse> row;
  };

  ResponseStore(std::unique_ptr<product::ResponseTable> table, ResponseStoreOptions options);
  void enqueue(Write w);
  void run();  // the store thread
  void write(const Write& w);
  void upkeep(bool beat, bool prune);
  std::vector<std::shared_ptr<ResponseKeeper>> running_background() const;
  Found find(const std::string& id, const std::string& owner);
  // input_items' list: the items of the previous_response_id chain `f` continued, then its own.
  boost::json::array listed_items(const Found& f, const std::string& owner);
  void settle_lost(product::StoredResponse& row);

  boost::json::object retrieve(const std::string& id, const QueryParams& query, const std::string& owner);
  boost::json::object remove(const std::string& id, const std::string& owner);
  boost::json::object list_input_items(const std::string& id, const QueryParams& query, const std::string& owner);
  boost::json::object cancel(const std::string& id, const std::string& owner);

  std::unique_ptr<product::ResponseTable> table_;
  const ResponseStoreOptions options_;
  const std::string runner_;  // this process, in the rows of the background responses it runs
  std::string backend_;
  mutable std::mutex mutex_;
  std::condition_variable wake_, drained_;
  std::map<std::string, std::shared_ptr<ResponseKeeper>> live_;  // made here, final state not yet written
  std::deque<Write> queue_;
  size_t unwritten_ = 0;  // queued or being written
  bool stopping_ = false;
  std::function<bool(const Principal&)> entitled_;
  std::mutex io_mutex_;  // a row's write and its deletion never interleave
  std::thread thread_;
};

}  // namespace v4::api
