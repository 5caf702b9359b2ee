#pragma once
// Common ground of the objects segnode derives from a source series and a label map: the
// DICOM SEG writer (seg_writer.hpp) and the RTSTRUCT writer (rtstruct_writer.hpp).
//
// Both copy the Patient, General Study and Frame of Reference identity of the source (read
// from its first file), start a new series under `uid_root`, and reference the source
// instances. Neither sees ITK or the algorithms layer: segments are described by
// segnode::SegmentInfo (core/segment.hpp) and the label map is a segnode::LabelMap whose
// geometry must equal the source volume's.
#include "segnode/core/result.hpp"
#include "segnode/core/segment.hpp"
#include "segnode/core/volume.hpp"
#include "segnode/dicom/series_loader.hpp"

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

namespace segnode::dicom {

struct DerivedObjectOptions {
    /// Root for new Study/Series/SOP Instance UIDs. Empty: "2.25." + a random UUID as a
    /// decimal number (generate_uuid_uid). Otherwise root + "." + a unique suffix; the result
    /// must stay a valid UID of at most 64 characters (the root is checked).
    std::string uid_root;
    int series_number = 9901;
    /// SeriesDescription of the new series; empty: a writer-specific default naming the
    /// algorithm ("segnode body SEG").
    std::string series_description;
    /// SEG ContentLabel / RTSTRUCT StructureSetLabel (Code String: upper case, <= 16 chars).
    std::string content_label = "SEGNODE";
    std::string content_creator = "SEGNODE"; ///< ContentCreatorName (PN)
    std::string algorithm_name;              ///< e.g. "body"
    std::string algorithm_version;           ///< e.g. "1.0.0"
    /// SEG AlgorithmFamilyCodeSequence (CID 7162 "Surface Processing Algorithm Families").
    /// The built-ins threshold and then clean up with connected components, hole filling and
    /// opening, hence "Morphological Operations"; otsu could say (123105, DCM, "Histogram
    /// Analysis"), a learned model (123110, DCM, "Artificial Intelligence").
    CodedConcept algorithm_family{"123104", "DCM", "Morphological Operations"};
    std::string manufacturer = "segnode";
    /// Content/instance creation date and time; empty: now. Tests set it for stable output.
    std::optional<std::chrono::system_clock::time_point> now;
    /// Cancellation: the writers look at it between slices, segments and frames (and between
    /// pieces of the SEG PixelData being written); once stop is requested they return
    /// Error{cancelled_message} ("cancelled") and leave no output file behind.
    std::stop_token stop;
};

/// What a writer produced.
struct WrittenObject {
    std::filesystem::path file;
    std::string sop_class_uid;
    std::string sop_instance_uid;
    std::string series_instance_uid;
    std::size_t items = 0; ///< SEG: frames; RTSTRUCT: contours
    /// Segments that had no foreground and were left out, and similar remarks for the log.
    std::vector<std::string> notes;
};

} // namespace segnode::dicom
