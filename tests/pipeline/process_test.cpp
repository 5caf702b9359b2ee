// Process supervision with real programs (/bin/sh scripts, python3): exit status and signals,
// timeout and the SIGTERM -> SIGKILL escalation, the whole process group stopped, stop token,
// memory limit, capped output with tails, the exact environment, start errors, no fd leak.
#include "segnode/pipeline/process.hpp"
#include "test_util.hpp"

#include <csignal>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <mutex>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace segnode::test {
namespace {

using pipeline::ProcessEnd;
using pipeline::ProcessResult;
using pipeline::ProcessSpec;
using namespace std::chrono_literals;

const std::vector<std::pair<std::string, std::string>> k_env{{"PATH", "/usr/bin:/bin"},
                                                             {"LANG", "C"}};

ProcessSpec shell(const std::string& script) {
    ProcessSpec spec;
    spec.argv = {"sh", "-c", script};
    spec.env = k_env;
    spec.kill_grace = 2000ms;
    return spec;
}

/// Collects on_output lines.
struct Lines {
    std::mutex mutex;
    std::vector<std::pair<std::string, bool>> lines;
    std::size_t bytes = 0;
    void attach(ProcessSpec& spec) {
        spec.on_output = [this](std::string_view line, bool from_stderr) {
            const std::lock_guard lock(mutex);
            lines.emplace_back(std::string(line), from_stderr);
            bytes += line.size() + 1;
        };
    }
};

int open_fds() {
    int n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
        ++n;
    }
    return n;
}

/// Gone, or a zombie waiting for its new parent.
bool process_gone(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    if (!in || !std::getline(in, stat)) {
        return true;
    }
    const auto close = stat.rfind(')');
    return close != std::string::npos && close + 2 < stat.size() &&
           (stat[close + 2] == 'Z' || stat[close + 2] == 'X');
}

bool eventually_gone(pid_t pid) {
    for (int i = 0; i < 100; ++i) {
        if (process_gone(pid)) {
            return true;
        }
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

std::uint64_t own_rss_kib() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) {
            return std::stoull(line.substr(6));
        }
    }
    return 0;
}

TEST(Process, ExitZeroPassesStdoutLinesInOrder) {
    auto spec = shell("echo one; echo two >&2; echo three; printf 'last without newline'");
    Lines lines;
    lines.attach(spec);
    const ProcessResult r = pipeline::run_process(spec);
    EXPECT_EQ(r.end, ProcessEnd::Exited);
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_TRUE(r.success());
    EXPECT_EQ(r.describe(), "exited with status 0");
    std::vector<std::string> out;
    std::vector<std::string> err;
    for (const auto& [line, from_stderr] : lines.lines) {
        (from_stderr ? err : out).push_back(line);
    }
    EXPECT_EQ(out, (std::vector<std::string>{"one", "three", "last without newline"}));
    EXPECT_EQ(err, (std::vector<std::string>{"two"}));
    EXPECT_EQ(r.stdout_tail, "one\nthree\nlast without newline");
    EXPECT_EQ(r.stderr_tail, "two\n");
    EXPECT_EQ(r.stdout_bytes, 30U);
    EXPECT_EQ(r.stderr_bytes, 4U);
}

TEST(Process, ExitStatusIsReportedAndDescribed) {
    const ProcessResult r =
        pipeline::run_process(shell("echo 'reading model'; echo 'error: bad input' >&2; "
                                    "echo 'details' >&2; exit 2"));
    EXPECT_EQ(r.end, ProcessEnd::Exited);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_FALSE(r.success());
    EXPECT_EQ(r.describe(), "exited with status 2");
    EXPECT_EQ(r.last_lines(1), "details");
    EXPECT_EQ(r.last_lines(5), "error: bad input\ndetails");
}

TEST(Process, LastLinesFallBackToStdout) {
    const ProcessResult r = pipeline::run_process(shell("echo a; echo; echo b; exit 1"));
    EXPECT_EQ(r.last_lines(2), "a\nb");
}

TEST(Process, KilledBySignalIsSignaled) {
    const ProcessResult r = pipeline::run_process(shell("kill -9 $$"));
    EXPECT_EQ(r.end, ProcessEnd::Signaled);
    EXPECT_EQ(r.term_signal, 9);
    EXPECT_EQ(r.describe(), "killed by signal 9 (SIGKILL)");
}

TEST(Process, TimeoutStopsTheProgramWithinTheGrace) {
    auto spec = shell("sleep 30");
    spec.timeout = 300ms;
    const auto t = std::chrono::steady_clock::now();
    const ProcessResult r = pipeline::run_process(spec);
    const auto took = std::chrono::steady_clock::now() - t;
    EXPECT_EQ(r.end, ProcessEnd::TimedOut);
    EXPECT_EQ(r.term_signal, SIGTERM);
    EXPECT_EQ(r.describe(), "timed out after 0.3 s");
    EXPECT_GE(took, 300ms);
    EXPECT_LT(took, 300ms + spec.kill_grace);
}

TEST(Process, IgnoredSigtermIsFollowedBySigkillAfterTheGrace) {
    auto spec = shell("trap '' TERM; echo ready; while :; do sleep 0.05; done");
    spec.timeout = 200ms;
    spec.kill_grace = 500ms;
    const auto t = std::chrono::steady_clock::now();
    const ProcessResult r = pipeline::run_process(spec);
    const auto took = std::chrono::steady_clock::now() - t;
    EXPECT_EQ(r.end, ProcessEnd::TimedOut);
    EXPECT_EQ(r.term_signal, SIGKILL);
    EXPECT_GE(took, 700ms);
    EXPECT_LT(took, 3s);
}

TEST(Process, TheChildGetsDefaultSignalsWhateverTheCallerBlocksOrIgnores) {
    // The node blocks SIGTERM in all threads and ignores SIGPIPE; the program must not
    // inherit either.
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    struct sigaction previous {};
    ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &previous), 0);
    ProcessResult piped;
    ProcessResult timed_out;
    std::thread runner([&] {
        sigset_t block;
        sigemptyset(&block);
        sigaddset(&block, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &block, nullptr);
        piped = pipeline::run_process(shell("kill -PIPE $$; exit 0"));
        auto spec = shell("sleep 30");
        spec.timeout = 200ms;
        spec.kill_grace = 5000ms;
        timed_out = pipeline::run_process(spec);
    });
    runner.join();
    ::sigaction(SIGPIPE, &previous, nullptr);
    EXPECT_EQ(piped.end, ProcessEnd::Signaled);
    EXPECT_EQ(piped.term_signal, SIGPIPE);
    EXPECT_EQ(timed_out.end, ProcessEnd::TimedOut);
    EXPECT_EQ(timed_out.term_signal, SIGTERM); // not SIGKILL after the grace
    EXPECT_LT(timed_out.seconds, 2.0);
}

TEST(Process, GrandchildrenAreStoppedWithTheGroup) {
    Lines lines;
    auto spec = shell("sleep 1000 & echo $!; sleep 1000");
    spec.timeout = 300ms;
    lines.attach(spec);
    const ProcessResult r = pipeline::run_process(spec);
    EXPECT_EQ(r.end, ProcessEnd::TimedOut);
    ASSERT_FALSE(lines.lines.empty());
    const pid_t grandchild = std::stoi(lines.lines[0].first);
    EXPECT_TRUE(eventually_gone(grandchild));
}

TEST(Process, GroupIsClearedWhenTheLeaderExits) {
    Lines lines;
    auto spec = shell("sleep 1000 & echo $!; exit 0");
    lines.attach(spec);
    const auto t = std::chrono::steady_clock::now();
    const ProcessResult r = pipeline::run_process(spec);
    EXPECT_LT(std::chrono::steady_clock::now() - t, 3s);
    EXPECT_EQ(r.end, ProcessEnd::Exited);
    EXPECT_EQ(r.exit_code, 0);
    ASSERT_FALSE(lines.lines.empty());
    EXPECT_TRUE(eventually_gone(std::stoi(lines.lines[0].first)));
}

TEST(Process, StopTokenFromAnotherThreadStopsQuickly) {
    std::stop_source source;
    std::thread stopper([&] {
        std::this_thread::sleep_for(200ms);
        source.request_stop();
    });
    const auto t = std::chrono::steady_clock::now();
    const ProcessResult r = pipeline::run_process(shell("sleep 30"), source.get_token());
    const auto took = std::chrono::steady_clock::now() - t;
    stopper.join();
    EXPECT_EQ(r.end, ProcessEnd::Stopped);
    EXPECT_EQ(r.describe(), "stopped");
    EXPECT_LT(took, 1s);
}

TEST(Process, StopRequestedBeforeTheStartStartsNothing) {
    std::stop_source source;
    source.request_stop();
    TempDir dir;
    const auto marker = dir.path() / "ran";
    const ProcessResult r =
        pipeline::run_process(shell("touch '" + marker.string() + "'"), source.get_token());
    EXPECT_EQ(r.end, ProcessEnd::Stopped);
    EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST(Process, MemoryLimitStopsTheGroup) {
    ProcessSpec spec;
    spec.argv = {"python3", "-c",
                 "import time\nb = bytearray(300 * 1024 * 1024)\n"
                 "for i in range(0, len(b), 4096): b[i] = 1\ntime.sleep(30)\n"};
    spec.env = k_env;
    spec.memory_limit_bytes = 100ULL * 1024 * 1024;
    spec.kill_grace = 2000ms;
    spec.timeout = 20s;
    const ProcessResult r = pipeline::run_process(spec);
    EXPECT_EQ(r.end, ProcessEnd::MemoryExceeded);
    EXPECT_GT(r.peak_rss_bytes, spec.memory_limit_bytes);
    EXPECT_NE(r.describe().find("exceeded the memory limit ("), std::string::npos) << r.describe();
    EXPECT_NE(r.describe().find(" > 100 MB)"), std::string::npos) << r.describe();
}

TEST(Process, LargeOutputIsCappedCountedAndTailed) {
    // 500000 lines of 99 'a' and a newline: 50 MB.
    ProcessSpec spec;
    spec.argv = {"python3", "-c",
                 "import sys\nline = b'a' * 99 + b'\\n'\nchunk = line * 1000\n"
                 "for i in range(500): sys.stdout.buffer.write(chunk)\n"
                 "sys.stdout.buffer.write(b'the end\\n')\n"};
    spec.env = k_env;
    spec.output_cap_bytes = 64 * 1024;
    spec.tail_bytes = 1024;
    Lines lines;
    lines.attach(spec);
    const std::uint64_t rss_before = own_rss_kib();
    const ProcessResult r = pipeline::run_process(spec);
    EXPECT_TRUE(r.success()) << r.describe();
    EXPECT_EQ(r.stdout_bytes, 50'000'000U + 8U);
    ASSERT_FALSE(lines.lines.empty());
    EXPECT_EQ(lines.lines.back().first, "[output beyond 65536 bytes not logged; tail kept]");
    EXPECT_LE(lines.bytes, spec.output_cap_bytes + lines.lines.back().first.size() + 1);
    EXPECT_EQ(lines.lines.front().first, std::string(99, 'a'));
    EXPECT_EQ(r.stdout_tail.size(), 1024U);
    EXPECT_EQ(r.stdout_tail.substr(r.stdout_tail.size() - 8), "the end\n");
    EXPECT_EQ(r.last_lines(1), "the end");
    EXPECT_LT(own_rss_kib(), rss_before + 20 * 1024); // nothing like 50 MB was held
}

TEST(Process, TheOutputCapCoversBothStreams) {
    auto spec = shell("echo 123456789; echo abcdefghi >&2; sleep 0.1; echo 123456789; "
                      "echo late >&2; exit 3");
    spec.output_cap_bytes = 25; // two lines of 10 bytes fit, the third does not
    Lines lines;
    lines.attach(spec);
    const ProcessResult r = pipeline::run_process(spec);
    EXPECT_EQ(r.exit_code, 3);
    ASSERT_EQ(lines.lines.size(), 3U);
    EXPECT_EQ(lines.lines[2].first, "[output beyond 25 bytes not logged; tail kept]");
    EXPECT_EQ(r.stdout_tail, "123456789\n123456789\n");
    EXPECT_EQ(r.stderr_tail, "abcdefghi\nlate\n");
    EXPECT_EQ(r.last_lines(1), "late");
}

TEST(Process, LastLinesSkipTheCutFirstLineOfATail) {
    ProcessResult r;
    r.stderr_tail = "end of a long line\nsecond\nthird\n";
    r.stderr_bytes = 1000; // the tail starts inside a line
    EXPECT_EQ(r.last_lines(10), "second\nthird");
    r.stderr_bytes = r.stderr_tail.size();
    EXPECT_EQ(r.last_lines(10), "end of a long line\nsecond\nthird");
    r.end = ProcessEnd::MemoryExceeded;
    r.peak_rss_bytes = 612ULL << 20U;
    r.memory_limit_bytes = 512ULL << 20U;
    EXPECT_EQ(r.describe(), "exceeded the memory limit (612 MB > 512 MB)");
    r.end = ProcessEnd::TimedOut;
    r.timeout = std::chrono::seconds(5);
    EXPECT_EQ(r.describe(), "timed out after 5 s");
}

TEST(Process, EnvironmentIsExactlyTheGivenOne) {
    ProcessSpec spec;
    spec.argv = {"env"};
    spec.env = {{"PATH", "/usr/bin:/bin"}, {"SEGNODE_TEST", "a b=c"}};
    Lines lines;
    lines.attach(spec);
    ASSERT_EQ(::setenv("SEGNODE_SHOULD_NOT_LEAK", "1", 1), 0);
    const ProcessResult r = pipeline::run_process(spec);
    ::unsetenv("SEGNODE_SHOULD_NOT_LEAK");
    EXPECT_TRUE(r.success()) << r.describe();
    std::vector<std::string> out;
    for (const auto& [line, from_stderr] : lines.lines) {
        out.push_back(line);
    }
    EXPECT_EQ(out, (std::vector<std::string>{"PATH=/usr/bin:/bin", "SEGNODE_TEST=a b=c"}));
}

TEST(Process, WorkingDirectoryAndStdinFromDevNull) {
    TempDir dir;
    auto spec = shell("pwd; cat; echo end");
    spec.cwd = dir.path();
    Lines lines;
    lines.attach(spec);
    const ProcessResult r = pipeline::run_process(spec);
    EXPECT_TRUE(r.success()) << r.describe();
    ASSERT_EQ(lines.lines.size(), 2U);
    EXPECT_EQ(std::filesystem::path(lines.lines[0].first), std::filesystem::canonical(dir.path()));
    EXPECT_EQ(lines.lines[1].first, "end");
}

TEST(Process, ARelativeProgramPathIsTheCallersNotTheChildDirectorys) {
    TempDir dir;
    std::filesystem::create_directory(dir.path() / "bin");
    std::filesystem::create_directory(dir.path() / "work");
    const auto script = dir.path() / "bin" / "model.sh";
    std::ofstream(script) << "#!/bin/sh\necho model ran in $(pwd)\n";
    std::filesystem::permissions(script, std::filesystem::perms::owner_all);
    const auto previous = std::filesystem::current_path();
    std::filesystem::current_path(dir.path());
    ProcessSpec spec;
    spec.argv = {"bin/model.sh"};
    spec.env = k_env;
    spec.cwd = dir.path() / "work";
    Lines lines;
    lines.attach(spec);
    const ProcessResult r = pipeline::run_process(spec);
    std::filesystem::current_path(previous);
    EXPECT_TRUE(r.success()) << r.describe();
    ASSERT_EQ(lines.lines.size(), 1U);
    EXPECT_EQ(lines.lines[0].first,
              "model ran in " + std::filesystem::canonical(dir.path() / "work").string());
}

TEST(Process, MissingProgramIsAStartError) {
    ProcessSpec spec;
    spec.argv = {"segnode-no-such-program", "x"};
    spec.env = k_env;
    ProcessResult r = pipeline::run_process(spec);
    EXPECT_EQ(r.end, ProcessEnd::StartFailed);
    EXPECT_EQ(r.start_error, "program 'segnode-no-such-program' not found in PATH (/usr/bin:/bin)");
    EXPECT_EQ(r.describe(), "could not start: program 'segnode-no-such-program' not found in PATH "
                            "(/usr/bin:/bin)");

    TempDir dir;
    const auto file = dir.path() / "model.sh";
    std::ofstream(file) << "#!/bin/sh\necho hi\n";
    spec.argv = {file.string()};
    r = pipeline::run_process(spec);
    EXPECT_EQ(r.end, ProcessEnd::StartFailed);
    EXPECT_EQ(r.start_error, "'" + file.string() + "' is not executable");

    spec.argv = {(dir.path() / "missing").string()};
    r = pipeline::run_process(spec);
    EXPECT_EQ(r.start_error, "'" + (dir.path() / "missing").string() + "' does not exist");

    spec = shell("true");
    spec.cwd = dir.path() / "no-such-dir";
    r = pipeline::run_process(spec);
    EXPECT_EQ(r.end, ProcessEnd::StartFailed);
    EXPECT_NE(r.start_error.find("cannot change to directory"), std::string::npos) << r.start_error;
    EXPECT_NE(r.start_error.find("No such file or directory"), std::string::npos) << r.start_error;
}

TEST(Process, ExecFailureIsReportedWithItsErrno) {
    TempDir dir;
    const auto file = dir.path() / "garbage";
    std::ofstream(file) << "\x7f"
                        << "ELF not really";
    std::filesystem::permissions(file, std::filesystem::perms::owner_all);
    ProcessSpec spec;
    spec.argv = {file.string()};
    spec.env = k_env;
    const ProcessResult r = pipeline::run_process(spec);
    EXPECT_EQ(r.end, ProcessEnd::StartFailed);
    EXPECT_EQ(r.start_error.rfind("cannot execute '" + file.string() + "': ", 0), 0U)
        << r.start_error;
}

TEST(Process, FindExecutableFollowsPathOrder) {
    EXPECT_EQ(pipeline::find_executable("sh", "/nonexistent:/bin:/usr/bin"),
              std::filesystem::path("/bin/sh"));
    EXPECT_EQ(pipeline::find_executable("sh", "/nonexistent"), std::nullopt);
    EXPECT_EQ(pipeline::find_executable("/bin/sh", ""), std::filesystem::path("/bin/sh"));
    TempDir dir;
    std::ofstream(dir.path() / "data.txt") << "not a program\n";
    std::filesystem::permissions(dir.path() / "data.txt", std::filesystem::perms::owner_read |
                                                              std::filesystem::perms::owner_write);
    EXPECT_EQ(pipeline::find_executable((dir.path() / "data.txt").string(), "/bin"), std::nullopt);
    EXPECT_EQ(pipeline::find_executable("data.txt", dir.path().string()), std::nullopt);
    EXPECT_EQ(pipeline::find_executable("sh", dir.path().string() + ":/bin"),
              std::filesystem::path("/bin/sh"));
    EXPECT_EQ(pipeline::find_executable("", "/bin"), std::nullopt);
}

TEST(Process, NoDescriptorOrChildIsLeft) {
    const int before = open_fds();
    for (int i = 0; i < 5; ++i) {
        (void)pipeline::run_process(shell("echo x; echo y >&2"));
        auto spec = shell("sleep 5");
        spec.timeout = 100ms;
        (void)pipeline::run_process(spec);
        spec.argv = {"segnode-no-such-program"};
        (void)pipeline::run_process(spec);
    }
    EXPECT_EQ(open_fds(), before);
    // No zombie child of ours is left to reap.
    EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD);
}

TEST(Process, SeveralRunAtOnceFromThreads) {
    std::vector<std::thread> threads;
    std::vector<ProcessResult> results(4);
    for (std::size_t i = 0; i < results.size(); ++i) {
        threads.emplace_back([&results, i] {
            results[i] = pipeline::run_process(
                shell("i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done; exit " +
                      std::to_string(i)));
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    for (std::size_t i = 0; i < results.size(); ++i) {
        EXPECT_EQ(results[i].end, ProcessEnd::Exited);
        EXPECT_EQ(results[i].exit_code, static_cast<int>(i));
        EXPECT_EQ(results[i].last_lines(1), "line 199");
    }
}

/// A process that is alive and not a zombie.
bool alive(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')');
    return close != std::string::npos && close + 2 < text.size() && text[close + 2] != 'Z' &&
           text[close + 2] != 'X';
}

bool wait_until_dead(pid_t pid, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (alive(pid)) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        ::waitpid(pid, nullptr, WNOHANG);
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

/// Starts `sh -c script` in its own session with SEGNODE_WORK_DIR=work_dir, as a program of
/// a killed node would be left running; the script writes the pid of its background child to
/// `pid_file`. Returns the shell's pid.
pid_t start_left_over(const std::filesystem::path& work_dir,
                      const std::filesystem::path& pid_file) {
    const std::string env_entry = "SEGNODE_WORK_DIR=" + work_dir.string();
    const std::string script = "sleep 60 & echo $! > '" + pid_file.string() + "'; exec sleep 60";
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::setsid();
        char* const argv[] = {const_cast<char*>("/bin/sh"), const_cast<char*>("-c"),
                              const_cast<char*>(script.c_str()), nullptr};
        char* const envp[] = {const_cast<char*>("PATH=/usr/bin:/bin"),
                              const_cast<char*>(env_entry.c_str()), nullptr};
        ::execve("/bin/sh", argv, envp);
        ::_exit(127);
    }
    return pid;
}

pid_t read_pid(const std::filesystem::path& file) {
    for (int i = 0; i < 300; ++i) {
        std::ifstream in(file);
        pid_t pid = 0;
        if (in >> pid && pid > 0) {
            return pid;
        }
        std::this_thread::sleep_for(10ms);
    }
    return 0;
}

TEST(Process, LeftOverProgramsUnderTheJobsRootAreKilledWithTheirGroup) {
    TempDir tmp;
    const auto jobs = tmp.path() / "var" / "jobs";
    const pid_t ours = start_left_over(jobs / "7" / "work", tmp.path() / "ours.pid");
    // Same prefix as text but not under jobs/: must survive.
    const pid_t other =
        start_left_over(tmp.path() / "var" / "jobs-archive" / "work", tmp.path() / "other.pid");
    const pid_t ours_child = read_pid(tmp.path() / "ours.pid");
    const pid_t other_child = read_pid(tmp.path() / "other.pid");
    ASSERT_GT(ours_child, 0);
    ASSERT_GT(other_child, 0);

    // The background child inherited the environment too: at least both of ours.
    EXPECT_GE(pipeline::kill_orphaned_processes(jobs), 2U);
    int status = 0;
    ASSERT_EQ(::waitpid(ours, &status, 0), ours);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    EXPECT_TRUE(wait_until_dead(ours_child, 5s)) << "the program's own child survived";
    EXPECT_TRUE(alive(other));
    EXPECT_TRUE(alive(other_child));
    // Nothing of ours is left to find.
    EXPECT_EQ(pipeline::kill_orphaned_processes(jobs), 0U);

    ::kill(-other, SIGKILL);
    ::waitpid(other, nullptr, 0);
}

TEST(Process, TheProgramDiesWithTheProcessThatStartedIt) {
    TempDir tmp;
    const auto pid_file = tmp.path() / "program.pid";
    // A stand-in for the node: it runs a long program and is then killed with SIGKILL.
    const pid_t node = ::fork();
    if (node == 0) {
        auto spec = shell("echo $$ > '" + pid_file.string() + "'; exec sleep 60");
        (void)pipeline::run_process(spec);
        ::_exit(0);
    }
    const pid_t program = read_pid(pid_file);
    ASSERT_GT(program, 0);
    EXPECT_TRUE(alive(program));
    ::kill(node, SIGKILL);
    ::waitpid(node, nullptr, 0);
    EXPECT_TRUE(wait_until_dead(program, 5s)) << "the program outlived the node";
}

} // namespace
} // namespace segnode::test
