"""Records with good checksums that no running daemon could have written
(what tests/fuzz/fuzz_journal.c found recovery accepting): each must be
refused as corruption naming the file and offset, never replayed into a job
that then cannot be snapshotted, restarted or answered consistently."""

import math
import struct

import pytest

from durability_util import (REC_REPORT, REC_STEP_DECIDED, frame, report, segments,
                             snapshots, uw_pair_daemon)

REC_SNAP_JOB = 16
HAS_LOSSES, HAS_GRAD_NORMS, HAS_GRAM = 1, 2, 4


def journal_with_open_step(procs, data):
    """uw_pair_daemon's journal, ended by kill -9."""
    uw_pair_daemon(procs, data).kill()


def report_record(rank, step, parts, numbers, epoch=-1, samples=1.0, has_samples=0, tasks=2):
    payload = bytes([1]) + b"j" + struct.pack("<qqqdBBH", rank, step, epoch, samples,
                                              has_samples, parts, tasks)
    return frame(REC_REPORT, payload + struct.pack(f"<{len(numbers)}d", *numbers))


FORGED = {
    "nan_loss": report_record(1, 3, HAS_LOSSES | HAS_GRAD_NORMS, [1.0, math.nan, 1.0, 1.0]),
    "zero_samples": report_record(1, 3, HAS_LOSSES | HAS_GRAD_NORMS, [1.0, 2.0, 1.0, 1.0],
                                  samples=0.0, has_samples=1),
    "samples_without_flag": report_record(1, 3, HAS_LOSSES | HAS_GRAD_NORMS,
                                          [1.0, 2.0, 1.0, 1.0], samples=2.0),
    "unknown_part": report_record(1, 3, HAS_LOSSES | HAS_GRAD_NORMS | 16, [1.0, 2.0, 1.0, 1.0]),
    "negative_step": report_record(1, -1, HAS_LOSSES, [1.0, 2.0]),
    # lw_job_check refuses it: an asymmetric Gram
    "asymmetric_gram": report_record(1, 3, HAS_LOSSES | HAS_GRAD_NORMS | HAS_GRAM,
                                     [1.0, 2.0, 1.0, 1.0, 1.0, 0.5, -0.5, 1.0]),
    # step 3's first report carries losses and grad_norms: one of another shape
    "other_shape": report_record(1, 3, HAS_LOSSES, [1.0, 2.0]),
    # world_size 2 means min_ranks 2: a timeout never decides from one rank
    "decided_below_min_ranks": frame(REC_STEP_DECIDED,
                                     bytes([1]) + b"j" + struct.pack("<qIB", 3, 2, 1)),
}


@pytest.mark.parametrize("kind", sorted(FORGED))
def test_a_record_no_daemon_writes_refuses(procs, tmp_path, kind):
    data = tmp_path / "data"
    journal_with_open_step(procs, data)
    seg = segments(data)[0]
    size = seg.stat().st_size
    with open(seg, "ab") as f:
        f.write(FORGED[kind])
    rc, log = procs.start_fails(data)
    assert rc != 0 and "journal_corrupt" in log and f"offset={size}" in log, log
    assert "a record that does not apply" in log, log
    # what came before it is intact: --truncate-corrupt starts with it
    d = procs.start(data, "--truncate-corrupt")
    c = d.client()
    st, doc = c.get("/v1/jobs/j")
    assert st == 200, doc
    assert c.get("/v1/jobs/j/steps/2")[0] == 200
    assert seg.stat().st_size == size
    # and it survives a clean restart
    assert d.term() == 0
    d = procs.start(data)
    assert d.client().get("/v1/jobs/j/steps/2")[0] == 200


def snap_job_ranks_offset(payload, world):
    """Offset of the per-rank positions in a REC_SNAP_JOB payload."""
    off = 1 + payload[0]
    (doclen,) = struct.unpack_from("<I", payload, off)
    off += 4 + doclen
    (nh,) = struct.unpack_from("<Q", payload, off)
    off += 8
    for _ in range(nh):
        off += 8 + 8 + 4 + 4
        hp = payload[off]
        off += 1 + ((world + 7) // 8 if hp else 0)
        (n,) = struct.unpack_from("<I", payload, off)
        off += 4 + 8 * n
    return off


def forge_snapshot(path, edit):
    """Apply edit(payload) -> payload to the snapshot's single job entry and
    frame it again with a good checksum."""
    b = path.read_bytes()
    off = 16
    n, t = struct.unpack_from("<IB", b, off + 4)
    assert t == REC_SNAP_JOB
    payload = bytearray(b[off + 12:off + 12 + n])
    payload = edit(payload)
    path.write_bytes(b[:off] + frame(REC_SNAP_JOB, bytes(payload)) + b[off + 12 + n:])


def snapshot_dir(procs, data):
    """uw_pair_daemon's state as the snapshot of a clean shutdown."""
    assert uw_pair_daemon(procs, data).term() == 0
    return snapshots(data)[-1]


def lower_rank_position(payload):
    # rank 0 reported step 3 (open): a position of step 2 would let it
    # report step 3 again, over the report the open step holds
    off = snap_job_ranks_offset(payload, 2)
    (last,) = struct.unpack_from("<q", payload, off)
    assert last == 3
    struct.pack_into("<q", payload, off, 2)
    return payload


def bad_history_epoch(payload):
    off = 1 + payload[0]
    (doclen,) = struct.unpack_from("<I", payload, off)
    off += 4 + doclen + 8  # the number of entries
    struct.pack_into("<q", payload, off + 8, -5)  # the first entry's epoch
    return payload


@pytest.mark.parametrize("edit", [lower_rank_position, bad_history_epoch],
                         ids=["rank_position", "history_epoch"])
def test_a_snapshot_entry_no_daemon_writes_refuses(procs, tmp_path, edit):
    data = tmp_path / "data"
    snap = snapshot_dir(procs, data)
    forge_snapshot(snap, edit)
    rc, log = procs.start_fails(data)
    assert rc != 0 and "a snapshot entry that does not load" in log and snap.name in log, log


def test_a_state_document_mixing_shapes_in_a_step_is_refused(procs, tmp_path):
    """PUT .../state checks an open step's reports like POST .../reports
    does (same inputs and epoch): recovery refuses such a step, so the live
    path must never journal one."""
    d = procs.start(tmp_path / "data")
    c = d.client()
    assert c.put("/v1/jobs/j", {"tasks": ["a", "b"], "method": "uw", "world_size": 2})[0] == 201
    assert c.post("/v1/jobs/j/reports?wait_ms=0", report("j", 0, 0, 2))[0] == 202
    st, doc = c.get("/v1/jobs/j/state")
    assert st == 200, doc
    other = {"rank": 1, "step": 0, "losses": [1.0, 2.0]}  # no grad_norms
    doc["position"]["open_steps"][0]["reports"].append(other)
    st, err = c.put("/v1/jobs/j/state", doc)
    assert st == 400 and "same inputs and epoch" in err["error"]["message"], err
    assert d.term() == 0
    d = procs.start(tmp_path / "data")
    assert d.client().get("/v1/jobs/j")[0] == 200
