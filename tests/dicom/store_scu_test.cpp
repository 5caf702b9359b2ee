// The SCU's status classification and what send_files does before it needs a peer.
#include "segnode/dicom/store_scu.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <initializer_list>

namespace segnode::dicom {
namespace {

TEST(StoreStatus, SuccessIsOnlyZero) {
    EXPECT_EQ(classify_store_status(0x0000), StoreVerdict::Success);
    EXPECT_EQ(store_status_meaning(0x0000), "Success");
}

TEST(StoreStatus, StorageWarnings) {
    // PS3.4 B.2.3: coercion, elements discarded, data set does not match SOP class.
    for (const std::uint16_t s : std::initializer_list<std::uint16_t>{0xB000, 0xB006, 0xB007}) {
        EXPECT_EQ(classify_store_status(s), StoreVerdict::Warning) << std::hex << s;
    }
    EXPECT_EQ(store_status_meaning(0xB000), "Warning: Coercion of Data Elements");
    EXPECT_EQ(store_status_meaning(0xB006), "Warning: Elements Discarded");
    EXPECT_EQ(store_status_meaning(0xB007), "Warning: Data Set does not match SOP Class");
    // Any other Bxxx is a warning too (DCMTK's DICOM_WARNING_STATUS), with a generic meaning.
    EXPECT_EQ(classify_store_status(0xB123), StoreVerdict::Warning);
    EXPECT_EQ(store_status_meaning(0xB123), "Warning");
}

TEST(StoreStatus, GeneralWarningsOfPs37) {
    for (const std::uint16_t s : std::initializer_list<std::uint16_t>{0x0001, 0x0107, 0x0116}) {
        EXPECT_EQ(classify_store_status(s), StoreVerdict::Warning) << std::hex << s;
    }
}

TEST(StoreStatus, FailuresWithTheirMeaning) {
    struct Case {
        std::uint16_t status;
        const char* meaning;
    };
    const Case cases[] = {
        {0xA700, "Refused: Out of Resources"},
        {0xA7FF, "Refused: Out of Resources"},
        {0xA900, "Error: Data Set does not match SOP Class"},
        {0xA9AB, "Error: Data Set does not match SOP Class"},
        {0xC000, "Error: Cannot understand"},
        {0xCFFF, "Error: Cannot understand"},
        {0x0117, "Error: Invalid SOP Class"},
        {0x0122, "Refused: SOP Class not supported"},
        {0x0124, "Refused: Not authorized"},
        {0x0210, "Error: Duplicate invocation"},
        {0x0211, "Error: Unrecognized operation"},
        {0x0212, "Error: Mistyped argument"},
        {0x0213, "Error: Resource limitation"},
        {0xA801, "Failure"},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(classify_store_status(c.status), StoreVerdict::Failure) << std::hex << c.status;
        EXPECT_EQ(store_status_meaning(c.status), c.meaning) << std::hex << c.status;
    }
}

TEST(StoreStatus, PendingCancelAndUnknownAreFailures) {
    // Pending and cancel make no sense as the answer to a C-STORE: not a success.
    for (const std::uint16_t s :
         std::initializer_list<std::uint16_t>{0xFF00, 0xFF01, 0xFE00, 0x0002, 0x1234, 0xFFFF}) {
        EXPECT_EQ(classify_store_status(s), StoreVerdict::Failure) << std::hex << s;
    }
    EXPECT_EQ(store_status_meaning(0x1234), "Failure: unknown status");
}

TEST(StoreStatus, VerdictNames) {
    EXPECT_EQ(to_string(StoreVerdict::Success), "success");
    EXPECT_EQ(to_string(StoreVerdict::Warning), "warning");
    EXPECT_EQ(to_string(StoreVerdict::Failure), "failure");
}

TEST(StoreScu, PeerDescription) {
    EXPECT_EQ(describe_peer({"PACS", "127.0.0.1", 4242}), "PACS at 127.0.0.1:4242");
    EXPECT_EQ(describe_peer({"PACS", "::1", 104}), "PACS at [::1]:104");
}

TEST(StoreScu, NoFilesNoAssociation) {
    // Port 1 on loopback: nothing listens; an attempt to connect would be an error.
    auto r = send_files({"PACS", "127.0.0.1", 1}, {}, {});
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_TRUE(r->empty());
}

TEST(StoreScu, UnreadableFilesFailWithoutConnecting) {
    const auto dir = std::filesystem::temp_directory_path() / "segnode_scu_test";
    std::filesystem::create_directories(dir);
    const auto not_dicom = dir / "not_dicom.dcm";
    std::ofstream(not_dicom) << "this is not a DICOM file";
    const auto missing = dir / "missing.dcm";
    std::filesystem::remove(missing);

    auto r = send_files({"PACS", "127.0.0.1", 1}, {}, {not_dicom, missing});
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(r->size(), 2U);
    for (const auto& o : *r) {
        EXPECT_EQ(o.verdict, StoreVerdict::Failure);
        EXPECT_FALSE(o.status.has_value());
        EXPECT_NE(o.detail.find("file meta information"), std::string::npos) << o.detail;
    }
    EXPECT_EQ((*r)[0].file, not_dicom);
    EXPECT_EQ((*r)[1].file, missing);
    std::filesystem::remove_all(dir);
}

} // namespace
} // namespace segnode::dicom
