#!/usr/bin/python3
"""A processing container in Kaapana's layout, as its otsus-method example works: for each
batch element under $WORKFLOW_DIR/$BATCH_NAME, read the NRRD in $OPERATOR_IN_DIR, threshold
it with Otsu's method and write the mask as NRRD to $OPERATOR_OUT_DIR. The NRRD reader and
writer are plain Python (raw or gzip encoding), so the test depends on nothing segnode wrote.
"""
import glob
import gzip
import os

import numpy as np

TYPES = {"short": np.int16, "int16": np.int16, "signed short": np.int16, "uchar": np.uint8,
         "unsigned char": np.uint8, "uint8": np.uint8, "ushort": np.uint16,
         "unsigned short": np.uint16, "int": np.int32, "float": np.float32}


def read_nrrd(path):
    data = open(path, "rb").read()
    head, _, body = data.partition(b"\n\n")
    fields = {}
    for line in head.decode().splitlines()[1:]:
        if line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        fields[key.strip()] = value.lstrip("=").strip()
    if fields.get("encoding") in ("gzip", "gz"):
        body = gzip.decompress(body)
    sizes = [int(s) for s in fields["sizes"].split()]
    dtype = np.dtype(TYPES[fields["type"]]).newbyteorder(
        ">" if fields.get("endian") == "big" else "<")
    voxels = np.frombuffer(body, dtype=dtype, count=int(np.prod(sizes)))
    return fields, voxels.reshape(sizes[::-1])


def write_nrrd(path, fields, array):
    keep = ("dimension", "space", "sizes", "space directions", "kinds", "space origin")
    lines = ["NRRD0004", "type: uint8", "encoding: raw"]
    lines += [f"{k}: {fields[k]}" for k in keep if k in fields]
    with open(path, "wb") as f:
        f.write(("\n".join(lines) + "\n\n").encode())
        f.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def otsu(values, bins=128):
    hist, edges = np.histogram(values, bins=bins)
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return edges[1:][int(np.argmax(between))]


batch = os.path.join(os.environ["WORKFLOW_DIR"], os.environ["BATCH_NAME"])
for element in sorted(glob.glob(os.path.join(batch, "*"))):
    in_dir = os.path.join(element, os.environ["OPERATOR_IN_DIR"])
    out_dir = os.path.join(element, os.environ["OPERATOR_OUT_DIR"])
    os.makedirs(out_dir, exist_ok=True)
    for path in glob.glob(os.path.join(in_dir, "*.nrrd")):
        fields, image = read_nrrd(path)
        threshold = otsu(image.ravel())
        mask = (image > threshold).astype(np.uint8)
        out = os.path.join(out_dir, os.path.basename(path))
        write_nrrd(out, fields, mask)
        print(f"otsu threshold {threshold:.1f}: {int(mask.sum())} voxels -> {out}")
