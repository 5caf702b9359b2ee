// Synthetic volumes for the algorithms tests.
#pragma once

#include "phantom.hpp"
#include "segnode/core/volume.hpp"

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace segnode::algorithms::test {

/// The geometry of a phantom series (as a loader would build it from the files).
inline Geometry phantom_geometry(const phantom::PhantomSpec& spec) {
    const phantom::PhantomGeometry g = phantom::compute_geometry(spec);
    Geometry geometry;
    geometry.dims = {static_cast<std::size_t>(spec.cols), static_cast<std::size_t>(spec.rows),
                     static_cast<std::size_t>(spec.slices)};
    geometry.spacing = {g.pixel_spacing, g.pixel_spacing, g.slice_spacing};
    geometry.origin = g.first_position;
    const double step =
        std::sqrt(g.slice_step[0] * g.slice_step[0] + g.slice_step[1] * g.slice_step[1] +
                  g.slice_step[2] * g.slice_step[2]);
    geometry.direction =
        make_direction(g.row_dir, g.col_dir,
                       {g.slice_step[0] / step, g.slice_step[1] / step, g.slice_step[2] / step});
    return geometry;
}

struct PhantomVolume {
    CtVolume ct;
    LabelMap truth; ///< phantom labels: 0 air, 1 soft tissue, 2 lung, 3 bone, 4 table
};

/// CT and truth labels at the voxel centres, with gaussian noise of `noise_hu`. With
/// `supersample` n > 1 each CT value is the mean HU of n x n x n points spread over the voxel
/// (partial volume at boundaries, as a real scanner gives); the truth stays the label at the
/// centre.
inline PhantomVolume make_phantom_volume(const phantom::PhantomSpec& spec, double noise_hu,
                                         int supersample = 1, std::uint64_t seed = 7) {
    PhantomVolume out;
    const Geometry geometry = phantom_geometry(spec);
    out.ct = make_volume<std::int16_t>(geometry, 0);
    out.truth = make_volume<std::uint8_t>(geometry, 0);
    const phantom::Anatomy anatomy(spec);
    std::mt19937_64 engine(seed);
    std::normal_distribution<double> noise(0.0, noise_hu > 0.0 ? noise_hu : 1.0);
    const int n = supersample > 1 ? supersample : 1;
    std::vector<double> offsets; // sub-voxel sample positions in voxel units
    for (int s = 0; s < n; ++s) {
        offsets.push_back((s + 0.5) / n - 0.5);
    }
    const auto& d = geometry.dims;
    for (std::size_t k = 0; k < d[2]; ++k) {
        for (std::size_t j = 0; j < d[1]; ++j) {
            for (std::size_t i = 0; i < d[0]; ++i) {
                const auto fi = static_cast<double>(i);
                const auto fj = static_cast<double>(j);
                const auto fk = static_cast<double>(k);
                const Vec3d p = voxel_to_patient(geometry, fi, fj, fk);
                const int label = anatomy.label(p[0], p[1], p[2]);
                double hu = 0.0;
                if (n == 1) {
                    hu = phantom::truth_hu(label);
                } else {
                    for (const double dk : offsets) {
                        for (const double dj : offsets) {
                            for (const double di : offsets) {
                                const Vec3d q =
                                    voxel_to_patient(geometry, fi + di, fj + dj, fk + dk);
                                hu += phantom::truth_hu(anatomy.label(q[0], q[1], q[2]));
                            }
                        }
                    }
                    hu /= static_cast<double>(n * n * n);
                }
                if (noise_hu > 0.0) {
                    hu += noise(engine);
                }
                const std::size_t idx = out.ct.index(i, j, k);
                out.ct.voxels[idx] = static_cast<std::int16_t>(std::lround(hu));
                out.truth.voxels[idx] = static_cast<std::uint8_t>(label);
            }
        }
    }
    return out;
}

/// A chest-sized phantom: 128 x 128 x 40 voxels of 3 x 3 x 5 mm (FOV 384 x 384 x 200 mm).
inline phantom::PhantomSpec
chest_spec(phantom::Orientation orientation = phantom::Orientation::Axial) {
    phantom::PhantomSpec spec;
    spec.rows = 128;
    spec.cols = 128;
    spec.slices = 40;
    spec.pixel_spacing = 3.0;
    spec.slice_spacing = 5.0;
    spec.orientation = orientation;
    return spec;
}

/// Dice of (result != 0) against (truth label in [lo, hi]).
inline double dice(const LabelMap& result, const LabelMap& truth, int lo, int hi) {
    std::uint64_t a = 0;
    std::uint64_t b = 0;
    std::uint64_t both = 0;
    for (std::size_t i = 0; i < result.voxels.size(); ++i) {
        const bool r = result.voxels[i] != 0;
        const bool t = truth.voxels[i] >= lo && truth.voxels[i] <= hi;
        a += r ? 1U : 0U;
        b += t ? 1U : 0U;
        both += (r && t) ? 1U : 0U;
    }
    return a + b == 0 ? 1.0 : 2.0 * static_cast<double>(both) / static_cast<double>(a + b);
}

/// Voxels of the result that carry a given truth label.
inline std::uint64_t overlap(const LabelMap& result, const LabelMap& truth, int label) {
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < result.voxels.size(); ++i) {
        n += (result.voxels[i] != 0 && truth.voxels[i] == label) ? 1U : 0U;
    }
    return n;
}

} // namespace segnode::algorithms::test
