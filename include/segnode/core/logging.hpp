#pragma once
#include "segnode/core/result.hpp"

#include <string>

namespace segnode {

/// Log levels accepted in config and on the command line.
bool is_valid_log_level(const std::string& level);

/// Configures the default spdlog logger: stderr (journald-friendly, no colour when not a
/// terminal) and, if `file` is non-empty, also that file.
Status setup_logging(const std::string& level, const std::string& file = {});

} // namespace segnode
