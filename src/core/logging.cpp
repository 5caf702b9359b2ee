#include "segnode/core/logging.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

namespace segnode {

bool is_valid_log_level(const std::string& level) {
    return level == "trace" || level == "debug" || level == "info" || level == "warn" ||
           level == "error" || level == "critical" || level == "off";
}

Status setup_logging(const std::string& level, const std::string& file) {
    if (!is_valid_log_level(level)) {
        return Error{"unknown log level '" + level + "'"};
    }
    std::vector<spdlog::sink_ptr> sinks;
    if (isatty(STDERR_FILENO) != 0) {
        sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    } else {
        sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
    }
    if (!file.empty()) {
        try {
            sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(file));
        } catch (const spdlog::spdlog_ex& e) {
            return Error{"cannot open log file '" + file + "': " + e.what()};
        }
    }
    auto logger = std::make_shared<spdlog::logger>("segnode", sinks.begin(), sinks.end());
    logger->set_level(spdlog::level::from_str(level));
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%t] %v");
    logger->flush_on(spdlog::level::info);
    spdlog::set_default_logger(logger);
    return ok_status();
}

} // namespace segnode
