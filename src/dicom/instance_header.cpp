#include "instance_header.hpp"

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dccodec.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "j2k_decoder.hpp"
#include "segnode/dicom/sop_classes.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

namespace segnode::dicom::detail {
namespace {

enum class Sniff { Part10, MaybeDataset, NotDicom };

/// Part 10 files have "DICM" after a 128-byte preamble; a bare data set (no meta header) is
/// tried only when it starts with a group 0x0008 or 0x0002 tag in little endian.
Result<Sniff> sniff(const std::filesystem::path& file) {
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(file.c_str(), "rb"), &std::fclose);
    if (!f) {
        return Error{file.string() + ": cannot open: " + std::strerror(errno)};
    }
    std::array<unsigned char, 132> head{};
    const std::size_t got = std::fread(head.data(), 1, head.size(), f.get());
    if (got == head.size() && std::memcmp(&head[128], "DICM", 4) == 0) {
        return Sniff::Part10;
    }
    if (got >= 8 && (head[0] == 0x08 || head[0] == 0x02) && head[1] == 0x00) {
        return Sniff::MaybeDataset;
    }
    return Sniff::NotDicom;
}

std::string trim(const OFString& value) {
    std::string out(value.c_str());
    const auto last = out.find_last_not_of(" \t\r\n");
    out.erase(last == std::string::npos ? 0 : last + 1);
    const auto first = out.find_first_not_of(' ');
    return first == std::string::npos ? std::string() : out.substr(first);
}

std::string get_string(DcmItem& item, const DcmTagKey& tag) {
    OFString value;
    if (item.findAndGetOFStringArray(tag, value).good()) {
        return trim(value);
    }
    return {};
}

std::optional<std::uint16_t> get_us(DcmItem& item, const DcmTagKey& tag) {
    Uint16 value = 0;
    if (item.findAndGetUint16(tag, value).good()) {
        return value;
    }
    return std::nullopt;
}

std::optional<double> get_double(DcmItem& item, const DcmTagKey& tag) {
    Float64 value = 0.0;
    if (item.findAndGetFloat64(tag, value).good() && std::isfinite(value)) {
        return value;
    }
    return std::nullopt;
}

/// Exactly N finite values, or nothing (absent, empty or malformed).
template <std::size_t N>
std::optional<std::array<double, N>> get_doubles(DcmItem& item, const DcmTagKey& tag) {
    DcmElement* element = nullptr;
    if (item.findAndGetElement(tag, element).bad() || element == nullptr || element->getVM() != N) {
        return std::nullopt;
    }
    std::array<double, N> out{};
    for (std::size_t i = 0; i < N; ++i) {
        Float64 value = 0.0;
        if (element->getFloat64(value, static_cast<unsigned long>(i)).bad() ||
            !std::isfinite(value)) {
            return std::nullopt;
        }
        out[i] = value;
    }
    return out;
}

/// First item of the functional group macro `sequence`, per frame first, then shared.
DcmItem* functional_group(DcmItem* per_frame, DcmItem* shared, const DcmTagKey& sequence) {
    for (DcmItem* group : {per_frame, shared}) {
        DcmItem* item = nullptr;
        if (group != nullptr && group->findAndGetSequenceItem(sequence, item, 0).good() &&
            item != nullptr) {
            return item;
        }
    }
    return nullptr;
}

/// JPEG 2000 Part 1 (.90 lossless only, .91): decoded with OpenJPEG (j2k_decoder.cpp).
bool is_jpeg2000_part1(E_TransferSyntax xfer) {
    return xfer == EXS_JPEG2000LosslessOnly || xfer == EXS_JPEG2000;
}

bool is_lossy(E_TransferSyntax xfer) {
    return xfer == EXS_JPEGProcess1 || xfer == EXS_JPEGProcess2_4 || xfer == EXS_JPEGLSLossy ||
           xfer == EXS_JPEG2000;
}

std::string sop_class_text(const std::string& uid) {
    const std::string name = uid_name(uid);
    if (uid.empty()) {
        return "an object without SOP Class UID";
    }
    return name.empty() ? "SOP class " + uid : name + " (" + uid + ")";
}

/// Why the pixel data of this instance cannot be decoded, or "".
std::string pixel_problem(const InstanceHeader& h, E_TransferSyntax xfer) {
    const DcmXfer x(xfer);
    if (xfer == EXS_Unknown) {
        return "unknown transfer syntax '" + h.transfer_syntax_uid + "'";
    }
    if (x.isEncapsulated() && !is_jpeg2000_part1(xfer) &&
        !DcmCodecList::canChangeCoding(xfer, EXS_LittleEndianExplicit)) {
        const std::string what =
            std::string("transfer syntax ") + x.getXferName() + " (" + x.getXferID() + ")";
        if (xfer == EXS_JPEG2000MulticomponentLosslessOnly || xfer == EXS_JPEG2000Multicomponent) {
            return what + " (JPEG 2000 Part 2 multi-component) cannot be decoded: only JPEG 2000 "
                          "Part 1 (1.2.840.10008.1.2.4.90 and .91) is";
        }
        if (xfer == EXS_JPIPReferenced || xfer == EXS_JPIPReferencedDeflate) {
            return what + ": the pixel data are not in the object but on a JPIP server, which "
                          "segnode does not fetch";
        }
        return what + " cannot be decoded (no decoder registered)";
    }
    if (h.samples_per_pixel != 1 ||
        (h.photometric != "MONOCHROME1" && h.photometric != "MONOCHROME2")) {
        return "PhotometricInterpretation '" + h.photometric + "' with SamplesPerPixel " +
               std::to_string(h.samples_per_pixel) +
               ": only grayscale (MONOCHROME1/MONOCHROME2) images can be loaded";
    }
    if (h.bits_allocated != 8 && h.bits_allocated != 16) {
        return "BitsAllocated " + std::to_string(h.bits_allocated) +
               ": only 8 and 16 bits per pixel are supported";
    }
    if (h.bits_stored == 0 || h.bits_stored > h.bits_allocated || h.high_bit >= h.bits_allocated ||
        h.high_bit + 1 < h.bits_stored) {
        return "inconsistent BitsAllocated " + std::to_string(h.bits_allocated) + " / BitsStored " +
               std::to_string(h.bits_stored) + " / HighBit " + std::to_string(h.high_bit);
    }
    if (h.pixel_representation > 1) {
        return "PixelRepresentation " + std::to_string(h.pixel_representation) +
               " is neither 0 (unsigned) nor 1 (signed)";
    }
    return {};
}

/// Rescale slope and intercept from `item`; false with a reason when present but unusable.
bool read_rescale(DcmItem& item, double& slope, double& intercept, std::string& problem) {
    if (item.tagExists(DCM_RescaleSlope)) {
        const auto value = get_double(item, DCM_RescaleSlope);
        if (!value || *value == 0.0) {
            problem = "RescaleSlope '" + get_string(item, DCM_RescaleSlope) + "' is not usable";
            return false;
        }
        slope = *value;
    }
    if (item.tagExists(DCM_RescaleIntercept)) {
        const auto value = get_double(item, DCM_RescaleIntercept);
        if (!value) {
            problem =
                "RescaleIntercept '" + get_string(item, DCM_RescaleIntercept) + "' is not a number";
            return false;
        }
        intercept = *value;
    }
    return true;
}

void read_single_frame(DcmDataset& ds, InstanceHeader& h) {
    FrameHeader frame;
    frame.frame = 0;
    SliceGeometry& g = frame.geometry;
    g.label = image_label(h, 0);
    g.position = get_doubles<3>(ds, DCM_ImagePositionPatient);
    g.orientation = get_doubles<6>(ds, DCM_ImageOrientationPatient);
    g.pixel_spacing = get_doubles<2>(ds, DCM_PixelSpacing);
    g.slice_thickness = get_double(ds, DCM_SliceThickness).value_or(0.0);
    std::string problem;
    if (!read_rescale(ds, frame.slope, frame.intercept, problem) && h.unsupported.empty()) {
        h.unsupported = problem;
    }
    h.frames.push_back(std::move(frame));
}

void read_functional_groups(DcmDataset& ds, InstanceHeader& h) {
    h.multi_frame = true;
    DcmItem* shared = nullptr;
    if (ds.findAndGetSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0).bad()) {
        shared = nullptr;
    }
    DcmSequenceOfItems* per_frame = nullptr;
    if (ds.findAndGetSequence(DCM_PerFrameFunctionalGroupsSequence, per_frame).bad()) {
        per_frame = nullptr;
    }
    const std::string what = sop_class_text(h.sop_class_uid);
    if (per_frame == nullptr || per_frame->card() == 0) {
        if (h.unsupported.empty()) {
            h.unsupported = what + " without a Per-frame Functional Groups Sequence (5200,9230): "
                                   "it carries no per-frame plane positions to build a volume from";
        }
        return;
    }
    if (per_frame->card() != h.number_of_frames) {
        if (h.unsupported.empty()) {
            h.unsupported = "the Per-frame Functional Groups Sequence has " +
                            std::to_string(per_frame->card()) + " items but NumberOfFrames is " +
                            std::to_string(h.number_of_frames);
        }
        return;
    }
    // Top-level rescale values, if any, apply where the functional groups have none.
    double default_slope = 1.0;
    double default_intercept = 0.0;
    std::string problem;
    if (!read_rescale(ds, default_slope, default_intercept, problem) && h.unsupported.empty()) {
        h.unsupported = problem;
    }
    h.frames.reserve(h.number_of_frames);
    for (std::uint32_t f = 0; f < h.number_of_frames; ++f) {
        DcmItem* item = per_frame->getItem(static_cast<unsigned long>(f));
        FrameHeader frame;
        frame.frame = f;
        SliceGeometry& g = frame.geometry;
        g.label = image_label(h, f);
        if (DcmItem* m = functional_group(item, shared, DCM_PlanePositionSequence)) {
            g.position = get_doubles<3>(*m, DCM_ImagePositionPatient);
        }
        if (DcmItem* m = functional_group(item, shared, DCM_PlaneOrientationSequence)) {
            g.orientation = get_doubles<6>(*m, DCM_ImageOrientationPatient);
        }
        if (DcmItem* m = functional_group(item, shared, DCM_PixelMeasuresSequence)) {
            g.pixel_spacing = get_doubles<2>(*m, DCM_PixelSpacing);
            g.slice_thickness = get_double(*m, DCM_SliceThickness).value_or(0.0);
        }
        if (DcmItem* m = functional_group(item, shared, DCM_FrameContentSequence)) {
            const std::string stack = get_string(*m, DCM_StackID);
            if (!stack.empty() &&
                std::find(h.stack_ids.begin(), h.stack_ids.end(), stack) == h.stack_ids.end()) {
                h.stack_ids.push_back(stack);
            }
        }
        frame.slope = default_slope;
        frame.intercept = default_intercept;
        if (DcmItem* m = functional_group(item, shared, DCM_PixelValueTransformationSequence)) {
            if (!read_rescale(*m, frame.slope, frame.intercept, problem) && h.unsupported.empty()) {
                h.unsupported = problem + " (frame " + std::to_string(f + 1) + ")";
            }
        }
        h.frames.push_back(std::move(frame));
    }
}

} // namespace

std::string pixel_decoding_text(const InstanceHeader& header) {
    const DcmXfer x(header.transfer_syntax_uid.c_str());
    if (!x.isEncapsulated()) {
        return x.getXfer() == EXS_DeflatedLittleEndianExplicit ? "inflated by DCMTK (zlib)"
                                                               : "uncompressed";
    }
    if (header.jpeg2000) {
        return "decoded with " + openjpeg_version();
    }
    const E_TransferSyntax xfer = x.getXfer();
    std::string library;
    if (xfer == EXS_JPEGLSLossless || xfer == EXS_JPEGLSLossy) {
        library = " (CharLS)";
    } else if (xfer != EXS_RLELossless) {
        library = " (IJG libjpeg)";
    }
    return std::string("decoded with DCMTK ") + OFFIS_DCMTK_VERSION_STRING + library;
}

bool is_enhanced_ct_mr(const std::string& sop_class_uid) {
    return sop_class_uid == "1.2.840.10008.5.1.4.1.1.2.1" ||
           sop_class_uid == "1.2.840.10008.5.1.4.1.1.2.2" ||
           sop_class_uid == "1.2.840.10008.5.1.4.1.1.4.1" ||
           sop_class_uid == "1.2.840.10008.5.1.4.1.1.4.4";
}

std::string image_label(const InstanceHeader& header, std::uint32_t frame) {
    std::string name = header.file.filename().string();
    if (header.multi_frame) {
        return name + " frame " + std::to_string(frame + 1);
    }
    if (header.sop_instance_uid.empty() || header.file.stem() == header.sop_instance_uid) {
        return name;
    }
    return name + " [" + header.sop_instance_uid + "]";
}

Result<HeaderRead> read_instance_header(const std::filesystem::path& file) {
    HeaderRead out;
    InstanceHeader& h = out.header;
    h.file = file;
    auto kind = sniff(file);
    if (!kind) {
        return kind.error();
    }
    if (*kind == Sniff::NotDicom) {
        out.kind = FileKind::NotDicom;
        out.reason = "no DICM prefix at byte 128 and no data set at the start";
        return out;
    }
    DcmFileFormat ff;
    const OFCondition cond =
        ff.loadFileUntilTag(file.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength,
                            *kind == Sniff::Part10 ? ERM_fileOnly : ERM_dataset, DCM_PixelData);
    if (cond.bad()) {
        if (*kind == Sniff::MaybeDataset) {
            out.kind = FileKind::NotDicom;
            out.reason =
                std::string("no DICM prefix and not readable as a data set: ") + cond.text();
            return out;
        }
        return Error{file.string() + ": cannot be read as DICOM: " + cond.text()};
    }
    DcmDataset& ds = *ff.getDataset();
    DcmMetaInfo* meta = ff.getMetaInfo();
    const E_TransferSyntax xfer = ds.getOriginalXfer();
    h.jpeg2000 = is_jpeg2000_part1(xfer);
    h.lossy_syntax = is_lossy(xfer);
    if (meta != nullptr) {
        h.transfer_syntax_uid = get_string(*meta, DCM_TransferSyntaxUID);
    }
    if (h.transfer_syntax_uid.empty() && xfer != EXS_Unknown) {
        h.transfer_syntax_uid = DcmXfer(xfer).getXferID();
    }
    h.sop_class_uid = get_string(ds, DCM_SOPClassUID);
    h.sop_instance_uid = get_string(ds, DCM_SOPInstanceUID);
    if (meta != nullptr) {
        if (h.sop_class_uid.empty()) {
            h.sop_class_uid = get_string(*meta, DCM_MediaStorageSOPClassUID);
        }
        if (h.sop_instance_uid.empty()) {
            h.sop_instance_uid = get_string(*meta, DCM_MediaStorageSOPInstanceUID);
        }
    }
    const auto rows = get_us(ds, DCM_Rows);
    const auto columns = get_us(ds, DCM_Columns);
    if (!rows || !columns || *rows == 0 || *columns == 0) {
        out.kind = FileKind::NotImage;
        out.reason = "no image (" + sop_class_text(h.sop_class_uid) + " without Rows/Columns)";
        return out;
    }
    h.rows = *rows;
    h.columns = *columns;
    h.study_uid = get_string(ds, DCM_StudyInstanceUID);
    h.series_uid = get_string(ds, DCM_SeriesInstanceUID);
    h.frame_of_reference_uid = get_string(ds, DCM_FrameOfReferenceUID);
    h.modality = get_string(ds, DCM_Modality);
    h.photometric = get_string(ds, DCM_PhotometricInterpretation);
    h.samples_per_pixel = get_us(ds, DCM_SamplesPerPixel).value_or(1);
    h.bits_allocated = get_us(ds, DCM_BitsAllocated).value_or(0);
    h.bits_stored = get_us(ds, DCM_BitsStored).value_or(h.bits_allocated);
    h.high_bit =
        get_us(ds, DCM_HighBit)
            .value_or(static_cast<std::uint16_t>(h.bits_stored > 0 ? h.bits_stored - 1 : 0));
    h.pixel_representation = get_us(ds, DCM_PixelRepresentation).value_or(0);
    h.gantry_tilt = get_double(ds, DCM_GantryDetectorTilt);
    h.lossy_image_compression = get_string(ds, DCM_LossyImageCompression) == "01";
    Sint32 frames = 1;
    if (ds.tagExists(DCM_NumberOfFrames) &&
        (ds.findAndGetSint32(DCM_NumberOfFrames, frames).bad() || frames < 1)) {
        h.unsupported =
            "NumberOfFrames '" + get_string(ds, DCM_NumberOfFrames) + "' is not a positive number";
        frames = 1;
    }
    h.number_of_frames = static_cast<std::uint32_t>(frames);
    if (h.unsupported.empty()) {
        h.unsupported = pixel_problem(h, xfer);
    }
    if (h.unsupported.empty() && ds.tagExists(DCM_ModalityLUTSequence)) {
        h.unsupported = "a Modality LUT Sequence (0028,3000) instead of rescale slope/intercept "
                        "is not supported";
    }
    if (is_enhanced_ct_mr(h.sop_class_uid)) {
        read_functional_groups(ds, h);
    } else if (h.number_of_frames > 1) {
        h.multi_frame = true;
        if (h.unsupported.empty()) {
            h.unsupported = "multi-frame " + sop_class_text(h.sop_class_uid) + " with " +
                            std::to_string(h.number_of_frames) +
                            " frames is not supported (multi-frame objects load only as "
                            "Enhanced or Legacy Converted Enhanced CT/MR)";
        }
    } else {
        read_single_frame(ds, h);
    }
    return out;
}

} // namespace segnode::dicom::detail
