// The Storage SCP survives an exception on an association's thread: the association is
// aborted, its end reported, and the next association is served normally.
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmnet/scu.h"
#include "dcmtk_private.hpp"
#include "phantom.hpp"
#include "segnode/dicom/store_scp.hpp"
#include "segnode/dicom/store_scu.hpp"
#include "test_util.hpp"

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

/// A handler whose store() throws std::runtime_error for the first instance (as a store bug or
/// an unexpected library exception would), and stores (removes) the rest.
class StoreThrowsHandler : public ThrowingHandler {
public:
    explicit StoreThrowsHandler(std::filesystem::path tmp) : m_tmp(std::move(tmp)) {}
    std::int64_t association_accepted(const AssociationInfo& /*info*/) override { return 1; }
    std::filesystem::path new_temp_file() override {
        return m_tmp / ("t" + std::to_string(m_next++) + ".dcm");
    }
    StoreStatus store(const AssociationInfo& /*assoc*/, const ReceivedInstance& in) override {
        std::error_code ec;
        std::filesystem::remove(in.temp_file, ec);
        if (m_stores++ == 0) {
            throw std::runtime_error("store exploded");
        }
        return {};
    }

private:
    std::filesystem::path m_tmp;
    std::atomic<int> m_next{0};
    std::atomic<int> m_stores{0};
};

/// An SCP on a free loopback port, its accept loop on a thread.
struct RunningScp {
    explicit RunningScp(ReceiveHandler& handler, ScpOptions options = {}) {
        options.ae_titles = {"SEGNODE"};
        options.bind_address = "127.0.0.1";
        if (options.acse_timeout_s == 30) {
            options.acse_timeout_s = 5;
        }
        if (options.dimse_timeout_s == 60) {
            options.dimse_timeout_s = 5;
        }
        for (int i = 0; i < 50 && !server; ++i) {
            options.port = static_cast<std::uint16_t>(20000 + (::getpid() + i * 89 + 7) % 30000);
            auto candidate = std::make_unique<StoreScpServer>(options, handler);
            if (candidate->open().ok()) {
                server = std::move(candidate);
            }
        }
        if (server) {
            port = options.port;
            loop = std::thread([this] { server->run(); });
        }
    }
    ~RunningScp() {
        if (loop.joinable()) {
            server->request_stop();
            loop.join();
        }
    }
    RunningScp(const RunningScp&) = delete;
    RunningScp& operator=(const RunningScp&) = delete;

    [[nodiscard]] PeerAddress peer() const { return {"SEGNODE", "127.0.0.1", port}; }
    static ScuOptions scu() {
        ScuOptions o;
        o.calling_ae = "TESTSCU";
        o.connect_timeout_s = 5;
        o.acse_timeout_s = 5;
        o.dimse_timeout_s = 5;
        return o;
    }

    std::unique_ptr<StoreScpServer> server;
    std::uint16_t port = 0;
    std::thread loop;
};

TEST(StoreScp, AnExceptionFromTheStoreAnswersThatCStoreWithAFailureAndAReason) {
    test::TempDir dir;
    phantom::PhantomSpec spec;
    spec.rows = 16;
    spec.cols = 16;
    spec.slices = 3;
    const auto series = phantom::write_ct_series(spec, dir.path() / "in");
    std::filesystem::create_directories(dir.path() / "tmp");
    StoreThrowsHandler handler(dir.path() / "tmp");
    RunningScp scp(handler);
    ASSERT_TRUE(scp.server) << "no free port";

    const auto sent = send_files(scp.peer(), RunningScp::scu(), series.files);
    ASSERT_TRUE(sent.ok()) << sent.error().message;
    ASSERT_EQ(sent->size(), 3U);
    const StoreOutcome& first = (*sent)[0];
    EXPECT_EQ(first.verdict, StoreVerdict::Failure);
    ASSERT_TRUE(first.status.has_value()) << "no C-STORE response: " << first.detail;
    EXPECT_EQ(*first.status, status::processing_failure);
    EXPECT_NE(first.detail.find("store exploded"), std::string::npos) << first.detail;
    // The association carried on: the next instances were stored.
    EXPECT_EQ((*sent)[1].verdict, StoreVerdict::Success) << (*sent)[1].detail;
    EXPECT_EQ((*sent)[2].verdict, StoreVerdict::Success) << (*sent)[2].detail;
    scp.server->request_stop();
    scp.loop.join();
    EXPECT_TRUE(scp.server->wait_for_associations(std::chrono::seconds(10)));
    const auto ends = handler.ends();
    ASSERT_EQ(ends.size(), 1U);
    EXPECT_EQ(ends[0].rfind("released", 0), 0U) << ends[0];
}

/// Refuses every C-STORE before its data set is read (like the disk guard).
class AdmissionRefusingHandler : public ThrowingHandler {
public:
    std::int64_t association_accepted(const AssociationInfo& /*info*/) override { return 1; }
    std::filesystem::path new_temp_file() override {
        ++temp_files;
        return "/nonexistent/tmp.dcm";
    }
    StoreStatus admission() override { return {status::out_of_resources, "low disk space"}; }
    std::atomic<int> temp_files{0};
};

TEST(StoreScp, ARefusedDataSetIsDiscardedUnreadAndTheRefusalCarriesItsReason) {
    test::TempDir dir;
    phantom::PhantomSpec spec;
    spec.rows = 64;
    spec.cols = 64;
    spec.slices = 2;
    const auto series = phantom::write_ct_series(spec, dir.path() / "in");
    AdmissionRefusingHandler handler;
    RunningScp scp(handler);
    ASSERT_TRUE(scp.server) << "no free port";
    const auto discarded_before = refused_datasets_discarded();
    const auto sent = send_files(scp.peer(), RunningScp::scu(), series.files);
    ASSERT_TRUE(sent.ok()) << sent.error().message;
    for (const StoreOutcome& o : *sent) {
        ASSERT_TRUE(o.status.has_value()) << o.detail;
        EXPECT_EQ(*o.status, status::out_of_resources);
        EXPECT_NE(o.detail.find("low disk space"), std::string::npos) << o.detail;
    }
    EXPECT_EQ(refused_datasets_discarded() - discarded_before, 2U) << "DIMSE_ignoreDataSet path";
    EXPECT_EQ(handler.temp_files.load(), 0) << "nothing was received into a file";
}

TEST(StoreScp, DrainEndsAnIdleAssociationAfterTheGraceAndJoinsItsThread) {
    ThrowingHandler handler; // its first association_accepted throws: spend it first
    ScpOptions options;
    options.acse_timeout_s = 600;
    options.dimse_timeout_s = 600; // the idle association would otherwise stay for 10 min
    RunningScp scp(handler, options);
    ASSERT_TRUE(scp.server) << "no free port";
    EXPECT_FALSE(echo(scp.peer(), RunningScp::scu()).ok());
    ASSERT_TRUE(scp.server->wait_for_associations(std::chrono::seconds(10)));

    DcmSCU idle;
    idle.setAETitle("IDLESCU");
    idle.setPeerAETitle("SEGNODE");
    idle.setPeerHostName("127.0.0.1");
    idle.setPeerPort(scp.port);
    OFList<OFString> ts;
    ts.push_back(UID_LittleEndianImplicitTransferSyntax);
    ASSERT_TRUE(idle.addPresentationContext(UID_VerificationSOPClass, ts).good());
    ASSERT_TRUE(idle.initNetwork().good());
    ASSERT_TRUE(idle.negotiateAssociation().good());
    EXPECT_EQ(scp.server->active_associations(), 1U);

    scp.server->request_stop();
    scp.loop.join();
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(scp.server->drain_associations(std::chrono::milliseconds(200)));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
    EXPECT_EQ(scp.server->active_associations(), 0U);
    const auto ends = handler.ends();
    ASSERT_EQ(ends.size(), 2U);
    EXPECT_EQ(ends[1].rfind("aborted: node shutting down", 0), 0U) << ends[1];
    EXPECT_TRUE(idle.sendECHORequest(0).bad()) << "the association was ended";
}

/// dcmtk_private.hpp: what the private access reads must be DcmSCU's association parameters,
/// on a real association. A DCMTK whose DcmSCU changed breaks these loudly (dcmtk_private.cpp
/// does not even compile against a version other than the one checked).
DcmSCU& negotiate(DcmSCU& scu, std::uint16_t port, const char* called) {
    scu.setAETitle("PRIVSCU");
    scu.setPeerAETitle(called);
    scu.setPeerHostName("127.0.0.1");
    scu.setPeerPort(port);
    scu.setACSETimeout(5);
    OFList<OFString> ts;
    ts.push_back(UID_LittleEndianImplicitTransferSyntax);
    EXPECT_TRUE(scu.addPresentationContext(UID_VerificationSOPClass, ts).good());
    EXPECT_TRUE(scu.addPresentationContext(UID_SecondaryCaptureImageStorage, ts).good());
    EXPECT_TRUE(scu.initNetwork().good());
    return scu;
}

TEST(DcmtkPrivate, TheVersionIsTheOneTheAccessWasCheckedAgainst) {
    EXPECT_EQ(PACKAGE_VERSION_NUMBER, dcmtk_private_checked_version)
        << "DCMTK changed: re-check dcmtk_private.cpp";
}

TEST(DcmtkPrivate, DcmScuParametersAreThoseOfTheNegotiatedAssociation) {
    ThrowingHandler handler;
    RunningScp scp(handler);
    ASSERT_TRUE(scp.server) << "no free port";
    EXPECT_FALSE(echo(scp.peer(), RunningScp::scu()).ok()); // spends the handler's throw
    ASSERT_TRUE(scp.server->wait_for_associations(std::chrono::seconds(10)));

    DcmSCU accepted;
    ASSERT_TRUE(negotiate(accepted, scp.port, "SEGNODE").negotiateAssociation().good());
    T_ASC_Parameters* params = dcmscu_parameters(accepted);
    ASSERT_NE(params, nullptr);
    EXPECT_EQ(ASC_countPresentationContexts(params), 2);
    EXPECT_EQ(ASC_countAcceptedPresentationContexts(params), 1); // Secondary Capture refused
    T_ASC_PresentationContext pc;
    ASSERT_TRUE(ASC_getPresentationContext(params, 1, &pc).good());
    EXPECT_STREQ(pc.abstractSyntax, UID_SecondaryCaptureImageStorage);
    EXPECT_EQ(pc.resultReason, ASC_P_ABSTRACTSYNTAXNOTSUPPORTED);
    EXPECT_STREQ(params->DULparams.calledAPTitle, "SEGNODE");
    (void)accepted.releaseAssociation();

    DcmSCU rejected;
    EXPECT_TRUE(negotiate(rejected, scp.port, "NOTSEGNODE").negotiateAssociation().bad());
    T_ASC_RejectParameters rej{};
    ASSERT_TRUE(ASC_getRejectParameters(dcmscu_parameters(rejected), &rej).good());
    EXPECT_EQ(rej.result, ASC_RESULT_REJECTEDPERMANENT);
    EXPECT_EQ(rej.reason, ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED);
}

} // namespace
} // namespace segnode::dicom
