// The anatomical built-ins: `body` (external contour), `lungs` and `bone` (both inside it).
#include "codes.hpp"
#include "hu.hpp"
#include "parallel.hpp"
#include "segnode/algorithms/builtin.hpp"
#include "segnode/algorithms/mask_ops.hpp"

#include <cmath>
#include <limits>
#include <string>

namespace segnode::algorithms {

namespace {

constexpr std::int32_t no_upper = std::numeric_limits<std::int32_t>::max();
constexpr std::int32_t no_lower = std::numeric_limits<std::int32_t>::min();

// mask &= lower <= value <= upper, in place.
void intersect_range(LabelMap& mask, const CtVolume& volume, std::int32_t lower, std::int32_t upper,
                     unsigned threads) {
    const std::int16_t* in = volume.voxels.data();
    std::uint8_t* m = mask.voxels.data();
    detail::parallel_for(mask.voxels.size(), threads, [=](std::size_t b, std::size_t e) {
        intersect_span(in + b, m + b, e - b, lower, upper);
    });
}

void append(std::vector<SettingSpec>& to, std::vector<SettingSpec> specs) {
    for (auto& spec : specs) {
        to.push_back(std::move(spec));
    }
}

SettingSpec body_min_hu_setting() {
    return double_setting("body_min_hu", -500.0, -32768.0, 32767.0,
                          "HU threshold of the body contour the structure must lie in");
}

// The body contour used by lungs and bone: the body algorithm's defaults.
Result<LabelMap> inner_body(const CtVolume& volume, const Settings& settings,
                            const RunContext& context) {
    BodyOptions options;
    options.min_hu = settings.get_double("body_min_hu");
    return body_mask(volume, options, context);
}

class BodyAlgorithm final : public Algorithm {
public:
    BodyAlgorithm() : Algorithm(make_info()) {}

private:
    static AlgorithmInfo make_info() {
        AlgorithmInfo info;
        info.name = "body";
        info.version = "1.0.0";
        info.description =
            "External body contour: voxels >= min_hu, optional in-plane opening, largest "
            "6-connected component (the table and anything else separated by air is left "
            "out), holes filled slice by slice in the planes closest to axial.";
        info.settings.push_back(
            double_setting("min_hu", -500.0, -32768.0, 32767.0, "lowest HU of the body"));
        info.settings.push_back(double_setting(
            "opening_mm", 0.0, 0.0, 50.0,
            "half-size (mm) of an in-plane opening that cuts thin bridges to the table; 0 = off"));
        append(info.settings, postprocess_settings(1, true, 0.0));
        info.segments.push_back(
            {1, "Body", codes::anatomical_structure(), codes::entire_body(), {177, 122, 101}});
        return info;
    }

    Result<LabelMap> execute(const CtVolume& volume, const Settings& settings,
                             const RunContext& context) const override {
        BodyOptions options;
        options.min_hu = settings.get_double("min_hu");
        options.opening_mm = settings.get_double("opening_mm");
        options.keep_largest = static_cast<std::size_t>(settings.get_int("keep_largest"));
        options.min_component_mm3 = settings.get_double("min_component_mm3");
        options.fill_holes = settings.get_bool("fill_holes");
        return body_mask(volume, options, context);
    }
};

class LungsAlgorithm final : public Algorithm {
public:
    LungsAlgorithm() : Algorithm(make_info()) {}

private:
    static AlgorithmInfo make_info() {
        AlgorithmInfo info;
        info.name = "lungs";
        info.version = "1.1.0";
        info.description =
            "Lungs: voxels <= max_hu inside the body contour (so air outside the body is never "
            "lung), the two largest 6-connected components (the second only if it holds at "
            "least second_min_fraction of the largest), holes (vessels) filled slice by slice. "
            "Airways inside the body (trachea, main bronchi) are included.";
        info.settings.push_back(
            double_setting("max_hu", -400.0, -32768.0, 32767.0, "highest HU of lung"));
        // When the airways join both lungs into one component, the second largest air pocket
        // is stomach or bowel gas (~0.1 L against ~4 L on a real chest CT); a real second
        // lung is at least a third of the first.
        info.settings.push_back(double_setting(
            "second_min_fraction", 0.15, 0.0, 1.0,
            "keep a further component only if it has at least this fraction of the largest's "
            "voxels (0 = keep keep_largest components whatever their size)"));
        info.settings.push_back(body_min_hu_setting());
        append(info.settings, postprocess_settings(2, true, 0.0));
        info.segments.push_back(
            {1, "Lungs", codes::anatomical_structure(), codes::lung(), {197, 165, 145}});
        return info;
    }

    Result<LabelMap> execute(const CtVolume& volume, const Settings& settings,
                             const RunContext& context) const override {
        auto mask = inner_body(volume, settings, context);
        if (!mask) {
            return mask;
        }
        intersect_range(*mask, volume, no_lower,
                        detail::upper_bound_hu(settings.get_double("max_hu")),
                        thread_count(context));
        if (auto status = postprocess(*mask, settings, context); !status) {
            return status.error();
        }
        if (const double fraction = settings.get_double("second_min_fraction"); fraction > 0.0) {
            ComponentFilter filter;
            filter.min_fraction_of_largest = fraction;
            filter_components(*mask, filter, thread_count(context));
        }
        return mask;
    }
};

class BoneAlgorithm final : public Algorithm {
public:
    BoneAlgorithm() : Algorithm(make_info()) {}

private:
    static AlgorithmInfo make_info() {
        AlgorithmInfo info;
        info.name = "bone";
        info.version = "1.0.0";
        info.description =
            "Bone: voxels >= min_hu inside the body contour (so the table, outside the body, "
            "is left out).";
        info.settings.push_back(
            double_setting("min_hu", 250.0, -32768.0, 32767.0, "lowest HU of bone"));
        info.settings.push_back(body_min_hu_setting());
        // 100 mm^3 drops the specks noise puts above min_hu in soft tissue (and small
        // calcifications) while keeping every real bone of a chest or abdomen series.
        append(info.settings, postprocess_settings(0, false, 100.0));
        info.segments.push_back({1, "Bone", codes::tissue(), codes::bone(), {241, 214, 145}});
        return info;
    }

    Result<LabelMap> execute(const CtVolume& volume, const Settings& settings,
                             const RunContext& context) const override {
        auto mask = inner_body(volume, settings, context);
        if (!mask) {
            return mask;
        }
        intersect_range(*mask, volume, detail::lower_bound_hu(settings.get_double("min_hu")),
                        no_upper, thread_count(context));
        if (auto status = postprocess(*mask, settings, context); !status) {
            return status.error();
        }
        return mask;
    }
};

} // namespace

Result<LabelMap> body_mask(const CtVolume& volume, const BodyOptions& options,
                           const RunContext& context) {
    const unsigned threads = thread_count(context);
    LabelMap mask =
        threshold_mask(volume, detail::lower_bound_hu(options.min_hu), no_upper, threads);
    const std::size_t axis = axial_axis(volume.geometry);
    if (options.opening_mm > 0.0) {
        // The in-plane axes of the planes perpendicular to `axis`, lower index first.
        const std::size_t p = axis == 0 ? 1 : 0;
        const std::size_t q = axis == 2 ? 1 : 2;
        const auto radius = [&](std::size_t a) {
            return static_cast<std::size_t>(
                std::lround(options.opening_mm / volume.geometry.spacing[a]));
        };
        open_2d(mask, axis, radius(p), radius(q), threads);
    }
    if (auto status = check_cancelled(context); !status) {
        return status.error();
    }
    if (options.keep_largest > 0 || options.min_component_mm3 > 0.0) {
        ComponentFilter filter;
        filter.keep_largest = options.keep_largest;
        filter.min_voxels = voxels_for_mm3(volume.geometry, options.min_component_mm3);
        filter_components(mask, filter, threads);
        if (auto status = check_cancelled(context); !status) {
            return status.error();
        }
    }
    if (options.fill_holes) {
        fill_holes_2d(mask, axis, threads);
    }
    return mask;
}

std::unique_ptr<Algorithm> make_body_algorithm() {
    return std::make_unique<BodyAlgorithm>();
}

std::unique_ptr<Algorithm> make_lungs_algorithm() {
    return std::make_unique<LungsAlgorithm>();
}

std::unique_ptr<Algorithm> make_bone_algorithm() {
    return std::make_unique<BoneAlgorithm>();
}

} // namespace segnode::algorithms
