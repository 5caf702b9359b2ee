// `segnode algorithm list|show`: what the registry knows, for people choosing an algorithm and
// its --set values.
#include "cli_common.hpp"
#include "segnode/algorithms/registry.hpp"
#include "segnode/pipeline/external_algorithm.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace segnode::cli {

namespace {

constexpr std::size_t line_width = 100;

/// Words of `text` in lines of at most `width` columns; the first line starts at column
/// `first_column` (text already printed before it), the others are indented by `indent`.
std::string wrap(std::string_view text, std::size_t first_column, std::size_t indent,
                 std::size_t width = line_width) {
    std::string out;
    std::size_t column = first_column;
    bool line_empty = true;
    std::size_t pos = 0;
    while (pos < text.size()) {
        const auto start = text.find_first_not_of(' ', pos);
        if (start == std::string_view::npos) {
            break;
        }
        auto end = text.find(' ', start);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        const std::string_view word = text.substr(start, end - start);
        if (!line_empty && column + 1 + word.size() > width) {
            out += "\n" + std::string(indent, ' ');
            column = indent;
            line_empty = true;
        }
        if (!line_empty) {
            out += ' ';
            ++column;
        }
        out += word;
        column += word.size();
        line_empty = false;
        pos = end;
    }
    return out;
}

std::string segment_names(const algorithms::AlgorithmInfo& info) {
    std::string out;
    for (const auto& segment : info.segments) {
        out += (out.empty() ? "" : ", ") + segment.name;
    }
    return out;
}

std::string describe_code(const algorithms::CodedConcept& code) {
    return code.scheme + " " + code.value + " \"" + code.meaning + "\"";
}

std::string describe_colour(const std::array<std::uint8_t, 3>& rgb) {
    std::array<char, 48> text{};
    std::snprintf(text.data(), text.size(), "#%02x%02x%02x (%u, %u, %u)", rgb[0], rgb[1], rgb[2],
                  unsigned{rgb[0]}, unsigned{rgb[1]}, unsigned{rgb[2]});
    return text.data();
}

std::string pad(std::string text, std::size_t width) {
    if (text.size() < width) {
        text.resize(width, ' ');
    }
    return text;
}

void print_list(const std::vector<algorithms::AlgorithmInfo>& infos) {
    std::size_t name_w = 4; // "NAME"
    std::size_t version_w = 7;
    std::size_t segments_w = 8;
    for (const auto& info : infos) {
        name_w = std::max(name_w, info.name.size());
        version_w = std::max(version_w, info.version.size());
        segments_w = std::max(segments_w, segment_names(info).size());
    }
    const std::size_t description_column = name_w + version_w + segments_w + 6;
    std::cout << pad("NAME", name_w) << "  " << pad("VERSION", version_w) << "  "
              << pad("SEGMENTS", segments_w) << "  DESCRIPTION\n";
    for (const auto& info : infos) {
        std::cout << pad(info.name, name_w) << "  " << pad(info.version, version_w) << "  "
                  << pad(segment_names(info), segments_w) << "  "
                  << wrap(info.description, description_column, description_column) << "\n";
    }
}

void print_algorithm(const algorithms::AlgorithmInfo& info) {
    std::cout << info.name << " " << info.version << "\n";
    std::cout << "  " << wrap(info.description, 2, 2) << "\n";

    std::cout << "\nSegments:\n";
    for (const auto& segment : info.segments) {
        std::cout << "  " << pad("label " + std::to_string(segment.label), 10) << segment.name
                  << "\n"
                  << "            category  " << describe_code(segment.category) << "\n"
                  << "            type      " << describe_code(segment.type) << "\n"
                  << "            colour    " << describe_colour(segment.rgb) << "\n";
    }

    std::cout << "\nSettings (segnode run --algorithm " << info.name << " --set KEY=VALUE):\n";
    if (info.settings.empty()) {
        std::cout << "  (none)\n";
    }
    std::size_t key_w = 3;
    std::size_t default_w = 1;
    for (const auto& spec : info.settings) {
        key_w = std::max(key_w, spec.key.size());
        default_w =
            std::max(default_w, algorithms::format_setting_value(spec.default_value).size());
    }
    for (const auto& spec : info.settings) {
        std::string constraint = algorithms::describe_constraint(spec);
        if (!constraint.empty() && constraint.front() == '[') {
            constraint = "range " + constraint;
        }
        std::string line = "  " + pad(spec.key, key_w) + "  " +
                           pad(std::string(algorithms::to_string(spec.type)), 6) + "  default " +
                           pad(algorithms::format_setting_value(spec.default_value), default_w);
        if (!constraint.empty()) {
            line += "  " + constraint;
        }
        while (!line.empty() && line.back() == ' ') {
            line.pop_back();
        }
        std::cout << line << "\n";
        if (!spec.help.empty()) {
            std::cout << "      " << wrap(spec.help, 6, 6) << "\n";
        }
    }
}

void print_external(const ExternalAlgorithmConfig& c) {
    std::string command;
    for (const std::string& arg : c.command) {
        command += (command.empty() ? "" : " ") + arg;
    }
    std::cout << "\nExternal program (" << c.where << "):\n"
              << "  command       " << command << "\n"
              << "  layout        " << c.layout << "\n"
              << "  input         " << c.input_format << "\n"
              << "  output        " << c.output_kind
              << (c.output.empty() ? std::string() : " " + c.output) << "\n"
              << "  timeout_s     " << c.timeout_s << "\n"
              << "  memory_mb     "
              << (c.memory_mb == 0 ? std::string("no limit") : std::to_string(c.memory_mb)) << "\n"
              << "  max_parallel  " << c.max_parallel << "\n";
}

// --- the same, from a remote node's HTTP API (--server) -------------------------------------

algorithms::CodedConcept code_from_json(const nlohmann::json& j) {
    return {json_text(j["value"]), json_text(j["scheme"]), json_text(j["meaning"])};
}

/// GET /api/v1/algorithms/{name} back into the AlgorithmInfo the local commands print.
algorithms::AlgorithmInfo info_from_json(const nlohmann::json& j) {
    algorithms::AlgorithmInfo info;
    info.name = json_text(j["name"]);
    info.version = json_text(j["version"]);
    info.description = json_text(j["description"]);
    for (const auto& s : j["settings"]) {
        algorithms::SettingSpec spec;
        spec.key = json_text(s["key"]);
        for (const auto type : {algorithms::SettingType::Bool, algorithms::SettingType::Int,
                                algorithms::SettingType::Double, algorithms::SettingType::String,
                                algorithms::SettingType::Enum}) {
            spec.type = algorithms::to_string(type) == json_text(s["type"]) ? type : spec.type;
        }
        const auto& d = s["default"];
        if (d.is_boolean()) {
            spec.default_value = d.get<bool>();
        } else if (d.is_number_integer() && spec.type != algorithms::SettingType::Double) {
            spec.default_value = d.get<std::int64_t>();
        } else if (d.is_number()) {
            spec.default_value = d.get<double>();
        } else {
            spec.default_value = json_text(d);
        }
        if (s.contains("minimum")) {
            spec.minimum = s["minimum"].get<double>();
        }
        if (s.contains("maximum")) {
            spec.maximum = s["maximum"].get<double>();
        }
        if (s.contains("allowed")) {
            spec.allowed = s["allowed"].get<std::vector<std::string>>();
        }
        spec.help = json_text(s["help"]);
        info.settings.push_back(std::move(spec));
    }
    for (const auto& g : j["segments"]) {
        SegmentInfo segment;
        segment.label = g["label"].get<std::uint8_t>();
        segment.name = json_text(g["name"]);
        segment.category = code_from_json(g["category"]);
        segment.type = code_from_json(g["type"]);
        segment.rgb = g["rgb"].get<std::array<std::uint8_t, 3>>();
        info.segments.push_back(std::move(segment));
    }
    return info;
}

ExternalAlgorithmConfig external_from_json(const nlohmann::json& j) {
    ExternalAlgorithmConfig c;
    c.where = json_text(j["where"]);
    c.command = j["command"].get<std::vector<std::string>>();
    c.layout = json_text(j["layout"]);
    c.input_format = json_text(j["input_format"]);
    c.output_kind = json_text(j["output_kind"]);
    c.output = json_text(j["output"]);
    c.timeout_s = j["timeout_s"].get<unsigned>();
    c.memory_mb = j["memory_mb"].get<unsigned>();
    c.max_parallel = j["max_parallel"].get<unsigned>();
    return c;
}

std::optional<nlohmann::json> remote_algorithm(const Remote& remote, const std::string& name,
                                               const char* command, int& exit_code) {
    return remote_json(remote, "GET", "/api/v1/algorithms/" + name, {}, command, exit_code);
}

void remote_list(const Remote& remote, int& exit_code) {
    const auto listed =
        remote_json(remote, "GET", "/api/v1/algorithms", {}, "algorithm list", exit_code);
    if (!listed) {
        return;
    }
    std::vector<algorithms::AlgorithmInfo> infos;
    for (const auto& item : (*listed)["items"]) {
        const auto detail =
            remote_algorithm(remote, json_text(item["name"]), "algorithm list", exit_code);
        if (!detail) {
            return;
        }
        infos.push_back(info_from_json(*detail));
    }
    print_list(infos);
}

void remote_show(const Remote& remote, const std::string& name, int& exit_code) {
    const auto detail = remote_algorithm(remote, name, "algorithm show", exit_code);
    if (!detail) {
        return;
    }
    print_algorithm(info_from_json(*detail));
    if (detail->contains("external")) {
        print_external(external_from_json((*detail)["external"]));
    }
}

} // namespace

void add_algorithm_command(CLI::App& app, GlobalOptions& options, int& exit_code) {
    auto* cmd = app.add_subcommand("algorithm", "The segmentation algorithms segnode can run");
    cmd->require_subcommand(1);

    auto* list = cmd->add_subcommand("list", "Name, version, segments and description of each");
    list->callback([&options, &exit_code] {
        bool failed = false;
        if (const auto remote = resolve_remote(options, failed)) {
            remote_list(*remote, exit_code);
            return;
        }
        const auto config = failed ? std::nullopt : resolve_config(options);
        const auto registry = config ? resolve_registry(*config) : std::nullopt;
        if (!registry) {
            exit_code = 2;
            return;
        }
        std::vector<algorithms::AlgorithmInfo> infos;
        for (const auto& algorithm : registry->algorithms()) {
            infos.push_back(algorithm->info());
        }
        print_list(infos);
    });

    auto* show = cmd->add_subcommand(
        "show", "Description, segments (codes, colours) and settings of one algorithm");
    auto name = std::make_shared<std::string>();
    show->add_option("NAME", *name, "Algorithm name (see 'segnode algorithm list')")->required();
    show->callback([&options, &exit_code, name] {
        bool failed = false;
        if (const auto remote = resolve_remote(options, failed)) {
            remote_show(*remote, *name, exit_code);
            return;
        }
        const auto config = failed ? std::nullopt : resolve_config(options);
        const auto registry = config ? resolve_registry(*config) : std::nullopt;
        if (!registry) {
            exit_code = 2;
            return;
        }
        const auto algorithm = registry->get(*name);
        if (!algorithm) {
            std::cerr << "algorithm show: " << algorithm.error().message << "\n";
            exit_code = 1;
            return;
        }
        print_algorithm((*algorithm)->info());
        if (const auto* ext = dynamic_cast<const pipeline::ExternalAlgorithm*>(*algorithm)) {
            print_external(ext->config());
        }
    });
}

} // namespace segnode::cli
