#include "segnode/store/api_key_repo.hpp"

#include <sqlite3.h>

namespace segnode::store {
namespace {

ApiKeyRow read_row(const Statement& st) {
    ApiKeyRow r;
    r.id = st.column_int64(0);
    r.name = st.column_text(1);
    r.role = st.column_text(2);
    r.prefix = st.column_text(3);
    r.secret_sha256 = st.column_text(4);
    r.created_at = st.column_int64(5);
    r.last_used_at = st.column_optional_int64(6);
    r.revoked_at = st.column_optional_int64(7);
    return r;
}

constexpr const char* k_columns =
    "id, name, role, prefix, secret_sha256, created_at, last_used_at, revoked_at";

} // namespace

Status ApiKeyRepository::add(const ApiKeyRow& row) {
    {
        auto st = m_db.prepare("SELECT revoked_at FROM api_keys WHERE name = ?");
        st.bind(1, row.name);
        if (st.step()) {
            return Error{st.column_is_null(0)
                             ? "an API key named '" + row.name + "' already exists"
                             : "the name '" + row.name +
                                   "' belongs to a revoked key and is kept for the audit trail; "
                                   "choose another name"};
        }
    }
    try {
        m_db.prepare("INSERT INTO api_keys(name, role, prefix, secret_sha256, created_at) "
                     "VALUES (?,?,?,?,?)")
            .bind(1, row.name)
            .bind(2, row.role)
            .bind(3, row.prefix)
            .bind(4, row.secret_sha256)
            .bind(5, row.created_at)
            .run();
    } catch (const DatabaseError& e) {
        if ((e.code() & 0xff) == SQLITE_CONSTRAINT) {
            return Error{"cannot store API key '" + row.name + "': " + e.what()};
        }
        throw;
    }
    return ok_status();
}

std::vector<ApiKeyRow> ApiKeyRepository::list() {
    auto st = m_db.prepare(std::string("SELECT ") + k_columns + " FROM api_keys ORDER BY name");
    std::vector<ApiKeyRow> rows;
    while (st.step()) {
        rows.push_back(read_row(st));
    }
    return rows;
}

std::optional<ApiKeyRow> ApiKeyRepository::find_by_prefix(const std::string& prefix) {
    auto st = m_db.prepare(std::string("SELECT ") + k_columns + " FROM api_keys WHERE prefix = ?");
    st.bind(1, prefix);
    if (!st.step()) {
        return std::nullopt;
    }
    return read_row(st);
}

Status ApiKeyRepository::revoke(const std::string& name, std::int64_t at) {
    auto st =
        m_db.prepare("UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL");
    st.bind(1, at).bind(2, name).run();
    if (m_db.changes() == 0) {
        return Error{"no active API key named '" + name + "'"};
    }
    return ok_status();
}

void ApiKeyRepository::touch(std::int64_t id, std::int64_t at) {
    m_db.prepare("UPDATE api_keys SET last_used_at = ? WHERE id = ?").bind(1, at).bind(2, id).run();
}

} // namespace segnode::store
