"""External algorithms: programs nobody here wrote (plastimatch) and our own scripts (a
PlatiPy-style nibabel script, a Kaapana-layout Otsu container) registered in the config and run
by `segnode run` and by jobs, end to end over DICOM; and every way a program can fail, each
with its job state and message while the node keeps serving.

The truth is computed here from the source series with pydicom and numpy: the phantom's soft
tissue is 40 HU, lung -850 HU, bone 700 HU, air -1000 HU, the table 200 HU (tests/phantom).
"""

import json
import os
import signal
import subprocess
import textwrap
import time
import unittest
from pathlib import Path

import numpy as np
import pydicom

from harness import SEGNODE_BIN, SegnodeTestCase, StoreScpPeer, run_cli
from rtstruct_reader import dice, load_slices, rasterise_roi, read_rtstruct
from seg_reader import SegObject, dciodvfy, source_slices

HERE = Path(__file__).resolve().parent
PROGRAMS = HERE / "external"
SEG_SOP = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"

THREE_SEGMENTS = """
[[algorithms.segments]]
label = 1
name = "Soft tissue"
category = ["SCT", "85756007", "Tissue"]
type = ["SCT", "85756007", "Tissue"]
color = [200, 120, 100]

[[algorithms.segments]]
label = 2
name = "Lung"
category = ["SCT", "123037004", "Anatomical Structure"]
type = ["SCT", "39607008", "Lung"]
color = [90, 160, 220]

[[algorithms.segments]]
label = 3
name = "Bone"
category = ["SCT", "85756007", "Tissue"]
type = ["SCT", "3138006", "Bone tissue"]
color = [240, 240, 200]
"""

THREE_SETTINGS = """
[algorithms.settings.soft_min]
type = "float"
default = 0.0
min = -1024.0
max = 3071.0
help = "lower bound of soft tissue (HU)"

[algorithms.settings.soft_max]
type = "float"
default = 100.0
min = -1024.0
max = 3071.0

[algorithms.settings.bone_min]
type = "float"
default = 300.0
min = -1024.0
max = 3071.0

[algorithms.settings.mode]
type = "enum"
default = "normal"
choices = ["normal", "empty", "undeclared", "wrong_grid", "no_output", "chatty", "sleep"]

[algorithms.settings.sleep_s]
type = "float"
default = 60.0
min = 0.0
max = 3600.0

[algorithms.settings.marker]
type = "string"
default = ""
"""


PM_BODY = textwrap.dedent("""\
    [[algorithms]]
    name = "pm_body"
    version = "1.9.4"
    description = "plastimatch patient (body) segmentation"
    command = ["plastimatch", "segment", "--input", "{input}", "--output-img", "{output}"]
    input_format = "nrrd"
    output = "labels.nrrd"
    timeout_s = 300

    [[algorithms.segments]]
    label = 1
    name = "Body"
    category = ["SCT", "123037004", "Anatomical Structure"]
    type = ["SCT", "38266002", "Entire body"]
    color = [177, 122, 101]
    """)


def three_labels_toml(name="three", extra=""):
    return textwrap.dedent(f"""\
        [[algorithms]]
        name = "{name}"
        version = "0.3"
        description = "soft tissue, lung and bone by thresholds (nibabel)"
        command = ["/usr/bin/python3", "{PROGRAMS / 'three_labels.py'}"]
        input_format = "nifti_gz"
        output = "labels.nii.gz"
        timeout_s = 120
        memory_mb = 2048
        kill_grace_s = 2
        {extra}
        """) + THREE_SETTINGS + THREE_SEGMENTS


def hu_volume(files):
    """(slices, rows, columns) HU in the loader's slice order."""
    order = [s.sop_instance_uid for s in source_slices(files)]
    by_uid = {}
    for f in files:
        ds = pydicom.dcmread(str(f))
        hu = ds.pixel_array.astype(np.float64) * float(getattr(ds, "RescaleSlope", 1)) + \
            float(getattr(ds, "RescaleIntercept", 0))
        by_uid[str(ds.SOPInstanceUID)] = np.rint(hu)
    return np.stack([by_uid[u] for u in order])


def three_label_truth(hu, soft=(0, 100), bone_min=300):
    truth = np.zeros(hu.shape, dtype=np.uint8)
    truth[(hu >= soft[0]) & (hu <= soft[1])] = 1
    truth[(hu >= -900) & (hu <= -500)] = 2
    truth[hu >= bone_min] = 3
    return truth


class ExternalTestCase(SegnodeTestCase):
    def algorithms_dir(self, *entries):
        d = self.tmp / "algorithms.d"
        d.mkdir(exist_ok=True)
        for i, text in enumerate(entries):
            (d / f"{i:02d}.toml").write_text(text)
        return d

    def config_file(self, algorithms_dir, text=""):
        path = self.tmp / "offline.toml"
        path.write_text(f'algorithms_dir = "{algorithms_dir}"\n' + text)
        return path

    def dest(self):
        peer = StoreScpPeer(self.tmp)
        self.addCleanup(peer.stop)
        return peer.start()

    def pipeline_node(self, dest, algorithm, algorithms_dir, outputs=("seg", "rtstruct"),
                      settings=None, jobs=None):
        rule = {"name": "ext", "modality": "CT", "algorithm": algorithm,
                "outputs": list(outputs), "destination": "dest"}
        if settings:
            rule["settings"] = settings
        config = {
            "algorithms_dir": str(algorithms_dir),
            "series": {"quiet_period_s": 1},
            "jobs": dict({"poll_interval_ms": 100}, **(jobs or {})),
            "send": {"initial_delay_s": 1, "max_delay_s": 2, "attempts": 3},
            "retention": {"min_free_mb": 0},
            "peers": [dest.peer_entry()],
            "rules": [rule],
        }
        return self.node(config)

    def wait_jobs(self, node, states, count=1, timeout=90):
        def reached():
            rows = node.query("SELECT id, state FROM jobs ORDER BY id")
            return len(rows) >= count and all(r[1] in states for r in rows)
        node.wait_for(reached, timeout, what=f"{count} job(s) in {states}\n{node.log_tail()}")
        return [dict(zip(("id", "state", "error", "runs"), r)) for r in
                node.query("SELECT id, state, error, runs FROM jobs ORDER BY id")]

    def send(self, node, files):
        proc = node.storescu(files, env=dict(os.environ, TCP_NODELAY="1"))
        self.assertProcOk(proc, "storescu")


class OfflineRun(ExternalTestCase):
    def test_three_label_script_through_segnode_run(self):
        series = self.series(rows=64, cols=56, slices=16)
        config = self.config_file(self.algorithms_dir(three_labels_toml()))
        out = self.tmp / "out"
        proc = run_cli("--config", str(config), "run", "--algorithm", "three", "--input",
                       str(Path(series["files"][0]).parent), "--output", str(out), "--format",
                       "seg", "--set", "bone_min=500", timeout=120)
        self.assertProcOk(proc, "segnode run (external)")
        self.assertRegex(proc.stdout, r"^three 0\.3: Soft tissue \d+ voxels")
        slices = source_slices(series["files"])
        seg = SegObject.read(out / "seg.dcm")
        truth = three_label_truth(hu_volume(series["files"]), bone_min=500)
        self.assertEqual(sorted(s.label for s in seg.segments.values()),
                         ["Bone", "Lung", "Soft tissue"])
        np.testing.assert_array_equal(seg.label_volume(slices), truth)
        self.assertEqual(dciodvfy(out / "seg.dcm")[0], [])
        manifest = json.loads((out / "segments.json").read_text())
        self.assertEqual(manifest["algorithm"]["settings"]["bone_min"], 500.0)

    def test_plastimatch_segment_as_external_algorithm(self):
        series = self.series(rows=96, cols=80, slices=24)
        entry = PM_BODY
        config = self.config_file(self.algorithms_dir(entry))
        out = self.tmp / "pm"
        proc = run_cli("--config", str(config), "run", "--algorithm", "pm_body", "--input",
                       str(Path(series["files"][0]).parent), "--output", str(out), "--format",
                       "seg", timeout=240)
        self.assertProcOk(proc, "segnode run pm_body")
        hu = hu_volume(series["files"])
        body = np.isin(hu, (40, -850, 700))
        mask = SegObject.read(out / "seg.dcm").label_volume(source_slices(series["files"])) == 1
        self.assertGreaterEqual(dice(mask, body), 0.95, f"Dice {dice(mask, body):.3f}")

    def test_kaapana_layout_otsu_container(self):
        series = self.series(rows=64, cols=64, slices=12)
        entry = textwrap.dedent(f"""\
            [[algorithms]]
            name = "kaapana_otsu"
            version = "0.1.0"
            command = ["/usr/bin/python3", "{PROGRAMS / 'kaapana_otsu.py'}"]
            layout = "kaapana"

            [[algorithms.segments]]
            label = 1
            name = "Foreground"
            """)
        config = self.config_file(self.algorithms_dir(entry))
        out = self.tmp / "k"
        proc = run_cli("--config", str(config), "run", "--algorithm", "kaapana_otsu", "--input",
                       str(Path(series["files"][0]).parent), "--output", str(out), "--format",
                       "seg", timeout=120)
        self.assertProcOk(proc, "segnode run kaapana_otsu")
        hu = hu_volume(series["files"])
        mask = SegObject.read(out / "seg.dcm").label_volume(source_slices(series["files"])) == 1
        # Otsu between air (-1000) and everything denser: the body and the table.
        self.assertTrue(np.array_equal(mask, hu > -500), f"{mask.sum()} vs {(hu > -500).sum()}")

    def test_config_check_names_the_problems(self):
        d = self.tmp / "bad.d"
        d.mkdir()
        (d / "a.toml").write_text(three_labels_toml("body"))
        proc = run_cli("config", "check", str(self.config_file(d)))
        self.assertEqual(proc.returncode, 1)
        self.assertRegex(proc.stderr, r"a\.toml:1:1: algorithms\[0\] \(body\)\.name: 'body' is "
                                      r"the name of a built-in algorithm")
        (d / "a.toml").write_text(three_labels_toml().replace("/usr/bin/python3",
                                                              "no-such-program-xyz"))
        proc = run_cli("config", "check", str(self.config_file(d)))
        self.assertEqual(proc.returncode, 1)
        self.assertIn("program 'no-such-program-xyz' not found in PATH", proc.stderr)
        (d / "a.toml").write_text(three_labels_toml())
        proc = run_cli("config", "check", str(self.config_file(d)))
        self.assertProcOk(proc, "config check")
        self.assertIn("algorithm: three 0.3 (external: /usr/bin/python3, layout plain, nifti_gz "
                      "-> labelmap, timeout 120 s, max_parallel 1)", proc.stdout)
        show = run_cli("--config", str(self.config_file(d)), "algorithm", "show", "three")
        self.assertProcOk(show, "algorithm show")
        self.assertIn("Bone tissue", show.stdout)
        self.assertIn("command       /usr/bin/python3", show.stdout)

    def test_wrong_setting_type_is_refused_before_running(self):
        series = self.series(rows=32, cols=32, slices=4)
        config = self.config_file(self.algorithms_dir(three_labels_toml()))
        proc = run_cli("--config", str(config), "run", "--algorithm", "three", "--input",
                       str(Path(series["files"][0]).parent), "--output", str(self.tmp / "o"),
                       "--set", "bone_min=high")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("bone_min", proc.stderr)
        self.assertIn("'high'", proc.stderr)
        self.assertFalse((self.tmp / "o").exists())


    def test_nnunet_layout_with_dataset_json(self):
        series = self.series(rows=48, cols=40, slices=10)
        (self.tmp / "dataset.json").write_text(
            '{"channel_names": {"0": "CT"}, "labels": {"background": 0, "lung": 1, "bone": 2}}')
        # What nnUNetv2_predict does with -i in -o out: case_0000.nii.gz -> case.nii.gz.
        (self.tmp / "fake_nnunet.py").write_text(textwrap.dedent("""\
            import os, sys
            import nibabel as nib, numpy as np
            i, o = sys.argv[sys.argv.index("-i") + 1], sys.argv[sys.argv.index("-o") + 1]
            assert sorted(os.listdir(i)) == ["case_0000.nii.gz"], os.listdir(i)
            img = nib.load(os.path.join(i, "case_0000.nii.gz"))
            hu = np.asanyarray(img.dataobj)
            seg = np.zeros(hu.shape, np.uint8)
            seg[(hu > -900) & (hu < -500)] = 1
            seg[hu > 300] = 2
            nib.save(nib.Nifti1Image(seg, img.affine), os.path.join(o, "case.nii.gz"))
            """))
        entry = textwrap.dedent(f"""\
            [[algorithms]]
            name = "nnunet_fake"
            version = "Dataset999"
            layout = "nnunet"
            command = ["/usr/bin/python3", "{self.tmp / 'fake_nnunet.py'}", "-i", "{{in_dir}}", "-o", "{{out_dir}}"]
            segments_file = "{self.tmp / 'dataset.json'}"
            """)
        config = self.config_file(self.algorithms_dir(entry))
        out = self.tmp / "nn"
        proc = run_cli("--config", str(config), "run", "--algorithm", "nnunet_fake", "--input",
                       str(Path(series["files"][0]).parent), "--output", str(out), "--format",
                       "seg", timeout=120)
        self.assertProcOk(proc, "segnode run nnunet_fake")
        hu = hu_volume(series["files"])
        truth = np.zeros(hu.shape, np.uint8)
        truth[(hu > -900) & (hu < -500)] = 1
        truth[hu > 300] = 2
        seg = SegObject.read(out / "seg.dcm")
        self.assertEqual(sorted(s.label for s in seg.segments.values()), ["bone", "lung"])
        np.testing.assert_array_equal(seg.label_volume(source_slices(series["files"])), truth)


class Jobs(ExternalTestCase):
    def test_end_to_end_three_labels_seg_and_rtstruct(self):
        dest = self.dest()
        node = self.pipeline_node(dest, "three", self.algorithms_dir(three_labels_toml()))
        series = self.series(rows=80, cols=72, slices=20)
        self.send(node, series["files"])
        [job] = self.wait_jobs(node, ("done", "failed"))
        self.assertEqual(job["state"], "done", f"{job}\n{node.log_tail()}")

        segs, rts = dest.files("SG."), dest.files("RS.")
        self.assertEqual((len(segs), len(rts)), (1, 1), f"received: {dest.files()}")
        for f in segs + rts:
            self.assertEqual(dciodvfy(f)[0], [], f"dciodvfy errors in {f}")
        slices = source_slices(series["files"])
        truth = three_label_truth(hu_volume(series["files"]))
        seg = SegObject.read(segs[0])
        self.assertEqual(len(seg.segments), 3)
        np.testing.assert_array_equal(seg.label_volume(slices), truth)
        self.assertEqual(pydicom.dcmread(str(segs[0])).StudyInstanceUID, series["study_uid"])

        rt = read_rtstruct(rts[0])
        self.assertEqual(len(rt.rois), 3)
        rt_slices = load_slices(series["files"])
        names = {roi.name: number for number, roi in rt.rois.items()}
        for label, name in ((1, "Soft tissue"), (2, "Lung"), (3, "Bone")):
            mask = rasterise_roi(rt, names[name], rt_slices)
            self.assertGreaterEqual(dice(mask, truth == label), 0.99, name)

        # The run contract as the program saw it, and the log.
        log = (node.workdir / "jobs" / str(job["id"]) / "job.log").read_text()
        self.assertIn(f"three_labels: job {job['id']} series {series['series_uid']}", log)
        self.assertIn("exited with status 0", log)
        self.assertFalse((node.workdir / "jobs" / str(job["id"]) / "work").exists(),
                         "the work dir is removed after a successful run")
        self.assertStopsCleanly(node)

    def test_plastimatch_through_a_job(self):
        dest = self.dest()
        node = self.pipeline_node(dest, "pm_body", self.algorithms_dir(PM_BODY), outputs=("seg",))
        series = self.series(rows=96, cols=80, slices=24)
        self.send(node, series["files"])
        [job] = self.wait_jobs(node, ("done", "failed"), timeout=240)
        self.assertEqual(job["state"], "done", f"{job}\n{node.log_tail()}")
        [seg_file] = dest.files("SG.")
        self.assertEqual(dciodvfy(seg_file)[0], [])
        hu = hu_volume(series["files"])
        mask = SegObject.read(seg_file).label_volume(source_slices(series["files"])) == 1
        self.assertGreaterEqual(dice(mask, np.isin(hu, (40, -850, 700))), 0.95)

    def test_failures_each_with_state_and_message_while_others_finish(self):
        dest = self.dest()
        algorithms = self.algorithms_dir(
            three_labels_toml(),
            textwrap.dedent("""\
                [[algorithms]]
                name = "exit2"
                version = "1"
                command = ["/bin/sh", "-c", "echo 'model weights missing' >&2; exit 2"]
                [[algorithms.segments]]
                label = 1
                name = "A"
                """),
            textwrap.dedent("""\
                [[algorithms]]
                name = "killed"
                version = "1"
                command = ["/bin/sh", "-c", "kill -9 $$"]
                [[algorithms.segments]]
                label = 1
                name = "A"
                """),
            textwrap.dedent("""\
                [[algorithms]]
                name = "hang"
                version = "1"
                command = ["/bin/sleep", "600"]
                timeout_s = 2
                kill_grace_s = 1
                [[algorithms.segments]]
                label = 1
                name = "A"
                """),
            textwrap.dedent("""\
                [[algorithms]]
                name = "hog"
                version = "1"
                command = ["/usr/bin/python3", "-c", "import time; b = bytearray(400 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); time.sleep(30)"]
                memory_mb = 100
                kill_grace_s = 1
                [[algorithms.segments]]
                label = 1
                name = "A"
                """))
        node = self.pipeline_node(dest, "three", algorithms, outputs=("seg",),
                                  jobs={"workers": 2})
        series = self.series(rows=48, cols=48, slices=8)
        self.send(node, series["files"])
        self.wait_jobs(node, ("done",), count=1)
        uid = series["series_uid"]
        cases = [
            ("exit2", [], "exit2 exited with status 2; last output:\nmodel weights missing"),
            ("killed", [], "killed exited... "),
            ("hang", [], "hang timed out after 2 s (timeout_s = 2)"),
            ("hog", [], "hog exceeded the memory limit"),
            ("three", ["--set", "mode=no_output"], "no output: the program exited 0 but did not "
                                                    "write"),
            ("three", ["--set", "mode=wrong_grid"], "the label map's grid differs from the "
                                                     "source series"),
            ("three", ["--set", "mode=undeclared"], "labels the algorithm does not declare: 7 "
                                                     "(1 voxels)"),
        ]
        for algorithm, sets, _ in cases:
            proc = node.cli("series", "run", uid, "--algorithm", algorithm, "--to", "dest",
                            "--outputs", "seg", *sets)
            self.assertProcOk(proc, f"series run {algorithm}")
        # A normal job queued behind them still finishes.
        self.assertProcOk(node.cli("series", "run", uid, "--algorithm", "three", "--to", "dest",
                                   "--outputs", "seg"), "series run three")
        jobs = self.wait_jobs(node, ("done", "failed"), count=len(cases) + 2, timeout=150)
        failed = jobs[1:-1]
        self.assertEqual(jobs[-1]["state"], "done", node.log_tail())
        for job, (algorithm, _, message) in zip(failed, cases):
            self.assertEqual(job["state"], "failed", f"{algorithm}: {job}")
            if algorithm == "killed":
                self.assertIn("killed by signal 9 (SIGKILL)", job["error"])
            else:
                self.assertIn(message, job["error"], algorithm)
        self.assertIn("grid differs", failed[5]["error"])
        self.assertRegex(failed[5]["error"], r"dims 48x48x8 vs 24x24x8")
        self.assertEqual(node.echo().returncode, 0, "the node still serves")
        self.assertStopsCleanly(node)

    def test_fifty_megabytes_of_stdout_are_capped_in_the_log(self):
        dest = self.dest()
        node = self.pipeline_node(dest, "three", self.algorithms_dir(three_labels_toml()),
                                  outputs=("seg",), settings={"mode": "chatty"})
        series = self.series(rows=32, cols=32, slices=6)
        self.send(node, series["files"])
        [job] = self.wait_jobs(node, ("done", "failed"), timeout=120)
        self.assertEqual(job["state"], "done", job)
        log = node.workdir / "jobs" / str(job["id"]) / "job.log"
        self.assertLess(log.stat().st_size, 4 * 1024 * 1024)
        text = log.read_text()
        # Counted in full (50 MB plus the script's first line), logged only up to the cap.
        self.assertRegex(text[-4000:], r"exited with status 0 after [\d.]+ s \(peak RSS \d+ MB, "
                                       r"500000\d\d bytes stdout")
        self.assertEqual(text.count("[output beyond 1048576 bytes not logged; tail kept]"), 1)

    def test_empty_result_is_done_with_nothing_sent(self):
        dest = self.dest()
        node = self.pipeline_node(dest, "three", self.algorithms_dir(three_labels_toml()),
                                  settings={"mode": "empty"})
        series = self.series(rows=32, cols=32, slices=6)
        self.send(node, series["files"])
        [job] = self.wait_jobs(node, ("done", "failed"))
        self.assertEqual(job["state"], "done", job)
        self.assertEqual(dest.files(), [], "no SEG without segments is sent")
        self.assertEqual(node.scalar("SELECT count(*) FROM job_outputs"), 0)
        show = node.cli("job", "show", str(job["id"]))
        self.assertProcOk(show, "job show")
        self.assertIn("empty result: three found none of its segments; nothing to send",
                      show.stdout)

    def test_cancel_while_running_kills_the_program(self):
        dest = self.dest()
        node = self.pipeline_node(dest, "three", self.algorithms_dir(three_labels_toml()),
                                  outputs=("seg",), settings={"mode": "sleep", "sleep_s": 300})
        series = self.series(rows=32, cols=32, slices=6)
        self.send(node, series["files"])
        pid_file = node.workdir / "jobs" / "1" / "work" / "program.pid"
        node.wait_for(pid_file.exists, 60, what="the program to start")
        pid = int(pid_file.read_text())
        self.assertProcOk(node.cli("job", "cancel", "1"), "job cancel")
        [job] = self.wait_jobs(node, ("cancelled",), timeout=30)
        self.assertFalse(Path(f"/proc/{pid}").exists(), "the program was killed")
        self.assertEqual(node.echo().returncode, 0)
        self.assertStopsCleanly(node)

    def test_node_stopped_while_running_requeues_then_done_once(self):
        dest = self.dest()
        marker = self.tmp / "first-run"
        node = self.pipeline_node(dest, "three", self.algorithms_dir(three_labels_toml()),
                                  outputs=("seg",),
                                  settings={"mode": "sleep", "sleep_s": 300,
                                            "marker": str(marker)})
        series = self.series(rows=32, cols=32, slices=6)
        self.send(node, series["files"])
        pid_file = node.workdir / "jobs" / "1" / "work" / "program.pid"
        node.wait_for(pid_file.exists, 60, what="the program to start")
        pid = int(pid_file.read_text())
        node.stop()
        self.assertFalse(Path(f"/proc/{pid}").exists(), "shutdown stopped the program")
        self.assertEqual(node.scalar("SELECT state FROM jobs WHERE id = 1"), "queued")
        self.restart(node)
        [job] = self.wait_jobs(node, ("done", "failed"), timeout=90)
        self.assertEqual((job["state"], job["runs"]), ("done", 2), job)
        self.assertEqual(len(dest.files("SG.")), 1, "sent exactly once")
        self.assertStopsCleanly(node)

    def test_mercure_layout_program_writes_its_own_seg_and_rtstruct(self):
        dest = self.dest()
        # A mercure-style module that writes DICOM SEG and RTSTRUCT itself: segnode's own
        # offline `run` on the staged DICOM files, after checking mercure's task.json is there.
        entry = textwrap.dedent(f"""\
            [[algorithms]]
            name = "mercure_body"
            version = "1.0"
            layout = "mercure"
            command = ["/bin/sh", "-c", "test -f \\"$MERCURE_IN_DIR/task.json\\" && exec {SEGNODE_BIN} run --algorithm body --input \\"$MERCURE_IN_DIR\\" --output \\"$MERCURE_OUT_DIR\\" --format both"]
            """)
        node = self.pipeline_node(dest, "mercure_body", self.algorithms_dir(entry))
        series = self.series(rows=64, cols=56, slices=12)
        self.send(node, series["files"])
        [job] = self.wait_jobs(node, ("done", "failed"))
        self.assertEqual(job["state"], "done", f"{job}\n{node.log_tail()}")
        segs, rts = dest.files("SG."), dest.files("RS.")
        self.assertEqual((len(segs), len(rts)), (1, 1), f"received: {dest.files()}")
        for f in segs + rts:
            ds = pydicom.dcmread(str(f))
            self.assertEqual(ds.StudyInstanceUID, series["study_uid"])
        kinds = sorted(r[0] for r in node.query("SELECT kind FROM job_outputs"))
        self.assertEqual(kinds, ["rtstruct", "seg"])
        log = (node.workdir / "jobs" / str(job["id"]) / "job.log").read_text()
        self.assertIn("ignored segments.json (not a DICOM file)", log)

    def test_dicom_output_of_another_series_is_refused(self):
        dest = self.dest()
        other = self.series("other", rows=32, cols=32, slices=4)
        other_dir = Path(other["files"][0]).parent
        entry = textwrap.dedent(f"""\
            [[algorithms]]
            name = "wrong_ref"
            version = "1.0"
            input_format = "dicom"
            output_kind = "dicom"
            command = ["{SEGNODE_BIN}", "run", "--algorithm", "body", "--input", "{other_dir}", "--output", "{{out_dir}}", "--format", "seg"]
            """)
        node = self.pipeline_node(dest, "wrong_ref", self.algorithms_dir(entry))
        series = self.series(rows=32, cols=32, slices=4)
        self.send(node, series["files"])
        [job] = self.wait_jobs(node, ("done", "failed"))
        self.assertEqual(job["state"], "failed", job)
        # seg.dcm belongs to the other series' study: the first mismatch is reported.
        self.assertIn("output seg.dcm: SEG ", job["error"])
        self.assertIn(f"belongs to study {other['study_uid']}, expected {series['study_uid']}",
                      job["error"])
        self.assertEqual(dest.files(), [], "nothing was sent")


if __name__ == "__main__":
    unittest.main()
