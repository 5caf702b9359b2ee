#pragma once
// The disk guard: below retention.min_free_mb of free space in the working directory, new
// C-STOREs are answered "Refused: Out of Resources" (A700) instead of filling the disk. The
// free space is read with statvfs at most once a second.
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace segnode::pipeline {

class DiskGuard {
public:
    DiskGuard(std::filesystem::path dir, std::uint64_t min_free_bytes);

    /// The refusal reason when free space is below the threshold, std::nullopt otherwise
    /// (also when the threshold is 0 or the free space cannot be read).
    std::optional<std::string> check();

    /// Free bytes available to unprivileged users, or std::nullopt.
    std::optional<std::uint64_t> free_bytes() const;

private:
    std::filesystem::path m_dir;
    std::uint64_t m_min_free;
    std::atomic<std::int64_t> m_checked_ms{0};
    std::atomic<std::uint64_t> m_last_free{0};
};

} // namespace segnode::pipeline
