"""The one bitstream format: single files, spool segments and the network stream.

A stream is ``MAGIC`` + ``u16 major`` + ``u16 minor`` followed by records::

    record := u16 sync=0x5AA5  u8 type  u8 flags  u32 payload_len
              u64 seq  i64 t_mono_ns  i64 t_wall_ns (0 = clock not synced)
              payload[payload_len]  u32 crc32(sync .. payload)

All integers are little-endian. The first record of a stream is a HEADER whose payload is
UTF-8 JSON describing everything a decoder needs (model id + sha256, modality, layout, coder,
quantizer parameters, stream id, clock base). FRAME records carry one encoded frame each, GAP
records say which sequence numbers were dropped and why, END closes a sealed segment.

HEADER flags (format 1.1; a 1.0 stream has flags 0, plain JSON with its ``clock`` inside):
``HEADER_ZSTD`` — the payload is one zstd frame (content size set, at most ``MAX_HEADER_JSON``
bytes) made with the fixed dictionary :data:`~encoder_runtime.header_dict.HEADER_DICT`;
``HEADER_CLOCK`` — the JSON has no ``clock``: the clock base is the record's t_mono_ns/t_wall_ns.
:meth:`Record.header_json` undoes both, so readers always see the full header dict.

Readers validate lengths before allocating, reject unknown major versions, and can resync after
corruption by scanning for the next record whose sync word and CRC check out. The full
specification is docs/container-format.md.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import json
import struct
import zlib
from functools import lru_cache
from typing import BinaryIO, Iterable, Iterator

import zstandard

from .entropy import zstd_decompress_bounded
from .errors import ContainerError
from .header_dict import HEADER_DICT

MAGIC = b"\x89SCD\r\n\x1a\n"
FORMAT_MAJOR = 1
FORMAT_MINOR = 1
SYNC = 0x5AA5
PREAMBLE = struct.Struct("<8sHH")
RECORD_HEADER = struct.Struct("<HBBIQqq")
CRC = struct.Struct("<I")
GAP_PAYLOAD = struct.Struct("<QQB")
DEFAULT_MAX_PAYLOAD = 64 * 1024 * 1024
HEADER_ZSTD = 0x01           # HEADER flag: payload is zstd(JSON) with HEADER_DICT
HEADER_CLOCK = 0x02          # HEADER flag: clock base = the record's timestamps, not in the JSON
HEADER_FLAGS = HEADER_ZSTD | HEADER_CLOCK
MAX_HEADER_JSON = 64 * 1024  # cap on a compressed header's JSON (no zip bombs)
MAX_HEADER_DEPTH = 32        # cap on the nesting of a stream header's JSON (arrays + objects)
HEADER_ZSTD_LEVEL = 19
I64_MAX = (1 << 63) - 1


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
    SPOOL_CORRUPT = 7   # records unreadable in the encoder's spool (salvaged segment, torn tail)
    SPOOL_LOST = 8      # seqs reserved before a crash or power loss that never reached the disk


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
        """Decode a HEADER record (plain or compressed JSON) into the full header dict."""
        if self.type != RecordType.HEADER:
            raise ContainerError(f"record seq={self.seq} is type {self.type}, not HEADER")
        if self.flags & ~HEADER_FLAGS:
            raise ContainerError(f"stream header has unknown flags 0x{self.flags:02x} (this reader "
                                 f"understands format {FORMAT_MAJOR}.{FORMAT_MINOR})")
        text = _inflate_header(self.payload) if self.flags & HEADER_ZSTD else self.payload
        header = parse_json_object(text, "stream header", MAX_HEADER_DEPTH, ContainerError)
        if self.flags & HEADER_CLOCK:
            header = dict(sorted({**header, "clock": {"mono_ns": self.t_mono_ns,
                                                      "wall_ns": self.t_wall_ns}}.items()))
        return header

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


@lru_cache(maxsize=1)
def _header_dict() -> zstandard.ZstdCompressionDict:
    d = zstandard.ZstdCompressionDict(HEADER_DICT, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    d.precompute_compress(level=HEADER_ZSTD_LEVEL)
    return d


def _deflate_header(text: bytes) -> bytes | None:
    """zstd(text) with the header dictionary, or None when that would not help or is too big."""
    if len(text) > MAX_HEADER_JSON:
        return None
    cctx = zstandard.ZstdCompressor(level=HEADER_ZSTD_LEVEL, dict_data=_header_dict(),
                                    write_checksum=False, write_content_size=True,
                                    write_dict_id=False)
    packed = cctx.compress(text)
    return packed if len(packed) < len(text) else None


def _inflate_header(payload: bytes) -> bytes:
    """Inverse of :func:`_deflate_header`; validates the declared size before allocating."""
    return zstd_decompress_bounded(payload, MAX_HEADER_JSON, "compressed stream header",
                                   dict_data=_header_dict(), error=ContainerError)


def json_depth(obj: object) -> int:
    """Nesting depth of a parsed JSON value (0 for a scalar), without recursion."""
    deepest, todo = 0, [(obj, 1)]
    while todo:
        item, depth = todo.pop()
        children = (item.values() if isinstance(item, dict) else item
                    if isinstance(item, list) else None)
        if children is not None:
            deepest = max(deepest, depth)
            todo.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def parse_json_object(text: bytes, what: str, max_depth: int,
                      error: type[ValueError] = ContainerError) -> dict:
    """Parse untrusted UTF-8 JSON that must be an object nested at most ``max_depth`` deep.

    Raises ``error`` naming ``what`` for invalid UTF-8 or JSON, too deep nesting, NaN/Infinity
    constants, or a top level that is not an object.
    """
    def no_constants(name: str):
        raise ValueError(f"{name} is not valid JSON")

    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what}: not valid UTF-8 ({exc})") from None
    try:
        obj = json.loads(decoded, parse_constant=no_constants)
    except ValueError as exc:
        raise error(f"{what}: not valid JSON ({exc})") from None
    except RecursionError:
        raise error(f"{what}: JSON nests deeper than {max_depth} levels") from None
    if not isinstance(obj, dict):
        raise error(f"{what}: not a JSON object (got {type(obj).__name__})")
    if json_depth(obj) > max_depth:
        raise error(f"{what}: JSON nests deeper than {max_depth} levels")
    return obj


def _clock_base(header: dict, t_mono_ns: int, t_wall_ns: int) -> tuple[int, int] | None:
    """The header's clock as record timestamps, when it can move there without loss."""
    clock = header.get("clock")
    if not isinstance(clock, dict) or set(clock) != {"mono_ns", "wall_ns"}:
        return None
    t = (clock["mono_ns"], clock["wall_ns"])
    if not all(type(v) is int and -I64_MAX - 1 <= v <= I64_MAX for v in t):
        return None
    return t if (t_mono_ns, t_wall_ns) in ((0, 0), t) else None


def header_record(header: dict, seq: int = 0, t_mono_ns: int = 0, t_wall_ns: int = 0, *,
                  compact: bool = True) -> Record:
    """Build the HEADER record of a stream from a JSON-serialisable dict.

    ``compact`` moves the ``clock`` into the record's timestamps and zstd-compresses the JSON
    (flags HEADER_CLOCK / HEADER_ZSTD, format 1.1); ``compact=False`` writes a 1.0 header.
    """
    flags = 0
    clock = _clock_base(header, t_mono_ns, t_wall_ns) if compact else None
    if clock is not None:
        header = {k: v for k, v in header.items() if k != "clock"}
        (t_mono_ns, t_wall_ns), flags = clock, HEADER_CLOCK
    payload = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    packed = _deflate_header(payload) if compact else None
    if packed is not None:
        payload, flags = packed, flags | HEADER_ZSTD
    return Record(RecordType.HEADER, seq, payload, t_mono_ns, t_wall_ns, flags)


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
