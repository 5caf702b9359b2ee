#!/usr/bin/python3
"""A PlatiPy-style external algorithm: reads the NIfTI input segnode wrote (SEGNODE_INPUT),
its settings (settings.json), and writes a 3-label uint8 NIfTI (SEGNODE_OUTPUT) on the same
grid with nibabel: 1 = soft tissue, 2 = lung, 3 = bone, by Hounsfield thresholds.

Extra behaviours for the failure tests, chosen by the `mode` setting:
  normal | empty (all background) | undeclared (also writes label 7) |
  wrong_grid (half the resolution) |
  no_output | chatty (50 MB on stdout first) | sleep (sleeps `sleep_s` first, pid in work dir)
"""
import json
import os
import sys
import time

import nibabel as nib
import numpy as np

settings = json.load(open(os.environ["SEGNODE_SETTINGS"]))
task = json.load(open(os.environ["SEGNODE_TASK"]))
mode = settings.get("mode", "normal")
print(f"three_labels: job {task['job_id']} series {task['series_instance_uid']} mode {mode}",
      flush=True)

if mode == "sleep":
    with open(os.path.join(os.environ["SEGNODE_WORK_DIR"], "program.pid"), "w") as f:
        f.write(str(os.getpid()))
    marker = settings.get("marker", "")
    if not marker or not os.path.exists(marker):
        if marker:
            open(marker, "w").close()
        time.sleep(float(settings.get("sleep_s", 60)))
if mode == "chatty":
    line = ("x" * 99 + "\n").encode()
    out = sys.stdout.buffer
    for _ in range(500_000):  # 50 MB
        out.write(line)
    out.flush()
if mode == "no_output":
    sys.exit(0)

img = nib.load(os.environ["SEGNODE_INPUT"])
hu = np.asanyarray(img.dataobj)
labels = np.zeros(hu.shape, dtype=np.uint8)
labels[(hu >= settings["soft_min"]) & (hu <= settings["soft_max"])] = 1
labels[(hu >= -900) & (hu <= -500)] = 2
labels[hu >= settings["bone_min"]] = 3
affine = img.affine
if mode == "empty":
    labels[...] = 0
if mode == "undeclared":
    labels[0, 0, 0] = 7
if mode == "wrong_grid":
    labels = labels[::2, ::2, :]
    affine = affine.copy()
    affine[:3, 0] *= 2
    affine[:3, 1] *= 2
nib.save(nib.Nifti1Image(labels, affine), os.environ["SEGNODE_OUTPUT"])
print(f"three_labels: wrote {os.environ['SEGNODE_OUTPUT']}", file=sys.stderr)
