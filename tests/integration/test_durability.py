"""kill -9 in the middle of a transfer: every acknowledged instance survives."""

import subprocess
import unittest

import pydicom

from harness import SEGNODE_BIN, SegnodeTestCase, StreamingStore, free_port

ROWS = COLS = 256
SLICES = 120
ACKS_BEFORE_KILL = 8


class DurabilityTest(SegnodeTestCase):

    def test_kill_9_loses_nothing_acknowledged(self):
        node = self.node()  # storage.fsync = true (the default)
        ph = self.series(rows=ROWS, cols=COLS, slices=SLICES)

        # A short pause between C-STOREs makes sure the kill lands mid-series.
        sender = StreamingStore(node.test_store_cmd(ph["files"], aet="CRASHTEST", pause_ms=15))
        got = sender.wait_for_lines(ACKS_BEFORE_KILL, timeout=60)
        node.kill()
        result = sender.finish(timeout=60)
        self.assertTrue(got, f"fewer than {ACKS_BEFORE_KILL} responses before the kill: "
                             f"{result}")
        self.assertEqual(len(result.lines), SLICES, result)
        acked = [uid for uid, status, _ in result.lines if status == "0000"]
        self.assertGreaterEqual(len(acked), ACKS_BEFORE_KILL)
        self.assertLess(len(acked), SLICES, "the kill came after the whole series was sent")
        self.assertEqual(result.returncode, 2, "the sender must see the association break")
        # Nothing but success or "no response" was reported.
        self.assertEqual({s for _, s, _ in result.lines} - {"0000", "----"}, set(), result)

        # Every acknowledged instance is on disk, complete and readable, before any restart.
        for uid in acked:
            stored = node.instance_path(ph["study_uid"], ph["series_uid"], uid)
            self.assertTrue(stored.is_file(), f"acknowledged {uid} missing after kill -9")
            self.assertSameDataset(stored, ph["by_uid"][uid])
            self.assertEqual(pydicom.dcmread(stored).pixel_array.shape, (ROWS, COLS))

        # Leave a stale partial file in tmp/: a restart must clean it up.
        stale = node.workdir / "tmp" / "stale-partial.dcm"
        stale.write_bytes(b"\0" * 1000)

        self.restart(node)
        self.assertEqual(self.files_under(node.workdir / "tmp"), [],
                         "tmp/ not cleaned at restart")
        indexed = set(self.stored_uids(node, ph["series_uid"]))
        missing = [uid for uid in acked if uid not in indexed]
        self.assertEqual(missing, [], "acknowledged instances missing from the database")
        for uid in indexed:
            stored = node.instance_path(ph["study_uid"], ph["series_uid"], uid)
            self.assertTrue(stored.is_file(), f"indexed {uid} has no file")
            self.assertSameDataset(stored, ph["by_uid"][uid])
        # The association cut by the kill is not left looking like a success.
        crash = node.query_one("SELECT * FROM associations WHERE calling_ae = 'CRASHTEST'")
        self.assertIsNotNone(crash)
        self.assertEqual(crash["outcome"], "failed", "left open by the crash, closed at start-up")
        self.assertIsNotNone(crash["ended_at"])
        self.assertIn("stopped before the association ended", crash["detail"])

        # Resend the whole series: it completes with exactly 120 instances, no duplicates.
        result = node.test_store(ph["files"], aet="RESEND")
        self.assertEqual(result.returncode, 0, result)
        self.assertEqual(len(result.lines), SLICES)
        self.assertEqual(self.stored_uids(node, ph["series_uid"]), sorted(ph["sop_instance_uids"]))
        self.assertEqual(node.scalar("SELECT count(*) FROM instances"), SLICES)
        self.assertEqual(node.scalar("SELECT instance_count FROM series WHERE series_uid = ?",
                                     (ph["series_uid"],)), SLICES)
        series_dir = node.instance_path(ph["study_uid"], ph["series_uid"], "x").parent
        on_disk = self.files_under(node.workdir / "instances")
        self.assertEqual(sorted(p.name for p in on_disk),
                         sorted(f"{uid}.dcm" for uid in ph["sop_instance_uids"]))
        self.assertTrue(all(p.parent == series_dir for p in on_disk))
        for uid, source in ph["by_uid"].items():
            self.assertSameDataset(series_dir / f"{uid}.dcm", source)
        dups = node.query("SELECT sop_instance_uid FROM receive_events WHERE kind = 'duplicate'")
        self.assertEqual(sorted(r[0] for r in dups), sorted(indexed))
        self.assertEqual(node.scalar("SELECT count(*) FROM quarantine"), 0)
        self.assertEqual(self.files_under(node.workdir / "tmp"), [])
        self.assertStopsCleanly(node)

    def test_sender_killed_mid_transfer(self):
        """A peer that dies without releasing: acknowledged instances stay, no partial files,
        the association is not recorded as released, and the node carries on."""
        node = self.node()
        ph = self.series(rows=128, cols=128, slices=40)
        sender = StreamingStore(node.test_store_cmd(ph["files"], aet="DOOMED", pause_ms=20))
        self.assertTrue(sender.wait_for_lines(5, timeout=30))
        sender.proc.kill()
        result = sender.finish(timeout=30)
        acked = [u for u, s, _ in result.lines if s == "0000"]
        self.assertGreaterEqual(len(acked), 5)
        self.assertLess(len(acked), 40)
        row = node.wait_for(
            lambda: node.query_one("SELECT * FROM associations WHERE calling_ae = 'DOOMED' "
                                   "AND ended_at IS NOT NULL"), 10,
            what="the broken association to be recorded")
        self.assertNotEqual(row["outcome"], "released")
        stored = set(self.stored_uids(node))
        self.assertTrue(set(acked) <= stored)
        self.assertEqual(row["instances_stored"], len(stored))
        self.assertEqual(len(self.files_under(node.workdir / "instances")), len(stored))
        node.wait_for(lambda: self.files_under(node.workdir / "tmp") == [], 5,
                      what="tmp/ to be empty")
        # Sending the rest later completes the series.
        self.assertProcOk(node.storescu(ph["files"]), "storescu of the whole series")
        self.assertEqual(self.stored_uids(node), sorted(ph["sop_instance_uids"]))
        self.assertStopsCleanly(node)


class WorkdirLockTest(SegnodeTestCase):

    def test_second_node_on_same_workdir_is_refused(self):
        """Two nodes on one working directory would delete each other's in-flight temp
        files; the second one must refuse to start and leave the first untouched."""
        first = self.node()
        ph = self.series(slices=3)
        self.assertProcOk(first.storescu(ph["files"]), "storescu to the first node")
        second = subprocess.run(
            [str(SEGNODE_BIN), "serve", "--workdir", str(first.workdir), "--port",
             str(free_port())], capture_output=True, text=True, timeout=30)
        self.assertEqual(second.returncode, 1, second)
        self.assertIn("is in use by another segnode (pid %d)" % first.proc.pid, second.stderr)
        self.assertEqual(first.echo().returncode, 0, "the first node keeps running")
        self.assertEqual(self.stored_uids(first), sorted(ph["sop_instance_uids"]))
        self.assertStopsCleanly(first)


if __name__ == "__main__":
    unittest.main()
