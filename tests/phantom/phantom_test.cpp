// Tests of the synthetic CT phantom: geometry, pixel values, orientations, shuffling, CLI and
// (when installed) dciodvfy.
#include "phantom.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <filesystem>
#include <gtest/gtest.h>
#include <map>
#include <random>
#include <set>
#include <string>
#include <sys/wait.h>
#include <vector>

namespace fs = std::filesystem;
using namespace segnode::phantom;

namespace {

struct LoadedSlice {
    Vec3 position{};
    std::array<double, 6> cosines{};
    std::array<double, 2> spacing{};
    double slice_thickness = 0.0;
    long instance_number = 0;
    int rows = 0;
    int cols = 0;
    std::string transfer_syntax;
    std::string sop_instance_uid;
    std::vector<Uint16> pixels;
};

LoadedSlice load_slice(const fs::path& path) {
    LoadedSlice out;
    DcmFileFormat file;
    const OFCondition loaded = file.loadFile(path.c_str());
    EXPECT_TRUE(loaded.good()) << path << ": " << loaded.text();
    if (loaded.bad()) {
        return out;
    }
    DcmDataset& ds = *file.getDataset();
    auto expect_good = [&](const OFCondition& cond, const char* what) {
        EXPECT_TRUE(cond.good()) << path << ": " << what << ": " << cond.text();
    };
    for (unsigned long i = 0; i < 3; ++i) {
        expect_good(ds.findAndGetFloat64(DCM_ImagePositionPatient, out.position[i], i),
                    "ImagePositionPatient");
    }
    for (unsigned long i = 0; i < 6; ++i) {
        expect_good(ds.findAndGetFloat64(DCM_ImageOrientationPatient, out.cosines[i], i),
                    "ImageOrientationPatient");
    }
    for (unsigned long i = 0; i < 2; ++i) {
        expect_good(ds.findAndGetFloat64(DCM_PixelSpacing, out.spacing[i], i), "PixelSpacing");
    }
    expect_good(ds.findAndGetFloat64(DCM_SliceThickness, out.slice_thickness), "SliceThickness");
    Sint32 instance = 0;
    expect_good(ds.findAndGetSint32(DCM_InstanceNumber, instance), "InstanceNumber");
    out.instance_number = instance;
    Uint16 rows = 0;
    Uint16 cols = 0;
    expect_good(ds.findAndGetUint16(DCM_Rows, rows), "Rows");
    expect_good(ds.findAndGetUint16(DCM_Columns, cols), "Columns");
    out.rows = rows;
    out.cols = cols;
    OFString text;
    expect_good(file.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, text),
                "TransferSyntaxUID");
    out.transfer_syntax = text.c_str();
    expect_good(ds.findAndGetOFString(DCM_SOPInstanceUID, text), "SOPInstanceUID");
    out.sop_instance_uid = text.c_str();
    const Uint16* pixels = nullptr;
    unsigned long count = 0;
    expect_good(ds.findAndGetUint16Array(DCM_PixelData, pixels, &count), "PixelData");
    if (pixels != nullptr) {
        out.pixels.assign(pixels, pixels + count);
    }
    return out;
}

Vec3 cross(const Vec3& a, const Vec3& b) {
    return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
double dot(const Vec3& a, const Vec3& b) {
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

void expect_orthonormal(const std::array<double, 6>& c, const std::string& what) {
    const Vec3 row{c[0], c[1], c[2]};
    const Vec3 col{c[3], c[4], c[5]};
    EXPECT_NEAR(dot(row, row), 1.0, 1e-9) << what;
    EXPECT_NEAR(dot(col, col), 1.0, 1e-9) << what;
    EXPECT_NEAR(dot(row, col), 0.0, 1e-9) << what;
}

std::string orientation_name(Orientation o) {
    switch (o) {
    case Orientation::Axial:
        return "axial";
    case Orientation::Coronal:
        return "coronal";
    case Orientation::Sagittal:
        return "sagittal";
    case Orientation::Oblique:
        return "oblique";
    }
    return "?";
}

constexpr std::array all_orientations{Orientation::Axial, Orientation::Coronal,
                                      Orientation::Sagittal, Orientation::Oblique};

struct CommandResult {
    int exit_code = -1;
    std::string output;
};

CommandResult run(const std::string& command) {
    CommandResult result;
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) {
        return result;
    }
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) {
        result.output.append(buf, n);
    }
    const int status = pclose(pipe);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

class PhantomTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::random_device device;
        m_dir = fs::temp_directory_path() /
                ("segnode_phantom_test_" + std::to_string(device()) + std::to_string(device()));
        fs::create_directories(m_dir);
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(m_dir, ec);
    }
    fs::path m_dir;
};

} // namespace

TEST(PhantomGeometry, EveryOrientationHasOrthonormalCosines) {
    for (const Orientation o : all_orientations) {
        expect_orthonormal(orientation_cosines(o), orientation_name(o));
        for (const double v : orientation_cosines(o)) {
            EXPECT_LE(format_ds(v).size(), 16U);
        }
    }
    const auto oblique = orientation_cosines(Orientation::Oblique);
    for (const double v : oblique) {
        EXPECT_GT(std::abs(v), 0.05) << "oblique cosines should all be non-trivial";
        EXPECT_LT(std::abs(v), 0.99);
    }
}

TEST(PhantomGeometry, FormatDsFitsSixteenCharacters) {
    for (const double v : {0.0, -0.0, 1.0, -1.0, 0.1, -204.39999999999998, 1e-20, -1.234e-17,
                           123456789.123456789, -0.17740571068743817}) {
        const std::string s = format_ds(v);
        EXPECT_LE(s.size(), 16U) << s;
        EXPECT_NEAR(std::strtod(s.c_str(), nullptr), v, std::abs(v) * 1e-12) << s;
    }
    EXPECT_EQ(format_ds(-0.0), "0");
}

TEST(PhantomGeometry, UidsAreUuidDerived) {
    const std::string a = generate_uid();
    const std::string b = generate_uid();
    EXPECT_NE(a, b);
    EXPECT_EQ(a.rfind("2.25.", 0), 0U) << a;
    EXPECT_LE(a.size(), 64U);
    EXPECT_TRUE(
        std::all_of(a.begin(), a.end(), [](char c) { return c == '.' || std::isdigit(c); }));
}

TEST(PhantomAnatomy, LabelsAtKnownLocations) {
    PhantomSpec spec;
    const Anatomy anatomy(spec);
    const Vec3 lung = anatomy.lung_centre();
    EXPECT_EQ(anatomy.label(lung[0], lung[1], lung[2]), Label::Lung);
    EXPECT_EQ(anatomy.label(-lung[0], lung[1], lung[2]), Label::Lung) << "left lung";
    const Vec3 spine = anatomy.spine_centre();
    EXPECT_EQ(anatomy.label(spine[0], spine[1], spine[2]), Label::Bone);
    const double table_y = 0.5 * (anatomy.table_y_min() + anatomy.table_y_max());
    EXPECT_EQ(anatomy.label(0.0, table_y, 0.0), Label::Table);
    // The air gap between the body and the table.
    const double body_back = anatomy.body_centre_y() + anatomy.body_semi_y();
    EXPECT_LT(body_back, anatomy.table_y_min());
    EXPECT_EQ(anatomy.label(0.0, 0.5 * (body_back + anatomy.table_y_min()), 0.0), Label::Air);
    // Mediastinum (between the lungs) is soft tissue; far anterior is air.
    EXPECT_EQ(anatomy.label(0.0, lung[1], 0.0), Label::SoftTissue);
    EXPECT_EQ(anatomy.label(0.0, -1000.0, 0.0), Label::Air);
    EXPECT_EQ(truth_label(spec, lung[0], lung[1], lung[2]), Label::Lung);
    EXPECT_EQ(truth_hu(spec, lung[0], lung[1], lung[2]), -850.0);
    EXPECT_EQ(truth_hu(Label::Air), -1000.0);
    EXPECT_EQ(truth_hu(Label::Bone), 700.0);
    EXPECT_THROW((void)truth_hu(7), std::out_of_range);
}

TEST_F(PhantomTest, PositionsFormARegularGrid) {
    for (const bool feet_first : {false, true}) {
        for (const Orientation o : all_orientations) {
            PhantomSpec spec;
            spec.rows = 32;
            spec.cols = 24;
            spec.slices = 8;
            spec.orientation = o;
            spec.feet_first = feet_first;
            const std::string what = orientation_name(o) + (feet_first ? " FFS" : " HFS");
            const fs::path dir = m_dir / (orientation_name(o) + std::to_string(feet_first));
            const GeneratedSeries series = write_ct_series(spec, dir);
            ASSERT_EQ(series.files.size(), 8U);
            ASSERT_EQ(series.sop_instance_uids.size(), 8U);
            const PhantomGeometry geometry = compute_geometry(spec);
            const LoadedSlice first = load_slice(series.files[0]);
            expect_orthonormal(first.cosines, what);
            const Vec3 normal = cross({first.cosines[0], first.cosines[1], first.cosines[2]},
                                      {first.cosines[3], first.cosines[4], first.cosines[5]});
            const double sign = feet_first ? -1.0 : 1.0;
            for (std::size_t a = 0; a < 3; ++a) {
                EXPECT_NEAR(first.position[a], geometry.first_position[a], 1e-6) << what;
                // The grid is centred on the patient origin.
                const double centre = first.position[a] +
                                      0.5 * (spec.cols - 1) * 0.8 * first.cosines[a] +
                                      0.5 * (spec.rows - 1) * 0.8 * first.cosines[3 + a] +
                                      0.5 * (spec.slices - 1) * 2.5 * sign * normal[a];
                EXPECT_NEAR(centre, 0.0, 1e-4) << what;
            }
            for (std::size_t k = 0; k < series.files.size(); ++k) {
                const LoadedSlice slice = load_slice(series.files[k]);
                EXPECT_EQ(slice.instance_number, static_cast<long>(k + 1)) << what;
                EXPECT_EQ(slice.sop_instance_uid, series.sop_instance_uids[k]) << what;
                EXPECT_EQ(slice.cosines, first.cosines) << what;
                EXPECT_NEAR(slice.spacing[0], 0.8, 1e-12);
                EXPECT_NEAR(slice.spacing[1], 0.8, 1e-12);
                EXPECT_NEAR(slice.slice_thickness, 2.5, 1e-12);
                for (std::size_t a = 0; a < 3; ++a) {
                    const double expected =
                        first.position[a] + static_cast<double>(k) * 2.5 * sign * normal[a];
                    EXPECT_NEAR(slice.position[a], expected, 1e-4) << what << " slice " << k;
                    EXPECT_NEAR(slice.position[a], geometry.slice_position(static_cast<int>(k))[a],
                                1e-9);
                }
            }
        }
    }
}

TEST_F(PhantomTest, PixelsEqualTruthPlus1024InEveryOrientation) {
    for (const Orientation o : all_orientations) {
        PhantomSpec spec;
        spec.rows = 32;
        spec.cols = 32;
        spec.slices = 8;
        spec.orientation = o;
        const fs::path dir = m_dir / orientation_name(o);
        const GeneratedSeries series = write_ct_series(spec, dir);
        const Anatomy anatomy(spec);
        std::array<int, label_count> seen{};
        for (const fs::path& path : series.files) {
            const LoadedSlice s = load_slice(path);
            ASSERT_EQ(s.rows, 32);
            ASSERT_EQ(s.cols, 32);
            ASSERT_EQ(s.pixels.size(), 32U * 32U);
            // Recompute every voxel position from the file's own attributes.
            for (int j = 0; j < s.rows; ++j) {
                for (int i = 0; i < s.cols; ++i) {
                    Vec3 p{};
                    for (std::size_t a = 0; a < 3; ++a) {
                        p[a] = s.position[a] + i * s.spacing[1] * s.cosines[a] +
                               j * s.spacing[0] * s.cosines[3 + a];
                    }
                    const int label = anatomy.label(p[0], p[1], p[2]);
                    ++seen[static_cast<std::size_t>(label)];
                    const auto index = static_cast<std::size_t>(j * s.cols + i);
                    ASSERT_EQ(s.pixels[index], static_cast<Uint16>(truth_hu(label) + 1024))
                        << orientation_name(o) << " " << path << " i=" << i << " j=" << j;
                }
            }
        }
        for (int label = 0; label < label_count; ++label) {
            EXPECT_GT(seen[static_cast<std::size_t>(label)], 0)
                << orientation_name(o) << ": label " << label << " missing in 32x32x8";
        }
    }
}

TEST_F(PhantomTest, PixelAtKnownLocation) {
    PhantomSpec spec; // 64 x 64 x 20 axial
    const GeneratedSeries series = write_ct_series(spec, m_dir);
    const PhantomGeometry g = compute_geometry(spec);
    const Anatomy anatomy(spec);
    // Voxel nearest to the centre of the right lung, on slice 10.
    const Vec3 lung = anatomy.lung_centre();
    const int k = 10;
    const Vec3 origin = g.slice_position(k);
    const auto i = static_cast<int>(std::lround((lung[0] - origin[0]) / g.pixel_spacing));
    const auto j = static_cast<int>(std::lround((lung[1] - origin[1]) / g.pixel_spacing));
    const LoadedSlice s = load_slice(series.files[static_cast<std::size_t>(k)]);
    const auto index = static_cast<std::size_t>(j * spec.cols + i);
    ASSERT_LT(index, s.pixels.size());
    EXPECT_EQ(s.pixels[index], -850 + 1024);
    const Vec3 p = g.voxel_position(i, j, k);
    EXPECT_EQ(s.pixels[index], truth_hu(truth_label(spec, p[0], p[1], p[2])) + 1024);
    EXPECT_EQ(s.pixels[0], -1000 + 1024) << "corner voxel is air";
}

TEST_F(PhantomTest, ShuffleChangesNameOrderNotPositions) {
    PhantomSpec spec;
    spec.rows = 16;
    spec.cols = 16;
    spec.slices = 12;
    const GeneratedSeries plain = write_ct_series(spec, m_dir / "plain");
    spec.shuffle_files = true;
    spec.seed = 42;
    const GeneratedSeries shuffled = write_ct_series(spec, m_dir / "shuffled");

    std::vector<std::string> names;
    for (const auto& f : shuffled.files) {
        names.push_back(f.filename().string());
    }
    EXPECT_FALSE(std::is_sorted(names.begin(), names.end())) << "names follow spatial order";
    EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size());

    // Same set of positions; reading in file-name order does not give spatial order.
    auto positions_by_name = [](const fs::path& dir) {
        std::map<std::string, LoadedSlice> by_name;
        for (const auto& entry : fs::directory_iterator(dir)) {
            by_name.emplace(entry.path().filename().string(), load_slice(entry.path()));
        }
        return by_name;
    };
    const auto a = positions_by_name(m_dir / "plain");
    const auto b = positions_by_name(m_dir / "shuffled");
    ASSERT_EQ(a.size(), 12U);
    ASSERT_EQ(b.size(), 12U);
    std::set<std::array<double, 3>> pa;
    std::set<std::array<double, 3>> pb;
    std::vector<long> instances_in_name_order;
    for (const auto& [name, slice] : a) {
        pa.insert(slice.position);
    }
    for (const auto& [name, slice] : b) {
        pb.insert(slice.position);
        instances_in_name_order.push_back(slice.instance_number);
    }
    EXPECT_EQ(pa, pb);
    EXPECT_FALSE(std::is_sorted(instances_in_name_order.begin(), instances_in_name_order.end()));
    // InstanceNumber still follows spatial order.
    for (std::size_t k = 0; k < shuffled.files.size(); ++k) {
        const LoadedSlice s = load_slice(shuffled.files[k]);
        EXPECT_EQ(s.instance_number, static_cast<long>(k + 1));
        EXPECT_EQ(s.position, load_slice(plain.files[k]).position);
    }
}

TEST_F(PhantomTest, TransferSyntaxAndGivenUids) {
    PhantomSpec spec;
    spec.rows = 8;
    spec.cols = 8;
    spec.slices = 2;
    spec.transfer_syntax = TransferSyntax::ImplicitLittle;
    spec.study_uid = "1.2.3.4";
    spec.series_uid = "1.2.3.4.5";
    spec.frame_of_reference_uid = "1.2.3.4.6";
    const GeneratedSeries series = write_ct_series(spec, m_dir);
    EXPECT_EQ(series.study_uid, "1.2.3.4");
    EXPECT_EQ(series.series_uid, "1.2.3.4.5");
    EXPECT_EQ(series.frame_of_reference_uid, "1.2.3.4.6");
    EXPECT_EQ(load_slice(series.files[0]).transfer_syntax, "1.2.840.10008.1.2");

    spec.transfer_syntax = TransferSyntax::ExplicitLittle;
    const GeneratedSeries explicit_series = write_ct_series(spec, m_dir / "explicit");
    EXPECT_EQ(load_slice(explicit_series.files[0]).transfer_syntax, "1.2.840.10008.1.2.1");
}

TEST_F(PhantomTest, NoiseIsSeeded) {
    PhantomSpec spec;
    spec.rows = 16;
    spec.cols = 16;
    spec.slices = 3;
    spec.noise_hu = 20.0;
    const auto a = load_slice(write_ct_series(spec, m_dir / "a").files[1]).pixels;
    const auto b = load_slice(write_ct_series(spec, m_dir / "b").files[1]).pixels;
    spec.seed = 2;
    const auto c = load_slice(write_ct_series(spec, m_dir / "c").files[1]).pixels;
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
    EXPECT_NE(a[0], 24) << "noise should change the air value (almost surely)";
}

TEST_F(PhantomTest, BadSpecIsRejected) {
    PhantomSpec spec;
    spec.rows = 0;
    EXPECT_THROW((void)write_ct_series(spec, m_dir), std::invalid_argument);
    spec = PhantomSpec{};
    spec.series_uid = "1.2.03";
    EXPECT_THROW((void)write_ct_series(spec, m_dir), std::invalid_argument);
    spec = PhantomSpec{};
    spec.body_part = "chest";
    EXPECT_THROW((void)write_ct_series(spec, m_dir), std::invalid_argument);
    spec = PhantomSpec{};
    const fs::path file = m_dir / "a_file";
    std::fclose(std::fopen(file.c_str(), "w"));
    EXPECT_THROW((void)write_ct_series(spec, file), std::runtime_error);
}

TEST_F(PhantomTest, CommandLinePrintsJson) {
    const fs::path out = m_dir / "cli" / "nested";
    const CommandResult ok =
        run(std::string(SEGNODE_PHANTOM_EXE) + " --out '" + out.string() +
            "' --rows 16 --cols 20 --slices 4 --orientation Coronal --shuffle --seed 3"
            " --study-uid 1.2.3 --series-number 7 --transfer-syntax implicit 2>&1");
    ASSERT_EQ(ok.exit_code, 0) << ok.output;
    EXPECT_NE(ok.output.find("\"study_uid\":\"1.2.3\""), std::string::npos) << ok.output;
    EXPECT_NE(ok.output.find("\"sop_instance_uids\":["), std::string::npos) << ok.output;
    EXPECT_NE(ok.output.find("\"frame_of_reference_uid\":\"2.25."), std::string::npos);
    std::size_t count = 0;
    for (const auto& entry : fs::directory_iterator(out)) {
        (void)entry;
        ++count;
    }
    EXPECT_EQ(count, 4U);

    const CommandResult bad =
        run(std::string(SEGNODE_PHANTOM_EXE) + " --out '" + out.string() + "' --rows 0 2>&1");
    EXPECT_EQ(bad.exit_code, 2) << bad.output;
    EXPECT_NE(bad.output.find("rows"), std::string::npos) << bad.output;
    const CommandResult unknown =
        run(std::string(SEGNODE_PHANTOM_EXE) + " --out x --orientation diagonal 2>&1");
    EXPECT_EQ(unknown.exit_code, 2) << unknown.output;
    const CommandResult missing = run(std::string(SEGNODE_PHANTOM_EXE) + " 2>&1");
    EXPECT_EQ(missing.exit_code, 2) << missing.output;
}

TEST_F(PhantomTest, DciodvfyReportsNoErrors) {
    if (!fs::exists("/usr/bin/dciodvfy")) {
        GTEST_SKIP() << "dciodvfy (dicom3tools) is not installed";
    }
    for (const Orientation o : all_orientations) {
        for (const TransferSyntax ts :
             {TransferSyntax::ExplicitLittle, TransferSyntax::ImplicitLittle}) {
            PhantomSpec spec;
            spec.rows = 16;
            spec.cols = 16;
            spec.slices = 2;
            spec.orientation = o;
            spec.transfer_syntax = ts;
            spec.feet_first = ts == TransferSyntax::ImplicitLittle;
            const fs::path dir =
                m_dir / (orientation_name(o) + (ts == TransferSyntax::ImplicitLittle ? "i" : "e"));
            const GeneratedSeries series = write_ct_series(spec, dir);
            const CommandResult r =
                run("/usr/bin/dciodvfy '" + series.files[0].string() + "' 2>&1");
            std::size_t start = 0;
            while (start < r.output.size()) {
                std::size_t end = r.output.find('\n', start);
                if (end == std::string::npos) {
                    end = r.output.size();
                }
                const std::string line = r.output.substr(start, end - start);
                EXPECT_NE(line.rfind("Error", 0), 0U)
                    << orientation_name(o) << ": " << line << "\nfull output:\n"
                    << r.output;
                start = end + 1;
            }
        }
    }
}
