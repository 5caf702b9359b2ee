// Synthetic label maps with many labels, for the SEG/RTSTRUCT writer tests and the writers
// benchmark (external segmentation programs such as TotalSegmentator produce 100+ labels).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace segnode::phantom {

/// A label map of cols x rows x slices (index order i fastest, then j, then k) holding labels
/// 1..`labels` (at most 255), every one of them present, deterministic for a given `seed`.
/// Label l is a box, an ellipsoid or a hollow ellipsoid (a ring on its middle slices, i.e.
/// contours with holes) of a size drawn between 2 voxels and a third of the field (in-plane,
/// small sizes more likely) and one slice and a third of the slices; objects are spread through
/// the volume, many share slices and some overlap (larger ones are painted first, so smaller
/// ones lie on top). A label the others covered completely gets one voxel back near its
/// centre.
std::vector<std::uint8_t> many_label_map(std::size_t cols, std::size_t rows, std::size_t slices,
                                         unsigned labels, std::uint64_t seed = 1);

} // namespace segnode::phantom
