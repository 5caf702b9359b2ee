// bench-writers: the SEG and RTSTRUCT writers on a generated 512 x 512 x 300 CT phantom with
// three segments (README.md here).
//
//   bench-writers --series DIR [--rounds N] [--what seg|rtstruct|both] [--out DIR]
//
// The label map comes from the phantom's own HU values (no algorithm in the timing): 1 body
// (HU > -500, the table included), 2 lungs (-950 < HU < -700, holes in the body), 3 bone
// (HU > 500). Each writer runs `rounds` times into the same output file; every timing is the
// whole call (contours or frames, data set, file written). For RTSTRUCT the contour extraction
// alone is timed as well. Exit code 3 when a target is missed: RTSTRUCT median <= 1.0 s, SEG
// median <= 0.3 s.
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
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr double rtstruct_target_s = 1.0;
constexpr double seg_target_s = 0.3;

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
        } else {
            std::fprintf(stderr, "usage: bench-writers --series DIR [--rounds N] "
                                 "[--what seg|rtstruct|both] [--out DIR]\n");
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
    segnode::LabelMap labels = segnode::make_volume<std::uint8_t>(volume.geometry, 0);
    std::array<std::size_t, 4> counts{};
    for (std::size_t n = 0; n < labels.voxels.size(); ++n) {
        const int hu = volume.voxels[n];
        std::uint8_t v = hu > -500 ? 1 : 0;
        v = (hu > -950 && hu < -700) ? 2 : v;
        v = hu > 500 ? 3 : v;
        labels.voxels[n] = v;
        ++counts[v];
    }
    const std::vector<segnode::SegmentInfo> segments{
        segment(1, "Body", "38266002", "Entire body", {177, 122, 101}),
        segment(2, "Lung", "39607008", "Lung", {197, 165, 145}),
        segment(3, "Bone", "272673000", "Bone", {241, 214, 145})};
    segnode::dicom::DerivedObjectOptions options;
    options.algorithm_name = "bench";
    options.algorithm_version = "1.0.0";

    const auto& d = volume.geometry.dims;
    std::printf("series: %zu x %zu x %zu loaded in %.2f s; voxels body %zu, lungs %zu, bone %zu\n",
                d[0], d[1], d[2], load_s, counts[1], counts[2], counts[3]);
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
        print_row("contour extraction (3 labels)", extract);
        std::vector<double> write;
        const auto file = out_dir / "bench-writers-rtstruct.dcm";
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
        print_row("write_rtstruct (3 segments)", write);
        const Stats s = stats(write);
        std::printf("  %zu contours, %zu points, file %.1f MB; target median <= %.1f s: %s\n",
                    contours, points, static_cast<double>(std::filesystem::file_size(file)) / 1e6,
                    rtstruct_target_s, s.median <= rtstruct_target_s ? "met" : "MISSED");
        if (s.median > rtstruct_target_s) {
            rc = 3;
        }
        std::filesystem::remove(file);
    }
    if (what == "seg" || what == "both") {
        std::vector<double> write;
        std::size_t frames = 0;
        const auto file = out_dir / "bench-writers-seg.dcm";
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
        print_row("write_seg (3 segments)", write);
        const Stats s = stats(write);
        std::printf("  %zu frames, file %.1f MB; target median <= %.1f s: %s\n", frames,
                    static_cast<double>(std::filesystem::file_size(file)) / 1e6, seg_target_s,
                    s.median <= seg_target_s ? "met" : "MISSED");
        if (s.median > seg_target_s) {
            rc = 3;
        }
        std::filesystem::remove(file);
    }
    return rc;
}
