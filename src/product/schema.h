#pragma once
// Schema migrations: an ordered list applied once each, tracked in table schema_version.
#include "product/store.h"

namespace v4::product {

// The newest schema version this binary knows.
int latest_schema_version();
// Brings the database to latest_schema_version() in one transaction (serialised between processes);
// throws std::runtime_error if the database is newer than this binary. Returns the version found
// before migrating (0 for a new database).
int migrate(Store& store);

}  // namespace v4::product
