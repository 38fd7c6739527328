"""A real distributed run: two ranks of torch.distributed (gloo, 127.0.0.1,
CPU) train a DistributedDataParallel shared-bottom model on two synthetic
tasks of very different loss scale (a regression starting near 27, a binary
classification near 0.69), weighted by a live lossweightd, for ew, uw,
gradnorm, dwa, power_mean (loss weights) and mgda, pcgrad (Gram-based
coefficients). The training code is clients/python/examples/ddp_example.py,
the README's "Use it from PyTorch" code; tests/e2e/ddp_worker.py drives it.

Checked, per method:
  * both ranks got identical weights (bit for bit) at every step;
  * the history's mean inputs are the fixed arithmetic mean of the two
    ranks' reports (0.0 + rank 0 + rank 1, divided by 2), and
    `lossweight replay` on the job's spec and those means reproduces every
    decision bit for bit;
  * training converges: held-out MSE < MSE_MAX and BCE < BCE_MAX;
  * a run killed after step K + J (rank 0 blocked on a report of step
    K + J + 1 that rank 1 never sent, both processes SIGKILLed) and resumed
    in new processes from the checkpoint of step K (model + optimizer state
    dicts + the job state exported by weighter.state_dict() and restored by
    PUT /v1/jobs/{job}/state) decides steps K+1.. exactly as the
    uninterrupted run did, and ends at the same model.
And, for the helpers under DDP: grad_norms/gram are the local gradients'
(equal to a plain per-rank backward, different across ranks, not the norms
of the averaged gradient), and a grad_coeffs Weighter's backward leaves
sum_i c_i mean_r(g_i^r) on the shared parameters and each task's own mean
gradient on its head.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "ddp_worker.py")

METHODS = ["ew", "uw", "gradnorm", "dwa", "power_mean", "mgda", "pcgrad"]
STEPS = 240          # steps 0..239; 12 epochs of 20 steps
K, J = 120, 10       # checkpoint after step K; the first run dies after K + J
WORLD = 2
MSE_MAX = 1.0        # held-out regression MSE: ~30 at the start
BCE_MAX = 0.15       # held-out classification BCE: ~0.7 at the start
PHASE_TIMEOUT = 100  # seconds per launch


def launch(phase, daemon, out):
    init = os.path.join(out, "init-%s" % phase)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               GLOO_SOCKET_IFNAME="lo", PYTHONUNBUFFERED="1")
    procs = []
    for r in range(WORLD):
        log = open(os.path.join(out, "%s.rank%d.log" % (phase, r)), "wb")
        procs.append((subprocess.Popen(
            [sys.executable, WORKER, "--phase", phase, "--rank", str(r), "--world", str(WORLD),
             "--init", init, "--url", daemon.url, "--out", out, "--methods", ",".join(METHODS),
             "--steps", str(STEPS), "--k", str(K), "--j", str(J)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env), log))
    return procs


def logs(out, phase):
    text = ""
    for r in range(WORLD):
        with open(os.path.join(out, "%s.rank%d.log" % (phase, r)), "rb") as f:
            text += "---- %s rank %d\n%s\n" % (phase, r, f.read().decode("utf-8", "replace")[-3000:])
    return text


def kill_all(procs):
    for p, log in procs:
        if p.poll() is None:
            p.kill()
        try:
            p.wait(timeout=10)
        finally:
            log.close()


def wait_all(procs, until, out, phase):
    """Wait until until() is true (or all exited 0); fail at once if a rank dies."""
    deadline = time.monotonic() + PHASE_TIMEOUT
    while time.monotonic() < deadline:
        codes = [p.poll() for p, _ in procs]
        if any(c not in (None, 0) for c in codes):
            kill_all(procs)
            pytest.fail("a rank failed (exit codes %s)\n%s" % (codes, logs(out, phase)))
        if until is None and all(c == 0 for c in codes):
            return
        if until is not None and until():
            return
        time.sleep(0.05)
    kill_all(procs)
    pytest.fail("%s phase did not finish in %d s\n%s" % (phase, PHASE_TIMEOUT, logs(out, phase)))


def read_jsonl(path):
    steps, ev = [], None
    with open(path) as f:
        for line in f:
            o = json.loads(line)
            if "eval" in o:
                ev = o["eval"]
            else:
                steps.append(o)
    return steps, ev


@pytest.fixture(scope="module")
def run(daemon, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ddp"))
    t0 = time.monotonic()
    procs = launch("full", daemon, out)
    try:
        at_kill = [os.path.join(out, "rank%d.at-kill" % r) for r in range(WORLD)]
        wait_all(procs, lambda: all(os.path.exists(p) for p in at_kill), out, "full")
        time.sleep(0.2)  # rank 0 is blocked in the daemon on its lone report
        for p, _ in procs:
            os.kill(p.pid, signal.SIGKILL)
    finally:
        kill_all(procs)
    t1 = time.monotonic()
    procs = launch("resume", daemon, out)
    try:
        wait_all(procs, None, out, "resume")
    finally:
        kill_all(procs)
    t2 = time.monotonic()
    res = {"out": out, "daemon": daemon, "seconds": (t1 - t0, t2 - t1)}
    for m in METHODS:
        for kind in ("full", "resume", "resumed"):
            per = [read_jsonl(os.path.join(out, "%s-%s.rank%d.jsonl" % (m, kind, r)))
                   for r in range(WORLD)]
            res[m, kind] = per
    print("DDP run: first launch %.1f s, resumed launch %.1f s" % res["seconds"])
    return res


def load(path):
    with open(path) as f:
        return json.load(f)


# ---- the helpers under DDP ----

def test_helpers_use_local_gradients_under_ddp(run):
    pr = [load(os.path.join(run["out"], "probe-helpers.rank%d.json" % r)) for r in range(WORLD)]
    for p in pr:
        assert p[".grad_untouched"], "grad_norms/gram must not write .grad"
        for a, b in zip(p["norms"], p["norms_ref"]):
            assert a == pytest.approx(b, rel=1e-5)
        for ra, rb in zip(p["gram"], p["gram_ref"]):
            for a, b in zip(ra, rb):
                assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
        for i in range(2):  # the Gram is symmetric exactly, its diagonal the norms squared
            assert p["gram"][i][1 - i] == p["gram"][1 - i][i]
            assert p["gram"][i][i] == pytest.approx(p["norms"][i] ** 2, rel=1e-5)
        # not the norm of the rank-averaged gradient (which is smaller)
        for a, b in zip(p["norms"], p["norms_of_averaged_gradient"]):
            assert abs(a - b) > 1e-3 * b
    # each rank reports its own batch's gradients
    assert pr[0]["norms"] != pr[1]["norms"]
    assert pr[0]["norms_all_ranks"] == pr[1]["norms_all_ranks"]


def test_grad_coeffs_backward_under_ddp(run):
    pr = [load(os.path.join(run["out"], "probe-coeffs.rank%d.json" % r)) for r in range(WORLD)]
    assert pr[0]["weights"] == pr[1]["weights"]
    for p in pr:
        # shared: sum_i c_i mean_r g_i^r (averaged by DDP's backward, up to float32 rounding)
        assert p["shared_rel_err"] < 1e-5
        # ... which is not the rank's local combination
        assert p["shared_rel_err_vs_local"] > 1e-3
        # heads: their own task's gradient, averaged over ranks, unweighted
        assert max(p["heads_rel_err"]) < 1e-5
        assert p["loss_value"] == pytest.approx(p["sum_losses"], rel=1e-6)
        for ra, rb in zip(p["gram_sent"], p["gram_local"]):
            for a, b in zip(ra, rb):
                assert a == pytest.approx(b, rel=1e-5, abs=1e-6)


# ---- per method ----

@pytest.mark.parametrize("method", METHODS)
def test_ranks_get_identical_weights_every_step(run, method):
    (s0, _), (s1, _) = run[method, "full"]
    assert [o["step"] for o in s0] == list(range(STEPS))
    assert [o["step"] for o in s1] == list(range(STEPS))
    for a, b in zip(s0, s1):
        assert a["status"] == b["status"] == "decided"
        assert a["ranks"] == b["ranks"] == WORLD
        assert a["method"] == b["method"] == method
        assert a["weights"] == b["weights"], "step %d" % a["step"]
    distinct = {tuple(o["weights"]) for o in s0}
    if method == "ew":
        assert distinct == {(1.0, 1.0)}
    else:  # the adaptive methods do adapt
        assert len(distinct) > 5


def fixed_mean(a, b):
    return (0.0 + a + b) / 2


def mean_input(r0, r1):
    m = {"step": r0["step"]}
    if r0["epoch"] is not None:
        m["epoch"] = r0["epoch"]
    for k in ("losses", "grad_norms"):
        if r0[k] is not None:
            m[k] = [fixed_mean(a, b) for a, b in zip(r0[k], r1[k])]
    if r0["gram"] is not None:
        m["gram"] = [[fixed_mean(a, b) for a, b in zip(ra, rb)]
                     for ra, rb in zip(r0["gram"], r1["gram"])]
    return m


@pytest.mark.parametrize("method", METHODS)
def test_history_means_and_replay_reproduce_the_decisions(run, method, tool):
    from lossweight import Client
    c = Client(run["daemon"].url, timeout=30)
    job = method + "-full"
    (s0, _), (s1, _) = run[method, "full"]
    hist = list(c.iter_history(job))
    assert [h["step"] for h in hist] == list(range(STEPS))
    for h, a, b in zip(hist, s0, s1):
        assert h["weights"] == a["weights"]
        assert h["ranks"] == WORLD
        want = mean_input(a["sent"], b["sent"])
        got = {k: v for k, v in h["input"].items() if k in want}
        assert got == want, "step %d" % h["step"]
    spec = c.job(job)["spec"]
    lines = [json.dumps(spec)] + [json.dumps(h["input"]) for h in hist]
    p = subprocess.run([tool, "replay"], input="\n".join(lines) + "\n", capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    replayed = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(replayed) == STEPS
    for r, a in zip(replayed, s0):
        assert r["step"] == a["step"]
        assert r["weights"] == a["weights"], "step %d" % a["step"]


@pytest.mark.parametrize("method", METHODS)
def test_training_converges(run, method):
    (s0, ev0), (s1, ev1) = run[method, "full"]
    assert ev0 == ev1
    mse, bce = ev0
    first = s0[0]["sent"]["losses"]
    assert first[0] > 10 and first[1] < 1  # the two scales
    assert mse < MSE_MAX, "held-out MSE %g" % mse
    assert bce < BCE_MAX, "held-out BCE %g" % bce


@pytest.mark.parametrize("method", METHODS)
def test_killed_run_resumed_from_checkpoint_reproduces_the_weights(run, method):
    full = run[method, "full"]
    first = run[method, "resume"]
    resumed = run[method, "resumed"]
    for r in range(WORLD):
        fs = {o["step"]: o for o in full[r][0]}
        # the run that was killed: steps 0..K+J, the same as the full run
        ks = [o["step"] for o in first[r][0]]
        assert ks == list(range(K + J + 1))
        for o in first[r][0]:
            assert o["weights"] == fs[o["step"]]["weights"]
        # resumed from step K's checkpoint, in new processes
        rs = resumed[r][0]
        assert [o["step"] for o in rs] == list(range(K + 1, STEPS))
        for o in rs:
            assert o["weights"] == fs[o["step"]]["weights"], "step %d rank %d" % (o["step"], r)
            assert o["sent"] == fs[o["step"]]["sent"]
        assert resumed[r][1] == full[r][1]  # the same model at the end
    from lossweight import Client
    c = Client(run["daemon"].url, timeout=30)
    # the restored job also answers step K as the full run decided it
    assert c.step(method + "-resume", K).weights == full[0][0][K]["weights"]
