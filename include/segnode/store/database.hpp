#pragma once
// Thin RAII layer over SQLite. Anticipated failures (cannot open, constraint on user input)
// come back as Result/Status; unexpected database failures (I/O error, disk full, corrupt
// file) throw DatabaseError and are handled at the layer boundary.
#include "segnode/core/result.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

struct sqlite3;
struct sqlite3_stmt;

namespace segnode::store {

class DatabaseError : public std::runtime_error {
public:
    DatabaseError(const std::string& what, int code) : std::runtime_error(what), m_code(code) {}
    [[nodiscard]] int code() const { return m_code; }
    /// True for SQLITE_FULL / SQLITE_IOERR: the caller should answer "out of resources".
    [[nodiscard]] bool is_resource_error() const;

private:
    int m_code;
};

class Statement {
public:
    Statement(sqlite3* db, std::string_view sql);
    /// A statement borrowed from a connection's cache: reset (not finalized) on destruction,
    /// then `*in_use` is cleared so the cache can lend it again.
    Statement(sqlite3* db, sqlite3_stmt* cached, bool* in_use)
        : m_db(db), m_stmt(cached), m_in_use(in_use) {}
    ~Statement();
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    Statement(Statement&& other) noexcept;
    Statement& operator=(Statement&&) = delete;

    Statement& bind(int index, std::int64_t value);
    Statement& bind(int index, const std::string& value);
    Statement& bind(int index, const char* value);
    Statement& bind_null(int index);
    Statement& bind(int index, const std::optional<std::int64_t>& value);

    /// Steps once; true when a row is available, false when done.
    bool step();
    /// Steps to completion (for statements that return no rows).
    void run();
    void reset();

    [[nodiscard]] std::int64_t column_int64(int index) const;
    [[nodiscard]] std::string column_text(int index) const;
    [[nodiscard]] bool column_is_null(int index) const;
    [[nodiscard]] std::optional<std::int64_t> column_optional_int64(int index) const;

private:
    sqlite3* m_db;
    sqlite3_stmt* m_stmt = nullptr;
    bool* m_in_use = nullptr; ///< set for statements borrowed from Database's cache
};

class Database {
public:
    enum class Mode { ReadWriteCreate, ReadWrite };

    /// Opens (and with ReadWriteCreate creates) the database, sets WAL mode, a busy timeout,
    /// foreign keys and synchronous=FULL.
    static Result<Database> open(const std::filesystem::path& file, Mode mode);

    ~Database();
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;
    Database(Database&& other) noexcept;
    Database& operator=(Database&& other) noexcept;

    void exec(std::string_view sql);
    /// Prepared statements are cached per connection by their SQL text (up to
    /// `statement_cache_size`), so hot paths such as indexing a C-STORE do not parse SQL each
    /// time. A statement already lent out (same SQL in use higher up the stack) is prepared
    /// afresh instead. A Statement must not outlive its Database.
    Statement prepare(std::string_view sql);
    static constexpr std::size_t statement_cache_size = 64;
    [[nodiscard]] std::int64_t last_insert_rowid() const;
    [[nodiscard]] int changes() const;
    /// True inside BEGIN ... COMMIT (a Transaction then nests as a savepoint).
    [[nodiscard]] bool in_transaction() const;
    [[nodiscard]] sqlite3* handle() const { return m_db; }
    [[nodiscard]] const std::filesystem::path& path() const { return m_path; }

private:
    Database(sqlite3* db, std::filesystem::path path) : m_db(db), m_path(std::move(path)) {}
    void close();
    struct CachedStatement {
        sqlite3_stmt* stmt = nullptr;
        bool in_use = false;
    };
    sqlite3* m_db = nullptr;
    std::filesystem::path m_path;
    std::unordered_map<std::string, CachedStatement> m_statements; ///< nodes are stable
};

/// BEGIN IMMEDIATE ... COMMIT, rolled back unless committed; inside another transaction it is
/// a savepoint, so repository calls that open their own transaction compose.
class Transaction {
public:
    explicit Transaction(Database& db);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit();

private:
    Database& m_db;
    bool m_nested = false;
    bool m_done = false;
};

} // namespace segnode::store
