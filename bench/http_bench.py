#!/usr/bin/python3
"""HTTP API speed against Orthanc 1.10's REST API, and C-STORE throughput under that load.

One run, on 127.0.0.1, side by side:
  1. `wrk -t2 -c32 --latency` for --seconds against segnode `GET /healthz` and
     `GET /api/v1/jobs?limit=50` (read key; --jobs done jobs in the table), and against
     Orthanc's `GET /system`, `GET /jobs` (the ids only) and `GET /jobs?expand` (each job in
     full, like segnode's listing), --jobs asynchronous archive jobs made first;
     requests/s, p50 and p99 latency, and the ratios segnode / Orthanc
     (targets: >= 2x Orthanc's requests/s, p99 <= 20 ms).
  2. storescu of a fresh 512 x 512 phantom series (--slices) into segnode, alternately with
     the API idle and while wrk (32 connections) loads `GET /api/v1/jobs?limit=50`; MB/s
     per round, medians, ratio (target >= 0.9).
Needs wrk, storescu, Orthanc (/usr/sbin/Orthanc), python3-requests and the segnode and
segnode-phantom binaries (SEGNODE_BIN, SEGNODE_PHANTOM or build/). wrk runs on the same cores
as the servers (2 here), so the load generator's own CPU is part of every figure; --wrk-nice
runs it at a lower priority (segnode's HTTP threads run at nice +10, Orthanc at 0).
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from harness import LOOPBACK, Node, free_port, generate_series, require_tools  # noqa: E402

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
WRK = shutil.which("wrk") or "/usr/bin/wrk"


def wrk(url, seconds, connections=32, threads=2, headers=(), nice=0):
    cmd = ["nice", "-n", str(nice)] if nice else []
    cmd += [WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout",
            "5s"]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise SystemExit(f"wrk failed: {out.stderr}")
    return parse_wrk(out.stdout)


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def parse_wrk(text):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: (.*)", text)
    return {"rps": rps, "p50": p50, "p99": p99, "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else ""}


class Orthanc:
    """Orthanc 1.10 on loopback ports with a temporary config, storage and no verbose log."""

    def __init__(self, base):
        self.base = Path(base)
        self.http_port = free_port()
        self.dicom_port = free_port()
        config = {"Name": "segnode-bench", "StorageDirectory": str(self.base / "storage"),
                  "IndexDirectory": str(self.base / "storage"), "HttpPort": self.http_port,
                  "DicomPort": self.dicom_port, "RemoteAccessAllowed": False,
                  "AuthenticationEnabled": False, "SaveJobs": False, "WebDavEnabled": False,
                  "OrthancExplorerEnabled": False, "Plugins": [], "JobsHistorySize": 1000}
        (self.base / "orthanc.json").write_text(json.dumps(config))
        self.log = open(self.base / "orthanc.log", "ab")
        self.proc = subprocess.Popen([ORTHANC, str(self.base / "orthanc.json")], stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=self.base)
        self.url = f"http://{LOOPBACK}:{self.http_port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/system", timeout=2).ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise SystemExit("Orthanc did not start; see " + str(self.base / "orthanc.log"))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def segnode_with_jobs(tmp, n_jobs):
    node = Node(tmp, {"retention": {"min_free_mb": 0}, "series": {"quiet_period_s": 3600},
                      "log": {"level": "warn"}, "jobs": {"poll_interval_ms": 100}})
    node.start()
    read = node.cli("key", "add", "bench", "--role", "read").stdout.split()[0]
    submit = node.cli("key", "add", "submitter", "--role", "submit").stdout.split()[0]
    series = generate_series(tmp / "small", slices=4)
    if node.storescu(series["files"]).returncode != 0:
        raise SystemExit("storescu of the small series failed")
    for _ in range(n_jobs):
        r = requests.post(node.http_url + "/api/v1/jobs", timeout=30,
                          headers={"Authorization": f"Bearer {submit}"},
                          json={"series_uid": series["series_uid"], "algorithm": "otsu",
                                "destination": "none"})
        r.raise_for_status()
    deadline = time.monotonic() + 300
    while node.scalar("SELECT count(*) FROM jobs WHERE state = 'done'") < n_jobs:
        if time.monotonic() > deadline:
            raise SystemExit("the bench's jobs did not finish")
        time.sleep(0.5)
    return node, read, series


def orthanc_with_jobs(tmp, files, n_jobs):
    orthanc = Orthanc(tmp)
    study = None
    for f in files:
        r = requests.post(orthanc.url + "/instances", data=Path(f).read_bytes(), timeout=30)
        r.raise_for_status()
        study = r.json()["ParentStudy"]
    for _ in range(n_jobs):
        r = requests.post(f"{orthanc.url}/studies/{study}/archive",
                          json={"Asynchronous": True}, timeout=30)
        r.raise_for_status()
    deadline = time.monotonic() + 120
    while True:
        states = [requests.get(f"{orthanc.url}/jobs/{j}", timeout=10).json()["State"]
                  for j in requests.get(orthanc.url + "/jobs", timeout=10).json()]
        if all(s in ("Success", "Failure") for s in states) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return orthanc, len(states)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10, help="wrk duration per target")
    ap.add_argument("--jobs", type=int, default=60, help="jobs in each server's table")
    ap.add_argument("--rounds", type=int, default=3, help="C-STORE rounds per condition")
    ap.add_argument("--slices", type=int, default=100, help="512x512 slices per C-STORE round")
    ap.add_argument("--wrk-nice", type=int, default=0,
                    help="nice value of wrk (default 0; segnode's HTTP threads run at +10)")
    ap.add_argument("--skip-store", action="store_true", help="only the requests/s part")
    args = ap.parse_args()
    require_tools()
    for tool in (WRK, ORTHANC):
        if not Path(tool).is_file():
            raise SystemExit(f"{tool} is needed")
    tmp = Path(tempfile.mkdtemp(prefix="segnode-http-bench-"))
    (tmp / "orthanc").mkdir()
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    node = orthanc = None
    try:
        node, key, series = segnode_with_jobs(tmp, args.jobs)
        orthanc, orthanc_jobs = orthanc_with_jobs(tmp / "orthanc", series["files"], args.jobs)
        auth = [f"Authorization: Bearer {key}"]
        runs = [
            ("segnode GET /healthz", node.http_url + "/healthz", []),
            ("Orthanc GET /system", orthanc.url + "/system", []),
            ("segnode GET /api/v1/jobs?limit=50", node.http_url + "/api/v1/jobs?limit=50", auth),
            ("Orthanc GET /jobs", orthanc.url + "/jobs", []),
            ("Orthanc GET /jobs?expand", orthanc.url + "/jobs?expand", []),
        ]
        results = {}
        print(f"== wrk -t2 -c32 -d{args.seconds}s, nice {args.wrk_nice} ({args.jobs} segnode jobs, "
              f"{orthanc_jobs} Orthanc jobs)")
        print(f"   {'target':38} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  errors")
        for name, url, headers in runs:
            r = wrk(url, args.seconds, headers=headers, nice=args.wrk_nice)
            results[name] = r
            print(f"   {name:38} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f}  "
                  f"{r['non2xx']} non-2xx {r['socket_errors']}", flush=True)
        for ours, theirs in (("segnode GET /healthz", "Orthanc GET /system"),
                             ("segnode GET /api/v1/jobs?limit=50", "Orthanc GET /jobs"),
                             ("segnode GET /api/v1/jobs?limit=50", "Orthanc GET /jobs?expand")):
            a, b = results[ours], results[theirs]
            print(f"ratio {ours} / {theirs}: {a['rps'] / b['rps']:.2f}x requests/s "
                  f"(target >= 2), segnode p99 {a['p99']:.1f} ms (target <= 20)")
        orthanc.stop()
        orthanc = None

        if args.skip_store:
            return
        print(f"== C-STORE: storescu of {args.slices} x 512 x 512 into segnode, idle vs under "
              f"wrk -c32 GET /api/v1/jobs?limit=50 (wrk nice {args.wrk_nice})")
        mbps = {"idle": [], "load": []}
        for r in range(args.rounds):
            for condition in (("idle", "load") if r % 2 == 0 else ("load", "idle")):
                s = generate_series(tmp / f"s{r}{condition}", rows=512, cols=512,
                                    slices=args.slices)
                size = sum(Path(f).stat().st_size for f in s["files"])
                load = None
                if condition == "load":
                    cmd = (["nice", "-n", str(args.wrk_nice)] if args.wrk_nice else []) + [
                        WRK, "-t2", "-c32", "-d120s", "-H", auth[0],
                        node.http_url + "/api/v1/jobs?limit=50"]
                    load = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
                    time.sleep(1.0)
                subprocess.run(["sync"], check=False)
                t0 = time.monotonic()
                proc = node.storescu(s["files"], env=dict(os.environ, TCP_NODELAY="1"),
                                     timeout=600)
                elapsed = time.monotonic() - t0
                rate = ""
                if load is not None:
                    load.send_signal(2)  # SIGINT: wrk prints its summary
                    out = load.communicate(timeout=30)[0]
                    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
                    rate = f", HTTP {float(m.group(1)):.0f} req/s" if m else ""
                if proc.returncode != 0:
                    raise SystemExit(f"storescu failed: {proc.stderr}")
                mbps[condition].append(size / elapsed / 1e6)
                print(f"   round {r + 1} {condition:4} {elapsed:6.2f} s "
                      f"{mbps[condition][-1]:6.1f} MB/s{rate}", flush=True)
                shutil.rmtree(tmp / f"s{r}{condition}", ignore_errors=True)
        idle, loaded = statistics.median(mbps["idle"]), statistics.median(mbps["load"])
        print(f"median idle {idle:.1f} MB/s, under load {loaded:.1f} MB/s: ratio "
              f"{loaded / idle:.2f} (target >= 0.90)")
    finally:
        if orthanc is not None:
            orthanc.stop()
        if node is not None and node.running():
            node.stop()
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
