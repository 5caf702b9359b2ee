"""Independent RTSTRUCT reader for the tests: pydicom + numpy only, nothing of segnode's.

    slices = load_slices(files)            # source images: position, orientation, spacing
    rt = read_rtstruct(path)               # ROIs, their contours, the referenced images
    mask = rasterise_roi(rt, roi_number, slices)   # bool array (slices, rows, columns)

Contours are placed on a source image by their ContourImageSequence reference (falling back to
the image whose plane holds the points), projected into that image's pixel grid with the
image's own ImagePositionPatient / ImageOrientationPatient / PixelSpacing, and filled with the
even-odd rule over all contours of the ROI on that image: a pixel is inside when a ray from its
centre crosses an odd number of contour edges. This is how plastimatch and most readers treat
holes (a hole is a separate contour inside an outer one).

Slices are ordered along the normal (row x column) by position, like segnode's loader, unless
an explicit order (a list of SOP Instance UIDs) is given.
"""

from dataclasses import dataclass, field

import numpy as np
import pydicom

ROI_CONTOUR_DATA = 0x30060050


@dataclass
class Slice:
    sop_instance_uid: str
    sop_class_uid: str
    position: np.ndarray  # ImagePositionPatient
    row_dir: np.ndarray  # direction along a row (increasing column index)
    col_dir: np.ndarray  # direction down a column (increasing row index)
    spacing: tuple  # (between rows, between columns) as in PixelSpacing
    rows: int
    columns: int

    @property
    def normal(self):
        return np.cross(self.row_dir, self.col_dir)

    def to_pixel(self, points):
        """Patient points (N, 3) -> (column, row, distance from the plane) per point."""
        d = np.asarray(points, dtype=float) - self.position
        x = d @ self.row_dir / self.spacing[1]
        y = d @ self.col_dir / self.spacing[0]
        z = d @ self.normal
        return x, y, z


@dataclass
class ContourItem:
    geometric_type: str
    points: np.ndarray  # (N, 3) patient mm
    number_of_points: int
    image_refs: list  # [(sop_class, sop_instance, frame or None)]
    data_vr: str = ""
    data_length: int = 0


@dataclass
class Roi:
    number: int
    name: str
    frame_of_reference_uid: str
    generation_algorithm: str = ""
    color: tuple = ()
    interpreted_type: str = ""
    contours: list = field(default_factory=list)


@dataclass
class RtStruct:
    dataset: object
    frame_of_reference_uid: str
    referenced_series_uids: list
    referenced_instances: list  # [(sop_class, sop_instance)] from the Contour Image Sequence
    rois: dict  # number -> Roi


def load_slices(files, order=None):
    """Source images as Slice objects, ordered along the normal (or by `order`, a list of
    SOP Instance UIDs)."""
    slices = []
    for f in files:
        ds = pydicom.dcmread(str(f), stop_before_pixels=True)
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        slices.append(Slice(
            sop_instance_uid=str(ds.SOPInstanceUID),
            sop_class_uid=str(ds.SOPClassUID),
            position=np.array([float(v) for v in ds.ImagePositionPatient]),
            row_dir=iop[:3],
            col_dir=iop[3:],
            spacing=(float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1])),
            rows=int(ds.Rows),
            columns=int(ds.Columns)))
    if order is not None:
        by_uid = {s.sop_instance_uid: s for s in slices}
        return [by_uid[u] for u in order]
    normal = slices[0].normal
    return sorted(slices, key=lambda s: float(s.position @ normal))


def _contour_data_raw(item):
    """(VR, byte length) of ContourData as stored in the file (pydicom keeps elements of a
    sequence item raw until they are accessed)."""
    raw = item.get_item(ROI_CONTOUR_DATA)
    if raw is None:
        return "", 0
    vr = getattr(raw, "VR", "")
    length = getattr(raw, "length", None)
    if length is None:
        length = len(raw.value) if raw.value is not None else 0
    return str(vr), int(length)


def read_rtstruct(path):
    # force: some reference files (pydicom's own test RTSTRUCT) have no file meta header.
    ds = pydicom.dcmread(str(path), force=True)
    for_uid = str(ds.get("FrameOfReferenceUID", ""))
    series_uids = []
    instances = []
    for fr in ds.get("ReferencedFrameOfReferenceSequence", []):
        for study in fr.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                series_uids.append(str(series.SeriesInstanceUID))
                for img in series.get("ContourImageSequence", []):
                    instances.append((str(img.ReferencedSOPClassUID),
                                      str(img.ReferencedSOPInstanceUID)))
    rois = {}
    for item in ds.get("StructureSetROISequence", []):
        number = int(item.ROINumber)
        rois[number] = Roi(number=number, name=str(item.get("ROIName", "")),
                           frame_of_reference_uid=str(item.get("ReferencedFrameOfReferenceUID",
                                                               "")),
                           generation_algorithm=str(item.get("ROIGenerationAlgorithm", "")))
    for item in ds.get("RTROIObservationsSequence", []):
        number = int(item.ReferencedROINumber)
        if number in rois:
            rois[number].interpreted_type = str(item.get("RTROIInterpretedType", ""))
    for item in ds.get("ROIContourSequence", []):
        number = int(item.ReferencedROINumber)
        roi = rois.setdefault(number, Roi(number=number, name="", frame_of_reference_uid=""))
        if "ROIDisplayColor" in item:
            roi.color = tuple(int(v) for v in item.ROIDisplayColor)
        for c in item.get("ContourSequence", []):
            vr, length = _contour_data_raw(c)
            values = [float(v) for v in c.ContourData] if "ContourData" in c else []
            refs = []
            for img in c.get("ContourImageSequence", []):
                frame = img.get("ReferencedFrameNumber")
                refs.append((str(img.ReferencedSOPClassUID), str(img.ReferencedSOPInstanceUID),
                             int(frame) if frame is not None else None))
            roi.contours.append(ContourItem(
                geometric_type=str(c.get("ContourGeometricType", "")),
                points=np.array(values, dtype=float).reshape(-1, 3),
                number_of_points=int(c.get("NumberOfContourPoints", 0)),
                image_refs=refs, data_vr=vr, data_length=length))
    return RtStruct(dataset=ds, frame_of_reference_uid=for_uid,
                    referenced_series_uids=series_uids, referenced_instances=instances,
                    rois=rois)


def slice_of_contour(contour, slices, tolerance_mm=0.01):
    """Index of the image the contour lies on: its reference if it names one of `slices`,
    otherwise the image whose plane holds all points. Raises ValueError if the points are not
    in that image's plane."""
    index = None
    uids = {s.sop_instance_uid: k for k, s in enumerate(slices)}
    for _, uid, _frame in contour.image_refs:
        if uid in uids:
            index = uids[uid]
            break
    if index is None:
        z = [abs(float(np.mean(s.to_pixel(contour.points)[2]))) for s in slices]
        index = int(np.argmin(z))
    _, _, dist = slices[index].to_pixel(contour.points)
    if dist.size and float(np.max(np.abs(dist))) > tolerance_mm:
        raise ValueError(f"contour points lie up to {float(np.max(np.abs(dist))):.4f} mm off "
                         f"the plane of image {index}")
    return index


def even_odd_fill(polygons, rows, columns):
    """Pixels (rows, columns) whose centres are inside an odd number of the polygons, each a
    pair of arrays (x = column, y = row) in pixel coordinates. Crossings of a ray from each
    pixel centre towards +x are counted edge by edge (half-open in y, so a vertex on the
    ray's row counts once)."""
    x1 = np.concatenate([p[0] for p in polygons]) if polygons else np.zeros(0)
    y1 = np.concatenate([p[1] for p in polygons]) if polygons else np.zeros(0)
    x2 = np.concatenate([np.roll(p[0], -1) for p in polygons]) if polygons else np.zeros(0)
    y2 = np.concatenate([np.roll(p[1], -1) for p in polygons]) if polygons else np.zeros(0)
    lo = np.minimum(y1, y2)
    hi = np.maximum(y1, y2)
    # Rows j with lo <= j < hi are crossed by the edge.
    j0 = np.clip(np.ceil(lo), 0, rows).astype(np.int64)
    j1 = np.clip(np.ceil(hi), 0, rows).astype(np.int64)
    counts = np.maximum(j1 - j0, 0)
    total = int(counts.sum())
    crossings = np.zeros((rows, columns + 1), dtype=np.int64)
    if total:
        edge = np.repeat(np.arange(counts.size), counts)
        start = np.repeat(np.cumsum(counts) - counts, counts)
        j = j0[edge] + (np.arange(total) - start)
        t = (j - y1[edge]) / (y2[edge] - y1[edge])
        x = x1[edge] + t * (x2[edge] - x1[edge])
        # Pixel i is crossed by this ray when x > i: i in [0, ceil(x) - 1].
        n = np.clip(np.ceil(x), 0, columns).astype(np.int64)
        np.add.at(crossings, (j, n), 1)
    # For pixel i: number of crossings with n > i.
    suffix = np.cumsum(crossings[:, ::-1], axis=1)[:, ::-1]
    return (suffix[:, 1:] % 2).astype(bool)


def rasterise_roi(rt, roi_number, slices):
    """bool mask (len(slices), rows, columns) of one ROI, even-odd per image."""
    rows, columns = slices[0].rows, slices[0].columns
    per_slice = {}
    for contour in rt.rois[roi_number].contours:
        if contour.geometric_type not in ("CLOSED_PLANAR",):
            continue
        k = slice_of_contour(contour, slices)
        x, y, _ = slices[k].to_pixel(contour.points)
        per_slice.setdefault(k, []).append((x, y))
    mask = np.zeros((len(slices), rows, columns), dtype=bool)
    for k, polygons in per_slice.items():
        mask[k] = even_odd_fill(polygons, rows, columns)
    return mask


def dice(a, b):
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def signed_area(x, y):
    """Shoelace area of a polygon in pixel coordinates (positive: counter-clockwise in
    (column, row), i.e. about the normal row x column)."""
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
