// The series loader on the real corpus (../shared/data, see its SOURCES.md), when present:
// SEGNODE_TEST_DATA overrides the location. Each test skips with a message when its folder is
// missing. SEGNODE_LOADER_BENCH=1 also runs the 512 x 512 x 300 timing test.
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "phantom.hpp"
#include "segnode/dicom/series_loader.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <random>
#include <string>

#ifndef SEGNODE_TEST_DATA_DEFAULT
#define SEGNODE_TEST_DATA_DEFAULT ""
#endif

namespace segnode::dicom {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

fs::path data_root() {
    const char* env = std::getenv("SEGNODE_TEST_DATA");
    return env != nullptr && *env != '\0' ? fs::path(env) : fs::path(SEGNODE_TEST_DATA_DEFAULT);
}

/// The corpus folder `relative`, or empty (and the test is skipped) when it is absent.
#define REQUIRE_DATA(var, relative)                                                                \
    const fs::path var = data_root() / (relative);                                                 \
    if (!fs::exists(var)) {                                                                        \
        GTEST_SKIP() << "real test data not found: " << var                                        \
                     << " (set SEGNODE_TEST_DATA to the corpus directory)";                        \
    }

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

Vec3d position_of(const fs::path& file) {
    DcmFileFormat ff;
    Vec3d p{};
    EXPECT_TRUE(ff.loadFileUntilTag(file.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength,
                                    ERM_autoDetect, DCM_PixelData)
                    .good());
    for (unsigned long i = 0; i < 3; ++i) {
        EXPECT_TRUE(ff.getDataset()->findAndGetFloat64(DCM_ImagePositionPatient, p[i], i).good());
    }
    return p;
}

/// Largest distance between voxel (0, 0, k) and the ImagePositionPatient of slice k's file.
double worst_slice_origin_error(const LoadedSeries& loaded) {
    double worst = 0.0;
    for (std::size_t k = 0; k < loaded.files.size(); ++k) {
        const Vec3d p = voxel_to_patient(loaded.volume.geometry, 0, 0, static_cast<double>(k));
        const Vec3d q = position_of(loaded.files[k]);
        worst = std::max(worst, std::hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]));
    }
    return worst;
}

TEST(RealData, ChestCtJpegLosslessLoads) {
    REQUIRE_DATA(dir, "ct_chest_ricord");
    const auto start = std::chrono::steady_clock::now();
    const auto loaded = load_series_dir(dir);
    const double elapsed = seconds_since(start);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    std::printf("ct_chest_ricord: 255 JPEG Lossless files loaded in %.3f s\n", elapsed);
    const Geometry& g = loaded->volume.geometry;
    EXPECT_EQ(g.dims, (std::array<std::size_t, 3>{512, 512, 255}));
    EXPECT_NEAR(g.spacing[0], 0.703125, 1e-9);
    EXPECT_NEAR(g.spacing[2], 1.25, 1e-3);
    EXPECT_LT(worst_slice_origin_error(*loaded), 1e-3);
    std::size_t air = 0;
    std::size_t dense = 0;
    for (const std::int16_t v : loaded->volume.voxels) {
        air += static_cast<std::size_t>(v >= -1050 && v <= -950);
        dense += static_cast<std::size_t>(v > 300);
    }
    const auto [lo, hi] =
        std::minmax_element(loaded->volume.voxels.begin(), loaded->volume.voxels.end());
    std::printf(
        "ct_chest_ricord: HU %d .. %d, %.1f %% in [-1050, -950], %zu voxels > 300\n", *lo, *hi,
        100.0 * static_cast<double>(air) / static_cast<double>(g.dims[0] * g.dims[1] * g.dims[2]),
        dense);
    EXPECT_GT(air, loaded->volume.voxels.size() / 10) << "air (around -1000 HU) is missing";
    EXPECT_GT(dense, 10000U) << "no bone (> 300 HU)";
    EXPECT_GE(*lo, -3024);
    EXPECT_LT(*hi, 4000);
}

TEST(RealData, ObliqueBrainMrLoads) {
    REQUIRE_DATA(dir, "mr_series/brain_tumor_progression_PGBM-001_T1post");
    const auto loaded = load_series_dir(dir);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    const Geometry& g = loaded->volume.geometry;
    EXPECT_EQ(g.dims[2], 24U);
    EXPECT_EQ(loaded->modality, "MR");
    EXPECT_LT(worst_slice_origin_error(*loaded), 1e-3);
    double off_diagonal = 0.0;
    for (std::size_t r = 0; r < 3; ++r) {
        for (std::size_t c = 0; c < 3; ++c) {
            if (r != c) {
                off_diagonal = std::max(off_diagonal, std::abs(g.direction[3 * r + c]));
            }
        }
    }
    EXPECT_GT(off_diagonal, 0.05) << "the series is oblique";
    std::printf("brain MR: %zu x %zu x %zu, spacing %.4g %.4g %.4g, largest off-diagonal "
                "direction cosine %.3f\n",
                g.dims[0], g.dims[1], g.dims[2], g.spacing[0], g.spacing[1], g.spacing[2],
                off_diagonal);
}

TEST(RealData, GantryTiltIsRefused) {
    REQUIRE_DATA(dir, "edge_cases/gantry_tilt_18.5deg_variable_spacing_GE_head");
    const auto loaded = load_series_dir(dir);
    ASSERT_FALSE(loaded.ok());
    const std::string& m = loaded.error().message;
    std::printf("gantry tilt: %s\n", m.c_str());
    EXPECT_THAT(m, HasSubstr("gantry tilt: the slice positions advance at 18.5 degrees"));
    EXPECT_THAT(m, HasSubstr("GantryDetectorTilt 18.5 degrees"));
    EXPECT_THAT(m, HasSubstr("non-uniform slice spacing"));
    EXPECT_THAT(m, HasSubstr("14.dcm"));
    EXPECT_THAT(m, HasSubstr("15.dcm"));
}

TEST(RealData, DuplicatePositionsAndGapsAreRefused) {
    REQUIRE_DATA(dir, "edge_cases/duplicate_positions_gaps_dicom-numpy");
    const auto loaded = load_series_dir(dir);
    ASSERT_FALSE(loaded.ok());
    const std::string& m = loaded.error().message;
    std::printf("duplicates/gaps: %s\n", m.c_str());
    EXPECT_THAT(m, HasSubstr("duplicate slice positions"));
    EXPECT_THAT(m, HasSubstr("CT26.dcm [1.2.826.0.1.3680043.8.498.3287336064936"));
    EXPECT_THAT(m, HasSubstr("CT28.dcm [1.2.826.0.1.3680043.8.498.5608723140946"));
    EXPECT_THAT(m, HasSubstr("missing slices or non-uniform slice spacing"));
}

TEST(RealData, Jpeg2000BodyCtLoads) {
    REQUIRE_DATA(dir, "edge_cases/j2k_lossless_body_ct_totalsegmentator");
    const auto start = std::chrono::steady_clock::now();
    const auto loaded = load_series_dir(dir);
    const double elapsed = seconds_since(start);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    std::printf("j2k body CT: 20 JPEG 2000 files loaded in %.3f s\n", elapsed);
    const Geometry& g = loaded->volume.geometry;
    EXPECT_EQ(g.dims, (std::array<std::size_t, 3>{512, 512, 20}));
    EXPECT_NEAR(g.spacing[2], 2.0, 1e-3);
    EXPECT_LT(worst_slice_origin_error(*loaded), 1e-3);
    const auto [lo, hi] =
        std::minmax_element(loaded->volume.voxels.begin(), loaded->volume.voxels.end());
    EXPECT_EQ(*lo, -1024); // air outside the body: stored 0, intercept -1024
    EXPECT_GT(*hi, 1000);  // bone
    ASSERT_EQ(loaded->how_taken.size(), 1U);
    EXPECT_THAT(loaded->how_taken[0],
                HasSubstr("JPEG 2000 Image Compression (Lossless Only) 1.2.840.10008.1.2.4.90, "
                          "20 images: decoded with OpenJPEG 2."));
    EXPECT_TRUE(loaded->warnings.empty());
}

/// WG04: each compressed variant of CT1, CT2 and MR1 against the uncompressed reference,
/// voxel by voxel: lossless ones exactly, lossy ones within their error bound.
TEST(RealData, Wg04CompressedVariantsMatchTheUncompressedReference) {
    REQUIRE_DATA(dir, "edge_cases/transfer_syntaxes_wg04");
    struct Variant {
        const char* suffix;
        int max_error; ///< largest |difference| tolerated
        const char* how;
    };
    const Variant variants[] = {
        {"J2KR", 0, "decoded with OpenJPEG"},
        {"JPLL", 0, "decoded with DCMTK"},
        {"JLSL", 0, "(CharLS)"},
        {"RLE", 0, "decoded with DCMTK"},
        {"JLSN", 4, "(lossy compression)"},   // JPEG-LS NEAR = 4 in these files
        {"J2KI", 600, "(lossy compression)"}, // irreversible wavelet at ~40:1
    };
    for (const char* image : {"CT1", "CT2", "MR1"}) {
        const auto reference = load_series({dir / (std::string(image) + "_UNC.dcm")});
        ASSERT_TRUE(reference.ok()) << reference.error().message;
        for (const Variant& v : variants) {
            const auto file = dir / (std::string(image) + "_" + v.suffix + ".dcm");
            const auto loaded = load_series({file});
            ASSERT_TRUE(loaded.ok()) << file << ": " << loaded.error().message;
            ASSERT_EQ(loaded->volume.voxels.size(), reference->volume.voxels.size());
            int worst = 0;
            double sum = 0.0;
            for (std::size_t n = 0; n < loaded->volume.voxels.size(); ++n) {
                const int d = std::abs(loaded->volume.voxels[n] - reference->volume.voxels[n]);
                worst = std::max(worst, d);
                sum += d;
            }
            EXPECT_LE(worst, v.max_error) << file;
            if (v.max_error > 0) {
                EXPECT_GT(worst, 0) << file << " is lossy, so some voxel should differ";
                EXPECT_LT(sum / static_cast<double>(loaded->volume.voxels.size()), 50.0) << file;
            }
            ASSERT_FALSE(loaded->how_taken.empty()); // + LossyImageCompression for lossy files
            EXPECT_THAT(loaded->how_taken[0], HasSubstr(v.how)) << file;
            std::printf("%s_%s: largest difference %d, mean %.3f\n", image, v.suffix, worst,
                        sum / static_cast<double>(loaded->volume.voxels.size()));
        }
    }
}

struct EnhancedCase {
    const char* path;
    const char* expect; ///< "" = loads, otherwise a part of the refusal
    std::array<std::size_t, 3> dims{};
    Vec3d origin{}; ///< ImagePositionPatient of the frame lowest along the normal
    double slice_spacing = 0.0;
};

TEST(RealData, EnhancedMultiFrame) {
    REQUIRE_DATA(dir, "edge_cases/enhanced_multiframe");
    const EnhancedCase cases[] = {
        // Frames stored in reverse order (frame 1 is the lowest).
        {"dcmqi_legacy_converted_enhanced_ct_23x38x3.dcm",
         "",
         {23, 38, 3},
         {46.4649, 5.01881, -177.75},
         2.5},
        // Normal (0, 0, -1): k = 0 is the frame at z = -149.
        {"eCT_Supplemental.dcm", "", {512, 512, 2}, {99.5, -301.5, -149.0}, 10.0},
        {"siemens_xa10_enhanced_mr/6_1.dcm", "", {64, 64, 6}, {-109.79, -58.4773, -5.40356}, 2.4},
        {"emri_small.dcm", "without a Per-frame Functional Groups Sequence", {}, {}, 0.0},
        {"emri_small_RLE.dcm", "without a Per-frame Functional Groups Sequence", {}, {}, 0.0},
        {"emri_small_big_endian.dcm",
         "without a Per-frame Functional Groups Sequence",
         {},
         {},
         0.0},
        {"emri_small_jpeg_ls_lossless.dcm",
         "without a Per-frame Functional Groups Sequence",
         {},
         {},
         0.0},
        {"emri_small_jpeg_2k_lossless.dcm",
         "without a Per-frame Functional Groups Sequence",
         {},
         {},
         0.0},
        {"emri_small_jpeg_2k_lossless_too_short.dcm",
         "without a Per-frame Functional Groups Sequence",
         {},
         {},
         0.0},
        {"philips_enhanced_mr", "every position holds 2 images", {}, {}, 0.0},
        {"siemens_xa10_enhanced_mr", "every position holds 4 images", {}, {}, 0.0},
    };
    for (const EnhancedCase& c : cases) {
        const fs::path path = dir / c.path;
        ASSERT_TRUE(fs::exists(path)) << path;
        const auto loaded = fs::is_directory(path) ? load_series_dir(path) : load_series({path});
        if (*c.expect == '\0') {
            ASSERT_TRUE(loaded.ok()) << c.path << ": " << loaded.error().message;
            EXPECT_EQ(loaded->volume.geometry.dims, c.dims) << c.path;
            for (std::size_t a = 0; a < 3; ++a) {
                EXPECT_NEAR(loaded->volume.geometry.origin[a], c.origin[a], 1e-3) << c.path;
            }
            EXPECT_NEAR(loaded->volume.geometry.spacing[2], c.slice_spacing, 1e-3) << c.path;
            std::printf("%s: loads, %zu x %zu x %zu\n", c.path, c.dims[0], c.dims[1], c.dims[2]);
        } else {
            ASSERT_FALSE(loaded.ok()) << c.path;
            EXPECT_THAT(loaded.error().message, HasSubstr(c.expect)) << c.path;
            std::printf("%s: refused: %s\n", c.path, loaded.error().message.c_str());
        }
    }
}

// Opt-in timing: SEGNODE_LOADER_BENCH=1. Writes a 512 x 512 x 300 uncompressed phantom series
// (shuffled names, ~150 MB) to the temp directory and loads it three times.
TEST(LoaderBench, Uncompressed512x512x300) {
    const char* enabled = std::getenv("SEGNODE_LOADER_BENCH");
    if (enabled == nullptr || std::string(enabled) != "1") {
        GTEST_SKIP() << "set SEGNODE_LOADER_BENCH=1 to run the load benchmark";
    }
    std::random_device rd;
    const fs::path dir =
        fs::temp_directory_path() / ("segnode-loader-bench-" + std::to_string(rd()));
    phantom::PhantomSpec spec;
    spec.rows = 512;
    spec.cols = 512;
    spec.slices = 300;
    spec.pixel_spacing = 0.7;
    spec.slice_spacing = 1.25;
    spec.shuffle_files = true;
    spec.noise_hu = 10.0;
    phantom::write_ct_series(spec, dir);
    for (int round = 0; round < 3; ++round) {
        const auto start = std::chrono::steady_clock::now();
        const auto loaded = load_series_dir(dir);
        const double elapsed = seconds_since(start);
        ASSERT_TRUE(loaded.ok()) << loaded.error().message;
        std::printf("512 x 512 x 300 uncompressed: loaded in %.3f s\n", elapsed);
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
}

} // namespace
} // namespace segnode::dicom
