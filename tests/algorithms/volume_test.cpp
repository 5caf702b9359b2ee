// The shared volume type: index order, DICOM patient geometry, checks.
#include "phantom.hpp"
#include "segnode/core/volume.hpp"
#include "test_volumes.hpp"

#include <cmath>
#include <gtest/gtest.h>
#include <numbers>

namespace segnode {
namespace {

TEST(Volume, IndexIsColumnFastestThenRowThenSlice) {
    Geometry g;
    g.dims = {4, 3, 2};
    auto v = make_volume<std::uint8_t>(g, 0);
    ASSERT_TRUE(v.consistent());
    EXPECT_EQ(v.voxels.size(), 24U);
    EXPECT_EQ(v.index(0, 0, 0), 0U);
    EXPECT_EQ(v.index(1, 0, 0), 1U);
    EXPECT_EQ(v.index(0, 1, 0), 4U);
    EXPECT_EQ(v.index(0, 0, 1), 12U);
    EXPECT_EQ(v.index(3, 2, 1), 23U);
    v.at(2, 1, 1) = 9;
    EXPECT_EQ(v.voxels[2 + 4 * (1 + 3 * 1)], 9);
    v.voxels.pop_back();
    EXPECT_FALSE(v.consistent());
}

TEST(Volume, VoxelToPatientIsTheDicomFormulaForAnObliqueDirection) {
    // Rotation by 30 degrees about x, then 20 about z; the slice axis runs against the normal
    // (feet first), so the matrix has a negative determinant.
    const double a = 30.0 * std::numbers::pi / 180.0;
    const double b = 20.0 * std::numbers::pi / 180.0;
    const Vec3d row{std::cos(b), std::sin(b), 0.0};
    const Vec3d col{-std::sin(b) * std::cos(a), std::cos(b) * std::cos(a), std::sin(a)};
    const Vec3d normal{row[1] * col[2] - row[2] * col[1], row[2] * col[0] - row[0] * col[2],
                       row[0] * col[1] - row[1] * col[0]};
    const Vec3d slice{-normal[0], -normal[1], -normal[2]};
    Geometry g;
    g.dims = {10, 12, 5};
    g.spacing = {0.7, 0.9, 2.5};
    g.origin = {-100.5, 20.25, 300.0};
    g.direction = make_direction(row, col, slice);
    EXPECT_FALSE(geometry_problem(g).has_value());
    for (const auto& [i, j, k] :
         {std::array<double, 3>{0, 0, 0}, {3, 7, 2}, {9, 11, 4}, {2.5, 0.25, 1.5}}) {
        const Vec3d p = voxel_to_patient(g, i, j, k);
        for (std::size_t r = 0; r < 3; ++r) {
            const double expected =
                g.origin[r] + i * 0.7 * row[r] + j * 0.9 * col[r] + k * 2.5 * slice[r];
            EXPECT_NEAR(p[r], expected, 1e-12) << "axis " << r;
        }
    }
    EXPECT_EQ(axis_direction(g, 0), row);
    EXPECT_EQ(axis_direction(g, 1), col);
    EXPECT_EQ(axis_direction(g, 2), slice);
}

TEST(Volume, GeometryOfAPhantomSeriesMatchesItsVoxelPositions) {
    // What the DICOM loader will do: IPP of slice 0 as origin, IOP as i/j, slice step as k.
    for (const auto orientation : {phantom::Orientation::Axial, phantom::Orientation::Coronal,
                                   phantom::Orientation::Sagittal, phantom::Orientation::Oblique}) {
        for (const bool feet_first : {false, true}) {
            phantom::PhantomSpec spec;
            spec.rows = 20;
            spec.cols = 24;
            spec.slices = 6;
            spec.orientation = orientation;
            spec.feet_first = feet_first;
            const Geometry g = algorithms::test::phantom_geometry(spec);
            const phantom::PhantomGeometry pg = phantom::compute_geometry(spec);
            for (const auto& [i, j, k] : {std::array<int, 3>{0, 0, 0}, {23, 19, 5}, {5, 11, 3}}) {
                const Vec3d p = voxel_to_patient(g, i, j, k);
                const auto q = pg.voxel_position(i, j, k);
                for (std::size_t r = 0; r < 3; ++r) {
                    EXPECT_NEAR(p[r], q[r], 1e-6);
                }
            }
        }
    }
}

TEST(Volume, VoxelVolume) {
    Geometry g;
    g.dims = {1, 1, 1};
    g.spacing = {0.5, 0.8, 2.5};
    EXPECT_DOUBLE_EQ(voxel_volume_mm3(g), 1.0);
    EXPECT_DOUBLE_EQ(voxel_volume_ml(g), 0.001);
}

TEST(Volume, GeometryProblems) {
    Geometry g;
    g.dims = {2, 2, 2};
    EXPECT_FALSE(geometry_problem(g).has_value());
    auto bad = g;
    bad.dims[1] = 0;
    EXPECT_TRUE(geometry_problem(bad).has_value());
    bad = g;
    bad.spacing[2] = -1.0;
    EXPECT_TRUE(geometry_problem(bad).has_value());
    bad = g;
    bad.spacing[0] = std::nan("");
    EXPECT_TRUE(geometry_problem(bad).has_value());
    bad = g;
    bad.direction[0] = 2.0;
    EXPECT_TRUE(geometry_problem(bad).has_value());
    bad = g;
    bad.dims = {std::size_t{1} << 40, std::size_t{1} << 40, 2};
    EXPECT_TRUE(geometry_problem(bad).has_value());
}

} // namespace
} // namespace segnode
