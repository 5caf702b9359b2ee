#!/usr/bin/python3
"""STOW-RS upload versus C-STORE into the same segnode node, side by side in one run.

A generated CT series (default 512 x 512 x 100, about 52 MB) is uploaded with curl as one
multipart/related body to POST /api/v1/studies; a second series of the same size (new UIDs) is
sent with storescu (TCP_NODELAY=1). For each: wall time, the node's CPU time (utime + stime
from /proc) and its peak RSS (VmHWM) after the transfer: the upload is streamed to disk, so
the peak must not grow with the series. Both paths fsync and index every instance.

Run: SEGNODE_BUILD_DIR=build bench/stow_bench.py [--slices N] [--rounds N]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from harness import Node, generate_series  # noqa: E402  (path set just above)


def node_cpu_s(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def node_hwm_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def multipart_file(files, path):
    boundary = f"bench-{uuid.uuid4().hex}"
    with open(path, "wb") as out:
        for f in files:
            out.write(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
            out.write(Path(f).read_bytes())
            out.write(b"\r\n")
        out.write(f"--{boundary}--\r\n".encode())
    return f'multipart/related; type="application/dicom"; boundary={boundary}'


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="segnode-stow-bench-"))
    node = Node(tmp, {"retention": {"min_free_mb": 0}, "http": {}})
    node.start()
    pid = node.proc.pid
    key = node.cli("key", "add", "bench", "--role", "submit").stdout.split()[0]
    results = {"stow": [], "cstore": []}
    try:
        for r in range(args.rounds):
            up = generate_series(tmp / f"up{r}", rows=512, cols=512, slices=args.slices)
            sent = generate_series(tmp / f"sent{r}", rows=512, cols=512, slices=args.slices)
            body = tmp / "body.bin"
            ctype = multipart_file(up["files"], body)
            mb = body.stat().st_size / 1e6
            cpu, t = node_cpu_s(pid), time.monotonic()
            proc = subprocess.run(
                ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                 "-H", f"Authorization: Bearer {key}", "-H", f"Content-Type: {ctype}",
                 "--data-binary", f"@{body}", f"{node.http_url}/api/v1/studies"],
                capture_output=True, text=True, timeout=600)
            wall = time.monotonic() - t
            assert proc.stdout == "200", proc.stdout + proc.stderr
            results["stow"].append((wall, node_cpu_s(pid) - cpu, node_hwm_mb(pid), mb))
            cpu, t = node_cpu_s(pid), time.monotonic()
            proc = node.storescu(sent["files"])
            wall = time.monotonic() - t
            assert proc.returncode == 0, proc.stderr
            results["cstore"].append((wall, node_cpu_s(pid) - cpu, node_hwm_mb(pid), mb))
            body.unlink()
    finally:
        node.stop()
    print(f"{args.slices} x 512 x 512 CT per transfer, {args.rounds} round(s), medians:")
    for name, rows in results.items():
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        print(f"  {name:7s} {rows[0][3]:6.1f} MB  wall {wall:5.2f} s  ({rows[0][3] / wall:6.1f} "
              f"MB/s)  node CPU {cpu:5.2f} s  node peak RSS {max(r[2] for r in rows):6.1f} MB")
    ratio = statistics.median(r[0] for r in results["stow"]) / \
        statistics.median(r[0] for r in results["cstore"])
    print(f"  STOW-RS / C-STORE wall time: {ratio:.2f}")


if __name__ == "__main__":
    main()
