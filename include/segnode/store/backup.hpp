#pragma once
// Online backup of the live database with SQLite's backup API.
#include "segnode/core/result.hpp"
#include "segnode/store/database.hpp"

#include <cstdint>
#include <filesystem>

namespace segnode::store {

struct BackupResult {
    std::filesystem::path file;
    std::int64_t pages = 0;
    std::uintmax_t bytes = 0;
    int schema_version = 0;
    std::int64_t instances = 0;
    std::int64_t jobs = 0; ///< 0 before schema version 2
};

/// Copies `source` into `destination` while the node keeps running. The copy is taken in one
/// read transaction, so it is a consistent snapshot and, in WAL mode, never blocks the node's
/// writers. It is written to `destination.partial`, converted to a self-contained rollback-journal
/// file (no -wal/-shm beside it), verified with `PRAGMA quick_check`, fsynced and renamed into
/// place; a failure leaves no file at `destination`. An existing `destination` is refused.
Result<BackupResult> backup_database(Database& source, const std::filesystem::path& destination);

} // namespace segnode::store
