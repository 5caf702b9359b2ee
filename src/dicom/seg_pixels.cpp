#include "seg_pixels.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace segnode::dicom::detail {

LabelCensus take_census(const LabelMap& labels) {
    LabelCensus census;
    const std::size_t slice_size = labels.geometry.dims[0] * labels.geometry.dims[1];
    const std::size_t slices = labels.geometry.dims[2];
    census.present.assign(slices, {});
    for (std::size_t k = 0; k < slices; ++k) {
        // A per-slice histogram in 32-bit counters keeps the inner loop to one increment.
        std::array<std::uint32_t, 256> histogram{};
        const std::uint8_t* p = labels.voxels.data() + k * slice_size;
        for (std::size_t n = 0; n < slice_size; ++n) {
            ++histogram[p[n]];
        }
        for (std::size_t l = 0; l < 256; ++l) {
            census.voxels[l] += histogram[l];
            census.present[k][l] = histogram[l] != 0;
        }
    }
    return census;
}

std::vector<SegFrame> plan_frames(const LabelCensus& census,
                                  const std::vector<std::uint8_t>& labels_in_order) {
    std::vector<SegFrame> frames;
    for (std::size_t s = 0; s < labels_in_order.size(); ++s) {
        const std::uint8_t label = labels_in_order[s];
        for (std::size_t k = 0; k < census.present.size(); ++k) {
            if (census.present[k][label]) {
                frames.push_back({label, static_cast<std::uint16_t>(s + 1), k});
            }
        }
    }
    return frames;
}

std::uint64_t packed_size(std::uint64_t frames, std::uint64_t rows, std::uint64_t columns) {
    const std::uint64_t bits = frames * rows * columns;
    const std::uint64_t bytes = (bits + 7) / 8;
    return bytes + (bytes % 2);
}

void pack_frames(const LabelMap& labels, const std::vector<SegFrame>& frames, std::uint8_t* out,
                 std::uint64_t out_size) {
    std::memset(out, 0, out_size);
    const std::size_t slice_size = labels.geometry.dims[0] * labels.geometry.dims[1];
    const std::size_t slices = labels.geometry.dims[2];
    // For each slice, the first bit of each label's frame (or none).
    constexpr std::uint64_t none = std::numeric_limits<std::uint64_t>::max();
    std::vector<std::array<std::uint64_t, 256>> offsets;
    std::vector<bool> slice_used(slices, false);
    offsets.resize(slices);
    for (auto& o : offsets) {
        o.fill(none);
    }
    for (std::size_t f = 0; f < frames.size(); ++f) {
        offsets[frames[f].slice][frames[f].label] = static_cast<std::uint64_t>(f) * slice_size;
        slice_used[frames[f].slice] = true;
    }
    for (std::size_t k = 0; k < slices; ++k) {
        if (!slice_used[k]) {
            continue;
        }
        const std::array<std::uint64_t, 256>& offset = offsets[k];
        const std::uint8_t* p = labels.voxels.data() + k * slice_size;
        for (std::size_t n = 0; n < slice_size; ++n) {
            const std::uint8_t v = p[n];
            if (v == 0 || offset[v] == none) {
                continue;
            }
            const std::uint64_t bit = offset[v] + n;
            out[bit >> 3U] |= static_cast<std::uint8_t>(1U << (bit & 7U));
        }
    }
}

std::array<double, 3> srgb_to_cielab(const std::array<std::uint8_t, 3>& rgb) {
    // sRGB (IEC 61966-2-1) -> linear -> XYZ relative to D50 (the sRGB primaries adapted from
    // D65 with the Bradford transform, as the ICC profile connection space uses) -> CIELab with
    // the D50 white point. The matrix rows sum to that white point, so sRGB white is exactly
    // L = 100, a = b = 0.
    std::array<double, 3> linear{};
    for (std::size_t c = 0; c < 3; ++c) {
        const double v = rgb[c] / 255.0;
        linear[c] = v <= 0.04045 ? v / 12.92 : std::pow((v + 0.055) / 1.055, 2.4);
    }
    constexpr double m[3][3] = {{0.4360747, 0.3850649, 0.1430804},
                                {0.2225045, 0.7168786, 0.0606169},
                                {0.0139322, 0.0971045, 0.7141733}};
    constexpr double white[3] = {0.96422, 1.0, 0.82521};
    std::array<double, 3> f{};
    for (std::size_t r = 0; r < 3; ++r) {
        const double t =
            (m[r][0] * linear[0] + m[r][1] * linear[1] + m[r][2] * linear[2]) / white[r];
        constexpr double delta = 6.0 / 29.0;
        f[r] = t > delta * delta * delta ? std::cbrt(t) : t / (3 * delta * delta) + 4.0 / 29.0;
    }
    return {116.0 * f[1] - 16.0, 500.0 * (f[0] - f[1]), 200.0 * (f[1] - f[2])};
}

std::array<std::uint16_t, 3> srgb_to_dicom_lab(const std::array<std::uint8_t, 3>& rgb) {
    const std::array<double, 3> lab = srgb_to_cielab(rgb);
    const auto scale = [](double value, double low, double high) {
        const double scaled = std::round((value - low) * 65535.0 / (high - low));
        return static_cast<std::uint16_t>(std::clamp(scaled, 0.0, 65535.0));
    };
    return {scale(lab[0], 0.0, 100.0), scale(lab[1], -128.0, 127.0), scale(lab[2], -128.0, 127.0)};
}

} // namespace segnode::dicom::detail
