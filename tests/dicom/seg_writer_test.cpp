// The SEG writer: BINARY bit packing against hand-computed bytes (frames that start inside a
// byte, 61 x 67 frames), sRGB -> CIELab of known colours, the refusals of write_seg, and the
// attributes of a written file read back with DCMTK. The independent round trip (dciodvfy,
// pydicom) is tests/integration/test_seg_writer.py.
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "phantom.hpp"
#include "seg_pixels.hpp"
#include "segnode/core/version.hpp"
#include "segnode/dicom/environment.hpp"
#include "segnode/dicom/seg_writer.hpp"
#include "segnode/dicom/series_loader.hpp"
#include "test_util.hpp"

#include <ctime>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <random>
#include <string>
#include <vector>

namespace segnode::dicom {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// ------------------------------------------------------------------------- bit packing

LabelMap label_map(std::size_t nx, std::size_t ny, std::size_t nz) {
    Geometry g;
    g.dims = {nx, ny, nz};
    return make_volume<std::uint8_t>(g, 0);
}

std::vector<std::uint8_t> pack(const LabelMap& labels, const std::vector<std::uint8_t>& order,
                               std::size_t* frame_count = nullptr) {
    const auto frames = detail::plan_frames(detail::take_census(labels), order);
    if (frame_count != nullptr) {
        *frame_count = frames.size();
    }
    std::vector<std::uint8_t> out(
        detail::packed_size(frames.size(), labels.geometry.dims[1], labels.geometry.dims[0]),
        0xAA); // pack_frames must clear it
    detail::pack_frames(labels, frames, out.data(), out.size());
    return out;
}

TEST(SegPacking, ThreeByThreeFramesRunOnWithoutPadding) {
    // One slice, 3 x 3, labels 1 at (0,0), 2 at the centre, 3 at the last pixel: three frames
    // of 9 bits. Frame f starts at bit 9 f: bits 0, 9 + 4 = 13 and 18 + 8 = 26 are set, i.e.
    // byte 0 bit 0, byte 1 bit 5, byte 3 bit 2; 27 bits -> 4 bytes (already even).
    LabelMap labels = label_map(3, 3, 1);
    labels.at(0, 0, 0) = 1;
    labels.at(1, 1, 0) = 2;
    labels.at(2, 2, 0) = 3;
    EXPECT_EQ(pack(labels, {1, 2, 3}), (std::vector<std::uint8_t>{0x01, 0x20, 0x00, 0x04}));
}

TEST(SegPacking, SixtyOneBySixtySevenOddFrameCount) {
    // 61 rows x 67 columns = 4087 bits per frame (odd). Three slices, label 1 on slices 0 and 2,
    // label 2 on slice 1 -> frames (1,k0), (1,k2), (2,k1): 12261 bits -> 1533 bytes -> 1534.
    LabelMap labels = label_map(67, 61, 3);
    labels.at(0, 0, 0) = 1;   // frame 0 bit 0             -> byte 0 bit 0
    labels.at(66, 60, 0) = 1; // frame 0 bit 4086          -> byte 510 bit 6
    labels.at(0, 0, 2) = 1;   // frame 1 bit 4087          -> byte 510 bit 7
    labels.at(1, 0, 1) = 2;   // frame 2 bit 8174 + 1      -> byte 1021 bit 7
    labels.at(66, 60, 1) = 2; // frame 2 bit 8174 + 4086 = 12260 -> byte 1532 bit 4
    std::size_t frames = 0;
    const auto packed = pack(labels, {1, 2}, &frames);
    EXPECT_EQ(frames, 3U);
    std::vector<std::uint8_t> expected(1534, 0);
    expected[0] = 0x01;
    expected[510] = 0x40 | 0x80;
    expected[1021] = 0x80;
    expected[1532] = 0x10;
    EXPECT_EQ(packed, expected);
}

TEST(SegPacking, FramesOnlyWhereSegmentPresentBySegmentThenSlice) {
    LabelMap labels = label_map(4, 4, 5);
    labels.at(1, 1, 3) = 2;
    labels.at(1, 1, 1) = 1;
    labels.at(2, 2, 4) = 1;
    labels.at(3, 3, 0) = 2;
    const auto frames = detail::plan_frames(detail::take_census(labels), {1, 2});
    ASSERT_EQ(frames.size(), 4U);
    const std::vector<std::pair<int, std::size_t>> got = {{frames[0].segment, frames[0].slice},
                                                          {frames[1].segment, frames[1].slice},
                                                          {frames[2].segment, frames[2].slice},
                                                          {frames[3].segment, frames[3].slice}};
    EXPECT_EQ(got, (std::vector<std::pair<int, std::size_t>>{{1, 1}, {1, 4}, {2, 0}, {2, 3}}));
}

TEST(SegPacking, MatchesBitByBitReferenceOnRandomLabels) {
    // Random labels on an odd-sized grid against the definition of PS3.5 8.1.1, pixel by pixel.
    LabelMap labels = label_map(13, 7, 9);
    std::mt19937 rng(5);
    for (auto& v : labels.voxels) {
        v = static_cast<std::uint8_t>(rng() % 10 < 7 ? 0 : 1 + rng() % 3);
    }
    const auto census = detail::take_census(labels);
    const auto frames = detail::plan_frames(census, {1, 2, 3});
    const auto packed = pack(labels, {1, 2, 3});
    std::size_t bit = 0;
    for (const auto& f : frames) {
        for (std::size_t j = 0; j < 7; ++j) {
            for (std::size_t i = 0; i < 13; ++i, ++bit) {
                const bool set = (packed[bit / 8] >> (bit % 8)) & 1U;
                ASSERT_EQ(set, labels.at(i, j, f.slice) == f.label) << "bit " << bit;
            }
        }
    }
    for (; bit < packed.size() * 8; ++bit) {
        ASSERT_EQ((packed[bit / 8] >> (bit % 8)) & 1U, 0U) << "padding bit " << bit;
    }
}

TEST(SegPacking, CensusRowSpansBoundEachLabelPerSlice) {
    LabelMap labels = label_map(9, 8, 3);
    labels.at(2, 1, 0) = 5;
    labels.at(8, 6, 0) = 5;
    labels.at(0, 3, 2) = 255;
    const auto census = detail::take_census(labels, 2);
    EXPECT_TRUE(census.anywhere[5]);
    EXPECT_TRUE(census.anywhere[255]);
    EXPECT_FALSE(census.anywhere[1]);
    EXPECT_EQ(census.rows[0][5].begin, 1U);
    EXPECT_EQ(census.rows[0][5].end, 7U);
    EXPECT_TRUE(census.rows[1][5].empty());
    EXPECT_EQ(census.rows[2][255].begin, 3U);
    EXPECT_EQ(census.rows[2][255].end, 4U);
    const auto frames = detail::plan_frames(census, {5, 255});
    ASSERT_EQ(frames.size(), 2U);
    EXPECT_EQ(frames[0].row_begin, 1U);
    EXPECT_EQ(frames[0].row_end, 7U);
    EXPECT_EQ(frames[1].segment, 2);
}

TEST(SegPacking, PiecesOfEightFramesConcatenateToTheWholeStream) {
    // 13 x 7 = 91 bits per frame: only multiples of 8 frames start on a byte boundary. The
    // writer appends PixelData piece by piece; the pieces must give pack_frames' stream.
    LabelMap labels = label_map(13, 7, 9);
    std::mt19937 rng(11);
    for (auto& v : labels.voxels) {
        v = static_cast<std::uint8_t>(rng() % 10 < 6 ? 0 : 1 + rng() % 4);
    }
    const auto frames = detail::plan_frames(detail::take_census(labels), {1, 2, 3, 4});
    ASSERT_GT(frames.size(), 16U);
    const auto whole = pack(labels, {1, 2, 3, 4});
    std::vector<std::uint8_t> joined;
    for (std::size_t first = 0; first < frames.size(); first += 8) {
        const std::size_t count = std::min<std::size_t>(8, frames.size() - first);
        std::vector<std::uint8_t> piece((count * 91 + 7) / 8, 0x55);
        detail::pack_frame_range(labels, frames, first, count, piece.data(), piece.size());
        joined.insert(joined.end(), piece.begin(), piece.end());
    }
    joined.resize(whole.size(), 0); // the even-length padding
    EXPECT_EQ(joined, whole);
}

// ------------------------------------------------------------------------------ CIELab

TEST(SegColour, WhiteIsL100AndNeutral) {
    const auto lab = detail::srgb_to_cielab({255, 255, 255});
    EXPECT_NEAR(lab[0], 100.0, 1e-3);
    EXPECT_NEAR(lab[1], 0.0, 1e-3);
    EXPECT_NEAR(lab[2], 0.0, 1e-3);
    // a = b = 0 -> (0 + 128) * 65535 / 255 = 32896
    EXPECT_EQ(detail::srgb_to_dicom_lab({255, 255, 255}),
              (std::array<std::uint16_t, 3>{65535, 32896, 32896}));
}

TEST(SegColour, BlackIsZero) {
    EXPECT_EQ(detail::srgb_to_dicom_lab({0, 0, 0}),
              (std::array<std::uint16_t, 3>{0, 32896, 32896}));
}

TEST(SegColour, PureRedAndGreenD50) {
    // sRGB primaries in CIELab D50 (Bradford-adapted), as published by B. Lindbloom's
    // calculator: red 54.29 / 80.80 / 69.89, green 87.82 / -79.29 / 80.99.
    const auto red = detail::srgb_to_cielab({255, 0, 0});
    EXPECT_NEAR(red[0], 54.29, 0.05);
    EXPECT_NEAR(red[1], 80.80, 0.05);
    EXPECT_NEAR(red[2], 69.89, 0.05);
    const auto green = detail::srgb_to_cielab({0, 255, 0});
    EXPECT_NEAR(green[0], 87.82, 0.05);
    EXPECT_NEAR(green[1], -79.29, 0.05);
    EXPECT_NEAR(green[2], 80.99, 0.05);
    const auto dicom = detail::srgb_to_dicom_lab({255, 0, 0});
    EXPECT_NEAR(dicom[0], 54.29 * 65535 / 100, 40);
    EXPECT_NEAR(dicom[1], (80.80 + 128) * 65535 / 255, 20);
}

// ------------------------------------------------------------------------- write_seg

using segnode::test::TempDir;

std::vector<SegmentInfo> test_segments() {
    const CodedConcept anatomical{"123037004", "SCT", "Anatomical Structure"};
    return {{1, "Body", anatomical, {"38266002", "SCT", "Entire body"}, {177, 122, 101}},
            {2, "Lung", anatomical, {"39607008", "SCT", "Lung"}, {197, 165, 145}},
            {3, "Bone", anatomical, {"272673000", "SCT", "Bone"}, {241, 214, 145}}};
}

class SegWriter : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(init_dicom_environment().ok());
        phantom::PhantomSpec spec;
        spec.rows = 61;
        spec.cols = 67;
        spec.slices = 5;
        spec.threads = 1;
        phantom::write_ct_series(spec, m_dir.path() / "ct");
        auto loaded = load_series_dir(m_dir.path() / "ct");
        ASSERT_TRUE(loaded.ok()) << loaded.error().message;
        m_series = std::move(loaded.value());
        m_labels = make_volume<std::uint8_t>(m_series.volume.geometry, 0);
        // Body on every slice, lung on slices 1..3, bone on slice 2 only.
        for (std::size_t k = 0; k < 5; ++k) {
            for (std::size_t j = 10; j < 50; ++j) {
                for (std::size_t i = 5; i < 60; ++i) {
                    m_labels.at(i, j, k) = 1;
                }
            }
        }
        for (std::size_t k = 1; k < 4; ++k) {
            m_labels.at(20, 20, k) = 2;
        }
        m_labels.at(30, 30, 2) = 3;
        m_options.algorithm_name = "body";
        m_options.algorithm_version = "1.2.3";
        m_options.now = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
    }

    [[nodiscard]] fs::path out() const { return m_dir.path() / "seg.dcm"; }

    Result<WrittenObject> write(const std::vector<SegmentInfo>& segments) {
        return write_seg(m_series, m_labels, segments, m_options, out());
    }

    TempDir m_dir;
    LoadedSeries m_series;
    LabelMap m_labels;
    DerivedObjectOptions m_options;
};

std::string get(DcmItem& item, const DcmTagKey& tag) {
    OFString value;
    return item.findAndGetOFStringArray(tag, value).good() ? value.c_str() : "<absent>";
}

unsigned long items(DcmItem& item, const DcmTagKey& tag) {
    DcmSequenceOfItems* seq = nullptr;
    return item.findAndGetSequence(tag, seq).good() && seq != nullptr ? seq->card() : 0;
}

TEST_F(SegWriter, NoForegroundWritesNothing) {
    std::fill(m_labels.voxels.begin(), m_labels.voxels.end(), 0);
    const auto r = write(test_segments());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message, "label map has no foreground: no SEG written");
    EXPECT_FALSE(fs::exists(out()));
}

TEST_F(SegWriter, GeometryMismatchIsRefused) {
    LabelMap other = label_map(67, 61, 4);
    auto r = write_seg(m_series, other, test_segments(), m_options, out());
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(r.error().message, HasSubstr("dimensions"));

    LabelMap shifted = m_labels;
    shifted.geometry.origin[2] += 1e-3;
    r = write_seg(m_series, shifted, test_segments(), m_options, out());
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(r.error().message, HasSubstr("origin"));

    LabelMap turned = m_labels;
    turned.geometry.direction[0] = 0.999;
    r = write_seg(m_series, turned, test_segments(), m_options, out());
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(r.error().message, HasSubstr("direction"));
    EXPECT_FALSE(fs::exists(out()));

    LabelMap close = m_labels;
    close.geometry.spacing[0] += 1e-5; // within 1e-4
    EXPECT_TRUE(write_seg(m_series, close, test_segments(), m_options, out()).ok());
}

TEST_F(SegWriter, UndeclaredLabelIsRefused) {
    m_labels.at(0, 0, 0) = 7;
    const auto r = write(test_segments());
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(r.error().message, HasSubstr("label 7 occurs in 1 voxels"));
    EXPECT_FALSE(fs::exists(out()));
}

TEST_F(SegWriter, BadDeclarationsAndOptionsAreRefused) {
    auto segments = test_segments();
    segments[1].label = 1;
    EXPECT_THAT(write(segments).error().message, HasSubstr("declared twice"));
    segments = test_segments();
    segments[0].type.meaning.clear();
    EXPECT_THAT(write(segments).error().message, HasSubstr("codes"));
    segments = test_segments();
    segments[2].label = 0;
    EXPECT_THAT(write(segments).error().message, HasSubstr("background"));
    m_options.content_label = "lower";
    EXPECT_THAT(write(test_segments()).error().message, HasSubstr("content label"));
    m_options.content_label = "SEGNODE";
    m_options.uid_root = "1.2.3.04";
    EXPECT_THAT(write(test_segments()).error().message, HasSubstr("UID root"));
    m_options.uid_root = std::string(50, '1');
    EXPECT_THAT(write(test_segments()).error().message, HasSubstr("characters long"));
    EXPECT_FALSE(fs::exists(out()));
}

TEST_F(SegWriter, EmptySegmentIsLeftOutWithANote) {
    for (auto& v : m_labels.voxels) {
        v = v == 2 ? 1 : v;
    }
    const auto r = write(test_segments());
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->items, 6U); // body on 5 slices + bone on 1
    ASSERT_EQ(r->notes.size(), 2U);
    EXPECT_THAT(r->notes[0], HasSubstr("'Lung' has no voxels"));
    EXPECT_THAT(r->notes[1], HasSubstr("is SEG segment number 2"));
}

TEST_F(SegWriter, WrittenAttributes) {
    m_options.uid_root = "1.2.826.0.1.3680043.10.77";
    const auto r = write(test_segments());
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->items, 9U); // 5 + 3 + 1
    EXPECT_THAT(r->sop_instance_uid, ::testing::StartsWith("1.2.826.0.1.3680043.10.77."));

    DcmFileFormat ff;
    ASSERT_TRUE(ff.loadFile(out().c_str()).good());
    DcmMetaInfo& meta = *ff.getMetaInfo();
    EXPECT_EQ(get(meta, DCM_TransferSyntaxUID), "1.2.840.10008.1.2.1");
    EXPECT_EQ(get(meta, DCM_ImplementationClassUID), implementation_class_uid());
    EXPECT_EQ(get(meta, DCM_MediaStorageSOPInstanceUID), r->sop_instance_uid);
    DcmDataset& ds = *ff.getDataset();
    EXPECT_EQ(get(ds, DCM_SOPClassUID), "1.2.840.10008.5.1.4.1.1.66.4");
    EXPECT_EQ(get(ds, DCM_SeriesInstanceUID), r->series_instance_uid);
    EXPECT_EQ(get(ds, DCM_StudyInstanceUID), m_series.study_uid);
    EXPECT_EQ(get(ds, DCM_FrameOfReferenceUID), m_series.frame_of_reference_uid);
    EXPECT_EQ(get(ds, DCM_PatientID), "PHANTOM001");
    EXPECT_EQ(get(ds, DCM_Modality), "SEG");
    EXPECT_EQ(get(ds, DCM_SegmentationType), "BINARY");
    EXPECT_EQ(get(ds, DCM_ImageType), "DERIVED\\PRIMARY");
    EXPECT_EQ(get(ds, DCM_NumberOfFrames), "9");
    EXPECT_EQ(get(ds, DCM_Rows), "61");
    EXPECT_EQ(get(ds, DCM_Columns), "67");
    EXPECT_EQ(get(ds, DCM_BitsAllocated), "1");
    EXPECT_EQ(get(ds, DCM_LossyImageCompression), "00");
    EXPECT_EQ(get(ds, DCM_SeriesDescription), "segnode body SEG");
    EXPECT_EQ(get(ds, DCM_SoftwareVersions), version_string());
    EXPECT_EQ(get(ds, DCM_ContentCreatorName), "SEGNODE^");
    const std::time_t t = 1700000000;
    std::tm local{};
    localtime_r(&t, &local);
    char date[16];
    std::strftime(date, sizeof date, "%Y%m%d", &local);
    EXPECT_EQ(get(ds, DCM_ContentDate), date);
    EXPECT_EQ(items(ds, DCM_SegmentSequence), 3U);
    EXPECT_EQ(items(ds, DCM_PerFrameFunctionalGroupsSequence), 9U);
    EXPECT_EQ(items(ds, DCM_SharedFunctionalGroupsSequence), 1U);
    EXPECT_EQ(items(ds, DCM_DimensionIndexSequence), 2U);
    EXPECT_EQ(items(ds, DCM_ReferencedSeriesSequence), 1U);

    DcmItem* segment = nullptr;
    ASSERT_TRUE(ds.findAndGetSequenceItem(DCM_SegmentSequence, segment, 1).good());
    EXPECT_EQ(get(*segment, DCM_SegmentNumber), "2");
    EXPECT_EQ(get(*segment, DCM_SegmentLabel), "Lung");
    EXPECT_EQ(get(*segment, DCM_SegmentAlgorithmType), "AUTOMATIC");
    DcmItem* code = nullptr;
    ASSERT_TRUE(
        segment->findAndGetSequenceItem(DCM_SegmentedPropertyTypeCodeSequence, code).good());
    EXPECT_EQ(get(*code, DCM_CodeValue), "39607008");
    DcmItem* algo = nullptr;
    ASSERT_TRUE(
        segment->findAndGetSequenceItem(DCM_SegmentationAlgorithmIdentificationSequence, algo)
            .good());
    EXPECT_EQ(get(*algo, DCM_AlgorithmName), "body");
    EXPECT_EQ(get(*algo, DCM_AlgorithmVersion), "1.2.3");
    ASSERT_TRUE(algo->findAndGetSequenceItem(DCM_AlgorithmFamilyCodeSequence, code).good());
    EXPECT_EQ(get(*code, DCM_CodeValue), "123104");

    // Frame 7 (index 6) is the second lung frame: slice 2.
    DcmItem* frame = nullptr;
    ASSERT_TRUE(ds.findAndGetSequenceItem(DCM_PerFrameFunctionalGroupsSequence, frame, 6).good());
    DcmItem* content = nullptr;
    ASSERT_TRUE(frame->findAndGetSequenceItem(DCM_FrameContentSequence, content).good());
    EXPECT_EQ(get(*content, DCM_DimensionIndexValues), "2\\3");
    DcmItem* source = nullptr;
    DcmItem* derivation = nullptr;
    ASSERT_TRUE(frame->findAndGetSequenceItem(DCM_DerivationImageSequence, derivation).good());
    ASSERT_TRUE(derivation->findAndGetSequenceItem(DCM_SourceImageSequence, source).good());
    EXPECT_EQ(get(*source, DCM_ReferencedSOPInstanceUID), m_series.sop_instance_uids[2]);
    EXPECT_EQ(get(*source, DCM_ReferencedFrameNumber), "<absent>");

    DcmElement* pixels = nullptr;
    ASSERT_TRUE(ds.findAndGetElement(DCM_PixelData, pixels).good());
    EXPECT_EQ(pixels->getLength(), detail::packed_size(9, 61, 67));
    EXPECT_EQ(pixels->getVR(), EVR_OB);
}

TEST_F(SegWriter, MultiFrameSourceFramesAreReferenced) {
    // A source whose slices are frames 1..5 of one instance (as the loader reports Enhanced
    // CT): frames are referenced by number and the instance is listed once.
    const std::string uid = m_series.sop_instance_uids[0];
    for (std::size_t k = 0; k < 5; ++k) {
        m_series.sop_instance_uids[k] = uid;
        m_series.frame_numbers[k] = static_cast<std::uint32_t>(k + 1);
    }
    const auto r = write(test_segments());
    ASSERT_TRUE(r.ok()) << r.error().message;
    DcmFileFormat ff;
    ASSERT_TRUE(ff.loadFile(out().c_str()).good());
    DcmDataset& ds = *ff.getDataset();
    DcmItem* series = nullptr;
    ASSERT_TRUE(ds.findAndGetSequenceItem(DCM_ReferencedSeriesSequence, series).good());
    EXPECT_EQ(items(*series, DCM_ReferencedInstanceSequence), 1U);
    DcmItem* frame = nullptr;
    ASSERT_TRUE(ds.findAndGetSequenceItem(DCM_PerFrameFunctionalGroupsSequence, frame, 3).good());
    DcmItem* derivation = nullptr;
    DcmItem* source = nullptr;
    ASSERT_TRUE(frame->findAndGetSequenceItem(DCM_DerivationImageSequence, derivation).good());
    ASSERT_TRUE(derivation->findAndGetSequenceItem(DCM_SourceImageSequence, source).good());
    EXPECT_EQ(get(*source, DCM_ReferencedFrameNumber), "4");
}

} // namespace
} // namespace segnode::dicom
