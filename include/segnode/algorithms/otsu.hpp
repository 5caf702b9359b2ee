#pragma once
// Global Otsu threshold with the conventions of ITK 5.2's OtsuThresholdImageFilter as used by
// SimpleITK's OtsuThreshold(image, 0, 1, 128) on an int16 image, so that segnode's `otsu`
// gives the same label map as the classic SimpleITK example:
//
//  1. Histogram (itk::Statistics::ImageToHistogramFilter, automatic minimum and maximum):
//     lower = min value, upper = max value + ((max - min) / bins) / 100 (the "marginal scale"
//     margin for a real-valued histogram). The bin width is computed in float:
//       width = (float(upper) - float(lower)) / float(bins),
//     bin b spans [edge(b), edge(b + 1)) with edge(b) = lower + double(float(b) * width) for
//     b < bins and edge(bins) = upper. A value falls into the bin whose span contains it.
//  2. Otsu (itk::OtsuMultipleThresholdsCalculator, one threshold): class 0 = bins 0..t, class
//     1 = bins t+1..bins-1, for t = 0..bins-2; class means use the bin centres
//     (edge(b) + edge(b+1)) / 2. The chosen t maximises sum_k n_k * mean_k^2 (the between-
//     class variance up to a constant); the smallest such t wins (a later t must be larger by
//     more than one ulp).
//  3. Threshold value: the UPPER edge of bin t, edge(t + 1) (ReturnBinMidpoint is off by
//     default since ITK 5), converted to the pixel type by static_cast, i.e. truncated toward
//     zero: T = int16(edge(t + 1)).
//  4. Label: itk::BinaryThresholdImageFilter(lower = -32768, upper = T, inside 0, outside 1):
//     foreground = voxels with value > T.
// A constant volume has no threshold: everything is background.
#include "segnode/core/volume.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace segnode::algorithms {

struct OtsuResult {
    std::int16_t threshold = 0;  ///< T: foreground is value > T
    double bin_upper_edge = 0.0; ///< edge(t + 1) before truncation
    std::size_t bin = 0;         ///< t, the last bin of the background class
    std::int16_t minimum = 0;    ///< of the volume
    std::int16_t maximum = 0;
    std::vector<std::uint64_t> histogram; ///< counts per bin
    std::vector<double> edges;            ///< bins + 1 edges
    bool constant = false;                ///< minimum == maximum: no threshold
};

/// Computes the threshold; `bins` >= 2, the volume non-empty.
OtsuResult compute_otsu(const CtVolume& volume, std::size_t bins = 128, unsigned threads = 1);

} // namespace segnode::algorithms
