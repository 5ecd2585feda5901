"""The one bitstream format: single files, spool segments and the network stream.

A stream is ``MAGIC`` + ``u16 major`` + ``u16 minor`` followed by records::

    record := u16 sync=0x5AA5  u8 type  u8 flags  u32 payload_len
              u64 seq  i64 t_mono_ns  i64 t_wall_ns (0 = clock not synced)
              payload[payload_len]  u32 crc32(sync .. payload)

All integers are little-endian. The first record of a stream is a HEADER whose payload is
UTF-8 JSON describing everything a decoder needs (model id + sha256, modality, layout, coder,
quantizer parameters, stream id, clock base). FRAME records carry one encoded frame each, GAP
records say which sequence numbers were dropped and why, END closes a sealed segment.

Readers validate lengths before allocating, reject unknown major versions, and can resync after
corruption by scanning for the next record whose sync word and CRC check out.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import json
import struct
import zlib
from typing import BinaryIO, Iterable, Iterator

MAGIC = b"\x89SCD\r\n\x1a\n"
FORMAT_MAJOR = 1
FORMAT_MINOR = 0
SYNC = 0x5AA5
PREAMBLE = struct.Struct("<8sHH")
RECORD_HEADER = struct.Struct("<HBBIQqq")
CRC = struct.Struct("<I")
GAP_PAYLOAD = struct.Struct("<QQB")
DEFAULT_MAX_PAYLOAD = 64 * 1024 * 1024


class ContainerError(ValueError):
    """A stream is malformed, truncated, corrupted or of an unsupported version."""


class RecordType(enum.IntEnum):
    """Kinds of record in a stream."""

    HEADER = 0x01
    FRAME = 0x02
    GAP = 0x03
    TIMESYNC = 0x04
    ANNOTATION = 0x05
    END = 0x7F


class GapReason(enum.IntEnum):
    """Why frames are missing."""

    UNKNOWN = 0
    QUEUE_FULL = 1
    SPOOL_FULL = 2
    SERIAL_CRC = 3
    SOURCE_LOST = 4
    ENCODE_ERROR = 5
    CAMERA_DROP = 6


@dataclasses.dataclass(frozen=True)
class Record:
    """One record of a stream."""

    type: int
    seq: int
    payload: bytes
    t_mono_ns: int = 0
    t_wall_ns: int = 0
    flags: int = 0

    def encode(self) -> bytes:
        """Serialise the record, CRC included."""
        head = RECORD_HEADER.pack(SYNC, self.type, self.flags, len(self.payload), self.seq,
                                  self.t_mono_ns, self.t_wall_ns)
        crc = zlib.crc32(self.payload, zlib.crc32(head))
        return head + self.payload + CRC.pack(crc)

    @property
    def size(self) -> int:
        """Encoded size in bytes."""
        return RECORD_HEADER.size + len(self.payload) + CRC.size

    def header_json(self) -> dict:
        """Decode the JSON payload of a HEADER record."""
        if self.type != RecordType.HEADER:
            raise ContainerError(f"record seq={self.seq} is type {self.type}, not HEADER")
        try:
            return json.loads(self.payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ContainerError(f"stream header is not valid UTF-8 JSON: {exc}") from None

    def gap(self) -> tuple[int, int, GapReason]:
        """Decode a GAP record: (first_lost_seq, last_lost_seq, reason)."""
        if self.type != RecordType.GAP or len(self.payload) < GAP_PAYLOAD.size:
            raise ContainerError(f"record seq={self.seq} is not a valid GAP record")
        first, last, reason = GAP_PAYLOAD.unpack_from(self.payload)
        try:
            return first, last, GapReason(reason)
        except ValueError:
            return first, last, GapReason.UNKNOWN


def preamble() -> bytes:
    """The bytes every stream starts with."""
    return PREAMBLE.pack(MAGIC, FORMAT_MAJOR, FORMAT_MINOR)


def header_record(header: dict, seq: int = 0, t_mono_ns: int = 0, t_wall_ns: int = 0) -> Record:
    """Build the HEADER record of a stream from a JSON-serialisable dict."""
    payload = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return Record(RecordType.HEADER, seq, payload, t_mono_ns, t_wall_ns)


def gap_record(seq: int, first_lost: int, last_lost: int, reason: GapReason,
               t_mono_ns: int = 0, t_wall_ns: int = 0) -> Record:
    """Build a GAP record saying that frames first_lost..last_lost (inclusive) are missing."""
    return Record(RecordType.GAP, seq, GAP_PAYLOAD.pack(first_lost, last_lost, int(reason)),
                  t_mono_ns, t_wall_ns)


def write_stream(records: Iterable[Record]) -> bytes:
    """Serialise a complete stream (preamble + records)."""
    out = io.BytesIO()
    out.write(preamble())
    for rec in records:
        out.write(rec.encode())
    return out.getvalue()


def check_preamble(data: bytes, source: str = "stream") -> None:
    """Raise ContainerError unless ``data`` starts with a supported preamble."""
    if len(data) < PREAMBLE.size:
        raise ContainerError(f"{source}: truncated ({len(data)} bytes); not a sensorcodec stream")
    magic, major, minor = PREAMBLE.unpack_from(data)
    if magic != MAGIC:
        raise ContainerError(f"{source}: bad magic {magic!r}; not a sensorcodec stream")
    if major != FORMAT_MAJOR:
        raise ContainerError(f"{source}: format version {major}.{minor} is not supported "
                             f"(this reader understands {FORMAT_MAJOR}.x)")


def _parse_at(buf: memoryview, pos: int, max_payload: int) -> tuple[Record | None, int, str]:
    """Try to parse a record at ``pos``; returns (record, next_pos, error)."""
    if len(buf) - pos < RECORD_HEADER.size + CRC.size:
        return None, pos, "truncated record header"
    sync, rtype, flags, plen, seq, mono, wall = RECORD_HEADER.unpack_from(buf, pos)
    if sync != SYNC:
        return None, pos, f"bad sync word 0x{sync:04x} at offset {pos}"
    if plen > max_payload:
        return None, pos, f"record at offset {pos} declares {plen} payload bytes (limit {max_payload})"
    end = pos + RECORD_HEADER.size + plen
    if end + CRC.size > len(buf):
        return None, pos, f"record at offset {pos} truncated ({len(buf) - pos} of {end + CRC.size - pos} bytes)"
    (crc,) = CRC.unpack_from(buf, end)
    if zlib.crc32(buf[pos:end]) != crc:
        return None, pos, f"CRC mismatch in record at offset {pos} (seq {seq})"
    return Record(rtype, seq, bytes(buf[pos + RECORD_HEADER.size:end]), mono, wall, flags), end + CRC.size, ""


@dataclasses.dataclass
class ScanResult:
    """Result of scanning a buffer of records."""

    records: list[Record]
    good_bytes: int          # length of the valid prefix (preamble + intact records)
    errors: list[str]        # problems met (empty for a clean stream)
    skipped_bytes: int = 0   # bytes skipped while resyncing


def scan_records(data: bytes, *, offset: int = 0, resync: bool = False,
                 max_payload: int = DEFAULT_MAX_PAYLOAD) -> ScanResult:
    """Parse records from ``data[offset:]``.

    Without ``resync`` the scan stops at the first bad record; ``good_bytes`` then tells where
    to truncate. With ``resync`` it skips forward to the next valid record and goes on.
    """
    buf = memoryview(data)
    pos, good = offset, offset
    records: list[Record] = []
    errors: list[str] = []
    skipped = 0
    while pos < len(buf):
        rec, nxt, err = _parse_at(buf, pos, max_payload)
        if rec is not None:
            records.append(rec)
            pos = nxt
            if not errors:
                good = pos
            continue
        errors.append(err)
        if not resync:
            break
        found = bytes(buf[pos + 1:]).find(struct.pack("<H", SYNC))
        if found < 0:
            skipped += len(buf) - pos
            break
        skipped += found + 1
        pos += found + 1
    return ScanResult(records, good, errors, skipped)


def read_stream(data: bytes, source: str = "stream", *, max_payload: int = DEFAULT_MAX_PAYLOAD
                ) -> tuple[dict, list[Record]]:
    """Strictly parse a whole stream; returns (header dict, all records after the header)."""
    check_preamble(data, source)
    result = scan_records(data, offset=PREAMBLE.size, max_payload=max_payload)
    if result.errors:
        raise ContainerError(f"{source}: {result.errors[0]}")
    if not result.records or result.records[0].type != RecordType.HEADER:
        raise ContainerError(f"{source}: first record must be a HEADER")
    return result.records[0].header_json(), result.records[1:]


class StreamReader:
    """Incrementally parse a stream arriving in chunks (network or serial)."""

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self._buf = bytearray()
        self._preamble_seen = False
        self.max_payload = max_payload

    def feed(self, chunk: bytes) -> list[Record]:
        """Add bytes; return every complete record now available. Raises on corruption."""
        self._buf += chunk
        if not self._preamble_seen:
            if len(self._buf) < PREAMBLE.size:
                return []
            check_preamble(bytes(self._buf[:PREAMBLE.size]))
            del self._buf[:PREAMBLE.size]
            self._preamble_seen = True
        out: list[Record] = []
        view = memoryview(self._buf)
        pos = 0
        try:
            while True:
                rec, nxt, err = _parse_at(view, pos, self.max_payload)
                if rec is None:
                    if "truncated" in err:
                        break
                    raise ContainerError(err)
                out.append(rec)
                pos = nxt
        finally:
            view.release()
        del self._buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes buffered but not yet forming a complete record."""
        return len(self._buf)


def iter_file_records(fh: BinaryIO, max_payload: int = DEFAULT_MAX_PAYLOAD) -> Iterator[Record]:
    """Read records from a file object without loading it whole."""
    head = fh.read(PREAMBLE.size)
    check_preamble(head, getattr(fh, "name", "stream"))
    reader = StreamReader(max_payload)
    reader.feed(head)
    while chunk := fh.read(1 << 20):
        yield from reader.feed(chunk)
    if reader.pending:
        raise ContainerError(f"{getattr(fh, 'name', 'stream')}: truncated final record "
                             f"({reader.pending} bytes left over)")
