#include "segnode/core/uid.hpp"

#include <gtest/gtest.h>
#include <set>

using segnode::generate_uuid_uid;
using segnode::is_valid_uid;
using segnode::uid_problem;

TEST(Uid, AcceptsValidUids) {
    EXPECT_TRUE(is_valid_uid("1.2.840.10008.5.1.4.1.1.2"));
    EXPECT_TRUE(is_valid_uid("0.0"));
    EXPECT_TRUE(is_valid_uid("2.25.0"));
    EXPECT_TRUE(is_valid_uid(std::string(32, '1') + "." + std::string(31, '2'))); // 64 chars
}

TEST(Uid, RejectsWithSpecificReasons) {
    EXPECT_NE(uid_problem("")->find("empty"), std::string::npos);
    EXPECT_NE(uid_problem(std::string(33, '1') + "." + std::string(31, '2'))->find("at most 64"),
              std::string::npos);
    EXPECT_NE(uid_problem("1.2.abc")->find("position 5"), std::string::npos);
    EXPECT_NE(uid_problem("1..2")->find("empty component"), std::string::npos);
    EXPECT_NE(uid_problem(".1.2")->find("empty component"), std::string::npos);
    EXPECT_NE(uid_problem("1.2.")->find("empty component"), std::string::npos);
    EXPECT_NE(uid_problem("1.02")->find("leading zero"), std::string::npos);
}

TEST(Uid, RejectsPathTricks) {
    // UIDs become directory and file names: nothing that could escape or alter a path passes.
    for (const char* evil : {"../1.2", "1.2/3", "1.2\\3", "1.2 ", " 1.2", "1.2\n", "..", "."}) {
        EXPECT_FALSE(is_valid_uid(evil)) << evil;
    }
}

TEST(Uid, GeneratedUidsAreValidUniqueAndUnder225) {
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        const auto uid = generate_uuid_uid();
        ASSERT_TRUE(is_valid_uid(uid)) << uid << ": " << uid_problem(uid).value_or("");
        ASSERT_EQ(uid.rfind("2.25.", 0), 0U) << uid;
        ASSERT_LE(uid.size(), 44U) << uid; // 2.25. + at most 39 digits of a 128-bit number
        seen.insert(uid);
    }
    EXPECT_EQ(seen.size(), 1000U);
}
