// Fuzz target: small random label slices -> extract_slice_contours -> even-odd rasterisation of
// each label's contours (tests/dicom/even_odd_raster.hpp) must give back exactly that label's
// pixels; every contour's hole flag matches the sign of its area and it respects max_points.
// Input: byte 0 width (1..24), byte 1 height (1..24), byte 2 max_points (0..63; below 4 means
// 4), byte 3 number of labels (1..3), then one byte per pixel (value % (labels + 1), missing
// pixels are 0).
#include "even_odd_raster.hpp"
#include "segnode/dicom/contours.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

namespace {

using segnode::dicom::ContourOptions;

[[noreturn]] void fail(const char* what, unsigned label, const std::vector<std::uint8_t>& slice,
                       std::size_t w, std::size_t h) {
    std::fprintf(stderr, "fuzz_contours: %s (label %u, %zu x %zu)\n", what, label, w, h);
    for (std::size_t j = 0; j < h; ++j) {
        for (std::size_t i = 0; i < w; ++i) {
            std::fputc('0' + slice[i + w * j], stderr);
        }
        std::fputc('\n', stderr);
    }
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 4) {
        return 0;
    }
    const std::size_t w = 1 + data[0] % 24;
    const std::size_t h = 1 + data[1] % 24;
    ContourOptions options;
    options.max_points = data[2] % 64;
    const unsigned labels = 1 + data[3] % 3;
    std::vector<std::uint8_t> slice(w * h, 0);
    for (std::size_t p = 0; p < slice.size() && 4 + p < size; ++p) {
        slice[p] = static_cast<std::uint8_t>(data[4 + p] % (labels + 1));
    }
    const std::size_t limit =
        options.max_points == 0 ? 0 : std::max<std::size_t>(4, options.max_points);

    const auto result = segnode::dicom::extract_slice_contours(slice, w, h, options);
    std::vector<bool> seen(labels + 1, false);
    for (const auto& lc : result) {
        if (lc.label == 0 || lc.label > labels || seen[lc.label] || lc.contours.empty()) {
            fail("unexpected label entry", lc.label, slice, w, h);
        }
        seen[lc.label] = true;
        const auto raster = segnode::dicom::test::rasterise_even_odd(lc.contours, w, h, 1);
        if (raster.odd_row >= 0) {
            fail("odd number of crossings", lc.label, slice, w, h);
        }
        for (std::size_t p = 0; p < slice.size(); ++p) {
            if ((slice[p] == lc.label) != (raster.mask[p] == 1)) {
                fail("rasterised contours differ from the mask", lc.label, slice, w, h);
            }
        }
        for (const auto& c : lc.contours) {
            const double area = segnode::dicom::signed_area(c.points);
            if (c.points.size() < 4 || area == 0.0 || c.hole != (area < 0.0)) {
                fail("contour orientation or size", lc.label, slice, w, h);
            }
            if (limit != 0 && c.points.size() > limit) {
                fail("contour exceeds max_points", lc.label, slice, w, h);
            }
        }
    }
    for (unsigned l = 1; l <= labels; ++l) {
        const bool present = std::find(slice.begin(), slice.end(), l) != slice.end();
        if (present != seen[l]) {
            fail("label present in the mask but without contours (or the reverse)", l, slice, w, h);
        }
    }
    return 0;
}
