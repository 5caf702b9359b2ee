// The built-in algorithms on the analytic phantom (sampled at voxel centres, 20 HU noise) and
// on hand-made volumes.
#include "segnode/algorithms/builtin.hpp"
#include "segnode/algorithms/mask_ops.hpp"
#include "segnode/algorithms/registry.hpp"
#include "test_volumes.hpp"

#include <gtest/gtest.h>
#include <stop_token>
#include <string>

namespace segnode::algorithms {
namespace {

using phantom::Label;
using phantom::Orientation;

LabelMap run_ok(const Algorithm& algorithm, const CtVolume& ct, const RawSettings& raw = {},
                unsigned threads = 0) {
    auto settings = algorithm.parse_settings(raw);
    EXPECT_TRUE(settings.ok()) << settings.error().message;
    RunContext context;
    context.threads = threads;
    auto result = algorithm.run(ct, *settings, context);
    EXPECT_TRUE(result.ok()) << result.error().message;
    EXPECT_EQ(result->geometry.dims, ct.geometry.dims);
    EXPECT_EQ(result->geometry.origin, ct.geometry.origin);
    return std::move(result).value();
}

class Builtins : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        s_phantom = new test::PhantomVolume(test::make_phantom_volume(test::chest_spec(), 20.0));
    }
    static void TearDownTestSuite() {
        delete s_phantom;
        s_phantom = nullptr;
    }
    static const test::PhantomVolume& phantom() { return *s_phantom; }
    const Registry m_registry = make_builtin_registry();

private:
    static test::PhantomVolume* s_phantom;
};

test::PhantomVolume* Builtins::s_phantom = nullptr;

TEST_F(Builtins, PhantomHasEveryStructure) {
    for (const int label : {0, 1, 2, 3, 4}) {
        EXPECT_GT(test::overlap(make_volume<std::uint8_t>(phantom().truth.geometry, 1),
                                phantom().truth, label),
                  1000U)
            << "label " << label;
    }
}

TEST_F(Builtins, BodyMatchesTruthWithoutTheTable) {
    const LabelMap body = run_ok(*m_registry.find("body"), phantom().ct);
    const double dice = test::dice(body, phantom().truth, Label::SoftTissue, Label::Bone);
    EXPECT_GE(dice, 0.98);
    EXPECT_EQ(test::overlap(body, phantom().truth, Label::Table), 0U);
    EXPECT_EQ(
        test::overlap(body, phantom().truth, Label::Lung),
        test::overlap(make_volume<std::uint8_t>(body.geometry, 1), phantom().truth, Label::Lung))
        << "the lungs are holes of the body and must be filled";
    std::printf("body dice %.5f\n", dice);
}

TEST_F(Builtins, BodyWithoutKeepLargestIncludesTheTable) {
    const LabelMap body = run_ok(*m_registry.find("body"), phantom().ct, {{"keep_largest", "0"}});
    EXPECT_GT(test::overlap(body, phantom().truth, Label::Table), 1000U);
}

TEST_F(Builtins, BodyOpeningKeepsTheBody) {
    const LabelMap body = run_ok(*m_registry.find("body"), phantom().ct, {{"opening_mm", "6"}});
    EXPECT_GE(test::dice(body, phantom().truth, Label::SoftTissue, Label::Bone), 0.98);
    EXPECT_EQ(test::overlap(body, phantom().truth, Label::Table), 0U);
}

TEST_F(Builtins, LungsMatchTruth) {
    const LabelMap lungs = run_ok(*m_registry.find("lungs"), phantom().ct);
    const double dice = test::dice(lungs, phantom().truth, Label::Lung, Label::Lung);
    EXPECT_GE(dice, 0.95);
    EXPECT_EQ(test::overlap(lungs, phantom().truth, Label::Air), 0U);
    EXPECT_EQ(component_sizes(lungs).size(), 2U);
    std::printf("lungs dice %.5f\n", dice);
}

TEST_F(Builtins, BoneMatchesTruthWithoutTheTable) {
    const LabelMap bone = run_ok(*m_registry.find("bone"), phantom().ct);
    const double dice = test::dice(bone, phantom().truth, Label::Bone, Label::Bone);
    EXPECT_GE(dice, 0.90);
    EXPECT_EQ(test::overlap(bone, phantom().truth, Label::Table), 0U);
    std::printf("bone dice %.5f\n", dice);
}

TEST_F(Builtins, SameResultWithOneOrTwoThreads) {
    for (const auto& algorithm : m_registry.algorithms()) {
        const LabelMap one = run_ok(*algorithm, phantom().ct, {}, 1);
        const LabelMap two = run_ok(*algorithm, phantom().ct, {}, 2);
        EXPECT_EQ(one.voxels, two.voxels) << algorithm->name();
    }
}

TEST(BuiltinsOrientation, BodyAndLungsInEveryOrientation) {
    const Registry registry = make_builtin_registry();
    for (const auto orientation :
         {Orientation::Coronal, Orientation::Sagittal, Orientation::Oblique}) {
        for (const bool feet_first : {false, true}) {
            auto spec = test::chest_spec(orientation);
            spec.feet_first = feet_first;
            spec.slices = 64; // coronal/sagittal: the slices cross the body
            spec.slice_spacing = 3.0;
            const auto v = test::make_phantom_volume(spec, 20.0);
            const LabelMap body = run_ok(*registry.find("body"), v.ct);
            const LabelMap lungs = run_ok(*registry.find("lungs"), v.ct);
            const double body_dice = test::dice(body, v.truth, Label::SoftTissue, Label::Bone);
            const double lung_dice = test::dice(lungs, v.truth, Label::Lung, Label::Lung);
            const auto name = std::to_string(static_cast<int>(orientation)) +
                              (feet_first ? " feet first" : " head first");
            EXPECT_GE(body_dice, 0.98) << name;
            EXPECT_GE(lung_dice, 0.95) << name;
            EXPECT_EQ(test::overlap(body, v.truth, Label::Table), 0U) << name;
            std::printf("orientation %s: body dice %.5f, lungs dice %.5f\n", name.c_str(),
                        body_dice, lung_dice);
        }
    }
}

TEST(BuiltinsPartialVolume, BoundariesShiftWithTheThreshold) {
    // Each CT value is the mean of 3 x 3 x 3 samples over its voxel, the truth the label at the
    // centre. Body and lungs are large, so their boundary voxels hardly matter. The ribs are
    // thin bands 2 slices (5 mm) thick: at min_hu 250 a voxel joins the bone when about a
    // third of it is bone, so bone grows by a partial layer; at 370 HU, halfway between
    // the phantom's soft tissue (40) and bone (700), the boundary matches the centre labels.
    const auto v = test::make_phantom_volume(test::chest_spec(), 20.0, 3);
    const Registry registry = make_builtin_registry();
    const LabelMap body = run_ok(*registry.find("body"), v.ct);
    const LabelMap lungs = run_ok(*registry.find("lungs"), v.ct);
    const LabelMap bone = run_ok(*registry.find("bone"), v.ct);
    const LabelMap bone_mid = run_ok(*registry.find("bone"), v.ct, {{"min_hu", "370"}});
    const double body_dice = test::dice(body, v.truth, Label::SoftTissue, Label::Bone);
    const double lung_dice = test::dice(lungs, v.truth, Label::Lung, Label::Lung);
    const double bone_dice = test::dice(bone, v.truth, Label::Bone, Label::Bone);
    const double bone_mid_dice = test::dice(bone_mid, v.truth, Label::Bone, Label::Bone);
    EXPECT_GE(body_dice, 0.98);
    EXPECT_GE(lung_dice, 0.95);
    EXPECT_GE(bone_dice, 0.88);
    EXPECT_GE(bone_mid_dice, 0.97);
    EXPECT_EQ(test::overlap(bone, v.truth, Label::Table), 0U);
    std::printf("partial volume: body dice %.5f, lungs dice %.5f, bone dice %.5f "
                "(370 HU: %.5f)\n",
                body_dice, lung_dice, bone_dice, bone_mid_dice);
}

TEST(BuiltinsNoise, DefaultsCopeWithHeavyNoise) {
    // 100 HU noise: soft tissue exceeds the bone threshold in 5 % of its voxels, the air
    // outside and the lungs leave specks; the default post-processing removes them.
    const auto v = test::make_phantom_volume(test::chest_spec(), 100.0, 1, 11);
    const Registry registry = make_builtin_registry();
    const LabelMap body = run_ok(*registry.find("body"), v.ct);
    const LabelMap lungs = run_ok(*registry.find("lungs"), v.ct);
    const LabelMap bone = run_ok(*registry.find("bone"), v.ct);
    const double body_dice = test::dice(body, v.truth, Label::SoftTissue, Label::Bone);
    const double lung_dice = test::dice(lungs, v.truth, Label::Lung, Label::Lung);
    const double bone_dice = test::dice(bone, v.truth, Label::Bone, Label::Bone);
    EXPECT_GE(body_dice, 0.98);
    EXPECT_GE(lung_dice, 0.95);
    EXPECT_GE(bone_dice, 0.90);
    EXPECT_EQ(test::overlap(bone, v.truth, Label::Table), 0U);
    std::printf("100 HU noise: body dice %.5f, lungs dice %.5f, bone dice %.5f\n", body_dice,
                lung_dice, bone_dice);
}

TEST(Threshold, IsExactOnAHandMadeVolume) {
    Geometry g;
    g.dims = {4, 3, 2};
    CtVolume ct = make_volume<std::int16_t>(g, 0);
    for (std::size_t i = 0; i < ct.voxels.size(); ++i) {
        ct.voxels[i] = static_cast<std::int16_t>(static_cast<int>(i) * 100 - 1200); // -1200..1100
    }
    const auto threshold = make_threshold_algorithm();
    const LabelMap a = run_ok(*threshold, ct, {{"min_hu", "-500"}, {"max_hu", "200"}});
    const LabelMap b = run_ok(*threshold, ct, {{"min_hu", "-500.5"}, {"max_hu", "199.9"}});
    for (std::size_t i = 0; i < ct.voxels.size(); ++i) {
        const int v = ct.voxels[i];
        EXPECT_EQ(a.voxels[i], (v >= -500 && v <= 200) ? 1 : 0) << v;
        EXPECT_EQ(b.voxels[i], (v >= -500 && v <= 100) ? 1 : 0) << v;
    }
    const LabelMap c = run_ok(*threshold, ct, {{"min_hu", "-32768"}, {"max_hu", "32767"}});
    EXPECT_EQ(count_foreground(c), ct.voxels.size());
}

TEST(Threshold, PostProcessingSettingsApply) {
    // Two blocks of 8 and 1 voxels of 1000 HU; the big one has a hole.
    Geometry g;
    g.dims = {8, 8, 1};
    g.spacing = {2.0, 2.0, 2.0}; // 8 mm^3 per voxel
    CtVolume ct = make_volume<std::int16_t>(g, -1000);
    for (std::size_t j = 1; j <= 4; ++j) {
        for (std::size_t i = 1; i <= 4; ++i) {
            ct.at(i, j, 0) = 1000;
        }
    }
    ct.at(2, 2, 0) = -1000; // hole
    ct.at(6, 6, 0) = 1000;  // speck
    const auto threshold = make_threshold_algorithm();
    const RawSettings range{{"min_hu", "500"}};
    EXPECT_EQ(count_foreground(run_ok(*threshold, ct, range)), 16U);
    auto with = [&](RawSettings extra) {
        extra.insert(extra.begin(), range.begin(), range.end());
        return count_foreground(run_ok(*threshold, ct, extra));
    };
    EXPECT_EQ(with({{"keep_largest", "1"}}), 15U);
    EXPECT_EQ(with({{"fill_holes", "true"}}), 17U);
    EXPECT_EQ(with({{"min_component_mm3", "8"}}), 16U);   // 1 voxel = 8 mm^3 is kept
    EXPECT_EQ(with({{"min_component_mm3", "8.5"}}), 15U); // but not when more is needed
    EXPECT_EQ(with({{"keep_largest", "1"}, {"fill_holes", "yes"}}), 16U);
}

TEST(Run, RejectsInconsistentVolumesAndBadSettings) {
    const auto otsu = make_otsu_algorithm();
    Geometry g;
    g.dims = {4, 4, 4};
    CtVolume ct = make_volume<std::int16_t>(g, 0);
    ct.voxels.pop_back();
    auto r = otsu->run(ct, {});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message, "otsu: volume has 63 voxels, its geometry 64");
    ct.voxels.push_back(0);
    ct.geometry.spacing[1] = 0.0;
    r = otsu->run(ct, {});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message, "otsu: volume geometry: spacing 1 is not a positive number");
    ct.geometry.spacing[1] = 1.0;
    Settings wrong;
    wrong.set("bins", std::int64_t{1});
    r = otsu->run(ct, wrong);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message, "otsu: bins: 1 is out of range [2, 4096]");
    const auto threshold = make_threshold_algorithm();
    Settings crossed;
    crossed.set("min_hu", 10.0);
    crossed.set("max_hu", 0.0);
    r = threshold->run(ct, crossed);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message, "threshold: min_hu (10) is above max_hu (0)");
}

// An algorithm that returns a label map given to it, to test the checks of run().
class FixedOutput final : public Algorithm {
public:
    FixedOutput(std::vector<std::uint8_t> labels, LabelMap output)
        : Algorithm(make_info(std::move(labels))), m_output(std::move(output)) {}

private:
    static AlgorithmInfo make_info(std::vector<std::uint8_t> labels) {
        AlgorithmInfo info;
        info.name = "fixed";
        info.version = "1";
        for (const auto label : labels) {
            info.segments.push_back({label, "S", {"1", "SCT", "a"}, {"2", "SCT", "b"}, {}});
        }
        return info;
    }
    Result<LabelMap> execute(const CtVolume& /*volume*/, const Settings& /*settings*/,
                             const RunContext& /*context*/) const override {
        return m_output;
    }
    LabelMap m_output;
};

TEST(Run, ChecksTheResult) {
    Geometry g;
    g.dims = {4, 2, 1};
    g.origin = {1, 2, 3};
    const CtVolume ct = make_volume<std::int16_t>(g, 0);
    Geometry other = g;
    other.origin = {0, 0, 0};
    LabelMap out = make_volume<std::uint8_t>(other, 0);
    out.voxels = {0, 1, 5, 0, 1, 0, 0, 5};
    auto ok = FixedOutput({1, 5}, out).run(ct, {});
    ASSERT_TRUE(ok.ok()) << ok.error().message;
    EXPECT_EQ(ok->geometry.origin, g.origin); // on the volume's grid
    auto undeclared = FixedOutput({1}, out).run(ct, {});
    ASSERT_FALSE(undeclared.ok());
    EXPECT_EQ(undeclared.error().message, "fixed: result contains label 5, which is not declared");
    auto gap = FixedOutput({1, 2}, out).run(ct, {});
    ASSERT_FALSE(gap.ok());
    LabelMap wrong_size = out;
    wrong_size.geometry.dims = {2, 4, 1};
    auto size = FixedOutput({1, 5}, wrong_size).run(ct, {});
    ASSERT_FALSE(size.ok());
    EXPECT_EQ(size.error().message, "fixed: result does not have the dimensions of the volume");
}

TEST(Run, StopRequestCancels) {
    const auto body = make_body_algorithm();
    Geometry g;
    g.dims = {8, 8, 8};
    const CtVolume ct = make_volume<std::int16_t>(g, 0);
    std::stop_source source;
    source.request_stop();
    RunContext context;
    context.stop = source.get_token();
    auto r = body->run(ct, {}, context);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message, "cancelled");
}

} // namespace
} // namespace segnode::algorithms
