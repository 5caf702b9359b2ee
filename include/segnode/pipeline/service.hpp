#pragma once
#include "segnode/core/config.hpp"

namespace segnode::pipeline {

/// `segnode serve`: prepares the working directory and database, starts the DICOM receiver
/// and series completion, notifies systemd, and runs until SIGTERM or SIGINT. On a signal it
/// stops accepting associations, lets in-flight ones finish within node.shutdown_grace_s and
/// returns 0. Returns non-zero (after logging why) if start-up fails.
int run_service(const Config& config);

} // namespace segnode::pipeline
