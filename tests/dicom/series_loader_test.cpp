// The series loader on synthetic phantom series: every orientation, head and feet first, with
// shuffled file names; transfer syntaxes and pixel formats; and the geometry refusals, each on a
// copy of a good series modified with DCMTK.
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcpixel.h"
#include "dcmtk/dcmdata/dcpixseq.h"
#include "dcmtk/dcmdata/dcpxitem.h"
#include "dcmtk/dcmdata/dcrleerg.h"
#include "dcmtk/dcmdata/dcrlerp.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/dcmjpeg/djencode.h"
#include "dcmtk/dcmjpeg/djrplol.h"
#include "dcmtk/dcmjpls/djencode.h"
#include "dcmtk/dcmjpls/djrparam.h"
#include "j2k_encode.hpp"
#include "phantom.hpp"
#include "segnode/dicom/series_loader.hpp"
#include "test_util.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <memory>
#include <mutex>
#include <numbers>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace segnode::dicom {
namespace {

namespace fs = std::filesystem;
using phantom::Orientation;
using ::testing::HasSubstr;

using segnode::test::TempDir;

void check(const OFCondition& cond, const std::string& what) {
    if (cond.bad()) {
        throw std::runtime_error(what + ": " + cond.text());
    }
}

/// Loads `file` completely, lets `change` edit the data set and writes it back in `xfer`.
void edit(const fs::path& file, const std::function<void(DcmDataset&)>& change,
          E_TransferSyntax xfer = EXS_LittleEndianExplicit) {
    DcmFileFormat ff;
    check(ff.loadFile(file.c_str()), "load " + file.string());
    check(ff.loadAllDataIntoMemory(), "load " + file.string());
    change(*ff.getDataset());
    check(ff.saveFile(file.c_str(), xfer), "save " + file.string());
}

void put(DcmItem& item, const DcmTagKey& tag, const std::string& value) {
    check(item.putAndInsertString(tag, value.c_str()),
          "put " + std::string(tag.toString().c_str()));
}

void put_us(DcmItem& item, const DcmTagKey& tag, Uint16 value) {
    check(item.putAndInsertUint16(tag, value), "put " + std::string(tag.toString().c_str()));
}

std::string ds(const Vec3d& v) {
    return phantom::format_ds(v[0]) + "\\" + phantom::format_ds(v[1]) + "\\" +
           phantom::format_ds(v[2]);
}

Vec3d position_of(const fs::path& file) {
    DcmFileFormat ff;
    check(ff.loadFileUntilTag(file.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength,
                              ERM_autoDetect, DCM_PixelData),
          "load " + file.string());
    Vec3d p{};
    for (unsigned long i = 0; i < 3; ++i) {
        check(ff.getDataset()->findAndGetFloat64(DCM_ImagePositionPatient, p[i], i), "IPP");
    }
    return p;
}

std::vector<Uint16> stored_pixels(DcmDataset& dataset) {
    const Uint16* pixels = nullptr;
    unsigned long count = 0;
    check(dataset.findAndGetUint16Array(DCM_PixelData, pixels, &count), "PixelData");
    return {pixels, pixels + count};
}

phantom::PhantomSpec small_spec(Orientation orientation = Orientation::Axial,
                                bool feet_first = false) {
    phantom::PhantomSpec spec;
    spec.rows = 24; // not square, so that rows and columns cannot be confused
    spec.cols = 32;
    spec.slices = 12;
    spec.pixel_spacing = 0.8;
    spec.slice_spacing = 2.5;
    spec.orientation = orientation;
    spec.feet_first = feet_first;
    spec.shuffle_files = true;
    spec.threads = 1;
    spec.seed = 7;
    return spec;
}

struct Series {
    TempDir dir;
    phantom::PhantomSpec spec;
    phantom::GeneratedSeries gen;
    phantom::PhantomGeometry geometry;

    [[nodiscard]] std::string name(std::size_t k) const { return gen.files[k].filename().string(); }
};

std::unique_ptr<Series> make_series(const phantom::PhantomSpec& spec = small_spec()) {
    auto s = std::make_unique<Series>();
    s->spec = spec;
    s->gen = phantom::write_ct_series(spec, s->dir.path() / "series");
    s->geometry = phantom::compute_geometry(spec);
    return s;
}

fs::path series_dir(const Series& s) {
    return s.dir.path() / "series";
}

std::string new_uid() {
    return phantom::generate_uid();
}

/// For each loaded slice k, the phantom slice it holds (through the SOP Instance UIDs).
std::vector<int> phantom_slices(const LoadedSeries& loaded, const Series& s) {
    std::vector<int> out;
    for (const std::string& uid : loaded.sop_instance_uids) {
        const auto it =
            std::find(s.gen.sop_instance_uids.begin(), s.gen.sop_instance_uids.end(), uid);
        out.push_back(it == s.gen.sop_instance_uids.end()
                          ? -1
                          : static_cast<int>(it - s.gen.sop_instance_uids.begin()));
    }
    return out;
}

/// Geometry and values of `loaded` against the phantom's own positions and truth. `slice_of`
/// gives the phantom slice of each loaded slice k.
void expect_matches_phantom(const LoadedSeries& loaded, const Series& s,
                            const std::vector<int>& slice_of, double tolerance_mm = 1e-3) {
    const Geometry& g = loaded.volume.geometry;
    const auto cols = static_cast<std::size_t>(s.spec.cols);
    const auto rows = static_cast<std::size_t>(s.spec.rows);
    const auto n = static_cast<std::size_t>(s.spec.slices);
    ASSERT_EQ(g.dims, (std::array<std::size_t, 3>{cols, rows, n}));
    ASSERT_TRUE(loaded.volume.consistent());
    EXPECT_FALSE(geometry_problem(g).has_value());
    EXPECT_NEAR(g.spacing[0], s.geometry.pixel_spacing, 1e-9);
    EXPECT_NEAR(g.spacing[1], s.geometry.pixel_spacing, 1e-9);
    EXPECT_NEAR(g.spacing[2], s.geometry.slice_spacing, 1e-6);
    ASSERT_EQ(slice_of.size(), n);
    // Slices ascend along the normal: head first keeps the phantom's order, feet first flips it.
    for (std::size_t k = 0; k < n; ++k) {
        const int expected = s.spec.feet_first ? static_cast<int>(n - 1 - k) : static_cast<int>(k);
        EXPECT_EQ(slice_of[k], expected) << "k " << k;
    }
    for (const std::size_t k : {std::size_t{0}, n - 1}) {
        for (const std::size_t j : {std::size_t{0}, rows - 1}) {
            for (const std::size_t i : {std::size_t{0}, cols - 1}) {
                const Vec3d p = voxel_to_patient(g, static_cast<double>(i), static_cast<double>(j),
                                                 static_cast<double>(k));
                const phantom::Vec3 q = s.geometry.voxel_position(static_cast<int>(i),
                                                                  static_cast<int>(j), slice_of[k]);
                for (std::size_t a = 0; a < 3; ++a) {
                    EXPECT_NEAR(p[a], q[a], tolerance_mm)
                        << "voxel " << i << "," << j << "," << k << " axis " << a;
                }
                EXPECT_EQ(loaded.volume.at(i, j, k),
                          static_cast<std::int16_t>(phantom::truth_hu(s.spec, q[0], q[1], q[2])))
                    << "voxel " << i << "," << j << "," << k;
            }
        }
    }
    // Every voxel against the truth at the loader's own patient position; only points that
    // lie within rounding of a structure boundary may differ.
    const phantom::Anatomy anatomy(s.spec);
    std::size_t mismatches = 0;
    for (std::size_t k = 0; k < n; ++k) {
        for (std::size_t j = 0; j < rows; ++j) {
            for (std::size_t i = 0; i < cols; ++i) {
                const Vec3d p = voxel_to_patient(g, static_cast<double>(i), static_cast<double>(j),
                                                 static_cast<double>(k));
                const double truth = phantom::truth_hu(anatomy.label(p[0], p[1], p[2]));
                mismatches += static_cast<std::size_t>(loaded.volume.at(i, j, k) !=
                                                       static_cast<std::int16_t>(truth));
            }
        }
    }
    EXPECT_LE(mismatches, loaded.volume.voxels.size() / 1000) << "voxels unlike the truth";
}

void expect_matches_phantom(const LoadedSeries& loaded, const Series& s) {
    expect_matches_phantom(loaded, s, phantom_slices(loaded, s));
}

Result<LoadedSeries> load_dir(const Series& s, const LoadOptions& options = {}) {
    return load_series_dir(series_dir(s), options);
}

// --- orientations -------------------------------------------------------------------------

struct OrientationCase {
    Orientation orientation;
    bool feet_first;
    const char* name;
};

void PrintTo(const OrientationCase& c, std::ostream* os) {
    *os << c.name;
}

class Orientations : public ::testing::TestWithParam<OrientationCase> {};

TEST_P(Orientations, LoadsWithTheFilesOwnGeometry) {
    const auto s = make_series(small_spec(GetParam().orientation, GetParam().feet_first));
    const auto loaded = load_dir(*s);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    expect_matches_phantom(*loaded, *s);
    EXPECT_EQ(loaded->series_uid, s->gen.series_uid);
    EXPECT_EQ(loaded->study_uid, s->gen.study_uid);
    EXPECT_EQ(loaded->frame_of_reference_uid, s->gen.frame_of_reference_uid);
    EXPECT_EQ(loaded->modality, "CT");
    EXPECT_EQ(loaded->sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
    EXPECT_EQ(loaded->frame_numbers, std::vector<std::uint32_t>(12, 1));
    EXPECT_TRUE(loaded->warnings.empty());
    // Direction k is +normal, whatever the order of acquisition.
    const Vec3d k = axis_direction(loaded->volume.geometry, 2);
    for (std::size_t a = 0; a < 3; ++a) {
        EXPECT_NEAR(k[a], s->geometry.normal[a], 1e-9);
    }
}

INSTANTIATE_TEST_SUITE_P(
    SeriesLoader, Orientations,
    ::testing::Values(OrientationCase{Orientation::Axial, false, "AxialHeadFirst"},
                      OrientationCase{Orientation::Axial, true, "AxialFeetFirst"},
                      OrientationCase{Orientation::Coronal, false, "CoronalHeadFirst"},
                      OrientationCase{Orientation::Coronal, true, "CoronalFeetFirst"},
                      OrientationCase{Orientation::Sagittal, false, "SagittalHeadFirst"},
                      OrientationCase{Orientation::Sagittal, true, "SagittalFeetFirst"},
                      OrientationCase{Orientation::Oblique, false, "ObliqueHeadFirst"},
                      OrientationCase{Orientation::Oblique, true, "ObliqueFeetFirst"}),
    [](const auto& test) { return std::string(test.param.name); });

TEST(SeriesLoader, ExplicitFileListInAnyOrderAndAnyThreadCount) {
    const auto s = make_series();
    std::vector<fs::path> files(s->gen.files.rbegin(), s->gen.files.rend());
    std::swap(files[2], files[9]);
    for (const unsigned threads : {1U, 2U, 5U}) {
        LoadOptions options;
        options.threads = threads;
        const auto loaded = load_series(files, options);
        ASSERT_TRUE(loaded.ok()) << loaded.error().message;
        expect_matches_phantom(*loaded, *s);
        for (std::size_t k = 0; k < 12; ++k) {
            EXPECT_EQ(loaded->files[k], s->gen.files[k]);
        }
    }
}

TEST(SeriesLoader, ReportsProgressPerFile) {
    const auto s = make_series();
    std::vector<std::pair<std::size_t, std::size_t>> calls;
    LoadOptions options;
    options.progress = [&](std::size_t done, std::size_t total) {
        calls.emplace_back(done, total);
    };
    ASSERT_TRUE(load_dir(*s, options).ok());
    ASSERT_EQ(calls.size(), 12U);
    for (std::size_t c = 0; c < calls.size(); ++c) {
        EXPECT_EQ(calls[c], std::make_pair(c + 1, std::size_t{12}));
    }
}

TEST(SeriesLoader, SingleSliceUsesSliceThicknessAndNormal) {
    auto spec = small_spec(Orientation::Coronal);
    spec.slices = 1;
    const auto s = make_series(spec);
    const auto loaded = load_dir(*s);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    expect_matches_phantom(*loaded, *s);
    EXPECT_NEAR(loaded->volume.geometry.spacing[2], 2.5, 1e-9);
}

// --- transfer syntaxes and pixel formats ----------------------------------------------------

TEST(SeriesLoader, ImplicitVrLittleEndian) {
    auto spec = small_spec(Orientation::Sagittal);
    spec.transfer_syntax = phantom::TransferSyntax::ImplicitLittle;
    const auto s = make_series(spec);
    const auto loaded = load_dir(*s);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    expect_matches_phantom(*loaded, *s);
}

TEST(SeriesLoader, ExplicitVrBigEndian) {
    const auto s = make_series(small_spec(Orientation::Oblique));
    for (const auto& file : s->gen.files) {
        edit(
            file, [](DcmDataset&) {}, EXS_BigEndianExplicit);
    }
    const auto loaded = load_dir(*s);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    expect_matches_phantom(*loaded, *s);
}

struct Compression {
    E_TransferSyntax xfer;
    const char* name;
};

/// Re-encodes the (uncompressed, 16-bit) pixel data of `dataset` in JPEG 2000 with OpenJPEG's
/// encoder (DCMTK 3.6.7 has no JPEG 2000 codec): every frame split into `fragments_per_frame`
/// fragments, with or without a Basic Offset Table; irreversible (lossy) for EXS_JPEG2000.
/// `unsigned_codestream`: mark the codestream unsigned whatever PixelRepresentation says.
void compress_j2k(DcmDataset& dataset, E_TransferSyntax xfer, std::size_t fragments_per_frame = 3,
                  bool offset_table = true, bool unsigned_codestream = false) {
    Uint16 rows = 0;
    Uint16 columns = 0;
    Uint16 bits_stored = 0;
    Uint16 representation = 0;
    check(dataset.findAndGetUint16(DCM_Rows, rows), "Rows");
    check(dataset.findAndGetUint16(DCM_Columns, columns), "Columns");
    check(dataset.findAndGetUint16(DCM_BitsStored, bits_stored), "BitsStored");
    check(dataset.findAndGetUint16(DCM_PixelRepresentation, representation), "PixelRep");
    const std::vector<Uint16> pixels = stored_pixels(dataset);
    const std::size_t per_frame = std::size_t{rows} * columns;
    std::vector<std::vector<Uint8>> items;
    std::vector<Uint8> table;
    std::size_t offset = 0;
    for (std::size_t start = 0; start < pixels.size(); start += per_frame) {
        std::vector<std::int32_t> samples;
        for (std::size_t p = start; p < start + per_frame; ++p) {
            const auto v = static_cast<std::int32_t>(pixels[p] & ((1U << bits_stored) - 1U));
            const std::int32_t sign = representation == 1 ? (1 << (bits_stored - 1)) : 0;
            samples.push_back((v ^ sign) - sign);
        }
        auto stream = test::encode_j2k(samples, columns, rows,
                                       {.precision = bits_stored,
                                        .is_signed = representation == 1 && !unsigned_codestream,
                                        .lossy = xfer == EXS_JPEG2000});
        if (stream.size() % 2 != 0) {
            stream.push_back(0); // items have even lengths
        }
        for (int b = 0; b < 4; ++b) {
            table.push_back(static_cast<Uint8>(offset >> (8U * static_cast<unsigned>(b))));
        }
        const std::size_t part = (stream.size() / fragments_per_frame + 1) & ~std::size_t{1};
        for (std::size_t from = 0; from < stream.size(); from += part) {
            const std::size_t to = std::min(stream.size(), from + part);
            items.emplace_back(stream.begin() + static_cast<std::ptrdiff_t>(from),
                               stream.begin() + static_cast<std::ptrdiff_t>(to));
            offset += 8 + (to - from);
        }
    }
    auto* sequence = new DcmPixelSequence(DCM_PixelSequenceTag);
    auto* bot = new DcmPixelItem(DCM_PixelItemTag);
    if (offset_table) {
        check(bot->putUint8Array(table.data(), static_cast<Uint32>(table.size())), "table");
    }
    check(sequence->insert(bot), "offset table");
    for (const auto& bytes : items) {
        auto* fragment = new DcmPixelItem(DCM_PixelItemTag);
        check(fragment->putUint8Array(bytes.data(), static_cast<Uint32>(bytes.size())), "item");
        check(sequence->insert(fragment), "fragment");
    }
    check(dataset.findAndDeleteElement(DCM_PixelData), "delete PixelData");
    auto* pixel_data = new DcmPixelData(DCM_PixelData);
    pixel_data->putOriginalRepresentation(xfer, nullptr, sequence);
    check(dataset.insert(pixel_data, true), "insert PixelData");
}

/// Re-encodes a loaded data set in a lossless compressed transfer syntax (in place).
void compress(DcmDataset& dataset, E_TransferSyntax xfer) {
    if (xfer == EXS_JPEG2000LosslessOnly || xfer == EXS_JPEG2000) {
        compress_j2k(dataset, xfer);
        return;
    }
    static std::once_flag once;
    std::call_once(once, [] {
        DJEncoderRegistration::registerCodecs();
        DJLSEncoderRegistration::registerCodecs();
        DcmRLEEncoderRegistration::registerCodecs();
    });
    const DJ_RPLossless jpeg;
    const DJLSRepresentationParameter jpeg_ls(2, OFTrue);
    const DcmRLERepresentationParameter rle;
    const DcmRepresentationParameter* parameter = &rle;
    if (xfer == EXS_JPEGProcess14SV1) {
        parameter = &jpeg;
    } else if (xfer == EXS_JPEGLSLossless) {
        parameter = &jpeg_ls;
    }
    check(dataset.chooseRepresentation(xfer, parameter), "compress");
}

void PrintTo(const Compression& c, std::ostream* os) {
    *os << c.name;
}

class CompressedSyntaxes : public ::testing::TestWithParam<Compression> {};

TEST_P(CompressedSyntaxes, DecodeToTheSameVolume) {
    const auto s = make_series(small_spec(Orientation::Axial, true));
    const E_TransferSyntax xfer = GetParam().xfer;
    for (const auto& file : s->gen.files) {
        DcmFileFormat ff;
        check(ff.loadFile(file.c_str()), "load");
        check(ff.loadAllDataIntoMemory(), "load");
        compress(*ff.getDataset(), xfer);
        check(ff.saveFile(file.c_str(), xfer), "save");
    }
    const auto loaded = load_dir(*s);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    expect_matches_phantom(*loaded, *s);
}

INSTANTIATE_TEST_SUITE_P(SeriesLoader, CompressedSyntaxes,
                         ::testing::Values(Compression{EXS_JPEGProcess14SV1, "JpegLossless"},
                                           Compression{EXS_JPEGLSLossless, "JpegLsLossless"},
                                           Compression{EXS_RLELossless, "Rle"},
                                           Compression{EXS_JPEG2000LosslessOnly, "Jpeg2000"}),
                         [](const auto& test) { return std::string(test.param.name); });

/// Rewrites every file's pixel data from its HU values (the phantom stores HU + 1024).
void rewrite_pixels(const Series& s,
                    const std::function<void(DcmDataset&, const std::vector<int>&)>& write) {
    for (const auto& file : s.gen.files) {
        edit(file, [&](DcmDataset& dataset) {
            std::vector<int> hu;
            for (const Uint16 v : stored_pixels(dataset)) {
                hu.push_back(static_cast<int>(v) - 1024);
            }
            check(dataset.findAndDeleteElement(DCM_PixelData), "delete PixelData");
            write(dataset, hu);
        });
    }
}

TEST(SeriesLoader, Signed12BitsWithGarbageAboveHighBit) {
    const auto s = make_series(small_spec(Orientation::Coronal));
    rewrite_pixels(*s, [](DcmDataset& dataset, const std::vector<int>& hu) {
        std::vector<Uint16> stored;
        for (const int v : hu) {
            stored.push_back(static_cast<Uint16>((static_cast<unsigned>(v) & 0x0FFFU) | 0xA000U));
        }
        put_us(dataset, DCM_BitsStored, 12);
        put_us(dataset, DCM_HighBit, 11);
        put_us(dataset, DCM_PixelRepresentation, 1);
        put(dataset, DCM_RescaleIntercept, "0");
        check(dataset.putAndInsertUint16Array(DCM_PixelData, stored.data(), stored.size()),
              "PixelData");
    });
    const auto loaded = load_dir(*s);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    expect_matches_phantom(*loaded, *s);
}

TEST(SeriesLoader, HighBitAboveBitsStored) {
    const auto s = make_series();
    rewrite_pixels(*s, [](DcmDataset& dataset, const std::vector<int>& hu) {
        std::vector<Uint16> stored;
        for (const int v : hu) {
            stored.push_back(static_cast<Uint16>(static_cast<unsigned>(v + 1024) << 2U | 0x3U));
        }
        put_us(dataset, DCM_BitsStored, 12);
        put_us(dataset, DCM_HighBit, 13);
        check(dataset.putAndInsertUint16Array(DCM_PixelData, stored.data(), stored.size()),
              "PixelData");
    });
    const auto loaded = load_dir(*s);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    expect_matches_phantom(*loaded, *s);
}

TEST(SeriesLoader, RescaleSlopeAndIntercept) {
    const auto s = make_series(small_spec(Orientation::Oblique, true));
    rewrite_pixels(*s, [](DcmDataset& dataset, const std::vector<int>& hu) {
        std::vector<Uint16> stored;
        for (const int v : hu) {
            stored.push_back(static_cast<Uint16>((v + 1024) / 2)); // every phantom HU is even
        }
        put(dataset, DCM_RescaleSlope, "2");
        put(dataset, DCM_RescaleIntercept, "-1024");
        check(dataset.putAndInsertUint16Array(DCM_PixelData, stored.data(), stored.size()),
              "PixelData");
    });
    const auto loaded = load_dir(*s);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    expect_matches_phantom(*loaded, *s);
}

TEST(SeriesLoader, EightBitsAllocated) {
    const auto s = make_series(small_spec(Orientation::Sagittal));
    rewrite_pixels(*s, [](DcmDataset& dataset, const std::vector<int>& hu) {
        std::vector<Uint8> stored;
        for (const int v : hu) {
            stored.push_back(static_cast<Uint8>((v + 1000) / 10)); // 0 ... 170
        }
        put_us(dataset, DCM_BitsAllocated, 8);
        put_us(dataset, DCM_BitsStored, 8);
        put_us(dataset, DCM_HighBit, 7);
        put(dataset, DCM_RescaleSlope, "10");
        put(dataset, DCM_RescaleIntercept, "-1000");
        check(dataset.putAndInsertUint8Array(DCM_PixelData, stored.data(), stored.size()),
              "PixelData");
    });
    const auto loaded = load_dir(*s);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    expect_matches_phantom(*loaded, *s);
}

TEST(SeriesLoader, Monochrome1IsRescaledNotInverted) {
    const auto s = make_series();
    for (const auto& file : s->gen.files) {
        edit(file, [](DcmDataset& d) { put(d, DCM_PhotometricInterpretation, "MONOCHROME1"); });
    }
    const auto loaded = load_dir(*s);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    expect_matches_phantom(*loaded, *s);
    ASSERT_EQ(loaded->warnings.size(), 1U);
    EXPECT_THAT(loaded->warnings[0], HasSubstr("MONOCHROME1"));
}

TEST(SeriesLoader, ClampsToInt16AndWarns) {
    const auto s = make_series();
    for (const auto& file : s->gen.files) {
        edit(file, [](DcmDataset& d) { put(d, DCM_RescaleIntercept, "32000"); });
    }
    const auto loaded = load_dir(*s);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    // Air (stored 24) stays in range; soft tissue (stored 1064) and above are clamped.
    std::size_t expected = 0;
    for (const std::int16_t v : loaded->volume.voxels) {
        EXPECT_TRUE(v == 32024 || v == 32174 || v == 32767) << v;
        expected += static_cast<std::size_t>(v == 32767);
    }
    ASSERT_GT(expected, 0U);
    ASSERT_EQ(loaded->warnings.size(), 1U);
    EXPECT_THAT(loaded->warnings[0], HasSubstr(std::to_string(expected) + " voxels"));
    EXPECT_THAT(loaded->warnings[0], HasSubstr("clamped"));
}

/// Saves every file of the series in JPEG 2000 (compress_j2k's options).
void save_all_j2k(const Series& s, E_TransferSyntax xfer, std::size_t fragments = 3,
                  bool offset_table = true) {
    for (const auto& file : s.gen.files) {
        DcmFileFormat ff;
        check(ff.loadFile(file.c_str()), "load");
        check(ff.loadAllDataIntoMemory(), "load");
        compress_j2k(*ff.getDataset(), xfer, fragments, offset_table);
        check(ff.saveFile(file.c_str(), xfer), "save");
    }
}

TEST(SeriesLoader, Jpeg2000SignedWithRescaleSlopeIsExact) {
    const auto s = make_series(small_spec(Orientation::Oblique, true));
    rewrite_pixels(*s, [](DcmDataset& dataset, const std::vector<int>& hu) {
        std::vector<Uint16> stored;
        for (const int v : hu) {
            stored.push_back(static_cast<Uint16>(static_cast<std::int16_t>((v - 24) / 2)));
        }
        put_us(dataset, DCM_PixelRepresentation, 1);
        put(dataset, DCM_RescaleSlope, "2");
        put(dataset, DCM_RescaleIntercept, "24");
        check(dataset.putAndInsertUint16Array(DCM_PixelData, stored.data(), stored.size()),
              "PixelData");
    });
    save_all_j2k(*s, EXS_JPEG2000LosslessOnly, 1, false);
    const auto loaded = load_dir(*s);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    expect_matches_phantom(*loaded, *s);
    ASSERT_EQ(loaded->how_taken.size(), 1U);
    EXPECT_THAT(loaded->how_taken[0], HasSubstr("JPEG 2000 Image Compression (Lossless Only) "
                                                "1.2.840.10008.1.2.4.90, 12 images: decoded "
                                                "with OpenJPEG"));
}

TEST(SeriesLoader, Jpeg2000SignednessUnlikeTheHeaderFollowsTheHeaderAndWarns) {
    // PixelRepresentation 1 but unsigned 16-bit codestreams (an encoder's mistake seen in the
    // wild): the values (all below 32768 here) are taken as the header says, with a warning.
    const auto s = make_series();
    for (const auto& file : s->gen.files) {
        edit(
            file,
            [](DcmDataset& d) {
                put_us(d, DCM_PixelRepresentation, 1);
                compress_j2k(d, EXS_JPEG2000LosslessOnly, 1, true, true);
            },
            EXS_JPEG2000LosslessOnly);
    }
    const auto loaded = load_dir(*s);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    expect_matches_phantom(*loaded, *s);
    ASSERT_EQ(loaded->warnings.size(), 1U);
    EXPECT_THAT(loaded->warnings[0], HasSubstr("the JPEG 2000 codestreams of 12 images are "
                                               "unsigned while PixelRepresentation says signed"));
}

TEST(SeriesLoader, Jpeg2000LossyLoadsCloseToTheTruthAndSaysLossy) {
    const auto s = make_series();
    save_all_j2k(*s, EXS_JPEG2000, 2);
    const auto loaded = load_dir(*s);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    EXPECT_EQ(loaded->volume.geometry.dims[2], 12U);
    ASSERT_EQ(loaded->how_taken.size(), 1U);
    EXPECT_THAT(loaded->how_taken[0],
                HasSubstr("JPEG 2000 Image Compression 1.2.840.10008.1.2.4.91"));
    EXPECT_THAT(loaded->how_taken[0], HasSubstr("(lossy compression)"));
}

TEST(SeriesLoader, Jpeg2000CorruptCodestreamNamesTheFile) {
    const auto s = make_series();
    const fs::path& file = s->gen.files[3];
    {
        DcmFileFormat ff;
        check(ff.loadFile(file.c_str()), "load");
        check(ff.loadAllDataIntoMemory(), "load");
        auto* sequence = new DcmPixelSequence(DCM_PixelSequenceTag);
        check(sequence->insert(new DcmPixelItem(DCM_PixelItemTag)), "offset table");
        auto* fragment = new DcmPixelItem(DCM_PixelItemTag);
        const std::array<Uint8, 16> junk{0xFF, 0x4F, 0xFF, 0x51};
        check(fragment->putUint8Array(junk.data(), junk.size()), "fragment");
        check(sequence->insert(fragment), "fragment");
        auto* pixel_data = new DcmPixelData(DCM_PixelData);
        pixel_data->putOriginalRepresentation(EXS_JPEG2000LosslessOnly, nullptr, sequence);
        check(ff.getDataset()->insert(pixel_data, true), "insert PixelData");
        check(ff.saveFile(file.c_str(), EXS_JPEG2000LosslessOnly), "save");
    }
    const auto loaded = load_dir(*s);
    ASSERT_FALSE(loaded.ok());
    EXPECT_THAT(loaded.error().message, HasSubstr("cannot decode the JPEG 2000 pixel data: "
                                                  "OpenJPEG: cannot read the codestream header"));
    EXPECT_THAT(loaded.error().message, HasSubstr(s->name(3)));
}

TEST(SeriesLoader, Jpeg2000ColourIsRefusedWithAClearError) {
    const auto s = make_series();
    edit(
        s->gen.files[5],
        [&](DcmDataset& d) {
            const std::size_t n = static_cast<std::size_t>(s->spec.rows * s->spec.cols);
            std::vector<std::int32_t> rgb(n * 3, 100);
            const auto stream = test::encode_j2k(rgb, static_cast<unsigned>(s->spec.cols),
                                                 static_cast<unsigned>(s->spec.rows),
                                                 {.precision = 16, .components = 3});
            auto* sequence = new DcmPixelSequence(DCM_PixelSequenceTag);
            check(sequence->insert(new DcmPixelItem(DCM_PixelItemTag)), "offset table");
            auto* fragment = new DcmPixelItem(DCM_PixelItemTag);
            check(fragment->putUint8Array(stream.data(), static_cast<Uint32>(stream.size())),
                  "fragment");
            check(sequence->insert(fragment), "fragment");
            check(d.findAndDeleteElement(DCM_PixelData), "delete");
            auto* pixel_data = new DcmPixelData(DCM_PixelData);
            pixel_data->putOriginalRepresentation(EXS_JPEG2000LosslessOnly, nullptr, sequence);
            check(d.insert(pixel_data, true), "insert PixelData");
        },
        EXS_JPEG2000LosslessOnly);
    const auto loaded = load_dir(*s);
    ASSERT_FALSE(loaded.ok());
    EXPECT_THAT(loaded.error().message, HasSubstr(s->name(5)));
    EXPECT_THAT(loaded.error().message, HasSubstr("3 components (colour or a multiple component "
                                                  "transform)"));
}

// --- refusals ----------------------------------------------------------------------------

TEST(SeriesLoader, DuplicatePositionNamesBothInstances) {
    const auto s = make_series();
    const Vec3d p3 = position_of(s->gen.files[3]);
    edit(s->gen.files[7], [&](DcmDataset& d) { put(d, DCM_ImagePositionPatient, ds(p3)); });
    const auto loaded = load_dir(*s);
    ASSERT_FALSE(loaded.ok());
    const std::string& m = loaded.error().message;
    EXPECT_THAT(m, HasSubstr("duplicate slice positions"));
    EXPECT_THAT(m, HasSubstr(s->name(3) + " [" + s->gen.sop_instance_uids[3] + "]"));
    EXPECT_THAT(m, HasSubstr(s->name(7) + " [" + s->gen.sop_instance_uids[7] + "]"));
    EXPECT_THAT(m, HasSubstr(s->gen.series_uid));
}

TEST(SeriesLoader, MissingSliceNamesItsNeighboursAndTheSpacings) {
    const auto s = make_series();
    fs::remove(s->gen.files[5]);
    const auto loaded = load_dir(*s);
    ASSERT_FALSE(loaded.ok());
    const std::string& m = loaded.error().message;
    EXPECT_THAT(m, HasSubstr("missing slices or non-uniform slice spacing"));
    EXPECT_THAT(m, HasSubstr("median spacing 2.5 mm"));
    EXPECT_THAT(m, HasSubstr(s->name(4) + " [" + s->gen.sop_instance_uids[4] + "] and " +
                             s->name(6) + " [" + s->gen.sop_instance_uids[6] +
                             "] are 5 mm apart (1 slice missing?)"));
}

TEST(SeriesLoader, SpacingToleranceIsConfigurable) {
    const auto s = make_series();
    Vec3d p = position_of(s->gen.files[6]);
    for (std::size_t a = 0; a < 3; ++a) {
        p[a] += 0.1 * s->geometry.normal[a]; // 4 % of the 2.5 mm spacing
    }
    edit(s->gen.files[6], [&](DcmDataset& d) { put(d, DCM_ImagePositionPatient, ds(p)); });
    const auto loaded = load_dir(*s);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    LoadOptions strict;
    strict.spacing_tolerance = 0.02;
    const auto refused = load_dir(*s, strict);
    ASSERT_FALSE(refused.ok());
    EXPECT_THAT(refused.error().message, HasSubstr("non-uniform slice spacing"));
    EXPECT_THAT(refused.error().message, HasSubstr(s->name(6)));
}

TEST(SeriesLoader, MixedOrientationNamesTheOddInstance) {
    const auto s = make_series();
    edit(s->gen.files[4],
         [](DcmDataset& d) { put(d, DCM_ImageOrientationPatient, "1\\0\\0\\0\\0\\-1"); });
    const auto loaded = load_dir(*s);
    ASSERT_FALSE(loaded.ok());
    EXPECT_THAT(loaded.error().message, HasSubstr("mixed image orientations"));
    EXPECT_THAT(loaded.error().message,
                HasSubstr("[1\\0\\0\\0\\0\\-1] in 1 image (" + s->name(4) + " ["));
}

TEST(SeriesLoader, DifferentRowsNameTheOddInstance) {
    const auto s = make_series();
    edit(s->gen.files[2], [](DcmDataset& d) {
        std::vector<Uint16> pixels = stored_pixels(d);
        pixels.resize(pixels.size() - 32);
        put_us(d, DCM_Rows, 23);
        check(d.putAndInsertUint16Array(DCM_PixelData, pixels.data(), pixels.size()), "pixels");
    });
    const auto loaded = load_dir(*s);
    ASSERT_FALSE(loaded.ok());
    EXPECT_THAT(loaded.error().message, HasSubstr("images of different sizes"));
    EXPECT_THAT(loaded.error().message, HasSubstr("[23 x 32] in 1 file (" + s->name(2) + ")"));
}

TEST(SeriesLoader, DifferentFrameOfReferenceIsRefused) {
    const auto s = make_series();
    const std::string other = new_uid();
    edit(s->gen.files[6], [&](DcmDataset& d) { put(d, DCM_FrameOfReferenceUID, other); });
    const auto loaded = load_dir(*s);
    ASSERT_FALSE(loaded.ok());
    EXPECT_THAT(loaded.error().message, HasSubstr("different frames of reference"));
    EXPECT_THAT(loaded.error().message, HasSubstr("[" + other + "] in 1 file (" + s->name(6)));
    EXPECT_THAT(loaded.error().message, HasSubstr(s->gen.frame_of_reference_uid));
}

/// Shears the stack: slice k moves k * spacing * tan(angle) along the column direction.
void shear(const Series& s, double angle_deg) {
    const double offset = s.geometry.slice_spacing * std::tan(angle_deg * std::numbers::pi / 180.0);
    for (std::size_t k = 0; k < s.gen.files.size(); ++k) {
        Vec3d p = position_of(s.gen.files[k]);
        for (std::size_t a = 0; a < 3; ++a) {
            p[a] += static_cast<double>(k) * offset * s.geometry.col_dir[a];
        }
        edit(s.gen.files[k], [&](DcmDataset& d) { put(d, DCM_ImagePositionPatient, ds(p)); });
    }
}

TEST(SeriesLoader, GantryTiltIsRefusedWithItsAngle) {
    const auto s = make_series(small_spec(Orientation::Oblique));
    shear(*s, 10.0);
    const auto loaded = load_dir(*s);
    ASSERT_FALSE(loaded.ok());
    EXPECT_THAT(loaded.error().message, HasSubstr("gantry tilt"));
    EXPECT_THAT(loaded.error().message, HasSubstr("at 10 degrees"));
    EXPECT_THAT(loaded.error().message, HasSubstr(s->name(0)));
    EXPECT_THAT(loaded.error().message, HasSubstr(s->name(11)));
}

TEST(SeriesLoader, SmallTiltLoadsAlongTheSliceLine) {
    const auto s = make_series();
    shear(*s, 0.3);
    const auto loaded = load_dir(*s);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    const Geometry& g = loaded->volume.geometry;
    for (std::size_t k = 0; k < 12; ++k) {
        const Vec3d expected = position_of(loaded->files[k]);
        const Vec3d p = voxel_to_patient(g, 0, 0, static_cast<double>(k));
        for (std::size_t a = 0; a < 3; ++a) {
            EXPECT_NEAR(p[a], expected[a], 1e-3);
        }
    }
    EXPECT_GT(std::abs(axis_direction(g, 2)[1]), 1e-3) << "direction k follows the shear";
}

TEST(SeriesLoader, MixedSeriesNameBothSeries) {
    const auto s = make_series();
    const std::string other = new_uid();
    edit(s->gen.files[0], [&](DcmDataset& d) { put(d, DCM_SeriesInstanceUID, other); });
    const auto loaded = load_dir(*s);
    ASSERT_FALSE(loaded.ok());
    EXPECT_THAT(loaded.error().message, HasSubstr("more than one series"));
    EXPECT_THAT(loaded.error().message, HasSubstr("[" + s->gen.series_uid + "] in 11 files"));
    EXPECT_THAT(loaded.error().message, HasSubstr("[" + other + "] in 1 file (" + s->name(0)));
}

TEST(SeriesLoader, SameInstanceTwiceIsRefused) {
    const auto s = make_series();
    fs::copy_file(s->gen.files[1], series_dir(*s) / "copy.dcm");
    const auto loaded = load_dir(*s);
    ASSERT_FALSE(loaded.ok());
    EXPECT_THAT(loaded.error().message, HasSubstr("same instance"));
    EXPECT_THAT(loaded.error().message, HasSubstr(s->gen.sop_instance_uids[1]));
    EXPECT_THAT(loaded.error().message, HasSubstr("copy.dcm"));
}

TEST(SeriesLoader, DirectorySkipsWhatIsNotAnImageButAFileListDoesNot) {
    const auto s = make_series();
    const fs::path text = series_dir(*s) / "notes.txt";
    std::ofstream(text) << "not DICOM at all\n";
    const fs::path report = series_dir(*s) / "report.dcm";
    {
        DcmFileFormat ff;
        DcmDataset& d = *ff.getDataset();
        put(d, DCM_SOPClassUID, "1.2.840.10008.5.1.4.1.1.88.11"); // Basic Text SR
        put(d, DCM_SOPInstanceUID, new_uid());
        put(d, DCM_SeriesInstanceUID, new_uid());
        put(d, DCM_Modality, "SR");
        check(ff.saveFile(report.c_str(), EXS_LittleEndianExplicit), "save SR");
    }
    fs::create_directory(series_dir(*s) / "subdir");
    const auto loaded = load_dir(*s);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    expect_matches_phantom(*loaded, *s);

    std::vector<fs::path> files = s->gen.files;
    files.push_back(text);
    auto refused = load_series(files);
    ASSERT_FALSE(refused.ok());
    EXPECT_THAT(refused.error().message, HasSubstr("notes.txt: not a DICOM file"));
    files.back() = report;
    refused = load_series(files);
    ASSERT_FALSE(refused.ok());
    EXPECT_THAT(refused.error().message, HasSubstr("report.dcm: not a DICOM image"));
}

TEST(SeriesLoader, EmptyOrMissingInputIsAnError) {
    const TempDir dir;
    EXPECT_THAT(load_series_dir(dir.path()).error().message, HasSubstr("no files"));
    EXPECT_THAT(load_series_dir(dir.path() / "nope").error().message, HasSubstr("not a directory"));
    EXPECT_THAT(load_series({}).error().message, HasSubstr("no files"));
    std::ofstream(dir.path() / "a.txt") << "x";
    EXPECT_THAT(load_series_dir(dir.path()).error().message, HasSubstr("no DICOM images"));
}

// --- enhanced multi-frame ----------------------------------------------------------------

/// An Enhanced CT Image Storage object holding the phantom's slices in `order` (frame f is
/// phantom slice order[f]); `orientation_override` sets a per-frame orientation for one frame.
fs::path write_enhanced(const Series& s, const std::vector<int>& order, const fs::path& file,
                        int odd_orientation_frame = -1,
                        E_TransferSyntax xfer = EXS_LittleEndianExplicit) {
    DcmFileFormat out;
    DcmDataset& d = *out.getDataset();
    put(d, DCM_SOPClassUID, "1.2.840.10008.5.1.4.1.1.2.1");
    put(d, DCM_SOPInstanceUID, new_uid());
    put(d, DCM_StudyInstanceUID, s.gen.study_uid);
    put(d, DCM_SeriesInstanceUID, new_uid());
    put(d, DCM_FrameOfReferenceUID, s.gen.frame_of_reference_uid);
    put(d, DCM_Modality, "CT");
    put_us(d, DCM_Rows, static_cast<Uint16>(s.spec.rows));
    put_us(d, DCM_Columns, static_cast<Uint16>(s.spec.cols));
    put_us(d, DCM_SamplesPerPixel, 1);
    put(d, DCM_PhotometricInterpretation, "MONOCHROME2");
    put_us(d, DCM_BitsAllocated, 16);
    put_us(d, DCM_BitsStored, 16);
    put_us(d, DCM_HighBit, 15);
    put_us(d, DCM_PixelRepresentation, 0);
    put(d, DCM_NumberOfFrames, std::to_string(order.size()));
    const auto& g = s.geometry;
    const std::string orientation = ds({g.row_dir[0], g.row_dir[1], g.row_dir[2]}) + "\\" +
                                    ds({g.col_dir[0], g.col_dir[1], g.col_dir[2]});
    DcmItem* shared = nullptr;
    check(d.findOrCreateSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, -2), "shared");
    DcmItem* item = nullptr;
    check(shared->findOrCreateSequenceItem(DCM_PlaneOrientationSequence, item, -2), "orient");
    put(*item, DCM_ImageOrientationPatient, orientation);
    check(shared->findOrCreateSequenceItem(DCM_PixelMeasuresSequence, item, -2), "measures");
    put(*item, DCM_PixelSpacing,
        phantom::format_ds(g.pixel_spacing) + "\\" + phantom::format_ds(g.pixel_spacing));
    put(*item, DCM_SliceThickness, phantom::format_ds(g.slice_spacing));
    check(shared->findOrCreateSequenceItem(DCM_PixelValueTransformationSequence, item, -2),
          "rescale");
    put(*item, DCM_RescaleIntercept, "-1024");
    put(*item, DCM_RescaleSlope, "1");
    put(*item, DCM_RescaleType, "HU");
    std::vector<Uint16> pixels;
    for (std::size_t f = 0; f < order.size(); ++f) {
        const fs::path& source = s.gen.files[static_cast<std::size_t>(order[f])];
        DcmItem* frame = nullptr;
        check(d.findOrCreateSequenceItem(DCM_PerFrameFunctionalGroupsSequence, frame, -2),
              "per frame");
        check(frame->findOrCreateSequenceItem(DCM_PlanePositionSequence, item, -2), "position");
        put(*item, DCM_ImagePositionPatient, ds(position_of(source)));
        if (static_cast<int>(f) == odd_orientation_frame) {
            check(frame->findOrCreateSequenceItem(DCM_PlaneOrientationSequence, item, -2),
                  "orientation");
            put(*item, DCM_ImageOrientationPatient, "0\\1\\0\\0\\0\\-1");
        }
        DcmFileFormat ff;
        check(ff.loadFile(source.c_str()), "load");
        const auto frame_pixels = stored_pixels(*ff.getDataset());
        pixels.insert(pixels.end(), frame_pixels.begin(), frame_pixels.end());
    }
    check(d.putAndInsertUint16Array(DCM_PixelData, pixels.data(), pixels.size()), "pixels");
    if (xfer != EXS_LittleEndianExplicit) {
        compress(d, xfer);
    }
    check(out.saveFile(file.c_str(), xfer), "save enhanced");
    return file;
}

TEST(SeriesLoader, EnhancedCtLoadsFromFunctionalGroupsInAnyFrameOrder) {
    const std::vector<int> order{5, 0, 11, 3, 8, 1, 10, 2, 7, 4, 9, 6};
    for (const bool feet_first : {false, true}) {
        for (const E_TransferSyntax xfer :
             {EXS_LittleEndianExplicit, EXS_RLELossless, EXS_JPEGLSLossless, EXS_JPEGProcess14SV1,
              EXS_JPEG2000LosslessOnly}) {
            SCOPED_TRACE(std::string(feet_first ? "feet first, " : "head first, ") +
                         DcmXfer(xfer).getXferName());
            const auto s = make_series(small_spec(Orientation::Oblique, feet_first));
            const fs::path file =
                write_enhanced(*s, order, s->dir.path() / "enhanced.dcm", -1, xfer);
            const auto loaded = load_series({file});
            ASSERT_TRUE(loaded.ok()) << loaded.error().message;
            std::vector<int> slice_of;
            for (const std::uint32_t frame : loaded->frame_numbers) {
                slice_of.push_back(order[frame - 1]);
            }
            expect_matches_phantom(*loaded, *s, slice_of);
            for (std::size_t k = 0; k < 12; ++k) {
                EXPECT_EQ(loaded->files[k], file);
            }
            EXPECT_EQ(loaded->sop_class_uid, "1.2.840.10008.5.1.4.1.1.2.1");
        }
    }
}

TEST(SeriesLoader, EnhancedCtWithTwoFramesAtOnePositionIsRefused) {
    const auto s = make_series();
    const fs::path file =
        write_enhanced(*s, {0, 1, 2, 3, 4, 4, 5, 6}, s->dir.path() / "enhanced.dcm");
    const auto loaded = load_series({file});
    ASSERT_FALSE(loaded.ok());
    EXPECT_THAT(loaded.error().message, HasSubstr("duplicate slice positions"));
    EXPECT_THAT(loaded.error().message, HasSubstr("enhanced.dcm frame 5, enhanced.dcm frame 6"));
}

TEST(SeriesLoader, EnhancedCtPerFrameOrientationOverridesTheSharedOne) {
    const auto s = make_series();
    const fs::path file = write_enhanced(*s, {0, 1, 2, 3, 4, 5}, s->dir.path() / "enhanced.dcm", 2);
    const auto loaded = load_series({file});
    ASSERT_FALSE(loaded.ok());
    EXPECT_THAT(loaded.error().message, HasSubstr("mixed image orientations"));
    EXPECT_THAT(loaded.error().message, HasSubstr("in 1 image (enhanced.dcm frame 3)"));
}

TEST(SeriesLoader, Jpeg2000MultiFrameWithoutOffsetTableFindsFramesByTheirMarkers) {
    const auto s = make_series(small_spec(Orientation::Sagittal));
    const std::vector<int> order{3, 1, 0, 2, 4, 5, 6, 7, 11, 10, 9, 8};
    const fs::path file = write_enhanced(*s, order, s->dir.path() / "enhanced.dcm");
    for (const unsigned threads : {1U, 3U}) {
        edit(
            file,
            [](DcmDataset& d) {
                if (d.getOriginalXfer() != EXS_JPEG2000LosslessOnly) {
                    compress_j2k(d, EXS_JPEG2000LosslessOnly, 2, false);
                }
            },
            EXS_JPEG2000LosslessOnly);
        LoadOptions options;
        options.threads = threads;
        const auto loaded = load_series({file}, options);
        ASSERT_TRUE(loaded.ok()) << loaded.error().message;
        std::vector<int> slice_of;
        for (const std::uint32_t frame : loaded->frame_numbers) {
            slice_of.push_back(order[frame - 1]);
        }
        expect_matches_phantom(*loaded, *s, slice_of);
        EXPECT_THAT(loaded->how_taken.at(0), HasSubstr("12 images in 1 file: decoded with "
                                                       "OpenJPEG"));
    }
}

} // namespace
} // namespace segnode::dicom
