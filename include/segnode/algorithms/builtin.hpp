#pragma once
// The built-in algorithms and the pieces they share.
//
// Every built-in produces one segment, label 1, and accepts the shared post-processing
// settings (defaults differ per algorithm), applied in this order:
//   min_component_mm3  remove 6-connected components smaller than this volume,
//   keep_largest       then keep only the N largest components (0 = all),
//   fill_holes         then fill holes in planes closest to axial (see fill_holes_2d).
#include "segnode/algorithms/algorithm.hpp"
#include "segnode/algorithms/settings.hpp"
#include "segnode/core/result.hpp"
#include "segnode/core/volume.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace segnode::algorithms {

std::unique_ptr<Algorithm> make_otsu_algorithm();
std::unique_ptr<Algorithm> make_threshold_algorithm();
std::unique_ptr<Algorithm> make_body_algorithm();
std::unique_ptr<Algorithm> make_lungs_algorithm();
std::unique_ptr<Algorithm> make_bone_algorithm();

/// The shared post-processing settings with the given defaults.
std::vector<SettingSpec> postprocess_settings(std::int64_t keep_largest, bool fill_holes,
                                              double min_component_mm3);

/// Applies the shared post-processing settings to a 0/1 mask (order above).
Status postprocess(LabelMap& mask, const Settings& settings, const RunContext& context);

struct BodyOptions {
    double min_hu = -500.0;  ///< body = voxels >= this
    double opening_mm = 0.0; ///< in-plane opening half-size in mm; 0 = none
    std::size_t keep_largest = 1;
    double min_component_mm3 = 0.0;
    bool fill_holes = true;
};

/// The external body contour as a 0/1 mask: threshold, optional axial opening, components,
/// axial hole filling. The table is excluded when air separates it from the body.
Result<LabelMap> body_mask(const CtVolume& volume, const BodyOptions& options,
                           const RunContext& context);

} // namespace segnode::algorithms
