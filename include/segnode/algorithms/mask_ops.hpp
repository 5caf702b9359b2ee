#pragma once
// Binary mask operations on label maps, written for speed and small memory on whole CT
// volumes: any non-zero voxel is foreground; voxels a function adds are set to 1.
//
// Connected components work on runs (maximal stretches of foreground along a row) joined by
// union-find, so their memory grows with the number of runs (12 bytes each), not with the
// number of voxels: a body mask of 512 x 512 x 300 has a few hundred thousand runs.
#include "segnode/core/volume.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace segnode::algorithms {

enum class Connectivity {
    Faces, ///< 6-connected: voxels sharing a face (the default everywhere in segnode)
    Full,  ///< 26-connected: sharing a face, an edge or a corner
};

/// Sizes in voxels of the connected components of the foreground, largest first.
std::vector<std::uint64_t> component_sizes(const LabelMap& mask,
                                           Connectivity connectivity = Connectivity::Faces);

struct ComponentFilter {
    std::size_t keep_largest = 0; ///< keep only this many largest components; 0 = all
    std::uint64_t min_voxels = 0; ///< remove components with fewer voxels first
    Connectivity connectivity = Connectivity::Faces;
    /// Then remove components smaller than this fraction of the largest (0 = off).
    double min_fraction_of_largest = 0.0;
};

/// Sets to 0 the components smaller than min_voxels, then all but the keep_largest largest of
/// the rest (equal sizes: the one reached first in index order wins), then those smaller than
/// min_fraction_of_largest of the largest. Returns how many components remain.
std::size_t filter_components(LabelMap& mask, const ComponentFilter& filter, unsigned threads = 1);

/// 2D hole filling, plane by plane: in each plane perpendicular to index axis `axis` (2 = the
/// acquired slices), background voxels that are not 4-connected within the plane to the
/// plane's border become 1. (Per plane rather than in 3D on purpose: lungs and airways reach
/// the ends of a chest series, so in 3D they would not be holes of the body.)
void fill_holes_2d(LabelMap& mask, std::size_t axis, unsigned threads = 1);

/// 2D binary opening (erosion then dilation) plane by plane, with a rectangle of half-sizes
/// radius_a x radius_b voxels along the plane's lower and higher index axis. Voxels outside
/// the volume count as background. Removes structures thinner than the rectangle, such as a
/// thin bridge between the body and the table.
void open_2d(LabelMap& mask, std::size_t axis, std::size_t radius_a, std::size_t radius_b,
             unsigned threads = 1);

/// The index axis (0 = i, 1 = j, 2 = k) most aligned with the patient's head-feet axis: planes
/// perpendicular to it are the closest to axial, whatever the acquisition orientation.
std::size_t axial_axis(const Geometry& geometry);

/// Smallest number of voxels whose volume is at least `mm3` (0 for mm3 <= 0).
std::uint64_t voxels_for_mm3(const Geometry& geometry, double mm3);

/// Mask of the voxels with lower <= value <= upper (1 inside, 0 outside).
LabelMap threshold_mask(const CtVolume& volume, std::int32_t lower, std::int32_t upper,
                        unsigned threads = 1);

/// out[i] = lower <= in[i] <= upper (1 or 0), for n values.
void threshold_span(const std::int16_t* in, std::uint8_t* out, std::size_t n, std::int32_t lower,
                    std::int32_t upper);
/// mask[i] = mask[i] != 0 && lower <= in[i] <= upper (1 or 0), for n values.
void intersect_span(const std::int16_t* in, std::uint8_t* mask, std::size_t n, std::int32_t lower,
                    std::int32_t upper);

/// Number of foreground voxels.
std::uint64_t count_foreground(const LabelMap& mask);

} // namespace segnode::algorithms
