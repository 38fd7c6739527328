"""Barrier timeouts (with and without min_ranks), export / restore, and
SIGTERM while ranks wait."""

import json
import random
import signal
import threading
import time

import pytest

from conftest import methods_available


def post_async(daemon, path, doc):
    out = {}

    def run():
        c = daemon.client()
        try:
            st, h, data = c.raw("POST", path, json.dumps(doc))
            out["r"] = (st, data)
        except Exception as e:  # noqa: BLE001
            out["r"] = ("exc", repr(e))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def test_barrier_timeout_without_min_ranks_is_504_and_step_stays_open(daemon):
    c = daemon.client()
    spec = {"tasks": ["a"], "method": "ew", "world_size": 2, "barrier_timeout_ms": 200}
    assert c.put("/v1/jobs/t", spec)[0] == 201
    t0 = time.monotonic()
    st, doc = c.post("/v1/jobs/t/reports", {"rank": 0, "step": 0, "losses": [1.0]})
    dt = time.monotonic() - t0
    assert st == 504 and doc["error"]["code"] == "barrier_timeout", doc
    assert 0.15 <= dt < 5
    st, job = c.get("/v1/jobs/t")
    assert job["status"]["open_steps"] == [{"step": 0, "ranks": 1}]
    assert job["status"]["last_decided"] is None
    # the late rank completes the step; rank 0's retry gets the same bytes
    st1, _, b1 = c.raw("POST", "/v1/jobs/t/reports", json.dumps({"rank": 1, "step": 0, "losses": [3.0]}))
    st0, _, b0 = c.raw("POST", "/v1/jobs/t/reports", json.dumps({"rank": 0, "step": 0, "losses": [1.0]}))
    assert st1 == st0 == 200 and b0 == b1
    assert json.loads(b1)["ranks"] == 2
    st, text = c.get("/metrics")
    assert 'lossweight_barrier_timeouts_total{outcome="504"} 1' in text


def test_barrier_timeout_with_min_ranks_decides_from_ranks_present(daemon):
    c = daemon.client()
    spec = {"tasks": ["a"], "method": "ew", "world_size": 3, "min_ranks": 2,
            "barrier_timeout_ms": 300}
    assert c.put("/v1/jobs/m", spec)[0] == 201
    t0, out0 = post_async(daemon, "/v1/jobs/m/reports", {"rank": 0, "step": 0, "losses": [1.0]})
    st, h, body = c.raw("POST", "/v1/jobs/m/reports", json.dumps({"rank": 2, "step": 0, "losses": [2.0]}))
    t0.join(timeout=10)
    assert st == 200 and out0["r"] == (200, body)
    d = json.loads(body)
    assert d["ranks"] == 2 and d["step"] == 0
    st, page = c.get("/v1/jobs/m/history")
    assert page["items"][0]["ranks_present"] == [0, 2]
    assert page["items"][0]["input"]["losses"] == [(0.0 + 1.0 + 2.0) / 2]
    # the late rank is answered with the decision, not counted
    st, h, late = c.raw("POST", "/v1/jobs/m/reports", json.dumps({"rank": 1, "step": 0, "losses": [9.0]}))
    assert st == 200 and late == body
    st, text = c.get("/metrics")
    assert 'lossweight_barrier_timeouts_total{outcome="decided"} 1' in text


def feed(client, job, steps, T, seed, start=0):
    rnd = random.Random(seed)
    bodies = []
    for s in range(start, start + steps):
        rep = {"rank": 0, "step": s, "losses": [rnd.uniform(0.1, 4) for _ in range(T)]}
        st, h, data = client.raw("POST", f"/v1/jobs/{job}/reports", json.dumps(rep))
        assert st == 200, data
        bodies.append(json.loads(data)["weights"])
    return bodies


def test_export_restore_gives_identical_bits(start_daemon):
    d1 = start_daemon()
    c1 = d1.client()
    method = "uw" if "uw" in methods_available(c1) else "ew"
    spec = {"tasks": ["a", "b", "c"], "method": method, "seed": 3}
    assert c1.put("/v1/jobs/x", spec)[0] == 201
    feed(c1, "x", 40, 3, seed=1)
    st, state = c1.get("/v1/jobs/x/state")
    assert st == 200 and state["position"]["last_decided"] == 39
    after_original = feed(c1, "x", 30, 3, seed=2, start=40)

    # restore into another daemon, and under another name in the same one
    d2 = start_daemon()
    c2 = d2.client()
    st, view = c2.put("/v1/jobs/x/state", state)
    assert st == 201, view
    assert view["status"]["last_decided"] == 39
    assert feed(c2, "x", 30, 3, seed=2, start=40) == after_original
    st, doc = c1.put("/v1/jobs/y/state", state)
    assert st == 201
    assert feed(c1, "y", 30, 3, seed=2, start=40) == after_original
    # an export of a fresh restore is the document restored (but the name)
    assert c2.put("/v1/jobs/z/state", state)[0] == 201
    st, again = c2.get("/v1/jobs/z/state")
    assert dict(again, job="x") == state
    # restoring over an existing job replaces it
    st, doc = c2.put("/v1/jobs/x/state", state)
    assert st == 200
    assert c2.get("/v1/jobs/x/state")[1]["state"] == state["state"]


def test_export_restore_keeps_open_steps(start_daemon):
    d = start_daemon()
    c = d.client()
    spec = {"tasks": ["a", "b"], "method": "ew", "world_size": 2}
    assert c.put("/v1/jobs/o", spec)[0] == 201
    assert c.call("POST", "/v1/jobs/o/reports?wait_ms=0",
                  {"rank": 0, "step": 0, "losses": [1, 2], "samples": 2})[0] == 202
    st, state = c.get("/v1/jobs/o/state")
    assert state["position"]["open_steps"][0]["reports"][0]["rank"] == 0
    d2 = start_daemon()
    c2 = d2.client()
    assert c2.put("/v1/jobs/o/state", state)[0] == 201
    st, dec = c2.post("/v1/jobs/o/reports", {"rank": 1, "step": 0, "losses": [3, 4]})
    assert st == 200 and dec["ranks"] == 2
    st, page = c2.get("/v1/jobs/o/history")
    assert page["items"][0]["input"]["losses"] == [(2 * 1 + 3) / 3, (2 * 2 + 4) / 3]
    # a broken document changes nothing
    bad = json.loads(json.dumps(state))
    bad["state"] = {"nope": [1]}
    st, err = c2.put("/v1/jobs/o/state", bad)
    assert st == 400 and "error" in err
    assert c2.get("/v1/jobs/o")[1]["status"]["last_decided"] == 0


def test_export_decided_only_is_a_checkpoint_at_the_last_decision(start_daemon):
    """?decided_only=1: no open steps, every rank wound back to the last
    decided step. Restored, a resumed rank may post the open step again with
    other numbers (200); from the full export that resend is a 409."""
    d = start_daemon()
    c = d.client()
    spec = {"tasks": ["a", "b"], "method": "ew", "world_size": 2}
    assert c.put("/v1/jobs/k", spec)[0] == 201
    for r in (0, 1):
        assert c.call("POST", "/v1/jobs/k/reports?wait_ms=0",
                      {"rank": r, "step": 0, "losses": [1, 2]})[0] in (200, 202)
    assert c.call("POST", "/v1/jobs/k/reports?wait_ms=0",
                  {"rank": 0, "step": 1, "losses": [5, 6]})[0] == 202
    st, full = c.get("/v1/jobs/k/state")
    assert st == 200
    assert full["position"]["rank_steps"] == [1, 0]
    assert [o["step"] for o in full["position"]["open_steps"]] == [1]
    st, ck = c.get("/v1/jobs/k/state?decided_only=1")
    assert st == 200
    assert ck["position"]["last_decided"] == 0
    assert ck["position"]["rank_steps"] == [0, 0]
    assert ck["position"]["open_steps"] == []
    # everything else is the same document
    assert dict(ck, position=None) == dict(full, position=None)
    assert c.get("/v1/jobs/k/state?decided_only=0")[1] == full

    other = {"rank": 0, "step": 1, "losses": [7, 8]}
    assert c.put("/v1/jobs/kf/state", full)[0] == 201
    st, err = c.call("POST", "/v1/jobs/kf/reports?wait_ms=0", other)
    assert st == 409, err
    assert c.put("/v1/jobs/kc/state", ck)[0] == 201
    assert c.call("POST", "/v1/jobs/kc/reports?wait_ms=0", other)[0] == 202
    st, dec = c.post("/v1/jobs/kc/reports", {"rank": 1, "step": 1, "losses": [9, 10]})
    assert st == 200 and dec["step"] == 1
    st, page = c.get("/v1/jobs/kc/history?from=1")
    assert page["items"][0]["input"]["losses"] == [(7 + 9) / 2, (8 + 10) / 2]


@pytest.mark.parametrize("q", ["2", "-1", "yes", "", "1.0"])
def test_export_decided_only_takes_0_or_1(daemon, q):
    c = daemon.client()
    assert c.put("/v1/jobs/q", {"tasks": ["a", "b"], "method": "ew"})[0] == 201
    st, err = c.get("/v1/jobs/q/state?decided_only=" + q)
    assert st == 400 and err["error"]["field"] == "decided_only"


def test_sigterm_answers_waiting_ranks_and_exits_0(daemon):
    c = daemon.client()
    spec = {"tasks": ["a"], "method": "ew", "world_size": 8}
    assert c.put("/v1/jobs/s", spec)[0] == 201
    waiters = [post_async(daemon, "/v1/jobs/s/reports", {"rank": r, "step": 0, "losses": [1.0]})
               for r in range(4)]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        st, text = c.get("/metrics")
        if "lossweight_ranks_waiting 4" in text:
            break
        time.sleep(0.01)
    else:
        pytest.fail("ranks did not start waiting")
    t0 = time.monotonic()
    daemon.signal(signal.SIGTERM)
    rc = daemon.wait(timeout=10)
    assert rc == 0
    assert time.monotonic() - t0 < 6
    for t, out in waiters:
        t.join(timeout=10)
        st, body = out["r"]
        assert st == 503, out
        assert json.loads(body)["error"]["code"] == "shutting_down"
    log = daemon.log()
    assert "event=shutdown" in log and "event=stopped" in log
