"""What the series loader decodes, compared value by value with decoders we did not write.

Each case loads a series with the dicom layer's loader (segnode-test-write-derived --info
--save-volume) and compares every voxel with the same files decoded by an independent tool
(dcmdjpeg, dcmdjpls, dcmdrle, dcmconv, gdcmconv --raw, opj_decompress) and read with pydicom's
numpy handler (uncompressed data only), rescaled with the files' own RescaleSlope/Intercept.
Test series are generated (segnode-phantom, then pydicom for pixel formats and the DICOM tools
for compression) or taken from the shared corpus when present (skipped with a message when not).
"""

import json
import os
import shutil
import subprocess
import unittest
from pathlib import Path

import numpy as np
import pydicom
from pydicom.encaps import generate_pixel_data_frame

from harness import BUILD_DIR, SEGNODE_TEST_DATA, SegnodeTestCase, generate_series

WRITE_DERIVED = Path(os.environ.get("SEGNODE_TEST_WRITE_DERIVED",
                                    BUILD_DIR / "tests/tools/segnode-test-write-derived"))
WG04 = SEGNODE_TEST_DATA / "edge_cases" / "transfer_syntaxes_wg04"
QA_TS = SEGNODE_TEST_DATA / "edge_cases" / "transfer_syntaxes_dcm_qa_ts"
J2K_BODY = SEGNODE_TEST_DATA / "edge_cases" / "j2k_lossless_body_ct_totalsegmentator"
ENHANCED = SEGNODE_TEST_DATA / "edge_cases" / "enhanced_multiframe"
FRAG_J2K = SEGNODE_TEST_DATA / "mr_series" / "prisma_T1w_3d_j2k_fragmented"
FRAG_JPEG = SEGNODE_TEST_DATA / "mr_series" / "prisma_T1w_3d_jpegLL_fragmented"
TOOLS = ("dcmcjpeg", "dcmdjpeg", "dcmcjpls", "dcmdjpls", "dcmcrle", "dcmdrle", "dcmconv",
         "gdcmconv", "opj_decompress")


def run(*cmd):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): "
                             f"{proc.stdout}{proc.stderr}")
    return proc


def hu_frames(path):
    """Rescaled values of every frame of an uncompressed file, read by pydicom: [(frame
    number, 2D array)], with the per-frame rescale of enhanced objects."""
    ds = pydicom.dcmread(str(path))
    pixels = ds.pixel_array.astype(np.float64)
    frames = pixels if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1 else pixels[None]
    out = []
    for n, frame in enumerate(frames):
        slope, intercept = float(getattr(ds, "RescaleSlope", 1)), \
            float(getattr(ds, "RescaleIntercept", 0))
        if "PerFrameFunctionalGroupsSequence" in ds:
            for group in (ds.PerFrameFunctionalGroupsSequence[n],
                          getattr(ds, "SharedFunctionalGroupsSequence", [None])[0]):
                if group is not None and "PixelValueTransformationSequence" in group:
                    t = group.PixelValueTransformationSequence[0]
                    slope, intercept = float(t.RescaleSlope), float(t.RescaleIntercept)
                    break
        out.append((n + 1, np.clip(np.rint(frame * slope + intercept), -32768, 32767)))
    return out


class DecodingTest(SegnodeTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        missing = [t for t in TOOLS if shutil.which(t) is None]
        if missing or not WRITE_DERIVED.exists():
            raise unittest.SkipTest(f"missing tools: {missing or WRITE_DERIVED} "
                                    "(scripts/install-deps.sh)")

    # -------------------------------------------------------------- helpers

    def load(self, files):
        """The loader's view of `files` (copied into one directory): JSON info and the
        volume as [k, j, i] int16."""
        d = self.tmp / f"load{len(list(self.tmp.glob('load*')))}"
        d.mkdir()
        for f in files:
            shutil.copy(f, d / Path(f).name)
        proc = subprocess.run([str(WRITE_DERIVED), "--series", str(d), "--info",
                               "--save-volume", str(d / "volume.raw")],
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        info = json.loads(proc.stdout)
        nx, ny, nz = info["dims"]
        volume = np.fromfile(d / "volume.raw", dtype=np.int16).reshape(nz, ny, nx)
        (d / "volume.raw").unlink()
        info["names"] = [Path(f).name for f in info["files"]]
        return info, volume

    def assertDecodesLike(self, files, reference_dir, how, max_error=0):
        """Loads `files`; every slice k must equal the file of the same name in
        `reference_dir` (decoded by another tool) within `max_error`. Returns the info."""
        info, volume = self.load(files)
        refs = {}
        for name in set(info["names"]):
            for frame, hu in hu_frames(Path(reference_dir) / name):
                refs[(name, frame)] = hu
        worst = 0
        for k, (name, frame) in enumerate(zip(info["names"], info["frame_numbers"])):
            ref = refs[(name, frame)]
            self.assertEqual(ref.shape, volume[k].shape, name)
            worst = max(worst, int(np.abs(volume[k].astype(np.float64) - ref).max()))
        self.assertLessEqual(worst, max_error, f"largest difference for {how}")
        self.assertTrue(any(how in line for line in info["how_taken"]),
                        f"{how!r} not in {info['how_taken']}")
        return info

    def phantom(self, name, **kw):
        return generate_series(self.tmp / name, rows=kw.pop("rows", 40), cols=kw.pop("cols", 48),
                               slices=kw.pop("slices", 6), **kw)["files"]

    def rewritten(self, files, name, change):
        """Copies of `files` after change(ds, hu) edited each data set (hu: the phantom's HU)."""
        out = self.tmp / name
        out.mkdir()
        result = []
        for f in files:
            ds = pydicom.dcmread(f)
            hu = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
            change(ds, hu)
            ds.save_as(out / Path(f).name, write_like_original=False)
            result.append(out / Path(f).name)
        return result

    def converted(self, files, name, *tool):
        """Each file through `tool in out` (e.g. dcmcjpeg +eb) into directory `name`."""
        out = self.tmp / name
        out.mkdir(exist_ok=True)
        for f in files:
            run(*tool, f, out / Path(f).name)
        return sorted(out.iterdir())

    def syntax(self, path):
        return str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)

    # -------------------------------------------------------------- generated series

    def test_jpeg_baseline_8_bit(self):
        def eight_bit(ds, hu):
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
            ds.RescaleSlope, ds.RescaleIntercept = 10, -1000
            ds.PixelData = np.clip((hu + 1000) // 10, 0, 255).astype(np.uint8).tobytes()
        base = self.rewritten(self.phantom("p8", noise=30), "base8", eight_bit)
        jpeg = self.converted(base, "jpeg_baseline", "dcmcjpeg", "+eb")
        self.assertEqual(self.syntax(jpeg[0]), "1.2.840.10008.1.2.4.50")
        ref = self.converted(jpeg, "jpeg_baseline_ref", "dcmdjpeg")
        info = self.assertDecodesLike(jpeg, self.tmp / "jpeg_baseline_ref",
                                      "JPEG Baseline (Process 1) 1.2.840.10008.1.2.4.50")
        self.assertIn("(lossy compression)", info["how_taken"][0])
        self.assertTrue(ref)

    def test_jpeg_extended_lossy(self):
        jpeg = self.converted(self.phantom("p16", noise=30), "jpeg_ext", "dcmcjpeg", "+ee")
        self.assertEqual(self.syntax(jpeg[0]), "1.2.840.10008.1.2.4.51")
        self.converted(jpeg, "jpeg_ext_ref", "dcmdjpeg")
        info = self.assertDecodesLike(jpeg, self.tmp / "jpeg_ext_ref", "JPEG Extended")
        self.assertIn("(lossy compression)", info["how_taken"][0])

    def test_jpeg_ls_near_lossless_and_lossless_with_slope(self):
        near = self.converted(self.phantom("pls", noise=30), "jls_near", "dcmcjpls", "+en",
                              "+md", "3")
        self.assertEqual(self.syntax(near[0]), "1.2.840.10008.1.2.4.81")
        self.converted(near, "jls_near_ref", "dcmdjpls")
        self.assertDecodesLike(near, self.tmp / "jls_near_ref", "JPEG-LS Lossy (Near-Lossless)")

        def slope2(ds, hu):
            ds.RescaleSlope, ds.RescaleIntercept = 2, -1024
            ds.PixelData = ((hu + 1024) // 2).astype(np.uint16).tobytes()
        base = self.rewritten(self.phantom("pslope"), "slope2", slope2)
        lossless = self.converted(base, "jls_slope", "dcmcjpls")
        self.assertDecodesLike(lossless, self.tmp / "slope2", "JPEG-LS Lossless")

    def test_rle_and_deflate_are_exact(self):
        files = self.phantom("prle", noise=30)
        rle = self.converted(files, "rle", "dcmcrle")
        self.assertEqual(self.syntax(rle[0]), "1.2.840.10008.1.2.5")
        self.assertDecodesLike(rle, Path(files[0]).parent, "RLE Lossless")
        self.converted(rle, "rle_ref", "dcmdrle")
        self.assertDecodesLike(rle, self.tmp / "rle_ref", "RLE Lossless")
        deflated = self.converted(files, "deflate", "dcmconv", "+td")
        self.assertEqual(self.syntax(deflated[0]), "1.2.840.10008.1.2.1.99")
        self.assertDecodesLike(deflated, Path(files[0]).parent, "inflated by DCMTK")

    def test_jpeg2000_from_gdcm_signed_unsigned_monochrome1(self):
        files = self.phantom("pj2k", noise=30)
        j2k = self.converted(files, "j2k", "gdcmconv", "--j2k")
        self.assertEqual(self.syntax(j2k[0]), "1.2.840.10008.1.2.4.90")
        self.assertDecodesLike(j2k, Path(files[0]).parent, "decoded with OpenJPEG")

        def signed(ds, hu):
            ds.PixelRepresentation, ds.RescaleIntercept = 1, 0
            ds.PixelData = hu.astype(np.int16).tobytes()
        base = self.rewritten(files, "signed", signed)
        j2k_signed = self.converted(base, "j2k_signed", "gdcmconv", "--j2k")
        self.assertDecodesLike(j2k_signed, self.tmp / "signed", "decoded with OpenJPEG")

        def monochrome1(ds, hu):
            ds.PhotometricInterpretation = "MONOCHROME1"
        mono1 = self.rewritten(files, "mono1", monochrome1)
        j2k_mono1 = self.converted(mono1, "j2k_mono1", "gdcmconv", "--j2k")
        info = self.assertDecodesLike(j2k_mono1, self.tmp / "mono1", "decoded with OpenJPEG")
        self.assertTrue(any("MONOCHROME1" in w for w in info["warnings"]), info["warnings"])

    def test_jpeg2000_irreversible_matches_gdcm(self):
        files = self.phantom("pj2ki", noise=30)
        lossy = self.converted(files, "j2k_lossy", "gdcmconv", "--j2k", "--lossy",
                               "--irreversible", "-q", "20")
        self.assertEqual(self.syntax(lossy[0]), "1.2.840.10008.1.2.4.91")
        self.converted(lossy, "j2k_lossy_ref", "gdcmconv", "--raw")
        info = self.assertDecodesLike(lossy, self.tmp / "j2k_lossy_ref", "decoded with OpenJPEG")
        self.assertIn("(lossy compression)", info["how_taken"][0])
        # ... and it is lossy: not the original values everywhere.
        _, volume = self.load(lossy)
        _, original = self.load(files)
        self.assertGreater(int(np.abs(volume.astype(int) - original).max()), 0)

    # -------------------------------------------------------------- corpus

    @unittest.skipUnless(WG04.is_dir(), f"corpus not found: {WG04} (set SEGNODE_TEST_DATA)")
    def test_wg04_lossy_variants_match_independent_decoders(self):
        for image in ("CT1", "CT2", "MR1"):
            j2ki = WG04 / f"{image}_J2KI.dcm"
            self.converted([j2ki], f"{image}_j2ki_ref", "gdcmconv", "--raw")
            self.assertDecodesLike([j2ki], self.tmp / f"{image}_j2ki_ref",
                                   "JPEG 2000 Image Compression 1.2.840.10008.1.2.4.91")
            jlsn = WG04 / f"{image}_JLSN.dcm"
            self.converted([jlsn], f"{image}_jlsn_ref", "dcmdjpls")
            self.assertDecodesLike([jlsn], self.tmp / f"{image}_jlsn_ref", "Near-Lossless")
            for lossless in ("J2KR", "JLSL", "JPLL", "RLE"):
                src = self.tmp / f"{image}_{lossless}"
                src.mkdir()
                shutil.copy(WG04 / f"{image}_UNC.dcm", src / f"{image}_{lossless}.dcm")
                self.assertDecodesLike([WG04 / f"{image}_{lossless}.dcm"], src, "1.2.840")

    @unittest.skipUnless(QA_TS.is_dir(), f"corpus not found: {QA_TS} (set SEGNODE_TEST_DATA)")
    def test_dcm_qa_ts_every_syntax_equals_the_uncompressed_image(self):
        for f in sorted(QA_TS.glob("*.dcm")):
            ref = self.tmp / f"qa_{f.stem}"
            ref.mkdir()
            shutil.copy(QA_TS / "1.dcm", ref / f.name)
            self.assertDecodesLike([f], ref, "1.2.840")

    @unittest.skipUnless(J2K_BODY.is_dir(), f"corpus not found: {J2K_BODY}")
    def test_totalsegmentator_jpeg2000_equals_opj_decompress(self):
        files = sorted(J2K_BODY.iterdir())
        info, volume = self.load(files)
        self.assertEqual(info["dims"], [512, 512, 20])
        for k, name in enumerate(info["names"]):
            ds = pydicom.dcmread(J2K_BODY / name)
            frame = next(generate_pixel_data_frame(ds.PixelData))
            (self.tmp / "f.j2k").write_bytes(frame)
            run("opj_decompress", "-quiet", "-i", self.tmp / "f.j2k", "-o", self.tmp / "f.rawl")
            raw = np.fromfile(self.tmp / "f.rawl", dtype="<u2").reshape(512, 512)
            ref = np.rint(raw * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
            self.assertTrue((volume[k] == ref).all(), name)

    @unittest.skipUnless(ENHANCED.is_dir(), f"corpus not found: {ENHANCED}")
    def test_enhanced_multiframe_in_jpeg2000_and_rle(self):
        for name in ("eCT_Supplemental.dcm", "dcmqi_legacy_converted_enhanced_ct_23x38x3.dcm",
                     "siemens_xa10_enhanced_mr/6_1.dcm"):
            src = ENHANCED / name
            self.assertDecodesLike([src], src.parent, "uncompressed")
            stem = Path(name).stem
            j2k = self.converted([src], f"{stem}_j2k", "gdcmconv", "--j2k")
            self.assertDecodesLike(j2k, src.parent, "decoded with OpenJPEG")
            rle = self.converted([src], f"{stem}_rle", "dcmcrle")
            self.assertDecodesLike(rle, src.parent, "RLE Lossless")

    @unittest.skipUnless(FRAG_J2K.is_dir() and FRAG_JPEG.is_dir(),
                         f"corpus not found: {FRAG_J2K}")
    def test_fragmented_frames_equal_gdcm(self):
        # Two series of the same acquisition: JPEG 2000 and JPEG Lossless, frames in several
        # fragments; each against GDCM's decoding of the same files.
        for source, how in ((FRAG_J2K, "decoded with OpenJPEG"),
                            (FRAG_JPEG, "(IJG libjpeg)")):
            files = sorted(source.glob("*.dcm"))
            items = pydicom.encaps.decode_data_sequence(pydicom.dcmread(files[0]).PixelData)
            self.assertGreater(len(items) - 1, 1, f"{source}: one frame in several fragments")
            self.converted(files, source.name + "_ref", "gdcmconv", "--raw")
            info = self.assertDecodesLike(files, self.tmp / (source.name + "_ref"), how)
            self.assertEqual(info["dims"], [128, 128, 96])


if __name__ == "__main__":
    unittest.main()
