// segnode-test-write-derived: loads a series directory with the dicom layer's loader and writes a
// derived object (SEG and/or RTSTRUCT) from a label map, for the integration tests
// (tests/integration).
//
//   segnode-test-write-derived --series DIR --info [--save-volume FILE.raw]
//       prints the loaded geometry, the SOP Instance UIDs in slice order (k = 0 ...), the
//       loader's warnings and how the series was taken (how_taken); --save-volume writes the
//       loaded voxels (int16, host order, index order) for comparisons with other decoders
//   segnode-test-write-derived --series DIR --out FILE [--mask FILE.raw | --rule hu-above:-500
//       | --rule labels:N] [--save-mask FILE.raw] [--segments 1,2,3] [--uid-root R]
//       [--series-number N] [--series-description S] [--algorithm NAME] [--now EPOCH_SECONDS]
//       writes SEG; the mask is uint8 in the volume's index order (i fastest, then j, then k);
//       labels:N is the synthetic map of tests/phantom/label_maps.hpp with labels 1..N (seed 1),
//       --save-mask writes the label map used (for the reader to compare against); without
//       --out and --rtstruct that is all the tool does
//   ... [--out FILE] [--rtstruct FILE] ...
//       --rtstruct writes an RTSTRUCT from the same label map (alone, or besides the SEG);
//       its result is the "rtstruct" member of the JSON
//
// Segments: label 1 "Body", 2 "Lung", 3 "Bone" with real SNOMED CT codes, other labels a
// generic "Segment N" tissue. --segments declares which labels are segments (default: every
// label value found in the mask). Prints one JSON object; errors go to stderr, exit code 2.
#include "label_maps.hpp"
#include "segnode/dicom/environment.hpp"
#include "segnode/dicom/rtstruct_writer.hpp"
#include "segnode/dicom/seg_writer.hpp"
#include "segnode/dicom/series_loader.hpp"

#include <CLI/CLI.hpp>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr int exit_error = 2;

segnode::SegmentInfo test_segment(std::uint8_t label) {
    const segnode::CodedConcept anatomical{"123037004", "SCT", "Anatomical Structure"};
    switch (label) {
    case 1:
        return {label, "Body", anatomical, {"38266002", "SCT", "Entire body"}, {177, 122, 101}};
    case 2:
        return {label, "Lung", anatomical, {"39607008", "SCT", "Lung"}, {197, 165, 145}};
    case 3:
        return {label,
                "Bone",
                {"91723000", "SCT", "Anatomical Structure"},
                {"272673000", "SCT", "Bone"},
                {241, 214, 145}};
    default:
        return {label,
                "Segment " + std::to_string(label),
                {"85756007", "SCT", "Tissue"},
                {"85756007", "SCT", "Tissue"},
                {static_cast<std::uint8_t>(label * 37), static_cast<std::uint8_t>(label * 91),
                 static_cast<std::uint8_t>(label * 53)}};
    }
}

nlohmann::json geometry_json(const segnode::dicom::LoadedSeries& series) {
    const auto& g = series.volume.geometry;
    nlohmann::json out;
    out["dims"] = g.dims;
    out["spacing"] = g.spacing;
    out["origin"] = g.origin;
    out["direction"] = g.direction;
    out["sop_instance_uids"] = series.sop_instance_uids;
    out["frame_numbers"] = series.frame_numbers;
    auto files = nlohmann::json::array();
    for (const auto& f : series.files) {
        files.push_back(f.string());
    }
    out["files"] = files;
    out["warnings"] = series.warnings;
    out["how_taken"] = series.how_taken;
    return out;
}

std::vector<std::string> split(const std::string& text, char sep) {
    std::vector<std::string> parts;
    std::stringstream in(text);
    std::string part;
    while (std::getline(in, part, sep)) {
        if (!part.empty()) {
            parts.push_back(part);
        }
    }
    return parts;
}

} // namespace

int main(int argc, char** argv) {
    std::string series_dir;
    std::string out_file;
    std::string rtstruct_file;
    std::string mask_file;
    std::string rule;
    std::string save_mask;
    std::string save_volume;
    std::string segment_list;
    bool info = false;
    long long now_seconds = -1;
    segnode::dicom::DerivedObjectOptions options;
    options.algorithm_name = "test";
    options.algorithm_version = "1.0.0";

    CLI::App app{"Write a DICOM SEG from a label map over a series directory (test tool)."};
    app.add_option("--series", series_dir, "Series directory")->required();
    app.add_flag("--info", info, "Print geometry and slice order only");
    app.add_option("--out", out_file, "Output file");
    app.add_option("--rtstruct", rtstruct_file, "RTSTRUCT output file");
    app.add_option("--mask", mask_file, "uint8 label map in index order");
    app.add_option("--rule", rule,
                   "hu-above:T (label 1 where HU > T) or labels:N (synthetic map, labels 1..N)");
    app.add_option("--save-mask", save_mask, "Write the label map used (uint8, index order)");
    app.add_option("--save-volume", save_volume, "With --info: write the voxels (int16)");
    app.add_option("--segments", segment_list, "Comma-separated labels to declare");
    app.add_option("--uid-root", options.uid_root, "UID root");
    app.add_option("--series-number", options.series_number, "SeriesNumber");
    app.add_option("--series-description", options.series_description, "SeriesDescription");
    app.add_option("--algorithm", options.algorithm_name, "Algorithm name");
    app.add_option("--now", now_seconds, "Content date/time as Unix seconds");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }

    if (auto env = segnode::dicom::init_dicom_environment(); !env) {
        std::cerr << env.error().message << "\n";
        return exit_error;
    }
    auto series = segnode::dicom::load_series_dir(series_dir);
    if (!series) {
        std::cerr << "cannot load " << series_dir << ": " << series.error().message << "\n";
        return exit_error;
    }
    if (info) {
        if (!save_volume.empty()) {
            std::ofstream out(save_volume, std::ios::binary);
            out.write(
                reinterpret_cast<const char*>(series->volume.voxels.data()),
                static_cast<std::streamsize>(series->volume.voxels.size() * sizeof(std::int16_t)));
            if (!out.flush()) {
                std::cerr << save_volume << ": cannot write the volume\n";
                return exit_error;
            }
        }
        std::cout << geometry_json(*series).dump() << std::endl;
        return 0;
    }
    if (out_file.empty() && rtstruct_file.empty() && save_mask.empty()) {
        std::cerr << "--out, --rtstruct or --save-mask is required unless --info\n";
        return exit_error;
    }

    segnode::LabelMap labels = segnode::make_volume<std::uint8_t>(series->volume.geometry, 0);
    if (!mask_file.empty()) {
        std::ifstream in(mask_file, std::ios::binary);
        in.read(reinterpret_cast<char*>(labels.voxels.data()),
                static_cast<std::streamsize>(labels.voxels.size()));
        if (!in || in.peek() != std::ifstream::traits_type::eof()) {
            std::cerr << mask_file << ": expected exactly " << labels.voxels.size() << " bytes\n";
            return exit_error;
        }
    } else if (rule.rfind("hu-above:", 0) == 0) {
        const double threshold = std::stod(rule.substr(9));
        for (std::size_t n = 0; n < labels.voxels.size(); ++n) {
            labels.voxels[n] = series->volume.voxels[n] > threshold ? 1 : 0;
        }
    } else if (rule.rfind("labels:", 0) == 0) {
        const int count = std::stoi(rule.substr(7));
        if (count < 1 || count > 255) {
            std::cerr << "labels:N needs N in 1..255\n";
            return exit_error;
        }
        const auto& d = labels.geometry.dims;
        labels.voxels = segnode::to_buffer(
            segnode::phantom::many_label_map(d[0], d[1], d[2], static_cast<unsigned>(count)));
    } else {
        std::cerr << "give --mask FILE or --rule hu-above:T or --rule labels:N\n";
        return exit_error;
    }
    if (!save_mask.empty()) {
        std::ofstream out(save_mask, std::ios::binary);
        out.write(reinterpret_cast<const char*>(labels.voxels.data()),
                  static_cast<std::streamsize>(labels.voxels.size()));
        if (!out.flush()) {
            std::cerr << save_mask << ": cannot write the label map\n";
            return exit_error;
        }
        if (out_file.empty() && rtstruct_file.empty()) {
            return 0; // only the label map was asked for
        }
    }

    std::set<int> declared;
    if (!segment_list.empty()) {
        for (const std::string& part : split(segment_list, ',')) {
            declared.insert(std::stoi(part));
        }
    } else {
        for (const std::uint8_t v : labels.voxels) {
            if (v != 0) {
                declared.insert(v);
            }
        }
    }
    std::vector<segnode::SegmentInfo> segments;
    for (const int label : declared) {
        segments.push_back(test_segment(static_cast<std::uint8_t>(label)));
    }
    if (now_seconds >= 0) {
        options.now = std::chrono::system_clock::time_point(std::chrono::seconds(now_seconds));
    }

    nlohmann::json out;
    if (!out_file.empty()) {
        const auto start = std::chrono::steady_clock::now();
        auto written = segnode::dicom::write_seg(*series, labels, segments, options, out_file);
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (!written) {
            std::cerr << "write_seg: " << written.error().message << "\n";
            return exit_error;
        }
        out["file"] = written->file.string();
        out["sop_class_uid"] = written->sop_class_uid;
        out["sop_instance_uid"] = written->sop_instance_uid;
        out["series_instance_uid"] = written->series_instance_uid;
        out["frames"] = written->items;
        out["notes"] = written->notes;
        out["seconds"] = seconds;
    }
    if (!rtstruct_file.empty()) {
        const auto start = std::chrono::steady_clock::now();
        auto written =
            segnode::dicom::write_rtstruct(*series, labels, segments, options, rtstruct_file);
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (!written) {
            std::cerr << "write_rtstruct: " << written.error().message << "\n";
            return exit_error;
        }
        out["rtstruct"] = {{"file", written->file.string()},
                           {"sop_class_uid", written->sop_class_uid},
                           {"sop_instance_uid", written->sop_instance_uid},
                           {"series_instance_uid", written->series_instance_uid},
                           {"contours", written->items},
                           {"notes", written->notes},
                           {"seconds", seconds}};
    }
    out["geometry"] = geometry_json(*series);
    std::cout << out.dump() << std::endl;
    return 0;
}
