"""STOW-RS uploads (POST /api/v1/studies) and `segnode submit` with real clients: a phantom
series uploaded with python3-requests and with curl, completed, run with the seg and labelmap
outputs, polled and downloaded; the SEG checked by dciodvfy and read back by pydicom exactly
against labels.nii.gz read by nibabel; bad uploads (not DICOM, truncated, no boundary, wrong
media type, over the limit, wrong role) each with its status and reason; C-STORE keeps working
while an upload is in progress."""

import json
import os
import socket
import subprocess
import time
import unittest
import uuid
from pathlib import Path

import nibabel
import numpy as np
import requests

from harness import LOOPBACK, SEGNODE_BIN, SegnodeTestCase
from seg_reader import SegObject, dciodvfy
from test_http import HttpTestCase

REFERENCED = "00081199"
FAILED = "00081198"
FAILURE_REASON = "00081197"
REASON_TEXT = "00091001"
SOP_INSTANCE = "00081155"


def multipart(parts, boundary=None):
    """(body bytes, Content-Type) of a multipart/related body of application/dicom parts."""
    boundary = boundary or f"b-{uuid.uuid4().hex}"
    body = b""
    for data in parts:
        body += (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").encode()
        body += data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def values(item, tag):
    return item[tag]["Value"]


class StowTestCase(HttpTestCase):
    def upload(self, key, body, content_type, **kw):
        return self.call("POST", "/api/v1/studies", key=key, data=body,
                         headers={"Content-Type": content_type}, **kw)

    def wait_job(self, location, key, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            job = self.call("GET", location, key=key).json()
            if job["state"] in ("done", "failed", "cancelled"):
                return job
            self.assertLess(time.monotonic(), deadline, f"job stuck: {job}")
            time.sleep(0.2)

    def check_seg_against_labels(self, seg_path, labels_path, segments):
        """SEG frames read by pydicom (seg_reader) equal the label map read by nibabel, voxel
        for voxel, and every labelled slice of the label map has its SEG frame."""
        errors, _ = dciodvfy(seg_path)
        self.assertEqual(errors, [], "dciodvfy errors in the SEG")
        seg = SegObject.read(seg_path)
        self.assertGreater(len(seg.frames), 0)
        img = nibabel.load(str(labels_path))
        data = np.asanyarray(img.dataobj)  # (i, j, k)
        self.assertEqual(data.dtype, np.uint8)
        to_voxel = np.linalg.inv(img.affine)
        # SEG segments are numbered 1..n in the order of the declared labels.
        label_of = dict(zip(sorted(seg.segments), sorted(s["label"] for s in segments)))
        self.assertEqual(len(label_of), len(segments))
        covered = set()
        for info in seg.frames:
            x, y, z = info.position
            ijk = to_voxel @ np.array([-x, -y, z, 1.0])  # LPS -> RAS -> voxel
            self.assertTrue(np.allclose(ijk[:2], 0, atol=1e-3), ijk)
            k = int(round(ijk[2]))
            label = label_of[info.segment_number]
            expected = data[:, :, k].T == label  # rows = j, columns = i
            np.testing.assert_array_equal(seg.pixels[info.index].astype(bool), expected,
                                          f"frame {info.index + 1} (slice {k})")
            covered.add((k, label))
        for label in {s["label"] for s in segments}:
            for k in range(data.shape[2]):
                if (data[:, :, k] == label).any():
                    self.assertIn((k, label), covered, f"slice {k} label {label} has no frame")
        # segments.json counts the voxels of each label.
        for s in segments:
            self.assertEqual(s["voxels"], int((data == s["label"]).sum()), s)


class StowUploads(StowTestCase):
    def test_upload_with_requests_and_curl_run_poll_download(self):
        node = self.http_node()
        alice = self.add_key(node, "alice", "submit")
        bob = self.add_key(node, "bob", "submit")
        series = self.series(slices=12)
        files = series["files"]
        uid = series["series_uid"]

        # python3-requests: all but the last two instances in one multipart/related body.
        body, ctype = multipart([Path(f).read_bytes() for f in files[:-2]])
        r = self.upload(alice, body, ctype)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.headers["Content-Type"], "application/dicom+json")
        answer = r.json()
        self.assertNotIn(FAILED, answer)
        got = [values(item, SOP_INSTANCE)[0] for item in values(answer, REFERENCED)]
        self.assertEqual(got, series["sop_instance_uids"][:-2])

        # curl: one instance as a single application/dicom body, the last one as multipart
        # with Expect: 100-continue (the server answers 100 before reading the body).
        proc = subprocess.run(
            ["curl", "-sS", "-o", str(self.tmp / "curl1.json"), "-w", "%{http_code}",
             "-H", f"Authorization: Bearer {alice}", "-H", "Content-Type: application/dicom",
             "--data-binary", f"@{files[-2]}", f"{self.url}/api/v1/studies"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.stdout, "200", proc.stderr)
        last_body, last_type = multipart([Path(files[-1]).read_bytes()])
        (self.tmp / "last.bin").write_bytes(last_body)
        proc = subprocess.run(
            ["curl", "-sS", "-o", str(self.tmp / "curl2.json"), "-w", "%{http_code}",
             "-H", f"API_KEY: {alice}", "-H", f"Content-Type: {last_type}",
             "-H", "Expect: 100-continue", "--data-binary", f"@{self.tmp / 'last.bin'}",
             f"{self.url}/api/v1/studies"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.stdout, "200", proc.stderr)
        curl2 = json.loads((self.tmp / "curl2.json").read_text())
        self.assertEqual(values(values(curl2, REFERENCED)[0], SOP_INSTANCE),
                         [series["sop_instance_uids"][-1]])

        # Stored through the receiver: every instance, byte for byte, recorded as uploads of
        # alice's key.
        self.assertEqual(self.stored_uids(node, uid), sorted(series["sop_instance_uids"]))
        for sop, path in series["by_uid"].items():
            study = series["study_uid"]
            self.assertSameDataset(node.instance_path(study, uid, sop), path)
        uploads = node.query("SELECT a.calling_ae, a.outcome, a.instances_stored, k.name "
                             "FROM associations a JOIN api_keys k ON k.id = a.api_key_id "
                             "ORDER BY a.id")
        self.assertEqual([tuple(u) for u in uploads], [("STOW-RS", "released", 10, "alice"),
                                   ("STOW-RS", "released", 1, "alice"),
                                   ("STOW-RS", "released", 1, "alice")])

        r = self.call("POST", f"/api/v1/series/{uid}/complete", key=alice)
        self.assertEqual(r.status_code, 200, r.text)
        r = self.call("POST", "/api/v1/jobs", key=alice,
                      json={"series_uid": uid, "algorithm": "body",
                            "outputs": ["seg", "labelmap"]})
        self.assertEqual(r.status_code, 202, r.text)
        location = r.headers["Location"]
        job = self.wait_job(location, alice)
        self.assertEqual(job["state"], "done", f"{job}\n{node.log_tail()}")
        self.assertEqual([f["name"] for f in job["files"]],
                         ["seg.dcm", "labels.nii.gz", "segments.json"])
        self.assertProblem(self.call("GET", location, key=bob), 404)
        self.assertProblem(self.call("GET", location + "/outputs/labels.nii.gz", key=bob), 404)

        outputs = {o["name"]: o for o in self.call("GET", location + "/outputs",
                                                   key=alice).json()["items"]}
        self.assertEqual(outputs["labels.nii.gz"]["kind"], "labelmap")
        self.assertIsNone(outputs["labels.nii.gz"]["sop_instance_uid"])
        downloaded = {}
        for name, ctype in (("seg.dcm", "application/dicom"),
                            ("labels.nii.gz", "application/gzip"),
                            ("segments.json", "application/json")):
            r = self.call("GET", f"{location}/outputs/{name}", key=alice)
            self.assertEqual(r.status_code, 200, r.text)
            self.assertEqual(r.headers["Content-Type"], ctype)
            self.assertEqual(r.headers["Content-Disposition"],
                             f'attachment; filename="job-{job["id"]}-{name}"')
            self.assertEqual(len(r.content), outputs[name]["size_bytes"])
            again = self.call("GET", f"{location}/outputs/{name}", key=alice,
                              headers={"If-None-Match": r.headers["ETag"]})
            self.assertEqual(again.status_code, 304, name)
            downloaded[name] = self.tmp / name
            downloaded[name].write_bytes(r.content)
        manifest = json.loads(downloaded["segments.json"].read_text())
        self.assertEqual(manifest["label_map"]["file"], "labels.nii.gz")
        self.assertEqual(manifest["source"]["series_uid"], uid)
        self.assertEqual([s["label"] for s in manifest["segments"]], [1])
        self.assertGreater(manifest["segments"][0]["voxels"], 0)
        self.assertEqual(len(manifest["segments"][0]["rgb"]), 3)
        self.check_seg_against_labels(downloaded["seg.dcm"], downloaded["labels.nii.gz"],
                                      manifest["segments"])
        # Traversal in output names is still refused.
        self.assertProblem(self.call("GET", f"{location}/outputs/..%2Fsegments.json",
                                     key=alice), 400, "invalid output name")

        text = self.call("GET", "/metrics").text
        from test_http import metric
        self.assertEqual(metric(text, "segnode_http_requests_total",
                                {"route": "/api/v1/studies", "status": "200"}), 3)

    def test_bad_uploads_each_with_status_and_reason(self):
        node = self.http_node(http={"max_upload_mb": 1})
        alice = self.add_key(node, "alice", "submit")
        reader = self.add_key(node, "reader", "read")
        series = self.series(slices=3)
        good = [Path(f).read_bytes() for f in series["files"]]

        # A part that is not DICOM beside a good one: 202, the bad one failed with 0xC000 and
        # quarantined, the good one stored.
        body, ctype = multipart([b"this is not DICOM at all" * 10, good[0]])
        r = self.upload(alice, body, ctype)
        self.assertEqual(r.status_code, 202, r.text)
        failed = values(r.json(), FAILED)
        self.assertEqual(len(failed), 1)
        self.assertEqual(values(failed[0], FAILURE_REASON), [0xC000])
        self.assertIn("part 1 is not a DICOM Part 10 file", values(failed[0], REASON_TEXT)[0])
        self.assertEqual(len(values(r.json(), REFERENCED)), 1)
        self.assertEqual(node.scalar("SELECT count(*) FROM quarantine"), 1)

        # A truncated part alone: nothing stored, 409, the reason names the instance.
        body, ctype = multipart([good[1][: len(good[1]) // 2]])
        r = self.upload(alice, body, ctype)
        self.assertEqual(r.status_code, 409, r.text)
        failed = values(r.json(), FAILED)
        reason = values(failed[0], REASON_TEXT)[0]
        self.assertIn("incomplete or malformed", reason)
        self.assertIn(series["sop_instance_uids"][1], reason)
        self.assertEqual(values(failed[0], SOP_INSTANCE), [series["sop_instance_uids"][1]])

        # A body that ends inside a part (no closing boundary): that part failed.
        body, ctype = multipart([good[1]])
        r = self.upload(alice, body[:-40], ctype)
        self.assertEqual(r.status_code, 409, r.text)
        self.assertIn("before its closing boundary",
                      values(values(r.json(), FAILED)[0], REASON_TEXT)[0])

        # Missing boundary: in the body, and in the Content-Type.
        self.assertProblem(self.upload(alice, good[1], ctype), 400, "no multipart boundary")
        self.assertProblem(self.upload(alice, good[1], 'multipart/related; '
                                       'type="application/dicom"'), 400, "no boundary")
        # Wrong media types: 415.
        self.assertProblem(self.upload(alice, b"{}", "application/json"), 415,
                           "application/json is not supported")
        self.assertProblem(self.upload(alice, body, 'multipart/related; '
                                       'type="application/dicom+json"; boundary=x'), 415,
                           "application/dicom+json")
        self.assertProblem(self.call("POST", "/api/v1/studies", key=alice, data=b"x"), 415,
                           "no Content-Type")
        # Roles: no key 401, read key 403; nothing was read or stored.
        self.assertProblem(self.upload(None, body, ctype), 401, "no API key")
        self.assertProblem(self.upload(reader, body, ctype), 403, "needs the submit role")
        self.assertProblem(self.call("GET", "/api/v1/studies", key=alice), 405)

        # Over the limit by Content-Length (2 GB): 413 at once, before any body is sent.
        with socket.create_connection((LOOPBACK, self.port), timeout=10) as s:
            s.sendall((f"POST /api/v1/studies HTTP/1.1\r\nHost: x\r\n"
                       f"Authorization: Bearer {alice}\r\nContent-Type: {ctype}\r\n"
                       f"Content-Length: 2147483648\r\n\r\n").encode())
            answer = s.recv(65536)
        self.assertTrue(answer.startswith(b"HTTP/1.1 413"), answer[:300])
        self.assertIn(b"http.max_upload_mb (1 MiB)", answer)
        # Over the limit while streaming (chunked, no Content-Length): 413 when it is passed.
        big_body, big_type = multipart([b"\0" * (1 << 20), good[0]])
        with socket.create_connection((LOOPBACK, self.port), timeout=10) as s:
            s.sendall((f"POST /api/v1/studies HTTP/1.1\r\nHost: x\r\n"
                       f"Authorization: Bearer {alice}\r\nContent-Type: {big_type}\r\n"
                       f"Transfer-Encoding: chunked\r\n\r\n").encode())
            answer = b""
            try:
                for i in range(0, len(big_body), 65536):
                    chunk = big_body[i:i + 65536]
                    s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                s.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                while True:
                    data = s.recv(65536)
                    if not data:
                        break
                    answer += data
            except (ConnectionResetError, socket.timeout):
                pass
        self.assertTrue(answer.startswith(b"HTTP/1.1 413"), answer[:300])
        self.assertEqual(self.call("GET", "/healthz").status_code, 200)
        self.assertEqual(self.stored_uids(node), [series["sop_instance_uids"][0]])
        # No temporary file of an aborted or refused upload is left behind.
        self.assertEqual(self.files_under(node.workdir / "tmp"), [])

    def test_cstore_keeps_working_during_an_upload(self):
        node = self.http_node()
        alice = self.add_key(node, "alice", "submit")
        uploaded = self.series("up", slices=4)
        sent = self.series("dicom", slices=8)
        body, ctype = multipart([Path(f).read_bytes() for f in uploaded["files"]])
        half = len(body) // 2
        with socket.create_connection((LOOPBACK, self.port), timeout=30) as s:
            s.sendall((f"POST /api/v1/studies HTTP/1.1\r\nHost: x\r\n"
                       f"Authorization: Bearer {alice}\r\nContent-Type: {ctype}\r\n"
                       f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
                      + body[:half])
            # The upload is open; a DICOM sender is served meanwhile.
            proc = node.storescu(sent["files"])
            self.assertProcOk(proc, "storescu during an upload")
            self.assertEqual(self.stored_uids(node, sent["series_uid"]),
                             sorted(sent["sop_instance_uids"]))
            s.sendall(body[half:])
            answer = b""
            while True:
                data = s.recv(65536)
                if not data:
                    break
                answer += data
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:300])
        self.assertEqual(self.stored_uids(node, uploaded["series_uid"]),
                         sorted(uploaded["sop_instance_uids"]))


    def test_stop_during_an_upload_records_it_aborted(self):
        node = self.http_node()
        alice = self.add_key(node, "alice", "submit")
        series = self.series(slices=4)
        body, ctype = multipart([Path(f).read_bytes() for f in series["files"]],
                                boundary="stop-test-boundary")
        first_part_end = body.index(b"\r\n--stop-test-boundary\r\n", 10) + 2
        with socket.create_connection((LOOPBACK, self.port), timeout=30) as s:
            s.sendall((f"POST /api/v1/studies HTTP/1.1\r\nHost: x\r\n"
                       f"Authorization: Bearer {alice}\r\nContent-Type: {ctype}\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n").encode()
                      + body[:first_part_end + 200])
            node.wait_for(lambda: node.scalar("SELECT count(*) FROM instances") == 1, 30,
                          what="the first part stored")
            self.assertStopsCleanly(node)
        row = node.query_one("SELECT outcome, instances_stored FROM associations "
                             "WHERE calling_ae = 'STOW-RS'")
        self.assertEqual(tuple(row), ("aborted", 1))
        self.assertEqual(self.files_under(node.workdir / "tmp"), [])

    def test_uploaded_series_routed_by_a_rule_sends_dicom_keeps_the_label_map(self):
        from harness import StoreScpPeer
        dest = StoreScpPeer(self.tmp)
        self.addCleanup(dest.stop)
        dest.start()
        node = self.http_node(peers=[dest.peer_entry()],
                              rules=[{"name": "ct-body", "modality": "CT", "algorithm": "body",
                                      "outputs": ["seg", "labelmap"], "destination": "dest"}])
        alice = self.add_key(node, "alice", "submit")
        series = self.series(slices=8)
        body, ctype = multipart([Path(f).read_bytes() for f in series["files"]])
        self.assertEqual(self.upload(alice, body, ctype).status_code, 200)
        # The quiet period completes the uploaded series; the rule routes it.
        node.wait_for(lambda: node.scalar("SELECT state FROM jobs") in ("done", "failed"), 120,
                      what=f"the routed job\n{node.log_tail()}")
        self.assertEqual(node.scalar("SELECT state FROM jobs"), "done", node.log_tail())
        self.assertEqual(len(dest.files("SG.")), 1, dest.files())
        self.assertEqual(len(dest.files()), 1, "only the SEG is sent, never the label map")
        rows = node.query("SELECT kind, sent_at IS NOT NULL FROM job_outputs ORDER BY kind")
        self.assertEqual([tuple(r) for r in rows], [("labelmap", 0), ("seg", 1)])
        job_dir = node.workdir / "jobs" / str(node.scalar("SELECT id FROM jobs"))
        self.assertTrue((job_dir / "labels.nii.gz").is_file())
        self.assertTrue((job_dir / "segments.json").is_file())


class SubmitCommand(StowTestCase):
    def submit(self, *args, key=None, key_file=None, server=True, timeout=180):
        env = {k: v for k, v in os.environ.items()
               if k not in ("SEGNODE_CONFIG", "SEGNODE_API_KEY", "SEGNODE_SERVER")}
        if key is not None:
            env["SEGNODE_API_KEY"] = key
        if server:
            env["SEGNODE_SERVER"] = self.url
        cmd = [str(SEGNODE_BIN), "submit", *args]
        if key_file is not None:
            cmd += ["--key-file", str(key_file)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)

    def test_submit_upload_run_wait_download(self):
        node = self.http_node()
        alice = self.add_key(node, "alice", "submit")
        reader = self.add_key(node, "reader", "read")
        series = self.series(slices=10)
        input_dir = Path(series["files"][0]).parent
        (input_dir / "README.txt").write_text("not a DICOM file")
        out = self.tmp / "out"
        proc = self.submit("--algorithm", "body", "--input", str(input_dir),
                           "--set", "min_hu=-400", "--download", str(out), key=alice)
        self.assertProcOk(proc, "segnode submit")
        self.assertIn(f"uploading 10 file(s) of series {series['series_uid']} "
                      "(1 non-DICOM file(s) skipped)", proc.stdout)
        self.assertIn("stored 10 of 10 instance(s)", proc.stdout)
        self.assertRegex(proc.stdout, r"job \d+ done")
        self.assertIn("running", proc.stdout)  # the timeline was shown while polling
        self.assertEqual(sorted(p.name for p in out.iterdir()),
                         ["labels.nii.gz", "rtstruct.dcm", "seg.dcm", "segments.json"])
        job = node.query_one("SELECT owner_key_name, settings, outputs FROM jobs")
        self.assertEqual(job[0], "alice")
        self.assertIn("min_hu=-400", job[1])
        self.assertEqual(job[2], "seg,rtstruct,labelmap")
        manifest = json.loads((out / "segments.json").read_text())
        self.check_seg_against_labels(out / "seg.dcm", out / "labels.nii.gz",
                                      manifest["segments"])
        self.assertEqual(dciodvfy(out / "rtstruct.dcm")[0], [])

        # The key from --key-file; a read key is refused with the server's reason.
        key_file = self.tmp / "reader.key"
        key_file.write_text(reader + "\n")
        proc = self.submit("--algorithm", "body", "--input", str(input_dir),
                           key_file=key_file)
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        self.assertIn("upload refused: POST /api/v1/studies needs the submit role", proc.stderr)

    def test_submit_errors_are_clear(self):
        node = self.http_node()
        alice = self.add_key(node, "alice", "submit")
        series = self.series(slices=3)
        input_dir = Path(series["files"][0]).parent
        # A file that looks like DICOM but is cut short: named with the reason.
        broken = input_dir / "zz-broken.dcm"
        broken.write_bytes(Path(series["files"][0]).read_bytes()[:600])
        proc = self.submit("--algorithm", "body", "--input", str(input_dir), key=alice)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn(str(broken), proc.stderr)
        broken.unlink()
        # Unknown settings: the 422 detail names the key; no server: usage error.
        proc = self.submit("--algorithm", "body", "--input", str(input_dir),
                           "--set", "no_such=1", key=alice)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("no_such", proc.stderr)
        proc = self.submit("--algorithm", "body", "--input", str(input_dir), key=alice,
                           server=False)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("needs --server", proc.stderr)
        empty = self.tmp / "empty"
        empty.mkdir()
        proc = self.submit("--algorithm", "body", "--input", str(empty), key=alice)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("no DICOM files", proc.stderr)


if __name__ == "__main__":
    unittest.main()
