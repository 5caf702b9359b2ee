"""segnode db backup: an online copy of the database while the node receives, and a restore."""

import sqlite3

from harness import SegnodeTestCase, StreamingStore

SLICES = 80


def open_copy(path):
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


class BackupTest(SegnodeTestCase):

    def test_backup_under_receive_load_is_consistent_and_restores(self):
        node = self.node()
        ph = self.series(rows=128, cols=128, slices=SLICES)
        sender = StreamingStore(node.test_store_cmd(ph["files"], aet="BACKUPTEST", pause_ms=20))
        self.assertTrue(sender.wait_for_lines(10, timeout=60), "the sender never got going")

        copy = self.tmp / "backup" / "segnode-copy.db"
        copy.parent.mkdir()
        proc = node.cli("db", "backup", str(copy))
        acked_after_backup = len(sender.lines)
        self.assertProcOk(proc, "db backup")
        result = sender.finish(timeout=120)
        self.assertEqual([s for _, s, _ in result.lines], ["0000"] * SLICES, result)

        # One self-contained file: no WAL beside it, rollback journal mode, intact.
        self.assertTrue(copy.is_file())
        self.assertEqual(sorted(p.name for p in copy.parent.iterdir()), [copy.name])
        con = open_copy(copy)
        try:
            self.assertEqual(con.execute("PRAGMA journal_mode").fetchone()[0], "delete")
            self.assertEqual(con.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            in_copy = con.execute("SELECT count(*) FROM instances").fetchone()[0]
            paths = [r[0] for r in con.execute("SELECT path FROM instances")]
        finally:
            con.close()
        # A snapshot taken while the sender was mid-series: some but not all instances, and
        # what the CLI printed is what the file holds.
        self.assertGreaterEqual(in_copy, 10)
        self.assertLessEqual(in_copy, acked_after_backup + 1)
        self.assertLess(in_copy, SLICES, "the backup came after the whole series")
        self.assertIn(f"{in_copy} instances", proc.stdout)
        self.assertIn("schema version", proc.stdout)
        self.assertEqual(len(paths), in_copy)
        for rel in paths:
            self.assertTrue((node.workdir / rel).is_file(),
                            f"the copy indexes {rel}, which is not on disk")

        # A second backup to the same file is refused, the first copy left alone.
        again = node.cli("db", "backup", str(copy))
        self.assertEqual(again.returncode, 1)
        self.assertIn("already exists", again.stderr)

        # Restore as docs/operations.md says: stop, replace the database, drop the WAL, start.
        self.assertStopsCleanly(node)
        for suffix in ("", "-wal", "-shm"):
            p = node.db_path.with_name(node.db_path.name + suffix)
            if p.exists():
                p.unlink()
        copy.rename(node.db_path)
        node.start()
        status = node.cli("db", "status")
        self.assertProcOk(status, "db status after restore")
        self.assertRegex(status.stdout, rf"instances:\s+{in_copy}\n")
        self.assertEqual(node.echo().returncode, 0)

    def test_backup_into_missing_directory_says_where(self):
        node = self.node()
        target = self.tmp / "no-such-dir" / "copy.db"
        proc = node.cli("db", "backup", str(target))
        self.assertEqual(proc.returncode, 1)
        self.assertIn(str(target) + ".partial", proc.stderr)
        self.assertIn("cannot create", proc.stderr)
        self.assertFalse(target.exists())
