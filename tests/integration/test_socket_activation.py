"""Socket activation (systemd/lossweightd.socket): lossweightd takes the
listening socket systemd passes as fd 3 with LISTEN_PID/LISTEN_FDS.

The tests play systemd's part without it: they create the listening socket,
and a shell moves it to fd 3, sets LISTEN_PID to its own pid and execs the
daemon (so the pid matches). What is checked:

- the daemon serves on that socket and reports its address (ready file,
  "listening" log line); an explicit --listen elsewhere is overridden and
  the log says so;
- a restart refuses nothing: with the socket held (as systemd holds it), a
  request sent while no daemon runs waits in the backlog and is answered by
  the next daemon, which also has the first one's state;
- LISTEN_PID of another process is not ours: the daemon uses --listen and
  leaves fd 3 alone;
- two sockets, a LISTEN_FDS that is not a count, or a socket that is not
  listening, exit 2 with a message;
- the loopback rule applies to the passed socket's address: 0.0.0.0 without
  a token file exits 2.
"""

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import DAEMON, READY_TIMEOUT_S, STOP_TIMEOUT_S, Client, recv_all, stop_proc

# sh moves the socket (its stdin) to fd 3, gives the daemon /dev/null as
# stdin and execs it under its own pid: LISTEN_PID=$$ is the daemon's pid.
SHIM = 'exec 3<&0 0</dev/null; LISTEN_PID=${LW_PID:-$$} LISTEN_FDS=${LW_FDS:-1} exec "$@"'


def listener(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, 0))
    s.listen(64)
    return s


class Activated:
    """lossweightd started as systemd would start it with a socket unit."""

    def __init__(self, tmp, sock, *flags, env=None):
        tmp.mkdir(parents=True, exist_ok=True)
        self.tmp, self.ready = tmp, tmp / "ready"
        if self.ready.exists():
            self.ready.unlink()
        self.errpath = tmp / "stderr.log"
        args = ["sh", "-c", SHIM, "sh", str(DAEMON), "--ready-file", str(self.ready),
                "--data-dir", str(tmp / "data"), *flags]
        with open(self.errpath, "wb") as err:
            self.proc = subprocess.Popen(args, stdin=sock.fileno(), stdout=subprocess.DEVNULL,
                                         stderr=err, env={**os.environ, **(env or {})})

    def wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"lossweightd exited {self.proc.returncode}: {self.log()}")
            assert time.monotonic() < deadline, "lossweightd did not write its ready file"
            time.sleep(0.01)
        return self.ready.read_text().strip()

    def log(self):
        return self.errpath.read_text(errors="replace")

    def exit_code(self):
        return self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self):
        stop_proc(self.proc)


@pytest.fixture
def activated(tmp_path):
    started = []

    def start(sock, *flags, env=None, name=None):
        a = Activated(tmp_path / (name or f"a{len(started)}"), sock, *flags, env=env)
        started.append(a)
        return a

    yield start
    for a in started:
        a.stop()


def test_serves_the_passed_socket_and_says_so(activated):
    sock = listener()
    port = sock.getsockname()[1]
    a = activated(sock)
    assert a.wait_ready() == f"127.0.0.1:{port}"
    c = Client("127.0.0.1", port)
    status, doc = c.get("/healthz")
    assert status == 200 and doc["status"] == "ok"
    c.close()
    assert f"event=listening addr=127.0.0.1:{port}" in a.log()
    assert "listen_overridden" not in a.log()
    sock.close()


def test_explicit_listen_elsewhere_is_overridden_and_logged(activated):
    sock = listener()
    port = sock.getsockname()[1]
    a = activated(sock, "--listen", "127.0.0.1:0")
    assert a.wait_ready() == f"127.0.0.1:{port}"
    assert "event=listen_overridden" in a.log()
    sock.close()


def test_restart_refuses_nothing_and_keeps_state(activated):
    """The socket outlives the daemon, as under systemd: a request sent
    between two daemons waits in the backlog and the second one answers it,
    with the first one's job."""
    sock = listener()
    port = sock.getsockname()[1]
    first = activated(sock, name="run")
    first.wait_ready()
    c = Client("127.0.0.1", port)
    status, _ = c.put("/v1/jobs/sa", {"tasks": ["a", "b"], "method": "ew"})
    assert status == 201
    status, doc = c.post("/v1/jobs/sa/reports", {"rank": 0, "step": 0, "losses": [1.0, 2.0]})
    assert status == 200 and doc["step"] == 0
    c.close()
    first.proc.send_signal(signal.SIGTERM)
    assert first.exit_code() == 0

    # No daemon now: the kernel still accepts on the socket we hold.
    waiting = socket.create_connection(("127.0.0.1", port), timeout=30)
    waiting.sendall(b"GET /v1/jobs/sa HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    second = activated(sock, name="run")
    second.wait_ready()
    got = recv_all(waiting)
    waiting.close()
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), got[:200]
    job = json.loads(body)
    assert job["status"]["last_decided"] == 0
    sock.close()


def test_listen_pid_of_another_process_is_ignored(activated):
    sock = listener()
    port = sock.getsockname()[1]
    a = activated(sock, "--listen", "127.0.0.1:0", env={"LW_PID": "1"})
    addr = a.wait_ready()
    assert addr != f"127.0.0.1:{port}"
    host, p = addr.rsplit(":", 1)
    c = Client(host, int(p))
    assert c.get("/healthz")[0] == 200
    c.close()
    # The passed socket was left alone: nobody accepts on it.
    sock.settimeout(0.2)
    probe = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn, _ = sock.accept()  # still ours to accept: the daemon never took it
    conn.close()
    probe.close()
    sock.close()


@pytest.mark.parametrize("fds,says", [("2", "systemd passed 2 sockets"),
                                      ("x", "LISTEN_FDS is not a count")])
def test_several_or_garbled_listen_fds_exit_2(activated, fds, says):
    sock = listener()
    a = activated(sock, env={"LW_FDS": fds})
    assert a.exit_code() == 2
    assert says in a.log()
    sock.close()


def test_a_socket_that_is_not_listening_exits_2(activated):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))  # bound, never listen()ed
    a = activated(s)
    assert a.exit_code() == 2
    assert "not a listening TCP socket" in a.log()
    s.close()


def test_passed_socket_beyond_loopback_needs_tokens(activated):
    sock = listener("0.0.0.0")
    a = activated(sock)
    assert a.exit_code() == 2
    assert "refusing to listen on 0.0.0.0" in a.log()
    sock.close()
