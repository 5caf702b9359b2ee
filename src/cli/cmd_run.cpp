// `segnode run`: one offline segmentation, series directory in, label map + segments.json out.
//
// Exit status: 0 done; 1 the series could not be loaded, the algorithm failed or the outputs
// could not be written; 2 a usage error (unknown algorithm, bad --set, bad option).
#include "cli_common.hpp"
#include "segnode/algorithms/label_io.hpp"
#include "segnode/algorithms/registry.hpp"
#include "segnode/dicom/rtstruct_writer.hpp"
#include "segnode/dicom/seg_writer.hpp"
#include "segnode/dicom/series_loader.hpp"
#include "segnode/imageio/image_io.hpp"
#include "segnode/pipeline/external_algorithm.hpp"

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <sys/ioctl.h>
#include <unistd.h>
#include <vector>

namespace segnode::cli {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// ------------------------------------------------------------------ progress on stderr

/// One updating status line on stderr when it is a terminal; silent otherwise (messages from
/// the algorithm are printed as plain lines either way). Safe to call from several threads.
class Progress {
public:
    Progress() : m_tty(::isatty(::fileno(stderr)) == 1) {}
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;
    Progress(Progress&&) = delete;
    Progress& operator=(Progress&&) = delete;
    ~Progress() { clear(); }

    /// Replaces the status line.
    void status(std::string text) {
        const std::lock_guard lock(m_mutex);
        m_text = std::move(text);
        draw();
    }

    /// Loading progress, redrawn at most every 50 ms (and at the end).
    void files(std::size_t done, std::size_t total) {
        if (!m_tty) {
            return;
        }
        const std::lock_guard lock(m_mutex);
        const auto now = Clock::now();
        if (done < total && now - m_last_draw < std::chrono::milliseconds(50)) {
            return;
        }
        m_text = "loading " + std::to_string(done) + "/" + std::to_string(total) + " files";
        draw();
    }

    /// A line that stays: printed above the status line.
    void message(std::string_view line) {
        const std::lock_guard lock(m_mutex);
        erase();
        std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
        draw();
    }

    /// Removes the status line (before the summary or an error).
    void clear() {
        const std::lock_guard lock(m_mutex);
        erase();
        m_text.clear();
    }

private:
    void draw() {
        if (!m_tty || m_text.empty()) {
            return;
        }
        std::string line = "segnode run: " + m_text;
        if (line.size() >= width()) {
            line.resize(width() - 1); // a wrapped line could not be redrawn with \r
        }
        std::fprintf(stderr, "\r\033[K%s", line.c_str());
        std::fflush(stderr);
        m_drawn = true;
        m_last_draw = Clock::now();
    }
    void erase() {
        if (m_tty && m_drawn) {
            std::fputs("\r\033[K", stderr);
            std::fflush(stderr);
            m_drawn = false;
        }
    }
    [[nodiscard]] static std::size_t width() {
        winsize size{};
        if (::ioctl(::fileno(stderr), TIOCGWINSZ, &size) == 0 && size.ws_col > 10) {
            return size.ws_col;
        }
        return 80;
    }

    std::mutex m_mutex;
    bool m_tty = false;
    bool m_drawn = false;
    std::string m_text;
    Clock::time_point m_last_draw{};
};

// ------------------------------------------------------------------ output formats

/// What an output format gets to write from.
struct OutputRequest {
    const dicom::LoadedSeries& series;
    const LabelMap& labels;
    const algorithms::AlgorithmInfo& algorithm;
    const algorithms::Settings& settings;
    fs::path output_dir;
    std::string uid_root;       ///< output.uid_root of the config
    unsigned series_number = 0; ///< output.series_number of the config
};

/// Writes its files into the output directory and returns them, or an error.
using WriteOutput = std::function<Result<std::vector<fs::path>>(const OutputRequest&)>;

struct OutputFormat {
    std::string name;
    std::string help;
    WriteOutput write;
    /// The label map file segments.json describes; none for the DICOM formats.
    std::optional<imageio::ImageFormat> label_format;
};

/// "labels.nii", "labels.nii.gz" or "labels.nrrd".
std::string label_file_name(imageio::ImageFormat format) {
    return "labels" + std::string(imageio::extension(format));
}

WriteOutput label_file_writer(imageio::ImageFormat format) {
    return [format](const OutputRequest& request) -> Result<std::vector<fs::path>> {
        const fs::path path = request.output_dir / label_file_name(format);
        const std::string description =
            "segnode " + request.algorithm.name + " " + request.algorithm.version;
        if (auto st = imageio::write_labels(request.labels, path, description); !st) {
            return st.error();
        }
        return std::vector<fs::path>{path};
    };
}

/// Writes DICOM SEG and/or RTSTRUCT (seg.dcm, rtstruct.dcm) derived from the source series.
WriteOutput dicom_writer(bool seg, bool rtstruct) {
    return [seg, rtstruct](const OutputRequest& request) -> Result<std::vector<fs::path>> {
        dicom::DerivedObjectOptions options;
        options.uid_root = request.uid_root;
        options.series_number = static_cast<int>(request.series_number);
        options.algorithm_name = request.algorithm.name;
        options.algorithm_version = request.algorithm.version;
        std::vector<fs::path> files;
        if (seg) {
            auto written =
                dicom::write_seg(request.series, request.labels, request.algorithm.segments,
                                 options, request.output_dir / "seg.dcm");
            if (!written) {
                return Error{"SEG: " + written.error().message};
            }
            files.push_back(written->file);
        }
        if (rtstruct) {
            options.series_number += seg ? 1 : 0;
            auto written =
                dicom::write_rtstruct(request.series, request.labels, request.algorithm.segments,
                                      options, request.output_dir / "rtstruct.dcm");
            if (!written) {
                return Error{"RTSTRUCT: " + written.error().message};
            }
            files.push_back(written->file);
        }
        return files;
    };
}

/// The values --format accepts, in the order the help lists them.
const std::vector<OutputFormat>& output_formats() {
    using imageio::ImageFormat;
    static const std::vector<OutputFormat> formats{
        {"nifti", "labels.nii (NIfTI-1, RAS)", label_file_writer(ImageFormat::Nifti),
         ImageFormat::Nifti},
        {"nifti_gz", "labels.nii.gz (NIfTI-1, RAS, gzip)", label_file_writer(ImageFormat::NiftiGz),
         ImageFormat::NiftiGz},
        {"nrrd", "labels.nrrd (NRRD, LPS)", label_file_writer(ImageFormat::Nrrd),
         ImageFormat::Nrrd},
        {"seg", "seg.dcm (DICOM SEG)", dicom_writer(true, false), std::nullopt},
        {"rtstruct", "rtstruct.dcm (DICOM RTSTRUCT)", dicom_writer(false, true), std::nullopt},
        {"both", "seg.dcm and rtstruct.dcm", dicom_writer(true, true), std::nullopt},
    };
    return formats;
}

const OutputFormat& find_output_format(const std::string& name) {
    for (const auto& format : output_formats()) {
        if (format.name == name) {
            return format;
        }
    }
    return output_formats().front(); // unreachable: CLI11 checked the name
}

std::vector<std::string> output_format_names() {
    std::vector<std::string> names;
    for (const auto& format : output_formats()) {
        names.push_back(format.name);
    }
    return names;
}

// ------------------------------------------------------------------ the command

struct RunOptions {
    std::string algorithm;
    std::vector<std::string> assignments;
    std::string input;
    std::string output;
    std::string format = "nifti";
    unsigned threads = 0;
};

std::string summary_line(const algorithms::AlgorithmInfo& info,
                         const std::vector<algorithms::SegmentStats>& stats, double load_s,
                         double run_s, double write_s, double total_s) {
    std::string segments;
    for (const auto& s : stats) {
        std::array<char, 64> volume{};
        std::snprintf(volume.data(), volume.size(), "%.2f", s.volume_ml);
        segments += (segments.empty() ? "" : "; ") + s.segment.name + " " +
                    std::to_string(s.voxels) + " voxels " + volume.data() + " ml";
    }
    std::array<char, 160> timing{};
    std::snprintf(timing.data(), timing.size(),
                  "load %.2f s, run %.2f s, write %.2f s, total %.2f s", load_s, run_s, write_s,
                  total_s);
    return info.name + " " + info.version + ": " + segments + " | " + timing.data();
}

int run_command(const RunOptions& options, const Config& config) {
    const auto start = Clock::now();
    const OutputConfig& output_config = config.output;

    // Usage: algorithm and settings are checked before anything is read.
    const auto registry = resolve_registry(config);
    if (!registry) {
        return 2;
    }
    const auto found = registry->get(options.algorithm);
    if (!found) {
        std::cerr << "run: " << found.error().message << "\n";
        return 2;
    }
    const algorithms::Algorithm& algorithm = **found;
    auto raw = algorithms::parse_assignments(options.assignments);
    if (!raw) {
        std::cerr << "run: --set: " << raw.error().message << "\n";
        return 2;
    }
    auto settings = algorithm.parse_settings(*raw);
    if (!settings) {
        std::cerr << "run: " << settings.error().message << "\n";
        return 2;
    }
    const OutputFormat& format = find_output_format(options.format);

    const fs::path output_dir(options.output);
    std::error_code ec;
    const bool created = fs::create_directories(output_dir, ec);
    if (ec || !fs::is_directory(output_dir)) {
        std::cerr << "run: cannot create the output directory " << output_dir.string() << ": "
                  << (ec ? ec.message() : "a file of that name exists") << "\n";
        return 1;
    }

    // A directory this run created is removed again if the run fails before writing.
    const auto remove_created = [&output_dir, created] {
        if (created) {
            std::error_code ignored;
            fs::remove(output_dir, ignored); // only if still empty
        }
    };
    Progress progress;

    // Load.
    progress.status("loading " + options.input);
    dicom::LoadOptions load_options;
    load_options.threads = options.threads;
    load_options.progress = [&progress](std::size_t done, std::size_t total) {
        progress.files(done, total);
    };
    const auto load_start = Clock::now();
    auto loaded = dicom::load_series_dir(options.input, load_options);
    const double load_s = seconds_since(load_start);
    if (!loaded) {
        progress.clear();
        std::cerr << "run: cannot load " << options.input << ": " << loaded.error().message << "\n";
        remove_created();
        return 1;
    }
    const dicom::LoadedSeries& series = *loaded;
    for (const auto& line : series.how_taken) {
        progress.message("run: taken: " + line);
    }
    for (const auto& warning : series.warnings) {
        progress.message("run: warning: " + warning);
    }
    const auto& dims = series.volume.geometry.dims;

    // Run.
    progress.status("running " + algorithm.name() + " on " + std::to_string(dims[0]) + " x " +
                    std::to_string(dims[1]) + " x " + std::to_string(dims[2]) + " voxels");
    algorithms::RunContext context;
    context.threads = options.threads;
    context.log = [&progress, &algorithm](std::string_view line) {
        // Built-ins already prefix some lines with their name; do not repeat it.
        const std::string prefix = algorithm.name() + ": ";
        progress.message(line.starts_with(prefix) ? std::string(line) : prefix + std::string(line));
    };
    const auto run_start = Clock::now();
    std::optional<LabelMap> labels;
    if (const auto* external = dynamic_cast<const pipeline::ExternalAlgorithm*>(&algorithm)) {
        // An external program: a fresh work dir, kept (and named) when the run fails.
        std::string pattern = (fs::temp_directory_path() / "segnode-run-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            progress.clear();
            std::cerr << "run: cannot create a temporary directory in "
                      << fs::temp_directory_path().string() << "\n";
            remove_created();
            return 1;
        }
        const fs::path work_dir(pattern);
        auto outcome =
            external->run_external(series, pipeline::ExternalTask{}, *settings, work_dir, context);
        if (!outcome) {
            progress.clear();
            std::cerr << "run: " << algorithm.name() << " failed: " << outcome.error().message
                      << "\nrun: its work directory is kept: " << work_dir.string() << "\n";
            remove_created();
            return 1;
        }
        for (const std::string& note : outcome->notes) {
            progress.message("run: " + note);
        }
        if (external->writes_dicom()) {
            // The program wrote SEG/RTSTRUCT itself (checked to reference the series).
            std::string files;
            for (const fs::path& object : outcome->dicom_objects) {
                const fs::path target = output_dir / object.filename();
                std::error_code copy_error;
                fs::copy_file(object, target, fs::copy_options::overwrite_existing, copy_error);
                if (copy_error) {
                    progress.clear();
                    std::cerr << "run: cannot copy " << object.string() << " to " << target.string()
                              << ": " << copy_error.message() << "\n";
                    return 1;
                }
                files += (files.empty() ? "" : ", ") + target.string();
            }
            pipeline::remove_work_dir(work_dir);
            progress.clear();
            std::cerr << "run: wrote " << files << "\n";
            std::cout << algorithm.name() << " " << algorithm.info().version << ": "
                      << outcome->dicom_objects.size() << " DICOM object(s) written by the "
                      << "program | total " << seconds_since(start) << " s" << std::endl;
            return 0;
        }
        if (!external->config().keep_work_dir) {
            pipeline::remove_work_dir(work_dir);
        }
        labels = std::move(outcome->labels);
    } else {
        auto result = algorithm.run(series.volume, *settings, context);
        if (!result) {
            progress.clear();
            std::cerr << "run: " << algorithm.name() << " failed: " << result.error().message
                      << "\n";
            remove_created();
            return 1;
        }
        labels = std::move(*result);
    }
    const double run_s = seconds_since(run_start);

    // Write.
    progress.status("writing " + format.name + " to " + output_dir.string());
    const auto write_start = Clock::now();
    const OutputRequest request{series,
                                *labels,
                                algorithm.info(),
                                *settings,
                                output_dir,
                                output_config.uid_root,
                                output_config.series_number};
    auto written = format.write(request);
    if (!written) {
        progress.clear();
        std::cerr << "run: " << written.error().message << "\n";
        return 1;
    }
    algorithms::SegmentsManifest manifest;
    manifest.algorithm_name = algorithm.name();
    manifest.algorithm_version = algorithm.info().version;
    manifest.settings = *settings;
    if (format.label_format) {
        manifest.label_file = label_file_name(*format.label_format);
        manifest.format = imageio::to_string(*format.label_format);
    }
    manifest.geometry = labels->geometry;
    manifest.source = {{"input", fs::absolute(options.input).lexically_normal().string()},
                       {"study_uid", series.study_uid},
                       {"series_uid", series.series_uid},
                       {"frame_of_reference_uid", series.frame_of_reference_uid},
                       {"modality", series.modality}};
    manifest.segments = algorithms::segment_stats(*labels, algorithm.info().segments);
    const fs::path manifest_path = output_dir / "segments.json";
    if (auto st = algorithms::write_segments_json(manifest, manifest_path); !st) {
        progress.clear();
        std::cerr << "run: " << st.error().message << "\n";
        return 1;
    }
    written->push_back(manifest_path);
    const double write_s = seconds_since(write_start);
    progress.clear();

    std::string files;
    for (const auto& path : *written) {
        files += (files.empty() ? "" : ", ") + path.string();
    }
    std::cerr << "run: wrote " << files << "\n";
    std::cout << summary_line(algorithm.info(), manifest.segments, load_s, run_s, write_s,
                              seconds_since(start))
              << std::endl;
    return 0;
}

} // namespace

void add_run_command(CLI::App& app, GlobalOptions& options, int& exit_code) {
    auto opts = std::make_shared<RunOptions>();
    auto* cmd = app.add_subcommand(
        "run", "Segment one series offline: a directory of DICOM files in, a label map and "
               "segments.json out");
    cmd->add_option("-a,--algorithm", opts->algorithm,
                    "Algorithm to run (see 'segnode algorithm list')")
        ->required();
    cmd->add_option("--set", opts->assignments,
                    "Algorithm setting KEY=VALUE, repeatable (see 'segnode algorithm show NAME')")
        ->type_name("KEY=VALUE")
        ->allow_extra_args(false);
    cmd->add_option("-i,--input", opts->input,
                    "Directory holding the series' DICOM files (one series; not recursive)")
        ->required()
        ->check(CLI::ExistingDirectory);
    cmd->add_option("-o,--output", opts->output, "Output directory (created if needed)")
        ->required();
    std::string format_text;
    for (const auto& format : output_formats()) {
        format_text += (format_text.empty() ? "" : ", ") + format.name + ": " + format.help;
    }
    cmd->add_option("-f,--format", opts->format, "Output format (" + format_text + ")")
        ->check(CLI::IsMember(output_format_names()))
        ->capture_default_str();
    cmd->add_option("--threads", opts->threads,
                    "Threads for loading and for the algorithm (0: one per core)")
        ->capture_default_str();
    cmd->callback([opts, &options, &exit_code] {
        // [output] (UID root, series number of SEG/RTSTRUCT) and [[algorithms]] matter here.
        auto config = resolve_config(options);
        if (!config) {
            exit_code = 2;
            return;
        }
        exit_code = run_command(*opts, *config);
    });
}

} // namespace segnode::cli
