#include "segnode/pipeline/external_algorithm.hpp"

#include "segnode/dicom/derived_inspect.hpp"
#include "segnode/imageio/image_io.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <spdlog/spdlog.h>
#include <unistd.h>

namespace segnode::pipeline {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// Where the files of one run live, per layout.
struct RunPaths {
    fs::path work_dir;
    fs::path in_dir;
    fs::path out_dir;
    fs::path input;  ///< the image file, or in_dir for input_format "dicom"
    fs::path output; ///< the expected label map ("" for per_segment / dicom)
    fs::path settings_file;
    fs::path task_file;
};

std::string extension_of(const std::string& input_format) {
    if (input_format == "nrrd") {
        return ".nrrd";
    }
    return input_format == "nifti" ? ".nii" : ".nii.gz";
}

RunPaths plan_paths(const ExternalAlgorithmConfig& config, const fs::path& work_dir,
                    const std::string& series_uid) {
    RunPaths p;
    p.work_dir = work_dir;
    if (config.layout == "kaapana") {
        // $WORKFLOW_DIR/$BATCH_NAME/<series>/$OPERATOR_IN_DIR, as Kaapana's operators expect.
        const fs::path element = work_dir / "batch" / series_uid;
        p.in_dir = element / "in";
        p.out_dir = element / "out";
    } else {
        p.in_dir = work_dir / "in";
        p.out_dir = work_dir / "out";
    }
    if (config.input_format == "dicom") {
        p.input = p.in_dir;
    } else if (config.layout == "nnunet") {
        p.input = p.in_dir / "case_0000.nii.gz";
    } else if (config.layout == "kaapana") {
        p.input = p.in_dir / (series_uid + extension_of(config.input_format));
    } else {
        p.input = p.in_dir / ("image" + extension_of(config.input_format));
    }
    if (config.output_kind == "labelmap") {
        p.output = p.out_dir / config.output;
    }
    p.settings_file = work_dir / "settings.json";
    p.task_file = work_dir / "task.json";
    return p;
}

json setting_json(const algorithms::SettingValue& value) {
    return std::visit([](const auto& v) { return json(v); }, value);
}

json geometry_json(const Geometry& g) {
    return json{{"dims", g.dims},
                {"spacing_mm", g.spacing},
                {"origin_lps_mm", g.origin},
                {"direction", g.direction}};
}

Status write_text(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) {
        return Error{"cannot write " + path.string()};
    }
    return ok_status();
}

/// Hard links (same file system as the store) or copies the source files into `dir`.
Status stage_dicom(const std::vector<fs::path>& files, const std::vector<std::string>& sops,
                   const fs::path& dir) {
    std::set<fs::path> done;
    for (std::size_t i = 0; i < files.size(); ++i) {
        if (!done.insert(files[i]).second) {
            continue; // several frames of one multi-frame file
        }
        const fs::path target = dir / ((i < sops.size() ? sops[i] : std::to_string(i)) + ".dcm");
        std::error_code ec;
        fs::create_hard_link(files[i], target, ec);
        if (ec) {
            fs::copy_file(files[i], target, fs::copy_options::overwrite_existing, ec);
        }
        if (ec) {
            return Error{"cannot stage " + files[i].string() + " into " + dir.string() + ": " +
                         ec.message()};
        }
    }
    return ok_status();
}

std::string upper(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
    return s;
}

std::string getenv_or(const char* name, const std::string& fallback) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

/// Replaces {placeholders}; {{ and }} are literal braces. Unknown names were refused by the
/// config check, so they cannot occur here.
std::string expand(const std::string& arg, const std::map<std::string, std::string>& values) {
    std::string out;
    for (std::size_t i = 0; i < arg.size(); ++i) {
        const char ch = arg[i];
        if ((ch == '{' || ch == '}') && i + 1 < arg.size() && arg[i + 1] == ch) {
            out += ch;
            ++i;
            continue;
        }
        if (ch == '{') {
            const std::size_t end = arg.find('}', i);
            const std::string name = arg.substr(i + 1, end - i - 1);
            const auto it = values.find(name);
            out += it != values.end() ? it->second : std::string();
            i = end;
            continue;
        }
        out += ch;
    }
    return out;
}

/// True when the file has the "DICM" prefix of a DICOM file (PS3.10) after its preamble.
bool has_dicom_preamble(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::array<char, 132> head{};
    in.read(head.data(), head.size());
    return in.gcount() == 132 && std::string_view(head.data() + 128, 4) == "DICM";
}

/// The one file matching a name with at most one '*' in its last component.
Result<fs::path> resolve_output(const fs::path& pattern) {
    const std::string name = pattern.filename().string();
    const std::size_t star = name.find('*');
    if (star == std::string::npos) {
        std::error_code ec;
        if (!fs::is_regular_file(pattern, ec)) {
            return Error{"no output: the program exited 0 but did not write " + pattern.string()};
        }
        return pattern;
    }
    const std::string head = name.substr(0, star);
    const std::string tail = name.substr(star + 1);
    std::vector<fs::path> matches;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(pattern.parent_path(), ec)) {
        const std::string n = entry.path().filename().string();
        if (entry.is_regular_file(ec) && n.size() >= head.size() + tail.size() &&
            n.starts_with(head) && n.ends_with(tail)) {
            matches.push_back(entry.path());
        }
    }
    if (matches.empty()) {
        return Error{"no output: the program exited 0 but wrote no file matching " +
                     pattern.string()};
    }
    if (matches.size() > 1) {
        return Error{"output: " + std::to_string(matches.size()) + " files match " +
                     pattern.string() + "; expected one"};
    }
    return matches.front();
}

/// A label file read back onto the source grid (resampled when allowed).
Result<LabelMap> read_on_grid(const fs::path& file, const Geometry& source,
                              const ExternalAlgorithmConfig& config,
                              std::vector<std::string>& notes) {
    auto read = imageio::read_label_map(file);
    if (!read) {
        return read.error();
    }
    if (auto mismatch = imageio::geometry_mismatch(source, read->geometry, 0.01)) {
        if (!config.resample) {
            return Error{file.filename().string() +
                         ": the label map's grid differs from the source series (" + *mismatch +
                         "); set resample = true to resample it nearest-neighbour"};
        }
        notes.push_back("resampled " + file.filename().string() + " (" +
                        imageio::describe(read->geometry) + ") onto the source grid (" +
                        imageio::describe(source) + ")");
        WideLabelMap wide{read->geometry,
                          Buffer<std::uint16_t>(read->voxels.begin(), read->voxels.end())};
        const WideLabelMap resampled = imageio::resample_nearest(wide, source);
        LabelMap out{source, Buffer<std::uint8_t>(resampled.voxels.size())};
        std::transform(resampled.voxels.begin(), resampled.voxels.end(), out.voxels.begin(),
                       [](std::uint16_t v) { return static_cast<std::uint8_t>(v); });
        return out;
    }
    read->geometry = source; // within tolerance: take the source's exact geometry
    return std::move(*read);
}

/// Checks that only declared labels occur; with undeclared_labels = "ignore" the others are
/// set to background (in place).
Status check_labels(LabelMap& labels, const std::vector<SegmentInfo>& segments,
                    const ExternalAlgorithmConfig& config, std::vector<std::string>& notes) {
    std::array<bool, 256> declared{};
    for (const SegmentInfo& s : segments) {
        declared[s.label] = true;
    }
    std::array<std::uint64_t, 256> count{};
    for (const std::uint8_t v : labels.voxels) {
        ++count[v];
    }
    std::string undeclared;
    std::size_t n_undeclared = 0;
    for (std::size_t l = 1; l < count.size(); ++l) {
        if (count[l] != 0 && !declared[l]) {
            if (n_undeclared < 20) {
                undeclared += (undeclared.empty() ? "" : ", ") + std::to_string(l) + " (" +
                              std::to_string(count[l]) + " voxels)";
            }
            ++n_undeclared;
        }
    }
    if (n_undeclared > 20) {
        undeclared += ", ... (" + std::to_string(n_undeclared) + " labels in all)";
    }
    if (n_undeclared == 0) {
        return ok_status();
    }
    if (config.undeclared_labels != "ignore") {
        return Error{"the label map holds labels the algorithm does not declare: " + undeclared +
                     " (declare them, or set undeclared_labels = \"ignore\")"};
    }
    notes.push_back("ignored undeclared labels: " + undeclared);
    for (std::uint8_t& v : labels.voxels) {
        v = declared[v] ? v : std::uint8_t{0};
    }
    return ok_status();
}

} // namespace

std::string program_path(const ExternalAlgorithmConfig& config) {
    for (const auto& [name, value] : config.env) {
        if (name == "PATH") {
            return value;
        }
    }
    return getenv_or("PATH", "/usr/local/bin:/usr/bin:/bin");
}

void remove_work_dir(const fs::path& work_dir) {
    std::error_code ec;
    fs::remove_all(work_dir, ec);
    if (ec) {
        spdlog::warn("cannot remove {}: {}", work_dir.string(), ec.message());
    }
}

ExternalAlgorithm::ExternalAlgorithm(algorithms::AlgorithmInfo info, ExternalAlgorithmConfig config)
    : Algorithm(std::move(info)), m_config(std::move(config)) {}

Result<LabelMap> ExternalAlgorithm::execute(const CtVolume& volume,
                                            const algorithms::Settings& settings,
                                            const algorithms::RunContext& context) const {
    if (m_config.input_format == "dicom" || writes_dicom()) {
        return Error{name() + " reads or writes DICOM files: run it on a series (a job or "
                              "`segnode run`), not on a bare volume"};
    }
    std::string pattern = (fs::temp_directory_path() / "segnode-run-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        return Error{"cannot create a temporary directory: " + std::string(std::strerror(errno))};
    }
    const fs::path work_dir(pattern);
    dicom::LoadedSeries source;
    source.volume = volume;
    source.series_uid = "unknown";
    auto outcome = run_external(source, ExternalTask{}, settings, work_dir, context);
    remove_work_dir(work_dir);
    if (!outcome) {
        return outcome.error();
    }
    return std::move(*outcome->labels);
}

Result<ExternalOutcome>
ExternalAlgorithm::run_external(const dicom::LoadedSeries& source, const ExternalTask& task,
                                const algorithms::Settings& settings, const fs::path& work_dir_arg,
                                const algorithms::RunContext& context) const {
    // Absolute paths in the environment, task.json and placeholders: the program may change
    // directory, and the node recognises what its programs left behind by SEGNODE_WORK_DIR.
    std::error_code abs_ec;
    const fs::path absolute = fs::absolute(work_dir_arg, abs_ec);
    const fs::path work_dir = abs_ec ? work_dir_arg : absolute.lexically_normal();
    const auto log = [&context](const std::string& line) {
        if (context.log) {
            context.log(line);
        }
    };
    const RunPaths paths = plan_paths(m_config, work_dir, source.series_uid);
    std::error_code ec;
    fs::remove_all(work_dir, ec);
    for (const fs::path& dir : {paths.in_dir, paths.out_dir}) {
        fs::create_directories(dir, ec);
        if (ec) {
            return Error{"cannot create " + dir.string() + ": " + ec.message()};
        }
    }

    // settings.json and task.json.
    json settings_doc = json::object();
    for (const auto& [key, value] : settings.values()) {
        settings_doc[key] = setting_json(value);
    }
    json task_doc{{"job_id", task.job_id},
                  {"algorithm", {{"name", name()}, {"version", info().version}}},
                  {"study_instance_uid", source.study_uid},
                  {"series_instance_uid", source.series_uid},
                  {"frame_of_reference_uid", source.frame_of_reference_uid},
                  {"modality", source.modality},
                  {"sop_class_uid", source.sop_class_uid},
                  {"series_description", task.series_description},
                  {"calling_ae", task.calling_ae},
                  {"instances", source.sop_instance_uids.size()},
                  {"geometry", geometry_json(source.volume.geometry)},
                  {"input", paths.input.string()},
                  {"input_format", m_config.input_format},
                  {"output", paths.output.string()},
                  {"out_dir", paths.out_dir.string()},
                  {"settings", settings_doc}};
    if (auto st = write_text(paths.settings_file, settings_doc.dump(2) + "\n"); !st) {
        return st.error();
    }
    if (auto st = write_text(paths.task_file, task_doc.dump(2) + "\n"); !st) {
        return st.error();
    }
    if (m_config.layout == "mercure") {
        // mercure modules read task.json from their input folder: id, info, process.settings.
        json mercure_task{
            {"id", "segnode-" + std::to_string(task.job_id)},
            {"info",
             {{"uid", source.series_uid}, {"uid_type", "series"}, {"mercure_version", "segnode"}}},
            {"process", {{"module_name", name()}, {"settings", settings_doc}}},
            {"study", {{"study_uid", source.study_uid}}}};
        if (auto st = write_text(paths.in_dir / "task.json", mercure_task.dump(2) + "\n"); !st) {
            return st.error();
        }
    }

    // The input.
    const auto write_start = std::chrono::steady_clock::now();
    if (m_config.input_format == "dicom") {
        if (source.files.empty()) {
            return Error{name() + " reads DICOM files, but the series has none on disk"};
        }
        if (auto st = stage_dicom(source.files, source.sop_instance_uids, paths.in_dir); !st) {
            return st.error();
        }
    } else if (auto st = imageio::write_volume(source.volume, paths.input,
                                               "segnode input " + source.series_uid);
               !st) {
        return st.error();
    }
    log(fmt::format(
        "input {} written in {:.2f} s", paths.input.string(),
        std::chrono::duration<double>(std::chrono::steady_clock::now() - write_start).count()));
    if (context.stop.stop_requested()) {
        return Error{"cancelled"};
    }

    // Command and environment.
    std::map<std::string, std::string> values{
        {"input", paths.input.string()},    {"in_dir", paths.in_dir.string()},
        {"output", paths.output.string()},  {"out_dir", paths.out_dir.string()},
        {"work_dir", work_dir.string()},    {"settings", paths.settings_file.string()},
        {"task", paths.task_file.string()}, {"job_id", std::to_string(task.job_id)}};
    for (const auto& [key, value] : settings.values()) {
        values["setting." + key] = algorithms::format_setting_value(value);
    }
    ProcessSpec spec;
    for (const std::string& arg : m_config.command) {
        spec.argv.push_back(expand(arg, values));
    }
    std::map<std::string, std::string> env;
    env["PATH"] = getenv_or("PATH", "/usr/local/bin:/usr/bin:/bin");
    env["HOME"] = getenv_or("HOME", work_dir.string());
    env["LANG"] = getenv_or("LANG", "C.UTF-8");
    if (const char* cuda = std::getenv("CUDA_VISIBLE_DEVICES")) {
        env["CUDA_VISIBLE_DEVICES"] = cuda;
    }
    for (const auto& [k, v] : m_config.env) {
        env[k] = v;
    }
    env["SEGNODE_IN_DIR"] = paths.in_dir.string();
    env["SEGNODE_OUT_DIR"] = paths.out_dir.string();
    env["SEGNODE_INPUT"] = paths.input.string();
    env["SEGNODE_OUTPUT"] = paths.output.string();
    env["SEGNODE_WORK_DIR"] = work_dir.string();
    env["SEGNODE_SETTINGS"] = paths.settings_file.string();
    env["SEGNODE_TASK"] = paths.task_file.string();
    env["SEGNODE_JOB_ID"] = std::to_string(task.job_id);
    for (const auto& [key, value] : settings.values()) {
        env["SEGNODE_SETTING_" + upper(key)] = algorithms::format_setting_value(value);
    }
    if (m_config.layout == "kaapana") {
        env["WORKFLOW_DIR"] = work_dir.string();
        env["BATCH_NAME"] = "batch";
        env["OPERATOR_IN_DIR"] = "in";
        env["OPERATOR_OUT_DIR"] = "out";
        env["RUN_ID"] = "segnode-" + std::to_string(task.job_id);
    } else if (m_config.layout == "mercure") {
        env["MERCURE_IN_DIR"] = paths.in_dir.string();
        env["MERCURE_OUT_DIR"] = paths.out_dir.string();
    }
    spec.env.assign(env.begin(), env.end());
    spec.cwd = work_dir;
    spec.timeout = std::chrono::seconds(m_config.timeout_s);
    spec.memory_limit_bytes = static_cast<std::uint64_t>(m_config.memory_mb) * 1024 * 1024;
    spec.kill_grace = std::chrono::seconds(m_config.kill_grace_s);
    spec.on_output = [&log](std::string_view line, bool from_stderr) {
        log(std::string(from_stderr ? "stderr: " : "stdout: ") + std::string(line));
    };

    std::string command_text;
    for (const std::string& arg : spec.argv) {
        command_text += (command_text.empty() ? "" : " ") + arg;
    }
    log("exec " + command_text);
    ExternalOutcome outcome;
    outcome.process = run_process(spec, context.stop);
    const ProcessResult& proc = outcome.process;
    log(fmt::format("{} {} after {:.2f} s (peak RSS {} MB, {} bytes stdout, {} bytes stderr)",
                    name(), proc.describe(), proc.seconds, proc.peak_rss_bytes / (1024 * 1024),
                    proc.stdout_bytes, proc.stderr_bytes));
    if (proc.end == ProcessEnd::Stopped || context.stop.stop_requested()) {
        return Error{"cancelled"};
    }
    if (!proc.success()) {
        std::string message = name() + " " + proc.describe();
        if (proc.end == ProcessEnd::TimedOut) {
            message += " (timeout_s = " + std::to_string(m_config.timeout_s) + ")";
        } else if (proc.end == ProcessEnd::MemoryExceeded) {
            message += " (memory_mb = " + std::to_string(m_config.memory_mb) + ")";
        }
        const std::string tail = proc.last_lines(5);
        if (!tail.empty()) {
            message += "; last output:\n" + tail;
        }
        return Error{message};
    }

    // Reading back.
    const auto read_start = std::chrono::steady_clock::now();
    const Geometry& grid = source.volume.geometry;
    if (m_config.output_kind == "dicom") {
        std::vector<fs::path> files;
        for (auto it = fs::recursive_directory_iterator(paths.out_dir, ec);
             !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
            if (it->is_regular_file(ec)) {
                files.push_back(it->path());
            }
        }
        std::sort(files.begin(), files.end());
        for (const fs::path& file : files) {
            if (!has_dicom_preamble(file)) {
                // Programs leave logs, JSON and the like beside their objects.
                outcome.notes.push_back("ignored " +
                                        file.lexically_relative(paths.out_dir).string() +
                                        " (not a DICOM file)");
                continue;
            }
            auto inspected = dicom::inspect_derived_object(file);
            if (!inspected) {
                return Error{"output " + file.filename().string() + ": " +
                             inspected.error().message};
            }
            if (auto problem =
                    dicom::check_references_source(*inspected, source.study_uid, source.series_uid,
                                                   source.frame_of_reference_uid)) {
                return Error{"output " + file.filename().string() + ": " + *problem};
            }
            outcome.dicom_objects.push_back(file);
        }
        if (outcome.dicom_objects.empty()) {
            return Error{"no output: the program exited 0 but wrote no DICOM object under " +
                         paths.out_dir.string()};
        }
        return outcome;
    }

    if (m_config.output_kind == "per_segment") {
        LabelMap combined = make_volume<std::uint8_t>(grid, 0);
        std::uint64_t overlaps = 0;
        for (std::size_t s = 0; s < m_config.segments.size(); ++s) {
            const ExternalSegmentConfig& seg = m_config.segments[s];
            const fs::path file = paths.out_dir / seg.file;
            std::error_code fe;
            if (!fs::is_regular_file(file, fe)) {
                return Error{"no output: the program exited 0 but did not write " + file.string() +
                             " (segment " + seg.name + ")"};
            }
            auto mask = read_on_grid(file, grid, m_config, outcome.notes);
            if (!mask) {
                return mask.error();
            }
            for (std::size_t i = 0; i < mask->voxels.size(); ++i) {
                if (mask->voxels[i] != 0) {
                    overlaps += combined.voxels[i] != 0 ? 1U : 0U;
                    combined.voxels[i] = static_cast<std::uint8_t>(seg.label);
                }
            }
            if (context.stop.stop_requested()) {
                return Error{"cancelled"};
            }
        }
        if (overlaps > 0) {
            outcome.notes.push_back(std::to_string(overlaps) +
                                    " voxels belong to several segment masks; the later segment "
                                    "in declaration order keeps them");
        }
        if (auto st = check_labels(combined, info().segments, m_config, outcome.notes); !st) {
            return st.error();
        }
        outcome.labels = std::move(combined);
    } else {
        auto file = resolve_output(paths.output);
        if (!file) {
            return file.error();
        }
        auto labels = read_on_grid(*file, grid, m_config, outcome.notes);
        if (!labels) {
            return labels.error();
        }
        if (auto st = check_labels(*labels, info().segments, m_config, outcome.notes); !st) {
            return st.error();
        }
        outcome.labels = std::move(*labels);
    }
    const bool empty = std::all_of(outcome.labels->voxels.begin(), outcome.labels->voxels.end(),
                                   [](std::uint8_t v) { return v == 0; });
    if (empty) {
        outcome.notes.push_back("empty result: no declared segment is present in the label map");
    }
    log(fmt::format(
        "output read and checked in {:.2f} s",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - read_start).count()));
    return outcome;
}

} // namespace segnode::pipeline
