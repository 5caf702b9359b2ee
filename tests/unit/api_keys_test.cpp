#include "segnode/api/api_keys.hpp"
#include "segnode/store/migrations.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>
#include <regex>

using namespace segnode;

namespace {

class ApiKeysTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto db =
            store::Database::open(m_dir.path() / "k.db", store::Database::Mode::ReadWriteCreate);
        ASSERT_TRUE(db.ok());
        m_db.emplace(std::move(db).value());
        ASSERT_TRUE(store::migrate(*m_db).ok());
        m_repo.emplace(*m_db);
    }
    test::TempDir m_dir;
    std::optional<store::Database> m_db;
    std::optional<store::ApiKeyRepository> m_repo;
};

} // namespace

TEST(Sha256, KnownVectors) {
    EXPECT_EQ(api::sha256_hex(""),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(api::sha256_hex("abc"),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(ApiKeysTest, IssuedKeyHasFormatAndOnlyItsHashIsStored) {
    auto issued = api::issue_key(*m_repo, "ops", api::Role::Admin);
    ASSERT_TRUE(issued.ok()) << issued.error().message;
    EXPECT_TRUE(std::regex_match(issued->key, std::regex("snk_[0-9a-f]{8}_[0-9a-f]{64}")))
        << issued->key;
    const auto rows = m_repo->list();
    ASSERT_EQ(rows.size(), 1U);
    EXPECT_EQ(rows[0].name, "ops");
    EXPECT_EQ(rows[0].role, "admin");
    EXPECT_EQ(rows[0].prefix, issued->key.substr(4, 8));
    EXPECT_EQ(rows[0].secret_sha256, api::sha256_hex(issued->key));
    EXPECT_EQ(rows[0].secret_sha256.find(issued->key.substr(13)), std::string::npos);
}

TEST_F(ApiKeysTest, AuthenticateAcceptsOnlyTheExactKey) {
    auto issued = api::issue_key(*m_repo, "script", api::Role::Submit);
    ASSERT_TRUE(issued.ok());
    auto ok = api::authenticate(*m_repo, issued->key);
    ASSERT_TRUE(ok.ok()) << ok.error().message;
    EXPECT_EQ(ok->role, "submit");
    EXPECT_TRUE(m_repo->list()[0].last_used_at.has_value()) << "last use recorded";

    std::string tampered = issued->key;
    tampered.back() = tampered.back() == '0' ? '1' : '0';
    auto bad = api::authenticate(*m_repo, tampered);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().message, "unknown API key");
    EXPECT_FALSE(api::authenticate(*m_repo, "snk_nothex").ok());
    EXPECT_FALSE(api::authenticate(*m_repo, "").ok());
}

TEST_F(ApiKeysTest, RevokedKeysAreRefusedAndNamesStayUnique) {
    auto issued = api::issue_key(*m_repo, "old", api::Role::Read);
    ASSERT_TRUE(issued.ok());
    auto dup = api::issue_key(*m_repo, "old", api::Role::Read);
    ASSERT_FALSE(dup.ok());
    EXPECT_NE(dup.error().message.find("already exists"), std::string::npos);

    ASSERT_TRUE(m_repo->revoke("old", 5).ok());
    auto refused = api::authenticate(*m_repo, issued->key);
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.error().message.find("revoked"), std::string::npos);
    auto again = m_repo->revoke("old", 6);
    ASSERT_FALSE(again.ok());
    EXPECT_NE(again.error().message.find("no active API key named 'old'"), std::string::npos);
    auto reuse = api::issue_key(*m_repo, "old", api::Role::Read);
    ASSERT_FALSE(reuse.ok());
    EXPECT_NE(reuse.error().message.find("revoked"), std::string::npos);
}

TEST(ApiKeys, NamesAndRolesAreValidated) {
    EXPECT_FALSE(api::key_name_problem("ok-name_1.x").has_value());
    EXPECT_TRUE(api::key_name_problem("").has_value());
    EXPECT_TRUE(api::key_name_problem("has space").has_value());
    EXPECT_TRUE(api::key_name_problem(std::string(65, 'a')).has_value());
    EXPECT_EQ(api::parse_role("admin"), api::Role::Admin);
    EXPECT_EQ(api::parse_role("read"), api::Role::Read);
    EXPECT_FALSE(api::parse_role("root").has_value());
}
