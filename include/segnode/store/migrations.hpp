#pragma once
#include "segnode/core/result.hpp"
#include "segnode/store/database.hpp"

#include <string>
#include <vector>

namespace segnode::store {

struct Migration {
    int version;
    std::string name;
    std::string sql;
};

/// The migrations from db/, embedded at build time, in ascending version order.
const std::vector<Migration>& embedded_migrations();

/// Highest version this binary knows.
int latest_schema_version();

/// Version recorded in the database (0 for a new, empty database).
int schema_version(Database& db);

/// Applies every pending migration, each in its own transaction. Returns how many were
/// applied; refuses a database whose version is newer than this binary knows.
Result<int> migrate(Database& db);

} // namespace segnode::store
