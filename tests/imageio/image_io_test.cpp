// The image IO layer against files it wrote itself (round trips on an oblique, left-handed
// geometry) and against label files written here by hand, byte by byte (NRRD and NIfTI-1
// headers), so that the reader is checked against an independent writer.
#include "segnode/core/volume.hpp"
#include "segnode/imageio/image_io.hpp"
#include "test_util.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <numbers>
#include <string>
#include <vector>

namespace segnode::imageio {
namespace {

namespace fs = std::filesystem;
using segnode::test::TempDir;

Vec3d cross(const Vec3d& a, const Vec3d& b) {
    return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

/// Rotation by 30 degrees about x, then 20 about z; the slice axis points against row x col
/// (feet first), so the direction matrix is left-handed. Spacing differs on every axis.
Geometry oblique_left_handed() {
    const double a = 30.0 * std::numbers::pi / 180.0;
    const double b = 20.0 * std::numbers::pi / 180.0;
    const Vec3d row{std::cos(b), std::sin(b), 0.0};
    const Vec3d col{-std::sin(b) * std::cos(a), std::cos(b) * std::cos(a), std::sin(a)};
    const Vec3d normal = cross(row, col);
    Geometry g;
    g.dims = {7, 5, 4};
    g.spacing = {0.7, 0.9, 2.5};
    g.origin = {-100.5, 20.25, 300.0};
    g.direction = make_direction(row, col, {-normal[0], -normal[1], -normal[2]});
    return g;
}

double det(const std::array<double, 9>& m) {
    return m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) +
           m[2] * (m[3] * m[7] - m[4] * m[6]);
}

void expect_geometry_near(const Geometry& expected, const Geometry& actual, double mm,
                          double direction) {
    EXPECT_EQ(actual.dims, expected.dims);
    for (std::size_t a = 0; a < 3; ++a) {
        EXPECT_NEAR(actual.spacing[a], expected.spacing[a], mm) << "spacing " << a;
        EXPECT_NEAR(actual.origin[a], expected.origin[a], mm) << "origin " << a;
    }
    for (std::size_t n = 0; n < 9; ++n) {
        EXPECT_NEAR(actual.direction[n], expected.direction[n], direction) << "direction " << n;
    }
}

std::vector<fs::path> files_in(const fs::path& dir) {
    std::vector<fs::path> out;
    for (const auto& entry : fs::directory_iterator(dir)) {
        out.push_back(entry.path().filename());
    }
    std::sort(out.begin(), out.end());
    return out;
}

void write_bytes(const fs::path& path, const std::string& header, const void* data,
                 std::size_t size) {
    std::ofstream out(path, std::ios::binary);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
}

/// A NRRD file with an inline header: 3 x 2 x 2 voxels (or `sizes`), spacing 0.5, 0.75, 2,
/// origin (10, -20, 30) LPS, raw little-endian data.
template <class T>
fs::path write_nrrd_by_hand(const fs::path& path, const std::string& type,
                            const std::vector<T>& values, const std::string& sizes = "3 2 2",
                            int dimension = 3, const std::string& kinds = "domain domain domain",
                            const std::string& directions = "(0.5,0,0) (0,0.75,0) (0,0,2)") {
    const std::string header =
        "NRRD0004\ntype: " + type + "\ndimension: " + std::to_string(dimension) +
        "\nspace: left-posterior-superior\nsizes: " + sizes + "\nspace directions: " + directions +
        "\nkinds: " + kinds + "\nendian: little\nencoding: raw\nspace origin: (10,-20,30)\n\n";
    write_bytes(path, header, values.data(), values.size() * sizeof(T));
    return path;
}

/// A NIfTI-1 single file: `dims` (dim[0] = dims.size()), datatype code, the same geometry as
/// write_nrrd_by_hand as an sform only (RAS: x and y of the LPS affine negated).
template <class T>
fs::path write_nifti_by_hand(const fs::path& path, std::int16_t datatype,
                             const std::vector<std::int16_t>& dims, const std::vector<T>& values) {
    std::vector<char> h(352, 0);
    const auto put = [&h](std::size_t offset, auto value) {
        std::memcpy(h.data() + offset, &value, sizeof(value)); // little-endian host
    };
    put(0, std::int32_t{348});
    put(40, static_cast<std::int16_t>(dims.size()));
    for (std::size_t n = 0; n < 7; ++n) {
        put(42 + 2 * n, n < dims.size() ? dims[n] : std::int16_t{1});
    }
    put(70, datatype);
    put(72, static_cast<std::int16_t>(8 * sizeof(T)));
    const float pixdim[8] = {1.0F, 0.5F, 0.75F, 2.0F, 1.0F, 1.0F, 1.0F, 1.0F};
    for (std::size_t n = 0; n < 8; ++n) {
        put(76 + 4 * n, pixdim[n]);
    }
    put(108, 352.0F); // vox_offset
    put(112, 1.0F);   // scl_slope
    h[123] = 2;       // mm
    put(252, std::int16_t{0});
    put(254, std::int16_t{1}); // sform: scanner anatomical
    const float srow[3][4] = {{-0.5F, 0, 0, -10}, {0, -0.75F, 0, 20}, {0, 0, 2.0F, 30}};
    for (std::size_t r = 0; r < 3; ++r) {
        for (std::size_t c = 0; c < 4; ++c) {
            put(280 + 16 * r + 4 * c, srow[r][c]);
        }
    }
    std::memcpy(h.data() + 344, "n+1", 4);
    write_bytes(path, std::string(h.begin(), h.end()), values.data(), values.size() * sizeof(T));
    return path;
}

Geometry by_hand_geometry() {
    Geometry g;
    g.dims = {3, 2, 2};
    g.spacing = {0.5, 0.75, 2.0};
    g.origin = {10, -20, 30};
    return g;
}

template <class T> std::vector<T> by_hand_values() {
    return {T(0), T(1), T(2), T(300), T(0), T(7), T(65535), T(1), T(0), T(2), T(9), T(4)};
}

Buffer<std::uint16_t> as_wide(const std::vector<std::uint16_t>& v) {
    return {v.begin(), v.end()};
}

void expect_by_hand_result(const Result<WideLabelMap>& read) {
    ASSERT_TRUE(read.ok()) << read.error().message;
    expect_geometry_near(by_hand_geometry(), read->geometry, 1e-6, 1e-6);
    EXPECT_EQ(read->voxels, as_wide(by_hand_values<std::uint16_t>()));
}

std::string read_error(const fs::path& path) {
    const auto read = read_label_image(path);
    EXPECT_FALSE(read.ok()) << path;
    return read.ok() ? std::string() : read.error().message;
}

// ------------------------------------------------------------------ names

TEST(ImageIo, FormatNamesAndExtensions) {
    for (const auto format : {ImageFormat::Nifti, ImageFormat::NiftiGz, ImageFormat::Nrrd}) {
        EXPECT_EQ(parse_image_format(to_string(format)), format);
        EXPECT_EQ(format_of("dir/labels" + std::string(extension(format))), format);
    }
    EXPECT_EQ(to_string(ImageFormat::NiftiGz), "nifti_gz");
    EXPECT_EQ(extension(ImageFormat::NiftiGz), ".nii.gz");
    EXPECT_EQ(format_of("a/b.NII.GZ"), ImageFormat::NiftiGz);
    EXPECT_EQ(format_of("b.nhdr"), ImageFormat::Nrrd);
    EXPECT_FALSE(format_of("b.gz").has_value());
    EXPECT_FALSE(format_of("b.nii.zip").has_value());
    EXPECT_FALSE(format_of(".nii").has_value());
    EXPECT_FALSE(parse_image_format("seg").has_value());
}

// ------------------------------------------------------------------ round trips

struct RoundTripCase {
    const char* file;
    double mm; ///< geometry tolerance: NIfTI stores float32, NRRD decimal doubles
    double direction;
};

class ImageIoRoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(ImageIoRoundTrip, LabelsKeepValuesAndGeometry) {
    const RoundTripCase c = GetParam();
    TempDir dir;
    const Geometry g = oblique_left_handed();
    ASSERT_FALSE(geometry_problem(g).has_value());
    ASSERT_LT(det(g.direction), 0.0);
    LabelMap labels = make_volume<std::uint8_t>(g, 0);
    for (std::size_t n = 0; n < labels.voxels.size(); ++n) {
        labels.voxels[n] = static_cast<std::uint8_t>((n * 7 + n / 3) % 251);
    }
    const fs::path path = dir.path() / c.file;
    const Status written = write_labels(labels, path, "segnode test\nsecond line");
    ASSERT_TRUE(written.ok()) << written.error().message;
    ASSERT_TRUE(write_labels(labels, path).ok()); // replaces
    EXPECT_EQ(files_in(dir.path()), std::vector<fs::path>{c.file}) << "no temporary left";

    const auto read = read_label_image(path);
    ASSERT_TRUE(read.ok()) << read.error().message;
    expect_geometry_near(g, read->geometry, c.mm, c.direction);
    EXPECT_FALSE(geometry_mismatch(g, read->geometry).has_value());
    ASSERT_EQ(read->voxels.size(), labels.voxels.size());
    EXPECT_TRUE(std::equal(labels.voxels.begin(), labels.voxels.end(), read->voxels.begin()));
}

TEST_P(ImageIoRoundTrip, VolumeKeepsValuesAndGeometry) {
    const RoundTripCase c = GetParam();
    TempDir dir;
    const Geometry g = oblique_left_handed();
    CtVolume volume = make_volume<std::int16_t>(g, 0);
    for (std::size_t n = 0; n < volume.voxels.size(); ++n) {
        volume.voxels[n] = static_cast<std::int16_t>((n * 977) % 32768);
    }
    const fs::path path = dir.path() / c.file;
    const Status written = write_volume(volume, path, "ct");
    ASSERT_TRUE(written.ok()) << written.error().message;
    const auto read = read_label_image(path);
    ASSERT_TRUE(read.ok()) << read.error().message;
    expect_geometry_near(g, read->geometry, c.mm, c.direction);
    ASSERT_EQ(read->voxels.size(), volume.voxels.size());
    for (std::size_t n = 0; n < volume.voxels.size(); ++n) {
        ASSERT_EQ(read->voxels[n], static_cast<std::uint16_t>(volume.voxels[n])) << n;
    }

    // A negative HU value is no label: the reader names it and its voxel.
    volume.voxels[volume.index(3, 2, 1)] = -1;
    ASSERT_TRUE(write_volume(volume, path).ok());
    const std::string message = read_error(path);
    EXPECT_EQ(message, path.string() +
                           ": value -1 at voxel (3, 2, 1) is negative; labels must be integers "
                           "0..65535");
}

INSTANTIATE_TEST_SUITE_P(Formats, ImageIoRoundTrip,
                         ::testing::Values(RoundTripCase{"labels.nii", 1e-4, 1e-5},
                                           RoundTripCase{"labels.nii.gz", 1e-4, 1e-5},
                                           RoundTripCase{"labels.nrrd", 1e-9, 1e-12}),
                         [](const auto& test_info) {
                             std::string name = test_info.param.file;
                             std::replace(name.begin(), name.end(), '.', '_');
                             return name;
                         });

TEST(ImageIo, NiftiCarriesTheDescription) {
    TempDir dir;
    const LabelMap labels = make_volume<std::uint8_t>(oblique_left_handed(), 1);
    const fs::path path = dir.path() / "labels.nii";
    ASSERT_TRUE(write_labels(labels, path, "segnode body 1.0.0\nsecond line").ok());
    std::ifstream in(path, std::ios::binary);
    std::array<char, 80> descrip{};
    in.seekg(148);
    in.read(descrip.data(), descrip.size());
    EXPECT_EQ(std::string(descrip.data()), "segnode body 1.0.0 second line");
    EXPECT_EQ(descrip.back(), '\0');
    ASSERT_TRUE(read_label_image(path).ok());
}

// ------------------------------------------------------------------ files by other writers

TEST(ImageIo, ReadsIntegerAndFloatLabelFiles) {
    TempDir dir;
    expect_by_hand_result(read_label_image(
        write_nrrd_by_hand(dir.path() / "u16.nrrd", "uint16", by_hand_values<std::uint16_t>())));
    expect_by_hand_result(read_label_image(
        write_nrrd_by_hand(dir.path() / "i32.nrrd", "int32", by_hand_values<std::int32_t>())));
    expect_by_hand_result(read_label_image(
        write_nrrd_by_hand(dir.path() / "f32.nrrd", "float", by_hand_values<float>())));
    expect_by_hand_result(read_label_image(
        write_nrrd_by_hand(dir.path() / "f64.nrrd", "double", by_hand_values<double>())));
    // NIfTI-1 with an sform only (RAS): read back in LPS.
    expect_by_hand_result(read_label_image(
        write_nifti_by_hand(dir.path() / "i32.nii", 8, {3, 2, 2}, by_hand_values<std::int32_t>())));
    expect_by_hand_result(read_label_image(
        write_nifti_by_hand(dir.path() / "f32.nii", 16, {3, 2, 2}, by_hand_values<float>())));
    expect_by_hand_result(read_label_image(write_nifti_by_hand(
        dir.path() / "u16.nii", 512, {3, 2, 2}, by_hand_values<std::uint16_t>())));
}

TEST(ImageIo, ReadsA4dFileWithOneVolume) {
    TempDir dir;
    expect_by_hand_result(read_label_image(write_nifti_by_hand(
        dir.path() / "t1.nii", 512, {3, 2, 2, 1}, by_hand_values<std::uint16_t>())));
    expect_by_hand_result(read_label_image(write_nrrd_by_hand(
        dir.path() / "t1.nrrd", "uint16", by_hand_values<std::uint16_t>(), "3 2 2 1", 4,
        "domain domain domain list", "(0.5,0,0) (0,0.75,0) (0,0,2) none")));
}

TEST(ImageIo, ReadErrorsNameTheFileValueAndVoxel) {
    TempDir dir;
    auto values = by_hand_values<std::int32_t>();
    values[1 + 3 * (1 + 2 * 1)] = 70000; // voxel (1, 1, 1)
    const fs::path big = write_nrrd_by_hand(dir.path() / "big.nrrd", "int32", values);
    EXPECT_EQ(read_error(big), big.string() +
                                   ": value 70000 at voxel (1, 1, 1) is above 65535; labels "
                                   "must be integers 0..65535");

    values = by_hand_values<std::int32_t>();
    values[2] = -3; // voxel (2, 0, 0)
    const fs::path negative = write_nifti_by_hand(dir.path() / "neg.nii", 8, {3, 2, 2}, values);
    EXPECT_EQ(read_error(negative), negative.string() +
                                        ": value -3 at voxel (2, 0, 0) is negative; labels "
                                        "must be integers 0..65535");

    // One-byte values are widened inside the label buffer: the last voxel is read intact.
    std::vector<std::int8_t> small{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, -5};
    const fs::path int8 = write_nrrd_by_hand(dir.path() / "i8.nrrd", "int8", small);
    EXPECT_EQ(read_error(int8), int8.string() +
                                    ": value -5 at voxel (2, 1, 1) is negative; labels must be "
                                    "integers 0..65535");
    small.back() = 11;
    const auto widened = read_label_image(write_nrrd_by_hand(int8, "int8", small));
    ASSERT_TRUE(widened.ok()) << widened.error().message;
    EXPECT_EQ(widened->voxels, (Buffer<std::uint16_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));

    auto floats = by_hand_values<float>();
    floats[3] = 2.5F; // voxel (0, 1, 0)
    const fs::path fraction = write_nrrd_by_hand(dir.path() / "frac.nrrd", "float", floats);
    EXPECT_EQ(read_error(fraction), fraction.string() +
                                        ": value 2.5 at voxel (0, 1, 0) is not an integer; "
                                        "labels must be integers 0..65535");

    std::vector<std::uint8_t> pairs(24, 1);
    const fs::path vector =
        write_nrrd_by_hand(dir.path() / "vector.nrrd", "uint8", pairs, "2 3 2 2", 4,
                           "vector domain domain domain", "none (0.5,0,0) (0,0.75,0) (0,0,2)");
    EXPECT_EQ(read_error(vector),
              vector.string() + ": 2 components per voxel; a label image has one");

    std::vector<std::uint16_t> two_volumes(24, 1);
    const fs::path series =
        write_nifti_by_hand(dir.path() / "t2.nii", 512, {3, 2, 2, 2}, two_volumes);
    const std::string t2 = read_error(series);
    EXPECT_EQ(t2.rfind(series.string() + ": ", 0), 0U) << t2;
    EXPECT_NE(t2.find("size 2 in dimension 4"), std::string::npos) << t2;

    const fs::path missing = dir.path() / "missing.nii.gz";
    EXPECT_EQ(read_error(missing), missing.string() + ": no such file");

    const fs::path garbage = dir.path() / "garbage.nii";
    write_bytes(garbage, "not an image at all", nullptr, 0);
    const std::string g = read_error(garbage);
    EXPECT_EQ(g.rfind(garbage.string() + ": ", 0), 0U) << g;

    const fs::path unknown = dir.path() / "labels.mha";
    const std::string u = read_error(unknown);
    EXPECT_NE(u.find("unknown image file extension"), std::string::npos) << u;
}

TEST(ImageIo, WriteErrorsNameThePath) {
    TempDir dir;
    LabelMap labels = make_volume<std::uint8_t>(oblique_left_handed(), 1);
    const fs::path missing = dir.path() / "no-such-dir" / "labels.nii";
    const Status status = write_labels(labels, missing);
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().message, missing.string() + ": cannot write: directory " +
                                          missing.parent_path().string() + " does not exist");

    const Status nhdr = write_labels(labels, dir.path() / "labels.nhdr");
    ASSERT_FALSE(nhdr.ok());
    EXPECT_NE(nhdr.error().message.find("labels.nhdr"), std::string::npos);
    EXPECT_FALSE(write_labels(labels, dir.path() / "labels.png").ok());

    labels.voxels.pop_back();
    const Status short_buffer = write_labels(labels, dir.path() / "a.nrrd");
    ASSERT_FALSE(short_buffer.ok());
    EXPECT_NE(short_buffer.error().message.find("139 voxels for dimensions 7x5x4"),
              std::string::npos)
        << short_buffer.error().message;
    EXPECT_TRUE(files_in(dir.path()).empty());
}

// ------------------------------------------------------------------ resampling

TEST(ImageIo, ResampleNearestOntoHalfSpacingAndShiftedOrigin) {
    // Source: 4 x 3 x 2 on the oblique geometry, spacing 2, 1.8, 3. Target: the same
    // directions, half the spacing, origin moved by (0.3, -0.7, 0.5) mm along the axes, and
    // large enough to reach past the source on every axis.
    Geometry source = oblique_left_handed();
    source.dims = {4, 3, 2};
    source.spacing = {2.0, 1.8, 3.0};
    WideLabelMap labels = make_volume<std::uint16_t>(source, 0);
    for (std::size_t n = 0; n < labels.voxels.size(); ++n) {
        labels.voxels[n] = static_cast<std::uint16_t>(1000 + n);
    }
    Geometry target = source;
    target.dims = {9, 7, 5};
    target.spacing = {1.0, 0.9, 1.5};
    const std::array<double, 3> shift{0.3, -0.7, 0.5};
    for (std::size_t r = 0; r < 3; ++r) {
        target.origin[r] = source.origin[r];
        for (std::size_t a = 0; a < 3; ++a) {
            target.origin[r] += shift[a] * source.direction[3 * r + a];
        }
    }
    const WideLabelMap out = resample_nearest(labels, target);
    ASSERT_EQ(out.geometry.dims, target.dims);
    ASSERT_EQ(out.voxels.size(), 9U * 7U * 5U);

    // By hand: along axis a, target index t lies at source index shift/spacing + t / 2,
    // i.e. 0.15 + t/2, -0.3889 + t/2 and 0.1667 + t/2: never halfway between two voxels.
    // The nearest source voxel is the rounded index; outside [-0.5, size - 0.5) gives 0.
    const auto source_index = [&](std::size_t a, std::size_t t) -> long {
        const double x = shift[a] / source.spacing[a] + 0.5 * static_cast<double>(t);
        if (x < -0.5 || x >= static_cast<double>(source.dims[a]) - 0.5) {
            return -1;
        }
        return std::lround(x);
    };
    EXPECT_EQ(source_index(0, 0), 0);
    EXPECT_EQ(source_index(0, 1), 1);  // 0.65
    EXPECT_EQ(source_index(0, 6), 3);  // 3.15
    EXPECT_EQ(source_index(0, 7), -1); // 3.65: past the last voxel's half
    EXPECT_EQ(source_index(1, 0), 0);  // -0.39: inside the first voxel's half
    std::size_t inside = 0;
    for (std::size_t k = 0; k < 5; ++k) {
        for (std::size_t j = 0; j < 7; ++j) {
            for (std::size_t i = 0; i < 9; ++i) {
                const long si = source_index(0, i);
                const long sj = source_index(1, j);
                const long sk = source_index(2, k);
                std::uint16_t expected = 0;
                if (si >= 0 && sj >= 0 && sk >= 0) {
                    expected = labels.at(static_cast<std::size_t>(si), static_cast<std::size_t>(sj),
                                         static_cast<std::size_t>(sk));
                    ++inside;
                }
                EXPECT_EQ(out.at(i, j, k), expected) << "voxel " << i << "," << j << "," << k;
            }
        }
    }
    EXPECT_GT(inside, 100U);
    EXPECT_LT(inside, 9U * 7U * 5U);
}

// ------------------------------------------------------------------ geometry checks

TEST(ImageIo, GeometryMismatchNamesWhatDiffers) {
    Geometry a;
    a.dims = {512, 512, 300};
    a.spacing = {0.7, 0.7, 2.5};
    a.origin = {-180, -180, 100};
    Geometry b = a;
    EXPECT_FALSE(geometry_mismatch(a, b).has_value());
    b.origin[0] += 0.005;
    b.direction[0] = 1.0 - 5e-4;
    EXPECT_FALSE(geometry_mismatch(a, b).has_value()) << "within tolerance";

    b = a;
    b.dims = {256, 256, 150};
    EXPECT_EQ(geometry_mismatch(a, b), "dims 512x512x300 vs 256x256x150");
    b.spacing = {1.4, 1.4, 5};
    EXPECT_EQ(geometry_mismatch(a, b), "dims 512x512x300 vs 256x256x150; spacing 0.7x0.7x2.5 "
                                       "vs 1.4x1.4x5");
    b = a;
    b.origin[2] = 100.02;
    EXPECT_EQ(geometry_mismatch(a, b), "origin (-180, -180, 100) vs (-180, -180, 100.02)");
    EXPECT_FALSE(geometry_mismatch(a, b, 0.05).has_value());
    b = a;
    b.direction = {1, 0, 0, 0, 1, 0, 0, 0, -1};
    EXPECT_EQ(geometry_mismatch(a, b),
              "direction (1, 0, 0; 0, 1, 0; 0, 0, 1) vs (1, 0, 0; 0, 1, 0; 0, 0, -1)");
}

TEST(ImageIo, DescribeIsOneLine) {
    Geometry a;
    a.dims = {512, 512, 300};
    a.spacing = {0.7, 0.7, 2.5};
    a.origin = {-180, -180, 100};
    EXPECT_EQ(describe(a), "512x512x300 voxels, spacing 0.7x0.7x2.5 mm, origin (-180, -180, 100) "
                           "mm, direction (1, 0, 0; 0, 1, 0; 0, 0, 1)");
}

TEST(ImageIo, ReadLabelMapNarrowsToSegnodeLabels) {
    TempDir dir;
    // uint8 files are read straight into the label map.
    std::vector<std::uint8_t> bytes{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255};
    const auto u8 = read_label_map(write_nrrd_by_hand(dir.path() / "u8.nrrd", "uint8", bytes));
    ASSERT_TRUE(u8.ok()) << u8.error().message;
    EXPECT_EQ(u8->voxels, (Buffer<std::uint8_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255}));
    expect_geometry_near(by_hand_geometry(), u8->geometry, 1e-6, 1e-6);

    // Wider types are checked and narrowed; a value above 255 is named with its voxel.
    std::vector<std::uint16_t> values{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 200};
    const auto u16 = read_label_map(write_nrrd_by_hand(dir.path() / "u16.nrrd", "uint16", values));
    ASSERT_TRUE(u16.ok()) << u16.error().message;
    EXPECT_EQ(u16->voxels.size(), values.size());
    for (std::size_t n = 0; n < values.size(); ++n) {
        EXPECT_EQ(u16->voxels[n], values[n]) << n;
    }
    values[1 + 3 * (1 + 2 * 1)] = 300; // voxel (1, 1, 1)
    const fs::path big = write_nrrd_by_hand(dir.path() / "big.nrrd", "uint16", values);
    const auto refused = read_label_map(big);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().message,
              big.string() + ": value 300 at voxel (1, 1, 1) is above 255; segment labels are "
                             "1..255");
}

} // namespace
} // namespace segnode::imageio
