#include "segnode/algorithms/algorithm.hpp"

#include <algorithm>
#include <array>
#include <set>
#include <thread>

namespace segnode::algorithms {

namespace {

bool name_syntax_ok(std::string_view name) {
    if (name.empty() || name.size() > 64) {
        return false;
    }
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
}

bool concept_ok(const CodedConcept& code) {
    return !code.value.empty() && !code.scheme.empty() && !code.meaning.empty();
}

// Largest value of a buffer (fixed blocks so that -O2 vectorises the reduction).
std::uint8_t max_value(const Buffer<std::uint8_t>& values) {
    constexpr std::size_t block = 64;
    const std::uint8_t* p = values.data();
    const std::size_t n = values.size();
    std::uint8_t result = 0;
    std::size_t i = 0;
    for (; i + block <= n; i += block) {
        std::uint8_t m = 0;
        for (std::size_t b = 0; b < block; ++b) {
            m = std::max(m, p[i + b]);
        }
        result = std::max(result, m);
    }
    for (; i < n; ++i) {
        result = std::max(result, p[i]);
    }
    return result;
}

// std::nullopt when the label map is on the volume's grid and holds only 0 and declared
// labels, otherwise the reason.
std::optional<std::string> output_problem(const AlgorithmInfo& info, const CtVolume& volume,
                                          const LabelMap& labels) {
    if (labels.geometry.dims != volume.geometry.dims || !labels.consistent()) {
        return std::string("result does not have the dimensions of the volume");
    }
    std::array<bool, 256> declared{};
    declared[0] = true;
    int highest = 0;
    for (const auto& segment : info.segments) {
        declared[segment.label] = true;
        highest = std::max<int>(highest, segment.label);
    }
    const bool contiguous = static_cast<std::size_t>(highest) == info.segments.size();
    const std::uint8_t top = max_value(labels.voxels);
    if (top <= highest && contiguous) {
        return std::nullopt; // labels 1..highest all declared: nothing else to check
    }
    std::array<bool, 256> present{};
    for (const std::uint8_t v : labels.voxels) {
        present[v] = true;
    }
    for (std::size_t v = 1; v < present.size(); ++v) {
        if (present[v] && !declared[v]) {
            return "result contains label " + std::to_string(v) + ", which is not declared";
        }
    }
    return std::nullopt;
}

} // namespace

std::optional<std::string> info_problem(const AlgorithmInfo& info) {
    if (!name_syntax_ok(info.name)) {
        return "algorithm name '" + info.name +
               "' must be 1-64 characters of lower case letters, digits, '_' and '-'";
    }
    const std::string prefix = info.name + ": ";
    if (info.version.empty()) {
        return prefix + "version is empty";
    }
    std::set<std::string, std::less<>> keys;
    for (const auto& spec : info.settings) {
        if (auto problem = spec_problem(spec)) {
            return prefix + *problem;
        }
        if (!keys.insert(spec.key).second) {
            return prefix + "setting '" + spec.key + "' declared twice";
        }
    }
    if (info.segments.empty()) {
        return prefix + "no segments declared";
    }
    std::set<int> labels;
    for (const auto& segment : info.segments) {
        if (segment.label == 0) {
            return prefix + "segment label 0 is reserved for the background";
        }
        if (!labels.insert(segment.label).second) {
            return prefix + "segment label " + std::to_string(segment.label) + " declared twice";
        }
        if (segment.name.empty()) {
            return prefix + "segment " + std::to_string(segment.label) + " has no name";
        }
        if (!concept_ok(segment.category) || !concept_ok(segment.type)) {
            return prefix + "segment " + std::to_string(segment.label) +
                   " needs a category and a type code (value, scheme, meaning)";
        }
    }
    return std::nullopt;
}

Algorithm::Algorithm(AlgorithmInfo info) : m_info(std::move(info)) {}

Status Algorithm::check_settings(const Settings& /*settings*/) const {
    return ok_status();
}

Result<Settings> Algorithm::parse_settings(const RawSettings& raw) const {
    auto settings = algorithms::parse_settings(m_info.settings, raw);
    if (!settings) {
        return Error{m_info.name + ": " + settings.error().message};
    }
    if (auto status = check_settings(*settings); !status) {
        return Error{m_info.name + ": " + status.error().message};
    }
    return settings;
}

Result<LabelMap> Algorithm::run(const CtVolume& volume, const Settings& settings,
                                const RunContext& context) const {
    if (auto problem = geometry_problem(volume.geometry)) {
        return Error{m_info.name + ": volume geometry: " + *problem};
    }
    if (!volume.consistent()) {
        return Error{m_info.name + ": volume has " + std::to_string(volume.voxels.size()) +
                     " voxels, its geometry " + std::to_string(*voxel_count(volume.geometry))};
    }
    auto complete = complete_settings(m_info.settings, settings);
    if (!complete) {
        return Error{m_info.name + ": " + complete.error().message};
    }
    if (auto status = check_settings(*complete); !status) {
        return Error{m_info.name + ": " + status.error().message};
    }
    if (auto status = check_cancelled(context); !status) {
        return status.error();
    }
    auto result = execute(volume, *complete, context);
    if (!result) {
        if (check_cancelled(context).ok()) {
            return Error{m_info.name + ": " + result.error().message};
        }
        return result.error(); // "cancelled"
    }
    if (auto problem = output_problem(m_info, volume, *result)) {
        return Error{m_info.name + ": " + *problem};
    }
    result->geometry = volume.geometry; // the label map is on the volume's grid
    return result;
}

unsigned thread_count(const RunContext& context) {
    if (context.threads > 0) {
        return context.threads;
    }
    return std::max(1U, std::thread::hardware_concurrency());
}

Status check_cancelled(const RunContext& context) {
    if (context.stop.stop_requested()) {
        return Error{"cancelled"};
    }
    return ok_status();
}

} // namespace segnode::algorithms
