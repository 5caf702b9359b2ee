#pragma once
// HU setting values to integer voxel bounds (internal to the algorithms layer). Voxels are
// int16, so "HU >= x" is exactly "value >= ceil(x)" and "HU <= x" is "value <= floor(x)".
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace segnode::algorithms::detail {

inline std::int32_t lower_bound_hu(double hu) {
    return static_cast<std::int32_t>(std::clamp(std::ceil(hu), -40000.0, 40000.0));
}

inline std::int32_t upper_bound_hu(double hu) {
    return static_cast<std::int32_t>(std::clamp(std::floor(hu), -40000.0, 40000.0));
}

} // namespace segnode::algorithms::detail
