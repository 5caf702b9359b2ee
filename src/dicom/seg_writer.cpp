#include "segnode/dicom/seg_writer.hpp"

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdatset.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "derived_common.hpp"
#include "instance_header.hpp"
#include "seg_pixels.hpp"
#include "segnode/core/version.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <unordered_set>

namespace segnode::dicom {
namespace {

using detail::append_item;
using detail::format_ds;
using detail::put_code_sequence;
using detail::put_string;
using detail::SegFrame;

constexpr const char* segmentation_storage = "1.2.840.10008.5.1.4.1.1.66.4";

const CodedConcept purpose_source_image{"121322", "DCM",
                                        "Source image for image processing operation"};
const CodedConcept derivation_segmentation{"113076", "DCM", "Segmentation"};

Error condition_error(const std::string& what, const OFCondition& cond) {
    return Error{what + ": " + cond.text()};
}

Status put_us(DcmItem& item, const DcmTagKey& tag, std::uint16_t value) {
    const OFCondition cond = item.putAndInsertUint16(tag, value);
    if (cond.bad()) {
        return condition_error("cannot write " + detail::tag_label(tag), cond);
    }
    return ok_status();
}

/// Images beyond the US range of Rows/Columns cannot be described.
Status check_image_size(const Geometry& g) {
    if (g.dims[0] > 65535 || g.dims[1] > 65535) {
        return Error{"images of more than 65535 rows or columns cannot be written as SEG"};
    }
    return ok_status();
}

/// The codes a SEG segment must have (the declarations themselves are checked by
/// check_writer_inputs): checked up front so that nothing is written for a bad declaration.
Status check_segment_codes(const std::vector<SegmentInfo>& segments) {
    for (const SegmentInfo& s : segments) {
        for (const CodedConcept* code : {&s.category, &s.type}) {
            if (code->value.empty() || code->scheme.empty() || code->meaning.empty()) {
                return Error{"segment " + std::to_string(s.label) + " '" + s.name +
                             "': category and type codes need value, scheme and meaning"};
            }
        }
    }
    return ok_status();
}

Status put_segment(DcmItem& item, const SegmentInfo& segment, std::uint16_t number,
                   const DerivedObjectOptions& options) {
    const std::string algorithm =
        options.algorithm_name.empty() ? std::string("segnode") : options.algorithm_name;
    const std::string version = options.algorithm_version.empty() ? std::string(version_string())
                                                                  : options.algorithm_version;
    if (Status s = put_us(item, DCM_SegmentNumber, number); !s) {
        return s;
    }
    if (Status s = put_string(item, DCM_SegmentLabel, segment.name); !s) {
        return s;
    }
    if (Status s =
            put_code_sequence(item, DCM_SegmentedPropertyCategoryCodeSequence, segment.category);
        !s) {
        return s;
    }
    if (Status s = put_code_sequence(item, DCM_SegmentedPropertyTypeCodeSequence, segment.type);
        !s) {
        return s;
    }
    if (Status s = put_string(item, DCM_SegmentAlgorithmType, "AUTOMATIC"); !s) {
        return s;
    }
    if (Status s = put_string(item, DCM_SegmentAlgorithmName, algorithm); !s) {
        return s;
    }
    auto algo = append_item(item, DCM_SegmentationAlgorithmIdentificationSequence);
    if (!algo) {
        return algo.error();
    }
    if (Status s =
            put_code_sequence(**algo, DCM_AlgorithmFamilyCodeSequence, options.algorithm_family);
        !s) {
        return s;
    }
    if (Status s = put_string(**algo, DCM_AlgorithmName, algorithm); !s) {
        return s;
    }
    if (Status s = put_string(**algo, DCM_AlgorithmVersion, version); !s) {
        return s;
    }
    const std::array<std::uint16_t, 3> lab = detail::srgb_to_dicom_lab(segment.rgb);
    const OFCondition cond =
        item.putAndInsertUint16Array(DCM_RecommendedDisplayCIELabValue, lab.data(), 3);
    if (cond.bad()) {
        return condition_error("cannot write RecommendedDisplayCIELabValue", cond);
    }
    return ok_status();
}

Status put_shared_groups(DcmDataset& dataset, const Geometry& g) {
    auto shared = append_item(dataset, DCM_SharedFunctionalGroupsSequence);
    if (!shared) {
        return shared.error();
    }
    auto orientation = append_item(**shared, DCM_PlaneOrientationSequence);
    if (!orientation) {
        return orientation.error();
    }
    const Vec3d di = axis_direction(g, 0);
    const Vec3d dj = axis_direction(g, 1);
    if (Status s = put_string(**orientation, DCM_ImageOrientationPatient,
                              format_ds({di[0], di[1], di[2], dj[0], dj[1], dj[2]}));
        !s) {
        return s;
    }
    auto measures = append_item(**shared, DCM_PixelMeasuresSequence);
    if (!measures) {
        return measures.error();
    }
    // PixelSpacing is row spacing (between rows, along j) \ column spacing (along i).
    if (Status s =
            put_string(**measures, DCM_PixelSpacing, format_ds({g.spacing[1], g.spacing[0]}));
        !s) {
        return s;
    }
    if (Status s = put_string(**measures, DCM_SliceThickness, format_ds(g.spacing[2])); !s) {
        return s;
    }
    return put_string(**measures, DCM_SpacingBetweenSlices, format_ds(g.spacing[2]));
}

Status put_dimensions(DcmDataset& dataset, const std::string& organization_uid) {
    auto org = append_item(dataset, DCM_DimensionOrganizationSequence);
    if (!org) {
        return org.error();
    }
    if (Status s = put_string(**org, DCM_DimensionOrganizationUID, organization_uid); !s) {
        return s;
    }
    struct Dimension {
        DcmTagKey index;
        DcmTagKey group;
        const char* label;
    };
    const Dimension dimensions[] = {
        {DCM_ReferencedSegmentNumber, DCM_SegmentIdentificationSequence, "ReferencedSegmentNumber"},
        {DCM_ImagePositionPatient, DCM_PlanePositionSequence, "ImagePositionPatient"}};
    for (const Dimension& d : dimensions) {
        auto item = append_item(dataset, DCM_DimensionIndexSequence);
        if (!item) {
            return item.error();
        }
        if (Status s = put_string(**item, DCM_DimensionOrganizationUID, organization_uid); !s) {
            return s;
        }
        OFCondition cond = (*item)->putAndInsertTagKey(DCM_DimensionIndexPointer, d.index);
        if (cond.good()) {
            cond = (*item)->putAndInsertTagKey(DCM_FunctionalGroupPointer, d.group);
        }
        if (cond.bad()) {
            return condition_error("cannot write a DimensionIndexSequence item", cond);
        }
        if (Status s = put_string(**item, DCM_DimensionDescriptionLabel, d.label); !s) {
            return s;
        }
    }
    return ok_status();
}

/// Per-slice values every frame of that slice shares.
struct SliceRef {
    std::string position; ///< ImagePositionPatient as DS
    std::string sop_instance_uid;
    std::uint32_t frame_number = 0; ///< 0: single-frame source, no ReferencedFrameNumber
};

Status put_frame(DcmItem& frame, const SegFrame& f, const SliceRef& slice,
                 const std::string& source_sop_class) {
    auto derivation = append_item(frame, DCM_DerivationImageSequence);
    if (!derivation) {
        return derivation.error();
    }
    auto source = append_item(**derivation, DCM_SourceImageSequence);
    if (!source) {
        return source.error();
    }
    if (Status s = put_string(**source, DCM_ReferencedSOPClassUID, source_sop_class); !s) {
        return s;
    }
    if (Status s = put_string(**source, DCM_ReferencedSOPInstanceUID, slice.sop_instance_uid); !s) {
        return s;
    }
    if (slice.frame_number != 0) {
        if (Status s =
                put_string(**source, DCM_ReferencedFrameNumber, std::to_string(slice.frame_number));
            !s) {
            return s;
        }
    }
    if (Status s =
            put_code_sequence(**source, DCM_PurposeOfReferenceCodeSequence, purpose_source_image);
        !s) {
        return s;
    }
    if (Status s =
            put_code_sequence(**derivation, DCM_DerivationCodeSequence, derivation_segmentation);
        !s) {
        return s;
    }

    auto content = append_item(frame, DCM_FrameContentSequence);
    if (!content) {
        return content.error();
    }
    const Uint32 index[2] = {f.segment, static_cast<Uint32>(f.slice + 1)};
    OFCondition cond = (*content)->putAndInsertUint32Array(DCM_DimensionIndexValues, index, 2);
    if (cond.bad()) {
        return condition_error("cannot write DimensionIndexValues", cond);
    }

    auto position = append_item(frame, DCM_PlanePositionSequence);
    if (!position) {
        return position.error();
    }
    if (Status s = put_string(**position, DCM_ImagePositionPatient, slice.position); !s) {
        return s;
    }

    auto segment = append_item(frame, DCM_SegmentIdentificationSequence);
    if (!segment) {
        return segment.error();
    }
    return put_us(**segment, DCM_ReferencedSegmentNumber, f.segment);
}

Status put_referenced_series(DcmDataset& dataset, const LoadedSeries& source,
                             const std::string& source_sop_class) {
    auto series = append_item(dataset, DCM_ReferencedSeriesSequence);
    if (!series) {
        return series.error();
    }
    if (Status s = put_string(**series, DCM_SeriesInstanceUID, source.series_uid); !s) {
        return s;
    }
    std::unordered_set<std::string> seen;
    for (const std::string& uid : source.sop_instance_uids) {
        if (!seen.insert(uid).second) {
            continue; // frames of one multi-frame instance
        }
        auto instance = append_item(**series, DCM_ReferencedInstanceSequence);
        if (!instance) {
            return instance.error();
        }
        if (Status s = put_string(**instance, DCM_ReferencedSOPClassUID, source_sop_class); !s) {
            return s;
        }
        if (Status s = put_string(**instance, DCM_ReferencedSOPInstanceUID, uid); !s) {
            return s;
        }
    }
    return ok_status();
}

/// A PN value without any component separator ("SEGNODE") is the retired single-string form
/// to dciodvfy; "SEGNODE^" says the same as a family name.
std::string person_name(const std::string& name) {
    return name.empty() || name.find('^') != std::string::npos ? name : name + "^";
}

Status put_image_attributes(DcmDataset& dataset, const Geometry& g, std::size_t frames,
                            const DerivedObjectOptions& options) {
    const std::pair<DcmTagKey, std::string> strings[] = {
        {DCM_ImageType, "DERIVED\\PRIMARY"},
        {DCM_PhotometricInterpretation, "MONOCHROME2"},
        {DCM_NumberOfFrames, std::to_string(frames)},
        {DCM_LossyImageCompression, "00"},
        {DCM_SegmentationType, "BINARY"},
        {DCM_ContentLabel, options.content_label},
        {DCM_ContentDescription,
         "segnode " + (options.algorithm_name.empty() ? std::string("segmentation")
                                                      : options.algorithm_name + " segmentation")},
        {DCM_ContentCreatorName, person_name(options.content_creator)},
    };
    for (const auto& [tag, value] : strings) {
        if (Status s = put_string(dataset, tag, value); !s) {
            return s;
        }
    }
    const std::pair<DcmTagKey, std::uint16_t> numbers[] = {
        {DCM_SamplesPerPixel, 1},
        {DCM_Rows, static_cast<std::uint16_t>(g.dims[1])},
        {DCM_Columns, static_cast<std::uint16_t>(g.dims[0])},
        {DCM_BitsAllocated, 1},
        {DCM_BitsStored, 1},
        {DCM_HighBit, 0},
        {DCM_PixelRepresentation, 0},
    };
    for (const auto& [tag, value] : numbers) {
        if (Status s = put_us(dataset, tag, value); !s) {
            return s;
        }
    }
    return ok_status();
}

/// Frames packed and written per piece of PixelData: a multiple of 8, so that every piece
/// starts on a byte boundary, and about 4 MiB of packed bits.
std::size_t frames_per_piece(std::size_t frame_bits) {
    const std::size_t target_bits = std::size_t{4} << 23U; // 4 MiB
    return std::max<std::size_t>(8, target_bits / std::max<std::size_t>(frame_bits, 1) / 8 * 8);
}

/// Appends the PixelData element (OB, explicit VR little endian, explicit length) to the file
/// DCMTK has just written without it. PixelData (7FE0,0010) has the highest tag of the data set,
/// so appending it keeps the elements in order. The frames are packed and written one piece at
/// a time: no buffer of the whole value (hundreds of MB for 100+ segments), and a stop request
/// is seen between pieces. Returns "cancelled" on a stop request; the caller removes the file.
Status append_pixel_data(const std::filesystem::path& path, const LabelMap& labels,
                         const std::vector<SegFrame>& frames, std::uint64_t size,
                         const std::stop_token& stop) {
    const Geometry& g = labels.geometry;
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "ab"),
                                                         &std::fclose);
    if (!file) {
        return Error{"cannot open " + path.string() +
                     " to append PixelData: " + std::generic_category().message(errno)};
    }
    const auto length = static_cast<std::uint32_t>(size);
    // (7FE0,0010) OB, 2 reserved bytes, 32-bit length; all little endian.
    const std::uint8_t header[12] = {0xE0,
                                     0x7F,
                                     0x10,
                                     0x00,
                                     'O',
                                     'B',
                                     0,
                                     0,
                                     static_cast<std::uint8_t>(length),
                                     static_cast<std::uint8_t>(length >> 8U),
                                     static_cast<std::uint8_t>(length >> 16U),
                                     static_cast<std::uint8_t>(length >> 24U)};
    const auto write_error = [&] {
        return Error{"cannot write PixelData to " + path.string() + ": " +
                     std::generic_category().message(errno)};
    };
    if (std::fwrite(header, 1, sizeof header, file.get()) != sizeof header) {
        return write_error();
    }
    const std::size_t frame_bits = g.dims[0] * g.dims[1];
    const std::size_t per_piece = frames_per_piece(frame_bits);
    std::vector<std::uint8_t> piece((per_piece * frame_bits + 7) / 8);
    std::uint64_t written = 0;
    for (std::size_t first = 0; first < frames.size(); first += per_piece) {
        if (stop.stop_requested()) {
            return Error{cancelled_message};
        }
        const std::size_t count = std::min(per_piece, frames.size() - first);
        const std::size_t bytes = (count * frame_bits + 7) / 8;
        detail::pack_frame_range(labels, frames, first, count, piece.data(), bytes);
        if (std::fwrite(piece.data(), 1, bytes, file.get()) != bytes) {
            return write_error();
        }
        written += bytes;
    }
    // Padding to the even length of the value.
    for (; written < size; ++written) {
        if (std::fputc(0, file.get()) == EOF) {
            return write_error();
        }
    }
    if (std::fflush(file.get()) != 0) {
        return write_error();
    }
    if (std::fclose(file.release()) != 0) {
        return write_error();
    }
    return ok_status();
}

} // namespace

Result<WrittenObject> write_seg(const LoadedSeries& source, const LabelMap& labels,
                                const std::vector<SegmentInfo>& segments,
                                const DerivedObjectOptions& options,
                                const std::filesystem::path& out_file) {
    // Everything that can be refused is checked before a byte is written.
    const Geometry& g = source.volume.geometry;
    if (Status s = detail::check_writer_inputs(g, labels, segments, options, "content label"); !s) {
        return s.error();
    }
    if (Status s = check_image_size(g); !s) {
        return s.error();
    }
    const std::size_t slices = g.dims[2];
    if (source.sop_instance_uids.size() != slices || source.frame_numbers.size() != slices ||
        source.files.empty()) {
        return Error{"source series lists " + std::to_string(source.sop_instance_uids.size()) +
                     " instances and " + std::to_string(source.frame_numbers.size()) +
                     " frame numbers for " + std::to_string(slices) + " slices"};
    }
    if (Status s = check_segment_codes(segments); !s) {
        return s.error();
    }
    const std::stop_token& stop = options.stop;
    const auto cancelled = [] { return Error{cancelled_message}; };
    if (stop.stop_requested()) {
        return cancelled();
    }

    // One pass over the label map: which labels occur in which slices and rows. Everything
    // after it works per segment on those slices and rows only.
    const detail::LabelCensus census = detail::take_census(labels, 0, stop);
    if (stop.stop_requested()) {
        return cancelled();
    }
    std::array<const SegmentInfo*, 256> declared{};
    for (const SegmentInfo& s : segments) {
        declared[s.label] = &s;
    }
    for (std::size_t l = 1; l < 256; ++l) {
        if (census.anywhere[l] && declared[l] == nullptr) {
            const auto label = static_cast<std::uint8_t>(l);
            return Error{"label " + std::to_string(l) + " occurs in " +
                         std::to_string(detail::count_voxels(labels, label)) +
                         " voxels of the label map but is not a declared segment"};
        }
    }
    WrittenObject written;
    std::vector<const SegmentInfo*> kept;
    for (std::size_t l = 1; l < 256; ++l) {
        if (declared[l] == nullptr) {
            continue;
        }
        if (!census.anywhere[l]) {
            written.notes.push_back("segment " + std::to_string(l) + " '" + declared[l]->name +
                                    "' has no voxels: left out of the SEG");
            continue;
        }
        if (kept.size() + 1 != l) {
            written.notes.push_back("label " + std::to_string(l) + " '" + declared[l]->name +
                                    "' is SEG segment number " + std::to_string(kept.size() + 1));
        }
        kept.push_back(declared[l]);
    }
    if (kept.empty()) {
        return Error{"label map has no foreground: no SEG written"};
    }
    std::vector<std::uint8_t> kept_labels;
    for (const SegmentInfo* s : kept) {
        kept_labels.push_back(s->label);
    }
    const std::vector<SegFrame> frames = detail::plan_frames(census, kept_labels);

    auto header = detail::read_source_header(source.files.front());
    if (!header) {
        return header.error();
    }
    DcmDataset& source_ds = *(*header)->getDataset();
    std::string source_sop_class = source.sop_class_uid;
    if (source_sop_class.empty()) {
        OFString value;
        if (source_ds.findAndGetOFString(DCM_SOPClassUID, value).bad() || value.empty()) {
            return Error{"source has no SOPClassUID"};
        }
        source_sop_class = value.c_str();
    }
    bool multi_frame_source = detail::is_enhanced_ct_mr(source_sop_class);
    for (const std::uint32_t n : source.frame_numbers) {
        multi_frame_source = multi_frame_source || n > 1;
    }

    DcmFileFormat file;
    DcmDataset& ds = *file.getDataset();
    if (Status s = detail::copy_patient_study(source_ds, ds); !s) {
        return s.error();
    }
    if (auto fo_r = detail::copy_frame_of_reference(source_ds, ds); !fo_r) {
        return fo_r.error();
    }
    auto series_uid = detail::make_uid(options.uid_root);
    auto sop_uid = detail::make_uid(options.uid_root);
    auto organization_uid = detail::make_uid(options.uid_root);
    if (!series_uid || !sop_uid || !organization_uid) {
        return Error{"cannot make UIDs under root '" + options.uid_root + "'"};
    }
    detail::NewInstance instance;
    instance.sop_class_uid = segmentation_storage;
    instance.sop_instance_uid = *sop_uid;
    instance.series_instance_uid = *series_uid;
    instance.modality = "SEG";
    instance.default_series_description =
        "segnode " +
        (options.algorithm_name.empty() ? std::string() : options.algorithm_name + " ") + "SEG";
    if (Status s = detail::put_new_instance(ds, options, instance); !s) {
        return s.error();
    }
    if (Status s = put_image_attributes(ds, g, frames.size(), options); !s) {
        return s.error();
    }
    for (std::size_t i = 0; i < kept.size(); ++i) {
        if (stop.stop_requested()) {
            return cancelled();
        }
        auto item = append_item(ds, DCM_SegmentSequence);
        if (!item) {
            return item.error();
        }
        if (Status s = put_segment(**item, *kept[i], static_cast<std::uint16_t>(i + 1), options);
            !s) {
            return Error{"segment '" + kept[i]->name + "': " + s.error().message};
        }
    }
    if (Status s = put_dimensions(ds, *organization_uid); !s) {
        return s.error();
    }
    if (Status s = put_shared_groups(ds, g); !s) {
        return s.error();
    }

    std::vector<SliceRef> slice_refs(slices);
    for (std::size_t k = 0; k < slices; ++k) {
        const Vec3d p = voxel_to_patient(g, 0, 0, static_cast<double>(k));
        slice_refs[k].position = format_ds({p[0], p[1], p[2]});
        slice_refs[k].sop_instance_uid = source.sop_instance_uids[k];
        slice_refs[k].frame_number = multi_frame_source ? source.frame_numbers[k] : 0;
    }
    // The per-frame items go straight into one sequence: appending through the data set would
    // look the sequence up again for each of possibly thousands of frames.
    auto per_frame = std::make_unique<DcmSequenceOfItems>(DCM_PerFrameFunctionalGroupsSequence);
    for (const SegFrame& f : frames) {
        if (stop.stop_requested()) {
            return cancelled();
        }
        auto item = std::make_unique<DcmItem>();
        if (Status s = put_frame(*item, f, slice_refs[f.slice], source_sop_class); !s) {
            return s.error();
        }
        const OFCondition cond = per_frame->append(item.get());
        if (cond.bad()) {
            return condition_error("cannot add a per-frame functional group item", cond);
        }
        item.release();
    }
    if (const OFCondition cond = ds.insert(per_frame.get(), OFTrue); cond.bad()) {
        return condition_error("cannot insert PerFrameFunctionalGroupsSequence", cond);
    }
    per_frame.release();
    if (Status s = put_referenced_series(ds, source, source_sop_class); !s) {
        return s.error();
    }
    const std::uint64_t pixel_bytes = detail::packed_size(frames.size(), g.dims[1], g.dims[0]);
    if (pixel_bytes >= std::numeric_limits<Uint32>::max()) {
        return Error{"SEG pixel data of " + std::to_string(pixel_bytes) +
                     " bytes exceed the 4 GiB limit of an uncompressed value"};
    }
    if (stop.stop_requested()) {
        return cancelled();
    }
    // The data set goes to the file without PixelData, which is then appended piece by piece.
    if (Status s = detail::write_dicom_file(file, out_file); !s) {
        return s.error();
    }
    if (Status s = append_pixel_data(out_file, labels, frames, pixel_bytes, stop); !s) {
        std::error_code ec;
        std::filesystem::remove(out_file, ec); // no partial object left behind
        return s.error();
    }

    written.file = out_file;
    written.sop_class_uid = segmentation_storage;
    written.sop_instance_uid = *sop_uid;
    written.series_instance_uid = *series_uid;
    written.items = frames.size();
    return written;
}

} // namespace segnode::dicom
