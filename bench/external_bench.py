#!/usr/bin/python3
"""External algorithm overhead, side by side with dcm2niix, on a generated 512 x 512 x 300 CT.

Targets (docs/algorithms.md, bench/README.md):
  - overhead of an external run — write the input, start the program, read its label map back
    and check it (grid, declared labels) — measured with a trivial program: <= 0.5 s;
  - export of the input (segnode writing the loaded series as NIfTI) >= 2x faster than
    `dcm2niix` converting the same series in the same run.

Method: segnode-phantom writes the series once. `segnode run --algorithm body --format nifti`
gives a label map on exactly that grid. The "trivial program" is `/bin/ln -s` of that label map
to {output}, so the program itself costs ~1 ms and everything else is segnode's overhead.
`segnode run` prints the steps (input written in X s, program time, read-back time) and its
summary (load, run, write). dcm2niix runs on the same directory, uncompressed (-z n) and
gzip (-z y), each `--rounds` times; medians are reported. Standard library only.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(cmd, **kw):
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{proc.stderr[-2000:]}")
    return proc, elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segnode", required=True)
    ap.add_argument("--phantom", required=True)
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    ap.add_argument("--size", default="512x512x300", help="COLSxROWSxSLICES")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    dcm2niix = shutil.which("dcm2niix")
    if not dcm2niix:
        sys.exit("dcm2niix not found (Debian package dcm2niix; scripts/install-deps.sh installs it)")
    cols, rows, slices = (int(v) for v in args.size.split("x"))

    tmp = Path(tempfile.mkdtemp(prefix="segnode-bench-external-"))
    try:
        series = tmp / "series"
        run([args.phantom, "--out", str(series), "--rows", str(rows), "--cols", str(cols),
             "--slices", str(slices)], timeout=600)
        ref = tmp / "ref"
        for fmt in ("nifti", "nrrd"):
            run([args.segnode, "run", "--algorithm", "body", "--input", str(series), "--output",
                 str(ref), "--format", fmt], timeout=600)
        algorithms = tmp / "algorithms.d"
        algorithms.mkdir()
        cases = (("nii_to_nii", "nifti", "labels.nii"),
                 ("nrrd_to_nrrd", "nrrd", "labels.nrrd"),
                 ("niigz_to_nii", "nifti_gz", "labels.nii"))
        for name, fmt, out_name in cases:
            (algorithms / f"{name}.toml").write_text(
                f'[[algorithms]]\nname = "{name}"\nversion = "1"\n'
                f'command = ["/bin/ln", "-s", "{ref / out_name}", "{{output}}"]\n'
                f'input_format = "{fmt}"\noutput = "{out_name}"\n'
                '[[algorithms.segments]]\nlabel = 1\nname = "Body"\n')
        config = tmp / "bench.toml"
        config.write_text(f'algorithms_dir = "{algorithms}"\n')

        step_re = {
            "export": re.compile(r"input \S+ written in ([\d.]+) s"),
            "program": re.compile(r"exited with status 0 after ([\d.]+) s"),
            "readback": re.compile(r"output read and checked in ([\d.]+) s"),
        }
        summary_re = re.compile(r"load ([\d.]+) s, run ([\d.]+) s, write ([\d.]+) s")
        results = {}
        for name, _, _ in cases:
            rows_out = []
            for r in range(args.rounds):
                out = tmp / f"out-{name}-{r}"
                proc, wall = run([args.segnode, "--config", str(config), "run", "--algorithm",
                                  name, "--input", str(series), "--output", str(out),
                                  "--format", "nifti"], timeout=600)
                steps = {k: float(rx.search(proc.stderr).group(1)) for k, rx in step_re.items()}
                load, overhead, write = (float(v) for v in summary_re.search(proc.stdout).groups())
                rows_out.append(dict(steps, load=load, overhead=overhead, wall=wall))
            results[name] = {k: statistics.median(r[k] for r in rows_out) for k in rows_out[0]}

        # The machine's floor for the export: copying the same number of bytes into a new file
        # in the same directory (dd, page cache), measured between the cases.
        floor = []
        volume_bytes = cols * rows * slices * 2
        for r in range(args.rounds):
            target = tmp / f"floor-{r}.bin"
            _, wall = run(["dd", "if=/dev/zero", f"of={target}", "bs=4M",
                           f"count={volume_bytes // (4 << 20) + 1}", "status=none"], timeout=120)
            floor.append(wall)
            target.unlink()
        ref_times = {}
        for label, z in (("dcm2niix -z n", "n"), ("dcm2niix -z y", "y")):
            times = []
            for r in range(args.rounds):
                out = tmp / f"dcm2niix-{z}-{r}"
                out.mkdir()
                _, wall = run([dcm2niix, "-z", z, "-f", "img", "-o", str(out), str(series)],
                              timeout=600)
                times.append(wall)
            ref_times[label] = statistics.median(times)

        print(f"external algorithm overhead on {cols} x {rows} x {slices} "
              f"(median of {args.rounds}; a trivial program: ln -s of a ready label map)")
        print(f"{'case':<16} {'load':>7} {'export':>7} {'program':>8} {'read+check':>10} "
              f"{'overhead':>9}")
        for name, m in results.items():
            print(f"{name:<16} {m['load']:>6.2f}s {m['export']:>6.2f}s {m['program']:>7.2f}s "
                  f"{m['readback']:>9.2f}s {m['overhead']:>8.2f}s")
        for label, t in ref_times.items():
            print(f"{label:<16} {t:>6.2f}s  (whole conversion: read DICOM + write NIfTI)")
        nii = results["nii_to_nii"]
        gz = results["niigz_to_nii"]
        print(f"{'dd 157 MB new file':<16} {statistics.median(floor):>6.2f}s  (the page-cache "
              f"floor of writing the input, same directory)")
        print()
        for name, m in results.items():
            print(f"overhead {name}: {m['overhead']:.2f} s "
                  f"(target <= 0.5 s: {'met' if m['overhead'] <= 0.5 else 'NOT met'})")
        ratio = ref_times["dcm2niix -z n"] / nii["export"]
        print(f"export .nii vs dcm2niix -z n: {ratio:.1f}x faster "
              f"(target >= 2x: {'met' if ratio >= 2 else 'NOT met'})")
        ratio_gz = ref_times["dcm2niix -z y"] / gz["export"]
        print(f"export .nii.gz vs dcm2niix -z y: {ratio_gz:.1f}x faster")
        ratio_load = ref_times["dcm2niix -z n"] / (nii["load"] + nii["export"])
        print(f"load + export .nii vs dcm2niix -z n (both read the DICOM files): "
              f"{ratio_load:.1f}x faster")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
