"""Compressed transfer syntaxes from the shared real-data corpus, sent with storescu.

storescu (DCMTK 3.6.7) only proposes what its -x option names (default: uncompressed), so
each file is sent with the option that proposes its own transfer syntax. segnode accepts
JPEG Lossless, JPEG-LS, RLE and JPEG 2000 (lossless and lossy) and stores them as received
(see src/dicom/sop_classes.cpp); explicit big endian (retired) is refused and storescu falls
back to little endian. The JPEG 2000 series end to end is in test_jpeg2000.py.
"""

import collections
import unittest
from pathlib import Path

import pydicom

from harness import EXPLICIT_LE, IMPLICIT_LE, SEGNODE_TEST_DATA, SegnodeTestCase

JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR_LOSSLESS = "1.2.840.10008.1.2.4.81"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
J2K = "1.2.840.10008.1.2.4.91"
BIG_ENDIAN = "1.2.840.10008.1.2.2"

STORESCU_OPTION = {
    JPEG_LOSSLESS_SV1: "-xs",
    JPEG_LS_LOSSLESS: "-xt",
    JPEG_LS_NEAR_LOSSLESS: "-xu",
    RLE_LOSSLESS: "-xr",
    J2K_LOSSLESS: "-xv",
    J2K: "-xw",
    EXPLICIT_LE: "-x=",
    IMPLICIT_LE: "-x=",
    BIG_ENDIAN: "-x=",
}
ACCEPTED_AS_IS = {JPEG_LOSSLESS_SV1, JPEG_LS_LOSSLESS, JPEG_LS_NEAR_LOSSLESS, RLE_LOSSLESS,
                  J2K_LOSSLESS, J2K, EXPLICIT_LE, IMPLICIT_LE}

RICORD = SEGNODE_TEST_DATA / "ct_chest_ricord"
WG04 = SEGNODE_TEST_DATA / "edge_cases" / "transfer_syntaxes_wg04"
QA_TS = SEGNODE_TEST_DATA / "edge_cases" / "transfer_syntaxes_dcm_qa_ts"


def describe(path):
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return {"path": Path(path), "ts": str(ds.file_meta.TransferSyntaxUID),
            "sop": str(ds.SOPInstanceUID), "series": str(ds.SeriesInstanceUID),
            "study": str(ds.StudyInstanceUID)}


def comparable(ds):
    """The data set's elements without what a sender may legitimately drop or recompute:
    group lengths and trailing padding (FFFC,FFFC)."""
    return {e.tag: e for e in ds if e.tag.element != 0 and e.tag != 0xFFFCFFFC}


def corpus_files():
    files = sorted(RICORD.glob("*.dcm"))[:10]
    files += sorted(WG04.glob("*.dcm"))
    files += sorted(QA_TS.glob("*.dcm"))
    return [describe(f) for f in files]


@unittest.skipUnless(RICORD.is_dir() and WG04.is_dir() and QA_TS.is_dir(),
                     f"shared DICOM corpus not found under {SEGNODE_TEST_DATA} "
                     "(set SEGNODE_TEST_DATA); see ../shared/data/SOURCES.md")
class TransferSyntaxTest(SegnodeTestCase):

    def test_corpus_transfer_syntaxes(self):
        node = self.node()
        files = corpus_files()
        by_ts = collections.defaultdict(list)
        for f in files:
            by_ts[f["ts"]].append(f)
        self.assertIn(JPEG_LOSSLESS_SV1, by_ts)
        self.assertIn(J2K_LOSSLESS, by_ts)
        self.assertTrue(set(by_ts) <= set(STORESCU_OPTION), f"unexpected syntaxes {set(by_ts)}")

        # Accepted syntaxes: one storescu run per syntax, proposing exactly that syntax.
        for ts, group in sorted(by_ts.items()):
            proc = node.storescu([f["path"] for f in group], aet="CORPUS",
                                 extra=("-R", STORESCU_OPTION[ts]))
            self.assertProcOk(proc, f"storescu of {len(group)} file(s) in {ts}")

        accepted = files
        rows = {r["sop_instance_uid"]: r for r in
                node.query("SELECT sop_instance_uid, transfer_syntax, path FROM instances")}
        self.assertEqual(sorted(rows), sorted(f["sop"] for f in accepted))
        for f in accepted:
            row = rows[f["sop"]]
            stored = node.workdir / row["path"]
            self.assertEqual(row["path"],
                             f"instances/{f['study']}/{f['series']}/{f['sop']}.dcm")
            ds = pydicom.dcmread(stored)
            self.assertEqual(ds.SOPInstanceUID, f["sop"])
            self.assertEqual(str(ds.file_meta.TransferSyntaxUID), row["transfer_syntax"])
            if f["ts"] in ACCEPTED_AS_IS:
                # Stored in the syntax it came in, the same elements with the same values
                # (storescu re-encodes sequence lengths, so bytes may differ from the file)
                # and the compressed pixel data bit for bit.
                self.assertEqual(row["transfer_syntax"], f["ts"], f["path"])
                src = pydicom.dcmread(f["path"])
                self.assertEqual(comparable(ds), comparable(src), f"{stored} != {f['path']}")
                self.assertEqual(ds.PixelData, src.PixelData)
            else:
                # Big endian is refused; storescu converts to little endian.
                self.assertEqual(f["ts"], BIG_ENDIAN)
                self.assertIn(row["transfer_syntax"], (EXPLICIT_LE, IMPLICIT_LE), f["path"])
                src = pydicom.dcmread(f["path"])
                self.assertEqual(ds.pixel_array.tolist(), src.pixel_array.tolist())
        ricord = [f for f in accepted if f["path"].parent == RICORD]
        self.assertEqual(len(ricord), 10)
        self.assertEqual(node.scalar("SELECT instance_count FROM series WHERE series_uid = ?",
                                     (ricord[0]["series"],)), 10)

        self.assertIn(J2K, by_ts)
        self.assertEqual(len(self.files_under(node.workdir / "instances")), len(accepted))
        self.assertEqual(self.files_under(node.workdir / "tmp"), [])
        self.assertStopsCleanly(node)

    def test_combined_context_prefers_lossless_compression(self):
        """When one presentation context offers JPEG Lossless and uncompressed syntaxes
        (storescu +C), segnode prefers the lossless compressed one, so a peer holding JPEG
        data need not decompress (storescu cannot, and would fail)."""
        node = self.node()
        f = describe(sorted(RICORD.glob("*.dcm"))[0])
        proc = node.storescu([f["path"]], aet="COMBINED", extra=("-R", "+C", "-xs"))
        ts = node.scalar("SELECT transfer_syntax FROM instances WHERE sop_instance_uid = ?",
                         (f["sop"],))
        node.stop()
        self.assertEqual(ts, JPEG_LOSSLESS_SV1, proc.stderr)


if __name__ == "__main__":
    unittest.main()
