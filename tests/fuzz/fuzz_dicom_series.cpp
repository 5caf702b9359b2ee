// Fuzz target: bytes -> two files of one series -> load_series: the checks across instances
// (same series and frame of reference, sizes, orientations, positions, spacing, tilt) and the
// volume they build. Input: a 4-byte little-endian length n, then n bytes of the first file,
// then the second file (scripts/fuzz.sh makes seeds from pairs of phantom slices). Any input
// must give a consistent volume or an Error with a message.
#include "fuzz_support.hpp"
#include "segnode/dicom/series_loader.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

namespace {

const std::vector<std::filesystem::path>& input_files() {
    static const std::vector<std::filesystem::path> files = [] {
        segnode::fuzz::init_quiet_dicom();
        const auto dir = segnode::fuzz::make_process_temp_dir("segnode-fuzz-series");
        return std::vector<std::filesystem::path>{dir / "a.dcm", dir / "b.dcm"};
    }();
    return files;
}

void write(const std::filesystem::path& file, const std::uint8_t* data, std::size_t size) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) {
        std::abort(); // the temporary directory is broken, not the input
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 4) {
        return 0;
    }
    std::size_t first = 0;
    for (std::size_t b = 0; b < 4; ++b) {
        first |= std::size_t{data[b]} << (8 * b);
    }
    first = first > size - 4 ? size - 4 : first;
    const auto& files = input_files();
    write(files[0], data + 4, first);
    write(files[1], data + 4 + first, size - 4 - first);
    segnode::dicom::LoadOptions options;
    options.threads = 1;
    options.max_voxels = std::size_t{1} << 22; // 4 Mi voxels: 8 MiB of int16
    const auto series = segnode::dicom::load_series(files, options);
    if (!series ? series.error().message.empty() : !series->volume.consistent()) {
        std::fprintf(stderr, "fuzz_dicom_series: an error without a message, or a volume "
                             "inconsistent with its geometry\n");
        std::abort();
    }
    return 0;
}
