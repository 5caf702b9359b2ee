#!/usr/bin/python3
"""C-STORE throughput with and without HTTP API load, on 127.0.0.1.

The issue's target: C-STORE throughput while the HTTP API is under load is >= 0.9x of
without. One `segnode serve` (fsync on, the built-in defaults) receives a fresh phantom series
(new UIDs each round) by storescu, alternately idle and while --clients threads send
`GET /api/v1/jobs?limit=50`, `GET /api/v1/series?limit=50` and `GET /healthz` with a read key
as fast as they can (keep-alive). Prints MB/s per round, the medians, the ratio and the HTTP
requests/s reached during the loaded rounds. Needs python3-requests, storescu and the
segnode/segnode-phantom binaries (SEGNODE_BIN, SEGNODE_PHANTOM or build/). Run it on an idle
machine: other work on the same cores moves the figures more than the API does.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from harness import Node, generate_series, require_tools  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds per condition (default 3)")
    ap.add_argument("--slices", type=int, default=120, help="512x512 slices per series")
    ap.add_argument("--clients", type=int, default=8, help="HTTP client threads (default 8)")
    args = ap.parse_args()
    require_tools()
    tmp = Path(tempfile.mkdtemp(prefix="segnode-http-bench-"))
    node = Node(tmp, {"retention": {"min_free_mb": 0}, "series": {"quiet_period_s": 3600}})
    try:
        node.start()
        key = node.cli("key", "add", "bench", "--role", "read").stdout.split()[0]
        results = {"idle": [], "load": []}
        http_rates = []
        for r in range(args.rounds):
            for condition in ("idle", "load"):
                series = generate_series(tmp / f"s-{r}-{condition}", rows=512, cols=512,
                                         slices=args.slices)
                size = sum(Path(f).stat().st_size for f in series["files"])
                stop = threading.Event()
                counts = []

                def client():
                    n = 0
                    paths = ["/api/v1/jobs?limit=50", "/api/v1/series?limit=50", "/healthz"]
                    with requests.Session() as s:
                        while not stop.is_set():
                            s.get(node.http_url + paths[n % 3],
                                  headers={"Authorization": f"Bearer {key}"}, timeout=30)
                            n += 1
                    counts.append(n)
                threads = []
                if condition == "load":
                    threads = [threading.Thread(target=client) for _ in range(args.clients)]
                    for t in threads:
                        t.start()
                    time.sleep(0.5)
                t0 = time.monotonic()
                proc = node.storescu(series["files"], env=dict(os.environ, TCP_NODELAY="1"))
                elapsed = time.monotonic() - t0
                stop.set()
                for t in threads:
                    t.join()
                if proc.returncode != 0:
                    raise SystemExit(f"storescu failed: {proc.stderr}")
                mbps = size / elapsed / 1e6
                results[condition].append(mbps)
                if condition == "load":
                    http_rates.append(sum(counts) / (elapsed + 0.5))
                print(f"round {r + 1} {condition:4}: {len(series['files'])} instances, "
                      f"{size / 1e6:.0f} MB in {elapsed:.2f} s = {mbps:.1f} MB/s"
                      + (f", HTTP {http_rates[-1]:.0f} req/s" if condition == "load" else ""),
                      flush=True)
                shutil.rmtree(tmp / f"s-{r}-{condition}", ignore_errors=True)
        idle = statistics.median(results["idle"])
        load = statistics.median(results["load"])
        print(f"median idle {idle:.1f} MB/s, under HTTP load {load:.1f} MB/s: "
              f"ratio {load / idle:.2f} (target >= 0.90); HTTP median "
              f"{statistics.median(http_rates):.0f} req/s with {args.clients} clients")
    finally:
        if node.running():
            node.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
