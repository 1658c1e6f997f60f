#pragma once
// Web search behind one interface: a query with its options in, ranked results out. Two providers
// implement it: Linkup's HTTPS API (linkup.h) and an SQLite FTS5 index of local documents
// (local_index.h) for machines without internet. The API layer uses only this header.
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace v4::search {

enum class Depth { fast, standard, deep };
const char* depth_name(Depth d);
Depth parse_depth(const std::string& s);  // throws std::invalid_argument

struct Query {
  std::string text;
  Depth depth = Depth::standard;
  int max_results = 5;
  std::vector<std::string> include_domains, exclude_domains;
  std::optional<std::string> from_date, to_date;  // ISO dates, YYYY-MM-DD
};

struct Result {
  std::string title;
  std::string url;
  std::string content;  // the page's text or a snippet of it
  std::optional<std::string> date;
};

// Why a search failed; the API maps each kind to its answer (docs/web-search.md).
struct Error : std::runtime_error {
  enum class Kind { timeout, unauthorized, no_credit, rate_limited, unavailable, bad_response, no_results };
  Error(Kind kind, const std::string& message, int http_status = 0)
      : std::runtime_error(message), kind(kind), http_status(http_status) {}
  Kind kind;
  int http_status;  // the provider's HTTP status, 0 when there was none
};

const char* kind_name(Error::Kind kind);

class Provider {
 public:
  virtual ~Provider() = default;
  // Ranked results, best first, at most query.max_results. Throws search::Error. Thread-safe.
  virtual std::vector<Result> search(const Query& query) const = 0;
  virtual std::string name() const = 0;  // "linkup", "local"
  // Whether it searches the live web (a local index does not: a request for cached/offline
  // sources only, Responses external_web_access: false, can use it).
  virtual bool live_web() const { return true; }
};

}  // namespace v4::search
