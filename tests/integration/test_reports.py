"""Reports: async mode, retries and conflicts, rank order, how far ahead,
?wait_ms=, long-polls on steps, and a decided step's late rank."""

import json
import threading
import time

from conftest import replay


def post_in_thread(daemon, path, doc, out, key):
    def run():
        c = daemon.client()
        st, h, data = c.raw("POST", path, json.dumps(doc))
        out[key] = (st, data)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def ranks_waiting(client):
    status, text = client.get("/metrics")
    for line in text.splitlines():
        if line.startswith("lossweight_ranks_waiting "):
            return int(line.split()[1])
    return -1


def test_async_answers_at_once_with_the_latest(daemon):
    c = daemon.client()
    spec = {"tasks": ["a", "b"], "method": "ew", "world_size": 2, "sync": "async"}
    assert c.put("/v1/jobs/as", spec)[0] == 201
    st, doc = c.post("/v1/jobs/as/reports", {"rank": 0, "step": 0, "losses": [1, 2]})
    assert st == 202 and doc["status"] == "pending" and doc["ranks"] == 1
    # rank 0 runs ahead: still answered at once
    st, doc = c.post("/v1/jobs/as/reports", {"rank": 0, "step": 1, "losses": [1, 2]})
    assert st == 202
    st, doc = c.post("/v1/jobs/as/reports", {"rank": 1, "step": 0, "losses": [3, 4]})
    assert st == 200 and doc["step"] == 0 and doc["status"] == "decided"
    st, doc = c.post("/v1/jobs/as/reports", {"rank": 1, "step": 1, "losses": [3, 5]})
    assert st == 200 and doc["step"] == 1
    st, doc = c.post("/v1/jobs/as/reports", {"rank": 0, "step": 2, "losses": [1, 2]})
    assert st == 200 and doc["step"] == 1  # the latest decision
    st, w = c.get("/v1/jobs/as/weights")
    assert st == 200 and w["step"] == 1


def test_retry_same_bytes_and_conflicts(daemon):
    c = daemon.client()
    spec = {"tasks": ["a", "b"], "method": "ew", "world_size": 1}
    assert c.put("/v1/jobs/r", spec)[0] == 201
    rep = {"rank": 0, "step": 5, "losses": [0.5, 0.25]}
    st1, _, b1 = c.raw("POST", "/v1/jobs/r/reports", json.dumps(rep))
    # same numbers, other spelling: still a retry
    st2, _, b2 = c.raw("POST", "/v1/jobs/r/reports",
                       '{ "losses": [5e-1, 0.250], "step": 5, "rank": 0 }')
    assert st1 == st2 == 200 and b1 == b2
    st, doc = c.post("/v1/jobs/r/reports", dict(rep, losses=[0.5, 0.26]))
    assert st == 409 and doc["error"]["code"] == "conflict"
    assert c.post("/v1/jobs/r/reports", dict(rep, step=6))[0] == 200
    # a rank's steps must increase
    st, doc = c.post("/v1/jobs/r/reports", {"rank": 0, "step": 4, "losses": [1, 1]})
    assert st == 409 and doc["error"]["code"] == "step_order"
    # after the errors, nothing changed
    st, page = c.get("/v1/jobs/r/history")
    assert [i["step"] for i in page["items"]] == [5, 6]


def test_retry_of_open_step_waits_again(daemon):
    c = daemon.client()
    spec = {"tasks": ["a"], "method": "ew", "world_size": 2}
    assert c.put("/v1/jobs/o", spec)[0] == 201
    rep0 = {"rank": 0, "step": 0, "losses": [1.0]}
    st, doc = c.call("POST", "/v1/jobs/o/reports?wait_ms=0", rep0)
    assert st == 202 and doc["ranks"] == 1 and doc["world_size"] == 2
    st, doc = c.call("POST", "/v1/jobs/o/reports?wait_ms=50", rep0)
    assert st == 202  # waited 50 ms, still pending
    out = {}
    t = post_in_thread(daemon, "/v1/jobs/o/reports", rep0, out, 0)
    assert wait_for(lambda: ranks_waiting(c) == 1)
    st, _, b1 = c.raw("POST", "/v1/jobs/o/reports", json.dumps({"rank": 1, "step": 0, "losses": [3.0]}))
    t.join(timeout=10)
    assert st == 200 and out[0] == (200, b1)


def test_reports_of_a_step_carry_the_same_inputs(daemon):
    c = daemon.client()
    spec = {"tasks": ["a", "b"], "method": "ew", "world_size": 2}
    assert c.put("/v1/jobs/sh", spec)[0] == 201
    assert c.call("POST", "/v1/jobs/sh/reports?wait_ms=0",
                  {"rank": 0, "step": 0, "losses": [1, 2]})[0] == 202
    st, doc = c.call("POST", "/v1/jobs/sh/reports?wait_ms=0",
                     {"rank": 1, "step": 0, "losses": [1, 2], "grad_norms": [1, 1]})
    assert st == 409
    st, doc = c.call("POST", "/v1/jobs/sh/reports?wait_ms=0",
                     {"rank": 2, "step": 0, "losses": [1, 2]})
    assert st == 400 and doc["error"]["field"] == "rank"


def test_too_far_ahead_is_429(start_daemon):
    d = start_daemon("--max-ahead", "10")
    c = d.client()
    assert c.put("/v1/jobs/a", {"tasks": ["a"], "method": "ew"})[0] == 201
    assert c.post("/v1/jobs/a/reports", {"rank": 0, "step": 100, "losses": [1]})[0] == 200
    assert c.post("/v1/jobs/a/reports", {"rank": 0, "step": 110, "losses": [1]})[0] == 200
    st, doc = c.post("/v1/jobs/a/reports", {"rank": 0, "step": 121, "losses": [1]})
    assert st == 429 and doc["error"]["field"] == "step"


def test_older_than_history_is_410(start_daemon):
    d = start_daemon("--history", "3")
    c = d.client()
    assert c.put("/v1/jobs/h", {"tasks": ["a"], "method": "ew", "world_size": 2})[0] == 201
    for step in range(5):
        out = {}
        t = post_in_thread(d, "/v1/jobs/h/reports", {"rank": 0, "step": step, "losses": [1]}, out, 0)
        st, doc = c.post("/v1/jobs/h/reports", {"rank": 1, "step": step, "losses": [2]})
        t.join(timeout=10)
        assert st == 200 and out[0][0] == 200
    st, page = c.get("/v1/jobs/h/history")
    assert [i["step"] for i in page["items"]] == [2, 3, 4]
    assert c.get("/v1/jobs/h/steps/4")[0] == 200
    st, doc = c.get("/v1/jobs/h/steps/1")
    assert st == 410
    # a retry of an evicted step
    st, doc = c.post("/v1/jobs/h/reports", {"rank": 0, "step": 0, "losses": [1]})
    assert st == 410


def test_long_poll_on_a_step(daemon):
    c = daemon.client()
    assert c.put("/v1/jobs/lp", {"tasks": ["a"], "method": "ew", "world_size": 2})[0] == 201
    st, doc = c.get("/v1/jobs/lp/steps/0")
    assert st == 202 and doc["status"] == "pending"
    t0 = time.monotonic()
    st, doc = c.get("/v1/jobs/lp/steps/0?wait_ms=100")
    assert st == 202 and time.monotonic() - t0 >= 0.09
    polled = {}

    def poll():
        pc = daemon.client()
        polled["r"] = pc.raw("GET", "/v1/jobs/lp/steps/0?wait_ms=10000")

    tp = threading.Thread(target=poll, daemon=True)
    tp.start()
    out = {}
    t = post_in_thread(daemon, "/v1/jobs/lp/reports", {"rank": 0, "step": 0, "losses": [1]}, out, 0)
    assert wait_for(lambda: ranks_waiting(c) == 1)
    st, _, body = c.raw("POST", "/v1/jobs/lp/reports", json.dumps({"rank": 1, "step": 0, "losses": [2]}))
    t.join(timeout=10)
    tp.join(timeout=10)
    assert st == 200 and out[0] == (200, body) and polled["r"][0] == 200 and polled["r"][2] == body
    assert c.raw("GET", "/v1/jobs/lp/steps/0")[2] == body
    st, bad = c.get("/v1/jobs/lp/steps/0?wait_ms=-1")
    assert st == 400 and bad["error"]["field"] == "wait_ms"


def test_history_paging(daemon):
    c = daemon.client()
    spec = {"tasks": ["a", "b"], "method": "ew"}
    assert c.put("/v1/jobs/hp", spec)[0] == 201
    steps = list(range(0, 50, 2))  # sparse steps are fine
    for s in steps:
        assert c.post("/v1/jobs/hp/reports", {"rank": 0, "step": s, "losses": [s + 1.0, 0.5]})[0] == 200
    seen, frm, pages = [], 0, 0
    while frm is not None and pages < 100:
        st, page = c.get(f"/v1/jobs/hp/history?from={frm}&limit=7")
        assert st == 200 and len(page["items"]) <= 7
        seen += [i["step"] for i in page["items"]]
        frm = page["next"]
        pages += 1
    assert seen == steps and pages == 4
    st, page = c.get("/v1/jobs/hp/history?from=11&limit=2")
    assert [i["step"] for i in page["items"]] == [12, 14] and page["next"] == 16
    assert c.get("/v1/jobs/hp/history?limit=0")[0] == 400
    assert c.get("/v1/jobs/hp/history?limit=1001")[0] == 400
    # replaying the history reproduces the decisions
    st, page = c.get("/v1/jobs/hp/history?limit=1000")
    replayed = replay([spec] + [i["input"] for i in page["items"]])
    assert [r["weights"] for r in replayed] == [i["weights"] for i in page["items"]]


def test_metrics_text(daemon):
    c = daemon.client()
    assert c.put("/v1/jobs/m", {"tasks": ["a"], "method": "ew"})[0] == 201
    assert c.post("/v1/jobs/m/reports", {"rank": 0, "step": 0, "losses": [1]})[0] == 200
    c.get("/v1/nothing")
    st, h, body = c.raw("GET", "/metrics")
    assert st == 200 and h["content-type"].startswith("text/plain")
    text = body.decode()
    for want in ['lossweight_requests_total{route="report",status="200"} 1',
                 'lossweight_requests_total{route="job_put",status="201"} 1',
                 'lossweight_requests_total{route="unknown",status="404"} 1',
                 'lossweight_request_duration_seconds_bucket{route="report",le="+Inf"} 1',
                 'lossweight_request_duration_seconds_count{route="report"} 1',
                 "lossweight_jobs 1", "lossweight_decided_steps_total 1",
                 "lossweight_ranks_waiting 0",
                 'lossweight_barrier_timeouts_total{outcome="504"} 0',
                 "# TYPE lossweight_request_duration_seconds histogram"]:
        assert want in text, want
