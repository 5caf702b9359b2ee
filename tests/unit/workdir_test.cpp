#include "segnode/store/workdir.hpp"
#include "test_util.hpp"

#include <fstream>
#include <gtest/gtest.h>

using namespace segnode;
using namespace segnode::store;
namespace fs = std::filesystem;

namespace {
void write(const fs::path& p, const std::string& content) {
    std::ofstream(p, std::ios::binary) << content;
}
} // namespace

TEST(Workdir, EnsureCreatesLayout) {
    test::TempDir dir;
    Workdir w(dir.path() / "var");
    ASSERT_TRUE(w.ensure().ok());
    for (const auto& d : {w.instances_dir(), w.jobs_dir(), w.quarantine_dir(), w.tmp_dir()}) {
        EXPECT_TRUE(fs::is_directory(d)) << d;
    }
    EXPECT_EQ(w.db_path(), dir.path() / "var" / "segnode.db");
}

TEST(Workdir, InstancePathOnlyFromValidUids) {
    Workdir w("/var/lib/segnode");
    auto ok = w.instance_relpath("1.2.3", "1.2.3.4", "1.2.3.4.5");
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(*ok, fs::path("instances/1.2.3/1.2.3.4/1.2.3.4.5.dcm"));
    auto bad = w.instance_relpath("1.2.3", "../../etc", "1.2");
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find("'../../etc'"), std::string::npos);
}

TEST(Workdir, CleanTmpRemovesLeftovers) {
    test::TempDir dir;
    Workdir w(dir.path());
    ASSERT_TRUE(w.ensure().ok());
    write(w.new_temp_path(".dcm"), "partial");
    write(w.new_temp_path(".dcm"), "partial");
    EXPECT_NE(w.new_temp_path(".dcm"), w.new_temp_path(".dcm"));
    EXPECT_EQ(w.clean_tmp(), 2U);
    EXPECT_TRUE(fs::is_empty(w.tmp_dir()));
}

TEST(DurableRename, MovesIntoNewDirectories) {
    test::TempDir dir;
    const fs::path src = dir.path() / "a.tmp";
    write(src, "payload");
    const fs::path dst = dir.path() / "x" / "y" / "z.dcm";
    ASSERT_TRUE(durable_rename(src, dst, true).ok());
    EXPECT_FALSE(fs::exists(src));
    std::ifstream in(dst);
    std::string content;
    in >> content;
    EXPECT_EQ(content, "payload");
}

TEST(DurableRename, ReportsFailureWithPaths) {
    test::TempDir dir;
    auto st = durable_rename(dir.path() / "missing.tmp", dir.path() / "out.dcm", true);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find("missing.tmp"), std::string::npos) << st.error().message;
}

TEST(SameTail, ComparesFromOffsets) {
    test::TempDir dir;
    write(dir.path() / "a", "HEADER-A:same body");
    write(dir.path() / "b", "HDR-B:same body");
    write(dir.path() / "c", "HDR-B:other body");
    EXPECT_TRUE(same_tail(dir.path() / "a", 9, dir.path() / "b", 6).value());
    EXPECT_FALSE(same_tail(dir.path() / "a", 9, dir.path() / "c", 6).value());
    EXPECT_FALSE(same_tail(dir.path() / "a", 0, dir.path() / "b", 0).value());
    EXPECT_FALSE(same_tail(dir.path() / "a", 0, dir.path() / "missing", 0).ok());
}
