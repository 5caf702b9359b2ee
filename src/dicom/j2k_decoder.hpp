#pragma once
// JPEG 2000 (ISO/IEC 15444-1) decoding of one frame with OpenJPEG, for the series loader
// (private to the dicom layer). Bytes in, stored values out: no DCMTK here, so it can be tested
// with codestreams from any encoder. DCMTK 3.6.7 has no JPEG 2000 codec; this is the only place
// that calls OpenJPEG.
#include "segnode/core/result.hpp"

#include <cstdint>
#include <span>
#include <string>

namespace segnode::dicom::detail {

/// "OpenJPEG 2.5.0": the name and runtime version of the library that decodes.
std::string openjpeg_version();

/// What the DICOM header says a frame is; the codestream must agree with it.
struct J2kFrameFormat {
    std::uint16_t rows = 0;
    std::uint16_t columns = 0;
    std::uint16_t bits_allocated = 16; ///< 8 or 16: the output is Uint8 or Uint16 per sample
    std::uint16_t bits_stored = 16;
    std::uint16_t high_bit = 15;
    bool is_signed = false; ///< PixelRepresentation 1
};

/// What the codestream said, for notes and warnings.
struct J2kFrameInfo {
    unsigned precision = 0; ///< bits per sample in the codestream
    bool is_signed = false; ///< signedness in the codestream
    bool jp2 = false;       ///< a JP2 file rather than a bare codestream
    /// The codestream's signedness differs from PixelRepresentation and its precision equals
    /// BitsStored: the bit patterns were taken as the DICOM header says (what pydicom's and
    /// GDCM's JPEG 2000 corrections do).
    bool sign_from_header = false;
};

/// True when `data` starts like a JPEG 2000 codestream (SOC + SIZ markers) or a JP2 file.
bool looks_like_j2k(std::span<const std::uint8_t> data);

/// Decodes one codestream (raw J2K as DICOM requires, or a JP2 file) into rows x columns
/// stored values at `out` (Uint8 for BitsAllocated 8, Uint16 for 16, host byte order), each
/// placed as in uncompressed pixel data: the BitsStored-wide value at bits
/// [HighBit - BitsStored + 1, HighBit]. Refused with a specific message: not JPEG 2000, more than
/// one component (colour / multiple component transform), a size, subsampling or precision that
/// differs from the header, values outside what BitsStored and PixelRepresentation can hold, and
/// truncated or corrupt codestreams (OpenJPEG's own message). `threads` > 1 lets OpenJPEG decode
/// code blocks in parallel.
Result<J2kFrameInfo> decode_j2k_frame(std::span<const std::uint8_t> data,
                                      const J2kFrameFormat& format, void* out, unsigned threads);

} // namespace segnode::dicom::detail
