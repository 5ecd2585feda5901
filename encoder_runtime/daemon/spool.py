"""The spool: a folder of sealed, CRC-checked segments in the container format.

Layout under ``ROOT/<stream_id>/``::

    active.scd.open                               the segment being written (at most one)
    ready/<segno:012d>-<first:020d>-<last:020d>.scd   sealed segments, oldest first
    rejected/                                     segments that failed verification
    state.json                                    floors for seq/segno (written on ack only)

A segment is ``preamble + HEADER + (FRAME|GAP)* + END``; it is the upload body and the
receiver's unit of acknowledgement. Records are written with one ``write()`` each (so a
``kill -9`` loses nothing already appended) and fsynced at seal (``fsync="seal"``), on every
record (``"always"``) or never. State is derived from the data: on start the active segment is
scanned, truncated at the first bad record and sealed; ``next_seq`` is one past the highest
sequence number named by any segment (or the floor left by the last acknowledged one, so a
drained spool never reuses a sequence number).

When the spool would exceed ``max_bytes`` or leave less than ``min_free_bytes`` on the disk:
``drop_oldest`` deletes the oldest sealed segment that is not being uploaded and writes GAP
records (reason SPOOL_FULL) for its frames, carrying its own GAP records forward;
``drop_newest`` discards the incoming frame with a GAP; ``block`` waits for acknowledgements.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import threading
import time
from pathlib import Path

from ..container import (PREAMBLE, GapReason, Record, RecordType, gap_record, header_record,
                         preamble, scan_records)

log = logging.getLogger("sensorcodec.spool")
SEGMENT_RE = re.compile(r"^(\d{12})-(\d{20})-(\d{20})\.scd$")
ACTIVE_NAME = "active.scd.open"


@dataclasses.dataclass(frozen=True)
class Segment:
    """A sealed segment on disk."""

    path: Path
    segno: int
    first: int
    last: int
    size: int

    def read(self) -> bytes:
        """The whole segment (preamble included)."""
        return self.path.read_bytes()


@dataclasses.dataclass
class SegmentInfo:
    """What a scan of a segment found."""

    header: dict | None
    frames: int
    gaps: list[tuple[int, int, int]]       # (first, last, reason)
    frame_seqs: list[int]
    first: int
    last: int
    newest_mono_ns: int
    records: list[Record]


def inspect_segment(data: bytes, *, strict: bool = True) -> SegmentInfo:
    """Parse a segment's bytes; with ``strict`` a bad record raises ContainerError."""
    from ..container import ContainerError, check_preamble

    check_preamble(data, "segment")
    res = scan_records(data, offset=PREAMBLE.size)
    if strict and res.errors:
        raise ContainerError(f"segment: {res.errors[0]}")
    header, frames, gaps, seqs, newest = None, 0, [], [], 0
    lo, hi = None, None
    for rec in res.records:
        if rec.type == RecordType.HEADER and header is None:
            header = rec.header_json()
        elif rec.type == RecordType.FRAME:
            frames += 1
            seqs.append(rec.seq)
            lo = rec.seq if lo is None else min(lo, rec.seq)
            hi = rec.seq if hi is None else max(hi, rec.seq)
            newest = max(newest, rec.t_mono_ns)
        elif rec.type == RecordType.GAP:
            a, b, reason = rec.gap()
            gaps.append((a, b, int(reason)))
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
    return SegmentInfo(header, frames, gaps, seqs, lo if lo is not None else -1,
                       hi if hi is not None else -1, newest, res.records)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def runs(seqs: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs of a list of integers: [1,2,3,7,8] -> [(1,3),(7,8)]."""
    out: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


class Spool:
    """Durable, bounded segment store for one stream; thread-safe."""

    def __init__(self, root: str | Path, stream_id: str, *, max_bytes: int = 512 * 1024**2,
                 min_free_bytes: int = 0, when_full: str = "drop_oldest",
                 segment_max_bytes: int = 1024**2, segment_max_age: float = 1.0,
                 fsync: str = "seal", metrics=None) -> None:
        self.dir = Path(root) / stream_id
        self.ready_dir = self.dir / "ready"
        self.rejected_dir = self.dir / "rejected"
        self.stream_id = stream_id
        self.max_bytes, self.min_free_bytes, self.when_full = max_bytes, min_free_bytes, when_full
        self.segment_max_bytes, self.segment_max_age, self.fsync = segment_max_bytes, segment_max_age, fsync
        self.metrics = metrics
        self._lock = threading.Condition()
        self._ready: dict[int, Segment] = {}
        self._in_flight: set[int] = set()
        self._header: dict | None = None
        self._active = None           # raw file object
        self._active_size = 0
        self._active_opened = 0.0
        self._active_first: int | None = None
        self._active_last: int | None = None
        self._active_records = 0
        self._closing = False
        self.next_seq = 0
        self.next_segno = 0
        self.recovery: dict = {}
        self.on_seal = None           # callback (the uploader's wake-up)
        self._ready_bytes = 0
        self._free_cache = 0
        self._free_checked = -1e9
        self._free_base = 0

    # -- startup ---------------------------------------------------------------------------
    def open(self, header: dict) -> dict:
        """Create folders, recover after a crash, and remember the stream HEADER; returns a report."""
        self._header = header
        for d in (self.dir, self.ready_dir, self.rejected_dir):
            d.mkdir(parents=True, exist_ok=True)
        state = self._read_state()
        report = {"truncated_bytes": 0, "recovered_records": 0, "sealed_active": False, "rejected": []}
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink()
        for p in sorted(self.ready_dir.iterdir()):
            m = SEGMENT_RE.match(p.name)
            if not m:
                report["rejected"].append(p.name)
                p.rename(self.rejected_dir / p.name)
                continue
            seg = Segment(p, int(m.group(1)), int(m.group(2)), int(m.group(3)), p.stat().st_size)
            self._ready[seg.segno] = seg
            self._ready_bytes += seg.size
        self.next_segno = max([state.get("segno_floor", 0)] + [s + 1 for s in self._ready])
        self.next_seq = max([state.get("seq_floor", 0)] + [s.last + 1 for s in self._ready.values()])
        active = self.dir / ACTIVE_NAME
        if active.exists():
            data = active.read_bytes()
            try:
                info = inspect_segment(data, strict=False)
                res = scan_records(data, offset=PREAMBLE.size)
                good = res.good_bytes
            except ValueError:  # bad preamble: nothing usable
                info, good = None, 0
            report["truncated_bytes"] = len(data) - good
            if info is not None and (info.frames or info.gaps) and info.header is not None:
                n = sum(1 for r in info.records if r.type in (RecordType.FRAME, RecordType.GAP))
                report["recovered_records"] = n
                with open(active, "r+b", buffering=0) as f:
                    f.truncate(good)
                    f.seek(good)
                    self._active = f
                    self._active_size = good
                    self._active_first, self._active_last = info.first, info.last
                    self._active_records = n
                    with self._lock:
                        self._seal_locked()
                report["sealed_active"] = True
                self.next_seq = max(self.next_seq, info.last + 1)
            else:
                active.unlink()
            if report["truncated_bytes"]:
                log.warning("spool recovery: truncated %d bytes of %s at the first bad record",
                            report["truncated_bytes"], active)
        self.recovery = report
        self._update_gauges()
        log.info("spool open: stream=%s segments=%d bytes=%d next_seq=%d", self.stream_id,
                 len(self._ready), self.total_bytes(), self.next_seq)
        return report

    def _read_state(self) -> dict:
        try:
            return json.loads((self.dir / "state.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _write_state(self) -> None:
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps({"seq_floor": self.next_seq, "segno_floor": self.next_segno}))
        if self.fsync != "never":
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, self.dir / "state.json")

    # -- accounting ------------------------------------------------------------------------
    def total_bytes(self) -> int:
        """Bytes in sealed and active segments."""
        return self._ready_bytes + self._active_size

    def _free_bytes(self) -> int:
        """Free disk space, refreshed at most every 0.5 s (minus what we wrote since)."""
        now = time.monotonic()
        if now - self._free_checked > 0.5:
            st = os.statvfs(self.dir)
            self._free_cache = st.f_bavail * st.f_frsize
            self._free_checked = now
            self._free_base = self.total_bytes()
        return self._free_cache - max(0, self.total_bytes() - self._free_base)

    def _full(self, incoming: int) -> bool:
        if self.total_bytes() + incoming > self.max_bytes:
            return True
        return bool(self.min_free_bytes) and self._free_bytes() - incoming < self.min_free_bytes

    def _update_gauges(self) -> None:
        if self.metrics:
            self.metrics.spool_bytes.set(self.total_bytes())
            self.metrics.spool_segments.set(len(self._ready))

    # -- writing ---------------------------------------------------------------------------
    def append_frame(self, payload: bytes, t_mono_ns: int, t_wall_ns: int) -> int | None:
        """Spool one encoded frame; returns its seq, or None if it was dropped (GAP written)."""
        with self._lock:
            seq = self.next_seq
            rec = Record(RecordType.FRAME, seq, payload, t_mono_ns, t_wall_ns)
            if not self._make_room(rec.size):
                self.next_seq += 1
                self._write_locked(gap_record(seq, seq, seq, GapReason.SPOOL_FULL, t_mono_ns, t_wall_ns))
                self._count_gap(GapReason.SPOOL_FULL)
                if self.metrics:
                    self.metrics.frames_dropped.inc(1, "spool", "spool_full")
                return None
            self.next_seq += 1
            self._write_locked(rec)
            return seq

    def append_gap(self, lost: int, reason: GapReason, t_mono_ns: int = 0, t_wall_ns: int = 0) -> int:
        """Account for ``lost`` frames the pipeline never had; returns the first lost seq."""
        with self._lock:
            first = self.next_seq
            self.next_seq += lost
            self._write_locked(gap_record(first, first, first + lost - 1, reason, t_mono_ns, t_wall_ns))
            self._count_gap(reason)
            return first

    def _count_gap(self, reason: GapReason) -> None:
        if self.metrics:
            self.metrics.gaps.inc(1, reason.name.lower())

    def _make_room(self, incoming: int) -> bool:
        """Apply ``when_full``; returns False if the incoming frame must be dropped."""
        while self._full(incoming) and not self._closing:
            if self.when_full == "drop_newest":
                return False
            if self.when_full == "block":
                self._lock.wait(0.5)
                continue
            if not self._drop_oldest_locked():
                if self._active_records:
                    self._seal_locked()
                    if self._drop_oldest_locked():
                        continue
                return False
        return True

    def _drop_oldest_locked(self) -> bool:
        candidates = [s for n, s in sorted(self._ready.items()) if n not in self._in_flight]
        if not candidates:
            return False
        seg = candidates[0]
        try:
            info = inspect_segment(seg.read(), strict=False)
        except (OSError, ValueError) as exc:
            log.error("spool: cannot read %s while evicting (%s); its seq range %d..%d becomes a gap",
                      seg.path.name, exc, seg.first, seg.last)
            info = None
        seg.path.unlink()
        del self._ready[seg.segno]
        self._ready_bytes -= seg.size
        if self.metrics:
            self.metrics.spool_dropped_bytes.inc(seg.size)
        if info is None:
            self._write_locked(gap_record(seg.first, seg.first, seg.last, GapReason.SPOOL_FULL))
            self._count_gap(GapReason.SPOOL_FULL)
        else:
            by_seq = {r.seq: r for r in info.records if r.type == RecordType.FRAME}
            for a, b in runs(info.frame_seqs):
                r = by_seq[a]
                self._write_locked(gap_record(a, a, b, GapReason.SPOOL_FULL, r.t_mono_ns, r.t_wall_ns))
                self._count_gap(GapReason.SPOOL_FULL)
                if self.metrics:
                    self.metrics.frames_dropped.inc(b - a + 1, "spool", "spool_full")
            for r in info.records:
                if r.type == RecordType.GAP:
                    self._write_locked(r)  # carry earlier gaps forward
        log.warning("spool full: evicted segment %s (seq %d..%d, %d bytes)", seg.path.name,
                    seg.first, seg.last, seg.size)
        self._update_gauges()
        return True

    def _open_active_locked(self, first_seq: int) -> None:
        path = self.dir / ACTIVE_NAME
        f = open(path, "wb", buffering=0)
        head = preamble() + header_record(self._header, seq=first_seq).encode()
        f.write(head)
        self._active = f
        self._active_size = len(head)
        self._active_opened = time.monotonic()
        self._active_first = self._active_last = None
        self._active_records = 0

    def _write_locked(self, rec: Record) -> None:
        if self._active is None:
            self._open_active_locked(rec.seq)
        data = rec.encode()
        self._active.write(data)
        if self.fsync == "always":
            os.fsync(self._active.fileno())
        self._active_size += len(data)
        lo, hi = (rec.gap()[:2] if rec.type == RecordType.GAP else (rec.seq, rec.seq))
        self._active_first = lo if self._active_first is None else min(self._active_first, lo)
        self._active_last = hi if self._active_last is None else max(self._active_last, hi)
        self._active_records += 1
        if self._active_size >= self.segment_max_bytes:
            self._seal_locked()
        elif self.metrics:
            self.metrics.spool_bytes.set(self.total_bytes())

    def _seal_locked(self) -> None:
        f = self._active
        if f is None:
            return
        end = Record(RecordType.END, self._active_last, json.dumps(
            {"segno": self.next_segno, "first": self._active_first, "last": self._active_last,
             "records": self._active_records}).encode())
        f.write(end.encode())
        if self.fsync != "never":
            os.fsync(f.fileno())
        f.close()
        segno = self.next_segno
        self.next_segno += 1
        name = f"{segno:012d}-{self._active_first:020d}-{self._active_last:020d}.scd"
        dest = self.ready_dir / name
        os.replace(self.dir / ACTIVE_NAME, dest)
        if self.fsync != "never":
            _fsync_dir(self.ready_dir)
            _fsync_dir(self.dir)
        self._ready[segno] = Segment(dest, segno, self._active_first, self._active_last,
                                     dest.stat().st_size)
        self._ready_bytes += self._ready[segno].size
        self._active = None
        self._active_size = 0
        self._active_records = 0
        self._update_gauges()
        self._lock.notify_all()
        if self.on_seal is not None:
            self.on_seal()

    def tick(self) -> None:
        """Seal the active segment if it is older than ``segment_max_age``."""
        with self._lock:
            if self._active is not None and self._active_records and \
                    time.monotonic() - self._active_opened >= self.segment_max_age:
                self._seal_locked()

    def seal(self) -> None:
        """Seal the active segment now (if it holds records)."""
        with self._lock:
            if self._active is not None and self._active_records:
                self._seal_locked()

    def close(self) -> None:
        """Seal what is open; later appends ignore the size bound (shutdown must not lose data)."""
        with self._lock:
            self._closing = True
            if self._active is not None and self._active_records:
                self._seal_locked()
            self._lock.notify_all()

    # -- uploading -------------------------------------------------------------------------
    def pending(self) -> list[Segment]:
        """Sealed segments not in flight, oldest first."""
        with self._lock:
            return [s for n, s in sorted(self._ready.items()) if n not in self._in_flight]

    def wait_pending(self, timeout: float) -> list[Segment]:
        """Like :meth:`pending` but waits up to ``timeout`` for a segment to be sealed."""
        with self._lock:
            segs = [s for n, s in sorted(self._ready.items()) if n not in self._in_flight]
            if not segs:
                self._lock.wait(timeout)
                segs = [s for n, s in sorted(self._ready.items()) if n not in self._in_flight]
            return segs

    def checkout(self, seg: Segment) -> bool:
        """Mark a segment in flight (eviction skips it); False if it is gone."""
        with self._lock:
            if seg.segno not in self._ready:
                return False
            self._in_flight.add(seg.segno)
            return True

    def release(self, seg: Segment) -> None:
        """A send failed: the segment becomes pending again."""
        with self._lock:
            self._in_flight.discard(seg.segno)
            self._lock.notify_all()

    def ack(self, seg: Segment) -> None:
        """The sink stored the segment durably: delete it."""
        with self._lock:
            self._in_flight.discard(seg.segno)
            if self._ready.pop(seg.segno, None) is None:
                return
            self._ready_bytes -= seg.size
            if not self._ready and self._active is None:
                self._write_state()  # the spool drains: keep the seq floor
            try:
                seg.path.unlink()
            except FileNotFoundError:
                pass
            self._update_gauges()
            self._lock.notify_all()

    def reject(self, seg: Segment, why: str) -> None:
        """Move a segment that fails verification to ``rejected/`` (never re-sent automatically)."""
        with self._lock:
            self._in_flight.discard(seg.segno)
            if self._ready.pop(seg.segno, None) is not None:
                self._ready_bytes -= seg.size
            try:
                seg.path.rename(self.rejected_dir / seg.path.name)
            except FileNotFoundError:
                pass
            log.error("spool: segment %s rejected: %s", seg.path.name, why)
            self._update_gauges()

    def empty(self) -> bool:
        """True when nothing is sealed, in flight or being written."""
        with self._lock:
            return not self._ready and not self._active_records
