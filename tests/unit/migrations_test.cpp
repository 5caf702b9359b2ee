#include "segnode/store/migrations.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

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
    for (const char* table : {"associations", "series", "instances", "receive_events", "quarantine",
                              "api_keys", "schema_migrations"}) {
        EXPECT_EQ(scalar(db, std::string("SELECT count(*) FROM sqlite_master WHERE type='table' "
                                         "AND name='") +
                                 table + "'"),
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

TEST(Database, CachedStatementsAreResetBetweenUsesAndNeverShared) {
    test::TempDir dir;
    Database db = open_db(dir.path());
    db.exec("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)");
    const std::string insert = "INSERT INTO t(k, v) VALUES (?, ?)";
    for (int k = 1; k <= 3; ++k) {
        db.prepare(insert).bind(1, k).bind(2, "v" + std::to_string(k)).run();
    }
    const std::string select = "SELECT v FROM t WHERE k >= ? ORDER BY k";
    {
        // The same SQL twice at once: the second cannot borrow the first's statement.
        auto outer = db.prepare(select);
        outer.bind(1, 2);
        ASSERT_TRUE(outer.step());
        EXPECT_EQ(outer.column_text(0), "v2");
        auto inner = db.prepare(select);
        inner.bind(1, 1);
        ASSERT_TRUE(inner.step());
        EXPECT_EQ(inner.column_text(0), "v1");
        ASSERT_TRUE(outer.step());
        EXPECT_EQ(outer.column_text(0), "v3") << "the outer statement was disturbed";
    }
    {
        // Reused after release: starts from the beginning with no stale binding.
        auto again = db.prepare(select);
        again.bind(1, 3);
        ASSERT_TRUE(again.step());
        EXPECT_EQ(again.column_text(0), "v3");
        EXPECT_FALSE(again.step());
    }
    EXPECT_EQ(scalar(db, "SELECT count(*) FROM t"), 3);
    // A moved connection keeps working with its cache.
    Database moved = std::move(db);
    EXPECT_EQ(scalar(moved, "SELECT count(*) FROM t"), 3);
    moved.prepare(insert).bind(1, 4).bind(2, "v4").run();
    EXPECT_EQ(scalar(moved, "SELECT count(*) FROM t"), 4);
}
