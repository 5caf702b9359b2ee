// inspect_derived_object / check_references_source on objects written by segnode's own SEG and
// RTSTRUCT writers (the good case) and on altered copies: another series, another study, no
// frame of reference, a CT image instead of a derived object, a file that is not DICOM.
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "phantom.hpp"
#include "segnode/dicom/derived_inspect.hpp"
#include "segnode/dicom/environment.hpp"
#include "segnode/dicom/rtstruct_writer.hpp"
#include "segnode/dicom/seg_writer.hpp"
#include "segnode/dicom/series_loader.hpp"
#include "test_util.hpp"

#include <fstream>
#include <functional>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdexcept>

namespace segnode::dicom {
namespace {

namespace fs = std::filesystem;
using segnode::test::TempDir;
using ::testing::HasSubstr;

void check(const OFCondition& cond, const std::string& what) {
    if (cond.bad()) {
        throw std::runtime_error(what + ": " + cond.text());
    }
}

/// A copy of `from` at `to`, with `change` applied to its data set.
void altered_copy(const fs::path& from, const fs::path& to,
                  const std::function<void(DcmDataset&)>& change) {
    DcmFileFormat ff;
    check(ff.loadFile(from.c_str()), "load " + from.string());
    check(ff.loadAllDataIntoMemory(), "load " + from.string());
    change(*ff.getDataset());
    check(ff.saveFile(to.c_str(), EXS_LittleEndianExplicit), "save " + to.string());
}

DcmItem& item_of(DcmItem& parent, const DcmTagKey& sequence) {
    DcmItem* item = nullptr;
    check(parent.findAndGetSequenceItem(sequence, item, 0),
          "find " + std::string(sequence.toString().c_str()));
    return *item;
}

void put(DcmItem& item, const DcmTagKey& tag, const std::string& value) {
    check(item.putAndInsertString(tag, value.c_str()),
          "put " + std::string(tag.toString().c_str()));
}

class DerivedInspect : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        ASSERT_TRUE(init_dicom_environment().ok());
        s_dir = new TempDir;
        phantom::PhantomSpec spec;
        spec.rows = 48;
        spec.cols = 40;
        spec.slices = 6;
        spec.threads = 1;
        phantom::write_ct_series(spec, s_dir->path() / "ct");
        auto series = load_series_dir(s_dir->path() / "ct");
        ASSERT_TRUE(series.ok()) << series.error().message;
        s_series = new LoadedSeries(std::move(series).value());
        LabelMap labels = make_volume<std::uint8_t>(s_series->volume.geometry, 0);
        for (std::size_t k = 1; k < 5; ++k) {
            for (std::size_t j = 10; j < 30; ++j) {
                for (std::size_t i = 8; i < 20; ++i) {
                    labels.at(i, j, k) = 1;
                }
            }
        }
        const std::vector<SegmentInfo> segments{{1,
                                                 "Blob",
                                                 {"85756007", "SCT", "Tissue"},
                                                 {"85756007", "SCT", "Tissue"},
                                                 {200, 100, 50}}};
        DerivedObjectOptions options;
        options.algorithm_name = "test";
        auto seg = write_seg(*s_series, labels, segments, options, seg_file());
        ASSERT_TRUE(seg.ok()) << seg.error().message;
        auto rt = write_rtstruct(*s_series, labels, segments, options, rt_file());
        ASSERT_TRUE(rt.ok()) << rt.error().message;
    }
    static void TearDownTestSuite() {
        delete s_series;
        delete s_dir;
    }
    static fs::path seg_file() { return s_dir->path() / "seg.dcm"; }
    static fs::path rt_file() { return s_dir->path() / "rt.dcm"; }
    static fs::path file(const char* name) { return s_dir->path() / name; }
    static std::optional<std::string> check_source(const DerivedObjectInfo& info) {
        return check_references_source(info, s_series->study_uid, s_series->series_uid,
                                       s_series->frame_of_reference_uid);
    }

    static TempDir* s_dir;
    static LoadedSeries* s_series;
};
TempDir* DerivedInspect::s_dir = nullptr;
LoadedSeries* DerivedInspect::s_series = nullptr;

TEST_F(DerivedInspect, SegWrittenBySegnodeReferencesItsSource) {
    const auto info = inspect_derived_object(seg_file());
    ASSERT_TRUE(info.ok()) << info.error().message;
    EXPECT_TRUE(info->is_seg());
    EXPECT_EQ(info->sop_class_uid, "1.2.840.10008.5.1.4.1.1.66.4");
    EXPECT_EQ(info->modality, "SEG");
    EXPECT_FALSE(info->sop_instance_uid.empty());
    EXPECT_FALSE(info->series_instance_uid.empty());
    EXPECT_NE(info->series_instance_uid, s_series->series_uid);
    EXPECT_EQ(info->study_instance_uid, s_series->study_uid);
    EXPECT_EQ(info->frame_of_reference_uid, s_series->frame_of_reference_uid);
    EXPECT_EQ(info->referenced_series_uids, std::vector<std::string>{s_series->series_uid});
    // Every source instance once (ReferencedSeriesSequence lists all of them).
    EXPECT_EQ(info->referenced_sop_instance_uids, s_series->sop_instance_uids);
    EXPECT_EQ(check_source(*info), std::nullopt);
}

TEST_F(DerivedInspect, RtstructWrittenBySegnodeReferencesItsSource) {
    const auto info = inspect_derived_object(rt_file());
    ASSERT_TRUE(info.ok()) << info.error().message;
    EXPECT_TRUE(info->is_rtstruct());
    EXPECT_EQ(info->modality, "RTSTRUCT");
    EXPECT_EQ(info->study_instance_uid, s_series->study_uid);
    EXPECT_EQ(info->frame_of_reference_uid, s_series->frame_of_reference_uid);
    EXPECT_EQ(info->referenced_series_uids, std::vector<std::string>{s_series->series_uid});
    EXPECT_EQ(info->referenced_study_uids, std::vector<std::string>{s_series->study_uid});
    EXPECT_EQ(info->referenced_frame_of_reference_uids,
              std::vector<std::string>{s_series->frame_of_reference_uid});
    EXPECT_EQ(info->referenced_sop_instance_uids, s_series->sop_instance_uids);
    EXPECT_EQ(check_source(*info), std::nullopt);
}

TEST_F(DerivedInspect, SegOfAnotherSeriesIsNamed) {
    altered_copy(seg_file(), file("seg_series.dcm"), [](DcmDataset& ds) {
        put(item_of(ds, DCM_ReferencedSeriesSequence), DCM_SeriesInstanceUID, "1.2.3.4");
    });
    const auto info = inspect_derived_object(file("seg_series.dcm"));
    ASSERT_TRUE(info.ok()) << info.error().message;
    const auto problem = check_source(*info);
    ASSERT_TRUE(problem.has_value());
    EXPECT_THAT(*problem, HasSubstr("references series 1.2.3.4, expected " + s_series->series_uid));
    EXPECT_THAT(*problem, HasSubstr("SEG " + info->sop_instance_uid));
}

TEST_F(DerivedInspect, RtstructOfAnotherSeriesIsNamed) {
    altered_copy(rt_file(), file("rt_series.dcm"), [](DcmDataset& ds) {
        DcmItem& frame = item_of(ds, DCM_ReferencedFrameOfReferenceSequence);
        DcmItem& study = item_of(frame, DCM_RTReferencedStudySequence);
        put(item_of(study, DCM_RTReferencedSeriesSequence), DCM_SeriesInstanceUID, "1.2.3.5");
    });
    const auto info = inspect_derived_object(file("rt_series.dcm"));
    ASSERT_TRUE(info.ok()) << info.error().message;
    EXPECT_EQ(check_source(*info), "RTSTRUCT " + info->sop_instance_uid +
                                       " references series 1.2.3.5, expected " +
                                       s_series->series_uid);
}

TEST_F(DerivedInspect, WrongStudyIsNamed) {
    altered_copy(seg_file(), file("seg_study.dcm"),
                 [](DcmDataset& ds) { put(ds, DCM_StudyInstanceUID, "1.2.3.6"); });
    auto info = inspect_derived_object(file("seg_study.dcm"));
    ASSERT_TRUE(info.ok()) << info.error().message;
    EXPECT_EQ(check_source(*info), "SEG " + info->sop_instance_uid +
                                       " belongs to study 1.2.3.6, expected " +
                                       s_series->study_uid);

    // RTSTRUCT in the right study but naming another one in RTReferencedStudySequence.
    altered_copy(rt_file(), file("rt_study.dcm"), [](DcmDataset& ds) {
        DcmItem& frame = item_of(ds, DCM_ReferencedFrameOfReferenceSequence);
        put(item_of(frame, DCM_RTReferencedStudySequence), DCM_ReferencedSOPInstanceUID, "1.2.3.7");
    });
    info = inspect_derived_object(file("rt_study.dcm"));
    ASSERT_TRUE(info.ok()) << info.error().message;
    const auto problem = check_source(*info);
    ASSERT_TRUE(problem.has_value());
    EXPECT_THAT(*problem, HasSubstr("references study 1.2.3.7 in RTReferencedStudySequence, "
                                    "expected " +
                                    s_series->study_uid));
}

TEST_F(DerivedInspect, MissingOrOtherFrameOfReferenceIsNamed) {
    altered_copy(seg_file(), file("seg_nofor.dcm"), [](DcmDataset& ds) {
        check(ds.findAndDeleteElement(DCM_FrameOfReferenceUID), "delete");
    });
    auto info = inspect_derived_object(file("seg_nofor.dcm"));
    ASSERT_TRUE(info.ok()) << info.error().message;
    EXPECT_EQ(check_source(*info),
              "SEG " + info->sop_instance_uid + " has no Frame of Reference UID");

    altered_copy(rt_file(), file("rt_for.dcm"),
                 [](DcmDataset& ds) { put(ds, DCM_FrameOfReferenceUID, "1.2.3.8"); });
    info = inspect_derived_object(file("rt_for.dcm"));
    ASSERT_TRUE(info.ok()) << info.error().message;
    EXPECT_EQ(check_source(*info), "RTSTRUCT " + info->sop_instance_uid +
                                       " is in frame of reference 1.2.3.8, expected " +
                                       s_series->frame_of_reference_uid);
}

TEST_F(DerivedInspect, CtImageIsNotADerivedObject) {
    const auto info = inspect_derived_object(s_series->files.front());
    ASSERT_TRUE(info.ok()) << info.error().message;
    EXPECT_FALSE(info->is_seg());
    EXPECT_FALSE(info->is_rtstruct());
    EXPECT_TRUE(info->referenced_series_uids.empty());
    EXPECT_EQ(check_source(*info), s_series->sop_instance_uids.front() +
                                       " is not a SEG or RTSTRUCT (SOP class "
                                       "1.2.840.10008.5.1.4.1.1.2)");
}

TEST_F(DerivedInspect, NotDicomAndMissingFilesAreErrors) {
    {
        std::ofstream out(file("note.txt"));
        out << "this is not a DICOM file\n";
    }
    auto info = inspect_derived_object(file("note.txt"));
    ASSERT_FALSE(info.ok());
    EXPECT_THAT(info.error().message, HasSubstr("note.txt: cannot be read as DICOM"));

    info = inspect_derived_object(file("absent.dcm"));
    ASSERT_FALSE(info.ok());
    EXPECT_THAT(info.error().message, HasSubstr("absent.dcm: no such file"));
}

} // namespace
} // namespace segnode::dicom
