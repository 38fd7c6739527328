"""Barrier mode with 8 ranks: every rank gets the same bytes every step, and
the decisions are `lossweight replay` on the rank-order means."""

import json
import random
import threading

import pytest

from conftest import methods_available, rank_mean, replay

WORLD = 8
STEPS = 200
T = 3


def losses_for(rank, step):
    rnd = random.Random(rank * 1_000_003 + step)
    return [rnd.uniform(0.05, 5.0) for _ in range(T)]


@pytest.mark.parametrize("method", ["uw", "ew"])
def test_eight_ranks_identical_bytes_and_replay(daemon, method):
    control = daemon.client()
    if method not in methods_available(control):
        pytest.skip(f"method {method} not in this build's library")
    spec = {"tasks": ["a", "b", "c"], "method": method, "world_size": WORLD,
            "barrier_timeout_ms": 30000, "seed": 11}
    status, doc = control.put("/v1/jobs/bar", spec)
    assert status == 201, doc

    bodies = [[None] * STEPS for _ in range(WORLD)]
    errors = []

    def rank_loop(rank):
        c = daemon.client()
        try:
            for step in range(STEPS):
                body = {"rank": rank, "step": step, "losses": losses_for(rank, step)}
                st, _, data = c.raw("POST", "/v1/jobs/bar/reports", json.dumps(body))
                if st != 200:
                    errors.append((rank, step, st, data))
                    return
                bodies[rank][step] = data
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((rank, repr(e)))

    threads = [threading.Thread(target=rank_loop, args=(r,), daemon=True) for r in range(WORLD)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "ranks did not finish in time"
    assert not errors, errors[:3]

    decisions = []
    for step in range(STEPS):
        first = bodies[0][step]
        for r in range(1, WORLD):
            assert bodies[r][step] == first, f"step {step}: rank {r} got other bytes"
        d = json.loads(first)
        assert d["job"] == "bar" and d["step"] == step and d["ranks"] == WORLD
        assert d["status"] == "decided" and d["method"] == method
        assert list(d) == ["job", "step", "weights", "method", "ranks", "status"]
        decisions.append(d)

    inputs = [{"step": s, "losses": rank_mean([losses_for(r, s) for r in range(WORLD)])}
              for s in range(STEPS)]
    # the history shows the means exactly as the method got them
    status, page = control.get(f"/v1/jobs/bar/history?from=0&limit={STEPS}")
    assert status == 200 and len(page["items"]) == STEPS
    for item, inp in zip(page["items"], inputs):
        assert item["input"]["losses"] == inp["losses"]
        assert item["ranks_present"] == list(range(WORLD))

    replayed = replay([spec] + inputs)
    assert len(replayed) == STEPS
    for d, r in zip(decisions, replayed):
        assert d["weights"] == r["weights"], f"step {d['step']}"


def test_samples_weighted_mean(daemon):
    c = daemon.client()
    spec = {"tasks": ["a", "b"], "method": "ew", "world_size": 2}
    assert c.put("/v1/jobs/s", spec)[0] == 201
    results = {}

    def post(rank, doc):
        cc = daemon.client()
        results[rank] = cc.post("/v1/jobs/s/reports", doc)

    a = {"rank": 0, "step": 0, "losses": [0.1, 0.7], "samples": 3}
    b = {"rank": 1, "step": 0, "losses": [0.3, 0.2], "samples": 5}
    t = threading.Thread(target=post, args=(0, a), daemon=True)
    t.start()
    post(1, b)
    t.join(timeout=30)
    assert results[0][0] == 200 and results[1][0] == 200
    status, page = c.get("/v1/jobs/s/history")
    assert page["items"][0]["input"]["losses"] == rank_mean(
        [a["losses"], b["losses"]], [3.0, 5.0])
