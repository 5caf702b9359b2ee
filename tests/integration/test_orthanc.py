"""Orthanc as a real PACS: a CT series is stored into Orthanc (the Debian package, 1.10), an
Orthanc Lua rule (OnStableSeries) forwards it to `segnode serve`, segnode segments it and
sends a SEG and an RTSTRUCT back to the sender, and they appear in Orthanc under the same
study, seen through Orthanc's REST API.

Orthanc 1.10 has no option to choose the address it listens on: its DICOM and HTTP servers
bind the wildcard address. The test only ever talks to it over 127.0.0.1 and locks it down:
`RemoteAccessAllowed: false` (HTTP answers loopback clients only), the called AE title is
checked, and only the two modalities declared here, from 127.0.0.1, may associate
(`DicomAlwaysAllowEcho/Store: false`, `DicomCheckModalityHost: true`).

Skipped when Orthanc is not installed."""

import json
import os
import shutil
import signal
import subprocess
import time
import unittest
import urllib.request
from pathlib import Path

import pydicom

from harness import (LOOPBACK, NODE_AE, STORESCU, TOOL_ENV, SegnodeTestCase, dataset_bytes,
                     free_port, read_log)
from seg_reader import dciodvfy

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
ORTHANC_AE = "ORTHANC"
SCANNER_AE = "CTSCANNER"  # the modality that stores the CT into Orthanc
STABLE_AGE_S = 2          # Orthanc: seconds without new instances before a series is stable
# Orthanc as a site runs it: without TCP_NODELAY in its environment, its DCMTK sockets keep
# Nagle's algorithm on (DESIGN.md). Measured here: ~45 ms per instance both ways (24 small
# instances: 1.1 s into Orthanc and 1.1 s forwarded to segnode; 0.12 s and 0.06 s with
# TCP_NODELAY=1 in Orthanc's environment). segnode's own sends back are not affected.
ORTHANC_ENV = {k: v for k, v in os.environ.items() if k != "TCP_NODELAY"}
SEG_SOP = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"

# The auto-routing rule under test. `tags` holds the series' main DICOM tags. Orthanc 1.10's
# Lua SendToModality() takes one *instance* ID: given a series ID it logs "Unable to read
# attachment dicom of instance <series id>" and its Lua job still ends in success. So the
# rule starts a C-STORE job for the whole series through the REST API (one association,
# Orthanc's own DicomAet as calling AE), asynchronously so the Lua callback returns at once.
FORWARD_CT_LUA = """\
function OnStableSeries(seriesId, tags, metadata)
   if tags['Modality'] == 'CT' then
      local job = ParseJson(RestApiPost('/modalities/segnode/store',
         DumpJson({ Resources = { seriesId }, Asynchronous = true }, true)))
      print('segnode-test: forwarding CT series ' .. seriesId .. ' to segnode, job ' .. job['ID'])
   end
end
"""


class OrthancServer:
    """One Orthanc process with its own JSON config, storage and index in `base_dir`, on
    free loopback ports, its log (stdout+stderr, --verbose) kept in `orthanc.log`."""

    def __init__(self, base_dir, modalities, lua_scripts=()):
        self.base_dir = Path(base_dir)
        self.modalities = modalities
        self.lua_scripts = [str(p) for p in lua_scripts]
        self.config_path = self.base_dir / "orthanc.json"
        self.log_path = self.base_dir / "orthanc.log"
        self.storage = self.base_dir / "orthanc-storage"
        self.dicom_port = None
        self.http_port = None
        self.proc = None

    def write_config(self):
        config = {
            "Name": "segnode-test-orthanc",
            "StorageDirectory": str(self.storage),
            "IndexDirectory": str(self.storage),
            "DicomAet": ORTHANC_AE,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            # Loopback only, as far as 1.10 allows (see the module docstring).
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": True,
            "DicomAlwaysAllowEcho": False,
            "DicomAlwaysAllowStore": False,
            "DicomCheckModalityHost": True,
            "DicomModalities": self.modalities,
            "LuaScripts": self.lua_scripts,
            "StableAge": STABLE_AGE_S,
            "DicomScuTimeout": 30,
            # Nothing of this run survives it; no extra surfaces.
            "SaveJobs": False,
            "WebDavEnabled": False,
            "OrthancExplorerEnabled": False,
            "HttpsVerifyPeers": False,
            "Plugins": [],
        }
        self.config_path.write_text(json.dumps(config, indent=2))

    def start(self, timeout=30.0):
        """Starts Orthanc and waits until GET /system answers. Retries on a port taken
        between free_port() and Orthanc's bind()."""
        for attempt in range(3):
            self.dicom_port, self.http_port = free_port(), free_port()
            while self.http_port == self.dicom_port:
                self.http_port = free_port()
            self.write_config()
            with open(self.log_path, "ab") as log:
                log.write(f"---- start (attempt {attempt + 1}) dicom {self.dicom_port} "
                          f"http {self.http_port}\n".encode())
                log.flush()
                self.proc = subprocess.Popen([ORTHANC, "--verbose", str(self.config_path)],
                                             stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, cwd=self.base_dir,
                                             env=ORTHANC_ENV)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    system = self.get("/system", timeout=2)
                    if system.get("DicomPort") == self.dicom_port:
                        return system
                except (OSError, ValueError):
                    pass
                time.sleep(0.2)
            if self.proc.poll() is None:
                self.kill()
                raise AssertionError(f"Orthanc's REST API did not answer within {timeout} s\n"
                                     + self.log_tail())
            if "address already in use" in self.log_text().lower():
                continue
            raise AssertionError(f"Orthanc exited with {self.proc.returncode} at start\n"
                                 + self.log_tail())
        raise AssertionError("Orthanc could not bind free ports three times\n" + self.log_tail())

    def stop(self, timeout=30.0):
        """SIGTERM and wait; returns the exit status (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    # REST --------------------------------------------------------------
    def request(self, method, path, body=None, timeout=10):
        data = None
        headers = {}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(f"http://{LOOPBACK}:{self.http_port}{path}", data=data,
                                     method=method, headers=headers)
        # No proxy: the request must go straight to 127.0.0.1 whatever the environment says.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=timeout) as resp:
            return resp.read()

    def get(self, path, timeout=10):
        return json.loads(self.request("GET", path, timeout=timeout))

    def post(self, path, body, timeout=10):
        return json.loads(self.request("POST", path, body, timeout=timeout))

    # logs ----------------------------------------------------------------
    def log_text(self):
        return read_log(self.log_path)

    def log_tail(self, lines=40):
        """The end of the log without the REST requests the test itself made."""
        text = [l for l in self.log_text().splitlines() if "(http)" not in l]
        return f"--- last lines of {self.log_path} (HTTP requests left out):\n" + \
            "\n".join(text[-lines:])

    def jobs(self):
        """Orthanc's jobs (type, state, error), for failure messages."""
        try:
            return [(j.get("Type"), j.get("State"), j.get("ErrorDescription"))
                    for j in self.get("/jobs?expand")]
        except (OSError, ValueError) as e:
            return f"(cannot list Orthanc's jobs: {e})"


def listening_addresses(port):
    """Local addresses with a TCP socket listening on `port` (from /proc/net/tcp{,6})."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state = fields[1], fields[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.append(address)
    return found


class OrthancAsPacs(SegnodeTestCase):
    @classmethod
    def setUpClass(cls):
        if not Path(ORTHANC).is_file():
            raise unittest.SkipTest(f"Orthanc is not installed ({ORTHANC} not found; Debian "
                                    "package 'orthanc'): the Orthanc end-to-end test is skipped")
        super().setUpClass()

    def start_orthanc(self, segnode_port):
        lua = self.tmp / "forward-ct.lua"
        lua.write_text(FORWARD_CT_LUA)
        orthanc = OrthancServer(self.tmp, {
            "segnode": [NODE_AE, LOOPBACK, segnode_port],
            # Orthanc never calls the scanner; its port only has to be valid.
            "ctscanner": [SCANNER_AE, LOOPBACK, 104],
        }, [lua])
        self.addCleanup(orthanc.kill)
        system = orthanc.start()
        self.assertEqual((system["DicomAet"], system["Version"][:4]), (ORTHANC_AE, "1.10"),
                         f"unexpected Orthanc: {system}")
        return orthanc

    def context(self, node, orthanc):
        return f"\nOrthanc jobs: {orthanc.jobs()}\n{node.log_tail(30)}\n{orthanc.log_tail(30)}"

    def test_ct_forwarded_by_lua_comes_back_as_seg_and_rtstruct_in_the_same_study(self):
        # Each needs the other's port: segnode's port is chosen first and given to Orthanc's
        # DicomModalities, then segnode is configured with the ports Orthanc actually bound.
        node = self.node(start=False)
        node.port = free_port()
        orthanc = self.start_orthanc(node.port)
        node._overrides = {
            "series": {"quiet_period_s": 1},
            "jobs": {"poll_interval_ms": 100},
            "send": {"initial_delay_s": 1, "max_delay_s": 2, "attempts": 10},
            "retention": {"min_free_mb": 0},
            "peers": [{"name": "pacs", "ae_title": ORTHANC_AE, "host": LOOPBACK,
                       "port": orthanc.dicom_port}],
            "rules": [{"name": "ct-body", "modality": "CT", "algorithm": "body",
                       "outputs": ["seg", "rtstruct"], "destination": "sender"}],
        }
        planned_port = node.port
        node.start()
        if node.port != planned_port:  # the planned port was taken: tell Orthanc
            orthanc.request("PUT", "/modalities/segnode",
                            {"AET": NODE_AE, "Host": LOOPBACK, "Port": node.port})
        # segnode binds loopback only; Orthanc 1.10 cannot (see the module docstring).
        self.assertEqual(listening_addresses(node.port), ["0100007F"])
        orthanc_binds = sorted(set(listening_addresses(orthanc.dicom_port)
                                   + listening_addresses(orthanc.http_port)))

        series = self.series(rows=96, cols=80, slices=24)
        ct_uids = set(series["sop_instance_uids"])

        # 1. The scanner stores the CT into Orthanc over DICOM.
        t0 = time.monotonic()
        proc = subprocess.run(
            [STORESCU, "-aet", SCANNER_AE, "-aec", ORTHANC_AE, "-to", "10", "-ta", "10",
             "-td", "30", LOOPBACK, str(orthanc.dicom_port), *series["files"]],
            capture_output=True, text=True, timeout=120, env=TOOL_ENV)
        self.assertProcOk(proc, "storescu to Orthanc")
        uploaded = time.monotonic()
        upload_epoch_ms = int(time.time() * 1000)

        found = orthanc.post("/tools/lookup", series["study_uid"].encode())
        self.assertEqual([r["Type"] for r in found], ["Study"], f"lookup: {found}")
        study_id = found[0]["ID"]
        ct_series = orthanc.get(f"/studies/{study_id}/series")
        self.assertEqual(len(ct_series), 1)
        self.assertEqual(len(ct_series[0]["Instances"]), len(ct_uids),
                         "Orthanc stored every slice")

        # 2. Lua forwards it once stable; segnode routes it, runs `body`, sends back; the
        #    SEG and RTSTRUCT appear under the study.  Budget: StableAge + Orthanc's stability
        #    check + the forward + quiet period + job + send, all generous on 2 busy cores.
        seen = {}
        deadline = time.monotonic() + 120
        by_modality = {}
        while time.monotonic() < deadline:
            by_modality = {}
            for s in orthanc.get(f"/studies/{study_id}/series"):
                by_modality.setdefault(s["MainDicomTags"].get("Modality"), []).append(s)
            for modality in ("SEG", "RTSTRUCT"):
                if modality in by_modality and modality not in seen:
                    seen[modality] = time.monotonic()
            if len(seen) == 2:
                break
            time.sleep(0.1)
        else:
            jobs = [tuple(j) for j in node.query("SELECT id, state, error FROM jobs")]
            self.fail(f"no SEG and RTSTRUCT in Orthanc's study within 120 s: series by "
                      f"modality {sorted(by_modality)}, segnode jobs {jobs}"
                      + self.context(node, orthanc))

        self.assertEqual(sorted(by_modality), ["CT", "RTSTRUCT", "SEG"], by_modality)
        self.assertTrue(all(len(v) == 1 for v in by_modality.values()), by_modality)
        # Same study: one patient and one study in Orthanc, no study created by the results.
        self.assertEqual(len(orthanc.get("/patients")), 1)
        self.assertEqual(orthanc.get("/studies"), [study_id])

        # 3. segnode's side: the series came from Orthanc's AE (Orthanc forwards with its own
        #    DicomAet as calling AE), "sender" resolved to the ORTHANC peer, job done once.
        job = node.wait_for(
            lambda: node.query_one("SELECT id, state, destination, dest_ae, dest_host, "
                                   "dest_port, runs, send_attempts, error, created_at, "
                                   "started_at, finished_at FROM jobs WHERE state = 'done'"),
            30, what="the job recorded as done")
        self.assertEqual(node.scalar("SELECT count(*) FROM jobs"), 1)
        self.assertEqual(
            (job["state"], job["destination"], job["dest_ae"], job["dest_host"],
             job["dest_port"], job["runs"], job["send_attempts"]),
            ("done", "sender", ORTHANC_AE, LOOPBACK, orthanc.dicom_port, 1, 1),
            f"{dict(job)}" + self.context(node, orthanc))
        received = node.query_one("SELECT series_uid, calling_ae, called_ae, peer_address, "
                                  "instance_count, first_received_at, last_received_at, "
                                  "completed_at FROM series")
        self.assertEqual(
            (received["series_uid"], received["calling_ae"], received["called_ae"],
             received["peer_address"], received["instance_count"]),
            (series["series_uid"], ORTHANC_AE, NODE_AE, LOOPBACK, len(ct_uids)))
        outputs = {r["kind"]: r for r in node.query(
            "SELECT kind, path, sop_instance_uid, sent_at, send_status FROM job_outputs "
            "WHERE job_id = ?", (job["id"],))}
        self.assertEqual(sorted(outputs), ["rtstruct", "seg"])
        self.assertTrue(all(o["sent_at"] and o["send_status"] == 0 for o in outputs.values()))

        # 4. The SEG as Orthanc stores it: received over DICOM from SEGNODE, the very object
        #    segnode wrote, referencing the CT series, valid for dciodvfy. Same for RTSTRUCT.
        files = {}
        for modality, kind, sop_class in (("SEG", "seg", SEG_SOP),
                                          ("RTSTRUCT", "rtstruct", RTSTRUCT_SOP)):
            [instance_id] = by_modality[modality][0]["Instances"]
            self.assertEqual(
                orthanc.request("GET", f"/instances/{instance_id}/metadata/RemoteAET").decode(),
                NODE_AE, f"{modality} came from segnode's AE")
            path = self.tmp / f"from-orthanc-{kind}.dcm"
            path.write_bytes(orthanc.request("GET", f"/instances/{instance_id}/file"))
            files[kind] = path
            ds = pydicom.dcmread(str(path))
            self.assertEqual((ds.SOPClassUID, ds.StudyInstanceUID, ds.SOPInstanceUID),
                             (sop_class, series["study_uid"], outputs[kind]["sop_instance_uid"]))
            self.assertEqual(dataset_bytes(path),
                             dataset_bytes(node.workdir / outputs[kind]["path"]),
                             f"Orthanc holds exactly the {modality} data set segnode wrote")
            errors, _ = dciodvfy(path)
            self.assertEqual(errors, [], f"dciodvfy errors in the {modality} from Orthanc")

        seg = pydicom.dcmread(str(files["seg"]))
        [ref_series] = seg.ReferencedSeriesSequence
        self.assertEqual(ref_series.SeriesInstanceUID, series["series_uid"])
        referenced = {i.ReferencedSOPInstanceUID for i in ref_series.ReferencedInstanceSequence}
        self.assertEqual(referenced, ct_uids, "the SEG references every CT slice")
        self.assertEqual(seg.FrameOfReferenceUID, pydicom.dcmread(
            series["files"][0], stop_before_pixels=True).FrameOfReferenceUID)

        # 5. The Lua rule forwards CT only: once the SEG and RTSTRUCT series are stable too,
        #    segnode has still received just the CT series (no loop back into segnode).
        def all_stable():
            return all(orthanc.get(f"/series/{s}")["IsStable"]
                       for s in orthanc.get(f"/studies/{study_id}")["Series"])
        deadline = time.monotonic() + 30
        while not all_stable():
            self.assertLess(time.monotonic(), deadline, "series never became stable in Orthanc"
                            + orthanc.log_tail())
            time.sleep(0.2)
        time.sleep(1.5)  # a forward of SEG/RTSTRUCT, were there one, would be under way now
        self.assertEqual(node.scalar("SELECT count(*) FROM series"), 1,
                         "segnode received more than the CT" + self.context(node, orthanc))
        self.assertEqual(orthanc.log_text().count("segnode-test: forwarding CT series"), 1)
        # Orthanc's side of the forward: one C-STORE job, successful.
        store_jobs = [j for j in orthanc.get("/jobs?expand") if j["Type"] == "DicomModalityStore"]
        self.assertEqual([(j["State"], j["Content"].get("RemoteAet")) for j in store_jobs],
                         [("Success", NODE_AE)], store_jobs)

        # Timings after the upload finished, for the report.
        def since_upload(epoch_ms):
            return (epoch_ms - upload_epoch_ms) / 1000.0
        timings = [
            ("first instance at segnode", since_upload(received["first_received_at"])),
            ("last instance at segnode", since_upload(received["last_received_at"])),
            ("series complete at segnode", since_upload(received["completed_at"])),
            ("job started", since_upload(job["started_at"])),
            ("job done (all sent)", since_upload(job["finished_at"])),
            ("SEG visible in Orthanc", seen["SEG"] - uploaded),
            ("RTSTRUCT visible in Orthanc", seen["RTSTRUCT"] - uploaded),
        ]
        print(f"\n  upload of {len(ct_uids)} instances to Orthanc took {uploaded - t0:.2f} s; "
              f"then (StableAge {STABLE_AGE_S} s, quiet period 1 s):")
        for what, seconds in timings:
            print(f"    {what:<28} {seconds:6.2f} s")
        print(f"  Orthanc listened on {orthanc_binds} (/proc/net/tcp notation; 00000000 is the "
              "wildcard address), segnode on 0100007F (127.0.0.1)")

        self.assertStopsCleanly(node)
        self.assertEqual(orthanc.stop(), 0, "Orthanc exit status after SIGTERM\n"
                         + orthanc.log_tail())


if __name__ == "__main__":
    unittest.main()
