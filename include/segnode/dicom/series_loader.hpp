#pragma once
// Series -> volume: reads the instances of one series with DCMTK (decompressing as needed),
// orders them along the slice normal, applies rescale slope/intercept and checks the geometry.
// Anything that would make voxel -> patient mapping wrong is refused with a message that
// names the problem and the instances involved.
//
// What is loaded:
// - single-frame images (CT, MR, ...) whose ImagePositionPatient, ImageOrientationPatient and
//   PixelSpacing place them in one regular stack; and Enhanced / Legacy Converted Enhanced CT
//   and MR multi-frame objects, from their shared and per-frame functional groups (frames in
//   any order). Other multi-frame objects are refused.
// - MONOCHROME1/MONOCHROME2, 8 or 16 bits allocated, any BitsStored/HighBit, signed or
//   unsigned; uncompressed (little/big endian, deflated), JPEG (lossless, baseline, extended),
//   JPEG-LS and RLE decoded by DCMTK, and JPEG 2000 (.90 and .91) decoded by OpenJPEG
//   (src/dicom/j2k_decoder.cpp; frames of several fragments joined, frames of a multi-frame
//   object decoded in parallel). MONOCHROME1 only changes the display, so the stored values
//   are rescaled like MONOCHROME2 ones (not inverted).
// - voxel = round(stored * RescaleSlope + RescaleIntercept) (defaults 1 and 0), clamped to
//   int16; the number of clamped voxels is reported in `warnings`.
//
// Geometry: slices are ordered by increasing position along normal = row x column (not by
// file name or InstanceNumber), so k = 0 is the slice lowest along the normal. The volume's
// origin is the ImagePositionPatient of that slice, the i/j directions are the row/column
// cosines, spacing[2] is the distance between consecutive slice positions and direction k is
// the unit vector of the mean step between them (= the normal for an untilted stack). A
// single image gets spacing[2] = SliceThickness (or 1 mm) and direction k = normal.
//
// Refused, with the instances named: several series; frames of reference that differ; images
// of different sizes or pixel spacings; mixed orientations; duplicate positions; missing
// slices or gaps beyond `spacing_tolerance`; gantry tilt beyond `tilt_tolerance_deg`; slice
// positions off a regular grid; undecodable pixel data.
#include "segnode/core/result.hpp"
#include "segnode/core/volume.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <stop_token>
#include <string>
#include <vector>

namespace segnode::dicom {

struct LoadOptions {
    /// Largest tolerated deviation of a slice gap from the median gap, as a fraction of the
    /// median (0.05 = 5 %); beyond it the series is refused (missing or uneven slices). Also
    /// the largest distance of a slice from the regular grid, as a fraction of the spacing.
    double spacing_tolerance = 0.05;
    /// Largest tolerated angle, in degrees, between the slice normal and the line through the
    /// slice positions (gantry tilt / sheared stacks).
    double tilt_tolerance_deg = 0.5;
    /// Files read in parallel; 0: the number of hardware threads, at most 4.
    unsigned threads = 0;
    /// Called with (files done, total files) while the pixel data are read, after the
    /// geometry has been accepted; calls are serialised but may come from worker threads.
    /// May be empty.
    std::function<void(std::size_t, std::size_t)> progress;
    /// Refuse volumes with more voxels than this after reading the headers, before any pixel
    /// data is read (a guard against exhausting memory); 0: no limit.
    std::size_t max_voxels = 0;
    /// Cancellation: looked at before each file (and each frame of a multi-frame file) in
    /// both passes, in every worker thread; once stop is requested the workers take no further
    /// file and load_series returns Error{cancelled_message}.
    std::stop_token stop;
    /// Read the headers and check the geometry only: the result has the geometry, UIDs, files
    /// and `how_taken`, but no voxels (for `segnode series show`).
    bool headers_only = false;
};

/// The message of the Error that load_series and the SEG/RTSTRUCT writers return when their
/// stop token was triggered.
inline constexpr const char* cancelled_message = "cancelled";

struct LoadedSeries {
    CtVolume volume;                            ///< HU (rescaled), clamped to int16
    std::vector<std::string> sop_instance_uids; ///< in slice order (k = 0 ... n-1)
    std::vector<std::filesystem::path> files;   ///< in slice order
    /// In slice order: 1-based frame number within files[k] (1 for single-frame files), for
    /// references to frames of a multi-frame source.
    std::vector<std::uint32_t> frame_numbers;
    std::string study_uid;
    std::string series_uid;
    std::string frame_of_reference_uid;
    std::string modality;
    std::string sop_class_uid; ///< of the first instance
    /// Things a caller may want to show: clamped voxels, MONOCHROME1, no frame of reference.
    std::vector<std::string> warnings;
    /// How the series was taken, one line per aspect, for the job log and `segnode series show`:
    /// how the pixel data were decoded ("JPEG 2000 Image Compression (Lossless Only)
    /// 1.2.840.10008.1.2.4.90, 20 images: decoded with OpenJPEG 2.5.0"), lossy compression, and
    /// anything the geometry checks had to accept.
    std::vector<std::string> how_taken;
};

/// Loads every DICOM file in `files` (all must belong to one series and be images; a file
/// that is not a DICOM image is an error). Enhanced (multi-frame) CT/MR is loaded from its
/// per-frame functional groups.
Result<LoadedSeries> load_series(const std::vector<std::filesystem::path>& files,
                                 const LoadOptions& options = {});

/// Convenience: every regular file in `dir` (not recursive). Files that are not DICOM, or
/// DICOM without an image (DICOMDIR, SR, ...), are skipped with a debug log.
Result<LoadedSeries> load_series_dir(const std::filesystem::path& dir,
                                     const LoadOptions& options = {});

} // namespace segnode::dicom
