#pragma once
// The DICOM Storage SCP: an accept loop that owns the listening socket and one joinable
// DcmThreadSCP worker thread per association, at most max_associations at once (DCMTK's hooks
// overridden, see store_scp.cpp); drain_associations() ends and joins them at shutdown.
#include "segnode/core/config.hpp"
#include "segnode/core/result.hpp"
#include "segnode/dicom/receive_handler.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace segnode::dicom {

struct ScpOptions {
    std::vector<std::string> ae_titles; ///< called AE titles this node answers to
    std::string bind_address = "0.0.0.0";
    std::uint16_t port = 11112;
    unsigned max_associations = 16;
    unsigned max_pdu_bytes = 131072;
    unsigned acse_timeout_s = 30;
    unsigned dimse_timeout_s = 60;
    std::vector<AllowedCaller> allowed_callers;
    /// Start writing a data set to disk while it is still arriving (set with storage.fsync:
    /// the fsync before the response then only waits for the tail).
    bool early_writeback = false;
};

ScpOptions scp_options_from(const Config& config);

class StoreScpServer {
public:
    StoreScpServer(ScpOptions options, ReceiveHandler& handler);
    ~StoreScpServer();
    StoreScpServer(const StoreScpServer&) = delete;
    StoreScpServer& operator=(const StoreScpServer&) = delete;

    /// Binds and listens; fails with a clear message (e.g. port in use).
    Status open();
    /// Accepts associations until request_stop(); returns when the listener has closed.
    void run();
    /// Thread- and signal-safe (only sets a flag); run() returns within about a second.
    void request_stop();
    /// Waits for in-flight associations to end; false if some were still running at timeout.
    bool wait_for_associations(std::chrono::milliseconds timeout);
    /// After run() has returned: waits up to `grace` for in-flight associations to end, then
    /// ends the others (their sockets' read side is shut: DCMTK aborts the association, the
    /// handler hears outcome "aborted", "node shutting down ..."; after `abort_wait` both
    /// directions are shut), and joins every association thread. True if all had ended
    /// within `grace` by themselves.
    bool drain_associations(std::chrono::milliseconds grace,
                            std::chrono::milliseconds abort_wait = std::chrono::seconds(5));
    [[nodiscard]] std::size_t active_associations() const;
    [[nodiscard]] std::uint16_t port() const { return m_options.port; }

private:
    struct Network;
    struct Live;
    void worker_finished(Live* live);
    /// Joins the threads of associations that have ended (each pass of the accept loop).
    void reap_finished();
    ScpOptions m_options;
    ReceiveHandler& m_handler;
    std::unique_ptr<Network> m_network;
    std::atomic<bool> m_stop{false};
    mutable std::mutex m_mutex;
    std::condition_variable m_cv;
    std::size_t m_active = 0;
    std::list<Live> m_live; ///< one per association thread, joined by reap/drain
};

/// How many refused C-STORE data sets were discarded unread (DIMSE_ignoreDataSet) in this
/// process; for tests and diagnostics.
std::uint64_t refused_datasets_discarded();

} // namespace segnode::dicom
