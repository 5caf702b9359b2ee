#include "segnode/pipeline/series_taken.hpp"

#include "segnode/dicom/series_loader.hpp"

#include <filesystem>

namespace segnode::pipeline {

std::vector<std::string> describe_series_taken(const Config& config, store::ReceiveIndex& index,
                                               std::int64_t series_id) {
    std::vector<std::filesystem::path> files;
    for (const std::string& rel : index.series_files(series_id)) {
        files.push_back(config.node.workdir / rel);
    }
    if (files.empty()) {
        return {"- (no stored instances)"};
    }
    dicom::LoadOptions options;
    options.headers_only = true;
    const auto loaded = dicom::load_series(files, options);
    if (!loaded) {
        return {"cannot be loaded: " + loaded.error().message};
    }
    const auto& d = loaded->volume.geometry.dims;
    std::vector<std::string> lines{std::to_string(d[0]) + " x " + std::to_string(d[1]) + " x " +
                                   std::to_string(d[2]) + " voxels"};
    lines.insert(lines.end(), loaded->how_taken.begin(), loaded->how_taken.end());
    for (const std::string& w : loaded->warnings) {
        lines.push_back("warning: " + w);
    }
    return lines;
}

} // namespace segnode::pipeline
