#include "api/response_store.h"
#include "api/responses.h"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace v4::api {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool running(const std::string& status) { return status == "queued" || status == "in_progress"; }

ApiError not_found(const std::string& id) {
  return ApiError(404, "invalid_request_error", "Response with id '" + id + "' not found.", "", "not_found");
}

// An input item as stored and listed (OpenAI's item resources): a type and an id, and a message's
// text content as parts.
json::object stored_item(json::object item) {
  if (!item.contains("type") || item.at("type").is_null()) item["type"] = "message";
  const std::string type(item.at("type").as_string());
  if (!item.contains("id") || !item.at("id").is_string()) {
    static const std::map<std::string, std::string> prefixes = {
        {"message", "msg_"}, {"reasoning", "rs_"}, {"function_call", "fc_"}, {"function_call_output", "fco_"},
        {"custom_tool_call", "ctc_"}, {"custom_tool_call_output", "ctco_"}, {"web_search_call", "ws_"}};
    auto it = prefixes.find(type);
    item["id"] = (it == prefixes.end() ? std::string("item_") : it->second) + random_id(40);
  }
  if (type == "message" && item.contains("content") && item.at("content").is_string()) {
    const bool assistant = item.contains("role") && item.at("role") == "assistant";
    json::object part{{"type", assistant ? "output_text" : "input_text"}, {"text", item.at("content")}};
    if (assistant) part["annotations"] = json::array{};
    item["content"] = json::array{std::move(part)};
  }
  return item;
}

// A stored object's output items, as a later request's input reads them: reasoning the object did
// not show goes back sealed (`hidden`: output index -> sealed text).
json::array output_for_input(const json::object& response, const std::string& hidden) {
  json::array out = response.at("output").as_array();
  if (hidden.empty()) return out;
  const json::value sealed_items = json::parse(hidden);
  for (auto& [index, sealed] : sealed_items.as_object()) {
    const size_t i = std::stoul(std::string(index));
    if (i < out.size() && out[i].is_object()) out[i].as_object()["encrypted_content"] = sealed;
  }
  return out;
}

// The item with this id among a response's items as a later input reads them: its output items
// first (the items it made), then its input items.
std::optional<json::object> item_in(const json::object& response, const std::string& hidden,
                                    const std::string& input_items, const std::string& id) {
  auto match = [&](const json::value& v) {
    return v.is_object() && v.get_object().contains("id") && v.at("id").is_string() && v.at("id").get_string() == id;
  };
  const json::value* output = response.if_contains("output");
  if (output && output->is_array() && std::any_of(output->get_array().begin(), output->get_array().end(), match))
    for (auto& item : output_for_input(response, hidden))
      if (match(item)) return item.as_object();
  // (most responses do not hold it: their text tells without a parse, unless the id is escaped in it)
  auto plain = [](unsigned char c) { return c >= 0x20 && c != '"' && c != '\\'; };
  if (std::all_of(id.begin(), id.end(), plain) && input_items.find(id) == std::string::npos) return std::nullopt;
  const json::value items = json::parse(input_items);
  for (auto& item : items.as_array())
    if (match(item)) return item.as_object();
  return std::nullopt;
}

// include=reasoning.encrypted_content on GET: each reasoning item carries its sealed text.
void include_sealed_reasoning(json::object& response, const std::string& hidden) {
  json::object sealed = hidden.empty() ? json::object{} : json::parse(hidden).as_object();
  auto& output = response.at("output").as_array();
  for (size_t i = 0; i < output.size(); ++i) {
    auto& item = output[i].as_object();
    if (item.at("type") != "reasoning" || item.at("encrypted_content").is_string()) continue;
    if (auto* s = sealed.if_contains(std::to_string(i))) {
      item["encrypted_content"] = *s;
      continue;
    }
    std::string text;
    for (auto& part : item.at("content").as_array()) text += part.at("text").as_string();
    item["encrypted_content"] = seal_reasoning(text);
  }
}

}  // namespace

// ----------------------------------------------------------------------------- ResponseKeeper
// One response with store while it is made: fed by its generation (under the generation's lock),
// read by the routes, written by the store thread.
class ResponseKeeper final : public OutputKeeper, public std::enable_shared_from_this<ResponseKeeper> {
 public:
  ResponseKeeper(std::weak_ptr<ResponseStore> store, const PreparedRequest& p, const Principal& who,
                 std::weak_ptr<Generation> g)
      : id(p.meta.id), owner(who.owner()), who(who), background(p.req.background),
        previous_id(p.req.previous_response_id.value_or("")), input_items(p.input_items), created_at_ms(now_ms()),
        store_(std::move(store)), req_(p.req), meta_(p.meta), generation_(std::move(g)) {
    req_.messages.clear();  // the object echoes the request's settings, not its conversation
  }

  void add(const Delta& d) override {
    std::lock_guard lock(mutex_);
    turn_.add(d);
  }

  std::shared_ptr<const json::object> finish(runtime::FinishReason reason, const Outcome& o, bool revoked) override {
    std::shared_ptr<const json::object> object;
    {
      std::lock_guard lock(mutex_);
      json::object r = render_response(req_, meta_, turn_, o);
      if (reason == runtime::FinishReason::Cancelled) settle_cancelled(r, revoked);
      hidden_ = hidden_reasoning(r);
      final_ = object = std::make_shared<const json::object>(std::move(r));
    }
    done_.notify_all();
    if (auto store = store_.lock()) store->enqueue({shared_from_this(), object, true});
    return object;
  }

  // The object now: final once finished, else queued / in progress without output.
  std::shared_ptr<const json::object> object() const {
    std::lock_guard lock(mutex_);
    if (final_) return final_;
    const char* status = turn_.parts.empty() ? "queued" : "in_progress";
    return std::make_shared<const json::object>(render_pending_response(req_, meta_, status));
  }
  bool finished() const {
    std::lock_guard lock(mutex_);
    return final_ != nullptr;
  }
  std::string hidden() const {
    std::lock_guard lock(mutex_);
    return hidden_;
  }

  // POST .../cancel: stops the generation and waits (bounded) for its final object.
  std::shared_ptr<const json::object> cancel() {
    {
      std::lock_guard lock(mutex_);
      if (final_) return final_;
      user_cancelled_ = true;
    }
    stop();
    std::unique_lock lock(mutex_);
    done_.wait_for(lock, std::chrono::seconds(10), [&] { return final_ != nullptr; });
    lock.unlock();
    return object();
  }
  void stop() {
    if (auto g = generation_.lock()) g->cancel();
  }
  void revoke() {
    if (auto g = generation_.lock()) g->revoke();
  }

  // Deleted (or abandoned): its writes are skipped. Set and read under the store's io_mutex_.
  bool deleted = false;

  product::StoredResponse row(const json::object& object, const std::string& runner) const {
    product::StoredResponse r;
    r.id = id;
    r.owner = owner;
    r.status = std::string(object.at("status").as_string());
    r.background = background;
    r.previous_id = previous_id;
    r.runner = background ? runner : "";
    r.created_at_ms = created_at_ms;
    r.updated_at_ms = now_ms();
    r.response = json::serialize(object);
    r.input_items = input_items;
    r.hidden = hidden();
    return r;
  }

  const std::string id, owner;
  const Principal who;
  const bool background;
  const std::string previous_id, input_items;
  const int64_t created_at_ms;

 private:
  // A stop the client asked for is `cancelled`; the server's (its key revoked, the server shutting
  // down a background response) is a failure that says why.
  void settle_cancelled(json::object& r, bool revoked) const {
    if (!revoked && (user_cancelled_ || !background)) {
      r["status"] = "cancelled";
      return;
    }
    r["status"] = "failed";
    r["error"] = json::object{{"code", "server_error"},
                              {"message", revoked ? "the API key was revoked or its credit ran out while the response ran"
                                                  : "the server stopped before the response finished"}};
  }

  // The reasoning the object does not show (thinking.display "omitted"), sealed for a continuation.
  std::string hidden_reasoning(const json::object& r) const {
    if (req_.show_thinking) return {};
    std::vector<std::string> texts;
    for (auto& p : turn_.parts)
      if (p.kind == Delta::Kind::reasoning) texts.push_back(p.text);
    json::object hidden;
    const auto& output = r.at("output").as_array();
    size_t k = 0;
    for (size_t i = 0; i < output.size(); ++i) {
      const auto& item = output[i].as_object();
      if (item.at("type") != "reasoning") continue;
      const std::string text = k < texts.size() ? texts[k] : std::string();
      ++k;
      hidden[std::to_string(i)] =
          item.at("encrypted_content").is_string() ? item.at("encrypted_content") : json::value(seal_reasoning(text));
    }
    return hidden.empty() ? std::string() : json::serialize(hidden);
  }

  std::weak_ptr<ResponseStore> store_;
  Request req_;
  ResponseMeta meta_;
  std::weak_ptr<Generation> generation_;
  mutable std::mutex mutex_;
  std::condition_variable done_;
  Turn turn_;
  std::shared_ptr<const json::object> final_;
  std::string hidden_;
  bool user_cancelled_ = false;
};

// ----------------------------------------------------------------------------- ResponseStore
std::shared_ptr<ResponseStore> ResponseStore::open(std::unique_ptr<product::ResponseTable> table,
                                                   ResponseStoreOptions options) {
  return std::shared_ptr<ResponseStore>(new ResponseStore(std::move(table), options));
}

std::shared_ptr<ResponseStore> ResponseStore::in_memory(ResponseStoreOptions options) {
  if (options.max_bytes <= 0) options.max_bytes = int64_t(256) << 20;
  return open(product::ResponseTable::open(":memory:"), options);
}

ResponseStore::ResponseStore(std::unique_ptr<product::ResponseTable> table, ResponseStoreOptions options)
    : table_(std::move(table)), options_(options), runner_("run_" + random_id(24)), backend_(table_->backend()) {
  thread_ = std::thread([this] { run(); });
}

ResponseStore::~ResponseStore() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string ResponseStore::input_items(const json::value& input) const {
  json::array items;
  if (input.is_string()) {
    items.push_back(stored_item(json::object{{"role", "user"}, {"content", input}}));
  } else {
    for (auto& item : input.as_array()) items.push_back(stored_item(item.as_object()));
  }
  std::string text = json::serialize(items);
  if (text.size() > options_.max_input_bytes)
    throw bad_request("store", "the input is " + std::to_string(text.size()) + " bytes, more than the " +
                                   std::to_string(options_.max_input_bytes) +
                                   " bytes a stored response may hold; send 'store': false");
  return text;
}

json::array ResponseStore::conversation(const std::string& id, const std::string& owner) {
  std::vector<json::array> chain;  // newest first
  for (std::string next = id; !next.empty();) {
    Found f = find(next, owner);
    if (!f.keeper && !f.row)
      throw ApiError(404, "invalid_request_error", "Previous response with id '" + id + "' not found.",
                     "previous_response_id", "previous_response_not_found");
    std::shared_ptr<const json::object> object =
        f.keeper ? f.keeper->object() : std::make_shared<const json::object>(json::parse(f.row->response).as_object());
    if (running(std::string(object->at("status").as_string())))
      throw bad_request("previous_response_id",
                        "the response '" + next + "' is still in progress; continue it once it has finished");
    json::array items = json::parse(f.keeper ? f.keeper->input_items : f.row->input_items).as_array();
    for (auto& item : output_for_input(*object, f.keeper ? f.keeper->hidden() : f.row->hidden)) items.push_back(item);
    chain.push_back(std::move(items));
    next = f.keeper ? f.keeper->previous_id : f.row->previous_id;
  }
  json::array all;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it)
    for (auto& item : *it) all.push_back(std::move(item));
  return all;
}

std::optional<json::object> ResponseStore::find_item(const std::string& item_id, const std::string& owner) {
  std::vector<std::shared_ptr<ResponseKeeper>> mine;  // not yet written, newest first
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, k] : live_)
      if (k->owner == owner) mine.push_back(k);
  }
  std::sort(mine.begin(), mine.end(), [](auto& a, auto& b) { return a->created_at_ms > b->created_at_ms; });
  for (auto& k : mine)
    if (auto item = item_in(*k->object(), k->hidden(), k->input_items, item_id)) return item;
  auto row = table_->find_item(item_id, owner);
  if (!row) return std::nullopt;
  return item_in(json::parse(row->response).as_object(), row->hidden, row->input_items, item_id);
}

std::shared_ptr<OutputKeeper> ResponseStore::keep(const PreparedRequest& p, const Principal& who,
                                                  std::weak_ptr<Generation> g) {
  auto k = std::make_shared<ResponseKeeper>(weak_from_this(), p, who, std::move(g));
  {
    std::lock_guard lock(mutex_);
    live_[k->id] = k;
  }
  // A background response's row exists while it runs: other processes sharing the table see it.
  if (k->background) enqueue({k, k->object(), false});
  return k;
}

void ResponseStore::abandon(const std::string& id) {
  std::shared_ptr<ResponseKeeper> k;
  {
    std::lock_guard lock(mutex_);
    auto it = live_.find(id);
    if (it == live_.end()) return;
    k = it->second;
    live_.erase(it);
  }
  std::lock_guard io(io_mutex_);
  k->deleted = true;
  if (k->background) table_->remove(k->id, k->owner);  // its queued row may have landed
}

void ResponseStore::enqueue(Write w) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(w));
    ++unwritten_;
  }
  wake_.notify_all();
}

void ResponseStore::set_entitlement_check(std::function<bool(const Principal&)> entitled) {
  std::lock_guard lock(mutex_);
  entitled_ = std::move(entitled);
}

std::vector<std::shared_ptr<ResponseKeeper>> ResponseStore::running_background() const {
  std::vector<std::shared_ptr<ResponseKeeper>> out;
  std::lock_guard lock(mutex_);
  for (auto& [id, k] : live_)
    if (k->background && !k->finished()) out.push_back(k);
  return out;
}

size_t ResponseStore::background_running() const { return running_background().size(); }

void ResponseStore::stop_background() {
  for (auto& k : running_background()) k->stop();
}

void ResponseStore::flush() {
  std::unique_lock lock(mutex_);
  drained_.wait(lock, [&] { return unwritten_ == 0; });
}

// ----------------------------------------------------------------------------- the store thread
void ResponseStore::run() {
  auto next_beat = Clock::now() + options_.heartbeat;
  auto next_prune = Clock::now();
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait_for(lock, options_.tick, [&] { return stopping_ || !queue_.empty(); });
    std::deque<Write> writes;
    writes.swap(queue_);
    const bool stop = stopping_ && writes.empty();
    lock.unlock();
    for (auto& w : writes) write(w);
    if (!writes.empty()) {
      std::lock_guard l(mutex_);
      unwritten_ -= writes.size();
      drained_.notify_all();
    }
    if (stop) return;
    const auto now = Clock::now();
    const bool beat = now >= next_beat, prune = now >= next_prune;
    if (beat) next_beat = now + options_.heartbeat;
    if (prune) next_prune = now + options_.prune_every;
    upkeep(beat, prune);
    lock.lock();
  }
}

void ResponseStore::write(const Write& w) {
  try {
    std::lock_guard io(io_mutex_);
    if (!w.keeper->deleted) table_->put(w.keeper->row(*w.object, runner_));
  } catch (const std::exception& e) {
    spdlog::error("response store: could not write {}: {}", w.keeper->id, e.what());
  }
  if (!w.last) return;
  std::lock_guard lock(mutex_);
  auto it = live_.find(w.keeper->id);
  if (it != live_.end() && it->second == w.keeper) live_.erase(it);
}

// The background responses' keys' standing and rows' sign of life; retention.
void ResponseStore::upkeep(bool beat, bool prune) {
  std::function<bool(const Principal&)> entitled;
  {
    std::lock_guard lock(mutex_);
    entitled = entitled_;
  }
  auto runs = running_background();
  try {
    if (entitled)
      for (auto& k : runs)
        if (!entitled(k->who)) k->revoke();
    if (beat && !runs.empty()) {
      std::vector<std::string> ids;
      for (auto& k : runs) ids.push_back(k->id);
      table_->touch(ids, runner_, now_ms());
    }
    if (prune) table_->prune(now_ms() - options_.retention.count(), options_.max_bytes);
  } catch (const std::exception& e) {
    spdlog::warn("response store upkeep: {}", e.what());
  }
}

// ----------------------------------------------------------------------------- reads
ResponseStore::Found ResponseStore::find(const std::string& id, const std::string& owner) {
  Found f;
  {
    std::lock_guard lock(mutex_);
    auto it = live_.find(id);
    if (it != live_.end()) {
      if (it->second->owner == owner) f.keeper = it->second;
      return f;
    }
  }
  f.row = table_->find(id, owner);
  if (f.row && running(f.row->status) && now_ms() - f.row->updated_at_ms > options_.stale.count()) settle_lost(*f.row);
  return f;
}

// A background response whose process stopped (nothing refreshed its row): failed, for good.
void ResponseStore::settle_lost(product::StoredResponse& row) {
  json::object r = json::parse(row.response).as_object();
  r["status"] = "failed";
  r["error"] = json::object{{"code", "server_error"},
                            {"message", "the server process running this background response stopped before it finished"}};
  row.status = "failed";
  row.response = json::serialize(r);
  row.updated_at_ms = now_ms();
  std::lock_guard io(io_mutex_);
  table_->put(row);
}

json::object ResponseStore::answer(ResponseRoute route, const std::string& id, const QueryParams& query,
                                   const std::string& body, const std::string& owner) {
  switch (route) {
    case ResponseRoute::retrieve: return retrieve(id, query, owner);
    case ResponseRoute::input_items: return list_input_items(id, query, owner);
    case ResponseRoute::remove: query.only({}); return remove(id, owner);
    case ResponseRoute::cancel: {
      query.only({});
      if (!body.empty() && !(parse_json_body(body).as_object().empty()))
        throw bad_request("", "cancel takes no parameters: send no body, or {}");
      return cancel(id, owner);
    }
  }
  throw std::logic_error("route");
}

json::object ResponseStore::retrieve(const std::string& id, const QueryParams& query, const std::string& owner) {
  query.only({"include", "include[]", "stream", "starting_after", "include_obfuscation"});
  if (auto s = query.get("stream"); s && *s != "false")
    throw bad_request("stream", "streaming a stored response back is not supported: GET it without stream");
  for (const char* name : {"starting_after", "include_obfuscation"})
    if (query.get(name)) throw bad_request(name, std::string("'") + name + "' is for streams, which GET does not serve");
  bool sealed = false;
  auto includes = query.all("include");
  for (auto& v : query.all("include[]")) includes.push_back(v);
  for (auto& v : includes) {
    if (v != "reasoning.encrypted_content")
      throw bad_request("include", "include '" + v + "' is not supported on GET (reasoning.encrypted_content is); the "
                                   "object comes back as it was made");
    sealed = true;
  }
  Found f = find(id, owner);
  if (!f.keeper && !f.row) throw not_found(id);
  json::object r = f.keeper ? *f.keeper->object() : json::parse(f.row->response).as_object();
  if (sealed) include_sealed_reasoning(r, f.keeper ? f.keeper->hidden() : f.row->hidden);
  return r;
}

json::object ResponseStore::list_input_items(const std::string& id, const QueryParams& query, const std::string& owner) {
  query.only({"limit", "order", "after", "include", "include[]"});
  if (query.get("include") || query.get("include[]"))
    throw bad_request("include", "'include' is not supported on input_items: the items come back as they were sent");
  int64_t limit = 20;
  if (auto l = query.get("limit")) {
    size_t used = 0;
    try {
      limit = std::stoll(*l, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != l->size()) throw bad_request("limit", "'limit' must be an integer");
    if (limit < 1 || limit > 100) throw invalid_value(Dialect::responses, "limit", "'limit' must be between 1 and 100");
  }
  const std::string order = query.get("order").value_or("desc");
  if (order != "asc" && order != "desc") throw invalid_value(Dialect::responses, "order", "'order' must be asc or desc");
  Found f = find(id, owner);
  if (!f.keeper && !f.row) throw not_found(id);
  json::array items = listed_items(f, owner);
  if (order == "desc") std::reverse(items.begin(), items.end());
  size_t start = 0;
  if (auto after = query.get("after")) {
    auto it = std::find_if(items.begin(), items.end(),
                           [&](const json::value& v) { return v.at("id").is_string() && v.at("id").get_string() == *after; });
    if (it == items.end()) throw bad_request("after", "no input item '" + *after + "' in response '" + id + "'");
    start = size_t(it - items.begin()) + 1;
  }
  const size_t end = std::min(items.size(), start + size_t(limit));
  json::array data;
  for (size_t i = start; i < end; ++i) data.push_back(items[i]);
  json::value first = data.empty() ? json::value(nullptr) : data.front().at("id");
  json::value last = data.empty() ? json::value(nullptr) : data.back().at("id");
  return json::object{{"object", "list"}, {"data", std::move(data)}, {"first_id", first}, {"last_id", last},
                      {"has_more", end < items.size()}};
}

// As OpenAI lists them: every item the response was made from, the previous_response_id chain's
// (each earlier response's input items, then its output items as GET shows them, oldest first)
// before its own input items. A response of the chain since deleted ends it there.
json::array ResponseStore::listed_items(const Found& f, const std::string& owner) {
  std::vector<json::array> parts{json::parse(f.keeper ? f.keeper->input_items : f.row->input_items).as_array()};
  for (std::string next = f.keeper ? f.keeper->previous_id : f.row->previous_id; !next.empty();) {
    Found e = find(next, owner);
    if (!e.keeper && !e.row) break;
    json::object object = e.keeper ? *e.keeper->object() : json::parse(e.row->response).as_object();
    parts.push_back(std::move(object.at("output").as_array()));
    parts.push_back(json::parse(e.keeper ? e.keeper->input_items : e.row->input_items).as_array());
    next = e.keeper ? e.keeper->previous_id : e.row->previous_id;
  }
  json::array all;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it)
    for (auto& item : *it) all.push_back(std::move(item));
  return all;
}

json::object ResponseStore::remove(const std::string& id, const std::string& owner) {
  std::shared_ptr<ResponseKeeper> k;
  std::lock_guard io(io_mutex_);
  {
    std::lock_guard lock(mutex_);
    auto it = live_.find(id);
    if (it != live_.end() && it->second->owner == owner) {
      k = it->second;
      live_.erase(it);
    }
  }
  if (k) {
    k->deleted = true;
    if (k->background) k->stop();  // nothing would read it: stop it (billed for what it made)
  }
  if (!table_->remove(id, owner) && !k) throw not_found(id);
  return json::object{{"id", id}, {"object", "response"}, {"deleted", true}};
}

json::object ResponseStore::cancel(const std::string& id, const std::string& owner) {
  Found f = find(id, owner);
  if (!f.keeper && !f.row) throw not_found(id);
  if (!(f.keeper ? f.keeper->background : f.row->background))
    throw bad_request("", "only responses created with 'background': true can be cancelled");
  json::object r = f.keeper ? *f.keeper->object() : json::parse(f.row->response).as_object();
  const std::string status(r.at("status").as_string());
  if (status == "cancelled") return r;  // cancelling twice answers the same
  if (!running(status))
    throw bad_request("", "the response '" + id + "' cannot be cancelled: its status is " + status);
  if (!f.keeper)
    throw ApiError(409, "invalid_request_error",
                   "the response '" + id + "' runs in another server process sharing this database; cancel it there",
                   "", "response_runs_elsewhere");
  return *f.keeper->cancel();
}

}  // namespace v4::api
