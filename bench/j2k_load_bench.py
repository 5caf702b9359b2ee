#!/usr/bin/env python3
"""JPEG 2000 load benchmark: segnode's series loader (OpenJPEG through src/dicom/j2k_decoder.cpp)
next to opj_decompress and gdcmconv decoding the same files in the same run.

Input: the TotalSegmentator JPEG 2000 body CT series of the shared corpus (20 slices 512 x 512,
JPEG 2000 Lossless, 12 bits stored). Its files have empty SOP/Study/Series UIDs, which gdcmconv
refuses to write, so the benchmark works on copies with UIDs filled in (pydicom; the pixel data
bytes are unchanged), and gives opj_decompress the bare codestreams (extracted with pydicom):

  segnode  load_series_tool --threads T DIR      the loader in one process: headers, geometry,
                                                 decoding, rescale into the volume; its own
                                                 load time is reported, and the process time
  opj      opj_decompress -ImgDir DIR -OutFor RAWL [-threads ALL_CPUS]
                                                 one process for all codestreams, raw output
  gdcmconv gdcmconv --raw IN OUT, once per file  DICOM in, uncompressed DICOM out

Rounds are interleaved (every tool once per round, order rotated) and the median is reported
in seconds per slice, with each reference's time as a multiple of segnode's. Exit status 1
when segnode's loader (default threads) is slower than any reference's median.
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd, **kw):
    """(wall s, cpu s, stdout) of one command, which must succeed."""
    cpu0, t0 = child_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    wall, cpu = time.perf_counter() - t0, child_cpu() - cpu0
    if proc.returncode != 0:
        sys.exit(f"j2k bench: {' '.join(map(str, cmd))} failed: {proc.stdout}{proc.stderr}")
    return wall, cpu, proc.stdout


def prepare(source, work):
    import pydicom
    from pydicom.encaps import generate_pixel_data_frame
    from pydicom.uid import generate_uid
    series, codestreams = work / "series", work / "codestreams"
    series.mkdir()
    codestreams.mkdir()
    study, series_uid = generate_uid(), generate_uid()
    files = sorted(p for p in source.iterdir() if p.is_file())
    for n, f in enumerate(files):
        ds = pydicom.dcmread(f)
        uid = str(ds.file_meta.MediaStorageSOPInstanceUID)
        ds.SOPInstanceUID, ds.SOPClassUID = uid, str(ds.file_meta.MediaStorageSOPClassUID)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series_uid
        ds.save_as(series / f"{n:03d}.dcm", write_like_original=True)
        frame = next(generate_pixel_data_frame(ds.PixelData))
        (codestreams / f"{n:03d}.j2k").write_bytes(frame)
    return series, codestreams, len(files)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loader", required=True, help="load_series_tool (tests/dicom)")
    ap.add_argument("--data", default="",
                    help="shared corpus directory ($SEGNODE_TEST_DATA overrides it)")
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "5")))
    args = ap.parse_args()
    source = Path(os.environ.get("SEGNODE_TEST_DATA") or args.data) / "edge_cases" / "j2k_lossless_body_ct_totalsegmentator"
    if not source.is_dir():
        print(f"j2k bench: skipped, corpus not found: {source} (set SEGNODE_TEST_DATA)")
        return 0
    for tool in ("opj_decompress", "gdcmconv"):
        if shutil.which(tool) is None:
            sys.exit(f"j2k bench: {tool} not found (scripts/install-deps.sh)")

    with tempfile.TemporaryDirectory(prefix="segnode-j2k-bench-") as tmp:
        work = Path(tmp)
        series, codestreams, n = prepare(source, work)
        out = work / "gdcm-out"
        out.mkdir()
        files = sorted(series.iterdir())

        def segnode(threads):
            wall, cpu, stdout = timed([args.loader, "--threads", str(threads), series])
            load = float(stdout.split(" in ")[1].split(" s")[0])
            return wall, cpu, load

        def opj(threads):
            for f in codestreams.glob("*.rawl"):
                f.unlink()
            cmd = ["opj_decompress", "-quiet", "-ImgDir", codestreams, "-OutFor", "RAWL"]
            if threads:
                cmd += ["-threads", "ALL_CPUS"]
            wall, cpu, _ = timed(cmd)
            if len(list(codestreams.glob("*.rawl"))) != n:
                sys.exit("j2k bench: opj_decompress did not write every image")
            return wall, cpu, None

        def gdcm(_):
            wall = cpu = 0.0
            for f in files:
                w, c, _ = timed(["gdcmconv", "--raw", f, out / f.name])
                wall, cpu = wall + w, cpu + c
            return wall, cpu, None

        contenders = [("segnode loader, 1 thread", segnode, 1),
                      ("segnode loader, default threads", segnode, 0),
                      ("opj_decompress -ImgDir, 1 thread", opj, 0),
                      ("opj_decompress -ImgDir, -threads ALL_CPUS", opj, 1),
                      ("gdcmconv --raw, per file", gdcm, None)]
        results = {name: [] for name, _, _ in contenders}
        load1 = os.getloadavg()[0]
        for r in range(args.rounds):
            order = contenders[r % len(contenders):] + contenders[:r % len(contenders)]
            for name, fn, arg in order:
                results[name].append(fn(arg))
            print(f".. round {r + 1}/{args.rounds}", file=sys.stderr)
        load2 = os.getloadavg()[0]

    print(f"== JPEG 2000 load: {n} slices 512 x 512 (TotalSegmentator body CT, J2K lossless), "
          f"{args.rounds} rounds, medians; {os.cpu_count()} CPUs, load {load1:.1f} -> {load2:.1f}")
    print(f"   {'':44} {'wall s/slice':>12} {'cpu s/slice':>12} {'x segnode':>10}")
    base = statistics.median(w for w, _, _ in results["segnode loader, default threads"]) / n
    worst_ratio = None
    for name, _, _ in contenders:
        wall = statistics.median(w for w, _, _ in results[name]) / n
        cpu = statistics.median(c for _, c, _ in results[name]) / n
        print(f"   {name:44} {wall:12.4f} {cpu:12.4f} {wall / base:10.2f}")
        if not name.startswith("segnode"):
            worst_ratio = min(worst_ratio or 1e9, wall / base)
    loads = [load for _, _, load in results["segnode loader, default threads"]]
    print(f"   segnode's own load time (in process, default threads): "
          f"{statistics.median(loads) / n:.4f} s/slice")
    met = worst_ratio >= 1.0
    print(f"   target (segnode not slower than either reference): "
          f"{'met' if met else 'MISSED'} (fastest reference at {worst_ratio:.2f} x segnode)")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
