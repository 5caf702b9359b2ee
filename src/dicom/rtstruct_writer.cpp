#include "segnode/dicom/rtstruct_writer.hpp"

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdatset.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "derived_common.hpp"
#include "segnode/core/version.hpp"
#include "segnode/dicom/contours.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cmath>
#include <memory>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_set>

namespace segnode::dicom {
namespace {

using detail::append_item;
using detail::put_string;

/// RT Referenced Study Sequence > Referenced SOP Class UID: the (retired) Detached Study
/// Management SOP Class, which PS3.3 C.8.8.5 names for this reference and every major
/// planning system writes.
constexpr const char* detached_study_management = "1.2.840.10008.3.1.2.3.1";
/// SNOMED CT "Entire body": the type code of the `body` algorithm's segment.
constexpr const char* entire_body_code = "38266002";

Error condition_error(const std::string& what, const OFCondition& cond) {
    return Error{what + ": " + cond.text()};
}

bool is_body(const SegmentInfo& segment) {
    if (segment.type.value == entire_body_code &&
        (segment.type.scheme == "SCT" || segment.type.scheme == "SRT")) {
        return true;
    }
    std::string name = segment.name;
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return name == "body";
}

/// The largest |coordinate| of any contour vertex: vertices stay within half a pixel of the
/// grid, so the corners of the grid grown by one pixel bound them (|.| of an affine map is
/// largest at a corner of the box).
double max_abs_coordinate(const Geometry& g) {
    double m = 0.0;
    const auto last = [&](std::size_t a) { return static_cast<double>(g.dims[a]); };
    for (const double i : {-1.0, last(0)}) {
        for (const double j : {-1.0, last(1)}) {
            for (const double k : {0.0, last(2) - 1.0}) {
                for (const double c : voxel_to_patient(g, i, j, k)) {
                    m = std::max(m, std::abs(c));
                }
            }
        }
    }
    return m;
}

/// Runs fn(k) for k in [0, n) on `threads` threads, one index at a time.
template <class Fn> void parallel_for_each_index(std::size_t n, unsigned threads, Fn fn) {
    std::atomic<std::size_t> next{0};
    auto work = [&] {
        for (std::size_t k = next++; k < n; k = next++) {
            fn(k);
        }
    };
    std::vector<std::jthread> pool;
    for (unsigned t = 1; t < threads && t < n; ++t) {
        pool.emplace_back(work);
    }
    work();
}

/// ContourData of every contour: data[k][l][c] for slice k, label entry l, contour c.
using ContourStrings = std::vector<std::vector<std::vector<std::string>>>;

ContourStrings format_contours(const Geometry& g,
                               const std::vector<std::vector<LabelContours>>& contours,
                               unsigned threads, const std::stop_token& stop) {
    ContourStrings data(contours.size());
    const Vec3d di = axis_direction(g, 0);
    const Vec3d dj = axis_direction(g, 1);
    Vec3d step_i{};
    Vec3d step_j{};
    for (std::size_t r = 0; r < 3; ++r) {
        step_i[r] = g.spacing[0] * di[r];
        step_j[r] = g.spacing[1] * dj[r];
    }
    parallel_for_each_index(contours.size(), threads, [&](std::size_t k) {
        if (stop.stop_requested()) {
            return; // the caller sees the request and discards the result
        }
        // Every vertex of slice k lies in its plane: base + x * step_i + y * step_j.
        const Vec3d base = voxel_to_patient(g, 0.0, 0.0, static_cast<double>(k));
        auto& slice = data[k];
        slice.resize(contours[k].size());
        for (std::size_t l = 0; l < contours[k].size(); ++l) {
            for (const Contour& contour : contours[k][l].contours) {
                std::string s;
                s.reserve(contour.points.size() * 30);
                for (const ContourPoint& p : contour.points) {
                    for (std::size_t r = 0; r < 3; ++r) {
                        if (!s.empty()) {
                            s.push_back('\\');
                        }
                        append_decimal_string(s, base[r] + p.x * step_i[r] + p.y * step_j[r]);
                    }
                }
                slice[l].push_back(std::move(s));
            }
        }
    });
    return data;
}

/// A new item appended to `sequence`, which the caller owns through `parent`. Appending
/// through DcmItem::findOrCreateSequenceItem walks the item list each time (quadratic for the
/// thousands of contours of a large ROI), so sequences are filled directly.
Result<DcmItem*> append_to(DcmSequenceOfItems& sequence) {
    auto item = std::make_unique<DcmItem>();
    DcmItem* raw = item.get();
    const OFCondition cond = sequence.append(item.release());
    if (cond.bad()) {
        delete raw;
        return condition_error("cannot append an item to " + detail::tag_label(sequence.getTag()),
                               cond);
    }
    return raw;
}

Result<DcmSequenceOfItems*> new_sequence(DcmItem& parent, const DcmTagKey& tag) {
    auto sequence = std::make_unique<DcmSequenceOfItems>(DcmTag(tag));
    DcmSequenceOfItems* raw = sequence.get();
    const OFCondition cond = parent.insert(sequence.release(), OFTrue);
    if (cond.bad()) {
        delete raw;
        return condition_error("cannot insert " + detail::tag_label(tag), cond);
    }
    return raw;
}

Status put_empty(DcmItem& item, const DcmTagKey& tag) {
    const OFCondition cond = item.insertEmptyElement(tag, OFTrue);
    if (cond.bad()) {
        return condition_error("cannot write empty " + detail::tag_label(tag), cond);
    }
    return ok_status();
}

/// Image SOP Instance Reference: class, instance and (for a frame of a multi-frame source)
/// the frame number.
Status put_image_reference(DcmItem& item, const std::string& sop_class,
                           const std::string& sop_instance, std::uint32_t frame) {
    if (Status s = put_string(item, DCM_ReferencedSOPClassUID, sop_class); !s) {
        return s;
    }
    if (Status s = put_string(item, DCM_ReferencedSOPInstanceUID, sop_instance); !s) {
        return s;
    }
    if (frame != 0) {
        return put_string(item, DCM_ReferencedFrameNumber, std::to_string(frame));
    }
    return ok_status();
}

struct SourceRefs {
    std::string sop_class;
    std::vector<std::string> instances; ///< per slice
    std::vector<std::uint32_t> frames;  ///< per slice; 0 = single-frame (no frame number)
    std::vector<std::string> unique_instances;
};

Result<SourceRefs> source_references(const LoadedSeries& source) {
    const std::size_t n = source.volume.geometry.dims[2];
    if (source.sop_instance_uids.size() != n || source.files.size() != n ||
        (!source.frame_numbers.empty() && source.frame_numbers.size() != n)) {
        return Error{"source series lists " + std::to_string(source.sop_instance_uids.size()) +
                     " instances and " + std::to_string(source.files.size()) +
                     " files for a volume of " + std::to_string(n) + " slices"};
    }
    if (source.sop_class_uid.empty() || source.study_uid.empty() || source.series_uid.empty()) {
        return Error{"source series lacks its SOP class, study or series UID"};
    }
    SourceRefs refs;
    refs.sop_class = source.sop_class_uid;
    refs.instances = source.sop_instance_uids;
    std::unordered_set<std::string> seen;
    bool multi_frame = false;
    for (std::size_t k = 0; k < n; ++k) {
        if (seen.insert(refs.instances[k]).second) {
            refs.unique_instances.push_back(refs.instances[k]);
        } else {
            multi_frame = true;
        }
        if (!source.frame_numbers.empty() && source.frame_numbers[k] != 1) {
            multi_frame = true;
        }
    }
    refs.frames.assign(n, 0);
    if (multi_frame) {
        for (std::size_t k = 0; k < n; ++k) {
            refs.frames[k] = source.frame_numbers.empty() ? 1 : source.frame_numbers[k];
        }
    }
    return refs;
}

Status put_structure_set(DcmDataset& ds, const LoadedSeries& source, const SourceRefs& refs,
                         const std::string& frame_of_reference,
                         const DerivedObjectOptions& options) {
    const detail::DicomDateTime now = detail::dicom_date_time(options.now);
    const std::string name =
        "segnode" + (options.algorithm_name.empty() ? std::string() : " " + options.algorithm_name);
    const std::pair<DcmTagKey, std::string> values[] = {
        {DCM_StructureSetLabel, options.content_label},
        {DCM_StructureSetName, name},
        {DCM_StructureSetDate, now.date},
        {DCM_StructureSetTime, now.time},
    };
    for (const auto& [tag, value] : values) {
        if (Status s = put_string(ds, tag, value); !s) {
            return s;
        }
    }
    // Referenced Frame of Reference > RT Referenced Study > RT Referenced Series > every
    // source image.
    auto frame = append_item(ds, DCM_ReferencedFrameOfReferenceSequence);
    if (!frame) {
        return frame.error();
    }
    if (Status s = put_string(**frame, DCM_FrameOfReferenceUID, frame_of_reference); !s) {
        return s;
    }
    auto study = append_item(**frame, DCM_RTReferencedStudySequence);
    if (!study) {
        return study.error();
    }
    if (Status s = put_image_reference(**study, detached_study_management, source.study_uid, 0);
        !s) {
        return s;
    }
    auto series = append_item(**study, DCM_RTReferencedSeriesSequence);
    if (!series) {
        return series.error();
    }
    if (Status s = put_string(**series, DCM_SeriesInstanceUID, source.series_uid); !s) {
        return s;
    }
    auto images = new_sequence(**series, DCM_ContourImageSequence);
    if (!images) {
        return images.error();
    }
    for (const std::string& instance : refs.unique_instances) {
        auto image = append_to(**images);
        if (!image) {
            return image.error();
        }
        // The whole instance is referenced: no frame numbers, even for a multi-frame source.
        if (Status s = put_image_reference(**image, refs.sop_class, instance, 0); !s) {
            return s;
        }
    }
    return ok_status();
}

/// One kept segment: its declaration and where its contours are.
struct Roi {
    const SegmentInfo* segment = nullptr;
    std::size_t contours = 0;
};

Status put_roi_definitions(DcmDataset& ds, const std::vector<Roi>& rois,
                           const std::string& frame_of_reference,
                           const DerivedObjectOptions& options) {
    std::string description = "segnode " + std::string(version_string());
    if (!options.algorithm_name.empty()) {
        description += ", algorithm " + options.algorithm_name;
        if (!options.algorithm_version.empty()) {
            description += " " + options.algorithm_version;
        }
    }
    description = description.substr(0, 64); // LO
    auto roi_seq = new_sequence(ds, DCM_StructureSetROISequence);
    auto obs_seq = new_sequence(ds, DCM_RTROIObservationsSequence);
    if (!roi_seq || !obs_seq) {
        return !roi_seq ? roi_seq.error() : obs_seq.error();
    }
    for (std::size_t r = 0; r < rois.size(); ++r) {
        const SegmentInfo& segment = *rois[r].segment;
        const std::string number = std::to_string(segment.label);
        auto roi = append_to(**roi_seq);
        if (!roi) {
            return roi.error();
        }
        const std::pair<DcmTagKey, std::string> roi_values[] = {
            {DCM_ROINumber, number},
            {DCM_ReferencedFrameOfReferenceUID, frame_of_reference},
            {DCM_ROIName, segment.name},
            {DCM_ROIGenerationAlgorithm, "AUTOMATIC"},
            {DCM_ROIGenerationDescription, description},
        };
        for (const auto& [tag, value] : roi_values) {
            if (Status s = put_string(**roi, tag, value); !s) {
                return s;
            }
        }
        auto obs = append_to(**obs_seq);
        if (!obs) {
            return obs.error();
        }
        const std::pair<DcmTagKey, std::string> obs_values[] = {
            {DCM_ObservationNumber, std::to_string(r + 1)},
            {DCM_ReferencedROINumber, number},
            {DCM_RTROIInterpretedType, is_body(segment) ? "EXTERNAL" : "ORGAN"},
        };
        for (const auto& [tag, value] : obs_values) {
            if (Status s = put_string(**obs, tag, value); !s) {
                return s;
            }
        }
        if (Status s = put_empty(**obs, DCM_ROIInterpreter); !s) { // Type 2
            return s;
        }
        // What the ROI is, as a code (the segment's type), when the declaration has one.
        if (!segment.type.value.empty()) {
            if (Status s = detail::put_code_sequence(**obs, DCM_RTROIIdentificationCodeSequence,
                                                     segment.type);
                !s) {
                return Error{"segment " + number + " '" + segment.name + "': " + s.error().message};
            }
        }
    }
    return ok_status();
}

Status put_roi_contours(DcmDataset& ds, const std::vector<Roi>& rois,
                        const std::vector<std::vector<LabelContours>>& contours,
                        const ContourStrings& data, const SourceRefs& refs,
                        const std::stop_token& stop) {
    auto roi_contour_seq = new_sequence(ds, DCM_ROIContourSequence);
    if (!roi_contour_seq) {
        return roi_contour_seq.error();
    }
    // Where each label has contours: (slice k, entry l) in slice order, so that each ROI visits
    // its own slices only (not every slice once per ROI).
    std::array<std::vector<std::pair<std::size_t, std::size_t>>, 256> where;
    for (std::size_t k = 0; k < contours.size(); ++k) {
        for (std::size_t l = 0; l < contours[k].size(); ++l) {
            where[contours[k][l].label].emplace_back(k, l);
        }
    }
    for (const Roi& roi : rois) {
        if (stop.stop_requested()) {
            return Error{cancelled_message};
        }
        const SegmentInfo& segment = *roi.segment;
        auto item = append_to(**roi_contour_seq);
        if (!item) {
            return item.error();
        }
        const auto& rgb = segment.rgb;
        if (Status s = put_string(**item, DCM_ROIDisplayColor,
                                  std::to_string(rgb[0]) + "\\" + std::to_string(rgb[1]) + "\\" +
                                      std::to_string(rgb[2]));
            !s) {
            return s;
        }
        if (Status s = put_string(**item, DCM_ReferencedROINumber, std::to_string(segment.label));
            !s) {
            return s;
        }
        auto contour_seq = new_sequence(**item, DCM_ContourSequence);
        if (!contour_seq) {
            return contour_seq.error();
        }
        for (const auto& [k, l] : where[segment.label]) {
            for (std::size_t c = 0; c < contours[k][l].contours.size(); ++c) {
                auto contour = append_to(**contour_seq);
                if (!contour) {
                    return contour.error();
                }
                auto images = new_sequence(**contour, DCM_ContourImageSequence);
                if (!images) {
                    return images.error();
                }
                auto image = append_to(**images);
                if (!image) {
                    return image.error();
                }
                if (Status s = put_image_reference(**image, refs.sop_class, refs.instances[k],
                                                   refs.frames[k]);
                    !s) {
                    return s;
                }
                const std::size_t points = contours[k][l].contours[c].points.size();
                if (Status s = put_string(**contour, DCM_ContourGeometricType, "CLOSED_PLANAR");
                    !s) {
                    return s;
                }
                if (Status s =
                        put_string(**contour, DCM_NumberOfContourPoints, std::to_string(points));
                    !s) {
                    return s;
                }
                const std::string& values = data[k][l][c];
                if (values.size() > 65534) { // the point limit should make this impossible
                    return Error{"ContourData of " + std::to_string(values.size()) +
                                 " bytes exceeds 64 KiB"};
                }
                if (Status s = put_string(**contour, DCM_ContourData, values); !s) {
                    return s;
                }
            }
        }
    }
    return ok_status();
}

} // namespace

Result<WrittenObject> write_rtstruct(const LoadedSeries& source, const LabelMap& labels,
                                     const std::vector<SegmentInfo>& segments,
                                     const DerivedObjectOptions& options,
                                     const std::filesystem::path& out_file) {
    const Geometry& g = source.volume.geometry;
    if (Status s = detail::check_writer_inputs(g, labels, segments, options, "structure set label");
        !s) {
        return s.error();
    }
    auto refs = source_references(source);
    if (!refs) {
        return refs.error();
    }

    const std::stop_token& stop = options.stop;
    const auto cancelled = [] { return Error{cancelled_message}; };
    if (stop.stop_requested()) {
        return cancelled();
    }

    // One pass over the label map, slice by slice in parallel: each slice's labels and their
    // bounding boxes, then each label traced within its box only. Every ContourData value must
    // stay below 64 KiB.
    ContourOptions contour_options;
    contour_options.max_points = contour_data_point_limit(max_abs_coordinate(g));
    contour_options.stop = stop;
    const auto contours = extract_volume_contours(labels, contour_options);
    if (stop.stop_requested()) {
        return cancelled();
    }

    std::array<const SegmentInfo*, 256> declared{};
    for (const SegmentInfo& s : segments) {
        declared[s.label] = &s;
    }
    std::array<std::size_t, 256> counts{};
    for (const auto& slice : contours) {
        for (const LabelContours& lc : slice) {
            counts[lc.label] += lc.contours.size();
        }
    }
    WrittenObject written;
    std::vector<Roi> rois;
    for (std::size_t l = 1; l < 256; ++l) {
        if (counts[l] != 0 && declared[l] == nullptr) {
            return Error{"label " + std::to_string(l) +
                         " occurs in the label map but is not a declared segment"};
        }
    }
    std::vector<const SegmentInfo*> ordered;
    for (const SegmentInfo& s : segments) {
        ordered.push_back(&s);
    }
    std::sort(ordered.begin(), ordered.end(),
              [](const SegmentInfo* a, const SegmentInfo* b) { return a->label < b->label; });
    for (const SegmentInfo* s : ordered) {
        if (counts[s->label] == 0) {
            written.notes.push_back("segment " + std::to_string(s->label) + " '" + s->name +
                                    "' has no voxels: no ROI written");
        } else {
            rois.push_back({s, counts[s->label]});
            written.items += counts[s->label];
        }
    }
    if (rois.empty()) {
        return Error{"label map has no foreground: no RTSTRUCT written"};
    }
    unsigned threads = std::clamp(std::thread::hardware_concurrency(), 1U, 4U);
    const ContourStrings data = format_contours(g, contours, threads, stop);
    if (stop.stop_requested()) {
        return cancelled();
    }

    auto header = detail::read_source_header(source.files.front());
    if (!header) {
        return header.error();
    }
    DcmDataset& src = *(*header)->getDataset();
    DcmFileFormat file;
    DcmDataset& ds = *file.getDataset();
    if (Status s = detail::copy_patient_study(src, ds); !s) {
        return s.error();
    }
    auto frame_of_reference = detail::copy_frame_of_reference(src, ds);
    if (!frame_of_reference) {
        return frame_of_reference.error();
    }
    if (*frame_of_reference != source.frame_of_reference_uid &&
        !source.frame_of_reference_uid.empty()) {
        return Error{"the first source file's FrameOfReferenceUID " + *frame_of_reference +
                     " differs from the loaded series' " + source.frame_of_reference_uid};
    }
    auto sop_instance = detail::make_uid(options.uid_root);
    auto series_instance = detail::make_uid(options.uid_root);
    if (!sop_instance || !series_instance) {
        return !sop_instance ? sop_instance.error() : series_instance.error();
    }
    detail::NewInstance instance;
    instance.sop_class_uid = rt_structure_set_storage;
    instance.sop_instance_uid = *sop_instance;
    instance.series_instance_uid = *series_instance;
    instance.modality = "RTSTRUCT";
    instance.default_series_description =
        "segnode" + (options.algorithm_name.empty() ? "" : " " + options.algorithm_name) +
        " RTSTRUCT";
    instance.content_date_time = false; // the RT Structure Set IOD has StructureSetDate/Time
    if (Status s = detail::put_new_instance(ds, options, instance); !s) {
        return s.error();
    }
    if (Status s = put_empty(ds, DCM_OperatorsName); !s) { // RT Series, Type 2
        return s.error();
    }
    if (Status s = put_structure_set(ds, source, *refs, *frame_of_reference, options); !s) {
        return s.error();
    }
    if (Status s = put_roi_definitions(ds, rois, *frame_of_reference, options); !s) {
        return s.error();
    }
    if (Status s = put_roi_contours(ds, rois, contours, data, *refs, stop); !s) {
        return s.error();
    }
    if (stop.stop_requested()) {
        return cancelled();
    }
    if (Status s = detail::write_dicom_file(file, out_file); !s) {
        return s.error();
    }
    if (stop.stop_requested()) { // a request during the save: the object is not delivered
        std::error_code ec;
        std::filesystem::remove(out_file, ec);
        return cancelled();
    }
    written.file = out_file;
    written.sop_class_uid = rt_structure_set_storage;
    written.sop_instance_uid = *sop_instance;
    written.series_instance_uid = *series_instance;
    return written;
}

} // namespace segnode::dicom
