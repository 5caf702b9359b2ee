"""A JPEG 2000 series through the node: storescu (proposing JPEG 2000 Lossless only) ->
segnode stores it bit for bit, decodes it with OpenJPEG, segments it and sends SEG + RTSTRUCT
to a storescp destination; dciodvfy accepts both, the SEG maps onto the source slices and
equals the SEG `segnode run` writes from the same series decompressed by GDCM; the job log and
`segnode series show` say how the series was taken.

The series is the TotalSegmentator body CT of the shared corpus (20 slices, 512 x 512); its
files carry empty SOP/Study/Series Instance UIDs (anonymised), which no node accepts, so the
test sends copies with UIDs filled in by pydicom (pixel data bytes unchanged, checked).
"""

import os
import re
import shutil
import subprocess
import unittest
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from harness import SEGNODE_TEST_DATA, rewrite, run_cli
from seg_reader import SegObject, source_slices
from test_pipeline import BODY_BOTH, PipelineTestCase, pipeline_config

J2K_BODY = SEGNODE_TEST_DATA / "edge_cases" / "j2k_lossless_body_ct_totalsegmentator"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


@unittest.skipUnless(J2K_BODY.is_dir(), f"JPEG 2000 corpus not found: {J2K_BODY} (set "
                     "SEGNODE_TEST_DATA to the shared data directory; see its SOURCES.md)")
@unittest.skipUnless(shutil.which("gdcmconv"), "gdcmconv not found (libgdcm-tools; "
                     "scripts/install-deps.sh)")
class Jpeg2000ThroughTheNode(PipelineTestCase):

    def prepared_series(self):
        out = self.tmp / "j2k-series"
        out.mkdir()
        study, series = generate_uid(), generate_uid()
        files = []
        for source in sorted(J2K_BODY.iterdir()):
            meta = pydicom.dcmread(source, stop_before_pixels=True).file_meta
            dest = rewrite(source, out / f"{source.name}.dcm",
                           SOPInstanceUID=str(meta.MediaStorageSOPInstanceUID),
                           SOPClassUID=CT_IMAGE_STORAGE, StudyInstanceUID=study,
                           SeriesInstanceUID=series)
            self.assertEqual(pydicom.dcmread(dest).PixelData, pydicom.dcmread(source).PixelData)
            files.append(dest)
        return files, study, series

    def test_jpeg2000_series_comes_back_as_seg_and_rtstruct(self):
        files, study, series_uid = self.prepared_series()
        self.assertEqual(str(pydicom.dcmread(files[0]).file_meta.TransferSyntaxUID), J2K_LOSSLESS)
        dest = self.dest().start()
        node = self.node(pipeline_config(dest, [BODY_BOTH]))
        proc = node.storescu(files, aet="J2KSCANNER", extra=("-xv",),
                             env=dict(os.environ, TCP_NODELAY="1"))
        self.assertProcOk(proc, "storescu -xv (JPEG 2000 Lossless only)")

        # Stored as received: JPEG 2000, the same compressed bytes.
        rows = node.query("SELECT sop_instance_uid, transfer_syntax, path FROM instances")
        self.assertEqual(len(rows), 20)
        sent = {str(pydicom.dcmread(f).SOPInstanceUID): f for f in files}
        for uid, syntax, path in rows:
            self.assertEqual(syntax, J2K_LOSSLESS)
            self.assertEqual(pydicom.dcmread(node.workdir / path).PixelData,
                             pydicom.dcmread(sent[uid]).PixelData, uid)

        [(job_id, state)] = self.wait_job_state(node, ("done", "failed"), timeout=120)
        self.assertEqual(state, "done", f"{self.job(node, job_id)}\n{node.log_tail()}")
        segs, rts = dest.files("SG."), dest.files("RS.")
        self.assertEqual((len(segs), len(rts)), (1, 1), f"received: {dest.files()}")
        for f in segs + rts:
            self.assertValidDicom(f)
        seg_ds = pydicom.dcmread(segs[0])
        self.assertEqual(seg_ds.StudyInstanceUID, study)
        self.assertEqual(seg_ds.ReferencedSeriesSequence[0].SeriesInstanceUID, series_uid)
        rt = pydicom.dcmread(rts[0])
        self.assertEqual(rt.StructureSetROISequence[0].ROIName, "Body")

        # The SEG on the source slices equals the SEG written offline from the same series
        # decompressed by GDCM (an independent JPEG 2000 decoder).
        slices = source_slices(files)
        mask = SegObject.read(segs[0]).label_volume(slices)
        self.assertGreater(int(mask.sum()), 20 * 10000, "a body mask on every slice")
        raw_dir = self.tmp / "gdcm-raw"
        raw_dir.mkdir()
        for f in files:
            subprocess.run(["gdcmconv", "--raw", str(f), str(raw_dir / f.name)], check=True,
                           capture_output=True, timeout=60)
        offline = self.tmp / "offline"
        proc = run_cli("run", "--algorithm", "body", "--input", str(raw_dir), "--output",
                       str(offline), "--format", "seg", timeout=120)
        self.assertProcOk(proc, "segnode run on the GDCM-decompressed series")
        self.assertIn("run: taken: Explicit VR Little Endian", proc.stderr)
        offline_mask = SegObject.read(offline / "seg.dcm").label_volume(source_slices(
            sorted(raw_dir.iterdir())))
        self.assertTrue((mask == offline_mask).all(), "same body mask from both decoders")

        # How the series was taken: in the job log and in `segnode series show`.
        taken = re.compile(r"JPEG 2000 Image Compression \(Lossless Only\) "
                           r"1\.2\.840\.10008\.1\.2\.4\.90, 20 images: decoded with OpenJPEG 2\.\d")
        log = (node.workdir / "jobs" / str(job_id) / "job.log").read_text()
        self.assertRegex(log, re.compile("taken: " + taken.pattern))
        show = node.cli("series", "show", series_uid)
        self.assertProcOk(show, "series show")
        self.assertIn("taken:        512 x 512 x 20 voxels", show.stdout)
        self.assertRegex(show.stdout, taken)
        self.assertStopsCleanly(node)


if __name__ == "__main__":
    unittest.main()
