// Fuzz target: bytes -> a file as the receiver stores it -> read_instance_header (DCMTK up to
// the pixel data) -> load_series on that one file (geometry checks, decoding, rescaling). Any
// input must give a header/volume or an Error with a message; nothing may crash or trip a
// sanitizer. The loader takes paths, so each input is written to one file of a per-process
// temporary directory. max_voxels keeps declared sizes from exhausting memory, as the job
// runner's volume guard does.
#include "fuzz_support.hpp"
#include "instance_header.hpp"
#include "segnode/dicom/series_loader.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace {

std::filesystem::path input_file() {
    static const std::filesystem::path file = [] {
        segnode::fuzz::init_quiet_dicom();
        return segnode::fuzz::make_process_temp_dir("segnode-fuzz-loader") / "instance.dcm";
    }();
    return file;
}

void fail_if_silent(const segnode::Error& error) {
    if (error.message.empty()) {
        std::fprintf(stderr, "fuzz_dicom_loader: an error without a message\n");
        std::abort();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::filesystem::path& file = input_file();
    {
        std::ofstream out(file, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
        if (!out) {
            std::abort(); // the temporary directory is broken, not the input
        }
    }
    const auto header = segnode::dicom::detail::read_instance_header(file);
    if (!header) {
        fail_if_silent(header.error());
    }
    segnode::dicom::LoadOptions options;
    options.threads = 1;
    options.max_voxels = std::size_t{1} << 22; // 4 Mi voxels: 8 MiB of int16
    const auto series = segnode::dicom::load_series({file}, options);
    if (!series) {
        fail_if_silent(series.error());
    } else if (!series->volume.consistent()) {
        std::fprintf(stderr, "fuzz_dicom_loader: volume size differs from its geometry\n");
        std::abort();
    }
    return 0;
}
