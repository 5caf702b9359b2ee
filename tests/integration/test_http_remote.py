"""The admin CLI acting on a remote node over the HTTP API (`--server URL` or SEGNODE_SERVER,
the key from SEGNODE_API_KEY or --key-file): `series` and `algorithm` print exactly what the
local commands print for the same node, `series run` queues a job through POST /api/v1/jobs,
and every command group honours SEGNODE_SERVER."""

import os
import subprocess
import textwrap

from harness import SEGNODE_BIN, SegnodeTestCase, StoreScpPeer

EXTERNAL = textwrap.dedent("""\
    [[algorithms]]
    name = "ext_three"
    version = "0.3"
    description = "an external program (never run here): its schema and program are shown"
    command = ["/usr/bin/python3", "-c", "pass", "{input}", "{output}"]
    input_format = "nifti_gz"
    output = "labels.nii.gz"
    timeout_s = 120
    memory_mb = 2048

    [algorithms.settings.soft_min]
    type = "float"
    default = 0.5
    min = -1024.0
    max = 3071.0
    help = "lower bound of soft tissue (HU)"

    [algorithms.settings.iterations]
    type = "int"
    default = 3
    min = 1
    max = 10

    [algorithms.settings.mode]
    type = "enum"
    default = "normal"
    choices = ["normal", "fast"]

    [algorithms.settings.smooth]
    type = "bool"
    default = true

    [[algorithms.segments]]
    label = 1
    name = "Soft tissue"
    category = ["SCT", "85756007", "Tissue"]
    type = ["SCT", "85756007", "Tissue"]
    color = [200, 120, 100]

    [[algorithms.segments]]
    label = 2
    name = "Bone"
    category = ["SCT", "85756007", "Tissue"]
    type = ["SCT", "3138006", "Bone tissue"]
    color = [240, 240, 200]
    """)


class RemoteCli(SegnodeTestCase):
    def setUp(self):
        super().setUp()
        self.dest = StoreScpPeer(self.tmp)
        self.addCleanup(self.dest.stop)
        self.dest.start()
        algorithms = self.tmp / "algorithms.d"
        algorithms.mkdir()
        (algorithms / "ext.toml").write_text(EXTERNAL)
        self.node_ = self.node({
            "algorithms_dir": str(algorithms),
            "series": {"quiet_period_s": 1},
            "jobs": {"poll_interval_ms": 100},
            "retention": {"min_free_mb": 0},
            "peers": [self.dest.peer_entry()],
            "rules": [{"name": "ct-body", "modality": "CT", "algorithm": "body",
                       "outputs": ["seg"], "destination": "dest"}],
        })
        admin = self.node_.cli("key", "add", "admin", "--role", "admin")
        self.assertProcOk(admin, "key add")
        self.admin = admin.stdout.split()[0]
        reader = self.node_.cli("key", "add", "reader", "--role", "read")
        self.reader = reader.stdout.split()[0]

    def remote(self, *args, key=None, server=True, env_server=False, extra_env=None):
        env = {k: v for k, v in os.environ.items()
               if k not in ("SEGNODE_API_KEY", "SEGNODE_SERVER", "SEGNODE_CONFIG")}
        env["SEGNODE_API_KEY"] = key or self.admin
        cmd = [str(SEGNODE_BIN)]
        if env_server:
            env["SEGNODE_SERVER"] = self.node_.http_url
        elif server:
            cmd += ["--server", self.node_.http_url]
        env.update(extra_env or {})
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60,
                              env=env)

    def assertSameOutput(self, *args, key=None):
        local = self.node_.cli(*args)
        over_http = self.remote(*args, key=key)
        what = " ".join(args)
        self.assertEqual(over_http.returncode, local.returncode,
                         f"{what}: exit status\nlocal: {local.stderr}\nremote: {over_http.stderr}")
        self.assertEqual(over_http.stdout, local.stdout, f"{what}: stdout differs")
        return local, over_http

    def test_series_commands_print_what_the_local_ones_print(self):
        node = self.node_
        first = self.series("first", slices=6)
        self.assertProcOk(node.storescu(first["files"]), "storescu")
        # The rule routes the first series: its job runs and is sent to dest.
        node.wait_for(lambda: node.scalar("SELECT state FROM jobs") == "done", 120,
                      what="the rule's job done")
        second = self.series("second", slices=3, modality="MR")
        self.assertProcOk(node.storescu(second["files"]), "storescu")

        # series run over HTTP: the job is the node's, queued with the settings given.
        run = self.remote("series", "run", first["series_uid"], "--algorithm", "threshold",
                          "--set", "min_hu=200", "--to", "none", "--outputs", "seg")
        self.assertProcOk(run, "series run --server")
        self.assertRegex(run.stdout, r"^job \d+ queued: threshold on "
                                     + first["series_uid"].replace(".", r"\.")
                                     + r" -> none \(results stay on the node\)\n$")
        job_id = int(run.stdout.split()[1])
        row = node.query_one("SELECT algorithm, settings, outputs, destination, owner_key_id "
                             "FROM jobs WHERE id = ?", (job_id,))
        self.assertEqual((row[0], row[2], row[3]), ("threshold", "seg", "none"))
        self.assertIn("min_hu=200", row[1])
        self.assertIsNotNone(row[4])  # owned by the admin key that asked
        node.wait_for(lambda: node.scalar("SELECT state FROM jobs WHERE id = ?", (job_id,))
                      in ("done", "failed"), 120, what="the remote job finished")
        node.wait_for(lambda: node.scalar("SELECT state FROM series WHERE series_uid = ?",
                                          (second["series_uid"],)) == "routed", 30,
                      what="the MR series routed (no rule matches it)")

        for args in (("series", "list"), ("series", "list", "--state", "routed"),
                     ("series", "list", "--limit", "1"), ("series", "list", "--state", "receiving"),
                     ("series", "show", first["series_uid"]),
                     ("series", "show", second["series_uid"])):
            local, _ = self.assertSameOutput(*args, key=self.reader)
            self.assertEqual(local.returncode, 0, local.stderr)
        shown = node.cli("series", "show", first["series_uid"]).stdout
        self.assertIn("routing:      rule ct-body (body)", shown)
        # How the loader takes it (headers only), the same through the API.
        self.assertRegex(shown, r"  taken:        \d+ x \d+ x \d+ voxels\n")
        self.assertIn(f"  {job_id}  done  threshold  seg -> none", shown)
        self.assertIn("no rule matches", node.cli("series", "show", second["series_uid"]).stdout)
        self.assertEqual(len(node.cli("series", "list").stdout.splitlines()), 3)

        # Failures: the same exit status; the node's reason on stderr.
        local, remote = self.assertSameOutput("series", "show", "9.9.9")
        self.assertEqual(remote.returncode, 1)
        self.assertEqual(remote.stderr, local.stderr)
        missing = self.remote("series", "run", "9.9.9", "--algorithm", "body")
        self.assertEqual(missing.returncode, 1)
        self.assertIn("no series 9.9.9", missing.stderr)
        bad = self.remote("series", "run", first["series_uid"], "--algorithm", "nope")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("nope", bad.stderr)
        bad = self.remote("series", "run", first["series_uid"], "--algorithm", "body", "--set",
                          "min_hu=99999")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("settings.min_hu", bad.stderr)
        # A read key may look but not submit.
        refused = self.remote("series", "run", first["series_uid"], "--algorithm", "body",
                              key=self.reader)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("needs the submit role", refused.stderr)

    def test_algorithm_commands_print_what_the_local_ones_print(self):
        for args in (("algorithm", "list"), ("algorithm", "show", "body"),
                     ("algorithm", "show", "threshold"), ("algorithm", "show", "ext_three")):
            local, _ = self.assertSameOutput(*args, key=self.reader)
            self.assertEqual(local.returncode, 0, local.stderr)
        ext = self.remote("algorithm", "show", "ext_three").stdout
        self.assertIn("External program (", ext)
        self.assertIn("memory_mb     2048", ext)
        self.assertIn("iterations", ext)
        self.assertIn("ext_three", self.remote("algorithm", "list").stdout)
        local, remote = self.assertSameOutput("algorithm", "show", "nope")
        self.assertEqual(remote.returncode, 1)
        self.assertEqual(remote.stderr, local.stderr)

    def test_every_command_group_honours_segnode_server(self):
        series = self.series(slices=3)
        self.assertProcOk(self.node_.storescu(series["files"]), "storescu")
        for args in (("job", "list"), ("key", "list"), ("peer", "list"), ("series", "list"),
                     ("algorithm", "list")):
            local = self.node_.cli(*args)
            via_env = self.remote(*args, env_server=True)
            self.assertProcOk(via_env, " ".join(args) + " with SEGNODE_SERVER")
            self.assertEqual(via_env.stdout, local.stdout, " ".join(args))
        # The server answered: each command went over HTTP (counted by route in /metrics).
        import requests
        text = requests.get(self.node_.http_url + "/metrics", timeout=10).text
        for route in ("/api/v1/jobs", "/api/v1/keys", "/api/v1/peers", "/api/v1/series",
                      "/api/v1/algorithms"):
            self.assertIn(f'segnode_http_requests_total{{route="{route}",status="200"}}', text)
        # SEGNODE_SERVER at a node that is not there: the error names it, nothing local runs.
        down = self.remote("series", "list", server=False,
                           extra_env={"SEGNODE_SERVER": "http://127.0.0.1:9"})
        self.assertEqual(down.returncode, 1)
        self.assertIn("127.0.0.1:9", down.stderr)
        # The key is never an argument: there is no such option, and without one it says how.
        bare = self.remote("--api-key", self.admin, "job", "list")
        self.assertNotEqual(bare.returncode, 0)
        nokey = subprocess.run([str(SEGNODE_BIN), "--server", self.node_.http_url, "series",
                                "list"], capture_output=True, text=True, timeout=60,
                               env={k: v for k, v in os.environ.items()
                                    if k not in ("SEGNODE_API_KEY", "SEGNODE_SERVER")})
        self.assertEqual(nokey.returncode, 2)
        self.assertIn("SEGNODE_API_KEY", nokey.stderr)
        keyfile = self.tmp / "key"
        keyfile.write_text(self.reader + "\n")
        via_file = subprocess.run([str(SEGNODE_BIN), "--server", self.node_.http_url,
                                   "--key-file", str(keyfile), "algorithm", "show", "body"],
                                  capture_output=True, text=True, timeout=60,
                                  env={k: v for k, v in os.environ.items()
                                       if k not in ("SEGNODE_API_KEY", "SEGNODE_SERVER")})
        self.assertProcOk(via_file, "algorithm show --key-file")
        self.assertEqual(via_file.stdout, self.node_.cli("algorithm", "show", "body").stdout)


if __name__ == "__main__":
    import unittest
    unittest.main()
