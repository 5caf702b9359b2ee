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
#include <stop_token>
#include <vector>

namespace segnode::dicom::detail {

struct SegFrame {
    std::uint8_t label = 0;    ///< label value in the label map
    std::uint16_t segment = 0; ///< SEG SegmentNumber (1..n)
    std::size_t slice = 0;     ///< k
    /// Rows [row_begin, row_end) of the slice that hold the label: the packing looks at these
    /// only (every other bit of the frame is zero). Default: the whole slice.
    std::uint32_t row_begin = 0;
    std::uint32_t row_end = UINT32_MAX;
};

/// Rows [begin, end) of a slice in which a label occurs; empty (begin >= end) when it does not.
struct RowSpan {
    std::uint32_t begin = UINT32_MAX;
    std::uint32_t end = 0;
    [[nodiscard]] bool empty() const { return begin >= end; }
};

/// What one pass over a label map tells about it.
struct LabelCensus {
    std::array<bool, 256> anywhere{}; ///< label l occurs somewhere
    /// rows[k][l]: the rows of slice k in which label l occurs (empty: not in slice k).
    std::vector<std::array<RowSpan, 256>> rows;
    [[nodiscard]] bool present(std::size_t k, std::size_t label) const {
        return !rows[k][label].empty();
    }
};

/// One pass over the label map: which labels occur in which slice, and between which rows.
/// Rows are scanned as runs of one label (all-background stretches eight voxels at a time),
/// so the cost is one read per voxel and one update per run, whatever the number of labels.
/// Slices are shared among `threads` workers (0: hardware threads, at most 4). A stop request
/// ends the pass early with an incomplete census: the caller checks `stop` afterwards.
LabelCensus take_census(const LabelMap& labels, unsigned threads = 1,
                        const std::stop_token& stop = {});

/// Voxels equal to `label` (for messages; a separate pass).
std::uint64_t count_voxels(const LabelMap& labels, std::uint8_t label);

/// Frames for segments `labels_in_order` (their SegmentNumbers are 1, 2, ... in that order):
/// by segment, then slice, only where the segment occurs, with the census's row spans.
std::vector<SegFrame> plan_frames(const LabelCensus& census,
                                  const std::vector<std::uint8_t>& labels_in_order);

/// Bytes of the packed PixelData for `frames` frames of rows x columns: ceil(bits / 8),
/// rounded up to an even number.
std::uint64_t packed_size(std::uint64_t frames, std::uint64_t rows, std::uint64_t columns);

/// Packs the frames into `out` (packed_size bytes, which this sets to zero first). Each frame
/// is one pass over the rows of its slice that hold its label (row_begin..row_end) comparing
/// 16 voxels at a time (SSE2 where available), whose 16 result bits are OR-ed into the stream
/// at the frame's bit offset, aligned or not.
void pack_frames(const LabelMap& labels, const std::vector<SegFrame>& frames, std::uint8_t* out,
                 std::uint64_t out_size);

/// Packs frames [first, first + count) alone into `out` (at least the bytes of their bits,
/// ceil(count * rows * columns / 8); set to zero first): bit 0 of `out` is the first bit of
/// frame `first`, which must start on a byte boundary (first * rows * columns a multiple of 8,
/// e.g. `first` a multiple of 8). Concatenating consecutive pieces gives pack_frames' stream,
/// so the PixelData value can be written piece by piece.
void pack_frame_range(const LabelMap& labels, const std::vector<SegFrame>& frames,
                      std::size_t first, std::size_t count, std::uint8_t* out,
                      std::uint64_t out_size);

/// CIELab (D50, as the ICC profile connection space DICOM refers to) of an sRGB colour:
/// L in 0..100, a and b roughly in -128..127.
std::array<double, 3> srgb_to_cielab(const std::array<std::uint8_t, 3>& rgb);

/// RecommendedDisplayCIELabValue (PS3.3 C.10.7.1.1): L 0..100 -> 0..65535, a and b
/// -128..127 -> 0..65535, rounded and clamped.
std::array<std::uint16_t, 3> srgb_to_dicom_lab(const std::array<std::uint8_t, 3>& rgb);

} // namespace segnode::dicom::detail
