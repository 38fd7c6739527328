"""The crash test: several jobs (barrier and async, stateful methods, a Gram
method, weighted samples), several ranks each, driven concurrently while
lossweightd is killed with SIGKILL at random moments (at least 20 times) and
restarted on the same data directory, with snapshots and journal cuts
happening all along (--snapshot-interval-s 1, --journal-max-bytes 24K).

At the end every report acknowledged (any 2xx) must be in the state, every
step decided from all its ranks with exactly the mean of the acknowledged
reports (rank order, DESIGN.md's fixed arithmetic), every decision a client
was told must be the one stored, and each job's decisions must equal, bit
for bit, `lossweight replay` of its acknowledged reports."""

import http.client
import json
import random
import threading
import time

from conftest import rank_mean, replay
from durability_util import Procs, history, report

KILLS = 22
JOBS = {
    # id: (spec, Gram?, samples?)
    "uw-b3": ({"tasks": ["a", "b"], "method": "uw", "world_size": 3}, False, False),
    "mgda-b2": ({"tasks": ["a", "b", "c"], "method": "mgda", "world_size": 2}, True, False),
    "famo-b1": ({"tasks": ["a", "b", "c"], "method": "famo"}, False, False),
    "dwa-a2": ({"tasks": ["a", "b", "c"], "method": "dwa", "world_size": 2, "sync": "async"},
               False, False),
    "ew-a3": ({"tasks": ["a", "b"], "method": "ew", "world_size": 3, "sync": "async"},
              False, True),
}
NET_ERRORS = (OSError, http.client.HTTPException)


class Cluster:
    """The daemon's current address, shared by the rank threads."""

    def __init__(self, d):
        self.lock = threading.Lock()
        self.d = d
        self.gen = 0

    def current(self):
        with self.lock:
            return self.d.host, self.d.port, self.gen


class Rank(threading.Thread):
    def __init__(self, cluster, job, rank, shared):
        super().__init__(daemon=True)
        self.cluster, self.job, self.rank, self.shared = cluster, job, rank, shared
        spec, self.gram, self.samples = JOBS[job]
        self.T, self.barrier = len(spec["tasks"]), spec.get("sync", "barrier") == "barrier"
        self.conn, self.gen = None, -1
        self.acked = {}   # step -> body
        self.told = {}    # step -> weights a reply carried
        self.error = None

    def body(self, step):
        return report(self.job, self.rank, step, self.T, gram=self.gram, epoch=step // 5,
                      samples=1.0 + self.rank if self.samples else None)

    def call(self, method, path, doc=None):
        """One request, retried across crashes until the daemon answers."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            host, port, gen = self.cluster.current()
            if self.conn is None or gen != self.gen:
                if self.conn:
                    self.conn.close()
                self.conn = http.client.HTTPConnection(host, port, timeout=20)
                self.gen = gen
            try:
                self.conn.request(method, path, body=None if doc is None else json.dumps(doc),
                                  headers={"Content-Type": "application/json"})
                r = self.conn.getresponse()
                data = r.read()
                return r.status, json.loads(data)
            except NET_ERRORS:
                self.conn.close()
                self.conn = None
                time.sleep(0.01)
        raise AssertionError(f"{self.job}/{self.rank}: no answer for 60 s")

    def note(self, doc):
        if doc.get("status") == "decided":
            self.told.setdefault(doc["step"], doc["weights"])
            assert self.told[doc["step"]] == doc["weights"], (self.job, doc)

    def run(self):
        try:
            step = 0
            while self.shared.keep_going(self.job, self.rank, step):
                body = self.body(step)
                # barrier: even ranks are acknowledged at once (202) and poll,
                # odd ranks wait in the POST for the decision
                q = "?wait_ms=0" if (not self.barrier or self.rank % 2 == 0) else ""
                while True:
                    st, doc = self.call("POST", f"/v1/jobs/{self.job}/reports{q}", body)
                    if 200 <= st < 300:
                        break
                    assert st == 503, (self.job, self.rank, step, st, doc)
                    time.sleep(0.01)
                self.acked[step] = body
                self.note(doc)
                if self.barrier and doc.get("status") != "decided":
                    while True:
                        st, doc = self.call("GET", f"/v1/jobs/{self.job}/steps/{step}"
                                                   "?wait_ms=2000")
                        if st == 200:
                            break
                        assert st in (202, 503), (self.job, self.rank, step, st, doc)
                    self.note(doc)
                step += 1
        except BaseException as e:  # reported by the test
            self.error = e


class Shared:
    """Runs the ranks until the killer is done, then to a common last step."""

    def __init__(self):
        self.lock = threading.Lock()
        self.stop = False
        self.at = {}
        self.target = {}

    def keep_going(self, job, rank, step):
        with self.lock:
            self.at[(job, rank)] = step
            if not self.stop:
                return True
            if job not in self.target:
                self.target[job] = max(s for (j, _), s in self.at.items() if j == job) + 3
            return step < self.target[job]


def test_kill9_under_load_loses_no_acknowledged_report(tmp_path):
    procs = Procs(tmp_path / "work")
    data = tmp_path / "data"
    flags = ("--fsync", "always", "--snapshot-interval-s", "1", "--journal-max-bytes", "24K")
    rng = random.Random(20240611)
    t_start = time.monotonic()
    try:
        d = procs.start(data, *flags)
        c = d.client()
        for job, (spec, _, _) in JOBS.items():
            st, doc = c.put(f"/v1/jobs/{job}", spec)
            assert st == 201, doc
        c.close()
        cluster, shared = Cluster(d), Shared()
        ranks = [Rank(cluster, j, r, shared) for j, (spec, _, _) in JOBS.items()
                 for r in range(spec.get("world_size", 1))]
        for r in ranks:
            r.start()
        kills = 0
        while kills < KILLS and time.monotonic() - t_start < 45:
            time.sleep(rng.uniform(0.15, 0.9))
            assert not any(r.error for r in ranks), [r.error for r in ranks if r.error]
            d.kill()
            kills += 1
            d = procs.start(data, *flags)
            with cluster.lock:
                cluster.d, cluster.gen = d, cluster.gen + 1
        assert kills >= 20, f"only {kills} kills in the time allowed"
        with shared.lock:
            shared.stop = True
        for r in ranks:
            r.join(timeout=60)
            assert not r.is_alive(), f"{r.job}/{r.rank} did not finish"
            if r.error:
                raise r.error
        # one more crash after the last acknowledgement
        d.kill()
        d = procs.start(data, *flags)
        c = d.client()
        total = 0
        for job, (spec, gram, samples) in JOBS.items():
            mine = [r for r in ranks if r.job == job]
            steps = len(mine[0].acked)
            assert all(len(r.acked) == steps for r in mine) and steps == shared.target[job]
            hist = history(c, job)
            assert [h["step"] for h in hist] == list(range(steps)), job
            world = len(mine)
            inputs = []
            for h in hist:
                s = h["step"]
                assert h["ranks_present"] == list(range(world)), (job, s)
                bodies = [r.acked[s] for r in mine]
                w = [b["samples"] for b in bodies] if samples else None
                want = {"step": s, "epoch": bodies[0]["epoch"],
                        "losses": rank_mean([b["losses"] for b in bodies], w),
                        "grad_norms": rank_mean([b["grad_norms"] for b in bodies], w)}
                if gram:
                    T = len(spec["tasks"])
                    flat = rank_mean([sum(b["gram"], []) for b in bodies], w)
                    want["gram"] = [flat[i * T:(i + 1) * T] for i in range(T)]
                assert h["input"] == want, (job, s)
                inputs.append(want)
                for r in mine:
                    if s in r.told:
                        assert r.told[s] == h["weights"], (job, s, r.rank)
            canon = c.get(f"/v1/jobs/{job}")[1]["spec"]
            out = replay([canon] + inputs)
            assert [o["step"] for o in out] == list(range(steps))
            assert [o["weights"] for o in out] == [h["weights"] for h in hist], job
            total += steps * world
        assert total > 200, total
        recovered = sum(len(x.events("recovered")) for x in procs.all)
        assert recovered >= kills + 2
        assert time.monotonic() - t_start < 90
    finally:
        procs.stop_all()
