#pragma once
// The one small storage interface under Accounts: parameterised SQL on one connection, with
// transactions. Both backends take the same SQL text (ANSI subset: "?" placeholders, ON CONFLICT,
// RETURNING); the PostgreSQL backend rewrites "?" into "$n". Not thread-safe: Accounts serialises use.
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace v4::product {

enum class Dialect { sqlite, postgresql };

using SqlValue = std::variant<std::monostate, int64_t, std::string>;  // monostate = NULL

struct SqlRow {
  std::vector<SqlValue> cells;
  bool is_null(size_t i) const { return std::holds_alternative<std::monostate>(cells.at(i)); }
  int64_t integer(size_t i) const;     // throws std::runtime_error when NULL or not an integer
  std::string text(size_t i) const;    // integers are spelled in decimal; NULL throws
};

// A busy database or a serialisation conflict: the transaction may be retried as a whole.
struct TransientStoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Store {
 public:
  virtual ~Store() = default;
  // "postgresql://..." or "postgres://..." -> PostgreSQL, else a SQLite file path.
  static std::unique_ptr<Store> open(const std::string& url_or_path);
  static bool is_postgres_url(const std::string& url_or_path);

  virtual Dialect dialect() const = 0;
  virtual void begin() = 0;  // a write transaction (SQLite: BEGIN IMMEDIATE)
  virtual void commit() = 0;
  virtual void rollback() noexcept = 0;
  // Runs one statement; returns the number of rows it changed.
  virtual int64_t exec(const std::string& sql, const std::vector<SqlValue>& params = {}) = 0;
  virtual std::vector<SqlRow> query(const std::string& sql, const std::vector<SqlValue>& params = {}) = 0;
  // Several statements without parameters (migrations).
  virtual void exec_script(const std::string& sql) = 0;
};

std::unique_ptr<Store> open_sqlite_store(const std::string& path);
std::unique_ptr<Store> open_postgres_store(const std::string& url);

// Runs fn() between begin() and commit(); rolls back on any exception and retries the whole
// transaction on TransientStoreError (bounded, with backoff) before rethrowing.
template <class Fn>
auto run_transaction(Store& store, Fn&& fn) -> decltype(fn());

}  // namespace v4::product

#include "product/store_inl.h"
