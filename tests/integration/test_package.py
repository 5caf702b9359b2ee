"""The Debian package and the systemd unit.

The package is built with cpack from this build, checked with lintian, and installed with a
real `dpkg -i` into a throwaway root: an overlay over this machine's root in a private mount
namespace, so its maintainer scripts run for real (the segnode user, /var/lib/segnode) while
the host stays untouched. From that root, the installed binary checks the installed config,
serves as the segnode user under the unit's file-system restrictions (read-only system,
writable /var/lib/segnode only, private /tmp), receives a series, runs an external algorithm
and sends its SEG back, and is removed again.
"""

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
from pathlib import Path

import pydicom

from harness import (SEGNODE_BIN, SOURCE_DIR, StoreScpPeer, free_port, generate_series,
                     port_open)

UNIT = SOURCE_DIR / "systemd" / "segnode.service"
MAX_EXPOSURE = 2.0


def build_package():
    build_dir = Path(SEGNODE_BIN).parent
    for old in build_dir.glob("segnode_*.deb"):
        old.unlink()
    proc = subprocess.run(["cmake", "--build", str(build_dir), "--target", "package-deb"],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"package-deb failed:\n{proc.stdout}\n{proc.stderr}")
    debs = sorted(build_dir.glob("segnode_*.deb"))
    if len(debs) != 1:
        raise AssertionError(f"expected one segnode_*.deb in {build_dir}, found {debs}")
    return debs[0]


PROGRAM = Path(__file__).resolve().parent / "external" / "kaapana_otsu.py"
ALGORITHM = """\
[[algorithms]]
name = "kaapana_otsu"
version = "0.1.0"
command = ["/usr/bin/python3", "/usr/local/lib/segnode-test/kaapana_otsu.py"]
layout = "kaapana"

[[algorithms.segments]]
label = 1
name = "Foreground"
"""
TEST_CONFIG = """\
algorithms_dir = "/etc/segnode/algorithms.d"

[node]
ae_title = "PKGNODE"
workdir = "/var/lib/segnode"

[dicom]
port = {dicom_port}

[http]
port = {http_port}

[series]
quiet_period_s = 1

[[peers]]
name = "dest"
ae_title = "PKGDEST"
host = "127.0.0.1"
port = {peer_port}

[[rules]]
name = "otsu"
algorithm = "kaapana_otsu"
outputs = ["seg"]
destination = "dest"
"""

INSTALL_SCRIPT = r"""
set -eu
root={tmp}/root
mkdir -p "$root"
mount -t tmpfs tmpfs {tmp}/layers
mkdir -p {tmp}/layers/upper {tmp}/layers/work
mount -t overlay overlay -o lowerdir=/,upperdir={tmp}/layers/upper,workdir={tmp}/layers/work "$root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
cp {deb} "$root/tmp/segnode.deb"
in_root() {{ chroot "$root" "$@"; }}
echo "== install"
in_root dpkg -i /tmp/segnode.deb
echo "== version"
in_root /usr/bin/segnode --version
echo "== check"
in_root /usr/bin/segnode config check /etc/segnode/segnode.toml
echo "== user"
in_root getent passwd segnode
echo "== statedir"
in_root stat -c '%U:%G %a' /var/lib/segnode
echo "== conffiles"
in_root dpkg-query -W -f='${{Conffiles}}\n' segnode
echo "== serve"
# An external algorithm and a rule that sends its SEG to the test's storescp.
mkdir -p "$root/etc/segnode/algorithms.d" "$root/usr/local/lib/segnode-test"
cp {program} "$root/usr/local/lib/segnode-test/"
cp {tmp}/algorithm.toml "$root/etc/segnode/algorithms.d/"
cp {tmp}/test.toml "$root/etc/segnode/test.toml"
chmod -R a+rX "$root/etc/segnode" "$root/usr/local/lib/segnode-test"
in_root segnode config check /etc/segnode/test.toml
# What the unit asks of systemd: ProtectSystem=strict with ReadWritePaths=/var/lib/segnode,
# PrivateTmp (the private tmpfs above), ProtectHome; run as the segnode user, no new privileges.
mount --bind "$root/var/lib/segnode" "$root/var/lib/segnode"
mount -t tmpfs -o mode=0755 tmpfs "$root/home"
mount -t tmpfs -o mode=0700 tmpfs "$root/root"
mount -o remount,bind,ro "$root"
mount -o remount,bind,ro "$root/run"
chroot "$root" setpriv --reuid=segnode --regid=segnode --init-groups --no-new-privs \
    touch /var/tmp/segnode-probe 2>/dev/null && echo "system writable" || echo "system read-only"
chroot "$root" setpriv --reuid=segnode --regid=segnode --init-groups --no-new-privs \
    /usr/bin/segnode serve --config /etc/segnode/test.toml > {tmp}/serve.log 2>&1 &
pid=$!
echo "== serving"
while [ ! -e {tmp}/stop ] && kill -0 $pid 2>/dev/null; do sleep 0.1; done
kill -TERM $pid 2>/dev/null || true
wait $pid && echo "serve exit 0" || echo "serve exit $?"
mount -o remount,bind,rw "$root"
echo "== files"
in_root stat -c '%U' /var/lib/segnode/segnode.db
echo "== remove"
in_root dpkg -r segnode
test -e "$root/usr/bin/segnode" && echo "binary still there" || echo "binary removed"
test -d "$root/var/lib/segnode" && echo "data kept" || echo "data gone"
"""


def host_state():
    user = subprocess.run(["getent", "passwd", "segnode"], capture_output=True, text=True)
    return (user.stdout, Path("/usr/bin/segnode").exists(),
            Path("/etc/segnode/segnode.toml").exists(),
            subprocess.run(["dpkg-query", "-W", "segnode"], capture_output=True).returncode)


class PackageTest(unittest.TestCase):

    def wait_until(self, predicate, timeout, what, log=None):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
                self.fail(f"timed out after {timeout} s waiting for {what}\n{tail}")
            time.sleep(0.2)

    def test_unit_exposure_is_at_most_2(self):
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze not installed")
        proc = subprocess.run(["systemd-analyze", "security", "--offline=true", str(UNIT)],
                              capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for segnode\.service: ([0-9.]+)", proc.stdout)
        self.assertIsNotNone(m, proc.stdout + proc.stderr)
        self.assertLessEqual(float(m.group(1)), MAX_EXPOSURE, proc.stdout)
        # Port 104 is one drop-in away, and nothing else gets a capability.
        text = UNIT.read_text()
        self.assertIn("#AmbientCapabilities=CAP_NET_BIND_SERVICE", text)
        self.assertRegex(text, r"\nCapabilityBoundingSet=\n")
        verify = subprocess.run(["systemd-analyze", "verify", "--man=no", str(UNIT)],
                                capture_output=True, text=True, timeout=60)
        # The unit names /usr/bin/segnode, which only the package installs; every other
        # complaint is a real problem.
        problems = [l for l in verify.stderr.splitlines()
                    if l.strip() and "/usr/bin/segnode" not in l]
        self.assertEqual(problems, [], verify.stderr)

    def test_package_builds_lints_installs_serves_and_removes(self):
        for tool in ("cpack", "lintian", "dpkg-shlibdeps", "unshare", "storescu"):
            if shutil.which(tool) is None:
                self.skipTest(f"{tool} not installed (scripts/install-deps.sh installs it)")
        deb = build_package()
        self.assertRegex(deb.name, r"^segnode_\d+\.\d+\.\d+_[a-z0-9]+\.deb$")

        info = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True,
                              text=True, check=True).stdout
        for dep in ("adduser", "libdcmtk17", "libsqlite3-0", "libssl3"):
            self.assertIn(dep, info)

        lint = subprocess.run(["lintian", "--no-tag-display-limit", str(deb)],
                              capture_output=True, text=True, timeout=300)
        errors = [l for l in lint.stdout.splitlines() if l.startswith("E:")]
        self.assertEqual(errors, [], lint.stdout)

        if os.geteuid() != 0:
            self.skipTest("installing into a throwaway root needs root (mount namespaces)")
        before = host_state()
        tmp = Path(tempfile.mkdtemp(prefix="segnode-pkg-"))
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        (tmp / "layers").mkdir()
        dicom_port = free_port()
        peer = StoreScpPeer(tmp, ae="PKGDEST")
        peer.start()
        self.addCleanup(peer.stop)
        series = generate_series(tmp / "series", rows=64, cols=64, slices=12)
        (tmp / "algorithm.toml").write_text(ALGORITHM)
        (tmp / "test.toml").write_text(TEST_CONFIG.format(dicom_port=dicom_port,
                                                          http_port=free_port(),
                                                          peer_port=peer.port))
        script = INSTALL_SCRIPT.format(tmp=tmp, deb=deb, program=PROGRAM)
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            self.skipTest(f"no mount namespaces here: {probe.stderr.strip()}")
        proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                 "bash", "-c", script], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        try:
            self.wait_until(lambda: "== serving\n" in lines or proc.poll() is not None, 240,
                            "the installed node to start")
            self.assertIsNone(proc.poll(), "".join(lines))
            self.wait_until(lambda: port_open(dicom_port), 30, "the DICOM port",
                            tmp / "serve.log")
            sent = subprocess.run(["storescu", "-aec", "PKGNODE", "127.0.0.1", str(dicom_port),
                                   *series["files"]], capture_output=True, text=True,
                                  timeout=120)
            self.assertEqual(sent.returncode, 0, sent.stderr)
            self.wait_until(lambda: peer.files("SG"), 120,
                            "the SEG of the external algorithm at the destination",
                            tmp / "serve.log")
        finally:
            (tmp / "stop").touch()
            try:
                proc.wait(timeout=120)
            finally:
                if proc.poll() is None:
                    proc.kill()
            reader.join(timeout=10)
            peer.stop()
        out = "".join(lines)
        errors = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        serve_log = (tmp / "serve.log").read_text() if (tmp / "serve.log").exists() else ""
        self.assertEqual(proc.returncode, 0, f"{out}\n{errors}\n{serve_log}")
        seg = pydicom.dcmread(str(peer.files("SG")[0]))
        self.assertEqual(seg.Modality, "SEG")
        self.assertEqual(seg.StudyInstanceUID, series["study_uid"])
        self.assertEqual(seg.ReferencedSeriesSequence[0].SeriesInstanceUID,
                         series["series_uid"])
        self.assertIn("kaapana_otsu", serve_log)

        def section(name):
            m = re.search(rf"== {name}\n(.*?)(?:\n== |\Z)", out, re.S)
            self.assertIsNotNone(m, out)
            return m.group(1)

        self.assertRegex(section("version").strip(), r"^\d+\.\d+\.\d+")
        self.assertIn("/etc/segnode/segnode.toml", section("check"))
        self.assertRegex(section("user"), r"^segnode:x:\d+:\d+:.*:/var/lib/segnode:")
        self.assertEqual(section("statedir").strip(), "segnode:segnode 750")
        self.assertIn("/etc/segnode/segnode.toml", section("conffiles"))
        self.assertIn("system read-only", section("serve"))
        self.assertIn("serve exit 0", out, serve_log)
        # The packaged config puts the data under /var/lib/segnode, owned by the service user.
        self.assertEqual(section("files").strip(), "segnode")
        self.assertIn("binary removed", section("remove"))
        self.assertIn("data kept", section("remove"))
        # The host never saw any of it.
        self.assertEqual(host_state(), before, "installing into the throwaway root changed the host")


if __name__ == "__main__":
    unittest.main()
