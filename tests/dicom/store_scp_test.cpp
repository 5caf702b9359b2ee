// The Storage SCP survives an exception on an association's thread: the association is
// aborted, its end reported, and the next association is served normally.
#include "segnode/dicom/store_scp.hpp"
#include "segnode/dicom/store_scu.hpp"

#include <atomic>
#include <gtest/gtest.h>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unistd.h>

namespace segnode::dicom {
namespace {

/// Throws from association_accepted the first time; records the ends.
class ThrowingHandler : public ReceiveHandler {
public:
    std::int64_t association_accepted(const AssociationInfo& /*info*/) override {
        if (m_accepted++ == 0) {
            throw std::runtime_error("handler exploded");
        }
        return m_accepted;
    }
    void association_rejected(const AssociationInfo& /*info*/,
                              const std::string& /*reason*/) override {}
    void association_ended(const AssociationInfo& /*info*/, std::int64_t /*stored*/,
                           std::int64_t /*refused*/, const std::string& outcome,
                           const std::string& detail) override {
        const std::lock_guard lock(m_mutex);
        m_ends.push_back(outcome + ": " + detail);
    }
    std::filesystem::path new_temp_file() override { return "/nonexistent/tmp.dcm"; }
    StoreStatus store(const AssociationInfo& /*assoc*/,
                      const ReceivedInstance& /*instance*/) override {
        return {};
    }
    void refused(const AssociationInfo& /*assoc*/, const std::string& /*uid*/,
                 std::uint16_t /*status*/, const std::string& /*reason*/,
                 const std::filesystem::path& /*temp_file*/) override {}

    std::vector<std::string> ends() {
        const std::lock_guard lock(m_mutex);
        return m_ends;
    }

private:
    std::atomic<std::int64_t> m_accepted{0};
    std::mutex m_mutex;
    std::vector<std::string> m_ends;
};

TEST(StoreScp, AnExceptionOnAnAssociationThreadAbortsOnlyThatAssociation) {
    ThrowingHandler handler;
    ScpOptions options;
    options.ae_titles = {"SEGNODE"};
    options.bind_address = "127.0.0.1";
    options.acse_timeout_s = 5;
    options.dimse_timeout_s = 5;
    std::unique_ptr<StoreScpServer> server;
    // A free port near a per-process start.
    for (int i = 0; i < 50 && !server; ++i) {
        options.port = static_cast<std::uint16_t>(20000 + (::getpid() + i * 97) % 30000);
        auto candidate = std::make_unique<StoreScpServer>(options, handler);
        if (candidate->open().ok()) {
            server = std::move(candidate);
        }
    }
    ASSERT_TRUE(server) << "no free port";
    std::thread accept_loop([&] { server->run(); });

    const PeerAddress peer{"SEGNODE", "127.0.0.1", options.port};
    ScuOptions scu;
    scu.calling_ae = "TESTSCU";
    scu.connect_timeout_s = 5;
    scu.acse_timeout_s = 5;
    scu.dimse_timeout_s = 5;
    const auto first = echo(peer, scu);
    EXPECT_FALSE(first.ok()); // aborted by the SCP
    EXPECT_TRUE(server->wait_for_associations(std::chrono::seconds(10)));
    const auto second = echo(peer, scu);
    EXPECT_TRUE(second.ok()) << second.error().message;

    server->request_stop();
    accept_loop.join();
    EXPECT_TRUE(server->wait_for_associations(std::chrono::seconds(10)));
    const auto ends = handler.ends();
    ASSERT_EQ(ends.size(), 2U);
    EXPECT_EQ(ends[0], "aborted: internal error: handler exploded");
    EXPECT_EQ(ends[1].rfind("released", 0), 0U) << ends[1];
}

} // namespace
} // namespace segnode::dicom
