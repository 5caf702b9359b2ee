#pragma once
#include "segnode/core/result.hpp"
#include "segnode/store/database.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace segnode::store {

struct ApiKeyRow {
    std::int64_t id = 0;
    std::string name;
    std::string role;
    std::string prefix;
    std::string secret_sha256;
    std::int64_t created_at = 0;
    std::optional<std::int64_t> last_used_at;
    std::optional<std::int64_t> revoked_at;
};

class ApiKeyRepository {
public:
    explicit ApiKeyRepository(Database& db) : m_db(db) {}

    /// Fails with a clear message if the name (or, improbably, the prefix) is taken.
    Status add(const ApiKeyRow& row);
    std::vector<ApiKeyRow> list();
    std::optional<ApiKeyRow> find_by_prefix(const std::string& prefix);
    /// Fails if no active key has that name.
    Status revoke(const std::string& name, std::int64_t at);
    void touch(std::int64_t id, std::int64_t at);

private:
    Database& m_db;
};

} // namespace segnode::store
