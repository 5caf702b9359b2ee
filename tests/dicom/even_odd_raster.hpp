#pragma once
// Independent even-odd rasteriser of the contours of src/dicom/contours.cpp, shared by the unit
// tests (contours_test.cpp) and the contour fuzz target (tests/fuzz/fuzz_contours.cpp): per row
// of pixel centres, the crossings of every contour edge with the line y = j, sorted; pixels
// between pairs of crossings are inside.
#include "segnode/dicom/contours.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace segnode::dicom::test {

struct Rasterised {
    std::vector<std::uint8_t> mask; ///< width * height, `value` inside, 0 outside
    /// First row with an odd number of crossings (contours not closed); -1 when none.
    long odd_row = -1;
};

inline Rasterised rasterise_even_odd(const std::vector<Contour>& contours, std::size_t w,
                                     std::size_t h, std::uint8_t value = 1) {
    Rasterised out{std::vector<std::uint8_t>(w * h, 0), -1};
    for (std::size_t j = 0; j < h; ++j) {
        const double y = static_cast<double>(j);
        std::vector<double> xs;
        for (const Contour& c : contours) {
            const std::size_t n = c.points.size();
            for (std::size_t e = 0; e < n; ++e) {
                const ContourPoint& p = c.points[e];
                const ContourPoint& q = c.points[(e + 1) % n];
                if ((p.y > y) != (q.y > y)) {
                    xs.push_back(p.x + (y - p.y) * (q.x - p.x) / (q.y - p.y));
                }
            }
        }
        std::sort(xs.begin(), xs.end());
        if (xs.size() % 2 != 0 && out.odd_row < 0) {
            out.odd_row = static_cast<long>(j);
        }
        for (std::size_t k = 0; k + 1 < xs.size(); k += 2) {
            for (std::size_t i = 0; i < w; ++i) {
                const double x = static_cast<double>(i);
                if (x > xs[k] && x < xs[k + 1]) {
                    out.mask[i + w * j] = value;
                }
            }
        }
    }
    return out;
}

} // namespace segnode::dicom::test
