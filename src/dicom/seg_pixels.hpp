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
    std::array<bool, 256> anywhere{}; ///< label l occurs somewhere
    /// present[k][l]: label l occurs in slice k.
    std::vector<std::array<bool, 256>> present;
};

/// Notes which labels occur in which slice (one store per voxel, no counting: a histogram's
/// read-modify-write chain made this pass twice as slow as the packing).
LabelCensus take_census(const LabelMap& labels);

/// Voxels equal to `label` (for messages; a separate pass).
std::uint64_t count_voxels(const LabelMap& labels, std::uint8_t label);

/// Frames for segments `labels_in_order` (their SegmentNumbers are 1, 2, ... in that order):
/// by segment, then slice, only where the segment occurs.
std::vector<SegFrame> plan_frames(const LabelCensus& census,
                                  const std::vector<std::uint8_t>& labels_in_order);

/// Bytes of the packed PixelData for `frames` frames of rows x columns: ceil(bits / 8),
/// rounded up to an even number.
std::uint64_t packed_size(std::uint64_t frames, std::uint64_t rows, std::uint64_t columns);

/// Packs the frames into `out` (packed_size bytes, which this sets to zero first). Each frame
/// is one pass over its slice comparing 16 voxels at a time (SSE2 where available), whose 16
/// result bits are OR-ed into the stream at the frame's bit offset, aligned or not.
void pack_frames(const LabelMap& labels, const std::vector<SegFrame>& frames, std::uint8_t* out,
                 std::uint64_t out_size);

/// CIELab (D50, as the ICC profile connection space DICOM refers to) of an sRGB colour:
/// L in 0..100, a and b roughly in -128..127.
std::array<double, 3> srgb_to_cielab(const std::array<std::uint8_t, 3>& rgb);

/// RecommendedDisplayCIELabValue (PS3.3 C.10.7.1.1): L 0..100 -> 0..65535, a and b
/// -128..127 -> 0..65535, rounded and clamped.
std::array<std::uint16_t, 3> srgb_to_dicom_lab(const std::array<std::uint8_t, 3>& rgb);

} // namespace segnode::dicom::detail
