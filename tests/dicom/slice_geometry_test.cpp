// The stack rules of the series loader on hand-made slice positions (no DICOM files).
#include "slice_geometry.hpp"

#include <cmath>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <numbers>
#include <string>
#include <vector>

namespace segnode::dicom::detail {
namespace {

using ::testing::HasSubstr;

constexpr std::array<double, 6> axial{1, 0, 0, 0, 1, 0};

std::vector<SliceGeometry> stack_at(const std::vector<double>& z,
                                    const std::array<double, 6>& orientation = axial) {
    std::vector<SliceGeometry> out;
    for (std::size_t i = 0; i < z.size(); ++i) {
        SliceGeometry s;
        s.label = "s" + std::to_string(i);
        s.position = Vec3d{-100.0, -120.0, z[i]};
        s.orientation = orientation;
        s.pixel_spacing = std::array<double, 2>{0.5, 0.7};
        s.slice_thickness = 2.0;
        out.push_back(s);
    }
    return out;
}

Result<StackGeometry> build(const std::vector<SliceGeometry>& slices, StackRules rules = {}) {
    return build_stack(slices, 20, 30, rules);
}

TEST(SliceGeometry, SortsAlongTheNormalAndDerivesTheGeometry) {
    const auto result = build(stack_at({4.0, 0.0, 2.0, 6.0}));
    ASSERT_TRUE(result.ok()) << result.error().message;
    EXPECT_EQ(result->order, (std::vector<std::size_t>{1, 2, 0, 3}));
    const Geometry& g = result->geometry;
    EXPECT_EQ(g.dims, (std::array<std::size_t, 3>{30, 20, 4}));
    EXPECT_DOUBLE_EQ(g.spacing[0], 0.7) << "column spacing is PixelSpacing[1]";
    EXPECT_DOUBLE_EQ(g.spacing[1], 0.5) << "row spacing is PixelSpacing[0]";
    EXPECT_DOUBLE_EQ(g.spacing[2], 2.0);
    EXPECT_EQ(g.origin, (Vec3d{-100.0, -120.0, 0.0}));
    EXPECT_EQ(axis_direction(g, 2), (Vec3d{0.0, 0.0, 1.0}));
}

TEST(SliceGeometry, SingleSliceUsesThicknessAndNormal) {
    const auto result = build(stack_at({7.0}));
    ASSERT_TRUE(result.ok()) << result.error().message;
    EXPECT_DOUBLE_EQ(result->geometry.spacing[2], 2.0);
    EXPECT_EQ(axis_direction(result->geometry, 2), (Vec3d{0.0, 0.0, 1.0}));
    auto no_thickness = stack_at({7.0});
    no_thickness[0].slice_thickness = 0.0;
    EXPECT_DOUBLE_EQ(build(no_thickness)->geometry.spacing[2], 1.0);
}

TEST(SliceGeometry, DuplicatesNameTheImages) {
    const auto result = build(stack_at({0.0, 2.0, 2.0, 4.0}));
    ASSERT_FALSE(result.ok());
    EXPECT_THAT(result.error().message, HasSubstr("duplicate slice positions"));
    EXPECT_THAT(result.error().message, HasSubstr("s1, s2 at -100\\-120\\2"));
}

TEST(SliceGeometry, RepeatedVolumesAreRecognised) {
    const auto result = build(stack_at({0.0, 2.0, 4.0, 0.0, 2.0, 4.0}));
    ASSERT_FALSE(result.ok());
    EXPECT_THAT(result.error().message, HasSubstr("every position holds 2 images"));
}

TEST(SliceGeometry, GapNamesBothNeighboursAndTheSpacings) {
    const auto result = build(stack_at({0.0, 2.0, 4.0, 8.0, 10.0}));
    ASSERT_FALSE(result.ok());
    const std::string& m = result.error().message;
    EXPECT_THAT(m, HasSubstr("missing slices or non-uniform slice spacing"));
    EXPECT_THAT(m, HasSubstr("median spacing 2 mm"));
    EXPECT_THAT(m, HasSubstr("s2 and s3 are 4 mm apart (1 slice missing?)"));
}

TEST(SliceGeometry, SpacingToleranceIsConfigurable) {
    const std::vector<double> z{0.0, 2.0, 4.0, 6.08, 8.0, 10.0};
    EXPECT_TRUE(build(stack_at(z)).ok());
    StackRules strict;
    strict.spacing_tolerance = 0.02;
    const auto result = build(stack_at(z), strict);
    ASSERT_FALSE(result.ok());
    EXPECT_THAT(result.error().message, HasSubstr("s3"));
}

TEST(SliceGeometry, TiltIsRefusedWithItsAngle) {
    auto slices = stack_at({0.0, 2.0, 4.0, 6.0});
    const double shear = std::tan(10.0 * std::numbers::pi / 180.0);
    for (auto& s : slices) {
        (*s.position)[1] += (*s.position)[2] * shear;
    }
    StackRules rules;
    rules.gantry_tilt_attribute = 10.0;
    const auto result = build(slices, rules);
    ASSERT_FALSE(result.ok());
    EXPECT_THAT(result.error().message, HasSubstr("gantry tilt"));
    EXPECT_THAT(result.error().message, HasSubstr("at 10 degrees"));
    EXPECT_THAT(result.error().message, HasSubstr("GantryDetectorTilt 10 degrees"));
}

TEST(SliceGeometry, SmallTiltIsKeptInTheDirection) {
    auto slices = stack_at({0.0, 2.0, 4.0, 6.0});
    const double shear = std::tan(0.3 * std::numbers::pi / 180.0);
    for (auto& s : slices) {
        (*s.position)[1] += (*s.position)[2] * shear;
    }
    const auto result = build(slices);
    ASSERT_TRUE(result.ok()) << result.error().message;
    for (std::size_t k = 0; k < slices.size(); ++k) {
        const Vec3d p = voxel_to_patient(result->geometry, 0, 0, static_cast<double>(k));
        for (std::size_t a = 0; a < 3; ++a) {
            EXPECT_NEAR(p[a], (*slices[result->order[k]].position)[a], 1e-9);
        }
    }
}

TEST(SliceGeometry, InPlaneJumpIsOffTheGrid) {
    auto slices = stack_at({0.0, 2.0, 4.0, 6.0, 8.0});
    (*slices[2].position)[0] += 1.5;
    const auto result = build(slices);
    ASSERT_FALSE(result.ok());
    EXPECT_THAT(result.error().message, HasSubstr("not on a regular grid: s2"));
}

TEST(SliceGeometry, MixedOrientationsNameTheOddImage) {
    auto slices = stack_at({0.0, 2.0, 4.0});
    slices[1].orientation = std::array<double, 6>{1, 0, 0, 0, 0, -1};
    const auto result = build(slices);
    ASSERT_FALSE(result.ok());
    EXPECT_THAT(result.error().message, HasSubstr("mixed image orientations"));
    EXPECT_THAT(result.error().message, HasSubstr("[1\\0\\0\\0\\0\\-1] in 1 image (s1)"));
}

TEST(SliceGeometry, MixedPixelSpacingsNameTheOddImage) {
    auto slices = stack_at({0.0, 2.0, 4.0});
    slices[2].pixel_spacing = std::array<double, 2>{0.6, 0.7};
    const auto result = build(slices);
    ASSERT_FALSE(result.ok());
    EXPECT_THAT(result.error().message, HasSubstr("different pixel spacings"));
    EXPECT_THAT(result.error().message, HasSubstr("(s2)"));
}

TEST(SliceGeometry, MissingAttributesAreNamed) {
    auto slices = stack_at({0.0, 2.0});
    slices[1].position.reset();
    const auto result = build(slices);
    ASSERT_FALSE(result.ok());
    EXPECT_THAT(result.error().message,
                HasSubstr("ImagePositionPatient (0020,0032) in 1 image (s1)"));
}

TEST(SliceGeometry, NonOrthogonalOrientationIsRefused) {
    const auto result = build(stack_at({0.0, 2.0}, {1, 0, 0, 0.2, 1, 0}));
    ASSERT_FALSE(result.ok());
    EXPECT_THAT(result.error().message, HasSubstr("not a pair of orthogonal unit vectors"));
}

} // namespace
} // namespace segnode::dicom::detail
