#pragma once
// Frames of encapsulated (compressed) PixelData, PS3.5 A.4: which fragments make up each frame
// (private to the dicom layer). Used for the transfer syntaxes segnode decodes itself (JPEG
// 2000); DCMTK finds the frames of the syntaxes it decodes.
#include "segnode/core/result.hpp"

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

class DcmPixelSequence;

namespace segnode::dicom::detail {

using Bytes = std::span<const std::uint8_t>;

/// [first, last) fragment indices (0 = the first fragment after the Basic Offset Table).
struct FragmentRange {
    std::size_t first = 0;
    std::size_t last = 0;
};

/// Which fragments belong to each of `frames` frames, in this order:
/// - a single frame: all fragments;
/// - a Basic Offset Table with one offset per frame (offsets of each frame's first fragment
///   item, from the first fragment item): the fragments from each offset to the next;
/// - as many fragments as frames: one each;
/// - otherwise fragments for which `starts_frame` is true begin a frame (e.g. the JPEG 2000 SOC
///   and SIZ markers), when exactly `frames` of them do, the first one among them.
/// Anything else is an error that says what did not add up.
Result<std::vector<FragmentRange>> group_fragments(const std::vector<Bytes>& fragments,
                                                   const std::vector<std::uint32_t>& offset_table,
                                                   std::uint32_t frames,
                                                   const std::function<bool(Bytes)>& starts_frame);

/// The bytes of every fragment of `sequence` (loaded into memory; valid while it lives) and its
/// Basic Offset Table, read with DCMTK.
struct Fragments {
    std::vector<Bytes> fragments;
    std::vector<std::uint32_t> offset_table;
};
Result<Fragments> read_fragments(DcmPixelSequence& sequence);

/// One frame's bytes: the fragment itself when the frame is one fragment, else `joined`
/// (filled with the fragments one after another).
Bytes frame_bytes(const std::vector<Bytes>& fragments, FragmentRange range,
                  std::vector<std::uint8_t>& joined);

} // namespace segnode::dicom::detail
