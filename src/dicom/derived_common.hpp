#pragma once
// DCMTK-level helpers shared by the writers of derived objects (SEG: seg_writer.cpp, RTSTRUCT:
// rtstruct_writer.cpp). Private to the dicom layer. Nothing here knows SEG or RTSTRUCT.
//
// read_source_header(file)      Loads a source file's header up to (not including) PixelData.
// copy_patient_study(src, dst)  Copies Specific Character Set, Patient, Patient Study,
//                               General Study and Clinical Trial attributes; the Type 2 ones
//                               (PatientName, PatientID, ..., AccessionNumber) are written
//                               empty when the source lacks them.
// copy_frame_of_reference(...)  Copies FrameOfReferenceUID (+ PositionReferenceIndicator,
//                               empty if absent); error when the source has no FoR UID.
// check_uid_root(root)          Empty, or a valid UID short enough to take a unique suffix.
// check_label_geometry(s, l)    The label map's geometry is the source volume's.
// check_segments(segments)      Labels 1..255 declared once, names valid for LO.
// check_code_string(what, v)    1..16 characters of a Code String (ContentLabel, ...).
// check_writer_inputs(...)      All of the above that both writers need, in one call.
// make_uid(root)                New UID: generate_uuid_uid() for an empty root, otherwise
//                               root + "." + random digits, checked with uid_problem.
// dicom_date_time(now)          DA and TM strings (local time) of options.now or the clock.
// put_new_instance(dst, ...)    SOP Common, General Series, General/Enhanced General Equipment
//                               and content/instance creation dates of a new object in a new
//                               series (Modality, SeriesNumber/Description from the options,
//                               SoftwareVersions = version_string(), InstanceNumber 1).
// put_string(item, tag, value)  putAndInsertString with a checked condition.
// put_code(item, code)          CodeValue, CodingSchemeDesignator, CodeMeaning into an item.
// append_item(item, seq)        A new item appended to sequence `seq` (created if absent).
// put_code_sequence(item, s, c) A sequence `s` holding one code item.
// format_ds(v) / format_ds(vs)  Decimal String values of at most 16 characters each.
// write_dicom_file(ff, path)    Saves as explicit VR little endian with a complete file meta
//                               header (segnode's implementation class UID and version name).
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcitem.h"
#include "dcmtk/dcmdata/dctagkey.h"
#include "segnode/core/result.hpp"
#include "segnode/core/segment.hpp"
#include "segnode/core/volume.hpp"
#include "segnode/dicom/derived_object.hpp"

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace segnode::dicom::detail {

Result<std::unique_ptr<DcmFileFormat>> read_source_header(const std::filesystem::path& file);

Status copy_patient_study(DcmItem& source, DcmItem& target);

/// Returns the copied FrameOfReferenceUID.
Result<std::string> copy_frame_of_reference(DcmItem& source, DcmItem& target);

Status check_uid_root(const std::string& root);

/// Label map geometry equal to the source volume's: dims exactly, spacing, origin and
/// direction within 1e-4; and the source geometry usable (geometry_problem).
Status check_label_geometry(const Geometry& source, const Geometry& labels);

/// Segment declarations: label not 0 and declared once, name of 1..64 characters without a
/// backslash (SegmentLabel and ROIName are LO). Codes are checked where they are written.
Status check_segments(const std::vector<SegmentInfo>& segments);

/// A Code String value: 1..16 upper-case letters, digits, spaces or underscores.
Status check_code_string(const std::string& what, const std::string& value);

/// What both writers refuse before writing anything: a label map whose geometry is not the
/// source's or whose buffer does not match it, bad segment declarations, a bad
/// `content_label` (named `label_what` in the message) and a bad `uid_root`.
Status check_writer_inputs(const Geometry& source, const LabelMap& labels,
                           const std::vector<SegmentInfo>& segments,
                           const DerivedObjectOptions& options, const std::string& label_what);

Result<std::string> make_uid(const std::string& root);

struct DicomDateTime {
    std::string date; ///< YYYYMMDD
    std::string time; ///< HHMMSS.ffffff
};

DicomDateTime dicom_date_time(const std::optional<std::chrono::system_clock::time_point>& now);

/// Identity of the object being written.
struct NewInstance {
    std::string sop_class_uid;
    std::string sop_instance_uid;
    std::string series_instance_uid;
    std::string modality;                   ///< "SEG", "RTSTRUCT"
    std::string default_series_description; ///< used when options.series_description is empty
    /// ContentDate/ContentTime: SEG (Multi-frame Functional Groups) needs them; RTSTRUCT's
    /// IOD has no such attributes (it has StructureSetDate/Time instead).
    bool content_date_time = true;
};

Status put_new_instance(DcmItem& target, const DerivedObjectOptions& options,
                        const NewInstance& instance);

Status put_string(DcmItem& item, const DcmTagKey& tag, const std::string& value);

Status put_code(DcmItem& item, const CodedConcept& code);

Result<DcmItem*> append_item(DcmItem& item, const DcmTagKey& sequence);

Status put_code_sequence(DcmItem& item, const DcmTagKey& sequence, const CodedConcept& code);

/// A DS value (at most 16 characters, as precise as fits; never "-0").
std::string format_ds(double value);
/// Several DS values joined with backslashes.
std::string format_ds(const std::vector<double>& values);

/// Name of a tag for messages: "PatientName (0010,0010)".
std::string tag_label(const DcmTagKey& tag);

Status write_dicom_file(DcmFileFormat& file, const std::filesystem::path& path);

} // namespace segnode::dicom::detail
