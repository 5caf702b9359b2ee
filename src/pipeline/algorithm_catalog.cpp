#include "segnode/pipeline/algorithm_catalog.hpp"

#include "segnode/pipeline/external_algorithm.hpp"
#include "segnode/pipeline/process.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace segnode::pipeline {
namespace {

using algorithms::SettingSpec;
using algorithms::SettingType;
using algorithms::SettingValue;

const CodedConcept k_tissue{"85756007", "SCT", "Tissue"};

/// A distinct colour per label (golden-angle hue steps), for segments declared without one.
std::array<std::uint8_t, 3> palette_colour(unsigned label) {
    const double hue = std::fmod(static_cast<double>(label) * 137.508, 360.0);
    const double s = 0.65;
    const double v = 0.9;
    const double c = v * s;
    const double x = c * (1 - std::abs(std::fmod(hue / 60.0, 2.0) - 1));
    const double m = v - c;
    double r = 0;
    double g = 0;
    double b = 0;
    switch (static_cast<int>(hue / 60.0)) {
    case 0:
        r = c;
        g = x;
        break;
    case 1:
        r = x;
        g = c;
        break;
    case 2:
        g = c;
        b = x;
        break;
    case 3:
        g = x;
        b = c;
        break;
    case 4:
        r = x;
        b = c;
        break;
    default:
        r = c;
        b = x;
        break;
    }
    auto to8 = [m](double u) { return static_cast<std::uint8_t>(std::lround((u + m) * 255.0)); };
    return {to8(r), to8(g), to8(b)};
}

CodedConcept concept_of(const CodeTriplet& code) {
    return {code[1], code[0], code[2]};
}

Result<SettingSpec> to_spec(const ExternalSettingConfig& s) {
    SettingSpec spec;
    spec.key = s.key;
    spec.help = s.help;
    spec.minimum = s.min;
    spec.maximum = s.max;
    try {
        if (s.type == "int") {
            spec.type = SettingType::Int;
            spec.default_value = static_cast<std::int64_t>(std::stoll(s.default_text));
        } else if (s.type == "float") {
            spec.type = SettingType::Double;
            spec.default_value = std::stod(s.default_text);
        } else if (s.type == "bool") {
            spec.type = SettingType::Bool;
            spec.default_value = s.default_text == "true";
        } else if (s.type == "enum") {
            spec.type = SettingType::Enum;
            spec.default_value = s.default_text;
            spec.allowed = s.choices;
        } else {
            spec.type = SettingType::String;
            spec.default_value = s.default_text;
        }
    } catch (const std::exception&) {
        return Error{s.where + ": settings." + s.key + ".default: '" + s.default_text +
                     "' is not a " + s.type};
    }
    if (auto problem = algorithms::spec_problem(spec)) {
        return Error{s.where + ": settings." + s.key + ": " + *problem};
    }
    return spec;
}

SegmentInfo segment_of(const ExternalSegmentConfig& s) {
    SegmentInfo info;
    info.label = static_cast<std::uint8_t>(s.label);
    info.name = s.name;
    info.category = s.has_category ? concept_of(s.category) : k_tissue;
    info.type = s.has_type ? concept_of(s.type) : k_tissue;
    info.rgb = s.has_color ? s.color : palette_colour(s.label);
    return info;
}

std::optional<CodedConcept> json_code(const nlohmann::json& j) {
    if (!j.is_object()) {
        return std::nullopt;
    }
    const auto text = [&j](const char* key) {
        return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
    };
    CodedConcept c{text("CodeValue"), text("CodingSchemeDesignator"), text("CodeMeaning")};
    if (c.value.empty() || c.scheme.empty() || c.meaning.empty()) {
        return std::nullopt;
    }
    return c;
}

std::string label_problem(long long label) {
    if (label < 1 || label > 255) {
        return "label " + std::to_string(label) + " is outside 1-255";
    }
    return {};
}

Result<std::vector<SegmentInfo>> from_dcmqi(const nlohmann::json& doc, const std::string& path) {
    std::vector<SegmentInfo> out;
    const auto& groups = doc["segmentAttributes"];
    if (!groups.is_array()) {
        return Error{path + ": segmentAttributes: expected an array"};
    }
    for (const auto& group : groups) {
        const auto items = group.is_array() ? group : nlohmann::json::array({group});
        for (const auto& item : items) {
            if (!item.is_object() || !item.contains("labelID") ||
                !item["labelID"].is_number_integer()) {
                return Error{path + ": segmentAttributes: every entry needs an integer labelID"};
            }
            const long long label = item["labelID"].get<long long>();
            if (auto p = label_problem(label); !p.empty()) {
                return Error{path + ": segmentAttributes: " + p};
            }
            SegmentInfo s;
            s.label = static_cast<std::uint8_t>(label);
            for (const char* key : {"SegmentLabel", "SegmentDescription"}) {
                if (s.name.empty() && item.contains(key) && item[key].is_string()) {
                    s.name = item[key].get<std::string>();
                }
            }
            if (s.name.empty()) {
                s.name = "Segment " + std::to_string(label);
            }
            s.category =
                json_code(item.value("SegmentedPropertyCategoryCodeSequence", nlohmann::json()))
                    .value_or(k_tissue);
            s.type = json_code(item.value("SegmentedPropertyTypeCodeSequence", nlohmann::json()))
                         .value_or(k_tissue);
            s.rgb = palette_colour(s.label);
            if (item.contains("recommendedDisplayRGBValue") &&
                item["recommendedDisplayRGBValue"].is_array() &&
                item["recommendedDisplayRGBValue"].size() == 3) {
                for (std::size_t i = 0; i < 3; ++i) {
                    const auto& v = item["recommendedDisplayRGBValue"][i];
                    if (!v.is_number_integer() || v.get<int>() < 0 || v.get<int>() > 255) {
                        return Error{path + ": labelID " + std::to_string(label) +
                                     ": recommendedDisplayRGBValue must hold 0-255"};
                    }
                    s.rgb[i] = static_cast<std::uint8_t>(v.get<int>());
                }
            }
            out.push_back(std::move(s));
        }
    }
    return out;
}

Result<std::vector<SegmentInfo>> from_nnunet(const nlohmann::json& doc, const std::string& path) {
    std::vector<SegmentInfo> out;
    const auto& labels = doc["labels"];
    if (!labels.is_object()) {
        return Error{path + ": labels: expected an object"};
    }
    for (const auto& [key, value] : labels.items()) {
        long long label = 0;
        std::string name;
        if (value.is_number_integer()) { // nnU-Net v2: {"liver": 1}
            label = value.get<long long>();
            name = key;
        } else if (value.is_string()) { // v1: {"1": "liver"}
            try {
                std::size_t used = 0;
                label = std::stoll(key, &used);
                if (used != key.size()) {
                    throw std::invalid_argument(key);
                }
            } catch (const std::exception&) {
                return Error{path + ": labels: '" + key + "' is not a label number"};
            }
            name = value.get<std::string>();
        } else if (value.is_array()) { // v2 region-based training: {"name": [1, 2]}
            return Error{path + ": labels: '" + key +
                         "' is a region (a list of labels); declare its segments inline"};
        } else {
            return Error{path + ": labels: '" + key + "': expected a label number"};
        }
        if (label == 0) {
            continue; // background
        }
        if (auto p = label_problem(label); !p.empty()) {
            return Error{path + ": labels: '" + key + "': " + p};
        }
        SegmentInfo s;
        s.label = static_cast<std::uint8_t>(label);
        s.name = name;
        s.category = k_tissue;
        s.type = k_tissue;
        s.rgb = palette_colour(s.label);
        out.push_back(std::move(s));
    }
    std::sort(out.begin(), out.end(),
              [](const SegmentInfo& a, const SegmentInfo& b) { return a.label < b.label; });
    return out;
}

} // namespace

Result<std::vector<SegmentInfo>> read_segments_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        return Error{path + ": cannot open segments_file"};
    }
    nlohmann::json doc;
    try {
        doc = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
        return Error{path + ": not valid JSON: " + e.what()};
    }
    Result<std::vector<SegmentInfo>> segments = Error{""};
    if (doc.is_object() && doc.contains("segmentAttributes")) {
        segments = from_dcmqi(doc, path);
    } else if (doc.is_object() && doc.contains("labels")) {
        segments = from_nnunet(doc, path);
    } else {
        return Error{path + ": neither a dcmqi segmentation JSON (segmentAttributes) nor an "
                            "nnU-Net dataset.json (labels)"};
    }
    if (!segments) {
        return segments;
    }
    if (segments->empty()) {
        return Error{path + ": declares no segment"};
    }
    for (std::size_t i = 0; i < segments->size(); ++i) {
        for (std::size_t j = 0; j < i; ++j) {
            if ((*segments)[i].label == (*segments)[j].label) {
                return Error{path + ": label " + std::to_string((*segments)[i].label) +
                             " is declared twice"};
            }
        }
    }
    return segments;
}

Result<algorithms::Registry> make_registry(const Config& config) {
    algorithms::Registry registry = algorithms::make_builtin_registry();
    for (std::size_t index = 0; index < config.algorithms.size(); ++index) {
        const ExternalAlgorithmConfig& ext = config.algorithms[index];
        const std::string prefix =
            ext.where + ": algorithms[" + std::to_string(index) + "] (" + ext.name + ")";
        if (registry.find(ext.name) != nullptr) {
            return Error{prefix + ".name: '" + ext.name +
                         "' is the name of a built-in algorithm; choose another"};
        }
        const std::string& program = ext.command.front();
        if (program.find('{') == std::string::npos &&
            !find_executable(program, program_path(ext))) {
            return Error{prefix + ".command: program '" + program +
                         (program.find('/') == std::string::npos
                              ? "' not found in PATH (" + program_path(ext) + ")"
                              : "' does not exist or is not executable")};
        }
        algorithms::AlgorithmInfo info;
        info.name = ext.name;
        info.version = ext.version;
        info.description =
            ext.description.empty() ? "external program " + program : ext.description;
        info.max_parallel = ext.max_parallel;
        info.timeout_s = ext.timeout_s;
        for (const ExternalSettingConfig& s : ext.settings) {
            auto spec = to_spec(s);
            if (!spec) {
                return spec.error();
            }
            info.settings.push_back(std::move(*spec));
        }
        if (!ext.segments_file.empty()) {
            auto segments = read_segments_file(ext.segments_file);
            if (!segments) {
                return Error{prefix + ".segments_file: " + segments.error().message};
            }
            info.segments = std::move(*segments);
        } else {
            for (const ExternalSegmentConfig& s : ext.segments) {
                info.segments.push_back(segment_of(s));
            }
        }
        if (info.segments.empty() && ext.output_kind == "dicom") {
            // The program writes its own SEG/RTSTRUCT; the registry still wants one segment
            // to describe the algorithm.
            info.segments.push_back(
                SegmentInfo{1, "Segmentation", k_tissue, k_tissue, palette_colour(1)});
        }
        auto algorithm = std::make_unique<ExternalAlgorithm>(std::move(info), ext);
        if (auto st = registry.add(std::move(algorithm)); !st) {
            return Error{prefix + ": " + st.error().message};
        }
    }
    return registry;
}

} // namespace segnode::pipeline
