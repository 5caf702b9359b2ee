#pragma once
#include "segnode/algorithms/registry.hpp"
#include "segnode/core/config.hpp"
#include "segnode/core/result.hpp"
#include "segnode/dicom/receive_handler.hpp"
#include "segnode/store/workdir.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>

namespace segnode::pipeline {

class ConnectionPool;

/// What a running node offers a component started on top of it (the HTTP API, which lives in
/// the api layer above this one and so is handed in by `segnode serve` as an extension).
struct ServiceContext {
    const Config& config;
    const store::Workdir& workdir;
    ConnectionPool& pool;
    const algorithms::Registry& registry;
    std::int64_t started_at_ms = 0;
    std::function<void()> wake_jobs;                  ///< dispatch new/changed jobs now
    std::function<bool()> scp_listening;              ///< the Storage SCP accepts associations
    std::function<std::size_t()> active_associations; ///< associations in progress
    /// The receiver of C-STORE, for instances that arrive another way (STOW-RS uploads).
    dicom::ReceiveHandler* receiver = nullptr;
};

/// A component `run_service` starts after the Storage SCP and the job runner, and stops first
/// at shutdown (before in-flight associations are drained).
class ServiceExtension {
public:
    virtual ~ServiceExtension() = default;
    /// Starts serving; a failure stops the node's start-up (logged by the caller).
    virtual Status start(const ServiceContext& context) = 0;
    /// Stops serving and waits for its threads; must not throw.
    virtual void stop() = 0;
};

/// `segnode serve`: prepares the working directory and database, starts the DICOM receiver,
/// series completion, the job runner and `extension` (if any), notifies systemd, and runs
/// until SIGTERM or SIGINT. On a signal it stops the extension, stops accepting associations,
/// lets in-flight ones finish within node.shutdown_grace_s and returns 0. Returns non-zero
/// (after logging why) if start-up fails.
int run_service(const Config& config, ServiceExtension* extension = nullptr);

} // namespace segnode::pipeline
