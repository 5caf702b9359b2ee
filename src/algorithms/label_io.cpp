#include "segnode/algorithms/label_io.hpp"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <type_traits>
#include <variant>

namespace segnode::algorithms {

namespace {

// ------------------------------------------------------------------ numbers and text

/// Shortest text that reads back as the same double ("0.8", "-123.5", "1e-07").
std::string format_double(double value) {
    if (!std::isfinite(value)) {
        return "nan";
    }
    if (value == 0.0) {
        return "0"; // also for -0.0
    }
    std::array<char, 32> buffer{};
    const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
    return {buffer.data(), result.ptr};
}

/// A double for JSON: null when not finite; integral values keep a ".0" so that the type of
/// a double setting stays visible.
std::string json_number(double value) {
    if (!std::isfinite(value)) {
        return "null";
    }
    std::string text = format_double(value);
    if (text.find_first_of(".e") == std::string::npos) {
        text += ".0";
    }
    return text;
}

std::string json_string(std::string_view text) {
    std::string out = "\"";
    for (const char ch : text) {
        const auto u = static_cast<unsigned char>(ch);
        switch (ch) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            if (u < 0x20) {
                std::array<char, 8> escaped{};
                std::snprintf(escaped.data(), escaped.size(), "\\u%04x", static_cast<unsigned>(u));
                out += escaped.data();
            } else {
                out += ch;
            }
        }
    }
    out += '"';
    return out;
}

// ------------------------------------------------------------------ files

/// Writes `parts` one after the other to a temporary file beside `path`, then renames it
/// into place.
Status write_file_atomically(const std::filesystem::path& path,
                             std::initializer_list<std::pair<const void*, std::size_t>> parts) {
    const std::filesystem::path tmp = path.string() + ".tmp";
    std::FILE* file = std::fopen(tmp.c_str(), "wb");
    if (file == nullptr) {
        return Error{"cannot create " + tmp.string() + ": " + std::strerror(errno)};
    }
    bool ok = true;
    for (const auto& [data, size] : parts) {
        if (size > 0 && std::fwrite(data, 1, size, file) != size) {
            ok = false;
            break;
        }
    }
    const int saved_errno = errno;
    if (std::fclose(file) != 0) {
        ok = false;
    }
    if (!ok) {
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
        return Error{"cannot write " + tmp.string() + ": " + std::strerror(saved_errno)};
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
        return Error{"cannot rename " + tmp.string() + " to " + path.string() + ": " +
                     ec.message()};
    }
    return ok_status();
}

// ------------------------------------------------------------------ JSON helpers

std::string json_concept(const CodedConcept& concept_) {
    return "{\"value\": " + json_string(concept_.value) +
           ", \"scheme\": " + json_string(concept_.scheme) +
           ", \"meaning\": " + json_string(concept_.meaning) + "}";
}

std::string json_setting_value(const SettingValue& value) {
    return std::visit(
        [](const auto& v) -> std::string {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, bool>) {
                return v ? "true" : "false";
            } else if constexpr (std::is_same_v<T, std::int64_t>) {
                return std::to_string(v);
            } else if constexpr (std::is_same_v<T, double>) {
                return json_number(v);
            } else {
                return json_string(v);
            }
        },
        value);
}

template <class T, std::size_t N, class F> std::string json_array(const std::array<T, N>& a, F f) {
    std::string out = "[";
    for (std::size_t n = 0; n < N; ++n) {
        out += (n ? ", " : "") + f(a[n]);
    }
    return out + "]";
}

} // namespace

// ------------------------------------------------------------------ statistics, manifest

std::vector<SegmentStats> segment_stats(const LabelMap& labels,
                                        const std::vector<SegmentInfo>& segments) {
    std::array<std::uint64_t, 256> counts{};
    for (const std::uint8_t v : labels.voxels) {
        ++counts[v];
    }
    const double ml = voxel_volume_ml(labels.geometry);
    std::vector<SegmentStats> out;
    out.reserve(segments.size());
    for (const SegmentInfo& segment : segments) {
        SegmentStats stats;
        stats.segment = segment;
        stats.voxels = counts[segment.label];
        stats.volume_ml = static_cast<double>(stats.voxels) * ml;
        out.push_back(std::move(stats));
    }
    return out;
}

std::string segments_json(const SegmentsManifest& m) {
    const auto number = [](double v) { return json_number(v); };
    const auto integer = [](auto v) { return std::to_string(v); };
    std::string out = "{\n";
    out += "  \"algorithm\": {\n";
    out += "    \"name\": " + json_string(m.algorithm_name) + ",\n";
    out += "    \"version\": " + json_string(m.algorithm_version) + ",\n";
    out += "    \"settings\": {";
    bool first = true;
    for (const auto& [key, value] : m.settings.values()) {
        out += std::string(first ? "\n" : ",\n") + "      " + json_string(key) + ": " +
               json_setting_value(value);
        first = false;
    }
    out += first ? "}\n" : "\n    }\n";
    out += "  },\n";
    out += "  \"label_map\": {\n";
    // No label file when the run wrote DICOM objects only: the geometry is still described.
    out += "    \"file\": " + (m.label_file.empty() ? "null" : json_string(m.label_file)) + ",\n";
    out += "    \"format\": " + (m.label_file.empty() ? "null" : json_string(m.format)) + ",\n";
    out += "    \"dims\": " + json_array(m.geometry.dims, integer) + ",\n";
    out += "    \"spacing_mm\": " + json_array(m.geometry.spacing, number) + ",\n";
    out += "    \"origin_lps_mm\": " + json_array(m.geometry.origin, number) + ",\n";
    out += "    \"direction\": " + json_array(m.geometry.direction, number) + "\n";
    out += "  },\n";
    out += "  \"source\": {";
    first = true;
    for (const auto& [key, value] : m.source) {
        out += std::string(first ? "\n" : ",\n") + "    " + json_string(key) + ": " +
               json_string(value);
        first = false;
    }
    out += first ? "},\n" : "\n  },\n";
    out += "  \"segments\": [";
    first = true;
    for (const SegmentStats& s : m.segments) {
        out += first ? "\n" : ",\n";
        first = false;
        out += "    {\n";
        out += "      \"label\": " + std::to_string(s.segment.label) + ",\n";
        out += "      \"name\": " + json_string(s.segment.name) + ",\n";
        out += "      \"category\": " + json_concept(s.segment.category) + ",\n";
        out += "      \"type\": " + json_concept(s.segment.type) + ",\n";
        out += "      \"rgb\": " + json_array(s.segment.rgb, integer) + ",\n";
        out += "      \"voxels\": " + std::to_string(s.voxels) + ",\n";
        out += "      \"volume_ml\": " + json_number(s.volume_ml) + "\n";
        out += "    }";
    }
    out += first ? "]\n" : "\n  ]\n";
    out += "}\n";
    return out;
}

Status write_segments_json(const SegmentsManifest& manifest, const std::filesystem::path& path) {
    const std::string text = segments_json(manifest);
    return write_file_atomically(path, {{text.data(), text.size()}});
}

} // namespace segnode::algorithms
