"""SIGTERM: idle, during a transfer (drained), and when the grace period runs out."""

import os
import signal
import subprocess
import time
import unittest

from dicom_wire import RawAssociation
from harness import NODE_AE, SegnodeTestCase, StreamingStore, port_open

# storescu with Nagle's algorithm on (no TCP_NODELAY) needs ~30 ms per 128 KiB instance on
# loopback: a 100-instance transfer lasts long enough to signal segnode in the middle of it.
NAGLE_ENV = {k: v for k, v in os.environ.items() if k != "TCP_NODELAY"}


class ShutdownTest(SegnodeTestCase):

    def test_sigterm_idle(self):
        node = self.node()
        port = node.port
        self.assertTrue(port_open(port))
        t0 = time.monotonic()
        self.assertStopsCleanly(node, timeout=10)
        self.assertLess(time.monotonic() - t0, 3.0, "idle shutdown took too long")
        self.assertFalse(port_open(port), "port still open after exit")
        self.assertIn("segnode stopped", node.log_text())

    def test_sigint_idle(self):
        node = self.node()
        node.signal(signal.SIGINT)
        self.assertEqual(node.wait(timeout=10), 0, node.log_tail())

    def test_sigterm_during_transfer_drains(self):
        node = self.node({"node": {"shutdown_grace_s": 30}})
        ph = self.series(rows=256, cols=256, slices=100)
        sender = subprocess.Popen(node.storescu_cmd(ph["files"], aet="INFLIGHT"),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=NAGLE_ENV)
        node.wait_for(lambda: (node.scalar("SELECT count(*) FROM instances") or 0) >= 5, 30,
                      interval=0.02, what="the transfer to start")
        node.signal(signal.SIGTERM)
        at_term = node.scalar("SELECT count(*) FROM instances")
        self.assertLess(at_term, 100, "the transfer was over before SIGTERM; test proves nothing")

        # New associations are refused while the transfer drains.
        deadline = time.monotonic() + 5
        while node.echo(aet="LATECALLER", timeout=10).returncode == 0:
            self.assertLess(time.monotonic(), deadline, "still accepting after SIGTERM")
            time.sleep(0.1)
        out, err = sender.communicate(timeout=120)
        self.assertEqual(sender.returncode, 0, f"storescu failed during shutdown: {err}")
        rc = node.wait(timeout=30)
        self.assertEqual(rc, 0, node.log_tail())
        self.assertFalse(port_open(node.port), "port still open after exit")

        self.assertEqual(self.stored_uids(node), sorted(ph["sop_instance_uids"]))
        self.assertEqual(len(self.files_under(node.workdir / "instances")), 100)
        self.assertEqual(self.files_under(node.workdir / "tmp"), [])
        assoc = node.query_one("SELECT * FROM associations WHERE calling_ae = 'INFLIGHT'")
        self.assertEqual((assoc["outcome"], assoc["instances_stored"]), ("released", 100))
        for uid in ph["sop_instance_uids"][::10]:
            self.assertSameDataset(node.instance_path(ph["study_uid"], ph["series_uid"], uid),
                                   ph["by_uid"][uid])
        self.assertIn("waiting up to 30 s", node.log_text())

    def test_grace_period_expires(self):
        node = self.node({"node": {"shutdown_grace_s": 1}})
        ph = self.series(slices=30)
        sender = StreamingStore(node.test_store_cmd(ph["files"], aet="SLOWPOKE", pause_ms=300))
        self.assertTrue(sender.wait_for_lines(2, timeout=30))
        t0 = time.monotonic()
        node.signal(signal.SIGTERM)
        rc = node.wait(timeout=15)
        took = time.monotonic() - t0
        result = sender.finish(timeout=60)
        self.assertEqual(rc, 0, node.log_tail())
        self.assertLess(took, 5.0, "segnode did not give up after shutdown_grace_s")
        self.assertFalse(port_open(node.port))
        self.assertEqual(result.returncode, 2, f"the sender should see the association cut: "
                                               f"{result}")
        acked = [u for u, s, _ in result.lines if s == "0000"]
        self.assertGreaterEqual(len(acked), 2)
        self.assertLess(len(acked), 30)
        self.assertIn("still open after 1 s", node.log_text())

        # Whatever was acknowledged is stored; a restart cleans any partial file.
        self.restart(node)
        self.assertEqual(self.files_under(node.workdir / "tmp"), [])
        self.assertTrue(set(acked) <= set(self.stored_uids(node)))
        self.assertStopsCleanly(node)

    def test_grace_period_expiry_ends_open_associations_and_stops_cleanly(self):
        """An association that sends nothing outlives the grace period: segnode ends it
        (A-ABORT), records it as aborted, joins its thread and stops normally."""
        node = self.node({"node": {"shutdown_grace_s": 1},
                          "dicom": {"dimse_timeout_s": 600, "acse_timeout_s": 600}})
        idle = RawAssociation(node.port, NODE_AE, calling="IDLESCU")
        self.addCleanup(idle.close)
        self.assertEqual(idle.pdu_type, 0x02, "association not accepted")
        self.assertEqual(idle.echo(), 0)  # it works, then says nothing more
        t0 = time.monotonic()
        node.signal(signal.SIGTERM)
        rc = node.wait(timeout=15)
        self.assertEqual(rc, 0, node.log_tail())
        self.assertLess(time.monotonic() - t0, 5.0)
        row = node.query_one("SELECT outcome, detail, ended_at FROM associations "
                             "WHERE calling_ae = 'IDLESCU'")
        self.assertEqual(row["outcome"], "aborted", dict(row))
        self.assertIn("shutting down", row["detail"])
        self.assertIsNotNone(row["ended_at"])
        self.assertIn("segnode stopped", node.log_text())
        # The peer was told: an A-ABORT (or the connection closed) rather than silence.
        idle.sock.settimeout(5)
        try:
            data = idle.sock.recv(16)
        except ConnectionResetError:
            data = b""
        self.assertIn(data[:1], (b"", b"\x07"))


if __name__ == "__main__":
    unittest.main()
