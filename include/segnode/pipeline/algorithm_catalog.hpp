#pragma once
// The algorithms a node offers: the built-ins plus the config's external algorithms
// ([[algorithms]] and algorithms_dir). The one place a Registry is made for serve, run,
// config check, algorithm list/show and series run.
#include "segnode/algorithms/registry.hpp"
#include "segnode/core/config.hpp"
#include "segnode/core/result.hpp"

namespace segnode::pipeline {

/// Built-ins, then each external algorithm, checked with file:line:column: a name that clashes
/// with a built-in, a program that is not found or not executable, settings whose default is
/// out of range, an unreadable or malformed segments_file, segments without codes.
Result<algorithms::Registry> make_registry(const Config& config);

/// The segments of an external algorithm from its segments_file: a dcmqi segmentation JSON
/// (segmentAttributes) or an nnU-Net dataset.json (labels: {"name": label} or
/// {"label": "name"}); names without codes get SCT 85756007 "Tissue" and a palette colour.
Result<std::vector<SegmentInfo>> read_segments_file(const std::string& path);

} // namespace segnode::pipeline
