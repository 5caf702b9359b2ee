"""The admin CLI: config check, db migrate/status, key add/list/revoke."""

import hashlib
import re
import unittest

from harness import SOURCE_DIR, SegnodeTestCase, query_db, run_cli

KEY_RE = re.compile(r"^snk_([0-9a-f]{8})_([0-9a-f]{64})$")


class ConfigCheckTest(SegnodeTestCase):

    def check(self, text, name="test.toml"):
        path = self.tmp / name
        path.write_text(text)
        return path, run_cli("config", "check", str(path))

    def test_sample_config_is_valid(self):
        sample = SOURCE_DIR / "config" / "segnode.toml"
        if not sample.is_file():
            self.skipTest(f"{sample} does not exist (yet)")
        proc = run_cli("config", "check", str(sample))
        self.assertProcOk(proc, "config check of the sample config")
        self.assertIn("config OK", proc.stdout)

    def test_sample_peer_and_rule_examples_are_valid(self):
        # The commented [[peers]] / [[rules]] examples of the sample, uncommented, must pass.
        text = (SOURCE_DIR / "config" / "segnode.toml").read_text()
        head, tail = text.split("# Peers:", 1)
        # The [[algorithms]] example after them has a test of its own (config_algorithms_test).
        tail, algorithms = tail.split("# External algorithms:", 1)
        tail = re.sub(r"^# (\[\[(?:peers|rules)\]\]|[a-z_]+ = )", r"\1", tail, flags=re.M)
        tail += "# External algorithms:" + algorithms
        head = head.replace("extra_ae_titles = []", 'extra_ae_titles = ["SEG_LUNGS"]')
        path = self.tmp / "examples.toml"
        path.write_text(head + "# Peers:" + tail)
        proc = run_cli("config", "check", str(path))
        self.assertProcOk(proc, "config check of the uncommented examples")
        self.assertIn("rule:    lungs -> lungs (seg,rtstruct) to pacs", proc.stdout)
        self.assertIn("rule:    body-for-everything-else -> body (rtstruct) to sender",
                      proc.stdout)

    def test_unknown_algorithm_and_peer_in_rules(self):
        path = self.tmp / "rules.toml"
        path.write_text('[[rules]]\nname = "a"\nalgorithm = "lung"\n')
        proc = run_cli("config", "check", str(path))
        self.assertEqual(proc.returncode, 1)
        self.assertIn(f"{path}:3:13: rules[0] (a).algorithm: unknown algorithm 'lung'",
                      proc.stderr)
        path.write_text('[[rules]]\nalgorithm = "body"\ndestination = "pacs"\n')
        proc = run_cli("config", "check", str(path))
        self.assertEqual(proc.returncode, 1)
        self.assertIn("unknown peer 'pacs'", proc.stderr)

    def test_valid_config(self):
        path, proc = self.check(
            '[node]\nae_title = "NODE1"\nworkdir = "/tmp/x"\n\n[dicom]\nport = 11113\n'
            '[[dicom.allowed_callers]]\nae_title = "PACS"\nhost = "10.1.2.3"\n'
            '[[dicom.allowed_callers]]\nae_title = "WS"\n\n'
            '[series]\nquiet_period_s = 1\nlate_instance_policy = "record"\n')
        self.assertProcOk(proc, "config check")
        self.assertIn("config OK", proc.stdout)
        self.assertIn("ae_title=NODE1", proc.stdout)
        self.assertIn(":11113", proc.stdout)
        self.assertIn("allowed_callers=2", proc.stdout)
        self.assertIn("late_instance_policy=record", proc.stdout)
        # --config works as well as the positional FILE.
        proc = run_cli("--config", str(path), "config", "check")
        self.assertProcOk(proc, "config check via --config")

    def assertConfigError(self, text, line, *fragments):
        path, proc = self.check(text)
        self.assertEqual(proc.returncode, 1, f"config check should fail:\n{text}\n{proc}")
        self.assertIn(f"{path}:{line}:", proc.stderr, f"wrong or missing line number:\n{text}")
        for fragment in fragments:
            self.assertIn(fragment, proc.stderr)
        self.assertNotIn("config OK", proc.stdout)

    def test_unknown_key(self):
        self.assertConfigError(
            "# segnode\n[node]\nae_title = \"SEGNODE\"\n\n[dicom]\nport = 11112\n"
            "bogus_key = 5\n", 7, "unknown key", "dicom.bogus_key")

    def test_misspelt_key_gets_a_suggestion(self):
        self.assertConfigError("[series]\n\nquiet_period = 5\n", 3, "series.quiet_period",
                               "did you mean 'series.quiet_period_s'")

    def test_unknown_section(self):
        self.assertConfigError("[node]\nae_title = \"A\"\n[nodes]\nx = 1\n", 3,
                               "unknown section")

    def test_wrong_types(self):
        self.assertConfigError("[dicom]\nbind_address = \"127.0.0.1\"\nport = \"11112\"\n", 3,
                               "dicom.port", "expected an integer")
        self.assertConfigError("[storage]\n\n\nfsync = \"yes\"\n", 4, "storage.fsync",
                               "expected true or false")
        self.assertConfigError("[node]\nae_title = 42\n", 2, "node.ae_title",
                               "expected a string")

    def test_bad_values(self):
        self.assertConfigError("[series]\nquiet_period_s = 0\n", 2, "out of range")
        self.assertConfigError("[dicom]\nport = 70000\n", 2, "out of range")
        self.assertConfigError("[storage]\nduplicate_policy = \"newest\"\n", 2, "newest")
        self.assertConfigError("[node]\nae_title = \"THIS_AE_IS_TOO_LONG\"\n", 2, "16")
        self.assertConfigError('[dicom]\nport = 1\n\n[[dicom.allowed_callers]]\n'
                               'ae_title = "PACS"\nhost = "pacs.example.org"\n', 6,
                               "not an IP address")
        self.assertConfigError('[[dicom.allowed_callers]]\nae_title = "PACS"\nport = 5\n', 3,
                               "unknown key")

    def test_syntax_error(self):
        self.assertConfigError("[node]\nae_title = \"SEGNODE\"\nworkdir = \n", 3)

    def test_missing_file(self):
        proc = run_cli("config", "check", str(self.tmp / "nope.toml"))
        self.assertEqual(proc.returncode, 1)
        self.assertIn("nope.toml", proc.stderr)


class DbCommandsTest(SegnodeTestCase):

    def test_migrate_and_status_after_a_run(self):
        node = self.node()
        ph = self.series(slices=5)
        self.assertProcOk(node.storescu(ph["files"]), "storescu")
        self.assertStopsCleanly(node)
        assoc_count = query_db(node.db_path, "SELECT count(*) FROM associations")[0][0]

        proc = node.cli("db", "migrate")
        self.assertProcOk(proc, "db migrate")
        self.assertIn("schema version 4", proc.stdout)
        self.assertIn("0 migration(s) applied", proc.stdout)

        proc = node.cli("db", "status")
        self.assertProcOk(proc, "db status")
        out = proc.stdout
        self.assertRegex(out, r"schema version:\s+4\b")
        self.assertRegex(out, r"instances:\s+5\n")
        self.assertRegex(out, r"series:\s+1 receiving, 0 complete, 0 routed")
        self.assertRegex(out, rf"associations:\s+{assoc_count}\n")
        self.assertRegex(out, r"quarantined:\s+0\n")
        self.assertIn(str(node.db_path), out)
        # The DB is untouched by status.
        self.assertEqual(query_db(node.db_path, "SELECT count(*) FROM instances")[0][0], 5)

    def test_fresh_workdir(self):
        work = self.tmp / "fresh"
        proc = run_cli("--workdir", str(work), "db", "status")
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("no database", proc.stderr)
        self.assertFalse((work / "segnode.db").exists(), "db status must not create a DB")

        proc = run_cli("--workdir", str(work), "db", "migrate")
        self.assertProcOk(proc, "db migrate")
        self.assertIn("4 migration(s) applied", proc.stdout)
        proc = run_cli("--workdir", str(work), "db", "status")
        self.assertProcOk(proc, "db status")
        self.assertRegex(proc.stdout, r"instances:\s+0\n")
        tables = {r[0] for r in query_db(work / "segnode.db",
                                         "SELECT name FROM sqlite_master WHERE type='table'")}
        self.assertTrue({"associations", "series", "instances", "receive_events", "quarantine",
                         "api_keys"} <= tables, tables)


class KeyCommandsTest(SegnodeTestCase):

    def key(self, *args):
        return run_cli("--workdir", str(self.work), "key", *args)

    def setUp(self):
        super().setUp()
        self.work = self.tmp / "work"

    def test_key_lifecycle(self):
        proc = self.key("add", "ops", "--role", "admin")
        self.assertProcOk(proc, "key add")
        lines = proc.stdout.splitlines()
        self.assertEqual(len(lines), 1, f"key add must print only the key on stdout: {proc}")
        key = lines[0]
        m = KEY_RE.match(key)
        self.assertIsNotNone(m, f"key {key!r} does not match snk_<8hex>_<64hex>")
        prefix, secret = m.group(1), m.group(2)

        proc = self.key("list")
        self.assertProcOk(proc, "key list")
        row = [l for l in proc.stdout.splitlines() if l.split()[:1] == ["ops"]]
        self.assertEqual(len(row), 1, proc.stdout)
        self.assertEqual(row[0].split()[1:3], ["admin", prefix])
        self.assertIn("active", row[0])
        self.assertNotIn(secret, proc.stdout + proc.stderr)
        self.assertNotIn(key, proc.stdout + proc.stderr)

        db = self.work / "segnode.db"
        rows = query_db(db, "SELECT name, role, prefix, secret_sha256, revoked_at FROM api_keys")
        self.assertEqual(len(rows), 1)
        self.assertEqual(tuple(rows[0])[:3], ("ops", "admin", prefix))
        self.assertEqual(rows[0]["secret_sha256"], hashlib.sha256(key.encode()).hexdigest())
        self.assertIsNone(rows[0]["revoked_at"])
        # Neither the key nor its secret part is anywhere in the database files.
        for f in self.work.glob("segnode.db*"):
            data = f.read_bytes()
            self.assertNotIn(key.encode(), data, f)
            self.assertNotIn(secret.encode(), data, f)
            self.assertNotIn(bytes.fromhex(secret), data, f)

        # A second key with the same name is refused.
        proc = self.key("add", "ops", "--role", "read")
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("ops", proc.stderr)
        self.assertEqual(proc.stdout.strip(), "")

        # A second, different key is independent.
        proc = self.key("add", "ci-bot", "--role", "submit")
        self.assertProcOk(proc, "key add ci-bot")
        other = KEY_RE.match(proc.stdout.strip())
        self.assertIsNotNone(other)
        self.assertNotEqual(other.group(1), prefix)

        proc = self.key("revoke", "ops")
        self.assertProcOk(proc, "key revoke")
        proc = self.key("list")
        self.assertProcOk(proc, "key list")
        by_name = {l.split()[0]: l for l in proc.stdout.splitlines()[1:] if l.strip()}
        self.assertIn("revoked", by_name["ops"])
        self.assertIn("active", by_name["ci-bot"])
        self.assertIsNotNone(query_db(db, "SELECT revoked_at FROM api_keys WHERE name = 'ops'")
                             [0][0])

        proc = self.key("revoke", "ops")
        self.assertNotEqual(proc.returncode, 0, "revoking twice must fail")

    def test_revoke_unknown(self):
        self.assertProcOk(self.key("add", "someone", "--role", "read"), "key add")
        proc = self.key("revoke", "nobody")
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("nobody", proc.stderr)
        self.assertRegex(proc.stderr, r"no (active )?API key")

    def test_invalid_role_and_name(self):
        proc = self.key("add", "x", "--role", "superuser")
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("superuser", proc.stderr)
        self.assertEqual(proc.stdout.strip(), "")
        proc = self.key("add", "bad name!", "--role", "read")
        self.assertNotEqual(proc.returncode, 0)
        self.assertEqual(proc.stdout.strip(), "")
        proc = self.key("add", "norole")
        self.assertNotEqual(proc.returncode, 0)
        if (self.work / "segnode.db").exists():
            self.assertEqual(query_db(self.work / "segnode.db",
                                      "SELECT count(*) FROM api_keys")[0][0], 0)

    def test_list_without_database(self):
        proc = self.key("list")
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("no database", proc.stderr)


if __name__ == "__main__":
    unittest.main()
