// Global Otsu threshold (ITK 5.2 conventions, see otsu.hpp) and the `otsu` algorithm.
#include "segnode/algorithms/otsu.hpp"

#include "codes.hpp"
#include "parallel.hpp"
#include "segnode/algorithms/builtin.hpp"
#include "segnode/algorithms/mask_ops.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace segnode::algorithms {

namespace {

constexpr std::size_t value_count = 65536; // every int16 value
constexpr std::int32_t value_offset = 32768;

// itk::Math::FloatAlmostEqual(a, b, 1 ulp, 0.1 * epsilon) for the non-negative values the
// Otsu criterion takes.
bool almost_equal(double a, double b) {
    if (std::abs(a - b) <= 0.1 * std::numeric_limits<double>::epsilon()) {
        return true;
    }
    if (std::signbit(a) != std::signbit(b)) {
        return false;
    }
    const auto ia = std::bit_cast<std::int64_t>(a);
    const auto ib = std::bit_cast<std::int64_t>(b);
    const std::int64_t ulps = ia > ib ? ia - ib : ib - ia;
    return ulps <= 1;
}

// Counts of every int16 value, one pass over the volume (threads merge their own tables).
std::vector<std::uint64_t> value_counts(const CtVolume& volume, unsigned threads) {
    const std::size_t n = volume.voxels.size();
    const std::size_t chunks = std::max<std::size_t>(1, std::min<std::size_t>(threads, n));
    std::vector<std::vector<std::uint64_t>> partial(chunks);
    const std::int16_t* data = volume.voxels.data();
    detail::parallel_for(
        chunks, static_cast<unsigned>(chunks), [&](std::size_t c0, std::size_t c1) {
            for (std::size_t c = c0; c < c1; ++c) {
                auto& counts = partial[c];
                counts.assign(value_count, 0);
                const std::size_t begin = n * c / chunks;
                const std::size_t end = n * (c + 1) / chunks;
                for (std::size_t i = begin; i < end; ++i) {
                    ++counts[static_cast<std::size_t>(std::int32_t{data[i]} + value_offset)];
                }
            }
        });
    for (std::size_t c = 1; c < chunks; ++c) {
        for (std::size_t v = 0; v < value_count; ++v) {
            partial[0][v] += partial[c][v];
        }
    }
    return std::move(partial[0]);
}

} // namespace

OtsuResult compute_otsu(const CtVolume& volume, std::size_t bins, unsigned threads) {
    if (bins < 2) {
        throw std::invalid_argument("compute_otsu: at least 2 bins");
    }
    if (volume.voxels.empty()) {
        throw std::invalid_argument("compute_otsu: empty volume");
    }
    const std::vector<std::uint64_t> counts = value_counts(volume, threads);
    std::size_t first = 0;
    while (counts[first] == 0) {
        ++first;
    }
    std::size_t last = value_count - 1;
    while (counts[last] == 0) {
        --last;
    }
    OtsuResult result;
    result.minimum = static_cast<std::int16_t>(static_cast<std::int32_t>(first) - value_offset);
    result.maximum = static_cast<std::int16_t>(static_cast<std::int32_t>(last) - value_offset);
    result.histogram.assign(bins, 0);
    if (first == last) {
        // ITK would return the bin maximum of bin 0 == the value: nothing is above it.
        result.constant = true;
        result.threshold = result.maximum;
        result.bin_upper_edge = result.maximum;
        result.edges.assign(bins + 1, static_cast<double>(result.minimum));
        result.histogram.back() = counts[first];
        return result;
    }

    // 1. Bin edges as itk::Statistics::Histogram::Initialize computes them (float width).
    const double lower = result.minimum;
    const double max_value = result.maximum;
    const double upper =
        max_value + ((max_value - lower) / static_cast<double>(bins)) / 100.0; // marginal scale
    const float width =
        (static_cast<float>(upper) - static_cast<float>(lower)) / static_cast<float>(bins);
    result.edges.resize(bins + 1);
    for (std::size_t b = 0; b < bins; ++b) {
        result.edges[b] = lower + static_cast<double>(static_cast<float>(b) * width);
    }
    result.edges[bins] = upper;

    // Values in ascending order: the bin of v is the last b with edge(b) <= v.
    std::size_t bin = 0;
    for (std::size_t v = first; v <= last; ++v) {
        const double value = static_cast<double>(static_cast<std::int32_t>(v) - value_offset);
        while (bin + 1 < bins && result.edges[bin + 1] <= value) {
            ++bin;
        }
        result.histogram[bin] += counts[v];
    }

    // 2. Otsu, in the arithmetic of itk::OtsuMultipleThresholdsCalculator (one threshold).
    const auto& freq = result.histogram;
    std::vector<double> centre(bins);
    for (std::size_t b = 0; b < bins; ++b) {
        centre[b] = (result.edges[b] + result.edges[b + 1]) / 2.0;
    }
    std::uint64_t total = 0;
    double global_mean = 0.0;
    for (std::size_t b = 0; b < bins; ++b) {
        global_mean += centre[b] * static_cast<double>(freq[b]);
        total += freq[b];
    }
    const double total_d = static_cast<double>(total);
    global_mean /= total_d;

    std::uint64_t f0 = freq[0];
    double m0 = f0 > 0 ? centre[0] : 0.0;
    std::uint64_t f1 = total - f0;
    double m1 =
        f1 > 0 ? (global_mean * total_d - m0 * static_cast<double>(f0)) / static_cast<double>(f1)
               : 0.0;
    auto criterion = [&] {
        double var = 0.0;
        var += static_cast<double>(f0) * (m0 * m0);
        var += static_cast<double>(f1) * (m1 * m1);
        return var / total_d;
    };
    double best_var = criterion();
    std::size_t best = 0;
    for (std::size_t t = 1; t + 1 < bins; ++t) {
        const double mean_old = m0;
        const std::uint64_t freq_old = f0;
        f0 += freq[t];
        m0 = f0 > 0 ? (mean_old * static_cast<double>(freq_old) +
                       centre[t] * static_cast<double>(freq[t])) /
                          static_cast<double>(f0)
                    : 0.0;
        f1 = total - f0;
        m1 = global_mean * total_d;
        m1 -= m0 * static_cast<double>(f0);
        m1 = f1 > 0 ? m1 / static_cast<double>(f1) : 0.0;
        const double var = criterion();
        if (var > best_var && !almost_equal(best_var, var)) {
            best_var = var;
            best = t;
        }
    }

    // 3. Upper edge of the last background bin, truncated to the pixel type.
    result.bin = best;
    result.bin_upper_edge = result.edges[best + 1];
    const double clamped = std::clamp(std::trunc(result.bin_upper_edge), -32768.0, 32767.0);
    result.threshold = static_cast<std::int16_t>(clamped);
    return result;
}

namespace {

class OtsuAlgorithm final : public Algorithm {
public:
    OtsuAlgorithm() : Algorithm(make_info()) {}

private:
    static AlgorithmInfo make_info() {
        AlgorithmInfo info;
        info.name = "otsu";
        info.version = "1.0.0";
        info.description =
            "Global Otsu threshold over the whole volume (histogram of `bins` bins over "
            "[min, max]); voxels above the threshold are foreground. Same result as "
            "SimpleITK OtsuThreshold(image, 0, 1, 128).";
        info.settings.push_back(
            int_setting("bins", 128, 2, 4096, "number of histogram bins over [min, max]"));
        for (auto& spec : postprocess_settings(0, false, 0.0)) {
            info.settings.push_back(std::move(spec));
        }
        info.segments.push_back(
            {1, "Otsu foreground", codes::tissue(), codes::tissue(), {128, 174, 128}});
        return info;
    }

    Result<LabelMap> execute(const CtVolume& volume, const Settings& settings,
                             const RunContext& context) const override {
        const unsigned threads = thread_count(context);
        const auto bins = static_cast<std::size_t>(settings.get_int("bins"));
        const OtsuResult otsu = compute_otsu(volume, bins, threads);
        if (context.log) {
            context.log(otsu.constant
                            ? "otsu: constant volume, no threshold: empty result"
                            : "otsu: threshold " + std::to_string(otsu.threshold) +
                                  " HU (foreground > threshold; bin " + std::to_string(otsu.bin) +
                                  " of " + std::to_string(bins) + ", values " +
                                  std::to_string(otsu.minimum) + ".." +
                                  std::to_string(otsu.maximum) + ")");
        }
        LabelMap mask = otsu.constant
                            ? make_volume<std::uint8_t>(volume.geometry, 0)
                            : threshold_mask(volume, std::int32_t{otsu.threshold} + 1,
                                             std::numeric_limits<std::int32_t>::max(), threads);
        if (auto status = check_cancelled(context); !status) {
            return status.error();
        }
        if (auto status = postprocess(mask, settings, context); !status) {
            return status.error();
        }
        return mask;
    }
};

} // namespace

std::unique_ptr<Algorithm> make_otsu_algorithm() {
    return std::make_unique<OtsuAlgorithm>();
}

} // namespace segnode::algorithms
