#include "seg_pixels.hpp"

#include "row_scan.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace segnode::dicom::detail {

namespace {

/// Row spans of every label in one slice: runs of one label, background skipped eight voxels
/// at a time (most of a CT slice is outside every segment).
void slice_census(const std::uint8_t* slice, std::size_t width, std::size_t height,
                  std::array<RowSpan, 256>& rows) {
    for (std::size_t y = 0; y < height; ++y) {
        const std::uint8_t* row = slice + y * width;
        const auto y32 = static_cast<std::uint32_t>(y);
        std::size_t x = 0;
        while (x < width) {
            x = skip_zero_blocks(row, x, width);
            if (x >= width) {
                break;
            }
            const std::uint8_t v = row[x];
            if (v == 0) {
                ++x;
                continue;
            }
            std::size_t end = x + 1;
            while (end < width && row[end] == v) {
                ++end;
            }
            RowSpan& span = rows[v];
            span.begin = std::min(span.begin, y32);
            span.end = y32 + 1;
            x = end;
        }
    }
}

} // namespace

LabelCensus take_census(const LabelMap& labels, unsigned threads, const std::stop_token& stop) {
    LabelCensus census;
    const std::size_t width = labels.geometry.dims[0];
    const std::size_t height = labels.geometry.dims[1];
    const std::size_t slices = labels.geometry.dims[2];
    census.rows.assign(slices, {});
    if (threads == 0) {
        threads = std::clamp(std::thread::hardware_concurrency(), 1U, 4U);
    }
    threads = static_cast<unsigned>(std::clamp<std::size_t>(slices, 1, threads));
    std::atomic<std::size_t> next{0};
    auto work = [&] {
        for (std::size_t k = next++; k < slices && !stop.stop_requested(); k = next++) {
            slice_census(labels.voxels.data() + k * width * height, width, height, census.rows[k]);
        }
    };
    {
        std::vector<std::jthread> pool;
        for (unsigned t = 1; t < threads; ++t) {
            pool.emplace_back(work);
        }
        work();
    }
    for (const auto& slice : census.rows) {
        for (std::size_t l = 0; l < 256; ++l) {
            census.anywhere[l] = census.anywhere[l] || !slice[l].empty();
        }
    }
    return census;
}

std::uint64_t count_voxels(const LabelMap& labels, std::uint8_t label) {
    return static_cast<std::uint64_t>(
        std::count(labels.voxels.begin(), labels.voxels.end(), label));
}

std::vector<SegFrame> plan_frames(const LabelCensus& census,
                                  const std::vector<std::uint8_t>& labels_in_order) {
    std::vector<SegFrame> frames;
    for (std::size_t s = 0; s < labels_in_order.size(); ++s) {
        const std::uint8_t label = labels_in_order[s];
        for (std::size_t k = 0; k < census.rows.size(); ++k) {
            const RowSpan& span = census.rows[k][label];
            if (!span.empty()) {
                frames.push_back(
                    {label, static_cast<std::uint16_t>(s + 1), k, span.begin, span.end});
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

namespace {

/// Bits (v == label) of 16 voxels, voxel t in bit t.
inline std::uint32_t match16(const std::uint8_t* p, std::uint8_t label) {
#if defined(__SSE2__)
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return static_cast<std::uint32_t>(
        _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(static_cast<char>(label)))));
#else
    std::uint32_t bits = 0;
    for (unsigned t = 0; t < 16; ++t) {
        bits |= static_cast<std::uint32_t>(p[t] == label) << t;
    }
    return bits;
#endif
}

/// ORs the 16 bits of `bits` into the stream at bit `offset`. Only bytes that receive a set
/// bit are touched, so the last chunk of the last frame never reaches past the buffer.
inline void put_bits(std::uint8_t* out, std::uint64_t offset, std::uint32_t bits) {
    if (bits == 0) {
        return;
    }
    std::uint8_t* byte = out + (offset >> 3U);
    const std::uint32_t shifted = bits << (offset & 7U); // at most 23 bits
    for (unsigned b = 0; b < 3; ++b) {
        const auto part = static_cast<std::uint8_t>(shifted >> (8U * b));
        if (part != 0) {
            byte[b] |= part;
        }
    }
}

} // namespace

void pack_frame_range(const LabelMap& labels, const std::vector<SegFrame>& frames,
                      std::size_t first, std::size_t count, std::uint8_t* out,
                      std::uint64_t out_size) {
    std::memset(out, 0, out_size);
    const std::size_t width = labels.geometry.dims[0];
    const std::size_t height = labels.geometry.dims[1];
    const std::size_t slice_size = width * height;
    for (std::size_t f = first; f < first + count && f < frames.size(); ++f) {
        const SegFrame& frame = frames[f];
        const std::size_t row_begin = std::min<std::size_t>(frame.row_begin, height);
        const std::size_t row_end = std::min<std::size_t>(frame.row_end, height);
        if (row_begin >= row_end) {
            continue;
        }
        // Only the rows that hold the label: [begin, end) voxels of the slice.
        const std::size_t begin = row_begin * width;
        const std::size_t end = row_end * width;
        const std::uint8_t* p = labels.voxels.data() + frame.slice * slice_size;
        const std::uint8_t label = frame.label;
        const std::uint64_t frame_bit = static_cast<std::uint64_t>(f - first) * slice_size;
        std::size_t n = begin;
        for (; n + 16 <= end; n += 16) {
            put_bits(out, frame_bit + n, match16(p + n, label));
        }
        for (; n < end; ++n) {
            if (p[n] == label) {
                const std::uint64_t bit = frame_bit + n;
                out[bit >> 3U] |= static_cast<std::uint8_t>(1U << (bit & 7U));
            }
        }
    }
}

void pack_frames(const LabelMap& labels, const std::vector<SegFrame>& frames, std::uint8_t* out,
                 std::uint64_t out_size) {
    pack_frame_range(labels, frames, 0, frames.size(), out, out_size);
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
