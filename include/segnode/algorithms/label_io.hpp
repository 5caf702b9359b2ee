#pragma once
// Label maps on disk: NIfTI-1 and NRRD writers (the formats research tools read), per-segment
// statistics and the `segments.json` manifest that describes a written label map.
//
// Both writers store uint8 voxels in the volume's index order (i fastest, then j, then k)
// and carry the full geometry:
//  - NIfTI-1 (single file, ".nii", uncompressed): NIfTI's world space is RAS, DICOM's is LPS,
//    so the affine is voxel_to_patient with its first two rows negated. It is written both as
//    the sform (exact) and as the qform (rotation as a quaternion; a left-handed direction
//    matrix, e.g. feet-first slice order, sets qfac = pixdim[0] = -1). Codes: scanner
//    anatomical (1) for both, intent "label" (1002), units mm.
//  - NRRD (".nrrd", raw encoding): space "left-posterior-superior", space directions =
//    spacing times the direction columns, space origin = the origin, i.e. DICOM LPS as is.
// Files are written to a temporary name beside the target and renamed into place, so a
// reader never sees a half-written file.
#include "segnode/algorithms/algorithm.hpp"
#include "segnode/algorithms/settings.hpp"
#include "segnode/core/result.hpp"
#include "segnode/core/volume.hpp"

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace segnode::algorithms {

enum class LabelFileFormat { Nifti, Nrrd };

/// "nifti" or "nrrd".
std::string_view to_string(LabelFileFormat format);
/// The format of a name as to_string() spells it, or std::nullopt.
std::optional<LabelFileFormat> parse_label_file_format(std::string_view name);
/// "labels.nii" or "labels.nrrd".
std::string_view default_label_file_name(LabelFileFormat format);

/// The 4x4 voxel -> RAS (mm) affine NIfTI stores (row-major; the last row is 0 0 0 1):
/// diag(-1, -1, 1) times the LPS voxel_to_patient affine of the geometry.
std::array<double, 16> ras_affine(const Geometry& geometry);

/// A NIfTI qform: quaternion (b, c, d), offset and qfac (+1 or -1) such that
///   RAS = R(b, c, d) * (pixdim1 * i, pixdim2 * j, qfac * pixdim3 * k) + offset.
/// The rotation is the nearest orthogonal matrix to the normalised direction (exact for an
/// orthogonal one); qfac is -1 when the RAS direction matrix is left-handed.
struct NiftiQuaternion {
    double b = 0.0;
    double c = 0.0;
    double d = 0.0;
    std::array<double, 3> offset{};
    double qfac = 1.0;
};
NiftiQuaternion nifti_quaternion(const Geometry& geometry);

/// Writes a NIfTI-1 single file (348-byte header, 4 empty extension bytes, voxels at 352).
/// `description` goes to the header's descrip field (truncated to 79 characters).
/// Errors: inconsistent volume or geometry, a dimension above 32767, I/O failures.
Status write_nifti(const LabelMap& labels, const std::filesystem::path& path,
                   std::string_view description = {});

/// Writes a NRRD file with an inline header and raw uint8 data.
Status write_nrrd(const LabelMap& labels, const std::filesystem::path& path,
                  std::string_view description = {});

/// Dispatches on the format.
Status write_label_map(const LabelMap& labels, const std::filesystem::path& path,
                       LabelFileFormat format, std::string_view description = {});

/// One declared segment with its size in a label map.
struct SegmentStats {
    SegmentInfo segment;
    std::uint64_t voxels = 0;
    double volume_ml = 0.0;
};

/// Voxel counts and volumes (ml) of each declared segment, in declaration order.
std::vector<SegmentStats> segment_stats(const LabelMap& labels,
                                        const std::vector<SegmentInfo>& segments);

/// What `segments.json` records about a written label map.
struct SegmentsManifest {
    std::string algorithm_name;
    std::string algorithm_version;
    Settings settings;      ///< the complete, validated settings of the run
    std::string label_file; ///< file name of the label map (beside it); empty: none (null)
    LabelFileFormat format = LabelFileFormat::Nifti;
    Geometry geometry;
    /// Where the volume came from, e.g. {"series_uid", ...}; written as strings, in order.
    std::vector<std::pair<std::string, std::string>> source;
    std::vector<SegmentStats> segments;
};

/// The manifest as a JSON document (UTF-8, two-space indentation, trailing newline):
/// { "algorithm": {name, version, settings{key: typed value}},
///   "label_map": {file, format, dims, spacing_mm, origin_lps_mm, direction},
///   "source": {...},
///   "segments": [{label, name, category{value, scheme, meaning}, type{...}, rgb[3],
///                 voxels, volume_ml}] }
std::string segments_json(const SegmentsManifest& manifest);

/// Writes segments_json() to `path` (temporary file and rename).
Status write_segments_json(const SegmentsManifest& manifest, const std::filesystem::path& path);

} // namespace segnode::algorithms
