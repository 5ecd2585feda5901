"""Spool faults of issue 13: seq restart after lost state, livelock below min-free, disk full,
corruption in the spool. Unit checks on the real Spool, then real processes on loopback with the
spool on a small tmpfs (skipped, with the reason, where mounting is not allowed).

Every end-to-end case ends with :func:`verify_stream`: each seq the encoder assigned is stored
exactly once or covered by a GAP, and every stored frame decodes.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from encoder_runtime.container import PREAMBLE, GapReason, RecordType, scan_records
from encoder_runtime.daemon.codecs import RawEncoder
from encoder_runtime.daemon.faults import (ReceiverProcess, SmallDisk, encoder_process, flip_byte,
                                           verify_stream)
from encoder_runtime.daemon.spool import SPOOL_CORRUPT, SPOOL_LOST, Spool, inspect_segment
from encoder_runtime.daemon.store import RangeSet

pytestmark = pytest.mark.timeout(150)
ENC = RawEncoder()
HEADER = ENC.stream_header("s1")
HEADER.setdefault("stream_id", "s1")


def _frame(i: int, size: int = 16) -> bytes:
    rng = np.random.default_rng(i)
    return ENC.encode_frame(rng.integers(0, 255, (size, size), dtype=np.uint8))


def _open(root: Path, **kw) -> Spool:
    kw.setdefault("segment_max_age", 100)
    sp = Spool(root, "s1", **kw)
    sp.open(HEADER)
    return sp


def _coverage(sp: Spool) -> tuple[RangeSet, dict[int, int], list[tuple[int, int, int]]]:
    """Seqs covered by the spool's sealed segments (asserting no overlap), frames by seq, gaps."""
    covered, frames, gaps = RangeSet(), {}, []
    for seg in sp.sealed():
        for r in inspect_segment(seg.read()).records:
            if r.type == RecordType.FRAME:
                assert r.seq not in covered, f"seq {r.seq} twice"
                covered.add(r.seq, r.seq)
                frames[r.seq] = len(r.payload)
            elif r.type == RecordType.GAP:
                a, b, reason = r.gap()
                assert covered.uncovered(a, b) == [(a, b)], f"GAP {a}..{b} overlaps"
                covered.add(a, b)
                gaps.append((a, b, int.from_bytes(r.payload[16:17], "little")))
    return covered, frames, gaps


# -- item 2: sequence numbers survive lost state -------------------------------------------
def test_power_loss_never_reuses_seqs(tmp_path):
    sp = _open(tmp_path)
    for i in range(5):
        sp.append_frame(_frame(i), i, i)
    sp.seal()
    for i in range(5, 8):                     # in the active segment, never fsynced ...
        sp.append_frame(_frame(i), i, i)
    (sp.dir / "active.scd.open").unlink()     # ... and lost with the power
    for seg in sp.sealed():                   # the sealed ones were acknowledged and deleted
        sp.ack(seg)
    sp2 = _open(tmp_path)
    assert sp2.next_seq > 7
    a, b = sp2.recovery["restart_gap"]
    assert a <= 5 and b == sp2.next_seq - 1
    sp2.close()
    covered, _frames, gaps = _coverage(sp2)
    assert (a, b, SPOOL_LOST) in gaps
    # A clean stop leaves no restart gap.
    sp3 = _open(tmp_path)
    assert sp3.recovery["restart_gap"] is None and sp3.next_seq == sp2.next_seq


def test_wiped_spool_is_renumbered_above_the_receiver(tmp_path):
    sp = _open(tmp_path)
    assert sp.provisional
    for i in range(6):
        sp.append_frame(_frame(i), i, i)
    sp.seal()
    sp.append_frame(_frame(6), 6, 6)          # still in the active segment
    sp.settle_numbering(100)                  # the receiver already stores 0..99
    assert not sp.provisional and sp.next_seq == 107
    sp.seal()
    covered, frames, _gaps = _coverage(sp)
    assert sorted(frames) == list(range(100, 107))
    assert all(s.first >= 100 for s in sp.sealed())
    sp.close()
    sp2 = _open(tmp_path)                     # numbering is final now, and durable
    assert not sp2.provisional and sp2.next_seq >= 107


def test_interrupted_renumbering_is_finished_on_open(tmp_path):
    sp = _open(tmp_path)
    for i in range(4):
        sp.append_frame(_frame(i), i, i)
    sp.seal()
    names = [s.path.name for s in sp.sealed()]
    # Crash right after the durable renumbering plan was written, before any segment moved.
    sp.provisional = False
    sp._reserved += 50
    sp._write_state({"offset": 50, "names": names})
    sp2 = _open(tmp_path)
    _c, frames, _g = _coverage(sp2)
    assert sorted(frames) == [50, 51, 52, 53] and sp2.next_seq >= 54 and not sp2.provisional


# -- item 6: corruption is salvaged, never hidden -------------------------------------------
def _record_offsets(data: bytes) -> list[tuple[int, int, int]]:
    res = scan_records(data, offset=PREAMBLE.size)
    out, pos = [], PREAMBLE.size
    for r in res.records:
        out.append((pos, r.type, r.seq))
        pos += r.size
    return out


def test_flipped_byte_in_sealed_segment_keeps_intact_frames(tmp_path):
    sp = _open(tmp_path)
    sp.settle_numbering(0)
    for i in range(10):
        sp.append_frame(_frame(i), i, i)
    sp.seal()
    seg = sp.sealed()[0]
    offs = [o for o in _record_offsets(seg.read()) if o[1] == RecordType.FRAME]
    flip_byte(seg.path, offs[4][0] + 40)      # inside frame seq 4
    with pytest.raises(ValueError):
        inspect_segment(seg.read(), strict=True)
    fixed = sp.salvage(seg, "test")
    info = inspect_segment(fixed.read(), strict=True)
    assert info.frame_seqs == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert [(a, b, r) for a, b, r in info.gaps] == [(4, 4, SPOOL_CORRUPT)]
    assert any(p.name.startswith(seg.path.name) for p in sp.rejected_dir.iterdir())


@pytest.mark.parametrize("bad", [3, 0])      # a middle frame, and the first one (found by the soak)
def test_corrupt_active_segment_salvages_the_tail(tmp_path, bad):
    sp = _open(tmp_path)
    for i in range(4):
        sp.append_frame(_frame(i), i, i)
    sp.seal()                                 # segment 0..3; the active segment starts at 4
    for i in range(4, 14):
        sp.append_frame(_frame(i), i, i)
    active = sp.dir / "active.scd.open"
    offs = [o for o in _record_offsets(active.read_bytes()) if o[1] == RecordType.FRAME]
    flip_byte(active, offs[bad][0] + 30)      # frame 4 + bad damaged; the rest intact
    sp2 = _open(tmp_path)
    assert sp2.recovery["salvaged_lost"] == 1 and sp2.next_seq >= 14
    sp2.close()
    covered, frames, gaps = _coverage(sp2)
    assert sorted(frames) == [i for i in range(14) if i != 4 + bad]
    assert (4 + bad, 4 + bad, SPOOL_CORRUPT) in gaps
    assert covered.ranges() == [(0, sp2.next_seq - 1)]


# -- items 4 and 5 in-process: bounded work, no exception on a full disk ----------------------
def test_disk_full_in_process(tmp_path):
    with SmallDisk(tmp_path / "disk", 256 * 1024) as disk:
        if not disk.mounted:
            pytest.skip(disk.error)
        sp = _open(disk.path, max_bytes=1 << 30, segment_max_bytes=32 * 1024)
        filler = disk.path / "filler"
        n = 400
        for i in range(n):                    # ~1.6 MB of frames into 256 KiB
            sp.append_frame(_frame(i, 64), i, i)
            if i == 10:                        # another program fills the disk too
                with open(filler, "wb") as f:
                    try:
                        f.write(os.urandom(512 * 1024))
                    except OSError:
                        pass
            if i == 200:
                assert sp.disk_errors > 0
                filler.unlink()               # room again: the pending GAPs get written
        sp.close()
        covered, frames, gaps = _coverage(sp)
        assert covered.ranges() == [(0, n - 1)]
        assert frames and gaps
        for seg in sp.sealed():               # no torn records anywhere
            inspect_segment(seg.read(), strict=True)


def test_unattainable_min_free_does_not_livelock(tmp_path):
    with SmallDisk(tmp_path / "disk", 2 * 1024 * 1024) as disk:
        if not disk.mounted:
            pytest.skip(disk.error)
        sp = _open(disk.path, max_bytes=512 * 1024**2, min_free_bytes=64 * 1024**2,
                   segment_max_bytes=64 * 1024)
        t0 = time.monotonic()
        for i in range(600):
            sp.append_frame(_frame(i, 64), i, i)
        assert time.monotonic() - t0 < 30
        sp.close()
        covered, frames, _gaps = _coverage(sp)
        assert covered.ranges() == [(0, 599)] and len(frames) > 50


# -- real processes ----------------------------------------------------------------------------
def _wait_exit(p, timeout: float, log: Path) -> int:
    try:
        return p.wait(timeout)
    except Exception:
        p.kill()
        raise AssertionError(f"encoder did not finish in {timeout}s:\n{log.read_text()[-3000:]}")


def _no_traceback(log: Path) -> None:
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]


def test_wiped_spool_continues_numbering_processes(tmp_path):
    rx = ReceiverProcess(tmp_path / "store", tmp_path / "rx.log").start()
    try:
        for run in range(2):
            p = encoder_process(tmp_path / "spool", rx.port, "s1", tmp_path / "enc.log",
                                "--source", "synthetic:32x32x3", "--max-frames", "25")
            assert _wait_exit(p, 60, tmp_path / "enc.log") == 0
            shutil.rmtree(tmp_path / "spool")      # the device loses its spool (state.json too)
        res = verify_stream(rx.store, "s1", expect_count=50)
        assert res["frames"] == 50 and res["gap_seqs"] == 0
    finally:
        rx.stop()


def test_tiny_tmpfs_spool_offline_then_online(tmp_path):
    """2 MiB tmpfs, default spool_min_free_bytes (64 MiB), receiver down, then disk full:
    bounded logging, SIGTERM honoured, no traceback, a restart on the full disk works, and
    once the receiver is up every seq is stored or a GAP."""
    with SmallDisk(tmp_path / "disk", 2 * 1024 * 1024) as disk:
        if not disk.mounted:
            pytest.skip(disk.error)
        spool, log = disk.path / "spool", tmp_path / "enc.log"
        rx = ReceiverProcess(tmp_path / "store", tmp_path / "rx.log")
        # 1. default min-free on a tiny disk, nobody listening
        p = encoder_process(spool, rx.port, "s1", log, "--source", "synthetic:128x128x3",
                            "--segment-max-bytes", "64KiB", "--shutdown-timeout", "2s")
        time.sleep(6)
        p.send_signal(signal.SIGTERM)
        assert _wait_exit(p, 15, log) == 0
        text = log.read_text()
        assert text.count("\n") < 200, f"{text.count(chr(10))} log lines in 6 s"
        # 2. no min-free and a 1 GiB cap: only the disk limits; fill it completely
        (disk.path / "filler").write_bytes(b"\0" * 100_000)
        p = encoder_process(spool, rx.port, "s1", log, "--source", "synthetic:128x128x3",
                            "--segment-max-bytes", "64KiB", "--spool-min-free-bytes", "0",
                            "--spool-max-bytes", "1GiB", "--shutdown-timeout", "2s")
        time.sleep(6)
        assert p.poll() is None, log.read_text()[-3000:]
        st = os.statvfs(disk.path)
        assert st.f_bavail * st.f_frsize < 256 * 1024     # the disk really is full
        p.send_signal(signal.SIGTERM)
        assert _wait_exit(p, 15, log) == 0
        _no_traceback(log)
        # 3. receiver up: restart on the full disk and ship everything
        rx.start()
        try:
            p = encoder_process(spool, rx.port, "s1", log, "--source", "synthetic:128x128x3",
                                "--segment-max-bytes", "64KiB", "--spool-min-free-bytes", "0",
                                "--spool-max-bytes", "1GiB", "--max-frames", "20")
            assert _wait_exit(p, 90, log) == 0
            _no_traceback(log)
            res = verify_stream(rx.store, "s1")
            assert res["frames"] > 20 and res["gap_seqs"] > 0
        finally:
            rx.stop()


def test_flipped_byte_in_spool_is_salvaged_processes(tmp_path):
    rx = ReceiverProcess(tmp_path / "store", tmp_path / "rx.log")
    log = tmp_path / "enc.log"
    p = encoder_process(tmp_path / "spool", rx.port, "s1", log, "--source", "synthetic:32x32x3",
                        "--max-frames", "30", "--segment-max-bytes", "1MiB", "--segment-max-age", "10s",
                        "--shutdown-timeout", "2s")
    time.sleep(3)
    p.send_signal(signal.SIGTERM)
    assert _wait_exit(p, 15, log) == 0
    segs = sorted((tmp_path / "spool" / "s1" / "ready").glob("*.scd"))
    assert segs, log.read_text()[-2000:]
    data = segs[0].read_bytes()
    frames = [o for o in _record_offsets(data) if o[1] == RecordType.FRAME]
    assert len(frames) >= 5
    flip_byte(segs[0], frames[2][0] + 30)
    rx.start()
    try:
        p = encoder_process(tmp_path / "spool", rx.port, "s1", log, "--source", "synthetic:32x32x3",
                            "--max-frames", "1")
        assert _wait_exit(p, 60, log) == 0
        res = verify_stream(rx.store, "s1")
        assert res["gap_seqs"] == 1 and res["frames"] == res["highest"]
        assert frames[2][2] in {a for a, _b, _r in res["gaps"]}
    finally:
        rx.stop()
