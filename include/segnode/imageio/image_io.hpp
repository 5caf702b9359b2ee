#pragma once
// Image files in and out of segnode: the one image IO path for external algorithms (input
// volumes written for the program, label maps read back) and for `segnode run`'s label map
// output. Implemented with ITK's image IO (NIfTI .nii/.nii.gz, NRRD .nrrd/.nhdr) in one
// translation unit; nothing else in segnode includes ITK headers.
//
// Geometry is always segnode's (core/volume.hpp): DICOM patient space, LPS, mm, direction
// columns = unit vectors of the index axes. ITK uses the same LPS convention, and its NIfTI IO
// converts to and from NIfTI's RAS (qform/sform), so files written here open in the right
// place in 3D Slicer, ITK-SNAP, nibabel (RAS) and plastimatch, and files those tools write
// are read back in LPS.
#include "segnode/core/result.hpp"
#include "segnode/core/volume.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace segnode::imageio {

enum class ImageFormat { Nifti, NiftiGz, Nrrd };

/// "nifti", "nifti_gz", "nrrd".
std::string_view to_string(ImageFormat format);
/// Parses to_string()'s names.
std::optional<ImageFormat> parse_image_format(std::string_view name);
/// File extension written for a format: ".nii", ".nii.gz", ".nrrd".
std::string_view extension(ImageFormat format);
/// Format of a file name by its extension (.nii, .nii.gz, .nrrd, .nhdr); std::nullopt otherwise.
std::optional<ImageFormat> format_of(const std::filesystem::path& path);

/// Writes a CT volume (int16 HU) with its geometry; the format follows the extension.
/// Written to a temporary name beside `path` and renamed into place.
Status write_volume(const CtVolume& volume, const std::filesystem::path& path,
                    std::string_view description = {});
/// Writes a label map (uint8) with its geometry; the format follows the extension.
Status write_labels(const LabelMap& labels, const std::filesystem::path& path,
                    std::string_view description = {});

/// A label image as read from a file: any integer pixel type (and floating point when every
/// value is an integer), widened to uint16. Errors name the file and the problem: unreadable,
/// not 3D (a 4D image with one volume is accepted), more than one component, a negative,
/// non-integer or > 65535 value (with the value and a voxel index).
Result<WideLabelMap> read_label_image(const std::filesystem::path& path);

/// The same, narrowed to segnode's labels: uint8 files are read straight into the label map
/// (no widening, no second buffer); other types are read as above, and a value above 255 is an
/// error naming it and its voxel.
Result<LabelMap> read_label_map(const std::filesystem::path& path);

/// Nearest-neighbour resampling of `labels` onto `target` (dims, spacing, origin, direction),
/// with ITK; voxels outside the source image become 0.
WideLabelMap resample_nearest(const WideLabelMap& labels, const Geometry& target);

/// std::nullopt when `actual` matches `expected` (same dims; spacing, origin and direction
/// within `tolerance_mm` / 1e-3 per direction component), otherwise a message naming both
/// geometries ("dims 512x512x300 vs 256x256x150; spacing ...").
std::optional<std::string> geometry_mismatch(const Geometry& expected, const Geometry& actual,
                                             double tolerance_mm = 0.01);

/// One-line description of a geometry for messages and logs.
std::string describe(const Geometry& geometry);

} // namespace segnode::imageio
