"""The HTTP API under load while DICOM receive keeps working: 200 concurrent clients (every
response's status and detail asserted) during a storescu of a phantom series (every instance
stored), slow clients that never finish their headers (cut off after http.header_timeout_s
while others are served), and a peer C-ECHO that hangs without holding up other requests."""

import socket
import threading
import time

import requests

from harness import LOOPBACK, SegnodeTestCase

CLIENTS = 200


class HttpUnderLoad(SegnodeTestCase):
    def start_node(self, http=None, **sections):
        config = {"retention": {"min_free_mb": 0}, "series": {"quiet_period_s": 600},
                  "http": dict(http or {})}
        config.update(sections)
        node = self.node(config)
        proc = node.cli("key", "add", "reader", "--role", "read")
        self.assertProcOk(proc, "key add")
        return node, proc.stdout.split()[0]

    def test_200_concurrent_clients_while_a_series_is_received(self):
        node, key = self.start_node({"max_connections": 256})
        url = node.http_url
        series = self.series(rows=256, cols=256, slices=60)
        barrier = threading.Barrier(CLIENTS + 1, timeout=120)
        results = []  # (client, what, status, detail or None)
        errors = []
        lock = threading.Lock()

        # Every client opens its connection, waits until all 200 are open at once, then sends
        # a mix: authorised reads, a malformed query, an unknown key, a public route.
        def client(i):
            try:
                with requests.Session() as s:
                    auth = {"Authorization": f"Bearer {key}"}
                    first = s.get(url + "/healthz", timeout=60)
                    got = [("healthz", first.status_code, None)]
                    barrier.wait()
                    for what, path, headers in (
                            ("jobs", "/api/v1/jobs?limit=50", auth),
                            ("series", "/api/v1/series?limit=50", auth),
                            ("bad-limit", "/api/v1/jobs?limit=0", auth),
                            ("unknown-key", "/api/v1/system", {"API_KEY": f"snk_0000000{i % 10}_"
                                                               + "0" * 64}),
                            ("system", "/api/v1/system", auth)):
                        r = s.get(url + path, headers=headers, timeout=60)
                        detail = r.json().get("detail") if r.status_code >= 400 else None
                        got.append((what, r.status_code, detail))
                with lock:
                    results.extend((i, *g) for g in got)
            except Exception as e:  # noqa: BLE001 - reported below with the client number
                with lock:
                    errors.append(f"client {i}: {e!r}")
                barrier.abort()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        barrier.wait()  # all 200 connections are open now
        store = node.storescu(series["files"], timeout=300)
        for t in threads:
            t.join(timeout=300)
        self.assertEqual(errors, [])
        self.assertProcOk(store, "storescu during the HTTP load")

        self.assertEqual(len(results), CLIENTS * 6)
        expected = {"healthz": 200, "jobs": 200, "series": 200, "bad-limit": 400,
                    "unknown-key": 401, "system": 200}
        for i, what, status, detail in results:
            self.assertEqual(status, expected[what], f"client {i} {what}: {detail}")
            if what == "bad-limit":
                self.assertIn("query parameter 'limit': '0' is not an integer", detail)
            if what == "unknown-key":
                self.assertIn("unknown API key", detail)
        # Every instance was stored, durably indexed.
        self.assertEqual(self.stored_uids(node, series["series_uid"]),
                         sorted(series["sop_instance_uids"]))
        metrics = requests.get(url + "/metrics", timeout=30).text
        self.assertIn("segnode_http_connections_refused_total 0\n", metrics)
        self.assertIn(f"segnode_http_auth_failures_total {CLIENTS}\n", metrics)
        self.assertIn(f'segnode_http_requests_total{{route="/api/v1/jobs",status="200"}} '
                      f"{CLIENTS}\n", metrics)
        self.assertIn(f"segnode_instances_received_total {len(series['files'])}\n", metrics)

    def test_slow_clients_are_cut_off_after_the_header_timeout(self):
        node, key = self.start_node({"header_timeout_s": 2, "max_connections": 100})
        port = node.config["http"]["port"]
        # 20 clients trickle a header byte every 0.2 s and never finish; 10 send nothing.
        tricklers = []
        for _ in range(20):
            s = socket.create_connection((LOOPBACK, port), timeout=10)
            s.sendall(b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\n")
            tricklers.append(s)
        silent = [socket.create_connection((LOOPBACK, port), timeout=10) for _ in range(10)]
        started = time.monotonic()
        closed_at = {}

        def trickle(i, s):
            try:
                while time.monotonic() - started < 10:
                    s.sendall(b"X")
                    time.sleep(0.2)
            except OSError:  # the server closed the connection
                closed_at[i] = time.monotonic() - started
        threads = [threading.Thread(target=trickle, args=(i, s)) for i, s in enumerate(tricklers)]
        for t in threads:
            t.start()
        # Meanwhile other clients are served at once, and DICOM works.
        for _ in range(10):
            t0 = time.monotonic()
            r = requests.get(node.http_url + "/api/v1/jobs", timeout=10,
                             headers={"Authorization": f"Bearer {key}"})
            self.assertEqual(r.status_code, 200)
            self.assertLess(time.monotonic() - t0, 1.0)
        series = self.series(slices=5)
        self.assertProcOk(node.storescu(series["files"]), "storescu beside slow clients")
        for s in silent:
            s.settimeout(10)
            self.assertEqual(s.recv(1024), b"")  # closed by the server, nothing answered
            s.close()
        silent_closed = time.monotonic() - started
        for t in threads:
            t.join(timeout=20)
        for s in tricklers:
            s.close()
        # Trickling does not extend the deadline: every slow client was closed after ~2 s.
        self.assertEqual(sorted(closed_at), list(range(20)), closed_at)
        for i, at in closed_at.items():
            self.assertGreater(at, 1.5, f"trickler {i}")
            self.assertLess(at, 5.0, f"trickler {i}")
        self.assertLess(silent_closed, 5.0)
        metrics = requests.get(node.http_url + "/metrics", timeout=10).text
        self.assertIn("segnode_http_header_timeouts_total 30\n", metrics)
        self.assertEqual(len(self.stored_uids(node, series["series_uid"])), 5)

    def test_a_hanging_peer_echo_does_not_hold_up_other_requests(self):
        # A "peer" that accepts TCP connections (kernel backlog) but never answers: an echo
        # waits for its A-ASSOCIATE response until dicom.acse_timeout_s.
        hang = socket.socket()
        hang.bind((LOOPBACK, 0))
        hang.listen(16)
        self.addCleanup(hang.close)
        peer = {"name": "hang", "ae_title": "HANG", "host": LOOPBACK,
                "port": hang.getsockname()[1]}
        node, _ = self.start_node(peers=[peer], dicom={"acse_timeout_s": 6})
        admin = node.cli("key", "add", "admin", "--role", "admin").stdout.split()[0]
        url = node.http_url
        echoes = []

        def echo():
            t0 = time.monotonic()
            r = requests.post(url + "/api/v1/peers/hang/echo", timeout=60,
                              headers={"Authorization": f"Bearer {admin}"})
            echoes.append((r.status_code, r.json().get("detail", ""), time.monotonic() - t0))
        # More hanging echoes than the server has I/O threads (2).
        threads = [threading.Thread(target=echo) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        for path in ("/healthz", "/api/v1/jobs", "/api/v1/peers", "/readyz", "/metrics"):
            t0 = time.monotonic()
            r = requests.get(url + path, timeout=10, headers={"Authorization": f"Bearer {admin}"})
            self.assertEqual(r.status_code, 200, f"{path}: {r.text}")
            self.assertLess(time.monotonic() - t0, 1.0, f"{path} waited for the echoes")
        self.assertTrue(all(t.is_alive() for t in threads), "the echoes did not hang")
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(len(echoes), 3)
        for status, detail, took in echoes:
            self.assertEqual(status, 502, detail)
            self.assertGreater(took, 4.0)
        self.assertStopsCleanly(node)


if __name__ == "__main__":
    import unittest
    unittest.main()
