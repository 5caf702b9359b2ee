#include "derived_common.hpp"

#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "dcmtk/dcmdata/dctag.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "segnode/core/uid.hpp"
#include "segnode/core/version.hpp"

#include <array>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <system_error>
#include <unistd.h>

namespace segnode::dicom::detail {
namespace {

/// Shortest random suffix we accept under a configured root: 16 decimal digits (~53 bits)
/// make a collision between objects written under one root negligible.
constexpr std::size_t min_suffix_digits = 16;

Error condition_error(const std::string& what, const OFCondition& cond) {
    return Error{what + ": " + cond.text()};
}

/// Copies `tag` when the source has it (empty values too). Sequences are deep-copied.
Status copy_if_present(DcmItem& source, DcmItem& target, const DcmTagKey& tag) {
    if (!source.tagExists(tag)) {
        return ok_status();
    }
    const OFCondition cond = source.findAndInsertCopyOfElement(tag, &target, OFTrue);
    if (cond.bad()) {
        return condition_error("cannot copy " + tag_label(tag) + " from the source", cond);
    }
    return ok_status();
}

/// Type 2: copied, or written empty when the source lacks it.
Status copy_or_empty(DcmItem& source, DcmItem& target, const DcmTagKey& tag) {
    if (source.tagExists(tag)) {
        return copy_if_present(source, target, tag);
    }
    const OFCondition cond = target.insertEmptyElement(tag, OFTrue);
    if (cond.bad()) {
        return condition_error("cannot write empty " + tag_label(tag), cond);
    }
    return ok_status();
}

std::string host_name() {
    std::array<char, 256> buf{};
    if (::gethostname(buf.data(), buf.size() - 1) != 0 || buf[0] == '\0') {
        return "unknown";
    }
    std::string name(buf.data());
    // DeviceSerialNumber is LO: at most 64 characters, no backslash.
    for (char& c : name) {
        if (c == '\\') {
            c = '_';
        }
    }
    return name.substr(0, 64);
}

} // namespace

std::string tag_label(const DcmTagKey& tag) {
    DcmTag full(tag);
    return std::string(full.getTagName()) + " " + tag.toString().c_str();
}

Result<std::unique_ptr<DcmFileFormat>> read_source_header(const std::filesystem::path& file) {
    auto ff = std::make_unique<DcmFileFormat>();
    const OFCondition cond = ff->loadFileUntilTag(file.c_str(), EXS_Unknown, EGL_noChange, 4096,
                                                  ERM_autoDetect, DCM_PixelData);
    if (cond.bad()) {
        return condition_error("cannot read the source header " + file.string(), cond);
    }
    return ff;
}

Status copy_patient_study(DcmItem& source, DcmItem& target) {
    // The character set must travel with the names and descriptions copied below.
    const DcmTagKey optional_tags[] = {
        DCM_SpecificCharacterSet,
        // Patient (Type 3)
        DCM_IssuerOfPatientID, DCM_IssuerOfPatientIDQualifiersSequence, DCM_PatientBirthTime,
        DCM_OtherPatientIDsSequence, DCM_PatientComments, DCM_PatientIdentityRemoved,
        DCM_DeidentificationMethod, DCM_DeidentificationMethodCodeSequence,
        // Patient Study
        DCM_PatientAge, DCM_PatientSize, DCM_PatientWeight,
        // General Study (Type 3)
        DCM_StudyDescription, DCM_IssuerOfAccessionNumberSequence,
        // Clinical Trial Subject / Study, copied as the source has them
        DCM_ClinicalTrialSponsorName, DCM_ClinicalTrialProtocolID, DCM_ClinicalTrialProtocolName,
        DCM_ClinicalTrialSiteID, DCM_ClinicalTrialSiteName, DCM_ClinicalTrialSubjectID,
        DCM_ClinicalTrialSubjectReadingID, DCM_ClinicalTrialProtocolEthicsCommitteeName,
        DCM_ClinicalTrialProtocolEthicsCommitteeApprovalNumber, DCM_ClinicalTrialTimePointID,
        DCM_ClinicalTrialTimePointDescription, DCM_ConsentForClinicalTrialUseSequence};
    const DcmTagKey type2_tags[] = {
        // Patient
        DCM_PatientName, DCM_PatientID, DCM_PatientBirthDate, DCM_PatientSex,
        // General Study
        DCM_StudyDate, DCM_StudyTime, DCM_ReferringPhysicianName, DCM_StudyID, DCM_AccessionNumber};
    for (const DcmTagKey& tag : optional_tags) {
        if (Status s = copy_if_present(source, target, tag); !s) {
            return s;
        }
    }
    for (const DcmTagKey& tag : type2_tags) {
        if (Status s = copy_or_empty(source, target, tag); !s) {
            return s;
        }
    }
    OFString study_uid;
    if (source.findAndGetOFString(DCM_StudyInstanceUID, study_uid).bad() || study_uid.empty()) {
        return Error{"source has no StudyInstanceUID"};
    }
    return copy_if_present(source, target, DCM_StudyInstanceUID);
}

Result<std::string> copy_frame_of_reference(DcmItem& source, DcmItem& target) {
    OFString uid;
    if (source.findAndGetOFString(DCM_FrameOfReferenceUID, uid).bad() || uid.empty()) {
        return Error{"source has no FrameOfReferenceUID: a derived object cannot be placed in "
                     "the patient's coordinate system without one"};
    }
    if (Status s = copy_if_present(source, target, DCM_FrameOfReferenceUID); !s) {
        return s.error();
    }
    if (Status s = copy_or_empty(source, target, DCM_PositionReferenceIndicator); !s) {
        return s.error();
    }
    return std::string(uid.c_str());
}

Status check_uid_root(const std::string& root) {
    if (root.empty()) {
        return ok_status();
    }
    if (const auto problem = uid_problem(root)) {
        return Error{"UID root '" + root + "' is not a valid UID: " + *problem};
    }
    if (root.size() + 1 + min_suffix_digits > 64) {
        return Error{"UID root '" + root + "' is " + std::to_string(root.size()) +
                     " characters long; at most " + std::to_string(64 - 1 - min_suffix_digits) +
                     " leave room for a unique suffix within the 64-character limit"};
    }
    return ok_status();
}

Status check_label_geometry(const Geometry& source, const Geometry& labels) {
    if (labels.dims != source.dims) {
        return Error{"label map dimensions " + std::to_string(labels.dims[0]) + " x " +
                     std::to_string(labels.dims[1]) + " x " + std::to_string(labels.dims[2]) +
                     " differ from the source volume's " + std::to_string(source.dims[0]) + " x " +
                     std::to_string(source.dims[1]) + " x " + std::to_string(source.dims[2])};
    }
    constexpr double tolerance = 1e-4;
    const auto differs = [](const auto& a, const auto& b) {
        for (std::size_t i = 0; i < a.size(); ++i) {
            if (!(std::abs(a[i] - b[i]) <= tolerance)) { // NaN differs too
                return true;
            }
        }
        return false;
    };
    if (differs(labels.spacing, source.spacing)) {
        return Error{"label map spacing differs from the source volume's (beyond 1e-4 mm)"};
    }
    if (differs(labels.origin, source.origin)) {
        return Error{"label map origin differs from the source volume's (beyond 1e-4 mm)"};
    }
    if (differs(labels.direction, source.direction)) {
        return Error{"label map direction differs from the source volume's (beyond 1e-4)"};
    }
    if (const auto problem = geometry_problem(source)) {
        return Error{"source geometry is unusable: " + *problem};
    }
    return ok_status();
}

Status check_segments(const std::vector<SegmentInfo>& segments) {
    std::array<bool, 256> seen{};
    for (const SegmentInfo& s : segments) {
        const std::string what = "segment " + std::to_string(s.label) + " '" + s.name + "'";
        if (s.label == 0) {
            return Error{what + ": label 0 is the background and cannot be a segment"};
        }
        if (seen[s.label]) {
            return Error{what + ": label declared twice"};
        }
        seen[s.label] = true;
        if (s.name.empty() || s.name.size() > 64 || s.name.find('\\') != std::string::npos) {
            return Error{what + ": the name must have 1 to 64 characters and no backslash"};
        }
    }
    return ok_status();
}

Status check_code_string(const std::string& what, const std::string& value) {
    if (value.empty() || value.size() > 16) {
        return Error{what + " '" + value + "' must have 1 to 16 characters"};
    }
    for (const char c : value) {
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ' || c == '_')) {
            return Error{what + " '" + value +
                         "' may only hold upper-case letters, digits, space and underscore"};
        }
    }
    return ok_status();
}

Status check_writer_inputs(const Geometry& source, const LabelMap& labels,
                           const std::vector<SegmentInfo>& segments,
                           const DerivedObjectOptions& options, const std::string& label_what) {
    if (Status s = check_label_geometry(source, labels.geometry); !s) {
        return s;
    }
    if (!labels.consistent()) {
        return Error{"label map holds " + std::to_string(labels.voxels.size()) +
                     " values, not one per voxel of its geometry"};
    }
    if (Status s = check_segments(segments); !s) {
        return s;
    }
    if (Status s = check_code_string(label_what, options.content_label); !s) {
        return s;
    }
    return check_uid_root(options.uid_root);
}

Result<std::string> make_uid(const std::string& root) {
    if (root.empty()) {
        return generate_uuid_uid();
    }
    if (Status s = check_uid_root(root); !s) {
        return s.error();
    }
    // The decimal digits of a random UUID (no leading zero), cut to what fits after the root.
    std::string digits = generate_uuid_uid().substr(5);
    digits.resize(std::min(digits.size(), 64 - root.size() - 1));
    std::string uid = root + "." + digits;
    if (const auto problem = uid_problem(uid)) {
        return Error{"generated UID '" + uid + "' is invalid: " + *problem};
    }
    return uid;
}

DicomDateTime dicom_date_time(const std::optional<std::chrono::system_clock::time_point>& now) {
    const std::time_t t =
        std::chrono::system_clock::to_time_t(now.value_or(std::chrono::system_clock::now()));
    std::tm local{};
    localtime_r(&t, &local);
    std::array<char, 16> date{};
    std::array<char, 16> time{};
    std::strftime(date.data(), date.size(), "%Y%m%d", &local);
    std::strftime(time.data(), time.size(), "%H%M%S", &local);
    return {date.data(), time.data()};
}

Status put_new_instance(DcmItem& target, const DerivedObjectOptions& options,
                        const NewInstance& instance) {
    const DicomDateTime now = dicom_date_time(options.now);
    const std::string description = options.series_description.empty()
                                        ? instance.default_series_description
                                        : options.series_description;
    const std::pair<DcmTagKey, std::string> values[] = {
        // SOP Common
        {DCM_SOPClassUID, instance.sop_class_uid},
        {DCM_SOPInstanceUID, instance.sop_instance_uid},
        {DCM_InstanceCreationDate, now.date},
        {DCM_InstanceCreationTime, now.time},
        // General Series
        {DCM_Modality, instance.modality},
        {DCM_SeriesInstanceUID, instance.series_instance_uid},
        {DCM_SeriesNumber, std::to_string(options.series_number)},
        {DCM_SeriesDate, now.date},
        {DCM_SeriesTime, now.time},
        {DCM_SeriesDescription, description},
        {DCM_InstanceNumber, "1"},
        // (Enhanced) General Equipment
        {DCM_Manufacturer, options.manufacturer.empty() ? "segnode" : options.manufacturer},
        {DCM_ManufacturerModelName, "segnode"},
        {DCM_DeviceSerialNumber, host_name()},
        {DCM_SoftwareVersions, version_string()},
    };
    for (const auto& [tag, value] : values) {
        if (Status s = put_string(target, tag, value); !s) {
            return s;
        }
    }
    if (instance.content_date_time) {
        if (Status s = put_string(target, DCM_ContentDate, now.date); !s) {
            return s;
        }
        if (Status s = put_string(target, DCM_ContentTime, now.time); !s) {
            return s;
        }
    }
    return ok_status();
}

Status put_string(DcmItem& item, const DcmTagKey& tag, const std::string& value) {
    const OFCondition cond = item.putAndInsertString(tag, value.c_str(), OFTrue);
    if (cond.bad()) {
        return condition_error("cannot write " + tag_label(tag) + " = '" + value + "'", cond);
    }
    return ok_status();
}

Status put_code(DcmItem& item, const CodedConcept& code) {
    if (code.value.empty() || code.scheme.empty() || code.meaning.empty()) {
        return Error{"incomplete code (" + code.value + ", " + code.scheme + ", \"" + code.meaning +
                     "\"): value, scheme and meaning are all required"};
    }
    if (Status s = put_string(item, DCM_CodeValue, code.value); !s) {
        return s;
    }
    if (Status s = put_string(item, DCM_CodingSchemeDesignator, code.scheme); !s) {
        return s;
    }
    return put_string(item, DCM_CodeMeaning, code.meaning);
}

Result<DcmItem*> append_item(DcmItem& item, const DcmTagKey& sequence) {
    DcmItem* created = nullptr;
    // -2: append a new item (creating the sequence if needed).
    const OFCondition cond = item.findOrCreateSequenceItem(sequence, created, -2);
    if (cond.bad() || created == nullptr) {
        return condition_error("cannot add an item to " + tag_label(sequence), cond);
    }
    return created;
}

Status put_code_sequence(DcmItem& item, const DcmTagKey& sequence, const CodedConcept& code) {
    auto code_item = append_item(item, sequence);
    if (!code_item) {
        return code_item.error();
    }
    if (Status s = put_code(**code_item, code); !s) {
        return Error{tag_label(sequence) + ": " + s.error().message};
    }
    return ok_status();
}

std::string format_ds(double value) {
    if (value == 0.0 || !std::isfinite(value)) {
        return "0";
    }
    std::array<char, 32> buf{};
    for (int precision = 15; precision > 0; --precision) {
        const int n = std::snprintf(buf.data(), buf.size(), "%.*g", precision, value);
        if (n > 0 && n <= 16) {
            break;
        }
    }
    std::string out(buf.data());
    return out == "-0" ? "0" : out;
}

std::string format_ds(const std::vector<double>& values) {
    std::string out;
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0) {
            out += '\\';
        }
        out += format_ds(values[i]);
    }
    return out;
}

Status write_dicom_file(DcmFileFormat& file, const std::filesystem::path& path) {
    DcmMetaInfo* meta = file.getMetaInfo();
    DcmDataset* dataset = file.getDataset();
    if (meta == nullptr || dataset == nullptr) {
        return Error{"no file meta information or data set object"};
    }
    OFString sop_class;
    OFString sop_instance;
    if (dataset->findAndGetOFString(DCM_SOPClassUID, sop_class).bad() ||
        dataset->findAndGetOFString(DCM_SOPInstanceUID, sop_instance).bad()) {
        return Error{"data set has no SOPClassUID or SOPInstanceUID for the file meta header"};
    }
    // The whole meta header is written here and DCMTK told not to touch it: in its default
    // file-format mode DCMTK 3.6.7 replaces the implementation class UID and version name with
    // its own, and these files are segnode's.
    const Uint8 version[2] = {0, 1};
    OFCondition cond = meta->putAndInsertUint8Array(DCM_FileMetaInformationVersion, version, 2);
    if (cond.bad()) {
        return condition_error("cannot write FileMetaInformationVersion", cond);
    }
    const std::pair<DcmTagKey, std::string> values[] = {
        {DCM_MediaStorageSOPClassUID, sop_class.c_str()},
        {DCM_MediaStorageSOPInstanceUID, sop_instance.c_str()},
        {DCM_TransferSyntaxUID, UID_LittleEndianExplicitTransferSyntax},
        {DCM_ImplementationClassUID, implementation_class_uid()},
        {DCM_ImplementationVersionName, implementation_version_name()},
    };
    for (const auto& [tag, value] : values) {
        if (Status s = put_string(*meta, tag, value); !s) {
            return s;
        }
    }
    // (0002,0000) must be present for DCMTK to fill in its value when not updating the meta.
    cond = meta->putAndInsertUint32(DCM_FileMetaInformationGroupLength, 0);
    if (cond.good()) {
        cond = meta->computeGroupLengthAndPadding(EGL_withGL, EPD_noChange,
                                                  EXS_LittleEndianExplicit, EET_ExplicitLength);
    }
    if (cond.bad()) {
        return condition_error("cannot compute FileMetaInformationGroupLength", cond);
    }
    cond = file.saveFile(path.c_str(), EXS_LittleEndianExplicit, EET_ExplicitLength, EGL_recalcGL,
                         EPD_noChange, 0, 0, EWM_dontUpdateMeta);
    if (cond.bad()) {
        std::error_code ec;
        std::filesystem::remove(path, ec); // no half-written object left behind
        return condition_error("cannot write " + path.string(), cond);
    }
    return ok_status();
}

} // namespace segnode::dicom::detail
