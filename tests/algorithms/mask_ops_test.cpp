// Connected components, hole filling, opening and thresholds on hand-made and random masks,
// checked against simple breadth-first references written here.
#include "segnode/algorithms/mask_ops.hpp"

#include <algorithm>
#include <deque>
#include <functional>
#include <gtest/gtest.h>
#include <random>
#include <string>

namespace segnode::algorithms {
namespace {

LabelMap empty_mask(std::size_t nx, std::size_t ny, std::size_t nz) {
    Geometry g;
    g.dims = {nx, ny, nz};
    return make_volume<std::uint8_t>(g, 0);
}

// Mask from text: slices separated by blank entries, '#' foreground.
LabelMap mask_from_rows(const std::vector<std::vector<std::string>>& slices) {
    LabelMap m = empty_mask(slices[0][0].size(), slices[0].size(), slices.size());
    for (std::size_t k = 0; k < slices.size(); ++k) {
        for (std::size_t j = 0; j < slices[k].size(); ++j) {
            for (std::size_t i = 0; i < slices[k][j].size(); ++i) {
                m.at(i, j, k) = slices[k][j][i] == '#' ? 1 : 0;
            }
        }
    }
    return m;
}

std::vector<std::string> rows_of(const LabelMap& m, std::size_t k) {
    std::vector<std::string> out;
    for (std::size_t j = 0; j < m.geometry.dims[1]; ++j) {
        std::string row;
        for (std::size_t i = 0; i < m.geometry.dims[0]; ++i) {
            row += m.at(i, j, k) != 0 ? '#' : '.';
        }
        out.push_back(row);
    }
    return out;
}

LabelMap random_mask(std::size_t nx, std::size_t ny, std::size_t nz, double density,
                     std::uint64_t seed) {
    LabelMap m = empty_mask(nx, ny, nz);
    std::mt19937_64 engine(seed);
    std::bernoulli_distribution on(density);
    for (auto& v : m.voxels) {
        v = on(engine) ? 1 : 0;
    }
    return m;
}

// Reference: component sizes by breadth-first search over voxels.
std::vector<std::uint64_t> reference_sizes(const LabelMap& m, bool full) {
    const auto& d = m.geometry.dims;
    std::vector<std::uint8_t> seen(m.voxels.size(), 0);
    std::vector<std::uint64_t> sizes;
    for (std::size_t start = 0; start < m.voxels.size(); ++start) {
        if (m.voxels[start] == 0 || seen[start] != 0) {
            continue;
        }
        std::uint64_t size = 0;
        std::deque<std::size_t> queue{start};
        seen[start] = 1;
        while (!queue.empty()) {
            const std::size_t idx = queue.front();
            queue.pop_front();
            ++size;
            const auto i = static_cast<long>(idx % d[0]);
            const auto j = static_cast<long>((idx / d[0]) % d[1]);
            const auto k = static_cast<long>(idx / (d[0] * d[1]));
            for (long dk = -1; dk <= 1; ++dk) {
                for (long dj = -1; dj <= 1; ++dj) {
                    for (long di = -1; di <= 1; ++di) {
                        const long manhattan = std::labs(di) + std::labs(dj) + std::labs(dk);
                        if (manhattan == 0 || (!full && manhattan > 1)) {
                            continue;
                        }
                        const long ni = i + di;
                        const long nj = j + dj;
                        const long nk = k + dk;
                        if (ni < 0 || nj < 0 || nk < 0 || ni >= static_cast<long>(d[0]) ||
                            nj >= static_cast<long>(d[1]) || nk >= static_cast<long>(d[2])) {
                            continue;
                        }
                        const std::size_t n =
                            m.index(static_cast<std::size_t>(ni), static_cast<std::size_t>(nj),
                                    static_cast<std::size_t>(nk));
                        if (m.voxels[n] != 0 && seen[n] == 0) {
                            seen[n] = 1;
                            queue.push_back(n);
                        }
                    }
                }
            }
        }
        sizes.push_back(size);
    }
    std::sort(sizes.begin(), sizes.end(), std::greater<>());
    return sizes;
}

// Reference: 2D hole filling in planes k (axis 2) by breadth-first search from the border.
LabelMap reference_fill_k(const LabelMap& m) {
    LabelMap out = m;
    const auto& d = m.geometry.dims;
    for (std::size_t k = 0; k < d[2]; ++k) {
        std::vector<std::uint8_t> outside(d[0] * d[1], 0);
        std::deque<std::pair<std::size_t, std::size_t>> queue;
        auto push = [&](std::size_t i, std::size_t j) {
            if (m.at(i, j, k) == 0 && outside[i + d[0] * j] == 0) {
                outside[i + d[0] * j] = 1;
                queue.emplace_back(i, j);
            }
        };
        for (std::size_t i = 0; i < d[0]; ++i) {
            push(i, 0);
            push(i, d[1] - 1);
        }
        for (std::size_t j = 0; j < d[1]; ++j) {
            push(0, j);
            push(d[0] - 1, j);
        }
        while (!queue.empty()) {
            const auto [i, j] = queue.front();
            queue.pop_front();
            if (i > 0) {
                push(i - 1, j);
            }
            if (i + 1 < d[0]) {
                push(i + 1, j);
            }
            if (j > 0) {
                push(i, j - 1);
            }
            if (j + 1 < d[1]) {
                push(i, j + 1);
            }
        }
        for (std::size_t j = 0; j < d[1]; ++j) {
            for (std::size_t i = 0; i < d[0]; ++i) {
                if (outside[i + d[0] * j] == 0) {
                    out.at(i, j, k) = 1;
                }
            }
        }
    }
    return out;
}

// Axis n of the result is axis axes[n] of the input.
LabelMap permute(const LabelMap& m, const std::array<std::size_t, 3>& axes) {
    const auto& d = m.geometry.dims;
    LabelMap out = empty_mask(d[axes[0]], d[axes[1]], d[axes[2]]);
    for (std::size_t k = 0; k < d[2]; ++k) {
        for (std::size_t j = 0; j < d[1]; ++j) {
            for (std::size_t i = 0; i < d[0]; ++i) {
                const std::array<std::size_t, 3> c{i, j, k};
                out.at(c[axes[0]], c[axes[1]], c[axes[2]]) = m.at(i, j, k);
            }
        }
    }
    return out;
}

TEST(Components, FacesVersusFullConnectivity) {
    const LabelMap m = mask_from_rows({{
                                           "##...",
                                           "##...",
                                           "..#..",
                                           ".....",
                                           "...##",
                                       },
                                       {
                                           ".....",
                                           ".....",
                                           ".....",
                                           "...#.",
                                           ".....",
                                       }});
    EXPECT_EQ(component_sizes(m, Connectivity::Faces), (std::vector<std::uint64_t>{4, 2, 1, 1}));
    // Full also joins the block and the single voxel (shared edge), that voxel and the voxel
    // of slice 1 (shared corner), and the latter and the pair (shared edge).
    EXPECT_EQ(component_sizes(m, Connectivity::Full), (std::vector<std::uint64_t>{8}));
}

TEST(Components, RandomMasksMatchBreadthFirstSearch) {
    for (std::uint64_t seed = 1; seed <= 6; ++seed) {
        for (const double density : {0.2, 0.45, 0.7}) {
            const LabelMap m = random_mask(23, 17, 9, density, seed);
            EXPECT_EQ(component_sizes(m, Connectivity::Faces), reference_sizes(m, false))
                << "seed " << seed << " density " << density;
            EXPECT_EQ(component_sizes(m, Connectivity::Full), reference_sizes(m, true))
                << "seed " << seed << " density " << density;
        }
    }
}

TEST(Components, LongRowsMatchBreadthFirstSearch) {
    // Rows of 70 voxels with long stretches exercise the 8-bytes-at-a-time scanning.
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        for (const double density : {0.05, 0.9}) {
            const LabelMap m = random_mask(70, 9, 5, density, seed);
            EXPECT_EQ(component_sizes(m, Connectivity::Faces), reference_sizes(m, false));
        }
    }
}

TEST(Components, EmptyAndFullMasks) {
    LabelMap m = empty_mask(4, 3, 2);
    EXPECT_TRUE(component_sizes(m).empty());
    EXPECT_EQ(filter_components(m, {1, 0, Connectivity::Faces}), 0U);
    std::fill(m.voxels.begin(), m.voxels.end(), std::uint8_t{1});
    EXPECT_EQ(component_sizes(m), (std::vector<std::uint64_t>{24}));
}

TEST(Components, KeepLargestAndMinimumSize) {
    const LabelMap m = mask_from_rows({{
        "###.#",
        "###..",
        ".....",
        "##..#",
        "....#",
    }});
    LabelMap largest = m;
    EXPECT_EQ(filter_components(largest, {1, 0, Connectivity::Faces}), 1U);
    EXPECT_EQ(rows_of(largest, 0),
              (std::vector<std::string>{"###..", "###..", ".....", ".....", "....."}));

    LabelMap two = m;
    // Sizes 6, 1, 2, 2: of the two pairs, the one reached first in index order is kept.
    EXPECT_EQ(filter_components(two, {2, 0, Connectivity::Faces}), 2U);
    EXPECT_EQ(rows_of(two, 0),
              (std::vector<std::string>{"###..", "###..", ".....", "##...", "....."}));

    LabelMap at_least_two = m;
    EXPECT_EQ(filter_components(at_least_two, {0, 2, Connectivity::Faces}), 3U);
    EXPECT_EQ(rows_of(at_least_two, 0),
              (std::vector<std::string>{"###..", "###..", ".....", "##..#", "....#"}));

    LabelMap none = m;
    EXPECT_EQ(filter_components(none, {0, 7, Connectivity::Faces}), 0U);
    EXPECT_EQ(count_foreground(none), 0U);

    // Sizes 6, 1, 2, 2: at half of the largest only the 6 stays; at a third the two pairs
    // stay too (2 >= 6 / 3) and only the single voxel goes.
    LabelMap half = m;
    EXPECT_EQ(filter_components(half, {0, 0, Connectivity::Faces, 0.5}), 1U);
    EXPECT_EQ(count_foreground(half), 6U);
    LabelMap third = m;
    EXPECT_EQ(filter_components(third, {2, 0, Connectivity::Faces, 0.5}), 1U);
    LabelMap kept = m;
    EXPECT_EQ(filter_components(kept, {0, 0, Connectivity::Faces, 1.0 / 3.0}), 3U);
    EXPECT_EQ(count_foreground(kept), 10U);
}

TEST(Components, FilterMatchesReferenceOnRandomMasksWithThreads) {
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        LabelMap m = random_mask(31, 20, 12, 0.5, seed);
        const auto sizes = reference_sizes(m, false);
        LabelMap kept = m;
        EXPECT_EQ(filter_components(kept, {3, 0, Connectivity::Faces}, 2), 3U);
        const auto kept_sizes = reference_sizes(kept, false);
        EXPECT_EQ(kept_sizes, (std::vector<std::uint64_t>(sizes.begin(), sizes.begin() + 3)));
        for (std::size_t i = 0; i < m.voxels.size(); ++i) {
            ASSERT_TRUE(kept.voxels[i] == 0 || m.voxels[i] != 0); // only removes
        }
    }
}

TEST(FillHoles, RingIsFilledOpenShapeIsNot) {
    const LabelMap m = mask_from_rows({{
        ".......",
        ".####..",
        ".#..#..",
        ".####..",
        ".......",
        "###....",
        "#.#....",
    }});
    LabelMap filled = m;
    fill_holes_2d(filled, 2);
    EXPECT_EQ(rows_of(filled, 0),
              (std::vector<std::string>{
                  ".......", ".####..", ".####..", ".####..", ".......", "###....",
                  "#.#....", // open to the border: not a hole
              }));
}

TEST(FillHoles, DiagonalGapDoesNotLetTheOutsideIn) {
    // The background is 4-connected: a hole whose wall has only a diagonal gap is filled.
    const LabelMap m = mask_from_rows({{
        ".......",
        "..###..",
        ".#...#.",
        ".#...#.",
        "..###..",
        ".......",
    }});
    LabelMap filled = m;
    fill_holes_2d(filled, 2);
    EXPECT_EQ(filled.at(2, 2, 0), 1);
    EXPECT_EQ(filled.at(4, 3, 0), 1);
    EXPECT_EQ(filled.at(1, 1, 0), 0);
    EXPECT_EQ(count_foreground(filled), count_foreground(m) + 6);
}

TEST(FillHoles, IsPerPlaneSoATubeThroughTheVolumeIsFilled) {
    // A tube along k: in 3D its inside reaches the first and last slice, in every slice it is
    // a hole.
    LabelMap m = empty_mask(7, 7, 5);
    for (std::size_t k = 0; k < 5; ++k) {
        for (std::size_t t = 1; t <= 5; ++t) {
            m.at(t, 1, k) = m.at(t, 5, k) = m.at(1, t, k) = m.at(5, t, k) = 1;
        }
    }
    fill_holes_2d(m, 2);
    for (std::size_t k = 0; k < 5; ++k) {
        EXPECT_EQ(m.at(3, 3, k), 1);
        EXPECT_EQ(m.at(0, 0, k), 0);
    }
    // Along the tube's axis nothing is a hole.
    LabelMap along = empty_mask(7, 7, 5);
    for (std::size_t k = 0; k < 5; ++k) {
        for (std::size_t t = 1; t <= 5; ++t) {
            along.at(t, 1, k) = along.at(t, 5, k) = along.at(1, t, k) = along.at(5, t, k) = 1;
        }
    }
    LabelMap before = along;
    fill_holes_2d(along, 0);
    EXPECT_EQ(along.voxels, before.voxels);
}

TEST(FillHoles, RandomMasksMatchReferenceOnEveryAxis) {
    for (std::uint64_t seed = 1; seed <= 8; ++seed) {
        // Small and long rows, sparse and dense masks (long stretches of 0 or 1).
        const LabelMap m = seed <= 4 ? random_mask(19, 14, 6, 0.55, seed)
                                     : random_mask(67, 41, 3, seed % 2 ? 0.3 : 0.75, seed);
        LabelMap filled = m;
        fill_holes_2d(filled, 2, 2);
        EXPECT_EQ(filled.voxels, reference_fill_k(m).voxels) << "seed " << seed;
        // Axis 0 and 1: move that axis to k, fill there with the reference, move back.
        for (const std::size_t axis : {std::size_t{0}, std::size_t{1}}) {
            const std::array<std::size_t, 3> to_k =
                axis == 0 ? std::array<std::size_t, 3>{1, 2, 0}  // i->k, j->i, k->j
                          : std::array<std::size_t, 3>{0, 2, 1}; // j->k, k->j
            const std::array<std::size_t, 3> back = axis == 0 ? std::array<std::size_t, 3>{2, 0, 1}
                                                              : std::array<std::size_t, 3>{0, 2, 1};
            LabelMap f = m;
            fill_holes_2d(f, axis, 2);
            const LabelMap expected = permute(reference_fill_k(permute(m, to_k)), back);
            EXPECT_EQ(f.voxels, expected.voxels) << "seed " << seed << " axis " << axis;
        }
    }
}

TEST(Opening, CutsAThinBridgeAndKeepsBlocks) {
    const LabelMap m = mask_from_rows({{
        "..............",
        ".####....####.",
        ".####....####.",
        ".#############",
        ".####....####.",
        "..............",
    }});
    LabelMap opened = m;
    open_2d(opened, 2, 1, 1);
    EXPECT_EQ(rows_of(opened, 0), (std::vector<std::string>{
                                      "..............",
                                      ".####....####.",
                                      ".####....####.",
                                      ".####....####.",
                                      ".####....####.",
                                      "..............",
                                  }));
    EXPECT_EQ(component_sizes(opened), (std::vector<std::uint64_t>{16, 16}));
    LabelMap unchanged = m;
    open_2d(unchanged, 2, 0, 0);
    EXPECT_EQ(unchanged.voxels, m.voxels);
}

TEST(Opening, RectangleRadiiPerAxis) {
    // A 3-wide vertical bar survives radius 1 along u but not radius 2.
    LabelMap m = empty_mask(9, 9, 1);
    for (std::size_t j = 0; j < 9; ++j) {
        for (std::size_t i = 3; i < 6; ++i) {
            m.at(i, j, 0) = 1;
        }
    }
    LabelMap a = m;
    open_2d(a, 2, 1, 3);
    EXPECT_EQ(a.voxels, m.voxels);
    LabelMap b = m;
    open_2d(b, 2, 2, 0);
    EXPECT_EQ(count_foreground(b), 0U);
}

TEST(MaskOps, AxialAxisFollowsThePatientHeadFeetAxis) {
    Geometry axial;
    axial.dims = {2, 2, 2};
    EXPECT_EQ(axial_axis(axial), 2U);
    Geometry coronal = axial; // rows along -z
    coronal.direction = make_direction({1, 0, 0}, {0, 0, -1}, {0, 1, 0});
    EXPECT_EQ(axial_axis(coronal), 1U);
    Geometry sagittal = axial; // rows along -z, slices along x
    sagittal.direction = make_direction({0, 1, 0}, {0, 0, -1}, {-1, 0, 0});
    EXPECT_EQ(axial_axis(sagittal), 1U);
    Geometry rotated = axial; // columns along z
    rotated.direction = make_direction({0, 0, 1}, {1, 0, 0}, {0, 1, 0});
    EXPECT_EQ(axial_axis(rotated), 0U);
}

TEST(MaskOps, VoxelsForVolume) {
    Geometry g;
    g.dims = {1, 1, 1};
    g.spacing = {0.5, 0.5, 2.0}; // 0.5 mm^3
    EXPECT_EQ(voxels_for_mm3(g, 0.0), 0U);
    EXPECT_EQ(voxels_for_mm3(g, 0.5), 1U);
    EXPECT_EQ(voxels_for_mm3(g, 0.6), 2U);
    EXPECT_EQ(voxels_for_mm3(g, 100.0), 200U);
}

TEST(MaskOps, ThresholdBoundsAreInclusive) {
    Geometry g;
    g.dims = {7, 1, 1};
    CtVolume ct{g, {-3, -2, -1, 0, 1, 2, 3}};
    const LabelMap m = threshold_mask(ct, -1, 1, 2);
    EXPECT_EQ(m.voxels, (Buffer<std::uint8_t>{0, 0, 1, 1, 1, 0, 0}));
    EXPECT_EQ(count_foreground(m), 3U);
}

} // namespace
} // namespace segnode::algorithms
