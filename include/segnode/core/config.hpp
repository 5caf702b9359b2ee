#pragma once
// segnode configuration: one TOML file, every key known to a table in config.cpp, every value
// validated, errors reported as "file:line:column: key: reason". config/segnode.toml is the
// fully commented sample and carries the same defaults as the structs below.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "segnode/core/result.hpp"

namespace segnode {

struct AllowedCaller {
    std::string ae_title; ///< calling AE title that may associate
    std::string host;     ///< IP address it must come from; empty = any address
};

enum class DuplicatePolicy { KeepFirst, Replace };
enum class LateInstancePolicy { Reopen, Record };

struct NodeConfig {
    std::string ae_title = "SEGNODE";
    std::filesystem::path workdir = "./var";
    unsigned shutdown_grace_s = 30; ///< how long in-flight associations may run on at shutdown
};

struct LogConfig {
    std::string level = "info";
    std::string file; ///< empty: stderr only
};

struct DicomConfig {
    std::string bind_address = "0.0.0.0";
    std::uint16_t port = 11112;
    unsigned max_associations = 16;
    unsigned max_pdu_bytes = 131072;
    unsigned acse_timeout_s = 30;
    unsigned dimse_timeout_s = 60;
    std::vector<AllowedCaller> allowed_callers; ///< empty: any calling AE is accepted
};

struct StorageConfig {
    bool fsync = true;
    DuplicatePolicy duplicate_policy = DuplicatePolicy::KeepFirst;
};

struct SeriesConfig {
    unsigned quiet_period_s = 30;
    bool complete_on_association_release = false;
    LateInstancePolicy late_instance_policy = LateInstancePolicy::Reopen;
};

struct Config {
    std::string source = "<defaults>"; ///< file the config came from
    NodeConfig node;
    LogConfig log;
    DicomConfig dicom;
    StorageConfig storage;
    SeriesConfig series;
};

/// Command-line overrides for the most common keys; validated like the file's values.
struct ConfigOverrides {
    std::optional<std::string> ae_title;
    std::optional<unsigned> port;
    std::optional<std::string> workdir;
    std::optional<std::string> log_level;
};

/// Reads and validates a TOML config file.
Result<Config> load_config(const std::filesystem::path& file);
/// Parses and validates TOML text; `source_name` is used in error messages.
Result<Config> parse_config(std::string_view text, const std::string& source_name);
/// Applies command-line overrides; errors name the option.
Status apply_overrides(Config& config, const ConfigOverrides& overrides);

/// Problem with an AE title (1-16 characters of the DICOM default repertoire, no backslash,
/// not all spaces), or std::nullopt if valid.
std::optional<std::string> ae_title_problem(std::string_view ae);

std::string_view to_string(DuplicatePolicy policy);
std::string_view to_string(LateInstancePolicy policy);

} // namespace segnode
