#pragma once
// The DICOM Storage SCP: an accept loop that owns the listening socket and one DcmThreadSCP
// worker thread per association (DCMTK's hooks overridden, see store_scp.cpp).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "segnode/core/config.hpp"
#include "segnode/core/result.hpp"
#include "segnode/dicom/receive_handler.hpp"

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
    [[nodiscard]] std::size_t active_associations() const;
    [[nodiscard]] std::uint16_t port() const { return m_options.port; }

    /// Called by workers.
    void worker_finished();

private:
    struct Network;
    ScpOptions m_options;
    ReceiveHandler& m_handler;
    std::unique_ptr<Network> m_network;
    std::atomic<bool> m_stop{false};
    mutable std::mutex m_mutex;
    std::condition_variable m_cv;
    std::size_t m_active = 0;
};

} // namespace segnode::dicom
