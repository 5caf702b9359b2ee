// [[algorithms]]: external algorithms, from the config file and from the files of
// algorithms_dir (one [[algorithms]] entry per file). Shape, types and ranges are checked
// here with file:line:column; what needs the algorithm registry or the file system (name
// clashes with built-ins, the program being found and executable, segments_file contents) is
// checked above core (pipeline/algorithm_catalog.cpp).
#include "config_detail.hpp"

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>

namespace segnode::config_detail {
namespace {

namespace fs = std::filesystem;

const std::set<std::string, std::less<>>& known_placeholders() {
    static const std::set<std::string, std::less<>> names = {
        "input", "in_dir", "output", "out_dir", "work_dir", "settings", "task", "job_id"};
    return names;
}

/// Letters, digits and '_' (an environment variable or setting name).
bool is_identifier(std::string_view s) {
    if (s.empty() || std::isdigit(static_cast<unsigned char>(s.front())) != 0) {
        return false;
    }
    return std::all_of(s.begin(), s.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '_';
    });
}

std::optional<std::string> algorithm_name_problem(const std::string& name) {
    if (name.empty() || name.size() > 64) {
        return "must be 1-64 characters";
    }
    for (const char ch : name) {
        const bool ok =
            (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
        if (!ok) {
            return "'" + name + "' may contain only lower case letters, digits, '_' and '-'";
        }
    }
    return std::nullopt;
}

std::optional<std::string> read_string_array(const toml::node& node,
                                             std::vector<std::string>& out) {
    const auto* arr = node.as_array();
    if (arr == nullptr) {
        return "expected an array of strings";
    }
    out.clear();
    for (const auto& elem : *arr) {
        const auto* s = elem.as_string();
        if (s == nullptr) {
            return "expected an array of strings";
        }
        out.push_back(s->get());
    }
    return std::nullopt;
}

std::optional<std::string> read_one_of(const toml::node& node,
                                       const std::vector<std::string>& allowed, std::string& out) {
    if (auto err = read_string(node, out)) {
        return err;
    }
    if (std::find(allowed.begin(), allowed.end(), out) == allowed.end()) {
        std::string list;
        for (const auto& a : allowed) {
            list += (list.empty() ? "" : ", ") + a;
        }
        return "'" + out + "' is not one of: " + list;
    }
    return std::nullopt;
}

std::optional<std::string> read_number(const toml::node& node, double& out) {
    if (const auto* i = node.as_integer()) {
        out = static_cast<double>(i->get());
    } else if (const auto* f = node.as_floating_point()) {
        out = f->get();
    } else {
        return "expected a number";
    }
    return std::nullopt;
}

std::optional<std::string> read_code(const toml::node& node, CodeTriplet& out) {
    std::vector<std::string> parts;
    if (read_string_array(node, parts) || parts.size() != 3) {
        return R"(expected a code triplet ["scheme", "value", "meaning"], e.g. ["SCT", "10200004", "Liver"])";
    }
    for (std::size_t i = 0; i < 3; ++i) {
        if (parts[i].empty() || parts[i].size() > 64 || parts[i].find('\\') != std::string::npos) {
            static const char* what[] = {"coding scheme", "code value", "code meaning"};
            return std::string(what[i]) + " must be 1-64 characters without a backslash";
        }
        out[i] = parts[i];
    }
    return std::nullopt;
}

/// Every {placeholder} of a command argument is known ({{ and }} are literal braces).
std::optional<std::string> placeholder_problem(const std::string& arg,
                                               const std::vector<ExternalSettingConfig>& settings) {
    for (std::size_t i = 0; i < arg.size(); ++i) {
        if (arg[i] == '{') {
            if (i + 1 < arg.size() && arg[i + 1] == '{') {
                ++i;
                continue;
            }
            const std::size_t end = arg.find('}', i);
            if (end == std::string::npos) {
                return "'" + arg + "': '{' without a closing '}' (write {{ for a literal brace)";
            }
            const std::string name = arg.substr(i + 1, end - i - 1);
            if (name.rfind("setting.", 0) == 0) {
                const std::string key = name.substr(8);
                const bool declared =
                    std::any_of(settings.begin(), settings.end(),
                                [&](const ExternalSettingConfig& s) { return s.key == key; });
                if (!declared) {
                    return "'" + arg + "': {" + name + "} names no declared setting";
                }
            } else if (known_placeholders().count(name) == 0) {
                return "'" + arg + "': unknown placeholder {" + name +
                       "} (known: {input}, {in_dir}, {output}, {out_dir}, {work_dir}, "
                       "{settings}, {task}, {job_id}, {setting.NAME})";
            }
            i = end;
        } else if (arg[i] == '}') {
            if (i + 1 < arg.size() && arg[i + 1] == '}') {
                ++i;
                continue;
            }
            return "'" + arg + "': '}' without an opening '{' (write }} for a literal brace)";
        }
    }
    return std::nullopt;
}

std::optional<std::string> read_setting(const std::string& file, const std::string& prefix,
                                        const std::string& key, const toml::node& node,
                                        ExternalSettingConfig& out) {
    out.key = key;
    out.where = where(file, node.source());
    const std::string at_entry = out.where + ": " + prefix + ".settings." + key;
    if (!is_identifier(key) || std::any_of(key.begin(), key.end(), [](char ch) {
            return std::isupper(static_cast<unsigned char>(ch)) != 0;
        })) {
        return at_entry + ": setting names are lower case letters, digits and '_'";
    }
    const auto* tbl = node.as_table();
    if (tbl == nullptr) {
        return at_entry + R"(: expected a table, e.g. { type = "float", default = 1.0 })";
    }
    const toml::node* default_node = nullptr;
    for (const auto& [k, v] : *tbl) {
        const std::string field(k.str());
        const std::string at =
            where(file, v.source()) + ": " + prefix + ".settings." + key + "." + field + ": ";
        std::optional<std::string> err;
        if (field == "type") {
            err = read_one_of(v, {"int", "float", "bool", "string", "enum"}, out.type);
        } else if (field == "default") {
            default_node = &v;
            err = setting_text(v, out.default_text);
            out.has_default = true;
        } else if (field == "min" || field == "max") {
            double x = 0;
            err = read_number(v, x);
            (field == "min" ? out.min : out.max) = x;
        } else if (field == "choices") {
            err = read_string_array(v, out.choices);
            if (!err && out.choices.empty()) {
                err = "must not be empty";
            }
        } else if (field == "help") {
            err = read_string(v, out.help);
        } else {
            return where(file, k.source()) + ": " + prefix + ".settings." + key + "." + field +
                   ": unknown key (known: type, default, min, max, choices, help)";
        }
        if (err) {
            return at + *err;
        }
    }
    if (out.type.empty()) {
        return at_entry + ": 'type' is required (int, float, bool, string or enum)";
    }
    if (!out.has_default) {
        return at_entry + ": 'default' is required";
    }
    if (out.type == "enum" && out.choices.empty()) {
        return at_entry + ": an enum setting needs 'choices'";
    }
    if (out.type != "enum" && !out.choices.empty()) {
        return at_entry + ": 'choices' is only for type = \"enum\"";
    }
    if ((out.min || out.max) && out.type != "int" && out.type != "float") {
        return at_entry + ": 'min' and 'max' are only for int and float settings";
    }
    // The default's TOML type must fit the declared type (the value range is checked with the
    // rest of the schema above core).
    const bool type_ok =
        (out.type == "bool" && default_node->is_boolean()) ||
        (out.type == "int" && default_node->is_integer()) ||
        (out.type == "float" && default_node->is_number()) ||
        ((out.type == "string" || out.type == "enum") && default_node->is_string());
    if (!type_ok) {
        return where(file, default_node->source()) + ": " + prefix + ".settings." + key +
               ".default: does not match type = \"" + out.type + "\"";
    }
    return std::nullopt;
}

std::optional<std::string> read_segment(const std::string& file, const std::string& prefix,
                                        const toml::table& tbl, ExternalSegmentConfig& out) {
    out.where = where(file, tbl.source());
    bool has_label = false;
    for (const auto& [k, v] : tbl) {
        const std::string field(k.str());
        const std::string at = where(file, v.source()) + ": " + prefix + "." + field + ": ";
        std::optional<std::string> err;
        if (field == "label") {
            err = read_uint(v, 0, 65535, out.label);
            if (!err && out.label == 0) {
                err = "label 0 is the background and cannot be a segment";
            } else if (!err && out.label > 255) {
                err = "labels above 255 are not supported (1-255)";
            }
            has_label = true;
        } else if (field == "name") {
            err = read_string(v, out.name);
            if (!err && (out.name.empty() || out.name.size() > 64 ||
                         out.name.find('\\') != std::string::npos)) {
                err = "must be 1-64 characters without a backslash";
            }
        } else if (field == "category") {
            err = read_code(v, out.category);
            out.has_category = true;
        } else if (field == "type") {
            err = read_code(v, out.type);
            out.has_type = true;
        } else if (field == "color") {
            const auto* arr = v.as_array();
            if (arr == nullptr || arr->size() != 3) {
                err = "expected [r, g, b] with values 0-255";
            } else {
                for (std::size_t i = 0; i < 3 && !err; ++i) {
                    unsigned c = 0;
                    err = read_uint(*arr->get(i), 0, 255, c);
                    out.color[i] = static_cast<std::uint8_t>(c);
                }
                if (err) {
                    err = "expected [r, g, b] with values 0-255";
                }
            }
            out.has_color = true;
        } else if (field == "file") {
            err = read_string(v, out.file);
            if (!err && (out.file.empty() || fs::path(out.file).is_absolute() ||
                         out.file.find("..") != std::string::npos)) {
                err = "must be a relative path under {out_dir} without '..'";
            }
        } else {
            return where(file, k.source()) + ": " + prefix + "." + field +
                   ": unknown key (known: label, name, category, type, color, file)";
        }
        if (err) {
            return at + *err;
        }
    }
    if (!has_label || out.name.empty()) {
        return out.where + ": " + prefix + ": 'label' and 'name' are required";
    }
    return std::nullopt;
}

/// One [[algorithms]] table.
std::optional<std::string> read_algorithm(const std::string& file, const fs::path& base_dir,
                                          const std::string& prefix, const toml::table& tbl,
                                          ExternalAlgorithmConfig& algo) {
    algo.where = where(file, tbl.source());
    const toml::node* command_node = nullptr;
    for (const auto& [k, v] : tbl) {
        const std::string key(k.str());
        const std::string at = where(file, v.source()) + ": " + prefix + "." + key + ": ";
        std::optional<std::string> err;
        if (key == "name") {
            err = read_string(v, algo.name);
            if (!err) {
                err = algorithm_name_problem(algo.name);
            }
        } else if (key == "version") {
            err = read_string(v, algo.version);
            if (!err && (algo.version.empty() || algo.version.size() > 64)) {
                err = "must be 1-64 characters";
            }
        } else if (key == "description") {
            err = read_string(v, algo.description);
        } else if (key == "command") {
            command_node = &v;
            err = read_string_array(v, algo.command);
            if (!err && (algo.command.empty() || algo.command.front().empty())) {
                err = "must name a program: [\"program\", \"arg\", ...]";
            }
        } else if (key == "input_format") {
            err = read_one_of(v, {"nifti", "nifti_gz", "nrrd", "dicom"}, algo.input_format);
        } else if (key == "output") {
            err = read_string(v, algo.output);
            if (!err && (algo.output.empty() || fs::path(algo.output).is_absolute() ||
                         algo.output.find("..") != std::string::npos)) {
                err = "must be a relative path under {out_dir} without '..'";
            }
        } else if (key == "timeout_s") {
            err = read_uint(v, 1, 7 * 86400, algo.timeout_s);
        } else if (key == "memory_mb") {
            err = read_uint(v, 0, 16 * 1024 * 1024, algo.memory_mb);
        } else if (key == "kill_grace_s") {
            err = read_uint(v, 0, 600, algo.kill_grace_s);
        } else if (key == "env") {
            const auto* env = v.as_table();
            if (env == nullptr) {
                err = R"(expected a table, e.g. env = { OMP_NUM_THREADS = "2" })";
            } else {
                for (const auto& [ek, ev] : *env) {
                    const std::string name(ek.str());
                    std::string value;
                    std::optional<std::string> e;
                    if (!is_identifier(name)) {
                        e = "'" + name + "' is not an environment variable name";
                    } else if (name.rfind("SEGNODE_", 0) == 0) {
                        e = "SEGNODE_* variables are set by segnode";
                    } else {
                        e = setting_text(ev, value);
                    }
                    if (e) {
                        return where(file, ev.source()) + ": " + prefix + ".env." + name + ": " +
                               *e;
                    }
                    algo.env.emplace_back(name, value);
                }
            }
        } else if (key == "settings") {
            const auto* settings = v.as_table();
            if (settings == nullptr) {
                err = "expected tables: [algorithms.settings.NAME] with type, default, ...";
            } else {
                for (const auto& [sk, sv] : *settings) {
                    ExternalSettingConfig setting;
                    if (auto e = read_setting(file, prefix, std::string(sk.str()), sv, setting)) {
                        return e;
                    }
                    algo.settings.push_back(std::move(setting));
                }
            }
        } else if (key == "segments") {
            const auto* arr = v.as_array();
            if (arr == nullptr) {
                err = "expected an array of tables: [[algorithms.segments]]";
            } else {
                std::size_t index = 0;
                for (const auto& elem : *arr) {
                    const std::string seg_prefix =
                        prefix + ".segments[" + std::to_string(index++) + "]";
                    const auto* seg_tbl = elem.as_table();
                    if (seg_tbl == nullptr) {
                        return where(file, elem.source()) + ": " + seg_prefix +
                               ": expected a table";
                    }
                    ExternalSegmentConfig seg;
                    if (auto e = read_segment(file, seg_prefix, *seg_tbl, seg)) {
                        return e;
                    }
                    for (const ExternalSegmentConfig& other : algo.segments) {
                        if (other.label == seg.label) {
                            return seg.where + ": " + seg_prefix + ".label: duplicate label " +
                                   std::to_string(seg.label) + " (also " + other.name + ")";
                        }
                    }
                    algo.segments.push_back(std::move(seg));
                }
            }
        } else if (key == "segments_file") {
            err = read_string(v, algo.segments_file);
            if (!err && algo.segments_file.empty()) {
                err = "must not be empty";
            }
            if (!err) {
                const fs::path p(algo.segments_file);
                algo.segments_file = (p.is_absolute() ? p : base_dir / p).lexically_normal();
            }
        } else if (key == "layout") {
            err = read_one_of(v, {"plain", "kaapana", "nnunet", "mercure"}, algo.layout);
        } else if (key == "output_kind") {
            err = read_one_of(v, {"labelmap", "per_segment", "dicom"}, algo.output_kind);
        } else if (key == "max_parallel") {
            err = read_uint(v, 1, 64, algo.max_parallel);
        } else if (key == "resample") {
            err = read_bool(v, algo.resample);
        } else if (key == "undeclared_labels") {
            err = read_one_of(v, {"fail", "ignore"}, algo.undeclared_labels);
        } else if (key == "keep_work_dir") {
            err = read_bool(v, algo.keep_work_dir);
        } else {
            return where(file, k.source()) + ": " + prefix + "." + key +
                   ": unknown key (known: name, version, description, command, input_format, "
                   "output, timeout_s, memory_mb, kill_grace_s, env, settings, segments, "
                   "segments_file, layout, output_kind, max_parallel, resample, "
                   "undeclared_labels, keep_work_dir)";
        }
        if (err) {
            return at + *err;
        }
    }
    if (algo.name.empty() || algo.version.empty() || algo.command.empty()) {
        return algo.where + ": " + prefix + ": 'name', 'version' and 'command' are required";
    }
    for (const std::string& arg : algo.command) {
        if (auto err = placeholder_problem(arg, algo.settings)) {
            return where(file, command_node->source()) + ": " + prefix + ".command: " + *err;
        }
    }
    // Layout defaults: what each convention reads and writes.
    if (algo.output_kind.empty()) {
        algo.output_kind = algo.layout == "mercure" ? "dicom" : "labelmap";
    }
    if (algo.input_format.empty()) {
        algo.input_format = algo.layout == "kaapana"   ? "nrrd"
                            : algo.layout == "mercure" ? "dicom"
                            : algo.layout == "nnunet"  ? "nifti_gz"
                                                       : "nifti";
    }
    if (algo.layout == "nnunet" && algo.input_format != "nifti_gz") {
        return algo.where + ": " + prefix +
               ".input_format: layout \"nnunet\" reads <case>_0000.nii.gz (input_format = "
               "\"nifti_gz\")";
    }
    if (algo.output.empty() && algo.output_kind == "labelmap") {
        algo.output = algo.layout == "kaapana"  ? "*.nrrd"
                      : algo.layout == "nnunet" ? "case.nii.gz"
                                                : "labels.nii";
    }
    if (algo.output_kind == "dicom" && !algo.output.empty()) {
        return algo.where + ": " + prefix +
               ".output: output_kind = \"dicom\" sends every SEG/RTSTRUCT found under "
               "{out_dir}; 'output' does not apply";
    }
    if (!algo.segments.empty() && !algo.segments_file.empty()) {
        return algo.where + ": " + prefix +
               ": give either [[algorithms.segments]] or "
               "segments_file, not both";
    }
    if (algo.segments.empty() && algo.segments_file.empty() && algo.output_kind != "dicom") {
        return algo.where + ": " + prefix +
               ": declare the segments it produces ([[algorithms.segments]] or segments_file)";
    }
    for (const ExternalSegmentConfig& seg : algo.segments) {
        const bool needs_file = algo.output_kind == "per_segment";
        if (needs_file && seg.file.empty()) {
            return seg.where + ": " + prefix + ".segments: label " + std::to_string(seg.label) +
                   " has no 'file' (output_kind = \"per_segment\" reads one mask file per "
                   "segment)";
        }
        if (!needs_file && !seg.file.empty()) {
            return seg.where + ": " + prefix + ".segments: label " + std::to_string(seg.label) +
                   ": 'file' is only for output_kind = \"per_segment\"";
        }
    }
    return std::nullopt;
}

} // namespace

std::optional<std::string> set_algorithms(const toml::node& node, Config& config,
                                          const std::string& file) {
    const fs::path base_dir =
        fs::path(file).has_parent_path() ? fs::path(file).parent_path() : fs::path(".");
    const auto* arr = node.as_array();
    if (arr == nullptr) {
        return where(file, node.source()) +
               ": algorithms: expected an array of tables ([[algorithms]])";
    }
    std::size_t index = 0;
    for (const auto& elem : *arr) {
        const std::string prefix = "algorithms[" + std::to_string(index++) + "]";
        const auto* tbl = elem.as_table();
        if (tbl == nullptr) {
            return where(file, elem.source()) + ": " + prefix + ": expected a table";
        }
        ExternalAlgorithmConfig algo;
        if (auto err = read_algorithm(file, base_dir, prefix, *tbl, algo)) {
            return err;
        }
        config.algorithms.push_back(std::move(algo));
    }
    return std::nullopt;
}

std::optional<std::string> set_algorithms_dir(const toml::node& node, Config& config,
                                              const std::string& file) {
    std::string dir;
    if (auto err = read_string(node, dir)) {
        return where(file, node.source()) + ": algorithms_dir: " + *err;
    }
    if (dir.empty()) {
        return where(file, node.source()) + ": algorithms_dir: must not be empty";
    }
    const fs::path base_dir =
        fs::path(file).has_parent_path() ? fs::path(file).parent_path() : fs::path(".");
    const fs::path p(dir);
    config.algorithms_dir = (p.is_absolute() ? p : base_dir / p).lexically_normal().string();
    return std::nullopt;
}

std::optional<std::string> load_algorithms_dir(Config& config) {
    if (config.algorithms_dir.empty()) {
        return std::nullopt;
    }
    const fs::path dir(config.algorithms_dir);
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
        return config.source + ": algorithms_dir: '" + dir.string() + "' is not a directory";
    }
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        if (entry.path().extension() == ".toml" && entry.is_regular_file(ec)) {
            files.push_back(entry.path());
        }
    }
    if (ec) {
        return config.source + ": algorithms_dir: cannot list '" + dir.string() +
               "': " + ec.message();
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& path : files) {
        const std::string name = path.string();
        toml::table root;
        try {
            root = toml::parse_file(name);
        } catch (const toml::parse_error& e) {
            return where(name, e.source()) + ": " + std::string(e.description());
        }
        const toml::node* entries = nullptr;
        for (const auto& [k, v] : root) {
            if (k.str() != "algorithms") {
                return where(name, k.source()) + ": unknown key '" + std::string(k.str()) +
                       "' (a file of algorithms_dir holds one [[algorithms]] entry)";
            }
            entries = &v;
        }
        const auto* arr = entries == nullptr ? nullptr : entries->as_array();
        if (arr == nullptr || arr->size() != 1) {
            return name + ": expected exactly one [[algorithms]] entry";
        }
        if (auto err = set_algorithms(*entries, config, name)) {
            return err;
        }
    }
    return std::nullopt;
}

std::optional<std::string> check_algorithm_names(const Config& config) {
    std::set<std::string> names;
    for (const ExternalAlgorithmConfig& algo : config.algorithms) {
        if (!names.insert(algo.name).second) {
            return algo.where + ": algorithm '" + algo.name + "' is defined twice";
        }
    }
    return std::nullopt;
}

} // namespace segnode::config_detail
