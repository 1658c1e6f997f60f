#pragma once
// Test helpers: temporary directories and a throwaway PostgreSQL cluster (scripts/pg-test.sh),
// started once per test process on first use and stopped at exit. V4_TEST_PG_URL=postgresql://...
// (a server where the user may CREATE DATABASE, URL ending in "/postgres?..." or "/postgres") uses
// that server instead.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "product/store.h"

namespace v4::product::testing {

inline std::string make_temp_dir(const std::string& tag) {
  std::string pattern = (std::filesystem::temp_directory_path() / ("v4f-" + tag + "-XXXXXX")).string();
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  return pattern;
}

struct TempDir {
  std::string path = make_temp_dir("product");
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// Runs a shell command; returns (exit status, stdout).
inline std::pair<int, std::string> run_command(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

class PgCluster {
 public:
  static PgCluster& get() {
    static PgCluster cluster;
    return cluster;
  }
  bool binaries_missing() const { return missing_; }
  const std::string& error() const { return error_; }
  bool running() const { return !base_url_.empty(); }

  // A URL to a new, empty database of the cluster.
  std::string new_database() {
    std::string name = "t" + std::to_string(getpid()) + "_" + std::to_string(counter_++) + "_" +
                       std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
    auto admin = open_postgres_store(base_url_);
    admin->exec("CREATE DATABASE " + name);
    std::string url = base_url_;
    size_t at = url.find("/postgres?");
    if (at != std::string::npos) url.replace(at, 10, "/" + name + "?");
    else if (url.size() > 9 && url.compare(url.size() - 9, 9, "/postgres") == 0) url.replace(url.size() - 9, 9, "/" + name);
    else throw std::runtime_error("the PostgreSQL URL must name the database 'postgres': " + base_url_);
    return url;
  }

  ~PgCluster() {
    if (!dir_.empty()) {
      run_command("bash '" V4_SOURCE_DIR "/scripts/pg-test.sh' stop '" + dir_ + "' 2>&1");
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

 private:
  PgCluster() {
    if (const char* external = std::getenv("V4_TEST_PG_URL"); external && *external) {
      base_url_ = external;
      return;
    }
    dir_ = make_temp_dir("pg");
    auto [status, out] = run_command("bash '" V4_SOURCE_DIR "/scripts/pg-test.sh' start '" + dir_ + "'");
    if (status == 77) {
      missing_ = true;
      error_ = "PostgreSQL binaries are not installed";
      return;
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    if (status != 0 || out.rfind("postgresql://", 0) != 0) {
      error_ = "scripts/pg-test.sh start failed with status " + std::to_string(status);
      return;
    }
    base_url_ = out;
  }

  std::string dir_, base_url_, error_;
  bool missing_ = false;
  std::atomic<int> counter_{0};
};

// A fresh database for one test: a SQLite file in a temp dir, or a new PostgreSQL database.
// Returns an empty string after GTEST_SKIP / FAIL (caller must return when empty).
inline std::string fresh_database(const std::string& backend, TempDir& dir) {
  if (backend == "sqlite") return dir.path + "/accounts.db";
  auto& pg = PgCluster::get();
  if (pg.binaries_missing()) {
    // CI installs PostgreSQL (scripts/setup.sh) and sets V4_REQUIRE_PG=1: there, missing is a failure.
    if (const char* req = std::getenv("V4_REQUIRE_PG"); req && std::string(req) == "1")
      ADD_FAILURE() << "PostgreSQL binaries not installed but V4_REQUIRE_PG=1";
    return "";
  }
  if (!pg.running()) {
    ADD_FAILURE() << pg.error();
    return "";
  }
  return pg.new_database();
}

}  // namespace v4::product::testing

// In a TEST_P body: obtains `db` for GetParam(), skipping when PostgreSQL is not installed.
#define V4_FRESH_DB(db, tmp)                                                                     \
  ::v4::product::testing::TempDir tmp;                                                           \
  const std::string db = ::v4::product::testing::fresh_database(GetParam(), tmp);                \
  if (db.empty()) {                                                                              \
    if (::v4::product::testing::PgCluster::get().binaries_missing() && !::testing::Test::HasFailure()) \
      GTEST_SKIP() << "PostgreSQL binaries not installed (Debian package 'postgresql'); skipped"; \
    return;                                                                                      \
  }
