"""Eight storescu processes at once, each sending its own series."""

import subprocess
import unittest

from harness import TOOL_ENV, SegnodeTestCase, StreamingStore

SENDERS = 8
SLICES = 15


class ConcurrencyTest(SegnodeTestCase):

    def test_eight_concurrent_senders(self):
        node = self.node()
        series = [self.series(f"s{i}", rows=64, cols=64, slices=SLICES, seed=i + 1,
                              patient_id=f"CONC{i}", series_number=i + 1)
                  for i in range(SENDERS)]
        procs = [subprocess.Popen(node.storescu_cmd(s["files"], aet=f"SENDER{i}"),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=TOOL_ENV)
                 for i, s in enumerate(series)]
        outcomes = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            outcomes.append((p.returncode, err))
        for i, (rc, err) in enumerate(outcomes):
            self.assertEqual(rc, 0, f"storescu {i} failed: {err}")

        expected = sorted(uid for s in series for uid in s["sop_instance_uids"])
        self.assertEqual(len(expected), SENDERS * SLICES)
        self.assertEqual(self.stored_uids(node), expected)
        self.assertEqual(len(self.files_under(node.workdir / "instances")), SENDERS * SLICES)
        self.assertEqual(self.files_under(node.workdir / "tmp"), [])

        rows = node.query("SELECT * FROM series ORDER BY series_number")
        self.assertEqual(len(rows), SENDERS)
        for i, (row, s) in enumerate(zip(rows, series)):
            self.assertEqual(row["series_uid"], s["series_uid"])
            self.assertEqual(row["instance_count"], SLICES)
            self.assertEqual(row["patient_id"], f"CONC{i}")
            self.assertEqual(row["calling_ae"], f"SENDER{i}")
            self.assertEqual(sorted(self.stored_uids(node, s["series_uid"])),
                             sorted(s["sop_instance_uids"]))
            # Each instance is indexed against the association of its own sender.
            senders = node.query(
                "SELECT DISTINCT a.calling_ae FROM instances i JOIN series s ON s.id = "
                "i.series_id JOIN associations a ON a.id = i.association_id WHERE "
                "s.series_uid = ?", (s["series_uid"],))
            self.assertEqual([r[0] for r in senders], [f"SENDER{i}"])

        node.wait_associations_ended()
        assoc = node.query("SELECT calling_ae, outcome, instances_stored, instances_refused "
                           "FROM associations WHERE calling_ae LIKE 'SENDER%' "
                           "ORDER BY calling_ae")
        self.assertEqual([tuple(a) for a in assoc],
                         [(f"SENDER{i}", "released", SLICES, 0) for i in range(SENDERS)])
        # The senders really overlapped: some association started before another ended.
        spans = node.query("SELECT started_at, ended_at FROM associations "
                           "WHERE calling_ae LIKE 'SENDER%'")
        overlap = max(sum(1 for b in spans if b["started_at"] <= a["started_at"] < b["ended_at"])
                      for a in spans)
        self.assertGreaterEqual(overlap, 2, "the eight associations ran one after another")
        # Spot-check content across series.
        for s in series:
            uid = s["sop_instance_uids"][SLICES // 2]
            self.assertSameDataset(node.instance_path(s["study_uid"], s["series_uid"], uid),
                                   s["by_uid"][uid])
        self.assertStopsCleanly(node)

    def test_same_series_from_two_senders_at_once(self):
        """Both senders race on every SOP instance: one copy each, the rest duplicates."""
        node = self.node()
        ph = self.series(slices=20)
        procs = [subprocess.Popen(node.storescu_cmd(ph["files"], aet=f"TWIN{i}"),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=TOOL_ENV) for i in range(2)]
        for p in procs:
            _, err = p.communicate(timeout=60)
            self.assertEqual(p.returncode, 0, err)
        self.assertEqual(self.stored_uids(node), sorted(ph["sop_instance_uids"]))
        self.assertEqual(node.scalar("SELECT count(*) FROM series"), 1)
        self.assertEqual(node.scalar("SELECT instance_count FROM series"), 20)
        self.assertEqual(len(self.files_under(node.workdir / "instances")), 20)
        self.assertEqual(node.scalar("SELECT count(*) FROM receive_events WHERE kind = "
                                     "'duplicate'"), 20)
        self.assertEqual(node.scalar("SELECT count(*) FROM receive_events WHERE kind != "
                                     "'duplicate'"), 0)
        self.assertEqual(node.scalar("SELECT count(*) FROM quarantine"), 0)
        self.assertEqual(self.files_under(node.workdir / "tmp"), [])
        self.assertStopsCleanly(node)

    def test_max_associations(self):
        node = self.node({"dicom": {"max_associations": 2}})
        ph = [self.series(f"slow{i}", slices=6, seed=i + 1) for i in range(2)]
        slow = [StreamingStore(node.test_store_cmd(p["files"], aet=f"SLOW{i}", pause_ms=400))
                for i, p in enumerate(ph)]
        for s in slow:
            self.assertTrue(s.wait_for_lines(1, timeout=30), "slow sender did not start")
        third = node.echo(aet="THIRD")
        self.assertNotEqual(third.returncode, 0, "a third association must be refused")
        self.assertIn("Association Rejected", third.stdout + third.stderr)
        results = [s.finish(timeout=60) for s in slow]
        for r in results:
            self.assertEqual(r.returncode, 0, r)
        # Slots are given back: a new association works again.
        self.assertProcOk(node.echo(aet="FOURTH"), "echoscu after the slow senders")
        node.wait_associations_ended()
        rows = node.query("SELECT calling_ae, outcome, detail FROM associations WHERE "
                          "calling_ae IN ('SLOW0', 'SLOW1', 'THIRD', 'FOURTH') ORDER BY id")
        outcomes = {r["calling_ae"]: r["outcome"] for r in rows}
        self.assertEqual(outcomes, {"SLOW0": "released", "SLOW1": "released",
                                    "THIRD": "rejected", "FOURTH": "released"})
        detail = [r["detail"] for r in rows if r["calling_ae"] == "THIRD"][0]
        self.assertIn("max_associations", detail)
        self.assertEqual(node.scalar("SELECT count(*) FROM instances"), 12)
        self.assertStopsCleanly(node)


if __name__ == "__main__":
    unittest.main()
