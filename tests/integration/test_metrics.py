"""/metrics read by an independent parser (python3-prometheus-client's text parser), each
value checked against what the test did to the node: instances received and refused by
status and reason, associations (total, rejected, active), series by state, jobs by state, the
job duration histogram per algorithm, send attempts and failures per peer, failed
authentications, HTTP requests by route, keys, queue depth, disk, uptime, build info."""

import secrets
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from harness import (CT_IMAGE_STORAGE, LOOPBACK, SECONDARY_CAPTURE, SegnodeTestCase,
                     StoreScpPeer, free_port, rewrite)


def scrape(url):
    """{(sample name, frozenset(labels)): value} and {family name: type}."""
    r = requests.get(url + "/metrics", timeout=30)
    r.raise_for_status()
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
    samples, types = {}, {}
    for family in text_string_to_metric_families(r.text):
        types[family.name] = family.type
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = s.value
    return samples, types


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def label_sets(samples, name):
    return {dict(k[1]).__repr__() for k in samples if k[0] == name}


class Metrics(SegnodeTestCase):
    def test_values_match_what_the_test_did(self):
        dest = StoreScpPeer(self.tmp)
        self.addCleanup(dest.stop)
        dest.start()
        down = {"name": "down", "ae_title": "DOWNAE", "host": LOOPBACK, "port": free_port()}
        started = time.monotonic()
        node = self.node({
            "series": {"quiet_period_s": 4},
            "jobs": {"poll_interval_ms": 100},
            "send": {"initial_delay_s": 0, "max_delay_s": 1, "attempts": 2},
            "retention": {"min_free_mb": 0},
            "peers": [dest.peer_entry(), down],
            "rules": [{"name": "ct-body", "modality": "CT", "algorithm": "body",
                       "outputs": ["seg"], "destination": "dest"}],
        })
        url = node.http_url
        keys = {}
        for name, role in (("reader", "read"), ("alice", "submit"), ("old", "read")):
            proc = node.cli("key", "add", name, "--role", role)
            self.assertProcOk(proc, "key add")
            keys[name] = proc.stdout.split()[0]
        self.assertProcOk(node.cli("key", "revoke", "old"), "key revoke")
        # Associations before the test's own: the harness's readiness echo(es).
        base_assocs = node.scalar("SELECT count(*) FROM associations")

        # DICOM: a CT series routed by the rule (body -> dest), an MR series no rule takes.
        ct = self.series("ct", slices=6)
        self.assertProcOk(node.storescu(ct["files"]), "storescu CT")
        mr = self.series("mr", slices=3, modality="MR")
        self.assertProcOk(node.storescu(mr["files"]), "storescu MR")
        # Refusals: one SOP class smuggled through a CT context (0x0122), two invalid UIDs
        # (0xC000), each on its own association.
        sc = rewrite(ct["files"][0], self.tmp / "sc.dcm", SOPClassUID=SECONDARY_CAPTURE,
                     SOPInstanceUID=ct["sop_instance_uids"][0] + ".7")
        result = node.test_store([sc], aet="SMUGGLER", context_sop_class=CT_IMAGE_STORAGE,
                                 command_sop_class=SECONDARY_CAPTURE)
        self.assertEqual([l[1] for l in result.lines], ["0122"], result)
        letters = rewrite(mr["files"][0], self.tmp / "letters.dcm", SOPInstanceUID="1.2.abc")
        bad_series = rewrite(mr["files"][1], self.tmp / "bad.dcm",
                             SeriesInstanceUID="1.2.840..5", SOPInstanceUID="1.2.3.4.5.6.7")
        result = node.test_store([letters, bad_series], aet="BADUIDS")
        self.assertEqual([l[1] for l in result.lines], ["C000", "C000"], result)
        # One association rejected: an unknown called AE title.
        self.assertNotEqual(node.echo(aec="NOTSEGNODE").returncode, 0)

        node.wait_for(lambda: node.scalar("SELECT count(*) FROM series WHERE state = 'routed'")
                      == 2, 60, what="both series routed")
        node.wait_for(lambda: node.scalar("SELECT state FROM jobs") == "done", 120,
                      what="the rule's job done")

        # Jobs over HTTP: otsu kept on the node (done), threshold to a peer that is down
        # (2 attempts, then failed).
        def submit(body):
            r = requests.post(url + "/api/v1/jobs", json=body, timeout=30,
                              headers={"Authorization": f"Bearer {keys['alice']}"})
            self.assertEqual(r.status_code, 202, r.text)
            return r.json()["id"]
        kept = submit({"series_uid": ct["series_uid"], "algorithm": "otsu", "destination": "none"})
        failing = submit({"series_uid": ct["series_uid"], "algorithm": "threshold",
                          "destination": "down"})
        node.wait_for(lambda: node.scalar("SELECT count(*) FROM jobs WHERE id IN (?, ?) AND "
                                          "state IN ('done', 'failed')", (kept, failing)) == 2,
                      120, what="the HTTP jobs finished")
        self.assertEqual(node.scalar("SELECT state FROM jobs WHERE id = ?", (kept,)), "done")
        self.assertEqual(node.scalar("SELECT state FROM jobs WHERE id = ?", (failing,)), "failed")

        # A third series, still within its quiet period when scraped.
        late = self.series("late", slices=2, modality="MR")
        self.assertProcOk(node.storescu(late["files"]), "storescu late")

        # HTTP: 5 reads of /api/v1/system; failed authentications: 2 unknown, 1 revoked,
        # 1 malformed (a request without a key is not counted).
        for _ in range(5):
            r = requests.get(url + "/api/v1/system", timeout=10,
                             headers={"Authorization": f"Bearer {keys['reader']}"})
            self.assertEqual(r.status_code, 200)
        unknown = f"snk_{secrets.token_hex(4)}_{secrets.token_hex(32)}"
        for key in (unknown, unknown, keys["old"], "garbage"):
            r = requests.get(url + "/api/v1/jobs", headers={"API_KEY": key}, timeout=10)
            self.assertEqual(r.status_code, 401)
        self.assertEqual(requests.get(url + "/api/v1/jobs", timeout=10).status_code, 401)

        samples, types = scrape(url)
        elapsed = time.monotonic() - started
        v = lambda name, **labels: value(samples, name, **labels)  # noqa: E731

        # Types as the exposition declares them (the parser strips _total from counters).
        for family, kind in (("segnode_instances_received", "counter"),
                             ("segnode_instances_refused", "counter"),
                             ("segnode_associations", "counter"),
                             ("segnode_associations_active", "gauge"),
                             ("segnode_series", "gauge"), ("segnode_jobs", "gauge"),
                             ("segnode_job_duration_seconds", "histogram"),
                             ("segnode_send_attempts", "counter"),
                             ("segnode_send_failures", "counter"),
                             ("segnode_http_auth_failures", "counter"),
                             ("segnode_http_requests", "counter")):
            self.assertEqual(types.get(family), kind, family)

        self.assertEqual(v("segnode_instances_received_total"), 6 + 3 + 2)
        self.assertEqual(v("segnode_instances_refused_total", status="0x0122",
                           reason="sop_class_not_supported"), 1)
        self.assertEqual(v("segnode_instances_refused_total", status="0xC000",
                           reason="cannot_understand"), 2)
        self.assertEqual(len(label_sets(samples, "segnode_instances_refused_total")), 2)
        # The invalid UIDs are quarantined; the unsupported SOP class is read and discarded.
        self.assertEqual(v("segnode_instances_quarantined_total"), 2)
        # storescu x3, segnode-test-store x2, the rejected echo.
        self.assertEqual(v("segnode_associations_total"), base_assocs + 6)
        self.assertEqual(v("segnode_associations_rejected_total"), 1)
        self.assertEqual(v("segnode_associations_active"), 0)

        self.assertEqual(v("segnode_series", state="routed"), 2)
        self.assertEqual(v("segnode_series", state="receiving"), 1)
        self.assertEqual(v("segnode_series", state="complete"), 0)

        self.assertEqual(v("segnode_jobs", state="done"), 2)
        self.assertEqual(v("segnode_jobs", state="failed"), 1)
        for state in ("queued", "running", "sending", "cancelled"):
            self.assertEqual(v("segnode_jobs", state=state), 0, state)
        self.assertEqual(v("segnode_job_queue_depth"), 0)
        self.assertEqual(v("segnode_job_oldest_queued_age_seconds"), 0)

        # Histogram of done jobs: one body, one otsu; the failed threshold job is not in it.
        for algorithm in ("body", "otsu"):
            self.assertEqual(v("segnode_job_duration_seconds_count", algorithm=algorithm), 1)
            total = v("segnode_job_duration_seconds_sum", algorithm=algorithm)
            self.assertGreaterEqual(total, 0)
            self.assertLess(total, elapsed)
            buckets = sorted((float(dict(k[1])["le"]), val) for k, val in samples.items()
                             if k[0] == "segnode_job_duration_seconds_bucket"
                             and dict(k[1])["algorithm"] == algorithm)
            self.assertEqual(buckets[-1], (float("inf"), 1))
            counts = [c for _, c in buckets]
            self.assertEqual(counts, sorted(counts), f"{algorithm}: buckets not cumulative")
            self.assertTrue(all(c == 1 for le, c in buckets if le >= max(total, 1)))
        self.assertIsNone(v("segnode_job_duration_seconds_count", algorithm="threshold"))

        self.assertEqual(v("segnode_send_attempts_total", peer="dest", ae_title="DEST"), 1)
        self.assertEqual(v("segnode_send_attempts_total", peer="down", ae_title="DOWNAE"), 2)
        self.assertEqual(v("segnode_send_failures_total", peer="down", ae_title="DOWNAE"), 2)
        self.assertIsNone(v("segnode_send_failures_total", peer="dest", ae_title="DEST"))

        self.assertEqual(v("segnode_http_auth_failures_total"), 4)
        self.assertEqual(v("segnode_http_requests_total", route="/api/v1/system", status="200"), 5)
        self.assertEqual(v("segnode_http_requests_total", route="/api/v1/jobs", status="401"), 5)
        self.assertEqual(v("segnode_http_requests_total", route="/api/v1/jobs", status="202"), 2)
        self.assertEqual(v("segnode_api_keys_active"), 2)

        system = requests.get(url + "/api/v1/system", timeout=10,
                              headers={"Authorization": f"Bearer {keys['reader']}"}).json()
        self.assertEqual(v("segnode_build_info", version=system["version"]), 1)
        self.assertGreater(v("segnode_uptime_seconds"), 0)
        self.assertLess(v("segnode_uptime_seconds"), elapsed + 1)
        free = system["disk"]["free_bytes"]
        self.assertLess(abs(v("segnode_disk_free_bytes") - free), max(free * 0.05, 64 << 20))

        # A second scrape counts what happened since: one more read, one more failure.
        requests.get(url + "/api/v1/system", timeout=10,
                     headers={"Authorization": f"Bearer {keys['reader']}"})
        requests.get(url + "/api/v1/system", timeout=10, headers={"API_KEY": unknown})
        again, _ = scrape(url)
        self.assertEqual(value(again, "segnode_http_requests_total", route="/api/v1/system",
                               status="200"), 5 + 1 + 1)
        self.assertEqual(value(again, "segnode_http_auth_failures_total"), 5)
        self.assertEqual(value(again, "segnode_http_requests_total", route="/metrics",
                               status="200"), 1)


if __name__ == "__main__":
    import unittest
    unittest.main()
