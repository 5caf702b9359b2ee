#include "segnode/store/migrations.hpp"

#include "segnode/core/clock.hpp"

#include <sqlite3.h>

namespace segnode::store {

// Defined in the file generated from db/*.sql (see CMakeLists.txt).
const std::vector<Migration>& embedded_migrations_generated();

const std::vector<Migration>& embedded_migrations() {
    return embedded_migrations_generated();
}

int latest_schema_version() {
    const auto& all = embedded_migrations();
    return all.empty() ? 0 : all.back().version;
}

int schema_version(Database& db) {
    auto exists = db.prepare(
        "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='schema_migrations'");
    exists.step();
    if (exists.column_int64(0) == 0) {
        return 0;
    }
    auto st = db.prepare("SELECT coalesce(max(version), 0) FROM schema_migrations");
    st.step();
    return static_cast<int>(st.column_int64(0));
}

Result<int> migrate(Database& db) {
    try {
        db.exec("CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)");
        const int current = schema_version(db);
        if (current > latest_schema_version()) {
            return Error{db.path().string() + ": database schema version " +
                         std::to_string(current) + " is newer than this segnode knows (" +
                         std::to_string(latest_schema_version()) +
                         "); refusing to use it with an older binary"};
        }
        int applied = 0;
        for (const auto& m : embedded_migrations()) {
            if (m.version <= current) {
                continue;
            }
            Transaction tx(db);
            try {
                db.exec(m.sql);
            } catch (const DatabaseError& e) {
                return Error{"migration " + std::to_string(m.version) + " (" + m.name +
                             ") failed: " + e.what()};
            }
            db.prepare("INSERT INTO schema_migrations(version, name, applied_at) VALUES (?,?,?)")
                .bind(1, static_cast<std::int64_t>(m.version))
                .bind(2, m.name)
                .bind(3, now_ms())
                .run();
            tx.commit();
            ++applied;
        }
        return applied;
    } catch (const DatabaseError& e) {
        return Error{db.path().string() + ": " + e.what()};
    }
}

} // namespace segnode::store
