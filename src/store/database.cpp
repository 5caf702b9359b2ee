#include "segnode/store/database.hpp"

#include <sqlite3.h>
#include <utility>

namespace segnode::store {
namespace {

[[noreturn]] void throw_error(sqlite3* db, int rc, std::string_view context) {
    std::string msg = std::string(context) + ": " + sqlite3_errstr(rc);
    if (db != nullptr) {
        msg += " (" + std::string(sqlite3_errmsg(db)) + ")";
    }
    throw DatabaseError(msg, rc);
}

} // namespace

bool DatabaseError::is_resource_error() const {
    const int primary = m_code & 0xff;
    return primary == SQLITE_FULL || primary == SQLITE_IOERR || primary == SQLITE_BUSY ||
           primary == SQLITE_LOCKED || primary == SQLITE_CANTOPEN;
}

Statement::Statement(sqlite3* db, std::string_view sql) : m_db(db) {
    const int rc =
        sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &m_stmt, nullptr);
    if (rc != SQLITE_OK) {
        throw_error(db, rc, "prepare '" + std::string(sql.substr(0, 60)) + "'");
    }
}

Statement::~Statement() {
    if (m_in_use != nullptr) {
        if (m_stmt != nullptr) {
            sqlite3_reset(m_stmt);
            sqlite3_clear_bindings(m_stmt);
        }
        *m_in_use = false;
        return;
    }
    sqlite3_finalize(m_stmt);
}

Statement::Statement(Statement&& other) noexcept
    : m_db(other.m_db), m_stmt(std::exchange(other.m_stmt, nullptr)),
      m_in_use(std::exchange(other.m_in_use, nullptr)) {}

Statement& Statement::bind(int index, std::int64_t value) {
    const int rc = sqlite3_bind_int64(m_stmt, index, value);
    if (rc != SQLITE_OK) {
        throw_error(m_db, rc, "bind");
    }
    return *this;
}

Statement& Statement::bind(int index, const std::string& value) {
    const int rc = sqlite3_bind_text(m_stmt, index, value.data(), static_cast<int>(value.size()),
                                     SQLITE_TRANSIENT);
    if (rc != SQLITE_OK) {
        throw_error(m_db, rc, "bind");
    }
    return *this;
}

Statement& Statement::bind(int index, const char* value) {
    return bind(index, std::string(value));
}

Statement& Statement::bind_null(int index) {
    const int rc = sqlite3_bind_null(m_stmt, index);
    if (rc != SQLITE_OK) {
        throw_error(m_db, rc, "bind");
    }
    return *this;
}

Statement& Statement::bind(int index, const std::optional<std::int64_t>& value) {
    return value ? bind(index, *value) : bind_null(index);
}

bool Statement::step() {
    const int rc = sqlite3_step(m_stmt);
    if (rc == SQLITE_ROW) {
        return true;
    }
    if (rc == SQLITE_DONE) {
        return false;
    }
    throw_error(m_db, rc, "step '" + std::string(sqlite3_sql(m_stmt)).substr(0, 60) + "'");
}

void Statement::run() {
    while (step()) {
    }
}

void Statement::reset() {
    sqlite3_reset(m_stmt);
    sqlite3_clear_bindings(m_stmt);
}

std::int64_t Statement::column_int64(int index) const {
    return sqlite3_column_int64(m_stmt, index);
}

std::string Statement::column_text(int index) const {
    const auto* text = sqlite3_column_text(m_stmt, index);
    if (text == nullptr) {
        return {};
    }
    return {reinterpret_cast<const char*>(text),
            static_cast<std::size_t>(sqlite3_column_bytes(m_stmt, index))};
}

bool Statement::column_is_null(int index) const {
    return sqlite3_column_type(m_stmt, index) == SQLITE_NULL;
}

std::optional<std::int64_t> Statement::column_optional_int64(int index) const {
    if (column_is_null(index)) {
        return std::nullopt;
    }
    return column_int64(index);
}

Result<Database> Database::open(const std::filesystem::path& file, Mode mode) {
    sqlite3* db = nullptr;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    if (mode == Mode::ReadWriteCreate) {
        flags |= SQLITE_OPEN_CREATE;
    }
    const int rc = sqlite3_open_v2(file.c_str(), &db, flags, nullptr);
    if (rc != SQLITE_OK) {
        std::string msg = file.string() + ": cannot open database: " +
                          (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return Error{msg};
    }
    Database database(db, file);
    try {
        sqlite3_busy_timeout(db, 10000);
        sqlite3_extended_result_codes(db, 1);
        database.exec("PRAGMA journal_mode=WAL");
        database.exec("PRAGMA synchronous=FULL");
        database.exec("PRAGMA foreign_keys=ON");
    } catch (const DatabaseError& e) {
        return Error{file.string() + ": " + e.what()};
    }
    return database;
}

Database::~Database() {
    close();
}

void Database::close() {
    for (auto& [sql, cached] : m_statements) {
        sqlite3_finalize(cached.stmt);
    }
    m_statements.clear();
    sqlite3_close(m_db);
    m_db = nullptr;
}

Database::Database(Database&& other) noexcept
    : m_db(std::exchange(other.m_db, nullptr)), m_path(std::move(other.m_path)),
      m_statements(std::move(other.m_statements)) {}

Database& Database::operator=(Database&& other) noexcept {
    if (this != &other) {
        close();
        m_db = std::exchange(other.m_db, nullptr);
        m_path = std::move(other.m_path);
        m_statements = std::move(other.m_statements);
    }
    return *this;
}

Statement Database::prepare(std::string_view sql) {
    const auto it = m_statements.find(std::string(sql));
    if (it != m_statements.end()) {
        if (it->second.in_use) {
            return Statement(m_db, sql);
        }
        it->second.in_use = true;
        return Statement(m_db, it->second.stmt, &it->second.in_use);
    }
    if (m_statements.size() >= statement_cache_size) {
        return Statement(m_db, sql);
    }
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(m_db, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(stmt);
        throw_error(m_db, rc, "prepare '" + std::string(sql.substr(0, 60)) + "'");
    }
    auto& cached = m_statements[std::string(sql)];
    cached.stmt = stmt;
    cached.in_use = true;
    return Statement(m_db, stmt, &cached.in_use);
}

void Database::exec(std::string_view sql) {
    char* err = nullptr;
    const std::string text(sql);
    const int rc = sqlite3_exec(m_db, text.c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
        std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
        sqlite3_free(err);
        throw DatabaseError("exec: " + msg, rc);
    }
}

std::int64_t Database::last_insert_rowid() const {
    return sqlite3_last_insert_rowid(m_db);
}

int Database::changes() const {
    return sqlite3_changes(m_db);
}

Transaction::Transaction(Database& db) : m_db(db), m_nested(db.in_transaction()) {
    m_db.exec(m_nested ? "SAVEPOINT segnode_nested" : "BEGIN IMMEDIATE");
}

Transaction::~Transaction() {
    if (!m_done) {
        try {
            m_db.exec(m_nested ? "ROLLBACK TO segnode_nested; RELEASE segnode_nested" : "ROLLBACK");
        } catch (const DatabaseError&) { // NOLINT(bugprone-empty-catch)
            // The transaction is gone either way; nothing more can be done in a destructor.
        }
    }
}

void Transaction::commit() {
    m_db.exec(m_nested ? "RELEASE segnode_nested" : "COMMIT");
    m_done = true;
}

bool Database::in_transaction() const {
    return sqlite3_get_autocommit(m_db) == 0;
}

} // namespace segnode::store
