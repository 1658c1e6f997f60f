// PostgreSQL backend (libpq): one connection, text-format parameters and results. Statements are
// written with "?" placeholders (shared with SQLite) and rewritten into "$1, $2, ..." here.
#include <libpq-fe.h>

#include <cstring>
#include <string>

#include "product/store.h"

namespace v4::product {
namespace {

// "?" outside quoted literals becomes "$n".
std::string number_placeholders(const std::string& sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  bool in_literal = false;
  for (char c : sql) {
    if (c == '\'') in_literal = !in_literal;
    if (c == '?' && !in_literal) {
      out += '$';
      out += std::to_string(++n);
    } else {
      out += c;
    }
  }
  return out;
}

class PostgresStore final : public Store {
 public:
  explicit PostgresStore(const std::string& url) {
    conn_ = PQconnectdb(url.c_str());
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
      std::string why = conn_ ? PQerrorMessage(conn_) : "out of memory";
      PQfinish(conn_);
      conn_ = nullptr;
      throw std::runtime_error("cannot connect to PostgreSQL: " + why);
    }
    PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);  // keep NOTICEs off stderr
  }
  ~PostgresStore() override { PQfinish(conn_); }

  Dialect dialect() const override { return Dialect::postgresql; }
  void begin() override { exec_script("BEGIN"); }
  void commit() override { exec_script("COMMIT"); }
  void rollback() noexcept override {
    if (PQtransactionStatus(conn_) != PQTRANS_IDLE) PQclear(PQexec(conn_, "ROLLBACK"));
  }

  int64_t exec(const std::string& sql, const std::vector<SqlValue>& params) override {
    Result r = run(sql, params);
    const char* n = PQcmdTuples(r.res);
    return (n && *n) ? std::stoll(n) : 0;
  }

  std::vector<SqlRow> query(const std::string& sql, const std::vector<SqlValue>& params) override {
    Result r = run(sql, params);
    std::vector<SqlRow> rows;
    int nrows = PQntuples(r.res), ncols = PQnfields(r.res);
    rows.reserve(size_t(nrows));
    for (int i = 0; i < nrows; ++i) {
      SqlRow row;
      for (int j = 0; j < ncols; ++j) {
        if (PQgetisnull(r.res, i, j)) row.cells.emplace_back(std::monostate{});
        else row.cells.emplace_back(std::string(PQgetvalue(r.res, i, j), size_t(PQgetlength(r.res, i, j))));
      }
      rows.push_back(std::move(row));
    }
    return rows;
  }

  void exec_script(const std::string& sql) override {
    Result r{PQexec(conn_, sql.c_str())};
    check(r.res, sql);
  }

 private:
  struct Result {  // owns one PGresult
    PGresult* res = nullptr;
    explicit Result(PGresult* r) : res(r) {}
    Result(Result&& o) noexcept : res(o.res) { o.res = nullptr; }
    Result(const Result&) = delete;
    Result& operator=(const Result&) = delete;
    Result& operator=(Result&&) = delete;
    ~Result() { PQclear(res); }
  };

  Result run(const std::string& sql, const std::vector<SqlValue>& params) {
    std::vector<std::string> texts(params.size());
    std::vector<const char*> values(params.size(), nullptr);
    for (size_t i = 0; i < params.size(); ++i) {
      if (const auto* v = std::get_if<int64_t>(&params[i])) texts[i] = std::to_string(*v), values[i] = texts[i].c_str();
      else if (const auto* s = std::get_if<std::string>(&params[i])) values[i] = s->c_str();
    }
    std::string numbered = number_placeholders(sql);
    Result r{PQexecParams(conn_, numbered.c_str(), int(params.size()), nullptr, values.data(), nullptr, nullptr, 0)};
    check(r.res, sql);
    return r;
  }

  void check(PGresult* res, const std::string& sql) {
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return;
    const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    std::string why = PQerrorMessage(conn_);
    // 40001 serialization_failure, 40P01 deadlock_detected: retry the transaction.
    if (state && (std::strcmp(state, "40001") == 0 || std::strcmp(state, "40P01") == 0))
      throw TransientStoreError("PostgreSQL: " + why);
    throw std::runtime_error("PostgreSQL: " + why + " in: " + sql);
  }

  PGconn* conn_ = nullptr;
};

}  // namespace

std::unique_ptr<Store> open_postgres_store(const std::string& url) { return std::make_unique<PostgresStore>(url); }

}  // namespace v4::product
