// Supervision of an external program: vfork + execve in its own process group, the output of
// both pipes streamed line by line (capped) with tails kept, and the group stopped (SIGTERM,
// SIGKILL after the grace period) on timeout, memory limit or stop request. Linux only: the
// group's memory is read from /proc.
#include "segnode/pipeline/process.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace segnode::pipeline {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds k_tick{50};
/// How long the pipes are still drained after the group is gone (a process that left the
/// group with setsid() may still hold them).
constexpr std::chrono::milliseconds k_drain_limit{1000};

std::string errno_text(int err) {
    return std::strerror(err);
}

/// Owns one file descriptor.
class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : m_fd(fd) {}
    ~UniqueFd() { reset(); }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    UniqueFd(UniqueFd&& other) noexcept : m_fd(std::exchange(other.m_fd, -1)) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) {
            reset();
            m_fd = std::exchange(other.m_fd, -1);
        }
        return *this;
    }
    [[nodiscard]] int get() const { return m_fd; }
    [[nodiscard]] bool valid() const { return m_fd >= 0; }
    void reset() {
        if (m_fd >= 0) {
            ::close(m_fd);
            m_fd = -1;
        }
    }

private:
    int m_fd = -1;
};

/// A pipe with both ends close-on-exec.
bool make_pipe(UniqueFd& read_end, UniqueFd& write_end, std::string& error) {
    std::array<int, 2> fds{};
    if (::pipe2(fds.data(), O_CLOEXEC) != 0) {
        error = "cannot create a pipe: " + errno_text(errno);
        return false;
    }
    read_end = UniqueFd(fds[0]);
    write_end = UniqueFd(fds[1]);
    return true;
}

std::string signal_name(int sig) {
    const char* abbrev = ::sigabbrev_np(sig);
    if (abbrev == nullptr) {
        return "signal " + std::to_string(sig);
    }
    return std::string("SIG") + abbrev;
}

std::string megabytes(std::uint64_t bytes) {
    return std::to_string(bytes >> 20U) + " MB";
}

std::string duration_text(std::chrono::milliseconds ms) {
    return fmt::format("{:g} s", static_cast<double>(ms.count()) / 1000.0);
}

/// Steps of the child before execve, reported through the exec-error pipe.
enum class ChildStep : int { Stdio, ProcessGroup, Directory, Exec };

struct ChildError {
    int step = 0;
    int err = 0;
};

/// In the child: reports the failed step and errno to the parent, then exits.
[[noreturn]] void child_fail(int error_fd, ChildStep step) {
    const ChildError e{static_cast<int>(step), errno};
    ssize_t n = 0;
    do {
        n = ::write(error_fd, &e, sizeof(e));
    } while (n < 0 && errno == EINTR);
    ::_exit(127);
}

/// In the child after vfork(): only system calls, no allocation, never returns.
[[noreturn]] void child_exec(int stdin_fd, int stdout_fd, int stderr_fd, int error_fd,
                             const char* program, char* const* argv, char* const* envp,
                             const char* cwd, pid_t parent) {
    auto die = [error_fd](ChildStep step) { child_fail(error_fd, step); };
    if (::setpgid(0, 0) != 0) {
        die(ChildStep::ProcessGroup);
    }
    // If the node dies (kill -9, a crash), the program dies with it rather than running on
    // unsupervised; it survives execve. The node may have died before this line: then the
    // parent is no longer ours. (Processes the program starts itself are not covered: the
    // next start of the node kills them, see kill_orphaned_processes.)
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
        die(ChildStep::ProcessGroup);
    }
    if (::getppid() != parent) {
        ::_exit(127);
    }
    // Standard streams: move sources out of 0..2 first so that dup2 cannot clobber them.
    std::array<int, 3> sources{stdin_fd, stdout_fd, stderr_fd};
    for (int& fd : sources) {
        if (fd < 3) {
            const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
            if (moved < 0) {
                die(ChildStep::Stdio);
            }
            fd = moved;
        }
    }
    for (int target = 0; target < 3; ++target) {
        if (::dup2(sources[static_cast<std::size_t>(target)], target) < 0) {
            die(ChildStep::Stdio);
        }
    }
    // Nothing else crosses execve: every other descriptor (of any thread) becomes
    // close-on-exec; the error pipe already is and stays open until execve succeeds.
    if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        rlimit limit{};
        rlim_t max_fd = 4096;
        if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
            max_fd = std::min<rlim_t>(limit.rlim_cur, 1U << 20U);
        }
        for (int fd = 3; static_cast<rlim_t>(fd) < max_fd; ++fd) {
            if (fd != error_fd) {
                ::close(fd);
            }
        }
    }
    if (cwd != nullptr && ::chdir(cwd) != 0) {
        die(ChildStep::Directory);
    }
    // Signals: nothing blocked, every disposition default (the node ignores SIGPIPE, and
    // ignored signals would survive execve).
    sigset_t none;
    ::sigemptyset(&none);
    ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            ::sigaction(sig, &dfl, nullptr); // invalid (reserved) numbers fail harmlessly
        }
    }
    ::execve(program, argv, envp);
    child_fail(error_fd, ChildStep::Exec);
}

/// Reads a small /proc file into `buffer` (NUL-terminated); false when it is gone.
bool read_proc_file(const char* path, std::array<char, 512>& buffer) {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    ssize_t n = 0;
    do {
        n = ::read(fd, buffer.data(), buffer.size() - 1);
    } while (n < 0 && errno == EINTR);
    ::close(fd);
    if (n <= 0) {
        return false;
    }
    buffer[static_cast<std::size_t>(n)] = '\0';
    return true;
}

/// The resident memory summed over the processes of group `pgid` (from /proc/<pid>/stat and
/// statm); `others_alive`: a process of the group other than `leader` is still running.
std::uint64_t group_rss(pid_t pgid, bool& others_alive, pid_t leader) {
    others_alive = false;
    std::uint64_t total = 0;
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr) {
        return 0;
    }
    static const long page = ::sysconf(_SC_PAGESIZE);
    std::array<char, 512> buffer{};
    std::array<char, 300> path{}; // "/proc/" + d_name (at most 255) + "/statm"
    while (const dirent* entry = ::readdir(proc)) {
        const char* name = entry->d_name;
        if (name[0] < '0' || name[0] > '9') {
            continue;
        }
        std::snprintf(path.data(), path.size(), "/proc/%s/stat", name);
        if (!read_proc_file(path.data(), buffer)) {
            continue; // gone meanwhile
        }
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        const char* close = std::strrchr(buffer.data(), ')');
        char state = 0;
        long ppid = 0;
        long pgrp = 0;
        if (close == nullptr || std::sscanf(close + 1, " %c %ld %ld", &state, &ppid, &pgrp) != 3 ||
            pgrp != pgid) {
            continue;
        }
        const long pid = std::strtol(name, nullptr, 10);
        if (pid != leader && state != 'Z' && state != 'X') {
            others_alive = true;
        }
        std::snprintf(path.data(), path.size(), "/proc/%s/statm", name);
        unsigned long long size = 0;
        unsigned long long resident = 0;
        if (read_proc_file(path.data(), buffer) &&
            std::sscanf(buffer.data(), "%llu %llu", &size, &resident) == 2) {
            total += resident * static_cast<std::uint64_t>(page > 0 ? page : 4096);
        }
    }
    ::closedir(proc);
    return total;
}

/// One output stream: lines to the callback (shared cap), bytes counted, tail kept.
struct Stream {
    UniqueFd fd;
    bool from_stderr = false;
    bool open = true;
    std::string partial;
    std::string tail;
    std::uint64_t bytes = 0;
};

class OutputSink {
public:
    explicit OutputSink(const ProcessSpec& spec) : m_spec(spec) {}

    void consume(Stream& s, const char* data, std::size_t n) {
        s.bytes += n;
        keep_tail(s, data, n);
        if (m_capped || !m_spec.on_output) {
            return;
        }
        std::size_t begin = 0;
        for (std::size_t i = 0; i < n; ++i) {
            if (data[i] != '\n') {
                continue;
            }
            s.partial.append(data + begin, i - begin);
            begin = i + 1;
            emit(s);
            if (m_capped) {
                return;
            }
        }
        s.partial.append(data + begin, n - begin);
        if (s.partial.size() > m_spec.output_cap_bytes - m_passed) {
            cap(s); // this line can no longer fit
        }
    }

    /// End of a stream: its last unterminated line.
    void finish(Stream& s) {
        if (!m_capped && m_spec.on_output && !s.partial.empty()) {
            emit(s);
        }
        s.partial.clear();
        s.partial.shrink_to_fit();
        if (s.tail.size() > m_spec.tail_bytes) {
            s.tail.erase(0, s.tail.size() - m_spec.tail_bytes);
        }
    }

private:
    void keep_tail(Stream& s, const char* data, std::size_t n) {
        const std::size_t keep = m_spec.tail_bytes;
        if (keep == 0) {
            return;
        }
        if (n >= keep) {
            s.tail.assign(data + (n - keep), keep);
            return;
        }
        s.tail.append(data, n);
        if (s.tail.size() > 2 * keep) { // trimmed in batches: amortised O(1) per byte
            s.tail.erase(0, s.tail.size() - keep);
        }
    }

    void emit(Stream& s) {
        const std::size_t size = s.partial.size() + 1;
        if (m_passed + size > m_spec.output_cap_bytes) {
            cap(s);
            return;
        }
        m_passed += size;
        m_spec.on_output(s.partial, s.from_stderr);
        s.partial.clear();
    }

    void cap(Stream& s) {
        m_capped = true;
        s.partial.clear();
        s.partial.shrink_to_fit();
        m_spec.on_output(
            fmt::format("[output beyond {} bytes not logged; tail kept]", m_spec.output_cap_bytes),
            s.from_stderr);
    }

    const ProcessSpec& m_spec;
    std::size_t m_passed = 0;
    bool m_capped = false;
};

/// A started child: kills and reaps its group if supervision ends by an exception.
class Child {
public:
    explicit Child(pid_t pid) : m_pid(pid) {}
    ~Child() {
        if (m_pid > 0) {
            ::kill(-m_pid, SIGKILL);
            ::kill(m_pid, SIGKILL);
            int status = 0;
            while (::waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {
            }
        }
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    Child(Child&&) = delete;
    Child& operator=(Child&&) = delete;

    [[nodiscard]] pid_t pid() const { return m_pid; }

    /// Has the leader ended? Leaves it a zombie (so its pid, the group id, cannot be reused
    /// while the rest of the group is killed); `reap()` collects it.
    bool exited() {
        if (m_exited) {
            return true;
        }
        siginfo_t info{};
        if (::waitid(P_PID, static_cast<id_t>(m_pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
            if (errno == ECHILD) {
                m_exited = true; // cannot happen for our own child; do not spin on it
            }
            return m_exited;
        }
        m_exited = info.si_pid == m_pid;
        return m_exited;
    }

    /// Collects the leader's status (blocks until it has exited).
    int reap() {
        int status = 0;
        pid_t r = 0;
        do {
            r = ::waitpid(m_pid, &status, 0);
        } while (r < 0 && errno == EINTR);
        m_pid = -1;
        return r < 0 ? -1 : status;
    }

private:
    pid_t m_pid;
    bool m_exited = false;
};

} // namespace

std::optional<std::filesystem::path> find_executable(const std::string& name,
                                                     const std::string& path_env) {
    auto usable = [](const std::string& file) {
        struct stat st {};
        return ::stat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
               (st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)) != 0 &&
               ::access(file.c_str(), X_OK) == 0;
    };
    if (name.empty()) {
        return std::nullopt;
    }
    if (name.find('/') != std::string::npos) {
        return usable(name) ? std::optional<std::filesystem::path>(name) : std::nullopt;
    }
    std::size_t begin = 0;
    for (;;) {
        const std::size_t end = path_env.find(':', begin);
        std::string dir = path_env.substr(begin, end == std::string::npos ? end : end - begin);
        if (dir.empty()) {
            dir = "."; // an empty PATH entry is the current directory
        }
        const std::string candidate = dir + "/" + name;
        if (usable(candidate)) {
            return std::filesystem::path(candidate);
        }
        if (end == std::string::npos) {
            return std::nullopt;
        }
        begin = end + 1;
    }
}

ProcessResult run_process(const ProcessSpec& spec, std::stop_token stop) {
    const auto started = Clock::now();
    ProcessResult result;
    result.timeout = spec.timeout;
    result.memory_limit_bytes = spec.memory_limit_bytes;
    auto start_failed = [&](std::string error) {
        result.end = ProcessEnd::StartFailed;
        result.start_error = std::move(error);
        result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
        return result;
    };

    if (stop.stop_requested()) {
        result.end = ProcessEnd::Stopped;
        return result;
    }
    // Resolve the program before starting it, so that "not found" is a clear error.
    if (spec.argv.empty() || spec.argv[0].empty()) {
        return start_failed("no program given");
    }
    const std::string& name = spec.argv[0];
    std::optional<std::string> path_env;
    for (const auto& [key, value] : spec.env) {
        if (key == "PATH") {
            path_env = value;
        }
    }
    const auto program = find_executable(name, path_env.value_or(""));
    if (!program) {
        if (name.find('/') == std::string::npos) {
            return start_failed(
                path_env ? "program '" + name + "' not found in PATH (" + *path_env + ")"
                         : "program '" + name + "' not found (its environment has no PATH)");
        }
        std::error_code ec;
        return start_failed(std::filesystem::exists(name, ec) ? "'" + name + "' is not executable"
                                                              : "'" + name + "' does not exist");
    }

    // Everything the child needs is built before vfork(): it must not allocate. A relative
    // program path was checked against the caller's directory; the child changes to
    // spec.cwd before execve, so it gets the absolute path.
    std::error_code abs_ec;
    const std::filesystem::path absolute = std::filesystem::absolute(*program, abs_ec);
    const std::string program_text = abs_ec ? program->string() : absolute.string();
    std::vector<std::string> env_text;
    env_text.reserve(spec.env.size());
    for (const auto& [key, value] : spec.env) {
        env_text.push_back(key + "=" + value);
    }
    std::vector<char*> argv;
    for (const std::string& arg : spec.argv) {
        argv.push_back(const_cast<char*>(arg.c_str()));
    }
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (const std::string& e : env_text) {
        envp.push_back(const_cast<char*>(e.c_str()));
    }
    envp.push_back(nullptr);
    const std::string cwd_text = spec.cwd.string();

    std::string error;
    Stream out;
    Stream err;
    err.from_stderr = true;
    UniqueFd out_w;
    UniqueFd err_w;
    UniqueFd exec_r;
    UniqueFd exec_w;
    if (!make_pipe(out.fd, out_w, error) || !make_pipe(err.fd, err_w, error) ||
        !make_pipe(exec_r, exec_w, error)) {
        return start_failed(error);
    }
    UniqueFd null_in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!null_in.valid()) {
        return start_failed("cannot open /dev/null: " + errno_text(errno));
    }

    // vfork, not fork: the child borrows this process's memory until execve instead of a copy
    // of its page tables. fork() of a node holding a loaded series cost ~60 ms here, and left
    // every page of the node copy-on-write, so that writing 250 MB afterwards took 2.4 s of
    // page faults (posix_spawn and vfork: ~10 ms, no aftermath). The child only makes system
    // calls (child_exec); every signal is blocked across the vfork so that no handler of the
    // node runs in the child, which sets default dispositions and unblocks before execve.
    sigset_t all_signals;
    sigset_t old_mask;
    ::sigfillset(&all_signals);
    ::pthread_sigmask(SIG_SETMASK, &all_signals, &old_mask);
    const pid_t self = ::getpid();
    const pid_t pid = ::vfork();
    if (pid == 0) {
        child_exec(null_in.get(), out_w.get(), err_w.get(), exec_w.get(), program_text.c_str(),
                   argv.data(), envp.data(), cwd_text.empty() ? nullptr : cwd_text.c_str(), self);
    }
    const int vfork_errno = errno;
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    if (pid < 0) {
        return start_failed("cannot start a process: " + errno_text(vfork_errno));
    }
    Child child(pid);
    out_w.reset();
    err_w.reset();
    exec_w.reset();
    null_in.reset();

    // The exec-error pipe: EOF when execve succeeded, a ChildError when it did not.
    {
        ChildError failure{};
        ssize_t n = 0;
        do {
            n = ::read(exec_r.get(), &failure, sizeof(failure));
        } while (n < 0 && errno == EINTR);
        exec_r.reset();
        if (n > 0) {
            child.reap();
            std::string what;
            switch (static_cast<ChildStep>(failure.step)) {
            case ChildStep::Stdio:
                what = "cannot set up the standard streams";
                break;
            case ChildStep::ProcessGroup:
                what = "cannot create a process group";
                break;
            case ChildStep::Directory:
                what = "cannot change to directory '" + cwd_text + "'";
                break;
            case ChildStep::Exec:
                what = "cannot execute '" + program_text + "'";
                break;
            }
            return start_failed(what + ": " + errno_text(failure.err));
        }
    }

    for (Stream* s : {&out, &err}) {
        const int flags = ::fcntl(s->fd.get(), F_GETFL);
        // Should this fail, reading stays correct: one read() per reported readiness.
        if (flags >= 0) {
            (void)::fcntl(s->fd.get(), F_SETFL, flags | O_NONBLOCK);
        }
    }

    OutputSink sink(spec);
    std::optional<ProcessEnd> stopped_for;
    std::optional<Clock::time_point> term_sent;
    bool kill_sent = false;
    bool group_killed_after_exit = false;
    std::optional<Clock::time_point> leader_gone;
    auto last_tick = Clock::time_point{};
    std::optional<Clock::time_point> pipes_closed;
    std::array<char, 64 * 1024> buffer{};

    // The group, and the leader itself should it have left the group (it is not reaped yet,
    // so its pid cannot name another process).
    auto signal_all = [pid](int sig) {
        ::kill(-pid, sig);
        ::kill(pid, sig);
    };
    auto stop_group = [&](ProcessEnd why) {
        if (stopped_for) {
            return;
        }
        stopped_for = why;
        term_sent = Clock::now();
        signal_all(SIGTERM);
    };

    for (;;) {
        const auto now = Clock::now();
        if (child.exited()) {
            if (!leader_gone) {
                leader_gone = now;
            }
            if (!group_killed_after_exit) {
                // The leader is a zombie, so the group id is still ours: nothing of the group
                // may outlive it.
                bool others = false;
                group_rss(pid, others, pid);
                if (others) {
                    ::kill(-pid, SIGKILL);
                }
                group_killed_after_exit = true;
            }
            if ((!out.open && !err.open) || now - *leader_gone > k_drain_limit) {
                break;
            }
        } else if (now - last_tick >= k_tick) {
            last_tick = now;
            bool others = false;
            const std::uint64_t rss = group_rss(pid, others, pid);
            result.peak_rss_bytes = std::max(result.peak_rss_bytes, rss);
            if (stop.stop_requested()) {
                stop_group(ProcessEnd::Stopped);
            } else if (spec.timeout.count() > 0 && now - started > spec.timeout) {
                stop_group(ProcessEnd::TimedOut);
            } else if (spec.memory_limit_bytes > 0 && rss > spec.memory_limit_bytes) {
                stop_group(ProcessEnd::MemoryExceeded);
            }
            if (term_sent && !kill_sent && now - *term_sent >= spec.kill_grace) {
                signal_all(SIGKILL);
                kill_sent = true;
            }
        }

        std::array<pollfd, 2> fds{};
        nfds_t count = 0;
        std::array<Stream*, 2> polled{};
        for (Stream* s : {&out, &err}) {
            if (s->open) {
                fds[count] = pollfd{s->fd.get(), POLLIN, 0};
                polled[count] = s;
                ++count;
            }
        }
        if (count == 0) {
            // Both pipes closed but the leader runs on. A program closes them as it exits, so
            // it is usually about to become reapable: look again within a millisecond for a
            // while (a finished run is not held up by a tick), then in ticks.
            if (!pipes_closed) {
                pipes_closed = now;
            }
            const bool soon = now - *pipes_closed < k_tick;
            ::poll(nullptr, 0, soon ? 1 : static_cast<int>(k_tick.count()));
            continue;
        }
        const int ready = ::poll(fds.data(), count, static_cast<int>(k_tick.count()));
        if (ready < 0) {
            if (errno == EINTR) {
                continue;
            }
            signal_all(SIGKILL);
            break; // cannot supervise any more; the group is killed and reaped below
        }
        for (nfds_t i = 0; i < count; ++i) {
            if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
                continue;
            }
            Stream& s = *polled[i];
            const ssize_t n = ::read(s.fd.get(), buffer.data(), buffer.size());
            if (n > 0) {
                sink.consume(s, buffer.data(), static_cast<std::size_t>(n));
            } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                sink.finish(s);
                s.open = false;
                s.fd.reset();
            }
        }
    }

    // The leader has exited (or supervision broke off): clear the group and reap.
    if (!child.exited()) {
        signal_all(SIGKILL);
    } else {
        bool others = false;
        group_rss(pid, others, pid);
        if (others) {
            ::kill(-pid, SIGKILL);
        }
    }
    const int status = child.reap();
    for (Stream* s : {&out, &err}) {
        if (s->open) {
            sink.finish(*s);
            s->open = false;
            s->fd.reset();
        }
    }

    result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    result.stdout_bytes = out.bytes;
    result.stderr_bytes = err.bytes;
    result.stdout_tail = std::move(out.tail);
    result.stderr_tail = std::move(err.tail);
    if (status >= 0 && WIFEXITED(status)) {
        result.exit_code = WEXITSTATUS(status);
    } else if (status >= 0 && WIFSIGNALED(status)) {
        result.term_signal = WTERMSIG(status);
    }
    if (stopped_for) {
        result.end = *stopped_for;
    } else if (status >= 0 && WIFEXITED(status)) {
        result.end = ProcessEnd::Exited;
    } else {
        result.end = ProcessEnd::Signaled;
    }
    return result;
}

std::string ProcessResult::describe() const {
    switch (end) {
    case ProcessEnd::Exited:
        return "exited with status " + std::to_string(exit_code);
    case ProcessEnd::Signaled:
        return "killed by signal " + std::to_string(term_signal) + " (" + signal_name(term_signal) +
               ")";
    case ProcessEnd::TimedOut:
        return "timed out after " + duration_text(timeout);
    case ProcessEnd::MemoryExceeded:
        return "exceeded the memory limit (" + megabytes(peak_rss_bytes) + " > " +
               megabytes(memory_limit_bytes) + ")";
    case ProcessEnd::Stopped:
        return "stopped";
    case ProcessEnd::StartFailed:
        return "could not start: " + start_error;
    }
    return "unknown end";
}

std::string ProcessResult::last_lines(std::size_t n) const {
    auto lines_of = [](const std::string& tail, std::uint64_t total) {
        std::vector<std::string_view> lines;
        std::string_view text(tail);
        if (total > tail.size()) {
            // The tail starts inside a line: drop that fragment.
            const auto nl = text.find('\n');
            text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        }
        while (!text.empty()) {
            const auto nl = text.find('\n');
            std::string_view line = text.substr(0, nl);
            if (!line.empty() && line.back() == '\r') {
                line.remove_suffix(1);
            }
            if (line.find_first_not_of(" \t") != std::string_view::npos) {
                lines.push_back(line);
            }
            text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        }
        return lines;
    };
    auto lines = lines_of(stderr_tail, stderr_bytes);
    if (lines.empty()) {
        lines = lines_of(stdout_tail, stdout_bytes);
    }
    const std::size_t first = lines.size() > n ? lines.size() - n : 0;
    std::string joined;
    for (std::size_t i = first; i < lines.size(); ++i) {
        if (!joined.empty()) {
            joined += '\n';
        }
        joined += lines[i];
    }
    return joined;
}

std::size_t kill_orphaned_processes(const std::filesystem::path& jobs_root) {
    std::error_code ec;
    const std::filesystem::path root = std::filesystem::absolute(jobs_root, ec).lexically_normal();
    if (ec) {
        return 0;
    }
    std::string prefix = root.string();
    if (prefix.empty() || prefix.back() != '/') {
        prefix += '/';
    }
    const std::string key = "SEGNODE_WORK_DIR=";
    const pid_t self = ::getpid();
    const pid_t own_group = ::getpgrp();
    const uid_t uid = ::getuid();
    std::size_t killed = 0;
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr) {
        return 0;
    }
    std::array<char, 512> stat{};
    std::array<char, 300> path{};
    std::string environ;
    while (const dirent* entry = ::readdir(proc)) {
        const char* name = entry->d_name;
        if (name[0] < '0' || name[0] > '9') {
            continue;
        }
        const pid_t pid = static_cast<pid_t>(std::strtol(name, nullptr, 10));
        if (pid == self) {
            continue;
        }
        std::snprintf(path.data(), path.size(), "/proc/%s", name);
        struct stat owner {};
        if (::stat(path.data(), &owner) != 0 || owner.st_uid != uid) {
            continue;
        }
        // The whole environment (NUL-separated); a process we may not read is not ours.
        std::snprintf(path.data(), path.size(), "/proc/%s/environ", name);
        const int fd = ::open(path.data(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        environ.clear();
        std::array<char, 8192> chunk{};
        for (;;) {
            const ssize_t n = ::read(fd, chunk.data(), chunk.size());
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                break;
            }
            environ.append(chunk.data(), static_cast<std::size_t>(n));
        }
        ::close(fd);
        bool ours = false;
        for (std::size_t at = 0; at < environ.size();) {
            const std::size_t end = std::min(environ.find('\0', at), environ.size());
            const std::string_view var(environ.data() + at, end - at);
            if (var.starts_with(key) && var.substr(key.size()).starts_with(prefix)) {
                ours = true;
                break;
            }
            at = end + 1;
        }
        if (!ours) {
            continue;
        }
        std::snprintf(path.data(), path.size(), "/proc/%s/stat", name);
        long pgrp = 0;
        if (read_proc_file(path.data(), stat)) {
            const char* close = std::strrchr(stat.data(), ')');
            char state = 0;
            long ppid = 0;
            if (close == nullptr ||
                std::sscanf(close + 1, " %c %ld %ld", &state, &ppid, &pgrp) != 3) {
                pgrp = 0;
            }
        }
        // The program's own group (it leads one); never the node's group.
        if (pgrp > 1 && static_cast<pid_t>(pgrp) != own_group) {
            ::kill(-static_cast<pid_t>(pgrp), SIGKILL);
        }
        if (::kill(pid, SIGKILL) == 0) {
            ++killed;
        }
    }
    ::closedir(proc);
    return killed;
}

} // namespace segnode::pipeline
