#include "segnode/dicom/contours.hpp"

#include "row_scan.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace segnode::dicom {
namespace {

// Crack following on the vertex grid of a band of the slice. Vertex (a, b) is the corner shared
// by the padded pixels A = (a-1, b-1), B = (a, b-1), C = (a-1, b) and D = (a, b); its code has
// bit 0 = A, 1 = B, 2 = C, 3 = D set when that pixel is in the region. Directed boundary edges
// keep the region on their left; directions: 0 = +x, 1 = +y, 2 = -x, 3 = -y (counter-clockwise
// order, so turning right is d + 3 mod 4).
constexpr std::uint8_t bit_a = 1;
constexpr std::uint8_t bit_b = 2;
constexpr std::uint8_t bit_c = 4;
constexpr std::uint8_t bit_d = 8;
constexpr std::uint8_t saddle_bc = bit_b | bit_c;
constexpr std::uint8_t saddle_ad = bit_a | bit_d;

constexpr std::array<int, 4> unit_x{1, 0, -1, 0};
constexpr std::array<int, 4> unit_y{0, 1, 0, -1};

/// Outgoing boundary edges of a vertex by code: +x leaves along the bottom of D when B is
/// outside, +y along the right of C when D is outside, -x along the top of A when C is
/// outside, -y along the left of B when A is outside. One edge, or two at a saddle.
constexpr std::array<std::uint8_t, 16> make_out_edges() {
    std::array<std::uint8_t, 16> table{};
    for (unsigned c = 0; c < 16; ++c) {
        const bool a = (c & bit_a) != 0;
        const bool b = (c & bit_b) != 0;
        const bool cc = (c & bit_c) != 0;
        const bool d = (c & bit_d) != 0;
        table[c] = static_cast<std::uint8_t>((d && !b ? 1 : 0) | (cc && !d ? 2 : 0) |
                                             (a && !cc ? 4 : 0) | (b && !a ? 8 : 0));
    }
    return table;
}
constexpr std::array<std::uint8_t, 16> out_edges = make_out_edges();

/// Scratch buffers of one worker, reused across slices and labels.
class Tracer {
public:
    /// Appends the contours of (slice == value) within columns [x0, x1) and rows [y0, y1).
    /// Returns false (and appends nothing) when a contour would exceed `max_points`.
    bool trace(std::span<const std::uint8_t> slice, std::size_t width, std::uint8_t value,
               std::size_t x0, std::size_t x1, std::size_t y0, std::size_t y1,
               std::size_t max_points, std::vector<Contour>& out);

    /// trace() with the band splitting of the header comment.
    void trace_split(std::span<const std::uint8_t> slice, std::size_t width, std::uint8_t value,
                     std::size_t x0, std::size_t x1, std::size_t y0, std::size_t y1,
                     std::size_t max_points, std::vector<Contour>& out) {
        const std::size_t first = out.size();
        if (trace(slice, width, value, x0, x1, y0, y1, max_points, out)) {
            return;
        }
        out.resize(first);
        // Only reached with y1 - y0 >= 2: a one-row band has rectangles of 4 points only.
        const std::size_t mid = y0 + (y1 - y0) / 2;
        trace_split(slice, width, value, x0, x1, y0, mid, max_points, out);
        trace_split(slice, width, value, x0, x1, mid, y1, max_points, out);
    }

private:
    std::vector<std::uint8_t> m_mask;  // padded band: 1 where the region is
    std::vector<std::uint8_t> m_codes; // per vertex
    std::vector<std::uint8_t> m_used;  // per vertex: outgoing edges already traced
};

bool Tracer::trace(std::span<const std::uint8_t> slice, std::size_t width, std::uint8_t value,
                   std::size_t x0, std::size_t x1, std::size_t y0, std::size_t y1,
                   std::size_t max_points, std::vector<Contour>& out) {
    const std::size_t w = x1 - x0;
    const std::size_t h = y1 - y0;
    const std::size_t stride = w + 2;
    const std::size_t size = stride * (h + 2);
    m_mask.assign(size, 0);
    m_codes.assign(size, 0);
    m_used.assign(size, 0);
    for (std::size_t q = 0; q < h; ++q) {
        const std::uint8_t* row = slice.data() + (y0 + q) * width + x0;
        std::uint8_t* dst = m_mask.data() + (q + 1) * stride + 1;
        for (std::size_t p = 0; p < w; ++p) {
            dst[p] = row[p] == value ? 1 : 0;
        }
    }
    // Vertices (a, b), a in [1, w + 1], b in [1, h + 1]; index a + stride * b.
    for (std::size_t b = 1; b <= h + 1; ++b) {
        const std::uint8_t* below = m_mask.data() + (b - 1) * stride;
        const std::uint8_t* above = m_mask.data() + b * stride;
        std::uint8_t* codes = m_codes.data() + b * stride;
        for (std::size_t a = 1; a <= w + 1; ++a) {
            codes[a] = static_cast<std::uint8_t>(below[a - 1] | (below[a] << 1) |
                                                 (above[a - 1] << 2) | (above[a] << 3));
        }
    }

    const std::array<std::ptrdiff_t, 4> step{1, static_cast<std::ptrdiff_t>(stride), -1,
                                             -static_cast<std::ptrdiff_t>(stride)};
    // Vertex (a, b) is at pixel coordinates (x0 + a - 1.5, y0 + b - 1.5).
    const double origin_x = static_cast<double>(x0) - 1.5;
    const double origin_y = static_cast<double>(y0) - 1.5;
    const std::size_t limit = max_points == 0 ? SIZE_MAX : std::max<std::size_t>(max_points, 4);

    for (std::size_t b = 1; b <= h + 1; ++b) {
        for (std::size_t a = 1; a <= w + 1; ++a) {
            const std::size_t v0 = a + stride * b;
            const std::uint8_t code0 = m_codes[v0];
            if (code0 == 0 || code0 == 15) {
                continue;
            }
            for (;;) {
                const unsigned remaining = out_edges[code0] & ~m_used[v0] & 0xFU;
                if (remaining == 0) {
                    break;
                }
                const unsigned d0 = static_cast<unsigned>(std::countr_zero(remaining));
                Contour contour;
                std::size_t v = v0;
                unsigned d = d0;
                for (;;) {
                    m_used[v] |= static_cast<std::uint8_t>(1U << d);
                    v = static_cast<std::size_t>(static_cast<std::ptrdiff_t>(v) + step[d]);
                    const std::uint8_t code = m_codes[v];
                    const double vx = origin_x + static_cast<double>(v % stride);
                    const double vy = origin_y + static_cast<double>(v / stride);
                    unsigned next = 0;
                    if (code == saddle_bc || code == saddle_ad) {
                        // 8-connected region: turn right, joining the diagonal pixels; cut
                        // the corner so that the polygon does not touch itself there.
                        next = (d + 3) & 3U;
                        contour.points.push_back(
                            {vx - saddle_offset * unit_x[d], vy - saddle_offset * unit_y[d]});
                        contour.points.push_back(
                            {vx + saddle_offset * unit_x[next], vy + saddle_offset * unit_y[next]});
                    } else {
                        next = static_cast<unsigned>(std::countr_zero(out_edges[code]));
                        if (next != d) {
                            contour.points.push_back({vx, vy});
                        }
                    }
                    d = next;
                    if (contour.points.size() > limit) {
                        return false;
                    }
                    if (v == v0 && d == d0) {
                        break;
                    }
                }
                contour.hole = signed_area(contour.points) < 0.0;
                out.push_back(std::move(contour));
            }
        }
    }
    return true;
}

/// Bounding box of each label present in a slice.
struct Box {
    std::size_t x0 = SIZE_MAX, x1 = 0, y0 = SIZE_MAX, y1 = 0; // [x0, x1) x [y0, y1)
    [[nodiscard]] bool empty() const { return x0 == SIZE_MAX; }
};

std::array<Box, 256> label_boxes(std::span<const std::uint8_t> slice, std::size_t width,
                                 std::size_t height) {
    std::array<Box, 256> boxes{};
    for (std::size_t y = 0; y < height; ++y) {
        const std::uint8_t* row = slice.data() + y * width;
        std::size_t x = 0;
        while (x < width) {
            x = detail::skip_zero_blocks(row, x, width);
            if (x >= width) {
                break;
            }
            const std::uint8_t v = row[x];
            if (v != 0) {
                // A run of one label: update its box once.
                std::size_t end = x + 1;
                while (end < width && row[end] == v) {
                    ++end;
                }
                Box& box = boxes[v];
                box.x0 = std::min(box.x0, x);
                box.x1 = std::max(box.x1, end);
                box.y0 = std::min(box.y0, y);
                box.y1 = y + 1;
                x = end;
            } else {
                ++x;
            }
        }
    }
    return boxes;
}

void check_slice(std::span<const std::uint8_t> slice, std::size_t width, std::size_t height) {
    if (slice.size() < width * height) {
        throw std::invalid_argument("contour extraction: slice buffer smaller than width * height");
    }
}

std::vector<LabelContours> slice_contours(Tracer& tracer, std::span<const std::uint8_t> slice,
                                          std::size_t width, std::size_t height,
                                          std::size_t max_points) {
    const std::array<Box, 256> boxes = label_boxes(slice, width, height);
    std::vector<LabelContours> result;
    for (std::size_t label = 1; label < boxes.size(); ++label) {
        const Box& box = boxes[label];
        if (box.empty()) {
            continue;
        }
        LabelContours lc;
        lc.label = static_cast<std::uint8_t>(label);
        tracer.trace_split(slice, width, lc.label, box.x0, box.x1, box.y0, box.y1, max_points,
                           lc.contours);
        result.push_back(std::move(lc));
    }
    return result;
}

} // namespace

double signed_area(std::span<const ContourPoint> points) {
    double twice = 0.0;
    for (std::size_t i = 0, n = points.size(); i < n; ++i) {
        const ContourPoint& p = points[i];
        const ContourPoint& q = points[(i + 1) % n];
        twice += p.x * q.y - q.x * p.y;
    }
    return 0.5 * twice;
}

std::vector<Contour> extract_contours(std::span<const std::uint8_t> slice, std::size_t width,
                                      std::size_t height, std::uint8_t value,
                                      const ContourOptions& options) {
    check_slice(slice, width, height);
    std::vector<Contour> out;
    if (width == 0 || height == 0) {
        return out;
    }
    Tracer tracer;
    if (value == 0) {
        // Background as the region: the bounding box is the whole slice.
        tracer.trace_split(slice, width, value, 0, width, 0, height, options.max_points, out);
        return out;
    }
    const Box box = label_boxes(slice, width, height)[value];
    if (!box.empty()) {
        tracer.trace_split(slice, width, value, box.x0, box.x1, box.y0, box.y1, options.max_points,
                           out);
    }
    return out;
}

std::vector<LabelContours> extract_slice_contours(std::span<const std::uint8_t> slice,
                                                  std::size_t width, std::size_t height,
                                                  const ContourOptions& options) {
    check_slice(slice, width, height);
    Tracer tracer;
    return slice_contours(tracer, slice, width, height, options.max_points);
}

std::vector<std::vector<LabelContours>> extract_volume_contours(const LabelMap& labels,
                                                                const ContourOptions& options) {
    if (!labels.consistent()) {
        throw std::invalid_argument("contour extraction: label map buffer does not match its "
                                    "geometry");
    }
    const std::size_t width = labels.geometry.dims[0];
    const std::size_t height = labels.geometry.dims[1];
    const std::size_t slices = labels.geometry.dims[2];
    const std::size_t plane = width * height;
    std::vector<std::vector<LabelContours>> result(slices);
    unsigned threads = options.threads;
    if (threads == 0) {
        threads = std::clamp(std::thread::hardware_concurrency(), 1U, 4U);
    }
    threads =
        static_cast<unsigned>(std::min<std::size_t>(threads, std::max<std::size_t>(slices, 1)));
    // Slices are handed out one at a time: their cost varies a lot (empty slices are cheap).
    std::atomic<std::size_t> next{0};
    auto work = [&] {
        Tracer tracer;
        for (std::size_t k = next++; k < slices && !options.stop.stop_requested(); k = next++) {
            const std::span<const std::uint8_t> slice(labels.voxels.data() + k * plane, plane);
            result[k] = slice_contours(tracer, slice, width, height, options.max_points);
        }
    };
    std::vector<std::jthread> pool;
    for (unsigned t = 1; t < threads; ++t) {
        pool.emplace_back(work);
    }
    work();
    return result;
}

// ---- Decimal String ----

void append_decimal_string(std::string& out, double value, int decimals) {
    if (!std::isfinite(value)) {
        throw std::invalid_argument("Decimal String of a non-finite value");
    }
    std::array<char, 64> buf{};
    const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), value,
                                         std::chars_format::fixed, decimals);
    std::size_t len = static_cast<std::size_t>(end - buf.data());
    if (ec == std::errc{}) {
        if (std::find(buf.data(), buf.data() + len, '.') != buf.data() + len) {
            while (buf[len - 1] == '0') {
                --len;
            }
            if (buf[len - 1] == '.') {
                --len;
            }
        }
        if (len == 2 && buf[0] == '-' && buf[1] == '0') {
            out.push_back('0');
            return;
        }
    }
    if (ec != std::errc{} || len > 16) {
        // Too long for DS: as many significant digits as fit in 16 characters.
        for (int precision = 16; precision > 0; --precision) {
            auto r = std::to_chars(buf.data(), buf.data() + buf.size(), value,
                                   std::chars_format::general, precision);
            len = static_cast<std::size_t>(r.ptr - buf.data());
            if (r.ec == std::errc{} && len <= 16) {
                break;
            }
        }
    }
    out.append(buf.data(), len);
}

std::size_t max_decimal_string_length(double max_abs, int decimals) {
    // Integer digits of the largest value after rounding (999.99996 -> 1000.0).
    const double top = std::floor(std::abs(max_abs)) + 1.0;
    std::size_t digits = 1;
    for (double t = 10.0; t <= top; t *= 10.0) {
        ++digits;
    }
    const std::size_t length =
        1 + digits + (decimals > 0 ? 1 + static_cast<std::size_t>(decimals) : 0);
    return std::min<std::size_t>(length, 16);
}

std::size_t contour_data_point_limit(double max_abs, int decimals) {
    // n points: 3n values and 3n - 1 backslashes, plus at most one pad byte.
    const std::size_t per_point = 3 * (max_decimal_string_length(max_abs, decimals) + 1);
    return 65534 / per_point;
}

} // namespace segnode::dicom
