"""The dicom layer's SCU (segnode::dicom::echo / send_files) through segnode-test-scu, against
dcmtk's storescp, `segnode serve` and mini_scp.py (statuses and silences on demand)."""

import os
import re
import socket
import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.filereader import read_dataset

from harness import (BUILD_DIR, ECHOSCU, EXPLICIT_LE, HERE, IMPLICIT_LE, LOOPBACK, NODE_AE,
                     TOOL_ENV, SegnodeTestCase, free_port, rewrite)

SEGNODE_TEST_SCU = Path(os.environ.get("SEGNODE_TEST_SCU")
                        or BUILD_DIR / "tests/tools/segnode-test-scu")
STORESCP = "/usr/bin/storescp"
DCMCJPEG = "/usr/bin/dcmcjpeg"
MINI_SCP = HERE / "mini_scp.py"

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG2000_LOSSLESS = "1.2.840.10008.1.2.4.90"


class ScuRun:
    """segnode-test-scu's result: rc, outcome lines [(uid, verdict, status, detail)], stderr,
    wall time."""

    def __init__(self, proc, elapsed):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.elapsed = elapsed
        self.outcomes = []
        for line in proc.stdout.splitlines():
            if line.startswith("echo ok") or not line.strip():
                continue
            uid, verdict, status, detail = line.split(" ", 3)
            self.outcomes.append((uid, verdict, status, detail))

    def by_uid(self):
        return {o[0]: o for o in self.outcomes}

    def __repr__(self):
        return (f"ScuRun(rc={self.returncode}, {self.elapsed:.2f} s, stdout={self.stdout!r}, "
                f"stderr={self.stderr!r})")


class ScuTestCase(SegnodeTestCase):

    def setUp(self):
        super().setUp()
        if not SEGNODE_TEST_SCU.is_file():
            raise RuntimeError(f"segnode-test-scu missing: {SEGNODE_TEST_SCU}")
        self._procs = []
        self.addCleanup(self._stop_procs)

    def _stop_procs(self):
        for p in self._procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
            for stream in (p.stdout, p.stderr):
                if stream:
                    stream.close()

    def scu(self, mode, port, files=(), aec="PACS", extra=(), timeout=120, env=None):
        cmd = [str(SEGNODE_TEST_SCU), mode, "--host", LOOPBACK, "--port", str(port),
               "--aec", aec, *extra, *map(str, files)]
        start = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=env if env is not None else os.environ.copy())
        return ScuRun(proc, time.monotonic() - start)

    def storescp(self, out_dir, extra=(), ae="PACS"):
        """storescp on a free loopback port (Nagle off), ready when this returns."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            port = free_port()
            proc = subprocess.Popen(
                [STORESCP, "-aet", ae, "-dhl", "-od", str(out_dir), *extra, str(port)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=TOOL_ENV)
            self._procs.append(proc)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and proc.poll() is None:
                echo = subprocess.run([ECHOSCU, "-aec", ae, "-to", "2", LOOPBACK, str(port)],
                                      capture_output=True, env=TOOL_ENV, timeout=10)
                if echo.returncode == 0:
                    return proc, port
                time.sleep(0.05)
        raise AssertionError("storescp did not start")

    def mini_scp(self, *args):
        proc = subprocess.Popen([sys.executable, str(MINI_SCP), *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self._procs.append(proc)
        line = proc.stdout.readline()
        self.assertTrue(line.startswith("listening "), f"mini_scp: {line!r}")
        return proc, int(line.split()[1])

    def received(self, out_dir):
        """{sop instance uid: path} of what storescp wrote."""
        out = {}
        for p in Path(out_dir).iterdir():
            if p.is_file():
                out[pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID] = p
        return out

    def assertSameElements(self, received, source):
        """Every data set element equal (pixel data included), whatever the encoding."""
        a, b = pydicom.dcmread(received), pydicom.dcmread(source)
        self.assertEqual([e.tag for e in a], [e.tag for e in b], received)
        for elem in b:
            self.assertEqual(a[elem.tag].value, elem.value, f"{received}: {elem.tag}")


class EchoTest(ScuTestCase):

    def test_echo_storescp(self):
        _, port = self.storescp(self.tmp / "in")
        # Without TCP_NODELAY in the environment: the library must switch Nagle off itself.
        env = {k: v for k, v in os.environ.items() if k != "TCP_NODELAY"}
        round_trips = []
        for _ in range(3):
            run = self.scu("echo", port, env=env)
            self.assertEqual(run.returncode, 0, run)
            m = re.fullmatch(r"echo ok (\d+) (\d+)\n", run.stdout)
            self.assertIsNotNone(m, run)
            round_trip, total = int(m.group(1)), int(m.group(2))
            self.assertLessEqual(round_trip, total)
            round_trips.append(round_trip)
        # With Nagle's algorithm on, each C-ECHO waits for the ~40 ms delayed ACK (measured
        # here: 42-47 ms with TCP_NODELAY=0, 0 ms without).
        self.assertLess(min(round_trips), 25, round_trips)

    def test_echo_closed_port(self):
        port = free_port()  # nothing listens there
        run = self.scu("echo", port, extra=("--connect-timeout", "5"))
        self.assertEqual(run.returncode, 1, run)
        self.assertIn(f"cannot connect to PACS at 127.0.0.1:{port}: connection refused",
                      run.stderr)
        self.assertLess(run.elapsed, 5)

    def test_echo_wrong_called_ae_rejected_by_segnode(self):
        node = self.node()
        run = self.scu("echo", node.port, aec="NOTSEGNODE")
        self.assertEqual(run.returncode, 1, run)
        self.assertIn(f"association rejected by NOTSEGNODE at 127.0.0.1:{node.port}: "
                      "called AE title not recognized (permanent)", run.stderr)
        ok = self.scu("echo", node.port, aec=NODE_AE)
        self.assertEqual(ok.returncode, 0, ok)
        self.assertStopsCleanly(node)

    def test_echo_failure_status(self):
        _, port = self.mini_scp("--echo-status", "0211", "--comment", "not today")
        run = self.scu("echo", port)
        self.assertEqual(run.returncode, 1, run)
        self.assertIn("C-ECHO answered with status 0x0211", run.stderr)
        self.assertIn("not today", run.stderr)

    def test_echo_peer_that_never_answers(self):
        """A peer that accepts TCP and says nothing: the ACSE timeout ends the wait."""
        with socket.socket() as silent:
            silent.bind((LOOPBACK, 0))
            silent.listen(1)
            port = silent.getsockname()[1]
            run = self.scu("echo", port, extra=("--acse-timeout", "2"), timeout=30)
        self.assertEqual(run.returncode, 1, run)
        self.assertIn(f"no response from PACS at 127.0.0.1:{port} within 2 s", run.stderr)
        self.assertLess(run.elapsed, 10, run)


class SendTest(ScuTestCase):

    def test_send_ct_seg_and_rtstruct_to_storescp(self):
        ph = self.series(slices=4)
        implicit = self.series("implicit", slices=2, transfer_syntax="implicit")
        seg = rewrite(ph["files"][0], self.tmp / "seg.dcm", SOPClassUID=SEGMENTATION_STORAGE,
                      SOPInstanceUID=ph["sop_instance_uids"][0] + ".66", Modality="SEG")
        rt = rewrite(ph["files"][1], self.tmp / "rt.dcm", SOPClassUID=RT_STRUCTURE_SET_STORAGE,
                     SOPInstanceUID=ph["sop_instance_uids"][1] + ".481", Modality="RTSTRUCT")
        jpeg = rewrite(ph["files"][2], self.tmp / "plain.dcm",
                       SOPInstanceUID=ph["sop_instance_uids"][2] + ".70")
        proc = subprocess.run([DCMCJPEG, str(jpeg), str(self.tmp / "jpeg.dcm")],
                              capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        jpeg = self.tmp / "jpeg.dcm"
        files = ph["files"] + implicit["files"] + [seg, rt, jpeg]
        expected = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files]
        # +xa: storescp also accepts compressed syntaxes, so the JPEG file goes as it is.
        _, port = self.storescp(self.tmp / "in", extra=("+xa",))
        run = self.scu("store", port, files)
        self.assertEqual(run.returncode, 0, run)
        self.assertEqual([o[0] for o in run.outcomes], expected)
        for uid, verdict, status, detail in run.outcomes:
            self.assertEqual((verdict, status, detail), ("success", "0x0000", "-"), run)

        received = self.received(self.tmp / "in")
        self.assertEqual(sorted(received), sorted(expected))
        for uid, source in zip(expected, files):
            self.assertSameElements(received[uid], source)
        syntax = {uid: pydicom.dcmread(received[uid]).file_meta.TransferSyntaxUID
                  for uid in expected}
        self.assertEqual(syntax[expected[-1]], JPEG_LOSSLESS_SV1)  # not decompressed
        for uid in ph["sop_instance_uids"]:
            self.assertEqual(syntax[uid], EXPLICIT_LE)
        # storescp prefers Explicit VR to the Implicit VR the files are in: converted.
        for uid in implicit["sop_instance_uids"]:
            self.assertIn(syntax[uid], (EXPLICIT_LE, IMPLICIT_LE))
        self.assertEqual(pydicom.dcmread(received[expected[-3]]).SOPClassUID,
                         SEGMENTATION_STORAGE)
        self.assertEqual(pydicom.dcmread(received[expected[-2]]).SOPClassUID,
                         RT_STRUCTURE_SET_STORAGE)

    def test_converted_when_peer_accepts_only_implicit(self):
        """storescp +xi takes Implicit VR only: explicit files are converted, a JPEG Lossless
        file is decompressed; the pixels arrive unchanged."""
        ph = self.series(slices=2)
        jpeg = self.tmp / "jpeg.dcm"
        proc = subprocess.run([DCMCJPEG, str(ph["files"][1]), str(jpeg)], capture_output=True,
                              text=True)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(pydicom.dcmread(jpeg).file_meta.TransferSyntaxUID, JPEG_LOSSLESS_SV1)
        _, port = self.storescp(self.tmp / "in", extra=("+xi",))
        run = self.scu("store", port, [ph["files"][0], jpeg])
        self.assertEqual(run.returncode, 0, run)
        self.assertEqual([o[1:3] for o in run.outcomes], [("success", "0x0000")] * 2, run)
        received = self.received(self.tmp / "in")
        for uid, source in ph["by_uid"].items():
            got = pydicom.dcmread(received[uid])
            self.assertEqual(got.file_meta.TransferSyntaxUID, IMPLICIT_LE)
            self.assertSameElementsExceptPixels(got, pydicom.dcmread(source))
            self.assertEqual(got.pixel_array.tolist(),
                             pydicom.dcmread(source).pixel_array.tolist())

    def assertSameElementsExceptPixels(self, a, b):
        for elem in b:
            if elem.tag != 0x7FE00010:
                self.assertEqual(a[elem.tag].value, elem.value, elem.tag)

    def test_unconvertible_file_fails_clearly(self):
        """A JPEG 2000 file (DCMTK 3.6.7 has no decoder) to a peer that accepts uncompressed
        syntaxes only: that file fails saying why; the others go through."""
        ph = self.series(slices=2)
        ds = pydicom.dcmread(ph["files"][0])
        ds.file_meta.TransferSyntaxUID = JPEG2000_LOSSLESS
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = \
            ph["sop_instance_uids"][0] + ".90"
        ds.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 60])
        ds["PixelData"].is_undefined_length = True
        ds["PixelData"].VR = "OB"
        j2k = self.tmp / "j2k.dcm"
        ds.save_as(j2k, write_like_original=False)
        _, port = self.storescp(self.tmp / "in")  # default: uncompressed only
        run = self.scu("store", port, [j2k, ph["files"][1]])
        self.assertEqual(run.returncode, 0, run)
        uid, verdict, status, detail = run.outcomes[0]
        self.assertEqual((uid, verdict, status), (ds.SOPInstanceUID, "failure", "0x----"))
        self.assertIn("cannot convert from JPEG2000LosslessOnly to LittleEndianExplicit", detail)
        self.assertEqual(run.outcomes[1][1:3], ("success", "0x0000"), run)
        self.assertEqual(sorted(self.received(self.tmp / "in")), [ph["sop_instance_uids"][1]])

    def test_failure_status_and_unaccepted_class_from_segnode(self):
        """segnode refuses an invalid SOP Instance UID with C000 and an Error Comment, and does
        not accept RT Structure Set storage at all."""
        node = self.node()
        ph = self.series(slices=3)
        bad = rewrite(ph["files"][0], self.tmp / "bad.dcm", SOPInstanceUID="1.2.abc")
        rt = rewrite(ph["files"][1], self.tmp / "rt.dcm", SOPClassUID=RT_STRUCTURE_SET_STORAGE,
                     SOPInstanceUID=ph["sop_instance_uids"][1] + ".481", Modality="RTSTRUCT")
        run = self.scu("store", node.port, [bad, rt, ph["files"][2]], aec=NODE_AE)
        self.assertEqual(run.returncode, 0, run)
        self.assertEqual(len(run.outcomes), 3, run)
        uid, verdict, status, detail = run.outcomes[0]
        self.assertEqual((uid, verdict, status), ("1.2.abc", "failure", "0xC000"), run)
        self.assertTrue(detail.startswith("Error: Cannot understand: "), detail)
        self.assertIn("1.2.abc", detail)  # segnode's Error Comment names the UID
        uid, verdict, status, detail = run.outcomes[1]
        self.assertEqual((verdict, status), ("failure", "0x----"), run)
        self.assertIn(f"SOP class RTStructureSetStorage ({RT_STRUCTURE_SET_STORAGE}) not "
                      f"accepted by SEGNODE at 127.0.0.1:{node.port}: abstract syntax not "
                      "supported", detail)
        self.assertEqual(run.outcomes[2][:3],
                         (ph["sop_instance_uids"][2], "success", "0x0000"), run)
        self.assertEqual(self.stored_uids(node), [ph["sop_instance_uids"][2]])
        self.assertStopsCleanly(node)

    def test_nothing_acceptable(self):
        ph = self.series(slices=1)
        rt = rewrite(ph["files"][0], self.tmp / "rt.dcm", SOPClassUID=RT_STRUCTURE_SET_STORAGE,
                     SOPInstanceUID=ph["sop_instance_uids"][0] + ".481")
        # segnode rejects an association none of whose contexts it accepts.
        node = self.node()
        run = self.scu("store", node.port, [rt], aec=NODE_AE)
        self.assertEqual(run.returncode, 1, run)
        self.assertIn(f"association rejected by SEGNODE at 127.0.0.1:{node.port}", run.stderr)
        self.assertStopsCleanly(node)
        # storescp accepts the association and refuses the context.
        private = rewrite(ph["files"][0], self.tmp / "private.dcm", SOPClassUID="1.2.3.4.5.6.7")
        _, port = self.storescp(self.tmp / "in")
        run = self.scu("store", port, [private])
        self.assertEqual(run.returncode, 1, run)
        self.assertIn(f"PACS at 127.0.0.1:{port} accepted none of the proposed presentation "
                      "contexts: 1.2.3.4.5.6.7: abstract syntax not supported", run.stderr)

    def test_warning_and_failure_statuses_with_comments(self):
        ph = self.series(slices=4)
        _, port = self.mini_scp("--status", "B000,0000,B007,A701", "--comment",
                                "coerced PatientName")
        run = self.scu("store", port, ph["files"])
        self.assertEqual(run.returncode, 0, run)
        self.assertEqual([o[:3] for o in run.outcomes], [
            (ph["sop_instance_uids"][0], "warning", "0xB000"),
            (ph["sop_instance_uids"][1], "success", "0x0000"),
            (ph["sop_instance_uids"][2], "warning", "0xB007"),
            (ph["sop_instance_uids"][3], "failure", "0xA701")], run)
        details = [o[3] for o in run.outcomes]
        self.assertEqual(details[0], "Warning: Coercion of Data Elements: coerced PatientName")
        self.assertEqual(details[1], "-")
        self.assertEqual(details[2],
                         "Warning: Data Set does not match SOP Class: coerced PatientName")
        self.assertEqual(details[3], "Refused: Out of Resources: coerced PatientName")

    def test_converted_data_set_on_the_wire(self):
        """mini_scp accepts Implicit VR only and keeps the raw data set it received: it parses
        as implicit VR to the source's elements."""
        ph = self.series(slices=2)
        out = self.tmp / "mini"
        out.mkdir()
        _, port = self.mini_scp("--accept-ts", IMPLICIT_LE, "--out", str(out))
        run = self.scu("store", port, ph["files"])
        self.assertEqual([o[1] for o in run.outcomes], ["success"] * 2, run)
        for uid, source in ph["by_uid"].items():
            self.assertEqual((out / f"{uid}.ts").read_text(), IMPLICIT_LE)
            got = read_dataset(BytesIO((out / f"{uid}.dset").read_bytes()), True, True)
            src = pydicom.dcmread(source)
            self.assertEqual([e.tag for e in got], [e.tag for e in src])
            for elem in src:
                self.assertEqual(got[elem.tag].value, elem.value, elem.tag)


class BrokenAssociationTest(ScuTestCase):

    def test_peer_killed_mid_association(self):
        ph = self.series(slices=50)
        scp, port = self.storescp(self.tmp / "in", extra=("--sleep-after", "1"))
        cmd = [str(SEGNODE_TEST_SCU), "store", "--host", LOOPBACK, "--port", str(port),
               "--aec", "PACS", "--dimse-timeout", "20", *ph["files"]]
        start = time.monotonic()
        sender = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        self._procs.append(sender)
        deadline = time.monotonic() + 30
        while len(list((self.tmp / "in").iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        scp.kill()
        out, err = sender.communicate(timeout=60)
        elapsed = time.monotonic() - start
        self.assertEqual(sender.returncode, 0, err)
        run = ScuRun(subprocess.CompletedProcess(cmd, 0, out, err), elapsed)
        self.assertEqual([o[0] for o in run.outcomes], ph["sop_instance_uids"], run)
        verdicts = [o[1] for o in run.outcomes]
        self.assertIn("failure", verdicts, run)
        first_failure = verdicts.index("failure")
        self.assertGreaterEqual(first_failure, 1, run)
        self.assertEqual(verdicts[:first_failure], ["success"] * first_failure)
        self.assertEqual(verdicts[first_failure:], ["failure"] * (50 - first_failure))
        self.assertIn("PACS at 127.0.0.1", run.outcomes[first_failure][3])
        for o in run.outcomes[first_failure + 1:]:
            self.assertEqual(o[2], "0x----")
            self.assertTrue(o[3].startswith("not sent: "), o)
        self.assertLess(elapsed, 40, run)

    def test_peer_aborts(self):
        ph = self.series(slices=5)
        _, port = self.storescp(self.tmp / "in", extra=("--abort-after",))
        run = self.scu("store", port, ph["files"], timeout=60)
        self.assertEqual(run.returncode, 0, run)
        self.assertEqual([o[1:3] for o in run.outcomes], [("failure", "0x----")] * 5, run)
        self.assertIn(f"PACS at 127.0.0.1:{port} aborted the association",
                      run.outcomes[0][3])
        self.assertTrue(run.outcomes[0][3].startswith("no C-STORE response"), run)
        for o in run.outcomes[1:]:
            self.assertTrue(o[3].startswith("not sent: "), o)

    def test_silent_peer_times_out(self):
        ph = self.series(slices=3)
        _, port = self.mini_scp("--silent")
        run = self.scu("store", port, ph["files"], extra=("--dimse-timeout", "2"), timeout=60)
        self.assertEqual(run.returncode, 0, run)
        self.assertEqual([o[1] for o in run.outcomes], ["failure"] * 3, run)
        self.assertIn(f"no C-STORE response from PACS at 127.0.0.1:{port} within 2 s",
                      run.outcomes[0][3])
        self.assertLess(run.elapsed, 15, run)


if __name__ == "__main__":
    import unittest

    unittest.main()
