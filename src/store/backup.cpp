#include "segnode/store/backup.hpp"

#include "segnode/store/workdir.hpp"

#include <chrono>
#include <memory>
#include <sqlite3.h>
#include <string>
#include <system_error>

namespace segnode::store {
namespace fs = std::filesystem;
namespace {

struct ConnectionCloser {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using Connection = std::unique_ptr<sqlite3, ConnectionCloser>;

std::string describe(sqlite3* db, int rc) {
    std::string text = sqlite3_errstr(rc);
    if (db != nullptr && sqlite3_errcode(db) != SQLITE_OK) {
        text += " (" + std::string(sqlite3_errmsg(db)) + ")";
    }
    return text;
}

/// Runs one statement on the copy and returns the first column of its first row as text
/// (empty when there is no row); an error comes back as Error naming `what`.
Result<std::string> query_text(sqlite3* db, const char* sql, const std::string& what) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw, sqlite3_finalize);
    if (rc != SQLITE_OK) {
        return Error{what + ": " + describe(db, rc)};
    }
    rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) {
        return std::string{};
    }
    if (rc != SQLITE_ROW) {
        return Error{what + ": " + describe(db, rc)};
    }
    const auto* text = sqlite3_column_text(stmt.get(), 0);
    return std::string(text != nullptr ? reinterpret_cast<const char*>(text) : "");
}

bool has_table(sqlite3* db, const std::string& name) {
    auto n = query_text(
        db,
        ("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='" + name + "'").c_str(),
        "table lookup");
    return n && *n == "1";
}

/// The copy's own figures, read back from it (not from the source, which has moved on).
Status describe_copy(sqlite3* db, BackupResult& out) {
    if (has_table(db, "schema_migrations")) {
        auto v = query_text(db, "SELECT coalesce(max(version), 0) FROM schema_migrations",
                            "schema version of the copy");
        if (!v) {
            return v.error();
        }
        out.schema_version = std::stoi(*v);
    }
    if (has_table(db, "instances")) {
        auto n = query_text(db, "SELECT count(*) FROM instances", "instances in the copy");
        if (!n) {
            return n.error();
        }
        out.instances = std::stoll(*n);
    }
    if (has_table(db, "jobs")) {
        auto n = query_text(db, "SELECT count(*) FROM jobs", "jobs in the copy");
        if (!n) {
            return n.error();
        }
        out.jobs = std::stoll(*n);
    }
    return ok_status();
}

/// Copies every page in one step: one read transaction, hence one consistent snapshot. A
/// writer holding the source briefly (SQLITE_BUSY/LOCKED) is waited for, up to `patience`.
Result<std::int64_t> copy_pages(sqlite3* from, sqlite3* to, const std::string& label) {
    sqlite3_backup* backup = sqlite3_backup_init(to, "main", from, "main");
    if (backup == nullptr) {
        return Error{label + ": cannot start the backup: " + describe(to, sqlite3_errcode(to))};
    }
    constexpr auto patience = std::chrono::seconds(60);
    const auto deadline = std::chrono::steady_clock::now() + patience;
    int rc = SQLITE_OK;
    std::int64_t pages = 0;
    for (;;) {
        rc = sqlite3_backup_step(backup, -1);
        pages = sqlite3_backup_pagecount(backup);
        if (rc == SQLITE_DONE) {
            break;
        }
        if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) &&
            std::chrono::steady_clock::now() < deadline) {
            sqlite3_sleep(20);
            continue;
        }
        break;
    }
    const int finish = sqlite3_backup_finish(backup);
    if (rc != SQLITE_DONE) {
        return Error{label + ": backup failed: " + describe(from, rc)};
    }
    if (finish != SQLITE_OK) {
        return Error{label + ": backup failed: " + describe(to, finish)};
    }
    return pages;
}

} // namespace

Result<BackupResult> backup_database(Database& source, const fs::path& destination) {
    std::error_code ec;
    if (fs::exists(destination, ec)) {
        return Error{destination.string() +
                     ": already exists; remove it or choose another file name"};
    }
    const fs::path partial = destination.string() + ".partial";
    fs::remove(partial, ec);
    fs::remove(partial.string() + "-journal", ec);

    BackupResult result;
    result.file = destination;
    {
        sqlite3* raw = nullptr;
        const int rc = sqlite3_open_v2(partial.c_str(), &raw,
                                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
        Connection copy(raw);
        if (rc != SQLITE_OK) {
            return Error{partial.string() + ": cannot create: " + describe(raw, rc)};
        }
        auto failed = [&](const Error& e) -> Result<BackupResult> {
            copy.reset();
            fs::remove(partial, ec);
            return e;
        };
        auto pages = copy_pages(source.handle(), copy.get(), partial.string());
        if (!pages) {
            return failed(pages.error());
        }
        result.pages = *pages;
        // The source runs in WAL mode and its header says so; the copy is meant to be one
        // self-contained file that can be moved, so it uses a rollback journal.
        auto mode = query_text(copy.get(), "PRAGMA journal_mode=DELETE", "journal mode");
        if (!mode) {
            return failed(Error{partial.string() + ": " + mode.error().message});
        }
        auto check = query_text(copy.get(), "PRAGMA quick_check", "integrity check");
        if (!check) {
            return failed(Error{partial.string() + ": " + check.error().message});
        }
        if (*check != "ok") {
            return failed(
                Error{partial.string() + ": the copy fails its integrity check: " + *check});
        }
        if (auto st = describe_copy(copy.get(), result); !st) {
            return failed(Error{partial.string() + ": " + st.error().message});
        }
    }
    if (auto st = fsync_file(partial); !st) {
        fs::remove(partial, ec);
        return st.error();
    }
    fs::rename(partial, destination, ec);
    if (ec) {
        const std::string reason = ec.message();
        fs::remove(partial, ec);
        return Error{destination.string() + ": cannot move the copy into place: " + reason};
    }
    const fs::path dir = destination.has_parent_path() ? destination.parent_path() : ".";
    if (auto st = fsync_directory(dir); !st) {
        return st.error();
    }
    result.bytes = fs::file_size(destination, ec);
    return result;
}

} // namespace segnode::store
