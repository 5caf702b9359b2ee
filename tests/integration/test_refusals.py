"""What segnode refuses: unsupported SOP classes and objects with invalid UIDs."""

import re
import unittest
from pathlib import Path


from harness import (CT_IMAGE_STORAGE, SECONDARY_CAPTURE, SegnodeTestCase, dataset_bytes,
                     rewrite)

STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122
STATUS_CANNOT_UNDERSTAND = 0xC000
STATUS_DATASET_DOES_NOT_MATCH = 0xA900


class UnsupportedSopClassTest(SegnodeTestCase):

    def test_secondary_capture_refused(self):
        node = self.node()
        ph = self.series(slices=2)
        sc_uid = ph["sop_instance_uids"][0] + ".7"
        sc = rewrite(ph["files"][0], self.tmp / "sc.dcm", SOPClassUID=SECONDARY_CAPTURE,
                     SOPInstanceUID=sc_uid)

        # storescu proposes SC; segnode refuses the context, storescu cannot send the file.
        proc = node.storescu([sc], aet="SCSENDER")
        self.assertNotEqual(proc.returncode, 0, f"storescu of an SC image must fail\n{proc}")
        self.assertIn("No presentation context", proc.stderr)
        self.assertEqual(node.scalar("SELECT count(*) FROM instances"), 0)
        self.assertEqual(self.files_under(node.workdir / "instances"), [])
        self.assertEqual(self.files_under(node.workdir / "tmp"), [])
        # The refused contexts are counted in one log line (storescu proposes ~120 classes;
        # the list itself is logged at debug level).
        node.wait_for(lambda: re.search(r"\(SCSENDER\): \d+ presentation context\(s\) refused, "
                                        r"SOP class not supported", node.log_text()), 5,
                      what="a log line about the refused presentation contexts")

        # Smuggled through a CT context with an SC command: 0x0122 with an error comment.
        result = node.test_store([sc], aet="SMUGGLER", context_sop_class=CT_IMAGE_STORAGE,
                                 command_sop_class=SECONDARY_CAPTURE)
        self.assertEqual(result.returncode, 1, result)
        self.assertEqual(len(result.lines), 1, result)
        uid, status, comment = result.lines[0]
        self.assertEqual((uid, status), (sc_uid, "0122"))
        self.assertNotEqual(comment, "-")
        self.assertIn(SECONDARY_CAPTURE, comment)

        # A CT command for an SC data set in a CT context: the data set does not match.
        result = node.test_store([sc], aet="SMUGGLER", context_sop_class=CT_IMAGE_STORAGE,
                                 command_sop_class=CT_IMAGE_STORAGE)
        self.assertEqual(result.returncode, 1, result)
        self.assertEqual(result.lines[0][0], sc_uid)
        self.assertNotEqual(result.lines[0][1], "0000")

        self.assertEqual(node.scalar("SELECT count(*) FROM instances"), 0)
        self.assertEqual(self.files_under(node.workdir / "instances"), [])
        events = node.query("SELECT e.*, a.calling_ae FROM receive_events e "
                            "JOIN associations a ON a.id = e.association_id ORDER BY e.id")
        self.assertEqual(len(events), 2, [dict(e) for e in events])
        first = events[0]
        self.assertEqual(first["kind"], "refused")
        self.assertEqual(first["dimse_status"], STATUS_SOP_CLASS_NOT_SUPPORTED)  # 290
        self.assertEqual(first["sop_instance_uid"], sc_uid)
        self.assertEqual(first["calling_ae"], "SMUGGLER")
        self.assertIn(SECONDARY_CAPTURE, first["detail"])
        self.assertEqual(events[1]["kind"], "refused")
        node.wait_associations_ended()
        smuggler = node.query("SELECT * FROM associations WHERE calling_ae = 'SMUGGLER'")
        self.assertEqual([(a["outcome"], a["instances_stored"], a["instances_refused"])
                          for a in smuggler], [("released", 0, 1), ("released", 0, 1)])

        # The node still serves CT after all that.
        self.assertProcOk(node.storescu(ph["files"]), "storescu of the CT series")
        self.assertEqual(self.stored_uids(node), sorted(ph["sop_instance_uids"]))
        self.assertStopsCleanly(node)

    def test_association_with_only_refused_contexts_is_recorded(self):
        """An association whose every presentation context is refused (here: only SC
        proposed) is rejected and recorded with the reason, like every other rejection."""
        node = self.node()
        ph = self.series(slices=1)
        sc = rewrite(ph["files"][0], self.tmp / "sc.dcm", SOPClassUID=SECONDARY_CAPTURE,
                     SOPInstanceUID=ph["sop_instance_uids"][0] + ".7")
        result = node.test_store([sc], aet="ONLYSC")
        self.assertEqual(result.returncode, 2, result)
        self.assertIn("rejected", result.stderr)
        self.assertEqual(node.scalar("SELECT count(*) FROM instances"), 0)
        rows = node.query("SELECT outcome, detail FROM associations WHERE calling_ae = 'ONLYSC'")
        node.stop()
        self.assertEqual([r["outcome"] for r in rows], ["rejected"])
        self.assertIn("no acceptable presentation context", rows[0]["detail"])
        self.assertIn("SecondaryCaptureImageStorage", rows[0]["detail"])

    def test_aborted_association_outcome_is_a_schema_value(self):
        """associations.outcome is one of the schema's values ('accepted', 'rejected',
        'released', 'aborted', 'failed'); the reason text goes to `detail`."""
        node = self.node()
        ph = self.series(slices=1)
        sc = rewrite(ph["files"][0], self.tmp / "sc.dcm", SOPClassUID=SECONDARY_CAPTURE,
                     SOPInstanceUID=ph["sop_instance_uids"][0] + ".7")
        # storescu proposes all storage classes; nothing usable for SC -> it sends A-ABORT.
        proc = node.storescu([sc], aet="ABORTER")
        self.assertNotEqual(proc.returncode, 0)
        node.wait_associations_ended()
        outcome = node.scalar("SELECT outcome FROM associations WHERE calling_ae = 'ABORTER'")
        self.assertStopsCleanly(node)
        self.assertIsNotNone(outcome)
        self.assertIn(outcome, ("accepted", "rejected", "released", "aborted", "failed"))


class InvalidUidTest(SegnodeTestCase):

    def test_invalid_uids_quarantined_and_service_survives(self):
        node = self.node()
        ph = self.series(slices=3)
        letters = rewrite(ph["files"][0], self.tmp / "letters.dcm", SOPInstanceUID="1.2.abc")
        long_uid = "1.2." + "3" * 66  # 70 characters
        self.assertEqual(len(long_uid), 70)
        too_long = rewrite(ph["files"][1], self.tmp / "too_long.dcm", SOPInstanceUID=long_uid)
        bad_series = rewrite(ph["files"][2], self.tmp / "bad_series.dcm",
                             SeriesInstanceUID="1.2.840..5", SOPInstanceUID="1.2.3.4.5.6.7")

        result = node.test_store([letters, too_long, bad_series], aet="BADUIDS")
        self.assertEqual(result.returncode, 1, result)
        self.assertEqual([l[0] for l in result.lines], ["1.2.abc", long_uid, "1.2.3.4.5.6.7"])
        st = result.statuses
        self.assertEqual(st["1.2.abc"], "C000", result)
        self.assertIn("1.2.abc", result.comment("1.2.abc"))
        self.assertEqual(st["1.2.3.4.5.6.7"], "C000", result)
        self.assertIn("Series Instance UID", result.comment("1.2.3.4.5.6.7"))
        # A 70-character UID does not fit the C-STORE request (DCMTK truncates it to 64), so
        # segnode sees a request/data-set mismatch (A900) before it validates the UID (C000).
        self.assertIn(int(st[long_uid], 16),
                      (STATUS_CANNOT_UNDERSTAND, STATUS_DATASET_DOES_NOT_MATCH), result)

        # Nothing indexed or stored, everything quarantined with a reason naming the UID.
        self.assertEqual(node.scalar("SELECT count(*) FROM instances"), 0)
        self.assertEqual(node.scalar("SELECT count(*) FROM series"), 0)
        self.assertEqual(self.files_under(node.workdir / "instances"), [])
        self.assertEqual(self.files_under(node.workdir / "tmp"), [])
        q = node.query("SELECT * FROM quarantine ORDER BY id")
        self.assertEqual(len(q), 3, [dict(r) for r in q])
        sources = [letters, too_long, bad_series]
        named = ["1.2.abc", long_uid, "1.2.840..5"]
        for row, source, uid in zip(q, sources, named):
            self.assertIn(uid, row["reason"])
            self.assertEqual(row["calling_ae"], "BADUIDS")
            qfile = node.workdir / row["path"]
            self.assertTrue(qfile.is_file(), qfile)
            self.assertEqual(qfile.parent.resolve(), (node.workdir / "quarantine").resolve())
            self.assertEqual(dataset_bytes(qfile), dataset_bytes(source))
            reason = qfile.with_name(qfile.stem + ".reason.txt")
            self.assertTrue(reason.is_file(), reason)
            self.assertIn(uid, reason.read_text())
        # No file name is derived from the invalid UIDs.
        for p in self.files_under(node.workdir):
            self.assertNotIn("abc", p.name)
        events = node.query("SELECT kind, dimse_status FROM receive_events ORDER BY id")
        self.assertEqual([e["kind"] for e in events], ["refused"] * 3)
        self.assertEqual(events[0]["dimse_status"], STATUS_CANNOT_UNDERSTAND)
        node.wait_associations_ended()
        assoc = node.query_one("SELECT * FROM associations WHERE calling_ae = 'BADUIDS'")
        self.assertEqual((assoc["outcome"], assoc["instances_stored"],
                          assoc["instances_refused"]), ("released", 0, 3))

        # storescu sends the malformed UID too (it does not check UIDs by default).
        proc = node.storescu([letters], aet="STORESCU")
        self.assertNotEqual(proc.returncode, 0)
        self.assertEqual(node.scalar("SELECT count(*) FROM quarantine"), 4)

        # Still up: echo works, and a good series sent afterwards is stored.
        self.assertProcOk(node.echo(), "echoscu after the bad input")
        good = self.series("good", slices=5)
        self.assertProcOk(node.storescu(good["files"]), "storescu of a good series")
        self.assertEqual(self.stored_uids(node), sorted(good["sop_instance_uids"]))
        for uid, path in good["by_uid"].items():
            self.assertSameDataset(node.instance_path(good["study_uid"], good["series_uid"],
                                                      uid), path)
        self.assertStopsCleanly(node)


class RefusalUnderPressureTest(SegnodeTestCase):
    """A refused C-STORE's data set is discarded as it arrives: never parsed or held."""

    @staticmethod
    def peak_rss_mib(pid):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM in /proc/<pid>/status")

    def test_disk_guard_discards_a_large_refused_instance_without_buffering_it(self):
        node = self.node({"retention": {"min_free_mb": 100000000}})  # ~95 TiB: always refuses
        ph = self.series(slices=2)
        big_uid = ph["sop_instance_uids"][0] + ".9"
        side = 8192  # 8192 x 8192 x 2 bytes: a 128 MiB data set
        big = rewrite(ph["files"][0], self.tmp / "big.dcm", SOPInstanceUID=big_uid, Rows=side,
                      Columns=side, PixelData=bytes(side * side * 2))
        before = self.peak_rss_mib(node.proc.pid)
        result = node.test_store([big, ph["files"][1]], aet="PRESSURE")
        self.assertEqual(result.statuses, {big_uid: "A700", ph["sop_instance_uids"][1]: "A700"},
                         result)
        self.assertIn("low disk space", result.comment(big_uid))
        grew = self.peak_rss_mib(node.proc.pid) - before
        self.assertLess(grew, 32, f"peak RSS grew by {grew:.0f} MiB for a refused 128 MiB "
                                  "data set: it was buffered")
        self.assertEqual(node.scalar("SELECT count(*) FROM instances"), 0)
        self.assertEqual(self.files_under(node.workdir / "tmp"), [])
        self.assertEqual(node.echo().returncode, 0)
        self.assertStopsCleanly(node)


if __name__ == "__main__":
    unittest.main()
