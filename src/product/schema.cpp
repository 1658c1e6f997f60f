// Schema migrations. Each step is SQL common to both backends plus optional per-dialect SQL
// (triggers differ). Never edit a released step: add a new one.
#include "product/schema.h"

#include <string>
#include <vector>

namespace v4::product {
namespace {

struct Migration {
  int version;
  const char* common;
  const char* sqlite_only;
  const char* postgres_only;
};

const std::vector<Migration>& migrations() {
  static const std::vector<Migration> steps = {
      {1,
       R"sql(
CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  secret_sha256 TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL,
  revoked_at_ms BIGINT,
  credit_nano BIGINT,
  spent_nano BIGINT NOT NULL DEFAULT 0,
  rpm_limit BIGINT NOT NULL DEFAULT 0,
  tpm_limit BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE ledger (
  request_id TEXT PRIMARY KEY,
  key_id TEXT NOT NULL REFERENCES api_keys(id),
  model TEXT NOT NULL,
  day TEXT NOT NULL,
  prompt_cached_tokens BIGINT NOT NULL,
  prompt_uncached_tokens BIGINT NOT NULL,
  output_tokens BIGINT NOT NULL,
  reasoning_tokens BIGINT NOT NULL,
  web_search_calls BIGINT NOT NULL,
  input_rate_nano BIGINT NOT NULL,
  cached_input_rate_nano BIGINT NOT NULL,
  output_rate_nano BIGINT NOT NULL,
  web_search_rate_nano BIGINT NOT NULL,
  cost_nano BIGINT NOT NULL,
  status TEXT NOT NULL,
  started_at_ms BIGINT NOT NULL,
  first_token_at_ms BIGINT NOT NULL,
  ended_at_ms BIGINT NOT NULL,
  recorded_at_ms BIGINT NOT NULL
);
CREATE INDEX ledger_key_day ON ledger (key_id, day);
CREATE TABLE admissions (
  request_id TEXT PRIMARY KEY,
  key_id TEXT NOT NULL,
  admitted_at_ms BIGINT NOT NULL,
  tokens BIGINT NOT NULL,
  hold_nano BIGINT NOT NULL,
  settled INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX admissions_key_time ON admissions (key_id, admitted_at_ms);
)sql",
       nullptr, nullptr},
      // Ledger rows are immutable: the database itself refuses UPDATE and DELETE.
      {2, nullptr,
       R"sql(
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger rows are immutable'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger rows are immutable'); END;
)sql",
       R"sql(
CREATE FUNCTION ledger_immutable() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'ledger rows are immutable'; END; $$;
CREATE TRIGGER ledger_no_update BEFORE UPDATE OR DELETE ON ledger
FOR EACH ROW EXECUTE FUNCTION ledger_immutable();
)sql"},
      // Console accounts: every key belongs to an account (keys made before accounts existed, and
      // `keys create` without --account, belong to the built-in "default" account, which has no
      // password and unlimited credit, so their own per-key credit keeps governing them). Ledger rows
      // reach their account through their key; `source` says whether a request came from an API key
      // or from the console's playground. Sessions and sign-in failures live here too, so several
      // servers sharing one database agree on them.
      {3,
       R"sql(
CREATE TABLE accounts (
  id TEXT PRIMARY KEY,
  email TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  is_admin INTEGER NOT NULL DEFAULT 0,
  credit_nano BIGINT,
  created_at_ms BIGINT NOT NULL
);
INSERT INTO accounts (id, email, password_hash, is_admin, credit_nano, created_at_ms)
  VALUES ('default', 'default', '!', 0, NULL, 0);
ALTER TABLE api_keys ADD COLUMN account_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE api_keys ADD COLUMN last_used_at_ms BIGINT;
ALTER TABLE api_keys ADD COLUMN internal INTEGER NOT NULL DEFAULT 0;
CREATE INDEX api_keys_account ON api_keys (account_id);
ALTER TABLE ledger ADD COLUMN source TEXT NOT NULL DEFAULT 'api';
CREATE TABLE sessions (
  token_sha256 TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  csrf_token TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL,
  expires_at_ms BIGINT NOT NULL
);
CREATE TABLE signin_failures (
  subject TEXT NOT NULL,
  at_ms BIGINT NOT NULL
);
CREATE INDEX signin_failures_subject ON signin_failures (subject, at_ms);
)sql",
       nullptr, nullptr},
      // Stored Responses-API responses (POST /v1/responses with store, product/response_table.h):
      // the object as returned, its input items and the reasoning it did not show (sealed), owned by
      // the account that made it. `runner` and `updated_at_ms` tell a background response whose
      // server process stopped from one that still runs (its runner refreshes it).
      {4,
       R"sql(
CREATE TABLE responses (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  status TEXT NOT NULL,
  background INTEGER NOT NULL DEFAULT 0,
  previous_id TEXT NOT NULL DEFAULT '',
  runner TEXT NOT NULL DEFAULT '',
  created_at_ms BIGINT NOT NULL,
  updated_at_ms BIGINT NOT NULL,
  bytes BIGINT NOT NULL,
  response TEXT NOT NULL,
  input_items TEXT NOT NULL,
  hidden TEXT NOT NULL DEFAULT ''
);
CREATE INDEX responses_created ON responses (created_at_ms);
)sql",
       nullptr, nullptr},
      // The ids of each stored response's items (its input items and its output items), so that a
      // Responses `item_reference` finds its item among the owner's responses; a response's ids go
      // with it. The rows stored before this step are indexed here.
      {5,
       R"sql(
CREATE TABLE response_items (
  response_id TEXT NOT NULL REFERENCES responses(id) ON DELETE CASCADE,
  item_id TEXT NOT NULL,
  owner TEXT NOT NULL,
  PRIMARY KEY (response_id, item_id)
);
CREATE INDEX response_items_owner_item ON response_items (owner, item_id);
)sql",
       R"sql(
INSERT OR IGNORE INTO response_items (response_id, item_id, owner)
  SELECT r.id, json_extract(j.value, '$.id'), r.owner FROM responses r, json_each(r.input_items) j
  WHERE json_type(j.value, '$.id') = 'text';
INSERT OR IGNORE INTO response_items (response_id, item_id, owner)
  SELECT r.id, json_extract(j.value, '$.id'), r.owner FROM responses r, json_each(r.response, '$.output') j
  WHERE json_type(j.value, '$.id') = 'text';
)sql",
       R"sql(
INSERT INTO response_items (response_id, item_id, owner)
  SELECT r.id, e->>'id', r.owner FROM responses r, jsonb_array_elements(r.input_items::jsonb) e
  WHERE jsonb_typeof(e->'id') = 'string' ON CONFLICT DO NOTHING;
INSERT INTO response_items (response_id, item_id, owner)
  SELECT r.id, e->>'id', r.owner FROM responses r, jsonb_array_elements(r.response::jsonb->'output') e
  WHERE jsonb_typeof(e->'id') = 'string' ON CONFLICT DO NOTHING;
)sql"},
  };
  return steps;
}

}  // namespace

int latest_schema_version() { return migrations().back().version; }

int migrate(Store& store) {
  return run_transaction(store, [&] {
    if (store.dialect() == Dialect::postgresql)
      store.query("SELECT pg_advisory_xact_lock(?)", {int64_t(0x76346601)});  // one migrator at a time
    store.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
    auto rows = store.query("SELECT version FROM schema_version");
    int found = 0;
    if (rows.empty()) store.exec("INSERT INTO schema_version (version) VALUES (0)");
    else found = int(rows.at(0).integer(0));
    if (found > latest_schema_version())
      throw std::runtime_error("database schema version " + std::to_string(found) +
                               " is newer than this binary's " + std::to_string(latest_schema_version()));
    for (const auto& m : migrations()) {
      if (m.version <= found) continue;
      if (m.common) store.exec_script(m.common);
      const char* extra = store.dialect() == Dialect::sqlite ? m.sqlite_only : m.postgres_only;
      if (extra) store.exec_script(extra);
      store.exec("UPDATE schema_version SET version = ?", {int64_t(m.version)});
    }
    return found;
  });
}

}  // namespace v4::product
