// SQLite backend: one connection in WAL mode (readers never block the writer, a commit is durable
// once the WAL is synced), write transactions take the lock up front (BEGIN IMMEDIATE) so two
// connections never deadlock upgrading a read lock.
#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <string>

#include "product/store.h"

namespace v4::product {
namespace {

// The ledger holds customers' usage and key hashes: a new database file is readable by its owner
// only (SQLite gives its -wal and -shm files the database file's mode).
void create_private(const std::string& path) {
  if (path.empty() || path == ":memory:" || path.starts_with("file:")) return;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) ::close(fd);  // EEXIST: an existing file keeps the mode its owner gave it
}

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(const std::string& path) {
    create_private(path);
    int rc = sqlite3_open_v2(path.c_str(), &db_,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      std::string why = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close(db_);
      db_ = nullptr;
      throw std::runtime_error("cannot open SQLite database '" + path + "': " + why);
    }
    sqlite3_busy_timeout(db_, 10000);
    sqlite3_extended_result_codes(db_, 1);
    try {
      exec_script("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
    } catch (...) {
      sqlite3_close(db_);
      throw;
    }
  }
  ~SqliteStore() override { sqlite3_close(db_); }

  Dialect dialect() const override { return Dialect::sqlite; }
  void begin() override { exec_script("BEGIN IMMEDIATE"); }
  void commit() override { exec_script("COMMIT"); }
  void rollback() noexcept override {
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

  int64_t exec(const std::string& sql, const std::vector<SqlValue>& params) override {
    Statement st(*this, sql, params);
    while (st.step()) {
    }
    return sqlite3_changes64(db_);
  }

  std::vector<SqlRow> query(const std::string& sql, const std::vector<SqlValue>& params) override {
    Statement st(*this, sql, params);
    std::vector<SqlRow> rows;
    while (st.step()) {
      SqlRow row;
      int n = sqlite3_column_count(st.stmt);
      for (int i = 0; i < n; ++i) {
        switch (sqlite3_column_type(st.stmt, i)) {
          case SQLITE_NULL: row.cells.emplace_back(std::monostate{}); break;
          case SQLITE_INTEGER: row.cells.emplace_back(int64_t(sqlite3_column_int64(st.stmt, i))); break;
          default: {
            const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st.stmt, i));
            row.cells.emplace_back(std::string(t ? t : "", size_t(sqlite3_column_bytes(st.stmt, i))));
          }
        }
      }
      rows.push_back(std::move(row));
    }
    return rows;
  }

  void exec_script(const std::string& sql) override {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::string why = err ? err : sqlite3_errstr(rc);
      sqlite3_free(err);
      fail(rc, why);
    }
  }

 private:
  [[noreturn]] static void fail(int rc, const std::string& why) {
    int primary = rc & 0xff;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) throw TransientStoreError("SQLite busy: " + why);
    throw std::runtime_error("SQLite: " + why);
  }

  struct Statement {
    SqliteStore& owner;
    sqlite3_stmt* stmt = nullptr;
    Statement(SqliteStore& o, const std::string& sql, const std::vector<SqlValue>& params) : owner(o) {
      int rc = sqlite3_prepare_v2(owner.db_, sql.c_str(), int(sql.size()), &stmt, nullptr);
      if (rc != SQLITE_OK) fail(rc, std::string(sqlite3_errmsg(owner.db_)) + " in: " + sql);
      if (sqlite3_bind_parameter_count(stmt) != int(params.size())) {
        sqlite3_finalize(stmt);
        throw std::logic_error("parameter count mismatch in: " + sql);
      }
      for (size_t i = 0; i < params.size(); ++i) {
        int idx = int(i) + 1;
        const auto& p = params[i];
        if (std::holds_alternative<std::monostate>(p)) sqlite3_bind_null(stmt, idx);
        else if (const auto* v = std::get_if<int64_t>(&p)) sqlite3_bind_int64(stmt, idx, *v);
        else {
          const auto& s = std::get<std::string>(p);
          sqlite3_bind_text(stmt, idx, s.data(), int(s.size()), SQLITE_TRANSIENT);
        }
      }
    }
    ~Statement() { sqlite3_finalize(stmt); }
    bool step() {
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_ROW) return true;
      if (rc == SQLITE_DONE) return false;
      fail(rc, sqlite3_errmsg(owner.db_));
    }
  };

  sqlite3* db_ = nullptr;
};

}  // namespace

std::unique_ptr<Store> open_sqlite_store(const std::string& path) { return std::make_unique<SqliteStore>(path); }

}  // namespace v4::product
