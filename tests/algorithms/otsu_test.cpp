// Otsu against an independent brute force over the same 128-bin histogram convention.
#include "segnode/algorithms/builtin.hpp"
#include "segnode/algorithms/otsu.hpp"
#include "test_volumes.hpp"

#include <algorithm>
#include <cmath>
#include <gtest/gtest.h>
#include <random>
#include <string>

namespace segnode::algorithms {
namespace {

// The histogram convention of otsu.hpp, written independently: per voxel binary search over
// the edges, textbook between-class variance w0 * w1 * (mu0 - mu1)^2 in long double.
struct BruteOtsu {
    std::vector<double> edges;
    std::vector<std::uint64_t> counts;
    std::vector<long double> criterion; // per candidate t = 0 .. bins - 2
    std::size_t first_best = 0;
    int threshold = 0; // trunc(edges[first_best + 1])
};

BruteOtsu brute_otsu(const Buffer<std::int16_t>& values, std::size_t bins) {
    BruteOtsu b;
    const auto [lo_it, hi_it] = std::minmax_element(values.begin(), values.end());
    const double lo = *lo_it;
    const double hi = *hi_it;
    const double upper = hi + (hi - lo) / static_cast<double>(bins) / 100.0;
    const float width =
        (static_cast<float>(upper) - static_cast<float>(lo)) / static_cast<float>(bins);
    for (std::size_t e = 0; e < bins; ++e) {
        b.edges.push_back(lo + static_cast<double>(static_cast<float>(e) * width));
    }
    b.edges.push_back(upper);
    b.counts.assign(bins, 0);
    for (const std::int16_t v : values) {
        const auto it =
            std::upper_bound(b.edges.begin(), b.edges.end() - 1, static_cast<double>(v));
        ++b.counts[static_cast<std::size_t>(it - b.edges.begin()) - 1];
    }
    long double n = 0;
    long double sum = 0;
    for (std::size_t i = 0; i < bins; ++i) {
        const long double centre = (b.edges[i] + b.edges[i + 1]) / 2.0L;
        n += static_cast<long double>(b.counts[i]);
        sum += centre * static_cast<long double>(b.counts[i]);
    }
    long double w0 = 0;
    long double s0 = 0;
    long double best = -1;
    for (std::size_t t = 0; t + 1 < bins; ++t) {
        const long double centre = (b.edges[t] + b.edges[t + 1]) / 2.0L;
        w0 += static_cast<long double>(b.counts[t]);
        s0 += centre * static_cast<long double>(b.counts[t]);
        const long double w1 = n - w0;
        long double var = 0;
        if (w0 > 0 && w1 > 0) {
            const long double diff = s0 / w0 - (sum - s0) / w1;
            var = w0 * w1 * diff * diff;
        }
        b.criterion.push_back(var);
        if (var > best * (1 + 1e-12L)) {
            best = var;
            b.first_best = t;
        }
    }
    b.threshold = static_cast<int>(std::trunc(b.edges[b.first_best + 1]));
    return b;
}

// compute_otsu agrees with the brute force: same edges and counts, and the same threshold,
// except that among bins of equal criterion (a run of empty bins between two modes, where
// any cut separates the same voxels) the choice follows ITK's own arithmetic; the label map
// is the same either way.
void expect_same_as_brute_force(const CtVolume& ct, std::size_t bins) {
    const OtsuResult r = compute_otsu(ct, bins, 2);
    const BruteOtsu b = brute_otsu(ct.voxels, bins);
    ASSERT_EQ(r.edges, b.edges);
    ASSERT_EQ(r.histogram, b.counts);
    const long double best = b.criterion[b.first_best];
    EXPECT_GE(b.criterion[r.bin], best * (1 - 1e-9L)) << "bin " << r.bin << " is not a maximum";
    for (std::size_t t = std::min(r.bin, b.first_best) + 1; t <= std::max(r.bin, b.first_best);
         ++t) {
        EXPECT_EQ(b.counts[t], 0U) << "bins between the two choices must be empty";
    }
    EXPECT_EQ(r.bin_upper_edge, b.edges[r.bin + 1]);
    EXPECT_EQ(r.threshold, static_cast<int>(std::trunc(b.edges[r.bin + 1])));
    std::uint64_t differ = 0;
    for (const std::int16_t v : ct.voxels) {
        differ += ((v > r.threshold) != (v > b.threshold)) ? 1U : 0U;
    }
    EXPECT_EQ(differ, 0U) << "threshold " << r.threshold << " vs brute force " << b.threshold;
}

CtVolume volume_of(std::vector<std::int16_t> values) {
    Geometry g;
    g.dims = {values.size(), 1, 1};
    return CtVolume{g, Buffer<std::int16_t>(values.begin(), values.end())};
}

TEST(Otsu, PhantomWithNoiseMatchesBruteForce) {
    const auto v = test::make_phantom_volume(test::chest_spec(), 20.0);
    expect_same_as_brute_force(v.ct, 128);
    expect_same_as_brute_force(v.ct, 64);
    // Partial volume fills the gaps between the modes: no ties at all.
    const auto pv = test::make_phantom_volume(test::chest_spec(), 20.0, 3);
    expect_same_as_brute_force(pv.ct, 128);
}

TEST(Otsu, GaussianMixturesMatchBruteForce) {
    for (std::uint64_t seed = 1; seed <= 8; ++seed) {
        std::mt19937_64 engine(seed);
        std::uniform_real_distribution<double> mean(-1000.0, 1500.0);
        std::uniform_real_distribution<double> sigma(5.0, 300.0);
        std::vector<std::int16_t> values;
        for (int mode = 0; mode < 3; ++mode) {
            std::normal_distribution<double> d(mean(engine), sigma(engine));
            for (int n = 0; n < 20000 * (mode + 1); ++n) {
                values.push_back(
                    static_cast<std::int16_t>(std::clamp(std::lround(d(engine)), -3000L, 3000L)));
            }
        }
        SCOPED_TRACE("seed " + std::to_string(seed));
        expect_same_as_brute_force(volume_of(values), 128);
    }
}

TEST(Otsu, TwoValuesGiveTheLowerValueAsThreshold) {
    std::vector<std::int16_t> values(50, 0);
    values.resize(100, 100);
    const OtsuResult r = compute_otsu(volume_of(values), 128);
    EXPECT_FALSE(r.constant);
    EXPECT_EQ(r.minimum, 0);
    EXPECT_EQ(r.maximum, 100);
    EXPECT_EQ(r.histogram.front(), 50U);
    EXPECT_EQ(r.histogram.back(), 50U);
    EXPECT_EQ(r.threshold, 0);
    expect_same_as_brute_force(volume_of(values), 128);
}

TEST(Otsu, NegativeThresholdsAreTruncatedTowardZero) {
    // Modes at -1000 and -600: the cut lies between, at a negative non-integer bin edge.
    std::vector<std::int16_t> values;
    for (int n = 0; n < 300; ++n) {
        values.push_back(static_cast<std::int16_t>(-1000 + n % 7));
        values.push_back(static_cast<std::int16_t>(-600 - n % 5));
    }
    const OtsuResult r = compute_otsu(volume_of(values), 128);
    EXPECT_LT(r.bin_upper_edge, 0.0);
    EXPECT_NE(r.bin_upper_edge, std::floor(r.bin_upper_edge));
    EXPECT_EQ(r.threshold, static_cast<int>(std::ceil(r.bin_upper_edge)));
    expect_same_as_brute_force(volume_of(values), 128);
}

TEST(Otsu, ConstantVolumeHasNoForeground) {
    const CtVolume ct = volume_of(std::vector<std::int16_t>(30, 42));
    const OtsuResult r = compute_otsu(ct, 128);
    EXPECT_TRUE(r.constant);
    const auto otsu = make_otsu_algorithm();
    auto label = otsu->run(ct, {});
    ASSERT_TRUE(label.ok()) << label.error().message;
    EXPECT_TRUE(std::all_of(label->voxels.begin(), label->voxels.end(),
                            [](std::uint8_t v) { return v == 0; }));
}

TEST(Otsu, AlgorithmLabelsVoxelsAboveTheThreshold) {
    const auto v = test::make_phantom_volume(test::chest_spec(), 20.0);
    const OtsuResult r = compute_otsu(v.ct, 128);
    const auto otsu = make_otsu_algorithm();
    std::string logged;
    RunContext context;
    context.log = [&](std::string_view line) { logged += std::string(line) + "\n"; };
    auto label = otsu->run(v.ct, {}, context);
    ASSERT_TRUE(label.ok()) << label.error().message;
    ASSERT_EQ(label->voxels.size(), v.ct.voxels.size());
    for (std::size_t i = 0; i < v.ct.voxels.size(); ++i) {
        ASSERT_EQ(label->voxels[i], v.ct.voxels[i] > r.threshold ? 1 : 0) << i;
    }
    EXPECT_NE(logged.find("otsu: threshold " + std::to_string(r.threshold) + " HU"),
              std::string::npos)
        << logged;
    // Between lung (-850) and soft tissue (40).
    EXPECT_GT(r.threshold, -800);
    EXPECT_LT(r.threshold, 0);
}

TEST(Otsu, SameResultWithAnyNumberOfThreads) {
    const auto v = test::make_phantom_volume(test::chest_spec(), 20.0);
    const OtsuResult one = compute_otsu(v.ct, 128, 1);
    const OtsuResult three = compute_otsu(v.ct, 128, 3);
    EXPECT_EQ(one.histogram, three.histogram);
    EXPECT_EQ(one.threshold, three.threshold);
}

} // namespace
} // namespace segnode::algorithms
