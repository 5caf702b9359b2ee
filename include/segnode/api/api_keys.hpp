#pragma once
// API keys for the HTTP API. A key is "snk_<prefix>_<secret>": the prefix (8 hex digits) is a
// public identifier shown by `segnode key list`; only the SHA-256 of the whole key is stored.
// Keys carry 256 random bits, so a fast hash is enough (no password stretching needed).
#include "segnode/core/result.hpp"
#include "segnode/store/api_key_repo.hpp"

#include <optional>
#include <string>

namespace segnode::api {

enum class Role { Admin, Submit, Read };

std::optional<Role> parse_role(const std::string& text);
std::string to_string(Role role);

struct IssuedKey {
    std::string key; ///< shown to the operator once, never stored
    store::ApiKeyRow row;
};

/// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(const std::string& data);

/// Problem with a key name (1-64 characters of A-Z a-z 0-9 . _ -), or std::nullopt.
std::optional<std::string> key_name_problem(const std::string& name);

/// Creates and stores a new key.
Result<IssuedKey> issue_key(store::ApiKeyRepository& repo, const std::string& name, Role role);

/// Checks a presented key: well-formed, known, not revoked, hash matches (constant-time
/// comparison). Returns the key's row; records nothing.
Result<store::ApiKeyRow> verify_key(store::ApiKeyRepository& repo, const std::string& key);

/// verify_key, then records the use (last_used_at). Returns the key's row.
Result<store::ApiKeyRow> authenticate(store::ApiKeyRepository& repo, const std::string& key);

} // namespace segnode::api
