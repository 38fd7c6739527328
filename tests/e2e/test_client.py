"""The Python client (clients/python/lossweight) against a live lossweightd:
every call, the error classes with the daemon's code/message/field, the
kept-alive connection, and report retries after connection failures (through
a small fault-injecting TCP proxy on 127.0.0.1)."""
import json
import os
import socket
import threading
import time

import pytest

import lossweight
from lossweight import (BadRequest, Client, Conflict, ConnectionFailed, Decision,
                        LossweightError, NotFound, PayloadTooLarge)


@pytest.fixture
def c(daemon):
    with Client(daemon.url, timeout=30) as cl:
        yield cl


def both_ranks(url, job, step, losses, **kw):
    """Rank 0 and rank 1 report `step` concurrently; their decisions."""
    out = {}

    def go(r):
        with Client(url, timeout=30) as cl:
            out[r] = cl.report(job, step, losses[r], rank=r, **kw)

    ts = [threading.Thread(target=go, args=(r,)) for r in (0, 1)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    return out[0], out[1]


def test_create_report_weights_step_history(c, daemon):
    spec = c.create_job("cl-basic", ["reg", "cls"], "dwa", world_size=2, seed=5)
    assert spec["spec"]["method"] == "dwa" and spec["spec"]["world_size"] == 2
    # the same spec again is accepted (every rank may create the job)
    c.create_job("cl-basic", ["reg", "cls"], "dwa", world_size=2, seed=5)
    for s in range(4):
        d0, d1 = both_ranks(daemon.url, "cl-basic", s, [[10.0 - s, 0.7], [12.0 - s, 0.5]], epoch=s)
        assert isinstance(d0, Decision)
        assert d0 == d1
        assert d0.status == "decided" and d0.ranks == 2 and d0.method == "dwa"
        assert d0.job == "cl-basic" and d0.step == s and len(d0.weights) == 2
    assert c.weights("cl-basic") == d0
    assert c.step("cl-basic", 3) == d0
    h = c.history("cl-basic")
    assert [e["step"] for e in h] == [0, 1, 2, 3]
    assert h[0]["input"]["losses"] == [11.0, 0.6]  # (0.0 + 10 + 12) / 2, (0.0 + 0.7 + 0.5) / 2
    assert c.history("cl-basic", start=2, limit=1)[0]["step"] == 2
    assert [e["step"] for e in c.iter_history("cl-basic", page=3)] == [0, 1, 2, 3]
    assert c.job("cl-basic")["status"]["last_decided"] == 3
    c.delete_job("cl-basic")
    with pytest.raises(NotFound) as e:
        c.weights("cl-basic")
    assert e.value.status == 404 and e.value.field == "job"


def test_errors_carry_the_daemons_code_message_and_field(c):
    c.create_job("cl-err", ["a", "b"], "power_mean")
    with pytest.raises(Conflict) as e:
        c.create_job("cl-err", ["a", "b"], "ew")
    assert e.value.status == 409 and e.value.code and e.value.message
    with pytest.raises(BadRequest) as e:
        c.report("cl-err", 0, [1.0, 2.0, 3.0])
    assert e.value.status == 400 and e.value.field and "losses" in e.value.field
    with pytest.raises(BadRequest) as e:  # power_mean needs losses > 0
        c.report("cl-err", 0, [1.0, -2.0])
    assert e.value.status == 400
    assert isinstance(e.value, LossweightError)
    with pytest.raises(BadRequest) as e:
        c.create_job("cl-err2", ["a", "b"], "no_such_method")
    assert e.value.field == "method"
    with pytest.raises(ValueError):  # never sent: the daemon refuses NaN too
        c.report("cl-err", 0, [float("nan"), 1.0])
    d = c.report("cl-err", 0, [1.0, 4.0])
    assert d.weights == pytest.approx([1.0, 0.25])  # M / (T L_i), M = 2
    # the same report again: the same answer; other numbers: a conflict
    assert c.report("cl-err", 0, [1.0, 4.0]) == d
    with pytest.raises(Conflict) as e:
        c.report("cl-err", 0, [1.0, 5.0])
    assert e.value.field == "step"


def test_report_without_waiting_and_long_poll(c, daemon):
    c.create_job("cl-wait", ["a", "b"], "ew", world_size=2)
    d = c.report("cl-wait", 0, [1.0, 2.0], rank=0, wait=False)
    assert d.status == "pending" and d.weights is None
    assert c.step("cl-wait", 0, wait_ms=10).status == "pending"
    with Client(daemon.url) as other:
        d1 = other.report("cl-wait", 0, [1.0, 2.0], rank=1)
    assert d1.status == "decided"
    assert c.step("cl-wait", 0, wait_ms=1000) == d1
    # rank 0's retry of its report now gets the decision
    assert c.report("cl-wait", 0, [1.0, 2.0], rank=0) == d1


def test_export_and_restore_state(c):
    c.create_job("cl-state", ["a", "b"], "uw", params={"lr": 0.1})
    ws = [c.report("cl-state", s, [3.0, 0.5]).weights for s in range(6)]
    doc = c.export_state("cl-state")
    json.dumps(doc)  # plain JSON
    later = [c.report("cl-state", s, [3.0, 0.5]).weights for s in range(6, 9)]
    c.restore_state("cl-state", doc)
    assert c.weights("cl-state").weights == ws[-1]
    again = [c.report("cl-state", s, [3.0, 0.5]).weights for s in range(6, 9)]
    assert again == later
    c.delete_job("cl-state")
    c.restore_state("cl-state", doc)  # into a daemon that lost the job
    assert [c.report("cl-state", s, [3.0, 0.5]).weights for s in range(6, 9)] == later


def test_methods(c, tool):
    ms = c.methods()
    names = [m["name"] for m in ms]
    assert "ew" in names and "mgda" in names
    assert c.method("mgda")["output"] == "grad_coeffs"
    assert "gram" in c.method("pcgrad")["inputs"]
    with pytest.raises(NotFound):
        c.method("nope")
    assert "lossweight_" in c.metrics()


def test_one_kept_alive_connection_per_thread(c, daemon):
    c.methods()
    conn = c._local.conn
    sock = conn.sock
    for _ in range(20):
        c.healthz()
    assert c._local.conn is conn and conn.sock is sock
    seen = []
    t = threading.Thread(target=lambda: (c.healthz(), seen.append(c._local.conn)))
    t.start()
    t.join(10)
    assert seen and seen[0] is not conn


def test_fork_gets_its_own_connection(c):
    c.healthz()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child must not share the parent's socket
        ok = 0
        try:
            c.healthz()
            ok = int(c._local.conn is not None and c._local.pid == os.getpid())
        finally:
            os.write(w, b"%d" % ok)
            os._exit(0)
    os.close(w)
    got = os.read(r, 8)
    os.close(r)
    os.waitpid(pid, 0)
    assert got == b"1"
    c.healthz()  # the parent's connection still works


class Proxy:
    """Forwards 127.0.0.1:port to the daemon; `faults` is a list of actions
    taken by the next connections in turn: "close" (accept, then close
    without reading), "eat" (forward the request, drop the daemon's answer,
    close). Later connections are forwarded untouched."""

    def __init__(self, upstream, faults):
        host, port = upstream.rsplit(":", 1)
        self.up = (host, int(port))
        self.faults = list(faults)
        self.accepted = 0
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.ls.settimeout(0.2)
        self.url = "http://127.0.0.1:%d" % self.ls.getsockname()[1]
        self.stopping = False
        self.socks = []
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stopping:
            try:
                cs, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            self.socks.append(cs)
            action = self.faults.pop(0) if self.faults else "pass"
            if action == "close":
                cs.close()
                continue
            us = socket.create_connection(self.up, timeout=10)
            self.socks.append(us)
            threading.Thread(target=self.pump, args=(cs, us, None), daemon=True).start()
            threading.Thread(target=self.pump, args=(us, cs, action == "eat" and (cs, us)),
                             daemon=True).start()

    @staticmethod
    def pump(src, dst, eat):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if eat:  # shutdown, not just close: it wakes the other pump's recv
                    for s in eat:
                        try:
                            s.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                    return
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.stopping = True
        self.ls.close()
        self.t.join(5)
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


def test_report_is_retried_after_connection_errors(daemon):
    with Client(daemon.url) as c:
        c.create_job("cl-retry", ["a", "b"], "power_mean")
    px = Proxy(daemon.addr, ["close", "close", "eat"])
    try:
        with Client(px.url, timeout=10, backoff=0.01) as c:
            # refused twice, then the answer to an accepted report is lost:
            # the retry gets the decision the daemon made the first time
            d = c.report("cl-retry", 0, [1.0, 4.0])
            assert d.status == "decided" and d.weights == pytest.approx([1.0, 0.25])
            assert px.accepted == 4
            h = c.history("cl-retry")
            assert len(h) == 1  # decided once
            for s in range(1, 10):  # and then one kept-alive connection
                c.report("cl-retry", s, [1.0, 4.0])
            assert px.accepted == 4
    finally:
        px.close()


def test_retries_are_bounded():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    c = Client("http://127.0.0.1:%d" % port, timeout=2, retries=3, backoff=0.01)
    t0 = time.monotonic()
    with pytest.raises(ConnectionFailed) as e:
        c.report("j", 0, [1.0])
    assert e.value.status is None and e.value.code == "connection_failed"
    assert time.monotonic() - t0 < 5


def test_package_surface():
    assert lossweight.__version__
    for name in ("Client", "Decision", "LossweightError", "BadRequest", "Conflict", "NotFound"):
        assert hasattr(lossweight, name)
    # the client is the standard library only: importing it pulls in no torch
    import subprocess
    import sys
    code = ("import sys; sys.path.insert(0, %r); import lossweight; "
            "print('torch' in sys.modules)") % os.path.dirname(os.path.dirname(lossweight.__file__))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "False", out.stderr


def test_a_connection_the_daemon_closed_when_idle_is_reopened(tmp_path):
    from conftest import Daemon
    d = Daemon(tmp_path, "--idle-timeout", "1")
    try:
        with Client(d.url, timeout=10, retries=0) as c:  # no retries: only the stale-socket one
            c.create_job("cl-idle", ["a", "b"], "ew")
            first = c._local.conn
            time.sleep(1.6)  # the daemon drops the idle keep-alive connection
            assert c.report("cl-idle", 0, [1.0, 2.0]).weights == [1.0, 1.0]
            time.sleep(1.6)
            c.delete_job("cl-idle")  # DELETE too (it is never sent twice otherwise)
            assert c._local.conn is not first
    finally:
        d.stop()


def test_a_body_far_over_the_limit_gets_the_daemons_413(tmp_path):
    """The daemon answers 413 from the headers and closes without reading the
    body, so sending a 16 MB body fails with a broken pipe; the client reads
    the daemon's answer instead of treating that as a connection failure."""
    from conftest import Daemon
    d = Daemon(tmp_path, "--max-body", "64K")
    try:
        with Client(d.url, timeout=10, retries=2) as c:
            c.create_job("cl-big", ["a", "b"], "ew")
            with pytest.raises(PayloadTooLarge) as e:
                c.report("cl-big", 0, [1.0] * (4 << 20))
            assert e.value.code == "too_large" and "65536" in e.value.message
            assert c.history("cl-big") == []  # nothing changed
            assert c.report("cl-big", 0, [1.0, 2.0]).weights == [1.0, 1.0]  # and it goes on
    finally:
        d.stop()


def test_client_reads_the_proto_examples():
    ex = os.path.join(os.path.dirname(__file__), "..", "..", "proto", "examples")
    if not os.path.isdir(ex) or not os.path.exists(os.path.join(ex, "decision.json")):
        pytest.skip("no proto/examples")
    from lossweight.client import _error_from

    def load(name):
        with open(os.path.join(ex, name)) as f:
            return json.load(f)

    d = Decision.from_json(load("decision.json"))
    assert d.status == "decided" and len(d.weights) == 2 and d.job == "ctr-cvr-7"
    p = Decision.from_json(load("pending.json"))
    assert p.status == "pending" and p.weights is None
    with open(os.path.join(ex, "error.json"), "rb") as f:
        e = _error_from(400, f.read())
    doc = load("error.json")["error"]
    assert isinstance(e, BadRequest)
    assert (e.code, e.message, e.field) == (doc["code"], doc["message"], doc["field"])
