"""`segnode run` (offline segmentation) and `segnode algorithm list|show`.

The label maps are read back with readers segnode does not use: NIfTI with nibabel (Debian
python3-nibabel, which reports NIfTI's RAS), NRRD header line by line. The truth comes from
the phantom series
itself, read with pydicom: the phantom's body is every voxel of soft tissue (40 HU), lung
(-850 HU) or bone (700 HU); air is -1000 HU and the table, separated from the body by air,
200 HU (tests/phantom/README.md). No noise, so the body algorithm (threshold, largest
component, holes filled) must find that set; the test allows 2 % on the volume.
"""

import array
import json
import math
import re
import struct
import sys
import unittest
from pathlib import Path

import nibabel
import numpy
import pydicom

from harness import SegnodeTestCase, run_cli

BUILTINS = ("otsu", "threshold", "body", "lungs", "bone")
BODY_HU = (40, -850, 700)  # soft tissue, lung, bone: the phantom's body

SUMMARY_RE = re.compile(
    r"^(?P<algorithm>\S+) (?P<version>\S+): (?P<segments>.+) \| load (?P<load>[\d.]+) s, "
    r"run (?P<run>[\d.]+) s, write (?P<write>[\d.]+) s, total (?P<total>[\d.]+) s$")
SEGMENT_RE = re.compile(r"^(?P<name>.+) (?P<voxels>\d+) voxels (?P<ml>[\d.]+) ml$")


# ---------------------------------------------------------------- readers

def read_nifti(path):
    """NIfTI-1 file (.nii or .nii.gz) -> (nibabel image, voxel bytes in index order: i fastest,
    then j, then k)."""
    img = nibabel.load(str(path))
    data = numpy.asanyarray(img.dataobj)
    return img, data.tobytes(order="F")


def affine_position(affine, i, j, k):
    return tuple(float(affine[r][0] * i + affine[r][1] * j + affine[r][2] * k + affine[r][3])
                 for r in range(3))


def lps_geometry_as_ras_affine(label_map):
    """segments.json's LPS geometry as the 4x4 voxel -> RAS affine NIfTI must carry: the LPS
    affine (direction columns times spacing, then the origin) with rows x and y negated."""
    d, sp, o = label_map["direction"], label_map["spacing_mm"], label_map["origin_lps_mm"]
    affine = numpy.zeros((4, 4))
    for r in range(3):
        sign = -1.0 if r < 2 else 1.0
        for c in range(3):
            affine[r][c] = sign * d[3 * r + c] * sp[c]
        affine[r][3] = sign * o[r]
    affine[3][3] = 1.0
    return affine


def read_nrrd(path):
    """NRRD with an inline header -> (fields dict, voxel bytes)."""
    data = Path(path).read_bytes()
    end = data.index(b"\n\n")
    lines = data[:end].decode().split("\n")
    fields = {"magic": lines[0]}
    for line in lines[1:]:
        if line.startswith("#"):
            continue
        key, _, value = line.partition(": ")
        fields[key] = value
    return fields, data[end + 2:]


def nrrd_vectors(text):
    return [tuple(float(x) for x in v.split(",")) for v in re.findall(r"\(([^)]*)\)", text)]


# ---------------------------------------------------------------- the source series

class SourceSeries:
    """The phantom's files read with pydicom: positions, axes and HU per slice."""

    def __init__(self, files):
        self.slices = []
        for f in files:
            ds = pydicom.dcmread(f)
            signed = int(ds.PixelRepresentation) == 1
            raw = array.array("h" if signed else "H")
            raw.frombytes(ds.PixelData)
            if sys.byteorder != "little":
                raw.byteswap()
            slope = float(getattr(ds, "RescaleSlope", 1))
            intercept = float(getattr(ds, "RescaleIntercept", 0))
            self.slices.append({
                "file": Path(f),
                "uid": str(ds.SOPInstanceUID),
                "ipp": [float(x) for x in ds.ImagePositionPatient],
                "hu": [round(v * slope + intercept) for v in raw],
            })
            iop = [float(x) for x in ds.ImageOrientationPatient]
            self.row_dir, self.col_dir = iop[:3], iop[3:]
            # PixelSpacing = (row spacing, column spacing)
            self.row_spacing, self.col_spacing = (float(x) for x in ds.PixelSpacing)
            self.rows, self.cols = int(ds.Rows), int(ds.Columns)

    def position(self, slice_index, i, j):
        """LPS position of column i, row j of a slice (the DICOM formula)."""
        ipp = self.slices[slice_index]["ipp"]
        return tuple(ipp[r] + i * self.col_spacing * self.row_dir[r]
                     + j * self.row_spacing * self.col_dir[r] for r in range(3))

    def slice_at(self, lps, tolerance):
        """Index of the slice whose IPP is `lps`."""
        for n, s in enumerate(self.slices):
            if max(abs(a - b) for a, b in zip(s["ipp"], lps)) <= tolerance:
                return n
        raise AssertionError(f"no slice of the series is at {lps}")

    def body_truth(self, order):
        """0/1 bytes of the phantom's body in the label map's voxel order (i fastest, then j,
        then k = order[k])."""
        out = bytearray()
        for n in order:
            out += bytes(1 if hu in BODY_HU else 0 for hu in self.slices[n]["hu"])
        return bytes(out)


def dice(a, b):
    both = sum(1 for x, y in zip(a, b) if x and y)
    return 2.0 * both / (sum(1 for x in a if x) + sum(1 for y in b if y))


# ---------------------------------------------------------------- tests

class RunCliTest(SegnodeTestCase):

    def run_segnode(self, *args, timeout=120):
        return run_cli("run", *map(str, args), timeout=timeout)

    def parse_summary(self, proc, algorithm):
        lines = proc.stdout.splitlines()
        self.assertEqual(len(lines), 1, f"one summary line expected on stdout:\n{proc.stdout}")
        m = SUMMARY_RE.match(lines[0])
        self.assertIsNotNone(m, f"summary line: {lines[0]!r}")
        self.assertEqual(m["algorithm"], algorithm)
        for key in ("load", "run", "write"):
            self.assertLessEqual(float(m[key]), float(m["total"]) + 0.01)
        segments = []
        for part in m["segments"].split("; "):
            s = SEGMENT_RE.match(part)
            self.assertIsNotNone(s, f"segment part of the summary: {part!r}")
            segments.append((s["name"], int(s["voxels"]), float(s["ml"])))
        return m, segments

    PROBES = ((0, 0), (1, 0), (0, 1), (17, 11), (-1, 0), (0, -1), (-1, -1))

    def nifti_slice_order(self, img, source):
        """Checks that every output slice k is one of the source slices, that the sform and the
        qform (as nibabel reads them) put voxel (i, j, k) where the DICOM formula puts it
        (RAS = -x, -y, z of LPS), and returns the source slice index of each k (spatial order,
        either direction)."""
        sform, sform_code = img.get_sform(coded=True)
        qform, qform_code = img.get_qform(coded=True)
        self.assertGreater(int(sform_code), 0, "sform set")
        self.assertGreater(int(qform_code), 0, "qform set")
        n_slices = len(source.slices)
        order = []
        for k in range(n_slices):
            ras = affine_position(sform, 0, 0, k)
            n = source.slice_at((-ras[0], -ras[1], ras[2]), tolerance=1e-3)
            order.append(n)
            for i, j in self.PROBES:
                i, j = i % source.cols, j % source.rows
                lps = source.position(n, i, j)
                expected = (-lps[0], -lps[1], lps[2])
                for form, got in (("sform", affine_position(sform, i, j, k)),
                                  ("qform", affine_position(qform, i, j, k))):
                    for a, b in zip(got, expected):
                        self.assertAlmostEqual(a, b, delta=1e-3,
                                               msg=f"{form} of voxel {(i, j, k)}")
        self.assertIn(order, (list(range(n_slices)), list(range(n_slices - 1, -1, -1))),
                      "slices in spatial order")
        return order

    def nrrd_slice_order(self, fields, source):
        """The same for the NRRD header (LPS as is; doubles, so a tight tolerance)."""
        n_slices = len(source.slices)
        (origin,) = nrrd_vectors(fields["space origin"])
        di, dj, dk = nrrd_vectors(fields["space directions"])
        order = []
        for k in range(n_slices):
            pos = tuple(origin[r] + k * dk[r] for r in range(3))
            n = source.slice_at(pos, tolerance=1e-6)
            order.append(n)
            for i, j in self.PROBES:
                i, j = i % source.cols, j % source.rows
                got = tuple(origin[r] + i * di[r] + j * dj[r] + k * dk[r] for r in range(3))
                for a, b in zip(got, source.position(n, i, j)):
                    self.assertAlmostEqual(a, b, delta=1e-6, msg=f"voxel {(i, j, k)}")
        self.assertIn(order, (list(range(n_slices)), list(range(n_slices - 1, -1, -1))),
                      "slices in spatial order")
        return order

    def check_nifti_header(self, img, dims, spacing):
        """What nibabel reports of a label map header: NIfTI-1, uint8, mm, dims and spacing."""
        self.assertIsInstance(img, nibabel.Nifti1Image)
        self.assertEqual(img.get_data_dtype(), numpy.uint8)
        self.assertEqual(img.header.get_xyzt_units()[0], "mm")
        self.assertEqual(img.shape, dims)
        for got, expected in zip(img.header.get_zooms(), spacing):
            self.assertAlmostEqual(float(got), expected, places=5)
        self.assertIn(float(img.header["pixdim"][0]), (-1.0, 1.0))  # qfac

    def check_nifti_affine(self, img, out):
        """nibabel's RAS affine (and the qform) equal the LPS geometry that segments.json
        records, with x and y negated."""
        manifest = json.loads((out / "segments.json").read_text())
        expected = lps_geometry_as_ras_affine(manifest["label_map"])
        for name, affine in (("affine", img.affine), ("qform", img.get_qform())):
            self.assertTrue(numpy.allclose(affine, expected, atol=1e-4),
                            f"{name}:\n{affine}\nexpected:\n{expected}")

    def check_body_outputs(self, out, source, labels, order, fmt, voxel_ml, proc):
        """What both formats share: summary, segments.json, voxels against the truth."""
        truth = source.body_truth(order)
        self.assertEqual(len(labels), len(truth))
        self.assertLessEqual(set(labels), {0, 1}, "the body label map holds only 0 and 1")
        voxels = labels.count(1)
        truth_voxels = truth.count(1)
        self.assertGreater(truth_voxels, 1000, "the phantom has a body")
        self.assertLessEqual(abs(voxels - truth_voxels), 0.02 * truth_voxels,
                             f"body {voxels} voxels, truth {truth_voxels}")
        self.assertGreater(dice(labels, truth), 0.98, "body label map against the truth")

        _, segments = self.parse_summary(proc, "body")
        self.assertEqual(segments, [("Body", voxels, round(voxels * voxel_ml, 2))])

        manifest = json.loads((out / "segments.json").read_text())
        self.assertEqual(manifest["algorithm"]["name"], "body")
        self.assertEqual(manifest["algorithm"]["version"], "1.0.0")
        self.assertEqual(manifest["label_map"]["file"],
                         {"nifti": "labels.nii", "nifti_gz": "labels.nii.gz",
                          "nrrd": "labels.nrrd"}[fmt])
        self.assertEqual(manifest["label_map"]["format"], fmt)
        self.assertEqual(manifest["label_map"]["dims"], [source.cols, source.rows,
                                                         len(source.slices)])
        self.assertEqual(len(manifest["segments"]), 1)
        seg = manifest["segments"][0]
        self.assertEqual(seg["label"], 1)
        self.assertEqual(seg["name"], "Body")
        self.assertEqual(seg["category"], {"value": "123037004", "scheme": "SCT",
                                           "meaning": "Anatomical Structure"})
        self.assertEqual(seg["type"], {"value": "38266002", "scheme": "SCT",
                                       "meaning": "Entire body"})
        self.assertEqual(len(seg["rgb"]), 3)
        self.assertEqual(seg["voxels"], voxels)
        self.assertAlmostEqual(seg["volume_ml"], voxels * voxel_ml, places=6)
        truth_ml = truth_voxels * voxel_ml
        self.assertLessEqual(abs(seg["volume_ml"] - truth_ml), 0.02 * truth_ml)
        return manifest

    def test_body_nifti(self):
        info = self.series(rows=64, cols=64, slices=20, shuffle=True)
        source = SourceSeries(info["files"])
        out = self.tmp / "out" / "nested"  # created by segnode
        proc = self.run_segnode("--algorithm", "body", "--input", self.tmp / "series",
                                "--output", out, "--format", "nifti")
        self.assertProcOk(proc, "segnode run --format nifti")
        self.assertEqual(sorted(p.name for p in out.iterdir()), ["labels.nii", "segments.json"])

        img, labels = read_nifti(out / "labels.nii")
        self.check_nifti_header(img, (source.cols, source.rows, 20),
                                (source.col_spacing, source.row_spacing, 2.5))
        self.assertIn("body", img.header["descrip"].item().decode())

        order = self.nifti_slice_order(img, source)
        self.check_nifti_affine(img, out)

        voxel_ml = source.col_spacing * source.row_spacing * 2.5 / 1000.0
        manifest = self.check_body_outputs(out, source, labels, order, "nifti", voxel_ml, proc)
        self.assertEqual(manifest["source"]["series_uid"], info["series_uid"])
        self.assertEqual(manifest["source"]["study_uid"], info["study_uid"])
        self.assertEqual(manifest["algorithm"]["settings"],
                         {"min_hu": -500.0, "opening_mm": 0.0, "keep_largest": 1,
                          "fill_holes": True, "min_component_mm3": 0.0})

    def test_body_nrrd_feet_first(self):
        info = self.series(rows=64, cols=64, slices=20, feet_first=True)
        source = SourceSeries(info["files"])
        out = self.tmp / "out"
        proc = self.run_segnode("--algorithm", "body", "--input", self.tmp / "series",
                                "--output", out, "--format", "nrrd",
                                "--set", "min_component_mm3=10", "--set", "fill_holes=true")
        self.assertProcOk(proc, "segnode run --format nrrd")
        self.assertEqual(sorted(p.name for p in out.iterdir()), ["labels.nrrd", "segments.json"])

        fields, labels = read_nrrd(out / "labels.nrrd")
        self.assertEqual(fields["magic"], "NRRD0004")
        self.assertIn(fields["type"], ("uint8", "uchar", "unsigned char", "uint8_t"))
        self.assertEqual(fields["dimension"], "3")
        self.assertEqual(fields["encoding"], "raw")
        self.assertEqual(fields["space"], "left-posterior-superior")
        self.assertEqual(fields["sizes"], f"{source.cols} {source.rows} 20")
        order = self.nrrd_slice_order(fields, source)

        voxel_ml = source.col_spacing * source.row_spacing * 2.5 / 1000.0
        manifest = self.check_body_outputs(out, source, labels, order, "nrrd", voxel_ml, proc)
        self.assertEqual(manifest["algorithm"]["settings"]["min_component_mm3"], 10.0)
        self.assertIs(manifest["algorithm"]["settings"]["fill_holes"], True)

    def test_body_nifti_gz_oblique_feet_first(self):
        info = self.series(rows=48, cols=40, slices=12, orientation="oblique", feet_first=True)
        source = SourceSeries(info["files"])
        out = self.tmp / "out"
        proc = self.run_segnode("--algorithm", "body", "--input", self.tmp / "series",
                                "--output", out, "--format", "nifti_gz")
        self.assertProcOk(proc, "segnode run --format nifti_gz")
        self.assertEqual(sorted(p.name for p in out.iterdir()),
                         ["labels.nii.gz", "segments.json"])
        self.assertEqual((out / "labels.nii.gz").read_bytes()[:2], b"\x1f\x8b", "gzip")
        img, labels = read_nifti(out / "labels.nii.gz")
        self.check_nifti_header(img, (40, 48, 12), (source.col_spacing, source.row_spacing, 2.5))
        self.assertIn("body", img.header["descrip"].item().decode())
        order = self.nifti_slice_order(img, source)
        self.check_nifti_affine(img, out)
        voxel_ml = source.col_spacing * source.row_spacing * 2.5 / 1000.0
        self.check_body_outputs(out, source, labels, order, "nifti_gz", voxel_ml, proc)

    def check_threshold(self, orientation, fmt, feet_first=False):
        """`threshold` (HU >= -500, no post-processing) on a non-axial series: every voxel of
        the label map must equal the source's HU test at the position the header gives."""
        kw = {"feet_first": True} if feet_first else {}
        info = self.series(rows=24, cols=32, slices=10, orientation=orientation, **kw)
        source = SourceSeries(info["files"])
        out = self.tmp / "out"
        proc = self.run_segnode("-a", "threshold", "-i", self.tmp / "series", "-o", out,
                                "--format", fmt)
        self.assertProcOk(proc, f"segnode run threshold --format {fmt}")
        if fmt == "nifti":
            img, labels = read_nifti(out / "labels.nii")
            self.check_nifti_header(img, (32, 24, 10),
                                    (source.col_spacing, source.row_spacing, 2.5))
            order = self.nifti_slice_order(img, source)
            self.check_nifti_affine(img, out)
        else:
            fields, labels = read_nrrd(out / "labels.nrrd")
            self.assertEqual(fields["sizes"], "32 24 10")
            order = self.nrrd_slice_order(fields, source)
        expected = bytearray()
        for n in order:
            expected += bytes(1 if hu >= -500 else 0 for hu in source.slices[n]["hu"])
        self.assertGreater(expected.count(1), 100)
        self.assertTrue(labels == bytes(expected), "label map differs from HU >= -500")

    def test_threshold_oblique_nifti(self):
        self.check_threshold("oblique", "nifti")

    def test_threshold_sagittal_feet_first_nifti(self):
        self.check_threshold("sagittal", "nifti", feet_first=True)

    def test_threshold_coronal_nrrd(self):
        self.check_threshold("coronal", "nrrd")

    def test_default_format_is_nifti_and_settings_apply(self):
        self.series(rows=48, cols=48, slices=8)
        out = self.tmp / "out"
        proc = self.run_segnode("-a", "otsu", "-i", self.tmp / "series", "-o", out,
                                "--set", "bins=64")
        self.assertProcOk(proc, "segnode run otsu")
        self.assertTrue((out / "labels.nii").is_file())
        manifest = json.loads((out / "segments.json").read_text())
        self.assertEqual(manifest["algorithm"]["settings"]["bins"], 64)
        _, segments = self.parse_summary(proc, "otsu")
        self.assertEqual(segments[0][0], "Otsu foreground")
        self.assertGreater(segments[0][1], 0)
        # The algorithm's diagnostic line goes to stderr, not to the summary.
        self.assertIn("otsu: threshold", proc.stderr)

    def test_dicom_formats(self):
        # --format both writes a SEG and an RTSTRUCT of the source series (their content is
        # checked in test_seg_writer / test_rtstruct_writer / test_pipeline); segments.json
        # then names no label map file.
        ph = self.series(rows=48, cols=40, slices=6)
        out = self.tmp / "out"
        proc = self.run_segnode("--algorithm", "body", "--input", self.tmp / "series",
                                "--output", out, "--format", "both")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        seg = pydicom.dcmread(str(out / "seg.dcm"))
        rt = pydicom.dcmread(str(out / "rtstruct.dcm"))
        self.assertEqual((seg.Modality, rt.Modality), ("SEG", "RTSTRUCT"))
        self.assertEqual(seg.StudyInstanceUID, ph["study_uid"])
        self.assertEqual(rt.StudyInstanceUID, ph["study_uid"])
        self.assertEqual((int(seg.SeriesNumber), int(rt.SeriesNumber)), (9901, 9902))
        self.assertEqual(seg.SegmentSequence[0].SegmentLabel, "Body")
        manifest = json.loads((out / "segments.json").read_text())
        self.assertIsNone(manifest["label_map"]["file"])
        self.assertEqual(sorted(p.name for p in out.iterdir()),
                         ["rtstruct.dcm", "seg.dcm", "segments.json"])

    # errors -------------------------------------------------------------------------------

    def assertUsageError(self, proc, *fragments):
        self.assertEqual(proc.returncode, 2, f"usage error expected\nstdout: {proc.stdout}\n"
                                             f"stderr: {proc.stderr}")
        for fragment in fragments:
            self.assertIn(fragment, proc.stderr)
        self.assertEqual(proc.stdout, "")

    def test_setting_errors_name_the_key(self):
        self.series(rows=32, cols=32, slices=4)
        out = self.tmp / "out"
        base = ("--algorithm", "body", "--input", self.tmp / "series", "--output", out)
        self.assertUsageError(self.run_segnode(*base, "--set", "bogus_key=1"), "bogus_key",
                              "unknown setting")
        self.assertUsageError(self.run_segnode(*base, "--set", "min_hu=abc"), "min_hu", "abc")
        self.assertUsageError(self.run_segnode(*base, "--set", "keep_largest=1.5"),
                              "keep_largest", "integer")
        self.assertUsageError(self.run_segnode(*base, "--set", "fill_holes=maybe"),
                              "fill_holes")
        self.assertUsageError(self.run_segnode(*base, "--set", "opening_mm=100"), "opening_mm",
                              "range")
        self.assertUsageError(self.run_segnode(*base, "--set", "min_hu"), "min_hu",
                              "key=value")
        self.assertUsageError(
            self.run_segnode(*base, "--set", "min_hu=-400", "--set", "min_hu=-300"), "min_hu")
        self.assertFalse(out.exists(), "nothing is written for a usage error")

    def test_usage_errors(self):
        self.series(rows=32, cols=32, slices=4)
        series = self.tmp / "series"
        out = self.tmp / "out"
        proc = self.run_segnode("--algorithm", "nope", "--input", series, "--output", out)
        self.assertUsageError(proc, "nope", *BUILTINS)
        proc = self.run_segnode("--algorithm", "body", "--input", self.tmp / "missing",
                                "--output", out)
        self.assertUsageError(proc, str(self.tmp / "missing"))
        proc = self.run_segnode("--algorithm", "body", "--input", series, "--output", out,
                                "--format", "png")
        self.assertUsageError(proc, "png", "nifti", "nifti_gz", "nrrd", "seg", "rtstruct",
                              "both")
        self.assertUsageError(self.run_segnode("--algorithm", "body", "--input", series),
                              "--output")
        self.assertUsageError(self.run_segnode("--input", series, "--output", out),
                              "--algorithm")
        self.assertFalse(out.exists())

    def test_refused_geometry_is_a_load_failure(self):
        info = self.series(rows=32, cols=32, slices=9)
        Path(info["files"][4]).unlink()  # a missing slice in the middle
        out = self.tmp / "out"
        proc = self.run_segnode("--algorithm", "body", "--input", self.tmp / "series",
                                "--output", out)
        self.assertEqual(proc.returncode, 1, f"{proc.stdout}\n{proc.stderr}")
        self.assertIn("cannot load", proc.stderr)
        # The loader's message names the instances beside the gap.
        neighbours = [info["sop_instance_uids"][3], info["sop_instance_uids"][5],
                      Path(info["files"][3]).name, Path(info["files"][5]).name]
        self.assertTrue(any(n in proc.stderr for n in neighbours),
                        f"the loader's message should name the slices at the gap:\n"
                        f"{proc.stderr}")
        self.assertEqual(proc.stdout, "")
        self.assertFalse(out.exists(), "a failed run leaves no output directory it created")

    def test_empty_input_is_a_load_failure(self):
        empty = self.tmp / "empty"
        empty.mkdir()
        proc = self.run_segnode("--algorithm", "body", "--input", empty, "--output",
                                self.tmp / "out")
        self.assertEqual(proc.returncode, 1, f"{proc.stdout}\n{proc.stderr}")
        self.assertIn("cannot load", proc.stderr)


class AlgorithmCliTest(SegnodeTestCase):

    def test_list_shows_the_builtins(self):
        proc = run_cli("algorithm", "list")
        self.assertProcOk(proc, "algorithm list")
        lines = proc.stdout.splitlines()
        self.assertTrue(lines[0].split() == ["NAME", "VERSION", "SEGMENTS", "DESCRIPTION"],
                        lines[0])
        names = [line.split()[0] for line in lines[1:] if line and not line.startswith(" ")]
        self.assertEqual(names, list(BUILTINS))
        for line in lines[1:]:
            if line.startswith("body "):
                self.assertRegex(line, r"^body\s+1\.0\.0\s+Body\s+External body contour")

    def test_show_otsu(self):
        proc = run_cli("algorithm", "show", "otsu")
        self.assertProcOk(proc, "algorithm show otsu")
        out = proc.stdout
        self.assertTrue(out.startswith("otsu 1.0.0\n"), out)
        self.assertIn("Global Otsu threshold", out)
        self.assertRegex(out, r"(?m)^\s+bins\s+int\s+default 128\s+range \[2, 4096\]$")
        self.assertIn("number of histogram bins", out)
        self.assertRegex(out, r"(?m)^\s+fill_holes\s+bool\s+default false$")
        self.assertRegex(out, r"(?m)^\s+label 1\s+Otsu foreground$")
        self.assertIn('SCT 85756007 "Tissue"', out)
        self.assertRegex(out, r"colour\s+#[0-9a-f]{6} \(\d+, \d+, \d+\)")

    def test_show_body_codes(self):
        proc = run_cli("algorithm", "show", "body")
        self.assertProcOk(proc, "algorithm show body")
        self.assertIn('category  SCT 123037004 "Anatomical Structure"', proc.stdout)
        self.assertIn('type      SCT 38266002 "Entire body"', proc.stdout)
        self.assertRegex(proc.stdout, r"(?m)^\s+min_hu\s+double\s+default -500\s+range")

    def test_show_unknown(self):
        proc = run_cli("algorithm", "show", "nope")
        self.assertEqual(proc.returncode, 1, proc)
        self.assertIn("nope", proc.stderr)
        for name in BUILTINS:
            self.assertIn(name, proc.stderr)
        self.assertEqual(proc.stdout, "")


if __name__ == "__main__":
    unittest.main()
