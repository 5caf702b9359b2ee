#pragma once
// How the series loader would take a stored series, for `segnode series show` and the API.
#include "segnode/core/config.hpp"
#include "segnode/store/receive_index.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace segnode::pipeline {

/// Reads the headers of the series' stored instances (nothing is decoded) and says how the
/// loader would take them: the volume size first ("512 x 512 x 269 voxels"), then one line per
/// transfer syntax and its decoder, then "warning: ..." lines; or one line saying why the
/// series cannot be loaded, or that it has no stored instances.
std::vector<std::string> describe_series_taken(const Config& config, store::ReceiveIndex& index,
                                               std::int64_t series_id);

} // namespace segnode::pipeline
