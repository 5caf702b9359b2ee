#pragma once
// The plain volume type shared by the dicom layer (which loads series into it) and the
// algorithms layer (which segments it). Deliberately nothing but a buffer and a geometry, so
// that neither side needs the other's libraries (DCMTK, ITK).
//
// Index order: voxel (i, j, k) with i = column (fastest), j = row, k = slice (slowest);
// the linear index is i + dims[0] * (j + dims[1] * k).
//
// Geometry is in DICOM patient coordinates (LPS, mm). direction holds a 3x3 matrix in
// row-major order whose COLUMNS are the unit vectors of the index axes (the same layout as
// ITK's and SimpleITK's GetDirection()):
//   direction[3 * r + 0] = component r of the row direction (i axis, ImageOrientation[0..2]),
//   direction[3 * r + 1] = component r of the column direction (j axis, ImageOrientation[3..5]),
//   direction[3 * r + 2] = component r of the slice axis: the unit vector from slice k to k + 1,
//                          i.e. +/- the plane normal (or sheared with gantry tilt).
// The patient position of a voxel centre is then exactly the DICOM formula (PS3.3 C.7.6.2.1.1)
//   origin + i * spacing[0] * dir_i + j * spacing[1] * dir_j + k * spacing[2] * dir_k,
// with spacing[0] the column spacing (PixelSpacing[1]), spacing[1] the row spacing
// (PixelSpacing[0]) and spacing[2] the distance between consecutive slice positions.
#include "segnode/core/buffer.hpp"

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace segnode {

using Vec3d = std::array<double, 3>;

struct Geometry {
    std::array<std::size_t, 3> dims{};      ///< x = columns, y = rows, z = slices
    std::array<double, 3> spacing{1, 1, 1}; ///< mm: column spacing, row spacing, slice spacing
    Vec3d origin{};                         ///< patient position (LPS mm) of voxel (0,0,0) centre
    std::array<double, 9> direction{1, 0, 0, 0, 1, 0, 0, 0, 1}; ///< see the file comment
};

/// Unit vector of index axis `axis` (0 = i, 1 = j, 2 = k): column `axis` of the direction.
inline Vec3d axis_direction(const Geometry& geometry, std::size_t axis) {
    return {geometry.direction[axis], geometry.direction[3 + axis], geometry.direction[6 + axis]};
}

/// Direction matrix from the unit vectors of the i, j and k axes.
inline std::array<double, 9> make_direction(const Vec3d& dir_i, const Vec3d& dir_j,
                                            const Vec3d& dir_k) {
    return {dir_i[0], dir_j[0], dir_k[0], dir_i[1], dir_j[1],
            dir_k[1], dir_i[2], dir_j[2], dir_k[2]};
}

/// Patient position (LPS mm) of the (possibly fractional) voxel index (i, j, k).
inline Vec3d voxel_to_patient(const Geometry& geometry, double i, double j, double k) {
    const double si = i * geometry.spacing[0];
    const double sj = j * geometry.spacing[1];
    const double sk = k * geometry.spacing[2];
    Vec3d p{};
    for (std::size_t r = 0; r < 3; ++r) {
        p[r] = geometry.origin[r] + si * geometry.direction[3 * r] +
               sj * geometry.direction[3 * r + 1] + sk * geometry.direction[3 * r + 2];
    }
    return p;
}

/// Number of voxels, or std::nullopt when the product overflows std::size_t.
inline std::optional<std::size_t> voxel_count(const Geometry& geometry) {
    std::size_t n = 1;
    for (const std::size_t d : geometry.dims) {
        if (d != 0 && n > std::numeric_limits<std::size_t>::max() / d) {
            return std::nullopt;
        }
        n *= d;
    }
    return n;
}

inline double voxel_volume_mm3(const Geometry& geometry) {
    return geometry.spacing[0] * geometry.spacing[1] * geometry.spacing[2];
}

/// Volume of one voxel in millilitres (1 ml = 1000 mm^3).
inline double voxel_volume_ml(const Geometry& geometry) {
    return voxel_volume_mm3(geometry) / 1000.0;
}

/// std::nullopt for a usable geometry, otherwise the reason: every dimension at least 1,
/// spacings finite and positive, origin finite, direction columns of unit length (1e-3).
inline std::optional<std::string> geometry_problem(const Geometry& geometry) {
    for (std::size_t a = 0; a < 3; ++a) {
        if (geometry.dims[a] == 0) {
            return "dimension " + std::to_string(a) + " is zero";
        }
        if (!std::isfinite(geometry.spacing[a]) || geometry.spacing[a] <= 0.0) {
            return "spacing " + std::to_string(a) + " is not a positive number";
        }
        if (!std::isfinite(geometry.origin[a])) {
            return "origin is not finite";
        }
        const Vec3d d = axis_direction(geometry, a);
        const double norm = std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
        if (!std::isfinite(norm) || std::abs(norm - 1.0) > 1e-3) {
            return "direction of axis " + std::to_string(a) + " is not a unit vector";
        }
    }
    if (!voxel_count(geometry)) {
        return "voxel count overflows";
    }
    return std::nullopt;
}

template <class T> struct Volume {
    using value_type = T;

    Geometry geometry;
    Buffer<T> voxels; ///< dims[0] * dims[1] * dims[2] values, index order as above

    [[nodiscard]] std::size_t index(std::size_t i, std::size_t j, std::size_t k) const {
        return i + geometry.dims[0] * (j + geometry.dims[1] * k);
    }
    [[nodiscard]] T& at(std::size_t i, std::size_t j, std::size_t k) {
        return voxels[index(i, j, k)];
    }
    [[nodiscard]] const T& at(std::size_t i, std::size_t j, std::size_t k) const {
        return voxels[index(i, j, k)];
    }
    /// True when the buffer holds exactly one value per voxel of the geometry.
    [[nodiscard]] bool consistent() const {
        const auto n = voxel_count(geometry);
        return n && *n == voxels.size();
    }
};

/// A volume of `geometry` with every voxel set to `fill` (no voxels if the count overflows).
template <class T> Volume<T> make_volume(const Geometry& geometry, T fill = T{}) {
    const auto n = voxel_count(geometry);
    return Volume<T>{geometry, Buffer<T>(n ? *n : 0, fill)};
}

/// CT in Hounsfield units after the modality rescale, clamped to the int16 range by the loader
/// (int16 rather than float halves the memory of a series: 512 x 512 x 300 is 157 MB).
using CtVolume = Volume<std::int16_t>;
/// Label per voxel: 0 = background, otherwise a segment's label number.
using LabelMap = Volume<std::uint8_t>;
/// A label map as external programs write it (uint16: up to 65535 labels); segnode's own
/// segments are 1..255, so it is narrowed to LabelMap after its labels are checked.
using WideLabelMap = Volume<std::uint16_t>;

} // namespace segnode
