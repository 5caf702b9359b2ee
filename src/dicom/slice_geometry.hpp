#pragma once
// Geometry of a stack of 2D images (private to the series loader): checks that the images form
// one regular volume, orders them along the plane normal and derives the volume geometry.
// Pure C++ (no DCMTK), so the rules can be tested on hand-made positions.
#include "segnode/core/result.hpp"
#include "segnode/core/volume.hpp"

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace segnode::dicom::detail {

/// The plane geometry of one image (a single-frame instance or one frame of a multi-frame one).
struct SliceGeometry {
    std::string label;                                  ///< names the image in messages
    std::optional<Vec3d> position;                      ///< ImagePositionPatient
    std::optional<std::array<double, 6>> orientation;   ///< ImageOrientationPatient
    std::optional<std::array<double, 2>> pixel_spacing; ///< PixelSpacing: row, column spacing
    double slice_thickness = 0.0;                       ///< SliceThickness, 0 when absent
};

struct StackRules {
    double spacing_tolerance = 0.05; ///< fraction of the median gap (see LoadOptions)
    double tilt_tolerance_deg = 0.5;
    std::optional<double> gantry_tilt_attribute; ///< GantryDetectorTilt, quoted in messages
};

struct StackGeometry {
    Geometry geometry;              ///< dims = {columns, rows, images}
    std::vector<std::size_t> order; ///< order[k] = index of the image that becomes slice k
};

/// Largest difference between ImageOrientationPatient components still treated as equal.
inline constexpr double orientation_tolerance = 1e-4;
/// Largest difference (mm) between PixelSpacing values still treated as equal.
inline constexpr double pixel_spacing_tolerance = 1e-4;
/// Images closer than this along the normal (mm) share a position.
inline constexpr double duplicate_position_tolerance = 0.01;

/// Checks the images (orientation, pixel spacing, duplicates, gaps, tilt, regular grid) and
/// returns the ordered stack, or an error that names every problem found and the images
/// involved. Slices are ordered by increasing position along the normal row x column, so the
/// k axis points along +normal (its direction is the mean step between slice positions).
Result<StackGeometry> build_stack(const std::vector<SliceGeometry>& slices, std::size_t rows,
                                  std::size_t columns, const StackRules& rules);

/// "a\b\c" with up to 6 significant digits (the DICOM multi-value notation).
std::string format_values(const double* values, std::size_t count);

} // namespace segnode::dicom::detail
