// The stored responses table on both backends: owner-scoped reads and deletes, replacement by id,
// the runner's sign of life, retention and the size bound, the index of item ids (item_reference).
#include <gtest/gtest.h>

#include "product/response_table.h"
#include "product/schema.h"
#include "product/store.h"
#include "test_support.h"

using namespace v4::product;

namespace {

class ResponseTableTest : public ::testing::TestWithParam<std::string> {};

StoredResponse row(const std::string& id, const std::string& owner, const std::string& status, int64_t created_ms,
                   const std::string& text = "{}") {
  StoredResponse r;
  r.id = id;
  r.owner = owner;
  r.status = status;
  r.created_at_ms = created_ms;
  r.updated_at_ms = created_ms;
  r.response = text;
  r.input_items = "[]";
  return r;
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(Backends, ResponseTableTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

TEST_P(ResponseTableTest, RowsAreReadAndDeletedOnlyByTheirOwnerAndReplacedById) {
  V4_FRESH_DB(db, tmp);
  auto table = ResponseTable::open(db);
  StoredResponse a = row("resp_a", "acct_1", "in_progress", 1000, R"({"status":"in_progress"})");
  a.background = true;
  a.previous_id = "resp_0";
  a.runner = "run_1";
  a.input_items = R"([{"id":"msg_1","type":"message"}])";
  a.hidden = R"({"0":"v4r1.x"})";
  table->put(a);
  EXPECT_FALSE(table->find("resp_a", "acct_2"));  // another owner: as if missing
  EXPECT_FALSE(table->remove("resp_a", "acct_2"));
  auto got = table->find("resp_a", "acct_1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, "in_progress");
  EXPECT_TRUE(got->background);
  EXPECT_EQ(got->previous_id, "resp_0");
  EXPECT_EQ(got->runner, "run_1");
  EXPECT_EQ(got->input_items, a.input_items);
  EXPECT_EQ(got->hidden, a.hidden);

  a.status = "completed";
  a.response = R"({"status":"completed"})";
  a.updated_at_ms = 2000;
  table->put(a);  // the final state replaces the running one
  got = table->find("resp_a", "acct_1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, "completed");
  EXPECT_EQ(got->response, R"({"status":"completed"})");
  EXPECT_EQ(got->created_at_ms, 1000);
  EXPECT_EQ(Store::open(db)->query("SELECT COUNT(*) FROM responses").at(0).integer(0), 1);

  EXPECT_TRUE(table->remove("resp_a", "acct_1"));
  EXPECT_FALSE(table->find("resp_a", "acct_1"));
  EXPECT_FALSE(table->remove("resp_a", "acct_1"));
}

TEST_P(ResponseTableTest, TouchRefreshesOnlyTheRunnersRunningRows) {
  V4_FRESH_DB(db, tmp);
  auto table = ResponseTable::open(db);
  StoredResponse mine = row("resp_m", "o", "in_progress", 1000);
  mine.runner = "run_me";
  StoredResponse other = row("resp_o", "o", "queued", 1000);
  other.runner = "run_other";
  StoredResponse done = row("resp_d", "o", "completed", 1000);
  done.runner = "run_me";
  for (auto& r : {mine, other, done}) table->put(r);
  table->touch({"resp_m", "resp_o", "resp_d"}, "run_me", 5000);
  EXPECT_EQ(table->find("resp_m", "o")->updated_at_ms, 5000);
  EXPECT_EQ(table->find("resp_o", "o")->updated_at_ms, 1000);  // another process's row
  EXPECT_EQ(table->find("resp_d", "o")->updated_at_ms, 1000);  // finished: nothing to refresh
}

TEST_P(ResponseTableTest, PruneDeletesExpiredThenOldestBeyondTheBoundButNeverRunningRows) {
  V4_FRESH_DB(db, tmp);
  auto table = ResponseTable::open(db);
  const std::string kb(1000, 'x');
  table->put(row("resp_old", "o", "completed", 100, kb));
  table->put(row("resp_old_running", "o", "in_progress", 100, kb));
  table->put(row("resp_1", "o", "completed", 1000, kb));
  table->put(row("resp_2", "o", "failed", 2000, kb));
  table->put(row("resp_3", "o", "cancelled", 3000, kb));
  EXPECT_EQ(table->prune(500, 0), 1);  // expired: resp_old
  EXPECT_FALSE(table->find("resp_old", "o"));
  EXPECT_TRUE(table->find("resp_old_running", "o"));
  // 2 KiB of finished rows at most: the newest two stay (each row is 1000 + 2 bytes).
  EXPECT_EQ(table->prune(0, 2100), 1);
  EXPECT_FALSE(table->find("resp_1", "o"));
  EXPECT_TRUE(table->find("resp_2", "o"));
  EXPECT_TRUE(table->find("resp_3", "o"));
  EXPECT_TRUE(table->find("resp_old_running", "o"));
}

TEST_P(ResponseTableTest, AMigratedLedgerDatabaseGainsTheTable) {
  V4_FRESH_DB(db, tmp);
  {
    auto store = Store::open(db);
    migrate(*store);
    EXPECT_EQ(store->query("SELECT COUNT(*) FROM responses").at(0).integer(0), 0);
  }
  auto table = ResponseTable::open(db);  // opening again migrates nothing and keeps the rows
  table->put(row("resp_x", "o", "completed", 1));
  auto again = ResponseTable::open(db);
  EXPECT_TRUE(again->find("resp_x", "o"));
  EXPECT_EQ(again->backend(), GetParam());
}

TEST_P(ResponseTableTest, ItemIdsFindTheirOwnersNewestRowAndGoWithIt) {
  V4_FRESH_DB(db, tmp);
  auto table = ResponseTable::open(db);
  StoredResponse a = row("resp_a", "o", "completed", 1000, R"({"output":[{"id":"rs_a","type":"reasoning"},{"id":"msg_a"}]})");
  a.input_items = R"([{"id":"msg_in","type":"message"},{"id":"fco_1","type":"function_call_output"}])";
  table->put(a);
  for (const char* id : {"rs_a", "msg_a", "msg_in", "fco_1"}) {
    auto got = table->find_item(id, "o");
    ASSERT_TRUE(got) << id;
    EXPECT_EQ(got->id, "resp_a");
    EXPECT_FALSE(table->find_item(id, "other")) << id;  // another owner's: as if missing
  }
  EXPECT_FALSE(table->find_item("msg_nope", "o"));

  // A later row holding the same item (sent again as its input): the newest wins; the ids of a row
  // replaced by id are its new ones.
  StoredResponse b = row("resp_b", "o", "completed", 2000, R"({"output":[]})");
  b.input_items = R"([{"id":"msg_a","type":"message"}])";
  table->put(b);
  EXPECT_EQ(table->find_item("msg_a", "o")->id, "resp_b");
  a.input_items = "[]";
  table->put(a);
  EXPECT_FALSE(table->find_item("msg_in", "o"));
  EXPECT_EQ(table->find_item("rs_a", "o")->id, "resp_a");

  // Deleted (or pruned): its ids go with it.
  EXPECT_TRUE(table->remove("resp_b", "o"));
  EXPECT_EQ(table->find_item("msg_a", "o")->id, "resp_a");
  EXPECT_EQ(table->prune(1500, 0), 1);
  EXPECT_FALSE(table->find_item("rs_a", "o"));
  EXPECT_EQ(Store::open(db)->query("SELECT COUNT(*) FROM response_items").at(0).integer(0), 0);
}

TEST_P(ResponseTableTest, TheMigrationIndexesTheItemsOfRowsStoredBeforeIt) {
  V4_FRESH_DB(db, tmp);
  {
    auto table = ResponseTable::open(db);
    StoredResponse a = row("resp_a", "o", "completed", 1000, R"({"output":[{"id":"rs_a"},{"id":"msg_a"},{"id":5}]})");
    a.input_items = R"([{"id":"msg_in"},{"type":"message"}])";
    table->put(a);
  }
  {  // the database as step 4 left it
    auto store = Store::open(db);
    store->exec("DROP TABLE response_items");
    store->exec("UPDATE schema_version SET version = 4");
    migrate(*store);
  }
  auto table = ResponseTable::open(db);
  for (const char* id : {"rs_a", "msg_a", "msg_in"}) EXPECT_EQ(table->find_item(id, "o")->id, "resp_a") << id;
  EXPECT_EQ(Store::open(db)->query("SELECT COUNT(*) FROM response_items").at(0).integer(0), 3);
}
