#include "segnode/api/api_keys.hpp"

#include "segnode/core/clock.hpp"

#include <array>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdexcept>

namespace segnode::api {
namespace {

constexpr std::string_view k_key_tag = "snk_";
constexpr std::size_t k_prefix_hex = 8;
constexpr std::size_t k_secret_hex = 64;

std::string to_hex(const unsigned char* data, std::size_t n) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(n * 2);
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(digits[data[i] >> 4U]);
        out.push_back(digits[data[i] & 0x0fU]);
    }
    return out;
}

std::string random_hex(std::size_t bytes) {
    std::string buf(bytes, '\0');
    auto* p = reinterpret_cast<unsigned char*>(buf.data());
    if (RAND_bytes(p, static_cast<int>(bytes)) != 1) {
        throw std::runtime_error("the system random number generator failed");
    }
    return to_hex(p, bytes);
}

bool is_hex(std::string_view s) {
    return s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

} // namespace

std::optional<Role> parse_role(const std::string& text) {
    if (text == "admin") {
        return Role::Admin;
    }
    if (text == "submit") {
        return Role::Submit;
    }
    if (text == "read") {
        return Role::Read;
    }
    return std::nullopt;
}

std::string to_string(Role role) {
    switch (role) {
    case Role::Admin:
        return "admin";
    case Role::Submit:
        return "submit";
    case Role::Read:
        return "read";
    }
    return "read";
}

std::string sha256_hex(const std::string& data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), md.data(), &len, EVP_sha256(), nullptr) != 1) {
        throw std::runtime_error("SHA-256 computation failed");
    }
    return to_hex(md.data(), len);
}

std::optional<std::string> key_name_problem(const std::string& name) {
    if (name.empty() || name.size() > 64) {
        return "a key name must be 1 to 64 characters long";
    }
    if (name.find_first_not_of(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
        std::string::npos) {
        return "key name '" + name + "' may only contain letters, digits, '.', '_' and '-'";
    }
    return std::nullopt;
}

Result<IssuedKey> issue_key(store::ApiKeyRepository& repo, const std::string& name, Role role) {
    if (auto problem = key_name_problem(name)) {
        return Error{*problem};
    }
    IssuedKey issued;
    const std::string prefix = random_hex(k_prefix_hex / 2);
    issued.key = std::string(k_key_tag) + prefix + "_" + random_hex(k_secret_hex / 2);
    issued.row.name = name;
    issued.row.role = to_string(role);
    issued.row.prefix = prefix;
    issued.row.secret_sha256 = sha256_hex(issued.key);
    issued.row.created_at = now_ms();
    if (auto st = repo.add(issued.row); !st) {
        return st.error();
    }
    return issued;
}

Result<store::ApiKeyRow> verify_key(store::ApiKeyRepository& repo, const std::string& key) {
    const std::size_t expected = k_key_tag.size() + k_prefix_hex + 1 + k_secret_hex;
    if (key.size() != expected || key.compare(0, k_key_tag.size(), k_key_tag) != 0 ||
        key[k_key_tag.size() + k_prefix_hex] != '_') {
        return Error{"malformed API key"};
    }
    const std::string prefix = key.substr(k_key_tag.size(), k_prefix_hex);
    if (!is_hex(prefix) || !is_hex(std::string_view(key).substr(expected - k_secret_hex))) {
        return Error{"malformed API key"};
    }
    auto row = repo.find_by_prefix(prefix);
    if (!row) {
        return Error{"unknown API key"};
    }
    const std::string hash = sha256_hex(key);
    if (hash.size() != row->secret_sha256.size() ||
        CRYPTO_memcmp(hash.data(), row->secret_sha256.data(), hash.size()) != 0) {
        return Error{"unknown API key"};
    }
    if (row->revoked_at) {
        return Error{"API key '" + row->name + "' has been revoked"};
    }
    return *row;
}

Result<store::ApiKeyRow> authenticate(store::ApiKeyRepository& repo, const std::string& key) {
    auto row = verify_key(repo, key);
    if (row) {
        repo.touch(row->id, now_ms());
    }
    return row;
}

} // namespace segnode::api
