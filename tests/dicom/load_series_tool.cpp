// segnode-load-series: loads a series directory (or files) with the series loader and prints
// the geometry, the value range, the load time and the peak RSS. For measurements by hand:
//   load_series_tool [--threads N] [--repeat N] <dir | file...>
#include "segnode/dicom/series_loader.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <sys/resource.h>
#include <vector>

int main(int argc, char** argv) {
    segnode::dicom::LoadOptions options;
    std::vector<std::filesystem::path> inputs;
    int repeat = 1;
    for (int a = 1; a < argc; ++a) {
        const std::string arg = argv[a];
        if (arg == "--threads" && a + 1 < argc) {
            options.threads = static_cast<unsigned>(std::atoi(argv[++a]));
        } else if (arg == "--repeat" && a + 1 < argc) {
            repeat = std::max(1, std::atoi(argv[++a]));
        } else {
            inputs.emplace_back(arg);
        }
    }
    if (inputs.empty()) {
        std::fprintf(stderr, "usage: %s [--threads N] [--repeat N] <dir | file...>\n", argv[0]);
        return 2;
    }
    for (int r = 0; r < repeat; ++r) {
        const auto start = std::chrono::steady_clock::now();
        auto result = inputs.size() == 1 && std::filesystem::is_directory(inputs[0])
                          ? segnode::dicom::load_series_dir(inputs[0], options)
                          : segnode::dicom::load_series(inputs, options);
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (!result) {
            std::printf("REFUSED (%.3f s): %s\n", seconds, result.error().message.c_str());
            return 1;
        }
        const auto& g = result->volume.geometry;
        const auto [lo, hi] =
            std::minmax_element(result->volume.voxels.begin(), result->volume.voxels.end());
        rusage usage{};
        getrusage(RUSAGE_SELF, &usage);
        std::printf("loaded %s %s in %.3f s: dims %zu x %zu x %zu, spacing %.6g %.6g %.6g\n",
                    result->modality.c_str(), result->series_uid.c_str(), seconds, g.dims[0],
                    g.dims[1], g.dims[2], g.spacing[0], g.spacing[1], g.spacing[2]);
        std::printf("  origin %.6g %.6g %.6g\n  direction", g.origin[0], g.origin[1], g.origin[2]);
        for (const double d : g.direction) {
            std::printf(" %.6g", d);
        }
        std::printf("\n  values %d .. %d; peak RSS %.1f MB (volume %.1f MB)\n", *lo, *hi,
                    static_cast<double>(usage.ru_maxrss) / 1024.0,
                    static_cast<double>(result->volume.voxels.size() * 2) / 1e6);
        for (const auto& w : result->warnings) {
            std::printf("  warning: %s\n", w.c_str());
        }
    }
    return 0;
}
