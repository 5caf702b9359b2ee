"""Duplicate SOP instances: identical resends, conflicting content, keep_first vs replace."""

import unittest
from pathlib import Path

import pydicom

from harness import SegnodeTestCase, dataset_bytes


def changed_copy(source, dest, comment="changed by the duplicate test"):
    """Same UIDs, different content: an added ImageComments and one changed pixel."""
    ds = pydicom.dcmread(source)
    ds.ImageComments = comment
    arr = ds.pixel_array.copy()
    arr[0, 0] = arr[0, 0] + 7
    ds.PixelData = arr.tobytes()
    ds.save_as(dest, write_like_original=True)
    return Path(dest)


class DuplicatesTest(SegnodeTestCase):

    def snapshot(self, node):
        files = {p: p.read_bytes() for p in self.files_under(node.workdir / "instances")}
        rows = node.query("SELECT sop_instance_uid, path, size_bytes, received_at FROM "
                          "instances ORDER BY id")
        return files, [tuple(r) for r in rows]

    def test_identical_resend_and_keep_first_conflict(self):
        node = self.node()
        ph = self.series(slices=6)
        self.assertProcOk(node.storescu(ph["files"], aet="FIRSTSEND"), "first storescu")
        files_before, rows_before = self.snapshot(node)
        self.assertEqual(len(files_before), 6)
        self.assertEqual(len(rows_before), 6)

        # Identical resend: success for the sender, no new rows or files, 'duplicate' events.
        self.assertProcOk(node.storescu(ph["files"], aet="RESEND"), "resend storescu")
        files_after, rows_after = self.snapshot(node)
        self.assertEqual(files_after, files_before)
        self.assertEqual(rows_after, rows_before)
        self.assertEqual(node.scalar("SELECT instance_count FROM series"), 6)
        events = node.query("SELECT e.sop_instance_uid, e.kind, e.dimse_status, a.calling_ae "
                            "FROM receive_events e JOIN associations a "
                            "ON a.id = e.association_id ORDER BY e.id")
        self.assertEqual(sorted(e["sop_instance_uid"] for e in events),
                         sorted(ph["sop_instance_uids"]))
        for e in events:
            self.assertEqual((e["kind"], e["dimse_status"], e["calling_ae"]),
                             ("duplicate", 0, "RESEND"))
        node.wait_associations_ended()
        resend = node.query_one("SELECT * FROM associations WHERE calling_ae = 'RESEND'")
        self.assertEqual(resend["outcome"], "released")
        self.assertEqual(self.files_under(node.workdir / "quarantine"), [])

        # Same UIDs, different content: keep_first keeps the original, quarantines the new.
        uid = ph["sop_instance_uids"][2]
        source = Path(ph["by_uid"][uid])
        changed = changed_copy(source, self.tmp / "changed.dcm")
        result = node.test_store([changed], aet="CONFLICT")
        self.assertEqual(result.returncode, 0, result)
        self.assertEqual(result.lines, [(uid, "0000", "-")])

        stored = node.instance_path(ph["study_uid"], ph["series_uid"], uid)
        self.assertEqual(stored.read_bytes(), files_before[stored], "keep_first changed the file")
        self.assertSameDataset(stored, source)
        self.assertEqual(self.snapshot(node), (files_before, rows_before))

        q = node.query("SELECT * FROM quarantine")
        self.assertEqual(len(q), 1)
        self.assertEqual(q[0]["sop_instance_uid"], uid)
        self.assertEqual(q[0]["calling_ae"], "CONFLICT")
        self.assertIn("keep_first", q[0]["reason"])
        qfile = node.workdir / q[0]["path"]
        self.assertTrue(qfile.is_file(), qfile)
        self.assertEqual(qfile.parent, node.workdir / "quarantine")
        # The quarantined copy is the new content, as received.
        self.assertEqual(dataset_bytes(qfile), dataset_bytes(changed))
        self.assertEqual(pydicom.dcmread(qfile).ImageComments, "changed by the duplicate test")
        reason_txt = qfile.with_name(qfile.stem + ".reason.txt")
        self.assertTrue(reason_txt.is_file(), reason_txt)
        self.assertIn(uid, reason_txt.read_text())

        conflict = node.query("SELECT kind, dimse_status, sop_instance_uid FROM receive_events "
                              "WHERE kind = 'duplicate_conflict'")
        self.assertEqual([tuple(r) for r in conflict], [("duplicate_conflict", 0, uid)])
        self.assertStopsCleanly(node)

    def test_replace_policy(self):
        node = self.node({"storage": {"duplicate_policy": "replace"}})
        ph = self.series(slices=4)
        self.assertProcOk(node.storescu(ph["files"]), "storescu")
        uid = ph["sop_instance_uids"][1]
        stored = node.instance_path(ph["study_uid"], ph["series_uid"], uid)
        self.assertSameDataset(stored, ph["by_uid"][uid])
        others_before = {p: p.read_bytes() for p in self.files_under(stored.parent) if p != stored}

        changed = changed_copy(ph["by_uid"][uid], self.tmp / "changed.dcm",
                               comment="replacement")
        result = node.test_store([changed], aet="REPLACER")
        self.assertEqual(result.lines, [(uid, "0000", "-")], result)

        # The stored file now has the new content; the other instances are untouched.
        self.assertEqual(dataset_bytes(stored), dataset_bytes(changed))
        ds = pydicom.dcmread(stored)
        self.assertEqual(ds.ImageComments, "replacement")
        self.assertEqual(ds.SOPInstanceUID, uid)
        self.assertEqual({p: p.read_bytes() for p in self.files_under(stored.parent)
                          if p != stored}, others_before)
        self.assertEqual(len(self.files_under(node.workdir / "instances")), 4)
        self.assertEqual(node.scalar("SELECT count(*) FROM instances"), 4)
        self.assertEqual(node.scalar("SELECT size_bytes FROM instances WHERE "
                                     "sop_instance_uid = ?", (uid,)), stored.stat().st_size)
        events = node.query("SELECT kind, dimse_status, sop_instance_uid FROM receive_events")
        self.assertEqual([tuple(r) for r in events], [("replaced", 0, uid)])
        self.assertEqual(node.scalar("SELECT count(*) FROM quarantine"), 0)
        self.assertEqual(self.files_under(node.workdir / "tmp"), [])

        # An identical resend of the replacement is a plain duplicate.
        result = node.test_store([changed], aet="REPLACER")
        self.assertEqual(result.lines, [(uid, "0000", "-")], result)
        self.assertEqual(node.scalar("SELECT count(*) FROM receive_events WHERE kind = "
                                     "'duplicate'"), 1)
        self.assertStopsCleanly(node)


if __name__ == "__main__":
    unittest.main()
