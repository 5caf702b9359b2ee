// Connected components (runs + union-find), 2D hole filling (scanline flood fill of the
// background from the plane border), 2D opening (separable rectangle), thresholding.
#include "segnode/algorithms/mask_ops.hpp"

#include "parallel.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <stdexcept>

namespace segnode::algorithms {

namespace {

using detail::parallel_for;

// A maximal stretch of foreground [x0, x1) along one row (fixed j, k).
struct Run {
    std::uint32_t x0;
    std::uint32_t x1;
};

// Runs of a mask, row by row: the runs of row r = j + ny * k are
// runs[row_start[r] .. row_start[r + 1]).
struct RunTable {
    std::size_t nx = 0;
    std::size_t ny = 0;
    std::size_t nz = 0;
    std::vector<std::size_t> row_start;
    std::vector<Run> runs;
};

// 8 bytes of a row at once (memcpy: no alignment or aliasing assumptions).
std::uint64_t load8(const std::uint8_t* p) {
    std::uint64_t w = 0;
    std::memcpy(&w, p, sizeof w);
    return w;
}

bool has_zero_byte(std::uint64_t w) {
    constexpr std::uint64_t ones = 0x0101010101010101ULL;
    constexpr std::uint64_t highs = 0x8080808080808080ULL;
    return ((w - ones) & ~w & highs) != 0;
}

// Appends the runs of one row; skips 8 zero (or 8 non-zero) bytes at a time.
void row_runs(const std::uint8_t* row, std::size_t nx, std::vector<Run>& out) {
    std::size_t x = 0;
    while (x < nx) {
        while (x + 8 <= nx && load8(row + x) == 0) {
            x += 8;
        }
        while (x < nx && row[x] == 0) {
            ++x;
        }
        if (x == nx) {
            break;
        }
        const std::size_t start = x;
        while (x + 8 <= nx && !has_zero_byte(load8(row + x))) {
            x += 8;
        }
        while (x < nx && row[x] != 0) {
            ++x;
        }
        out.push_back(Run{static_cast<std::uint32_t>(start), static_cast<std::uint32_t>(x)});
    }
}

RunTable extract_runs(const LabelMap& mask, unsigned threads) {
    RunTable table;
    table.nx = mask.geometry.dims[0];
    table.ny = mask.geometry.dims[1];
    table.nz = mask.geometry.dims[2];
    if (table.nx > std::numeric_limits<std::uint32_t>::max()) {
        throw std::length_error("connected components: rows too long");
    }
    const std::size_t nx = table.nx;
    const std::size_t ny = table.ny;
    const std::size_t rows = ny * table.nz;
    table.row_start.assign(rows + 1, 0);
    const std::uint8_t* data = mask.voxels.data();

    // One pass per chunk of slices into the chunk's own list, then concatenated in order.
    const std::size_t chunks = std::max<std::size_t>(1, std::min<std::size_t>(threads, table.nz));
    std::vector<std::vector<Run>> parts(chunks);
    parallel_for(chunks, static_cast<unsigned>(chunks), [&](std::size_t c0, std::size_t c1) {
        for (std::size_t c = c0; c < c1; ++c) {
            const std::size_t k0 = table.nz * c / chunks;
            const std::size_t k1 = table.nz * (c + 1) / chunks;
            auto& part = parts[c];
            for (std::size_t r = k0 * ny; r < k1 * ny; ++r) {
                const std::size_t before = part.size();
                row_runs(data + r * nx, nx, part);
                table.row_start[r + 1] = part.size() - before;
            }
        }
    });
    std::partial_sum(table.row_start.begin(), table.row_start.end(), table.row_start.begin());
    if (table.row_start.back() >= std::numeric_limits<std::uint32_t>::max()) {
        throw std::length_error("connected components: too many runs");
    }
    table.runs.reserve(table.row_start.back());
    for (auto& part : parts) {
        table.runs.insert(table.runs.end(), part.begin(), part.end());
        std::vector<Run>().swap(part);
    }
    return table;
}

// Union-find over run indices; the root of a set is its smallest index, so parent[i] <= i.
class DisjointSets {
public:
    explicit DisjointSets(std::size_t n) : m_parent(n) {
        std::iota(m_parent.begin(), m_parent.end(), std::uint32_t{0});
    }
    std::uint32_t find(std::uint32_t x) {
        while (m_parent[x] != x) {
            m_parent[x] = m_parent[m_parent[x]];
            x = m_parent[x];
        }
        return x;
    }
    void unite(std::uint32_t a, std::uint32_t b) {
        a = find(a);
        b = find(b);
        if (a < b) {
            m_parent[b] = a;
        } else if (b < a) {
            m_parent[a] = b;
        }
    }
    // Replaces parents by compact component ids (0, 1, ... in order of each set's first
    // index) and returns the number of components.
    std::uint32_t compact() {
        std::uint32_t next = 0;
        for (std::size_t i = 0; i < m_parent.size(); ++i) {
            const std::uint32_t p = m_parent[i];
            if (p == i) {
                m_parent[i] = next++;
            } else {
                // p < i: already replaced by its root's id (roots are flattened first because
                // the root of p is <= p and every index below i has been visited).
                m_parent[i] = m_parent[p];
            }
        }
        return next;
    }
    [[nodiscard]] std::uint32_t operator[](std::size_t i) const { return m_parent[i]; }

private:
    std::vector<std::uint32_t> m_parent;
};

// Unites the overlapping runs of two rows; `tolerance` 1 also joins diagonal neighbours.
void link_rows(const RunTable& t, std::size_t row_a, std::size_t row_b, std::uint32_t tolerance,
               DisjointSets& sets) {
    std::size_t i = t.row_start[row_a];
    const std::size_t i_end = t.row_start[row_a + 1];
    std::size_t j = t.row_start[row_b];
    const std::size_t j_end = t.row_start[row_b + 1];
    while (i < i_end && j < j_end) {
        const Run a = t.runs[i];
        const Run b = t.runs[j];
        if (a.x0 < b.x1 + tolerance && b.x0 < a.x1 + tolerance) {
            sets.unite(static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(j));
        }
        if (a.x1 < b.x1) {
            ++i;
        } else {
            ++j;
        }
    }
}

struct Components {
    RunTable table;
    DisjointSets ids{0};              // after compact(): component id per run
    std::vector<std::uint64_t> sizes; // voxels per component id
};

Components label_components(const LabelMap& mask, Connectivity connectivity, unsigned threads) {
    Components c;
    c.table = extract_runs(mask, threads);
    const RunTable& t = c.table;
    c.ids = DisjointSets(t.runs.size());
    const bool full = connectivity == Connectivity::Full;
    const std::uint32_t tolerance = full ? 1 : 0;
    for (std::size_t k = 0; k < t.nz; ++k) {
        for (std::size_t j = 0; j < t.ny; ++j) {
            const std::size_t row = j + t.ny * k;
            if (t.row_start[row] == t.row_start[row + 1]) {
                continue;
            }
            if (j > 0) {
                link_rows(t, row, row - 1, tolerance, c.ids);
            }
            if (k > 0) {
                const std::size_t below = row - t.ny;
                link_rows(t, row, below, tolerance, c.ids);
                if (full) {
                    if (j > 0) {
                        link_rows(t, row, below - 1, tolerance, c.ids);
                    }
                    if (j + 1 < t.ny) {
                        link_rows(t, row, below + 1, tolerance, c.ids);
                    }
                }
            }
        }
    }
    const std::uint32_t count = c.ids.compact();
    c.sizes.assign(count, 0);
    for (std::size_t i = 0; i < t.runs.size(); ++i) {
        c.sizes[c.ids[i]] += t.runs[i].x1 - t.runs[i].x0;
    }
    return c;
}

// Index arithmetic of the planes perpendicular to an axis: voxel of plane s, in-plane
// coordinates (u, v) is s * stride_s + u * stride_u + v * stride_v.
struct PlaneLayout {
    std::size_t planes = 0;
    std::size_t width = 0;  // along the lower remaining axis
    std::size_t height = 0; // along the higher remaining axis
    std::size_t stride_s = 0;
    std::size_t stride_u = 0;
    std::size_t stride_v = 0;
};

PlaneLayout plane_layout(const Geometry& geometry, std::size_t axis) {
    if (axis > 2) {
        throw std::invalid_argument("plane axis must be 0, 1 or 2");
    }
    const auto& d = geometry.dims;
    const std::array<std::size_t, 3> stride{1, d[0], d[0] * d[1]};
    const std::size_t p = axis == 0 ? 1 : 0;
    const std::size_t q = axis == 2 ? 1 : 2;
    return {d[axis], d[p], d[q], stride[axis], stride[p], stride[q]};
}

// dst = (src != 0); returns whether any src is non-zero.
bool binarise_row(const std::uint8_t* __restrict src, std::uint8_t* __restrict dst, std::size_t n) {
    std::uint8_t any = 0;
    for (std::size_t u = 0; u < n; ++u) {
        any |= src[u];
        dst[u] = src[u] != 0 ? 1 : 0;
    }
    return any != 0;
}

void scatter_row(const std::uint8_t* __restrict src, std::uint8_t* __restrict dst, std::size_t n,
                 std::uint8_t where, std::uint8_t value) {
    for (std::size_t u = 0; u < n; ++u) {
        dst[u] = src[u] == where ? value : dst[u];
    }
}

// Copies plane s as 0/1 into buf; returns whether it has any foreground.
bool gather_plane(const LabelMap& mask, const PlaneLayout& layout, std::size_t s,
                  std::vector<std::uint8_t>& buf) {
    const PlaneLayout l = layout; // a local copy: uint8_t stores may alias the reference
    const std::uint8_t* base = mask.voxels.data() + s * l.stride_s;
    std::uint8_t* out = buf.data();
    bool any = false;
    for (std::size_t v = 0; v < l.height; ++v) {
        const std::uint8_t* src = base + v * l.stride_v;
        std::uint8_t* dst = out + v * l.width;
        if (l.stride_u == 1) {
            any = binarise_row(src, dst, l.width) || any;
        } else {
            for (std::size_t u = 0; u < l.width; ++u) {
                dst[u] = src[u * l.stride_u] != 0 ? 1 : 0;
                any = any || dst[u] != 0;
            }
        }
    }
    return any;
}

// Sets to `value` the voxels of plane s whose buffer entry equals `where`.
void scatter_plane(LabelMap& mask, const PlaneLayout& layout, std::size_t s,
                   const std::vector<std::uint8_t>& buf, std::uint8_t where, std::uint8_t value) {
    const PlaneLayout l = layout;
    std::uint8_t* base = mask.voxels.data() + s * l.stride_s;
    const std::uint8_t* in = buf.data();
    for (std::size_t v = 0; v < l.height; ++v) {
        const std::uint8_t* src = in + v * l.width;
        std::uint8_t* dst = base + v * l.stride_v;
        if (l.stride_u == 1) {
            scatter_row(src, dst, l.width, where, value);
            continue;
        }
        for (std::size_t u = 0; u < l.width; ++u) {
            if (src[u] == where) {
                dst[u * l.stride_u] = value;
            }
        }
    }
}

// Pushes the first index of every stretch of 0 in row[x0 .. x1] (inclusive).
void push_zero_starts(const std::uint8_t* row, std::size_t x0, std::size_t x1,
                      std::size_t row_offset, std::vector<std::size_t>& stack) {
    std::size_t x = x0;
    const std::size_t end = x1 + 1;
    while (x < end) {
        while (x + 8 <= end && !has_zero_byte(load8(row + x))) {
            x += 8;
        }
        while (x < end && row[x] != 0) {
            ++x;
        }
        if (x == end) {
            return;
        }
        stack.push_back(row_offset + x);
        while (x + 8 <= end && load8(row + x) == 0) {
            x += 8;
        }
        while (x < end && row[x] == 0) {
            ++x;
        }
    }
}

// Marks with 2 the background (0) of a w x h plane that is 4-connected to its border
// (scanline flood fill: whole stretches of a row at a time, 8 bytes per step where possible).
void flood_border_background(std::vector<std::uint8_t>& buf, std::size_t w, std::size_t h,
                             std::vector<std::size_t>& stack) {
    stack.clear();
    std::uint8_t* p = buf.data();
    push_zero_starts(p, 0, w - 1, 0, stack);
    push_zero_starts(p + (h - 1) * w, 0, w - 1, (h - 1) * w, stack);
    for (std::size_t v = 1; v + 1 < h; ++v) {
        if (p[v * w] == 0) {
            stack.push_back(v * w);
        }
        if (p[v * w + w - 1] == 0) {
            stack.push_back(v * w + w - 1);
        }
    }
    while (!stack.empty()) {
        const std::size_t idx = stack.back();
        stack.pop_back();
        if (p[idx] != 0) {
            continue;
        }
        const std::size_t v = idx / w;
        std::uint8_t* row = p + v * w;
        std::size_t l = idx - v * w;
        std::size_t r = l;
        while (l >= 8 && load8(row + l - 8) == 0) {
            l -= 8;
        }
        while (l > 0 && row[l - 1] == 0) {
            --l;
        }
        while (r + 9 <= w && load8(row + r + 1) == 0) {
            r += 8;
        }
        while (r + 1 < w && row[r + 1] == 0) {
            ++r;
        }
        std::memset(row + l, 2, r - l + 1);
        if (v > 0) {
            push_zero_starts(p + (v - 1) * w, l, r, (v - 1) * w, stack);
        }
        if (v + 1 < h) {
            push_zero_starts(p + (v + 1) * w, l, r, (v + 1) * w, stack);
        }
    }
}

// out[x] = 1 where every in[x - r .. x + r] is 1 (positions outside [0, n) count as 0), for
// n values `step` apart.
void erode_line(const std::uint8_t* in, std::uint8_t* out, std::size_t n, std::size_t step,
                std::size_t r) {
    std::size_t count = 0;
    for (std::size_t x = 0; x < n; ++x) {
        out[x * step] = 0;
    }
    for (std::size_t x = 0; x < n; ++x) {
        count = in[x * step] != 0 ? count + 1 : 0;
        if (count >= 2 * r + 1) {
            out[(x - r) * step] = 1;
        }
    }
}

// out[x] = 1 where any in[x - r .. x + r] is 1.
void dilate_line(const std::uint8_t* in, std::uint8_t* out, std::size_t n, std::size_t step,
                 std::size_t r) {
    constexpr std::size_t none = std::numeric_limits<std::size_t>::max();
    std::size_t last = none;
    for (std::size_t x = 0; x < n; ++x) {
        if (in[x * step] != 0) {
            last = x;
        }
        out[x * step] = (last != none && x - last <= r) ? 1 : 0;
    }
    last = none;
    for (std::size_t x = n; x-- > 0;) {
        if (in[x * step] != 0) {
            last = x;
        }
        if (last != none && last - x <= r) {
            out[x * step] = 1;
        }
    }
}

} // namespace

// The voxel loops below run in fixed blocks of 64 on restrict pointers so that GCC's -O2
// (very cheap cost model) vectorises them; the tails are scalar.
constexpr std::size_t simd_block = 64;

namespace {
/// [lower, upper] clipped to int16 (int16 bounds keep the comparisons 8 lanes wide), or
/// nullopt when no int16 value lies in it.
std::optional<std::pair<std::int16_t, std::int16_t>> int16_range(std::int32_t lower,
                                                                 std::int32_t upper) {
    if (lower > upper || lower > 32767 || upper < -32768) {
        return std::nullopt;
    }
    return std::pair{static_cast<std::int16_t>(std::max(lower, -32768)),
                     static_cast<std::int16_t>(std::min(upper, 32767))};
}
} // namespace

void threshold_span(const std::int16_t* __restrict in, std::uint8_t* __restrict out, std::size_t n,
                    std::int32_t lower, std::int32_t upper) {
    const auto range = int16_range(lower, upper);
    if (!range) {
        std::memset(out, 0, n);
        return;
    }
    const auto [lo, hi] = *range;
    std::size_t i = 0;
    for (; i + simd_block <= n; i += simd_block) {
        for (std::size_t b = 0; b < simd_block; ++b) {
            const std::int16_t v = in[i + b];
            out[i + b] = static_cast<std::uint8_t>((v >= lo) & (v <= hi));
        }
    }
    for (; i < n; ++i) {
        const std::int16_t v = in[i];
        out[i] = static_cast<std::uint8_t>((v >= lo) & (v <= hi));
    }
}

void intersect_span(const std::int16_t* __restrict in, std::uint8_t* __restrict mask, std::size_t n,
                    std::int32_t lower, std::int32_t upper) {
    const auto range = int16_range(lower, upper);
    if (!range) {
        std::memset(mask, 0, n);
        return;
    }
    const auto [lo, hi] = *range;
    std::size_t i = 0;
    for (; i + simd_block <= n; i += simd_block) {
        for (std::size_t b = 0; b < simd_block; ++b) {
            const std::int16_t v = in[i + b];
            mask[i + b] = static_cast<std::uint8_t>((mask[i + b] != 0) & (v >= lo) & (v <= hi));
        }
    }
    for (; i < n; ++i) {
        const std::int16_t v = in[i];
        mask[i] = static_cast<std::uint8_t>((mask[i] != 0) & (v >= lo) & (v <= hi));
    }
}

std::vector<std::uint64_t> component_sizes(const LabelMap& mask, Connectivity connectivity) {
    auto sizes = label_components(mask, connectivity, 1).sizes;
    std::sort(sizes.begin(), sizes.end(), std::greater<>());
    return sizes;
}

std::size_t filter_components(LabelMap& mask, const ComponentFilter& filter, unsigned threads) {
    Components c = label_components(mask, filter.connectivity, threads);
    const std::size_t count = c.sizes.size();
    std::vector<std::uint32_t> order;
    order.reserve(count);
    for (std::uint32_t id = 0; id < count; ++id) {
        if (c.sizes[id] >= filter.min_voxels) {
            order.push_back(id);
        }
    }
    if (filter.keep_largest > 0 && order.size() > filter.keep_largest) {
        std::stable_sort(order.begin(), order.end(),
                         [&](std::uint32_t a, std::uint32_t b) { return c.sizes[a] > c.sizes[b]; });
        order.resize(filter.keep_largest);
    }
    if (filter.min_fraction_of_largest > 0.0 && !order.empty()) {
        std::uint64_t largest = 0;
        for (const std::uint32_t id : order) {
            largest = std::max(largest, c.sizes[id]);
        }
        const double floor = filter.min_fraction_of_largest * static_cast<double>(largest);
        std::erase_if(order,
                      [&](std::uint32_t id) { return static_cast<double>(c.sizes[id]) < floor; });
    }
    if (order.size() == count) {
        return count;
    }
    std::vector<std::uint8_t> keep(count, 0);
    for (const std::uint32_t id : order) {
        keep[id] = 1;
    }
    const RunTable& t = c.table;
    parallel_for(t.nz, threads, [&](std::size_t k0, std::size_t k1) {
        for (std::size_t r = k0 * t.ny; r < k1 * t.ny; ++r) {
            std::uint8_t* row = mask.voxels.data() + r * t.nx;
            for (std::size_t i = t.row_start[r]; i < t.row_start[r + 1]; ++i) {
                if (keep[c.ids[i]] == 0) {
                    std::memset(row + t.runs[i].x0, 0, t.runs[i].x1 - t.runs[i].x0);
                }
            }
        }
    });
    return order.size();
}

void fill_holes_2d(LabelMap& mask, std::size_t axis, unsigned threads) {
    const PlaneLayout l = plane_layout(mask.geometry, axis);
    if (l.width == 0 || l.height == 0) {
        return;
    }
    parallel_for(l.planes, threads, [&](std::size_t s0, std::size_t s1) {
        std::vector<std::uint8_t> buf(l.width * l.height);
        std::vector<std::size_t> stack;
        for (std::size_t s = s0; s < s1; ++s) {
            if (!gather_plane(mask, l, s, buf)) {
                continue; // no foreground, no holes
            }
            flood_border_background(buf, l.width, l.height, stack);
            scatter_plane(mask, l, s, buf, 0, 1); // holes become foreground
        }
    });
}

void open_2d(LabelMap& mask, std::size_t axis, std::size_t radius_a, std::size_t radius_b,
             unsigned threads) {
    const PlaneLayout l = plane_layout(mask.geometry, axis);
    if (l.width == 0 || l.height == 0 || (radius_a == 0 && radius_b == 0)) {
        return;
    }
    const std::size_t w = l.width;
    const std::size_t h = l.height;
    parallel_for(l.planes, threads, [&](std::size_t s0, std::size_t s1) {
        std::vector<std::uint8_t> a(w * h);
        std::vector<std::uint8_t> b(w * h);
        for (std::size_t s = s0; s < s1; ++s) {
            if (!gather_plane(mask, l, s, a)) {
                continue;
            }
            // Erosion: rows (along u) into b, then columns (along v) back into a.
            for (std::size_t v = 0; v < h; ++v) {
                erode_line(a.data() + v * w, b.data() + v * w, w, 1, radius_a);
            }
            for (std::size_t u = 0; u < w; ++u) {
                erode_line(b.data() + u, a.data() + u, h, w, radius_b);
            }
            // Dilation: rows into b, columns into a.
            for (std::size_t v = 0; v < h; ++v) {
                dilate_line(a.data() + v * w, b.data() + v * w, w, 1, radius_a);
            }
            for (std::size_t u = 0; u < w; ++u) {
                dilate_line(b.data() + u, a.data() + u, h, w, radius_b);
            }
            scatter_plane(mask, l, s, a, 0, 0); // opened away
        }
    });
}

std::size_t axial_axis(const Geometry& geometry) {
    // Component along patient z (superior) of each index axis direction; ties go to the
    // higher axis (k, the acquired slices, first).
    std::size_t best = 2;
    double best_z = std::abs(geometry.direction[6 + 2]);
    for (std::size_t a = 2; a-- > 0;) {
        const double z = std::abs(geometry.direction[6 + a]);
        if (z > best_z + 1e-9) {
            best = a;
            best_z = z;
        }
    }
    return best;
}

std::uint64_t voxels_for_mm3(const Geometry& geometry, double mm3) {
    if (!(mm3 > 0.0)) {
        return 0;
    }
    const double voxels = std::ceil(mm3 / voxel_volume_mm3(geometry) - 1e-9);
    if (voxels >= 1.8e19) {
        return std::numeric_limits<std::uint64_t>::max();
    }
    return static_cast<std::uint64_t>(std::max(voxels, 0.0));
}

LabelMap threshold_mask(const CtVolume& volume, std::int32_t lower, std::int32_t upper,
                        unsigned threads) {
    LabelMap out{volume.geometry, Buffer<std::uint8_t>(volume.voxels.size())};
    const std::int16_t* in = volume.voxels.data();
    std::uint8_t* dst = out.voxels.data();
    parallel_for(volume.voxels.size(), threads, [=](std::size_t b, std::size_t e) {
        threshold_span(in + b, dst + b, e - b, lower, upper);
    });
    return out;
}

std::uint64_t count_foreground(const LabelMap& mask) {
    std::uint64_t n = 0;
    for (const std::uint8_t v : mask.voxels) {
        n += v != 0 ? 1 : 0;
    }
    return n;
}

} // namespace segnode::algorithms
