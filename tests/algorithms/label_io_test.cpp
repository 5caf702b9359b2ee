// segments.json and the per-segment statistics of `segnode run`. The label map files are
// written by the image IO layer (tests/imageio; the NIfTI header is checked with nibabel in
// tests/integration/test_run_cli.py).
#include "segnode/algorithms/label_io.hpp"
#include "segnode/algorithms/registry.hpp"
#include "segnode/core/volume.hpp"
#include "test_util.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <iterator>
#include <numbers>
#include <string>
#include <vector>

namespace segnode::algorithms {
namespace {

namespace fs = std::filesystem;

using segnode::test::TempDir;

std::vector<std::uint8_t> read_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Vec3d cross(const Vec3d& a, const Vec3d& b) {
    return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

/// Rotation by 30 degrees about x, then 20 about z: every cosine non-trivial.
Geometry oblique_geometry() {
    const double a = 30.0 * std::numbers::pi / 180.0;
    const double b = 20.0 * std::numbers::pi / 180.0;
    const Vec3d row{std::cos(b), std::sin(b), 0.0};
    const Vec3d col{-std::sin(b) * std::cos(a), std::cos(b) * std::cos(a), std::sin(a)};
    Geometry g;
    g.dims = {7, 5, 4};
    g.spacing = {0.7, 0.9, 2.5};
    g.origin = {-100.5, 20.25, 300.0};
    g.direction = make_direction(row, col, cross(row, col));
    return g;
}

TEST(LabelIo, SegmentStatsCountVoxelsAndMillilitres) {
    Geometry g;
    g.dims = {4, 4, 2};
    g.spacing = {0.5, 0.5, 2.0}; // 0.5 mm^3 per voxel
    LabelMap labels = make_volume<std::uint8_t>(g, 0);
    for (std::size_t n = 0; n < 10; ++n) {
        labels.voxels[n] = 1;
    }
    labels.voxels[20] = 2;
    const std::vector<SegmentInfo> segments{{1, "One", {}, {}, {1, 2, 3}},
                                            {2, "Two", {}, {}, {4, 5, 6}},
                                            {3, "Three", {}, {}, {7, 8, 9}}};
    const auto stats = segment_stats(labels, segments);
    ASSERT_EQ(stats.size(), 3U);
    EXPECT_EQ(stats[0].voxels, 10U);
    EXPECT_DOUBLE_EQ(stats[0].volume_ml, 0.005);
    EXPECT_EQ(stats[1].voxels, 1U);
    EXPECT_EQ(stats[2].voxels, 0U);
    EXPECT_EQ(stats[2].volume_ml, 0.0);
    EXPECT_EQ(stats[1].segment.name, "Two");
}

TEST(LabelIo, SegmentsJsonDescribesTheRun) {
    const Registry registry = make_builtin_registry();
    const Algorithm* body = registry.find("body");
    ASSERT_NE(body, nullptr);
    auto settings = body->parse_settings({{"min_hu", "-400"}, {"fill_holes", "false"}});
    ASSERT_TRUE(settings.ok()) << settings.error().message;

    SegmentsManifest m;
    m.algorithm_name = body->name();
    m.algorithm_version = body->info().version;
    m.settings = *settings;
    m.label_file = "labels.nrrd";
    m.format = "nrrd";
    m.geometry = oblique_geometry();
    m.source = {{"series_uid", "1.2.3"}, {"input", "dir with \"quotes\"\\"}};
    LabelMap labels = make_volume<std::uint8_t>(m.geometry, 0);
    labels.voxels[3] = 1;
    m.segments = segment_stats(labels, body->info().segments);

    const std::string json = segments_json(m);
    for (const std::string fragment :
         {"\"name\": \"body\"", "\"min_hu\": -400.0", "\"fill_holes\": false",
          "\"keep_largest\": 1,", "\"file\": \"labels.nrrd\"", "\"format\": \"nrrd\"",
          "\"dims\": [7, 5, 4]", "\"series_uid\": \"1.2.3\"",
          "\"input\": \"dir with \\\"quotes\\\"\\\\\"", "\"label\": 1", "\"name\": \"Body\"",
          "\"value\": \"38266002\"", "\"scheme\": \"SCT\"", "\"rgb\": [177, 122, 101]",
          "\"voxels\": 1,"}) {
        EXPECT_NE(json.find(fragment), std::string::npos) << fragment << "\n" << json;
    }
    EXPECT_EQ(json.back(), '\n');

    TempDir dir;
    ASSERT_TRUE(write_segments_json(m, dir.path() / "segments.json").ok());
    const auto bytes = read_bytes(dir.path() / "segments.json");
    EXPECT_EQ(std::string(bytes.begin(), bytes.end()), json);
}

} // namespace
} // namespace segnode::algorithms
