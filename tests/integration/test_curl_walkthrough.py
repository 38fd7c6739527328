"""clients/curl/walkthrough.sh against a live daemon: the curl examples people
paste (create a job, two ranks' reports in the background, the decision,
history, metrics) are known to work, and the script fails loudly when a
call does not answer as it expects."""
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "clients" / "curl" / "walkthrough.sh"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def run(url, *args, timeout=60):
    return subprocess.run(["bash", str(SCRIPT), url, *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_walkthrough_runs_against_a_live_daemon(daemon):
    p = run(daemon.url, "walk-1")
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    assert out.rstrip().endswith("walkthrough ok")
    assert '"status":"decided"' in out and '"ranks":2' in out
    assert '"items":[' in out            # the history
    assert "lossweight_" in out          # the metrics
    # the job was deleted at the end, so the walk can be taken again
    st, _ = daemon.client().get("/v1/jobs/walk-1")
    assert st == 404
    assert run(daemon.url, "walk-1").returncode == 0


def test_walkthrough_fails_on_an_unexpected_status(daemon):
    # a job of that name with another spec: the create answers 409, not 201
    c = daemon.client()
    st, _ = c.put("/v1/jobs/walk-2", {"tasks": ["a", "b", "c"], "method": "ew"})
    assert st == 201
    p = run(daemon.url, "walk-2")
    assert p.returncode != 0
    assert "unexpected status 409" in p.stderr


def test_walkthrough_fails_without_a_daemon():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    p = run("http://127.0.0.1:%d" % port, timeout=30)
    assert p.returncode != 0
