#pragma once
// DICOM Segmentation Storage (SEG, BINARY) from a label map over a loaded source series.
//
// One segment per label that has voxels, numbered 1..n in ascending label order (PS3.3
// C.8.20.2: segment numbers start at 1 and increase by 1, so a left-out empty segment shifts
// the numbers of the ones after it; WrittenObject::notes says so). Frames only where a segment
// is present, ordered by segment and then by slice k; each frame carries its plane position,
// its source image reference (ReferencedFrameNumber for multi-frame sources) and its segment
// number; orientation and pixel measures are shared. Patient, study and frame of reference are
// copied from the first source file; the object starts a new series. Pixel data are packed by
// segnode itself (not by dcmseg: DCMTK 3.6.7 packs wrongly when rows x columns is not a
// multiple of 8). Written as explicit VR little endian with a file meta header.
// docs/seg_rtstruct.md lists every attribute, the codes and the dciodvfy result.
#include "segnode/core/result.hpp"
#include "segnode/core/segment.hpp"
#include "segnode/core/volume.hpp"
#include "segnode/dicom/derived_object.hpp"
#include "segnode/dicom/series_loader.hpp"

#include <filesystem>
#include <vector>

namespace segnode::dicom {

/// Writes `out_file`. Errors (no file is left behind): labels.geometry differs from
/// source.volume.geometry (dims exactly; spacing, origin and direction beyond 1e-4); a label
/// value occurs in the map but not in `segments`; duplicate or zero labels, or incomplete codes,
/// in `segments`; no foreground at all ("label map has no foreground: no SEG written"); the
/// source header cannot be read or has no FrameOfReferenceUID; an invalid uid_root or
/// content_label; the file cannot be written. Segments without voxels are left out with a note.
Result<WrittenObject> write_seg(const LoadedSeries& source, const LabelMap& labels,
                                const std::vector<SegmentInfo>& segments,
                                const DerivedObjectOptions& options,
                                const std::filesystem::path& out_file);

} // namespace segnode::dicom
