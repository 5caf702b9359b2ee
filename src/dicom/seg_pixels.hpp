#pragma once
// The parts of the SEG writer that need no DCMTK, private to the dicom layer and unit-tested on
// their own: which frames a label map needs, BINARY bit packing, and sRGB -> DICOM CIELab.
//
// Frames: one per (segment, slice) where the segment has at least one voxel, ordered by
// segment (ascending label) and then by slice k. Bit packing follows PS3.5 8.1.1 / 8.2 for
// BitsAllocated 1: pixel p of the whole multi-frame stream (frames one after another, rows
// top to bottom, columns left to right) is bit (p % 8) of byte p / 8, bit 0 being the least
// significant. Frames are NOT padded to byte boundaries; only the whole value is padded (with
// zero bits) to an even number of bytes.
#include "segnode/core/volume.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace segnode::dicom::detail {

struct SegFrame {
    std::uint8_t label = 0;    ///< label value in the label map
    std::uint16_t segment = 0; ///< SEG SegmentNumber (1..n)
    std::size_t slice = 0;     ///< k
};

/// What one pass over a label map tells about it.
struct LabelCensus {
    std::array<std::uint64_t, 256> voxels{}; ///< voxel count per label value
    /// present[k][l]: label l occurs in slice k (index 0 unused).
    std::vector<std::array<bool, 256>> present;
};

/// Counts voxels per label and notes which labels occur in which slice.
LabelCensus take_census(const LabelMap& labels);

/// Frames for segments `labels_in_order` (their SegmentNumbers are 1, 2, ... in that order):
/// by segment, then slice, only where the segment occurs.
std::vector<SegFrame> plan_frames(const LabelCensus& census,
                                  const std::vector<std::uint8_t>& labels_in_order);

/// Bytes of the packed PixelData for `frames` frames of rows x columns: ceil(bits / 8),
/// rounded up to an even number.
std::uint64_t packed_size(std::uint64_t frames, std::uint64_t rows, std::uint64_t columns);

/// Packs the frames into `out` (packed_size bytes, which this sets to zero first). One pass
/// over each slice that has any frame, writing every segment's bits at once.
void pack_frames(const LabelMap& labels, const std::vector<SegFrame>& frames, std::uint8_t* out,
                 std::uint64_t out_size);

/// CIELab (D50, as the ICC profile connection space DICOM refers to) of an sRGB colour:
/// L in 0..100, a and b roughly in -128..127.
std::array<double, 3> srgb_to_cielab(const std::array<std::uint8_t, 3>& rgb);

/// RecommendedDisplayCIELabValue (PS3.3 C.10.7.1.1): L 0..100 -> 0..65535, a and b
/// -128..127 -> 0..65535, rounded and clamped.
std::array<std::uint16_t, 3> srgb_to_dicom_lab(const std::array<std::uint8_t, 3>& rgb);

} // namespace segnode::dicom::detail
