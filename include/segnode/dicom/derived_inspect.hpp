#pragma once
// Reading back what a derived object (a SEG or an RTSTRUCT, segnode's own or one an external
// segmentation program wrote) says about itself and about the series it was derived from, so
// that it can be checked against the source before it is stored or sent on.
//
// References collected:
// - SEG: ReferencedSeriesSequence (Common Instance Reference: SeriesInstanceUID and each
//   ReferencedInstanceSequence > ReferencedSOPInstanceUID), and the ReferencedSOPInstanceUID of
//   every PerFrameFunctionalGroupsSequence > DerivationImageSequence > SourceImageSequence item
//   (whose series is not named there).
// - RTSTRUCT: ReferencedFrameOfReferenceSequence > RTReferencedStudySequence (the study, as
//   its ReferencedSOPInstanceUID) > RTReferencedSeriesSequence (SeriesInstanceUID) >
//   ContourImageSequence > ReferencedSOPInstanceUID; and the FrameOfReferenceUID of each
//   ReferencedFrameOfReferenceSequence item.
// Every list holds each UID once, in the order first met.
#include "segnode/core/result.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace segnode::dicom {

inline constexpr const char* segmentation_storage_uid = "1.2.840.10008.5.1.4.1.1.66.4";

struct DerivedObjectInfo {
    std::string sop_class_uid;
    std::string sop_instance_uid;
    std::string modality;
    std::string study_instance_uid;
    std::string series_instance_uid;    ///< the object's own series
    std::string frame_of_reference_uid; ///< the object's own (Frame of Reference module)
    /// Source series the object references (SEG: ReferencedSeriesSequence; RTSTRUCT:
    /// RTReferencedSeriesSequence).
    std::vector<std::string> referenced_series_uids;
    /// Source images the object references (see the file comment).
    std::vector<std::string> referenced_sop_instance_uids;
    /// RTSTRUCT: studies named in RTReferencedStudySequence (empty for SEG).
    std::vector<std::string> referenced_study_uids;
    /// RTSTRUCT: frames of reference of ReferencedFrameOfReferenceSequence (empty for SEG).
    std::vector<std::string> referenced_frame_of_reference_uids;

    [[nodiscard]] bool is_seg() const;
    [[nodiscard]] bool is_rtstruct() const;
};

/// Reads `file` up to its PixelData. Errors: the file is missing or not DICOM, or an attribute
/// that is present cannot be read. Missing attributes are left empty (check_references_source
/// says what that means).
Result<DerivedObjectInfo> inspect_derived_object(const std::filesystem::path& file);

/// std::nullopt when `info` is a SEG or an RTSTRUCT in study `study_uid` and frame of reference
/// `frame_of_reference_uid` that references series `series_uid` (and, for an RTSTRUCT, names
/// that study and frame of reference in its ReferencedFrameOfReferenceSequence); otherwise
/// what is wrong, e.g. "SEG 1.2.3 references series 1.2.4, expected 1.2.5",
/// "1.2.3 is not a SEG or RTSTRUCT (SOP class 1.2.840.10008.5.1.4.1.1.2)",
/// "RTSTRUCT 1.2.3 has no Frame of Reference UID".
std::optional<std::string> check_references_source(const DerivedObjectInfo& info,
                                                   const std::string& study_uid,
                                                   const std::string& series_uid,
                                                   const std::string& frame_of_reference_uid);

} // namespace segnode::dicom
