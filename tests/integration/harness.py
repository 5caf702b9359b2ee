"""Shared harness for segnode's integration tests.

Runs the real `segnode serve` on a free loopback port with its own TOML config and working
directory, talks to it with dcmtk's storescu/echoscu and the project's segnode-test-store,
and reads its SQLite database directly. Standard library + pydicom only.

Paths come from the environment (CMake sets them for ctest):
  SEGNODE_BIN         segnode executable
  SEGNODE_PHANTOM     segnode-phantom executable (synthetic CT series)
  SEGNODE_TEST_STORE  segnode-test-store executable (tests/tools)
  SEGNODE_TEST_DATA   the shared real-data corpus (optional; tests skip without it)
  SEGNODE_KEEP_TMP=1  keep each test's temporary directory for inspection
"""

import json
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_DIR = HERE.parent.parent
BUILD_DIR = Path(os.environ.get("SEGNODE_BUILD_DIR", SOURCE_DIR / "build"))


def _tool(env_name, default):
    return Path(os.environ.get(env_name) or default)


SEGNODE_BIN = _tool("SEGNODE_BIN", BUILD_DIR / "segnode")
SEGNODE_PHANTOM = _tool("SEGNODE_PHANTOM", BUILD_DIR / "tests/phantom/segnode-phantom")
SEGNODE_TEST_STORE = _tool("SEGNODE_TEST_STORE", BUILD_DIR / "tests/tools/segnode-test-store")
SEGNODE_TEST_DATA = _tool("SEGNODE_TEST_DATA", SOURCE_DIR.parent / "shared/data")
STORESCU = shutil.which("storescu") or "/usr/bin/storescu"
ECHOSCU = shutil.which("echoscu") or "/usr/bin/echoscu"

LOOPBACK = "127.0.0.1"
NODE_AE = "SEGNODE"
PROBE_AE = "READYCHECK"  # calling AE of the readiness echo; tests filter it out

# UIDs
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"

# Environment for the DICOM tools: Nagle's algorithm off (see DESIGN.md), no dictionary
# surprises.
TOOL_ENV = dict(os.environ, TCP_NODELAY="1")


def require_tools():
    """Missing binaries are a broken build, not a reason to skip: fail loudly."""
    missing = [str(p) for p in (SEGNODE_BIN, SEGNODE_PHANTOM, SEGNODE_TEST_STORE)
               if not Path(p).is_file()]
    missing += [t for t in (STORESCU, ECHOSCU) if not Path(t).is_file()]
    if missing:
        raise RuntimeError("integration test prerequisites missing: " + ", ".join(missing))


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_open(port, host=LOOPBACK):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect((host, port))
            return True
        except OSError:
            return False


# ---------------------------------------------------------------- TOML

def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string for our values
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)) and all(not isinstance(x, dict) for x in v):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"unsupported TOML value {v!r}")


def to_toml(config):
    """{section: {key: value | [dict, ...]} | [dict, ...]} -> TOML text; lists of dicts
    become [[a.b]] (or [[a]] for a top-level list such as peers and rules)."""
    lines = []
    # Top-level keys (algorithms_dir) must come before the first table.
    for key, value in config.items():
        if isinstance(value, str):
            lines += [f"{key} = {_toml_value(value)}", ""]
    for section, keys in config.items():
        if isinstance(keys, str):
            continue
        if isinstance(keys, list):
            for entry in keys:
                lines.append(f"[[{section}]]")
                for k, v in entry.items():
                    lines.append(f"{k} = {_toml_value(v)}")
                lines.append("")
            continue
        lines.append(f"[{section}]")
        tables = {}
        for key, value in keys.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                tables[key] = value
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
        for key, entries in tables.items():
            for entry in entries:
                lines.append(f"[[{section}.{key}]]")
                for k, v in entry.items():
                    lines.append(f"{k} = {_toml_value(v)}")
                lines.append("")
    return "\n".join(lines)


def merge_config(base, overrides):
    out = {s: dict(v) for s, v in base.items()}
    for section, keys in (overrides or {}).items():
        if isinstance(keys, str):
            out[section] = keys
        elif isinstance(keys, list):
            out[section] = list(keys)
        else:
            out.setdefault(section, {}).update(keys)
    return out


# ---------------------------------------------------------------- DICOM files

def dataset_bytes(path):
    """The bytes after the file meta group: 128 preamble + 'DICM' + (0002,0000) element
    (12 bytes, its UL value at offset 140) + the group."""
    data = Path(path).read_bytes()
    if data[128:132] != b"DICM":
        raise ValueError(f"{path}: no DICM prefix")
    if data[132:136] != b"\x02\x00\x00\x00":
        raise ValueError(f"{path}: file meta does not start with (0002,0000)")
    (group_length,) = struct.unpack_from("<I", data, 140)
    return data[144 + group_length:]


def rewrite(source, dest, **attrs):
    """Copies a DICOM file with some data set attributes changed (file meta kept in step)."""
    import pydicom  # only the tests that rewrite files need it
    ds = pydicom.dcmread(source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid UIDs we want
        for key, value in attrs.items():
            setattr(ds, key, value)
            if key == "SOPInstanceUID":
                ds.file_meta.MediaStorageSOPInstanceUID = value
            if key == "SOPClassUID":
                ds.file_meta.MediaStorageSOPClassUID = value
        ds.save_as(dest, write_like_original=True)
    return Path(dest)


def generate_series(out_dir, rows=64, cols=64, slices=20, **options):
    """Runs segnode-phantom; returns its JSON with 'files' made absolute and a
    'by_uid' map {sop_instance_uid: path}."""
    out_dir = Path(out_dir)
    cmd = [str(SEGNODE_PHANTOM), "--out", str(out_dir), "--rows", str(rows), "--cols",
           str(cols), "--slices", str(slices), "--threads", "1"]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            cmd.append(flag)
        else:
            cmd += [flag, str(value)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"segnode-phantom failed ({proc.returncode}): {proc.stderr}")
    info = json.loads(proc.stdout)
    info["files"] = [str(Path(f) if Path(f).is_absolute() else (Path.cwd() / f))
                     for f in info["files"]]
    info["by_uid"] = dict(zip(info["sop_instance_uids"], info["files"]))
    return info


# ---------------------------------------------------------------- running processes

def read_log(path):
    """A process's log file as text ("" before the process wrote it)."""
    try:
        return Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""


class StoreResult:
    """Output of segnode-test-store: rc, [(uid, status, comment)], stderr."""

    def __init__(self, returncode, lines, stderr):
        self.returncode = returncode
        self.lines = lines
        self.stderr = stderr

    @property
    def statuses(self):
        return {uid: status for uid, status, _ in self.lines}

    def comment(self, uid):
        for u, _, c in self.lines:
            if u == uid:
                return c
        return None

    def __repr__(self):
        return f"StoreResult(rc={self.returncode}, lines={self.lines!r}, stderr={self.stderr!r})"


def parse_store_line(line):
    parts = line.rstrip("\n").split(" ", 2)
    if len(parts) != 3:
        raise ValueError(f"malformed segnode-test-store line: {line!r}")
    return parts[0], parts[1], parts[2]


class Node:
    """One `segnode serve` process with its own config file and working directory."""

    def __init__(self, base_dir, config=None, name="node"):
        self.base_dir = Path(base_dir)
        self.name = name
        self.workdir = self.base_dir / f"{name}-work"
        self.config_path = self.base_dir / f"{name}.toml"
        self.log_path = self.base_dir / f"{name}.log"
        self.port = None
        self.http_port = None
        self.proc = None
        self.config = {}
        self._overrides = config or {}
        self._log = None

    # configuration ---------------------------------------------------
    def write_config(self):
        if self.port is None:
            self.port = free_port()
        if self.http_port is None:
            self.http_port = free_port()
        base = {
            "node": {"ae_title": NODE_AE, "workdir": str(self.workdir), "shutdown_grace_s": 20},
            "log": {"level": "info"},
            "dicom": {"bind_address": LOOPBACK, "port": self.port, "acse_timeout_s": 10,
                      "dimse_timeout_s": 30},
            "series": {"quiet_period_s": 600},
            "http": {"port": self.http_port},
        }
        self.config = merge_config(base, self._overrides)
        self.config["dicom"]["port"] = self.port
        self.config_path.write_text(to_toml(self.config))

    @property
    def http_url(self):
        """Base URL of the node's HTTP API."""
        http = self.config.get("http", {})
        return f"http://{http.get('bind_address', LOOPBACK)}:{http['port']}"

    @property
    def db_path(self):
        return self.workdir / "segnode.db"

    @property
    def probe_ae(self):
        """Calling AE for the readiness echo: one the allow-list admits from 127.0.0.1."""
        callers = self.config.get("dicom", {}).get("allowed_callers") or []
        if not callers:
            return PROBE_AE
        for c in callers:
            if c.get("host", "") in ("", LOOPBACK):
                return c["ae_title"]
        raise ValueError("no allowed caller can connect from 127.0.0.1; cannot probe")

    # lifecycle -------------------------------------------------------
    def start(self, timeout=15.0):
        """Starts segnode and waits until an echo succeeds. Retries on a port taken
        between free_port() and bind()."""
        self._close_log()
        for attempt in range(3):
            self.write_config()
            self._log = open(self.log_path, "ab")
            self._log.write(f"---- start (attempt {attempt + 1}) port {self.port}\n".encode())
            self._log.flush()
            self.proc = subprocess.Popen(
                [str(SEGNODE_BIN), "serve", "--config", str(self.config_path)],
                stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if self.echo(aet=self.probe_ae, timeout=5).returncode == 0:
                    return self
                time.sleep(0.1)
            if self.proc.poll() is None:
                self.kill()
                raise AssertionError(f"segnode did not answer an echo within {timeout} s\n"
                                     + self.log_tail())
            self._log.close()
            log = self.log_text()
            if "Address already in use" in log or "cannot listen" in log:
                self.port = None  # someone took the port: try another one
                self.http_port = None
                continue
            raise AssertionError(f"segnode exited with {self.proc.returncode} at start\n"
                                 + self.log_tail())
        raise AssertionError("segnode could not bind a free port three times\n" + self.log_tail())

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=30.0):
        """Waits for the process to exit on its own; returns its exit status."""
        rc = self.proc.wait(timeout=timeout)
        self._close_log()
        return rc

    def stop(self, timeout=30.0):
        """SIGTERM, wait, return the exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        self._close_log()
        return self.proc.returncode

    def kill(self):
        """kill -9, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._close_log()

    def _close_log(self):
        if self._log is not None and not self._log.closed:
            self._log.close()

    def log_text(self):
        return read_log(self.log_path)

    def log_tail(self, lines=40):
        text = self.log_text().splitlines()
        return f"--- last lines of {self.log_path}:\n" + "\n".join(text[-lines:])

    # peers -----------------------------------------------------------
    def echo(self, aet="ECHOSCU", aec=NODE_AE, timeout=10):
        return subprocess.run(
            [ECHOSCU, "-aet", aet, "-aec", aec, "-to", "5", "-ta", "5", "-td", "5",
             LOOPBACK, str(self.port)],
            capture_output=True, text=True, timeout=timeout, env=TOOL_ENV)

    def storescu_cmd(self, files, aet="STORESCU", aec=NODE_AE, extra=()):
        return [STORESCU, "-aet", aet, "-aec", aec, "-to", "10", "-ta", "10", "-td", "30",
                *extra, LOOPBACK, str(self.port), *map(str, files)]

    def storescu(self, files, aet="STORESCU", aec=NODE_AE, extra=(), timeout=120, env=None):
        return subprocess.run(self.storescu_cmd(files, aet, aec, extra), capture_output=True,
                              text=True, timeout=timeout, env=env or TOOL_ENV)

    def test_store_cmd(self, files, aet="SEGTEST", aec=NODE_AE, context_sop_class=None,
                       command_sop_class=None, pause_ms=None):
        cmd = [str(SEGNODE_TEST_STORE), "--host", LOOPBACK, "--port", str(self.port),
               "--aec", aec, "--aet", aet, "--timeout", "30"]
        if context_sop_class:
            cmd += ["--context-sop-class", context_sop_class]
        if command_sop_class:
            cmd += ["--command-sop-class", command_sop_class]
        if pause_ms:
            cmd += ["--pause-ms", str(pause_ms)]
        return cmd + [str(f) for f in files]

    def test_store(self, files, timeout=120, **kw):
        proc = subprocess.run(self.test_store_cmd(files, **kw), capture_output=True, text=True,
                              timeout=timeout, env=TOOL_ENV)
        lines = [parse_store_line(l) for l in proc.stdout.splitlines() if l.strip()]
        return StoreResult(proc.returncode, lines, proc.stderr)

    # CLI -------------------------------------------------------------
    def cli(self, *args, timeout=30):
        return run_cli("--config", str(self.config_path), *args, timeout=timeout)

    # database --------------------------------------------------------
    def query(self, sql, params=()):
        return query_db(self.db_path, sql, params)

    def query_one(self, sql, params=()):
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql, params=()):
        row = self.query_one(sql, params)
        return None if row is None else row[0]

    def wait_for(self, predicate, timeout, interval=0.1, what="condition"):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}\n"
                                     + self.log_tail())
            time.sleep(interval)

    def wait_associations_ended(self, timeout=10):
        """Waits until every recorded association has ended. segnode records the end of an
        association after it has answered the A-RELEASE, so a peer may exit first."""
        return self.wait_for(
            lambda: self.scalar("SELECT count(*) FROM associations WHERE ended_at IS NULL") == 0,
            timeout, what="all associations to be recorded as ended")

    def instance_path(self, study_uid, series_uid, sop_uid):
        return self.workdir / "instances" / study_uid / series_uid / f"{sop_uid}.dcm"


def run_cli(*args, timeout=30):
    return subprocess.run([str(SEGNODE_BIN), *args], capture_output=True, text=True,
                          timeout=timeout)


def query_db(db_path, sql, params=()):
    """Opens, reads and closes: never holds a lock while segnode writes."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        con.row_factory = sqlite3.Row
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


class StreamingStore:
    """segnode-test-store run in the background, its result lines collected as they come."""

    def __init__(self, cmd):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=TOOL_ENV)
        self.lines = []
        self._cv = threading.Condition()
        self._stderr = []
        self._out_thread = threading.Thread(target=self._read_stdout, daemon=True)
        self._err_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._out_thread.start()
        self._err_thread.start()

    def _read_stdout(self):
        for line in self.proc.stdout:
            if line.strip():
                with self._cv:
                    self.lines.append(parse_store_line(line))
                    self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def _read_stderr(self):
        for line in self.proc.stderr:
            self._stderr.append(line)

    def wait_for_lines(self, n, timeout):
        with self._cv:
            ok = self._cv.wait_for(lambda: len(self.lines) >= n or self.proc.poll() is not None,
                                   timeout=timeout)
            return ok and len(self.lines) >= n

    def finish(self, timeout=60):
        rc = self.proc.wait(timeout=timeout)
        self._out_thread.join(timeout=10)
        self._err_thread.join(timeout=10)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return StoreResult(rc, list(self.lines), "".join(self._stderr))


# ---------------------------------------------------------------- test base class

class SegnodeTestCase(unittest.TestCase):
    """Gives each test a temporary directory and stops every node it started."""

    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        require_tools()

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix=f"segnode-it-{self._testMethodName}-"))
        self._nodes = []
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        for node in self._nodes:
            if node.running():
                node.kill()
            node._close_log()
        if os.environ.get("SEGNODE_KEEP_TMP") == "1":
            print(f"\n(kept {self.tmp})")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def node(self, config=None, name="node", start=True):
        n = Node(self.tmp, config, name)
        self._nodes.append(n)
        if start:
            n.start()
        return n

    def restart(self, node):
        """Starts a stopped or killed node again, same port, config and working directory."""
        node.start()
        return node

    def series(self, name="series", **kw):
        return generate_series(self.tmp / name, **kw)

    def assertStopsCleanly(self, node, timeout=30.0):
        rc = node.stop(timeout=timeout)
        self.assertEqual(rc, 0, f"segnode exit status after SIGTERM\n{node.log_tail()}")

    def assertProcOk(self, proc, what="command"):
        self.assertEqual(proc.returncode, 0,
                         f"{what} failed ({proc.returncode})\nstdout: {proc.stdout}\n"
                         f"stderr: {proc.stderr}")

    def assertSameDataset(self, stored, source):
        a = dataset_bytes(stored)
        b = dataset_bytes(source)
        self.assertTrue(a == b, f"data set of {stored} ({len(a)} bytes) differs from "
                                f"{source} ({len(b)} bytes)")

    def stored_uids(self, node, series_uid=None):
        if series_uid is None:
            rows = node.query("SELECT sop_instance_uid FROM instances")
        else:
            rows = node.query("SELECT i.sop_instance_uid FROM instances i JOIN series s "
                              "ON s.id = i.series_id WHERE s.series_uid = ?", (series_uid,))
        return sorted(r[0] for r in rows)

    def files_under(self, directory):
        directory = Path(directory)
        if not directory.exists():
            return []
        return sorted(p for p in directory.rglob("*") if p.is_file())


# ---------------------------------------------------------------- destination peers

class StoreScpPeer:
    """dcmtk's storescp as a send-back destination: writes what it receives into `out_dir`
    (SG.<uid> for SEG, RS.<uid> for RTSTRUCT, ...), on a loopback port chosen once, so it
    can be stopped and started again on the same port."""

    def __init__(self, base_dir, ae="DEST", port=None, name="dest", fork=False):
        self.ae = ae
        self.fork = fork  # storescp --fork: one process per association
        self.port = port or free_port()
        self.out_dir = Path(base_dir) / f"{name}-received"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = Path(base_dir) / f"{name}.log"
        self.proc = None

    def peer_entry(self, name="dest"):
        return {"name": name, "ae_title": self.ae, "host": LOOPBACK, "port": self.port}

    def start(self, timeout=10.0):
        env = dict(os.environ, TCP_NODELAY="1")
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            ["storescp", *(["--fork"] if self.fork else []), "-aet", self.ae, "-od",
             str(self.out_dir), "+xa", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_open(self.port):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"storescp exited: {self.log_path.read_text()}")
            time.sleep(0.05)
        raise RuntimeError(f"storescp did not listen on {self.port}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def clear(self):
        for p in self.out_dir.iterdir():
            p.unlink()

    def files(self, prefix=""):
        return sorted(p for p in self.out_dir.iterdir() if p.name.startswith(prefix))
