#pragma once
// Scanning label rows: most of a CT slice is outside every segment, so background is skipped
// eight pixels at a time. Shared by the SEG census and the RTSTRUCT label boxes.
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace segnode::dicom::detail {

/// The first x >= `x` whose value is not zero could be at or after the returned index: whole
/// zero blocks of eight are skipped; the caller checks single values from there.
inline std::size_t skip_zero_blocks(const std::uint8_t* row, std::size_t x, std::size_t width) {
    while (x + 8 <= width) {
        std::uint64_t chunk = 0;
        std::memcpy(&chunk, row + x, 8);
        if (chunk != 0) {
            break;
        }
        x += 8;
    }
    return x;
}

} // namespace segnode::dicom::detail
