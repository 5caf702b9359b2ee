"""Series completion: quiet period, restarts, completion on release, late instances."""

import time
import unittest

from harness import SegnodeTestCase


def now_ms():
    return int(time.time() * 1000)


class CompletionTest(SegnodeTestCase):

    def series_row(self, node, series_uid):
        return node.query_one("SELECT * FROM series WHERE series_uid = ?", (series_uid,))

    def wait_complete(self, node, series_uid, timeout):
        return node.wait_for(
            # With no routing rules the job runner marks a complete series `routed` (nothing to
            # do) right away; either state means completion happened.
            lambda: (lambda r: r if r is not None and r["state"] in ("complete", "routed")
                     else None)(self.series_row(node, series_uid)),
            timeout, interval=0.05, what=f"series {series_uid} to be complete")

    def assertStillReceiving(self, node, series_uid, quiet_s):
        """Right after a send the series is receiving -- checked only while we are clearly
        inside the quiet period, so a slow machine cannot make this flaky."""
        row = self.series_row(node, series_uid)
        if now_ms() - row["last_received_at"] < quiet_s * 1000 - 300:
            self.assertEqual(row["state"], "receiving")
            self.assertIsNone(row["completed_at"])
        return row

    def test_quiet_period(self):
        node = self.node({"series": {"quiet_period_s": 1}})
        ph = self.series(slices=5)
        self.assertProcOk(node.storescu(ph["files"]), "storescu")
        self.assertStillReceiving(node, ph["series_uid"], 1)
        row = self.wait_complete(node, ph["series_uid"], timeout=4)
        self.assertIsNotNone(row["completed_at"])
        waited = row["completed_at"] - row["last_received_at"]
        self.assertGreaterEqual(waited, 1000, "completed before the quiet period was over")
        self.assertLess(waited, 3000, "completion much later than quiet period + check interval")
        self.assertEqual(row["instance_count"], 5)
        self.assertEqual(row["late_instances"], 0)
        self.assertIn(f"series {ph['series_uid']} complete", node.log_text())
        self.assertStopsCleanly(node)

    def test_completion_survives_kill_9(self):
        node = self.node({"series": {"quiet_period_s": 3}})
        ph = self.series(slices=5)
        self.assertProcOk(node.storescu(ph["files"]), "storescu")
        node.kill()
        killed_at = now_ms()
        row = self.series_row(node, ph["series_uid"])
        self.assertEqual(row["state"], "receiving")
        self.assertLess(killed_at - row["last_received_at"], 3000,
                        "too slow to kill inside the quiet period; the test proves nothing")

        self.restart(node)
        self.assertStillReceiving(node, ph["series_uid"], 3)
        row = self.wait_complete(node, ph["series_uid"], timeout=7)
        self.assertGreaterEqual(row["completed_at"] - row["last_received_at"], 3000)
        self.assertEqual(row["instance_count"], 5)
        self.assertStopsCleanly(node)

    def test_complete_on_association_release(self):
        node = self.node({"series": {"quiet_period_s": 600,
                                     "complete_on_association_release": True}})
        ph = self.series(slices=5)
        self.assertProcOk(node.storescu(ph["files"]), "storescu")
        row = self.wait_complete(node, ph["series_uid"], timeout=3)
        self.assertLess(row["completed_at"] - row["last_received_at"], 3000)
        self.assertEqual(row["instance_count"], 5)
        # An echo-only association completes nothing and breaks nothing.
        self.assertProcOk(node.echo(), "echoscu")
        self.assertStopsCleanly(node)

    def test_no_completion_on_release_by_default(self):
        node = self.node({"series": {"quiet_period_s": 600}})
        ph = self.series(slices=3)
        self.assertProcOk(node.storescu(ph["files"]), "storescu")
        node.wait_associations_ended()
        time.sleep(0.5)
        self.assertEqual(self.series_row(node, ph["series_uid"])["state"], "receiving")
        self.assertStopsCleanly(node)

    def late_instance(self, ph, name):
        return self.series(name, slices=1, seed=99, series_uid=ph["series_uid"],
                           study_uid=ph["study_uid"],
                           frame_of_reference_uid=ph["frame_of_reference_uid"])

    def test_late_instance_reopen(self):
        node = self.node({"series": {"quiet_period_s": 1, "late_instance_policy": "reopen"}})
        ph = self.series(slices=4)
        self.assertProcOk(node.storescu(ph["files"]), "storescu")
        first = self.wait_complete(node, ph["series_uid"], timeout=4)

        # An identical resend after completion is a duplicate, not a late instance.
        self.assertProcOk(node.storescu(ph["files"][:1]), "storescu resend")
        row = self.series_row(node, ph["series_uid"])
        self.assertIn(row["state"], ("complete", "routed"))
        self.assertEqual((row["late_instances"], row["instance_count"]), (0, 4))

        late = self.late_instance(ph, "late")
        late_uid = late["sop_instance_uids"][0]
        self.assertNotIn(late_uid, ph["sop_instance_uids"])
        self.assertProcOk(node.storescu(late["files"], aet="LATECOMER"), "storescu late")
        row = self.assertStillReceiving(node, ph["series_uid"], 1)
        self.assertEqual(row["instance_count"], 5)
        self.assertEqual(row["late_instances"], 1)
        events = node.query("SELECT sop_instance_uid, kind, dimse_status, detail FROM "
                            "receive_events WHERE kind = 'late'")
        self.assertEqual([(e[0], e[1], e[2]) for e in events], [(late_uid, "late", 0)])
        self.assertIn("reopen", events[0]["detail"])
        self.assertIn(late_uid, self.stored_uids(node, ph["series_uid"]))

        again = self.wait_complete(node, ph["series_uid"], timeout=4)
        self.assertGreater(again["completed_at"], first["completed_at"])
        self.assertGreaterEqual(again["completed_at"] - again["last_received_at"], 1000)
        self.assertEqual(again["instance_count"], 5)
        self.assertStopsCleanly(node)

    def test_late_instance_record(self):
        node = self.node({"series": {"quiet_period_s": 1, "late_instance_policy": "record"}})
        ph = self.series(slices=3)
        self.assertProcOk(node.storescu(ph["files"]), "storescu")
        first = self.wait_complete(node, ph["series_uid"], timeout=4)
        late = self.late_instance(ph, "late")
        late_uid = late["sop_instance_uids"][0]
        self.assertProcOk(node.storescu(late["files"]), "storescu late")
        row = self.series_row(node, ph["series_uid"])
        self.assertIn(row["state"], ("complete", "routed"))
        self.assertEqual(row["completed_at"], first["completed_at"])
        self.assertEqual((row["instance_count"], row["late_instances"]), (4, 1))
        events = node.query("SELECT sop_instance_uid, detail FROM receive_events "
                            "WHERE kind = 'late'")
        self.assertEqual([e[0] for e in events], [late_uid])
        self.assertIn("record", events[0]["detail"])
        self.assertIn(late_uid, self.stored_uids(node, ph["series_uid"]))
        self.assertStopsCleanly(node)


if __name__ == "__main__":
    unittest.main()
