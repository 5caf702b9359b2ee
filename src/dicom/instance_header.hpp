#pragma once
// What the series loader needs from one file, read with DCMTK up to the pixel data (private to
// the loader). Pixel data are read separately, once the geometry has been accepted.
#include "segnode/core/result.hpp"
#include "slice_geometry.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace segnode::dicom::detail {

/// One 2D image of an instance: the instance itself, or one frame of a multi-frame instance.
struct FrameHeader {
    std::uint32_t frame = 0; ///< 0-based frame number within the instance
    SliceGeometry geometry;  ///< label filled in by read_instance_header
    double slope = 1.0;      ///< RescaleSlope
    double intercept = 0.0;  ///< RescaleIntercept
};

struct InstanceHeader {
    std::filesystem::path file;
    std::string transfer_syntax_uid;
    std::string sop_class_uid;
    std::string sop_instance_uid;
    std::string study_uid;
    std::string series_uid;
    std::string frame_of_reference_uid;
    std::string modality;
    std::string photometric;
    std::uint16_t rows = 0;
    std::uint16_t columns = 0;
    std::uint16_t samples_per_pixel = 1;
    std::uint16_t bits_allocated = 0;
    std::uint16_t bits_stored = 0;
    std::uint16_t high_bit = 0;
    std::uint16_t pixel_representation = 0;
    std::uint32_t number_of_frames = 1;
    bool multi_frame = false;  ///< frames come from functional groups (enhanced CT/MR)
    bool jpeg2000 = false;     ///< JPEG 2000 Part 1 (.90/.91): decoded with OpenJPEG, not DCMTK
    bool lossy_syntax = false; ///< a lossy transfer syntax (JPEG baseline/extended, JPEG-LS
                               ///< near-lossless, JPEG 2000 .91)
    bool lossy_image_compression = false; ///< LossyImageCompression (0028,2110) is "01"
    std::optional<double> gantry_tilt;
    std::vector<std::string> stack_ids; ///< distinct StackID values of a multi-frame object
    /// Why the pixel data cannot be loaded (transfer syntax, colour, bit depth, unsupported
    /// multi-frame object), empty when they can. Reported after the series checks, so that a
    /// mixed-series input is reported as such.
    std::string unsupported;
    std::vector<FrameHeader> frames;
};

enum class FileKind {
    Image,    ///< a DICOM image (Rows and Columns present)
    NotDicom, ///< not a DICOM file
    NotImage, ///< DICOM without an image (DICOMDIR, SR, presentation state, ...)
};

struct HeaderRead {
    FileKind kind = FileKind::Image;
    std::string reason; ///< why the file is not an image (NotDicom / NotImage)
    InstanceHeader header;
};

/// Reads the header of `file`. Error only when the file looks like DICOM but cannot be read.
Result<HeaderRead> read_instance_header(const std::filesystem::path& file);

/// How an image is named in messages: "IM0001.dcm [1.2.3...]", or just the file name when it
/// already is the SOP Instance UID; frames of multi-frame objects as "file.dcm frame 3".
std::string image_label(const InstanceHeader& header, std::uint32_t frame);

/// How the pixel data of this instance's transfer syntax are decoded: "uncompressed",
/// "decoded with OpenJPEG 2.5.0", "decoded with DCMTK 3.6.7 (CharLS)", ...
std::string pixel_decoding_text(const InstanceHeader& header);

/// True for the (Legacy Converted) Enhanced CT and MR Image Storage SOP classes.
bool is_enhanced_ct_mr(const std::string& sop_class_uid);

} // namespace segnode::dicom::detail
