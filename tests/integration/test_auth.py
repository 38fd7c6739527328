"""Bearer tokens and TLS (DESIGN.md, Security; README "Security").

A daemon with --token-file answers every route as the route table's role
and scope columns say, for every kind of caller: no token, a malformed
header, an unknown token, and reader / trainer / admin tokens with and
without a job prefix, on a job inside and outside that prefix. A 401 or 403
changes nothing (every job's view, state, history and weights and the job
list stay byte for byte the same), and no token ever shows up in an answer,
in /metrics or in the daemon's log (run at debug level, so the access log
is in it). Bad token files exit 2 naming file and line; SIGHUP swaps a good
file in and keeps the old tokens on a bad one; beyond loopback needs tokens
(or --allow-remote); TLS works in the daemon's external-event-loop mode,
for curl, the Python client (including a two-rank barrier: suspended
connections resumed under TLS) and the contract-checking test client, and
plain HTTP to the TLS port fails cleanly.
"""

import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time

import pytest

from conftest import DAEMON, ROOT, Client, _start, raw_http
from contract import contract

CLIENT_DIR = ROOT / "clients" / "python"
if str(CLIENT_DIR) not in sys.path:
    sys.path.insert(0, str(CLIENT_DIR))

import lossweight  # noqa: E402  (the stdlib-only client, from the checkout)

INSIDE = "team-a.j"   # a job under the prefixed tokens' prefix
OUTSIDE = "other"     # one that is not
PREFIX = "team-a."
SPEC = {"tasks": ["a", "b"], "method": "ew"}
REPORT = {"rank": 0, "step": 0, "losses": [1.0, 2.0]}


def tok(kind):
    """A fresh random token, recognisable in a failure message by its kind."""
    return kind + "-" + secrets.token_urlsafe(24)


# name -> (token, role, prefix)
IDENTITIES = {
    "admin": (tok("admin"), "admin", ""),
    "trainer": (tok("trainer"), "trainer", ""),
    "reader": (tok("reader"), "reader", ""),
    "p_admin": (tok("padmin"), "admin", PREFIX),
    "p_trainer": (tok("ptrainer"), "trainer", PREFIX),
    "p_reader": (tok("preader"), "reader", PREFIX),
}
ALL_TOKENS = [t for t, _, _ in IDENTITIES.values()]
RANK = {"reader": 0, "trainer": 1, "admin": 2}


def token_file(path, identities=IDENTITIES, mode=0o600, extra=""):
    lines = ["# lossweightd tokens (test)", ""]
    for name, (t, role, prefix) in identities.items():
        lines.append(f"{t} {role} {prefix}".rstrip() + f"   # {name}")
    path.write_text("\n".join(lines) + "\n" + extra)
    path.chmod(mode)
    return path


def wait_for(pred, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def assert_no_token(text, tokens=None):
    for t in tokens or ALL_TOKENS:
        assert t not in text, "a token leaked"


# ---- the daemon of the route matrix ----

@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auth")
    tf = token_file(tmp / "tokens")
    d = _start(tmp / "d", ["--token-file", str(tf), "--log-level", "debug"])
    try:
        admin = d.client(token=IDENTITIES["admin"][0])
        for job in (INSIDE, OUTSIDE):
            assert admin.put(f"/v1/jobs/{job}", SPEC)[0] == 201
            assert admin.post(f"/v1/jobs/{job}/reports", REPORT)[0] == 200
        yield d
    finally:
        d.stop()


def snapshot(d):
    """Everything a refused request must leave alone, as raw bytes."""
    c = d.client(token=IDENTITIES["admin"][0])
    out = {"list": c.raw("GET", "/v1/jobs")[2]}
    for job in (INSIDE, OUTSIDE):
        for part in ("", "/state", "/history?limit=1000", "/weights"):
            st, _, body = c.raw("GET", f"/v1/jobs/{job}{part}")
            out[job + part] = (st, body)
    c.close()
    return out


@pytest.fixture(scope="module")
def baseline(env):
    return snapshot(env)


# (verb, path with {job}, least role, scope, status when allowed, body).
# The allowed requests change nothing either: the same spec again, the same
# report again, a delete of a job that does not exist, a restore body that is
# refused -- so the whole matrix runs against one unchanging state.
ROUTES = [
    ("GET", "/v1/jobs", "reader", "list", 200, None),
    ("PUT", "/v1/jobs/{job}", "trainer", "job", 200, SPEC),
    ("GET", "/v1/jobs/{job}", "reader", "job", 200, None),
    ("DELETE", "/v1/jobs/{job}-gone", "admin", "job", 404, None),
    ("POST", "/v1/jobs/{job}/reports", "trainer", "job", 200, REPORT),
    ("GET", "/v1/jobs/{job}/steps/0", "reader", "job", 200, None),
    ("GET", "/v1/jobs/{job}/weights", "reader", "job", 200, None),
    ("GET", "/v1/jobs/{job}/history", "reader", "job", 200, None),
    ("GET", "/v1/jobs/{job}/state", "reader", "job", 200, None),
    ("PUT", "/v1/jobs/{job}/state", "trainer", "job", 400, {}),
    ("GET", "/v1/methods", "reader", "any", 200, None),
    ("GET", "/healthz", "open", "any", 200, None),
    ("GET", "/metrics", "reader", "daemon", 200, None),
]

CALLERS = ["none", "malformed", "unknown", *IDENTITIES]


def expected(caller, role, scope, job, allowed):
    if role == "open":
        return allowed
    if caller in ("none", "malformed", "unknown"):
        return 401
    _, crole, prefix = IDENTITIES[caller]
    if RANK[crole] < RANK[role]:
        return 403
    if prefix and scope == "job" and not job.startswith(prefix):
        return 403
    if prefix and scope == "daemon":
        return 403
    return allowed


def headers_for(caller):
    if caller == "none":
        return {}
    if caller == "malformed":
        return {"Authorization": "Basic " + IDENTITIES["admin"][0]}
    if caller == "unknown":
        return {"Authorization": "Bearer " + tok("unknown")}
    return {"Authorization": "Bearer " + IDENTITIES[caller][0]}


def matrix():
    for verb, path, role, scope, allowed, body in ROUTES:
        for job in ((INSIDE, OUTSIDE) if "{job}" in path else ("",)):
            for caller in CALLERS:
                p = path.replace("{job}", job)
                yield pytest.param(verb, p, caller, expected(caller, role, scope, job, allowed),
                                   body, id=f"{verb} {p} {caller}")


def test_the_route_table_is_the_matrix():
    """ROUTES covers every route, with router.c's role and scope."""
    import test_proto
    table = test_proto.router_roles()
    mine = {(v, p.replace("{job}-gone", "{job}").replace("/steps/0", "/steps/{step}")): (r, s)
            for v, p, r, s, _, _ in ROUTES}
    assert mine == table


@pytest.mark.parametrize("verb,path,caller,status,body", list(matrix()))
def test_route_matrix(env, baseline, verb, path, caller, status, body):
    c = env.client()
    data = None if body is None else json.dumps(body)
    st, h, raw = c.raw(verb, path, data, headers_for(caller))  # contract-checked
    c.close()
    assert st == status, (st, raw[:300])
    text = raw.decode("utf-8", "replace")
    assert_no_token(text)
    if st == 401:
        assert h["www-authenticate"].startswith("Bearer realm=\"lossweightd\""), h
        err = json.loads(raw)["error"]
        assert err["code"] == "unauthorized" and err["field"] == "Authorization", err
        want = {"none": None, "malformed": "invalid_request", "unknown": "invalid_token"}[caller]
        if want:
            assert f'error="{want}"' in h["www-authenticate"]
    elif st == 403:
        err = json.loads(raw)["error"]
        assert err["code"] == "forbidden" and err["message"], err
        assert "www-authenticate" not in h
    if path == "/v1/jobs" and st == 200:
        jobs = [j["job"] for j in json.loads(raw)["jobs"]]
        prefix = IDENTITIES[caller][2]
        assert jobs == sorted(j for j in (INSIDE, OUTSIDE) if j.startswith(prefix))
        assert json.loads(raw)["count"] == len(jobs)
    if path == "/metrics" and st == 200:
        assert "lossweight_requests_total" in text
    assert snapshot(env) == baseline


def test_auth_comes_before_routing_and_routing_before_roles(env, baseline):
    c = env.client()
    admin, preader = IDENTITIES["admin"][0], IDENTITIES["p_reader"][0]
    # no token: nothing about the paths is told
    assert c.raw("GET", "/v1/nothing")[0] == 401
    assert c.raw("PATCH", "/v1/jobs/x")[0] == 401
    assert c.raw("GET", "/v1/jobs/bad%20id")[0] == 401
    # a good token: the routing errors
    assert c.raw("GET", "/v1/nothing", headers={"Authorization": "Bearer " + admin})[0] == 404
    st, h, _ = c.raw("PATCH", "/v1/jobs/x", headers={"Authorization": "Bearer " + admin})
    assert st == 405 and h["allow"]
    st, _, raw = c.raw("GET", "/v1/jobs/bad%20id", headers={"Authorization": "Bearer " + preader})
    assert st == 400 and json.loads(raw)["error"]["field"] == "job"
    # a job outside the prefix is 403 whether or not it exists
    for job in (OUTSIDE, "no-such-job"):
        st, _, raw = c.raw("GET", f"/v1/jobs/{job}", headers={"Authorization": "Bearer " + preader})
        assert st == 403 and json.loads(raw)["error"]["field"] == "job"
    # and a job inside it that does not exist is a 404
    assert c.raw("GET", f"/v1/jobs/{PREFIX}none",
                 headers={"Authorization": "Bearer " + preader})[0] == 404
    # HEAD is GET
    assert c.raw("HEAD", "/v1/jobs")[0] == 401
    assert c.raw("HEAD", "/healthz")[0] == 200
    assert snapshot(env) == baseline


def test_an_unauthenticated_body_is_never_read(env, baseline):
    """A body over --max-body without a token: 401 at once (not 413), from
    the headers alone; the daemon closes the connection without reading it."""
    data = raw_http(env.host, env.port,
                    b"POST /v1/jobs/%s/reports HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{"
                    % INSIDE.encode())
    assert data.startswith(b"HTTP/1.1 401"), data[:200]
    assert b"WWW-Authenticate: Bearer" in data
    assert snapshot(env) == baseline


# Requests that would change state if they were allowed.
CHANGES = [
    ("PUT", "/v1/jobs/{job}2", SPEC),
    ("PUT", "/v1/jobs/{job}", {"tasks": ["a", "b", "c"], "method": "uw"}),
    ("DELETE", "/v1/jobs/{job}", None),
    ("POST", "/v1/jobs/{job}/reports", {"rank": 0, "step": 1, "losses": [3.0, 4.0]}),
    ("PUT", "/v1/jobs/{job}/state", "STATE"),
]


def test_refused_changes_change_nothing(env, baseline):
    """Every change, refused 401 (no, malformed or unknown token) or 403 (role
    too low, job outside the prefix), leaves everything byte for byte."""
    c = env.client()
    refusals = 0
    for job in (INSIDE, OUTSIDE):
        state = json.loads(snapshot(env)[job + "/state"][1])
        for verb, path, body in CHANGES:
            need = "admin" if verb == "DELETE" else "trainer"
            p = path.replace("{job}", job)
            data = json.dumps(state if body == "STATE" else body) if body is not None else None
            for caller in CALLERS:
                want = expected(caller, need, "job", job, None)
                if want is None:
                    continue
                st, _, raw = c.raw(verb, p, data, headers_for(caller))
                assert st == want, (verb, p, caller, st, raw[:200])
                refusals += 1
                assert snapshot(env) == baseline, (verb, p, caller)
    assert refusals >= 50


def test_the_same_changes_with_the_right_token_do_change(tmp_path):
    """The control of the test above: allowed, those requests do change state."""
    tf = token_file(tmp_path / "tokens")
    d = _start(tmp_path / "d", ["--token-file", str(tf)])
    try:
        pa, pt = IDENTITIES["p_admin"][0], IDENTITIES["p_trainer"][0]
        c = d.client(token=pa)
        # a trainer does what a training run does: create, report, restore
        t = d.client(token=pt)
        assert t.put(f"/v1/jobs/{INSIDE}", SPEC)[0] == 201
        assert t.put(f"/v1/jobs/{INSIDE}2", SPEC)[0] == 201
        assert t.post(f"/v1/jobs/{INSIDE}/reports", {"rank": 0, "step": 1, "losses": [3.0, 4.0]})[0] == 200
        st, state = t.get(f"/v1/jobs/{INSIDE}/state")
        assert st == 200 and t.put(f"/v1/jobs/{INSIDE}/state", state)[0] == 200
        assert t.delete(f"/v1/jobs/{INSIDE}2")[0] == 403  # deleting is the admin's
        assert c.delete(f"/v1/jobs/{INSIDE}2")[0] == 200
        st, doc = c.get("/v1/jobs")
        assert [j["job"] for j in doc["jobs"]] == [INSIDE]
    finally:
        d.stop()


def test_no_token_in_metrics_or_log(env):
    c = env.client(token=IDENTITIES["reader"][0])
    st, text = c.get("/metrics")
    assert st == 200
    assert_no_token(text)
    # the refusals are counted by status
    assert 'status="401"' in text and 'status="403"' in text
    log = env.log()
    assert "level=debug event=request" in log        # the access log is on
    assert "event=unauthorized" in log and "event=forbidden" in log
    assert "event=tokens_loaded" in log
    assert_no_token(log)


# ---- the token file ----

def run(*args, timeout=10):
    return subprocess.run([str(DAEMON), *args], capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


GOOD = "0123456789abcdefXYZ"

BAD_FILES = [
    ("no-role", f"# tokens\n{GOOD}\n", 2, "no role (a line is TOKEN ROLE [JOB_PREFIX])"),
    ("bad-role", f"\n{GOOD} superuser\n", 2, "the role is not admin, trainer or reader"),
    ("role-case", f"{GOOD} Admin\n", 1, "the role is not admin, trainer or reader"),
    ("short", f"{GOOD} admin\nabcdefghij12345 reader\n", 2,
     "the token is shorter than 16 characters"),
    ("long", "x" * 513 + " admin\n", 1, "the token is longer than 512 characters"),
    ("bad-char", f"{GOOD}$ admin\n", 1,
     "the token has a character outside [A-Za-z0-9._~+/=-]"),
    ("bad-prefix", f"{GOOD} reader team/a\n", 1,
     "the job prefix is not 1 to 128 characters of [A-Za-z0-9._-]"),
    ("fields", f"{GOOD} reader team extra\n", 1,
     "more than three fields (a line is TOKEN ROLE [JOB_PREFIX])"),
    ("duplicate", f"{GOOD} admin\n# again:\n{GOOD} reader\n", 3, "the same token as line 1"),
    ("empty", "# nothing but comments\n\n", None, "no tokens (a line is TOKEN ROLE [JOB_PREFIX])"),
]


@pytest.mark.parametrize("name,text,line,msg", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_bad_token_file_exits_2_naming_file_and_line(tmp_path, name, text, line, msg):
    tf = tmp_path / "tokens"
    tf.write_text(text)
    tf.chmod(0o600)
    out = run("--listen", "127.0.0.1:0", "--ready-file", str(tmp_path / "ready"),
              "--token-file", str(tf))
    err = out.stderr.decode()
    assert out.returncode == 2, err
    where = f"{tf}:{line}: " if line else f"{tf}: "
    assert f"lossweightd: --token-file {where}{msg}" in err, err
    assert not (tmp_path / "ready").exists()
    for t in (GOOD, "abcdefghij12345", "x" * 513):
        if t in text:
            assert t not in err, "a token leaked"


def test_a_missing_or_unreadable_token_file_exits_2(tmp_path):
    for path in (tmp_path / "absent", tmp_path):
        out = run("--listen", "127.0.0.1:0", "--token-file", str(path))
        assert out.returncode == 2
        assert f"--token-file {path}: " in out.stderr.decode()


def test_a_token_file_others_can_read_is_a_warning(start_daemon, tmp_path):
    loose = token_file(tmp_path / "loose", mode=0o644)
    d = start_daemon("--token-file", str(loose))
    assert "event=secret_file_mode file=token_file" in d.log() and "mode=0644" in d.log()
    tight = token_file(tmp_path / "tight", mode=0o600)
    d = start_daemon("--token-file", str(tight))
    assert "secret_file_mode" not in d.log()


def test_sighup_swaps_a_good_file_and_keeps_the_old_tokens_on_a_bad_one(start_daemon, tmp_path):
    old, new = tok("old"), tok("new")
    tf = tmp_path / "tokens"
    tf.write_text(f"{old} admin\n")
    tf.chmod(0o600)
    d = start_daemon("--token-file", str(tf), "--log-level", "debug")
    c = d.client()

    def status(t):
        return c.raw("GET", "/v1/jobs", headers={"Authorization": "Bearer " + t})[0]

    assert (status(old), status(new)) == (200, 401)
    # a good file, replaced atomically: the new tokens only
    tmp = tmp_path / "tokens.new"
    tmp.write_text(f"# rotated\n{new} reader\n")
    tmp.chmod(0o600)
    tmp.rename(tf)
    d.signal(signal.SIGHUP)
    wait_for(lambda: "event=tokens_reloaded" in d.log(), "no tokens_reloaded")
    assert (status(old), status(new)) == (401, 200)
    assert c.raw("DELETE", "/v1/jobs/x", headers={"Authorization": "Bearer " + new})[0] == 403
    # a bad file: logged with file and line, the tokens in use stay
    bad = tok("bad")
    tf.write_text(f"{bad} admin\n{bad[:10]} admin\n")
    d.signal(signal.SIGHUP)
    wait_for(lambda: "event=tokens_reload_failed" in d.log(), "no tokens_reload_failed")
    log = d.log()
    assert f"{tf}:2: the token is shorter than 16 characters" in log
    assert (status(old), status(new), status(bad)) == (401, 200, 401)
    # a missing file too
    tf.unlink()
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.log().count("event=tokens_reload_failed") == 2, "no second failure")
    assert status(new) == 200
    assert "event=log_reopen" in d.log()  # SIGHUP still reopens logs
    assert_no_token(d.log(), [old, new, bad, bad[:10]])


def test_healthz_needs_no_token(start_daemon, tmp_path):
    d = start_daemon("--token-file", str(token_file(tmp_path / "tokens")))
    st, doc = d.client().get("/healthz")
    assert st == 200 and doc["status"] == "ok"


# ---- beyond loopback ----

def test_beyond_loopback_is_refused_without_tokens(tmp_path):
    out = run("--listen", "0.0.0.0:0", "--ready-file", str(tmp_path / "ready"))
    assert out.returncode == 2
    err = out.stderr.decode()
    assert "refusing to listen on 0.0.0.0" in err and "--token-file" in err, err
    assert "--allow-remote" in err


def test_beyond_loopback_with_tokens_starts(start_daemon, tmp_path):
    d = start_daemon("--listen", "0.0.0.0:0", "--token-file",
                     str(token_file(tmp_path / "tokens")))
    assert d.addr.startswith("0.0.0.0:")
    c = Client("127.0.0.1", d.port)
    try:
        assert c.get("/healthz")[0] == 200
        assert c.raw("GET", "/v1/jobs")[0] == 401
        assert c.raw("GET", "/v1/jobs",
                     headers={"Authorization": "Bearer " + IDENTITIES["reader"][0]})[0] == 200
    finally:
        c.close()
    log = d.log()
    assert "not_loopback" not in log
    assert "event=no_tls" in log  # tokens in clear text on the network: said so


def test_tls_flags_go_together(tmp_path):
    out = run("--tls-cert", str(tmp_path / "c.pem"))
    assert out.returncode == 2 and b"--tls-cert and --tls-key go together" in out.stderr
    out = run("--tls-key", str(tmp_path / "k.pem"))
    assert out.returncode == 2 and b"--tls-cert and --tls-key go together" in out.stderr


# ---- TLS ----

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and localhost, and a second,
    unrelated key, made with openssl in a temporary directory."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed (make deps installs it)")
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "2",
            "-subj", "/CN=lossweightd test", "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost", cwd=d)
    openssl("genpkey", "-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-out", "other-key.pem", cwd=d)
    for k in ("key.pem", "other-key.pem"):
        (d / k).chmod(0o600)
    return d


@pytest.fixture(scope="module")
def tls_env(tmp_path_factory, pki):
    tmp = tmp_path_factory.mktemp("tls")
    tf = token_file(tmp / "tokens")
    d = _start(tmp / "d", ["--token-file", str(tf), "--tls-cert", str(pki / "cert.pem"),
                           "--tls-key", str(pki / "key.pem"), "--log-level", "debug"])
    d.url = f"https://{d.addr}"
    try:
        yield d
    finally:
        d.stop()


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True,
                          timeout=30, stdin=subprocess.DEVNULL)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_tls_round_trip_with_curl(tls_env, pki):
    admin = IDENTITIES["admin"][0]
    url = tls_env.url
    auth = ["-H", "Authorization: Bearer " + admin]
    out = curl("--cacert", str(pki / "cert.pem"), "-X", "PUT", *auth,
               "-H", "Content-Type: application/json", "--data-binary", json.dumps(SPEC),
               "-w", "\n%{http_code} %{scheme}", f"{url}/v1/jobs/curl-job")
    assert out.returncode == 0, out.stderr
    body, _, tail = out.stdout.decode().rpartition("\n")
    assert tail.split() == ["201", "HTTPS"], tail
    contract().check_response("PUT", "/v1/jobs/curl-job", 201,
                              {"content-type": "application/json"}, body.encode())
    out = curl("--cacert", str(pki / "cert.pem"), "-i", f"{url}/v1/jobs")
    text = out.stdout.decode()
    assert out.returncode == 0 and text.startswith("HTTP/1.1 401"), text
    assert "WWW-Authenticate: Bearer" in text
    out = curl("--cacert", str(pki / "cert.pem"), f"{url}/healthz")
    assert out.returncode == 0 and json.loads(out.stdout)["status"] == "ok"
    # an unknown CA: the certificate does not verify
    out = curl(f"{url}/healthz")
    assert out.returncode == 60, out.stderr


def test_tls_round_trip_with_the_python_client(tls_env, pki, monkeypatch):
    ca = str(pki / "cert.pem")
    url = tls_env.url
    with lossweight.Client(url, token=IDENTITIES["p_admin"][0], cafile=ca, timeout=30) as c:
        c.create_job(f"{PREFIX}py", ["a", "b"], "dwa", world_size=1)
        d = c.report(f"{PREFIX}py", step=0, losses=[1.0, 2.0], epoch=0)
        assert d.status == "decided" and d.weights == [1.0, 1.0]
        assert c.weights(f"{PREFIX}py").weights == d.weights
        assert any(m["name"] == "dwa" for m in c.methods())
        assert [j["job"] for j in c.jobs()["jobs"]] == [f"{PREFIX}py"]
        with pytest.raises(lossweight.Forbidden) as e:
            c.job(OUTSIDE)
        assert e.value.status == 403 and e.value.code == "forbidden"
        with pytest.raises(lossweight.Forbidden):
            c.metrics()
    # the token from the environment
    monkeypatch.setenv("LOSSWEIGHT_TOKEN", IDENTITIES["reader"][0])
    with lossweight.Client(url, cafile=ca, timeout=30) as c:
        assert c.job(f"{PREFIX}py")["job"] == f"{PREFIX}py"
        with pytest.raises(lossweight.Forbidden):
            c.delete_job(f"{PREFIX}py")
    # token="" overrides the environment: no token
    with lossweight.Client(url, token="", cafile=ca, timeout=30, retries=0) as c:
        with pytest.raises(lossweight.Unauthorized) as e:
            c.jobs()
        assert e.value.code == "unauthorized" and e.value.field == "Authorization"
    monkeypatch.delenv("LOSSWEIGHT_TOKEN")
    # without the CA the certificate does not verify: at once, not retried
    t0 = time.monotonic()
    with lossweight.Client(url, token=IDENTITIES["admin"][0], timeout=10) as c:
        with pytest.raises(lossweight.ConnectionFailed) as e:
            c.jobs()
    assert e.value.code == "tls_verify_failed"
    assert time.monotonic() - t0 < 5
    with pytest.raises(ValueError):
        lossweight.Client("http://127.0.0.1:1", cafile=ca)


def test_tls_barrier_resumes_suspended_connections(tls_env, pki):
    """Two ranks over TLS meet at a barrier: the first rank's connection is
    suspended and resumed by the second's report (http.c under libuv)."""
    ca = str(pki / "cert.pem")
    trainer = IDENTITIES["trainer"][0]
    with lossweight.Client(tls_env.url, token=IDENTITIES["admin"][0], cafile=ca) as c:
        c.create_job("tls-barrier", ["a", "b"], "uw", world_size=2, barrier_timeout_ms=20000)
    out = {}

    def rank(r):
        with lossweight.Client(tls_env.url, token=trainer, cafile=ca, timeout=30) as c:
            out[r] = [c.report("tls-barrier", step=s, losses=[1.0 + r + s, 2.0], rank=r)
                      for s in range(5)]

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(out) == {0, 1}
    for s in range(5):
        assert out[0][s].weights == out[1][s].weights and out[0][s].ranks == 2


def test_tls_answers_validate_against_the_contract(tls_env, pki):
    ctx = ssl.create_default_context(cafile=str(pki / "cert.pem"))
    c = tls_env.client(token=IDENTITIES["admin"][0], ssl_context=ctx)
    assert c.put("/v1/jobs/tls-contract", SPEC)[0] == 201
    assert c.post("/v1/jobs/tls-contract/reports", REPORT)[0] == 200
    for path in ("/v1/jobs", "/v1/jobs/tls-contract", "/v1/jobs/tls-contract/state",
                 "/v1/jobs/tls-contract/history", "/v1/methods", "/healthz"):
        assert c.get(path)[0] == 200, path
    assert c.raw("GET", "/v1/jobs", headers={"Authorization": "Bearer nope-" + "x" * 20})[0] == 401


def test_plain_http_to_the_tls_port_fails_cleanly(tls_env, pki):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", tls_env.port, timeout=10)
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        c.request("GET", "/healthz")
        c.getresponse().read()
    c.close()
    if shutil.which("curl"):
        out = curl(f"http://{tls_env.addr}/healthz")
        assert out.returncode in (52, 56), out  # empty reply / connection reset
    # the daemon is fine
    ctx = ssl.create_default_context(cafile=str(pki / "cert.pem"))
    assert tls_env.client(ssl_context=ctx).get("/healthz")[0] == 200
    assert tls_env.proc.poll() is None


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_walkthrough_with_a_token_over_tls(tls_env, pki):
    script = ROOT / "clients" / "curl" / "walkthrough.sh"
    env = {**os.environ, "CURL_CA_BUNDLE": str(pki / "cert.pem")}
    env.pop("LW_TOKEN", None)
    env.pop("LOSSWEIGHT_TOKEN", None)
    p = subprocess.run(["bash", str(script), tls_env.url, "walk-tls"], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL, env=env)
    assert p.returncode != 0 and "unexpected status 401" in p.stderr, p.stdout + p.stderr
    env["LW_TOKEN"] = IDENTITIES["admin"][0]
    p = subprocess.run(["bash", str(script), tls_env.url, "walk-tls"], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.rstrip().endswith("walkthrough ok")
    assert_no_token(p.stdout + p.stderr)


def test_tls_daemon_log_has_no_token(tls_env):
    assert "scheme=https" in tls_env.log()
    assert_no_token(tls_env.log())


@pytest.mark.parametrize("which", ["missing-cert", "missing-key", "mismatch", "not-pem"])
def test_bad_tls_files_exit_2(tmp_path, pki, which):
    cert, key = pki / "cert.pem", pki / "key.pem"
    if which == "missing-cert":
        cert = tmp_path / "absent.pem"
    elif which == "missing-key":
        key = tmp_path / "absent.pem"
    elif which == "mismatch":
        key = pki / "other-key.pem"
    else:
        cert = tmp_path / "junk.pem"
        cert.write_text("not a certificate\n")
    out = run("--listen", "127.0.0.1:0", "--ready-file", str(tmp_path / "ready"),
              "--tls-cert", str(cert), "--tls-key", str(key))
    err = out.stderr.decode()
    assert out.returncode == 2, err
    assert err.startswith("lossweightd: --tls-"), err
    assert not (tmp_path / "ready").exists()
    if which in ("missing-cert", "missing-key"):
        assert "No such file" in err
    assert "PRIVATE KEY" not in err


def test_version_says_whether_tls_is_built_in():
    out = run("--version")
    assert out.returncode == 0
    assert b"with TLS" in out.stdout, "Debian's libmicrohttpd has TLS (MHD_FEATURE_TLS)"
