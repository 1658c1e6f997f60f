// Concurrency and crash safety of the ledger, on both backends:
//  - 64 parallel requests on one key through 8 separate connections: no lost or duplicated rows,
//    credit never below zero by more than one request's cost;
//  - a child process recording under concurrent traffic is killed with SIGKILL: after reopening,
//    every request it reported as recorded is there exactly once, and no row is partial.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <sstream>
#include <thread>

#include "product/accounts.h"
#include "product/store.h"
#include "test_support.h"

using namespace v4::product;

namespace {

class LedgerConcurrencyTest : public ::testing::TestWithParam<std::string> {};

// flash: 100 uncached*140 + out*280; at most 100 out -> 42,000 n$ per request.
constexpr int64_t kPrompt = 100, kMaxOut = 100, kMaxCost = 100 * 140 + 100 * 280;
int64_t output_for(int thread, int i) { return 50 + (thread * 7 + i * 13) % 51; }  // 50..100
int64_t cost_for(int64_t output) { return kPrompt * 140 + output * 280; }

LedgerEntry make_entry(const std::string& id, const std::string& key_id, int64_t output) {
  LedgerEntry e;
  e.request_id = id;
  e.key_id = key_id;
  e.model = "deepseek-v4-flash";
  e.prompt_uncached_tokens = kPrompt;
  e.output_tokens = output;
  e.reasoning_tokens = output / 2;
  e.started_at_ms = 1;
  e.ended_at_ms = 1'780'000'000'000;
  return e;
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(Backends, LedgerConcurrencyTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

TEST_P(LedgerConcurrencyTest, SixtyFourParallelRequestsOnOneKey) {
  V4_FRESH_DB(db, tmp);
  constexpr int kConnections = 8, kThreads = 64;
  const int64_t credit = 20 * kMaxCost;  // enough for about 20-30 of the 64+ requests
  std::string key_id;
  std::vector<std::unique_ptr<Accounts>> pool;
  for (int i = 0; i < kConnections; ++i) pool.push_back(Accounts::open(db));
  key_id = pool[0]->create_key({"shared", credit, 0, 0}).info.id;
  KeyInfo key = *pool[0]->find_key(key_id);

  std::vector<std::vector<std::pair<std::string, int64_t>>> recorded(kThreads);  // (id, cost)
  std::vector<int> refused_402(kThreads, 0);
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Accounts& accounts = *pool[size_t(t % kConnections)];
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();
      int i = 0;
      for (int attempt = 0; attempt < 5000; ++attempt) {  // until 402
        std::string id = "c" + std::to_string(t) + "-" + std::to_string(i);
        auto d = accounts.admit(key, {id, "deepseek-v4-flash", kPrompt, kMaxOut, 0});
        if (d.outcome == Admission::insufficient_balance) {
          refused_402[size_t(t)] = 1;
          break;
        }
        if (!d.admitted()) {  // credit held by in-flight requests: wait for them
          ASSERT_EQ(d.limit, "credit_reserved") << d.message;
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          continue;
        }
        int64_t out = output_for(t, i);
        auto r = accounts.record(make_entry(id, key_id, out));
        ASSERT_TRUE(r.inserted);
        ASSERT_EQ(r.cost, cost_for(out));
        ASSERT_FALSE(accounts.record(make_entry(id, key_id, out)).inserted);  // a retried record
        recorded[size_t(t)].push_back({id, r.cost});
        ++i;
      }
    });
  }
  for (auto& th : threads) th.join();

  std::set<std::string> ids;
  int64_t expected_spent = 0;
  for (const auto& per_thread : recorded)
    for (const auto& [id, cost] : per_thread) {
      EXPECT_TRUE(ids.insert(id).second);
      expected_spent += cost;
    }
  ASSERT_GT(ids.size(), 19u);
  auto store = Store::open(db);
  EXPECT_EQ(store->query("SELECT COUNT(*) FROM ledger").at(0).integer(0), int64_t(ids.size()));
  EXPECT_EQ(store->query("SELECT COUNT(DISTINCT request_id) FROM ledger").at(0).integer(0), int64_t(ids.size()));
  for (const auto& row : store->query("SELECT request_id FROM ledger")) EXPECT_TRUE(ids.count(row.text(0)));
  EXPECT_EQ(store->query("SELECT SUM(cost_nano) FROM ledger").at(0).integer(0), expected_spent);

  KeyInfo after = *pool[0]->find_key(key_id);
  EXPECT_EQ(after.spent, expected_spent);
  EXPECT_EQ(*after.credit, credit - expected_spent);
  EXPECT_GE(*after.credit, 0) << "worst cases are reserved at admission: the balance never goes below zero";
  EXPECT_LT(*after.credit, kMaxCost) << "every thread ran until 402 (less than one worst case left)";
  int refused = 0;
  for (int r : refused_402) refused += r;
  EXPECT_EQ(refused, kThreads);
}

TEST_P(LedgerConcurrencyTest, ConcurrentRecordersNeitherLoseNorDuplicateRows) {
  V4_FRESH_DB(db, tmp);
  constexpr int kConnections = 8, kThreads = 64, kPerThread = 10;
  std::vector<std::unique_ptr<Accounts>> pool;
  for (int i = 0; i < kConnections; ++i) pool.push_back(Accounts::open(db));
  const int64_t credit = 1'000'000'000;
  std::string key_id = pool[0]->create_key({"k", credit, 0, 0}).info.id;
  std::atomic<int64_t> inserted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      Accounts& accounts = *pool[size_t(t % kConnections)];
      for (int i = 0; i < kPerThread; ++i) {
        // Threads t and t^1 record the same ids: every id arrives twice, concurrently.
        std::string id = "p" + std::to_string(t / 2) + "-" + std::to_string(i);
        if (accounts.record(make_entry(id, key_id, output_for(t / 2, i))).inserted) inserted.fetch_add(1);
      }
    });
  for (auto& th : threads) th.join();
  int64_t expected_spent = 0;
  for (int t = 0; t < kThreads / 2; ++t)
    for (int i = 0; i < kPerThread; ++i) expected_spent += cost_for(output_for(t, i));
  EXPECT_EQ(inserted.load(), kThreads / 2 * kPerThread);
  auto store = Store::open(db);
  EXPECT_EQ(store->query("SELECT COUNT(*) FROM ledger").at(0).integer(0), kThreads / 2 * kPerThread);
  KeyInfo after = *pool[0]->find_key(key_id);
  EXPECT_EQ(after.spent, expected_spent);
  EXPECT_EQ(*after.credit, credit - expected_spent);
}

TEST_P(LedgerConcurrencyTest, KillNineDuringTrafficLeavesEveryCommittedRowExactlyOnce) {
  V4_FRESH_DB(db, tmp);
  const int64_t credit = 1'000'000'000'000;
  std::string key_id;
  {
    auto accounts = Accounts::open(db);
    key_id = accounts->create_key({"k", credit, 0, 0}).info.id;
  }
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  constexpr int kThreads = 8;
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // the "server": concurrent admit + record until killed
    close(fds[0]);
    try {
      std::vector<std::unique_ptr<Accounts>> pool;
      for (int i = 0; i < 4; ++i) pool.push_back(Accounts::open(db));
      KeyInfo key = *pool[0]->find_key(key_id);
      std::vector<std::thread> threads;
      for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
          Accounts& accounts = *pool[size_t(t % 4)];
          for (int i = 0;; ++i) {
            std::string id = "k" + std::to_string(t) + "-" + std::to_string(i);
            if (!accounts.admit(key, {id, "deepseek-v4-flash", kPrompt, kMaxOut, 0}).admitted()) _exit(3);
            accounts.record(make_entry(id, key_id, output_for(t, i)));
            std::string line = id + "\n";  // reported only after the commit returned
            if (write(fds[1], line.data(), line.size()) != ssize_t(line.size())) _exit(4);
          }
        });
      for (auto& th : threads) th.join();
    } catch (...) {
      _exit(5);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string received;
  char buf[4096];
  auto lines = [&] { return std::count(received.begin(), received.end(), '\n'); };
  while (lines() < 300) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    received.append(buf, size_t(n));
  }
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited early with status " << WEXITSTATUS(status);
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) received.append(buf, size_t(n));
  close(fds[0]);

  std::set<std::string> reported;
  std::istringstream in(received);
  for (std::string line; std::getline(in, line);) reported.insert(line);
  ASSERT_GE(reported.size(), 300u);

  auto accounts = Accounts::open(db);  // reopen after the crash (SQLite: WAL recovery)
  auto store = Store::open(db);
  auto rows = store->query(
      "SELECT request_id, prompt_uncached_tokens, output_tokens, reasoning_tokens, cost_nano, status FROM ledger");
  std::set<std::string> in_ledger;
  int64_t total_cost = 0;
  for (const auto& r : rows) {
    std::string id = r.text(0);
    EXPECT_TRUE(in_ledger.insert(id).second) << "duplicate " << id;
    int thread = std::stoi(id.substr(1, id.find('-') - 1)), i = std::stoi(id.substr(id.find('-') + 1));
    int64_t out = output_for(thread, i);
    EXPECT_EQ(r.integer(1), kPrompt) << id;
    EXPECT_EQ(r.integer(2), out) << id;
    EXPECT_EQ(r.integer(3), out / 2) << id;
    EXPECT_EQ(r.integer(4), cost_for(out)) << id;
    EXPECT_EQ(r.text(5), "completed");
    total_cost += r.integer(4);
  }
  for (const auto& id : reported) EXPECT_TRUE(in_ledger.count(id)) << "lost committed row " << id;
  // Rows committed but not yet reported when the kill came: at most one per thread.
  EXPECT_LE(in_ledger.size(), reported.size() + kThreads);
  KeyInfo after = *accounts->find_key(key_id);
  EXPECT_EQ(after.spent, total_cost) << "a ledger row and its charge must commit together";
  EXPECT_EQ(*after.credit, credit - total_cost);
  // The store still works after the crash.
  EXPECT_TRUE(accounts->record(make_entry("after-crash", key_id, 60)).inserted);
}
