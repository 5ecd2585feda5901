"""The receiver's durable store: per-stream container files with de-duplication on seq.

``STORE/<stream_id>/<n:08d>.scd`` are ordinary streams (preamble + HEADER + FRAME/GAP
records); a new file starts when the HEADER changes (another model) or the current file passes
``file_max_bytes``. Every sequence number is covered at most once: a FRAME whose seq is known is
a duplicate; a GAP is trimmed to the parts nobody covered yet. Records are appended and fsynced
before the caller acknowledges.

Recovery on open never deletes data. Only the newest file may have an unacknowledged tail (a
crash mid-append: those records were never acknowledged, so the sender still has them): when
nothing valid follows its first bad record, the file is truncated there and the cut bytes are
kept in ``STORE/<stream_id>/quarantine/``. Damage anywhere else (a flipped bit in acknowledged
data, a bad older file) is quarantined: the original file moves to ``quarantine/`` and is
replaced by the records that still verify (CRC), so the lost seqs show up as ``missing`` in
``sensor-receive ls`` and in the log instead of silently shortening the stream.

Several processes may share one store folder (receiver replicas on a shared filesystem, e.g.
``sensor-receive --mqtt`` with a shared subscription): recovery and every commit hold an
exclusive ``flock`` on ``STORE/<stream_id>/.lock`` and first index what other processes appended
since (:meth:`StreamStore._catch_up`), so de-duplication sees every stored seq and appends go to
the newest file (or a new one) without interleaving.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import logging
import os
import threading
from pathlib import Path

from ..container import (PREAMBLE, ContainerError, Record, RecordType, gap_record,
                         header_record, preamble, scan_records)
from .config import STREAM_ID_RE
from .durable import fsync_dir

log = logging.getLogger("sensorcodec.store")


class RangeSet:
    """A set of integers stored as sorted, disjoint, inclusive ranges."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def __contains__(self, x: int) -> bool:
        i = bisect.bisect_right(self.starts, x) - 1
        return i >= 0 and self.ends[i] >= x

    def uncovered(self, a: int, b: int) -> list[tuple[int, int]]:
        """Sub-ranges of [a, b] not in the set."""
        out, cur = [], a
        i = max(bisect.bisect_right(self.starts, a) - 1, 0)
        while cur <= b and i < len(self.starts):
            s, e = self.starts[i], self.ends[i]
            if e < cur:
                i += 1
                continue
            if s > b:
                break
            if s > cur:
                out.append((cur, s - 1))
            cur = max(cur, e + 1)
            i += 1
        if cur <= b:
            out.append((cur, b))
        return out

    def add(self, a: int, b: int) -> None:
        """Insert [a, b], merging neighbours."""
        i = bisect.bisect_left(self.starts, a)
        if i > 0 and self.ends[i - 1] >= a - 1:
            i -= 1
            a = min(a, self.starts[i])
        j = i
        while j < len(self.starts) and self.starts[j] <= b + 1:
            b = max(b, self.ends[j])
            j += 1
        self.starts[i:j] = [a]
        self.ends[i:j] = [b]

    def ranges(self) -> list[tuple[int, int]]:
        """All ranges, ascending."""
        return list(zip(self.starts, self.ends))

    def count(self) -> int:
        """Number of integers in the set."""
        return sum(e - s + 1 for s, e in zip(self.starts, self.ends))


class StreamStore:
    """Storage for one stream id; thread-safe."""

    def __init__(self, root: Path, stream_id: str, file_max_bytes: int = 64 * 1024**2,
                 fsync: bool = True) -> None:
        if not STREAM_ID_RE.fullmatch(stream_id):
            raise ContainerError(f"invalid stream id {stream_id!r}")
        self.dir = Path(root) / stream_id
        self.stream_id, self.file_max_bytes, self.fsync = stream_id, file_max_bytes, fsync
        self.covered = RangeSet()
        self.frames = RangeSet()
        self.gaps: list[tuple[int, int, int]] = []
        self.lock = threading.Lock()
        self._file = None
        self._file_name: str | None = None
        self._file_header: dict | None = None
        self._file_size = 0
        self._next_fileno = 0
        self._seen: dict[str, int] = {}  # file name -> bytes of it already indexed (all processes)
        self._headers: dict[str, dict | None] = {}  # file name -> its HEADER
        self.damage: list[dict] = []
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._exclusive():
            self._load()

    def files(self) -> list[Path]:
        """Data files, oldest first."""
        return sorted(p for p in self.dir.glob("*.scd") if p.stem.isdigit())

    def _load(self) -> None:
        files = self.files()
        for i, p in enumerate(files):
            records = self._recover(p, newest=(i == len(files) - 1))
            for rec in records:
                self._index(rec)
            if p.exists():
                self._seen[p.name] = p.stat().st_size
                self._headers[p.name] = _first_header(records)
        if files:
            self._next_fileno = int(files[-1].stem) + 1

    @contextlib.contextmanager
    def _exclusive(self):
        """Hold the stream's inter-process lock (``flock`` on ``.lock``; released if we die).

        Opened per use, so a store with many streams does not hold a descriptor for each."""
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _catch_up(self) -> None:
        """Index records other processes appended since we last looked (call under both locks).

        Writers append whole records and fsync under the lock, so new bytes parse completely
        unless a writer died mid-``write``: such a tail was never acknowledged and is cut from
        the newest file (kept in ``quarantine/``), as on start-up.
        """
        files = self.files()
        for p in files:
            try:
                size = p.stat().st_size
            except FileNotFoundError:
                continue
            done = self._seen.get(p.name, 0)
            if size <= done:  # (smaller: another process's recovery cut a torn tail)
                self._seen[p.name] = size
                continue
            with open(p, "rb") as f:
                f.seek(done)
                data = f.read(size - done)
            start = 0
            if done == 0:
                if data[:PREAMBLE.size] != preamble():
                    records = self._recover(p, newest=(p == files[-1]))  # quarantines the file
                    for rec in records:
                        self._index(rec)
                    self._seen[p.name] = p.stat().st_size if p.exists() else 0
                    self._headers[p.name] = _first_header(records)
                    continue
                start = PREAMBLE.size
            res = scan_records(data, offset=start)
            for rec in res.records:
                self._index(rec)
            if done == 0:
                self._headers[p.name] = _first_header(res.records)
            good = done + res.good_bytes
            if res.errors and p == files[-1]:
                dest = self._quarantine(p.name + ".tail", data[res.good_bytes:])
                with open(p, "r+b") as f:
                    f.truncate(good)
                    os.fsync(f.fileno())
                log.warning("store: %s: %s; cut %d bytes another writer left unfinished (kept in %s)",
                            p, res.errors[0], size - good, dest)
                size = good
            elif res.errors:
                log.error("store: %s: %s after byte %d (left for recovery at the next start)",
                          p, res.errors[0], good)
            self._seen[p.name] = size
        if files:
            self._next_fileno = max(self._next_fileno, int(files[-1].stem) + 1)

    @property
    def quarantine_dir(self) -> Path:
        """Where damaged files and cut tails are kept (never deleted by the receiver)."""
        return self.dir / "quarantine"

    def _quarantine(self, name: str, data: bytes) -> Path:
        self.quarantine_dir.mkdir(exist_ok=True)
        n = 0
        while (dest := self.quarantine_dir / f"{name}.{n}.bad").exists():
            n += 1
        with open(dest, "wb") as f:
            f.write(data)
            os.fsync(f.fileno())
        fsync_dir(self.quarantine_dir)
        return dest

    def _recover(self, p: Path, newest: bool) -> list[Record]:
        """Check one file; returns its valid records (after quarantining anything damaged)."""
        data = p.read_bytes()
        if data[:PREAMBLE.size] != preamble():
            dest = self._quarantine(p.name, data)
            p.unlink()
            fsync_dir(self.dir)
            log.error("store: %s has no valid preamble; moved to %s", p, dest)
            self.damage.append({"file": p.name, "quarantined": dest.name, "bytes": len(data)})
            return []
        res = scan_records(data, offset=PREAMBLE.size, resync=True)
        if not res.errors:
            return res.records
        strict = scan_records(data, offset=PREAMBLE.size)
        if newest and len(res.records) == len(strict.records):
            dest = self._quarantine(p.name + ".tail", data[strict.good_bytes:])
            with open(p, "r+b") as f:
                f.truncate(strict.good_bytes)
                os.fsync(f.fileno())
            log.warning("store: %s: %s; cut %d bytes of unacknowledged tail (kept in %s)", p,
                        res.errors[0], len(data) - strict.good_bytes, dest)
            return res.records
        records = res.records
        if not records or records[0].type != RecordType.HEADER:
            records = [header_record({"stream_id": self.stream_id, "damaged": True})] + records
        dest = self._quarantine(p.name, data)
        tmp = p.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(preamble() + b"".join(r.encode() for r in records))
            os.fsync(f.fileno())
        os.replace(tmp, p)
        fsync_dir(self.dir)
        lost = len(data) - PREAMBLE.size - sum(r.size for r in res.records)
        log.error("store: %s is damaged (%s; %d errors): kept %d valid records, %d bytes unreadable; "
                  "original moved to %s", p, res.errors[0], len(res.errors), len(res.records), lost, dest)
        self.damage.append({"file": p.name, "quarantined": dest.name, "bytes": lost})
        return records

    @property
    def next_seq(self) -> int:
        """The lowest seq above everything stored (frames and GAPs); 0 for an empty stream."""
        with self.lock, self._exclusive():
            self._catch_up()
            return self.covered.ends[-1] + 1 if self.covered.ends else 0

    def _index(self, rec: Record) -> None:
        if rec.type == RecordType.FRAME:
            self.covered.add(rec.seq, rec.seq)
            self.frames.add(rec.seq, rec.seq)
        elif rec.type == RecordType.GAP:
            try:
                a, b, reason = rec.gap()
            except ContainerError as exc:
                log.error("store: stream %s: ignoring a stored GAP that does not parse: %s", self.stream_id, exc)
                return
            if b >= a:
                self.covered.add(a, b)
                self.gaps.append((a, b, int(reason)))

    def commit(self, header: dict, records: list[Record]) -> tuple[int, int, int]:
        """Store the not-yet-covered part of ``records`` durably; returns (frames, duplicates, gaps)."""
        with self.lock, self._exclusive():
            self._catch_up()
            new: list[Record] = []
            pending = RangeSet()
            dups = frames = gaps = 0
            for rec in records:
                if rec.type == RecordType.FRAME:
                    if rec.seq in self.covered or rec.seq in pending:
                        dups += 1
                        continue
                    pending.add(rec.seq, rec.seq)
                    new.append(rec)
                    frames += 1
                elif rec.type == RecordType.GAP:
                    a, b, reason = rec.gap()
                    if b < a:
                        raise ContainerError(f"GAP record with last {b} < first {a}")
                    for x, y in self.covered.uncovered(a, b):
                        for u, v in pending.uncovered(x, y):
                            pending.add(u, v)
                            new.append(gap_record(u, u, v, reason, rec.t_mono_ns, rec.t_wall_ns))
                            gaps += 1
            if new:
                self._append(header, new)
                for rec in new:
                    self._index(rec)
            return frames, dups, gaps

    def _append(self, header: dict, records: list[Record]) -> None:
        """Append to the newest file (whoever wrote it) when its HEADER matches, else start one.

        A process's first append after opening the store starts a new file, as before.
        """
        body = b"".join(r.encode() for r in records)
        files = self.files()
        newest = files[-1].name if files else None
        new_file = (self._file is None or newest is None or self._headers.get(newest) != header
                    or self._seen.get(newest, 0) >= self.file_max_bytes)
        if not new_file and self._file_name == newest and not _same_file(self._file, self.dir / newest):
            self._file_name = None  # our file was replaced (another process's recovery): reopen
        if new_file or self._file_name != newest:
            if self._file is not None:
                self._file.close()
            if new_file:
                newest = f"{self._next_fileno:08d}.scd"
                self._next_fileno += 1
            flags = os.O_WRONLY | os.O_APPEND | (os.O_CREAT | os.O_EXCL if new_file else 0)
            self._file = open(os.open(self.dir / newest, flags, 0o644), "ab", buffering=0)
            self._file_name = newest
        if new_file:
            head = preamble() + header_record(header).encode()
            self._file.write(head)
            self._seen[newest], self._headers[newest] = len(head), header
        self._file_header = header
        self._file.write(body)
        self._seen[newest] = self._file_size = os.fstat(self._file.fileno()).st_size
        if self.fsync:
            os.fsync(self._file.fileno())
            if new_file:
                fsync_dir(self.dir)

    def close(self) -> None:
        """Close the open file."""
        with self.lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _same_file(f, path: Path) -> bool:
    """True if the open file ``f`` is still what ``path`` names."""
    try:
        a, b = os.fstat(f.fileno()), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _first_header(records: list[Record]) -> dict | None:
    """The JSON of a file's leading HEADER record (None if absent or unreadable)."""
    if records and records[0].type == RecordType.HEADER:
        try:
            return records[0].header_json()
        except ContainerError:
            return None
    return None


class Store:
    """All streams under one folder."""

    def __init__(self, root: str | Path, file_max_bytes: int = 64 * 1024**2) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.file_max_bytes = file_max_bytes
        self._streams: dict[str, StreamStore] = {}
        self._lock = threading.Lock()
        for d in sorted(self.root.iterdir()):  # recover (and report damage) at start, not on first use
            if d.is_dir() and STREAM_ID_RE.fullmatch(d.name):
                self.stream(d.name)

    def stream(self, stream_id: str) -> StreamStore:
        """The store for one stream (opened and recovered on first use)."""
        with self._lock:
            st = self._streams.get(stream_id)
            if st is None:
                st = self._streams[stream_id] = StreamStore(self.root, stream_id, self.file_max_bytes)
            return st

    def next_seq(self, stream_id: str) -> int:
        """The stream's next seq (0 for a stream not in the store; creates nothing)."""
        with self._lock:
            st = self._streams.get(stream_id)
        if st is None and STREAM_ID_RE.fullmatch(stream_id) and (self.root / stream_id).is_dir():
            st = self.stream(stream_id)  # written by another process sharing the store since we started
        return st.next_seq if st is not None else 0

    def close(self) -> None:
        """Close every stream."""
        with self._lock:
            for st in self._streams.values():
                st.close()


def scan_file(path: Path) -> tuple[list[Record], int, list[str]]:
    """Every record of one store file that verifies (resyncing past damage), unreadable bytes, errors."""
    data = path.read_bytes()
    if data[:PREAMBLE.size] != preamble():
        return [], len(data), [f"{path}: no valid preamble"]
    res = scan_records(data, offset=PREAMBLE.size, resync=True)
    lost = len(data) - PREAMBLE.size - sum(r.size for r in res.records)
    return res.records, lost, [f"{path}: {e}" for e in res.errors]


def _stream_items(root: str | Path, stream_id: str, damage: list | None = None):
    for p in sorted((Path(root) / stream_id).glob("*.scd")):
        records, lost, errors = scan_file(p)
        if damage is not None and errors:
            damage.append({"file": p.name, "unreadable_bytes": lost, "errors": errors[:3]})
        header: dict = {}
        for rec in records:
            if rec.type == RecordType.HEADER:
                try:
                    header = rec.header_json()
                except ContainerError as exc:
                    header = {}
                    if damage is not None:
                        damage.append({"file": p.name, "unreadable_bytes": 0, "errors": [str(exc)]})
            elif rec.type == RecordType.FRAME:
                yield header, rec
            elif rec.type == RecordType.GAP:
                try:
                    a, b, _ = rec.gap()
                except ContainerError:
                    a, b = 1, 0
                if b >= a:
                    yield header, rec
                elif damage is not None:
                    damage.append({"file": p.name, "unreadable_bytes": 0,
                                   "errors": [f"invalid GAP record at seq {rec.seq}"]})


def iter_stream(root: str | Path, stream_id: str):
    """Yield ``(header, record)`` for every valid FRAME/GAP record stored for a stream (file order).

    Records past damage in a file are still found (resync on the sync word, CRC-checked);
    :func:`summarize` reports the damage itself.
    """
    yield from _stream_items(root, stream_id)


def summarize(root: str | Path) -> dict:
    """What ``sensor-receive ls`` prints: per stream frame count, seq ranges, gaps, damage, bytes."""
    root = Path(root)
    out = {"store": str(root), "streams": []}
    if not root.is_dir():
        return out
    for d in sorted(p for p in root.iterdir() if p.is_dir() and STREAM_ID_RE.fullmatch(p.name)):
        frames, covered = RangeSet(), RangeSet()
        gaps, codecs, models, nbytes, dup = [], set(), set(), 0, 0
        damage: list[dict] = []
        for header, rec in _stream_items(root, d.name, damage):
            if header:
                codecs.add(header.get("codec") or (header.get("bundle") or {}).get("name") or "?")
                models.add((header.get("bundle") or {}).get("name") or header.get("codec") or "?")
            if rec.type == RecordType.FRAME:
                if rec.seq in frames:
                    dup += 1
                frames.add(rec.seq, rec.seq)
                covered.add(rec.seq, rec.seq)
                nbytes += len(rec.payload)
            else:
                a, b, reason = rec.gap()
                gaps.append({"first": a, "last": b, "reason": reason.name.lower()})
                covered.add(a, b)
        hi = covered.ends[-1] if covered.ends else -1
        quarantine = d / "quarantine"
        out["streams"].append({
            "stream_id": d.name, "frames": frames.count(), "payload_bytes": nbytes,
            "seq_ranges": [list(r) for r in frames.ranges()],
            "gaps": sorted(gaps, key=lambda g: g["first"]),
            "missing": [list(r) for r in covered.uncovered(0, hi)] if hi >= 0 else [],
            "duplicates": dup, "codecs": sorted(map(str, codecs)), "models": sorted(map(str, models)),
            "files": len(list(d.glob("*.scd"))), "damaged": damage,
            "quarantined": sorted(p.name for p in quarantine.iterdir()) if quarantine.is_dir() else [],
        })
    return out


def format_summary(summary: dict) -> str:
    """Human-readable ``ls`` output."""
    lines = []
    for s in summary["streams"]:
        rng = ", ".join(f"{a}..{b}" if a != b else str(a) for a, b in s["seq_ranges"][:8])
        if len(s["seq_ranges"]) > 8:
            rng += ", ..."
        lines.append(f"{s['stream_id']}: {s['frames']} frames ({s['payload_bytes']} B) seq {rng or '-'}; "
                     f"{len(s['gaps'])} gaps; {len(s['missing'])} missing ranges; "
                     f"model {', '.join(s.get('models') or []) or '-'}; codecs {', '.join(s['codecs']) or '-'}")
        for g in s["gaps"][:20]:
            lines.append(f"  gap {g['first']}..{g['last']} ({g['reason']})")
        for m in s["missing"][:20]:
            lines.append(f"  missing {m[0]}..{m[1]} (neither stored nor in a GAP)")
        for dmg in s.get("damaged") or []:
            lines.append(f"  DAMAGED {dmg['file']}: {dmg['unreadable_bytes']} unreadable bytes "
                         f"({'; '.join(dmg['errors'])})")
        if s.get("quarantined"):
            lines.append(f"  quarantined: {', '.join(s['quarantined'])}")
    return "\n".join(lines) if lines else f"{summary['store']}: no streams"


__all__ = ["RangeSet", "StreamStore", "Store", "iter_stream", "scan_file", "summarize", "format_summary"]
