"""Fixtures of the end-to-end suite: a live lossweightd, the tool, the client.

The daemon is the real binary from $LW_BUILD (default build/), on an
ephemeral port of 127.0.0.1 with a temporary data directory; it is always
stopped (SIGTERM, then SIGKILL after a bounded wait) when its fixture ends.
The Python client is imported from the checkout (clients/python).
"""
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLIENT_DIR = os.path.join(ROOT, "clients", "python")
if CLIENT_DIR not in sys.path:
    sys.path.insert(0, CLIENT_DIR)


def build_dir():
    b = os.environ.get("LW_BUILD", "build")
    return b if os.path.isabs(b) else os.path.join(ROOT, b)


def daemon_path():
    return os.environ.get("LW_DAEMON") or os.path.join(build_dir(), "lossweightd")


def tool_path():
    return os.environ.get("LW_TOOL") or os.path.join(build_dir(), "lossweight")


class Daemon:
    """A lossweightd process; url is "http://ADDR:PORT"."""

    def __init__(self, tmp, *extra):
        self.tmp = str(tmp)
        self.ready = os.path.join(self.tmp, "ready")
        self.log_path = os.path.join(self.tmp, "lossweightd.log")
        self.data = os.path.join(self.tmp, "data")
        exe = daemon_path()
        if not os.access(exe, os.X_OK):
            pytest.fail("no daemon at %s (build it: make all)" % exe)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [exe, "--listen", "127.0.0.1:0", "--ready-file", self.ready,
             "--data-dir", self.data, "--log-level", "warn"] + list(extra),
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        addr = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with open(self.ready) as f:
                    addr = f.read().strip()
            except OSError:
                addr = ""
            if addr:
                break
            time.sleep(0.02)
        if not addr:
            self.stop()
            raise RuntimeError("lossweightd did not become ready:\n" + self.log_text())
        self.addr = addr
        self.url = "http://" + addr

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("lwd"))
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="session")
def tool():
    t = tool_path()
    if not os.access(t, os.X_OK):
        pytest.fail("no tool at %s (build it: make all)" % t)
    return t
