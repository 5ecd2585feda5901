"""The spool: a folder of sealed, CRC-checked segments in the container format.

Layout under ``ROOT/<stream_id>/``::

    active.scd.open                               the segment being written (at most one)
    ready/<segno:012d>-<first:020d>-<last:020d>.scd   sealed segments, oldest first
    rejected/                                     original bytes of segments that needed salvage
    state.json                                    sequence reservation and numbering state

A segment is ``preamble + HEADER + (FRAME|GAP)* + END``; it is the upload body and the
receiver's unit of acknowledgement. Records are written with one ``write()`` each (short
writes are completed, a failed write is cut off again, so no torn record stays behind) and
fsynced at seal (``fsync="seal"``), on every record (``"always"``) or never.

Sequence numbers are never reused (docs/daemon.md, "Sequence numbers"): before a record with
seq ``s`` is written, ``state.json`` durably reserves every seq below ``seq_reserved > s``
(in blocks of :data:`RESERVE_BLOCK`). After a power loss numbering resumes at the
reservation and the seqs between the data on disk and the reservation become one GAP
(reason :data:`SPOOL_LOST`; the receiver trims the part it already stored). A spool without
``state.json`` (first start, or wiped) numbers *provisionally*: nothing is uploaded until the
receiver's ``welcome`` names its ``next_seq``; provisional segments are then renumbered
upwards (:meth:`Spool.settle_numbering`), crash-safely.

Damage is salvaged, never hidden: a segment (or the active segment after a crash) with bad
records is rewritten with every intact record and a GAP (reason :data:`SPOOL_CORRUPT`) for the
seqs it named but whose records are unreadable; the original bytes go to ``rejected/``.

When the spool would exceed ``max_bytes`` or leave less than ``min_free_bytes`` on the disk
(or the disk is full): ``drop_oldest`` deletes the oldest sealed segment holding frames that is
not being uploaded and writes GAP records (reason SPOOL_FULL) for its frames, carrying its own
GAP records forward; ``drop_newest`` discards the incoming frame; ``block`` waits for
acknowledgements. Dropped frames are coalesced into one pending GAP that is written as soon as
there is room, so a full disk costs one small record per second, not one per frame.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import re
import threading
import time
from pathlib import Path

from ..container import (PREAMBLE, ContainerError, GapReason, Record, RecordType, check_preamble,
                         gap_record, header_record, preamble, scan_records)
from .durable import fsync_dir

log = logging.getLogger("sensorcodec.spool")
SEGMENT_RE = re.compile(r"^(\d{12})-(\d{20})-(\d{20})\.scd$")
ACTIVE_NAME = "active.scd.open"
STATE_NAME = "state.json"
RESERVE_BLOCK = 256           # seqs reserved per durable state write
SPOOL_CORRUPT = GapReason.SPOOL_CORRUPT   # GAP reason: records unreadable in the spool
SPOOL_LOST = GapReason.SPOOL_LOST         # GAP reason: seqs reserved before a crash/power loss, not on disk
MAX_SEQ = 2**63 - 1


def reason_name(reason: int) -> str:
    """Lower-case name of a GAP reason (``unknown`` for a value :class:`GapReason` does not name)."""
    try:
        return GapReason(reason).name.lower()
    except ValueError:
        return "unknown"


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


def inspect_segment(data: bytes, *, strict: bool = True, resync: bool = False) -> SegmentInfo:
    """Parse a segment's bytes; with ``strict`` a bad record (or a bad header) raises ContainerError.

    Without ``strict`` the unreadable parts are skipped (``resync`` also keeps the intact
    records after the first bad one); a bad preamble always raises ContainerError.
    """
    check_preamble(data, "segment")
    res = scan_records(data, offset=PREAMBLE.size, resync=resync)
    if strict and res.errors:
        raise ContainerError(f"segment: {res.errors[0]}")
    header, frames, gaps, seqs, newest = None, 0, [], [], 0
    lo, hi = None, None
    records = []
    for rec in res.records:
        if rec.type == RecordType.HEADER:
            if header is None:
                try:
                    header = rec.header_json()
                except ContainerError:
                    if strict:
                        raise
                    continue
        elif rec.type == RecordType.FRAME:
            frames += 1
            seqs.append(rec.seq)
            lo = rec.seq if lo is None else min(lo, rec.seq)
            hi = rec.seq if hi is None else max(hi, rec.seq)
            newest = max(newest, rec.t_mono_ns)
        elif rec.type == RecordType.GAP:
            try:
                a, b, reason = _gap_fields(rec)
            except ContainerError:
                if strict:
                    raise
                continue
            gaps.append((a, b, reason))
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
        records.append(rec)
    return SegmentInfo(header, frames, gaps, seqs, lo if lo is not None else -1,
                       hi if hi is not None else -1, newest, records)


def _gap_fields(rec: Record) -> tuple[int, int, int]:
    """(first, last, raw reason) of a GAP record; ContainerError if malformed or reversed."""
    import struct

    from ..container import GAP_PAYLOAD

    if len(rec.payload) < GAP_PAYLOAD.size:
        raise ContainerError(f"GAP record seq={rec.seq} has {len(rec.payload)} payload bytes")
    try:
        a, b, reason = GAP_PAYLOAD.unpack_from(rec.payload)
    except struct.error as exc:  # pragma: no cover - length checked above
        raise ContainerError(str(exc)) from None
    if b < a or b > MAX_SEQ:
        raise ContainerError(f"GAP record seq={rec.seq} names {a}..{b}")
    return a, b, reason


def parse_state(text: str | bytes) -> dict:
    """Validate the text of ``state.json``; raises ValueError naming the bad field."""
    obj = json.loads(text)
    if not isinstance(obj, dict):
        raise ValueError("state.json: expected a JSON object")
    out = {}
    for key in ("seq_reserved", "segno_floor", "prov_base", "prov_segno"):
        v = obj.get(key, 0)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_SEQ:
            raise ValueError(f"state.json: field {key!r} must be an integer in 0..2**63-1, got {v!r}")
        out[key] = v
    prov = obj.get("provisional", False)
    if not isinstance(prov, bool):
        raise ValueError(f"state.json: field 'provisional' must be true/false, got {prov!r}")
    out["provisional"] = prov
    ren = obj.get("renumber")
    if ren is not None:
        if not (isinstance(ren, dict) and isinstance(ren.get("offset"), int) and not isinstance(ren["offset"], bool)
                and 0 <= ren["offset"] <= MAX_SEQ and isinstance(ren.get("names"), list)
                and all(isinstance(n, str) and SEGMENT_RE.match(n) for n in ren["names"])):
            raise ValueError("state.json: field 'renumber' must be {offset: int >= 0, names: [segment names]}")
        out["renumber"] = {"offset": ren["offset"], "names": list(ren["names"])}
    return out


def salvage_records(data: bytes, first: int, last: int, *, offset: int = 0, header: dict | None = None,
                    exclude: list[tuple[int, int]] = ()) -> tuple[dict | None, list[Record], int]:
    """Rebuild a damaged segment's body: (header, records, lost seqs).

    Keeps every intact FRAME/GAP record whose seqs lie in ``first..last`` (shifted by
    ``offset``), and adds a :data:`SPOOL_CORRUPT` GAP for each seq in that range that no intact
    record covers and no range in ``exclude`` (seqs other segments hold) contains. Frames need
    their stream header: when the segment's HEADER is unreadable (and no ``header`` is given)
    every seq of the range becomes a GAP.
    """
    try:
        info = inspect_segment(data, strict=False, resync=True)
    except ContainerError:
        info = None
    hdr = (info.header if info is not None else None) or header
    keep: list[Record] = []
    covered: list[tuple[int, int]] = []
    t = (0, 0)
    for rec in (info.records if info is not None else []):
        if rec.type == RecordType.FRAME and hdr is not None and first <= rec.seq <= last:
            if any(a <= rec.seq <= b for a, b in covered):
                continue
            keep.append(Record(RecordType.FRAME, rec.seq + offset, rec.payload, rec.t_mono_ns,
                               rec.t_wall_ns, rec.flags))
            covered.append((rec.seq, rec.seq))
            t = (rec.t_mono_ns, rec.t_wall_ns)
        elif rec.type == RecordType.GAP:
            a, b, reason = _gap_fields(rec)
            a, b = max(a, first), min(b, last)
            for x, y in _uncovered(a, b, covered):
                keep.append(gap_record(x + offset, x + offset, y + offset, reason, rec.t_mono_ns, rec.t_wall_ns))
                covered.append((x, y))
    lost = 0
    if first >= 0 and last >= first:
        for x, y in _uncovered(first, last, covered + [tuple(e) for e in exclude]):
            keep.append(gap_record(x + offset, x + offset, y + offset, SPOOL_CORRUPT, *t))
            lost += y - x + 1
    keep.sort(key=lambda r: r.seq)
    return hdr, keep, lost


def _uncovered(a: int, b: int, covered: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Parts of ``a..b`` outside every range in ``covered``."""
    out, pos = [], a
    for x, y in sorted(covered):
        if y < pos or x > b:
            continue
        if x > pos:
            out.append((pos, x - 1))
        pos = max(pos, y + 1)
        if pos > b:
            break
    if pos <= b:
        out.append((pos, b))
    return out


def _write_all(f, data: bytes) -> None:
    """Write every byte (raw files may write short); OSError(ENOSPC) if the disk takes none."""
    view = memoryview(data)
    while view:
        n = f.write(view)
        if not n:
            raise OSError(errno.ENOSPC, "short write: no space left on device")
        view = view[n:]


def runs(seqs: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs of a list of integers: [1,2,3,7,8] -> [(1,3),(7,8)]."""
    out: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


class _RateLimitedLog:
    """Logs the first event and then at most one summary per ``period`` seconds."""

    def __init__(self, period: float = 5.0) -> None:
        self.period, self.last, self.suppressed = period, -1e9, 0

    def __call__(self, level: int, msg: str, *args) -> None:
        now = time.monotonic()
        if now - self.last >= self.period:
            extra = f" (+{self.suppressed} similar)" if self.suppressed else ""
            log.log(level, msg + extra, *args)
            self.last, self.suppressed = now, 0
        else:
            self.suppressed += 1


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
        self._no_frames: set[int] = set()     # sealed segments holding only GAPs (never evicted)
        self._header: dict | None = None
        self._active = None           # raw file object
        self._active_size = 0
        self._active_opened = 0.0
        self._active_first: int | None = None
        self._active_last: int | None = None
        self._active_records = 0
        self._active_frames = 0
        self._pending_gaps: list[list[int]] = []   # [first, last, reason, mono, wall], not yet on disk
        self._side_gaps: list[list[int]] = []      # same, for seqs outside the active flow (evictions)
        self._closing = False
        self.next_seq = 0
        self.next_segno = 0
        self._reserved = 0
        self.provisional = False
        self._prov_base = 0
        self._prov_segno = 0
        self.recovery: dict = {}
        self.on_seal = None           # callback (the uploader's wake-up)
        self._ready_bytes = 0
        self._free_cache = 0
        self._free_checked = -1e9
        self._free_base = 0
        self.disk_errors = 0
        self._log_evict = _RateLimitedLog()
        self._log_disk = _RateLimitedLog()

    # -- startup ---------------------------------------------------------------------------
    def open(self, header: dict) -> dict:
        """Create folders, recover after a crash, and remember the stream HEADER; returns a report.

        Never raises for a full disk: what cannot be written now is retried later.
        """
        self._header = header
        for d in (self.dir, self.ready_dir, self.rejected_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._clamp_min_free()
        state = self._read_state()
        report = {"truncated_bytes": 0, "recovered_records": 0, "sealed_active": False, "rejected": [],
                  "salvaged_lost": 0, "restart_gap": None, "provisional": False}
        for d in (self.dir, self.ready_dir):
            for tmp in d.glob("*.tmp"):
                tmp.unlink()
        if state is not None and "renumber" in state:   # a renumbering was cut short: finish it
            self._reserved, self.provisional = state["seq_reserved"], False
            self.next_segno = state["segno_floor"]
            self._finish_renumber(state["renumber"])
        for p in sorted(self.ready_dir.iterdir()):
            m = SEGMENT_RE.match(p.name)
            if not m:
                report["rejected"].append(p.name)
                p.rename(self.rejected_dir / p.name)
                continue
            seg = Segment(p, int(m.group(1)), int(m.group(2)), int(m.group(3)), p.stat().st_size)
            self._ready[seg.segno] = seg
            self._ready_bytes += seg.size
        self.next_segno = max([(state or {}).get("segno_floor", 0)] + [s + 1 for s in self._ready])
        data_next = max([0] + [s.last + 1 for s in self._ready.values()])
        if state is None:
            self.provisional, self._prov_segno, self._prov_base = True, self.next_segno, data_next
        else:
            self.provisional = state["provisional"]
            self._prov_segno, self._prov_base = state["prov_segno"], state["prov_base"]
            self._reserved = state["seq_reserved"]
        with self._lock:
            active_next = self._recover_active(report)
        data_next = max([data_next, active_next] + [s.last + 1 for s in self._ready.values()])
        self.next_seq = max(data_next, self._reserved)
        if self.next_seq > data_next and state is not None:
            # Seqs reserved before an unclean stop that are not on disk: lost or already acked.
            report["restart_gap"] = (data_next, self.next_seq - 1)
            self._pending_gaps.append([data_next, self.next_seq - 1, SPOOL_LOST, 0, 0])
            log.warning("spool: seqs %d..%d were reserved before an unclean stop but are not on disk; "
                        "they become a GAP (the receiver keeps what it already stored)",
                        data_next, self.next_seq - 1)
        report["provisional"] = self.provisional
        with self._lock:
            try:
                self._write_state()
            except OSError as exc:
                self._disk_error("writing state.json", exc)
            self._flush_pending_locked()
        self.recovery = report
        self._update_gauges()
        log.info("spool open: stream=%s segments=%d bytes=%d next_seq=%d%s", self.stream_id,
                 len(self._ready), self.total_bytes(), self.next_seq,
                 " (provisional numbering until the receiver names its next seq)" if self.provisional else "")
        return report

    def _clamp_min_free(self) -> None:
        if not self.min_free_bytes:
            return
        st = os.statvfs(self.dir)
        size = st.f_blocks * st.f_frsize
        if self.min_free_bytes >= size // 2:
            clamped = size // 4
            log.warning("spool: spool_min_free_bytes=%d is unattainable on %s (filesystem of %d bytes); "
                        "using %d", self.min_free_bytes, self.dir, size, clamped)
            self.min_free_bytes = clamped

    def _recover_active(self, report: dict) -> int:
        """Salvage and seal an active segment left by a crash; returns one past its highest seq."""
        active = self.dir / ACTIVE_NAME
        if not active.exists():
            return 0
        data = active.read_bytes()
        try:
            info = inspect_segment(data, strict=False, resync=True)
            clean = scan_records(data, offset=PREAMBLE.size)
        except ContainerError:  # bad preamble: nothing usable
            info, clean = None, None
        if info is None or info.first < 0:
            report["truncated_bytes"] = len(data)
            active.unlink()
            return 0
        # The HEADER's seq is the first seq this segment was opened with: damaged records before the
        # first intact one are GAPed from there (else from the end of the sealed data, at most a block back).
        heads = [r.seq for r in scan_records(data, offset=PREAMBLE.size, resync=True).records
                 if r.type == RecordType.HEADER]
        floor = max([0, info.first - 64 * RESERVE_BLOCK] + [s.last + 1 for s in self._ready.values()])
        first = min(info.first, heads[0] if heads and heads[0] <= info.first else floor)
        hdr, records, lost = salvage_records(data, first, info.last, exclude=self._exclude_ranges())
        report["truncated_bytes"] = len(data) - clean.good_bytes
        report["salvaged_lost"] = lost
        report["recovered_records"] = len(records)
        if report["truncated_bytes"]:
            log.warning("spool recovery: %s had %d damaged bytes; kept %d intact records, %d seqs become a "
                        "SPOOL_CORRUPT GAP", active, report["truncated_bytes"], len(records), lost)
        try:
            if clean.good_bytes < len(data):
                self._keep_copy(active, "active")
                body = preamble() + header_record(hdr or self._header, seq=first).encode() + \
                    b"".join(r.encode() for r in records)
                self._replace_file(active, body)
            f = open(active, "r+b", buffering=0)
            f.seek(0, os.SEEK_END)
            self._active = f
            self._active_size = f.tell()
            self._active_first, self._active_last = first, info.last
            self._active_records = len(records)
            self._active_frames = sum(1 for r in records if r.type == RecordType.FRAME)
            self._active_opened = time.monotonic()
            self._reserved = max(self._reserved, info.last + 1)
            report["sealed_active"] = self._seal_locked()
        except OSError as exc:
            self._disk_error("recovering the active segment", exc)
        return info.last + 1

    def _read_state(self) -> dict | None:
        path = self.dir / STATE_NAME
        try:
            return parse_state(path.read_bytes())
        except FileNotFoundError:
            return None
        except (ValueError, OSError) as exc:
            log.error("spool: %s is unreadable (%s); numbering becomes provisional until the receiver "
                      "names its next seq", path, exc)
            return None

    def _write_state(self, renumber: dict | None = None) -> None:
        obj = {"seq_reserved": self._reserved, "segno_floor": self.next_segno,
               "provisional": self.provisional, "prov_base": self._prov_base, "prov_segno": self._prov_segno}
        if renumber:
            obj["renumber"] = renumber
        self._replace_file(self.dir / STATE_NAME, json.dumps(obj).encode())

    def _replace_file(self, path: Path, data: bytes) -> None:
        """Atomically replace ``path`` with ``data`` (tmp + fsync + rename + dir fsync)."""
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(tmp, "wb", buffering=0) as f:
                _write_all(f, data)
                if self.fsync != "never":
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise
        if self.fsync != "never":
            fsync_dir(path.parent)

    def _keep_copy(self, path: Path, tag: str) -> None:
        """Keep the original bytes of a damaged file in ``rejected/`` (a hard link: no space)."""
        dest = self.rejected_dir / f"{path.name}.{tag}.{time.time_ns()}"
        try:
            os.link(path, dest)
        except OSError as exc:
            log.warning("spool: could not keep a copy of %s in rejected/: %s", path, exc)

    def _reserve(self, hi: int) -> None:
        """Durably reserve every seq up to ``hi`` before it is written (raises OSError)."""
        if hi >= self._reserved:
            old = self._reserved
            self._reserved = hi + 1 + RESERVE_BLOCK
            try:
                self._write_state()
            except OSError:
                self._reserved = old
                raise

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

    def _disk_error(self, what: str, exc: OSError) -> None:
        self.disk_errors += 1
        self._free_checked = -1e9
        self._log_disk(logging.ERROR, "spool: %s failed: %s; dropped frames become a GAP once there is room",
                       what, exc)

    # -- writing ---------------------------------------------------------------------------
    def append_frame(self, payload: bytes, t_mono_ns: int, t_wall_ns: int) -> int | None:
        """Spool one encoded frame; returns its seq, or None if it was dropped (as a GAP)."""
        with self._lock:
            seq = self.next_seq
            self.next_seq += 1
            rec = Record(RecordType.FRAME, seq, payload, t_mono_ns, t_wall_ns)
            if self._make_room(rec.size):
                for attempt in range(3):   # the disk itself may be full: evict and retry (bounded)
                    if self._flush_pending_locked() and self._try_write(rec, "writing a frame"):
                        return seq
                    if attempt == 2 or self.when_full != "drop_oldest" or not self._evict_locked():
                        break
            self._add_pending_gap(seq, seq, GapReason.SPOOL_FULL, t_mono_ns, t_wall_ns)
            if self.metrics:
                self.metrics.frames_dropped.inc(1, "spool", "spool_full")
            return None

    def append_gap(self, lost: int, reason: GapReason, t_mono_ns: int = 0, t_wall_ns: int = 0) -> int:
        """Account for ``lost`` frames the pipeline never had; returns the first lost seq."""
        with self._lock:
            first = self.next_seq
            self.next_seq += lost
            self._add_pending_gap(first, first + lost - 1, int(reason), t_mono_ns, t_wall_ns)
            self._flush_pending_locked()
            return first

    def _add_pending_gap(self, a: int, b: int, reason: int, mono: int, wall: int) -> None:
        last = self._pending_gaps[-1] if self._pending_gaps else None
        if last is not None and last[2] == reason and last[1] + 1 == a:
            last[1] = b
        else:
            self._pending_gaps.append([a, b, reason, mono, wall])

    def _flush_side_locked(self) -> bool:
        """Write GAPs for seqs outside the active flow into a segment of their own.

        Every segment then covers one contiguous seq range (``first..last`` of its name), which is
        what :func:`salvage_records` relies on. False if the disk refused (retried later).
        """
        if not self._side_gaps:
            return True
        if self._active is not None and self._active_records and not self._seal_locked():
            return False
        merged: list[list[int]] = []
        for g in sorted(self._side_gaps):
            if merged and merged[-1][2] == g[2] and g[0] <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], g[1])
            elif merged and g[0] <= merged[-1][1]:        # overlap, other reason: keep the first
                if g[1] > merged[-1][1]:
                    merged.append([merged[-1][1] + 1, g[1], g[2], g[3], g[4]])
            else:
                merged.append(list(g))
        self._side_gaps = merged
        while self._side_gaps:
            a, b, reason, mono, wall = self._side_gaps[0]
            if not self._try_write(gap_record(a, a, b, reason, mono, wall), "writing a GAP"):
                return False
            self._side_gaps.pop(0)
            self._count_gap(reason)
        return self._seal_locked()

    def _flush_pending_locked(self) -> bool:
        """Write the GAPs that are only in memory; False if the disk refused."""
        if not self._flush_side_locked():
            return False
        while self._pending_gaps:
            a, b, reason, mono, wall = self._pending_gaps[0]
            if not self._try_write(gap_record(a, a, b, reason, mono, wall), "writing a GAP"):
                return False
            self._pending_gaps.pop(0)
            self._count_gap(reason)
        return True

    def _count_gap(self, reason: int) -> None:
        if self.metrics:
            self.metrics.gaps.inc(1, reason_name(reason))

    def _make_room(self, incoming: int) -> bool:
        """Apply ``when_full``; returns False if the incoming frame must be dropped (bounded work)."""
        sealed_active = False
        while self._full(incoming) and not self._closing:
            if self.when_full == "drop_newest":
                return False
            if self.when_full == "block":
                self._lock.wait(0.5)
                continue
            if self._drop_oldest_locked():
                continue
            if not sealed_active and self._evict_locked():   # seal the active segment once
                sealed_active = True
                continue
            return False
        return True

    def _evict_locked(self) -> bool:
        """Evict the oldest sealed segment holding frames; if there is none but the active segment
        holds frames, seal it and evict that. False if nothing could be freed."""
        if self._drop_oldest_locked():
            return True
        return bool(self._active_frames and self._seal_locked() and self._drop_oldest_locked())

    def _drop_oldest_locked(self) -> bool:
        """Evict the oldest sealed segment that holds frames and is not in flight."""
        for n, seg in sorted(self._ready.items()):
            if n in self._in_flight or n in self._no_frames:
                continue
            try:
                info = inspect_segment(seg.read(), strict=False, resync=True)
            except (OSError, ContainerError) as exc:
                log.error("spool: cannot read %s while evicting (%s); its seq range %d..%d becomes a gap",
                          seg.path.name, exc, seg.first, seg.last)
                info = None
            if info is not None and not info.frames:
                self._no_frames.add(n)
                continue
            break
        else:
            return False
        self._absorb_gap_segments()
        try:
            seg.path.unlink()
        except FileNotFoundError:
            pass
        del self._ready[seg.segno]
        self._ready_bytes -= seg.size
        if self.metrics:
            self.metrics.spool_dropped_bytes.inc(seg.size)
        if info is None:
            self._side_gaps.append([seg.first, seg.last, GapReason.SPOOL_FULL, 0, 0])
        else:
            by_seq = {r.seq: r for r in info.records if r.type == RecordType.FRAME}
            for a, b in runs(info.frame_seqs):
                r = by_seq[a]
                self._side_gaps.append([a, b, GapReason.SPOOL_FULL, r.t_mono_ns, r.t_wall_ns])
                if self.metrics:
                    self.metrics.frames_dropped.inc(b - a + 1, "spool", "spool_full")
            for a, b, reason in info.gaps:   # carry earlier gaps forward
                self._side_gaps.append([a, b, reason, 0, 0])
            covered = [(q, q) for q in info.frame_seqs] + [(a, b) for a, b, _r in info.gaps]
            for a, b in _uncovered(seg.first, seg.last, covered):   # damaged records
                self._side_gaps.append([a, b, SPOOL_CORRUPT, 0, 0])
        self._log_evict(logging.WARNING, "spool full: evicted segment %s (seq %d..%d, %d bytes)",
                        seg.path.name, seg.first, seg.last, seg.size)
        self._update_gauges()
        return True

    def _absorb_gap_segments(self) -> None:
        """Fold the GAP-only segments not in flight into the next side segment (so evictions
        leave one small segment, not one per eviction)."""
        for n in sorted(self._no_frames):
            seg = self._ready.get(n)
            if seg is None or n in self._in_flight:
                continue
            try:
                info = inspect_segment(seg.read(), strict=False, resync=True)
            except (OSError, ContainerError):
                continue   # left alone; salvaged when it is sent
            if info.frames:
                continue
            self._side_gaps.extend([a, b, r, 0, 0] for a, b, r in info.gaps)
            try:
                seg.path.unlink()
            except FileNotFoundError:
                pass
            del self._ready[n]
            self._no_frames.discard(n)
            self._ready_bytes -= seg.size

    def _exclude_ranges(self, but: int | None = None) -> list[tuple[int, int]]:
        """Seq ranges held by the other segments with frames (each covers one contiguous range)."""
        out = [(s.first, s.last) for n, s in self._ready.items() if n != but and n not in self._no_frames]
        if self._active is not None and self._active_first is not None:
            out.append((self._active_first, self._active_last))
        return out

    def _open_active_locked(self, first_seq: int) -> None:
        path = self.dir / ACTIVE_NAME
        f = open(path, "wb", buffering=0)
        head = preamble() + header_record(self._header, seq=first_seq).encode()
        try:
            _write_all(f, head)
        except OSError:
            f.close()
            path.unlink()
            raise
        self._active = f
        self._active_size = len(head)
        self._active_opened = time.monotonic()
        self._active_first = self._active_last = None
        self._active_records = 0
        self._active_frames = 0

    def _try_write(self, rec: Record, what: str) -> bool:
        try:
            self._write_locked(rec)
            return True
        except OSError as exc:
            self._disk_error(what, exc)
            return False

    def _write_locked(self, rec: Record) -> None:
        """Append one record; on failure the active segment is cut back (raises OSError)."""
        lo, hi = (_gap_fields(rec)[:2] if rec.type == RecordType.GAP else (rec.seq, rec.seq))
        self._reserve(hi)
        if self._active is None:
            self._open_active_locked(rec.seq)
        data = rec.encode()
        try:
            _write_all(self._active, data)
            if self.fsync == "always":
                os.fsync(self._active.fileno())
        except OSError:
            self._active.truncate(self._active_size)   # no torn record stays behind
            self._active.seek(self._active_size)
            raise
        self._active_size += len(data)
        self._active_first = lo if self._active_first is None else min(self._active_first, lo)
        self._active_last = hi if self._active_last is None else max(self._active_last, hi)
        self._active_records += 1
        self._active_frames += rec.type == RecordType.FRAME
        if self._active_size >= self.segment_max_bytes:
            self._seal_locked()
        elif self.metrics:
            self.metrics.spool_bytes.set(self.total_bytes())

    def _seal_locked(self) -> bool:
        """Seal the active segment; False (and it stays active) if the disk refused."""
        f = self._active
        if f is None:
            return False
        segno = self.next_segno
        end = Record(RecordType.END, self._active_last, json.dumps(
            {"segno": segno, "first": self._active_first, "last": self._active_last,
             "records": self._active_records}).encode())
        name = f"{segno:012d}-{self._active_first:020d}-{self._active_last:020d}.scd"
        dest = self.ready_dir / name
        try:
            _write_all(f, end.encode())
            if self.fsync != "never":
                os.fsync(f.fileno())
            os.replace(self.dir / ACTIVE_NAME, dest)
        except OSError as exc:
            try:
                f.truncate(self._active_size)
                f.seek(self._active_size)
            except OSError:
                pass
            self._disk_error("sealing a segment", exc)
            return False
        f.close()
        self.next_segno += 1
        try:
            if self.fsync != "never":
                fsync_dir(self.ready_dir)
                fsync_dir(self.dir)
        except OSError as exc:
            self._disk_error("syncing the spool folder", exc)
        self._ready[segno] = Segment(dest, segno, self._active_first, self._active_last,
                                     dest.stat().st_size)
        if not self._active_frames:
            self._no_frames.add(segno)
        self._ready_bytes += self._ready[segno].size
        self._active = None
        self._active_size = 0
        self._active_records = 0
        self._active_frames = 0
        self._update_gauges()
        self._lock.notify_all()
        if self.on_seal is not None:
            self.on_seal()
        return True

    def tick(self) -> None:
        """Seal the active segment if it is older than ``segment_max_age``; retry pending GAPs."""
        with self._lock:
            if self._pending_gaps or self._side_gaps:
                self._flush_pending_locked()
            if self._active is not None and self._active_records and \
                    time.monotonic() - self._active_opened >= self.segment_max_age:
                self._seal_locked()

    def seal(self) -> None:
        """Seal the active segment now (if it holds records)."""
        with self._lock:
            self._flush_pending_locked()
            if self._active is not None and self._active_records:
                self._seal_locked()

    def close(self) -> None:
        """Seal what is open and record where numbering stands; never raises for a full disk."""
        with self._lock:
            self._closing = True
            flushed = self._flush_pending_locked()
            if self._active is not None and self._active_records:
                self._seal_locked()
            if flushed and self._active is None:
                self._reserved = self.next_seq   # clean stop: the next start has no restart GAP
                try:
                    self._write_state()
                except OSError as exc:
                    self._disk_error("writing state.json at close", exc)
            else:
                log.error("spool: closing with %d GAP ranges not written (disk full); their seqs are "
                          "covered by the restart GAP of the next start",
                          len(self._pending_gaps) + len(self._side_gaps))
            self._lock.notify_all()

    # -- numbering -------------------------------------------------------------------------
    def settle_numbering(self, receiver_next: int | None) -> None:
        """The receiver stores every seq below ``receiver_next``: never number below it.

        Provisional segments (written while the spool had no state) are renumbered upwards by
        the difference, crash-safely (``state.json`` lists them first); later numbering is
        final. Raises OSError if the disk refuses (the caller retries on its next connection).
        """
        n = receiver_next if isinstance(receiver_next, int) and not isinstance(receiver_next, bool) \
            and 0 <= receiver_next <= MAX_SEQ else 0
        with self._lock:
            if not self.provisional:
                if n > self.next_seq:
                    log.warning("spool: the receiver already stores seqs up to %d; numbering jumps from %d",
                                n - 1, self.next_seq)
                    self.next_seq = n
                return
            offset = max(0, n - self._prov_base)
            if offset:
                if self._active is not None and self._active_records and not self._seal_locked():
                    raise OSError(errno.ENOSPC, "cannot seal the active segment before renumbering")
                if self._active is not None:   # header only: start it again under the new numbering
                    self._active.close()
                    (self.dir / ACTIVE_NAME).unlink()
                    self._active, self._active_size = None, 0
                names = [s.path.name for n_, s in sorted(self._ready.items()) if n_ >= self._prov_segno]
                self._reserved += offset
                self.provisional = False
                self._write_state({"offset": offset, "names": names})
                self.next_seq += offset
                for g in self._pending_gaps + self._side_gaps:
                    g[0] += offset
                    g[1] += offset
                self._finish_renumber({"offset": offset, "names": names})
                log.warning("spool: the spool had no numbering state and the receiver stores seqs below %d; "
                            "%d provisional segments renumbered by +%d", n, len(names), offset)
            self.provisional = False
            self._write_state()

    def _finish_renumber(self, job: dict) -> None:
        """Shift the listed segments by ``offset`` (idempotent; resumed by :meth:`open`)."""
        offset = job["offset"]
        for name in job["names"]:
            old = self.ready_dir / name
            if not old.exists():
                continue
            m = SEGMENT_RE.match(name)
            segno, first, last = int(m.group(1)), int(m.group(2)), int(m.group(3))
            seg = self._rewrite(Segment(old, segno, first, last, old.stat().st_size), offset)
            if seg.path != old:
                old.unlink()
                if self.fsync != "never":
                    fsync_dir(self.ready_dir)
        self._write_state()

    def _rewrite(self, seg: Segment, offset: int, exclude: list[tuple[int, int]] = ()) -> Segment:
        """Rewrite a segment with intact records shifted by ``offset`` and GAPs for the damage."""
        data = seg.read()
        hdr, records, lost = salvage_records(data, seg.first, seg.last, offset=offset, header=None,
                                             exclude=exclude)
        first, last = seg.first + offset, seg.last + offset
        head = header_record(hdr, seq=first).encode() if hdr is not None else b""
        end = Record(RecordType.END, last, json.dumps({"segno": seg.segno, "first": first, "last": last,
                                                       "records": len(records)}).encode())
        if hdr is None:   # no header: a GAP-only segment needs one for the receiver; use ours
            head = header_record(self._header, seq=first).encode()
        body = preamble() + head + b"".join(r.encode() for r in records) + end.encode()
        dest = self.ready_dir / f"{seg.segno:012d}-{first:020d}-{last:020d}.scd"
        self._replace_file(dest, body)
        new = Segment(dest, seg.segno, first, last, len(body))
        if seg.segno in self._ready:
            self._ready_bytes += new.size - self._ready[seg.segno].size
            self._ready[seg.segno] = new
        return new

    def salvage(self, seg: Segment, why: str) -> Segment | None:
        """A sealed segment failed verification: keep its intact records, GAP the rest.

        The original bytes stay in ``rejected/``; returns the rebuilt segment (same segno and
        seq range), or None if even that failed (it is then released for a later try).
        """
        with self._lock:
            if seg.segno not in self._ready:
                return None
            try:
                data = seg.read()
                exclude = self._exclude_ranges(but=seg.segno)
                _h, records, lost = salvage_records(data, seg.first, seg.last, exclude=exclude)
                self._keep_copy(seg.path, "corrupt")
                new = self._rewrite(seg, 0, exclude)
            except OSError as exc:
                self._disk_error(f"salvaging {seg.path.name}", exc)
                self._in_flight.discard(seg.segno)
                return None
            log.error("spool: segment %s was damaged (%s): %d intact records kept, %d seqs sent as a "
                      "SPOOL_CORRUPT GAP; original bytes in rejected/", seg.path.name, why,
                      sum(1 for r in records if r.type == RecordType.FRAME), lost)
            if lost:
                self._count_gap(SPOOL_CORRUPT)
            self._update_gauges()
            return new

    # -- uploading -------------------------------------------------------------------------
    def pending(self) -> list[Segment]:
        """Sealed segments not in flight, oldest first.

        An uploader must call :meth:`settle_numbering` before its first send (while
        :attr:`provisional`, seqs may still move up).
        """
        with self._lock:
            return [s for n, s in sorted(self._ready.items()) if n not in self._in_flight]

    def wait_pending(self, timeout: float) -> list[Segment]:
        """Like :meth:`pending` but waits up to ``timeout`` for a segment to be sealed."""
        with self._lock:
            segs = self.pending()
            if not segs:
                self._lock.wait(timeout)
                segs = self.pending()
            return segs

    def sealed(self) -> list[Segment]:
        """Every sealed segment, oldest first (whatever the numbering state)."""
        with self._lock:
            return [s for _n, s in sorted(self._ready.items())]

    def checkout(self, seg: Segment) -> bool:
        """Mark a segment in flight (eviction skips it); False if it is gone."""
        with self._lock:
            if seg.segno not in self._ready:
                return False
            self._in_flight.add(seg.segno)
            return True

    def current(self, seg: Segment) -> Segment | None:
        """The spool's current version of ``seg`` (after a salvage), or None if it is gone."""
        with self._lock:
            return self._ready.get(seg.segno)

    def release(self, seg: Segment) -> None:
        """A send failed: the segment becomes pending again."""
        with self._lock:
            self._in_flight.discard(seg.segno)
            self._lock.notify_all()

    def ack(self, seg: Segment) -> None:
        """The sink stored the segment durably: delete it."""
        with self._lock:
            self._in_flight.discard(seg.segno)
            self._no_frames.discard(seg.segno)
            cur = self._ready.pop(seg.segno, None)
            if cur is None:
                return
            self._ready_bytes -= cur.size
            try:
                cur.path.unlink()
            except FileNotFoundError:
                pass
            self._update_gauges()
            self._lock.notify_all()

    def reject(self, seg: Segment, why: str) -> None:
        """Move a segment that cannot be sent at all to ``rejected/``, recording its seqs as a GAP."""
        with self._lock:
            self._in_flight.discard(seg.segno)
            cur = self._ready.pop(seg.segno, None)
            if cur is not None:
                self._ready_bytes -= cur.size
            try:
                seg.path.rename(self.rejected_dir / seg.path.name)
            except FileNotFoundError:
                pass
            if cur is not None:
                self._side_gaps.append([seg.first, seg.last, SPOOL_CORRUPT, 0, 0])
                self._flush_pending_locked()
            log.error("spool: segment %s rejected: %s; seqs %d..%d become a GAP", seg.path.name, why,
                      seg.first, seg.last)
            self._update_gauges()

    def empty(self) -> bool:
        """True when nothing is sealed, in flight, being written or waiting to be written."""
        with self._lock:
            return not (self._ready or self._active_records or self._pending_gaps or self._side_gaps)
