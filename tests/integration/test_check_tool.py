"""`lossweight check DATA_DIR`: the offline verifier of a data directory.

It runs the daemon's own recovery read-only, so every test here holds it to
what lossweightd then does on the same files: the jobs and step counts it
serves, the torn tail it drops (file, offset, bytes), the file and offset it
refuses to start on, the figures of its `recovered` log line. And it must
change nothing: the files are hashed before and after every check."""

import hashlib
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from conftest import TOOL
from durability_util import REC_REPORT, flip, records, report, segments, snapshots, uw_pair_daemon

CHECK_TIMEOUT_S = 60


def check(data, *args):
    """Run the tool: (exit status, stdout, stderr)."""
    if not TOOL.exists():
        pytest.fail(f"{TOOL} is not built")
    out = subprocess.run([str(TOOL), "check", *args, str(data)], capture_output=True,
                         text=True, timeout=CHECK_TIMEOUT_S)
    return out.returncode, out.stdout, out.stderr


def check_json(data, *args):
    rc, out, err = check(data, "--json", *args)
    doc = json.loads(out)  # one document, nothing else on stdout
    return rc, doc, err


def digest(data):
    """{name: sha256 of the bytes} of every file in the directory."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(data.iterdir()) if p.is_file()}


def served(client, jobs):
    """What the daemon serves of each job, in the tool's terms."""
    out = {}
    for j in jobs:
        st, doc = client.get(f"/v1/jobs/{j}")
        assert st == 200, doc
        s = doc["status"]
        out[j] = {"method": doc["spec"]["method"], "tasks": len(doc["spec"]["tasks"]),
                  "world_size": doc["spec"]["world_size"],
                  "decided": {"first": s["history"]["oldest"], "last": s["last_decided"],
                              "kept": s["history"]["kept"], "steps_decided": s["steps_decided"]},
                  "open_steps": s["open_count"]}
    return out


def checked(doc):
    return {j["id"]: {k: v for k, v in j.items() if k != "id"} for j in doc["jobs"]}


def recovered_event(d):
    ev = d.events("recovered")
    assert len(ev) == 1, d.log()
    return ev[0]


def agrees_with_recovered(doc, ev):
    """The tool's figures are those of the daemon's `recovered` log line."""
    snap = doc["snapshot"]
    assert ev["snapshot_jobs"] == str(snap["jobs"] if snap else 0)
    assert ev["segments"] == str(doc["totals"]["segments"])
    assert ev["records_replayed"] == str(doc["totals"]["records"])
    assert ev["jobs"] == str(doc["totals"]["jobs"])
    torn = doc["torn_tail"]
    assert ev["torn_tail_bytes_dropped"] == str(torn["bytes"] if torn else 0)


def populate(d, n_steps=6):
    """Two jobs: "a" (uw, world 2) with n_steps decided and step n_steps open
    with rank 0 only; "b" (dwa, world 1) with n_steps decided."""
    c = d.client()
    assert c.put("/v1/jobs/a", {"tasks": ["x", "y"], "method": "uw", "world_size": 2})[0] == 201
    assert c.put("/v1/jobs/b", {"tasks": ["x", "y", "z"], "method": "dwa"})[0] == 201
    for s in range(n_steps):
        for r in range(2):
            st, doc = c.post("/v1/jobs/a/reports?wait_ms=0", report("a", r, s, 2))
            assert st in (200, 202), doc
        st, doc = c.post("/v1/jobs/b/reports?wait_ms=0", report("b", 0, s, 3, epoch=s))
        assert st == 200, doc
    st, doc = c.post("/v1/jobs/a/reports?wait_ms=0", report("a", 0, n_steps, 2))
    assert st == 202, doc
    return c


def build_journal(procs, data, n_reports=8):
    """A journal with job "j" (uw, world 2) and n_reports reports, ended by kill -9."""
    uw_pair_daemon(procs, data, n_reports).kill()


# ---- a clean shutdown ----

def test_clean_shutdown_recovers_as_is_with_what_the_daemon_served(procs, tmp_path):
    data = tmp_path / "data"
    d = procs.start(data)
    c = populate(d)
    before = served(c, ["a", "b"])
    assert before["a"]["open_steps"] == 1 and before["a"]["decided"]["last"] == 5
    assert d.term() == 0
    files = digest(data)
    assert snapshots(data), "SIGTERM writes a final snapshot"

    rc, doc, err = check_json(data)
    assert rc == 0, err
    assert doc["verdict"] == "ok"
    assert doc["in_use"] is None
    assert doc["snapshot"]["file"] == str(snapshots(data)[-1])
    assert doc["snapshot"]["jobs"] == 2
    assert checked(doc) == before
    assert doc["totals"]["jobs"] == 2 and doc["totals"]["open_steps"] == 1
    assert doc["torn_tail"] is None and doc["corrupt"] is None
    assert digest(data) == files

    rc, out, err = check(data)
    assert rc == 0 and err == ""
    assert "verdict: ok" in out
    assert f"snapshot: {snapshots(data)[-1].name} (2 jobs)" in out
    assert "  a  method uw, tasks 2, world_size 2, decided steps 0..5" in out
    assert "open steps 1" in out
    assert digest(data) == files

    # the next start brings back exactly that
    d = procs.start(data)
    assert served(d.client(), ["a", "b"]) == before
    agrees_with_recovered(doc, recovered_event(d))


def test_journal_without_a_snapshot_is_replayed(procs, tmp_path):
    data = tmp_path / "data"
    d = procs.start(data, "--snapshot-interval-s", "0")
    before = served(populate(d), ["a", "b"])
    d.kill()
    assert not snapshots(data)
    rc, doc, err = check_json(data)
    assert rc == 0, err
    assert doc["snapshot"] is None and doc["verdict"] == "ok"
    seg = segments(data)[0]
    assert doc["segments"] == [{"file": str(seg), "records": len(records(seg)),
                                "bytes": seg.stat().st_size, "outcome": "ok"}]
    assert checked(doc) == before
    d = procs.start(data)
    agrees_with_recovered(doc, recovered_event(d))
    assert served(d.client(), ["a", "b"]) == before


# ---- kill -9 under load ----

def _load(d, stop, job):
    c = d.client(timeout=5)
    s = 0
    try:
        while not stop.is_set():
            for r in range(2):
                c.post(f"/v1/jobs/{job}/reports?wait_ms=0", report(job, r, s, 2))
            s += 1
    except Exception:  # the daemon was killed under us
        pass


@pytest.mark.parametrize("fsync", ["always", "off"])
def test_kill_9_mid_run_matches_the_restart(procs, tmp_path, fsync):
    data = tmp_path / "data"
    flags = ("--fsync", fsync, "--journal-max-bytes", "32K", "--snapshot-interval-s", "0")
    for rnd in range(3):
        d = procs.start(data, *flags)
        c = d.client()
        job = f"j{rnd}"
        assert c.put(f"/v1/jobs/{job}", {"tasks": ["a", "b"], "method": "uw",
                                         "world_size": 2})[0] == 201
        stop = threading.Event()
        threads = [threading.Thread(target=_load, args=(d, stop, job)) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.3 + 0.2 * rnd)
        d.kill()
        stop.set()
        for t in threads:
            t.join(timeout=30)

        files = digest(data)
        rc, doc, err = check_json(data)
        assert digest(data) == files
        assert rc == 0, (err, doc)
        assert doc["verdict"] in ("ok", "torn tail"), doc
        jobs = [j["id"] for j in doc["jobs"]]
        assert jobs == [f"j{i}" for i in range(rnd + 1)]

        d = procs.start(data, *flags)
        ev = recovered_event(d)
        agrees_with_recovered(doc, ev)
        torn = d.events("torn_tail_dropped")
        if doc["verdict"] == "torn tail" and doc["torn_tail"]["reason"] != \
                "segment header cut short":
            assert len(torn) == 1, d.log()
            assert torn[0]["file"] == doc["torn_tail"]["file"]
            assert torn[0]["offset"] == str(doc["torn_tail"]["offset"])
            assert torn[0]["bytes"] == str(doc["torn_tail"]["bytes"])
        elif doc["verdict"] == "ok":
            assert torn == [], d.log()
        assert served(d.client(), jobs) == checked(doc)
        d.kill()


# ---- a torn last record ----

def test_torn_last_record_is_reported_and_left_alone(procs, tmp_path):
    data = tmp_path / "data"
    build_journal(procs, data)
    seg = segments(data)[0]
    off, length, t = records(seg)[-1]
    assert t == REC_REPORT
    cut = off + length // 2
    os.truncate(seg, cut)
    files = digest(data)

    rc, out, err = check(data)
    assert rc == 0, err
    assert digest(data) == files
    assert seg.stat().st_size == cut
    assert f"verdict: torn tail: lossweightd would drop {cut - off} bytes at {seg} offset {off}" \
        in out, out

    rc, doc, err = check_json(data)
    assert rc == 0, err
    assert digest(data) == files
    assert doc["verdict"] == "torn tail"
    assert doc["torn_tail"]["file"] == str(seg)
    assert doc["torn_tail"]["offset"] == off and doc["torn_tail"]["bytes"] == cut - off
    assert doc["segments"][0]["outcome"] == "torn tail"
    assert doc["segments"][0]["records"] == len(records(seg))  # the whole ones before it
    assert doc["corrupt"] is None

    # the daemon drops exactly that, and serves what the tool listed
    d = procs.start(data)
    torn = d.events("torn_tail_dropped")
    assert len(torn) == 1, d.log()
    assert torn[0]["file"] == str(seg) and torn[0]["offset"] == str(off)
    assert torn[0]["bytes"] == str(cut - off)
    agrees_with_recovered(doc, recovered_event(d))
    assert served(d.client(), ["j"]) == checked(doc)
    d.kill()
    assert seg.stat().st_size == off


def test_a_directory_without_lock_gets_none(procs, tmp_path):
    data = tmp_path / "data"
    build_journal(procs, data)
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    (copy / "LOCK").unlink()
    files = digest(copy)
    rc, out, err = check(copy)
    assert rc == 0, err
    assert "in use" not in out
    assert not (copy / "LOCK").exists()
    assert digest(copy) == files


# ---- corruption ----

@pytest.mark.parametrize("where", ["payload", "crc"])
def test_corrupt_middle_record_names_file_and_offset_like_the_daemon(procs, tmp_path, where):
    data = tmp_path / "data"
    build_journal(procs, data)
    seg = segments(data)[0]
    off, length, _ = records(seg)[4]
    flip(seg, {"payload": off + length - 3, "crc": off}[where])
    files = digest(data)

    rc, out, err = check(data)
    assert rc == 1
    assert digest(data) == files
    assert f"verdict: corrupt: {seg} offset {off}: checksum mismatch" in out, out
    assert "--truncate-corrupt" in out
    assert str(seg) in err and f"offset {off}" in err, err

    rc, doc, err = check_json(data)
    assert rc == 1
    assert digest(data) == files
    assert doc["verdict"] == "corrupt"
    assert doc["corrupt"]["file"] == str(seg) and doc["corrupt"]["offset"] == off
    assert doc["corrupt"]["truncate_corrupt_applies"] is True
    assert doc["torn_tail"] is None

    rc, log = procs.start_fails(data)
    assert rc != 0
    assert f"file={seg}" in log and f"offset={off}" in log, log
    files.pop("LOCK")  # the daemon writes its pid there
    assert {k: v for k, v in digest(data).items() if k != "LOCK"} == files


def test_a_job_beyond_the_limits_is_corrupt_for_both(procs, tmp_path):
    data = tmp_path / "data"
    d = procs.start(data, "--snapshot-interval-s", "0")
    c = d.client()
    assert c.put("/v1/jobs/wide", {"tasks": ["a", "b", "c"], "method": "uw"})[0] == 201
    d.kill()
    seg = segments(data)[0]
    off = records(seg)[0][0]
    assert check(data)[0] == 0
    rc, doc, err = check_json(data, "--max-tasks", "2")
    assert rc == 1 and doc["verdict"] == "corrupt", doc
    assert doc["corrupt"]["file"] == str(seg) and doc["corrupt"]["offset"] == off
    rc, log = procs.start_fails(data, "--max-tasks", "2")
    assert rc != 0 and f"offset={off}" in log and f"file={seg}" in log, log


def test_damaged_snapshot_without_its_journal_is_refused_by_both(procs, tmp_path):
    """A snapshot that does not check out is skipped; with the journal
    before it gone, there is nothing to recover from: both refuse, naming
    the snapshot (and --truncate-corrupt is no help)."""
    data = tmp_path / "data"
    d = procs.start(data, "--snapshot-interval-s", "0", "--journal-max-bytes", "4K")
    populate(d, n_steps=40).close()
    d.kill()
    snap = snapshots(data)[-1]
    assert segments(data)[0].name != "journal-00000000000000000001.lwj"
    flip(snap, snap.stat().st_size - 5)
    files = digest(data)
    rc, doc, err = check_json(data)
    assert rc == 1 and doc["verdict"] == "corrupt", doc
    assert doc["snapshots_skipped"][0]["file"] == str(snap)
    assert doc["corrupt"]["file"] == str(snap) and doc["corrupt"]["offset"] == 0
    assert doc["corrupt"]["truncate_corrupt_applies"] is False
    assert doc["jobs"] == []
    assert digest(data) == files
    rc, out, err = check(data)
    assert rc == 1 and "--truncate-corrupt does not apply" in out, out
    rc, log = procs.start_fails(data)
    assert rc != 0 and f"file={snap}" in log and "event=snapshot_invalid" in log, log


# ---- a running daemon ----

def test_running_daemons_directory_is_checked_and_noted(procs, tmp_path):
    data = tmp_path / "data"
    d = procs.start(data)
    c = populate(d)
    before = served(c, ["a", "b"])
    rc, out, err = check(data)
    assert rc == 0, err
    assert (f"in use by a running daemon (pid {d.proc.pid} from LOCK): "
            "the newest bytes may still be changing") in out, out
    assert "verdict: ok" in out  # --fsync always: every answer's record is written
    rc, doc, err = check_json(data)
    assert rc == 0, err
    assert doc["in_use"]["pid"] == str(d.proc.pid)
    assert checked(doc) == before
    # the daemon still holds its lock and keeps working
    assert d.rc is None
    st, doc = c.post("/v1/jobs/a/reports?wait_ms=0", report("a", 1, 6, 2))
    assert st == 200, doc
    assert doc["step"] == 6
    assert served(c, ["a"])["a"]["decided"]["last"] == 6
    assert procs.start_fails(data)[0] != 0  # a second daemon is still refused


def test_checking_a_daemon_under_load_changes_nothing_for_it(procs, tmp_path):
    """Checks while reports stream in and snapshots rotate the segments:
    each one recovers (a record being appended may show as a torn tail),
    and the daemon neither notices nor stops."""
    data = tmp_path / "data"
    d = procs.start(data, "--journal-max-bytes", "16K", "--snapshot-interval-s", "0")
    c = d.client()
    assert c.put("/v1/jobs/l", {"tasks": ["a", "b"], "method": "uw", "world_size": 2})[0] == 201
    stop = threading.Event()
    t = threading.Thread(target=_load, args=(d, stop, "l"))
    t.start()
    try:
        for _ in range(8):
            rc, doc, err = check_json(data)
            assert rc == 0, (err, doc)
            assert doc["verdict"] in ("ok", "torn tail"), doc
            assert doc["in_use"]["pid"] == str(d.proc.pid)
            assert [j["id"] for j in doc["jobs"]] == ["l"]
    finally:
        stop.set()
        t.join(timeout=30)
    assert d.rc is None
    last = served(c, ["l"])["l"]["decided"]["last"]
    assert last is not None and last > 0
    assert d.term() == 0
    rc, doc, err = check_json(data)
    assert rc == 0 and doc["verdict"] == "ok" and doc["in_use"] is None, doc
    assert doc["jobs"][0]["decided"]["last"] == last


# ---- usage ----

def test_usage_errors_exit_2(tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    d = tmp_path / "d"
    d.mkdir()
    cases = [[], [str(tmp_path / "missing")], [str(a_file)], ["--bogus", str(d)],
             [str(d), str(d)], ["--max-tasks", "0", str(d)], ["--max-tasks"]]
    for args in cases:
        out = subprocess.run([str(TOOL), "check", *args], capture_output=True, text=True,
                             timeout=CHECK_TIMEOUT_S)
        assert out.returncode == 2, (args, out)
        assert out.stdout == "", args
        assert out.stderr.startswith("lossweight check: "), (args, out.stderr)
    out = subprocess.run([str(TOOL), "check", str(d)], capture_output=True, text=True,
                         timeout=CHECK_TIMEOUT_S)
    assert out.returncode == 0 and "verdict: ok" in out.stdout


def test_help_lists_check():
    out = subprocess.run([str(TOOL), "--help"], capture_output=True, text=True,
                         timeout=CHECK_TIMEOUT_S)
    assert out.returncode == 0
    assert "lossweight check [--json]" in out.stdout
