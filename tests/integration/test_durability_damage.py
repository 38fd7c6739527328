"""Damaged data directories, built by hand (Redis tests/integration/aof*.tcl
style): a torn last record at every byte offset, garbage after the end,
corruption in the middle (refused, then --truncate-corrupt), a valid record
that does not apply, a damaged snapshot, and a disk that fills up
(RLIMIT_FSIZE, and a small tmpfs where mounting one is allowed)."""

import os
import resource
import shutil
import struct
import subprocess

import pytest

from durability_util import (FILE_HDR, REC_REPORT, flip, frame, records, report, segments,
                             snapshot_of, snapshots)


def build_journal(procs, data, n_reports=8):
    """A data directory whose journal holds a job and n_reports reports
    (world_size 2, barrier), ended by kill -9 (no final snapshot).
    Returns the acknowledged bodies in order."""
    d = procs.start(data, "--snapshot-interval-s", "0")
    c = d.client()
    assert c.put("/v1/jobs/j", {"tasks": ["a", "b"], "method": "uw", "world_size": 2})[0] == 201
    bodies = []
    for i in range(n_reports):
        b = report("j", i % 2, i // 2, 2)
        st, doc = c.post("/v1/jobs/j/reports?wait_ms=0", b)
        assert st in (200, 202), doc
        bodies.append(b)
    d.kill()
    return bodies


def state_after(procs, data, *flags):
    d = procs.start(data, *flags)
    s = snapshot_of(d.client(), ["j"])
    return d, s


def test_torn_last_record_is_dropped_at_every_offset(procs, tmp_path):
    base = tmp_path / "base"
    build_journal(procs, base)
    seg = segments(base)[0]
    recs = records(seg)
    assert [t for _, _, t in recs] == [1] + [REC_REPORT] * 8
    off, length, _ = recs[-1]
    whole = seg.read_bytes()
    assert len(whole) == off + length
    # the expected state: the journal without its last record
    ref = tmp_path / "ref"
    shutil.copytree(base, ref)
    os.truncate(segments(ref)[0], off)
    d, expect = state_after(procs, ref)
    assert d.events("torn_tail_dropped") == []
    d.kill()
    for cut in range(off + 1, off + length):
        data = tmp_path / f"cut{cut}"
        shutil.copytree(base, data)
        os.truncate(segments(data)[0], cut)
        d, got = state_after(procs, data)
        assert got == expect, cut
        torn = d.events("torn_tail_dropped")
        assert len(torn) == 1 and torn[0]["offset"] == str(off), (cut, d.log())
        assert torn[0]["bytes"] == str(cut - off)
        d.kill()
        assert segments(data)[0].stat().st_size == off
        shutil.rmtree(data)


@pytest.mark.parametrize("tail", [b"\0" * 4096, b"\xff" * 7, b"garbage that is not a record"],
                         ids=["zeros", "ff", "text"])
def test_junk_after_the_last_record_is_dropped(procs, tmp_path, tail):
    data = tmp_path / "data"
    build_journal(procs, data)
    seg = segments(data)[0]
    size = seg.stat().st_size
    d, before = state_after(procs, data)
    d.kill()
    with open(seg, "ab") as f:
        f.write(tail)
    d, after = state_after(procs, data)
    assert after == before
    assert d.events("torn_tail_dropped")[0]["bytes"] == str(len(tail))
    assert seg.stat().st_size == size


@pytest.mark.parametrize("where", ["payload", "length", "crc"])
def test_corruption_in_the_middle_refuses_then_truncate_flag(procs, tmp_path, where):
    data = tmp_path / "data"
    build_journal(procs, data)
    seg = segments(data)[0]
    recs = records(seg)
    off, length, _ = recs[4]
    flip(seg, {"payload": off + length - 3, "length": off + 5, "crc": off}[where])
    size = seg.stat().st_size
    rc, log = procs.start_fails(data)
    assert rc != 0
    assert seg.name in log and f"offset={off}" in log and f"offset {off}" in log, log
    assert "--truncate-corrupt drops" in log and "cannot help" not in log, log
    assert seg.stat().st_size == size  # nothing was changed
    # the operator chooses to cut there
    ref = tmp_path / "ref"
    d = procs.start(data, "--truncate-corrupt")
    got = snapshot_of(d.client(), ["j"])
    assert d.events("journal_truncated")[0]["offset"] == str(off)
    d.kill()
    assert seg.stat().st_size == off
    copy = seg.with_name(f"{seg.name}.corrupt-{off}")
    assert copy.stat().st_size == size - off
    # the same state as a journal that simply ended before that record
    shutil.rmtree(data)
    build_journal(procs, ref)
    os.truncate(segments(ref)[0], off)
    d, expect = state_after(procs, ref)
    assert got == expect


def test_a_valid_record_that_does_not_apply_refuses(procs, tmp_path):
    """A record with a good checksum for a job that does not exist is not a
    torn write: refuse, even at the very end."""
    data = tmp_path / "data"
    build_journal(procs, data)
    seg = segments(data)[0]
    size = seg.stat().st_size
    payload = bytes([5]) + b"ghost" + struct.pack("<qqqdBBH", 0, 0, -1, 1.0, 0, 1, 2) + \
        struct.pack("<2d", 1.0, 2.0)
    with open(seg, "ab") as f:
        f.write(frame(REC_REPORT, payload))
    rc, log = procs.start_fails(data)
    assert rc != 0 and f"offset={size}" in log and "ghost" in log, log
    d = procs.start(data, "--truncate-corrupt")
    assert d.client().get("/v1/jobs/j")[0] == 200
    assert seg.stat().st_size == size


def test_crafted_headers_after_a_bad_record_cannot_stall_start_up(procs, tmp_path):
    """A bad record at the end of the last segment is a torn write only if no
    valid record follows; deciding that must not take quadratic time when
    every offset after it carries a header claiming a payload to the end of
    the file (about 3 * 10^11 bytes to checksum here). Past a bounded scan the
    daemon refuses promptly, naming the offset, instead of dropping the rest
    as a torn write."""
    data = tmp_path / "data"
    build_journal(procs, data)
    seg = segments(data)[0]
    size = seg.stat().st_size
    total = 2 << 20  # 2 MB of fake headers, every 12 bytes
    fake = bytearray()
    while len(fake) < total:
        remaining = total - len(fake) - 12
        fake += struct.pack("<IIB3x", 0, max(0, remaining), REC_REPORT)
    with open(seg, "ab") as f:
        f.write(b"\xff" * 12)  # a bad record header at offset `size`
        f.write(bytes(fake))
    before = seg.read_bytes()
    rc, log = procs.start_fails(data, timeout=30)
    assert rc != 0 and f"offset={size}" in log and "could be checked" in log, log
    assert seg.read_bytes() == before  # not truncated as a torn write
    d = procs.start(data, "--truncate-corrupt")  # the operator's choice
    assert d.client().get("/v1/jobs/j")[0] == 200
    assert seg.stat().st_size == size


def test_damaged_snapshot_without_the_journal_before_it_refuses(procs, tmp_path):
    data = tmp_path / "data"
    d = procs.start(data)
    c = d.client()
    assert c.put("/v1/jobs/j", {"tasks": ["a", "b"], "method": "uw"})[0] == 201
    assert c.post("/v1/jobs/j/reports", report("j", 0, 0, 2))[0] == 200
    assert d.term() == 0
    snap = snapshots(data)[-1]
    assert [s.name for s in segments(data)] == [snap.name.replace("snapshot", "journal")
                                               .replace(".lws", ".lwj")]
    # an unfinished snapshot beside it is ignored and removed
    tmp = data / (snap.name.replace("2.lws", "3.lws") + ".tmp")
    tmp.write_bytes(b"half a snapshot")
    flip(snap, snap.stat().st_size // 2)
    rc, log = procs.start_fails(data)
    assert rc != 0 and "snapshot_invalid" in log and snap.name in log, log
    # nothing to cut: the advice says so instead of pointing to --truncate-corrupt
    assert "--truncate-corrupt cannot help" in log and "--truncate-corrupt drops" not in log, log
    flip(snap, snap.stat().st_size // 2)  # repaired
    d = procs.start(data)
    assert d.client().get("/v1/jobs/j/steps/0")[0] == 200
    assert not tmp.exists()


def fsize_limit(n):
    def set_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
    return set_limit


def fill_until_refused(c, job, limit_reports=5000):
    """Post reports until one is refused 503; (acknowledged bodies, refusal)."""
    acked = []
    for step in range(limit_reports):
        b = report(job, 0, step, 2)
        st, doc = c.post(f"/v1/jobs/{job}/reports", b)
        if st == 503:
            return acked, doc
        assert st == 200, doc
        acked.append(b)
    raise AssertionError("never refused")


def check_whole_records(seg):
    recs = records(seg)
    end = recs[-1][0] + recs[-1][1] if recs else FILE_HDR
    assert end == seg.stat().st_size, (end, seg.stat().st_size)


def test_file_size_limit_answers_503_and_keeps_the_journal_whole(procs, tmp_path):
    """RLIMIT_FSIZE (ulimit -f): the write that crosses it fails with EFBIG
    (SIGXFSZ is ignored); the request is refused 503 with nothing changed;
    the file is cut back to whole records; reads keep working; a restart
    without the limit has exactly what was acknowledged."""
    data = tmp_path / "data"
    limit = 6000
    d = procs.start(data, "--snapshot-interval-s", "0", "--journal-max-bytes", "0",
                    preexec_fn=fsize_limit(limit))
    c = d.client()
    assert c.put("/v1/jobs/j", {"tasks": ["a", "b"], "method": "uw"})[0] == 201
    acked, refusal = fill_until_refused(c, "j")
    assert refusal["error"]["code"] == "unavailable"
    assert "File too large" in refusal["error"]["message"], refusal
    seg = segments(data)[0]
    assert seg.stat().st_size <= limit
    check_whole_records(seg)
    st, doc = c.get("/v1/jobs/j")
    assert st == 200 and doc["status"]["last_decided"] == len(acked) - 1
    # refused again, consistently, and nothing moves
    assert c.post("/v1/jobs/j/reports", report("j", 0, len(acked), 2))[0] == 503
    assert c.get("/v1/jobs/j")[1]["status"]["last_decided"] == len(acked) - 1
    assert d.events("journal_write_failed")
    d.kill()
    d2 = procs.start(data)
    c2 = d2.client()
    assert c2.get("/v1/jobs/j")[1]["status"]["last_decided"] == len(acked) - 1
    assert d2.events("torn_tail_dropped") == []
    # and it goes on where it stopped
    assert c2.post("/v1/jobs/j/reports", report("j", 0, len(acked), 2))[0] == 200


def test_full_tmpfs_answers_503_and_recovers(procs, tmp_path):
    """A real ENOSPC: a 128 KiB tmpfs (skipped where mounting is not
    allowed). The final snapshot at SIGTERM fails too; nothing is lost."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, timeout=10)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + r.stderr.decode().strip())
    try:
        data = mnt / "data"
        d = procs.start(data, "--snapshot-interval-s", "0")
        c = d.client()
        spec = {"tasks": ["t%d" % i for i in range(16)], "method": "ew"}
        assert c.put("/v1/jobs/j", spec)[0] == 201
        acked = []
        for step in range(100000):
            b = {"rank": 0, "step": step, "losses": [1.0 + step % 7] * 16,
                 "grad_norms": [0.5] * 16}
            st, doc = c.post("/v1/jobs/j/reports", b)
            if st == 503:
                break
            assert st == 200, doc
            acked.append(step)
        assert "No space left on device" in doc["error"]["message"], doc
        check_whole_records(segments(data)[0])
        assert d.term() == 0  # the final snapshot fails: logged, not fatal
        assert d.events("snapshot_failed")
        d2 = procs.start(data)
        c2 = d2.client()
        assert c2.get("/v1/jobs/j")[1]["status"]["last_decided"] == acked[-1]
        assert c2.post("/v1/jobs/j/reports", {"rank": 0, "step": acked[-1] + 1,
                                              "losses": [1.0] * 16})[0] == 503
        d2.kill()
    finally:
        procs.stop_all()
        subprocess.run(["umount", str(mnt)], capture_output=True, timeout=10)


def test_failed_snapshots_leave_segments_that_replay_in_order(procs, tmp_path):
    """Snapshots that cannot be written (here: their temporary name is taken
    by a directory) leave the journal uncut but segmented: every segment
    replays in order; damage at the end of an earlier segment, or a missing
    first segment, refuses to start."""
    data = tmp_path / "data"
    d = procs.start(data, "--journal-max-bytes", "1K", "--snapshot-interval-s", "0")
    for n in range(2, 10):
        (data / ("snapshot-%020d.lws.tmp" % n)).mkdir()
    c = d.client()
    assert c.put("/v1/jobs/j", {"tasks": ["a", "b"], "method": "uw"})[0] == 201
    for step in range(30):
        assert c.post("/v1/jobs/j/reports", report("j", 0, step, 2))[0] == 200
        if len(segments(data)) >= 2 and step >= 20:
            break
    assert d.events("snapshot_failed"), d.log()
    segs = segments(data)
    assert len(segs) >= 2 and snapshots(data) == []
    before = snapshot_of(c, ["j"])
    d.kill()
    for n in range(2, 10):
        (data / ("snapshot-%020d.lws.tmp" % n)).rmdir()
    saved = tmp_path / "saved"
    shutil.copytree(data, saved)
    d2, after = state_after(procs, data, "--snapshot-interval-s", "0")
    assert after == before
    assert d2.events("recovered")[0]["segments"] == str(len(segs))
    d2.kill()
    # the last record of the first segment is damaged: not a torn tail
    shutil.rmtree(data)
    shutil.copytree(saved, data)
    first = segments(data)[0]
    off, length, _ = records(first)[-1]
    flip(first, off + length - 1)
    rc, log = procs.start_fails(data)
    assert rc != 0 and first.name in log and f"offset={off}" in log, log
    # the first segment is gone and no snapshot covers it
    first.unlink()
    rc, log = procs.start_fails(data)
    assert rc != 0 and "no snapshot covers" in log, log
