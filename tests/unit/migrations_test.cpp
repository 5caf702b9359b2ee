#include <gtest/gtest.h>

#include "segnode/store/migrations.hpp"
#include "test_util.hpp"

using namespace segnode;
using namespace segnode::store;

namespace {

Database open_db(const std::filesystem::path& dir) {
    auto db = Database::open(dir / "t.db", Database::Mode::ReadWriteCreate);
    EXPECT_TRUE(db.ok()) << (db.ok() ? "" : db.error().message);
    return std::move(db).value();
}

std::int64_t scalar(Database& db, const std::string& sql) {
    auto st = db.prepare(sql);
    EXPECT_TRUE(st.step());
    return st.column_int64(0);
}

} // namespace

TEST(Migrations, EmbeddedInOrderWithoutGaps) {
    const auto& all = embedded_migrations();
    ASSERT_FALSE(all.empty());
    for (std::size_t i = 0; i < all.size(); ++i) {
        EXPECT_EQ(all[i].version, static_cast<int>(i + 1)) << all[i].name;
        EXPECT_FALSE(all[i].sql.empty());
    }
    EXPECT_EQ(latest_schema_version(), all.back().version);
}

TEST(Migrations, CreateSchemaAndRecordVersion) {
    test::TempDir dir;
    Database db = open_db(dir.path());
    EXPECT_EQ(schema_version(db), 0);
    auto applied = migrate(db);
    ASSERT_TRUE(applied.ok()) << applied.error().message;
    EXPECT_EQ(*applied, latest_schema_version());
    EXPECT_EQ(schema_version(db), latest_schema_version());
    for (const char* table : {"associations", "series", "instances", "receive_events",
                              "quarantine", "api_keys", "schema_migrations"}) {
        EXPECT_EQ(scalar(db, std::string("SELECT count(*) FROM sqlite_master WHERE type='table' "
                                         "AND name='") + table + "'"),
                  1)
            << table;
    }
    EXPECT_EQ(scalar(db, "SELECT count(*) FROM schema_migrations"), latest_schema_version());
}

TEST(Migrations, SecondRunIsANoOp) {
    test::TempDir dir;
    Database db = open_db(dir.path());
    ASSERT_TRUE(migrate(db).ok());
    db.exec("INSERT INTO api_keys(name, role, prefix, secret_sha256, created_at) "
            "VALUES ('k', 'read', 'p', 'h', 1)");
    auto again = migrate(db);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, 0);
    EXPECT_EQ(scalar(db, "SELECT count(*) FROM api_keys"), 1) << "data survives re-migration";
}

TEST(Migrations, RefusesNewerDatabase) {
    test::TempDir dir;
    Database db = open_db(dir.path());
    ASSERT_TRUE(migrate(db).ok());
    db.exec("INSERT INTO schema_migrations(version, name, applied_at) VALUES (999, 'future', 0)");
    auto r = migrate(db);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("newer"), std::string::npos) << r.error().message;
}

TEST(Database, UsesWalAndForeignKeys) {
    test::TempDir dir;
    Database db = open_db(dir.path());
    auto mode = db.prepare("PRAGMA journal_mode");
    ASSERT_TRUE(mode.step());
    EXPECT_EQ(mode.column_text(0), "wal");
    EXPECT_EQ(scalar(db, "PRAGMA foreign_keys"), 1);
    EXPECT_EQ(scalar(db, "PRAGMA synchronous"), 2) << "FULL";
}

TEST(Database, OpenReportsPath) {
    auto r = Database::open("/nonexistent-dir/x.db", Database::Mode::ReadWrite);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("/nonexistent-dir/x.db"), std::string::npos);
}

TEST(Database, TransactionRollsBackUnlessCommitted) {
    test::TempDir dir;
    Database db = open_db(dir.path());
    db.exec("CREATE TABLE t(x INTEGER)");
    {
        Transaction tx(db);
        db.exec("INSERT INTO t VALUES (1)");
    }
    EXPECT_EQ(scalar(db, "SELECT count(*) FROM t"), 0);
    {
        Transaction tx(db);
        db.exec("INSERT INTO t VALUES (1)");
        tx.commit();
    }
    EXPECT_EQ(scalar(db, "SELECT count(*) FROM t"), 1);
}
