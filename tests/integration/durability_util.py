"""Helpers for the durability tests: a lossweightd process bound to a data
directory that outlives it (restart, kill -9, refusal to start), the journal's
framing read from Python, and deterministic reports.

The record framing (server/persist.h): u32 CRC-32C, u32 payload length,
u8 type, 3 zero bytes, payload. Segment and snapshot files start with a
16-byte header. Only the lengths are needed here to find record boundaries;
crc32c() is for tests that forge a record.
"""

import json
import os
import random
import signal
import struct
import subprocess
import time
from pathlib import Path

from conftest import DAEMON, Client

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 20.0
FILE_HDR = 16
REC_HDR = 12
REC_JOB_CREATED, REC_JOB_DELETED, REC_JOB_RESTORED, REC_REPORT, REC_STEP_DECIDED = 1, 2, 3, 4, 5


class Lwd:
    """One lossweightd on `data`; logs and the ready file live in `work`."""

    seq = 0

    def __init__(self, data, work, flags=(), preexec_fn=None, env=None):
        Lwd.seq += 1
        self.data, self.work = Path(data), Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.ready = self.work / f"ready.{Lwd.seq}"
        self.errpath = self.work / f"stderr.{Lwd.seq}.log"
        args = [str(DAEMON), "--listen", "127.0.0.1:0", "--ready-file", str(self.ready),
                "--data-dir", str(self.data), *flags]
        with open(self.errpath, "wb") as err:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err,
                                         preexec_fn=preexec_fn,
                                         env=None if env is None else {**os.environ, **env})
        self.addr = None
        self._clients = []

    def wait_ready(self, timeout=READY_TIMEOUT_S):
        """The bound address once the ready file appears; None if the process
        exited first (see .rc and .log())."""
        deadline = time.monotonic() + timeout
        while not self.ready.exists():
            if self.proc.poll() is not None:
                return None
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("lossweightd did not become ready: " + self.log())
            time.sleep(0.005)
        self.addr = self.ready.read_text().strip()
        host, port = self.addr.rsplit(":", 1)
        self.host, self.port = host, int(port)
        return self.addr

    @property
    def rc(self):
        return self.proc.poll()

    def client(self, timeout=30.0):
        c = Client(self.host, self.port, timeout)
        self._clients.append(c)
        return c

    def log(self):
        return self.errpath.read_text(errors="replace") if self.errpath.exists() else ""

    def events(self, name):
        """Log lines (key=value text) of one event, as dicts."""
        out = []
        for line in self.log().splitlines():
            if f" event={name} " in line + " ":
                out.append(dict(kv.split("=", 1) for kv in _split_kv(line) if "=" in kv))
        return out

    def _close_clients(self):
        for c in self._clients:
            c.close()
        self._clients = []

    def kill(self):
        """kill -9 and reap."""
        self._close_clients()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(timeout=STOP_TIMEOUT_S)

    def term(self):
        """SIGTERM; the exit status (SIGKILL after STOP_TIMEOUT_S)."""
        self._close_clients()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)
            raise


def _split_kv(line):
    """Split a text log line into key=value tokens, honouring double quotes."""
    out, cur, q = [], "", False
    for ch in line:
        if ch == '"':
            q = not q
            continue
        if ch == " " and not q:
            if cur:
                out.append(cur)
            cur = ""
            continue
        cur += ch
    if cur:
        out.append(cur)
    return out


class Procs:
    """Every Lwd started through it is stopped at the end (kill -9)."""

    def __init__(self, work):
        self.work = Path(work)
        self.all = []

    def start(self, data, *flags, **kw):
        d = Lwd(data, self.work, flags, **kw)
        self.all.append(d)
        if d.wait_ready() is None:
            raise RuntimeError(f"lossweightd exited {d.rc}: {d.log()}")
        return d

    def start_fails(self, data, *flags, timeout=READY_TIMEOUT_S, **kw):
        """Start a daemon that must refuse: (exit status, stderr)."""
        d = Lwd(data, self.work, flags, **kw)
        self.all.append(d)
        addr = d.wait_ready(timeout)
        assert addr is None, f"lossweightd started on {addr}; log:\n{d.log()}"
        return d.proc.wait(timeout=STOP_TIMEOUT_S), d.log()

    def stop_all(self):
        for d in self.all:
            if d.proc.poll() is None:
                d.kill()


# ---- the data directory ----

def segments(data):
    return sorted(Path(data).glob("journal-*.lwj"))


def snapshots(data):
    return sorted(Path(data).glob("snapshot-*.lws"))


def records(path):
    """[(offset, total length, type)] of the records of a journal segment,
    up to the first that does not fit in the file."""
    b = Path(path).read_bytes()
    out, off = [], FILE_HDR
    while off + REC_HDR <= len(b):
        n, t = struct.unpack_from("<IB", b, off + 4)
        if off + REC_HDR + n > len(b):
            break
        out.append((off, REC_HDR + n, t))
        off += REC_HDR + n
    return out


def _crc_table():
    t = []
    for b in range(256):
        c = b
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _crc_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for x in data:
        crc = (crc >> 8) ^ _T[(crc ^ x) & 0xFF]
    return crc ^ 0xFFFFFFFF


def frame(rtype, payload):
    """A record as the daemon writes it."""
    body = struct.pack("<IB3x", len(payload), rtype) + payload
    return struct.pack("<I", crc32c(body)) + body


# ---- reports ----

def report(job, rank, step, tasks, gram=False, epoch=None, samples=None):
    """A deterministic report of `rank` for `step` of `job` (positive
    losses, norms; a symmetric positive-definite Gram when asked)."""
    rng = random.Random(f"{job}/{rank}/{step}")
    doc = {"rank": rank, "step": step,
           "losses": [rng.uniform(0.05, 3.0) for _ in range(tasks)],
           "grad_norms": [rng.uniform(0.1, 2.0) for _ in range(tasks)]}
    if gram:
        a = [[rng.uniform(-1, 1) for _ in range(tasks + 1)] for _ in range(tasks)]
        g = [[sum(a[i][k] * a[j][k] for k in range(tasks + 1)) for j in range(tasks)]
             for i in range(tasks)]
        for i in range(tasks):
            g[i][i] += 0.1
        doc["gram"] = g
    if epoch is not None:
        doc["epoch"] = epoch
    if samples is not None:
        doc["samples"] = samples
    return doc


def history(client, job):
    """Every decided step the daemon keeps, oldest first."""
    items, frm = [], 0
    while True:
        st, doc = client.get(f"/v1/jobs/{job}/history?from={frm}&limit=1000")
        assert st == 200, doc
        items += doc["items"]
        if doc["next"] is None:
            return items
        frm = doc["next"]


def snapshot_of(client, jobs):
    """What a restart must bring back, bit for bit: per job the state
    document, the whole history and the latest decision's bytes."""
    out = {}
    for j in jobs:
        st, state = client.get(f"/v1/jobs/{j}/state")
        assert st == 200, state
        st, _, w = client.raw("GET", f"/v1/jobs/{j}/weights")
        out[j] = {"state": json.dumps(state, sort_keys=True),
                  "history": json.dumps(history(client, j), sort_keys=True),
                  "weights": (st, w)}
    return out


def uw_pair_daemon(procs, data, n_reports=7):
    """A daemon on `data` (no timed snapshots) with job "j" (uw, 2 tasks,
    world_size 2) and n_reports reports posted alternately by ranks 0 and 1:
    steps 0 .. n_reports // 2 - 1 decided, and step n_reports // 2 open
    with rank 0's report when n_reports is odd."""
    d = procs.start(data, "--snapshot-interval-s", "0")
    c = d.client()
    assert c.put("/v1/jobs/j", {"tasks": ["a", "b"], "method": "uw", "world_size": 2})[0] == 201
    for i in range(n_reports):
        st, doc = c.post("/v1/jobs/j/reports?wait_ms=0", report("j", i % 2, i // 2, 2))
        assert st in (200, 202), doc
    return d


def flip(path, offset):
    """Invert some bits of the byte at offset (a corrupted record)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))
