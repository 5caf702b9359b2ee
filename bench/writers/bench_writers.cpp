// bench-writers: the SEG and RTSTRUCT writers on a generated 512 x 512 x 300 CT phantom with
// three segments, or with many (README.md here).
//
//   bench-writers --series DIR [--rounds N] [--what seg|rtstruct|both] [--out DIR]
//                 [--labels N]
//
// Default label map: from the phantom's own HU values (no algorithm in the timing): 1 body
// (HU > -500, the table included), 2 lungs (-950 < HU < -700, holes in the body), 3 bone
// (HU > 500). With --labels N (4..255): the synthetic map of tests/phantom/label_maps.hpp
// (N boxes, ellipsoids and hollow ellipsoids of varied sizes, many on the same slices), every
// label declared. Each writer runs `rounds` times into the same output file; every timing is
// the whole call (contours or frames, data set, file written). For RTSTRUCT the contour
// extraction alone is timed as well. Peak RSS: VmHWM of the process, reset (clear_refs 5)
// before each writer's rounds, so it is the largest resident size during them (the loaded
// series and the label map included). Exit code 3 when a target is missed: 3 segments:
// RTSTRUCT median <= 1.0 s, SEG median <= 0.3 s; many labels: RTSTRUCT <= 3.0 s, SEG <= 1.5 s.
#include "label_maps.hpp"
#include "segnode/dicom/contours.hpp"
#include "segnode/dicom/environment.hpp"
#include "segnode/dicom/rtstruct_writer.hpp"
#include "segnode/dicom/seg_writer.hpp"
#include "segnode/dicom/series_loader.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr double rtstruct_target_s = 1.0;
constexpr double seg_target_s = 0.3;
constexpr double many_rtstruct_target_s = 3.0;
constexpr double many_seg_target_s = 1.5;

/// Resets the process's peak resident set size (Linux: writing 5 to clear_refs).
void reset_peak_rss() {
    std::ofstream("/proc/self/clear_refs") << "5";
}

/// A /proc/self/status value in kB ("VmHWM:", "VmRSS:") as MiB (0 when unavailable).
double status_mib(const std::string& key) {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind(key, 0) == 0) {
            return std::stod(line.substr(key.size())) / 1024.0;
        }
    }
    return 0.0;
}

double peak_rss_mib() {
    return status_mib("VmHWM:");
}

double rss_mib() {
    return status_mib("VmRSS:");
}

double seconds_of(const std::function<void()>& fn) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Stats {
    double best = 0;
    double median = 0;
};

Stats stats(std::vector<double> t) {
    std::sort(t.begin(), t.end());
    const std::size_t n = t.size();
    return {t.front(), n % 2 == 1 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2])};
}

void print_row(const char* what, const std::vector<double>& t) {
    const Stats s = stats(t);
    std::printf("%-34s", what);
    for (const double v : t) {
        std::printf(" %7.3f", v);
    }
    std::printf("   median %.3f s  best %.3f s\n", s.median, s.best);
}

segnode::SegmentInfo segment(std::uint8_t label, const char* name, const char* code,
                             const char* meaning, std::array<std::uint8_t, 3> rgb) {
    return {label, name, {"123037004", "SCT", "Anatomical Structure"}, {code, "SCT", meaning}, rgb};
}

} // namespace

int main(int argc, char** argv) {
    std::string series_dir;
    std::string what = "both";
    std::filesystem::path out_dir = std::filesystem::temp_directory_path();
    unsigned rounds = 5;
    unsigned label_count = 3;
    for (int n = 1; n < argc; ++n) {
        const std::string_view arg = argv[n];
        const bool has_value = n + 1 < argc;
        if (arg == "--series" && has_value) {
            series_dir = argv[++n];
        } else if (arg == "--rounds" && has_value) {
            rounds = static_cast<unsigned>(std::max(1, std::atoi(argv[++n])));
        } else if (arg == "--what" && has_value) {
            what = argv[++n];
        } else if (arg == "--out" && has_value) {
            out_dir = argv[++n];
        } else if (arg == "--labels" && has_value) {
            label_count = static_cast<unsigned>(std::clamp(std::atoi(argv[++n]), 3, 255));
        } else {
            std::fprintf(stderr, "usage: bench-writers --series DIR [--rounds N] "
                                 "[--what seg|rtstruct|both] [--out DIR] [--labels N]\n");
            return 2;
        }
    }
    if (series_dir.empty() || (what != "seg" && what != "rtstruct" && what != "both")) {
        std::fprintf(stderr, "bench-writers: --series DIR is required; --what seg|rtstruct|both\n");
        return 2;
    }
    if (auto env = segnode::dicom::init_dicom_environment(); !env) {
        std::fprintf(stderr, "%s\n", env.error().message.c_str());
        return 2;
    }

    segnode::Result<segnode::dicom::LoadedSeries> series = segnode::Error{"not loaded"};
    const double load_s = seconds_of([&] { series = segnode::dicom::load_series_dir(series_dir); });
    if (!series) {
        std::fprintf(stderr, "cannot load %s: %s\n", series_dir.c_str(),
                     series.error().message.c_str());
        return 2;
    }
    const auto& volume = series->volume;
    const auto& d = volume.geometry.dims;
    segnode::LabelMap labels = segnode::make_volume<std::uint8_t>(volume.geometry, 0);
    std::vector<segnode::SegmentInfo> segments;
    const bool many = label_count > 3;
    if (many) {
        labels.voxels =
            segnode::to_buffer(segnode::phantom::many_label_map(d[0], d[1], d[2], label_count));
        std::vector<std::size_t> counts(256, 0);
        for (const std::uint8_t v : labels.voxels) {
            ++counts[v];
        }
        std::size_t smallest = SIZE_MAX;
        std::size_t largest = 0;
        for (unsigned l = 1; l <= label_count; ++l) {
            smallest = std::min(smallest, counts[l]);
            largest = std::max(largest, counts[l]);
            const auto v = static_cast<std::uint8_t>(l);
            segments.push_back(
                {v,
                 "Segment " + std::to_string(l),
                 {"85756007", "SCT", "Tissue"},
                 {"85756007", "SCT", "Tissue"},
                 {static_cast<std::uint8_t>(v * 37), static_cast<std::uint8_t>(v * 91),
                  static_cast<std::uint8_t>(v * 53)}});
        }
        std::printf("series: %zu x %zu x %zu loaded in %.2f s; %u labels, %zu foreground voxels, "
                    "%zu to %zu voxels per label\n",
                    d[0], d[1], d[2], load_s, label_count, labels.voxels.size() - counts[0],
                    smallest, largest);
    } else {
        std::array<std::size_t, 4> counts{};
        for (std::size_t n = 0; n < labels.voxels.size(); ++n) {
            const int hu = volume.voxels[n];
            std::uint8_t v = hu > -500 ? 1 : 0;
            v = (hu > -950 && hu < -700) ? 2 : v;
            v = hu > 500 ? 3 : v;
            labels.voxels[n] = v;
            ++counts[v];
        }
        segments = {segment(1, "Body", "38266002", "Entire body", {177, 122, 101}),
                    segment(2, "Lung", "39607008", "Lung", {197, 165, 145}),
                    segment(3, "Bone", "272673000", "Bone", {241, 214, 145})};
        std::printf("series: %zu x %zu x %zu loaded in %.2f s; voxels body %zu, lungs %zu, "
                    "bone %zu\n",
                    d[0], d[1], d[2], load_s, counts[1], counts[2], counts[3]);
    }
    segnode::dicom::DerivedObjectOptions options;
    options.algorithm_name = "bench";
    options.algorithm_version = "1.0.0";
    const std::string n_labels = std::to_string(label_count) + " labels";
    const std::string n_segments = std::to_string(label_count) + " segments";
    const double rt_target = many ? many_rtstruct_target_s : rtstruct_target_s;
    const double sg_target = many ? many_seg_target_s : seg_target_s;
    std::printf("peak RSS after loading and the label map: %.0f MiB\n", peak_rss_mib());
    std::printf("%u rounds per line (seconds):\n", rounds);

    int rc = 0;
    if (what == "rtstruct" || what == "both") {
        std::vector<double> extract;
        std::size_t contours = 0;
        std::size_t points = 0;
        segnode::dicom::ContourOptions contour_options;
        contour_options.max_points = 2000;
        for (unsigned r = 0; r < rounds; ++r) {
            extract.push_back(seconds_of([&] {
                const auto c = segnode::dicom::extract_volume_contours(labels, contour_options);
                contours = 0;
                points = 0;
                for (const auto& slice : c) {
                    for (const auto& lc : slice) {
                        contours += lc.contours.size();
                        for (const auto& contour : lc.contours) {
                            points += contour.points.size();
                        }
                    }
                }
            }));
        }
        print_row(("contour extraction (" + n_labels + ")").c_str(), extract);
        std::vector<double> write;
        const auto file = out_dir / "bench-writers-rtstruct.dcm";
        reset_peak_rss();
        const double rss_before = rss_mib();
        for (unsigned r = 0; r < rounds; ++r) {
            segnode::Result<segnode::dicom::WrittenObject> written = segnode::Error{""};
            write.push_back(seconds_of([&] {
                written = segnode::dicom::write_rtstruct(*series, labels, segments, options, file);
            }));
            if (!written) {
                std::fprintf(stderr, "write_rtstruct: %s\n", written.error().message.c_str());
                return 2;
            }
        }
        const double rss = peak_rss_mib();
        print_row(("write_rtstruct (" + n_segments + ")").c_str(), write);
        const Stats s = stats(write);
        std::printf("  %zu contours, %zu points, file %.1f MB, peak RSS %.0f MiB (%.0f MiB before "
                    "the first call); target median <= %.1f s: %s\n",
                    contours, points, static_cast<double>(std::filesystem::file_size(file)) / 1e6,
                    rss, rss_before, rt_target, s.median <= rt_target ? "met" : "MISSED");
        if (s.median > rt_target) {
            rc = 3;
        }
        std::filesystem::remove(file);
    }
    if (what == "seg" || what == "both") {
        std::vector<double> write;
        std::size_t frames = 0;
        const auto file = out_dir / "bench-writers-seg.dcm";
        reset_peak_rss();
        const double rss_before = rss_mib();
        for (unsigned r = 0; r < rounds; ++r) {
            segnode::Result<segnode::dicom::WrittenObject> written = segnode::Error{""};
            write.push_back(seconds_of([&] {
                written = segnode::dicom::write_seg(*series, labels, segments, options, file);
            }));
            if (!written) {
                std::fprintf(stderr, "write_seg: %s\n", written.error().message.c_str());
                return 2;
            }
            frames = written->items;
        }
        const double rss = peak_rss_mib();
        print_row(("write_seg (" + n_segments + ")").c_str(), write);
        const Stats s = stats(write);
        std::printf("  %zu frames, file %.1f MB, peak RSS %.0f MiB (%.0f MiB before the first "
                    "call); target median <= %.1f s: %s\n",
                    frames, static_cast<double>(std::filesystem::file_size(file)) / 1e6, rss,
                    rss_before, sg_target, s.median <= sg_target ? "met" : "MISSED");
        if (s.median > sg_target) {
            rc = 3;
        }
        std::filesystem::remove(file);
    }
    return rc;
}
