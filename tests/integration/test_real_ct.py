"""Real data: the JPEG Lossless chest CT of the shared corpus through `segnode run`.

The series is `ct_chest_ricord` under SEGNODE_TEST_DATA (see ../shared/data/SOURCES.md):
255 axial CT images of 512 x 512, JPEG Lossless SV1, a non-contrast chest of one adult
(TCIA MIDRC-RICORD-1A). The tests skip, with a message naming the path, when it is absent.

`segnode run` segments it with `body`, `lungs` and `threshold` (its default HU range
[-500, 3071], used here as "dense" voxels, since pydicom cannot decode JPEG Lossless without
extra packages). The label maps are read back as uncompressed NIfTI-1 (348-byte header, uint8)
with numpy, and checked for anatomical plausibility: volumes in ranges justified below, lungs
inside the body, both lungs present, the table and the air left out of the body.

Geometry of the series, from which the ranges follow: pixel spacing 0.703125 mm, so the field
of view is 512 x 0.703125 = 360 mm, reconstructed in a circle of 360 mm diameter (the corners
hold -3024 HU padding); 255 slices 1.25 mm apart cover 318.75 mm from the upper abdomen to the
lower neck. The circle holds pi * 180^2 * 318.75 mm^3 = 32.4 L, the whole box 41.3 L.

Measured with segnode 1.0.0 built-ins (for the record; the ranges are not centred on them
blindly, each bound is explained): body 24.40 L (axial area 560-925 cm^2, mean 765 cm^2: a broad
adult whose flanks reach the edge of the reconstruction circle); lungs 4.37 L, 48 % on the
patient's left, 52 % on the right; 0.20 L of dense material outside the body, the table
(a curved shell 15-30 mm behind the back) among it.
"""

import json
import shutil
import tempfile
import unittest
from pathlib import Path

import numpy as np

from harness import SEGNODE_TEST_DATA, SegnodeTestCase, run_cli
from test_run_cli import SEGMENT_RE, SUMMARY_RE, read_nifti

SERIES = SEGNODE_TEST_DATA / "ct_chest_ricord"
ALGORITHMS = ("body", "lungs", "threshold")

# Body, in litres (measured 24.40). Lower bound 21 L: a body without its holes filled (lungs,
# airways and bowel gas left out) measures 20.1 L here; 21 L over 31.9 cm is a mean axial area
# of 660 cm^2 (a 34 x 25 cm ellipse), less than any adult chest and abdomen wide enough to fill
# this field of view. Upper bound 28 L: the reconstruction circle holds 32.4 L and the box
# 41.3 L, so a body that took in the air around the patient (~8 L here) or the padding fails;
# 28 L would need a mean area of 880 cm^2, nearly the full 36 cm width times this patient's
# ~25 cm depth on every slice. The table is thin (~0.2 L), so it is checked
# geometrically, not by volume.
BODY_L = (21.0, 28.0)
# Lungs (both, with the trachea and main bronchi, which the built-in includes), in litres.
# Adult lungs on a breath-hold CT at inspiration measure about 4-7 L (total lung capacity
# ~6 L in men, ~4.5 L in women; CT at breath-hold is a little below it); COVID-19 opacities,
# as in this collection, reduce the aerated volume. Lower bound 3 L: one lung alone (~2.1 L
# here) fails. Upper bound 7 L: any air outside the lungs in bulk fails (the air around the
# patient inside the circle alone is ~8 L).
LUNGS_L = (3.0, 7.0)
# Each side of the midline must hold at least this share of the lung volume (left and right
# lungs are ~45/55 % in healthy adults; one lung missing gives < 10 %).
MIN_SIDE_SHARE = 0.25
# Share of the body's columns in the central third of the image (under the spine, where the
# table runs) that must have dense voxels posterior to the body which are not body: the table.
MIN_TABLE_COLUMNS = 0.9
# Smallest 6-connected component of the lungs, as a share of the lung volume: the left and
# right lungs (joined by the airways or not) are each far larger; stomach or bowel gas is not
# lung.
MIN_COMPONENT_SHARE = 0.10


def nifti_mask(path):
    """The label map as a boolean array indexed [k, j, i], and the NIfTI header."""
    img, data = read_nifti(path)  # nibabel image, voxel bytes with i fastest
    h = img.header
    assert int(h["sizeof_hdr"]) == 348 and img.get_data_dtype() == np.uint8, h
    nx, ny, nz = (int(v) for v in h["dim"][1:4])
    voxels = np.frombuffer(data, dtype=np.uint8, count=nx * ny * nz)
    return voxels.reshape(nz, ny, nx) != 0, h


def component_sizes(mask):
    """Sizes (descending) of the 6-connected components of a boolean 3D array, numpy only:
    every voxel starts as its own tree; along each edge whose ends have different roots the
    larger root is hooked under the smaller, then paths are shortened by pointer jumping,
    until no edge joins two trees (a handful of rounds; ~3 s for the 7 M lung voxels)."""
    if not mask.any():
        return []
    # Crop to the bounding box to keep the index arrays small.
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        box.append(slice(hits[0], hits[-1] + 1))
    mask = np.ascontiguousarray(mask[tuple(box)])
    nz, ny, nx = mask.shape
    flat = mask.ravel()
    voxels = np.flatnonzero(flat)
    node = np.zeros(flat.size, dtype=np.int64)
    node[voxels] = np.arange(voxels.size)
    ends_a, ends_b = [], []
    for axis, step in ((2, 1), (1, nx), (0, nx * ny)):
        lower = [slice(None)] * 3
        upper = [slice(None)] * 3
        lower[axis] = slice(0, -1)
        upper[axis] = slice(1, None)
        both = np.zeros_like(mask)
        both[tuple(lower)] = mask[tuple(lower)] & mask[tuple(upper)]
        first = np.flatnonzero(both.ravel())
        ends_a.append(node[first])
        ends_b.append(node[first + step])
    a = np.concatenate(ends_a)
    b = np.concatenate(ends_b)
    parent = np.arange(voxels.size)
    while True:
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
        root_a, root_b = parent[a], parent[b]
        apart = root_a != root_b
        if not apart.any():
            break
        a, b, root_a, root_b = a[apart], b[apart], root_a[apart], root_b[apart]
        parent[np.maximum(root_a, root_b)] = np.minimum(root_a, root_b)
    _, sizes = np.unique(parent, return_counts=True)
    return sorted(sizes.tolist(), reverse=True)


class RealChestCtTest(SegnodeTestCase):
    """One `segnode run` per algorithm for the whole class; the tests read the outputs."""

    @classmethod
    def setUpClass(cls):
        if not SERIES.is_dir():
            raise unittest.SkipTest(
                f"real CT corpus not found: {SERIES} does not exist (set SEGNODE_TEST_DATA to "
                f"the shared data folder holding ct_chest_ricord/; see ../shared/data/SOURCES.md)")
        super().setUpClass()
        cls.out = Path(tempfile.mkdtemp(prefix="segnode-it-real-ct-"))
        cls.runs = {}
        try:
            for name in ALGORITHMS:
                out = cls.out / name
                proc = run_cli("run", "--algorithm", name, "--input", str(SERIES),
                               "--output", str(out), timeout=120)
                if proc.returncode != 0:
                    raise AssertionError(f"segnode run --algorithm {name} failed "
                                         f"({proc.returncode})\nstdout: {proc.stdout}\n"
                                         f"stderr: {proc.stderr}")
                mask, header = nifti_mask(out / "labels.nii")
                cls.runs[name] = {
                    "proc": proc,
                    "mask": mask,
                    "header": header,
                    "manifest": json.loads((out / "segments.json").read_text()),
                }
        except BaseException:
            shutil.rmtree(cls.out, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.out, ignore_errors=True)

    def mask(self, name):
        return self.runs[name]["mask"]

    def litres(self, name):
        return self.runs[name]["manifest"]["segments"][0]["volume_ml"] / 1000.0

    # ---------------------------------------------------------------- outputs

    def test_series_loads_with_its_geometry(self):
        for name in ALGORITHMS:
            manifest = self.runs[name]["manifest"]
            label_map = manifest["label_map"]
            self.assertEqual(label_map["dims"], [512, 512, 255], name)
            for got, expected in zip(label_map["spacing_mm"], (0.703125, 0.703125, 1.25)):
                self.assertAlmostEqual(got, expected, places=6, msg=name)
            # Axial, head first: the i, j, k axes are LPS x, y, z.
            self.assertEqual(label_map["direction"], [1, 0, 0, 0, 1, 0, 0, 0, 1], name)
            self.assertEqual(manifest["source"]["modality"], "CT")

    def test_summary_and_manifest_agree_with_the_label_map(self):
        for name in ALGORITHMS:
            run = self.runs[name]
            voxels = int(run["mask"].sum())
            lines = run["proc"].stdout.splitlines()
            self.assertEqual(len(lines), 1, run["proc"].stdout)
            m = SUMMARY_RE.match(lines[0])
            self.assertIsNotNone(m, lines[0])
            self.assertEqual(m["algorithm"], name)
            s = SEGMENT_RE.match(m["segments"])
            self.assertIsNotNone(s, m["segments"])
            self.assertEqual(int(s["voxels"]), voxels, name)
            segment = run["manifest"]["segments"][0]
            self.assertEqual(segment["voxels"], voxels, name)
            voxel_ml = 0.703125 * 0.703125 * 1.25 / 1000.0
            self.assertAlmostEqual(segment["volume_ml"], voxels * voxel_ml, places=3)
            self.assertAlmostEqual(float(s["ml"]), voxels * voxel_ml, delta=0.006)

    # ---------------------------------------------------------------- body

    def test_body_volume_is_physiological(self):
        litres = self.litres("body")
        self.assertGreaterEqual(litres, BODY_L[0], "body too small (holes not filled?)")
        self.assertLessEqual(litres, BODY_L[1], "body too large (air or padding included?)")

    def test_body_leaves_out_the_air_around_the_patient(self):
        body = self.mask("body")
        # The corners of every slice lie outside the reconstruction circle (-3024 HU).
        for j, i in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
            self.assertFalse(body[:, j, i].any(), f"body at corner (i, j) = ({i}, {j})")
        self.assertTrue(body.any(axis=(1, 2)).all(), "a slice without body")

    def test_body_leaves_out_the_table(self):
        """Under the patient (central third of the columns), behind the body's most posterior
        voxel, there must be dense voxels that are not body: the table, separated from the back
        by air. A body that took in the table would end at the table's underside instead."""
        body = self.mask("body")
        dense = self.mask("threshold")
        nz, ny, nx = body.shape
        j = np.arange(ny)[None, :, None]
        has_body = body.any(axis=1)                      # [k, i]
        last_body_j = np.where(body, j, -1).max(axis=1)  # [k, i]
        behind = (dense & ~body & (j > last_body_j[:, None, :])).any(axis=1)
        central = np.zeros_like(has_body)
        central[:, nx // 3: 2 * nx // 3] = True
        columns = has_body & central
        share = (behind & columns).sum() / columns.sum()
        self.assertGreaterEqual(share, MIN_TABLE_COLUMNS,
                                f"only {share:.1%} of the central columns have the table behind "
                                f"the body")

    # ---------------------------------------------------------------- lungs

    def test_lung_volume_is_physiological(self):
        litres = self.litres("lungs")
        self.assertGreaterEqual(litres, LUNGS_L[0], "lungs too small (one lung missing?)")
        self.assertLessEqual(litres, LUNGS_L[1], "lungs too large (air outside the lungs?)")

    def test_lungs_lie_inside_the_body(self):
        outside = int((self.mask("lungs") & ~self.mask("body")).sum())
        self.assertEqual(outside, 0, f"{outside} lung voxels outside the body")

    def test_both_lungs_are_present(self):
        """Split at the patient's midline, the body's centroid along x (LPS +x = patient's
        left = increasing i here): each side holds at least MIN_SIDE_SHARE of the lungs."""
        lungs = self.mask("lungs")
        body = self.mask("body")
        i = np.arange(body.shape[2])
        body_columns = body.sum(axis=(0, 1))
        midline = float((body_columns * i).sum() / body_columns.sum())
        lung_columns = lungs.sum(axis=(0, 1))
        total = lung_columns.sum()
        left = lung_columns[i > midline].sum() / total
        right = lung_columns[i <= midline].sum() / total
        for side, share in (("left", left), ("right", right)):
            self.assertGreaterEqual(share, MIN_SIDE_SHARE,
                                    f"the patient's {side} side holds {share:.1%} of the lungs "
                                    f"(midline at i = {midline:.1f})")

    def test_lungs_are_lungs_only(self):
        """On this series the lungs and airways form ONE 6-connected component (the trachea
        and main bronchi join them); keep_largest = 2 alone would keep, as the second
        component, gas in the stomach/bowel below the left diaphragm (~107 ml, 2.4 % of the
        mask). lungs >= 1.1.0 keeps a second component only if it holds at least
        second_min_fraction (0.15) of the largest."""
        sizes = component_sizes(self.mask("lungs"))
        total = sum(sizes)
        small = [s for s in sizes if s < MIN_COMPONENT_SHARE * total]
        self.assertEqual(small, [], f"lung components (voxels): {sizes}")


if __name__ == "__main__":
    unittest.main()
