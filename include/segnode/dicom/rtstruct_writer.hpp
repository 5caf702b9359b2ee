#pragma once
// DICOM RT Structure Set Storage (RTSTRUCT) from a label map over a loaded source series.
//
// One ROI per label that has voxels (ROINumber = label). Its contours come from
// contours.hpp: CLOSED_PLANAR polygons along the pixel edges of each slice, in the plane of
// that slice, in patient millimetres (voxel_to_patient with fractional indices); outer
// boundaries counter-clockwise about the slice normal, holes clockwise as separate contours,
// islands in holes as further outer boundaries, so that the even-odd rule over the contours
// of a slice gives the mask back exactly. Each contour references its source image (with
// ReferencedFrameNumber for a multi-frame source) and holds fewer than 64 KiB of ContourData
// (DS values with at most 4 decimals; a region whose contour would be longer is cut into
// row bands along a pixel edge). RTROIInterpretedType is EXTERNAL for the body (type code
// SCT 38266002 "Entire body", or the name "Body") and ORGAN otherwise.
//
// The data set is built directly with DCMTK items (not dcmrt's DRTStructureSetIOD, which
// leaves out the Frame of Reference module): Patient, General Study and Frame of Reference
// copied from the first source file, a new RT Series, General Equipment, Structure Set
// (with the referenced frame of reference / study / series / every source image), ROI
// Contour, RT ROI Observations and SOP Common. Written as explicit VR little endian with a
// file meta header. docs/seg_rtstruct.md describes the convention and the dciodvfy result.
#include "segnode/core/result.hpp"
#include "segnode/core/segment.hpp"
#include "segnode/core/volume.hpp"
#include "segnode/dicom/derived_object.hpp"
#include "segnode/dicom/series_loader.hpp"

#include <filesystem>
#include <vector>

namespace segnode::dicom {

inline constexpr const char* rt_structure_set_storage = "1.2.840.10008.5.1.4.1.1.481.3";

/// Writes `out_file`. Errors (no file is left behind): labels.geometry differs from
/// source.volume.geometry (dims exactly; spacing, origin and direction beyond 1e-4); the
/// source's per-slice instance lists do not match the volume; a label value occurs in the map
/// but not in `segments`; duplicate or zero labels, or invalid names, in `segments`; no
/// foreground at all ("label map has no foreground: no RTSTRUCT written"); the source header
/// cannot be read or has no FrameOfReferenceUID; an invalid uid_root or content_label; the
/// file cannot be written. Segments without voxels get no ROI (a note says so).
/// WrittenObject::items is the number of contours.
Result<WrittenObject> write_rtstruct(const LoadedSeries& source, const LabelMap& labels,
                                     const std::vector<SegmentInfo>& segments,
                                     const DerivedObjectOptions& options,
                                     const std::filesystem::path& out_file);

} // namespace segnode::dicom
