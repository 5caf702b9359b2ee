"""Association control: [[dicom.allowed_callers]] and the called AE title."""

import unittest

from harness import LOOPBACK, NODE_AE, SegnodeTestCase


class AllowListTest(SegnodeTestCase):

    def test_allowed_callers(self):
        node = self.node({"dicom": {"allowed_callers": [
            {"ae_title": "GOODSCU", "host": "127.0.0.1"},
            {"ae_title": "OTHERHOST", "host": "127.0.0.2"},
        ]}})
        baseline = node.scalar("SELECT max(id) FROM associations") or 0

        good = node.echo(aet="GOODSCU")
        self.assertProcOk(good, "echoscu -aet GOODSCU")

        bad = node.echo(aet="BADSCU")
        self.assertNotEqual(bad.returncode, 0, "BADSCU must be rejected")
        self.assertIn("Association Rejected", bad.stdout + bad.stderr)
        self.assertIn("Calling AE Title Not Recognized", bad.stdout + bad.stderr)

        other = node.echo(aet="OTHERHOST")  # listed, but only from 127.0.0.2
        self.assertNotEqual(other.returncode, 0, "OTHERHOST from 127.0.0.1 must be rejected")
        self.assertIn("Association Rejected", other.stdout + other.stderr)

        wrong_called = node.echo(aet="GOODSCU", aec="NOTSEGNODE")
        self.assertNotEqual(wrong_called.returncode, 0, "wrong called AE must be rejected")
        self.assertIn("Called AE Title Not Recognized", wrong_called.stdout + wrong_called.stderr)

        # Storage from a rejected caller stores nothing.
        ph = self.series(slices=2)
        refused = node.storescu(ph["files"], aet="BADSCU")
        self.assertNotEqual(refused.returncode, 0)
        ok = node.storescu(ph["files"], aet="GOODSCU")
        self.assertProcOk(ok, "storescu -aet GOODSCU")
        self.assertEqual(self.stored_uids(node), sorted(ph["sop_instance_uids"]))

        node.wait_associations_ended()
        rows = node.query("SELECT * FROM associations WHERE id > ? ORDER BY id", (baseline,))
        summary = [(r["calling_ae"], r["called_ae"], r["outcome"]) for r in rows]
        self.assertEqual(summary, [
            ("GOODSCU", NODE_AE, "released"),
            ("BADSCU", NODE_AE, "rejected"),
            ("OTHERHOST", NODE_AE, "rejected"),
            ("GOODSCU", "NOTSEGNODE", "rejected"),
            ("BADSCU", NODE_AE, "rejected"),
            ("GOODSCU", NODE_AE, "released"),
        ])
        for r in rows:
            self.assertEqual(r["peer_address"], LOOPBACK)
            self.assertIsNotNone(r["ended_at"])
        by_caller = {(r["calling_ae"], r["called_ae"]): r["detail"] for r in rows
                     if r["outcome"] == "rejected"}
        self.assertIn("BADSCU", by_caller[("BADSCU", NODE_AE)])
        self.assertIn("allow-list", by_caller[("BADSCU", NODE_AE)])
        self.assertIn("OTHERHOST", by_caller[("OTHERHOST", NODE_AE)])
        self.assertIn("127.0.0.1", by_caller[("OTHERHOST", NODE_AE)])
        self.assertIn("not allowed", by_caller[("OTHERHOST", NODE_AE)])
        self.assertIn("NOTSEGNODE", by_caller[("GOODSCU", "NOTSEGNODE")])
        self.assertEqual(rows[-1]["instances_stored"], 2)
        self.assertStopsCleanly(node)

    def test_open_node_checks_called_ae_only(self):
        node = self.node()
        self.assertProcOk(node.echo(aet="ANYONE"), "echoscu -aet ANYONE")
        self.assertProcOk(node.echo(aet="SOMEONE ELSE"), "echoscu with a space in the AE")
        wrong = node.echo(aet="ANYONE", aec="segnode")  # AE titles are case-sensitive
        self.assertNotEqual(wrong.returncode, 0)
        node.wait_associations_ended()
        rows = node.query("SELECT calling_ae, called_ae, outcome FROM associations "
                          "WHERE calling_ae != 'READYCHECK' ORDER BY id")
        self.assertEqual([tuple(r) for r in rows], [
            ("ANYONE", NODE_AE, "released"),
            ("SOMEONE ELSE", NODE_AE, "released"),
            ("ANYONE", "segnode", "rejected"),
        ])
        self.assertStopsCleanly(node)


if __name__ == "__main__":
    unittest.main()
