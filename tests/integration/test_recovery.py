"""Start-up recovery: instance files whose index rows a power loss took are indexed again.

Instance rows are committed with synchronous=NORMAL (the file itself was fsynced first), so a
power loss can take the newest rows from the WAL's tail. A real power loss cannot be staged
here; these tests stop segnode with kill -9 (the run then did not stop cleanly, as after a
power loss) and delete the rows such a loss could take, then check that the restart rebuilds
them from the files with the right series, association and AE titles.
"""

import os
import shutil
import sqlite3
import unittest

from harness import NODE_AE, SegnodeTestCase

EXTRA_AE = "SEGNODE_B"


def xattrs_supported(directory):
    probe = os.path.join(directory, ".xattr-probe")
    with open(probe, "w"):
        pass
    try:
        os.setxattr(probe, "user.segnode.probe", b"1")
        return True
    except OSError:
        return False
    finally:
        os.remove(probe)


def forget(db_path, sql, params=()):
    """Deletes rows behind segnode's back (it is not running)."""
    con = sqlite3.connect(db_path)
    try:
        con.execute("PRAGMA foreign_keys=ON")
        con.execute(sql, params)
        con.commit()
    finally:
        con.close()


class RecoveryTest(SegnodeTestCase):

    def require_xattrs(self, node):
        if not xattrs_supported(node.workdir):
            self.skipTest(f"the filesystem of {node.workdir} has no user extended attributes; "
                          "recovery then attributes files by their Source AE Title only")

    def store(self, node, ph, aet, aec=NODE_AE):
        result = node.storescu(ph["files"], aet=aet, aec=aec)
        self.assertEqual(result.returncode, 0, result)

    def test_lost_series_is_rebuilt_with_its_association(self):
        node = self.node({"node": {"extra_ae_titles": [EXTRA_AE]}})
        self.require_xattrs(node)
        self.assertTrue(node.workdir.joinpath("segnode.running").is_file(),
                        "no running marker while serving")
        ph = self.series(slices=12)
        self.store(node, ph, aet="MODALITY1", aec=EXTRA_AE)
        assoc = node.query_one("SELECT id, peer_address FROM associations "
                               "WHERE calling_ae = 'MODALITY1'")
        first = node.query_one("SELECT first_received_at, last_received_at FROM series")
        node.kill()

        # The whole series' commits lost: series row and instance rows gone, files kept.
        forget(node.db_path, "DELETE FROM series WHERE series_uid = ?", (ph["series_uid"],))
        self.assertEqual(node.scalar("SELECT count(*) FROM instances"), 0)

        self.restart(node)
        log = node.log_text()
        self.assertIn("did not stop cleanly", log)
        self.assertIn(f"indexed 12 instance file(s) of series {ph['series_uid']}", log)
        self.assertEqual(self.stored_uids(node, ph["series_uid"]), sorted(ph["sop_instance_uids"]))
        s = node.query_one("SELECT * FROM series WHERE series_uid = ?", (ph["series_uid"],))
        self.assertEqual(s["instance_count"], 12)
        self.assertEqual(s["state"], "receiving")
        self.assertEqual((s["calling_ae"], s["called_ae"], s["peer_address"]),
                         ("MODALITY1", EXTRA_AE, assoc["peer_address"]))
        self.assertEqual(s["last_association"], assoc["id"])
        self.assertEqual(s["study_uid"], ph["study_uid"])
        self.assertEqual(s["modality"], "CT")
        # received_at comes from the files' mtimes: within the original receive window.
        self.assertGreaterEqual(s["first_received_at"], first["first_received_at"] - 1000)
        self.assertLessEqual(s["last_received_at"], first["last_received_at"] + 1000)
        rows = node.query("SELECT association_id, path, size_bytes FROM instances")
        self.assertEqual({r["association_id"] for r in rows}, {assoc["id"]})
        for r in rows:
            self.assertEqual(os.path.getsize(node.workdir / r["path"]), r["size_bytes"])

        # Recovered rows behave like received ones: a resend is a duplicate, nothing doubles.
        self.store(node, ph, aet="MODALITY1", aec=EXTRA_AE)
        self.assertEqual(node.scalar("SELECT count(*) FROM instances"), 12)
        self.assertEqual(node.scalar("SELECT count(*) FROM receive_events WHERE kind = "
                                     "'duplicate'"), 12)
        self.assertStopsCleanly(node)
        self.assertFalse(node.workdir.joinpath("segnode.running").exists(),
                         "running marker left after a clean stop")

    def test_lost_tail_of_a_series_and_fallback_attribution(self):
        node = self.node()
        self.require_xattrs(node)
        ph = self.series(slices=10)
        self.store(node, ph, aet="MODALITY2")
        node.kill()

        # The last 4 rows lost; the series row kept its older count (as it was committed then).
        lost = sorted(ph["sop_instance_uids"])[-4:]
        for uid in lost:
            forget(node.db_path, "DELETE FROM instances WHERE sop_instance_uid = ?", (uid,))
        forget(node.db_path, "UPDATE series SET instance_count = 6")
        # One file also lost its association tag: it is attributed from its file meta.
        untagged = node.instance_path(ph["study_uid"], ph["series_uid"], lost[0])
        os.removexattr(untagged, "user.segnode.association")

        self.restart(node)
        self.assertIn(f"indexed 4 instance file(s) of series {ph['series_uid']}",
                      node.log_text())
        self.assertEqual(node.scalar("SELECT instance_count FROM series"), 10)
        self.assertEqual(self.stored_uids(node, ph["series_uid"]), sorted(ph["sop_instance_uids"]))
        row = node.query_one("SELECT association_id FROM instances WHERE sop_instance_uid = ?",
                             (lost[0],))
        self.assertIsNone(row["association_id"])
        tagged = node.query("SELECT DISTINCT association_id FROM instances "
                            "WHERE sop_instance_uid != ?", (lost[0],))
        self.assertEqual(len(tagged), 1)
        self.assertIsNotNone(tagged[0]["association_id"])

    def test_files_that_cannot_be_indexed_go_to_quarantine(self):
        node = self.node()
        ph = self.series(slices=3)
        self.store(node, ph, aet="MODALITY3")
        node.kill()

        # A file at a path its UIDs do not give, and one that is not DICOM at all.
        uid0 = sorted(ph["sop_instance_uids"])[0]
        src = node.instance_path(ph["study_uid"], ph["series_uid"], uid0)
        wrong = node.instance_path("1.2.3", "1.2.3.4", "1.2.3.4.5")
        wrong.parent.mkdir(parents=True)
        shutil.copyfile(src, wrong)
        garbage = node.instance_path("1.2.3", "1.2.3.4", "1.2.3.4.6")
        garbage.write_bytes(b"not dicom" * 100)

        self.restart(node)
        self.assertFalse(wrong.exists())
        self.assertFalse(garbage.exists())
        q = node.query("SELECT path, reason FROM quarantine ORDER BY id")
        self.assertEqual(len(q), 2, q)
        reasons = " | ".join(r["reason"] for r in q)
        self.assertIn("its UIDs give the path", reasons)
        self.assertIn("cannot be parsed", reasons)
        for r in q:
            self.assertTrue((node.workdir / r["path"]).is_file(), r["path"])
        # The three good instances were indexed before the kill and are untouched.
        self.assertEqual(node.scalar("SELECT count(*) FROM instances"), 3)
        self.assertIn("2 quarantined", node.log_text())

    def test_clean_stop_skips_the_scan(self):
        node = self.node()
        ph = self.series(slices=3)
        self.store(node, ph, aet="MODALITY4")
        self.assertStopsCleanly(node)
        self.restart(node)
        self.assertNotIn("did not stop cleanly", node.log_text())
        self.assertEqual(node.scalar("SELECT count(*) FROM instances"), 3)


if __name__ == "__main__":
    unittest.main()
