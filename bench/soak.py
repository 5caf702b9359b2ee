#!/usr/bin/python3
"""Soak: 4 DICOM senders and the jobs they cause, continuously; the node's resident memory and
open file descriptors must stay flat.

What runs, all on 127.0.0.1: one `segnode serve` with a rule that segments every series with
the built-in `body` algorithm and sends SEG + RTSTRUCT to a storescp destination; `--senders`
threads that each generate a new phantom series (new UIDs) and send it with storescu, again
and again; one thread reading /metrics and /readyz over HTTP. Every `--sample` seconds the
node's RSS, descriptor and thread counts, the series and job counts are sampled.

Verdict (with --check, exit status 1 when it fails):
  - memory: the median RSS of the last fifth of the run is at most the median of the second
    fifth (after warm-up) plus max(24 MiB, 15 %);
  - descriptors: the largest count of the last fifth is at most the largest of the second
    fifth plus 4 (associations and jobs in flight come and go);
  - every series sent got its job done after the senders stop (drained within 120 s); no job
    failed; every sender's storescu succeeded.

  soak.py --segnode build/segnode --phantom build/tests/phantom/segnode-phantom --duration 1800
CI runs it for 120 s (ctest -R soak). Standard library only.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segnode", required=True)
    ap.add_argument("--phantom", required=True)
    ap.add_argument("--duration", type=float, default=1800, help="seconds of sending")
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--slices", type=int, default=16)
    ap.add_argument("--size", type=int, default=64, help="rows = columns of the phantom")
    ap.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    ap.add_argument("--check", action="store_true", help="exit 1 unless the verdict passes")
    ap.add_argument("--json", help="write the samples and the verdict to this file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return ap.parse_args()


ARGS = parse_args()
os.environ["SEGNODE_BIN"] = str(Path(ARGS.segnode).resolve())
os.environ["SEGNODE_PHANTOM"] = str(Path(ARGS.phantom).resolve())
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from harness import Node, StoreScpPeer, generate_series  # noqa: E402  (path and env set above)


def proc_status(pid):
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return {"rss_mib": int(fields["VmRSS"].split()[0]) / 1024,
            "threads": int(fields["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


class Soak:
    def __init__(self, base):
        self.base = base
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.send_failures = []
        self.http_requests = 0
        self.http_failures = []
        self.samples = []
        self.dest = StoreScpPeer(base, ae="SOAKDEST")
        self.node = Node(base, {
            "series": {"quiet_period_s": 30, "complete_on_association_release": True},
            "jobs": {"workers": 2, "poll_interval_ms": 200},
            "retention": {"min_free_mb": 0},
            "peers": [self.dest.peer_entry()],
            "rules": [{"name": "soak", "algorithm": "body", "outputs": ["seg", "rtstruct"],
                       "destination": "dest"}],
        }, name="soak")

    def sender(self, index):
        n = 0
        while not self.stop.is_set():
            out = self.base / f"sender{index}" / str(n)
            try:
                ph = generate_series(out, rows=ARGS.size, cols=ARGS.size, slices=ARGS.slices)
                proc = self.node.storescu(ph["files"], aet=f"SOAK{index}")
                with self.lock:
                    if proc.returncode == 0:
                        self.sent += 1
                    else:
                        self.send_failures.append(proc.stderr[-500:])
            finally:
                shutil.rmtree(out, ignore_errors=True)
            n += 1

    def http_reader(self):
        while not self.stop.is_set():
            for path in ("/metrics", "/readyz", "/healthz"):
                try:
                    with urllib.request.urlopen(self.node.http_url + path, timeout=10) as r:
                        r.read()
                    with self.lock:
                        self.http_requests += 1
                except Exception as e:  # noqa: BLE001 -- every failure is reported
                    with self.lock:
                        self.http_failures.append(f"{path}: {e}")
            time.sleep(0.2)

    def sample(self, t0):
        s = proc_status(self.node.proc.pid)
        s["t"] = round(time.monotonic() - t0, 1)
        s["series"] = self.node.scalar("SELECT count(*) FROM series")
        jobs = dict(self.node.query("SELECT state, count(*) FROM jobs GROUP BY state"))
        s["jobs"] = jobs
        with self.lock:
            s["sent"] = self.sent
        # The destination's files are counted and removed (disk stays small).
        files = self.dest.files()
        s["received_objects"] = (self.samples[-1]["received_objects"] if self.samples else 0) \
            + len(files)
        for f in files:
            f.unlink(missing_ok=True)
        self.samples.append(s)
        print(f"{s['t']:7.1f} s  rss {s['rss_mib']:7.1f} MiB  fds {s['fds']:4d}  "
              f"threads {s['threads']:3d}  series sent {s['sent']:5d}  jobs {jobs}",
              flush=True)

    def run(self):
        self.dest.start()
        self.node.start()
        threads = [threading.Thread(target=self.sender, args=(i,), daemon=True)
                   for i in range(ARGS.senders)]
        threads.append(threading.Thread(target=self.http_reader, daemon=True))
        t0 = time.monotonic()
        for t in threads:
            t.start()
        try:
            while time.monotonic() - t0 < ARGS.duration:
                time.sleep(ARGS.sample)
                self.sample(t0)
        finally:
            self.stop.set()
            for t in threads:
                t.join(timeout=120)
        # Drain: every sent series is routed (its job made) and every job has ended.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            unrouted = self.node.scalar("SELECT count(*) FROM series WHERE state != 'routed'")
            pending = self.node.scalar(
                "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running', 'sending')")
            if unrouted == 0 and pending == 0:
                break
            time.sleep(0.5)
        self.sample(t0)
        final = self.samples[-1]
        stopped = self.node.stop(timeout=60)
        self.dest.stop()
        return self.verdict(final, stopped)

    def verdict(self, final, stop_status):
        n = len(self.samples)
        fifth = max(1, n // 5)
        warm = self.samples[fifth:2 * fifth] or self.samples[:1]
        last = self.samples[-fifth - 1:-1] or self.samples[-1:]
        rss_base = statistics.median(s["rss_mib"] for s in warm)
        rss_end = statistics.median(s["rss_mib"] for s in last)
        fds_base = max(s["fds"] for s in warm)
        fds_end = max(s["fds"] for s in last)
        rss_allowed = rss_base + max(24.0, 0.15 * rss_base)
        jobs = final["jobs"]
        done = jobs.get("done", 0)
        problems = []
        if rss_end > rss_allowed:
            problems.append(f"RSS grew from {rss_base:.1f} to {rss_end:.1f} MiB "
                            f"(allowed {rss_allowed:.1f})")
        if fds_end > fds_base + 4:
            problems.append(f"descriptors grew from {fds_base} to {fds_end}")
        if self.send_failures:
            problems.append(f"{len(self.send_failures)} storescu run(s) failed: "
                            f"{self.send_failures[0]}")
        if self.http_failures:
            problems.append(f"{len(self.http_failures)} HTTP request(s) failed: "
                            f"{self.http_failures[0]}")
        if jobs.get("failed", 0):
            problems.append(f"{jobs['failed']} job(s) failed")
        if done != final["series"]:
            problems.append(f"{final['series']} series but {done} job(s) done: {jobs}")
        if stop_status != 0:
            problems.append(f"segnode exit status {stop_status} after SIGTERM")
        result = {
            "duration_s": ARGS.duration, "senders": ARGS.senders, "samples": self.samples,
            "series_sent": self.sent, "jobs_done": done,
            "objects_received_at_destination": final["received_objects"],
            "http_requests": self.http_requests,
            "rss_mib": {"after_warmup": rss_base, "end": rss_end, "allowed": rss_allowed},
            "fds": {"after_warmup": fds_base, "end": fds_end},
            "problems": problems,
        }
        print(f"\nsoak {ARGS.duration:.0f} s, {ARGS.senders} senders: {self.sent} series sent, "
              f"{done} jobs done, {final['received_objects']} objects at the destination, "
              f"{self.http_requests} HTTP requests")
        print(f"RSS after warm-up {rss_base:.1f} MiB, at the end {rss_end:.1f} MiB "
              f"(max {max(s['rss_mib'] for s in self.samples):.1f}); descriptors "
              f"{fds_base} -> {fds_end}; threads at the end {final['threads']}")
        print("verdict: " + ("flat" if not problems else "; ".join(problems)))
        return result


def main():
    base = Path(tempfile.mkdtemp(prefix="segnode-soak-"))
    try:
        result = Soak(base).run()
    finally:
        if ARGS.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    if ARGS.json:
        Path(ARGS.json).write_text(json.dumps(result, indent=1))
    if ARGS.check and result["problems"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
