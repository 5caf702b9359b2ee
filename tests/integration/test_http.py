"""The HTTP API with real clients (python3-requests and raw sockets) against the real
`segnode serve`: the role matrix over every route, a phantom series sent by storescu run
through POST /api/v1/jobs and downloaded, bad input and limits (malformed JSON, wrong types,
settings out of range, path traversal, bodies over the limit, slow and many clients),
/metrics against what the test did, and docs/openapi.yaml against the routes answered."""

import os
import re
import secrets
import socket
import threading
import time
import unittest
from pathlib import Path

import pydicom
import requests

from harness import LOOPBACK, SOURCE_DIR, SegnodeTestCase
from seg_reader import dciodvfy

SEG_SOP = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"

# (method, path, least role: None = public, "metrics", "read", "submit", "admin", body).
# Bodies are chosen so an allowed call changes nothing (it fails validation or finds nothing).
ROUTES = [
    ("GET", "/healthz", None, None),
    ("GET", "/readyz", None, None),
    ("GET", "/metrics", "metrics", None),
    ("GET", "/api/v1/openapi.yaml", None, None),
    ("GET", "/api/v1/system", "read", None),
    ("GET", "/api/v1/algorithms", "read", None),
    ("GET", "/api/v1/algorithms/body", "read", None),
    ("GET", "/api/v1/series", "read", None),
    ("GET", "/api/v1/series/1.2.3.4", "read", None),
    ("POST", "/api/v1/studies", "submit", None),  # no body: 415 once authorised
    ("POST", "/api/v1/series/1.2.3.4/complete", "submit", None),
    ("GET", "/api/v1/jobs", "read", None),
    ("POST", "/api/v1/jobs", "submit", {"series_uid": "1.2.3.4", "algorithm": "body"}),
    ("GET", "/api/v1/jobs/999", "read", None),
    ("POST", "/api/v1/jobs/999/cancel", "submit", None),
    ("POST", "/api/v1/jobs/999/retry", "submit", None),
    ("GET", "/api/v1/jobs/999/outputs", "read", None),
    ("GET", "/api/v1/jobs/999/outputs/seg.dcm", "read", None),
    ("GET", "/api/v1/jobs/999/log", "read", None),
    ("GET", "/api/v1/peers", "read", None),
    ("POST", "/api/v1/peers/nosuchpeer/echo", "admin", None),
    ("GET", "/api/v1/keys", "admin", None),
    ("POST", "/api/v1/keys", "admin", {"name": "x", "role": "nonsense"}),
    ("DELETE", "/api/v1/keys/nosuchkey", "admin", None),
]
RANK = {"read": 1, "submit": 2, "admin": 3}


def auth(key, style="bearer"):
    if key is None:
        return {}
    return {"Authorization": f"Bearer {key}"} if style == "bearer" else {"API_KEY": key}


def raw_request(port, data, timeout=10):
    """Sends raw bytes and returns everything the server answers until it closes."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (ConnectionResetError, socket.timeout):
            pass
        return b"".join(chunks)


def metric(text, name, labels=None):
    """The value of one sample of a Prometheus text exposition, or None."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if labels is None and not got or labels is not None and got == labels:
            return float(m.group(3))
    return None


def openapi_operations(text):
    """(path, method) pairs of an OpenAPI document's `paths` (2-space YAML indentation)."""
    ops = set()
    in_paths = False
    path = None
    for line in text.splitlines():
        if line.startswith("paths:"):
            in_paths = True
            continue
        if in_paths and line and not line.startswith(" "):
            break
        m = re.match(r"^  (/\S*):\s*$", line)
        if in_paths and m:
            path = m.group(1)
            continue
        m = re.match(r"^    (get|post|put|delete|patch):", line)
        if in_paths and path and m:
            ops.add((path, m.group(1).upper()))
    return ops


class HttpTestCase(SegnodeTestCase):
    def http_node(self, http=None, **sections):
        config = {"series": {"quiet_period_s": 1}, "jobs": {"poll_interval_ms": 100},
                  "retention": {"min_free_mb": 0}}
        config.update(sections)
        config["http"] = dict(http or {})
        node = self.node(config)
        config_http = node.config["http"]
        self.port = config_http["port"]
        self.url = node.http_url
        return node

    def add_key(self, node, name, role):
        proc = node.cli("key", "add", name, "--role", role)
        self.assertProcOk(proc, f"key add {name}")
        return proc.stdout.split()[0]

    def call(self, method, path, key=None, style="bearer", **kw):
        return requests.request(method, self.url + path, headers={**auth(key, style),
                                                                  **kw.pop("headers", {})},
                                timeout=30, **kw)

    def assertProblem(self, r, status, detail_part=None):
        self.assertEqual(r.status_code, status, r.text)
        self.assertEqual(r.headers["Content-Type"], "application/problem+json")
        body = r.json()
        self.assertEqual(body["status"], status)
        self.assertTrue(body["detail"])
        if detail_part is not None:
            self.assertIn(detail_part, body["detail"])
        return body


class RolesAndRoutes(HttpTestCase):
    def test_role_matrix_over_every_route(self):
        node = self.http_node()
        keys = {role: self.add_key(node, f"{role}-key", role) for role in RANK}
        revoked = self.add_key(node, "gone", "admin")
        self.assertProcOk(node.cli("key", "revoke", "gone"), "key revoke")
        unknown = f"snk_{secrets.token_hex(4)}_{secrets.token_hex(32)}"

        for method, path, least, body in ROUTES:
            what = f"{method} {path}"
            kw = {"json": body} if body is not None else {}
            if least is None or least == "metrics":
                r = self.call(method, path, **kw)
                self.assertEqual(r.status_code, 200, f"{what} without a key: {r.text}")
                continue
            r = self.call(method, path, **kw)
            self.assertProblem(r, 401, "no API key")
            self.assertTrue(r.headers["WWW-Authenticate"].startswith("Bearer"), what)
            r = self.call(method, path, key=unknown, **kw)
            self.assertProblem(r, 401, "unknown API key")
            self.assertIn("WWW-Authenticate", r.headers)
            r = self.call(method, path, key=revoked, style="api_key", **kw)
            self.assertProblem(r, 401, "revoked")
            r = self.call(method, path, key="not-a-key", **kw)
            self.assertProblem(r, 401, "malformed")
            for role, key in keys.items():
                for style in ("bearer", "api_key"):
                    r = self.call(method, path, key=key, style=style, **kw)
                    if RANK[role] < RANK[least]:
                        self.assertProblem(r, 403, f"needs the {least} role")
                    else:
                        self.assertNotIn(r.status_code, (401, 403, 405),
                                         f"{what} as {role}: {r.text}")
                        self.assertLess(r.status_code, 500, f"{what} as {role}: {r.text}")

        # Keys never appear in the log; failed authentications were counted (4 per
        # protected route: unknown, revoked, malformed... and no key, which is not counted).
        log = node.log_text()
        for key in list(keys.values()) + [revoked, unknown]:
            self.assertNotIn(key, log)
            self.assertNotIn(key[13:], log)
        protected = sum(1 for _, _, least, _ in ROUTES if least not in (None, "metrics"))
        text = self.call("GET", "/metrics").text
        self.assertEqual(metric(text, "segnode_http_auth_failures_total"), 3 * protected)
        # last_used_at was written (once, whatever the number of requests within a minute).
        used = node.query("SELECT name, last_used_at FROM api_keys WHERE name LIKE '%-key'")
        self.assertTrue(all(row[1] is not None for row in used), used)

    def test_peers_over_http_and_the_remote_peer_commands(self):
        from harness import StoreScpPeer, free_port
        dest = StoreScpPeer(self.tmp)
        self.addCleanup(dest.stop)
        dest.start()
        down = {"name": "down", "ae_title": "DOWN", "host": LOOPBACK, "port": free_port()}
        node = self.http_node(peers=[dest.peer_entry(), down])
        admin = self.add_key(node, "admin", "admin")
        reader = self.add_key(node, "reader", "read")
        peers = self.call("GET", "/api/v1/peers", key=reader).json()["items"]
        self.assertEqual([p["name"] for p in peers], ["dest", "down"])
        self.assertProblem(self.call("POST", "/api/v1/peers/dest/echo", key=reader), 403)
        r = self.call("POST", "/api/v1/peers/dest/echo", key=admin)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertTrue(r.json()["ok"])
        self.assertProblem(self.call("POST", "/api/v1/peers/down/echo", key=admin), 502,
                           "cannot connect")

        import subprocess
        from harness import SEGNODE_BIN
        env = {k: v for k, v in os.environ.items() if k != "SEGNODE_CONFIG"}
        env["SEGNODE_API_KEY"] = admin

        def remote(*args):
            return subprocess.run([str(SEGNODE_BIN), "--server", self.url, "peer", *args],
                                  capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(remote("list").stdout, node.cli("peer", "list").stdout)
        ok = remote("echo", "dest")
        self.assertProcOk(ok, "peer echo --server")
        self.assertRegex(ok.stdout, r"^OK: dest \(DEST at 127\.0\.0\.1:\d+\) answered C-ECHO in "
                                    r"\d+ ms \(calling AE SEGNODE\)\n$")
        failed = remote("echo", "down")
        self.assertEqual(failed.returncode, 1)
        self.assertEqual(failed.stdout, node.cli("peer", "echo", "down").stdout)
        self.assertEqual(remote("echo", "nobody").returncode, 2)

    def test_method_not_allowed_and_unknown_routes(self):
        node = self.http_node()
        admin = self.add_key(node, "admin", "admin")
        r = self.call("PUT", "/api/v1/jobs", key=admin)
        self.assertProblem(r, 405)
        self.assertEqual(sorted(r.headers["Allow"].split(", ")), ["GET", "POST"])
        r = self.call("GET", "/api/v1/nothing", key=admin)
        self.assertProblem(r, 404, "no route /api/v1/nothing")
        r = self.call("GET", "/api/v1/jobs?state=exploded", key=admin)
        self.assertProblem(r, 400, "'exploded' is not a job state")
        r = self.call("GET", "/api/v1/jobs?limit=0", key=admin)
        self.assertProblem(r, 400, "limit")
        r = self.call("GET", "/api/v1/series?colour=red", key=admin)
        self.assertProblem(r, 400, "unknown query parameter 'colour'")

    def test_openapi_documents_exactly_the_routes_answered(self):
        node = self.http_node()
        admin = self.add_key(node, "admin", "admin")
        r = self.call("GET", "/api/v1/openapi.yaml")
        self.assertEqual(r.status_code, 200)
        served = r.text
        self.assertEqual(served, (SOURCE_DIR / "docs" / "openapi.yaml").read_text())
        documented = openapi_operations(served)
        self.assertGreaterEqual(len(documented), 20)
        samples = {"{id}": "999", "{name}": "nosuch", "{uid}": "1.2.3.4"}
        paths = sorted({p for p, _ in documented})
        for path in paths:
            concrete = path
            for k, v in samples.items():
                concrete = concrete.replace(k, v)
            for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
                r = self.call(method, concrete, key=admin, json={})
                routed = not (r.status_code == 404 and "no route" in r.text)
                self.assertTrue(routed, f"{method} {path} is documented but not routed")
                if (path, method) in documented:
                    self.assertNotEqual(r.status_code, 405, f"{method} {path}: {r.text}")
                else:
                    self.assertEqual(r.status_code, 405,
                                     f"{method} {path} answers but is not documented")
                    allowed = set(r.headers["Allow"].split(", "))
                    self.assertEqual(allowed, {m for p, m in documented if p == path})
        # Every route of the role matrix is documented.
        for method, path, _, _ in ROUTES:
            pattern = re.sub(r"/999(?=/|$)", "/{id}", path)
            pattern = re.sub(r"/(1\.2\.3\.4)(?=/|$)", "/{uid}", pattern)
            pattern = re.sub(r"/(nosuchpeer|nosuchkey|body)(?=/|$)", "/{name}", pattern)
            pattern = pattern.replace("/outputs/seg.dcm", "/outputs/{name}")
            self.assertIn((pattern, method), documented, f"{method} {path}")

    def test_keys_over_http(self):
        node = self.http_node()
        admin = self.add_key(node, "admin", "admin")
        r = self.call("POST", "/api/v1/keys", key=admin, json={"name": "robot", "role": "read"})
        self.assertEqual(r.status_code, 201, r.text)
        self.assertEqual(r.headers["Location"], "/api/v1/keys/robot")
        robot = r.json()["key"]
        self.assertTrue(robot.startswith("snk_"))
        self.assertEqual(self.call("GET", "/api/v1/system", key=robot).status_code, 200)
        listed = self.call("GET", "/api/v1/keys", key=admin)
        self.assertEqual(listed.status_code, 200)
        self.assertNotIn(robot, listed.text)
        self.assertIn("robot", [k["name"] for k in listed.json()["items"]])
        self.assertProblem(self.call("POST", "/api/v1/keys", key=admin,
                                     json={"name": "robot", "role": "read"}), 409, "exists")
        self.assertProblem(self.call("POST", "/api/v1/keys", key=admin,
                                     json={"name": "x y", "role": "read"}), 422, "name")
        self.assertProblem(self.call("POST", "/api/v1/keys", key=admin,
                                     json={"name": "z", "role": "root"}), 422, "'root'")
        r = self.call("DELETE", "/api/v1/keys/robot", key=admin)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertProblem(self.call("GET", "/api/v1/system", key=robot), 401, "revoked")
        self.assertProblem(self.call("DELETE", "/api/v1/keys/robot", key=admin), 409)
        self.assertProblem(self.call("DELETE", "/api/v1/keys/nobody", key=admin), 404)

        # The key commands on the remote node print what the local ones print.
        import subprocess
        from harness import SEGNODE_BIN
        env = {k: v for k, v in os.environ.items() if k != "SEGNODE_CONFIG"}
        env["SEGNODE_API_KEY"] = admin

        def remote(*args):
            return subprocess.run([str(SEGNODE_BIN), "--server", self.url, "key", *args],
                                  capture_output=True, text=True, timeout=60, env=env)
        over_http = remote("list")
        self.assertProcOk(over_http, "key list --server")
        self.assertEqual(over_http.stdout, node.cli("key", "list").stdout)
        added = remote("add", "ci-bot", "--role", "submit")
        self.assertProcOk(added, "key add --server")
        bot = added.stdout.strip()
        self.assertIn("shown only now", added.stderr)
        self.assertEqual(self.call("GET", "/api/v1/jobs", key=bot).status_code, 200)
        self.assertProcOk(remote("revoke", "ci-bot"), "key revoke --server")
        self.assertProblem(self.call("GET", "/api/v1/jobs", key=bot), 401, "revoked")
        again = remote("revoke", "ci-bot")
        self.assertEqual(again.returncode, 1)
        self.assertIn("key revoke: ", again.stderr)


class JobsOverHttp(HttpTestCase):
    def test_phantom_series_run_poll_download(self):
        node = self.http_node()
        alice = self.add_key(node, "alice", "submit")
        bob = self.add_key(node, "bob", "submit")
        reader = self.add_key(node, "reader", "read")
        admin = self.add_key(node, "admin", "admin")
        series = self.series(slices=12)
        proc = node.storescu(series["files"])
        self.assertProcOk(proc, "storescu")
        uid = series["series_uid"]

        # Validation before anything is queued.
        self.assertProblem(self.call("POST", "/api/v1/jobs", key=alice,
                                     json={"series_uid": "1.2.3.999", "algorithm": "body"}),
                           404, "no series 1.2.3.999")
        self.assertProblem(self.call("POST", "/api/v1/jobs", key=alice,
                                     json={"series_uid": uid, "algorithm": "nope"}),
                           422, "algorithm")
        self.assertProblem(self.call("POST", "/api/v1/jobs", key=alice,
                                     json={"series_uid": uid, "algorithm": "body",
                                           "settings": {"min_hu": 99999}}),
                           422, "settings.min_hu")
        self.assertProblem(self.call("POST", "/api/v1/jobs", key=alice,
                                     json={"series_uid": uid, "algorithm": "body",
                                           "settings": {"no_such": 1}}),
                           422, "no_such")
        self.assertProblem(self.call("POST", "/api/v1/jobs", key=alice,
                                     json={"series_uid": uid, "algorithm": "body",
                                           "outputs": ["png"]}), 422, "'png'")
        self.assertProblem(self.call("POST", "/api/v1/jobs", key=alice,
                                     json={"series_uid": uid, "algorithm": "body",
                                           "destination": "mars"}), 422, "unknown peer 'mars'")
        self.assertEqual(node.scalar("SELECT count(*) FROM jobs"), 0)

        r = self.call("POST", "/api/v1/jobs", key=alice,
                      json={"series_uid": uid, "algorithm": "body",
                            "settings": {"min_hu": -400, "fill_holes": True},
                            "outputs": ["seg", "rtstruct"], "destination": "none"})
        self.assertEqual(r.status_code, 202, r.text)
        location = r.headers["Location"]
        job_id = r.json()["id"]
        self.assertEqual(location, f"/api/v1/jobs/{job_id}")
        self.assertEqual(r.json()["owner"], "alice")
        self.assertEqual(r.json()["settings"], {"min_hu": "-400", "fill_holes": "true"})

        deadline = time.monotonic() + 120
        while True:
            job = self.call("GET", location, key=alice).json()
            if job["state"] in ("done", "failed", "cancelled"):
                break
            self.assertLess(time.monotonic(), deadline, f"job stuck: {job}\n{node.log_tail()}")
            time.sleep(0.3)
        self.assertEqual(job["state"], "done", f"{job}\n{node.log_tail()}")
        self.assertEqual(job["send_attempts"], 0)
        self.assertIn("destination none", job["timeline"][-1]["detail"])
        self.assertEqual({f["name"] for f in job["files"]}, {"seg.dcm", "rtstruct.dcm"})

        # Another submit key sees nothing of alice's job; read and admin keys see it.
        for path in (location, location + "/outputs", location + "/outputs/seg.dcm",
                     location + "/log"):
            self.assertProblem(self.call("GET", path, key=bob), 404)
        self.assertProblem(self.call("POST", location + "/cancel", key=bob), 404)
        self.assertProblem(self.call("POST", location + "/retry", key=bob), 404)
        self.assertEqual(self.call("GET", "/api/v1/jobs", key=bob).json()["items"], [])
        self.assertEqual([j["id"] for j in self.call("GET", "/api/v1/jobs", key=alice).json()
                          ["items"]], [job_id])
        self.assertEqual(self.call("GET", location, key=reader).status_code, 200)
        self.assertProblem(self.call("POST", location + "/cancel", key=reader), 403)
        # Done jobs can be neither cancelled nor retried.
        self.assertProblem(self.call("POST", location + "/cancel", key=alice), 409, "done")
        self.assertProblem(self.call("POST", location + "/retry", key=admin), 409, "done")

        outputs = self.call("GET", location + "/outputs", key=reader).json()["items"]
        self.assertEqual({o["name"] for o in outputs}, {"seg.dcm", "rtstruct.dcm"})
        r = self.call("GET", location + "/outputs/seg.dcm", key=alice)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.headers["Content-Type"], "application/dicom")
        self.assertEqual(r.headers["Content-Disposition"],
                         f'attachment; filename="job-{job_id}-seg.dcm"')
        etag = r.headers["ETag"]
        seg_path = self.tmp / "seg.dcm"
        seg_path.write_bytes(r.content)
        again = self.call("GET", location + "/outputs/seg.dcm", key=alice,
                          headers={"If-None-Match": etag})
        self.assertEqual(again.status_code, 304)
        self.assertEqual(again.content, b"")
        errors, _ = dciodvfy(seg_path)
        self.assertEqual(errors, [], "dciodvfy errors in the downloaded SEG")
        seg = pydicom.dcmread(seg_path)
        self.assertEqual(seg.SOPClassUID, SEG_SOP)
        self.assertEqual(seg.ReferencedSeriesSequence[0].SeriesInstanceUID, uid)
        self.assertEqual(seg.SOPInstanceUID,
                         next(o for o in outputs if o["name"] == "seg.dcm")["sop_instance_uid"])
        rt = self.call("GET", location + "/outputs/rtstruct.dcm", key=admin)
        self.assertEqual(rt.status_code, 200)
        rt_path = self.tmp / "rt.dcm"
        rt_path.write_bytes(rt.content)
        self.assertEqual(pydicom.dcmread(rt_path).SOPClassUID, RTSTRUCT_SOP)
        log = self.call("GET", location + "/log", key=alice)
        self.assertEqual(log.status_code, 200)
        self.assertTrue(log.headers["Content-Type"].startswith("text/plain"))
        self.assertIn("done", log.text)
        self.assertIn("ETag", log.headers)

        # Output names are validated: no traversal, no unknown names.
        for name in ("..%2F..%2Fsegnode.db", "%2e%2e", ".hidden", "seg.dcm%00"):
            r = self.call("GET", f"{location}/outputs/{name}", key=alice)
            self.assertIn(r.status_code, (400, 404), name)
            self.assertNotIn(b"SQLite", r.content)
        self.assertProblem(self.call("GET", f"{location}/outputs/..%2F..%2Fsegnode.db",
                                     key=alice), 400, "invalid output name")
        self.assertProblem(self.call("GET", f"{location}/outputs/labels.nii.gz", key=alice),
                           404, "has no output 'labels.nii.gz'")
        raw = raw_request(self.port, (f"GET {location}/outputs/../../../segnode.db HTTP/1.1\r\n"
                                      f"Host: x\r\nAPI_KEY: {alice}\r\nConnection: close\r\n"
                                      "\r\n").encode())
        self.assertTrue(raw.startswith(b"HTTP/1.1 404"), raw[:200])
        self.assertNotIn(b"SQLite", raw)

        # Series and system views.
        series_list = self.call("GET", "/api/v1/series", key=reader).json()
        self.assertEqual([s["uid"] for s in series_list["items"]], [uid])
        self.assertIsNone(series_list["next_cursor"])
        s = self.call("GET", f"/api/v1/series/{uid}", key=bob).json()
        self.assertEqual(s["instance_count"], 12)
        self.assertEqual(s["jobs"], [])  # bob sees none of alice's jobs
        s = self.call("GET", f"/api/v1/series/{uid}", key=reader).json()
        self.assertEqual([j["id"] for j in s["jobs"]], [job_id])
        system = self.call("GET", "/api/v1/system", key=reader).json()
        self.assertEqual(system["counts"]["instances"], 12)
        self.assertEqual(system["dicom"]["port"], node.port)

        # /metrics reflects what happened.
        text = self.call("GET", "/metrics").text
        self.assertEqual(metric(text, "segnode_instances_received_total"), 12)
        self.assertEqual(metric(text, "segnode_jobs", {"state": "done"}), 1)
        self.assertEqual(metric(text, "segnode_jobs", {"state": "queued"}), 0)
        self.assertEqual(metric(text, "segnode_job_queue_depth"), 0)
        self.assertGreaterEqual(metric(text, "segnode_associations_total"), 1)
        self.assertEqual(metric(text, "segnode_http_requests_total",
                                {"route": "/api/v1/jobs", "status": "202"}), 1)
        self.assertEqual(metric(text, "segnode_http_requests_total",
                                {"route": "/api/v1/jobs/{id}/outputs/{name}", "status": "304"}),
                         1)
        self.assertEqual(metric(text, "segnode_job_duration_seconds_count", {"algorithm": "body"}),
                         1)
        self.assertEqual(metric(text, "segnode_job_duration_seconds_bucket",
                                {"algorithm": "body", "le": "+Inf"}), 1)
        self.assertGreater(metric(text, "segnode_disk_free_bytes"), 0)
        self.assertGreater(metric(text, "segnode_uptime_seconds"), 0)
        self.assertEqual(metric(text, "segnode_build_info", {"version": system["version"]}), 1)

    def test_complete_a_series_now(self):
        node = self.http_node(series={"quiet_period_s": 600})
        alice = self.add_key(node, "alice", "submit")
        reader = self.add_key(node, "reader", "read")
        series = self.series(slices=4)
        self.assertProcOk(node.storescu(series["files"]), "storescu")
        uid = series["series_uid"]
        self.assertEqual(node.scalar("SELECT state FROM series"), "receiving")
        self.assertProblem(self.call("POST", f"/api/v1/series/{uid}/complete", key=reader), 403)
        r = self.call("POST", f"/api/v1/series/{uid}/complete", key=alice)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["state"], "complete")
        node.wait_for(lambda: node.scalar("SELECT state FROM series") == "routed", 10,
                      what="the completed series routed (no rules: to nothing)")
        self.assertProblem(self.call("POST", f"/api/v1/series/{uid}/complete", key=alice), 409,
                           "not receiving")
        self.assertProblem(self.call("POST", "/api/v1/series/9.9.9/complete", key=alice), 404)

    def test_paging_and_filters(self):
        node = self.http_node()
        alice = self.add_key(node, "alice", "submit")
        series = self.series(slices=6)
        self.assertProcOk(node.storescu(series["files"]), "storescu")
        uid = series["series_uid"]
        # Queue jobs that cannot run yet: the runner picks them up, so cancel right away.
        ids = []
        for algorithm in ("body", "threshold", "body", "otsu", "body"):
            r = self.call("POST", "/api/v1/jobs", key=alice,
                          json={"series_uid": uid, "algorithm": algorithm})
            self.assertEqual(r.status_code, 202, r.text)
            ids.append(r.json()["id"])
        pages = []
        cursor = None
        while True:
            path = "/api/v1/jobs?limit=2" + (f"&cursor={cursor}" if cursor else "")
            page = self.call("GET", path, key=alice).json()
            pages.append([j["id"] for j in page["items"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        self.assertEqual(pages, [ids[::-1][0:2], ids[::-1][2:4], ids[::-1][4:]])
        # The admin CLI on the remote node prints what the local command prints.
        import subprocess
        from harness import SEGNODE_BIN

        def remote(*args, key=alice, extra_env=None):
            env = {k: v for k, v in os.environ.items()
                   if k not in ("SEGNODE_API_KEY", "SEGNODE_SERVER", "SEGNODE_CONFIG")}
            if key is not None:
                env["SEGNODE_API_KEY"] = key
            env.update(extra_env or {})
            return subprocess.run([str(SEGNODE_BIN), "--server", self.url, *args],
                                  capture_output=True, text=True, timeout=60, env=env)
        node.wait_for(lambda: node.scalar("SELECT count(*) FROM jobs WHERE state NOT IN "
                                          "('done', 'failed', 'cancelled')") == 0, 120,
                      what="every job finished")
        local = node.cli("job", "list")
        self.assertProcOk(local, "job list")
        over_http = remote("job", "list")
        self.assertProcOk(over_http, "job list --server")
        self.assertEqual(over_http.stdout, local.stdout)
        self.assertEqual(remote("job", "list", "--limit", "2").stdout.splitlines(),
                         local.stdout.splitlines()[:3])
        shown = remote("job", "show", str(ids[0]))
        self.assertProcOk(shown, "job show --server")
        self.assertIn(f"job {ids[0]}\n", shown.stdout)
        self.assertIn("owner:       alice", shown.stdout)
        self.assertIn("timeline:", shown.stdout)
        for verb, why in (("cancel", "cannot be cancelled"),
                          ("retry", "only failed or cancelled jobs can be retried")):
            refused = remote("job", verb, str(ids[1]))
            self.assertEqual(refused.returncode, 1, refused.stderr)
            self.assertIn(why, refused.stderr)
            self.assertEqual(refused.stderr, node.cli("job", verb, str(ids[1])).stderr)
        keyfile = self.tmp / "key.txt"
        keyfile.write_text(alice + "\n")
        via_file = subprocess.run([str(SEGNODE_BIN), "--server", self.url, "--key-file",
                                   str(keyfile), "job", "show", str(ids[1])],
                                  capture_output=True, text=True, timeout=60,
                                  env={k: v for k, v in os.environ.items()
                                       if k != "SEGNODE_API_KEY"})
        self.assertProcOk(via_file, "job show --key-file")
        self.assertIn("state:       done", via_file.stdout)
        nokey = remote("job", "list", key=None)
        self.assertEqual(nokey.returncode, 2)
        self.assertIn("SEGNODE_API_KEY", nokey.stderr)
        bad = remote("job", "list", key="snk_00000000_" + "0" * 64)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("unknown API key", bad.stderr)

        bodies = self.call("GET", "/api/v1/jobs?algorithm=body", key=alice).json()["items"]
        self.assertEqual([j["id"] for j in bodies], [ids[4], ids[2], ids[0]])
        self.assertProblem(self.call("GET", "/api/v1/jobs?cursor=abc", key=alice), 400,
                           "cursor")


class BadInputAndLimits(HttpTestCase):
    def test_malformed_and_wrongly_typed_bodies(self):
        node = self.http_node()
        alice = self.add_key(node, "alice", "submit")
        post = lambda data: self.call("POST", "/api/v1/jobs", key=alice, data=data,
                                      headers={"Content-Type": "application/json"})
        body = self.assertProblem(post('{"series_uid": "1.2", "algorithm": "body",}'), 400,
                                  "malformed JSON")
        self.assertIn("line 1, column 43", body["detail"])
        self.assertProblem(post(""), 400, "malformed JSON")
        self.assertProblem(post("[1, 2]"), 400, "must be a JSON object")
        self.assertProblem(post('{"series_uid": 12, "algorithm": "body"}'), 400,
                           "'series_uid' must be a string, not number")
        self.assertProblem(post('{"algorithm": "body"}'), 400, "missing field 'series_uid'")
        self.assertProblem(post('{"series_uid": "1.2", "algorithm": "body", "settings": [1]}'),
                           400, "'settings' must be an object")
        self.assertProblem(post('{"series_uid": "1.2", "algorithm": "body", '
                                '"settings": {"min_hu": [1]}}'), 422, "settings.min_hu")
        self.assertProblem(post('{"series_uid": "1.2", "algorithm": "body", "outputs": "seg"}'),
                           400, "'outputs' must be an array")
        self.assertProblem(post('{"series_uid": "1.2", "algorithm": "body", "colour": 1}'), 400,
                           "unknown field 'colour'")
        self.assertEqual(node.scalar("SELECT count(*) FROM jobs"), 0)

    def test_limits_body_headers_slow_and_many_clients(self):
        node = self.http_node({"max_body_bytes": 4096, "max_header_bytes": 2048,
                               "header_timeout_s": 2})
        alice = self.add_key(node, "alice", "submit")

        # A client announcing 2 GB is refused from its Content-Length, before any body.
        raw = raw_request(self.port, ("POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\n"
                                      f"API_KEY: {alice}\r\nContent-Type: application/json\r\n"
                                      "Content-Length: 2147483648\r\n\r\n{").encode())
        self.assertTrue(raw.startswith(b"HTTP/1.1 413"), raw[:300])
        self.assertIn(b"exceeds http.max_body_bytes (4096 bytes)", raw)
        # A real body over the limit, sent whole by requests.
        r = self.call("POST", "/api/v1/jobs", key=alice, data=b"x" * 10000)
        self.assertProblem(r, 413, "max_body_bytes")
        # Headers over the limit.
        r = self.call("GET", "/healthz", headers={"X-Filler": "y" * 4000})
        self.assertProblem(r, 431, "max_header_bytes")

        # A slow client that never finishes its headers is cut off; others are served.
        slow = socket.create_connection((LOOPBACK, self.port), timeout=10)
        slow.sendall(b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        self.assertEqual(self.call("GET", "/healthz").status_code, 200)
        self.assertEqual(self.call("GET", "/api/v1/jobs", key=alice).status_code, 200)
        self.assertEqual(slow.recv(1024), b"")  # closed by the server
        elapsed = time.monotonic() - started
        self.assertGreater(elapsed, 1.0)
        self.assertLess(elapsed, 6.0)
        slow.close()

        # Many concurrent clients.
        results = []
        lock = threading.Lock()

        def client(i):
            with requests.Session() as s:
                for _ in range(5):
                    path = "/healthz" if i % 2 else "/api/v1/jobs?limit=5"
                    r = s.get(self.url + path, headers=auth(alice), timeout=30)
                    with lock:
                        results.append(r.status_code)
        threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(results), 250)
        self.assertEqual(set(results), {200})
        # DICOM keeps working meanwhile.
        self.assertEqual(node.echo().returncode, 0)

        text = self.call("GET", "/metrics").text
        self.assertGreaterEqual(metric(text, "segnode_http_header_timeouts_total"), 1)
        self.assertEqual(metric(text, "segnode_http_requests_total",
                                {"route": "(body limit)", "status": "413"}), 2)
        self.assertEqual(metric(text, "segnode_http_requests_total",
                                {"route": "(header limit)", "status": "431"}), 1)
        self.assertEqual(metric(text, "segnode_http_requests_total",
                                {"route": "/healthz", "status": "200"}), 126)

    def test_max_connections(self):
        node = self.http_node({"max_connections": 2, "header_timeout_s": 30})
        held = [socket.create_connection((LOOPBACK, self.port), timeout=10) for _ in range(2)]
        time.sleep(0.3)
        raw = raw_request(self.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(raw.startswith(b"HTTP/1.1 503"), raw[:200])
        self.assertIn(b"http.max_connections", raw)
        for s in held:
            s.close()
        time.sleep(0.3)
        self.assertEqual(self.call("GET", "/healthz").status_code, 200)
        text = self.call("GET", "/metrics").text
        self.assertEqual(metric(text, "segnode_http_connections_refused_total"), 1)

    def test_metrics_key_requirement_and_disabled_api(self):
        node = self.http_node({"metrics_require_key": True})
        reader = self.add_key(node, "reader", "read")
        self.assertProblem(self.call("GET", "/metrics"), 401)
        self.assertEqual(self.call("GET", "/metrics", key=reader).status_code, 200)
        self.assertStopsCleanly(node)

        off = self.node({"http": {"enabled": False}}, name="off")
        port = off.config["http"]["port"]
        with self.assertRaises(requests.ConnectionError):
            requests.get(f"http://{LOOPBACK}:{port}/healthz", timeout=5)
        self.assertIn("HTTP API disabled", off.log_text())

    def make_tls(self):
        """A CA and a certificate for 127.0.0.1 signed by it, made with openssl."""
        import subprocess
        d = self.tmp / "tls"
        d.mkdir()

        def ssl(*args):
            proc = subprocess.run(["openssl", *args], cwd=d, capture_output=True, text=True,
                                  timeout=60)
            self.assertEqual(proc.returncode, 0, proc.stderr)
        ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "2", "-subj", "/CN=segnode test CA")
        ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr",
            "-subj", "/CN=127.0.0.1")
        (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
        ssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "node.pem", "-days", "2", "-extfile", "ext.cnf")
        ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out",
            "other.pem", "-days", "2", "-subj", "/CN=another CA")
        return d

    def test_https_with_a_ca_made_by_openssl(self):
        d = self.make_tls()
        node = self.node({"http": {"tls": {"cert_file": str(d / "node.pem"),
                                           "key_file": str(d / "node.key")}},
                          "retention": {"min_free_mb": 0}}, name="tls")
        port = node.config["http"]["port"]
        reader = self.add_key(node, "reader", "read")
        base = f"https://{LOOPBACK}:{port}"
        self.assertIn(f"HTTP API on https://{LOOPBACK}:{port}/", node.log_text())
        r = requests.get(base + "/readyz", verify=str(d / "ca.pem"), timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        with requests.Session() as s:  # keep-alive over TLS
            for _ in range(3):
                r = s.get(base + "/api/v1/system", headers=auth(reader),
                          verify=str(d / "ca.pem"), timeout=10)
                self.assertEqual(r.status_code, 200, r.text)
        r = requests.get(base + "/api/v1/system", verify=str(d / "ca.pem"), timeout=10)
        self.assertEqual(r.status_code, 401)
        with self.assertRaises(requests.exceptions.SSLError):
            requests.get(base + "/healthz", verify=str(d / "other.pem"), timeout=10)
        with self.assertRaises(requests.ConnectionError):
            requests.get(f"http://{LOOPBACK}:{port}/healthz", timeout=10)
        # The admin CLI over HTTPS, trusting the test CA only.
        import subprocess
        from harness import SEGNODE_BIN
        env = dict(os.environ, SEGNODE_API_KEY=reader, SEGNODE_CA_FILE=str(d / "ca.pem"))
        listed = subprocess.run([str(SEGNODE_BIN), "--server", base, "job", "list"],
                                capture_output=True, text=True, timeout=60, env=env)
        self.assertProcOk(listed, "job list --server https://...")
        self.assertIn("ID ", listed.stdout)
        env["SEGNODE_CA_FILE"] = str(d / "other.pem")
        untrusted = subprocess.run([str(SEGNODE_BIN), "--server", base, "job", "list"],
                                   capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(untrusted.returncode, 1)
        self.assertIn("TLS handshake", untrusted.stderr)
        # The plain-HTTP attempt did not disturb the server.
        r = requests.get(base + "/healthz", verify=str(d / "ca.pem"), timeout=10)
        self.assertEqual(r.status_code, 200)
        self.assertStopsCleanly(node)

        # A key that does not belong to the certificate stops start-up with the reason.
        bad = self.node({"http": {"tls": {"cert_file": str(d / "node.pem"),
                                          "key_file": str(d / "other.key")}}},
                        name="badtls", start=False)
        bad.write_config()
        import subprocess
        from harness import SEGNODE_BIN
        run = subprocess.run([str(SEGNODE_BIN), "serve", "--config", str(bad.config_path)],
                             capture_output=True, text=True, timeout=30)
        self.assertNotEqual(run.returncode, 0)
        self.assertRegex(run.stdout + run.stderr,
                         r"http\.tls\.key_file: cannot use '.*other\.key' as a PEM private key: "
                         r"key values mismatch|does not belong to the certificate")

    def test_readyz_and_refusal_metrics_below_the_disk_guard(self):
        node = self.http_node(retention={"min_free_mb": 104857600})  # 100 TiB: always below
        self.assertEqual(self.call("GET", "/healthz").status_code, 200)
        body = self.assertProblem(self.call("GET", "/readyz"), 503, "not ready")
        self.assertIn("below retention.min_free_mb", body["detail"])
        series = self.series(slices=3)
        node.storescu(series["files"])  # refused: out of resources (storescu stops there)
        refused = node.scalar("SELECT count(*) FROM receive_events WHERE kind = 'refused'")
        self.assertGreaterEqual(refused, 1)
        text = self.call("GET", "/metrics").text
        self.assertEqual(metric(text, "segnode_instances_refused_total",
                                {"status": "0xA700", "reason": "out_of_resources"}), refused)
        self.assertEqual(metric(text, "segnode_instances_received_total"), 0)

    def test_port_in_use_stops_start_up(self):
        blocker = socket.socket()
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind((LOOPBACK, 0))
        blocker.listen(1)
        self.addCleanup(blocker.close)
        node = self.node({"http": {"port": blocker.getsockname()[1]}}, start=False)
        node.write_config()
        proc = node.cli("config", "check")
        self.assertProcOk(proc, "config check")
        import subprocess
        from harness import SEGNODE_BIN
        run = subprocess.run([str(SEGNODE_BIN), "serve", "--config", str(node.config_path)],
                             capture_output=True, text=True, timeout=30)
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("HTTP API: cannot listen on 127.0.0.1:", run.stdout + run.stderr)


if __name__ == "__main__":
    unittest.main()
