// Contour extraction (src/dicom/contours.cpp): the even-odd rasterisation of the contours of a
// slice must give back the region exactly, for random and handcrafted masks; plus the
// convention (orientation, no collinear points, simple non-touching polygons) and the
// ContourData size limits.
#include "even_odd_raster.hpp"
#include "segnode/dicom/contours.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <gtest/gtest.h>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace segnode::dicom {
namespace {

using Mask = std::vector<std::uint8_t>;

/// The shared even-odd rasteriser (even_odd_raster.hpp); every row must have an even number
/// of crossings.
Mask rasterise_even_odd(const std::vector<Contour>& contours, std::size_t w, std::size_t h,
                        std::uint8_t value = 1) {
    test::Rasterised r = test::rasterise_even_odd(contours, w, h, value);
    EXPECT_EQ(r.odd_row, -1) << "odd number of crossings in row " << r.odd_row;
    return r.mask;
}

Mask binary(const Mask& labels, std::uint8_t value) {
    Mask out(labels.size());
    std::transform(labels.begin(), labels.end(), out.begin(),
                   [value](std::uint8_t v) { return v == value ? 1 : 0; });
    return out;
}

std::string show(const Mask& m, std::size_t w, std::size_t h) {
    std::string s;
    for (std::size_t j = 0; j < h; ++j) {
        for (std::size_t i = 0; i < w; ++i) {
            s += m[i + w * j] ? '#' : '.';
        }
        s += '\n';
    }
    return s;
}

Mask parse(const std::vector<std::string>& rows, std::size_t& w, std::size_t& h) {
    h = rows.size();
    w = rows.front().size();
    Mask m(w * h, 0);
    for (std::size_t j = 0; j < h; ++j) {
        for (std::size_t i = 0; i < w; ++i) {
            const char c = rows[j][i];
            m[i + w * j] = c == '.' ? 0 : (c == '#' ? 1 : static_cast<std::uint8_t>(c - '0'));
        }
    }
    return m;
}

double cross(const ContourPoint& o, const ContourPoint& a, const ContourPoint& b) {
    return (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x);
}

/// Closed segments [p, q] and [r, s] share at least one point.
bool segments_touch(const ContourPoint& p, const ContourPoint& q, const ContourPoint& r,
                    const ContourPoint& s) {
    const double d1 = cross(r, s, p);
    const double d2 = cross(r, s, q);
    const double d3 = cross(p, q, r);
    const double d4 = cross(p, q, s);
    auto on = [](const ContourPoint& a, const ContourPoint& b, const ContourPoint& c) {
        return std::min(a.x, b.x) <= c.x && c.x <= std::max(a.x, b.x) &&
               std::min(a.y, b.y) <= c.y && c.y <= std::max(a.y, b.y);
    };
    if (((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0))) {
        return true;
    }
    return (d1 == 0 && on(r, s, p)) || (d2 == 0 && on(r, s, q)) || (d3 == 0 && on(p, q, r)) ||
           (d4 == 0 && on(p, q, s));
}

/// Every property of the convention, for the contours of one region.
void check_contours(const std::vector<Contour>& contours, const Mask& region, std::size_t w,
                    std::size_t h, bool check_simple, std::size_t max_points = 0) {
    EXPECT_EQ(rasterise_even_odd(contours, w, h), region)
        << "region:\n"
        << show(region, w, h) << "rasterised:\n"
        << show(rasterise_even_odd(contours, w, h), w, h);
    for (const Contour& c : contours) {
        const std::size_t n = c.points.size();
        ASSERT_GE(n, 4U);
        if (max_points != 0) {
            EXPECT_LE(n, max_points);
        }
        // Orientation: the flag matches the sign of the area, never zero.
        const double area = signed_area(c.points);
        EXPECT_NE(area, 0.0);
        EXPECT_EQ(c.hole, area < 0.0);
        for (std::size_t i = 0; i < n; ++i) {
            const ContourPoint& a = c.points[(i + n - 1) % n];
            const ContourPoint& b = c.points[i];
            const ContourPoint& d = c.points[(i + 1) % n];
            EXPECT_NE(cross(a, b, d), 0.0)
                << "collinear point " << i << " at (" << b.x << ", " << b.y << ")";
            // Vertices are at pixel corners, or a saddle offset away from one along an edge.
            const double fx = b.x - std::floor(b.x);
            const double fy = b.y - std::floor(b.y);
            EXPECT_TRUE((fx == 0.5 || fx == 0.25 || fx == 0.75) &&
                        (fy == 0.5 || fy == 0.25 || fy == 0.75) && (fx == 0.5 || fy == 0.5))
                << "(" << b.x << ", " << b.y << ")";
        }
    }
    if (!check_simple) {
        return;
    }
    // Simple and pairwise disjoint: no two edges meet except consecutive edges of one contour
    // at their shared vertex.
    struct Edge {
        ContourPoint p, q;
        std::size_t contour, index, size;
    };
    std::vector<Edge> edges;
    for (std::size_t ci = 0; ci < contours.size(); ++ci) {
        const auto& pts = contours[ci].points;
        for (std::size_t i = 0; i < pts.size(); ++i) {
            edges.push_back({pts[i], pts[(i + 1) % pts.size()], ci, i, pts.size()});
        }
    }
    for (std::size_t a = 0; a < edges.size(); ++a) {
        for (std::size_t b = a + 1; b < edges.size(); ++b) {
            const Edge& e = edges[a];
            const Edge& f = edges[b];
            if (e.contour == f.contour &&
                (f.index == (e.index + 1) % e.size || e.index == (f.index + 1) % e.size)) {
                continue;
            }
            ASSERT_FALSE(segments_touch(e.p, e.q, f.p, f.q))
                << "contours " << e.contour << " and " << f.contour << " edges " << e.index
                << " and " << f.index << " touch in\n"
                << show(region, w, h);
        }
    }
}

void check_mask(const Mask& region, std::size_t w, std::size_t h, bool check_simple = true,
                std::size_t max_points = 0) {
    ContourOptions options;
    options.max_points = max_points;
    const auto contours = extract_contours(region, w, h, 1, options);
    check_contours(contours, region, w, h, check_simple, max_points);
}

TEST(Contours, EmptySliceHasNoContours) {
    const Mask m(12 * 7, 0);
    EXPECT_TRUE(extract_contours(m, 12, 7, 1).empty());
    EXPECT_TRUE(extract_slice_contours(m, 12, 7).empty());
}

TEST(Contours, SinglePixelIsACounterClockwiseSquareOnPixelEdges) {
    std::size_t w = 0;
    std::size_t h = 0;
    const Mask m = parse({"...", ".#.", "..."}, w, h);
    const auto contours = extract_contours(m, w, h, 1);
    ASSERT_EQ(contours.size(), 1U);
    const auto& pts = contours[0].points;
    ASSERT_EQ(pts.size(), 4U);
    EXPECT_FALSE(contours[0].hole);
    EXPECT_DOUBLE_EQ(signed_area(pts), 1.0);
    std::set<std::pair<double, double>> corners;
    for (const auto& p : pts) {
        corners.insert({p.x, p.y});
    }
    const std::set<std::pair<double, double>> expected{
        {0.5, 0.5}, {1.5, 0.5}, {1.5, 1.5}, {0.5, 1.5}};
    EXPECT_EQ(corners, expected);
    check_mask(m, w, h);
}

TEST(Contours, FullFieldIsTheImageBorder) {
    const std::size_t w = 61;
    const std::size_t h = 67;
    const Mask m(w * h, 1);
    const auto contours = extract_contours(m, w, h, 1);
    ASSERT_EQ(contours.size(), 1U);
    ASSERT_EQ(contours[0].points.size(), 4U);
    EXPECT_DOUBLE_EQ(signed_area(contours[0].points), static_cast<double>(w * h));
    for (const auto& p : contours[0].points) {
        EXPECT_TRUE(p.x == -0.5 || p.x == w - 0.5);
        EXPECT_TRUE(p.y == -0.5 || p.y == h - 0.5);
    }
    check_mask(m, w, h);
}

TEST(Contours, RingHasAnOuterBoundaryAndAClockwiseHole) {
    std::size_t w = 0;
    std::size_t h = 0;
    const Mask m = parse({".......", ".#####.", ".#...#.", ".#...#.", ".#####.", "......."}, w, h);
    const auto contours = extract_contours(m, w, h, 1);
    ASSERT_EQ(contours.size(), 2U);
    EXPECT_FALSE(contours[0].hole);
    EXPECT_TRUE(contours[1].hole);
    EXPECT_DOUBLE_EQ(signed_area(contours[0].points), 20.0);
    EXPECT_DOUBLE_EQ(signed_area(contours[1].points), -6.0);
    check_mask(m, w, h);
}

TEST(Contours, IslandInAHoleIsAnotherOuterBoundary) {
    std::size_t w = 0;
    std::size_t h = 0;
    const Mask m = parse({"#########", "#.......#", "#.#####.#", "#.#...#.#", "#.#.#.#.#",
                          "#.#...#.#", "#.#####.#", "#.......#", "#########"},
                         w, h);
    const auto contours = extract_contours(m, w, h, 1);
    ASSERT_EQ(contours.size(), 5U);
    const auto outer =
        std::count_if(contours.begin(), contours.end(), [](const Contour& c) { return !c.hole; });
    EXPECT_EQ(outer, 3);
    check_mask(m, w, h);
}

TEST(Contours, DiagonalNeighboursFormOneContourWithACutCorner) {
    std::size_t w = 0;
    std::size_t h = 0;
    const Mask m = parse({"#.", ".#"}, w, h);
    const auto contours = extract_contours(m, w, h, 1);
    ASSERT_EQ(contours.size(), 1U) << "8-connected region";
    // Two unit squares joined by a channel at the shared corner (0.5, 0.5): 4 + 4 corners,
    // of which the shared one is replaced by two points on each pass.
    EXPECT_EQ(contours[0].points.size(), 10U);
    for (const auto& p : contours[0].points) {
        EXPECT_FALSE(p.x == 0.5 && p.y == 0.5) << "the shared corner itself is not a vertex";
    }
    check_mask(m, w, h);

    const Mask anti = parse({".#", "#."}, w, h);
    ASSERT_EQ(extract_contours(anti, w, h, 1).size(), 1U);
    check_mask(anti, w, h);
}

TEST(Contours, HoleTouchingTheOutsideDiagonallyIsStillAHole) {
    // The background is 4-connected: the inner pixel does not leak out through the corner.
    std::size_t w = 0;
    std::size_t h = 0;
    const Mask m = parse({"##.", "#.#", ".##"}, w, h);
    const auto contours = extract_contours(m, w, h, 1);
    ASSERT_EQ(contours.size(), 2U);
    EXPECT_EQ(
        std::count_if(contours.begin(), contours.end(), [](const Contour& c) { return c.hole; }),
        1);
    check_mask(m, w, h);
}

TEST(Contours, CheckerboardIsExactAndSimple) {
    for (const auto& [w, h] : std::vector<std::pair<std::size_t, std::size_t>>{{8, 8}, {7, 9}}) {
        Mask m(w * h);
        for (std::size_t j = 0; j < h; ++j) {
            for (std::size_t i = 0; i < w; ++i) {
                m[i + w * j] = (i + j) % 2;
            }
        }
        check_mask(m, w, h);
        Mask inverse(m);
        for (auto& v : inverse) {
            v = 1 - v;
        }
        check_mask(inverse, w, h);
    }
}

TEST(Contours, RegionsTouchingEveryImageEdge) {
    std::size_t w = 0;
    std::size_t h = 0;
    const Mask m = parse({"#..#.##", "#.....#", "...#...", "##.#..#", "#.....#", "#.###.#"}, w, h);
    check_mask(m, w, h);
    const Mask cross_mask = parse({"...#...", "...#...", "#######", "...#...", "...#..."}, w, h);
    check_mask(cross_mask, w, h);
}

TEST(Contours, OneRowAndOneColumnImages) {
    std::size_t w = 0;
    std::size_t h = 0;
    const Mask row = parse({"##.#.###..#"}, w, h);
    check_mask(row, w, h);
    EXPECT_EQ(extract_contours(row, w, h, 1).size(), 4U);
    const Mask column = parse({"#", "#", ".", "#"}, w, h);
    check_mask(column, w, h);
}

TEST(Contours, RandomMasksRasteriseBackExactly) {
    std::mt19937 rng(20240611);
    for (int round = 0; round < 60; ++round) {
        const std::size_t w = 1 + rng() % 23;
        const std::size_t h = 1 + rng() % 23;
        const double density = std::uniform_real_distribution<double>(0.05, 0.95)(rng);
        std::bernoulli_distribution fg(density);
        Mask m(w * h);
        for (auto& v : m) {
            v = fg(rng) ? 1 : 0;
        }
        SCOPED_TRACE("round " + std::to_string(round) + " " + std::to_string(w) + "x" +
                     std::to_string(h));
        check_mask(m, w, h, /*check_simple=*/true);
        if (HasFatalFailure()) {
            return;
        }
    }
}

TEST(Contours, LargeRandomMasksWithBlobsRasteriseBackExactly) {
    // 61 x 67 (rows x columns not a multiple of 8) and 512 x 512, smoothed noise: blobs with
    // holes, islands and diagonal contacts.
    std::mt19937 rng(7);
    for (const auto& [w, h] :
         std::vector<std::pair<std::size_t, std::size_t>>{{67, 61}, {512, 512}}) {
        std::vector<float> noise(w * h);
        std::uniform_real_distribution<float> u(0.0F, 1.0F);
        for (auto& v : noise) {
            v = u(rng);
        }
        Mask m(w * h);
        for (std::size_t j = 0; j < h; ++j) {
            for (std::size_t i = 0; i < w; ++i) {
                float s = 0;
                int n = 0;
                for (std::size_t jj = (j > 0 ? j - 1 : 0); jj <= std::min(h - 1, j + 1); ++jj) {
                    for (std::size_t ii = (i > 0 ? i - 1 : 0); ii <= std::min(w - 1, i + 1); ++ii) {
                        s += noise[ii + w * jj];
                        ++n;
                    }
                }
                m[i + w * j] = s / static_cast<float>(n) > 0.5F ? 1 : 0;
            }
        }
        check_mask(m, w, h, /*check_simple=*/w < 100);
    }
}

TEST(Contours, SeveralLabelsPerSlice) {
    std::size_t w = 0;
    std::size_t h = 0;
    const Mask m = parse({"1112222", "1.12..2", "1112222", "..33...", "3.33.33"}, w, h);
    const auto per_label = extract_slice_contours(m, w, h);
    ASSERT_EQ(per_label.size(), 3U);
    for (std::size_t k = 0; k < 3; ++k) {
        EXPECT_EQ(per_label[k].label, k + 1);
        check_contours(per_label[k].contours, binary(m, per_label[k].label), w, h, true);
        // extract_contours for one value gives the same contours.
        const auto single = extract_contours(m, w, h, per_label[k].label);
        ASSERT_EQ(single.size(), per_label[k].contours.size());
    }
}

TEST(Contours, MaxPointsSplitsAlongRowsAndStaysExact) {
    // A comb: one contour with many corners.
    const std::size_t w = 64;
    const std::size_t h = 40;
    Mask m(w * h, 0);
    for (std::size_t j = 1; j < h - 1; ++j) {
        for (std::size_t i = 1; i < w - 1; ++i) {
            m[i + w * j] = (j < 4 || i % 2 == 1) ? 1 : 0;
        }
    }
    const auto whole = extract_contours(m, w, h, 1);
    ASSERT_EQ(whole.size(), 1U);
    ASSERT_GT(whole[0].points.size(), 100U);
    for (const std::size_t limit : {100U, 40U, 9U, 4U, 1U}) {
        SCOPED_TRACE("max_points " + std::to_string(limit));
        check_mask(m, w, h, /*check_simple=*/false, std::max<std::size_t>(limit, 4));
        ContourOptions options;
        options.max_points = limit;
        EXPECT_GT(extract_contours(m, w, h, 1, options).size(), 1U);
    }
    // Random masks under a small limit, every contour within it and exact.
    std::mt19937 rng(3);
    for (int round = 0; round < 20; ++round) {
        const std::size_t rw = 5 + rng() % 40;
        const std::size_t rh = 5 + rng() % 40;
        std::bernoulli_distribution fg(0.6);
        Mask r(rw * rh);
        for (auto& v : r) {
            v = fg(rng) ? 1 : 0;
        }
        check_mask(r, rw, rh, /*check_simple=*/false, 12);
    }
}

TEST(Contours, VolumeExtractionMatchesSliceExtractionInParallel) {
    LabelMap labels;
    labels.geometry.dims = {37, 29, 23};
    labels.voxels.resize(37 * 29 * 23);
    std::mt19937 rng(11);
    std::uniform_int_distribution<int> v(0, 6);
    for (auto& x : labels.voxels) {
        const int r = v(rng);
        x = static_cast<std::uint8_t>(r > 3 ? 0 : r);
    }
    ContourOptions options;
    options.threads = 3;
    const auto volume = extract_volume_contours(labels, options);
    ASSERT_EQ(volume.size(), 23U);
    const std::size_t plane = 37 * 29;
    for (std::size_t k = 0; k < 23; ++k) {
        const std::span<const std::uint8_t> slice(labels.voxels.data() + k * plane, plane);
        const auto expected = extract_slice_contours(slice, 37, 29);
        ASSERT_EQ(volume[k].size(), expected.size());
        for (std::size_t l = 0; l < expected.size(); ++l) {
            EXPECT_EQ(volume[k][l].label, expected[l].label);
            const Mask region(slice.begin(), slice.end());
            EXPECT_EQ(rasterise_even_odd(volume[k][l].contours, 37, 29),
                      binary(region, volume[k][l].label));
        }
    }
}

TEST(DecimalString, FixedPointTrimmedWithinSixteenCharacters) {
    auto ds = [](double v) {
        std::string s;
        append_decimal_string(s, v);
        return s;
    };
    EXPECT_EQ(ds(0.0), "0");
    EXPECT_EQ(ds(-0.0), "0");
    EXPECT_EQ(ds(-0.00001), "0");
    EXPECT_EQ(ds(1.5), "1.5");
    EXPECT_EQ(ds(-250.0), "-250");
    EXPECT_EQ(ds(-123.45678), "-123.4568");
    EXPECT_EQ(ds(0.00005), "0.0001");
    EXPECT_EQ(ds(99.99996), "100");
    for (const double big : {1.2345678901234e15, -9.87654321e20, 123456789012.34567}) {
        const std::string s = ds(big);
        EXPECT_LE(s.size(), 16U) << s;
        EXPECT_NEAR(std::stod(s) / big, 1.0, 1e-9) << s;
    }
    EXPECT_THROW(ds(std::nan("")), std::invalid_argument);
}

TEST(DecimalString, ContourDataPointLimitKeepsTheValueUnder64KiB) {
    EXPECT_EQ(max_decimal_string_length(500.0), 9U);      // -500.1234
    EXPECT_EQ(max_decimal_string_length(999.99996), 10U); // -1000.0000 before trimming
    EXPECT_EQ(contour_data_point_limit(500.0), 65534U / 30U);
    for (const double max_abs : {0.7, 99.99996, 512.0, 4096.5, 1.0e7}) {
        const std::size_t n = contour_data_point_limit(max_abs);
        // Worst case: every value as long as it gets (negative, all decimals).
        std::string data;
        for (std::size_t p = 0; p < 3 * n; ++p) {
            if (!data.empty()) {
                data.push_back('\\');
            }
            append_decimal_string(data, -max_abs + 0.00013);
        }
        EXPECT_LE(data.size() + data.size() % 2, 65534U) << max_abs;
        EXPECT_GT(n, 1000U);
    }
}

} // namespace
} // namespace segnode::dicom
