#pragma once
// Shared by the DICOM fuzz targets: a temporary directory per process and a quiet DCMTK.
#include "segnode/dicom/environment.hpp"

#include <cstdio>
#include <cstdlib>
#include <dcmtk/oflog/oflog.h>
#include <filesystem>
#include <spdlog/spdlog.h>
#include <string>
#include <system_error>
#include <unistd.h>

namespace segnode::fuzz {

/// <temp>/<prefix>-<pid>, emptied and created; call once per process. Removed when the process
/// exits normally (left behind after a crash, with the files of the crashing input).
inline std::filesystem::path make_process_temp_dir(const std::string& prefix) {
    static std::filesystem::path dir;
    dir = std::filesystem::temp_directory_path() / (prefix + "-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::atexit([] {
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
    });
    return dir;
}

/// DCMTK's codecs and dictionary (init_dicom_environment; aborts without a dictionary), and no
/// log output from DCMTK or spdlog: bad input is the normal case here and logging it would
/// dominate the run.
inline void init_quiet_dicom() {
    if (auto st = segnode::dicom::init_dicom_environment(); !st) {
        std::fprintf(stderr, "fuzz: %s\n", st.error().message.c_str());
        std::abort();
    }
    spdlog::set_level(spdlog::level::off);
    OFLog::configure(OFLogger::OFF_LOG_LEVEL);
    OFLog::getLogger("dcmtk.dcmdata").setLogLevel(OFLogger::OFF_LOG_LEVEL);
}

} // namespace segnode::fuzz
