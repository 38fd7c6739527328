"""Listening beyond loopback (DESIGN.md, Security): without a token file,
refused unless forced with --allow-remote (anyone who can connect could
change jobs). With tokens it is allowed: tests/integration/test_auth.py."""

import subprocess

from conftest import DAEMON, Client


def run(*args):
    return subprocess.run([str(DAEMON), *args], capture_output=True, timeout=10,
                          stdin=subprocess.DEVNULL)


def test_any_address_is_refused_without_allow_remote(tmp_path):
    for addr in ("0.0.0.0:0", "[::]:0", "192.0.2.1:0"):
        out = run("--listen", addr, "--ready-file", str(tmp_path / "ready"))
        assert out.returncode != 0, addr
        err = out.stderr.decode()
        assert "refusing to listen" in err and "--allow-remote" in err and "loopback" in err, err
        assert not (tmp_path / "ready").exists()


def test_help_explains_allow_remote():
    out = run("--help")
    assert out.returncode == 0
    text = out.stdout.decode()
    assert "--allow-remote" in text and "tokens" in text and "TLS" in text


def test_allow_remote_starts_and_warns(start_daemon):
    d = start_daemon("--listen", "0.0.0.0:0", "--allow-remote")
    assert d.addr.startswith("0.0.0.0:")
    c = Client("127.0.0.1", d.port)
    try:
        assert c.get("/healthz")[0] == 200
    finally:
        c.close()
    assert "not_loopback" in d.log()


def test_other_loopback_addresses_need_no_flag(start_daemon):
    d = start_daemon("--listen", "127.0.0.2:0")
    assert d.addr.startswith("127.0.0.2:")
    assert d.client().get("/healthz")[0] == 200
    assert "not_loopback" not in d.log()
