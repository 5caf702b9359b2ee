// Label map writers: the NIfTI-1 header is parsed here by hand (no NIfTI library), the NRRD
// header line by line; both must map voxel (i, j, k) to the position voxel_to_patient gives
// (RAS = (-x, -y, z) for NIfTI, LPS as is for NRRD), and the voxels must round-trip.
#include "phantom.hpp"
#include "segnode/algorithms/label_io.hpp"
#include "segnode/algorithms/registry.hpp"
#include "segnode/core/volume.hpp"
#include "test_volumes.hpp"
#include "test_util.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <iterator>
#include <limits>
#include <map>
#include <numbers>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace segnode::algorithms {
namespace {

namespace fs = std::filesystem;

using segnode::test::TempDir;

std::vector<std::uint8_t> read_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// ------------------------------------------------------------------ NIfTI-1 header by hand

template <class T> T get_le(const std::vector<std::uint8_t>& bytes, std::size_t offset) {
    std::uint64_t bits = 0;
    for (std::size_t b = 0; b < sizeof(T); ++b) {
        bits |= std::uint64_t{bytes.at(offset + b)} << (8 * b);
    }
    if constexpr (sizeof(T) == 2) {
        return std::bit_cast<T>(static_cast<std::uint16_t>(bits));
    } else if constexpr (sizeof(T) == 4) {
        return std::bit_cast<T>(static_cast<std::uint32_t>(bits));
    } else {
        return std::bit_cast<T>(bits);
    }
}

struct NiftiHeader {
    std::int32_t sizeof_hdr = 0;
    std::array<std::int16_t, 8> dim{};
    std::int16_t intent_code = 0;
    std::int16_t datatype = 0;
    std::int16_t bitpix = 0;
    std::array<float, 8> pixdim{};
    float vox_offset = 0;
    float scl_slope = 0;
    float scl_inter = 0;
    std::uint8_t xyzt_units = 0;
    std::string descrip;
    std::int16_t qform_code = 0;
    std::int16_t sform_code = 0;
    float quatern_b = 0, quatern_c = 0, quatern_d = 0;
    std::array<float, 3> qoffset{};
    std::array<std::array<float, 4>, 3> srow{};
    std::string magic;
};

NiftiHeader parse_nifti_header(const std::vector<std::uint8_t>& bytes) {
    NiftiHeader h;
    h.sizeof_hdr = get_le<std::int32_t>(bytes, 0);
    for (std::size_t n = 0; n < 8; ++n) {
        h.dim[n] = get_le<std::int16_t>(bytes, 40 + 2 * n);
        h.pixdim[n] = get_le<float>(bytes, 76 + 4 * n);
    }
    h.intent_code = get_le<std::int16_t>(bytes, 68);
    h.datatype = get_le<std::int16_t>(bytes, 70);
    h.bitpix = get_le<std::int16_t>(bytes, 72);
    h.vox_offset = get_le<float>(bytes, 108);
    h.scl_slope = get_le<float>(bytes, 112);
    h.scl_inter = get_le<float>(bytes, 116);
    h.xyzt_units = bytes.at(123);
    h.descrip = std::string(reinterpret_cast<const char*>(bytes.data() + 148));
    h.qform_code = get_le<std::int16_t>(bytes, 252);
    h.sform_code = get_le<std::int16_t>(bytes, 254);
    h.quatern_b = get_le<float>(bytes, 256);
    h.quatern_c = get_le<float>(bytes, 260);
    h.quatern_d = get_le<float>(bytes, 264);
    for (std::size_t r = 0; r < 3; ++r) {
        h.qoffset[r] = get_le<float>(bytes, 268 + 4 * r);
        for (std::size_t c = 0; c < 4; ++c) {
            h.srow[r][c] = get_le<float>(bytes, 280 + 16 * r + 4 * c);
        }
    }
    h.magic = std::string(reinterpret_cast<const char*>(bytes.data() + 344), 4);
    return h;
}

Vec3d sform_position(const NiftiHeader& h, double i, double j, double k) {
    Vec3d p{};
    for (std::size_t r = 0; r < 3; ++r) {
        const auto& row = h.srow[r];
        p[r] = double{row[0]} * i + double{row[1]} * j + double{row[2]} * k + double{row[3]};
    }
    return p;
}

/// NIfTI-1 "method 2": R(b, c, d) * (pixdim1 * i, pixdim2 * j, qfac * pixdim3 * k) + qoffset,
/// with a recovered as nifti1_io's nifti_quatern_to_mat44 does (a < 1e-7 counts as 0).
Vec3d qform_position(const NiftiHeader& h, double i, double j, double k) {
    double b = h.quatern_b;
    double c = h.quatern_c;
    double d = h.quatern_d;
    double a = 1.0 - (b * b + c * c + d * d);
    if (a < 1e-7) {
        const double scale = 1.0 / std::sqrt(b * b + c * c + d * d);
        b *= scale;
        c *= scale;
        d *= scale;
        a = 0.0;
    } else {
        a = std::sqrt(a);
    }
    const double r[3][3] = {
        {a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)},
        {2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)},
        {2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b}};
    const double qfac = h.pixdim[0] < 0 ? -1.0 : 1.0;
    const double x = double{h.pixdim[1]} * i;
    const double y = double{h.pixdim[2]} * j;
    const double z = qfac * double{h.pixdim[3]} * k;
    Vec3d p{};
    for (std::size_t row = 0; row < 3; ++row) {
        p[row] = r[row][0] * x + r[row][1] * y + r[row][2] * z + double{h.qoffset[row]};
    }
    return p;
}

// ------------------------------------------------------------------ NRRD header by hand

struct NrrdFile {
    std::map<std::string, std::string> fields;
    std::size_t data_offset = 0;
};

NrrdFile parse_nrrd(const std::vector<std::uint8_t>& bytes) {
    NrrdFile out;
    std::size_t pos = 0;
    bool first = true;
    while (pos < bytes.size()) {
        std::size_t end = pos;
        while (end < bytes.size() && bytes[end] != '\n') {
            ++end;
        }
        const std::string line(bytes.begin() + static_cast<std::ptrdiff_t>(pos),
                               bytes.begin() + static_cast<std::ptrdiff_t>(end));
        pos = end + 1;
        if (first) {
            out.fields["magic"] = line;
            first = false;
            continue;
        }
        if (line.empty()) {
            break;
        }
        if (line[0] == '#') {
            continue;
        }
        const auto colon = line.find(": ");
        if (colon != std::string::npos) {
            out.fields[line.substr(0, colon)] = line.substr(colon + 2);
        }
    }
    out.data_offset = pos;
    return out;
}

/// "(a,b,c) (d,e,f) ..." -> vectors.
std::vector<Vec3d> parse_vectors(const std::string& text) {
    std::vector<Vec3d> out;
    std::size_t pos = 0;
    while ((pos = text.find('(', pos)) != std::string::npos) {
        const auto close = text.find(')', pos);
        std::string inner = text.substr(pos + 1, close - pos - 1);
        std::replace(inner.begin(), inner.end(), ',', ' ');
        std::istringstream in(inner);
        Vec3d v{};
        in >> v[0] >> v[1] >> v[2];
        out.push_back(v);
        pos = close;
    }
    return out;
}

// ------------------------------------------------------------------ geometries

Vec3d cross(const Vec3d& a, const Vec3d& b) {
    return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

/// Rotation by 30 degrees about x, then 20 about z: every cosine non-trivial.
Geometry oblique_geometry(bool left_handed) {
    const double a = 30.0 * std::numbers::pi / 180.0;
    const double b = 20.0 * std::numbers::pi / 180.0;
    const Vec3d row{std::cos(b), std::sin(b), 0.0};
    const Vec3d col{-std::sin(b) * std::cos(a), std::cos(b) * std::cos(a), std::sin(a)};
    Vec3d slice = cross(row, col);
    if (left_handed) {
        slice = {-slice[0], -slice[1], -slice[2]};
    }
    Geometry g;
    g.dims = {7, 5, 4};
    g.spacing = {0.7, 0.9, 2.5};
    g.origin = {-100.5, 20.25, 300.0};
    g.direction = make_direction(row, col, slice);
    return g;
}

/// A phantom series as the loader builds it (feet first: slices against the normal).
Geometry phantom_series_geometry(phantom::Orientation orientation, bool feet_first) {
    phantom::PhantomSpec spec;
    spec.rows = 6;
    spec.cols = 8;
    spec.slices = 5;
    spec.orientation = orientation;
    spec.feet_first = feet_first;
    return test::phantom_geometry(spec);
}

struct NamedGeometry {
    std::string name;
    Geometry geometry;
};

std::vector<NamedGeometry> test_geometries() {
    return {
        {"oblique", oblique_geometry(false)},
        {"oblique left-handed", oblique_geometry(true)},
        {"axial feet-first", phantom_series_geometry(phantom::Orientation::Axial, true)},
        {"axial head-first", phantom_series_geometry(phantom::Orientation::Axial, false)},
        {"sagittal", phantom_series_geometry(phantom::Orientation::Sagittal, false)},
        {"coronal feet-first", phantom_series_geometry(phantom::Orientation::Coronal, true)},
        {"phantom oblique feet-first",
         phantom_series_geometry(phantom::Orientation::Oblique, true)},
    };
}

/// Labels with a distinct pattern per voxel, so that any transposition or flip is caught.
LabelMap patterned_labels(const Geometry& geometry) {
    LabelMap labels = make_volume<std::uint8_t>(geometry, 0);
    for (std::size_t n = 0; n < labels.voxels.size(); ++n) {
        labels.voxels[n] = static_cast<std::uint8_t>((n * 7 + n / 3) % 251);
    }
    return labels;
}

double det(const std::array<double, 9>& m) {
    return m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) +
           m[2] * (m[3] * m[7] - m[4] * m[6]);
}

const std::vector<std::array<double, 3>>& probe_voxels() {
    static const std::vector<std::array<double, 3>> probes{
        {0, 0, 0}, {1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {3, 2, 1}, {4, 4, 3}, {2.5, 0.5, 1.5}};
    return probes;
}

// ------------------------------------------------------------------ tests

TEST(LabelIo, NiftiHeaderMapsVoxelsToRasOfTheDicomGeometry) {
    TempDir dir;
    for (const auto& [name, geometry] : test_geometries()) {
        SCOPED_TRACE(name);
        ASSERT_FALSE(geometry_problem(geometry).has_value());
        const LabelMap labels = patterned_labels(geometry);
        const fs::path path = dir.path() / "labels.nii";
        const Status status = write_nifti(labels, path, "segnode test");
        ASSERT_TRUE(status.ok()) << status.error().message;
        const auto bytes = read_bytes(path);
        ASSERT_EQ(bytes.size(), 352 + labels.voxels.size());
        const NiftiHeader h = parse_nifti_header(bytes);

        EXPECT_EQ(h.sizeof_hdr, 348);
        EXPECT_EQ(h.magic, std::string("n+1\0", 4));
        EXPECT_EQ(h.vox_offset, 352.0F);
        EXPECT_EQ(h.datatype, 2); // DT_UINT8
        EXPECT_EQ(h.bitpix, 8);
        EXPECT_EQ(h.intent_code, 1002); // NIFTI_INTENT_LABEL
        EXPECT_EQ(h.xyzt_units, 2);     // NIFTI_UNITS_MM
        EXPECT_EQ(h.qform_code, 1);
        EXPECT_EQ(h.sform_code, 1);
        EXPECT_EQ(h.descrip, "segnode test");
        EXPECT_EQ(h.dim[0], 3);
        for (std::size_t a = 0; a < 3; ++a) {
            EXPECT_EQ(static_cast<std::size_t>(h.dim[1 + a]), geometry.dims[a]);
            EXPECT_FLOAT_EQ(h.pixdim[1 + a], static_cast<float>(geometry.spacing[a]));
        }
        // qfac: -1 exactly when the RAS direction (det = det of the LPS one) is left-handed.
        EXPECT_EQ(h.pixdim[0], det(geometry.direction) < 0 ? -1.0F : 1.0F);

        for (const auto& [i, j, k] : probe_voxels()) {
            const Vec3d lps = voxel_to_patient(geometry, i, j, k);
            const Vec3d ras{-lps[0], -lps[1], lps[2]};
            const Vec3d s = sform_position(h, i, j, k);
            const Vec3d q = qform_position(h, i, j, k);
            for (std::size_t r = 0; r < 3; ++r) {
                EXPECT_NEAR(s[r], ras[r], 1e-3) << "sform, voxel " << i << "," << j << "," << k;
                EXPECT_NEAR(q[r], ras[r], 1e-3) << "qform, voxel " << i << "," << j << "," << k;
            }
        }
        // nibabel's reading of a: 1 - (b^2 + c^2 + d^2) from the floats, negative within
        // 3 float epsilons meaning 0. A rotation by 180 degrees must not read as slightly off.
        const double w2 = 1.0 - (double{h.quatern_b} * double{h.quatern_b} +
                                 double{h.quatern_c} * double{h.quatern_c} +
                                 double{h.quatern_d} * double{h.quatern_d});
        EXPECT_GE(w2, -3.0 * double{std::numeric_limits<float>::epsilon()});
        const NiftiQuaternion q = nifti_quaternion(geometry);
        if (1.0 - (q.b * q.b + q.c * q.c + q.d * q.d) < 1e-12) {
            EXPECT_LE(w2, 0.0) << "a rotation by 180 degrees stored with a != 0";
        }
        const std::vector<std::uint8_t> data(bytes.begin() + 352, bytes.end());
        EXPECT_EQ(data, labels.voxels);
    }
}

TEST(LabelIo, NiftiQformOfANearlyOrthogonalDirectionIsClose) {
    // A small shear (as a tolerated gantry tilt leaves): the qform is the nearest rotation,
    // so it is close to, not exactly, the sform; the sform stays exact.
    Geometry g = oblique_geometry(false);
    const double shear = std::tan(0.3 * std::numbers::pi / 180.0);
    Vec3d k = axis_direction(g, 2);
    const Vec3d j = axis_direction(g, 1);
    for (std::size_t r = 0; r < 3; ++r) {
        k[r] += shear * j[r];
    }
    const double norm = std::sqrt(k[0] * k[0] + k[1] * k[1] + k[2] * k[2]);
    g.direction = make_direction(axis_direction(g, 0), j, {k[0] / norm, k[1] / norm, k[2] / norm});
    const NiftiQuaternion q = nifti_quaternion(g);
    EXPECT_LE(q.b * q.b + q.c * q.c + q.d * q.d, 1.0 + 1e-12);
    EXPECT_EQ(q.qfac, 1.0);
    const auto affine = ras_affine(g);
    const Vec3d lps = voxel_to_patient(g, 2, 3, 1);
    for (std::size_t r = 0; r < 3; ++r) {
        const double s =
            affine[4 * r] * 2 + affine[4 * r + 1] * 3 + affine[4 * r + 2] * 1 + affine[4 * r + 3];
        EXPECT_NEAR(s, r < 2 ? -lps[r] : lps[r], 1e-9);
    }
}

TEST(LabelIo, NrrdHeaderCarriesTheLpsGeometry) {
    TempDir dir;
    for (const auto& [name, geometry] : test_geometries()) {
        SCOPED_TRACE(name);
        const LabelMap labels = patterned_labels(geometry);
        const fs::path path = dir.path() / "labels.nrrd";
        const Status status = write_nrrd(labels, path, "segnode test\nsecond line");
        ASSERT_TRUE(status.ok()) << status.error().message;
        const auto bytes = read_bytes(path);
        const NrrdFile nrrd = parse_nrrd(bytes);

        EXPECT_EQ(nrrd.fields.at("magic"), "NRRD0004");
        EXPECT_EQ(nrrd.fields.at("type"), "uint8");
        EXPECT_EQ(nrrd.fields.at("dimension"), "3");
        EXPECT_EQ(nrrd.fields.at("space"), "left-posterior-superior");
        EXPECT_EQ(nrrd.fields.at("encoding"), "raw");
        EXPECT_EQ(nrrd.fields.at("kinds"), "domain domain domain");
        EXPECT_EQ(nrrd.fields.at("sizes"), std::to_string(geometry.dims[0]) + " " +
                                               std::to_string(geometry.dims[1]) + " " +
                                               std::to_string(geometry.dims[2]));
        const auto directions = parse_vectors(nrrd.fields.at("space directions"));
        const auto origin = parse_vectors(nrrd.fields.at("space origin"));
        ASSERT_EQ(directions.size(), 3U);
        ASSERT_EQ(origin.size(), 1U);
        for (const auto& [i, j, k] : probe_voxels()) {
            const Vec3d expected = voxel_to_patient(geometry, i, j, k);
            for (std::size_t r = 0; r < 3; ++r) {
                const double p = origin[0][r] + i * directions[0][r] + j * directions[1][r] +
                                 k * directions[2][r];
                EXPECT_NEAR(p, expected[r], 1e-9);
            }
        }
        ASSERT_EQ(bytes.size(), nrrd.data_offset + labels.voxels.size());
        const std::vector<std::uint8_t> data(
            bytes.begin() + static_cast<std::ptrdiff_t>(nrrd.data_offset), bytes.end());
        EXPECT_EQ(data, labels.voxels);
    }
}

TEST(LabelIo, WriteLabelMapDispatchesAndReplacesAtomically) {
    TempDir dir;
    const LabelMap labels = patterned_labels(oblique_geometry(false));
    for (const auto format : {LabelFileFormat::Nifti, LabelFileFormat::Nrrd}) {
        const fs::path path = dir.path() / default_label_file_name(format);
        ASSERT_TRUE(write_label_map(labels, path, format).ok());
        ASSERT_TRUE(write_label_map(labels, path, format).ok()); // replaces
        EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
        EXPECT_EQ(parse_label_file_format(to_string(format)), format);
    }
    EXPECT_EQ(default_label_file_name(LabelFileFormat::Nifti), "labels.nii");
    EXPECT_EQ(default_label_file_name(LabelFileFormat::Nrrd), "labels.nrrd");
    EXPECT_FALSE(parse_label_file_format("seg").has_value());
}

TEST(LabelIo, WriterErrors) {
    TempDir dir;
    LabelMap labels = patterned_labels(oblique_geometry(false));
    const fs::path missing = dir.path() / "no-such-dir" / "labels.nii";
    const Status status = write_nifti(labels, missing);
    ASSERT_FALSE(status.ok());
    EXPECT_NE(status.error().message.find("no-such-dir"), std::string::npos);

    labels.voxels.pop_back();
    EXPECT_FALSE(write_nifti(labels, dir.path() / "a.nii").ok());
    EXPECT_FALSE(write_nrrd(labels, dir.path() / "a.nrrd").ok());

    Geometry wide;
    wide.dims = {40000, 1, 1};
    const Status too_wide = write_nifti(make_volume<std::uint8_t>(wide, 0), dir.path() / "w.nii");
    ASSERT_FALSE(too_wide.ok());
    EXPECT_NE(too_wide.error().message.find("32767"), std::string::npos);
    EXPECT_TRUE(write_nrrd(make_volume<std::uint8_t>(wide, 0), dir.path() / "w.nrrd").ok());
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
    m.format = LabelFileFormat::Nrrd;
    m.geometry = oblique_geometry(false);
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
