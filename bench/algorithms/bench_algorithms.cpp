// bench-algorithms: series loading and every built-in algorithm against a naive ITK pipeline
// on the same volume, with the targets of the issue checked (README.md here).
//
//   bench-algorithms --series DIR [--rounds N] [--threads N]
//
// Order of a run, chosen so that one measurement does not disturb the next:
//  1. the series' files are read once, so that every load below reads from the page cache;
//  2. "load + otsu" in fresh processes (this executable again, with --probe-load-otsu), which
//     report their wall times and getrusage(RUSAGE_SELF).ru_maxrss. They are started first,
//     while this process is still small: on Linux ru_maxrss survives execve() as the larger of
//     the old and the new image's high-water mark (the old image of a vfork-style spawn is
//     this process), so a child started after the volume is loaded here would report our
//     size. The probe also reports VmHWM (the new image only) as a cross-check;
//  3. load_series_dir, N times; the last volume is kept;
//  4. every built-in of make_builtin_registry(), default settings, N times each;
//  5. the naive ITK pipeline on the same buffer, N times.
// Exit status: 0 all targets met, 3 a target missed, 1 an error, 2 a usage error.
#include "itk_pipeline.hpp"
#include "segnode/algorithms/otsu.hpp"
#include "segnode/algorithms/registry.hpp"
#include "segnode/dicom/series_loader.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <spawn.h>
#include <sstream>
#include <string>
#include <string_view>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

extern char** environ; // NOLINT(readability-redundant-declaration): POSIX, for posix_spawn

namespace segnode::bench {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Targets of the issue.
constexpr double min_speedup = 5.0;     ///< each built-in vs the naive ITK pipeline
constexpr double max_load_otsu_s = 1.0; ///< load + otsu, wall time
constexpr double max_rss_ratio = 3.0;   ///< peak RSS of load + otsu / int16 volume size
constexpr const char* probe_flag = "--probe-load-otsu";

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

double mib(double bytes) {
    return bytes / (1024.0 * 1024.0);
}

/// Best and median of a set of timings.
struct Timing {
    std::vector<double> seconds;

    [[nodiscard]] double best() const { return *std::min_element(seconds.begin(), seconds.end()); }
    [[nodiscard]] double median() const {
        std::vector<double> sorted = seconds;
        std::sort(sorted.begin(), sorted.end());
        const std::size_t n = sorted.size();
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
    }
};

/// A "KEY value" line of /proc/self/status in KiB (VmRSS, VmHWM), 0 if absent.
std::uint64_t proc_status_kib(std::string_view key) {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with(key) && line.size() > key.size() && line[key.size()] == ':') {
            return std::strtoull(line.c_str() + key.size() + 1, nullptr, 10);
        }
    }
    return 0;
}

std::uint64_t max_rss_kib() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return static_cast<std::uint64_t>(usage.ru_maxrss); // KiB on Linux
}

std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string one;
    std::string five;
    std::string fifteen;
    in >> one >> five >> fifteen;
    return one + " " + five + " " + fifteen;
}

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with("model name")) {
            const auto colon = line.find(':');
            return colon == std::string::npos ? line : line.substr(colon + 2);
        }
    }
    return "unknown CPU";
}

std::uint64_t count_foreground(const LabelMap& labels) {
    return static_cast<std::uint64_t>(
        std::count_if(labels.voxels.begin(), labels.voxels.end(), [](auto v) { return v != 0; }));
}

// ------------------------------------------------------------------ command line

struct Options {
    fs::path series;
    unsigned rounds = 3;
    unsigned threads = 0; ///< loader and algorithms; 0 = their defaults
    bool probe = false;
};

std::optional<unsigned> parse_unsigned(std::string_view text) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

constexpr const char* usage =
    "usage: bench-algorithms --series DIR [--rounds N] [--threads N]\n"
    "  --series DIR   a CT series (e.g. segnode-phantom --rows 512 --cols 512 --slices 300)\n"
    "  --rounds N     timings per measurement, best and median reported (default 3)\n"
    "  --threads N    threads for loading and the algorithms (default: theirs)\n";

std::optional<Options> parse_options(int argc, char** argv) {
    Options options;
    for (int n = 1; n < argc; ++n) {
        const std::string_view arg = argv[n];
        const bool has_value = n + 1 < argc;
        if (arg == "--series" && has_value) {
            options.series = argv[++n];
        } else if (arg == "--rounds" && has_value) {
            const auto value = parse_unsigned(argv[++n]);
            if (!value || *value == 0) {
                return std::nullopt;
            }
            options.rounds = *value;
        } else if (arg == "--threads" && has_value) {
            const auto value = parse_unsigned(argv[++n]);
            if (!value) {
                return std::nullopt;
            }
            options.threads = *value;
        } else if (arg == probe_flag) {
            options.probe = true;
        } else {
            return std::nullopt;
        }
    }
    if (options.series.empty()) {
        return std::nullopt;
    }
    return options;
}

// ------------------------------------------------------------------ segnode steps

Result<dicom::LoadedSeries> load(const Options& options) {
    dicom::LoadOptions load_options;
    load_options.threads = options.threads;
    return dicom::load_series_dir(options.series, load_options);
}

algorithms::RunContext run_context(const Options& options) {
    algorithms::RunContext context;
    context.threads = options.threads;
    return context; // no log: the built-ins' messages would interleave with the table
}

/// Runs the algorithm with its default settings; an error message on failure.
Result<LabelMap> run_default(const algorithms::Algorithm& algorithm, const CtVolume& volume,
                             const Options& options) {
    auto settings = algorithm.parse_settings({});
    if (!settings) {
        return settings.error();
    }
    return algorithm.run(volume, *settings, run_context(options));
}

// ------------------------------------------------------------------ the probe process

/// --probe-load-otsu: one load + otsu, then "probe <load s> <otsu s> <ru_maxrss KiB>
/// <VmHWM KiB> <VmRSS at start KiB>" on stdout.
int probe_main(const Options& options) {
    const std::uint64_t start_rss = proc_status_kib("VmRSS");
    const auto registry = algorithms::make_builtin_registry();
    const auto* otsu = registry.find("otsu");
    if (otsu == nullptr) {
        std::fprintf(stderr, "bench-algorithms: no otsu algorithm in the registry\n");
        return 1;
    }
    const auto load_start = Clock::now();
    auto series = load(options);
    const double load_s = seconds_since(load_start);
    if (!series) {
        std::fprintf(stderr, "bench-algorithms: %s\n", series.error().message.c_str());
        return 1;
    }
    const auto otsu_start = Clock::now();
    auto labels = run_default(*otsu, series->volume, options);
    const double otsu_s = seconds_since(otsu_start);
    if (!labels) {
        std::fprintf(stderr, "bench-algorithms: otsu: %s\n", labels.error().message.c_str());
        return 1;
    }
    std::printf("probe %.6f %.6f %llu %llu %llu\n", load_s, otsu_s,
                static_cast<unsigned long long>(max_rss_kib()),
                static_cast<unsigned long long>(proc_status_kib("VmHWM")),
                static_cast<unsigned long long>(start_rss));
    return 0;
}

struct ProbeResult {
    double load_s = 0.0;
    double otsu_s = 0.0;
    std::uint64_t maxrss_kib = 0;
    std::uint64_t hwm_kib = 0;
    std::uint64_t start_rss_kib = 0;
};

/// Runs this executable with --probe-load-otsu and parses its line.
Result<ProbeResult> run_probe(const Options& options) {
    std::array<int, 2> pipe_fds{};
    if (::pipe(pipe_fds.data()) != 0) {
        return Error{std::string("pipe: ") + std::strerror(errno)};
    }
    posix_spawn_file_actions_t actions{};
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
    posix_spawn_file_actions_addclose(&actions, pipe_fds[1]);

    std::string exe = "/proc/self/exe";
    std::string flag = probe_flag;
    std::string series_flag = "--series";
    std::string series = options.series.string();
    std::string threads_flag = "--threads";
    std::string threads = std::to_string(options.threads);
    std::array<char*, 7> argv{exe.data(),    flag.data(),         series_flag.data(),
                              series.data(), threads_flag.data(), threads.data(),
                              nullptr};
    pid_t pid = 0;
    const int rc = ::posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(pipe_fds[1]);
    if (rc != 0) {
        ::close(pipe_fds[0]);
        return Error{std::string("cannot start the probe process: ") + std::strerror(rc)};
    }
    std::string output;
    std::array<char, 4096> buffer{};
    for (;;) {
        const ssize_t n = ::read(pipe_fds[0], buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        output.append(buffer.data(), static_cast<std::size_t>(n));
    }
    ::close(pipe_fds[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return Error{"the probe process failed (status " + std::to_string(status) + ")"};
    }
    std::istringstream in(output);
    std::string tag;
    ProbeResult probe;
    in >> tag >> probe.load_s >> probe.otsu_s >> probe.maxrss_kib >> probe.hwm_kib >>
        probe.start_rss_kib;
    if (!in || tag != "probe") {
        return Error{"unexpected probe output: " + output};
    }
    return probe;
}

// ------------------------------------------------------------------ the benchmark

/// Reads every file of the series once, so that the loads below come from the page cache.
/// Returns the number of bytes read.
std::uint64_t warm_page_cache(const fs::path& dir) {
    std::uint64_t bytes = 0;
    std::vector<char> buffer(1 << 20);
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (!entry.is_regular_file()) {
            continue;
        }
        std::ifstream in(entry.path(), std::ios::binary);
        while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) ||
               in.gcount() > 0) {
            bytes += static_cast<std::uint64_t>(in.gcount());
        }
    }
    return bytes;
}

struct Row {
    std::string name;
    Timing timing;
    std::uint64_t voxels = 0;
};

std::string pass_fail(bool ok) {
    return ok ? "PASS" : "FAIL";
}

int bench_main(const Options& options) {
    const unsigned rounds = options.rounds;
    std::printf("bench-algorithms: %s\n", options.series.c_str());
    std::printf("machine: %s, %u hardware threads, load average at start %s\n", cpu_model().c_str(),
                std::thread::hardware_concurrency(), load_average().c_str());

    // 1. Page cache.
    const auto warm_start = Clock::now();
    const std::uint64_t series_bytes = warm_page_cache(options.series);
    std::printf("series files: %.1f MiB read once in %.2f s before timing, so every load "
                "below reads from the page cache (nothing is dropped)\n",
                mib(static_cast<double>(series_bytes)), seconds_since(warm_start));

    // 2. Load + otsu in fresh processes, while this process is small.
    std::printf("running load + otsu in %u fresh processes ...\n", rounds);
    std::fflush(stdout);
    std::vector<ProbeResult> probes;
    for (unsigned r = 0; r < rounds; ++r) {
        auto probe = run_probe(options);
        if (!probe) {
            std::fprintf(stderr, "bench-algorithms: %s\n", probe.error().message.c_str());
            return 1;
        }
        probes.push_back(*probe);
    }

    // 3. Load.
    std::printf("loading %u times ...\n", rounds);
    std::fflush(stdout);
    Timing load_timing;
    std::optional<dicom::LoadedSeries> series;
    for (unsigned r = 0; r < rounds; ++r) {
        series.reset(); // one volume in memory at a time
        const auto start = Clock::now();
        auto loaded = load(options);
        load_timing.seconds.push_back(seconds_since(start));
        if (!loaded) {
            std::fprintf(stderr, "bench-algorithms: cannot load %s: %s\n", options.series.c_str(),
                         loaded.error().message.c_str());
            return 1;
        }
        series = std::move(*loaded);
    }
    const CtVolume& volume = series->volume;
    const auto& dims = volume.geometry.dims;
    const double volume_bytes = static_cast<double>(volume.voxels.size() * sizeof(std::int16_t));

    // 4. The built-ins.
    const auto registry = algorithms::make_builtin_registry();
    std::vector<Row> rows;
    std::optional<LabelMap> otsu_labels;
    for (const auto& algorithm : registry.algorithms()) {
        std::printf("running %s %u times ...\n", algorithm->name().c_str(), rounds);
        std::fflush(stdout);
        Row row{algorithm->name(), {}, 0};
        for (unsigned r = 0; r < rounds; ++r) {
            const auto start = Clock::now();
            auto labels = run_default(*algorithm, volume, options);
            row.timing.seconds.push_back(seconds_since(start));
            if (!labels) {
                std::fprintf(stderr, "bench-algorithms: %s: %s\n", algorithm->name().c_str(),
                             labels.error().message.c_str());
                return 1;
            }
            row.voxels = count_foreground(*labels);
            if (algorithm->name() == "otsu" && r + 1 == rounds) {
                otsu_labels = std::move(*labels);
            }
        }
        rows.push_back(std::move(row));
    }

    // 5. The naive ITK pipeline.
    std::printf("running the naive ITK pipeline %u times ...\n", rounds);
    std::fflush(stdout);
    Timing itk_timing;
    std::vector<ItkPipelineResult> itk_runs;
    for (unsigned r = 0; r < rounds; ++r) {
        const bool last = r + 1 == rounds;
        itk_runs.push_back(run_itk_pipeline(
            volume, last && otsu_labels ? &*otsu_labels : static_cast<const LabelMap*>(nullptr)));
        itk_timing.seconds.push_back(itk_runs.back().seconds);
    }
    const ItkPipelineResult& itk = itk_runs.back();
    const double itk_median = itk_timing.median();
    const auto otsu_threshold = algorithms::compute_otsu(volume, 128, 1).threshold;

    // ---------------------------------------------------------------- report
    std::printf("\nvolume: %zu x %zu x %zu int16 = %.1f MiB (%.0f bytes); %u rounds per line; "
                "threads: loader %s, algorithms %s, ITK %u; load average now %s\n",
                dims[0], dims[1], dims[2], mib(volume_bytes), volume_bytes, rounds,
                options.threads == 0 ? "default" : std::to_string(options.threads).c_str(),
                options.threads == 0 ? "default" : std::to_string(options.threads).c_str(),
                itk_threads(), load_average().c_str());
    std::printf("\n%-34s %9s %9s %12s %12s\n", "step", "best s", "median s", "vs ITK", "voxels");
    std::printf("%-34s %9.3f %9.3f %12s %12s\n", "load_series_dir", load_timing.best(),
                load_timing.median(), "", "");
    bool speed_ok = true;
    std::string slowest;
    double slowest_speedup = 0.0;
    for (const auto& row : rows) {
        const double speedup = itk_median / row.timing.median();
        if (slowest.empty() || speedup < slowest_speedup) {
            slowest = row.name;
            slowest_speedup = speedup;
        }
        speed_ok = speed_ok && speedup >= min_speedup;
        std::printf("%-34s %9.3f %9.3f %11.1fx %12llu\n", row.name.c_str(), row.timing.best(),
                    row.timing.median(), speedup, static_cast<unsigned long long>(row.voxels));
    }
    std::printf("%-34s %9.3f %9.3f %12s %12llu\n", "naive ITK pipeline", itk_timing.best(),
                itk_median, "1.0x", static_cast<unsigned long long>(itk.result_voxels));
    for (std::size_t s = 0; s < itk.stages.size(); ++s) {
        Timing stage;
        for (const auto& run : itk_runs) {
            stage.seconds.push_back(run.stages[s].seconds);
        }
        std::printf("  %-32s %9.3f %9.3f\n", itk.stages[s].name.c_str(), stage.best(),
                    stage.median());
    }
    std::printf("(vs ITK = ITK median / median; ITK voxels = the final mask)\n");
    std::printf("ITK Otsu threshold %d HU, %llu foreground voxels, %llu components; segnode otsu "
                "threshold %d HU: masks %s (%llu voxels differ)\n",
                static_cast<int>(itk.otsu_threshold),
                static_cast<unsigned long long>(itk.otsu_voxels),
                static_cast<unsigned long long>(itk.components), static_cast<int>(otsu_threshold),
                itk.otsu_mismatches == 0 && otsu_labels ? "identical" : "DIFFERENT",
                static_cast<unsigned long long>(itk.otsu_mismatches));

    Timing probe_total;
    Timing probe_load;
    Timing probe_otsu;
    std::uint64_t peak_kib = 0;
    std::uint64_t peak_hwm_kib = 0;
    std::uint64_t start_kib = 0;
    for (const auto& p : probes) {
        probe_total.seconds.push_back(p.load_s + p.otsu_s);
        probe_load.seconds.push_back(p.load_s);
        probe_otsu.seconds.push_back(p.otsu_s);
        peak_kib = std::max(peak_kib, p.maxrss_kib);
        peak_hwm_kib = std::max(peak_hwm_kib, p.hwm_kib);
        start_kib = std::max(start_kib, p.start_rss_kib);
    }
    const double peak_bytes = static_cast<double>(peak_kib) * 1024.0;
    const double rss_ratio = peak_bytes / volume_bytes;
    std::printf("\nload + otsu in a fresh process (%u processes):\n", rounds);
    std::printf("  %-32s %9.3f %9.3f\n", "load", probe_load.best(), probe_load.median());
    std::printf("  %-32s %9.3f %9.3f\n", "otsu", probe_otsu.best(), probe_otsu.median());
    std::printf("  %-32s %9.3f %9.3f\n", "load + otsu", probe_total.best(), probe_total.median());
    std::printf("  peak RSS (ru_maxrss, largest) %.1f MiB = %.2f x the int16 volume "
                "(VmHWM %.1f MiB; RSS at process start %.1f MiB)\n",
                static_cast<double>(peak_kib) / 1024.0, rss_ratio,
                static_cast<double>(peak_hwm_kib) / 1024.0,
                static_cast<double>(start_kib) / 1024.0);

    const bool time_ok = probe_total.median() <= max_load_otsu_s;
    const bool rss_ok = rss_ratio <= max_rss_ratio;
    std::printf("\ntargets:\n");
    std::printf("  %-44s %s (slowest: %s, %.1fx)\n", "each built-in >= 5x faster than naive ITK",
                pass_fail(speed_ok).c_str(), slowest.c_str(), slowest_speedup);
    for (const auto& row : rows) {
        const double speedup = itk_median / row.timing.median();
        std::printf("    %-42s %s (%.1fx)\n", row.name.c_str(),
                    pass_fail(speedup >= min_speedup).c_str(), speedup);
    }
    std::printf("  %-44s %s (median %.3f s, best %.3f s)\n", "load + otsu <= 1.0 s (fresh process)",
                pass_fail(time_ok).c_str(), probe_total.median(), probe_total.best());
    std::printf("  %-44s %s (%.2fx)\n", "peak RSS of load + otsu <= 3x int16 volume",
                pass_fail(rss_ok).c_str(), rss_ratio);
    return speed_ok && time_ok && rss_ok ? 0 : 3;
}

} // namespace

} // namespace segnode::bench

int main(int argc, char** argv) {
    const auto options = segnode::bench::parse_options(argc, argv);
    if (!options) {
        std::fputs(segnode::bench::usage, stderr);
        return 2;
    }
    return options->probe ? segnode::bench::probe_main(*options)
                          : segnode::bench::bench_main(*options);
}
