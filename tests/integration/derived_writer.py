"""What the SEG and RTSTRUCT writer tests share: the segnode-test-write-derived tool
(tests/tools/write_derived.cpp), a test case base with a temporary directory, the tool's
round trip and the dciodvfy check, and the masks both suites use."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

import numpy as np

from harness import BUILD_DIR, SEGNODE_PHANTOM
from seg_reader import dciodvfy

WRITE_DERIVED = Path(os.environ.get("SEGNODE_TEST_WRITE_DERIVED")
                     or BUILD_DIR / "tests/tools/segnode-test-write-derived")
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
FIXED_NOW = 1700000000  # content date/time of the written objects


def run_tool(*args, timeout=180):
    return subprocess.run([str(WRITE_DERIVED), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def edge_touching(dims):
    """Segments on the first/last rows and columns, in the corners and on the first and last
    slices. Shape (k, j, i)."""
    nx, ny, nz = dims
    mask = np.zeros((nz, ny, nx), dtype=np.uint8)
    mask[:, 0, :] = 1
    mask[:, -1, :] = 1
    mask[:, :, 0] = 2
    mask[:, :, -1] = 2
    mask[0, 1:-1, 1:-1] = 3
    mask[-1, 1:-1, 1:-1] = 3
    mask[:, 0, 0] = 1
    mask[:, -1, -1] = 3  # a single corner voxel per slice
    return mask


def many_label_mask(series_dir, labels, dims):
    """The synthetic map of tests/phantom/label_maps.hpp with labels 1..`labels` (seed 1) on the
    geometry of `series_dir`, as the tool makes it (--rule labels:N --save-mask). Shape
    (k, j, i)."""
    raw = Path(series_dir).with_suffix(f".labels{labels}.raw")
    proc = run_tool("--series", series_dir, "--rule", f"labels:{labels}", "--save-mask", raw)
    if proc.returncode != 0:
        raise RuntimeError(f"segnode-test-write-derived --save-mask failed: {proc.stderr}")
    nx, ny, nz = dims
    return np.fromfile(raw, dtype=np.uint8).reshape(nz, ny, nx)


class DerivedWriterTestCase(unittest.TestCase):
    """Subclasses set `kind` ("seg" or "rtstruct") and `accepted_warnings` (dciodvfy warning
    substrings, each explained in docs/seg_rtstruct.md)."""

    maxDiff = 4000
    kind = "seg"
    accepted_warnings = ()

    @classmethod
    def setUpClass(cls):
        for tool in (SEGNODE_PHANTOM, WRITE_DERIVED):
            if not Path(tool).exists():
                raise unittest.SkipTest(f"{tool} not built")

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix=f"segnode-{self.kind}-{self._testMethodName}-"))
        if os.environ.get("SEGNODE_KEEP_TMP") != "1":
            self.addCleanup(shutil.rmtree, self.tmp, True)

    def series_info(self, series_dir):
        proc = run_tool("--series", series_dir, "--info")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return json.loads(proc.stdout)

    def write(self, name, mask, series_dir, *extra, expect_ok=True):
        """Writes `mask` (uint8, shape (k, j, i)) as this suite's object. Returns (path, the
        tool's JSON for it) or, with expect_ok=False, (path, the finished process)."""
        raw = self.tmp / f"{name}.raw"
        np.ascontiguousarray(mask, dtype=np.uint8).tofile(raw)
        if self.kind == "seg":
            out, option = self.tmp / f"{name}.dcm", "--out"
        else:
            out, option = self.tmp / f"{name}_rt.dcm", "--rtstruct"
        proc = run_tool("--series", series_dir, option, out, "--mask", raw, "--now", FIXED_NOW,
                        *extra)
        if expect_ok:
            self.assertEqual(proc.returncode, 0, proc.stderr)
            result = json.loads(proc.stdout)
            return out, result if self.kind == "seg" else result["rtstruct"]
        return out, proc

    def assertValid(self, path, also_accepted=()):
        errors, warnings = dciodvfy(path)
        self.assertEqual(errors, [], f"dciodvfy errors for {path}")
        accepted = tuple(self.accepted_warnings) + tuple(also_accepted)
        unexpected = [w for w in warnings if not any(a in w for a in accepted)]
        self.assertEqual(unexpected, [], "dciodvfy warnings not listed in docs/seg_rtstruct.md")
