"""The pipeline end to end: storescu -> segnode (routing rule, job, algorithm, SEG/RTSTRUCT
writers) -> C-STORE to a storescp destination, plus retries, restarts, routing semantics, the
job/series/peer CLI, the volume guard and the disk guard."""

import os
import signal
import subprocess
import time
import unittest
from pathlib import Path

import pydicom

from harness import (LOOPBACK, NODE_AE, SEGNODE_BIN, SegnodeTestCase, StoreScpPeer, free_port,
                     run_cli)
from seg_reader import SegObject, dciodvfy, source_slices

HERE = Path(__file__).resolve().parent
MINI_SCP = HERE / "mini_scp.py"
SEG_SOP = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"


def pipeline_config(dest, rules, **sections):
    config = {
        "series": {"quiet_period_s": 1},
        "jobs": {"poll_interval_ms": 100},
        "send": {"initial_delay_s": 1, "max_delay_s": 2, "attempts": 10},
        "retention": {"min_free_mb": 0},
        "peers": [dest.peer_entry()] if dest is not None else [],
        "rules": rules,
    }
    for name, keys in sections.items():
        if isinstance(keys, list):
            config[name] = keys
        else:
            config.setdefault(name, {}).update(keys)
    return config


BODY_BOTH = {"name": "ct-body", "modality": "CT", "algorithm": "body",
             "outputs": ["seg", "rtstruct"], "destination": "dest"}


class PipelineTestCase(SegnodeTestCase):
    def dest(self, **kw):
        peer = StoreScpPeer(self.tmp, **kw)
        self.addCleanup(peer.stop)
        return peer

    def wait_job_state(self, node, states, job_id=None, timeout=60, count=1):
        """Waits until `count` jobs (or job `job_id`) exist and all are in `states`."""
        states = (states,) if isinstance(states, str) else states
        sql = "SELECT id, state FROM jobs" + (" WHERE id = ?" if job_id else "")
        params = (job_id,) if job_id else ()

        def reached():
            rows = node.query(sql, params)
            return len(rows) >= count and all(r[1] in states for r in rows)
        node.wait_for(reached, timeout, what=f"jobs in {states}\n{node.log_tail()}")
        return node.query(sql, params)

    def job(self, node, job_id):
        cols = ["id", "state", "error", "runs", "send_attempts", "series_uid", "algorithm",
                "dest_ae", "rule"]
        row = node.query_one(f"SELECT {', '.join(cols)} FROM jobs WHERE id = ?", (job_id,))
        return dict(zip(cols, row))

    def assertValidDicom(self, path):
        errors, warnings = dciodvfy(path)
        self.assertEqual(errors, [], f"dciodvfy errors in {path}")

    def send(self, node, files, aet="STORESCU", aec=NODE_AE):
        proc = node.storescu(files, aet=aet, aec=aec, env=dict(os.environ, TCP_NODELAY="1"))
        self.assertProcOk(proc, "storescu")


class EndToEnd(PipelineTestCase):
    def test_series_comes_back_as_seg_and_rtstruct(self):
        dest = self.dest().start()
        node = self.node(pipeline_config(dest, [BODY_BOTH]))
        series = self.series(rows=96, cols=80, slices=24)
        self.send(node, series["files"])

        [(job_id, state)] = self.wait_job_state(node, ("done", "failed"))
        job = self.job(node, job_id)
        self.assertEqual(state, "done", f"{job}\n{node.log_tail()}")
        self.assertEqual((job["rule"], job["algorithm"], job["dest_ae"], job["runs"],
                          job["send_attempts"]), ("ct-body", "body", "DEST", 1, 1))
        self.assertEqual(node.scalar("SELECT state FROM series WHERE series_uid = ?",
                                     (series["series_uid"],)), "routed")

        segs, rts = dest.files("SG."), dest.files("RS.")
        self.assertEqual((len(segs), len(rts)), (1, 1), f"received: {dest.files()}")
        for f in segs + rts:
            self.assertValidDicom(f)

        # The SEG is the source study's, references the source series, and decodes into
        # exactly the mask an offline `segnode run --format seg` writes for the same series.
        seg = SegObject.read(segs[0])
        ds = pydicom.dcmread(str(segs[0]))
        self.assertEqual(ds.SOPClassUID, SEG_SOP)
        self.assertEqual(ds.StudyInstanceUID, series["study_uid"])
        self.assertEqual(ds.ReferencedSeriesSequence[0].SeriesInstanceUID, series["series_uid"])
        slices = source_slices(series["files"])
        pipeline_mask = seg.label_volume(slices)
        offline_dir = self.tmp / "offline"
        proc = run_cli("run", "--algorithm", "body", "--input", str(Path(series["files"][0]).parent),
                       "--output", str(offline_dir), "--format", "seg", timeout=120)
        self.assertProcOk(proc, "segnode run --format seg")
        offline_mask = SegObject.read(offline_dir / "seg.dcm").label_volume(slices)
        self.assertTrue((pipeline_mask == offline_mask).all())
        self.assertGreater(int(pipeline_mask.sum()), 1000, "the body mask is not empty")

        rt = pydicom.dcmread(str(rts[0]))
        self.assertEqual(rt.SOPClassUID, RTSTRUCT_SOP)
        self.assertEqual(rt.StructureSetROISequence[0].ROIName, "Body")
        self.assertEqual(rt.RTROIObservationsSequence[0].RTROIInterpretedType, "EXTERNAL")

        # Outputs recorded as sent, the job log written, and `job show` tells the story.
        sent = node.query("SELECT kind, sent_at IS NOT NULL, send_status FROM job_outputs "
                          "WHERE job_id = ? ORDER BY kind", (job_id,))
        self.assertEqual([tuple(r) for r in sent], [("rtstruct", 1, 0), ("seg", 1, 0)])
        log = (node.workdir / "jobs" / str(job_id) / "job.log").read_text()
        self.assertIn("done", log)
        show = node.cli("job", "show", str(job_id))
        self.assertProcOk(show, "job show")
        for text in ("state:       done", "queued  rule ct-body matched", "running  run 1",
                     "sending  processed in", "done  all outputs delivered", "seg  jobs/"):
            self.assertIn(text, show.stdout)
        status = node.cli("db", "status")
        self.assertProcOk(status, "db status")
        self.assertRegex(status.stdout, r"jobs:\s+1 done\n")
        self.assertStopsCleanly(node)

    def test_two_series_interleaved_on_one_association_are_routed_separately(self):
        dest = self.dest().start()
        rule = dict(BODY_BOTH, outputs=["seg"])
        node = self.node(pipeline_config(dest, [rule]))
        a = self.series("a", slices=12, description="Series A")
        b = self.series("b", slices=12, description="Series B")
        interleaved = [f for pair in zip(a["files"], b["files"]) for f in pair]
        self.send(node, interleaved)

        rows = self.wait_job_state(node, ("done", "failed"), count=2)
        self.assertEqual([r[1] for r in rows], ["done", "done"], node.log_tail())
        jobs_series = sorted(r[0] for r in node.query("SELECT series_uid FROM jobs"))
        self.assertEqual(jobs_series, sorted([a["series_uid"], b["series_uid"]]))
        referenced = sorted(
            pydicom.dcmread(str(f)).ReferencedSeriesSequence[0].SeriesInstanceUID
            for f in dest.files("SG."))
        self.assertEqual(referenced, sorted([a["series_uid"], b["series_uid"]]))
        for series in (a, b):
            count = node.scalar("SELECT instance_count FROM series WHERE series_uid = ?",
                                (series["series_uid"],))
            self.assertEqual(count, 12)


class DeliveryAndRecovery(PipelineTestCase):
    def test_destination_down_then_up_is_delivered_after_retries(self):
        dest = self.dest()  # not started yet: connection refused
        node = self.node(pipeline_config(dest, [BODY_BOTH]))
        series = self.series(slices=10)
        self.send(node, series["files"])

        node.wait_for(lambda: (node.scalar("SELECT send_attempts FROM jobs") or 0) >= 2, 30,
                      what="two failed send attempts")
        job = self.job(node, 1)
        self.assertEqual(job["state"], "sending")
        self.assertIn("cannot connect", job["error"])
        self.assertIn(f"127.0.0.1:{dest.port}", job["error"])
        dest.start()
        self.wait_job_state(node, "done", 1, timeout=30)
        self.assertEqual((len(dest.files("SG.")), len(dest.files("RS."))), (1, 1))
        events = [r[0] for r in node.query("SELECT event FROM job_events WHERE job_id = 1 "
                                           "ORDER BY id")]
        self.assertGreaterEqual(events.count("send_failed"), 2)
        self.assertEqual(events[-1], "done")

    def test_failure_status_is_recorded_and_attempts_are_bounded(self):
        port = free_port()
        scp = subprocess.Popen(["/usr/bin/python3", str(MINI_SCP), "--port", str(port),
                                "--ae", "DEST", "--status", "A700",
                                "--comment", "disk quota exceeded"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.addCleanup(scp.kill)
        self.assertIn("listening", scp.stdout.readline())
        peer = {"name": "dest", "ae_title": "DEST", "host": LOOPBACK, "port": port}
        node = self.node(pipeline_config(None, [dict(BODY_BOTH, outputs=["seg"])],
                                         peers=[peer], send={"attempts": 2}))
        self.send(node, self.series(slices=8)["files"])
        self.wait_job_state(node, "failed", 1, timeout=30)
        job = self.job(node, 1)
        self.assertEqual(job["send_attempts"], 2)
        self.assertIn("send failed after 2 attempt(s)", job["error"])
        self.assertIn("status 0xA700", job["error"])
        self.assertIn("disk quota exceeded", job["error"])
        detail = node.query_one("SELECT send_status, send_detail, sent_at FROM job_outputs")
        self.assertEqual((detail[0], detail[2]), (0xA700, None))
        self.assertIn("disk quota exceeded", detail[1])

        # The operator retries: the written SEG is sent again (not recomputed).
        retry = node.cli("job", "retry", "1")
        self.assertProcOk(retry, "job retry")
        self.assertIn("will send its results again", retry.stdout)
        self.wait_job_state(node, "failed", 1, timeout=30)
        self.assertEqual(self.job(node, 1)["runs"], 1)

    def test_kill_during_processing_resumes_and_delivers_each_result_once(self):
        dest = self.dest().start()
        node = self.node(pipeline_config(dest, [dict(BODY_BOTH, algorithm="lungs")]))
        series = self.series(rows=512, cols=512, slices=120)
        self.send(node, series["files"])
        node.wait_for(lambda: node.scalar("SELECT count(*) FROM jobs WHERE state = 'running'"),
                      60, interval=0.005, what="the job to start running")
        node.kill()
        self.assertEqual(node.scalar("SELECT state FROM jobs WHERE id = 1"), "running")

        self.restart(node)
        self.wait_job_state(node, "done", 1, timeout=90)
        job = self.job(node, 1)
        self.assertEqual(job["runs"], 2, "the interrupted run was started again")
        events = [r[0] for r in node.query("SELECT event FROM job_events WHERE job_id = 1 "
                                           "ORDER BY id")]
        self.assertEqual(events.count("done"), 1)
        self.assertIn("queued", events[1:], "requeued after the crash")
        self.assertEqual((len(dest.files("SG.")), len(dest.files("RS."))), (1, 1),
                         f"each result exactly once: {dest.files()}")
        self.assertStopsCleanly(node)

    def test_kill_while_sending_resumes_without_recomputing(self):
        dest = self.dest()  # down: the job stays in `sending`
        node = self.node(pipeline_config(dest, [BODY_BOTH]))
        self.send(node, self.series(slices=8)["files"])
        node.wait_for(lambda: (node.scalar("SELECT send_attempts FROM jobs") or 0) >= 1, 30,
                      what="a failed send attempt")
        node.kill()
        dest.start()
        self.restart(node)
        self.wait_job_state(node, "done", 1, timeout=30)
        self.assertEqual(self.job(node, 1)["runs"], 1, "outputs were not recomputed")
        self.assertEqual((len(dest.files("SG.")), len(dest.files("RS."))), (1, 1))

    def test_crash_mid_association_resends_only_unacknowledged_objects(self):
        """The destination acknowledges the SEG, then never answers the RTSTRUCT; segnode is
        killed while it waits. After the restart only the RTSTRUCT is sent again."""
        port = free_port()
        scp = subprocess.Popen(["/usr/bin/python3", str(MINI_SCP), "--port", str(port),
                                "--ae", "DEST", "--answer", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.addCleanup(scp.kill)
        self.assertIn("listening", scp.stdout.readline())
        peer = {"name": "dest", "ae_title": "DEST", "host": LOOPBACK, "port": port}
        node = self.node(pipeline_config(None, [BODY_BOTH], peers=[peer],
                                         send={"dimse_timeout_s": 600}))
        self.send(node, self.series(slices=8)["files"])
        answered = scp.stdout.readline().split()
        silent = scp.stdout.readline().split()
        self.assertEqual((answered[0], silent[0]), ("answered", "silent"))
        node.kill()  # the second C-STORE is in flight, the first acknowledged
        scp.kill()
        scp.wait()
        rows = {r[0]: r[1] for r in node.query(
            "SELECT sop_instance_uid, sent_at FROM job_outputs")}
        self.assertEqual(set(rows), {answered[1], silent[1]})
        self.assertIsNotNone(rows[answered[1]], "the acknowledged object has no sent_at")
        self.assertIsNone(rows[silent[1]])

        dest = self.dest(port=port).start()  # storescp now answers on the same port
        self.restart(node)
        self.wait_job_state(node, "done", 1, timeout=60)
        received = [p.name.split(".", 1)[1] for p in dest.files()]
        self.assertEqual(received, [silent[1]], "only the unacknowledged object is sent again")
        self.assertEqual(self.job(node, 1)["runs"], 1)
        self.assertStopsCleanly(node)


class Routing(PipelineTestCase):
    def test_called_ae_titles_select_rules_first_match_and_fallback(self):
        dest = self.dest().start()
        rules = [
            {"name": "bone-ae", "called_ae": "SEG_BONE", "algorithm": "bone",
             "outputs": ["seg"], "destination": "dest"},
            {"name": "never", "series_description": "^nothing like this$", "algorithm": "body",
             "destination": "dest"},
            {"name": "lungs-by-text", "series_description": "(?:chest|thorax)",
             "min_instances": 5, "algorithm": "lungs", "outputs": ["seg"],
             "destination": "dest"},
        ]
        node = self.node(pipeline_config(dest, rules, node={"extra_ae_titles": ["SEG_BONE"]}))
        bone = self.series("bone", slices=8, description="CHEST plain")
        chest = self.series("chest", slices=8, description="Thorax low dose")
        short = self.series("short", slices=3, description="chest scout")
        other = self.series("other", slices=8, description="Abdomen")
        self.send(node, bone["files"], aec="SEG_BONE")
        for s in (chest, short, other):
            self.send(node, s["files"])

        node.wait_for(lambda: node.scalar("SELECT count(*) FROM series WHERE state = 'routed'")
                      == 4, 30, what="all four series routed")
        self.wait_job_state(node, ("done",), timeout=60, count=2)
        jobs = dict(node.query("SELECT series_uid, rule || ':' || algorithm FROM jobs"))
        self.assertEqual(jobs, {bone["series_uid"]: "bone-ae:bone",
                                chest["series_uid"]: "lungs-by-text:lungs"})
        log = node.log_text()
        self.assertIn(f"no routing rule matches CT series {other['series_uid']}", log)
        self.assertIn(f"no routing rule matches CT series {short['series_uid']}", log)
        show = node.cli("series", "show", other["series_uid"])
        self.assertProcOk(show, "series show")
        self.assertIn("no rule matches", show.stdout)
        self.assertIn("jobs: none", show.stdout)

    def test_sender_destination(self):
        dest = self.dest(ae="MODALITY1").start()
        rule = dict(BODY_BOTH, outputs=["seg"], destination="sender")
        node = self.node(pipeline_config(None, [rule],
                                         peers=[dest.peer_entry("modality1")]))
        known = self.series("known", slices=6)
        unknown = self.series("unknown", slices=6)
        self.send(node, known["files"], aet="MODALITY1")
        self.send(node, unknown["files"], aet="STRANGER")
        rows = dict(self.wait_job_state(node, ("done", "failed"), count=2))
        by_series = dict(node.query("SELECT series_uid, id FROM jobs"))
        self.assertEqual(rows[by_series[known["series_uid"]]], "done")
        failed = self.job(node, by_series[unknown["series_uid"]])
        self.assertEqual(failed["state"], "failed")
        self.assertIn("no [[peers]] entry has AE title 'STRANGER'", failed["error"])
        self.assertEqual(len(dest.files("SG.")), 1)


class AdminCli(PipelineTestCase):
    def test_series_run_job_cancel_and_retry_against_a_running_node(self):
        dest = self.dest()  # down at first
        node = self.node(pipeline_config(dest, []))  # no rules: nothing runs on its own
        series = self.series(slices=8)
        self.send(node, series["files"])
        node.wait_for(lambda: node.scalar("SELECT state FROM series") == "routed", 30,
                      what="the series routed (to nothing)")
        self.assertEqual(node.scalar("SELECT count(*) FROM jobs"), 0)

        listed = node.cli("series", "list")
        self.assertProcOk(listed, "series list")
        self.assertIn(series["series_uid"], listed.stdout)
        bad = node.cli("series", "run", series["series_uid"], "--algorithm", "nope")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("nope", bad.stderr)
        bad = node.cli("series", "run", series["series_uid"], "--algorithm", "threshold",
                       "--set", "no_such_key=1", "--to", "dest")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("no_such_key", bad.stderr)

        run = node.cli("series", "run", series["series_uid"], "--algorithm", "threshold",
                       "--set", "min_hu=200", "--to", "dest", "--outputs", "seg")
        self.assertProcOk(run, "series run")
        self.assertIn("job 1 queued", run.stdout)
        node.wait_for(lambda: (node.scalar("SELECT send_attempts FROM jobs") or 0) >= 1, 30,
                      what="a failed send attempt")
        self.assertEqual(node.scalar("SELECT settings FROM jobs"), "min_hu=200\n")

        cancel = node.cli("job", "cancel", "1")
        self.assertProcOk(cancel, "job cancel")
        self.assertEqual(self.job(node, 1)["state"], "cancelled")
        again = node.cli("job", "cancel", "1")
        self.assertEqual(again.returncode, 1)
        self.assertIn("cannot be cancelled", again.stderr)

        listed = node.cli("job", "list", "--state", "cancelled")
        self.assertProcOk(listed, "job list")
        self.assertIn("threshold", listed.stdout)
        dest.start()
        retry = node.cli("job", "retry", "1")
        self.assertProcOk(retry, "job retry")
        self.wait_job_state(node, "done", 1, timeout=30)
        self.assertEqual(len(dest.files("SG.")), 1)
        self.assertStopsCleanly(node)

    def test_peer_list_and_echo_verdicts(self):
        dest = self.dest().start()
        closed = {"name": "closed", "ae_title": "NOBODY", "host": LOOPBACK, "port": free_port()}
        node = self.node(pipeline_config(dest, [], peers=[dest.peer_entry(), closed]))
        listed = node.cli("peer", "list")
        self.assertProcOk(listed, "peer list")
        self.assertIn("closed", listed.stdout)
        ok = node.cli("peer", "echo", "dest")
        self.assertProcOk(ok, "peer echo dest")
        self.assertTrue(ok.stdout.startswith("OK: dest"), ok.stdout)
        down = node.cli("peer", "echo", "closed")
        self.assertEqual(down.returncode, 1)
        self.assertIn("FAILED: closed", down.stdout)
        self.assertIn("connection refused", down.stdout)
        unknown = node.cli("peer", "echo", "nobody")
        self.assertEqual(unknown.returncode, 2)


class Guards(PipelineTestCase):
    def test_volume_guard_fails_the_job_before_reading_pixels(self):
        dest = self.dest().start()
        node = self.node(pipeline_config(dest, [BODY_BOTH], jobs={"max_volume_mb": 1}))
        self.send(node, self.series(rows=128, cols=128, slices=40)["files"])  # 1.25 MiB
        self.wait_job_state(node, "failed", 1, timeout=30)
        self.assertIn("exceeds the limit", self.job(node, 1)["error"])
        self.assertEqual(dest.files(), [])

    def test_disk_guard_refuses_new_instances_with_out_of_resources(self):
        node = self.node({"retention": {"min_free_mb": 100000000}})  # ~95 TiB
        series = self.series(slices=3)
        result = node.test_store(series["files"])
        self.assertEqual(set(result.statuses.values()), {"A700"}, result)
        self.assertIn("low disk space", result.comment(series["sop_instance_uids"][0]))
        self.assertEqual(node.scalar("SELECT count(*) FROM instances"), 0)
        refused = node.query("SELECT kind, dimse_status FROM receive_events")
        self.assertEqual({tuple(r) for r in refused}, {("refused", 0xA700)})
        self.assertIn("retention.min_free_mb", node.log_text())
        self.assertStopsCleanly(node)


if __name__ == "__main__":
    unittest.main()
