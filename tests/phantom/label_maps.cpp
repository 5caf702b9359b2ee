#include "label_maps.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>

namespace segnode::phantom {
namespace {

enum class Shape { Box, Ellipsoid, Shell };

struct Blob {
    std::uint8_t label = 0;
    Shape shape = Shape::Box;
    std::array<double, 3> centre{};
    std::array<double, 3> half{}; ///< half extents in voxels (i, j, k)
    [[nodiscard]] double size() const { return half[0] * half[1] * half[2]; }
};

} // namespace

std::vector<std::uint8_t> many_label_map(std::size_t cols, std::size_t rows, std::size_t slices,
                                         unsigned labels, std::uint64_t seed) {
    if (labels > 255) {
        throw std::invalid_argument("many_label_map: at most 255 labels");
    }
    if (cols < 4 || rows < 4 || slices < 1) {
        throw std::invalid_argument("many_label_map: the field must be at least 4 x 4 x 1");
    }
    std::vector<std::uint8_t> map(cols * rows * slices, 0);
    std::mt19937_64 rng(seed);
    const auto uniform = [&](double lo, double hi) {
        return std::uniform_real_distribution<double>(lo, hi)(rng);
    };
    const double max_half_in_plane = std::max(2.0, static_cast<double>(std::min(cols, rows)) / 6);
    const double max_half_slices = std::max(0.5, static_cast<double>(slices) / 6);
    std::vector<Blob> blobs;
    for (unsigned l = 1; l <= labels; ++l) {
        Blob b;
        b.label = static_cast<std::uint8_t>(l);
        b.shape = static_cast<Shape>(l % 3);
        // Sizes spread over orders of magnitude: squared uniform favours small objects.
        const double t = uniform(0.0, 1.0);
        const double r = 1.0 + (max_half_in_plane - 1.0) * t * t;
        b.half = {r * uniform(0.6, 1.0), r * uniform(0.6, 1.0),
                  std::max(0.5, max_half_slices * uniform(0.05, 1.0))};
        for (std::size_t a = 0; a < 3; ++a) {
            const double extent = static_cast<double>(a == 0 ? cols : a == 1 ? rows : slices);
            const double margin = std::min(b.half[a], extent / 2 - 0.5);
            b.centre[a] = uniform(margin - 0.5, extent - 0.5 - margin);
        }
        blobs.push_back(b);
    }
    std::vector<Blob> order = blobs;
    std::stable_sort(order.begin(), order.end(),
                     [](const Blob& a, const Blob& b) { return a.size() > b.size(); });
    for (const Blob& b : order) {
        const auto lo = [&](std::size_t a, std::size_t extent) {
            return static_cast<std::size_t>(
                std::clamp(std::floor(b.centre[a] - b.half[a]), 0.0, double(extent - 1)));
        };
        const auto hi = [&](std::size_t a, std::size_t extent) {
            return static_cast<std::size_t>(
                std::clamp(std::ceil(b.centre[a] + b.half[a]), 0.0, double(extent - 1)));
        };
        for (std::size_t k = lo(2, slices); k <= hi(2, slices); ++k) {
            for (std::size_t j = lo(1, rows); j <= hi(1, rows); ++j) {
                for (std::size_t i = lo(0, cols); i <= hi(0, cols); ++i) {
                    const double u = (static_cast<double>(i) - b.centre[0]) / b.half[0];
                    const double v = (static_cast<double>(j) - b.centre[1]) / b.half[1];
                    const double w = (static_cast<double>(k) - b.centre[2]) / b.half[2];
                    bool inside = false;
                    if (b.shape == Shape::Box) {
                        inside = std::abs(u) <= 1 && std::abs(v) <= 1 && std::abs(w) <= 1;
                    } else {
                        const double q = u * u + v * v + w * w;
                        inside = q <= 1.0 && (b.shape == Shape::Ellipsoid || q >= 0.3 ||
                                              b.half[0] < 3 || b.half[1] < 3);
                    }
                    if (inside) {
                        map[i + cols * (j + rows * k)] = b.label;
                    }
                }
            }
        }
    }
    // A label the others covered completely gets one voxel back near its centre, taken from
    // the background or from a label that keeps other voxels.
    std::array<std::size_t, 256> counts{};
    for (const std::uint8_t v : map) {
        ++counts[v];
    }
    for (const Blob& b : blobs) {
        if (counts[b.label] != 0) {
            continue;
        }
        const auto at = [](double c, std::size_t extent) {
            return std::min(static_cast<std::size_t>(std::max(0.0, std::round(c))), extent - 1);
        };
        std::size_t n =
            at(b.centre[0], cols) + cols * (at(b.centre[1], rows) + rows * at(b.centre[2], slices));
        while (counts[map[n]] < 2) {
            n = (n + 1) % map.size();
        }
        --counts[map[n]];
        map[n] = b.label;
        ++counts[b.label];
    }
    return map;
}

} // namespace segnode::phantom
