"""An independent DICOM SEG reader for the tests: pydicom for the attributes, numpy for the
bits, nothing from segnode or DCMTK.

    seg = SegObject.read(path)
    seg.segments            {number: Segment}
    seg.frames              [FrameInfo] in stored order
    seg.pixels              bool array (frames, rows, columns), decoded here
    volume = seg.label_volume(slices)   slices: SourceSlice list in volume order (k = 0 ...)

Bits (PS3.5 8.1.1, 8.2): for BitsAllocated 1 the frames form ONE continuous bit stream, pixel p
being bit (p % 8) of byte p // 8 (least significant bit first), with no padding between frames;
only the whole value is padded to an even length. FRACTIONAL SEGs (8 bits) are read as bytes.

Functional groups are looked up per frame first, then in the shared item, as PS3.3 C.7.6.16
allows either place.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


def unpack_bits(data, frames, rows, columns):
    """bool array (frames, rows, columns) from a BINARY SEG's PixelData bytes."""
    needed = frames * rows * columns
    raw = np.frombuffer(bytes(data), dtype=np.uint8)
    if raw.size * 8 < needed:
        raise ValueError(f"PixelData has {raw.size} bytes, {needed} bits needed")
    bits = np.unpackbits(raw, bitorder="little")[:needed]
    return bits.reshape(frames, rows, columns).astype(bool)


def code_tuple(item):
    return (str(item.CodeValue), str(item.CodingSchemeDesignator), str(item.CodeMeaning))


@dataclass
class Segment:
    number: int
    label: str
    category: tuple
    type: tuple
    algorithm_type: str
    algorithm_name: str = ""
    cielab: tuple = None
    algorithm_family: tuple = None
    algorithm_version: str = ""


@dataclass
class FrameInfo:
    index: int                        # 0-based position in the stored frames
    segment_number: int
    position: tuple = None            # ImagePositionPatient, or None
    dimension_index_values: tuple = ()
    sources: list = field(default_factory=list)   # [(sop_class, sop_instance, frame or None)]
    purposes: list = field(default_factory=list)  # purpose-of-reference codes
    derivation_codes: list = field(default_factory=list)


@dataclass
class SourceSlice:
    """One source image (or frame) of the volume the SEG is read into."""
    sop_instance_uid: str
    position: tuple
    frame_number: int = None


def _group(per_frame, shared, keyword):
    """The functional group `keyword` of one frame: per-frame first, then shared."""
    if per_frame is not None and keyword in per_frame:
        return per_frame[keyword][0]
    if shared is not None and keyword in shared:
        return shared[keyword][0]
    return None


class SegObject:
    def __init__(self, ds):
        self.ds = ds
        self.rows = int(ds.Rows)
        self.columns = int(ds.Columns)
        self.number_of_frames = int(ds.NumberOfFrames)
        self.segmentation_type = str(ds.SegmentationType)
        self.segments = {}
        for item in ds.SegmentSequence:
            seg = Segment(
                number=int(item.SegmentNumber),
                label=str(item.SegmentLabel),
                category=code_tuple(item.SegmentedPropertyCategoryCodeSequence[0]),
                type=code_tuple(item.SegmentedPropertyTypeCodeSequence[0]),
                algorithm_type=str(item.SegmentAlgorithmType),
                algorithm_name=str(item.get("SegmentAlgorithmName", "")),
                cielab=tuple(int(v) for v in item.RecommendedDisplayCIELabValue)
                if "RecommendedDisplayCIELabValue" in item else None)
            if "SegmentationAlgorithmIdentificationSequence" in item:
                algo = item.SegmentationAlgorithmIdentificationSequence[0]
                seg.algorithm_family = code_tuple(algo.AlgorithmFamilyCodeSequence[0])
                seg.algorithm_version = str(algo.get("AlgorithmVersion", ""))
            self.segments[seg.number] = seg

        shared = ds.SharedFunctionalGroupsSequence[0] \
            if "SharedFunctionalGroupsSequence" in ds else None
        self.shared = shared
        per_frames = ds.PerFrameFunctionalGroupsSequence \
            if "PerFrameFunctionalGroupsSequence" in ds else [None] * self.number_of_frames
        if len(per_frames) != self.number_of_frames:
            raise ValueError(f"{len(per_frames)} per-frame items for "
                             f"{self.number_of_frames} frames")
        orientation = _group(None, shared, "PlaneOrientationSequence")
        if orientation is None and per_frames[0] is not None:
            orientation = _group(per_frames[0], None, "PlaneOrientationSequence")
        self.orientation = tuple(float(v) for v in orientation.ImageOrientationPatient) \
            if orientation is not None and "ImageOrientationPatient" in orientation else None
        measures = _group(per_frames[0], shared, "PixelMeasuresSequence")
        self.pixel_spacing = tuple(float(v) for v in measures.PixelSpacing) \
            if measures is not None else None
        self.slice_thickness = float(measures.SliceThickness) \
            if measures is not None and "SliceThickness" in measures else None
        self.spacing_between_slices = float(measures.SpacingBetweenSlices) \
            if measures is not None and "SpacingBetweenSlices" in measures else None

        self.frames = []
        for index, pf in enumerate(per_frames):
            ident = _group(pf, shared, "SegmentIdentificationSequence")
            info = FrameInfo(index=index, segment_number=int(ident.ReferencedSegmentNumber))
            plane = _group(pf, shared, "PlanePositionSequence")
            if plane is not None and "ImagePositionPatient" in plane:
                info.position = tuple(float(v) for v in plane.ImagePositionPatient)
            content = _group(pf, None, "FrameContentSequence")
            if content is not None and "DimensionIndexValues" in content:
                values = content.DimensionIndexValues
                values = values if isinstance(values, (list, pydicom.multival.MultiValue)) \
                    else [values]
                info.dimension_index_values = tuple(int(v) for v in values)
            derivation = _group(pf, shared, "DerivationImageSequence")
            if derivation is not None:
                for src in derivation.get("SourceImageSequence", []):
                    frame = src.get("ReferencedFrameNumber")
                    info.sources.append((str(src.ReferencedSOPClassUID),
                                         str(src.ReferencedSOPInstanceUID),
                                         int(frame) if frame is not None else None))
                    for purpose in src.get("PurposeOfReferenceCodeSequence", []):
                        info.purposes.append(code_tuple(purpose))
                for code in derivation.get("DerivationCodeSequence", []):
                    info.derivation_codes.append(code_tuple(code))
            self.frames.append(info)

        self.referenced_instances = {}
        for series in ds.get("ReferencedSeriesSequence", []):
            self.referenced_instances[str(series.SeriesInstanceUID)] = [
                str(i.ReferencedSOPInstanceUID) for i in series.ReferencedInstanceSequence]

        self.pixel_data_length = len(ds.PixelData)
        if int(ds.BitsAllocated) == 1:
            self.pixels = unpack_bits(ds.PixelData, self.number_of_frames, self.rows,
                                      self.columns)
        else:
            self.pixels = np.frombuffer(ds.PixelData, dtype=np.uint8)[
                :self.number_of_frames * self.rows * self.columns].reshape(
                    self.number_of_frames, self.rows, self.columns)

    @classmethod
    def read(cls, path):
        ds = pydicom.dcmread(str(path))
        if str(ds.SOPClassUID) != SEGMENTATION_STORAGE:
            raise ValueError(f"{path} is not a Segmentation Storage object")
        return cls(ds)

    def frames_of(self, segment_number):
        return [f for f in self.frames if f.segment_number == segment_number]

    def normal(self):
        o = np.array(self.orientation)
        return np.cross(o[:3], o[3:])

    def frame_slices(self, slices, tolerance=1e-3):
        """For each stored frame, the index k of the source slice at its position: the one
        whose position along the normal matches (and whose in-plane origin matches too).
        Raises when a frame matches no slice."""
        normal = self.normal()
        source = np.array([s.position for s in slices], dtype=float)
        distances = source @ normal
        out = []
        for info in self.frames:
            if info.position is None:
                raise ValueError(f"frame {info.index + 1} has no ImagePositionPatient")
            p = np.array(info.position)
            k = int(np.argmin(np.abs(distances - p @ normal)))
            if np.linalg.norm(source[k] - p) > tolerance:
                raise ValueError(f"frame {info.index + 1} at {info.position} matches no source "
                                 f"slice (nearest {tuple(source[k])})")
            out.append(k)
        return out

    def label_volume(self, slices, labels_by_segment=None, tolerance=1e-3):
        """uint8 array (slices, rows, columns): each frame's foreground written with its
        segment's label (labels_by_segment[number], default the number itself). Frames of
        overlapping segments overwrite in stored order; tests use non-overlapping ones."""
        volume = np.zeros((len(slices), self.rows, self.columns), dtype=np.uint8)
        for info, k in zip(self.frames, self.frame_slices(slices, tolerance)):
            label = (labels_by_segment or {}).get(info.segment_number, info.segment_number)
            volume[k][self.pixels[info.index]] = label
        return volume


def source_slices(files):
    """SourceSlice list sorted along the slice normal (the loader's order): one per
    single-frame image, or one per frame of an (Enhanced / Legacy Converted) multi-frame image,
    with its position from the per-frame PlanePositionSequence and its 1-based frame number."""
    items = []
    normal = None
    for f in files:
        ds = pydicom.dcmread(str(f), stop_before_pixels=True)
        uid = str(ds.SOPInstanceUID)
        if "PerFrameFunctionalGroupsSequence" in ds:
            shared = ds.SharedFunctionalGroupsSequence[0] \
                if "SharedFunctionalGroupsSequence" in ds else None
            for n, pf in enumerate(ds.PerFrameFunctionalGroupsSequence):
                o = _group(pf, shared, "PlaneOrientationSequence").ImageOrientationPatient
                o = np.array([float(v) for v in o])
                normal = np.cross(o[:3], o[3:]) if normal is None else normal
                p = _group(pf, shared, "PlanePositionSequence").ImagePositionPatient
                items.append(SourceSlice(uid, tuple(float(v) for v in p), n + 1))
            continue
        o = np.array([float(v) for v in ds.ImageOrientationPatient])
        normal = np.cross(o[:3], o[3:]) if normal is None else normal
        p = tuple(float(v) for v in ds.ImagePositionPatient)
        items.append(SourceSlice(uid, p))
    items.sort(key=lambda s: float(np.dot(s.position, normal)))
    return items


def dciodvfy(path):
    """Runs dciodvfy; returns (errors, warnings) as lists of lines."""
    import subprocess
    proc = subprocess.run(["dciodvfy", str(Path(path))], capture_output=True, text=True,
                          timeout=120)
    lines = (proc.stdout + proc.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    warnings = [line for line in lines if line.startswith("Warning")]
    return errors, warnings
