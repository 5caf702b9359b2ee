#pragma once
// What `segnode run` records beside a label map: per-segment statistics and the
// `segments.json` manifest. The label map files themselves are written by the image IO layer
// (segnode/imageio/image_io.hpp); this layer does not link it.
#include "segnode/algorithms/algorithm.hpp"
#include "segnode/algorithms/settings.hpp"
#include "segnode/core/result.hpp"
#include "segnode/core/volume.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace segnode::algorithms {

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
    std::string format;     ///< its format as `segnode run --format` names it ("nifti", ...)
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
