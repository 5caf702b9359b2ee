#include "segnode/dicom/derived_inspect.hpp"

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdatset.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcerror.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "derived_common.hpp"
#include "segnode/dicom/environment.hpp"
#include "segnode/dicom/rtstruct_writer.hpp"

#include <algorithm>
#include <system_error>

namespace segnode::dicom {
namespace {

void add_unique(std::vector<std::string>& list, const std::string& value) {
    if (!value.empty() && std::find(list.begin(), list.end(), value) == list.end()) {
        list.push_back(value);
    }
}

/// Reads a string attribute of `item` (its own level only). Absent or empty: "". Any other
/// failure to read it is an error naming the attribute and `where`.
Result<std::string> get_string(DcmItem& item, const DcmTagKey& tag, const std::string& where) {
    OFString value;
    const OFCondition cond = item.findAndGetOFStringArray(tag, value, OFFalse);
    if (cond == EC_TagNotFound) {
        return std::string();
    }
    if (cond.bad()) {
        return Error{where + ": cannot read " + detail::tag_label(tag) + ": " + cond.text()};
    }
    return std::string(value.c_str());
}

/// The items of sequence `tag` in `item` (none when absent). Error when present but not a
/// readable sequence.
Result<std::vector<DcmItem*>> get_items(DcmItem& item, const DcmTagKey& tag,
                                        const std::string& where) {
    std::vector<DcmItem*> items;
    DcmSequenceOfItems* sequence = nullptr;
    const OFCondition cond = item.findAndGetSequence(tag, sequence, OFFalse);
    if (cond == EC_TagNotFound) {
        return items;
    }
    if (cond.bad() || sequence == nullptr) {
        return Error{where + ": cannot read " + detail::tag_label(tag) + " as a sequence" +
                     (cond.bad() ? std::string(": ") + cond.text() : std::string())};
    }
    for (unsigned long i = 0; i < sequence->card(); ++i) {
        DcmItem* child = sequence->getItem(i);
        if (child == nullptr) {
            return Error{where + ": item " + std::to_string(i + 1) + " of " +
                         detail::tag_label(tag) + " cannot be read"};
        }
        items.push_back(child);
    }
    return items;
}

/// add_unique(list, attribute `tag` of each item of sequence `seq` of `item`).
Status collect(DcmItem& item, const DcmTagKey& seq, const DcmTagKey& tag,
               std::vector<std::string>& list, const std::string& where) {
    auto items = get_items(item, seq, where);
    if (!items) {
        return items.error();
    }
    for (DcmItem* child : *items) {
        auto value = get_string(*child, tag, where);
        if (!value) {
            return value.error();
        }
        add_unique(list, *value);
    }
    return ok_status();
}

Status read_seg_references(DcmDataset& ds, DerivedObjectInfo& info, const std::string& where) {
    auto series = get_items(ds, DCM_ReferencedSeriesSequence, where);
    if (!series) {
        return series.error();
    }
    for (DcmItem* s : *series) {
        auto uid = get_string(*s, DCM_SeriesInstanceUID, where);
        if (!uid) {
            return uid.error();
        }
        add_unique(info.referenced_series_uids, *uid);
        if (Status st = collect(*s, DCM_ReferencedInstanceSequence, DCM_ReferencedSOPInstanceUID,
                                info.referenced_sop_instance_uids, where);
            !st) {
            return st;
        }
    }
    auto frames = get_items(ds, DCM_PerFrameFunctionalGroupsSequence, where);
    if (!frames) {
        return frames.error();
    }
    for (DcmItem* frame : *frames) {
        auto derivations = get_items(*frame, DCM_DerivationImageSequence, where);
        if (!derivations) {
            return derivations.error();
        }
        for (DcmItem* derivation : *derivations) {
            if (Status st =
                    collect(*derivation, DCM_SourceImageSequence, DCM_ReferencedSOPInstanceUID,
                            info.referenced_sop_instance_uids, where);
                !st) {
                return st;
            }
        }
    }
    return ok_status();
}

Status read_rtstruct_references(DcmDataset& ds, DerivedObjectInfo& info, const std::string& where) {
    auto frames = get_items(ds, DCM_ReferencedFrameOfReferenceSequence, where);
    if (!frames) {
        return frames.error();
    }
    for (DcmItem* frame : *frames) {
        auto frame_uid = get_string(*frame, DCM_FrameOfReferenceUID, where);
        if (!frame_uid) {
            return frame_uid.error();
        }
        add_unique(info.referenced_frame_of_reference_uids, *frame_uid);
        auto studies = get_items(*frame, DCM_RTReferencedStudySequence, where);
        if (!studies) {
            return studies.error();
        }
        for (DcmItem* study : *studies) {
            auto study_uid = get_string(*study, DCM_ReferencedSOPInstanceUID, where);
            if (!study_uid) {
                return study_uid.error();
            }
            add_unique(info.referenced_study_uids, *study_uid);
            auto series = get_items(*study, DCM_RTReferencedSeriesSequence, where);
            if (!series) {
                return series.error();
            }
            for (DcmItem* s : *series) {
                auto series_uid = get_string(*s, DCM_SeriesInstanceUID, where);
                if (!series_uid) {
                    return series_uid.error();
                }
                add_unique(info.referenced_series_uids, *series_uid);
                if (Status st = collect(*s, DCM_ContourImageSequence, DCM_ReferencedSOPInstanceUID,
                                        info.referenced_sop_instance_uids, where);
                    !st) {
                    return st;
                }
            }
        }
    }
    return ok_status();
}

std::string list_text(const std::vector<std::string>& uids) {
    std::string out;
    for (const std::string& uid : uids) {
        out += (out.empty() ? "" : ", ") + uid;
    }
    return out;
}

} // namespace

bool DerivedObjectInfo::is_seg() const {
    return sop_class_uid == segmentation_storage_uid;
}

bool DerivedObjectInfo::is_rtstruct() const {
    return sop_class_uid == rt_structure_set_storage;
}

Result<DerivedObjectInfo> inspect_derived_object(const std::filesystem::path& file) {
    if (Status s = init_dicom_environment(); !s) {
        return s.error();
    }
    const std::string where = file.string();
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) {
        return Error{where + ": no such file" + (ec ? ": " + ec.message() : std::string())};
    }
    DcmFileFormat ff;
    // Everything of interest precedes PixelData; a SEG's pixels can be hundreds of MB.
    const OFCondition cond = ff.loadFileUntilTag(file.c_str(), EXS_Unknown, EGL_noChange, 4096,
                                                 ERM_autoDetect, DCM_PixelData);
    if (cond.bad()) {
        return Error{where + ": cannot be read as DICOM: " + cond.text()};
    }
    DcmDataset* ds = ff.getDataset();
    if (ds == nullptr) {
        return Error{where + ": no data set"};
    }
    DerivedObjectInfo info;
    const std::pair<DcmTagKey, std::string*> fields[] = {
        {DCM_SOPClassUID, &info.sop_class_uid},
        {DCM_SOPInstanceUID, &info.sop_instance_uid},
        {DCM_Modality, &info.modality},
        {DCM_StudyInstanceUID, &info.study_instance_uid},
        {DCM_SeriesInstanceUID, &info.series_instance_uid},
        {DCM_FrameOfReferenceUID, &info.frame_of_reference_uid},
    };
    for (const auto& [tag, target] : fields) {
        auto value = get_string(*ds, tag, where);
        if (!value) {
            return value.error();
        }
        *target = std::move(value).value();
    }
    if (info.sop_class_uid.empty()) {
        return Error{where + ": DICOM file without SOPClassUID"};
    }
    if (info.is_seg()) {
        if (Status s = read_seg_references(*ds, info, where); !s) {
            return s.error();
        }
    } else if (info.is_rtstruct()) {
        if (Status s = read_rtstruct_references(*ds, info, where); !s) {
            return s.error();
        }
    }
    return info;
}

std::optional<std::string> check_references_source(const DerivedObjectInfo& info,
                                                   const std::string& study_uid,
                                                   const std::string& series_uid,
                                                   const std::string& frame_of_reference_uid) {
    const std::string instance = info.sop_instance_uid.empty()
                                     ? std::string("(no SOP Instance UID)")
                                     : info.sop_instance_uid;
    if (!info.is_seg() && !info.is_rtstruct()) {
        return instance + " is not a SEG or RTSTRUCT (SOP class " + info.sop_class_uid + ")";
    }
    const std::string what = (info.is_seg() ? "SEG " : "RTSTRUCT ") + instance;
    if (info.study_instance_uid != study_uid) {
        return what + " belongs to study " +
               (info.study_instance_uid.empty() ? std::string("(none)") : info.study_instance_uid) +
               ", expected " + study_uid;
    }
    if (info.frame_of_reference_uid.empty()) {
        return what + " has no Frame of Reference UID";
    }
    if (info.frame_of_reference_uid != frame_of_reference_uid) {
        return what + " is in frame of reference " + info.frame_of_reference_uid + ", expected " +
               frame_of_reference_uid;
    }
    if (info.referenced_series_uids.empty()) {
        return what + " references no source series";
    }
    if (std::find(info.referenced_series_uids.begin(), info.referenced_series_uids.end(),
                  series_uid) == info.referenced_series_uids.end()) {
        return what + " references series " + list_text(info.referenced_series_uids) +
               ", expected " + series_uid;
    }
    if (info.is_rtstruct()) {
        if (std::find(info.referenced_study_uids.begin(), info.referenced_study_uids.end(),
                      study_uid) == info.referenced_study_uids.end()) {
            return what + " references study " +
                   (info.referenced_study_uids.empty() ? std::string("(none)")
                                                       : list_text(info.referenced_study_uids)) +
                   " in RTReferencedStudySequence, expected " + study_uid;
        }
        if (std::find(info.referenced_frame_of_reference_uids.begin(),
                      info.referenced_frame_of_reference_uids.end(),
                      frame_of_reference_uid) == info.referenced_frame_of_reference_uids.end()) {
            return what + " references frame of reference " +
                   (info.referenced_frame_of_reference_uids.empty()
                        ? std::string("(none)")
                        : list_text(info.referenced_frame_of_reference_uids)) +
                   " in ReferencedFrameOfReferenceSequence, expected " + frame_of_reference_uid;
        }
    }
    return std::nullopt;
}

} // namespace segnode::dicom
