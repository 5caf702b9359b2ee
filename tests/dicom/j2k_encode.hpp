#pragma once
// JPEG 2000 encoding for the tests, with OpenJPEG's encoder (segnode itself only decodes):
// codestreams of known samples, to check the decoder against them.
#include <cstdint>
#include <vector>

namespace segnode::test {

struct J2kEncodeOptions {
    unsigned precision = 16;
    bool is_signed = false;
    unsigned components = 1; ///< 3: an RGB image with the multiple component transform
    bool lossy = false;      ///< irreversible 9/7 wavelet at 10:1 instead of reversible 5/3
    bool jp2 = false;        ///< a JP2 file instead of a bare codestream
};

/// Encodes width x height samples per component (component after component); throws on failure.
std::vector<std::uint8_t> encode_j2k(const std::vector<std::int32_t>& samples, unsigned width,
                                     unsigned height, const J2kEncodeOptions& options = {});

} // namespace segnode::test
