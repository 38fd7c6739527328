"""A table of bad requests: each gets its documented 4xx with the error shape
(the contract check in conftest validates every answer against proto/), the
expected error.code and error.field, and afterwards every job's
GET /v1/jobs/{job}, /state and /history, and the job list, are byte for byte
what they were before (an error never changes state).

One daemon serves the whole table (module scope) with small limits so that
the limits can be hit cheaply: --max-body 65536, --history 4 (older steps are
410 gone), --max-jobs 7 (the reference jobs fill it: a valid new job is 429).
The reference jobs cover what the cases need: a 3-task uw job with 12
decided steps, methods that refuse zero or negative losses (rt_norm,
power_mean), one that needs grad_norms (gradnorm), one that needs a Gram
matrix (mgda), one that works per epoch (dwa), and a 3-rank barrier job with
a step closed undecided and an open step.
"""

import http.client
import json
import time

import pytest

from conftest import _start, raw_http

MAX_BODY = 65536
HISTORY = 4
BARRIER_MS = 300
G3 = [[1.0, 0.1, 0.2], [0.1, 2.0, 0.3], [0.2, 0.3, 3.0]]

JOBS = {
    "uw3": {"tasks": ["a", "b", "c"], "method": "uw"},
    "rt": {"tasks": ["a", "b"], "method": "rt_norm"},
    "pm": {"tasks": ["a", "b"], "method": "power_mean", "params": {"gamma": 0.5}},
    "gn": {"tasks": ["a", "b"], "method": "gradnorm"},
    "mg": {"tasks": ["a", "b", "c"], "method": "mgda"},
    "dwa": {"tasks": ["a", "b"], "method": "dwa"},
    "trio": {"tasks": ["a", "b"], "method": "ew", "world_size": 3, "min_ranks": 2,
             "barrier_timeout_ms": BARRIER_MS},
}


def _ok(st, doc, *want):
    assert st in want, (st, doc)
    return doc


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = _start(tmp_path_factory.mktemp("bad"),
               ["--max-body", str(MAX_BODY), "--history", str(HISTORY),
                "--max-jobs", str(len(JOBS))])
    try:
        c = d.client()
        for job, spec in JOBS.items():
            _ok(*c.put(f"/v1/jobs/{job}", spec), 201)
        for s in range(12):
            _ok(*c.post("/v1/jobs/uw3/reports",
                        {"rank": 0, "step": s, "losses": [1.0 + s, 2.0, 0.5]}), 200)
        _ok(*c.post("/v1/jobs/rt/reports", {"rank": 0, "step": 0, "losses": [1.0, 2.0]}), 200)
        _ok(*c.post("/v1/jobs/pm/reports", {"rank": 0, "step": 0, "losses": [1.0, 2.0]}), 200)
        _ok(*c.post("/v1/jobs/gn/reports", {"rank": 0, "step": 0, "losses": [1.0, 2.0],
                                            "grad_norms": [0.5, 1.5]}), 200)
        _ok(*c.post("/v1/jobs/mg/reports", {"rank": 0, "step": 0, "gram": G3}), 200)
        for s, e in ((0, 1), (1, 2), (2, 3)):
            _ok(*c.post("/v1/jobs/dwa/reports",
                        {"rank": 0, "step": s, "epoch": e, "losses": [1.0 / e, 2.0]}), 200)
        # trio: step 0 by all; step 1 by rank 0 only; step 2 by ranks 0 and 1,
        # decided by the barrier timeout (min_ranks 2), which closes step 1;
        # step 3 open with rank 0's report.
        t = "/v1/jobs/trio/reports?wait_ms=0"
        for r in range(3):
            _ok(*c.post(t, {"rank": r, "step": 0, "losses": [1.0, 2.0]}), 200, 202)
        _ok(*c.post(t, {"rank": 0, "step": 1, "losses": [1.0, 2.0]}), 202)
        _ok(*c.post(t, {"rank": 0, "step": 2, "losses": [1.0, 2.0]}), 202)
        _ok(*c.post(t, {"rank": 1, "step": 2, "losses": [3.0, 4.0]}), 202)
        deadline = time.monotonic() + 10
        while c.get("/v1/jobs/trio")[1]["status"]["last_decided"] != 2:
            assert time.monotonic() < deadline, "the barrier timeout did not decide step 2"
            time.sleep(0.02)
        _ok(*c.post(t, {"rank": 0, "step": 3, "losses": [1.0, 2.0]}), 202)
        # let step 3's barrier timeout pass (1 rank < min_ranks: it stays open)
        time.sleep(2 * BARRIER_MS / 1000)
        yield d
    finally:
        d.stop()


def snapshot(c):
    """Everything a bad request must leave alone, as raw bytes."""
    out = {"list": c.raw("GET", "/v1/jobs")[2]}
    for job in JOBS:
        for part in ("", "/state", "/history?limit=1000", "/weights"):
            st, _, body = c.raw("GET", f"/v1/jobs/{job}{part}")
            out[job + part] = (st, body)
    return out


@pytest.fixture(scope="module")
def baseline(env):
    c = env.client()
    snap = snapshot(c)
    # the reference state is what the fixture built
    trio = json.loads(snap["trio"][1])
    assert trio["status"]["last_decided"] == 2 and trio["status"]["open_count"] == 1
    assert json.loads(snap["uw3/history?limit=1000"][1])["oldest"] == 12 - HISTORY
    return snap


def R(**kw):
    """A valid uw3 report for its next step, with changes."""
    doc = {"rank": 0, "step": 12, "losses": [1.0, 2.0, 3.0]}
    doc.update(kw)
    return doc


def without(doc, key):
    return {k: v for k, v in doc.items() if k != key}


SPEC = {"tasks": ["x", "y"], "method": "uw"}


def S(**kw):
    doc = dict(SPEC)
    doc.update(kw)
    return doc


REP = "/v1/jobs/uw3/reports"
NEW = "/v1/jobs/new"
big_losses = "[" + ", ".join(["1.0"] * (MAX_BODY // 5)) + "]"
deep = "[" * 100 + "]" * 100

# id, verb, path, body (dict: JSON; str/bytes: as is; None: no body), status, code, field
CASES = [
    # ---- not JSON, or JSON we refuse before looking at it ----
    ("malformed", "POST", REP, '{"rank": 0, "step": 12, "losses": [1, 2, 3]', 400, "invalid_json", None),
    ("empty-body", "POST", REP, "", 400, "invalid_json", None),
    ("whitespace-body", "POST", REP, " \n\t ", 400, "invalid_json", None),
    ("trailing-bytes", "POST", REP, json.dumps(R()) + " x", 400, "invalid_json", None),
    ("two-values", "POST", REP, json.dumps(R()) + json.dumps(R()), 400, "invalid_json", None),
    ("single-quotes", "POST", REP, "{'rank': 0, 'step': 12}", 400, "invalid_json", None),
    ("comment", "POST", REP, '{"rank": 0, /* c */ "step": 12, "losses": [1, 2, 3]}', 400, "invalid_json", None),
    ("nan-literal", "POST", REP, '{"rank": 0, "step": 12, "losses": [NaN, 2, 3]}', 400, "invalid_json", None),
    ("infinity-literal", "POST", REP, '{"rank": 0, "step": 12, "losses": [1, Infinity, 3]}', 400, "invalid_json", None),
    ("minus-infinity-literal", "POST", REP, '{"rank": 0, "step": 12, "losses": [1, 2, -Infinity]}', 400, "invalid_json", None),
    ("hex-number", "POST", REP, '{"rank": 0, "step": 0x0c, "losses": [1, 2, 3]}', 400, "invalid_json", None),
    ("deep-nesting", "POST", REP, deep, 400, "invalid_json", None),
    ("deep-nesting-in-field", "POST", REP,
     '{"rank": 0, "step": 12, "losses": ' + "[" * 40 + "]" * 40 + "}", 400, "invalid_json", None),
    ("invalid-utf8", "POST", REP, b'{"rank": 0, "step": 12, "losses": [1, 2, 3], "x": "\xff"}', 400, "invalid_json", None),
    ("overlong-utf8", "PUT", NEW, b'{"tasks": ["\xc0\xaf"], "method": "ew"}', 400, "invalid_json", None),
    ("surrogate-utf8", "PUT", NEW, b'{"tasks": ["\xed\xa0\x80"], "method": "ew"}', 400, "invalid_json", None),
    ("nul-byte", "POST", REP, b'{"rank": 0, "step": 12, "losses": [1, 2, 3]}\x00', 400, "invalid_json", None),
    ("duplicate-key", "POST", REP, '{"rank": 0, "rank": 0, "step": 12, "losses": [1, 2, 3]}', 400, "invalid_json", "rank"),
    ("duplicate-key-in-params", "PUT", NEW,
     '{"tasks": ["x"], "method": "uw", "params": {"lr": 0.1, "lr": 0.2}}', 400, "invalid_json", "lr"),
    ("body-is-array", "POST", REP, "[]", 400, "invalid", None),
    ("body-is-string", "POST", REP, '"report"', 400, "invalid", None),
    ("body-is-null", "PUT", NEW, "null", 400, "invalid", None),
    # ---- reports: types and shapes ----
    ("huge-number", "POST", REP, '{"rank": 0, "step": 12, "losses": [1, 1e999, 3]}', 400, "invalid", "losses[1]"),
    ("huge-negative-number", "POST", REP, '{"rank": 0, "step": 12, "losses": [-1e999, 1, 3]}', 400, "invalid", "losses[0]"),
    ("rank-string", "POST", REP, R(rank="0"), 400, "invalid", "rank"),
    ("rank-null", "POST", REP, R(rank=None), 400, "invalid", "rank"),
    ("rank-negative", "POST", REP, R(rank=-1), 400, "invalid", "rank"),
    ("rank-not-below-world-size", "POST", REP, R(rank=1), 400, "invalid", "rank"),
    ("rank-missing", "POST", REP, without(R(), "rank"), 400, "invalid", "rank"),
    ("step-missing", "POST", REP, without(R(), "step"), 400, "invalid", "step"),
    ("step-fraction", "POST", REP, R(step=12.5), 400, "invalid", "step"),
    ("step-negative", "POST", REP, R(step=-1), 400, "invalid", "step"),
    ("step-beyond-2^53", "POST", REP, R(step=2 ** 53 + 2), 400, "invalid", "step"),
    ("step-bool", "POST", REP, R(step=True), 400, "invalid", "step"),
    ("epoch-negative", "POST", REP, R(epoch=-3), 400, "invalid", "epoch"),
    ("epoch-string", "POST", REP, R(epoch="3"), 400, "invalid", "epoch"),
    ("losses-not-array", "POST", REP, R(losses="1,2,3"), 400, "invalid", "losses"),
    ("losses-object", "POST", REP, R(losses={"a": 1}), 400, "invalid", "losses"),
    ("losses-string-element", "POST", REP, R(losses=["1", 2, 3]), 400, "invalid", "losses[0]"),
    ("losses-null-element", "POST", REP, R(losses=[1, None, 3]), 400, "invalid", "losses[1]"),
    ("losses-bool-element", "POST", REP, R(losses=[1, 2, False]), 400, "invalid", "losses[2]"),
    ("losses-nested-element", "POST", REP, R(losses=[1, [2], 3]), 400, "invalid", "losses[1]"),
    ("losses-too-short", "POST", REP, R(losses=[1, 2]), 400, "invalid", "losses"),
    ("losses-too-long", "POST", REP, R(losses=[1, 2, 3, 4]), 400, "invalid", "losses"),
    ("losses-missing", "POST", REP, without(R(), "losses"), 400, "invalid", "losses"),
    ("unused-grad-norms-wrong-length", "POST", REP, R(grad_norms=[1, 2]), 400, "invalid", "grad_norms"),
    ("unused-gram-not-square", "POST", REP, R(gram=[[1, 0, 0], [0, 1, 0]]), 400, "invalid", "gram"),
    ("samples-zero", "POST", REP, R(samples=0), 400, "invalid", "samples"),
    ("samples-negative", "POST", REP, R(samples=-2), 400, "invalid", "samples"),
    ("unknown-report-field", "POST", REP, R(grad_norm=[1, 2, 3]), 400, "invalid", "grad_norm"),
    ("unknown-report-field-case", "POST", REP, R(Losses=[1, 2, 3]), 400, "invalid", "Losses"),
    # ---- reports: what the method needs ----
    ("rt-norm-zero-loss", "POST", "/v1/jobs/rt/reports", {"rank": 0, "step": 1, "losses": [0, 1]}, 400, "invalid", "losses[0]"),
    ("rt-norm-negative-loss", "POST", "/v1/jobs/rt/reports", {"rank": 0, "step": 1, "losses": [1, -0.5]}, 400, "invalid", "losses[1]"),
    ("power-mean-zero-loss", "POST", "/v1/jobs/pm/reports", {"rank": 0, "step": 1, "losses": [1, 0]}, 400, "invalid", "losses[1]"),
    ("power-mean-negative-loss", "POST", "/v1/jobs/pm/reports", {"rank": 0, "step": 1, "losses": [-1, 1]}, 400, "invalid", "losses[0]"),
    ("gradnorm-without-grad-norms", "POST", "/v1/jobs/gn/reports", {"rank": 0, "step": 1, "losses": [1, 2]}, 400, "invalid", "grad_norms"),
    ("mgda-without-gram", "POST", "/v1/jobs/mg/reports", {"rank": 0, "step": 1, "losses": [1, 2, 3]}, 400, "invalid", "gram"),
    ("gram-asymmetric", "POST", "/v1/jobs/mg/reports",
     {"rank": 0, "step": 1, "gram": [[1, 0.5, 0], [0.4, 1, 0], [0, 0, 1]]}, 400, "invalid", "gram[0][1]"),
    ("gram-negative-diagonal", "POST", "/v1/jobs/mg/reports",
     {"rank": 0, "step": 1, "gram": [[1, 0, 0], [0, -1, 0], [0, 0, 1]]}, 400, "invalid", "gram[1][1]"),
    ("gram-too-few-rows", "POST", "/v1/jobs/mg/reports", {"rank": 0, "step": 1, "gram": G3[:2]}, 400, "invalid", "gram"),
    ("gram-short-row", "POST", "/v1/jobs/mg/reports",
     {"rank": 0, "step": 1, "gram": [G3[0], G3[1][:2], G3[2]]}, 400, "invalid", "gram[1]"),
    ("gram-string-entry", "POST", "/v1/jobs/mg/reports",
     {"rank": 0, "step": 1, "gram": [["1", 0, 0], [0, 1, 0], [0, 0, 1]]}, 400, "invalid", "gram[0][0]"),
    ("gram-huge-entry", "POST", "/v1/jobs/mg/reports",
     '{"rank": 0, "step": 1, "gram": [[1, 0, 0], [0, 1e999, 0], [0, 0, 1]]}', 400, "invalid", "gram[1][1]"),
    ("dwa-epoch-goes-back", "POST", "/v1/jobs/dwa/reports",
     {"rank": 0, "step": 3, "epoch": 2, "losses": [1, 2]}, 400, "invalid", "epoch"),
    # ---- reports: order, conflicts, how far ahead ----
    ("step-far-ahead", "POST", REP, R(step=12 + 2000), 429, "too_far_ahead", "step"),
    ("resend-with-other-numbers", "POST", REP, R(step=11, losses=[9, 9, 9]), 409, "conflict", "step"),
    ("step-goes-back", "POST", REP, R(step=1), 409, "step_order", "step"),
    ("open-step-other-numbers", "POST", "/v1/jobs/trio/reports?wait_ms=0",
     {"rank": 0, "step": 3, "losses": [5, 5]}, 409, "conflict", "step"),
    ("open-step-other-inputs", "POST", "/v1/jobs/trio/reports?wait_ms=0",
     {"rank": 1, "step": 3, "losses": [1, 2], "grad_norms": [1, 1]}, 409, "conflict", "step"),
    ("open-step-other-epoch", "POST", "/v1/jobs/trio/reports?wait_ms=0",
     {"rank": 2, "step": 3, "epoch": 7, "losses": [1, 2]}, 409, "conflict", "step"),
    ("closed-step", "POST", "/v1/jobs/trio/reports?wait_ms=0",
     {"rank": 2, "step": 1, "losses": [1, 2]}, 410, "step_closed", "step"),
    ("rank-beyond-world", "POST", "/v1/jobs/trio/reports?wait_ms=0",
     {"rank": 3, "step": 3, "losses": [1, 2]}, 400, "invalid", "rank"),
    ("report-to-no-job", "POST", "/v1/jobs/nosuch/reports", R(), 404, "no_such_job", "job"),
    # ---- steps, weights, history ----
    ("step-closed-get", "GET", "/v1/jobs/trio/steps/1", None, 410, "step_closed", "step"),
    ("step-evicted-get", "GET", "/v1/jobs/uw3/steps/0", None, 410, "gone", "step"),
    ("step-not-a-number", "GET", "/v1/jobs/uw3/steps/abc", None, 400, "invalid", "step"),
    ("step-negative-path", "GET", "/v1/jobs/uw3/steps/-1", None, 400, "invalid", "step"),
    ("step-exponent-path", "GET", "/v1/jobs/uw3/steps/1e3", None, 400, "invalid", "step"),
    ("step-huge-path", "GET", "/v1/jobs/uw3/steps/99999999999999999", None, 400, "invalid", "step"),
    ("weights-of-no-job", "GET", "/v1/jobs/nosuch/weights", None, 404, "no_such_job", "job"),
    ("wait-ms-negative", "POST", REP + "?wait_ms=-1", R(), 400, "invalid", "wait_ms"),
    ("wait-ms-not-a-number", "POST", REP + "?wait_ms=soon", R(), 400, "invalid", "wait_ms"),
    ("wait-ms-too-long", "GET", "/v1/jobs/uw3/steps/12?wait_ms=600001", None, 400, "invalid", "wait_ms"),
    ("wait-ms-nul", "GET", "/v1/jobs/uw3/steps/12?wait_ms=1%00", None, 400, "invalid", "wait_ms"),
    ("history-limit-zero", "GET", "/v1/jobs/uw3/history?limit=0", None, 400, "invalid", "limit"),
    ("history-limit-too-big", "GET", "/v1/jobs/uw3/history?limit=1001", None, 400, "invalid", "limit"),
    ("history-from-negative", "GET", "/v1/jobs/uw3/history?from=-1", None, 400, "invalid", "from"),
    ("history-from-junk", "GET", "/v1/jobs/uw3/history?from=1x", None, 400, "invalid", "from"),
    # ---- job specs (PUT /v1/jobs/new: the job must not appear) ----
    ("unknown-method", "PUT", NEW, S(method="nope"), 400, "invalid", "method"),
    ("method-not-served-graddrop", "PUT", NEW, S(method="graddrop"), 400, "not_supported", "method"),
    ("method-not-served-moco", "PUT", NEW, S(method="moco"), 400, "not_supported", "method"),
    ("method-number", "PUT", NEW, S(method=7), 400, "invalid", "method"),
    ("method-missing", "PUT", NEW, without(SPEC, "method"), 400, "invalid", "method"),
    ("tasks-missing", "PUT", NEW, without(SPEC, "tasks"), 400, "invalid", "tasks"),
    ("tasks-empty", "PUT", NEW, S(tasks=[]), 400, "invalid", "tasks"),
    ("tasks-too-many", "PUT", NEW, S(tasks=[f"t{i}" for i in range(257)]), 400, "invalid", "tasks"),
    ("tasks-duplicate", "PUT", NEW, S(tasks=["x", "x"]), 400, "invalid", "tasks[1]"),
    ("task-name-empty", "PUT", NEW, S(tasks=["", "y"]), 400, "invalid", "tasks[0]"),
    ("task-name-too-long", "PUT", NEW, S(tasks=["x", "y" * 129]), 400, "invalid", "tasks[1]"),
    ("task-name-control-char", "PUT", NEW, S(tasks=["x", "y\u0001"]), 400, "invalid", "tasks[1]"),
    ("task-name-number", "PUT", NEW, S(tasks=["x", 2]), 400, "invalid", "tasks[1]"),
    ("task-unknown-field", "PUT", NEW, S(tasks=[{"name": "x", "colour": "red"}, "y"]), 400, "invalid", "tasks[0].colour"),
    ("task-without-name", "PUT", NEW, S(tasks=[{"label_var": 1.0}, "y"]), 400, "invalid", "tasks[0].name"),
    ("task-class-freq-one-entry", "PUT", NEW, S(tasks=[{"name": "x", "class_freq": [1.0]}, "y"]), 400, "invalid", "tasks[0].class_freq"),
    ("unknown-spec-field", "PUT", NEW, S(worldsize=2), 400, "invalid", "worldsize"),
    ("unknown-param", "PUT", NEW, S(params={"bogus": 1}), 400, "invalid", "params.bogus"),
    ("param-out-of-range", "PUT", NEW, S(params={"lr": -1}), 400, "invalid", "params.lr"),
    ("param-above-max", "PUT", NEW, S(params={"beta1": 1.5}), 400, "invalid", "params.beta1"),
    ("param-wrong-type", "PUT", NEW, S(params={"form": 1}), 400, "invalid", "params.form"),
    ("param-unknown-choice", "PUT", NEW, S(params={"form": "zzz"}), 400, "invalid", "params.form"),
    ("param-object", "PUT", NEW, S(params={"lr": {"value": 0.1}}), 400, "invalid", "params.lr"),
    ("param-huge", "PUT", NEW, '{"tasks": ["x", "y"], "method": "uw", "params": {"lr": 1e999}}', 400, "invalid", "params.lr"),
    ("params-array", "PUT", NEW, S(params=[1, 2]), 400, "invalid", "params"),
    ("integer-param-fraction", "PUT", NEW, S(method="init_norm", params={"init_steps": 1.5}), 400, "invalid", "params.init_steps"),
    ("vector-param-wrong-length", "PUT", NEW, S(method="manual", params={"weights": [1, 2, 3]}), 400, "invalid", "params.weights"),
    ("world-size-zero", "PUT", NEW, S(world_size=0), 400, "invalid", "world_size"),
    ("world-size-over-max", "PUT", NEW, S(world_size=4097), 400, "invalid", "world_size"),
    ("min-ranks-over-world-size", "PUT", NEW, S(world_size=2, min_ranks=3), 400, "invalid", "min_ranks"),
    ("sync-unknown", "PUT", NEW, S(sync="sometimes"), 400, "invalid", "sync"),
    ("barrier-timeout-zero", "PUT", NEW, S(barrier_timeout_ms=0), 400, "invalid", "barrier_timeout_ms"),
    ("seed-negative", "PUT", NEW, S(seed=-1), 400, "invalid", "seed"),
    ("spec-is-array", "PUT", NEW, "[]", 400, "invalid", None),
    ("create-over-max-jobs", "PUT", NEW, SPEC, 429, "too_many_jobs", None),
    ("recreate-with-other-spec", "PUT", "/v1/jobs/uw3", S(tasks=["a", "b", "c"], params={"lr": 0.01}), 409, "conflict", None),
    # ---- state documents ----
    ("state-unknown-field", "PUT", "/v1/jobs/uw3/state", {"spec": SPEC, "state": {}, "position": {}, "extra": 1},
     400, "invalid", "extra"),
    ("state-without-spec", "PUT", "/v1/jobs/uw3/state", {"state": {}, "position": {}}, 400, "invalid", "spec"),
    ("state-wrong-format", "PUT", "/v1/jobs/uw3/state",
     {"format": "lossweight-state/0", "spec": SPEC, "state": {}, "position": {}}, 400, "invalid", "format"),
    ("state-bad-spec", "PUT", "/v1/jobs/uw3/state", {"spec": S(method="nope"), "state": {}, "position": {}},
     400, "invalid", "spec.method"),
    ("state-missing-array", "PUT", "/v1/jobs/uw3/state", {"spec": SPEC, "state": {}, "position": {}},
     400, "invalid", "state.param"),
    ("state-unknown-array", "PUT", "/v1/jobs/uw3/state",
     {"spec": {"tasks": ["x"], "method": "ew"}, "state": {"steps_done": [0], "bogus": [1]}, "position": {}},
     400, "invalid", "state.bogus"),
    ("state-latest-missing", "PUT", "/v1/jobs/uw3/state",
     {"spec": {"tasks": ["x"], "method": "ew"}, "state": {"steps_done": [0]}, "position": {"last_decided": 3}},
     400, "invalid", "position.latest"),
    ("state-position-not-object", "PUT", "/v1/jobs/uw3/state",
     {"spec": {"tasks": ["x"], "method": "ew"}, "state": {"steps_done": [0]}, "position": []},
     400, "invalid", "position"),
    ("state-restore-over-max-jobs", "PUT", "/v1/jobs/new/state",
     {"spec": {"tasks": ["x"], "method": "ew"}, "state": {"steps_done": [0]}, "position": {}},
     429, "too_many_jobs", None),
    # ---- job ids, routes, verbs ----
    ("job-id-too-long", "GET", "/v1/jobs/" + "j" * 129, None, 400, "invalid", "job"),
    ("job-id-too-long-put", "PUT", "/v1/jobs/" + "j" * 129, SPEC, 400, "invalid", "job"),
    ("job-id-space", "GET", "/v1/jobs/uw%203", None, 400, "invalid", "job"),
    ("job-id-non-ascii", "PUT", "/v1/jobs/j%C3%B6b", SPEC, 400, "invalid", "job"),
    ("job-id-colon", "DELETE", "/v1/jobs/uw3:x", None, 400, "invalid", "job"),
    ("job-id-encoded-slash", "GET", "/v1/jobs/uw3%2Fstate", None, 400, "invalid", "job"),
    ("job-id-encoded-slash-delete", "DELETE", "/v1/jobs/uw3%2fhistory", None, 400, "invalid", "job"),
    ("job-id-encoded-nul", "PUT", "/v1/jobs/uw3%00x", SPEC, 400, "invalid", "job"),
    ("no-such-job", "GET", "/v1/jobs/nosuch", None, 404, "no_such_job", "job"),
    ("delete-no-such-job", "DELETE", "/v1/jobs/nosuch", None, 404, "no_such_job", "job"),
    ("unknown-route", "GET", "/v1/nothing", None, 404, "not_found", None),
    ("unknown-version", "GET", "/v2/jobs", None, 404, "not_found", None),
    ("unknown-sub-resource", "GET", "/v1/jobs/uw3/secrets", None, 404, "not_found", None),
    ("trailing-slash", "GET", "/v1/jobs/uw3/", None, 404, "not_found", None),
    ("double-slash", "GET", "/v1/jobs//state", None, 404, "not_found", None),
    ("post-job-list", "POST", "/v1/jobs", SPEC, 405, "method_not_allowed", None),
    ("patch-job", "PATCH", "/v1/jobs/uw3", SPEC, 405, "method_not_allowed", None),
    ("delete-reports", "DELETE", REP, None, 405, "method_not_allowed", None),
    ("put-weights", "PUT", "/v1/jobs/uw3/weights", R(), 405, "method_not_allowed", None),
    ("post-healthz", "POST", "/healthz", "{}", 405, "method_not_allowed", None),
    ("delete-methods", "DELETE", "/v1/methods", None, 405, "method_not_allowed", None),
    # ---- media type and size ----
    ("content-type-text", "POST", REP, (json.dumps(R()), {"Content-Type": "text/plain"}), 415,
     "unsupported_media_type", "Content-Type"),
    ("content-type-form", "PUT", NEW, (json.dumps(SPEC), {"Content-Type": "application/x-www-form-urlencoded"}), 415,
     "unsupported_media_type", "Content-Type"),
    ("content-type-json-suffix", "POST", REP, (json.dumps(R()), {"Content-Type": "application/jsonx"}), 415,
     "unsupported_media_type", "Content-Type"),
    ("oversized-body", "POST", REP, '{"rank": 0, "step": 12, "losses": ' + big_losses + "}", 413, "too_large", None),
    ("oversized-spec", "PUT", NEW, '{"tasks": ["x"], "method": "ew", "pad": "' + "p" * MAX_BODY + '"}', 413, "too_large", None),
    ("oversized-chunked-body", "POST", REP, ("chunked", '{"rank": 0, "step": 12, "losses": ' + big_losses + "}"),
     413, "too_large", None),
]


def send(env, verb, path, body):
    """(status, headers, body bytes) through the contract-checking client."""
    c = env.client()
    headers = None
    if isinstance(body, tuple) and body[0] == "chunked":
        data = body[1].encode()
        chunks = (data[i:i + 8192] for i in range(0, len(data), 8192))
        c.conn.request(verb, path, body=chunks, headers={"Content-Type": "application/json"},
                       encode_chunked=True)
        resp = c.conn.getresponse()
        raw = resp.read()
        h = {k.lower(): v for k, v in resp.getheaders()}
        from contract import contract
        contract().check_response(verb, path, resp.status, h, raw)
        return resp.status, h, raw
    if isinstance(body, tuple):
        body, headers = body
    if isinstance(body, dict) or (body is not None and not isinstance(body, (str, bytes))):
        body = json.dumps(body)
    if body is None and verb in ("PUT", "POST", "PATCH"):
        body = ""
    return c.raw(verb, path, body, headers)


def test_the_table_is_big_enough():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,verb,path,body,status,code,field", CASES, ids=[c[0] for c in CASES])
def test_bad_request(env, baseline, name, verb, path, body, status, code, field):
    st, h, data = send(env, verb, path, body)
    assert st == status, (st, data[:400])
    doc = json.loads(data)
    assert set(doc) == {"error"}, doc
    err = doc["error"]
    assert err["code"] == code, err
    assert err.get("field") == field, err
    assert err["message"]
    if st == 405:
        assert h.get("allow"), h
    # nothing changed, byte for byte
    after = snapshot(env.client())
    changed = [k for k in baseline if baseline[k] != after[k]]
    assert not changed, f"{name} changed {changed}"
    assert after == baseline


@pytest.mark.parametrize("raw,status", [
    (b"GARBAGE\r\n\r\n", None),
    (b"POST /v1/jobs/uw3/reports HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    (b"GET /v1/jobs/uw3 HTTP/9.9\r\nHost: x\r\n\r\n", 505),
    (b"GET /v1/jobs/uw3 HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 20000 + b"\r\n\r\n", 431),
], ids=["garbage", "bad-content-length", "http-9.9", "huge-header"])
def test_http_level_errors_change_nothing(env, baseline, raw, status):
    """Below HTTP semantics libmicrohttpd answers by itself (openapi.yaml says
    so): not JSON, so not in the table, but state must not change either."""
    data = raw_http(env.host, env.port, raw)
    if status is None:
        assert data == b"" or data.startswith(b"HTTP/1.1 400"), data[:100]
    else:
        assert data.startswith(b"HTTP/1.1 %d" % status), data[:100]
    assert snapshot(env.client()) == baseline


def test_the_daemon_survived_the_table(env, baseline):
    c = env.client()
    st, doc = c.get("/healthz")
    assert st == 200 and doc["jobs"] == len(JOBS)
    # a valid report is still taken after all that
    st, doc = c.post(REP, R())
    assert st == 200 and doc["step"] == 12


def test_head_of_the_spec_raw_http(env):
    """HEAD is GET without a body (and checked against GET's responses)."""
    conn = http.client.HTTPConnection(env.host, env.port, timeout=10)
    try:
        conn.request("HEAD", "/v1/jobs/uw3")
        r = conn.getresponse()
        assert r.status == 200 and r.read() == b""
    finally:
        conn.close()
