#pragma once
// Supervision of an external program (an external algorithm's command): started with execve
// (never through a shell) in its own process group with exactly the environment given, its
// stdout and stderr streamed to a callback (capped) with the tail of each kept, and stopped —
// SIGTERM to the whole group, SIGKILL after a grace period — on timeout, when the memory of
// the group exceeds its limit, or when the stop token is triggered (cancel, node shutdown).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace segnode::pipeline {

struct ProcessSpec {
    /// argv[0] is a path, or a name looked up in the PATH of `env` (as execvp would, but
    /// before fork, so a missing program is a clear start error). A relative path (or PATH
    /// entry) is taken relative to the caller's working directory, not to `cwd`.
    std::vector<std::string> argv;
    /// The complete environment of the child (nothing is inherited).
    std::vector<std::pair<std::string, std::string>> env;
    /// Working directory of the child; empty: the caller's.
    std::filesystem::path cwd;
    /// 0: no time limit.
    std::chrono::milliseconds timeout{0};
    /// Limit on the resident memory (RSS) of the process group, summed over its processes and
    /// sampled every 50 ms; 0: no limit.
    std::uint64_t memory_limit_bytes = 0;
    /// Between SIGTERM and SIGKILL.
    std::chrono::milliseconds kill_grace{10000};
    /// Output passed to `on_output` in total (both streams); beyond it output is still read
    /// (and counted, and kept in the tails) but no longer passed on, and one line saying so is.
    std::size_t output_cap_bytes = 1024 * 1024;
    /// Bytes of each stream kept as its tail.
    std::size_t tail_bytes = 16 * 1024;
    /// Called with each complete line (without '\n'; a last unterminated line too), and whether
    /// it came from stderr. Called from the supervising thread. May be empty.
    std::function<void(std::string_view line, bool from_stderr)> on_output;
};

enum class ProcessEnd {
    Exited,         ///< exit_code holds the status (0 = success)
    Signaled,       ///< killed by a signal it did not get from us (term_signal)
    TimedOut,       ///< stopped by us: the timeout passed
    MemoryExceeded, ///< stopped by us: RSS of the group above the limit
    Stopped,        ///< stopped by us: the stop token was triggered
    StartFailed,    ///< not started (start_error says why: not found, not executable, ...)
};

struct ProcessResult {
    ProcessEnd end = ProcessEnd::StartFailed;
    int exit_code = -1;  ///< Exited
    int term_signal = 0; ///< Signaled (and the signal that ended a stopped process)
    std::string start_error;
    double seconds = 0.0;
    std::uint64_t peak_rss_bytes = 0; ///< highest sampled RSS of the group
    std::uint64_t stdout_bytes = 0;
    std::uint64_t stderr_bytes = 0;
    std::string stdout_tail;
    std::string stderr_tail;
    /// The limits that applied (copied from the spec, for describe()).
    std::chrono::milliseconds timeout{0};
    std::uint64_t memory_limit_bytes = 0;

    [[nodiscard]] bool success() const { return end == ProcessEnd::Exited && exit_code == 0; }
    /// "exited with status 2", "killed by signal 9 (SIGKILL)", "timed out after 5 s",
    /// "exceeded the memory limit (612 MB > 512 MB)", "stopped", "could not start: ...".
    [[nodiscard]] std::string describe() const;
    /// The last `n` non-empty lines of stderr (stdout when stderr is empty), joined by '\n'.
    [[nodiscard]] std::string last_lines(std::size_t n) const;
};

/// Runs the program to its end (or until stopped) on the calling thread.
ProcessResult run_process(const ProcessSpec& spec, std::stop_token stop = {});

/// The executable `name` resolves to: `name` itself when it contains '/', otherwise the first
/// regular, executable file `dir/name` for dir in `path_env` (':'-separated). std::nullopt when
/// there is none or it is not executable.
std::optional<std::filesystem::path> find_executable(const std::string& name,
                                                     const std::string& path_env);

/// Kills what a previous run of the node left behind. The program of a job dies with the node
/// (PR_SET_PDEATHSIG), but processes it started itself may outlive a crash or kill -9 of the
/// node and keep writing into a job directory that the job's next run reuses. Every process of
/// this user whose environment has SEGNODE_WORK_DIR under `jobs_root` gets SIGKILL, with its
/// process group (never the caller's own). Returns the number of processes killed. Call it
/// before jobs are requeued at start-up.
std::size_t kill_orphaned_processes(const std::filesystem::path& jobs_root);

} // namespace segnode::pipeline
