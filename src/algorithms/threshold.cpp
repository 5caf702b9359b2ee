// The shared post-processing settings and the `threshold` algorithm.
#include "codes.hpp"
#include "hu.hpp"
#include "segnode/algorithms/builtin.hpp"
#include "segnode/algorithms/mask_ops.hpp"

#include <string>

namespace segnode::algorithms {

std::vector<SettingSpec> postprocess_settings(std::int64_t keep_largest, bool fill_holes,
                                              double min_component_mm3) {
    return {
        int_setting("keep_largest", keep_largest, 0, 1000000,
                    "keep only this many largest 6-connected components (0 = all)"),
        bool_setting("fill_holes", fill_holes,
                     "fill holes slice by slice in the planes closest to axial"),
        double_setting("min_component_mm3", min_component_mm3, 0.0, 1e12,
                       "remove 6-connected components smaller than this volume (mm^3)"),
    };
}

Status postprocess(LabelMap& mask, const Settings& settings, const RunContext& context) {
    const unsigned threads = thread_count(context);
    const std::int64_t keep = settings.get_int("keep_largest");
    const double min_mm3 = settings.get_double("min_component_mm3");
    if (keep > 0 || min_mm3 > 0.0) {
        ComponentFilter filter;
        filter.keep_largest = static_cast<std::size_t>(keep);
        filter.min_voxels = voxels_for_mm3(mask.geometry, min_mm3);
        const std::size_t kept = filter_components(mask, filter, threads);
        if (context.log) {
            context.log("components kept: " + std::to_string(kept));
        }
        if (auto status = check_cancelled(context); !status) {
            return status;
        }
    }
    if (settings.get_bool("fill_holes")) {
        fill_holes_2d(mask, axial_axis(mask.geometry), threads);
    }
    return ok_status();
}

namespace {

using detail::lower_bound_hu;
using detail::upper_bound_hu;

class ThresholdAlgorithm final : public Algorithm {
public:
    ThresholdAlgorithm() : Algorithm(make_info()) {}

private:
    static AlgorithmInfo make_info() {
        AlgorithmInfo info;
        info.name = "threshold";
        info.version = "1.0.0";
        info.description = "Voxels with min_hu <= HU <= max_hu are foreground (bounds inclusive).";
        info.settings.push_back(
            double_setting("min_hu", -500.0, -32768.0, 32767.0, "lowest HU included"));
        info.settings.push_back(
            double_setting("max_hu", 3071.0, -32768.0, 32767.0, "highest HU included"));
        for (auto& spec : postprocess_settings(0, false, 0.0)) {
            info.settings.push_back(std::move(spec));
        }
        info.segments.push_back(
            {1, "Threshold", codes::tissue(), codes::tissue(), {128, 174, 128}});
        return info;
    }

    Status check_settings(const Settings& settings) const override {
        const double lo = settings.get_double("min_hu");
        const double hi = settings.get_double("max_hu");
        if (lo > hi) {
            return Error{"min_hu (" + format_setting_value(lo) + ") is above max_hu (" +
                         format_setting_value(hi) + ")"};
        }
        return ok_status();
    }

    Result<LabelMap> execute(const CtVolume& volume, const Settings& settings,
                             const RunContext& context) const override {
        LabelMap mask =
            threshold_mask(volume, lower_bound_hu(settings.get_double("min_hu")),
                           upper_bound_hu(settings.get_double("max_hu")), thread_count(context));
        if (auto status = postprocess(mask, settings, context); !status) {
            return status.error();
        }
        return mask;
    }
};

} // namespace

std::unique_ptr<Algorithm> make_threshold_algorithm() {
    return std::make_unique<ThresholdAlgorithm>();
}

} // namespace segnode::algorithms
