"""Durability: what comes back after a restart (SIGTERM or kill -9) under
every --fsync mode, pending steps, barrier-timeout decisions, failed steps,
snapshots and journal cuts, the data-directory lock, and answers held until
their record is on disk."""

import json
import time

import pytest

from conftest import rank_mean, replay
from durability_util import history, records, report, segments, snapshot_of, snapshots

MODES = ["always", "batch", "off"]


def drive(c, jobs):
    """Create a few jobs and leave each with decided steps and an open one."""
    specs = {
        "uw2": {"tasks": ["a", "b"], "method": "uw", "world_size": 2},
        "dwa-async": {"tasks": ["a", "b", "c"], "method": "dwa", "world_size": 3,
                      "sync": "async"},
        "mgda1": {"tasks": ["a", "b", "c"], "method": "mgda"},
    }
    for j in jobs:
        st, doc = c.put(f"/v1/jobs/{j}", specs[j])
        assert st == 201, doc
    for step in range(6):
        for j in jobs:
            w, T = specs[j].get("world_size", 1), len(specs[j]["tasks"])
            ranks = range(w) if step < 5 else range(w - 1)  # the last step stays open
            for r in ranks:
                body = report(j, r, step, T, gram=j.startswith("mgda"), epoch=step // 2)
                st, doc = c.post(f"/v1/jobs/{j}/reports?wait_ms=0", body)
                assert st in (200, 202), doc
    return specs


@pytest.mark.parametrize("mode", MODES)
def test_restart_after_sigterm_loses_nothing(procs, tmp_path, mode):
    data = tmp_path / "data"
    d = procs.start(data, "--fsync", mode)
    c = d.client()
    jobs = ["uw2", "dwa-async", "mgda1"]
    drive(c, jobs)
    before = snapshot_of(c, jobs)
    assert d.term() == 0
    assert d.events("snapshot"), d.log()  # the final snapshot
    d2 = procs.start(data, "--fsync", mode)
    assert snapshot_of(d2.client(), jobs) == before
    rec = d2.events("recovered")[0]
    assert rec["records_replayed"] == "0" and rec["snapshot_jobs"] == "3", rec


@pytest.mark.parametrize("mode", MODES)
def test_kill9_loses_nothing_acknowledged(procs, tmp_path, mode):
    """A process crash loses nothing under any mode: records are written
    before the answer (batch and off only risk an OS crash)."""
    data = tmp_path / "data"
    d = procs.start(data, "--fsync", mode)
    c = d.client()
    jobs = ["uw2", "dwa-async", "mgda1"]
    drive(c, jobs)
    before = snapshot_of(c, jobs)
    d.kill()
    d2 = procs.start(data, "--fsync", mode)
    assert snapshot_of(d2.client(), jobs) == before
    assert int(d2.events("recovered")[0]["records_replayed"]) > 0


@pytest.mark.parametrize("how", ["kill", "term"])
def test_pending_step_survives_restart(procs, tmp_path, how):
    """Ranks acknowledged for an open step do not report again: after a
    restart (journal replay, or the snapshot's open steps) the last rank's
    report completes the step with all of them."""
    data = tmp_path / "data"
    d = procs.start(data)
    c = d.client()
    assert c.put("/v1/jobs/p", {"tasks": ["a", "b"], "method": "uw", "world_size": 3})[0] == 201
    bodies = [report("p", r, 0, 2) for r in range(3)]
    for r in (0, 1):
        st, doc = c.post("/v1/jobs/p/reports?wait_ms=0", bodies[r])
        assert st == 202 and doc["ranks"] == r + 1, doc
    assert (d.kill() if how == "kill" else d.term()) in (0, -9)
    d2 = procs.start(data)
    c2 = d2.client()
    st, doc = c2.get("/v1/jobs/p/steps/0")
    assert st == 202 and doc["ranks"] == 2, doc
    # a retry of an acknowledged report is recognised, not refused
    st, doc = c2.post("/v1/jobs/p/reports?wait_ms=0", bodies[1])
    assert st == 202, doc
    st, doc = c2.post("/v1/jobs/p/reports", bodies[2])
    assert st == 200 and doc["ranks"] == 3, doc
    item = history(c2, "p")[0]
    assert item["input"]["losses"] == rank_mean([b["losses"] for b in bodies])
    spec = c2.get("/v1/jobs/p")[1]["spec"]
    assert replay([spec, item["input"]])[0]["weights"] == doc["weights"]


def test_barrier_timeout_decision_is_journaled(procs, tmp_path):
    """A step decided by the barrier timeout from a subset of ranks depends
    on timing: replay must decide it from the same ranks."""
    data = tmp_path / "data"
    d = procs.start(data)
    c = d.client()
    spec = {"tasks": ["a", "b"], "method": "dwa", "world_size": 3, "min_ranks": 2,
            "barrier_timeout_ms": 150}
    assert c.put("/v1/jobs/t", spec)[0] == 201
    bodies = {(r, s): report("t", r, s, 2, epoch=s) for r in range(3) for s in range(3)}
    for r in (0, 1):
        assert c.post("/v1/jobs/t/reports?wait_ms=0", bodies[(r, 0)])[0] == 202
    st, dec0 = c.get("/v1/jobs/t/steps/0?wait_ms=3000")
    assert st == 200 and dec0["ranks"] == 2, dec0
    # rank 2 is late for step 0: it gets the decision, its numbers do not count
    assert c.post("/v1/jobs/t/reports?wait_ms=0", bodies[(2, 0)]) == (200, dec0)
    for r in range(3):
        st, doc = c.post("/v1/jobs/t/reports?wait_ms=0", bodies[(r, 1)])
        assert st in (200, 202), doc
    st, dec1 = c.get("/v1/jobs/t/steps/1")
    assert st == 200 and dec1["ranks"] == 3
    d.kill()
    d2 = procs.start(data)
    c2 = d2.client()
    assert c2.get("/v1/jobs/t/steps/0") == (200, dec0)
    assert c2.get("/v1/jobs/t/steps/1") == (200, dec1)
    hist = history(c2, "t")
    assert [h["ranks_present"] for h in hist] == [[0, 1], [0, 1, 2]]
    # the late report was journaled: resent, it is a retry (not 409 step_order)
    assert c2.post("/v1/jobs/t/reports?wait_ms=0", bodies[(2, 0)]) == (200, dec0)
    canon = c2.get("/v1/jobs/t")[1]["spec"]
    out = replay([canon] + [h["input"] for h in hist])
    assert [o["weights"] for o in out] == [dec0["weights"], dec1["weights"]]
    assert hist[0]["input"]["losses"] == rank_mean([bodies[(r, 0)]["losses"] for r in (0, 1)])


def test_failed_step_is_not_half_applied(procs, tmp_path):
    """uw cannot step on losses of 1e308 (its state would overflow): the
    step stays open and failed, the job unchanged, before and after a
    restart through the journal and through a snapshot."""
    data = tmp_path / "data"
    d = procs.start(data)
    c = d.client()
    assert c.put("/v1/jobs/f", {"tasks": ["a", "b"], "method": "uw", "world_size": 2})[0] == 201
    good = [report("f", r, 0, 2) for r in range(2)]
    for b in good:
        c.post("/v1/jobs/f/reports?wait_ms=0", b)
    huge = [{"rank": r, "step": 1, "losses": [1e308, 1e308]} for r in range(2)]
    st0, _ = c.post("/v1/jobs/f/reports?wait_ms=0", huge[0])
    st1, err = c.post("/v1/jobs/f/reports?wait_ms=0", huge[1])
    assert st0 == 202 and st1 >= 400, err
    state = c.get("/v1/jobs/f/state")[1]
    failed = c.get("/v1/jobs/f/steps/1")
    assert failed[0] == st1
    for restart in ("kill", "term"):
        d.kill() if restart == "kill" else d.term()
        d = procs.start(data)
        c = d.client()
        assert c.get("/v1/jobs/f/steps/1") == failed, restart
        assert c.get("/v1/jobs/f/state")[1] == state, restart
    later = [report("f", r, 2, 2) for r in range(2)]
    c.post("/v1/jobs/f/reports?wait_ms=0", later[0])
    st, dec = c.post("/v1/jobs/f/reports", later[1])
    assert st == 200, dec
    canon = c.get("/v1/jobs/f")[1]["spec"]
    mean = lambda bs, s: {"step": s, "losses": rank_mean([b["losses"] for b in bs])}
    out = replay([canon, mean(good, 0), mean(later, 2)])
    assert out[-1]["weights"] == dec["weights"]


def test_snapshots_cut_the_journal(procs, tmp_path):
    """With a small --journal-max-bytes the daemon snapshots and starts new
    segments as it goes; old ones are removed; a restart brings back
    everything from the newest snapshot plus the segments after it."""
    data = tmp_path / "data"
    d = procs.start(data, "--journal-max-bytes", "4K")
    c = d.client()
    assert c.put("/v1/jobs/s", {"tasks": ["a", "b"], "method": "dwa", "world_size": 2})[0] == 201
    for step in range(120):
        for r in range(2):
            assert c.post("/v1/jobs/s/reports?wait_ms=0",
                          report("s", r, step, 2, epoch=step // 10))[0] in (200, 202)
    deadline = time.monotonic() + 10
    while len(d.events("snapshot")) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(d.events("snapshot")) >= 3, d.log()
    assert len(segments(data)) <= 3 and len(snapshots(data)) == 1
    before = snapshot_of(c, ["s"])
    assert len(json.loads(before["s"]["history"])) == 120
    d.kill()
    d2 = procs.start(data)
    assert snapshot_of(d2.client(), ["s"]) == before
    assert int(d2.events("recovered")[0]["snapshot"]) > 1


def test_two_daemons_cannot_share_a_data_dir(procs, tmp_path):
    data = tmp_path / "data"
    d = procs.start(data)
    rc, log = procs.start_fails(data)
    assert rc != 0
    assert "in use by another lossweightd" in log and str(d.proc.pid) in log, log
    assert d.client().get("/healthz")[0] == 200
    assert d.term() == 0
    procs.start(data)  # free again once the first one is gone


def test_fsync_always_holds_answers_until_the_group_commit(procs, tmp_path):
    """With every group commit slowed to 600 ms (a test-only knob, like
    Redis's DEBUG aof-flush-sleep), an answer that depends on a journal
    record takes at least that long under --fsync always; under batch, and
    for a read with nothing pending, it does not wait."""
    delay = 0.6
    env = {"LWD_TEST_SYNC_DELAY_MS": str(int(delay * 1000))}
    for mode, slow in (("always", True), ("batch", False)):
        d = procs.start(tmp_path / mode, "--fsync", mode, env=env)
        c = d.client()
        assert c.put("/v1/jobs/h", {"tasks": ["a"], "method": "ew"})[0] == 201
        time.sleep(delay + 0.1)  # that group commit is done
        t0 = time.monotonic()
        st, _ = c.post("/v1/jobs/h/reports", report("h", 0, 0, 1))
        dt = time.monotonic() - t0
        assert st == 200
        assert (dt >= delay) if slow else (dt < delay), (mode, dt)
        time.sleep(delay + 0.1)
        t0 = time.monotonic()
        assert c.get("/v1/jobs/h")[0] == 200
        assert time.monotonic() - t0 < delay, mode
        d.term()


def test_journal_records_only_what_replay_needs(procs, tmp_path):
    """Retries, refusals and decisions from every rank write nothing; a
    report is one record."""
    data = tmp_path / "data"
    d = procs.start(data, "--snapshot-interval-s", "0")
    c = d.client()
    assert c.put("/v1/jobs/r", {"tasks": ["a", "b"], "method": "ew", "world_size": 2})[0] == 201
    b0, b1 = report("r", 0, 0, 2), report("r", 1, 0, 2)
    assert c.post("/v1/jobs/r/reports?wait_ms=0", b0)[0] == 202
    assert c.post("/v1/jobs/r/reports?wait_ms=0", b0)[0] == 202   # retry
    assert c.post("/v1/jobs/r/reports?wait_ms=0", {**b0, "losses": [9, 9]})[0] == 409
    assert c.post("/v1/jobs/r/reports?wait_ms=0", b1)[0] == 200   # decides
    kinds = [t for _, _, t in records(segments(data)[-1])]
    assert kinds == [1, 4, 4], kinds
