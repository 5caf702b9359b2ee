"""SEG writer: synthetic phantom series in every orientation -> label mask -> SEG (through
segnode-test-write-derived, i.e. dicom::write_seg) -> dciodvfy (zero errors, only documented
warnings) and an independent pydicom/numpy reader (seg_reader.py) that must give back exactly
the mask written. The reference SEGs of dcmqi and highdicom in the shared corpus are read with
the same reader to check that it, and so our understanding of each attribute, agrees with
established tools.

Environment: SEGNODE_PHANTOM, SEGNODE_TEST_WRITE_DERIVED, SEGNODE_TEST_DATA (see harness.py).
"""

import shutil
import unittest
from pathlib import Path

import numpy as np
import pydicom

from harness import SEGNODE_TEST_DATA, generate_series
from derived_writer import (CT_IMAGE_STORAGE, DerivedWriterTestCase, edge_touching,
                            many_label_mask)
from seg_reader import SegObject, SourceSlice, source_slices

SOURCE_IMAGE_PURPOSE = ("121322", "DCM", "Source image for image processing operation")
SEGMENTATION_DERIVATION = ("113076", "DCM", "Segmentation")
MORPHOLOGICAL_OPERATIONS = ("123104", "DCM", "Morphological Operations")

# dciodvfy warnings that are accepted, as substrings; each is explained in docs/seg_rtstruct.md.
# The writer currently produces none.
ACCEPTED_WARNINGS = []

# What segnode-test-write-derived declares for labels 1..3 (tests/tools/write_derived.cpp).
TEST_SEGMENTS = {
    1: ("Body", ("123037004", "SCT", "Anatomical Structure"), ("38266002", "SCT", "Entire body")),
    2: ("Lung", ("123037004", "SCT", "Anatomical Structure"), ("39607008", "SCT", "Lung")),
    3: ("Bone", ("91723000", "SCT", "Anatomical Structure"), ("272673000", "SCT", "Bone")),
}


# ------------------------------------------------------------------ masks, shape (k, j, i)

def three_segments(dims):
    """A body-like ellipse (1) holding two blobs (2, 3); blob 3 only on some slices."""
    nx, ny, nz = dims
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    mask = np.zeros((nz, ny, nx), dtype=np.uint8)
    body = ((i - nx / 2) / (0.42 * nx)) ** 2 + ((j - ny / 2) / (0.38 * ny)) ** 2 <= 1
    mask[body] = 1
    blob2 = ((i - 0.35 * nx) / (0.12 * nx)) ** 2 + ((j - 0.45 * ny) / (0.15 * ny)) ** 2 <= 1
    mask[blob2] = 2
    blob3 = (((i - 0.65 * nx) / 3.0) ** 2 + ((j - 0.55 * ny) / 2.5) ** 2 <= 1) & (k % 3 != 1)
    mask[blob3] = 3
    return mask


def islands(dims, seed=7):
    """Many one-voxel and small islands of three labels (~4 % of voxels)."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = dims
    values = rng.integers(0, 75, size=(nz, ny, nx))
    mask = np.where(values < 3, values + 1, 0).astype(np.uint8)
    return mask


class SegTestBase(DerivedWriterTestCase):
    """The round trip with all its checks."""

    kind = "seg"
    accepted_warnings = ACCEPTED_WARNINGS

    def round_trip(self, name, mask_fn, rows=40, cols=44, slices=6, **phantom):
        """Phantom -> mask -> SEG; checks validity, exact decoding and the attributes."""
        gen = generate_series(self.tmp / name, rows=rows, cols=cols, slices=slices, **phantom)
        series_dir = self.tmp / name
        info = self.series_info(series_dir)
        self.assertEqual(info["dims"], [cols, rows, slices])
        mask = mask_fn(info["dims"])
        out, result = self.write(name, mask, series_dir)
        self.assertValid(out)

        slices_ = source_slices(gen["files"])
        # The reader's slice order (along the normal) is the loader's.
        self.assertEqual([s.sop_instance_uid for s in slices_], info["sop_instance_uids"])
        present = sorted(int(v) for v in np.unique(mask) if v != 0)
        labels_by_segment = {n + 1: label for n, label in enumerate(present)}
        seg = SegObject.read(out)
        volume = seg.label_volume(slices_, labels_by_segment)
        self.assertTrue(np.array_equal(volume, mask),
                        f"decoded SEG differs from the mask in {(volume != mask).sum()} voxels")
        self.check_attributes(seg, mask, gen, slices_, labels_by_segment, result)
        return seg, mask, result

    def check_attributes(self, seg, mask, gen, slices_, labels_by_segment, result):
        ds = seg.ds
        source = pydicom.dcmread(gen["files"][0], stop_before_pixels=True)
        # Identity: patient, study and frame of reference from the source, a new series.
        for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                        "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID",
                        "AccessionNumber", "FrameOfReferenceUID"):
            self.assertEqual(str(ds.get(keyword, "")), str(source.get(keyword, "")), keyword)
        self.assertNotEqual(ds.SeriesInstanceUID, source.SeriesInstanceUID)
        self.assertEqual(ds.SeriesInstanceUID, result["series_instance_uid"])
        self.assertEqual(ds.SOPInstanceUID, result["sop_instance_uid"])
        self.assertEqual(ds.file_meta.MediaStorageSOPInstanceUID, ds.SOPInstanceUID)
        self.assertEqual(ds.file_meta.TransferSyntaxUID, "1.2.840.10008.1.2.1")
        self.assertEqual(ds.Modality, "SEG")
        self.assertEqual(ds.SegmentationType, "BINARY")
        self.assertEqual(list(ds.ImageType), ["DERIVED", "PRIMARY"])
        self.assertEqual((ds.BitsAllocated, ds.BitsStored, ds.HighBit), (1, 1, 0))
        self.assertEqual(ds.SeriesNumber, 9901)

        # Frames only where a segment is present, by segment then slice.
        expected = [(n, k) for n, label in sorted(labels_by_segment.items())
                    for k in range(mask.shape[0]) if (mask[k] == label).any()]
        ks = seg.frame_slices(slices_)
        self.assertEqual([(f.segment_number, k) for f, k in zip(seg.frames, ks)], expected)
        self.assertEqual(seg.number_of_frames, len(expected))
        self.assertEqual(result["frames"], len(expected))
        bits = len(expected) * seg.rows * seg.columns
        self.assertEqual(seg.pixel_data_length, ((bits + 7) // 8 + 1) // 2 * 2,
                         "PixelData is one continuous bit stream padded to even length")
        for f, k in zip(seg.frames, ks):
            self.assertEqual(f.dimension_index_values, (f.segment_number, k + 1))
            self.assertEqual(f.sources, [(CT_IMAGE_STORAGE, slices_[k].sop_instance_uid, None)])
            self.assertEqual(f.purposes, [SOURCE_IMAGE_PURPOSE])
            self.assertEqual(f.derivation_codes, [SEGMENTATION_DERIVATION])
            self.assertTrue(seg.pixels[f.index].any(), "a frame without foreground")

        # Segments: numbered 1..n, codes as declared, colours in range.
        self.assertEqual(sorted(seg.segments), list(range(1, len(labels_by_segment) + 1)))
        for number, label in labels_by_segment.items():
            s = seg.segments[number]
            if label in TEST_SEGMENTS:
                name, category, type_ = TEST_SEGMENTS[label]
                self.assertEqual((s.label, s.category, s.type), (name, category, type_))
            self.assertEqual(s.algorithm_type, "AUTOMATIC")
            self.assertEqual(s.algorithm_name, "test")
            self.assertEqual(s.algorithm_family, MORPHOLOGICAL_OPERATIONS)
            self.assertEqual(s.algorithm_version, "1.0.0")
            self.assertEqual(len(s.cielab), 3)

        # Shared geometry equals the source's.
        np.testing.assert_allclose(seg.orientation,
                                   [float(v) for v in source.ImageOrientationPatient], atol=1e-6)
        np.testing.assert_allclose(seg.pixel_spacing, [float(v) for v in source.PixelSpacing])
        # Every source instance is referenced.
        self.assertEqual(seg.referenced_instances,
                         {gen["series_uid"]: [s.sop_instance_uid for s in slices_]})


class SegWriterTest(SegTestBase):

    def test_axial_61x67_three_segments(self):
        seg, mask, _ = self.round_trip("axial", three_segments, rows=61, cols=67, slices=9)
        self.assertEqual((seg.rows, seg.columns), (61, 67))
        self.assertEqual(len(seg.segments), 3)
        # blob 3 is absent from slices 1, 4, 7: no frames there.
        self.assertEqual(len(seg.frames_of(3)), 6)

    def test_coronal(self):
        self.round_trip("coronal", three_segments, rows=37, cols=45, slices=7,
                        orientation="coronal")

    def test_sagittal(self):
        self.round_trip("sagittal", three_segments, rows=45, cols=37, slices=7,
                        orientation="sagittal")

    def test_oblique(self):
        self.round_trip("oblique", three_segments, rows=33, cols=41, slices=5,
                        orientation="oblique")

    def test_feet_first(self):
        self.round_trip("ffs", three_segments, rows=30, cols=34, slices=5, feet_first=True)

    def test_single_slice(self):
        seg, _, _ = self.round_trip("single", three_segments, rows=61, cols=67, slices=1)
        self.assertEqual(seg.number_of_frames, 3)

    def test_segments_touching_the_edges(self):
        self.round_trip("edges", edge_touching, rows=23, cols=29, slices=4)

    def test_many_small_islands(self):
        seg, mask, _ = self.round_trip("islands", islands, rows=61, cols=67, slices=5)
        self.assertGreater(int((mask != 0).sum()), 500)

    def test_117_labels_512x512(self):
        """A TotalSegmentator-sized label map: 117 labels (boxes, ellipsoids, hollow ones, many
        on the same slices, some overlapping) on 512 x 512 x 60. Every segment's frames decode
        to exactly its mask (round_trip), one segment per label."""
        name = "many117"
        seg, mask, result = self.round_trip(
            name, lambda dims: many_label_mask(self.tmp / name, 117, dims),
            rows=512, cols=512, slices=60)
        self.assertEqual(len(seg.segments), 117)
        self.assertEqual(sorted(int(v) for v in np.unique(mask) if v), list(range(1, 118)))
        self.assertEqual(result["notes"], [])
        print(f"  117 labels on 512 x 512 x 60: {seg.number_of_frames} frames, "
              f"write_seg {result['seconds']:.3f} s")

    def test_255_labels_every_label_present(self):
        """Every label 1..255 declared and present (small volume): 255 segments, exact."""
        name = "many255"
        seg, mask, _ = self.round_trip(
            name, lambda dims: many_label_mask(self.tmp / name, 255, dims),
            rows=64, cols=72, slices=24)
        self.assertEqual(len(seg.segments), 255)
        self.assertEqual(sorted(int(v) for v in np.unique(mask) if v), list(range(1, 256)))

    def test_odd_frame_bits_multiframe_stream(self):
        # 7 x 9 = 63 bits per frame: every frame after the first starts inside a byte.
        self.round_trip("tiny", islands, rows=7, cols=9, slices=5)

    def test_no_foreground_writes_nothing(self):
        self.series("empty")
        info = self.series_info(self.tmp / "empty")
        mask = np.zeros(info["dims"][::-1], dtype=np.uint8)
        out, proc = self.write("empty", mask, self.tmp / "empty", "--segments", "1,2",
                               expect_ok=False)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("label map has no foreground: no SEG written", proc.stderr)
        self.assertFalse(out.exists())

    def test_undeclared_label_is_refused(self):
        self.series("undeclared")
        info = self.series_info(self.tmp / "undeclared")
        mask = three_segments(info["dims"])
        mask[0, 0, 0] = 4
        out, proc = self.write("undeclared", mask, self.tmp / "undeclared", "--segments",
                               "1,2,3", expect_ok=False)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("label 4 occurs in 1 voxels", proc.stderr)
        self.assertFalse(out.exists())

    def test_empty_segment_left_out_and_renumbered(self):
        self.series("gap")
        info = self.series_info(self.tmp / "gap")
        mask = three_segments(info["dims"])
        mask[mask == 2] = 1
        out, result = self.write("gap", mask, self.tmp / "gap", "--segments", "1,2,3")
        self.assertValid(out)
        seg = SegObject.read(out)
        self.assertEqual({n: s.label for n, s in seg.segments.items()}, {1: "Body", 2: "Bone"})
        self.assertTrue(any("has no voxels" in n for n in result["notes"]), result["notes"])

    def test_uid_root_and_series_options(self):
        gen = self.series("uids")
        info = self.series_info(self.tmp / "uids")
        root = "1.2.826.0.1.3680043.10.1234"
        out, result = self.write("uids", three_segments(info["dims"]), self.tmp / "uids",
                                 "--uid-root", root, "--series-number", 42,
                                 "--series-description", "body SEG test")
        self.assertValid(out)
        ds = pydicom.dcmread(out, stop_before_pixels=True)
        for uid in (ds.SOPInstanceUID, ds.SeriesInstanceUID,
                    ds.DimensionOrganizationSequence[0].DimensionOrganizationUID):
            self.assertTrue(uid.startswith(root + "."), uid)
            self.assertLessEqual(len(uid), 64)
        self.assertEqual(ds.SeriesNumber, 42)
        self.assertEqual(ds.SeriesDescription, "body SEG test")
        self.assertEqual(ds.StudyInstanceUID, gen["study_uid"])

    def series(self, name, **kw):
        return generate_series(self.tmp / name, rows=24, cols=28, slices=4, **kw)


class EnhancedSourceTest(SegTestBase):
    """A multi-frame source (Legacy Converted Enhanced CT from dcmqi, in the corpus): every SEG
    frame references its source frame by ReferencedFrameNumber."""

    SOURCE = SEGNODE_TEST_DATA / "edge_cases/enhanced_multiframe/" \
        "dcmqi_legacy_converted_enhanced_ct_23x38x3.dcm"
    # Values copied verbatim from this source (PatientName "Anonymous", ReferringPhysicianName
    # "Unknown") are single-component PNs; the source's identity is copied as it is.
    SOURCE_PN_WARNINGS = ["(0x0010,0x0010) PN Patient's Name  PN [1] = <Anonymous> - Retired",
                          "(0x0008,0x0090) PN Referring Physician's Name  PN [1] = <Unknown> - "
                          "Retired"]

    def test_legacy_converted_enhanced_ct(self):
        if not self.SOURCE.exists():
            self.skipTest(f"{self.SOURCE} absent (SEGNODE_TEST_DATA)")
        series_dir = self.tmp / "mf"
        series_dir.mkdir()
        shutil.copy(self.SOURCE, series_dir)
        info = self.series_info(series_dir)
        self.assertEqual(info["frame_numbers"], [1, 2, 3])
        mask = three_segments(info["dims"])
        out, result = self.write("mf", mask, series_dir)
        self.assertValid(out, self.SOURCE_PN_WARNINGS)
        slices_ = source_slices([series_dir / self.SOURCE.name])
        self.assertEqual([s.frame_number for s in slices_], [1, 2, 3])
        seg = SegObject.read(out)
        present = sorted(int(v) for v in np.unique(mask) if v != 0)
        volume = seg.label_volume(slices_, {n + 1: label for n, label in enumerate(present)})
        self.assertTrue(np.array_equal(volume, mask))
        source_class = str(pydicom.dcmread(self.SOURCE, stop_before_pixels=True).SOPClassUID)
        for f, k in zip(seg.frames, seg.frame_slices(slices_)):
            self.assertEqual(f.sources, [(source_class, slices_[k].sop_instance_uid, k + 1)])
        self.assertEqual(list(seg.referenced_instances.values()),
                         [[slices_[0].sop_instance_uid]])


# ---------------------------------------------------------------------- reference SEGs

REFERENCE = SEGNODE_TEST_DATA / "seg_rtstruct_reference"

# Reference SEG -> directory of the source images it references (None: not in the corpus).
REFERENCE_SEGS = {
    "dcmqi/segmentations/23x38x3/seg/label.seg": "dcmqi/segmentations/23x38x3/image",
    "dcmqi/segmentations/24x38x3/seg/label.seg": "dcmqi/segmentations/24x38x3/image",
    "dcmqi/segmentations/liver.dcm": "dcmqi/segmentations/ct-3slice",
    "dcmqi/segmentations/partial_overlaps.dcm": "dcmqi/segmentations/ct-3slice",
    "dcmqi/sr-example/seg.dcm": None,
    "highdicom/seg_image_ct_binary.dcm": "highdicom/referenced_CT2_from_pydicom",
    "highdicom/seg_image_ct_binary_overlap.dcm": "highdicom/referenced_CT2_from_pydicom",
    "highdicom/seg_image_ct_binary_single_frame.dcm": "highdicom",
}
# (DimensionIndexPointer, FunctionalGroupPointer): ReferencedSegmentNumber in
# SegmentIdentificationSequence, then ImagePositionPatient in PlanePositionSequence.
SEGMENT_POSITION_DIMENSIONS = [(0x0062000B, 0x0062000A), (0x00200032, 0x00209113)]


def source_positions(directory):
    """{sop_instance_uid: ImagePositionPatient} of the images in a directory (not recursive)."""
    out = {}
    for f in sorted(Path(directory).iterdir()):
        if not f.is_file():
            continue
        try:
            ds = pydicom.dcmread(str(f), stop_before_pixels=True)
        except Exception:  # not DICOM (the SEGs of the directory are skipped below too)
            continue
        if "ImagePositionPatient" in ds:
            out[str(ds.SOPInstanceUID)] = tuple(float(v) for v in ds.ImagePositionPatient)
    return out


class ReferenceSegTest(unittest.TestCase):
    """The reader (and with it the meaning we give each attribute) against dcmqi and highdicom
    SEGs: what it derives must match what the files state."""

    @classmethod
    def setUpClass(cls):
        if not REFERENCE.is_dir():
            raise unittest.SkipTest(f"reference corpus absent: {REFERENCE} (SEGNODE_TEST_DATA)")

    def read(self, rel):
        path = REFERENCE / rel
        if not path.exists():
            self.skipTest(f"{path} absent from the corpus")
        return SegObject.read(path)

    def test_reference_segs_decode_consistently(self):
        for rel, source_dir in REFERENCE_SEGS.items():
            with self.subTest(seg=rel):
                seg = self.read(rel)
                ds = seg.ds
                self.assertEqual(seg.segmentation_type, "BINARY")
                # Segment count, numbers and codes as the SegmentSequence states.
                self.assertEqual(len(seg.segments), len(ds.SegmentSequence))
                self.assertEqual(sorted(seg.segments), list(range(1, len(seg.segments) + 1)))
                for s in seg.segments.values():
                    self.assertTrue(s.label)
                    for code in (s.category, s.type):
                        self.assertTrue(all(code), code)
                # Every frame belongs to a declared segment; frame counts add up.
                counts = {n: len(seg.frames_of(n)) for n in seg.segments}
                self.assertEqual(sum(counts.values()), seg.number_of_frames)
                # Same dimension organisation as ours: (segment, position), and the first
                # dimension index is the frame's segment number.
                dims = [(int(x.DimensionIndexPointer), int(x.FunctionalGroupPointer))
                        for x in ds.DimensionIndexSequence]
                self.assertEqual(dims, SEGMENT_POSITION_DIMENSIONS)
                for f in seg.frames:
                    self.assertEqual(f.dimension_index_values[0], f.segment_number)
                    self.assertEqual(f.purposes, [SOURCE_IMAGE_PURPOSE])
                    self.assertEqual(f.derivation_codes, [SEGMENTATION_DERIVATION])
                    self.assertEqual(len(f.sources), 1)
                # Bit packing gives a non-empty mask for every segment, and the value is the
                # continuous stream's length padded to even.
                bits = seg.number_of_frames * seg.rows * seg.columns
                self.assertEqual(seg.pixel_data_length, ((bits + 7) // 8 + 1) // 2 * 2)
                for n in seg.segments:
                    self.assertTrue(any(seg.pixels[f.index].any() for f in seg.frames_of(n)),
                                    f"segment {n} decodes empty")
                # Frame positions are the referenced source images' positions.
                if source_dir is None:
                    continue
                positions = source_positions(REFERENCE / source_dir)
                for f in seg.frames:
                    uid = f.sources[0][1]
                    self.assertIn(uid, positions, "referenced source image not in the corpus")
                    np.testing.assert_allclose(f.position, positions[uid], atol=1e-3)
                slices = [SourceSlice(uid, p) for uid, p in positions.items()]
                seg.label_volume(sorted(slices, key=lambda s: np.dot(s.position, seg.normal())))

    def test_dcmqi_23x38_corners_survive_continuous_packing(self):
        # 23 x 38 = 874 bits per frame, not a multiple of 8: frames 2 and 3 start mid-byte.
        # dcmqi marks the four corners of every frame; a reader that padded frames to whole
        # bytes would see them shifted.
        seg = self.read("dcmqi/segmentations/23x38x3/seg/label.seg")
        self.assertEqual((seg.rows, seg.columns, seg.number_of_frames), (38, 23, 3))
        for f in seg.frames:
            p = seg.pixels[f.index]
            self.assertTrue(p[0, 0] and p[0, -1] and p[-1, 0] and p[-1, -1],
                            f"frame {f.index + 1} corners")
        self.assertEqual(int(seg.pixels[1].sum()), 314)

    def test_segment_metadata_as_stated(self):
        seg = self.read("dcmqi/segmentations/partial_overlaps.dcm")
        self.assertEqual({n: s.label for n, s in seg.segments.items()},
                         {1: "GREEN", 2: "ORANGE", 3: "PURPLE", 4: "LIGHT_BLUE", 5: "DARK_BLUE"})
        self.assertEqual(seg.segments[2].type, ("51114001", "SCT", "Artery"))
        self.assertEqual({n: len(seg.frames_of(n)) for n in seg.segments},
                         {1: 1, 2: 1, 3: 3, 4: 1, 5: 1})
        hd = self.read("highdicom/seg_image_ct_binary_overlap.dcm")
        self.assertEqual(hd.segments[2].type, ("421060004", "SCT", "Spine"))
        self.assertEqual(hd.segments[1].algorithm_family,
                         ("123110", "DCM", "Artificial Intelligence"))
        self.assertEqual({n: len(hd.frames_of(n)) for n in hd.segments}, {1: 4, 2: 4})


if __name__ == "__main__":
    unittest.main()
