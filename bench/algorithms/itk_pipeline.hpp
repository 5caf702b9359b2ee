#pragma once
// The naive ITK pipeline the built-in algorithms are measured against. ITK is included by
// itk_pipeline.cpp only (one ITK-heavy translation unit, ~30 s and ~700 MB to compile); this
// interface uses segnode's plain volume types, so the rest of the benchmark never sees ITK.
#include "segnode/core/volume.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace segnode::bench {

/// One stage of the pipeline and its wall time.
struct ItkStage {
    std::string name;
    double seconds = 0.0;
};

struct ItkPipelineResult {
    double seconds = 0.0;            ///< import to fill holes, wall time
    std::vector<ItkStage> stages;    ///< per filter, in pipeline order (sum = seconds)
    std::int16_t otsu_threshold = 0; ///< OtsuThresholdImageFilter::GetThreshold()
    std::uint64_t otsu_voxels = 0;   ///< foreground voxels after Otsu
    std::uint64_t components = 0;    ///< ConnectedComponentImageFilter::GetObjectCount()
    std::uint64_t result_voxels = 0; ///< foreground voxels of the final mask
    /// Voxels where the Otsu stage and `compare_otsu` differ (0 when none was given).
    std::uint64_t otsu_mismatches = 0;
};

/// Runs, with fresh filters on every call,
///   ImportImageFilter (no copy of `volume`'s buffer, spacing/origin/direction set)
///   -> OtsuThresholdImageFilter (128 bins, inside 0, outside 1: foreground = above threshold)
///   -> ConnectedComponentImageFilter (face connectivity) -> RelabelComponentImageFilter
///   -> BinaryThresholdImageFilter (label 1, the largest component)
///   -> BinaryFillholeImageFilter (face connectivity),
/// updating each stage in turn so that the stage times add up to the total. When
/// `compare_otsu` is given, the Otsu stage's output is compared with it voxel by voxel after
/// the timing.
ItkPipelineResult run_itk_pipeline(const CtVolume& volume, const LabelMap* compare_otsu = nullptr);

/// ITK's global default number of threads (what the pipeline's filters use).
unsigned itk_threads();

} // namespace segnode::bench
