"""Fixtures for the integration tests: the real lossweightd on an ephemeral port.

`daemon` starts build/lossweightd (the build directory comes from $LW_BUILD,
default "build") with --listen 127.0.0.1:0 --ready-file and --data-dir in a
temporary directory, waits (bounded) for the ready file, and always stops the
process afterwards (SIGTERM, then SIGKILL). `start_daemon` starts more, with
extra flags.

Every answer a Client receives is checked against the wire contract
(contract.py: proto/openapi.yaml and the JSON Schemas in proto/schemas/):
an undocumented status, a Content-Type the spec does not list or a body that
does not validate fails the test. `raw(..., check=False)` skips that for a
test that must see something off-contract on purpose.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from contract import contract

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / os.environ.get("LW_BUILD", "build")
DAEMON = BUILD / "lossweightd"
TOOL = BUILD / "lossweight"

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 30.0


class Client:
    """One keep-alive HTTP connection to the daemon. token: sent as
    "Authorization: Bearer <token>" on every request (unless the request's
    own headers have an Authorization); ssl_context: speak HTTPS with it."""

    def __init__(self, host, port, timeout=HTTP_TIMEOUT_S, token=None, ssl_context=None):
        self.host, self.port, self.timeout = host, port, timeout
        self.token, self.ssl_context = token, ssl_context
        self.conn = self._connect()

    def _connect(self):
        if self.ssl_context is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                               context=self.ssl_context)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def close(self):
        self.conn.close()

    def raw(self, method, path, body=None, headers=None, check=True):
        """Send a request; returns (status, headers dict lower-cased, body bytes).
        The answer is checked against proto/ (see the module doc) unless
        check is false."""
        hdrs = dict(headers or {})
        if self.token is not None and "Authorization" not in hdrs:
            hdrs["Authorization"] = "Bearer " + self.token
        if body is not None and not isinstance(body, (bytes, bytearray)):
            body = body.encode()
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/json"
        self.conn.request(method, path, body=body, headers=hdrs)
        resp = self.conn.getresponse()
        data = resp.read()
        h = {k.lower(): v for k, v in resp.getheaders()}
        if check:
            contract().check_response(method, path, resp.status, h, data)
        if h.get("connection", "").lower() == "close":
            self.conn.close()
            self.conn = self._connect()
        return resp.status, h, data

    def call(self, method, path, doc=None, **kw):
        """JSON in, (status, parsed JSON or text) out."""
        body = None if doc is None else json.dumps(doc)
        status, h, data = self.raw(method, path, body, **kw)
        if h.get("content-type", "").startswith("application/json"):
            return status, json.loads(data)
        return status, data.decode()

    def get(self, path):
        return self.call("GET", path)

    def put(self, path, doc):
        return self.call("PUT", path, doc)

    def post(self, path, doc):
        return self.call("POST", path, doc)

    def delete(self, path):
        return self.call("DELETE", path)


class Daemon:
    def __init__(self, proc, addr, tmp):
        self.proc, self.addr, self.tmp = proc, addr, tmp
        host, port = addr.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.url = f"http://{addr}"
        self._clients = []

    def client(self, timeout=HTTP_TIMEOUT_S, token=None, ssl_context=None):
        c = Client(self.host, self.port, timeout, token=token, ssl_context=ssl_context)
        self._clients.append(c)
        return c

    def log(self):
        p = self.tmp / "stderr.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT_S):
        return self.proc.wait(timeout=timeout)

    def stop(self):
        for c in self._clients:
            c.close()
        stop_proc(self.proc)


def stop_proc(proc):
    """SIGTERM, then SIGKILL if it has not exited in time; always reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)


def _start(tmp, extra, env=None):
    tmp.mkdir(parents=True, exist_ok=True)
    ready = tmp / "ready"
    if not DAEMON.exists():
        pytest.fail(f"{DAEMON} is not built (make BUILD={BUILD.name})")
    args = [str(DAEMON), "--listen", "127.0.0.1:0", "--ready-file", str(ready),
            "--data-dir", str(tmp / "data"), *extra]
    err = open(tmp / "stderr.log", "wb")
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=err, env=None if env is None else {**os.environ, **env})
    err.close()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"lossweightd exited {proc.returncode}: "
                               + (tmp / "stderr.log").read_text(errors="replace"))
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
            raise RuntimeError("lossweightd did not write its ready file in time")
        time.sleep(0.01)
    addr = ready.read_text().strip()
    return Daemon(proc, addr, tmp)


@pytest.fixture
def start_daemon(tmp_path):
    """A function starting lossweightd with extra flags; all are stopped at the end."""
    started = []

    def start(*extra, env=None):
        d = _start(tmp_path / f"d{len(started)}", list(extra), env)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


@pytest.fixture
def daemon(start_daemon):
    return start_daemon()


@pytest.fixture
def client(daemon):
    return daemon.client()


def methods_available(client):
    status, doc = client.get("/v1/methods")
    assert status == 200
    return {m["name"] for m in doc["methods"] if m.get("servable", True)}


def replay(lines, timeout=60):
    """Run `lossweight replay` on JSON-serialisable lines; returns parsed decisions."""
    if not TOOL.exists():
        pytest.skip(f"{TOOL} is not built")
    text = "".join(json.dumps(x) + "\n" for x in lines)
    out = subprocess.run([str(TOOL), "replay"], input=text.encode(), capture_output=True,
                         timeout=timeout, check=False)
    assert out.returncode == 0, out.stderr.decode()
    return [json.loads(l) for l in out.stdout.decode().splitlines() if l.strip()]


def rank_mean(values, samples=None):
    """DESIGN.md's fixed arithmetic: 0.0 plus the ranks in rank order, divided."""
    if samples is None:
        samples = [1.0] * len(values)
    total = 0.0
    for s in samples:
        total += s
    out = []
    for k in range(len(values[0])):
        acc = 0.0
        for r, v in enumerate(values):
            acc += samples[r] * v[k]
        out.append(acc / total)
    return out


@pytest.fixture
def procs(tmp_path):
    """lossweightd processes on data directories that outlive them
    (durability_util.Procs), every one stopped at the end."""
    from durability_util import Procs  # durability_util imports this module
    p = Procs(tmp_path / "work")
    yield p
    p.stop_all()


def raw_http(host, port, data, timeout=10):
    """Send raw bytes on a new connection and read until the daemon closes it."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(data)
        return recv_all(s)
    finally:
        s.close()


def recv_all(s):
    """Read from socket s until the peer closes it."""
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return got
        got += chunk
